"""Independent wire helpers for the board tests: COBS and frames written from docs/protocol.md
alone (binascii.crc_hqx for the CRC), so the RTL is not checked against itself."""

from __future__ import annotations

import binascii
import struct


def cobs_encode(data: bytes) -> bytes:
    out = bytearray()
    block = bytearray()
    for b in data:
        if b == 0:
            out += bytes([len(block) + 1]) + block
            block.clear()
        else:
            block.append(b)
            if len(block) == 254:
                out += b"\xff" + block
                block.clear()
    out += bytes([len(block) + 1]) + block
    return bytes(out)


def cobs_decode(data: bytes) -> bytes:
    out = bytearray()
    i = 0
    while i < len(data):
        code = data[i]
        if code == 0 or i + code > len(data):
            raise ValueError("bad COBS")
        out += data[i + 1:i + code]
        i += code
        if code < 255 and i < len(data):
            out.append(0)
    return bytes(out)


def packet(op: int, seq: int, payload: bytes = b"", ver: int = 1) -> bytes:
    head = struct.pack("<BBHH", ver, op, seq, len(payload)) + payload
    return head + struct.pack(">H", binascii.crc_hqx(head, 0xFFFF))


def frame(op: int, seq: int, payload: bytes = b"", ver: int = 1) -> bytes:
    return cobs_encode(packet(op, seq, payload, ver)) + b"\x00"


def parse_reply(wire: bytes) -> tuple[int, int, bytes]:
    """``(op, seq, payload)`` of one reply frame (with its 0x00); checks CRC and length."""
    assert wire.endswith(b"\x00") and b"\x00" not in wire[:-1], wire.hex()
    pkt = cobs_decode(wire[:-1])
    assert binascii.crc_hqx(pkt, 0xFFFF) == 0, f"bad CRC in reply {pkt.hex()}"
    ver, op, seq, n = struct.unpack("<BBHH", pkt[:6])
    assert ver == 1 and len(pkt) == 6 + n + 2, pkt.hex()
    return op, seq, pkt[6:6 + n]


STATUS_FIELDS = ("busy", "crc_errors", "bad_frames", "overflows", "naks", "runs")


def parse_status(payload: bytes) -> dict:
    return dict(zip(STATUS_FIELDS, struct.unpack("<BHHHHI", payload)))
