"""UART 8N1 receiver and transmitter with a fractional bit period.

The bit period ``clk_hz / baud`` is kept in sixteenths of a cycle, so a line rate that does not
divide the clock (3 Mbaud from 25 MHz: 8.33 cycles a bit) keeps its average rate: each bit edge
or sample point lands within one clock of where it belongs, with no error accumulating over a
byte.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

FRAC = 16  # sub-cycle steps of the bit-period counters


def bit_period(clk_hz: int, baud: int) -> int:
    """Bit period in 1/16 cycles; raises if the clock is too slow for the line rate."""
    period = round(clk_hz * FRAC / baud)
    if period < 4 * FRAC:
        raise ValueError(f"{baud} baud needs a clock of at least {4 * baud} Hz "
                         f"(got {clk_hz} Hz)")
    return period


class UartRx(wiring.Component):
    """8N1 receiver: samples the middle of each bit after a start edge.

    Ports
    -----
    rx : in
        The line (idle high); synchronised inside.
    data, strobe : out
        ``strobe`` is high for one cycle with a received byte in ``data``.
    frame_error : out
        High for one cycle when a byte's stop bit was low (the byte is dropped).
    """

    def __init__(self, period: int):
        self.period = period
        super().__init__({"rx": In(1, init=1), "data": Out(8), "strobe": Out(1),
                          "frame_error": Out(1)})

    def elaborate(self, platform):
        m = Module()
        p = self.period
        line = Signal(init=1)
        m.submodules.sync_rx = FFSynchronizer(self.rx, line, init=1)
        t = Signal(range(11 * p + FRAC + 1))
        nxt = Signal.like(t)
        nbit = Signal(range(10))
        sr = Signal(8)
        sample = Signal()
        m.d.comb += sample.eq(t >= nxt)
        m.d.comb += self.data.eq(sr)
        with m.FSM():
            with m.State("IDLE"):
                with m.If(~line):
                    m.d.sync += [t.eq(0), nxt.eq(p // 2), nbit.eq(0)]
                    m.next = "BITS"
            with m.State("BITS"):
                m.d.sync += t.eq(t + FRAC)
                with m.If(sample):
                    m.d.sync += [nxt.eq(nxt + p), nbit.eq(nbit + 1)]
                    with m.If(nbit == 0):
                        with m.If(line):  # a glitch, not a start bit
                            m.next = "IDLE"
                    with m.Elif(nbit < 9):
                        m.d.sync += sr.eq(Cat(sr[1:], line))
                    with m.Else():
                        m.d.comb += [self.strobe.eq(line), self.frame_error.eq(~line)]
                        m.next = "IDLE"
        return m


class UartTx(wiring.Component):
    """8N1 transmitter taking bytes from a stream.

    Ports
    -----
    i : in stream of 8-bit bytes
    tx : out
        The line (idle high).
    """

    def __init__(self, period: int):
        self.period = period
        super().__init__({"i": In(stream.Signature(8)), "tx": Out(1, init=1)})

    def elaborate(self, platform):
        m = Module()
        p = self.period
        t = Signal(range(11 * p + FRAC + 1))
        nxt = Signal.like(t)
        nbit = Signal(range(11))
        sr = Signal(10, init=0x3FF)
        m.d.comb += self.tx.eq(sr[0])
        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.i.valid):
                    m.d.sync += [sr.eq(Cat(Const(0, 1), self.i.payload, Const(1, 1))),
                                 t.eq(0), nxt.eq(p), nbit.eq(0)]
                    m.next = "BITS"
            with m.State("BITS"):
                m.d.sync += t.eq(t + FRAC)
                with m.If(t >= nxt):
                    m.d.sync += [sr.eq(Cat(sr[1:], Const(1, 1))), nxt.eq(nxt + p),
                                 nbit.eq(nbit + 1)]
                    with m.If(nbit == 9):
                        m.next = "IDLE"
        return m
