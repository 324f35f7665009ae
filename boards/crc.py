"""CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no final xor): the frame check
of docs/protocol.md, equal to ``binascii.crc_hqx(data, 0xFFFF)``.

Running the CRC over a packet followed by its CRC (high byte first) leaves 0, which is how the
receiver checks a frame without knowing where the payload ends until the frame does.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Value

POLY = 0x1021
INIT = 0xFFFF


def _taps() -> list[tuple[list[int], list[int]]]:
    """For each bit of the next CRC: the CRC bits and byte bits it is the xor of (the update
    is linear over GF(2), so unit vectors through the bitwise definition find them)."""
    def step(crc: int, byte: int) -> int:
        for i in range(8):
            fb = ((byte >> (7 - i)) ^ (crc >> 15)) & 1
            crc = ((crc << 1) & 0xFFFF) ^ (POLY if fb else 0)
        return crc

    cols_c = [step(1 << j, 0) for j in range(16)]
    cols_b = [step(0, 1 << j) for j in range(8)]
    return [([j for j in range(16) if cols_c[j] >> i & 1],
             [j for j in range(8) if cols_b[j] >> i & 1]) for i in range(16)]


_TAPS = _taps()


def crc16_update(crc: Value, byte: Value) -> Value:
    """The CRC register after one more byte (MSB first), as a flat xor network."""
    bits = []
    for cs, bs in _TAPS:
        bits.append(Cat(*[crc[j] for j in cs], *[byte[j] for j in bs]).xor())
    return Cat(*bits)
