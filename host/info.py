"""The one check of a board's design description (the INFO reply, docs/protocol.md) before the
host uses any of it.

A board, or something pretending to be one, may answer INFO with anything. :func:`parse_info`
turns the downloaded bytes into the description only if every field the host relies on has
its type and a usable range: JSON nested at most :data:`MAX_DEPTH` deep (checked on the bytes,
before the JSON parser recurses), ``max_payload`` large enough for a request header plus the
largest beat and at most the protocol's :data:`~host.protocol.MAX_PAYLOAD`, ``beat_bytes``,
``depth`` and the tensor memory's sizes at least 1, buffer ids distinct, fields inside their
beats. Anything else is an :class:`InfoError` whose message names the field and what is
allowed, in one line (:mod:`host.board` turns it into a ``BoardError``).

No I/O here, and no Amaranth or pydantic: the unit ``config`` is checked as a mapping only;
the config models check it when the unit is first used.
"""

from __future__ import annotations

import json
import math

from . import protocol as p

__all__ = ["InfoError", "parse_info", "check_info", "MAX_DEPTH", "DEFAULT_INFO_DEADLINE"]

#: Deepest nesting of objects and arrays the host parses (the descriptions of every design
#: here nest at most 8 deep: units, config, a network's layers, their fields).
MAX_DEPTH = 32
#: Seconds the whole INFO download may take (every piece and retry together), whatever the
#: per-reply timeout: a board that answers one byte per reply just under the timeout would
#: otherwise take hours.
DEFAULT_INFO_DEADLINE = 60.0
#: Fixed bytes before the data of the requests that carry beats or bytes (WRITE: buf u8 +
#: beat u32; TM_WRITE: bank u8 + addr u32; TM_SCATTER: its 11-byte head).
WRITE_HEAD = 5


class InfoError(ValueError):
    """A design description the host cannot use; the message names the field."""


def nesting_depth(raw: bytes) -> int:
    """The deepest nesting of ``[``/``{`` in JSON bytes, strings skipped (a linear scan that
    cannot recurse, so it is safe on any input)."""
    depth = deepest = 0
    in_str = esc = False
    for ch in raw:
        if in_str:
            if esc:
                esc = False
            elif ch == 0x5C:  # backslash
                esc = True
            elif ch == 0x22:  # quote
                in_str = False
        elif ch == 0x22:
            in_str = True
        elif ch in (0x5B, 0x7B):
            depth += 1
            deepest = max(deepest, depth)
        elif ch in (0x5D, 0x7D):
            depth -= 1
    return deepest


def _no_constant(name: str):
    raise InfoError(f"{name} is not JSON (allowed: finite numbers)")


def parse_info(raw: bytes) -> dict:
    """The checked description from the INFO bytes (see the module docstring)."""
    depth = nesting_depth(raw)
    if depth > MAX_DEPTH:
        raise InfoError(f"JSON nested {depth} deep (allowed: at most {MAX_DEPTH})")
    try:
        desc = json.loads(bytes(raw).decode("utf-8"), parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise InfoError("not UTF-8 text (allowed: a UTF-8 JSON object)") from None
    except json.JSONDecodeError as err:
        raise InfoError(f"not JSON ({err.msg} at byte {err.pos}) (allowed: a JSON object)") \
            from None
    except RecursionError:  # pragma: no cover - the depth check comes first
        raise InfoError(f"JSON nested too deep (allowed: at most {MAX_DEPTH})") from None
    check_info(desc)
    return desc


def _type(v) -> str:
    return "null" if v is None else type(v).__name__


def _int(d: dict, key: str, where: str, lo: int, hi: int | None = None) -> int:
    if key not in d:
        raise InfoError(f"{where}{key} is missing (allowed: an integer >= {lo})")
    v = d[key]
    if isinstance(v, bool) or not isinstance(v, int):
        raise InfoError(f"{where}{key} = {v!r:.40} is a {_type(v)} (allowed: an integer)")
    if v < lo or (hi is not None and v > hi):
        allowed = f"{lo}..{hi}" if hi is not None else f">= {lo}"
        raise InfoError(f"{where}{key} = {v} (allowed: {allowed})")
    return v


def _str(d: dict, key: str, where: str) -> str:
    v = d.get(key)
    if not isinstance(v, str) or not v:
        raise InfoError(f"{where}{key} = {v!r:.40} (allowed: a non-empty string)")
    return v


def _obj(v, what: str) -> dict:
    if not isinstance(v, dict):
        raise InfoError(f"{what} is a {_type(v)} (allowed: an object)")
    return v


def check_info(desc) -> None:
    """Check a parsed description; :class:`InfoError` for the first field that is off."""
    _obj(desc, "the description")
    proto = desc.get("protocol")
    if isinstance(proto, bool) or proto not in p.PROTOCOLS:
        raise InfoError(f"protocol = {proto!r:.40} (allowed: "
                        f"{', '.join(map(str, p.PROTOCOLS))})")
    for key in ("name", "board", "hash"):
        _str(desc, key, "")
    clock = desc.get("clock_hz")
    if not ((type(clock) is int and 0 <= clock < 1 << 63) or
            (type(clock) is float and math.isfinite(clock) and clock >= 0)):
        raise InfoError(f"clock_hz = {clock!r:.40} (allowed: a number >= 0; 0: not known)")
    _int(desc, "buffer_bytes", "", 1)
    units = desc.get("units")
    if not isinstance(units, list) or not 1 <= len(units) <= 255:
        what = f"a {_type(units)}" if not isinstance(units, list) else f"{len(units)} units"
        raise InfoError(f"units is {what} (allowed: a list of 1..255 unit objects)")
    buffers: dict[int, str] = {}
    longest_beat = 0
    most_streams = 0
    for i, u in enumerate(units):
        _obj(u, f"units[{i}]")
        where = f"units[{i}]."
        _str(u, "name", where)
        _str(u, "unit", where)
        _obj(u.get("config"), f"{where}config")
        if "latency" in u:
            _int(u, "latency", where, 0)
        modes = u.get("modes", {})
        if modes is None:
            modes = {}
        _obj(modes, f"{where}modes")
        for name in modes:
            _int(modes, name, f"{where}modes.", 0, 255)
        streams = _obj(u.get("streams"), f"{where}streams")
        if not streams:
            raise InfoError(f"{where}streams is empty (allowed: at least one stream)")
        most_streams = max(most_streams, len(streams))
        for name, s in streams.items():
            sw = f"{where}streams.{name}."
            _obj(s, sw[:-1])
            if s.get("dir") not in ("in", "out"):
                raise InfoError(f"{sw}dir = {s.get('dir')!r:.40} (allowed: in, out)")
            buf = _int(s, "buffer", sw, 0, 255)
            if buf in buffers:
                raise InfoError(f"{sw}buffer = {buf} is also {buffers[buf]}'s (allowed: one "
                                "buffer per stream)")
            buffers[buf] = sw[:-1]
            bb = _int(s, "beat_bytes", sw, 1, p.MAX_PAYLOAD)
            _int(s, "depth", sw, 1, (1 << 32) - 1)
            longest_beat = max(longest_beat, bb)
            fields = _obj(s.get("fields"), f"{sw}fields")
            if not fields:
                raise InfoError(f"{sw}fields is empty (allowed: at least one field)")
            for fname, f in fields.items():
                fw = f"{sw}fields.{fname}."
                _obj(f, fw[:-1])
                off = _int(f, "offset", fw, 0)
                width = _int(f, "width", fw, 1)
                if off + width > 8 * bb:
                    raise InfoError(f"{fw[:-1]}: bits {off}..{off + width - 1} do not fit "
                                    f"its {bb}-byte beat (allowed: within {8 * bb} bits)")
                if "lanes" in f:
                    lanes = _int(f, "lanes", fw, 1)
                    lw = _int(f, "lane_width", fw, 1)
                    if lanes * lw != width:
                        raise InfoError(f"{fw[:-1]}: {lanes} lanes of {lw} bits in a "
                                        f"{width}-bit field (allowed: lanes * lane_width = "
                                        "width)")
                if not isinstance(f.get("signed", False), bool):
                    raise InfoError(f"{fw}signed = {f.get('signed')!r:.40} (allowed: true, "
                                    "false)")
    need = max(WRITE_HEAD + longest_beat, 14 + 4 * most_streams, 7)
    if desc.get("protocol", 1) >= 2:
        tm = _obj(desc.get("tensor_memory"), "tensor_memory")
        _int(tm, "banks", "tensor_memory.", 1, 255)
        _int(tm, "bank_bytes", "tensor_memory.", 1, (1 << 32) - 1)
        _int(tm, "word_bytes", "tensor_memory.", 1)
        _int(desc, "program_bytes", "", 1, (1 << 32) - 1)
        need = max(need, p.TM_SCATTER_HEAD + 1)
    mp = _int(desc, "max_payload", "", 0)
    if not need <= mp <= p.MAX_PAYLOAD:
        raise InfoError(f"max_payload = {mp} (allowed: {need}..{p.MAX_PAYLOAD}: a request "
                        f"header and the largest beat, {longest_beat} bytes, must fit one "
                        "frame)")
