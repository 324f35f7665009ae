"""The host link protocol, version 1 (docs/protocol.md), without any I/O.

Everything here turns bytes into values and values into bytes: frames (COBS + CRC-16), the
streaming :class:`FrameDecoder`, the request builders and reply parsers the host uses, and the
request parsers and reply builders a board uses (the Python reference board ``model://`` and the
board engineer's tests). Transports and retries live in :mod:`host.transport` and
:mod:`host.board`; nothing in this module blocks, sleeps or allocates more than ``COBS_MAX``
bytes for one incoming frame.

Example
-------
>>> frame = info_request(seq=1, offset=0)
>>> frame.hex(" ")
'04 01 01 01 02 02 01 01 03 66 44 00'
>>> dec = FrameDecoder()
>>> [p.op for p in dec.feed(frame)]
[1]
"""

from __future__ import annotations

import binascii
import enum
import struct
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "VERSION", "MAX_PAYLOAD", "HEADER_BYTES", "CRC_BYTES", "COBS_MAX", "NAK_OP", "ACK_BIT",
    "Op", "NakCode", "ProtocolError", "FrameError", "NakError", "ReplyMismatch",
    "SessionClosed", "SESSION_CODES", "session_code",
    "Packet", "Status", "RunRequest",
    "crc16", "cobs_encode", "cobs_decode", "cobs_max", "encode_packet", "encode_frame",
    "decode_packet", "FrameDecoder",
    "info_request", "write_request", "read_request", "run_request", "run_payload",
    "status_request",
    "clear_request",
    "PROTOCOLS", "tm_write_payload", "tm_read_payload", "prog_write_payload",
    "prog_run_payload", "tm_write_request", "tm_read_request", "prog_write_request",
    "prog_run_request", "parse_tm_read_reply", "parse_prog_run_reply",
    "parse_tm_write_request", "tm_scatter_payload", "parse_tm_scatter_request",
    "TM_SCATTER_HEAD", "parse_tm_read_request", "parse_prog_write_request",
    "parse_prog_run_request", "prog_run_reply",
    "reply_payload", "parse_info_reply", "parse_read_reply", "parse_run_reply",
    "parse_status_reply", "parse_write_reply", "parse_clear_reply",
    "parse_info_request", "parse_write_request", "parse_read_request", "parse_run_request",
    "parse_empty_request", "ack_frame", "nak_frame", "info_reply", "run_reply", "status_reply",
]

VERSION = 1
#: Design-description protocols (INFO ``protocol``) this host speaks: 1 (stream buffers) and 2
#: (tensor memory and programs, docs/programs.md); frames are the same (``VERSION``).
PROTOCOLS = (1, 2)
#: Largest payload of one packet on every design of protocol version 1 (INFO tells it too).
MAX_PAYLOAD = 1024
HEADER = struct.Struct("<BBHH")  # ver, op, seq, len
HEADER_BYTES = HEADER.size
CRC_BYTES = 2
NAK_OP = 0x7F
ACK_BIT = 0x80


def cobs_max(max_payload: int = MAX_PAYLOAD) -> int:
    """Longest COBS-encoded frame (without its 0x00) a receiver has to buffer."""
    n = HEADER_BYTES + max_payload + CRC_BYTES
    return n + -(-n // 254) + 1


COBS_MAX = cobs_max()


class Op(enum.IntEnum):
    """Request opcodes; an ACK reply has ``op | ACK_BIT``, a NAK has :data:`NAK_OP`."""

    INFO = 0x01
    WRITE = 0x02
    READ = 0x03
    RUN = 0x04
    STATUS = 0x05
    CLEAR = 0x06
    # protocol 2 (designs with a tensor memory, docs/programs.md)
    TM_WRITE = 0x07
    TM_READ = 0x08
    PROG_WRITE = 0x09
    PROG_RUN = 0x0A
    TM_SCATTER = 0x0B


class NakCode(enum.IntEnum):
    """Why a board refused an intact request (the NAK payload's ``code``)."""

    BAD_OP = 1
    BAD_LENGTH = 2
    BAD_BUFFER = 3
    OUT_OF_RANGE = 4
    BAD_UNIT = 5
    BAD_MODE = 6
    BAD_VERSION = 7
    BAD_RUN = 8
    BAD_PROGRAM = 9
    # session codes: sent by the simulated board's harness (op 0, seq 0) just before it
    # closes a connection, never by the board engine (docs/protocol.md, "Sessions")
    BUSY = 10
    IDLE = 11


#: The session NAK codes and the one line the host says for each.
SESSION_CODES = {
    NakCode.BUSY: "board busy: another host is connected (one host at a time)",
    NakCode.IDLE: "the board closed this session: no traffic for its --idle-timeout",
}


# -- errors ------------------------------------------------------------------------------------


class ProtocolError(Exception):
    """Base of every error this module raises."""


class FrameError(ProtocolError):
    """Bytes that are not one valid frame. ``kind`` is ``"cobs"``, ``"crc"`` or ``"length"``
    (the board counts ``"crc"`` as ``crc_errors`` and the others as ``bad_frames``)."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


class NakError(ProtocolError):
    """The board answered NAK: the request itself is wrong (never retried).

    Also raised by the request parsers of a board (then it is the NAK to send back).
    """

    def __init__(self, op: int, code: int, message: str | None = None):
        self.op, self.code = int(op), int(code)
        try:
            name = NakCode(code).name
        except ValueError:
            name = f"code {code}"
        try:
            opname = Op(op).name
        except ValueError:
            opname = f"op 0x{op:02x}"
        super().__init__(message or f"{opname} refused by the board: {name}")


class SessionClosed(ProtocolError):
    """The link's server refused or ended this host's session (a session NAK, op 0: BUSY or
    IDLE); ``code`` is the :class:`NakCode`."""

    def __init__(self, code: int):
        self.code = int(code)
        super().__init__(SESSION_CODES[NakCode(code)])


def session_code(pkt: Packet) -> int | None:
    """The session NAK code of ``pkt`` (BUSY, IDLE), whatever its ``seq``; None for any
    other packet."""
    if pkt.op == NAK_OP and len(pkt.payload) == 2 and pkt.payload[0] == 0 and \
            pkt.payload[1] in SESSION_CODES:
        return pkt.payload[1]
    return None


class ReplyMismatch(ProtocolError):
    """A well-formed packet that is not the reply being waited for (wrong version, ``seq``,
    ``op`` or payload length): the host discards it and keeps waiting."""


# -- CRC and COBS ------------------------------------------------------------------------------


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF): ``crc16(b"123456789") == 0x29B1``."""
    return binascii.crc_hqx(data, 0xFFFF)


def cobs_encode(data: bytes) -> bytes:
    """COBS-encode ``data`` (no 0x00 in the result; the frame's 0x00 is not added)."""
    out = bytearray()
    parts = bytes(data).split(b"\x00")
    last = len(parts) - 1
    for i, part in enumerate(parts):
        n = len(part)
        pos = 0
        # Whole 254-byte blocks carry no zero after them.
        while n - pos >= 254:
            out.append(255)
            out += part[pos:pos + 254]
            pos += 254
        rest = n - pos
        if i < last or rest or n == 0:
            out.append(rest + 1)
            out += part[pos:]
    return bytes(out)


def cobs_decode(data: bytes) -> bytes:
    """Decode one COBS frame (without its 0x00); :class:`FrameError` ``"cobs"`` if invalid."""
    data = bytes(data)
    n = len(data)
    if n == 0:
        raise FrameError("cobs", "empty COBS frame")
    if 0 in data:
        raise FrameError("cobs", "0x00 inside a COBS frame")
    out = bytearray()
    pos = 0
    while pos < n:
        code = data[pos]
        end = pos + code
        if end > n:
            raise FrameError("cobs", f"COBS block at byte {pos} runs past the frame end")
        out += data[pos + 1:end]
        pos = end
        if code < 255 and pos < n:
            out.append(0)
    return bytes(out)


# -- packets and frames ------------------------------------------------------------------------


@dataclass(frozen=True)
class Packet:
    """One decoded packet: header fields and payload (CRC already checked)."""

    op: int
    seq: int
    payload: bytes = b""
    ver: int = VERSION


def encode_packet(op: int, seq: int, payload: bytes = b"", ver: int = VERSION) -> bytes:
    """``header | payload | crc`` (before COBS)."""
    payload = bytes(payload)
    if len(payload) > 0xFFFF:
        raise ValueError(f"payload of {len(payload)} bytes does not fit the u16 length")
    body = HEADER.pack(ver, op, seq & 0xFFFF, len(payload)) + payload
    return body + crc16(body).to_bytes(2, "big")


def encode_frame(op: int, seq: int, payload: bytes = b"", ver: int = VERSION) -> bytes:
    """The bytes on the wire for one packet: ``COBS(packet) 0x00``."""
    return cobs_encode(encode_packet(op, seq, payload, ver)) + b"\x00"


def decode_packet(frame: bytes, max_payload: int = MAX_PAYLOAD) -> Packet:
    """Decode one frame (the bytes before its 0x00) into a :class:`Packet`.

    Raises
    ------
    FrameError
        ``"cobs"`` (bad encoding), ``"length"`` (shorter than a header and CRC, longer than
        ``max_payload`` allows, or ``len`` not matching the size) or ``"crc"``.
    """
    if len(frame) > cobs_max(max_payload):
        raise FrameError("length", f"frame of {len(frame)} bytes is longer than COBS_MAX")
    raw = cobs_decode(frame)
    n = len(raw)
    if n < HEADER_BYTES + CRC_BYTES:
        raise FrameError("length", f"packet of {n} bytes is shorter than header and CRC")
    if n > HEADER_BYTES + max_payload + CRC_BYTES:
        raise FrameError("length", f"packet of {n} bytes is longer than max_payload allows")
    ver, op, seq, length = HEADER.unpack_from(raw)
    if n != HEADER_BYTES + length + CRC_BYTES:
        raise FrameError("length", f"packet of {n} bytes but its header says len = {length}")
    if crc16(raw[:-2]) != int.from_bytes(raw[-2:], "big"):
        raise FrameError("crc", "CRC mismatch")
    return Packet(op=op, seq=seq, payload=raw[HEADER_BYTES:-2], ver=ver)


class FrameDecoder:
    """Split a byte stream into packets, resynchronising on 0x00.

    Never holds more than ``COBS_MAX`` bytes of an unfinished frame: a longer run without a
    0x00 is discarded up to the next 0x00 and counted once in ``overflows`` (and
    ``bad_frames``). Frames that fail to decode are dropped and counted in ``crc_errors`` or
    ``bad_frames``; empty frames (two 0x00 in a row) are ignored.
    """

    def __init__(self, max_payload: int = MAX_PAYLOAD):
        self.max_payload = max_payload
        self.limit = cobs_max(max_payload)
        self._buf = bytearray()
        self._skipping = False
        self.frames = 0
        self.crc_errors = 0
        self.bad_frames = 0
        self.overflows = 0

    def reset(self) -> None:
        """Forget a partly received frame (the counters stay)."""
        self._buf.clear()
        self._skipping = False

    @property
    def pending(self) -> int:
        """Bytes of an unfinished frame held now (never more than ``COBS_MAX``)."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Packet]:
        """Take received bytes; return the packets they complete, in order."""
        out: list[Packet] = []
        raw = bytes(data)
        data = memoryview(raw)
        pos, n = 0, len(raw)
        while pos < n:
            end = raw.find(b"\x00", pos)
            chunk_end = n if end < 0 else end
            if not self._skipping:
                room = self.limit - len(self._buf)
                take = chunk_end - pos
                if take > room:
                    self._buf.clear()
                    self._skipping = True
                    self.overflows += 1
                    self.bad_frames += 1
                else:
                    self._buf += data[pos:chunk_end]
            if end < 0:
                break
            pos = end + 1
            if self._skipping:
                self._skipping = False
                continue
            if self._buf:
                frame = bytes(self._buf)
                self._buf.clear()
                try:
                    out.append(decode_packet(frame, self.max_payload))
                    self.frames += 1
                except FrameError as err:
                    if err.kind == "crc":
                        self.crc_errors += 1
                    else:
                        self.bad_frames += 1
        return out


# -- requests (host side) ----------------------------------------------------------------------


def info_request(seq: int, offset: int = 0) -> bytes:
    """INFO: the description from byte ``offset``."""
    return encode_frame(Op.INFO, seq, struct.pack("<H", offset))


def write_request(seq: int, buf: int, beat: int, data: bytes) -> bytes:
    """WRITE ``data`` (whole beats) into buffer ``buf`` from beat ``beat``."""
    return encode_frame(Op.WRITE, seq, struct.pack("<BI", buf, beat) + bytes(data))


def read_request(seq: int, buf: int, beat: int, count: int) -> bytes:
    """READ ``count`` beats of buffer ``buf`` from beat ``beat``."""
    return encode_frame(Op.READ, seq, struct.pack("<BIH", buf, beat, count))


def run_request(seq: int, unit: int, mode: int, dims: Iterable[int],
                beats: Iterable[int]) -> bytes:
    """RUN ``unit`` in ``mode`` on problem shape ``dims`` (3 values) with one beat count per
    stream of the unit (manifest order, inputs and outputs)."""
    return encode_frame(Op.RUN, seq, run_payload(unit, mode, dims, beats))


def run_payload(unit: int, mode: int, dims: Iterable[int], beats: Iterable[int]) -> bytes:
    """The payload of a RUN request (see :func:`run_request`)."""
    dims = tuple(dims)
    if len(dims) != 3:
        raise ValueError(f"RUN takes 3 dims, got {len(dims)}")
    beats = tuple(beats)
    return struct.pack(f"<BB3I{len(beats)}I", unit, mode, *dims, *beats)


def tm_write_payload(bank: int, addr: int, data: bytes) -> bytes:
    """TM_WRITE (protocol 2): ``data`` into bank ``bank`` from byte ``addr``."""
    return struct.pack("<BI", bank, addr) + bytes(data)


#: TM_SCATTER's fixed fields: bank u8, addr u32, chunk u16, pitch u16, count u16
TM_SCATTER_HEAD = 11


def tm_scatter_payload(bank: int, addr: int, chunk: int, pitch: int, count: int,
                       data: bytes) -> bytes:
    """TM_SCATTER (protocol 2): ``count`` pieces of ``chunk`` bytes, piece ``i`` at
    ``addr + i * pitch`` of bank ``bank``; the pieces' bytes in order are ``data`` repeated
    (byte ``j`` is ``data[j % len(data)]``), so ``data`` may be all of them, one piece
    replicated, or one byte to fill."""
    return struct.pack("<BIHHH", bank, addr, chunk, pitch, count) + bytes(data)


def tm_read_payload(bank: int, addr: int, count: int) -> bytes:
    """TM_READ (protocol 2): ``count`` bytes of bank ``bank`` from byte ``addr``."""
    return struct.pack("<BIH", bank, addr, count)


def prog_write_payload(addr: int, data: bytes) -> bytes:
    """PROG_WRITE (protocol 2): program bytes ``data`` from byte ``addr`` of program memory."""
    return struct.pack("<I", addr) + bytes(data)


def prog_run_payload(addr: int) -> bytes:
    """PROG_RUN (protocol 2): run the program whose ``nops`` is at byte ``addr``."""
    return struct.pack("<I", addr)


def tm_write_request(seq: int, bank: int, addr: int, data: bytes) -> bytes:
    return encode_frame(Op.TM_WRITE, seq, tm_write_payload(bank, addr, data))


def tm_read_request(seq: int, bank: int, addr: int, count: int) -> bytes:
    return encode_frame(Op.TM_READ, seq, tm_read_payload(bank, addr, count))


def prog_write_request(seq: int, addr: int, data: bytes) -> bytes:
    return encode_frame(Op.PROG_WRITE, seq, prog_write_payload(addr, data))


def prog_run_request(seq: int, addr: int) -> bytes:
    return encode_frame(Op.PROG_RUN, seq, prog_run_payload(addr))


def status_request(seq: int) -> bytes:
    return encode_frame(Op.STATUS, seq)


def clear_request(seq: int) -> bytes:
    return encode_frame(Op.CLEAR, seq)


# -- replies (host side) -----------------------------------------------------------------------


@dataclass(frozen=True)
class Status:
    """The STATUS reply: board counters since power-up or the last CLEAR."""

    busy: int
    crc_errors: int
    bad_frames: int
    overflows: int
    naks: int
    runs: int


STATUS = struct.Struct("<BHHHHI")


def reply_payload(pkt: Packet, op: int, seq: int) -> bytes:
    """The payload of ``pkt`` if it is the ACK to request ``(op, seq)``.

    Raises
    ------
    NakError
        It is the NAK to that request.
    SessionClosed
        It is a session NAK (BUSY or IDLE, any ``seq``): the server closes the connection.
    ReplyMismatch
        It is something else (other version, ``seq`` or ``op``, or a malformed NAK).
    """
    if pkt.ver != VERSION:
        raise ReplyMismatch(f"reply of protocol version {pkt.ver}")
    code = session_code(pkt)
    if code is not None:
        raise SessionClosed(code)
    if pkt.seq != seq & 0xFFFF:
        raise ReplyMismatch(f"reply to seq {pkt.seq}, waiting for {seq & 0xFFFF}")
    if pkt.op == NAK_OP:
        if len(pkt.payload) != 2 or pkt.payload[0] != op:
            raise ReplyMismatch("malformed NAK")
        raise NakError(op, pkt.payload[1])
    if pkt.op != (op | ACK_BIT):
        raise ReplyMismatch(f"reply op 0x{pkt.op:02x}, waiting for 0x{op | ACK_BIT:02x}")
    return pkt.payload


def _need(payload: bytes, n: int, what: str) -> None:
    if len(payload) != n:
        raise ReplyMismatch(f"{what} reply of {len(payload)} bytes (expected {n})")


def parse_info_reply(payload: bytes, offset: int = 0,
                     max_payload: int = MAX_PAYLOAD) -> tuple[int, bytes]:
    """``(total, chunk)`` of an INFO ACK for ``offset``: the chunk must be non-empty while
    ``offset < total``, empty at ``offset == total``, and never run past ``total`` or over
    ``max_payload - 2`` bytes."""
    if len(payload) < 2:
        raise ReplyMismatch("INFO reply shorter than its total field")
    total = int.from_bytes(payload[:2], "little")
    chunk = payload[2:]
    left = total - offset
    if left < 0 or len(chunk) > min(left, max_payload - 2) or (left and not chunk):
        raise ReplyMismatch(f"INFO reply of {len(chunk)} bytes at offset {offset} of {total}")
    return total, chunk


def parse_write_reply(payload: bytes) -> None:
    _need(payload, 0, "WRITE")


def parse_clear_reply(payload: bytes) -> None:
    _need(payload, 0, "CLEAR")


def parse_read_reply(payload: bytes, count: int, beat_bytes: int) -> bytes:
    _need(payload, count * beat_bytes, "READ")
    return payload


def parse_run_reply(payload: bytes, outputs: int) -> tuple[int, tuple[int, ...]]:
    """``(cycles, beats stored per output stream)`` of a RUN ACK."""
    _need(payload, 4 + 4 * outputs, "RUN")
    vals = struct.unpack(f"<I{outputs}I", payload)
    return vals[0], tuple(vals[1:])


def parse_tm_read_reply(payload: bytes, count: int) -> bytes:
    _need(payload, count, "TM_READ")
    return bytes(payload)


def parse_prog_run_reply(payload: bytes, nops: int | None = None
                         ) -> tuple[int, tuple[int, ...]]:
    """``(total_cycles, cycles per op)`` of a PROG_RUN ACK (``nops`` checked when given)."""
    if len(payload) < 4 or len(payload) % 4 or (nops is not None and
                                                 len(payload) != 4 + 4 * nops):
        want = "4 + 4 per op" if nops is None else str(4 + 4 * nops)
        raise ReplyMismatch(f"PROG_RUN reply of {len(payload)} bytes (expected {want})")
    vals = struct.unpack(f"<{len(payload) // 4}I", payload)
    return vals[0], tuple(vals[1:])


def parse_status_reply(payload: bytes) -> Status:
    _need(payload, STATUS.size, "STATUS")
    return Status(*STATUS.unpack(payload))


# -- requests and replies (board side) ---------------------------------------------------------


@dataclass(frozen=True)
class RunRequest:
    unit: int
    mode: int
    dims: tuple[int, int, int]
    beats: tuple[int, ...]


def _bad_length(op: int) -> NakError:
    return NakError(op, NakCode.BAD_LENGTH)


def parse_info_request(payload: bytes) -> int:
    """The ``offset`` of an INFO request (NakError BAD_LENGTH if malformed)."""
    if len(payload) != 2:
        raise _bad_length(Op.INFO)
    return int.from_bytes(payload, "little")


def parse_write_request(payload: bytes) -> tuple[int, int, bytes]:
    """``(buf, beat, data)`` of a WRITE request."""
    if len(payload) < 5:
        raise _bad_length(Op.WRITE)
    buf, beat = struct.unpack_from("<BI", payload)
    return buf, beat, bytes(payload[5:])


def parse_read_request(payload: bytes) -> tuple[int, int, int]:
    """``(buf, beat, count)`` of a READ request."""
    if len(payload) != 7:
        raise _bad_length(Op.READ)
    return struct.unpack("<BIH", payload)


def parse_run_request(payload: bytes, streams: int | None = None) -> RunRequest:
    """A RUN request; ``streams`` (the unit's stream count) is checked when given."""
    n = len(payload) - 14
    if n < 0 or n % 4 or (streams is not None and n // 4 != streams):
        raise _bad_length(Op.RUN)
    vals = struct.unpack(f"<BB3I{n // 4}I", payload)
    return RunRequest(vals[0], vals[1], tuple(vals[2:5]), tuple(vals[5:]))


def parse_tm_write_request(payload: bytes) -> tuple[int, int, bytes]:
    """``(bank, addr, data)`` of a TM_WRITE request."""
    if len(payload) < 5:
        raise _bad_length(Op.TM_WRITE)
    bank, addr = struct.unpack_from("<BI", payload)
    return bank, addr, bytes(payload[5:])


def parse_tm_scatter_request(payload: bytes) -> tuple[int, int, int, int, int, bytes]:
    """``(bank, addr, chunk, pitch, count, data)`` of a TM_SCATTER request: BAD_LENGTH
    unless ``data`` is not empty, ``chunk`` and ``count`` are at least 1 and
    ``pitch >= chunk`` (pieces never overlap)."""
    if len(payload) <= TM_SCATTER_HEAD:
        raise _bad_length(Op.TM_SCATTER)
    bank, addr, chunk, pitch, count = struct.unpack_from("<BIHHH", payload)
    if chunk == 0 or count == 0 or pitch < chunk:
        raise _bad_length(Op.TM_SCATTER)
    return bank, addr, chunk, pitch, count, bytes(payload[TM_SCATTER_HEAD:])


def parse_tm_read_request(payload: bytes) -> tuple[int, int, int]:
    """``(bank, addr, count)`` of a TM_READ request."""
    if len(payload) != 7:
        raise _bad_length(Op.TM_READ)
    return struct.unpack("<BIH", payload)


def parse_prog_write_request(payload: bytes) -> tuple[int, bytes]:
    """``(addr, data)`` of a PROG_WRITE request."""
    if len(payload) < 4:
        raise _bad_length(Op.PROG_WRITE)
    return struct.unpack_from("<I", payload)[0], bytes(payload[4:])


def parse_prog_run_request(payload: bytes) -> int:
    """``addr`` of a PROG_RUN request."""
    if len(payload) != 4:
        raise _bad_length(Op.PROG_RUN)
    return struct.unpack("<I", payload)[0]


def prog_run_reply(total: int, cycles: Iterable[int]) -> bytes:
    """PROG_RUN ACK payload."""
    cycles = tuple(c & 0xFFFFFFFF for c in cycles)
    return struct.pack(f"<I{len(cycles)}I", total & 0xFFFFFFFF, *cycles)


def parse_empty_request(op: int, payload: bytes) -> None:
    """STATUS and CLEAR take no payload."""
    if payload:
        raise _bad_length(op)


def ack_frame(op: int, seq: int, payload: bytes = b"") -> bytes:
    return encode_frame(op | ACK_BIT, seq, payload)


def nak_frame(op: int, seq: int, code: int) -> bytes:
    return encode_frame(NAK_OP, seq, bytes([op & 0xFF, code]))


def info_reply(total: int, chunk: bytes) -> bytes:
    """INFO ACK payload."""
    return struct.pack("<H", total) + bytes(chunk)


def run_reply(cycles: int, beats: Iterable[int]) -> bytes:
    """RUN ACK payload."""
    beats = tuple(beats)
    return struct.pack(f"<I{len(beats)}I", cycles & 0xFFFFFFFF, *beats)


def status_reply(status: Status) -> bytes:
    """STATUS ACK payload."""
    return STATUS.pack(status.busy, status.crc_errors & 0xFFFF, status.bad_frames & 0xFFFF,
                       status.overflows & 0xFFFF, status.naks & 0xFFFF,
                       status.runs & 0xFFFFFFFF)
