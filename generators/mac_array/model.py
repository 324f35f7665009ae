"""Bit-exact golden model of the MAC array (NumPy only; imports no Amaranth).

This is the one model of the unit: the Amaranth-simulator tests, the cocotb benches,
``tensorfab run --backend golden`` and the host's reference board all call :func:`gemm`.
"""

from __future__ import annotations

import numpy as np

from ..errors import ArrayError
from ..numerics import exact_matmul
from .params import MacArrayParams


def gemm(params: MacArrayParams, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``c = overflow(a @ b)``: the exact integer product, then the accumulator's rule once.

    Parameters
    ----------
    a, b:
        Integer code arrays of shapes ``[M, K]`` and ``[K, N]`` within the ``a``/``b`` formats
        (callers validate with :func:`check_inputs`).

    Returns
    -------
    ``[M, N]`` codes in the accumulator format (int64, or object for accumulators over 63 bits).

    Notes
    -----
    With ``wrap`` the result equals accumulating in the accumulator's width at every step;
    with ``sat`` it is the exact sum clamped once, which the RTL matches for K up to ``max_k``.
    """
    exact = exact_matmul(a, b)
    return params.acc.apply_overflow(exact, params.overflow)


def check_inputs(params: MacArrayParams, arrays: dict) -> tuple[np.ndarray, np.ndarray]:
    """Validate a ``run`` input set ``{'a': [M,K], 'b': [K,N]}``; raise ``ArrayError``."""
    extra = sorted(set(arrays) - {"a", "b"})
    missing = [name for name in ("a", "b") if name not in arrays]
    if missing:
        raise ArrayError(f"missing array {missing[0]!r} (mac_array needs: a [M,K], b [K,N])")
    if extra:
        raise ArrayError(f"unexpected array {extra[0]!r} (mac_array takes: a [M,K], b [K,N])")
    a, b = arrays["a"], arrays["b"]
    for name, arr in (("a", a), ("b", b)):
        if getattr(arr, "ndim", None) != 2:
            raise ArrayError(
                f"{name}: shape {tuple(np.shape(arr))} is not 2-D "
                f"(mac_array needs: a [M,K], b [K,N])")
        if 0 in arr.shape:
            raise ArrayError(f"{name}: shape {arr.shape} is empty (allowed: every dimension >= 1)")
    if a.shape[1] != b.shape[0]:
        raise ArrayError(
            f"a: shape {a.shape} and b: shape {b.shape} do not chain "
            f"(a's K = {a.shape[1]} must equal b's K = {b.shape[0]})")
    if params.overflow == "sat" and a.shape[1] > params.max_k:
        raise ArrayError(
            f"a: K = {a.shape[1]} exceeds this array's max_k = {params.max_k} for overflow: sat "
            f"(allowed: K <= {params.max_k}; raise max_k in the config)")
    try:
        a = params.a.check_codes(a, "a")
        b = params.b.check_codes(b, "b")
    except ValueError as err:
        raise ArrayError(str(err)) from None
    return a, b
