"""Tensor-memory stream descriptors and tensor places (docs/programs.md), shared by the
families' ``program_streams`` (here, in ``generators``) and the host's programs
(:mod:`host.program` re-exports :class:`Descriptor`).

A **place** says where an operand of an op lies in the tensor memory: its bank, the byte
address of element ``(0, 0)``, its layout and its leading stride ``ld`` in bytes.

Layouts of a 2-D tensor ``[R, N]`` of storage width ``sw`` bits (:func:`storage_bits`):

- ``row``: element ``(i, j)`` at ``base + i * ld + j * sw / 8`` (rows of ``N`` codes, each
  row ``ld`` bytes apart);
- ``col``: element ``(i, j)`` at ``base + j * ld + i * sw / 8`` (the transpose stored in
  row layout: each column contiguous);
- ``raw``: whole beats packed by the host as protocol 1 packs them, one every ``ld`` bytes
  (``ld`` a multiple of the beat's alignment); the beats are those the family's ``schedule``
  makes for the stream, each distinct beat stored once (a unit's parameter stream, the
  sparse chain's compressed weights, and its activation beats when x is not stored by columns).

``shape`` (optional) is the 2-D shape ``(R, N)`` of the stored tensor, for families whose
RUN dims do not carry it (the element-wise families, ``gelu`` and ``copy``: their dims are the
element count; :func:`elementwise_streams`).

The codes a unit reads past a tensor's edge (the zero padding of a ragged tile) must be zero
in memory: the compiler allocates each tensor with that padding and writes it as zeros.
NumPy only; no family is known here.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import numpy as np

__all__ = ["LOOPS", "DATA", "RAW", "LAYOUTS", "Descriptor", "Place", "ProgramError",
           "storage_bits", "alignment", "elem_bytes", "data_lanes", "data_beat", "raw_bytes",
           "elements", "elementwise", "elementwise_streams", "flags", "no_program",
           "DESCRIPTOR_BYTES"]

LOOPS = 4
DATA, RAW = 0, 1
_DESC = struct.Struct("<BBHI4H4i4B4B")
DESCRIPTOR_BYTES = _DESC.size   # 40
LAYOUTS = ("row", "col", "raw")


class ProgramError(ValueError):
    """A program or descriptor a board refuses (NAK ``BAD_PROGRAM``), or operand places a
    family cannot play; one line."""


def storage_bits(width: int) -> int:
    """Bits a code of ``width`` bits takes in the tensor memory: 4, 8, 16 or 32."""
    for bits in (4, 8, 16, 32):
        if width <= bits:
            return bits
    raise ProgramError(f"a {width}-bit code has no tensor-memory storage (allowed: up to 32 "
                       "bits)")


def alignment(nbytes: int, word_bytes: int) -> int:
    """The multiple every beat address of ``nbytes``-byte beats must be: the smallest power of
    two ``>= nbytes``, at most ``word_bytes`` (so a beat lies inside one word, or starts one)."""
    return min(1 << max(0, (nbytes - 1).bit_length()), word_bytes)


def data_lanes(spec: dict) -> tuple[int, int, bool]:
    """``(lanes, lane_width, signed)`` of a stream's ``data`` field spec (INFO ``fields``)."""
    if "lanes" in spec:
        return spec["lanes"], spec["lane_width"], bool(spec.get("signed"))
    return 1, spec["width"], bool(spec.get("signed"))


def data_beat(streams: dict, stream: str, what: str) -> tuple[int, int, int]:
    """``(lanes, storage bits, nbytes)`` of a ``data`` beat of ``stream`` (INFO ``streams``
    of the unit); a beat must be whole bytes."""
    lanes, width, _ = data_lanes(streams[stream]["fields"]["data"])
    sw = storage_bits(width)
    if lanes * sw % 8:
        raise ProgramError(f"{what}: {lanes} lanes of {sw}-bit storage are not whole bytes "
                           "(allowed: an even lane count for 4-bit formats)")
    return lanes, sw, lanes * sw // 8


def raw_bytes(streams: dict, stream: str) -> int:
    """``nbytes`` of a ``raw`` descriptor of ``stream``: the protocol-1 beat bytes."""
    return int(streams[stream]["beat_bytes"])


def elements(place: Place, rows: int, cols: int, e: int) -> tuple[tuple, tuple]:
    """``(count, stride)`` of a 1-lane stream walking ``[rows, cols]`` row by row over a
    ``row`` or ``col`` place with ``e``-byte elements."""
    if place.layout == "row":
        return (rows, cols), (place.ld, e)
    return (rows, cols), (e, place.ld)


def flag_names(fields: dict) -> list[str]:
    """The flag fields of a stream's ``fields``: its one-bit fields other than ``data`` and
    ``mode``, in field order (flag ``j`` of a ``data`` descriptor is the ``j``-th)."""
    return [n for n, s in fields.items() if n not in ("data", "mode") and s["width"] == 1]


def flags(streams: dict, stream: str, **masks: int) -> tuple[int, ...]:
    """``first`` or ``last`` masks of a ``data`` descriptor by flag field name: the stream's
    one-bit fields other than ``mode``, in field order, are flags 0, 1, ..."""
    names = flag_names(streams[stream]["fields"])
    unknown = set(masks) - set(names)
    if unknown:
        raise ProgramError(f"{stream}: no flag field {sorted(unknown)[0]} (allowed: "
                           f"{', '.join(names) or 'none'})")
    return tuple(masks.get(n, 0) for n in names)


def elem_bytes(width: int, what: str) -> int:
    """Bytes of one element addressed on its own (a 1-lane stream, an element stride): a
    nibble element cannot be addressed alone."""
    sw = storage_bits(width)
    if sw < 8:
        raise ProgramError(f"{what}: {width}-bit codes are stored two per byte and cannot be "
                           "addressed one by one (allowed: formats of 5 bits or more here)")
    return sw // 8


@dataclass(frozen=True)
class Descriptor:
    """One stream's address generator (``docs/programs.md``, "Streams")."""

    bank: int
    kind: int
    nbytes: int
    base: int
    count: tuple[int, ...] = (1, 1, 1, 1)
    stride: tuple[int, ...] = (0, 0, 0, 0)
    first: tuple[int, ...] = (0, 0, 0, 0)
    last: tuple[int, ...] = (0, 0, 0, 0)

    def __post_init__(self):
        for name in ("count", "stride", "first", "last"):
            v = tuple(int(x) for x in getattr(self, name))
            if len(v) < LOOPS and name in ("count", "stride"):
                # fewer loops given: they are the innermost ones
                v = (1 if name == "count" else 0,) * (LOOPS - len(v)) + v
            elif len(v) < LOOPS:
                v = v + (0,) * (LOOPS - len(v))
            object.__setattr__(self, name, v)

    @property
    def beats(self) -> int:
        return int(np.prod(self.count))

    def pack(self) -> bytes:
        return _DESC.pack(self.bank, self.kind, self.nbytes, self.base, *self.count,
                          *self.stride, *self.first, *self.last)

    @classmethod
    def unpack(cls, data: bytes) -> Descriptor:
        v = _DESC.unpack(data)
        return cls(v[0], v[1], v[2], v[3], v[4:8], v[8:12], v[12:16], v[16:20])


@dataclass(frozen=True)
class Place:
    """Where an operand lies (see the module docstring): ``bank``, ``base`` (byte address of
    element ``(0, 0)``, or of the first raw beat), ``layout`` (``row``, ``col`` or ``raw``) and
    ``ld`` (bytes between rows in ``row``, between columns in ``col``)."""

    bank: int
    base: int
    layout: str = "row"
    ld: int = 0
    shape: tuple[int, int] | None = None

    def __post_init__(self):
        if self.layout not in LAYOUTS:
            raise ProgramError(f"layout {self.layout!r} (allowed: {', '.join(LAYOUTS)})")

    def need(self, what: str, *layouts: str) -> None:
        if self.layout not in layouts:
            raise ProgramError(f"{what}: {self.layout} layout (allowed: "
                               f"{' or '.join(layouts)})")


def elementwise(place: Place, n: int, lanes: int, sw: int, nbytes: int, what: str
                ) -> tuple[tuple, tuple]:
    """``(count, stride)`` of beats of ``lanes`` codes walking a 2-D place row by row (the
    flattening of an element-wise family's ``schedule``): one lane over any ``row`` or ``col``
    place (element strides, so an element-wise op also changes a tensor's layout); more lanes
    over a ``row`` place with ``N`` a multiple of ``lanes``, or stored dense (``ld`` = ``N``
    codes, or one row) with the last beat's padding zero in memory."""
    place.need(what, "row", "col")
    if place.shape is None or int(np.prod(place.shape)) != n:
        raise ProgramError(f"{what}: place shape {place.shape} does not hold {n} elements "
                           "(allowed: a 2-D shape (R, N) with R * N elements)")
    r, c = place.shape
    if lanes == 1:
        return elements(place, r, c, elem_bytes(sw, what))
    if place.layout == "row" and c % lanes == 0:
        return (r, c // lanes), (place.ld, nbytes)
    if place.layout == "row" and (place.ld * 8 == c * sw or r == 1):
        return (math.ceil(n / lanes),), (nbytes,)
    raise ProgramError(f"{what}: {lanes} lanes over a {place.layout} tensor of shape "
                       f"{place.shape} (allowed: 1 lane, or row layout with N a multiple of "
                       f"{lanes} or stored dense)")


def elementwise_streams(unit: str, n: int, places: dict, streams: dict,
                        operands: tuple[tuple[str, str], ...] = (("x", "i_stream"),
                                                                  ("y", "o_stream")),
                        ) -> dict:
    """The descriptors of an element-wise op ``y = f(x)`` of ``n`` elements: one ``data``
    descriptor per ``(operand, stream)`` of ``operands`` walking its place as
    :func:`elementwise` does; the first operand is the input, its last beat marked ``last``.
    ``unit`` (the family's name) prefixes the messages. Returns them in ``streams``' order."""
    out = {}
    for k, (op, stream) in enumerate(operands):
        what = f"{unit} {op}"
        lanes, sw, nb = data_beat(streams, stream, what)
        pl = places[op]
        count, stride = elementwise(pl, n, lanes, sw, nb, what)
        last = flags(streams, stream, last=0b1111) if k == 0 else ()
        out[stream] = Descriptor(pl.bank, DATA, nb, pl.base, count, stride, last=last)
    return {s: out[s] for s in streams}


def no_program(family: str) -> ProgramError:
    return ProgramError(f"unit family {family} cannot run from the tensor memory (allowed: "
                        "the families with program_streams)")
