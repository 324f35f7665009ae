"""Amaranth component of the N:M sparse DSP chain.

The chain is one row of ``length`` MAC stages in the DSP-cascade style:

* one clock enable ``en = ~y_stream.valid | y_stream.ready``, as in the MAC array: the whole
  chain advances in lock step unless an output beat is held, so back-pressure freezes it and an
  input idle cycle becomes a bubble that flows through like data;
* a beat carries ``length`` compressed weights (value + ``log2(m)``-bit index), a mode, and
  the pass's ``k_per_pass`` dense activations of one column, each once (see :mod:`.tiling`;
  in a mode with ``n > length`` a group's slots span ``ceil(n / length)`` weight beats, which
  all take the one activation beat: it is accepted with the last of them):
  in mode ``n:m`` stage ``s`` holds a slot of group ``g = s // n`` and picks lane ``g * m +
  idx[s]``, i.e. an ``m``:1 multiplexer over its group's window, the window's lanes fixed
  wiring per mode. With one mode there is no mode multiplexer; with several, each stage first
  selects its window among the (distinct) windows its group has in the modes, by the beat's
  mode. A stage past the mode's last whole group (``s >= (length // n) * n``) multiplies 0 in
  that mode (its weight lanes are zero too), so the lanes past ``k_per_pass`` are don't-care;
  every mode uses the same multipliers and adders;
* the picked activation and the weight are registered, then skewed by ``s`` cycles so that
  stage ``s`` sees the beat when stage ``s - 1``'s partial sum for it arrives; each stage
  registers its product (``prod <= w * x``, the M register of a pipelined DSP) and adds it to
  the previous stage's registered partial sum (the cascade P register);
* the last stage's sum is accumulated over the passes of one output; the pass with ``last``
  sends the overflow rule of the total to the ``y_stream`` register.

With the fused requant epilogue the chain runs in lock step with it (``lockstep``, see
:mod:`generators.lockstep`): instead of ``en`` the control and each group of
:data:`STAGES_PER_ENABLE` stages advance on their own registered copy of the enable
(made from the epilogue's ``room`` input).

Cycle behaviour is stated by :class:`.params.SparseChainParams` (``latency`` and
``expected_cycles``) and asserted by the tests.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..hardmul import mul_reg
from ..lockstep import ROOM, enables
from .params import SparseChainParams

#: Stages that share one copy of the enable in lock step.
STAGES_PER_ENABLE = 4


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


class SparseChain(wiring.Component):
    """A chain of ``length`` MAC stages streaming ``y = w @ x`` from N:M-compressed ``w``.

    Ports (``amaranth.lib.stream`` ready/valid streams; see :mod:`.tiling` for the order)
    -----------------------------------------------------------------------------------
    w_stream : in
        ``w``: ``length`` lanes in the ``w`` format; ``idx``: ``length`` lanes of
        ``log2(m)`` bits; ``mode``: position of the beat's N:M pattern in the config's
        ``modes``; ``last``: the pass that completes an output.
    x_stream : in
        ``data``: ``x_lanes`` lanes in the ``x`` format (the largest ``k_per_pass`` of the
        modes): the pass's consecutive K positions of one column on the first
        ``k_per_pass(mode)`` lanes, the rest don't-care (see :mod:`.tiling`).
    y_stream : out
        ``data``: one lane in the accumulator format.
    room : in (``lockstep`` only)
        The epilogue's FIFO room (:mod:`generators.lockstep`): the chain advances on copies
        of the enable made from it; ``y_stream.ready`` is then not
        read (the consumer advances with the chain).
    """

    def __init__(self, params: SparseChainParams, lockstep: bool = False):
        self.params = p = params
        self.lockstep = lockstep
        super().__init__({
            "w_stream": In(stream.Signature(data.StructLayout({
                "w": data.ArrayLayout(p.w.shape(), p.length),
                "idx": data.ArrayLayout(unsigned(p.index_bits), p.length),
                "mode": unsigned(p.mode_bits),
                "last": 1,
            }))),
            "x_stream": In(stream.Signature(data.StructLayout({
                "data": data.ArrayLayout(p.x.shape(), p.x_lanes)}))),
            "y_stream": Out(stream.Signature(data.StructLayout({
                "data": data.ArrayLayout(p.acc.shape(), 1)}))),
            **({"room": In(ROOM)} if lockstep else {}),
        })

    @property
    def latency(self) -> int:
        return self.params.latency

    def expected_cycles(self, o: int, k: int, b: int, mode=None) -> int:
        return self.params.expected_cycles(o, k, b, mode)

    def _ishape(self):
        p = self.params
        return signed(p.internal_width) if p.acc.signed else unsigned(p.internal_width)

    def _clamp(self, value):
        """The accumulator's overflow rule on an internal-width value."""
        p = self.params
        if p.overflow == "wrap" or p.internal_width == p.acc.width:
            return value
        lo, hi = p.acc.min_code, p.acc.max_code
        if not p.acc.signed:
            return Mux(value > hi, hi, value)
        return Mux(value > hi, hi, Mux(value < lo, lo, value))

    def _windows(self, s: int) -> list:
        """Stage ``s``'s windows: ``(first lane, mode codes)`` for each distinct window its
        group has in the modes, the window of mode ``n:m`` being lanes ``(s // n) * m + j``
        (``j < m``), addressed by the index; first lane ``None`` for the modes in which the
        stage holds no slot (it then multiplies 0)."""
        p = self.params
        out: dict = {}
        for code, nm in enumerate(p.mode_list):
            g = s // nm.n
            out.setdefault(None if g >= p.groups_per_pass(nm) else g * p.m, []).append(code)
        return list(out.items())

    def _pick(self, s: int, idx, mode):
        """The activation stage ``s`` multiplies: its index's lane of the window the beat's
        mode gives it (the window chosen by mode over fixed lanes, then the ``m``:1 index
        multiplexer; no mode multiplexer where all modes share the window)."""
        p = self.params
        lanes = self.x_stream.payload.data
        zero = Const(0, p.x.shape())

        def window(first):
            return [zero] * p.m if first is None else [lanes[first + j] for j in range(p.m)]

        found = self._windows(s)
        cols = window(found[-1][0])
        for first, codes in reversed(found[:-1]):
            hit = mode == codes[0]
            for c in codes[1:]:
                hit = hit | (mode == c)
            cols = [Mux(hit, a, b) for a, b in zip(window(first), cols, strict=True)]
        if len(found) == 1 and found[0][0] is None:
            return zero
        return Array(cols)[idx]

    def _x_done(self, m: Module, fire):
        """Whether the weight beat taken now is the last of its activation beat's (only built
        when some mode has ``n > length``: a counter of the weight beats taken
        against the beat's mode's :meth:`~.params.SparseChainParams.beats_per_group`)."""
        p = self.params
        q = [p.beats_per_group(nm) for nm in p.mode_list]
        sub = Signal(range(max(q)), name="x_sub")    # weight beats already taken on this x beat
        done = Signal(name="x_done")
        # (a table over every value of the mode field: unused codes as the first mode)
        last = [Const(v - 1, range(max(q))) for v in q]
        last += [last[0]] * ((1 << p.mode_bits) - len(q))
        m.d.comb += done.eq(Array(last)[self.w_stream.payload.mode] == sub)
        with m.If(fire):
            m.d.sync += sub.eq(Mux(done, 0, sub + 1))
        return done

    def elaborate(self, platform):
        p = self.params
        m = Module()
        L = p.length
        w_in, x_in, y = self.w_stream, self.x_stream, self.y_stream
        ishape = self._ishape()

        groups = -(-L // STAGES_PER_ENABLE)
        if self.lockstep:
            en, *en_groups = enables(m, self.room, ["en_ctl", *(f"en_stages{g}"
                                                                   for g in range(groups))])
        else:
            en = Signal()
            m.d.comb += en.eq(~y.valid | y.ready)
            en_groups = [en] * groups
        fire = Signal()
        m.d.comb += [
            fire.eq(en & w_in.valid & x_in.valid),
            w_in.ready.eq(en & x_in.valid),
            x_in.ready.eq(en & w_in.valid if not p.spans else
                          en & w_in.valid & self._x_done(m, fire)),
        ]

        prev = None
        for s in range(L):
            en_s = en_groups[s // STAGES_PER_ENABLE]
            # the stage's multiplexer, then its A/B input registers skewed by s
            pick = Signal(p.x.shape(), name=f"pick{s}")
            m.d.comb += pick.eq(self._pick(s, w_in.payload.idx[s], w_in.payload.mode))
            # (the multiplier's own input registers are the last skew stage)
            x_s = _delay(m, pick, s, en_s, f"x{s}", data=True)[-1]
            w_s = _delay(m, w_in.payload.w[s], s, en_s, f"w{s}", data=True)[-1]
            prod = Signal(p.product.shape(), name=f"prod{s}", reset_less=True)
            psum = Signal(ishape, name=f"psum{s}", reset_less=True)
            mul_reg(m, platform, w_s, x_s, en_s, prod, f"mul{s}")
            with m.If(en_s):
                m.d.sync += psum.eq(prod if prev is None else prev + prod)
            prev = psum

        # valid and last of the beat whose cascade sum is at the end of the chain now
        flags = Signal(2)
        m.d.comb += flags.eq(Cat(fire, w_in.payload.last))
        fl = _delay(m, flags, L + 2, en, "flags")[-1]
        valid, last = fl[0], fl[1]

        acc = Signal(ishape, name="acc", reset_less=True)
        fresh = Signal(init=1)   # the next pass starts a new output
        total = Signal(ishape, name="total")
        m.d.comb += total.eq(Mux(fresh, 0, acc) + prev)
        with m.If(en):
            m.d.sync += y.valid.eq(valid & last)
            with m.If(valid):
                m.d.sync += [acc.eq(total), fresh.eq(last)]
                with m.If(last):
                    m.d.sync += y.payload.data[0].eq(self._clamp(total))
        return m


class DenseChainBaseline(SparseChain):
    """The same chain with no selection at all: a dense chain of ``length`` stages, stage
    ``s`` multiplying lane ``s`` of the beat (``s mod x_lanes``) whatever the index and the
    mode, i.e. the dense ``m:m`` layout with the index wired to ``s mod m``. Not a unit of its
    own: the dense-only chain of the same length that the sparse chain's logic cost is
    measured against (``bench/run.py``)."""

    def _pick(self, s: int, idx, mode):
        return self.x_stream.payload.data[s % self.params.x_lanes]
