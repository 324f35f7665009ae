"""Amaranth components of the systolic MAC array.

Both dataflows share the same skeleton:

* one clock enable ``en = ~c_stream.valid | c_stream.ready``: the whole array advances in lock
  step unless an output beat is being held, so back-pressure freezes it and an input idle cycle
  becomes a bubble (an invalid beat) that flows through like data;
* inputs are skewed (lane i of ``a`` delayed by i cycles, lane j of ``b`` by j) so that a beat
  meets its partner at every PE on a diagonal wavefront;
* every PE registers its operands and its product (``prod <= a * b``) before adding, the
  register layout of a pipelined DSP block (A/B, M and P registers); the multiplier and those
  registers form one module of their own in the Verilog (:mod:`generators.hardmul`), so a
  flow can map them onto a hard multiplier's internal registers;
* results leave through a deskew triangle so each ``c_stream`` beat is one whole row.

With the fused requant epilogue the array runs in lock step with it (``lockstep``, see
:mod:`generators.lockstep`): instead of ``en`` each PE row, the input side (skews, flags,
control) and the output side (drain, deskew, output register) advance on their own
registered copy of the enable (made from the epilogue's ``room`` input).

With ``packing`` (:mod:`.packing`) a PE serves a pair of neighbouring columns that share the
``a`` code (:class:`PeOS2`, :class:`PeWS2`): the pair's ``b`` codes are packed into one word at
the top of the column, one wide multiplier makes both products and each lane accumulates its
own (:class:`Lanes`: the split and its sign-borrow correction). A row is then
``params.pcols`` PEs long and column ``j`` of ``c`` is computed at physical column
``params.pcol(j)``; with ``packing: none`` every ``pcol(j) == j`` and the design is the
unpacked one, unchanged.

Float and MX operands (docs/formats.md): a PE decodes each operand into sign, mantissa and
shift (:func:`float_mul_reg`) and adds the aligned exact product into its fixed-point
accumulator; with ``acc: fp32`` each column's exact sum is rounded once at the output; with
MX operands (output stationary) each PE hands its block sums to its row's shared fp32 unit
(:func:`mx_row_unit`), which scales, rounds and accumulates them in fp32.

Cycle behaviour is stated by :class:`.params.MacArrayParams` (``latency`` and
``expected_cycles``) and asserted by the RTL tests.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ..errors import ConfigError
from ..hardmul import leaf, mul_reg
from ..lockstep import ROOM, enables
from . import packing as pk
from .fp32 import fp32_add, fp32_from_fixed
from .params import OUTPUT_STATIONARY, MacArrayParams


def _delay(m: Module, sig, n: int, en, name: str, data: bool = False) -> list:
    """``[sig, sig@1, ..., sig@n]``: registered copies that advance when ``en`` is high.

    ``data`` registers carry no reset (datapath only: smaller netlists, DSP-friendly)."""
    out = [sig]
    for s in range(n):
        reg = Signal.like(sig, name=f"{name}_d{s + 1}", reset_less=data)
        with m.If(en):
            m.d.sync += reg.eq(out[-1])
        out.append(reg)
    return out


def _tag(shape) -> str:
    return f"{'s' if shape.signed else 'u'}{shape.width}"


def _fmt_tag(fmts) -> str:
    """Module-name part for operand formats that are not plain integers (``""`` otherwise)."""
    if fmts is None:
        return ""
    return "_" + "x".join(str(f).replace("_", "") for f in fmts)


def _decode(m: Module, code, fmt, name: str):
    """An operand code as ``(neg, mag, sh)``: the sign, an unsigned magnitude and a left
    shift, with ``(-1)**neg * (mag << sh)`` the code of the element's exact value in
    :func:`~.params.operand_fixed`'s format. Fixed point: the code's sign and magnitude, no
    shift (``sh`` is ``None``). A float ``S.E.M``: ``mag = (E != 0) << M | m``,
    ``sh = max(E, 1) - 1`` (its LSB is the smallest subnormal). NaN/inf codes decode as their
    bit fields say (:func:`_specials` flags them)."""
    if fmt.kind != "float":
        if not fmt.signed:
            return Const(0, 1), code, None
        mag = Signal(fmt.width, name=f"{name}_mag")
        m.d.comb += mag.eq(Mux(code[-1], -code, code))
        return code[-1], mag, None
    mb, eb = fmt.man_bits, fmt.exp_bits
    e = code[mb:mb + eb]
    nz = Signal(name=f"{name}_nz")
    m.d.comb += nz.eq(e != 0)
    mant = Signal(mb + 1, name=f"{name}_mant")
    m.d.comb += mant.eq(Cat(code[:mb], nz))
    sh = Signal(range((1 << eb) - 1), name=f"{name}_sh")
    m.d.comb += sh.eq(Mux(nz, e - 1, 0))
    return code[mb + eb], mant, sh


def _specials(m: Module, code, fmt, name: str):
    """``(nan, inf, zero, sign)`` of an operand code (constants where the format has none)."""
    if fmt.kind != "float":
        zero = Signal(name=f"{name}_zero")
        m.d.comb += zero.eq(code == 0)
        sign = code[-1] if fmt.signed else Const(0, 1)
        return Const(0, 1), Const(0, 1), zero, sign
    mb, eb = fmt.man_bits, fmt.exp_bits
    e, man = code[mb:mb + eb], code[:mb]
    top = (1 << eb) - 1
    nan, inf, zero = (Signal(name=f"{name}_{t}") for t in ("nan", "inf", "zero"))
    m.d.comb += zero.eq((e == 0) & (man == 0))
    if fmt.special == "ieee":
        m.d.comb += [nan.eq((e == top) & (man != 0)), inf.eq((e == top) & (man == 0))]
    elif fmt.special == "fn":
        m.d.comb += nan.eq((e == top) & (man == (1 << mb) - 1))
    return nan, inf, zero, code[mb + eb]


def _lut_mul(m: Module, a, b, name: str):
    """Unsigned ``a * b`` as a sum of partial products (shifted ANDs): a few-bit product
    kept in logic, where synthesis would otherwise spend a hard multiplier on it."""
    if len(a) > len(b):
        a, b = b, a
    out = Signal(len(a) + len(b), name=f"{name}_pp")
    m.d.comb += out.eq(sum(Mux(a[i], b, 0) << i for i in range(len(a))))
    return out


def _reg(m: Module, value, en, name: str):
    """``value`` registered on ``en`` (a constant stays a constant)."""
    if isinstance(value, Const):
        return value
    q = Signal.like(value, name=name, reset_less=True)
    with m.If(en):
        m.d.sync += q.eq(value)
    return q


def float_mul_reg(m: Module, a, b, en, prod: Signal, fmts, name: str,
                  flags: Signal | None = None) -> None:
    """``prod`` becomes the exact product of the element values of codes ``a`` and ``b``
    (formats ``fmts``) in the product's fixed-point format, two enabled cycles after them, as
    :func:`generators.hardmul.mul_reg` times integers. The operands are decoded (sign,
    magnitude, shift) into the first registers; then the magnitudes are multiplied in logic
    (partial products: no hard multiplier), negated when the signs differ and shifted left
    by the sum of the shifts into the product register. ``flags`` (NaN, +inf, -inf of the
    product, IEEE rules) are registered beside it."""
    fa, fb = fmts
    na_, ma, ha = _decode(m, a, fa, f"{name}_a")
    nb_, mb_, hb = _decode(m, b, fb, f"{name}_b")
    na_, ma = _reg(m, na_, en, f"{name}_a_neg"), _reg(m, ma, en, f"{name}_a_mag")
    nb_, mb_ = _reg(m, nb_, en, f"{name}_b_neg"), _reg(m, mb_, en, f"{name}_b_mag")
    shifts = [_reg(m, h, en, f"{name}_{t}_sh") for h, t in ((ha, "a"), (hb, "b"))
              if h is not None]
    mag = _lut_mul(m, ma, mb_, name)
    pm = Signal(signed(len(mag) + 1), name=f"{name}_pm")
    m.d.comb += pm.eq(Mux(na_ ^ nb_, -mag, mag))
    if not shifts:
        value = pm
    else:
        sh = Signal(range(sum((1 << len(h)) - 1 for h in shifts) + 1), name=f"{name}_sh")
        m.d.comb += sh.eq(sum(shifts))
        value = pm << sh
    with m.If(en):
        m.d.sync += prod.eq(value)
    if flags is not None:
        sp = []
        for code, f, t in ((a, fa, "a"), (b, fb, "b")):
            sp.append([_reg(m, v, en, f"{name}_{t}_{k}") if not isinstance(v, Const) else v
                       for v, k in zip(_specials(m, code, f, f"{name}_{t}"),
                                       ("nan", "inf", "zero", "sign"), strict=True)])
        (nan_a, inf_a, zero_a, s_a), (nan_b, inf_b, zero_b, s_b) = sp
        nan = Signal(name=f"{name}_nan")
        inf = Signal(name=f"{name}_inf")
        m.d.comb += [nan.eq(nan_a | nan_b | (inf_a & zero_b) | (zero_a & inf_b)),
                     inf.eq((inf_a | inf_b) & ~nan)]
        neg = s_a ^ s_b
        with m.If(en):
            m.d.sync += flags.eq(Cat(nan, inf & ~neg, inf & neg))


def _mul(m: Module, platform, a, b, en, prod: Signal, name: str, fmts, flags=None) -> None:
    """The PE's registered multiplier: the hard-multiplier module for integer operands,
    :func:`float_mul_reg` when an operand is a float."""
    if fmts is None:
        mul_reg(m, platform, a, b, en, prod, name)
    else:
        float_mul_reg(m, a, b, en, prod, fmts, name, flags)


class PeOS(wiring.Component):
    """Output-stationary processing element: forwards its operands right and down, multiplies
    them in a registered multiplier and accumulates the product (split accumulator, below);
    the beat that ends a tile captures the total into ``cap_*`` and clears the accumulator.

    ``pv``/``pl``: the beat whose product reaches the adder now is valid / ends its tile.
    """

    def __init__(self, a_shape, b_shape, p_shape, width: int, fmts=None, flags: bool = False):
        self.shapes = (a_shape, b_shape, p_shape, width)
        self.fmts = fmts
        self.flags = flags
        L = width // 2
        super().__init__({
            "en": In(1), "a": In(a_shape), "b": In(b_shape), "pv": In(1), "pl": In(1),
            "a_out": Out(a_shape), "b_out": Out(b_shape),
            "cap_lo": Out(L), "cap_hi": Out(width - L), "cap_cy": Out(1),
            **({"cap_fl": Out(3)} if flags else {}),
        })

    @staticmethod
    def module_name(a_shape, b_shape, p_shape, width: int, fmts=None,
                    flags: bool = False) -> str:
        """The Verilog module of a PE with these shapes (every parameter is in the name)."""
        return (f"tf_pe_os_{_tag(a_shape)}x{_tag(b_shape)}_p{_tag(p_shape)}_w{width}"
                f"{_fmt_tag(fmts)}{'_fl' if flags else ''}")

    def elaborate(self, platform):
        m = Module()
        a_shape, b_shape, p_shape, W = self.shapes
        en = self.en
        a_q = Signal(a_shape, name="a_q", reset_less=True)
        b_q = Signal(b_shape, name="b_q", reset_less=True)
        with m.If(en):
            m.d.sync += [a_q.eq(self.a), b_q.eq(self.b)]
        m.d.comb += [self.a_out.eq(a_q), self.b_out.eq(b_q)]
        prod = Signal(p_shape, name="prod", reset_less=True)
        pf = Signal(3, name="prod_flags") if self.flags else None
        _mul(m, platform, self.a, self.b, en, prod, "mul", self.fmts, pf)
        if self.flags:
            # sticky special-value flags (NaN, +inf, -inf) of the products so far
            fl = Signal(3, name="acc_fl")
            cap_fl = Signal(3, name="cap_fl_q", reset_less=True)
            with m.If(en & self.pv):
                with m.If(self.pl):
                    m.d.sync += [cap_fl.eq(fl | pf), fl.eq(0)]
                with m.Else():
                    m.d.sync += fl.eq(fl | pf)
            m.d.comb += self.cap_fl.eq(cap_fl)
        caps = _split_acc(m, en & self.pv, self.pl, prod, W)
        m.d.comb += [self.cap_lo.eq(caps[0]), self.cap_hi.eq(caps[1]), self.cap_cy.eq(caps[2])]
        return m


def _split_acc(m: Module, step, last, value, W: int, cin=None, tag: str = "") -> tuple:
    """An output-stationary accumulator of ``W`` bits that adds ``value`` (plus the carry
    ``cin``, if given) when ``step``, and on the step that is also ``last`` captures the total
    and clears itself. Returns the captured ``(lo, hi, cy)``.

    The accumulator is kept in two halves, lo (the low L bits) and hi, with the carry out of
    lo added into hi one cycle later: each adder's carry chain is half the width. The sum is
    always (hi << L) + lo + (cy << L) modulo 2**W; the pending carry of the last product is
    captured with the halves and added back after the drain.
    """
    L = W // 2
    H = W - L
    pw = Signal(W, name=f"pw{tag}")  # the product, extended to W bits
    lo = Signal(L, name=f"acc_lo{tag}")
    hi = Signal(H, name=f"acc_hi{tag}")
    cy = Signal(name=f"acc_cy{tag}")
    s_lo = Signal(L + 1, name=f"sum_lo{tag}")
    s_hi = Signal(H, name=f"sum_hi{tag}")
    m.d.comb += [
        pw.eq(value),
        # with cin: lo + pw[:L] + cin as one adder, cin the carry into bit 0 (as cy below)
        s_lo.eq(lo + pw[:L] if cin is None else (Cat(Const(1, 1), lo) + Cat(cin, pw[:L]))[1:]),
        # hi + pw[L:] + cy as one adder: cy enters as the carry into bit 0
        s_hi.eq((Cat(Const(1, 1), hi) + Cat(cy, pw[L:]))[1:]),
    ]
    cap_lo = Signal(L, name=f"cap_lo{tag}_q", reset_less=True)
    cap_hi = Signal(H, name=f"cap_hi{tag}_q", reset_less=True)
    cap_cy = Signal(name=f"cap_cy{tag}_q", reset_less=True)
    with m.If(step):
        with m.If(last):
            m.d.sync += [cap_lo.eq(s_lo[:L]), cap_hi.eq(s_hi), cap_cy.eq(s_lo[L]),
                         lo.eq(0), hi.eq(0), cy.eq(0)]
        with m.Else():
            m.d.sync += [lo.eq(s_lo[:L]), hi.eq(s_hi), cy.eq(s_lo[L])]
    return cap_lo, cap_hi, cap_cy


class Lanes:
    """How a packed PE's wide product ``P = a * (w0 + w1 * 2**S)`` splits into the two
    products (see :mod:`.packing`: the low field, and the high field whose sign borrow enters
    lane 1's adder as its carry)."""

    def __init__(self, p: MacArrayParams):
        self.S = pk.lane_shift(p.a, p.b)
        self.signed = pk.product_signed(p.a, p.b)
        self.b_shape = signed(pk.packed_b_width(p.a, p.b))
        self.p_shape = signed(pk.packed_p_width(p.a, p.b))

    @property
    def tag(self) -> str:
        return f"S{self.S}{_tag(self.b_shape)}{_tag(self.p_shape)}"

    def pack(self, m: Module, w0, w1, name: str):
        """``w0 + w1 * 2**S`` as a signal of the packed port: ``w0``'s field, and ``w1``
        less ``w0``'s sign (a narrow adder; ``w0``'s field is only wired)."""
        S = self.S
        word = Signal(self.b_shape, name=name)
        low = Signal(S, name=f"{name}_lo")  # w0 extended to S bits (S > its width)
        up = Signal(signed(len(word) - S), name=f"{name}_hi")
        sgn = w0.shape().signed
        m.d.comb += [low.eq(w0), up.eq(w1 - w0[-1] if sgn else w1), word.eq(Cat(low, up))]
        return word

    def split(self, m: Module, prod, W: int):
        """``(lane0, lane1, cin)``: the two products as ``W``-bit values, less lane 1's
        borrow ``cin`` (``lane1 + cin`` is the second product)."""
        S = self.S
        l0 = Signal(W, name="lane0")
        l1 = Signal(W, name="lane1")
        low = prod[:S].as_signed() if self.signed else prod[:S]
        m.d.comb += [l0.eq(low), l1.eq(prod[S:].as_signed())]
        cin = prod[S - 1] if self.signed else None
        return l0, l1, cin


class PeOS2(wiring.Component):
    """Output-stationary PE of a column pair (``packing``): forwards ``a`` right and the packed
    ``b`` word down, makes both products in one registered wide multiplier and accumulates
    each lane as :class:`PeOS` does (lane 1 with its borrow as carry-in)."""

    def __init__(self, a_shape, lanes: Lanes, width: int):
        self.shapes = (a_shape, lanes, width)
        L = width // 2
        caps = {f"cap_{t}{k}": Out(w) for k in (0, 1)
                for t, w in (("lo", L), ("hi", width - L), ("cy", 1))}
        super().__init__({
            "en": In(1), "a": In(a_shape), "b": In(lanes.b_shape), "pv": In(1), "pl": In(1),
            "a_out": Out(a_shape), "b_out": Out(lanes.b_shape), **caps,
        })

    @staticmethod
    def module_name(a_shape, lanes: Lanes, width: int) -> str:
        return f"tf_pe_os2_{_tag(a_shape)}x{lanes.tag}_w{width}"

    def elaborate(self, platform):
        m = Module()
        a_shape, lanes, W = self.shapes
        en = self.en
        a_q = Signal(a_shape, name="a_q", reset_less=True)
        b_q = Signal(lanes.b_shape, name="b_q", reset_less=True)
        with m.If(en):
            m.d.sync += [a_q.eq(self.a), b_q.eq(self.b)]
        m.d.comb += [self.a_out.eq(a_q), self.b_out.eq(b_q)]
        prod = Signal(lanes.p_shape, name="prod", reset_less=True)
        mul_reg(m, platform, self.a, self.b, en, prod, "mul")
        l0, l1, cin = lanes.split(m, prod, W)
        for k, (value, c) in enumerate(((l0, None), (l1, cin))):
            caps = _split_acc(m, en & self.pv, self.pl, value, W, cin=c, tag=str(k))
            for t, sig in zip(("lo", "hi", "cy"), caps, strict=True):
                m.d.comb += getattr(self, f"cap_{t}{k}").eq(sig)
        return m


class PeMX(wiring.Component):
    """Output-stationary PE with an MX operand: the exact block sum in a fixed-point
    accumulator (the product's LSB, guard bits for 32 products); at each block's end (``pb``)
    it registers the sum, the scale exponent (``Xa - 127 + Xb - 127``) and the NaN/inf flags
    as ``blk``, ``blk_x``, ``blk_fl`` for its row's fp32 unit (:func:`mx_row_unit`).

    Operand lanes of an MX format carry ``Cat(code, scale)``; a non-MX operand's scale is
    ``2**0``. ``fmts``: the operand formats (MX or not); ``width``: the block accumulator's.
    """

    def __init__(self, a_shape, b_shape, p_shape, width: int, fmts):
        self.shapes = (a_shape, b_shape, p_shape, width)
        self.fmts = fmts
        super().__init__({
            "en": In(1), "a": In(a_shape), "b": In(b_shape), "pv": In(1), "pb": In(1),
            "a_out": Out(a_shape), "b_out": Out(b_shape),
            "blk": Out(signed(width)), "blk_x": Out(signed(10)), "blk_fl": Out(3),
        })

    @staticmethod
    def module_name(a_shape, b_shape, p_shape, width: int, fmts) -> str:
        return (f"tf_pe_mx_{_tag(a_shape)}x{_tag(b_shape)}_p{_tag(p_shape)}_w{width}"
                f"{_fmt_tag(fmts)}")

    @staticmethod
    def _split(lane, fmt):
        """``(element code, element format, scale code)`` of an operand lane."""
        if fmt.kind != "mx":
            return lane, fmt, Const(127, 8)
        w = fmt.width
        el = fmt.element
        code = lane[:w].as_signed() if el.kind == "fixed" and el.signed else lane[:w]
        return code, el, lane[w:w + 8]

    def elaborate(self, platform):
        m = Module()
        a_shape, b_shape, p_shape, W = self.shapes
        fa, fb = self.fmts
        en = self.en
        a_q = Signal(a_shape, name="a_q", reset_less=True)
        b_q = Signal(b_shape, name="b_q", reset_less=True)
        with m.If(en):
            m.d.sync += [a_q.eq(self.a), b_q.eq(self.b)]
        m.d.comb += [self.a_out.eq(a_q), self.b_out.eq(b_q)]
        ca, ea, sa = self._split(self.a, fa)
        cb, eb, sb = self._split(self.b, fb)
        prod = Signal(p_shape, name="prod", reset_less=True)
        pf = Signal(3, name="prod_flags")
        float_mul_reg(m, ca, cb, en, prod, (ea, eb), "mul", pf)
        # the scales travel beside the product (two stages, as the multiplier's)
        x1 = Signal(9, name="x1", reset_less=True)
        x2 = Signal(9, name="x2", reset_less=True)
        n1 = Signal(name="xnan1", reset_less=True)
        n2 = Signal(name="xnan2", reset_less=True)
        with m.If(en):
            m.d.sync += [x1.eq(sa + sb), x2.eq(x1), n1.eq((sa == 255) | (sb == 255)),
                         n2.eq(n1)]
        acc = Signal(signed(W), name="acc")
        fl = Signal(3, name="acc_fl")
        total = Signal(signed(W), name="total")
        m.d.comb += total.eq(acc + prod)
        blk = Signal(signed(W), name="blk", reset_less=True)
        bfl = Signal(3, name="blk_fl", reset_less=True)
        bx = Signal(signed(10), name="blk_x", reset_less=True)
        with m.If(en & self.pv):
            with m.If(self.pb):
                m.d.sync += [acc.eq(0), fl.eq(0), blk.eq(total),
                             bfl.eq(fl | pf | Cat(n2, Const(0, 2))), bx.eq(x2 - 254)]
            with m.Else():
                m.d.sync += [acc.eq(total), fl.eq(fl | pf)]
        m.d.comb += [self.blk.eq(blk), self.blk_x.eq(bx), self.blk_fl.eq(bfl)]
        return m


def mx_row_unit(m: Module, en, blks: list, sels: list, lasts: list, frac_bits: int,
                name: str) -> list:
    """The fp32 side of one row of MX PEs, shared by the row: PE j's block (its exact sum,
    scale exponent and flags, ``blks[j]``) is ready one cycle after it ends, when ``sels[j]``
    (one-hot over the row: the PEs of a row end their blocks on consecutive cycles, and
    blocks are 32 beats apart) is high. That cycle the block is selected, rounded to fp32 with
    its scales and added to PE j's running sum; ``lasts[j]``: the tile's last block, whose sum
    goes to ``cap[j]`` (returned) and restarts the running sum. One rounding unit and one fp32
    adder per row instead of per PE."""
    C = len(blks)
    W = len(blks[0][0])
    blk = Signal(signed(W), name=f"{name}_blk")
    bx = Signal(signed(10), name=f"{name}_x")
    bfl = Signal(3, name=f"{name}_fl")
    runs = [Signal(32, name=f"{name}_run{j}") for j in range(C)]
    run = Signal(32, name=f"{name}_run")
    pick = [[] for _ in range(4)]
    for j in range(C):
        for k, v in enumerate((blks[j][0], blks[j][1], blks[j][2], runs[j])):
            pick[k].append(Mux(sels[j], v, 0))
    m.d.comb += [blk.eq(_or(pick[0])), bx.eq(_or(pick[1])), bfl.eq(_or(pick[2])),
                 run.eq(_or(pick[3]))]
    code = fp32_from_fixed(m, blk, frac_bits, bfl, f"{name}_r", bx)
    total = fp32_add(m, run, code, f"{name}_a")
    caps = []
    for j in range(C):
        cap = Signal(32, name=f"{name}_cap{j}", reset_less=True)
        with m.If(en & sels[j]):
            with m.If(lasts[j]):
                m.d.sync += [cap.eq(total), runs[j].eq(0)]
            with m.Else():
                m.d.sync += runs[j].eq(total)
        caps.append(cap)
    return caps


def _or(values):
    out = values[0]
    for v in values[1:]:
        out = out | v
    return out


class PeWS(wiring.Component):
    """Weight-stationary processing element: forwards activations right and shadow weights
    down, multiplies its activation by its active weight and adds the partial sum from above.

    ``swap``: the pass's first beat is one stage upstream, so the multiplier's weight register
    takes the shadow weight (the weight input of the multiplier is always a plain register);
    ``load``: a weight beat shifts the shadow weights down the column.
    """

    def __init__(self, a_shape, b_shape, p_shape, s_shape, fmts=None):
        self.shapes = (a_shape, b_shape, p_shape, s_shape)
        self.fmts = fmts
        super().__init__({
            "en": In(1), "a": In(a_shape), "swap": In(1), "load": In(1),
            "w_in": In(b_shape), "psum_in": In(s_shape),
            "a_out": Out(a_shape), "w_out": Out(b_shape), "psum": Out(s_shape),
        })

    @staticmethod
    def module_name(a_shape, b_shape, p_shape, s_shape, fmts=None) -> str:
        """The Verilog module of a PE with these shapes (every parameter is in the name)."""
        return (f"tf_pe_ws_{_tag(a_shape)}x{_tag(b_shape)}_p{_tag(p_shape)}"
                f"_{_tag(s_shape)}{_fmt_tag(fmts)}")

    def elaborate(self, platform):
        m = Module()
        a_shape, b_shape, p_shape, s_shape = self.shapes
        en = self.en
        a_q = Signal(a_shape, name="a_q", reset_less=True)
        w_sh = Signal(b_shape, name="w_sh", reset_less=True)
        w_act = Signal(b_shape, name="w_act", reset_less=True)
        w_next = Signal(b_shape, name="w_next")
        prod = Signal(p_shape, name="prod", reset_less=True)
        ps = Signal(s_shape, name="psum_q", reset_less=True)
        with m.If(self.load):
            m.d.sync += w_sh.eq(self.w_in)
        m.d.comb += w_next.eq(Mux(self.swap, w_sh, w_act))
        _mul(m, platform, self.a, w_next, en, prod, "mul", self.fmts)
        with m.If(en):
            m.d.sync += [a_q.eq(self.a), w_act.eq(w_next), ps.eq(self.psum_in + prod)]
        m.d.comb += [self.a_out.eq(a_q), self.w_out.eq(w_sh), self.psum.eq(ps)]
        return m


def check_rtl(params: MacArrayParams) -> None:
    """Refuse, in one line, what the golden model computes but this RTL does not build."""
    if params.mx and params.dataflow != OUTPUT_STATIONARY:
        raise ConfigError(f"{params.name}: the mac_array RTL builds MX operands "
                          f"({params.a} x {params.b}) only with dataflow output_stationary "
                          "(allowed: output_stationary; the golden model, tensorfab run "
                          "--backend golden, takes any)")
    if params.acc.kind != "fixed" and params.dataflow != OUTPUT_STATIONARY:
        raise ConfigError(f"{params.name}: the mac_array RTL builds acc {params.acc} only "
                          "with dataflow output_stationary (allowed: output_stationary, or a "
                          "fixed-point acc; tensorfab run --backend golden takes it)")
    if params.acc.kind != "fixed":
        top = params.kulisch_width - params.product.frac_bits
        if top > 127 or params.product.frac_bits > 126:
            raise ConfigError(f"{params.name}: the fp32 rounding of this RTL needs the exact "
                              "sum inside fp32's normal range (allowed: operand formats "
                              "whose products stay within 2**-126..2**127)")


class PeWS2(wiring.Component):
    """Weight-stationary PE of a column pair (``packing``): as :class:`PeWS`, with the packed
    weight word of both columns, one wide product and one partial sum per lane (lane 1 adds
    its borrow as carry-in)."""

    def __init__(self, a_shape, lanes: Lanes, s_shape):
        self.shapes = (a_shape, lanes, s_shape)
        super().__init__({
            "en": In(1), "a": In(a_shape), "swap": In(1), "load": In(1),
            "w_in": In(lanes.b_shape), "psum_in0": In(s_shape), "psum_in1": In(s_shape),
            "a_out": Out(a_shape), "w_out": Out(lanes.b_shape),
            "psum0": Out(s_shape), "psum1": Out(s_shape),
        })

    @staticmethod
    def module_name(a_shape, lanes: Lanes, s_shape) -> str:
        return f"tf_pe_ws2_{_tag(a_shape)}x{lanes.tag}_{_tag(s_shape)}"

    def elaborate(self, platform):
        m = Module()
        a_shape, lanes, s_shape = self.shapes
        en = self.en
        a_q = Signal(a_shape, name="a_q", reset_less=True)
        w_sh = Signal(lanes.b_shape, name="w_sh", reset_less=True)
        w_act = Signal(lanes.b_shape, name="w_act", reset_less=True)
        w_next = Signal(lanes.b_shape, name="w_next")
        prod = Signal(lanes.p_shape, name="prod", reset_less=True)
        with m.If(self.load):
            m.d.sync += w_sh.eq(self.w_in)
        m.d.comb += w_next.eq(Mux(self.swap, w_sh, w_act))
        mul_reg(m, platform, self.a, w_next, en, prod, "mul")
        W = s_shape.width
        l0, l1, cin = lanes.split(m, prod, W)
        ps = [Signal(s_shape, name=f"psum{k}_q", reset_less=True) for k in (0, 1)]
        s1 = (self.psum_in1 + l1)[:W] if cin is None else \
            (Cat(Const(1, 1), self.psum_in1) + Cat(cin, l1))[1:W + 1]
        with m.If(en):
            m.d.sync += [a_q.eq(self.a), w_act.eq(w_next), ps[0].eq(self.psum_in0 + l0),
                         ps[1].eq(s1)]
        m.d.comb += [self.a_out.eq(a_q), self.w_out.eq(w_sh), self.psum0.eq(ps[0]),
                     self.psum1.eq(ps[1])]
        return m


class MacArray(wiring.Component):
    """A ``rows x cols`` systolic MAC array streaming ``c = a @ b`` (see :mod:`.tiling`).

    Ports (``amaranth.lib.stream`` ready/valid streams)
    -------------------------------------------------
    a_stream : in
        ``data``: ``rows`` lanes in the ``a`` format; ``last``: the beat that ends a tile
        (output stationary) or a pass (weight stationary); weight stationary adds
        ``k_first``/``k_last``: the pass is the first/last K-tile of its outputs.
    b_stream : in
        ``data``: ``cols`` lanes in the ``b`` format.
    c_stream : out
        ``data``: ``cols`` lanes in the accumulator format, one row of ``c`` per beat.
    room : in (``lockstep`` only)
        The epilogue's FIFO room (:mod:`generators.lockstep`): the array advances on copies
        of the enable made from it; ``c_stream.ready`` is then not
        read (the consumer advances with the array).
    """

    def __init__(self, params: MacArrayParams, lockstep: bool = False):
        self.params = p = params
        self.lockstep = lockstep
        a_fields = {"data": data.ArrayLayout(p.a.shape(), p.rows), "last": 1}
        if p.dataflow != OUTPUT_STATIONARY:
            a_fields.update(k_first=1, k_last=1)
        b_fields = {"data": data.ArrayLayout(p.b.shape(), p.cols)}
        # MX operands: each lane's E8M0 scale code of the block the beat's k is in
        if p.a.kind == "mx":
            a_fields["scale"] = data.ArrayLayout(unsigned(8), p.rows)
        if p.b.kind == "mx":
            b_fields["scale"] = data.ArrayLayout(unsigned(8), p.cols)
        super().__init__({
            "a_stream": In(stream.Signature(data.StructLayout(a_fields))),
            "b_stream": In(stream.Signature(data.StructLayout(b_fields))),
            "c_stream": Out(stream.Signature(
                data.StructLayout({"data": data.ArrayLayout(p.acc.shape(), p.cols)}))),
            **({"room": In(ROOM)} if lockstep else {}),
        })

    @property
    def latency(self) -> int:
        return self.params.latency

    def expected_cycles(self, m: int, k: int, n: int) -> int:
        return self.params.expected_cycles(m, k, n)

    # -- shared pieces ----------------------------------------------------------------------

    def _fmts(self):
        """The operand formats when a PE decodes floats (``None``: integer multipliers)."""
        p = self.params
        return (p.a, p.b) if p.floating else None

    def _ishape(self):
        p = self.params
        return signed(p.internal_width) if p.acc.signed else unsigned(p.internal_width)

    def _clamp(self, value):
        """The accumulator's overflow rule on an internal-width value."""
        p = self.params
        if p.overflow == "wrap" or p.internal_width == p.acc.width:
            return value
        lo, hi = p.acc.min_code, p.acc.max_code
        if not p.acc.signed:  # an unsigned value is never below 0
            return Mux(value > hi, hi, value)
        return Mux(value > hi, hi, Mux(value < lo, lo, value))

    def _output(self, m: Module, en, cols: list, valid):
        """Deskew the per-column results (column j arrives j cycles after column 0), apply
        the overflow rule and register the ``c_stream`` beat."""
        p = self.params
        C, PC = p.cols, p.pcols
        aligned = [_delay(m, cols[j], PC - 1 - p.pcol(j), en, f"deskew{j}", data=True)[-1]
                   for j in range(C)]
        p = self.params
        if p.mx:
            outs = aligned
        elif p.acc.kind != "fixed":  # fp32: one rounding per column, shared by its PEs
            W = p.internal_width
            outs = [fp32_from_fixed(m, aligned[j][:W].as_signed(), p.product.frac_bits,
                                    aligned[j][W:W + 3], f"fp32_{j}") for j in range(C)]
        else:
            outs = [self._clamp(aligned[j]) for j in range(C)]
        with m.If(en):
            m.d.sync += self.c_stream.valid.eq(valid)
            for j in range(C):
                m.d.sync += self.c_stream.payload.data[j].eq(outs[j])

    def elaborate(self, platform):
        m = Module()
        R = self.params.rows
        if self.lockstep:
            # the input side, the output side and each PE row: a copy of the enable each
            en_in, en_out, *rows = enables(m, self.room, ["en_in", "en_out",
                                                             *(f"en_row{i}" for i in range(R))])
        else:
            en = Signal()
            m.d.comb += en.eq(~self.c_stream.valid | self.c_stream.ready)
            en_in = en_out = en
            rows = [en] * R
        if self.params.dataflow == OUTPUT_STATIONARY:
            self._elaborate_os(m, en_in, rows, en_out, platform)
        else:
            self._elaborate_ws(m, en_in, rows, en_out, platform)
        return m

    # -- output stationary --------------------------------------------------------------------

    def _elaborate_os(self, m: Module, en, en_rows: list, en_out, platform):
        p = self.params
        R, C = p.rows, p.cols
        a, b = self.a_stream, self.b_stream
        ishape = self._ishape()

        # A tile drains R rows through one output port, so the beat that ends a tile waits
        # until R cycles after the previous tile's last beat.
        since_last = Signal(range(R + 1), init=R)
        gate = ~a.payload.last | (since_last >= R)
        # ``take``: a beat enters if the array advances this cycle. Registers that advance on
        # ``en`` read ``take``, not ``en & take``, so ``en`` (a function of the output's
        # ready) reaches them only through their clock enable: one logic level.
        take = Signal()
        m.d.comb += [
            take.eq(a.valid & b.valid & gate),
            a.ready.eq(en & b.valid & gate),
            b.ready.eq(en & a.valid & gate),
        ]
        with m.If(en):
            with m.If(take & a.payload.last):
                m.d.sync += since_last.eq(1)
            with m.Elif(since_last < R):
                m.d.sync += since_last.eq(since_last + 1)

        # Row pipelines: skew lane i of a (lane j of b) by i (j) cycles, then one register per
        # PE along the row (column), inside the PEs. Stage s of every row holds the beat
        # accepted s cycles ago, so one flag pipeline serves all rows: PE (i, j) takes its
        # operands at stage i+j (its multiplier's input registers make them the operands at
        # stage i+1+j) and adds the product at stage i+j+2.
        PC = p.pcols
        mx = p.mx
        D = 1 if mx else 0  # an MX PE's sum is captured one cycle later (the fp32 add)

        def lane(stream_, i, fmt):
            if fmt.kind != "mx":
                return stream_.payload.data[i]
            return Cat(stream_.payload.data[i], stream_.payload.scale[i])

        a_skew = [_delay(m, lane(a, i, p.a), i, en, f"a{i}", data=True)[-1] for i in range(R)]
        b_skew = [_delay(m, lane(b, j, p.b), p.pcol(j), en, f"b{j}", data=True)[-1]
                  for j in range(C)]
        vs = _delay(m, take, R + PC + D, en, "v")
        ls = _delay(m, a.payload.last, R + PC + D, en, "l")
        if mx:
            # the beat that ends a block of 32 along K (K is a multiple of 32, and a tile's
            # last beat ends its last block)
            kcnt = Signal(5, name="kcnt")
            with m.If(en & take):
                m.d.sync += kcnt.eq(Mux(a.payload.last, 0, kcnt + 1))
            bs = _delay(m, kcnt == 31, R + C + D, en, "bl")

        # PEs (see PeOS): accumulators split in halves lo/hi with a pending carry cy, all
        # three captured when a tile ends and recombined after the drain (below).
        W = p.internal_width
        L = W // 2
        H = W - L
        a_sh = unsigned(len(a_skew[0])) if p.a.kind == "mx" else p.a.shape()
        b_sh = unsigned(len(b_skew[0])) if p.b.kind == "mx" else p.b.shape()
        p_sh = p.product.shape()

        fmts = self._fmts()
        fl = p.acc.kind != "fixed"  # flags (zero for integer operands) for the fp32 rounding

        frac = p.product.frac_bits

        def make():
            if mx:
                return PeMX(a_sh, b_sh, p_sh, W, fmts)
            return PeOS(a_sh, b_sh, p_sh, W, fmts, fl)

        module = (PeMX.module_name(a_sh, b_sh, p_sh, W, fmts) if mx
                  else PeOS.module_name(a_sh, b_sh, p_sh, W, fmts, fl))
        cap = [[None] * C for _ in range(R)]
        if p.packing != "none":
            lanes = Lanes(p)
            module2 = PeOS2.module_name(a_sh, lanes, W)
            packed = {q: lanes.pack(m, b_skew[2 * q], b_skew[2 * q + 1], f"bpack{q}")
                      for q in range(C // 2)}
        mx_blks = [[] for _ in range(R)]
        a_fwd = [[Signal(a_sh, name=f"a_{i}_{j}") for j in range(PC)] for i in range(R)]
        b_fwd = [[Signal(b_sh if p.packing == "none" or 2 * j + 1 == C else lanes.b_shape,
                         name=f"b_{i}_{j}") for j in range(PC)] for i in range(R)]
        for i in range(R):
            for j in range(PC):
                a_in = a_skew[i] if j == 0 else a_fwd[i][j - 1]
                if p.packing != "none" and 2 * j + 1 < C:  # a column pair: one wide product
                    b_in = packed[j] if i == 0 else b_fwd[i - 1][j]
                    cp = [[Signal(L, name=f"cap_lo_{i}_{2 * j + k}"),
                           Signal(H, name=f"cap_hi_{i}_{2 * j + k}"),
                           Signal(name=f"cap_cy_{i}_{2 * j + k}")] for k in (0, 1)]
                    leaf(m, platform, module2, lambda: PeOS2(a_sh, lanes, W), f"pe_{i}_{j}",
                         en=en_rows[i], a=a_in, b=b_in, pv=vs[i + j + 2], pl=ls[i + j + 2],
                         a_out=a_fwd[i][j], b_out=b_fwd[i][j],
                         **{f"cap_{t}{k}": cp[k][n] for k in (0, 1)
                            for n, t in enumerate(("lo", "hi", "cy"))})
                    cap[i][2 * j], cap[i][2 * j + 1] = cp
                    continue
                col = j if p.packing == "none" else 2 * j
                if mx:
                    bk = (Signal(signed(W), name=f"blk_{i}_{j}"),
                          Signal(signed(10), name=f"blkx_{i}_{j}"),
                          Signal(3, name=f"blkfl_{i}_{j}"))
                    leaf(m, platform, module, make, f"pe_{i}_{j}", en=en_rows[i],
                         a=a_in, b=b_skew[j] if i == 0 else b_fwd[i - 1][j],
                         pv=vs[i + j + 2], pb=bs[i + j + 2],
                         a_out=a_fwd[i][j], b_out=b_fwd[i][j],
                         blk=bk[0], blk_x=bk[1], blk_fl=bk[2])
                    mx_blks[i].append(bk)
                    continue
                cp = [Signal(L, name=f"cap_lo_{i}_{col}"), Signal(H, name=f"cap_hi_{i}_{col}"),
                      Signal(name=f"cap_cy_{i}_{col}")]
                extra = {}
                if fl:
                    cp.append(Signal(3, name=f"cap_fl_{i}_{col}"))
                    extra["cap_fl"] = cp[3]
                leaf(m, platform, module, make, f"pe_{i}_{j}", en=en_rows[i], **extra,
                     a=a_in, b=b_skew[col] if i == 0 else b_fwd[i - 1][j],
                     pv=vs[i + j + 2], pl=ls[i + j + 2],
                     a_out=a_fwd[i][j], b_out=b_fwd[i][j],
                     cap_lo=cp[0], cap_hi=cp[1], cap_cy=cp[2])
                cap[i][col] = cp

        if mx:  # one fp32 unit per row; PE j's block is ready at stage i+j+3
            for i in range(R):
                sels, lasts = [], []
                for j in range(C):
                    sel = Signal(name=f"mxsel_{i}_{j}")
                    m.d.comb += sel.eq(vs[i + j + 3] & bs[i + j + 3])
                    sels.append(sel)
                    lasts.append(ls[i + j + 3])
                caps = mx_row_unit(m, en_rows[i], mx_blks[i], sels, lasts, frac, f"mxrow{i}")
                for j in range(C):
                    cap[i][j] = [caps[j]]

        # Drain: rows 0..R-1 of column j are read on consecutive cycles, column j one cycle
        # after column j-1, just as the capture wavefront passes.
        d_act = Signal()
        d_row = Signal(range(max(R, 2)))  # never zero-width: Verilog has no [-1:0]
        with m.If(en_out):
            with m.If(vs[2 + D] & ls[2 + D]):
                m.d.sync += [d_act.eq(1), d_row.eq(0)]
            with m.Elif(d_act):
                with m.If(d_row == R - 1):
                    m.d.sync += d_act.eq(0)
                with m.Else():
                    m.d.sync += d_row.eq(d_row + 1)
        acts = _delay(m, d_act, PC - 1, en_out, "dact")
        rows = _delay(m, d_row, PC - 1, en_out, "drow")
        cols = []
        for j in range(C):
            parts = []
            tags = ("code",) if mx else ("lo", "hi", "cy", "fl")
            for k, sig in enumerate(cap[0][j]):
                tag, width = tags[k], len(sig)
                reg = Signal(width, name=f"col{j}_{tag}", reset_less=True)
                # a full power-of-two table, so the select covers every code of d_row
                table = [cap[min(i, R - 1)][j][k] for i in range(1 << len(d_row))]
                with m.If(en_out):
                    m.d.sync += reg.eq(Array(table)[rows[p.pcol(j)]])
                parts.append(reg)
            # the captured pending carry goes back into the high half here, once per column
            if mx:  # already the fp32 code
                cols.append(parts[0])
                continue
            col = Signal(ishape, name=f"col{j}")
            m.d.comb += col.eq(Cat(parts[0], (parts[1] + parts[2])[:H]))
            if fl:  # the flags travel with the sum to the fp32 rounding
                colf = Signal(W + 3, name=f"col{j}_fl")
                m.d.comb += colf.eq(Cat(col, parts[3]))
                col = colf
            cols.append(col)
        col_valid = Signal()
        with m.If(en_out):
            m.d.sync += col_valid.eq(acts[PC - 1])
        self._output(m, en_out, cols, col_valid)

    # -- weight stationary --------------------------------------------------------------------

    def _elaborate_ws(self, m: Module, en, en_rows: list, en_out, platform):
        p = self.params
        R, C = p.rows, p.cols
        a, b = self.a_stream, self.b_stream
        ishape = self._ishape()
        PC = p.pcols
        gap = R + PC - 1  # cycles for a pass's first beat to reach every PE

        loaded = Signal(range(R + 1))        # weight beats in the shadow registers
        since_first = Signal(range(gap + 1), init=gap)
        is_first = Signal(init=1)            # the next a beat starts a pass
        a_ok = ~is_first | (loaded == R)
        b_ok = (loaded < R) & (since_first >= gap)
        # *_take: a beat enters if the array advances (en); registers that advance on en read
        # those, so en reaches them only through their clock enable (as in output stationary)
        a_take, b_take, b_fire = Signal(), Signal(), Signal()
        m.d.comb += [
            a.ready.eq(en & a_ok),
            b.ready.eq(en & b_ok),
            a_take.eq(a.valid & a_ok),
            b_take.eq(b.valid & b_ok),
            b_fire.eq(en & b_take),
        ]
        with m.If(en):
            with m.If(a_take & is_first):
                m.d.sync += [since_first.eq(1), loaded.eq(0)]
            with m.Else():
                with m.If(since_first < gap):
                    m.d.sync += since_first.eq(since_first + 1)
                with m.If(b_take):
                    m.d.sync += loaded.eq(loaded + 1)
            with m.If(a_take):
                m.d.sync += is_first.eq(a.payload.last)

        # Row pipelines: stage s of row i holds the beat accepted s cycles ago; PE (i, j) reads
        # stage i+j (skew i, then one register per PE inside the PEs) and swaps in its shadow
        # weights when the pass's first beat is one stage upstream (see PeWS). Shadow weights
        # shift down the columns on each weight beat.
        first_now = Signal()
        m.d.comb += first_now.eq(a_take & is_first)
        a_skew = [_delay(m, a.payload.data[i], i, en, f"a{i}", data=True)[-1] for i in range(R)]
        v_st = _delay(m, a_take, R + PC, en, "v")
        f_st = _delay(m, first_now, R + PC, en, "f")
        swap = []
        for s_ in range(R + PC):
            sw = Signal(name=f"swap{s_}")
            m.d.comb += sw.eq(v_st[s_] & f_st[s_])
            swap.append(sw)
        # valid, last, k_first, k_last of each beat, to where its partial sums leave the array
        flags = Signal(4)
        m.d.comb += flags.eq(Cat(a_take, a.payload.last, a.payload.k_first, a.payload.k_last))
        fl_st = _delay(m, flags, R + PC + 1, en, "flags")

        a_sh, b_sh = p.a.shape(), p.b.shape()
        p_sh = p.product.shape()
        # a weight beat shifts the shadow weights of each row under the row's own enable
        b_fires = [b_fire] * R
        if en_rows[0] is not en:
            b_fires = []
            for i in range(R):
                b_fires.append(Signal(name=f"b_fire{i}"))
                m.d.comb += b_fires[i].eq(en_rows[i] & b_take)

        fmts = self._fmts()

        def make():
            return PeWS(a_sh, b_sh, p_sh, ishape, fmts)

        module = PeWS.module_name(a_sh, b_sh, p_sh, ishape, fmts)
        paired = [p.packing != "none" and 2 * j + 1 < C for j in range(PC)]
        if any(paired):
            lanes = Lanes(p)
            module2 = PeWS2.module_name(a_sh, lanes, ishape)
        a_fwd = [[Signal(a_sh, name=f"a_{i}_{j}") for j in range(PC)] for i in range(R)]
        w_fwd = [[Signal(lanes.b_shape if paired[j] else b_sh, name=f"wsh_{i}_{j}")
                  for j in range(PC)] for i in range(R)]
        # partial sums by column of c
        psum = [[Signal(ishape, name=f"psum_{i}_{j}") for j in range(C)] for i in range(R)]
        for i in range(R):
            for j in range(PC):
                a_in = a_skew[i] if j == 0 else a_fwd[i][j - 1]
                if paired[j]:  # a column pair: one wide product, the packed weight word
                    c0, c1 = 2 * j, 2 * j + 1
                    w_in = lanes.pack(m, b.payload.data[c0], b.payload.data[c1],
                                      f"wpack{j}") if i == 0 else w_fwd[i - 1][j]
                    leaf(m, platform, module2, lambda: PeWS2(a_sh, lanes, ishape),
                         f"pe_{i}_{j}", en=en_rows[i], a=a_in, swap=swap[i + j],
                         load=b_fires[i], w_in=w_in,
                         psum_in0=psum[i - 1][c0] if i else Const(0, ishape),
                         psum_in1=psum[i - 1][c1] if i else Const(0, ishape),
                         a_out=a_fwd[i][j], w_out=w_fwd[i][j],
                         psum0=psum[i][c0], psum1=psum[i][c1])
                    continue
                col = j if p.packing == "none" else 2 * j
                leaf(m, platform, module, make, f"pe_{i}_{j}", en=en_rows[i],
                     a=a_in, swap=swap[i + j], load=b_fires[i],
                     w_in=b.payload.data[col] if i == 0 else w_fwd[i - 1][j],
                     psum_in=psum[i - 1][col] if i else Const(0, ishape),
                     a_out=a_fwd[i][j], w_out=w_fwd[i][j], psum=psum[i][col])

        # Bottom of each column: accumulate the K-tiles of a pass in a buffer of tile_m rows.
        cols, col_valids = [], []
        for j in range(C):
            # the beat accepted R+pcol(j)+2 cycles ago has its column-j partial sum at the
            # bottom now
            fl = fl_st[R + p.pcol(j) + 2]
            vb, last_b, kf_b, kl_b = fl[0], fl[1], fl[2], fl[3]
            # (at least 2 rows: a 1-row memory has a zero-width address, no Verilog range)
            mem = memory.Memory(shape=ishape, depth=max(p.tile_m, 2), init=[])
            m.submodules[f"accbuf{j}"] = mem
            wr = mem.write_port()
            # The buffer is read two beats ahead and its data registered (rdq) before the
            # add. The same row recurs only a pass later (>= ws_pass_gap >= 2 beats); the
            # read sees a write of the same cycle (transparent), which covers a gap of 2.
            rd = mem.read_port(domain="sync", transparent_for=(wr,))
            addr = Signal(range(max(p.tile_m, 2)), name=f"addr{j}")

            def advance(a_, v_, l_):
                return Mux(v_, Mux(l_ | (a_ == p.tile_m - 1), 0, a_ + 1), a_)

            addr_next = Signal.like(addr, name=f"addr_next{j}")   # row of the next beat
            addr_nn = Signal.like(addr, name=f"addr_nn{j}")       # and of the one after it
            fl1 = fl_st[R + p.pcol(j) + 1]
            m.d.comb += [addr_next.eq(advance(addr, vb, last_b)),
                         addr_nn.eq(advance(addr_next, fl1[0], fl1[1]))]
            with m.If(en_out):
                m.d.sync += addr.eq(addr_next)
            rdq = Signal(ishape, name=f"rdq{j}", reset_less=True)
            with m.If(en_out):
                m.d.sync += rdq.eq(rd.data)
            total = Signal(ishape, name=f"total{j}")
            m.d.comb += [
                rd.addr.eq(addr_nn),
                rd.en.eq(en_out),
                total.eq(Mux(kf_b, 0, rdq) + psum[R - 1][j]),
                wr.addr.eq(addr),
                wr.data.eq(total),
                wr.en.eq(en_out & vb & ~kl_b),
            ]
            col = Signal(ishape, name=f"col{j}", reset_less=True)
            cv = Signal(name=f"colv{j}")
            with m.If(en_out):
                m.d.sync += [col.eq(total), cv.eq(vb & kl_b)]
            cols.append(col)
            col_valids.append(cv)
        self._output(m, en_out, cols, col_valids[C - 1])

