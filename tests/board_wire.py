"""Wire helpers for the board tests: frames and replies as docs/protocol.md lays them out, on
the host's COBS codec (one implementation; it is checked on the doc's worked-example bytes)."""

from __future__ import annotations

import binascii
import struct

from host.protocol import cobs_decode, cobs_encode


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
    return dict(zip(STATUS_FIELDS, struct.unpack("<BHHHHI", payload), strict=True))
