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

from boards.crc import crc16_update
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
    assert binascii.crc_hqx(b"123456789", 0xFFFF) == 0x29B1
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
        assert op == 0x83 and body == bytes(x & y for x, y in zip(data, mask * 2, strict=True))
        op, body = await request(send, recv, 0x05, seq + 2)
        assert op == 0x85 and parse_status(body) == dict(
            busy=0, crc_errors=0, bad_frames=0, overflows=0, naks=0, runs=0)

    Link(small_cfg).run(script)


def test_naks(small_cfg):
    desc = describe_bytes(small_cfg)
    cases = [
        (0x09, b"", 1),                                      # BAD_OP
        (0x05, b"\x00", 2),                                  # BAD_LENGTH
        (0x01, b"\x00\x00\x00", 2),
        (0x03, b"\x00" * 6, 2),
        (0x04, struct.pack("<BB3I", 0, 0, 1, 1, 1), 2),      # RUN without its counts
        (0x02, struct.pack("<BI", 99, 0) + bytes(3), 3),     # BAD_BUFFER: no such buffer
        (0x02, struct.pack("<BI", 0, 0) + bytes(4), 3),      # not whole 3-byte beats
        (0x03, struct.pack("<BIH", 9, 0, 1), 3),
        (0x03, struct.pack("<BIH", 0, 85, 1), 4),            # OUT_OF_RANGE: past the end
        (0x03, struct.pack("<BIH", 0, 0, 0xFFFF), 4),        # over max_payload
        (0x01, struct.pack("<H", len(desc) + 1), 4),
        (0x02, struct.pack("<BI", 0, 84) + bytes(6), 4),
        (0x04, struct.pack("<BB3I3I", 2, 0, 1, 1, 1, 1, 1, 1), 5),   # BAD_UNIT
        (0x04, struct.pack("<BB3I3I", 0, 1, 1, 1, 1, 1, 1, 1), 6),   # BAD_MODE
        (0x04, struct.pack("<BB3I3I", 1, 2, 1, 1, 1, 1, 1, 1), 6),
        (0x04, struct.pack("<BB3I3I", 0, 0, 1, 1, 1, 0, 1, 1), 8),   # BAD_RUN
        (0x04, struct.pack("<BB3I3I", 0, 0, 1, 1, 1, 86, 1, 1), 8),
    ]

    async def script(send, recv):
        for seq, (op, payload, code) in enumerate(cases, start=100):
            rop, body = await request(send, recv, op, seq, payload)
            assert (rop, body) == (0x7F, bytes([op, code])), (seq, op, payload.hex())
        await send(frame(0x05, 1, ver=2))
        assert parse_reply(await recv())[::2] == (0x7F, bytes([0x05, 7]))
        # INFO at offset == total: an ACK with no description bytes
        rop, body = await request(send, recv, 0x01, 2, struct.pack("<H", len(desc)))
        assert (rop, body) == (0x81, struct.pack("<H", len(desc)))
        rop, body = await request(send, recv, 0x05, 3)
        assert parse_status(body)["naks"] == len(cases) + 1

    Link(small_cfg).run(script)


def test_bad_frames_dropped_and_counted(small_cfg):
    good = frame(0x05, 7)

    async def script(send, recv):
        bad_crc = bytearray(good)
        bad_crc[-2] ^= 0x01  # a CRC byte
        await send(bytes(bad_crc))
        pkt = struct.pack("<BBHH", 1, 5, 8, 3) + b"\x01\x02"  # len says 3, 2 bytes follow
        from board_wire import cobs_encode
        await send(cobs_encode(pkt + struct.pack(">H", binascii.crc_hqx(pkt, 0xFFFF))) + b"\0")
        await send(b"\x05\x01\x02\x00")          # a block running past the frame's end
        await send(b"\x07" * 1100 + b"\x00")      # longer than COBS_MAX
        await send(b"\x00\x00")                   # empty frames: ignored
        rop, body = await request(send, recv, 0x05, 9)  # the first reply is STATUS's
        assert rop == 0x85
        st = parse_status(body)
        assert (st["crc_errors"], st["bad_frames"], st["naks"]) == (1, 3, 0)
        rop, body = await request(send, recv, 0x06, 10)
        assert (rop, body) == (0x86, b"")
        rop, body = await request(send, recv, 0x05, 11)
        assert parse_status(body) == dict(busy=0, crc_errors=0, bad_frames=0, overflows=0,
                                          naks=0, runs=0)

    Link(small_cfg).run(script)


def test_duplicates_answered_not_executed(small_cfg):
    run = struct.pack("<BB3I3I", 0, 0, 2, 1, 2, 1, 1, 0)  # 1 a beat, 1 b beat, 0 outputs

    async def script(send, recv):
        await send(frame(0x02, 20, struct.pack("<BI", 0, 0) + bytes(3)))
        first = await recv()
        await send(frame(0x04, 21, run))
        reply = await recv()
        assert parse_reply(reply)[0] == 0x84
        await send(b"\x00" + frame(0x04, 21, run))  # a retry: same bytes, same reply
        assert await recv() == reply
        await send(frame(0x09, 22))                 # a NAK is cached too
        nak = await recv()
        await send(frame(0x09, 22))
        assert await recv() == nak
        rop, body = await request(send, recv, 0x05, 23)
        st = parse_status(body)
        assert (st["runs"], st["naks"]) == (1, 1)
        # the same seq and op with another payload (another CRC) is a new request
        await send(frame(0x02, 20, struct.pack("<BI", 0, 1) + bytes(3)))
        assert parse_reply(await recv())[0] == 0x82
        await send(frame(0x02, 20, struct.pack("<BI", 0, 0) + bytes(3)))
        assert await recv() == first

    Link(small_cfg).run(script)


def test_garbage_never_wedges(small_cfg, rng):
    desc = describe_bytes(small_cfg)
    noise = bytes(rng.integers(0, 256, 3000, dtype=np.uint8))

    async def script(send, recv):
        await send(noise + b"\x00")
        rop, body = await request(send, recv, 0x01, 0x4242, struct.pack("<H", 0))
        assert rop == 0x81 and body[2:] == desc[:len(body) - 2]

    Link(small_cfg).run(script)
