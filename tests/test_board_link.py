"""Amaranth-simulator tests of the board's link gateware: CRC, UART, and the protocol engine
on bytes (framing errors, NAKs, duplicates, garbage), against docs/protocol.md."""

from __future__ import annotations

import binascii
import json
import struct

import numpy as np
import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator
from board_wire import frame, parse_reply, parse_status

from boards.crc import crc16, crc16_update
from boards.top import BoardCore
from boards.uart import UartRx, UartTx, bit_period
from generators.board_info import describe, describe_bytes
from generators.config import parse_config

SMALL = {
    "name": "tiny", "board": "ulx3s", "link": {"uart": 3000000}, "buffer_bytes": 256,
    "units": [
        {"name": "mac2", "unit": "mac_array", "rows": 2, "cols": 2, "a": "int8", "b": "int8",
         "acc": "int32"},
        {"name": "sp4", "unit": "sparse_chain", "length": 4, "m": 4, "modes": ["2:4", "4:4"],
         "w": "int8", "x": "int8", "acc": "int32"},
    ],
}


@pytest.fixture(scope="module")
def small_cfg():
    return parse_config(SMALL, "<tiny>")


def test_crc_matches_crc_hqx(rng):
    assert crc16(b"123456789") == 0x29B1 == binascii.crc_hqx(b"123456789", 0xFFFF)
    data = bytes(rng.integers(0, 256, 40, dtype=np.uint8))
    crc, byte = Signal(16), Signal(8)
    m = Module()
    out = Signal(16)
    m.d.comb += out.eq(crc16_update(crc, byte))

    async def bench(ctx):
        value = 0xFFFF
        for b in data:
            ctx.set(crc, value)
            ctx.set(byte, b)
            value = ctx.get(out)
        assert value == binascii.crc_hqx(data, 0xFFFF)

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()


def test_uart_loopback_fractional_baud():
    """TX into RX at 3 Mbaud from 25 MHz (8.33 cycles a bit) carries every byte value."""
    period = bit_period(25_000_000, 3_000_000)
    m = Module()
    m.submodules.tx = tx = UartTx(period)
    m.submodules.rx = rx = UartRx(period)
    m.d.comb += rx.rx.eq(tx.tx)
    data = list(range(256))
    got = []

    async def bench(ctx):
        for b in data:
            ctx.set(tx.i.payload, b)
            ctx.set(tx.i.valid, 1)
            await ctx.tick().until(tx.i.ready)
            ctx.set(tx.i.valid, 0)
            for _ in range(200):
                if ctx.get(rx.strobe):
                    got.append(ctx.get(rx.data))
                    break
                await ctx.tick()
        assert got == data

    sim = Simulator(m)
    sim.add_clock(4e-8)
    sim.add_testbench(bench)
    sim.run()


class Link:
    """Drives a :class:`BoardCore` in the Amaranth simulator, byte by byte."""

    def __init__(self, cfg):
        self.core = BoardCore(cfg)

    def run(self, script):
        """``script(send, recv)`` is an async function using ``await send(bytes)`` and
        ``await recv()`` (one reply frame)."""
        core = self.core

        async def bench(ctx):
            ctx.set(core.tx.ready, 1)

            async def send(data: bytes):
                for b in data:
                    ctx.set(core.rx.payload, b)
                    ctx.set(core.rx.valid, 1)
                    await ctx.tick().until(core.rx.ready)
                ctx.set(core.rx.valid, 0)

            async def recv(limit: int = 200_000) -> bytes:
                out = bytearray()
                for _ in range(limit):
                    await ctx.tick()
                    if ctx.get(core.tx.valid):
                        b = ctx.get(core.tx.payload)
                        out.append(b)
                        if b == 0:
                            return bytes(out)
                raise AssertionError(f"no reply within {limit} cycles (got {out.hex()})")

            await script(send, recv)

        sim = Simulator(core)
        sim.add_clock(1e-8)
        sim.add_testbench(bench)
        sim.run()


async def request(send, recv, op, seq, payload=b""):
    await send(frame(op, seq, payload))
    rop, rseq, body = parse_reply(await recv())
    assert rseq == seq
    return rop, body


def test_info_write_read_status(small_cfg):
    desc = describe_bytes(small_cfg)
    info = describe(small_cfg)
    a_buf = info["units"][0]["streams"]["a_stream"]
    bb = a_buf["beat_bytes"]

    async def script(send, recv):
        op, body = await request(send, recv, 0x01, 1, struct.pack("<H", 0))
        assert op == 0x81
        total = struct.unpack("<H", body[:2])[0]
        assert total == len(desc)
        got = body[2:]
        seq = 2
        while len(got) < total:
            op, body = await request(send, recv, 0x01, seq, struct.pack("<H", len(got)))
            got += body[2:]
            seq += 1
        assert got == desc and json.loads(got) == info
        # WRITE two beats, READ them back (pad bits of the top byte come back as 0)
        data = bytes(range(1, 2 * bb + 1))
        op, body = await request(send, recv, 0x02, seq, struct.pack("<BI", 0, 3) + data)
        assert (op, body) == (0x82, b"")
        op, body = await request(send, recv, 0x03, seq + 1, struct.pack("<BIH", 0, 3, 2))
        width = 2 * 8 + 1
        mask = bytes([0xFF] * (width // 8) + [(1 << (width % 8)) - 1] + [0] * (bb - 1 - width // 8))
        assert op == 0x83 and body == bytes(x & y for x, y in zip(data, mask * 2))
        op, body = await request(send, recv, 0x05, seq + 2)
        assert op == 0x85 and parse_status(body) == dict(
            busy=0, crc_errors=0, bad_frames=0, overflows=0, naks=0, runs=0)

    Link(small_cfg).run(script)
