"""Amaranth component of the N:M sparse DSP chain.

The chain is one row of ``length`` MAC stages in the DSP-cascade style:

* one clock enable ``en = ~y_stream.valid | y_stream.ready``, as in the MAC array: the whole
  chain advances in lock step unless an output beat is held, so back-pressure freezes it and an
  input idle cycle becomes a bubble that flows through like data;
* a beat carries ``length`` compressed weights (value + ``log2(m)``-bit index), a mode, and
  ``length`` windows of ``m`` dense activations, one per stage: the schedule puts the window of
  stage ``s``'s group (group ``s // n`` in mode ``n:m``) on the stage's own lanes, so stage
  ``s`` owns an ``m``:1 multiplexer that picks one activation by its index alone, the same in
  every mode, and every mode uses the same multipliers and adders;
* the picked activation and the weight are registered, then skewed by ``s`` cycles so that
  stage ``s`` sees the beat when stage ``s - 1``'s partial sum for it arrives; each stage
  registers its product (``prod <= w * x``, the M register of a pipelined DSP) and adds it to
  the previous stage's registered partial sum (the cascade P register);
* the last stage's sum is accumulated over the passes of one output; the pass with ``last``
  sends the overflow rule of the total to the ``y_stream`` register.

Cycle behaviour is stated by :class:`.params.SparseChainParams` (``latency`` and
``expected_cycles``) and asserted by the tests.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..hardmul import mul_reg
from .params import SparseChainParams


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
        ``data``: ``x_lanes = length * m`` lanes in the ``x`` format: lanes ``s*m ..
        s*m+m-1`` are the activation window of stage ``s`` (see :mod:`.tiling`).
    y_stream : out
        ``data``: one lane in the accumulator format.
    """

    def __init__(self, params: SparseChainParams):
        self.params = p = params
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

    def _window(self, s: int) -> list:
        """Stage ``s``'s multiplexer inputs, addressed by its index: its own ``m`` lanes of
        ``x_stream`` (the schedule puts the window of the stage's group there in every
        mode), so the multiplexer is ``m``:1 and needs no mode."""
        lanes = self.x_stream.payload.data
        return [lanes[s * self.params.m + j] for j in range(self.params.m)]

    def elaborate(self, platform):
        p = self.params
        m = Module()
        L = p.length
        w_in, x_in, y = self.w_stream, self.x_stream, self.y_stream
        ishape = self._ishape()

        en = Signal()
        fire = Signal()
        m.d.comb += [
            en.eq(~y.valid | y.ready),
            fire.eq(en & w_in.valid & x_in.valid),
            w_in.ready.eq(en & x_in.valid),
            x_in.ready.eq(en & w_in.valid),
        ]

        prev = None
        for s in range(L):
            # the stage's multiplexer, then its A/B input registers skewed by s
            pick = Signal(p.x.shape(), name=f"pick{s}")
            m.d.comb += pick.eq(Array(self._window(s))[w_in.payload.idx[s]])
            # (the multiplier's own input registers are the last skew stage)
            x_s = _delay(m, pick, s, en, f"x{s}", data=True)[-1]
            w_s = _delay(m, w_in.payload.w[s], s, en, f"w{s}", data=True)[-1]
            prod = Signal(p.product.shape(), name=f"prod{s}", reset_less=True)
            psum = Signal(ishape, name=f"psum{s}", reset_less=True)
            mul_reg(m, platform, w_s, x_s, en, prod, f"mul{s}")
            with m.If(en):
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
    """The same chain with no selection at all: stage ``s`` multiplies the first lane of its
    window, whatever the index. Not a unit of its own: the dense-only chain of the same
    length that the sparse chain's logic cost is measured against (``bench/run.py``)."""

    def _window(self, s: int) -> list:
        return [self.x_stream.payload.data[s * self.params.m]]

