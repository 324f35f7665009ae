"""A product wider than one hard multiplier: on one hard multiplier and LUT logic
(``mult_bits <= 17``, :func:`split_product`), or on registered hard multipliers, one per
partial product, summed over a pipeline stage (:func:`wide_product`).

:class:`~.rtl.RequantLane` multiplies a signed operand ``a`` of up to 32 bits (``double``:
``x << left`` in int32; ``single``: ``x``) by the stored multiplier ``b`` (unsigned,
``mult_bits - 1`` bits). As one ``*`` that takes two 18 x 18 multipliers (ECP5 ``MULT18X18D``)
as soon as ``a`` is wider than 18 bits. With a narrow multiplier (``mult_bits <= 17``,
:data:`~.params.SPLIT_MAX_MULT_BITS`) the product is split instead, exactly::

    a = a_hi * 2**18 + a_lo        (a_lo = a[:18] unsigned, a_hi = a[18:] signed)
    a * b = a_hi * b * 2**18 + a_lo * b

``a_lo * b`` is one ``*`` of two unsigned operands of at most 18 bits: one hard multiplier
(unsigned 18 x 18 on ECP5; 19 x 17 signed, inside DSP48E1's 25 x 18), emitted as a
:func:`generators.hardmul.mul_reg` module so a flow can put its registers inside the cell.
``a_hi * b`` (at most 14 x 16 bits) is LUT logic with no ``*`` in it: radix-4 Booth partial
products of the operand with fewer digits (:func:`booth_terms`), summed by two-operand adders
whose results are ``keep`` wires (:func:`add_terms`), so Yosys maps each to one carry chain
rather than merging them into a carry-save tree of full adders (14 x 15 bits on ECP5: 199
LUT4s and 72 CCU2Cs kept, 616 LUT4s and 15 CCU2Cs merged).

Pipeline (:func:`split_product`), every register under the lane's enable: the operands'
registers (the caller's, and the multiplier's own), then the hard product beside the partial
products reduced to at most two sums, then the last sums and the hard product's upper bits
into the product register: one stage more than the single ``*``.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned

from ..hardmul import mul_reg
from .params import DSP_BITS


def booth_digits(width: int, is_signed: bool) -> int:
    """Radix-4 Booth digits of a ``width``-bit operand (an unsigned one is recoded as a signed
    one bit wider)."""
    return (width + (0 if is_signed else 1) + 1) // 2


def booth_terms(m: Module, x, y, name: str) -> list[tuple]:
    """Radix-4 Booth partial products of ``x * y`` (``x`` recoded, ``y`` the multiplicand, any
    signedness): ``(value, shift)`` pairs whose ``sum(value << shift)`` is ``x * y``.

    Digit ``i`` is ``d = -2*x[2i+1] + x[2i] + x[2i-1]`` (``x[-1] = 0``) in -2..2; its row is
    ``|d| * y`` or, when ``x[2i+1]`` is set (``d`` negative, or 0 from ``111``),
    ``~(|d| * y)`` plus one at bit ``2i``: that one is put into the free low bits of the next
    row (shifted two places more), the last one is a term of its own."""
    xs = x.shape()
    n = booth_digits(xs.width, xs.signed)
    xe = Signal(signed(2 * n), name=f"{name}_x")
    m.d.comb += xe.eq(x)
    ys = y.shape()
    terms, negs = [], []
    for i in range(n):
        lo = xe[2 * i - 1] if i else Const(0, 1)
        mid, hi = xe[2 * i], xe[2 * i + 1]
        one = Signal(name=f"{name}_one{i}")
        two = Signal(name=f"{name}_two{i}")
        m.d.comb += [one.eq(mid ^ lo), two.eq((hi & ~mid & ~lo) | (~hi & mid & lo))]
        sel = Signal(_wider(ys, 1), name=f"{name}_sel{i}")
        m.d.comb += sel.eq(Mux(one, y, 0) | Mux(two, y << 1, 0))
        # the top digit of an unsigned x is never negative (its top bit is the zero extension)
        negative = xs.signed or i < n - 1
        row = Signal(signed(sel.shape().width + (0 if ys.signed else 1)), name=f"{name}_row{i}")
        if negative:
            neg = Signal(name=f"{name}_neg{i}")
            m.d.comb += [neg.eq(hi), row.eq(Mux(neg, ~sel.as_signed() if ys.signed else
                                                ~Cat(sel, Const(0, 1)).as_signed(), sel))]
        else:
            neg = None
            m.d.comb += row.eq(sel)
        if i and negs[-1] is not None:
            terms.append((Cat(negs[-1], Const(0, 1), row).as_signed(), 2 * i - 2))
        else:
            terms.append((row, 2 * i))
        negs.append(neg)
    if negs[-1] is not None:
        terms.append((negs[-1], 2 * n - 2))
    return terms


def _wider(shape, extra: int):
    """``shape`` ``extra`` bits wider, same signedness."""
    return signed(shape.width + extra) if shape.signed else unsigned(shape.width + extra)


def add_terms(m: Module, t1: tuple, t2: tuple, name: str) -> tuple:
    """``(value, shift)`` of the sum of two terms: the bits of the lower term below the
    upper one pass through, one adder (its result a ``keep`` wire) takes the rest."""
    (v1, s1), (v2, s2) = sorted((t1, t2), key=lambda t: t[1])
    signed1 = v1.shape().signed
    d = s2 - s1
    through = min(d, len(v1) - (1 if signed1 else 0))
    upper = v1[through:].as_signed() if signed1 else v1[through:]
    v2 = v2 << (d - through)
    if len(upper) == 0:
        high = v2
    else:
        total = upper + v2
        high = Signal(total.shape(), name=name, attrs={"keep": 1})
        m.d.comb += high.eq(total)
    value = Cat(v1[:through], high)
    return (value.as_signed() if high.shape().signed else value), s1


def reduce_terms(m: Module, terms: list[tuple], stop: int, name: str) -> list[tuple]:
    """Levels of pairwise sums of neighbouring terms (by shift) until at most ``stop``
    remain."""
    terms = sorted(terms, key=lambda t: t[1])
    level = 0
    while len(terms) > stop:
        nxt = [add_terms(m, terms[i], terms[i + 1], f"{name}_s{level}_{i // 2}")
               for i in range(0, len(terms) - 1, 2)]
        if len(terms) % 2:
            nxt.append(terms[-1])
        terms = nxt
        level += 1
    return terms


def split_product(m: Module, platform, reg, en, a_now, b_now, a_q, b_q, width: int,
                  name: str) -> Signal:
    """``a * b`` in a register of ``width`` bits (signed), three enabled cycles after
    ``a_now``/``b_now`` (``a`` signed, wider than :data:`DSP_BITS`; ``b`` unsigned, at most
    :data:`DSP_BITS` bits on ECP5, 17 for one DSP48E1).

    ``a_q``/``b_q`` are the caller's registers of the same operands (one cycle after):
    the LUT part starts from them, the hard multiplier from ``a_now[:18]``/``b_now`` (its own
    operand registers). ``reg(shape, value, name)`` makes a register under the enable."""
    lo = DSP_BITS
    a_hi = a_q[lo:].as_signed()
    plo = Signal(unsigned(lo + len(b_now)), name=f"{name}_lo")
    mul_reg(m, platform, a_now[:lo], b_now, en, plo, f"{name}_mul")
    # recode the operand with fewer Booth digits (a tie: the wider one, for narrower rows)
    ha, hb = (len(a_hi), True), (len(b_q), False)
    if (booth_digits(*ha), -ha[0]) <= (booth_digits(*hb), -hb[0]):
        terms = booth_terms(m, a_hi, b_q, f"{name}_pp")
    else:
        terms = booth_terms(m, b_q, a_hi, f"{name}_pp")
    # stage 1 (beside the hard product): the rows, reduced to at most two sums
    sums = [(reg(v.shape(), v, f"{name}_hi{i}"), s)
            for i, (v, s) in enumerate(reduce_terms(m, terms, 2, f"{name}_r"))]
    # stage 2: the last sum, into the upper bits of the hard product
    (hi, shift), = reduce_terms(m, sums, 1, f"{name}_t")
    value, _ = add_terms(m, (plo, 0), (hi, lo + shift), f"{name}_sum")
    return reg(signed(width), value, name)


def hard_partials(m: Module, platform, en, a_now, b_now, name: str) -> list[tuple]:
    """The partial products of ``a * b`` on hard multipliers (``a`` signed, ``b`` unsigned,
    either wider than :data:`DSP_BITS`), two enabled cycles after ``a_now``/``b_now``:
    ``(product, weight)`` pairs whose ``sum(product << weight)`` is ``a * b``.

    An operand wider than :data:`DSP_BITS` is split as ``v = v_hi * 2**18 + v_lo`` (``v_lo =
    v[:18]`` unsigned, ``v_hi = v[18:]``, signed for ``a``), so every part fits one
    ``MULT18X18D`` (18 x 18, each operand signed or unsigned); each partial product is one
    :func:`generators.hardmul.mul_reg` module (its operand and product registers inside the
    cell on ECP5). With both operands split the weights are 0, 18, 18 and 36, and the weight-0
    product is exactly 36 bits wide, so the weight-0 and weight-36 products do not overlap."""

    def parts(v, is_signed):
        if len(v) <= DSP_BITS:
            return [(v, 0)]
        hi = v[DSP_BITS:]
        return [(v[:DSP_BITS], 0), (hi.as_signed() if is_signed else hi, DSP_BITS)]

    out = []
    for i, (av, wa) in enumerate(parts(a_now, True)):
        for j, (bv, wb) in enumerate(parts(b_now, False)):
            width = len(av) + len(bv)
            shape = signed(width) if av.shape().signed or bv.shape().signed \
                else unsigned(width)
            p = Signal(shape, name=f"{name}_p{i}{j}")
            mul_reg(m, platform, av, bv, en, p, f"{name}_mul{i}{j}")
            out.append((p, wa + wb))
    return out


def wide_product(m: Module, platform, reg, en, a_now, b_now, scale: int, nudge,
                 name: str) -> tuple:
    """``a * b * 2**scale + nudge`` over the hard multipliers of :func:`hard_partials`, with
    no more than one wide carry chain per stage: three enabled cycles after ``a_now``/
    ``b_now``, as ``(base, mid)`` registered two cycles after them, to be added by the caller
    (``base + (mid << (18 + scale))``) into its next register.

    Stage 1 (after the hard products): ``base`` is the weight-0 and weight-36 products side by
    side (they do not overlap: concatenated, no adder) shifted by ``scale``, plus ``nudge``
    (one carry chain); ``mid`` is the sum of the weight-18 products (one carry chain, in
    parallel)."""
    terms = hard_partials(m, platform, en, a_now, b_now, name)
    by_weight = {}
    for v, w in terms:
        by_weight.setdefault(w, []).append(v)
    (low,) = by_weight.get(0)
    top = by_weight.get(2 * DSP_BITS)
    if top:
        assert len(low) == 2 * DSP_BITS
        low = Cat(low, top[0]).as_signed()
    mids = by_weight.get(DSP_BITS, [])
    base = reg(signed(64), (low << scale) + nudge, f"{name}_base")
    if len(mids) == 2:
        msum = mids[0] + mids[1]
    else:
        (msum,) = mids
    mid = reg(signed(len(msum) + 1), msum, f"{name}_mid")
    return base, mid
