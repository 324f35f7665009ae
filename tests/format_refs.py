"""Exact references for the float and MX formats, written apart from generators.numerics:
values from the bit fields (Fractions), rounding to a float format from an exact Fraction, and
the MAC array's fp32 block dot product (integers and Fractions only)."""

from __future__ import annotations

import math
from fractions import Fraction

FP32_NAN = 0x7FC00000
_FIELDS = {  # name: (exp_bits, man_bits, bias, special)
    "fp8_e4m3": (4, 3, 7, "fn"), "fp8_e5m2": (5, 2, 15, "ieee"), "fp6_e3m2": (3, 2, 3, "none"),
    "fp6_e2m3": (2, 3, 1, "none"), "fp4_e2m1": (2, 1, 1, "none"), "fp32": (8, 23, 127, "ieee"),
}


def ref_parts(code: int, name: str):
    """``(n, e)`` with value ``n * 2**e`` (n a signed int), or ``'nan'``, ``'+inf'``,
    ``'-inf'``, from the bit fields. ``int8``/``mxint8``-style names: see :func:`ref_elem`."""
    eb, mb, bias, special = _FIELDS[name]
    s = code >> (eb + mb)
    e = (code >> mb) & ((1 << eb) - 1)
    m = code & ((1 << mb) - 1)
    top = (1 << eb) - 1
    if special == "ieee" and e == top:
        return "nan" if m else ("-inf" if s else "+inf")
    if special == "fn" and e == top and m == (1 << mb) - 1:
        return "nan"
    n = m if e == 0 else (m | (1 << mb))
    ex = (1 if e == 0 else e) - bias - mb
    return (-n if s else n), ex


def ref_elem(code: int, fmt: str):
    """An operand element of format text ``fmt`` as ``(n, e)`` or a special string."""
    if fmt.startswith("mx"):
        fmt = {"mxfp8_e4m3": "fp8_e4m3", "mxfp8_e5m2": "fp8_e5m2", "mxfp6_e3m2": "fp6_e3m2",
               "mxfp6_e2m3": "fp6_e2m3", "mxfp4": "fp4_e2m1", "mxint8": "mxint8"}[fmt]
    if fmt == "mxint8":
        return code, -6
    if fmt.startswith("int"):
        return code, 0
    return ref_parts(code, fmt)


def ref_value(code: int, name: str) -> Fraction | None:
    p = ref_parts(code, name)
    if isinstance(p, str):
        return None
    return Fraction(p[0]) * Fraction(2) ** p[1]


def ref_round_float(v: Fraction, name: str = "fp32") -> Fraction | None:
    """``v`` rounded to the float format (nearest, ties to even), exactly; ``None`` beyond the
    largest finite value."""
    eb, mb, bias, special = _FIELDS[name]
    if v == 0:
        return Fraction(0)
    a = abs(v)
    ex = a.numerator.bit_length() - a.denominator.bit_length()
    while Fraction(2) ** ex > a:
        ex -= 1
    while Fraction(2) ** (ex + 1) <= a:
        ex += 1
    q = Fraction(2) ** (max(ex, 1 - bias) - mb)
    t = a / q
    fl = math.floor(t)
    r = fl + (1 if (t - fl > Fraction(1, 2) or (t - fl == Fraction(1, 2) and fl % 2)) else 0)
    top = (1 << eb) - 1
    if special == "ieee":
        emax_f, mmax = top - 1, (1 << mb) - 1
    elif special == "fn":
        emax_f, mmax = top, (1 << mb) - 2
    else:
        emax_f, mmax = top, (1 << mb) - 1
    maxv = (1 + Fraction(mmax, 1 << mb)) * Fraction(2) ** (emax_f - bias)
    out = r * q
    if out > maxv:
        return None
    return out if v > 0 else -out


def fp32_code(v) -> int:
    """The binary32 code of an exact value (Fraction), ``'nan'`` or ±inf floats."""
    import struct

    if isinstance(v, float) and math.isnan(v):
        return FP32_NAN
    return struct.unpack("<I", struct.pack("<f", float(v)))[0]


def _add_special(acc, v):
    """IEEE addition where either side is a special float (inf/nan) or a Fraction."""
    x = acc if isinstance(acc, float) else 0.0
    y = v if isinstance(v, float) else 0.0
    return x + y


def ref_block_sum(a_codes, b_codes, fa: str, fb: str, x: int):
    """The exact block dot product times ``2**x``, rounded once to fp32: a Fraction, or a
    float inf/nan."""
    terms = []
    special = []
    for ca, cb in zip(a_codes, b_codes, strict=True):
        pa, pb = ref_elem(int(ca), fa), ref_elem(int(cb), fb)
        if isinstance(pa, str) or isinstance(pb, str):
            fa_ = float(pa) if isinstance(pa, str) else float(pa[0])
            fb_ = float(pb) if isinstance(pb, str) else float(pb[0])
            special.append(fa_ * fb_)        # nan, inf*0 = nan, inf*finite = ±inf
        else:
            terms.append((pa[0] * pb[0], pa[1] + pb[1]))
    if special:
        s = 0.0
        for v in special:
            s += v
        if math.isnan(s) or math.isinf(s):
            return s
    if not terms:
        return Fraction(0)
    e0 = min(e for _, e in terms)
    total = sum(n << (e - e0) for n, e in terms)
    r = ref_round_float(Fraction(total) * Fraction(2) ** (e0 + x))
    if r is None:
        return math.copysign(math.inf, total)
    return r


def ref_dot_fp32(a_row, b_col, fa: str, fb: str, a_scales=None, b_scales=None,
                 block: int | None = None) -> int:
    """One output of the MAC array with ``acc: fp32``: per block, the exact sum times the
    scales rounded once to fp32, added to the fp32 running sum (from +0, rounding each add);
    the fp32 code back (NaN: 0x7FC00000)."""
    k = len(a_row)
    block = block or k
    acc: Fraction | float = Fraction(0)
    for t in range(k // block):
        sa = 127 if a_scales is None else int(a_scales[t])
        sb = 127 if b_scales is None else int(b_scales[t])
        sl = slice(t * block, (t + 1) * block)
        if sa == 255 or sb == 255:
            v: Fraction | float = math.nan
        else:
            v = ref_block_sum(a_row[sl], b_col[sl], fa, fb, sa + sb - 254)
        if isinstance(acc, float) or isinstance(v, float):
            acc = _add_special(acc, v)
        else:
            r = ref_round_float(acc + v)
            acc = r if r is not None else math.copysign(math.inf, acc + v)
    return fp32_code(acc)
