"""Bit-exact golden model of the MAC array (NumPy only; imports no Amaranth).

This is the one model of the unit: the Amaranth-simulator tests, the cocotb benches,
``tensorfab run --backend golden`` and the host's reference board all call :func:`gemm`.

Fixed-point operands and accumulator: the exact integer product, then the accumulator's
overflow rule once. Element floats (``fp8_*``, ``fp6_*``, ``fp4_e2m1``) and MX operands:

- every element decodes exactly to an integer times a power of two (its
  :meth:`~generators.numerics.FloatFormat.as_fixed` code), so a dot product over a block is an
  exact integer sum (the Kulisch-style accumulator of the RTL);
- ``acc`` fixed point (no MX operand): that exact sum, then the overflow rule, as for integers;
- ``acc: fp32`` with an MX operand: per block of 32 along K, the exact sum times the two E8M0
  scales (a power of two) is rounded once to fp32 (nearest even; beyond the range: ±inf) and
  added to the fp32 running sum (IEEE binary32 addition, nearest even), block 0 first, from
  +0.0. A non-MX operand next to an MX one has scale 2**0 in every block;
- ``acc: fp32`` without MX operands: the exact sum over all of K, rounded once;
- NaN and infinity follow IEEE 754: a NaN element or a NaN scale (code 255) in a block, an
  infinity times a zero, or infinities of both signs make that block NaN; an infinity times a
  nonzero finite value is an infinity; the running sum propagates them as fp32 addition does.
  Every NaN result is the quiet NaN ``0x7FC00000``.
"""

from __future__ import annotations

import numpy as np

from ..errors import ArrayError
from ..numerics import E8M0_BIAS, E8M0_NAN, FP32, FloatFormat, MXFormat, exact_matmul, exact_parts
from .params import MacArrayParams

#: The NaN code of every NaN result with ``acc: fp32``.
FP32_NAN = 0x7FC00000
SCALE_ARRAYS = ("a_scale", "b_scale")


def gemm(params: MacArrayParams, a: np.ndarray, b: np.ndarray, a_scale=None,
         b_scale=None) -> np.ndarray:
    """``c`` codes of ``a @ b`` (see the module docstring for the float and MX rules).

    Parameters
    ----------
    a, b:
        Code arrays of shapes ``[M, K]`` and ``[K, N]`` within the ``a``/``b`` formats
        (callers validate with :func:`check_inputs`).
    a_scale, b_scale:
        E8M0 scale codes ``[M, K/32]`` and ``[K/32, N]`` of MX operands.

    Returns
    -------
    ``[M, N]`` codes in the accumulator format (int64, or object for accumulators over 63 bits;
    fp32: the bit patterns as int64).

    Notes
    -----
    With ``wrap`` the result equals accumulating in the accumulator's width at every step;
    with ``sat`` it is the exact sum clamped once, which the RTL matches for K up to ``max_k``.
    """
    if not params.floating and params.acc.kind == "fixed":
        exact = exact_matmul(a, b)
        return params.acc.apply_overflow(exact, params.overflow)
    va, ea = exact_parts(params.a, a)
    vb, eb = exact_parts(params.b, b)
    if params.acc.kind == "fixed":
        # the product's LSB is the accumulator's (check_acc): the exact sum is its code
        return params.acc.apply_overflow(exact_matmul(va, vb), params.overflow)
    return _fp32_gemm(params, a, b, va, vb, ea + eb, a_scale, b_scale)


def _signature(fmt, codes, v) -> np.ndarray:
    """Each element as ±1 (nonzero finite), 0, ±inf or NaN: a float64 dot product of these
    follows IEEE's special-value rules for the real one."""
    sig = np.sign(v).astype(np.float64)
    el = fmt.element if isinstance(fmt, MXFormat) else fmt
    if isinstance(el, FloatFormat):
        neg = (np.asarray(codes) >> (el.width - 1)) & 1
        sig = np.where(el.is_inf(codes), np.where(neg == 1, -np.inf, np.inf), sig)
        sig = np.where(el.is_nan(codes), np.nan, sig)
    return sig


def _fp32_gemm(params, a, b, va, vb, e0: int, a_scale, b_scale) -> np.ndarray:
    m, k = va.shape
    n = vb.shape[1]
    blk = 32 if params.mx else k
    nblk = k // blk
    sa = (np.full((m, nblk), E8M0_BIAS, dtype=np.int64) if a_scale is None
          else np.asarray(a_scale, dtype=np.int64))
    sb = (np.full((nblk, n), E8M0_BIAS, dtype=np.int64) if b_scale is None
          else np.asarray(b_scale, dtype=np.int64))
    siga = _signature(params.a, a, va)
    sigb = _signature(params.b, b, vb)
    total = np.zeros((m, n), dtype=np.float32)
    with np.errstate(all="ignore"):
        for t in range(nblk):
            ks = slice(t * blk, (t + 1) * blk)
            p = exact_matmul(va[:, ks], vb[ks, :])
            x = (sa[:, t, None] - E8M0_BIAS) + (sb[None, t, :] - E8M0_BIAS)
            neg = (p < 0).astype(np.int64)
            mag = np.where(neg == 1, -p, p)
            codes = FP32.encode(neg, mag, e0 + x, saturate=False)
            val = codes.astype(np.uint32).view(np.float32)
            # special values: an IEEE dot product of the signatures, 32 products at a time
            spec = np.zeros((m, n), dtype=np.float64)
            for c0 in range(ks.start, ks.stop, 32):
                cs = slice(c0, min(c0 + 32, ks.stop))
                spec = spec + (siga[:, cs, None] * sigb[None, cs, :]).sum(axis=1)
            val = np.where(np.isinf(spec), spec.astype(np.float32), val)
            nan = np.isnan(spec) | (sa[:, t, None] == E8M0_NAN) | (sb[None, t, :] == E8M0_NAN)
            val = np.where(nan, np.float32(np.nan), val)
            total = (total + val).astype(np.float32)
    out = total.view(np.uint32).astype(np.int64)
    return np.where(np.isnan(total), FP32_NAN, out)


def check_inputs(params: MacArrayParams, arrays: dict) -> tuple:
    """Validate a ``run`` input set ``{'a': [M,K], 'b': [K,N]}`` (MX operands: with
    ``a_scale`` [M, K/32] / ``b_scale`` [K/32, N]); raise ``ArrayError``.

    Returns ``(a, b)``, or ``(a, b, a_scale, b_scale)`` with an MX operand (``None`` for a
    non-MX operand's scale)."""
    need = ["a", "b"] + [s for s, f in zip(SCALE_ARRAYS, (params.a, params.b), strict=True)
                         if f.kind == "mx"]
    takes = "a [M,K], b [K,N]" + "".join(
        f", {s} [{'M, K/32' if s == 'a_scale' else 'K/32, N'}]" for s in need[2:])
    extra = sorted(set(arrays) - set(need))
    missing = [name for name in need if name not in arrays]
    if missing:
        raise ArrayError(f"missing array {missing[0]!r} (mac_array needs: {takes})")
    if extra:
        raise ArrayError(f"unexpected array {extra[0]!r} (mac_array takes: {takes})")
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
    k = a.shape[1]
    if params.overflow == "sat" and params.acc.kind == "fixed" and k > params.max_k:
        raise ArrayError(
            f"a: K = {k} exceeds this array's max_k = {params.max_k} for overflow: sat "
            f"(allowed: K <= {params.max_k}; raise max_k in the config)")
    if params.acc.kind != "fixed" and not params.mx and k > params.max_k:
        raise ArrayError(
            f"a: K = {k} exceeds this array's max_k = {params.max_k}, the longest exact sum "
            f"before the fp32 rounding (allowed: K <= {params.max_k}; raise max_k)")
    if params.mx and k % 32:
        fmt = params.a if params.a.kind == "mx" else params.b
        pad = -(-k // 32) * 32
        raise ArrayError(f"a: K = {k} is not a multiple of {fmt}'s block size 32 (padding "
                         f"rule: pad a's columns and b's rows with zero codes to K = {pad}, "
                         "which leaves every dot product unchanged)")
    try:
        a = params.a.check_codes(a, "a")
        b = params.b.check_codes(b, "b")
    except ValueError as err:
        raise ArrayError(str(err)) from None
    if params.acc.kind == "fixed":
        for name, fmt, c in (("a", params.a, a), ("b", params.b, b)):
            if isinstance(fmt, FloatFormat):
                bad = fmt.is_nan(c) | fmt.is_inf(c)
                if bad.any():
                    i, j = (int(v) for v in np.argwhere(bad)[0])
                    what = "NaN" if fmt.is_nan(c[i, j]) else "an infinity"
                    raise ArrayError(f"{name}: code {int(c[i, j])} at index ({i}, {j}) is "
                                     f"{what} in {fmt}, which acc {params.acc} cannot hold "
                                     "(allowed: finite codes, or acc: fp32)")
    if not params.mx:
        return a, b
    scales = []
    for name, fmt, want in (("a_scale", params.a, (a.shape[0], k // 32)),
                            ("b_scale", params.b, (k // 32, b.shape[1]))):
        if fmt.kind != "mx":
            scales.append(None)
            continue
        s = arrays[name]
        if tuple(np.shape(s)) != want:
            operand = "a [M,K]" if name == "a_scale" else "b [K,N]"
            raise ArrayError(f"{name}: shape {tuple(np.shape(s))} does not fit {operand} of "
                             f"shape {a.shape if name == 'a_scale' else b.shape} in {fmt} "
                             f"(allowed: {want}, one E8M0 code per 32 elements along K)")
        try:
            scales.append(fmt.check_scales(s, name))
        except ValueError as err:
            raise ArrayError(str(err)) from None
    return a, b, scales[0], scales[1]
