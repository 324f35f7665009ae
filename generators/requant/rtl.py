"""Amaranth components of the requant unit.

:class:`RequantLane` is one lane's datapath (``x = acc + bias``, the multiplier, the rounding
shift, the zero point and the clamp), pipelined under one clock enable and parameterized only
by formats, rounding and multiplier width, so that any unit producing accumulators (a MAC
array's output lanes) can instantiate it per lane. :class:`Requant` is the stand-alone unit: a
parameter memory per lane, loaded from ``p_stream``, feeding ``lanes`` of them.

The hardware computes the formulas of :func:`generators.numerics.requantize_fixed` in forms
that are equal for every input (``tests/test_requant_model.py`` checks these identities on the
golden model; the RTL tests check the whole):

- ``SRDHM(a, m) = (a*m + 2**30) >> 31`` (floor) for ``m >= 0``: the nudge ``1 - 2**30`` of a
  negative product followed by division toward zero is the same as adding ``2**30`` and
  flooring, and ``a == m == INT32_MIN`` cannot occur;
- ``RDBPOT(v, e) = (v + 2**(e-1) - (v < 0)) >> e`` for ``e >= 1`` (``v`` for ``e = 0``);
- a multiplier ``M = m * 2**k`` (``k = 32 - mult_bits``) is stored and multiplied as ``m``;
  ``(a*m*2**k + 2**30) >> 31 = (a*m + 2**(30-k)) >> (31-k)``, and the single-rounding sum
  ``x*m*2**k + 2**(30-s)`` is formed by wiring (the low ``k`` bits of the product are zero);
- with ``mult_bits <= 17`` and an operand wider than 18 bits (``double``'s ``a``, a ``single``
  ``x`` wider than int18), ``a*m = a[18:]*m*2**18 + a[:18]*m``: one 18 x 18 multiplier and
  LUT logic (:mod:`.widemul`), one stage more (:func:`.params.lane_stages`);
- with ``mult_bits >= 18`` and an operand wider than 18 bits, each wide operand is split at
  bit 18 (``v = v_hi*2**18 + v_lo``, ``v_lo`` unsigned) and ``a*m = a_lo*m_lo +
  a_hi*m_hi*2**36 + (a_hi*m_lo + a_lo*m_hi)*2**18``: four registered hard multipliers (two
  when ``m`` has at most 18 bits); ``0 <= a_lo*m_lo < 2**36``, so the first two terms are
  one concatenation, the nudge is added to it beside the sum of the middle two, and the last
  sum is the next stage (:func:`.widemul.wide_product`), one stage more;
- ``v + 2**(e-1) - (v < 0) = v + (2**(e-1) - 1 if v < 0 else 2**(e-1))`` for ``e >= 1``
  (both decoded from ``e`` a stage ahead), and the shifted value saturated to
  ``out.width + 2`` bits gives the same clamped output (``|zero_point|, |act_min|,
  |act_max| < 2**out.width``).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..lockstep import ROOM, enables
from ..numerics import Format
from .params import (
    BIAS_BITS,
    DSP_BITS,
    LANE_STAGES,
    SHIFT_BITS,
    X_FORMAT,
    RequantParams,
    lane_stages,
    splits_product,
)
from .params import wide_product as uses_wide_product
from .widemul import split_product, wide_product


class RequantLane(wiring.Component):
    """One lane: ``y = clamp(zero_point + MulByQuantizedMultiplier(ovf(acc + bias), m, s))``.

    Parameters
    ----------
    inp : Format
        The accumulator's format (a signed integer format of at most 32 bits).
    out : Format
        The output format (integer, 2..16 bits).
    rounding : str
        ``double``, ``single``, ``trn``, ``rnd`` or ``rnd_conv``.
    mult_bits : int
        Multiplier width (2..32): the ``multiplier`` port holds ``M >> (32 - mult_bits)``.
    x_fmt : Format
        The format ``acc + bias`` is held in (at most 32 bits), under ``overflow``.
    overflow : str
        ``wrap`` or ``sat`` for ``acc + bias``.

    Ports
    -----
    en : in
        Clock enable of every stage (a frozen pipeline holds its values).
    acc, bias, multiplier, shift : in
        One element and its channel's parameters, sampled together (``multiplier`` only with
        ``double``/``single``).
    zero_point, act_min, act_max : in
        Read by the last stage: hold them while data is in flight.
    y : out
        The output code, :attr:`latency` enabled cycles after its inputs were sampled.
    """

    def __init__(self, inp: Format, out: Format, rounding: str, mult_bits: int = 32,
                 x_fmt: Format = X_FORMAT, overflow: str = "wrap"):
        if rounding not in LANE_STAGES:
            raise ValueError(f"rounding {rounding!r}")
        if not (x_fmt.signed and x_fmt.is_integer and x_fmt.width <= 32):
            raise ValueError(f"x_fmt {x_fmt} (allowed: intN, N <= 32)")
        if overflow not in ("wrap", "sat"):
            raise ValueError(f"overflow {overflow!r}")
        self.inp, self.out, self.rounding = inp, out, rounding
        self.mult_bits, self.x_fmt, self.overflow = mult_bits, x_fmt, overflow
        self.uses_multiplier = rounding in ("double", "single")
        ports = {"en": In(1), "acc": In(inp.shape()), "bias": In(signed(BIAS_BITS)),
                 "shift": In(signed(SHIFT_BITS)), "zero_point": In(out.shape()),
                 "act_min": In(out.shape()), "act_max": In(out.shape()), "y": Out(out.shape())}
        if self.uses_multiplier:
            ports["multiplier"] = In(unsigned(mult_bits - 1))
        super().__init__(ports)

    @property
    def latency(self) -> int:
        """Register stages from the inputs to ``y``."""
        return lane_stages(self.rounding, self.mult_bits, self.x_fmt.width)

    def elaborate(self, platform):
        m = Module()
        stages = 0

        def reg(shape, value, name):
            r = Signal(shape, name=name, reset_less=True)
            with m.If(self.en):
                m.d.sync += r.eq(value)
            return r

        # stage 1: x = acc + bias under the overflow rule
        xw = self.x_fmt.width
        total = Signal(signed(max(self.inp.width, BIAS_BITS) + 1))
        m.d.comb += total.eq(self.acc + self.bias)
        if self.overflow == "wrap":
            xv = total[:xw].as_signed()
        else:
            lo, hi = self.x_fmt.min_code, self.x_fmt.max_code
            xv = Mux(total > hi, hi, Mux(total < lo, lo, total))
        x1 = reg(signed(xw), xv, "x1")
        sh1 = reg(signed(SHIFT_BITS), self.shift, "sh1")
        m1 = reg(self.multiplier.shape(), self.multiplier, "m1") if self.uses_multiplier \
            else None
        stages += 1
        left = Signal(unsigned(5))    # max(shift, 0) <= 30
        right = Signal(unsigned(5))   # max(-shift, 0) <= 31
        k = 32 - self.mult_bits
        split = splits_product(self.rounding, self.mult_bits, xw)

        if self.rounding == "double":
            # left = max(shift, 0) and right = max(-shift, 0), registered beside x1
            m.d.comb += [left.eq(reg(unsigned(5), Mux(self.shift > 0, self.shift, 0), "left1")),
                         right.eq(reg(unsigned(5), Mux(self.shift < 0, -self.shift, 0),
                                      "right1"))]
            # stage 2: the left shift, in int32 (wraps), registered: the hard multipliers'
            # operand registers (stage 3) take a2 and m2, not the shifter's output
            a2 = reg(signed(32), (x1 << left)[:32].as_signed(), "a2")
            m2 = reg(m1.shape(), m1, "m2")
            e2 = reg(unsigned(5), right, "e2")
            e3 = reg(unsigned(5), e2, "e3")
            if split:
                # stages 3, 4, 5: the product, split (widemul)
                p5 = split_product(m, platform, reg, self.en, a2, m2,
                                   reg(signed(32), a2, "a3"), reg(m2.shape(), m2, "m3"),
                                   32 + self.mult_bits, "p5")
                e5 = reg(unsigned(5), reg(unsigned(5), e3, "e4"), "e5")
                # stage 6: SRDHM = (a*M + 2**30) >> 31 = (a*m + 2**(30-k)) >> (31-k)
                h6 = reg(signed(32), (p5 + (1 << (30 - k))) >> (31 - k), "h6")
            else:
                # stages 4, 5: the product's partial products on hard multipliers (their
                # operand registers are stage 3), then their sums with the nudge (widemul)
                base, mid = wide_product(m, platform, reg, self.en, a2, m2, 0,
                                         Const(1 << (30 - k), 64), "p")
                e5 = reg(unsigned(5), reg(unsigned(5), e3, "e4"), "e5")
                # stage 6: SRDHM, the last sum
                h6 = reg(signed(32), (base + (mid << DSP_BITS)) >> (31 - k), "h6")
            e6 = reg(unsigned(5), e5, "e6")
            # stage 7: RDBPOT's nudge 2**(e-1) - (v < 0), round to nearest, ties away from 0;
            # 2**(e-1) and 2**(e-1) - 1 (0 for e = 0) decoded from e in stage 6
            half = Signal(unsigned(32))
            m.d.comb += half.eq((Const(1, 32) << e5)[:32] >> 1)
            half6 = reg(unsigned(32), half, "half6")
            halfm6 = reg(unsigned(32), Mux(e5 != 0, half - 1, 0), "halfm6")
            t7 = reg(signed(34), h6 + Mux(h6[31], halfm6, half6), "t7")
            e7 = reg(unsigned(5), e6, "e7")
            # stage 8: the shift
            v8 = reg(signed(34), t7 >> e7, "v8")
            # stage 9: saturated to out.width + 2 bits (every value beyond is clamped to
            # act_min or act_max by the last stage all the same)
            sw = self.out.width + 2
            fits = (v8[sw - 1:] == 0) | (v8[sw - 1:] == (1 << (34 - sw + 1)) - 1)
            lo_c, hi_c = -(1 << (sw - 1)), (1 << (sw - 1)) - 1
            r = reg(signed(sw), Mux(fits, v8[:sw].as_signed(), Mux(v8[33], lo_c, hi_c)), "r9")
            stages += 8
        elif self.rounding == "single":
            wide = uses_wide_product("single", self.mult_bits, xw)
            if split:
                # stages 2, 3: the product, split (widemul); the hard multiplier's operand
                # registers are stage 1's x1 and m1
                p2 = split_product(m, platform, reg, self.en, xv, self.multiplier, x1, m1,
                                  xw + self.mult_bits, "p3")
                sh2 = reg(signed(SHIFT_BITS), reg(signed(SHIFT_BITS), sh1, "sh2"), "sh3")
                names, stages = ("t4", "sh4", "r5"), stages + 1
            elif wide:
                # stages 2, 3: the partial products on hard multipliers (operand registers:
                # stage 1), then their sums with the nudge 2**(30 - s) (widemul)
                sh2 = reg(signed(SHIFT_BITS), sh1, "sh2")
                nudge = Signal(unsigned(6))
                m.d.comb += nudge.eq(30 - sh2)
                base, mid = wide_product(m, platform, reg, self.en, xv, self.multiplier, k,
                                         Const(1, 1) << nudge, "p")
                sh3 = reg(signed(SHIFT_BITS), sh2, "sh3")
                # stage 4: the last sum
                t4 = reg(signed(64), base + (mid << (DSP_BITS + k)), "t4")
                sh4 = reg(signed(SHIFT_BITS), sh3, "sh4")
                amount = Signal(unsigned(6))
                m.d.comb += amount.eq(31 - sh4)
                # stage 5: >> (31 - s)
                r = reg(signed(64), t4 >> amount, "r5")
                stages += 4
            else:
                # stage 2: the product
                p2 = reg(signed(xw + self.mult_bits), x1 * m1, "p2")
                sh2 = reg(signed(SHIFT_BITS), sh1, "sh2")
                names = ("t3", "sh3", "r4")
            if not wide:
                # stage 3: + 2**(30 - s), 0 <= 30 - s <= 61; |x*M| < 2**62
                nudge = Signal(unsigned(6))
                m.d.comb += nudge.eq(30 - sh2)
                t3 = reg(signed(64), (p2 << k) + (Const(1, 1) << nudge), names[0])
                sh3 = reg(signed(SHIFT_BITS), sh2, names[1])
                # stage 4: >> (31 - s), 1 <= 31 - s <= 62 (arithmetic)
                amount = Signal(unsigned(6))
                m.d.comb += amount.eq(31 - sh3)
                r = reg(signed(64), t3 >> amount, names[2])
                stages += 3
        else:
            m.d.comb += [left.eq(Mux(sh1 > 0, sh1, 0)), right.eq(Mux(sh1 < 0, -sh1, 0))]
            # stage 2: exact left shift, or floor right shift and the dropped bits' verdict
            pw = Signal(unsigned(32))
            m.d.comb += pw.eq((Const(1, 32) << right)[:32])
            # the dropped bits of x sign-extended to 32 (a narrower x_fmt has them too)
            x32 = Signal(signed(32))
            rem = Signal(unsigned(32))
            m.d.comb += [x32.eq(x1), rem.eq(x32.as_unsigned() & (pw - 1)[:32])]
            half = pw >> 1
            v2 = reg(signed(xw + 31), Mux(sh1 >= 0, x1 << left, x1 >> right), "v2")
            gt2 = reg(1, rem > half, "gt2")
            eq2 = reg(1, rem == half, "eq2")
            rt2 = reg(1, right != 0, "rt2")
            # stage 3: the rounding increment (trn: none; rnd: ties up; rnd_conv: ties to even)
            if self.rounding == "trn":
                up = Const(0, 1)
            elif self.rounding == "rnd":
                up = rt2 & (gt2 | eq2)
            else:
                up = rt2 & (gt2 | (eq2 & v2[0]))
            r = reg(signed(xw + 32), v2 + up, "r3")
            stages += 2

        # last stage: zero point and clamp, into the output register
        yv = Signal(signed(len(r) + 2))
        m.d.comb += yv.eq(self.zero_point + r)
        clamped = Mux(yv < self.act_min, self.act_min, Mux(yv > self.act_max, self.act_max, yv))
        with m.If(self.en):
            m.d.sync += self.y.eq(clamped)
        stages += 1
        assert stages == self.latency, (stages, self.latency)
        return m


def param_layout(p: RequantParams, extra: dict | None = None) -> data.StructLayout:
    """The ``p_stream`` beat of a requant unit (and, with ``extra`` fields after ``last``, of
    a fused epilogue): per-lane ``bias`` (and per channel ``multiplier``, ``shift``), the
    scalars and ``last``."""
    per = p.per == "channel"

    def field(shape):
        return data.ArrayLayout(shape, p.lanes) if per else shape

    fields = {"bias": data.ArrayLayout(signed(BIAS_BITS), p.lanes)}
    if p.uses_multiplier:
        fields["multiplier"] = field(unsigned(p.mult_width))
    fields["shift"] = field(signed(SHIFT_BITS))
    fields.update(zero_point=p.out.shape(), act_min=p.out.shape(), act_max=p.out.shape(),
                  last=1)
    fields.update(extra or {})
    return data.StructLayout(fields)


def _scalar_regs(p: RequantParams, pin):
    """Registers of the scalars (and per tensor of the multiplier and shift), with the
    ``(register, p_stream field)`` pairs a parameter beat loads."""
    per = p.per == "channel"
    zp = Signal(p.out.shape())
    amin = Signal(p.out.shape())
    amax = Signal(p.out.shape())
    scalars = [(zp, pin.payload.zero_point), (amin, pin.payload.act_min),
               (amax, pin.payload.act_max)]
    mult_t = Signal(unsigned(p.mult_width)) if p.uses_multiplier and not per else None
    shift_t = Signal(signed(SHIFT_BITS)) if not per else None
    if mult_t is not None:
        scalars.append((mult_t, pin.payload.multiplier))
    if shift_t is not None:
        scalars.append((shift_t, pin.payload.shift))
    return zp, amin, amax, mult_t, shift_t, scalars


def _param_lanes(m: Module, p: RequantParams, pin, take_p, wptr, rptr, ens, acc_in, y_out,
                 regs) -> None:
    """Per lane: the parameter memory (written at ``wptr`` by a parameter beat, read at
    ``rptr`` under the lane's enable ``ens[lane]``), the accumulator register beside the read
    (stage A), and a :class:`RequantLane` driving ``y_out[lane]``."""
    per = p.per == "channel"
    zp, amin, amax, mult_t, shift_t = regs
    entry = {"bias": signed(BIAS_BITS)}
    if per:
        if p.uses_multiplier:
            entry["multiplier"] = unsigned(p.mult_width)
        entry["shift"] = signed(SHIFT_BITS)
    layout = data.StructLayout(entry)
    for lane in range(p.lanes):
        en = ens[lane]
        mem = Memory(shape=layout, depth=p.depth, init=[])
        m.submodules[f"params{lane}"] = mem
        wp = mem.write_port()
        rp = mem.read_port(domain="sync")
        src = pin.payload
        m.d.comb += [wp.addr.eq(wptr), wp.en.eq(take_p),
                     wp.data.bias.eq(src.bias[lane]),
                     rp.addr.eq(rptr), rp.en.eq(en)]
        if per:
            m.d.comb += wp.data.shift.eq(src.shift[lane])
            if p.uses_multiplier:
                m.d.comb += wp.data.multiplier.eq(src.multiplier[lane])
        acc_a = Signal(p.inp.shape(), name=f"acc_a{lane}", reset_less=True)
        with m.If(en):
            m.d.sync += acc_a.eq(acc_in[lane])

        dp = RequantLane(p.inp, p.out, p.rounding, p.mult_bits)
        m.submodules[f"lane{lane}"] = dp
        m.d.comb += [dp.en.eq(en), dp.acc.eq(acc_a), dp.bias.eq(rp.data.bias),
                     dp.shift.eq(rp.data.shift if per else shift_t),
                     dp.zero_point.eq(zp), dp.act_min.eq(amin), dp.act_max.eq(amax),
                     y_out[lane].eq(dp.y)]
        if p.uses_multiplier:
            m.d.comb += dp.multiplier.eq(rp.data.multiplier if per else mult_t)


class Requant(wiring.Component):
    """The stand-alone requant unit streaming ``lanes`` codes per cycle.

    Ports (see :mod:`generators.requant` for the beat order)
    -----
    p_stream : in
        A run's parameters, one beat per ``lanes`` channels, ``last`` on the final one; taken
        (one per cycle) while no run is loaded and the pipeline is empty.
    acc_stream : in
        ``data``: ``lanes`` accumulator codes; ``last`` ends the run (the next one loads new
        parameters). Taken (one per cycle) once the parameters are loaded.
    y_stream : out
        ``data``: ``lanes`` output codes; ``last`` of the ``acc`` beat.
    """

    def __init__(self, params: RequantParams):
        self.params = p = params
        lanes = p.lanes
        super().__init__({
            "p_stream": In(stream.Signature(param_layout(p))),
            "acc_stream": In(stream.Signature(data.StructLayout({
                "data": data.ArrayLayout(p.inp.shape(), lanes), "last": 1}))),
            "y_stream": Out(stream.Signature(data.StructLayout({
                "data": data.ArrayLayout(p.out.shape(), lanes), "last": 1}))),
        })

    @property
    def latency(self) -> int:
        return self.params.latency

    def elaborate(self, platform):
        p = self.params
        m = Module()
        pin, ain, o = self.p_stream, self.acc_stream, self.y_stream
        aw = max(1, (p.depth - 1).bit_length())

        en = Signal()
        loaded = Signal()      # a run's parameters are in; acc beats are taken
        busy = Signal()        # a beat is in the pipeline (scalars must not change)
        wptr = Signal(unsigned(aw))
        rptr = Signal(unsigned(aw))
        top = Signal(unsigned(aw))  # parameter beats of the run, minus one
        take_p = Signal()
        take_a = Signal()
        m.d.comb += [
            en.eq(~o.valid | o.ready),
            pin.ready.eq(~loaded & ~busy),
            ain.ready.eq(en & loaded),
            take_p.eq(pin.valid & pin.ready),
            take_a.eq(ain.valid & ain.ready),
        ]

        zp, amin, amax, mult_t, shift_t, scalars = _scalar_regs(p, pin)
        with m.If(take_p):
            m.d.sync += [dst.eq(src) for dst, src in scalars]
            m.d.sync += wptr.eq(wptr + 1)
            with m.If(pin.payload.last):
                m.d.sync += [loaded.eq(1), top.eq(wptr), wptr.eq(0), rptr.eq(0)]
        with m.If(take_a):
            m.d.sync += rptr.eq(Mux(rptr == top, 0, rptr + 1))
            with m.If(ain.payload.last):
                m.d.sync += [loaded.eq(0), rptr.eq(0)]

        # stage A: the parameter memory read, beside the accumulators
        flags_a = Signal(2)
        with m.If(en):
            m.d.sync += flags_a.eq(Cat(take_a, ain.payload.last))
        chain = [flags_a]
        for s in range(p.lane_latency - 1):
            f = Signal(2, name=f"flags{s + 1}")
            with m.If(en):
                m.d.sync += f.eq(chain[-1])
            chain.append(f)
        with m.If(en):
            m.d.sync += [o.valid.eq(chain[-1][0]), o.payload.last.eq(chain[-1][1])]
        m.d.comb += busy.eq(Cat(*(f[0] for f in chain), o.valid).any())

        _param_lanes(m, p, pin, take_p, wptr, rptr, [en] * p.lanes, ain.payload.data,
                     o.payload.data, (zp, amin, amax, mult_t, shift_t))
        return m


class RequantEpilogue(wiring.Component):
    """The requant unit as a MAC-type unit's fused epilogue: ``lanes`` accumulators per beat in,
    ``lanes`` output codes per beat out, one beat per cycle, in lock step with the unit
    (:mod:`generators.lockstep`).

    The parameter memory, its loading and the lanes are the stand-alone unit's
    (:func:`param_layout`, :func:`_param_lanes`). What differs is how a beat finds its
    parameter entry: the accumulator beats carry no ``last`` and no channel, so ``p_stream``
    adds the run's sequence (:data:`~.epilogue.SEQ_FIELDS`, see :mod:`.epilogue`): ``groups``
    walks over the ``P`` entries, each used for ``rep`` beats (``rep_last`` in the final
    group). The beat that ends the sequence ends the run.

    And how the pipeline advances: the unit and the epilogue advance together, the control
    and each lane on its own registered copy of one enable. The last stage's beat goes into
    an output FIFO of :data:`FIFO_DEPTH` beats the cycle after it was loaded (when the FIFO is
    empty and ``y_stream`` ready, past it: the FIFO adds no latency). The enable is true when
    the FIFO has room for the beat already on its way and one more, so the pipeline never
    waits on ``ready`` combinationally and never overflows the FIFO; with ``ready`` high the
    FIFO stays empty and the pipeline never stops.

    Ports
    -----
    p_stream : in
        The run's parameter beats (taken while no run is loaded and the pipeline is empty).
    acc_stream : in
        ``data``: ``lanes`` accumulator codes (the unit's output beat); ``ready`` is the
        epilogue's enable: the unit advances with it (on its copies of the same enable).
    y_stream : out
        ``data``: ``lanes`` output codes, :attr:`latency` cycles after the ``acc`` beat.
    open : out
        A run's parameters are loaded and its last beat has not arrived: the unit may take
        input beats (it gates the array's inputs with it).
    room : out
        The FIFO's room (:data:`generators.lockstep.ROOM`), from which the epilogue and the
        unit (its ``room`` input) make their copies of the enable.
    """

    #: Beats the output FIFO holds: 2 keep the full rate, 4 cover the restart after
    #: back-pressure (the pipeline resumes two cycles after the first beat is taken).
    FIFO_DEPTH = 4

    def __init__(self, params: RequantParams):
        from .epilogue import SEQ_BITS, SEQ_FIELDS

        self.params = p = params
        seq = {name: unsigned(SEQ_BITS) for name in SEQ_FIELDS}
        super().__init__({
            "p_stream": In(stream.Signature(param_layout(p, seq))),
            "acc_stream": In(stream.Signature(data.StructLayout({
                "data": data.ArrayLayout(p.inp.shape(), p.lanes)}))),
            "y_stream": Out(stream.Signature(data.StructLayout({
                "data": data.ArrayLayout(p.out.shape(), p.lanes)}))),
            "open": Out(1),
            "room": Out(ROOM),
        })

    @property
    def latency(self) -> int:
        """Cycles from taking an ``acc`` beat to its ``y`` beat being valid."""
        return self.params.latency

    def elaborate(self, platform):
        from .epilogue import SEQ_BITS

        p = self.params
        m = Module()
        pin, ain, o = self.p_stream, self.acc_stream, self.y_stream
        aw = max(1, (p.depth - 1).bit_length())

        # the control's enable and each lane's
        en, *lane_en = enables(m, self.room, ["en_ctl", *(f"en_lane{i}"
                                                            for i in range(p.lanes))])
        loaded = Signal()
        busy = Signal()
        wptr = Signal(unsigned(aw))
        rptr = Signal(unsigned(aw))
        top = Signal(unsigned(aw))
        take_p = Signal()
        take_a = Signal()
        m.d.comb += [
            pin.ready.eq(~loaded & ~busy),
            ain.ready.eq(en),
            take_p.eq(pin.valid & pin.ready),
            take_a.eq(ain.valid & en),
            self.open.eq(loaded),
        ]
        zp, amin, amax, mult_t, shift_t, scalars = _scalar_regs(p, pin)
        # the sequence as down-counters whose end tests are registered flags, decided when
        # the counter is loaded or decremented (no 32-bit compare or increment before the
        # decision a taken beat makes): beats left of the current entry (``bleft``, ``bend``:
        # it is 0) and groups left after the current one (``gleft``, ``final``: it is 0)
        rep = Signal(unsigned(SEQ_BITS))
        rep_last = Signal(unsigned(SEQ_BITS))
        rep_zero = Signal()
        rep_last_zero = Signal()
        scalars += [(rep, pin.payload.rep_m1), (rep_last, pin.payload.rep_last_m1),
                    (rep_zero, pin.payload.rep_m1 == 0),
                    (rep_last_zero, pin.payload.rep_last_m1 == 0)]
        bleft = Signal(unsigned(SEQ_BITS))
        bend = Signal()
        gleft = Signal(unsigned(SEQ_BITS))
        final = Signal()
        one_group = pin.payload.groups_m1 == 0

        with m.If(take_p):
            # every beat loads the scalars: the last one's count
            m.d.sync += [dst.eq(src) for dst, src in scalars]
            m.d.sync += [wptr.eq(wptr + 1), gleft.eq(pin.payload.groups_m1),
                         final.eq(one_group),
                         bleft.eq(Mux(one_group, pin.payload.rep_last_m1, pin.payload.rep_m1)),
                         bend.eq(Mux(one_group, pin.payload.rep_last_m1 == 0,
                                     pin.payload.rep_m1 == 0))]
            with m.If(pin.payload.last):
                m.d.sync += [loaded.eq(1), top.eq(wptr), wptr.eq(0), rptr.eq(0)]
        with m.If(take_a):
            with m.If(bend):
                with m.If(rptr == top):
                    m.d.sync += rptr.eq(0)
                    with m.If(final):
                        m.d.sync += loaded.eq(0)
                    with m.Else():
                        # the next group, the final one when one is left
                        last_group = gleft == 1
                        m.d.sync += [gleft.eq(gleft - 1), final.eq(last_group),
                                     bleft.eq(Mux(last_group, rep_last, rep)),
                                     bend.eq(Mux(last_group, rep_last_zero, rep_zero))]
                with m.Else():
                    m.d.sync += [rptr.eq(rptr + 1), bleft.eq(Mux(final, rep_last, rep)),
                                 bend.eq(Mux(final, rep_last_zero, rep_zero))]
            with m.Else():
                m.d.sync += [bleft.eq(bleft - 1), bend.eq(bleft == 1)]

        # valid of the beat at each stage: the memory read (stage A), the lane's stages, the
        # last stage (the lanes' y registers)
        chain = _delay_flags(m, take_a, p.lane_latency, en)
        last_v = Signal(name="last_valid")
        with m.If(en):
            m.d.sync += last_v.eq(chain[-1])
        m.d.comb += busy.eq(Cat(*chain, last_v).any())
        y = Signal(data.ArrayLayout(p.out.shape(), p.lanes), name="y_last")
        _param_lanes(m, p, pin, take_p, wptr, rptr, lane_en, ain.payload.data, y,
                     (zp, amin, amax, mult_t, shift_t))

        # the output FIFO: the last stage's beat enters it the cycle after it was loaded
        D = self.FIFO_DEPTH
        loaded_last = Signal(name="loaded_last")     # en of the previous cycle
        m.d.sync += loaded_last.eq(en)
        push = Signal(name="fifo_push")
        pop = Signal(name="fifo_pop")
        count = Signal(range(D + 1), name="fifo_count")
        count_next = Signal(range(D + 1), name="fifo_count_next")
        w_at = Signal(range(D), name="fifo_wptr")
        r_at = Signal(range(D), name="fifo_rptr")
        fifo = Memory(shape=y.shape(), depth=D, init=[])
        m.submodules.fifo = fifo
        wp = fifo.write_port()
        rp = fifo.read_port(domain="comb")
        held = count != 0
        m.d.comb += [
            push.eq(last_v & loaded_last),
            o.valid.eq(held | push),
            o.payload.data.eq(Mux(held, rp.data.as_value(), y.as_value())),
            pop.eq(o.valid & o.ready),
            # a pushed beat taken in the same cycle from an empty FIFO passes it
            wp.en.eq(push & (held | ~o.ready)),
            wp.addr.eq(w_at),
            wp.data.eq(y),
            rp.addr.eq(r_at),
            count_next.eq(count + push - pop),
            # the pipeline advances in the next cycle if there is room for the beat it may
            # load then besides the one it loads now (lockstep.enables)
            self.room.one.eq(count_next < D),
            self.room.two.eq(count_next < D - 1),
            self.room.incoming.eq(chain[-1]),
        ]
        m.d.sync += count.eq(count_next)
        with m.If(wp.en):
            m.d.sync += w_at.eq(Mux(w_at == D - 1, 0, w_at + 1))
        with m.If(pop & held):
            m.d.sync += r_at.eq(Mux(r_at == D - 1, 0, r_at + 1))
        return m


def _delay_flags(m: Module, flag, n: int, en) -> list:
    """``n`` registered copies of ``flag`` advancing under ``en`` (the first one is stage
    A)."""
    chain = []
    prev = flag
    for s in range(n):
        f = Signal(name=f"valid{s}")
        with m.If(en):
            m.d.sync += f.eq(prev)
        chain.append(f)
        prev = f
    return chain


class WithRequant(wiring.Component):
    """A MAC-type unit followed by its fused requant epilogue (config block ``requant``): the
    unit's result beats go through :class:`RequantEpilogue` (one :class:`RequantLane` per
    result lane) and leave as codes of ``out``.

    Ports: ``p_stream`` (the epilogue's parameter beats, first), the unit's input streams
    (taken only while a run's parameters are loaded) and the result stream, named as the
    unit names it. The unit (built with ``lockstep=True``) and the epilogue advance together
    on copies of one enable made from the epilogue's ``room`` (:mod:`generators.lockstep`),
    so the unit keeps its own rate (one result beat per cycle).

    Parameters
    ----------
    unit:
        The unit's component in lock step (its ``signature`` has the input streams,
        ``result`` and ``room``).
    epilogue:
        The epilogue's :class:`RequantParams`-like parameters (``params.epilogue``).
    inputs, result:
        The names of the unit's input streams and of its result stream.
    name:
        The unit's submodule name (it names the unit's signals in the Verilog).
    latency:
        The whole unit's latency (the unit's plus the epilogue's).
    """

    def __init__(self, unit: wiring.Component, epilogue, inputs: tuple[str, ...],
                 result: str, name: str, latency: int):
        self._unit, self._epilogue = unit, RequantEpilogue(epilogue)
        # the parts are elaborated with this wrapper: only an unused wrapper is a mistake
        unit._MustUse__silence = self._epilogue._MustUse__silence = True
        self._inputs, self._result, self._name = inputs, result, name
        self.latency = latency
        members, ep = unit.signature.members, self._epilogue.signature.members
        # the same members (directions included) as the unit's and the epilogue's ports
        super().__init__({"p_stream": ep["p_stream"],
                          **{k: members[k] for k in inputs}, result: ep["y_stream"]})

    def elaborate(self, platform):
        m = Module()
        m.submodules[self._name] = unit = self._unit
        m.submodules.epilogue = epi = self._epilogue
        wiring.connect(m, wiring.flipped(self.p_stream), epi.p_stream)
        wiring.connect(m, getattr(unit, self._result), epi.acc_stream)
        m.d.comb += unit.room.eq(epi.room)
        wiring.connect(m, epi.y_stream, wiring.flipped(getattr(self, self._result)))
        for name in self._inputs:
            outer, inner = getattr(self, name), getattr(unit, name)
            m.d.comb += [inner.payload.eq(outer.payload),
                         inner.valid.eq(outer.valid & epi.open),
                         outer.ready.eq(inner.ready & epi.open)]
        return m

