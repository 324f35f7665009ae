"""Amaranth component of the copy unit: one register stage under the clock enable
``en = ~o_stream.valid | o_stream.ready`` (as GELU's pipeline): back-pressure holds the
registered beat, an idle input cycle becomes a bubble, and with ``o_stream.ready`` high a beat
passes every cycle."""

from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .params import CopyParams


class Copy(wiring.Component):
    """Copies its input beats to its output, ``lanes`` elements per cycle.

    Ports
    -----
    i_stream : in
        ``data``: ``lanes`` lanes in the ``format``; ``last``: passed through.
    o_stream : out
        ``data``: the same lanes; ``last`` of the input beat.
    """

    def __init__(self, params: CopyParams):
        self.params = p = params
        super().__init__({
            "i_stream": In(stream.Signature(data.StructLayout({
                "data": data.ArrayLayout(p.format.shape(), p.lanes), "last": 1}))),
            "o_stream": Out(stream.Signature(data.StructLayout({
                "data": data.ArrayLayout(p.format.shape(), p.lanes), "last": 1}))),
        })

    @property
    def latency(self) -> int:
        return self.params.latency

    def elaborate(self, platform):
        m = Module()
        i, o = self.i_stream, self.o_stream
        en = ~o.valid | o.ready
        m.d.comb += i.ready.eq(en)
        with m.If(en):
            m.d.sync += [o.valid.eq(i.valid), o.payload.eq(i.payload)]
        return m
