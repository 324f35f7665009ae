"""Amaranth component of the GELU unit.

One clock enable ``en = ~o_stream.valid | o_stream.ready`` advances the whole pipeline (as in
the MAC array): back-pressure freezes it, an idle input cycle becomes a bubble. Every lane has
its own table read port (``table``) or its own two multipliers (``poly``); table outputs,
multiplier inputs and outputs are registered. Constants come from :mod:`.params` (the same
function as the golden model).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .params import COEF_FRAC, SEG_BITS, GeluParams


def _sbits(values) -> int:
    """Signed width holding every value."""
    return max(max(v.bit_length() for v in values), 1) + 1


class Gelu(wiring.Component):
    """Element-wise GELU streaming ``lanes`` elements per cycle.

    Ports
    -----
    i_stream : in
        ``data``: ``lanes`` lanes in the ``in`` format; ``last``: passed through.
    o_stream : out
        ``data``: ``lanes`` lanes in the ``out`` format; ``last`` of the input beat.
    """

    def __init__(self, params: GeluParams):
        self.params = p = params
        super().__init__({
            "i_stream": In(stream.Signature(data.StructLayout({
                "data": data.ArrayLayout(p.inp.shape(), p.lanes), "last": 1}))),
            "o_stream": Out(stream.Signature(data.StructLayout({
                "data": data.ArrayLayout(p.out.shape(), p.lanes), "last": 1}))),
        })

    @property
    def latency(self) -> int:
        return self.params.latency

    def elaborate(self, platform):
        p = self.params
        m = Module()
        i, o = self.i_stream, self.o_stream
        en = Signal()
        m.d.comb += [en.eq(~o.valid | o.ready), i.ready.eq(en)]

        # valid and last travel beside the data, one register per pipeline stage
        flags = [Signal(2, name="flags0")]
        m.d.comb += flags[0].eq(Cat(i.valid, i.payload.last))
        for s in range(p.latency - 1):
            reg = Signal(2, name=f"flags{s + 1}")
            with m.If(en):
                m.d.sync += reg.eq(flags[-1])
            flags.append(reg)
        with m.If(en):
            m.d.sync += [o.valid.eq(flags[-1][0]), o.payload.last.eq(flags[-1][1])]

        for lane in range(p.lanes):
            x = i.payload.data[lane]
            if p.kind == "table":
                y = self._table_lane(m, en, x, lane)
            else:
                y = self._poly_lane(m, en, x, lane)
            with m.If(en):
                m.d.sync += o.payload.data[lane].eq(y)
        return m

    def _table_lane(self, m, en, x, lane):
        p = self.params
        w = p.inp.width
        mem = Memory(shape=p.out.shape(), depth=len(p.table), init=p.table)
        m.submodules[f"table{lane}"] = mem
        rp = mem.read_port(domain="sync")
        # x - min_code: the code with its sign bit flipped, as an unsigned address
        addr = Signal(unsigned(w), name=f"addr{lane}")
        m.d.comb += [addr.eq(x.as_unsigned() ^ (1 << (w - 1))), rp.addr.eq(addr), rp.en.eq(en)]
        return rp.data

    def _poly_lane(self, m, en, x, lane):
        p = self.params
        q = p.poly
        g = p.internal_frac
        w = p.inp.width
        k = q.k
        sh = g - p.out.frac_bits
        c0w, c1w, c2w = _sbits(q.c0), _sbits(q.c1), _sbits(q.c2)

        def reg(shape, value, name):
            r = Signal(shape, name=f"{name}{lane}", reset_less=True)
            with m.If(en):
                m.d.sync += r.eq(value)
            return r

        # stage 1: |x|, segment (clamped beyond span), offset, relu
        u = Signal(unsigned(w), name=f"u{lane}")
        m.d.comb += u.eq(Mux(x < 0, -x, x))
        inside1 = reg(1, u < q.span, "inside1_")
        seg1 = reg(unsigned(SEG_BITS), Mux(u < q.span, u >> k, 0), "seg1_")
        t1 = reg(unsigned(max(k, 1)), u & ((1 << k) - 1) if k else 0, "t1_")
        rw = w + (g - p.inp.frac_bits) + 1
        r1 = reg(signed(rw), Mux(x < 0, 0, x) << (g - p.inp.frac_bits), "r1_")
        # stage 2: coefficient tables (registered outputs)
        coef = {}
        for nm, vals, cw in (("c0", q.c0, c0w), ("c1", q.c1, c1w), ("c2", q.c2, c2w)):
            mem = Memory(shape=signed(cw), depth=len(vals), init=vals)
            m.submodules[f"{nm}_{lane}"] = mem
            rp = mem.read_port(domain="sync")
            m.d.comb += [rp.addr.eq(seg1), rp.en.eq(en)]
            coef[nm] = rp.data
        inside2 = reg(1, inside1, "inside2_")
        t2 = reg(t1.shape(), t1, "t2_")
        r2 = reg(r1.shape(), r1, "r2_")
        # stage 3: first product c2 * t (registered multiplier output)
        p1 = reg(signed(c2w + k + 1), coef["c2"] * t2, "p1_")
        c1_3 = reg(signed(c1w), coef["c1"], "c1_3_")
        c0_3 = reg(signed(c0w), coef["c0"], "c0_3_")
        t3 = reg(t1.shape(), t2, "t3_")
        r3 = reg(r1.shape(), r2, "r3_")
        inside3 = reg(1, inside2, "inside3_")
        # stage 4: c1 + h1 (registered, so the multiplier's input is a register)
        sw = max(c1w, c2w + 1) + 1
        s4 = reg(signed(sw), c1_3 + (p1 >> k), "s4_")
        t4 = reg(t1.shape(), t3, "t4_")
        c0_4 = reg(signed(c0w), c0_3, "c0_4_")
        r4 = reg(r1.shape(), r3, "r4_")
        inside4 = reg(1, inside3, "inside4_")
        # stage 5: second product (c1 + h1) * t (registered multiplier output)
        p2 = reg(signed(sw + k + 1), s4 * t4, "p2_")
        c0_5 = reg(signed(c0w), c0_4, "c0_5_")
        r5 = reg(r1.shape(), r4, "r5_")
        inside5 = reg(1, inside4, "inside5_")
        # stage 6: D (registered)
        dw = max(c0w, sw + 1) + 2
        d6 = reg(signed(dw), Mux(inside5, c0_5 + (p2 >> (k + COEF_FRAC)), 0), "d6_")
        r6 = reg(r1.shape(), r5, "r6_")
        # stage 7: R - D, rounding, saturation (into the output register)
        vw = max(rw, dw) + 2
        v7 = Signal(signed(vw), name=f"v7_{lane}")
        m.d.comb += v7.eq((r6 - d6 + (1 << (sh - 1))) >> sh)
        lo, hi = p.out.min_code, p.out.max_code
        return Mux(v7 > hi, hi, Mux(v7 < lo, lo, v7))

