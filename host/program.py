"""Programs over the tensor memory (protocol 2, ``docs/programs.md``): their encoding, the
checks a board makes before it runs one, and the address generators on a NumPy tensor memory.

The address generators here (:func:`play` and :func:`store`) are the reference for the RTL
board's and the executor of ``model://``: a stream descriptor plays a loop nest of byte
addresses in one bank and turns the bytes there into a unit's beats (or beats into bytes).
No family is known here; what makes a family's beats is its ``program_streams``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np

from generators.tm import (
    DATA,
    DESCRIPTOR_BYTES,
    LOOPS,
    RAW,
    Descriptor,
    ProgramError,
    alignment,
    data_lanes,
    flag_names,
    storage_bits,
)

from .tensor import beat_bytes, pack_beats, unpack_beats

__all__ = ["LOOPS", "DATA", "RAW", "UNIT_OP", "DESCRIPTOR_BYTES", "OP_HEADER_BYTES",
           "Descriptor", "Op", "Program", "ProgramError", "storage_bits", "data_lanes",
           "stream_nbytes", "alignment", "addresses", "check_descriptor", "play", "store",
           "TensorMemory", "to_bytes", "from_bytes", "layout_bytes", "layout_codes",
           "raw_tensor_bytes", "raw_pitch"]

UNIT_OP = 1
_OP = struct.Struct("<BBBB3I")
OP_HEADER_BYTES = _OP.size      # 16


def stream_nbytes(fields: dict, kind: int) -> int:
    """The ``nbytes`` a descriptor of ``kind`` must have for a stream with ``fields``."""
    if kind == RAW:
        return beat_bytes(fields)
    if "data" not in fields:
        raise ProgramError("the stream has no data field (allowed: kind raw)")
    lanes, width, _ = data_lanes(fields["data"])
    return (lanes * storage_bits(width) + 7) // 8


@dataclass(frozen=True)
class Op:
    """A unit op: run ``unit`` in ``mode`` with one descriptor per stream (unit order)."""

    unit: int
    mode: int
    dims: tuple[int, int, int]
    streams: tuple[Descriptor, ...]
    kind: int = UNIT_OP

    def pack(self) -> bytes:
        d = tuple(self.dims) + (0,) * (3 - len(self.dims))
        return _OP.pack(self.kind, self.unit, self.mode, len(self.streams), *d) + \
            b"".join(s.pack() for s in self.streams)


@dataclass(frozen=True)
class Program:
    ops: tuple[Op, ...] = field(default_factory=tuple)


def to_bytes(prog: Program) -> bytes:
    return struct.pack("<H", len(prog.ops)) + b"".join(op.pack() for op in prog.ops)


def from_bytes(data: bytes, offset: int = 0) -> Program:
    """The program at ``offset`` of ``data``; :class:`ProgramError` for bytes that end inside
    an op."""
    def take(n):
        nonlocal offset
        if offset + n > len(data):
            raise ProgramError(f"the program ends inside an op at byte {offset} (needs {n} "
                               f"more bytes, {len(data) - offset} left)")
        chunk = data[offset:offset + n]
        offset += n
        return chunk

    (nops,) = struct.unpack("<H", take(2))
    ops = []
    for _ in range(nops):
        kind, unit, mode, ns, *dims = _OP.unpack(take(OP_HEADER_BYTES))
        descs = tuple(Descriptor.unpack(take(DESCRIPTOR_BYTES)) for _ in range(ns))
        ops.append(Op(unit, mode, tuple(dims), descs, kind))
    return Program(tuple(ops))


def addresses(d: Descriptor) -> np.ndarray:
    """Beat start addresses in play order (loop 0 outermost)."""
    idx = np.indices(d.count).reshape(LOOPS, -1)
    return d.base + (np.asarray(d.stride, dtype=np.int64)[:, None] * idx).sum(axis=0)


def check_descriptor(d: Descriptor, fields: dict, bank_bytes: int, word_bytes: int,
                     banks: int, what: str = "stream") -> None:
    """The board's checks of one descriptor (``ProgramError``, one line naming ``what``)."""
    if not 0 <= d.bank < banks:
        raise ProgramError(f"{what}: bank {d.bank} (allowed: 0..{banks - 1})")
    if d.kind not in (DATA, RAW):
        raise ProgramError(f"{what}: kind {d.kind} (allowed: 0 data, 1 raw)")
    want = stream_nbytes(fields, d.kind)
    if d.nbytes != want:
        raise ProgramError(f"{what}: nbytes {d.nbytes} (allowed: {want} for this stream and "
                           f"kind)")
    if any(c < 1 for c in d.count):
        raise ProgramError(f"{what}: loop counts {d.count} (allowed: 1..65535 each)")
    lo = d.base + sum(min(0, s) * (c - 1) for s, c in zip(d.stride, d.count, strict=True))
    hi = d.base + sum(max(0, s) * (c - 1) for s, c in zip(d.stride, d.count, strict=True))
    if lo < 0 or hi + d.nbytes > bank_bytes:
        raise ProgramError(f"{what}: bytes {lo}..{hi + d.nbytes - 1} of bank {d.bank} "
                           f"(allowed: 0..{bank_bytes - 1})")
    unit = alignment(d.nbytes, word_bytes)
    bad = [v for v in (d.base, *(s for s, c in zip(d.stride, d.count, strict=True) if c > 1))
           if v % unit]
    if bad:
        raise ProgramError(f"{what}: base or stride {bad[0]} is not a multiple of {unit} "
                           f"(allowed: multiples of {unit} for {d.nbytes}-byte beats in "
                           f"{word_bytes}-byte words)")
    one_bit = flag_names(fields)
    if d.kind == DATA:
        other = [n for n in fields if n not in ("data", "mode") and n not in one_bit]
        if other:
            raise ProgramError(f"{what}: field {other[0]} is not one bit (allowed: kind raw "
                               "for this stream)")
        if len(one_bit) > LOOPS:
            raise ProgramError(f"{what}: {len(one_bit)} flag fields (allowed: at most "
                               f"{LOOPS}; kind raw)")
    for name in ("first", "last"):
        if any(v >> LOOPS for v in getattr(d, name)):
            raise ProgramError(f"{what}: {name} masks {getattr(d, name)} (allowed: 4-bit "
                               "masks)")


def _gather(bank: np.ndarray, a: np.ndarray, n: int) -> np.ndarray:
    return bank[a[:, None] + np.arange(n)[None, :]]


def _unpack_elements(raw: np.ndarray, lanes: int, sw: int) -> np.ndarray:
    """``[beats, nbytes]`` uint8 -> ``[beats, lanes]`` unsigned elements of ``sw`` bits."""
    if sw == 4:
        lo, hi = raw & 0xF, raw >> 4
        return np.stack([lo, hi], axis=2).reshape(raw.shape[0], -1)[:, :lanes].astype(np.int64)
    per = sw // 8
    v = raw.reshape(raw.shape[0], lanes, per).astype(np.int64)
    return (v << (8 * np.arange(per, dtype=np.int64))).sum(axis=2)


def _pack_elements(vals: np.ndarray, sw: int, nbytes: int) -> np.ndarray:
    """Inverse of :func:`_unpack_elements` (``vals`` already masked to ``sw`` bits)."""
    vals = np.asarray(vals, dtype=np.int64)
    if sw == 4:
        pad = np.zeros((vals.shape[0], 2 * nbytes), dtype=np.int64)
        pad[:, :vals.shape[1]] = vals
        return (pad[:, 0::2] | (pad[:, 1::2] << 4)).astype(np.uint8)
    per = sw // 8
    b = (vals[:, :, None] >> (8 * np.arange(per, dtype=np.int64))) & 0xFF
    return b.reshape(vals.shape[0], -1).astype(np.uint8)


def _flags(d: Descriptor, names: list) -> dict:
    idx = np.indices(d.count).reshape(LOOPS, -1)
    out = {}
    for j, name in enumerate(names):
        v = np.ones(idx.shape[1], dtype=bool)
        for loop in range(LOOPS):
            if d.first[j] >> loop & 1:
                v &= idx[loop] == 0
            if d.last[j] >> loop & 1:
                v &= idx[loop] == d.count[loop] - 1
        out[name] = v.astype(np.int64)
    return out


def play(bank: np.ndarray, d: Descriptor, fields: dict, mode: int = 0) -> dict:
    """An input stream's beats as ``{field: array}`` (lane fields ``[beats, lanes]``), as
    :func:`host.tensor.unpack_beats` gives them, from the bytes of ``bank``."""
    a = addresses(d)
    raw = _gather(bank, a, d.nbytes)
    if d.kind == RAW:
        return unpack_beats(fields, raw.reshape(-1), n=len(a))
    lanes, width, signed = data_lanes(fields["data"])
    v = _unpack_elements(raw, lanes, storage_bits(width)) & ((1 << width) - 1)
    if signed:
        v = np.where(v >> (width - 1), v - (1 << width), v)
    out = {"data": v if "lanes" in fields["data"] else v[:, 0]}
    one_bit = flag_names(fields)
    out.update(_flags(d, one_bit))
    if "mode" in fields:
        out["mode"] = np.full(len(a), mode, dtype=np.int64)
    return {k: out[k] for k in fields}


def store(bank: np.ndarray, d: Descriptor, fields: dict, beats: dict) -> None:
    """Write an output stream's beats (``{field: array}``) into ``bank`` at the descriptor's
    addresses; extra beats beyond the descriptor's are an error, fewer are written as far as
    they go."""
    a = addresses(d)
    if d.kind == RAW:
        raw = pack_beats(fields, beats)
    else:
        lanes, width, _ = data_lanes(fields["data"])
        v = np.asarray(beats["data"], dtype=np.int64)
        v = v.reshape(v.shape[0], -1) & ((1 << width) - 1)
        raw = _pack_elements(v, storage_bits(width), d.nbytes)
    n = raw.shape[0]
    if n > len(a):
        raise ProgramError(f"{n} output beats for a descriptor of {len(a)}")
    for t in range(n):   # in order: a later beat at the same address wins, as on the board
        bank[a[t]:a[t] + d.nbytes] = raw[t]


class TensorMemory:
    """The tensor memory of a board: ``banks`` NumPy byte arrays of ``bank_bytes``."""

    def __init__(self, banks: int, bank_bytes: int, word_bytes: int):
        self.banks, self.bank_bytes, self.word_bytes = banks, bank_bytes, word_bytes
        self.mem = [np.zeros(bank_bytes, dtype=np.uint8) for _ in range(banks)]

    def write(self, bank: int, addr: int, data: bytes) -> None:
        self._check(bank, addr, len(data))
        self.mem[bank][addr:addr + len(data)] = np.frombuffer(bytes(data), dtype=np.uint8)

    def read(self, bank: int, addr: int, count: int) -> bytes:
        self._check(bank, addr, count)
        return self.mem[bank][addr:addr + count].tobytes()

    def _check(self, bank: int, addr: int, n: int) -> None:
        if not 0 <= bank < self.banks:
            raise ProgramError(f"bank {bank} (allowed: 0..{self.banks - 1})")
        if addr < 0 or addr + n > self.bank_bytes:
            raise ProgramError(f"bytes {addr}..{addr + n - 1} of bank {bank} (allowed: "
                               f"0..{self.bank_bytes - 1})")


# -- tensors in their layouts (generators.tm, "Layouts") --------------------------------------


def layout_bytes(codes, layout: str, width: int, ld: int, rows: int | None = None) -> bytes:
    """The bytes of a 2-D code tensor stored in ``layout`` (``row`` or ``col``) with leading
    stride ``ld`` bytes and ``rows`` stored rows (rows of the tensor for ``row``, columns for
    ``col``; default: as many as it has): padding codes zero."""
    m = np.asarray(codes, dtype=np.int64)
    m = m if layout == "row" else m.T
    sw = storage_bits(width)
    per = ld * 8 // sw
    rows = m.shape[0] if rows is None else rows
    if m.shape[1] > per or m.shape[0] > rows:
        raise ProgramError(f"a {m.shape[0]}x{m.shape[1]} tensor does not fit {rows} stored "
                           f"rows of {ld} bytes")
    full = np.zeros((rows, per), dtype=np.int64)
    full[:m.shape[0], :m.shape[1]] = m & ((1 << width) - 1)
    return _pack_elements(full, sw, ld).tobytes()


def layout_codes(data: bytes, layout: str, shape, width: int, signed: bool, ld: int
                 ) -> np.ndarray:
    """Inverse of :func:`layout_bytes`: the ``shape`` codes of a stored tensor."""
    r, n = shape
    rows, cols = (r, n) if layout == "row" else (n, r)
    sw = storage_bits(width)
    raw = np.frombuffer(bytes(data), dtype=np.uint8)[:rows * ld].reshape(rows, ld)
    v = _unpack_elements(raw, ld * 8 // sw, sw)[:, :cols] & ((1 << width) - 1)
    if signed:
        v = np.where(v >> (width - 1), v - (1 << width), v)
    return v if layout == "row" else v.T


def raw_pitch(nbytes: int, word_bytes: int) -> int:
    """Bytes between stored beats of a ``raw`` place: ``nbytes`` rounded up to its alignment."""
    unit = alignment(nbytes, word_bytes)
    return -(-nbytes // unit) * unit


def raw_tensor_bytes(fields: dict, beats: dict, pitch: int) -> bytes:
    """Beats (``{field: array}``) packed as protocol 1 packs them, one every ``pitch`` bytes:
    the bytes of a ``raw`` place (``generators.tm``)."""
    packed = pack_beats(fields, beats)
    out = np.zeros((packed.shape[0], pitch), dtype=np.uint8)
    out[:, :packed.shape[1]] = packed
    return out.tobytes()
