"""Combinational IEEE binary32 pieces of the MAC array (Amaranth): rounding an exact
fixed-point sum to fp32 and adding two fp32 values, both round to nearest, ties to even, with
subnormals, overflow to infinity and NaN/infinity rules as IEEE 754 (every NaN result is the
quiet NaN ``0x7FC00000``, as the golden model's)."""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed

NAN, PINF, NINF = 0x7FC00000, 0x7F800000, 0xFF800000


def _lzc(m: Module, value, name: str) -> Signal:
    """Leading zeros of an unsigned value (its width when zero): a tree of halves, so the
    logic depth grows with log2 of the width."""
    W = len(value)
    lz = Signal(range(W + 1), name=name)
    m.d.comb += lz.eq(_lzc_tree(m, value, name))
    return lz


def _lzc_tree(m: Module, value, name: str):
    W = len(value)
    if W == 1:
        return ~value[0]
    hi_w = W // 2
    hi, lo = value[W - hi_w:], value[:W - hi_w]
    zhi = _lzc_tree(m, hi, f"{name}h")
    zlo = _lzc_tree(m, lo, f"{name}l")
    out = Signal(range(W + 1), name=f"{name}_{W}")
    m.d.comb += out.eq(Mux(hi != 0, zhi, hi_w + zlo))
    return out


def _shr_sticky(m: Module, value, d, width: int, name: str):
    """``value >> d`` with the bits shifted out ORed into bit 0 (``d`` clamped to
    ``width``)."""
    W = len(value)
    out = Signal(W, name=name)
    lost = Signal(name=f"{name}_lost")
    dd = Signal(range(width + 1), name=f"{name}_d")
    if (1 << len(d)) - 1 > width:
        m.d.comb += dd.eq(Mux(d > width, width, d))
    else:   # (a comparison that is always false would be a Verilator warning)
        m.d.comb += dd.eq(d)
    mask = Signal(W, name=f"{name}_mask")
    m.d.comb += [mask.eq(~(Const((1 << W) - 1, W) << dd)),
                 lost.eq((value & mask) != 0),
                 out.eq((value >> dd) | lost)]
    return out


def _pack(m: Module, sign, e_b, norm, name: str):
    """The fp32 code of ``(-1)**sign * norm * 2**(e_b - 127 - (len(norm) - 1))`` for ``norm``
    with its leading one at the top bit (or zero), rounded to nearest even, with subnormals
    (``e_b <= 0``) and overflow (-> infinity). ``e_b``: a signed biased exponent."""
    P = len(norm)
    assert P >= 26
    d = Signal(range(P + 3), name=f"{name}_d")   # extra right shift into the subnormal range
    m.d.comb += d.eq(Mux(e_b < 1, Mux(e_b < 1 - (P + 2), P + 2, 1 - e_b), 0))
    den = _shr_sticky(m, norm, d, P + 2, f"{name}_den")
    mant = den[P - 24:P]
    guard = den[P - 25]
    sticky = den[:P - 25].any()
    r = Signal(25, name=f"{name}_r")
    m.d.comb += r.eq(mant + (guard & (sticky | mant[0])))
    eb1 = Signal(signed(len(e_b) + 1), name=f"{name}_eb1")
    m.d.comb += eb1.eq(Mux(e_b < 1, 0, e_b - 1))
    mag = Signal(signed(len(eb1) + 25), name=f"{name}_mag")
    m.d.comb += mag.eq((eb1 << 23) + r)
    code = Signal(32, name=f"{name}_code")
    m.d.comb += code.eq(Mux(mag >= PINF, Cat(Const(PINF, 31), sign), Cat(mag[:31], sign)))
    return code


def fp32_from_fixed(m: Module, value, frac_bits: int, flags, name: str, exp_offset=None):
    """The fp32 code of a signed fixed-point ``value`` (``frac_bits`` fraction bits) times
    ``2**exp_offset`` (a signed value; ``None``: 0), rounded once (nearest even); ``flags``
    (NaN, +inf, -inf) override it (NaN, or both infinities: NaN). A zero sum is ``+0``."""
    W = len(value)
    sign = value[-1]
    mag = Signal(W, name=f"{name}_abs")
    m.d.comb += mag.eq(Mux(sign, -value, value))
    lz = _lzc(m, mag, f"{name}_lz")
    P = max(W, 26)
    norm = Signal(P, name=f"{name}_norm")
    m.d.comb += norm.eq((mag << lz) << (P - W))
    width = max(W.bit_length(), frac_bits.bit_length()) + 12
    e_b = Signal(signed(width), name=f"{name}_eb")
    off = 0 if exp_offset is None else exp_offset
    m.d.comb += e_b.eq((W - 1) - lz - frac_bits + 127 + off)
    packed = _pack(m, sign, e_b, norm, name)
    code = Signal(32, name=f"{name}_out")
    nan = flags[0] | (flags[1] & flags[2])
    with m.If(nan):
        m.d.comb += code.eq(NAN)
    with m.Elif(flags[1]):
        m.d.comb += code.eq(PINF)
    with m.Elif(flags[2]):
        m.d.comb += code.eq(NINF)
    with m.Elif(mag == 0):
        m.d.comb += code.eq(0)
    with m.Else():
        m.d.comb += code.eq(packed)
    return code


def fp32_add(m: Module, x, y, name: str):
    """The fp32 code of ``x + y`` (fp32 codes), IEEE 754 binary32 addition, round to nearest
    even; ``+0`` for an exact zero sum of opposite signs; NaN as ``0x7FC00000``."""
    ex, ey = x[23:31], y[23:31]
    nan_x = (ex == 255) & (x[:23] != 0)
    nan_y = (ey == 255) & (y[:23] != 0)
    inf_x = (ex == 255) & (x[:23] == 0)
    inf_y = (ey == 255) & (y[:23] == 0)
    # the larger magnitude first
    swap = Signal(name=f"{name}_swap")
    m.d.comb += swap.eq(y[:31] > x[:31])
    big = Signal(32, name=f"{name}_big")
    small = Signal(32, name=f"{name}_small")
    m.d.comb += [big.eq(Mux(swap, y, x)), small.eq(Mux(swap, x, y))]
    eb, es = big[23:31], small[23:31]
    mb = Cat(big[:23], eb != 0)            # 24 bits with the hidden one
    ms = Cat(small[:23], es != 0)
    e_big = Signal(9, name=f"{name}_ebig")
    e_sml = Signal(9, name=f"{name}_esml")
    m.d.comb += [e_big.eq(Mux(eb == 0, 1, eb)), e_sml.eq(Mux(es == 0, 1, es))]
    d = Signal(9, name=f"{name}_dexp")
    m.d.comb += d.eq(e_big - e_sml)
    X = Signal(28, name=f"{name}_X")       # mantissa, 3 guard bits, one bit of headroom
    m.d.comb += X.eq(mb << 3)
    Y = _shr_sticky(m, (ms << 3).as_unsigned()[:28], d, 27, f"{name}_Y")
    sub = big[31] ^ small[31]
    S = Signal(28, name=f"{name}_S")
    m.d.comb += S.eq(Mux(sub, X - Y, X + Y))
    # normalise to the leading one at bit 27 of a 28-bit value (then _pack rounds 24 bits)
    lz = _lzc(m, S, f"{name}_lz")
    norm = Signal(28, name=f"{name}_norm")
    m.d.comb += norm.eq(S << lz)
    e_b = Signal(signed(11), name=f"{name}_eb")
    # S's bit 26 weighs 2**(e_big - 127) (the hidden bit after << 3); bit 27: one more
    m.d.comb += e_b.eq(e_big + 1 - lz)
    packed = _pack(m, big[31], e_b, norm, name)
    code = Signal(32, name=f"{name}_out")
    with m.If(nan_x | nan_y | (inf_x & inf_y & (x[31] != y[31]))):
        m.d.comb += code.eq(NAN)
    with m.Elif(inf_x):
        m.d.comb += code.eq(x)
    with m.Elif(inf_y):
        m.d.comb += code.eq(y)
    with m.Elif(S == 0):
        m.d.comb += code.eq(Mux(x[31] & y[31], 0x80000000, 0))
    with m.Else():
        m.d.comb += code.eq(packed)
    return code
