"""The relu unit's Amaranth component: one register stage under ``en = ~o.valid | o.ready``."""

from __future__ import annotations

from amaranth.hdl import Module, Mux
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out


class Relu(wiring.Component):
    def __init__(self, params):
        self.params = p = params
        layout = data.StructLayout({"data": data.ArrayLayout(p.fmt.shape(), p.lanes), "last": 1})
        super().__init__({"i_stream": In(stream.Signature(layout)),
                          "o_stream": Out(stream.Signature(layout))})

    def elaborate(self, platform):
        m = Module()
        i, o = self.i_stream, self.o_stream
        en = ~o.valid | o.ready
        m.d.comb += i.ready.eq(en)
        with m.If(en):
            m.d.sync += [o.valid.eq(i.valid), o.payload.last.eq(i.payload.last)]
            for lane in range(self.params.lanes):
                x = i.payload.data[lane]
                m.d.sync += o.payload.data[lane].eq(Mux(x < 0, 0, x))
        return m
