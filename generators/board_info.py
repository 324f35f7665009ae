"""The design description of a board design (docs/protocol.md, "Design description").

:func:`describe` is the one function that makes it: the RTL board stores its bytes in a ROM
and the Python reference board (``model://``) answers INFO with the same bytes. The stream
layouts come from the units' Amaranth components (the same ``fields`` as the manifest), so this
module imports Amaranth when called; the host driver only reads the JSON.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache

from .config import BoardConfig, config_to_dict
from .errors import UserError
from .units import family

__all__ = ["describe", "describe_bytes", "beat_bytes", "buffer_depth", "BOARD_CLOCK_HZ",
           "PROTOCOL", "MAX_PAYLOAD"]

PROTOCOL = 1
#: The protocol of a design with a tensor memory (docs/programs.md).
PROTOCOL_TM = 2
#: Largest packet payload on every design of protocol version 1.
MAX_PAYLOAD = 1024
#: The clock the units run at on each board (the board's oscillator; no PLL in version 1).
BOARD_CLOCK_HZ = {"ulx3s": 25_000_000, "icebreaker": 12_000_000, "pynq_z2": 125_000_000,
                  "alveo_u280": 300_000_000}


def beat_bytes(width: int) -> int:
    """Bytes of one buffered beat of a ``width``-bit stream payload (whole bytes, the way
    WRITE and READ carry it)."""
    return (width + 7) // 8


def buffer_depth(buffer_bytes: int, width: int) -> int:
    """Beats of a ``width``-bit stream that fit in a ``buffer_bytes`` stream buffer: the
    ``depth`` INFO reports and the depth of the board's buffer memory, from this one place
    so the two cannot disagree (0 when not even one beat fits)."""
    return buffer_bytes // beat_bytes(width)


def describe(cfg: BoardConfig) -> dict:
    """The description as a dict (a fresh copy; see :func:`describe_bytes` for the bytes).

    ``units[i].streams`` lists each unit's streams in manifest order (inputs and outputs as the
    component declares them); ``buffer`` ids count over all units' streams in order;
    ``depth = buffer_bytes // beat_bytes``. ``hash`` is the first 16 hex digits of the SHA-256
    of the description's compact JSON without the ``hash`` key.
    """
    return json.loads(describe_bytes(cfg))


@lru_cache(maxsize=32)
def describe_bytes(cfg: BoardConfig) -> bytes:
    """The description as the compact UTF-8 JSON the board sends (INFO)."""
    # local: keeps Amaranth (~0.5 s) out of importing this module (the host's model:// board)
    from .emit import describe_ports

    units = []
    buffer = 0
    for unit_cfg in cfg.units:
        fam = family(unit_cfg.unit)
        params = fam.params(unit_cfg)
        comp = fam.component(params)
        comp._MustUse__silence = True  # built only to read its stream layouts
        _, streams = describe_ports(comp)
        extra = fam.manifest_extra(params)
        out_streams = {}
        for name, s in streams.items():
            nbytes = beat_bytes(s["payload_width"])
            depth = buffer_depth(cfg.buffer_bytes, s["payload_width"])
            if depth < 1:
                raise UserError(f"{cfg.name}: unit {unit_cfg.name}: stream {name} has "
                                f"{nbytes}-byte beats but buffer_bytes is {cfg.buffer_bytes} "
                                f"(allowed: buffer_bytes >= {nbytes})")
            out_streams[name] = {"dir": s["dir"], "buffer": buffer, "beat_bytes": nbytes,
                                 "depth": depth, "fields": s["fields"]}
            buffer += 1
        units.append({"name": unit_cfg.name, "unit": unit_cfg.unit,
                      "config": config_to_dict(unit_cfg), "latency": extra.get("latency"),
                      "modes": extra.get("modes", {}), "streams": out_streams})
    protocol = PROTOCOL if cfg.tensor_memory is None else PROTOCOL_TM
    desc = {"protocol": protocol, "name": cfg.name, "board": cfg.board,
            "clock_hz": BOARD_CLOCK_HZ.get(cfg.board, 0), "max_payload": MAX_PAYLOAD,
            "buffer_bytes": cfg.buffer_bytes}
    tm = cfg.tensor_memory
    if tm is not None:
        desc["tensor_memory"] = {"banks": tm.banks, "bank_bytes": tm.bank_bytes(cfg.board),
                                 "word_bytes": tm.word_bytes}
        desc["program_bytes"] = tm.program_bytes
    desc["units"] = units
    body = json.dumps(desc, separators=(",", ":"))
    desc = {"protocol": protocol, "name": cfg.name, "board": cfg.board,
            "hash": hashlib.sha256(body.encode()).hexdigest()[:16], **{
                k: v for k, v in desc.items() if k not in ("protocol", "name", "board")}}
    data = json.dumps(desc, separators=(",", ":")).encode()
    if len(data) > 0xFFFF:
        raise UserError(f"{cfg.name}: the design description is {len(data)} bytes "
                        "(allowed: at most 65535; use fewer units)")
    return data
