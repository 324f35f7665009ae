"""Number conversions in hardware: the Amaranth counterpart of :func:`generators.numerics.
requantize` (rounding ``trn``/``rnd``/``rnd_conv``, overflow ``wrap``/``sat``).

The functions build combinational expressions; the golden models use ``numerics``, and the RTL
tests check the two agree code for code.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Mux, Value

from .numerics import Format

__all__ = ["rescale", "fit", "convert"]


def _as_signed(v: Value) -> Value:
    """``v`` as a signed value of the same numeric value (unsigned values gain a 0 bit)."""
    return v if v.shape().signed else Cat(v, Const(0, 1)).as_signed()


def rescale(v: Value, shift: int, rounding: str) -> Value:
    """``v * 2**-shift`` rounded (``shift > 0`` drops bits) as a signed value, exact."""
    v = _as_signed(v)
    if shift <= 0:
        return v << (-shift)
    if rounding == "trn":
        return v >> shift
    if rounding == "rnd":  # ties toward +inf
        return (v + (1 << (shift - 1))) >> shift
    if rounding == "rnd_conv":  # ties to even
        q = v >> shift
        rem = v[:shift]
        half = 1 << (shift - 1)
        up = (rem > half) | ((rem == half) & q[0])
        return q + up
    raise ValueError(f"rounding {rounding!r} (allowed: trn, rnd, rnd_conv)")


def fit(v: Value, dst: Format, overflow: str) -> Value:
    """``v`` into ``dst``'s code range: ``wrap`` keeps the low bits, ``sat`` clamps."""
    if overflow == "sat":
        v = _as_signed(v)
        v = Mux(v > dst.max_code, dst.max_code, Mux(v < dst.min_code, dst.min_code, v))
    elif overflow != "wrap":
        raise ValueError(f"overflow {overflow!r} (allowed: wrap, sat)")
    low = v[:dst.width]
    return low.as_signed() if dst.signed else low


def convert(v: Value, src_frac: int, dst: Format, rounding: str, overflow: str) -> Value:
    """Codes with ``src_frac`` fraction bits → codes of ``dst`` (``numerics.requantize``)."""
    return fit(rescale(v, src_frac - dst.frac_bits, rounding), dst, overflow)
