"""Amaranth component of the softmax unit: three passes over row buffers, all overlapped.

1. **Store and max** -- input beats are written to a row buffer (``x_depth`` beats, two rows
   plus slack) while the running maximum of the row's kept lanes is kept; the row's ``last``
   beat pushes ``(max, beats)`` into a small FIFO.
2. **Exp and sum** -- once a row's maximum is known, its beats are read back: ``d = max - x``
   addresses the exp table (one read port per lane, registered), the ``E`` values are written
   to the exp buffer and summed exactly; the row's sum is pushed into a second FIFO.
3. **Divide** -- once a row's sum is known, its ``E`` beats are read and divided by a
   restoring divider of ``out_frac + 1`` pipelined stages (one quotient bit each), rounded to
   nearest, saturated. This stage alone has the output's clock enable
   ``~o_stream.valid | o_stream.ready``: back-pressure stops it, the first two keep working
   until their buffers fill.

Each pass moves one beat per cycle, so rows stream at ``lanes`` elements per cycle while a
row is stored, the previous one summed and the one before divided (see
:meth:`.params.SoftmaxParams.expected_cycles`).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .params import SUM_DEPTH, SoftmaxParams


class Softmax(wiring.Component):
    """Row-wise softmax streaming ``lanes`` elements per cycle.

    Ports
    -----
    i_stream : in
        ``data``: ``lanes`` lanes in the ``in`` format; ``keep`` (only when ``lanes > 1``):
        one bit per lane in use; ``last``: the row's final beat.
    o_stream : out
        ``data``: ``lanes`` lanes in the ``out`` format (unused lanes 0); ``last``: the row's
        final beat.
    """

    def __init__(self, params: SoftmaxParams):
        self.params = p = params
        fields = {"data": data.ArrayLayout(p.inp.shape(), p.lanes)}
        if p.lanes > 1:
            fields["keep"] = p.lanes
        fields["last"] = 1
        super().__init__({
            "i_stream": In(stream.Signature(data.StructLayout(fields))),
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
        lanes, w = p.lanes, p.inp.width
        aw1 = (p.x_depth - 1).bit_length()
        aw2 = (p.e_depth - 1).bit_length()
        cb = p.beats_max.bit_length()
        keep_in = i.payload.keep if lanes > 1 else Const(1, 1)

        # -- pass 1: store and max ----------------------------------------------------------
        xbuf = Memory(shape=unsigned(lanes * w + lanes), depth=p.x_depth, init=[])
        m.submodules.xbuf = xbuf
        xw = xbuf.write_port()
        xr = xbuf.read_port(domain="sync")
        m.submodules.maxfifo = maxfifo = SyncFIFO(width=w + cb, depth=p.x_depth)

        wp1 = Signal(aw1 + 1)
        rp1 = Signal(aw1 + 1)
        used1 = Signal(aw1 + 1)
        m.d.comb += used1.eq(wp1 - rp1)
        fire1 = Signal()
        m.d.comb += [i.ready.eq((used1 < p.x_depth) & maxfifo.w_rdy),
                     fire1.eq(i.valid & i.ready)]

        beat_max = None
        for lane in range(lanes):
            v = Mux(keep_in[lane], i.payload.data[lane], p.inp.min_code)
            beat_max = v if beat_max is None else Mux(v > beat_max, v, beat_max)
        bmax = Signal(p.inp.shape())
        m.d.comb += bmax.eq(beat_max)
        run_max = Signal(p.inp.shape())
        first1 = Signal(init=1)
        cnt1 = Signal(cb)
        cur = Signal(p.inp.shape())
        n1 = Signal(cb)
        m.d.comb += [cur.eq(Mux(first1 | (bmax > run_max), bmax, run_max)),
                     n1.eq(Mux(first1, 1, cnt1 + 1))]
        m.d.comb += [xw.addr.eq(wp1[:aw1]), xw.data.eq(Cat(i.payload.data.as_value(), keep_in)),
                     xw.en.eq(fire1),
                     maxfifo.w_data.eq(Cat(cur, n1)),
                     maxfifo.w_en.eq(fire1 & i.payload.last)]
        with m.If(fire1):
            m.d.sync += [wp1.eq(wp1 + 1), run_max.eq(cur), cnt1.eq(n1),
                         first1.eq(i.payload.last)]

        # -- pass 2: exp and sum --------------------------------------------------------------
        ebuf = Memory(shape=unsigned(lanes * p.e_bits), depth=p.e_depth, init=[])
        m.submodules.ebuf = ebuf
        ew = ebuf.write_port()
        er = ebuf.read_port(domain="sync")
        m.submodules.sumfifo = sumfifo = SyncFIFO(width=p.sum_bits + cb, depth=p.e_depth)

        resv2 = Signal(aw2 + 1)     # E slots reserved by issued beats
        rp3 = Signal(aw2 + 1)
        used2 = Signal(aw2 + 1)
        m.d.comb += used2.eq(resv2 - rp3)
        cnt2 = Signal(cb)
        max2 = maxfifo.r_data[:w].as_signed() if p.inp.signed else maxfifo.r_data[:w]
        n2 = maxfifo.r_data[w:]
        issue2 = Signal()
        last2 = Signal()
        m.d.comb += [issue2.eq(maxfifo.r_rdy & (used2 < p.e_depth)),
                     last2.eq(cnt2 + 1 == n2),
                     xr.addr.eq(rp1[:aw1]), xr.en.eq(1),
                     maxfifo.r_en.eq(issue2 & last2)]
        with m.If(issue2):
            m.d.sync += [rp1.eq(rp1 + 1), resv2.eq(resv2 + 1),
                         cnt2.eq(Mux(last2, 0, cnt2 + 1))]

        def pipe(value, name, stages: int = 1):
            """``value`` delayed by ``stages`` registers (pass 2 never stalls)."""
            out = value
            for s in range(stages):
                reg = Signal(len(Value.cast(value)), name=f"{name}_{s + 1}")
                m.d.sync += reg.eq(out)
                out = reg
            return out

        # a1: buffer data; carry max, flags, slot, row length
        ctrl = Cat(issue2, last2, cnt2 == 0, resv2[:aw2], n2)
        ctrl1 = pipe(ctrl, "ctrl2a")
        max_a1 = Signal(p.inp.shape(), name="max_a1")
        m.d.sync += max_a1.eq(max2)
        xd = xr.data
        # a2: clamped table addresses
        tmax = p.table_size - 1
        addr2 = []
        for lane in range(lanes):
            xl = xd[lane * w:(lane + 1) * w]
            xl = xl.as_signed() if p.inp.signed else xl
            d = Signal(unsigned(w + 1), name=f"d{lane}")
            m.d.comb += d.eq(max_a1 - xl)
            a = Signal(unsigned(p.addr_bits), name=f"taddr{lane}")
            m.d.sync += a.eq(Mux(d > tmax, tmax, d))
            addr2.append(a)
        keep2 = Signal(lanes, name="keep_a2")
        m.d.sync += keep2.eq(xd[lanes * w:])
        ctrl2 = pipe(ctrl1, "ctrl2b")
        # a3: table outputs (registered in the memory)
        table = Memory(shape=unsigned(p.e_bits), depth=p.table_size, init=p.table)
        m.submodules.exptable = table
        tdata = []
        for lane in range(lanes):
            rp = table.read_port(domain="sync")
            m.d.comb += [rp.addr.eq(addr2[lane]), rp.en.eq(1)]
            tdata.append(rp.data)
        keep3 = pipe(keep2, "keep_a3")
        ctrl3 = pipe(ctrl2, "ctrl2c")
        # a4: masked E values, registered
        e4 = []
        for lane in range(lanes):
            e = Signal(unsigned(p.e_bits), name=f"e{lane}")
            m.d.sync += e.eq(Mux(keep3[lane], tdata[lane], 0))
            e4.append(e)
        ctrl4 = pipe(ctrl3, "ctrl2d")
        v4, slot4 = ctrl4[0], ctrl4[3:3 + aw2]
        m.d.comb += [ew.addr.eq(slot4), ew.data.eq(Cat(*e4)), ew.en.eq(v4)]
        # a5: beat sum; then the row sum, pushed on the row's last beat
        bsum = Signal(unsigned(p.sum_bits), name="bsum")
        total = 0
        for e in e4:
            total = total + e
        m.d.sync += bsum.eq(total)
        ctrl5 = pipe(ctrl4, "ctrl2e")
        v5, last5, first5 = ctrl5[0], ctrl5[1], ctrl5[2]
        n5 = ctrl5[3 + aw2:]
        acc = Signal(unsigned(p.sum_bits), name="rowsum")
        s5 = Signal(unsigned(p.sum_bits), name="rowsum_next")
        m.d.comb += s5.eq(Mux(first5, bsum, acc + bsum))
        with m.If(v5):
            m.d.sync += acc.eq(s5)
        m.d.comb += [sumfifo.w_data.eq(Cat(s5, n5)), sumfifo.w_en.eq(v5 & last5)]
        assert SUM_DEPTH == 5  # a1..a5 above, then the FIFO's one cycle

        # -- pass 3: divide (stalled by the output) -------------------------------------------
        en = Signal()
        m.d.comb += en.eq(~o.valid | o.ready)
        cnt3 = Signal(cb)
        s3 = sumfifo.r_data[:p.sum_bits]
        n3 = sumfifo.r_data[p.sum_bits:]
        issue3 = Signal()
        last3 = Signal()
        m.d.comb += [issue3.eq(en & sumfifo.r_rdy), last3.eq(cnt3 + 1 == n3),
                     er.addr.eq(rp3[:aw2]), er.en.eq(en),
                     sumfifo.r_en.eq(issue3 & last3)]
        with m.If(issue3):
            m.d.sync += [rp3.eq(rp3 + 1), cnt3.eq(Mux(last3, 0, cnt3 + 1))]

        def reg3(value, shape, name):
            r = Signal(shape, name=name)
            with m.If(en):
                m.d.sync += r.eq(value)
            return r

        fo = p.out_frac
        nb = p.num_bits
        v = reg3(issue3, 1, "v3_1")
        last = reg3(last3 & issue3, 1, "last3_1")
        ssum = reg3(s3, unsigned(p.sum_bits), "s3_1")
        # b2: numerators 2 * E * 2**fo + S and the divisor 2 * S
        rem = []
        for lane in range(lanes):
            el = er.data[lane * p.e_bits:(lane + 1) * p.e_bits]
            rem.append(reg3((el << (fo + 1)) + ssum, unsigned(nb), f"num{lane}"))
        div = reg3(ssum << 1, unsigned(p.sum_bits + 1), "div_2")
        v = reg3(v, 1, "v3_2")
        last = reg3(last, 1, "last3_2")
        quo = [Const(0, p.quotient_bits)] * lanes
        for j in range(fo + 1):
            b = fo - j
            nrem, nquo = [], []
            for lane in range(lanes):
                shifted = div << b
                ge = rem[lane] >= shifted
                nrem.append(reg3(Mux(ge, rem[lane] - shifted, rem[lane]), unsigned(nb),
                                 f"rem{lane}_{j}"))
                nquo.append(reg3(quo[lane] | (ge << b), unsigned(p.quotient_bits),
                                 f"quo{lane}_{j}"))
            rem, quo = nrem, nquo
            if j < fo:
                div = reg3(div, unsigned(p.sum_bits + 1), f"div_{j + 3}")
            v = reg3(v, 1, f"v3_{j + 3}")
            last = reg3(last, 1, f"last3_{j + 3}")
        hi = p.out.max_code
        with m.If(en):
            m.d.sync += [o.valid.eq(v), o.payload.last.eq(last)]
            for lane in range(lanes):
                m.d.sync += o.payload.data[lane].eq(Mux(quo[lane] > hi, hi, quo[lane]))
        return m

