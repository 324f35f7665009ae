"""Bit-exact golden model of the softmax unit and its exact float64 reference (NumPy only).

:func:`softmax` is the one model of the unit (the integer specification in :mod:`.params`):
the Amaranth-simulator tests, the cocotb benches, ``tensorfab run --backend golden`` and the
benches call it. :func:`reference` is exact softmax in float64 and :func:`error_lsb` the
error measure of DESIGN.md.
"""

from __future__ import annotations

import numpy as np

from ..errors import ArrayError
from ..numerics import div_round
from .params import SoftmaxParams


def exps(p: SoftmaxParams, x: np.ndarray) -> np.ndarray:
    """``E`` of every element of rows ``x [R, n]``: the exp table at ``max - x``."""
    x = np.asarray(x, dtype=np.int64)
    d = x.max(axis=-1, keepdims=True) - x
    table = np.asarray(p.table, dtype=np.int64)
    return table[np.minimum(d, p.table_size - 1)]


def softmax(p: SoftmaxParams, x: np.ndarray) -> np.ndarray:
    """Row-wise softmax of codes ``x [R, n]`` (``1 <= n <= length``) -> codes ``[R, n]`` in
    the output format (int64)."""
    e = exps(p, x)
    s = e.sum(axis=-1, keepdims=True)
    q = div_round(e << p.out_frac, s)
    return np.minimum(q, p.out.max_code).astype(np.int64)


def reference(p: SoftmaxParams, x: np.ndarray) -> np.ndarray:
    """Exact softmax of the real values of ``x [R, n]`` in float64 (probabilities)."""
    v = p.inp.dequantize(x)
    e = np.exp(v - v.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def error_lsb(p: SoftmaxParams, y: np.ndarray, prob: np.ndarray, signed: bool = False):
    """Error of output codes ``y`` against exact probabilities ``prob``, in output LSBs:
    ``code - clip(prob * 2**frac, min_code, max_code)`` (absolute unless ``signed``)."""
    exact = np.clip(np.ldexp(prob, p.out_frac), p.out.min_code, p.out.max_code)
    err = np.asarray(y, dtype=np.float64) - exact
    return err if signed else np.abs(err)


def check_inputs(p: SoftmaxParams, arrays: dict) -> np.ndarray:
    """Validate a ``run`` input set ``{'x': [R, n]}`` with ``1 <= n <= length``; raise
    ``ArrayError`` with one line."""
    need = f"softmax needs: x [R, n] with 1 <= n <= {p.length}"
    if "x" not in arrays:
        raise ArrayError(f"missing array 'x' ({need})")
    extra = sorted(set(arrays) - {"x"})
    if extra:
        raise ArrayError(f"unexpected array {extra[0]!r} ({need})")
    x = arrays["x"]
    if getattr(x, "ndim", None) != 2:
        raise ArrayError(f"x: shape {tuple(np.shape(x))} is not 2-D ({need})")
    if 0 in x.shape:
        raise ArrayError(f"x: shape {x.shape} is empty (allowed: every dimension >= 1)")
    if x.shape[1] > p.length:
        raise ArrayError(f"x: rows of {x.shape[1]} elements are longer than this unit's "
                         f"length {p.length} (allowed: 1..{p.length})")
    try:
        return p.inp.check_codes(x, "x")
    except ValueError as err:
        raise ArrayError(str(err)) from None
