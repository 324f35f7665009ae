"""The design description of a board design (docs/protocol.md, "Design description").

:func:`describe` is the one function that says what a board serves: the RTL board keeps its
JSON text (:func:`describe_bytes`) in the INFO ROM and the host's reference board answers INFO
from the same dict, so both agree byte for byte.
"""

from __future__ import annotations

import hashlib
import json

from .config import BoardConfig, config_to_dict

PROTOCOL_VERSION = 1
MAX_PAYLOAD = 1024

#: The clock each board's design runs on (the oscillator the board top uses directly).
BOARD_CLOCK_HZ = {
    "ulx3s": 25_000_000,
    "icebreaker": 12_000_000,
    "pynq_z2": 125_000_000,
    "alveo_u280": 100_000_000,
}


def _streams(unit_cfg) -> dict:
    from .emit import describe_ports
    from .units import family

    fam = family(unit_cfg.unit)
    _, streams = describe_ports(fam.component(fam.params(unit_cfg)))
    return streams


def describe(board_cfg: BoardConfig) -> dict:
    """The design description of ``board_cfg`` as a dict (JSON-able, key order fixed).

    Buffers are numbered over all units and streams in order; each holds
    ``buffer_bytes // beat_bytes`` beats of its stream.
    """
    from .units import family

    units = []
    buf = 0
    for ucfg in board_cfg.units:
        fam = family(ucfg.unit)
        params = fam.params(ucfg)
        extra = fam.manifest_extra(params)
        streams = {}
        for sname, s in _streams(ucfg).items():
            beat_bytes = (s["payload_width"] + 7) // 8
            streams[sname] = {"dir": s["dir"], "buffer": buf, "beat_bytes": beat_bytes,
                              "depth": board_cfg.buffer_bytes // beat_bytes,
                              "fields": s["fields"]}
            buf += 1
        units.append({"name": ucfg.name, "unit": ucfg.unit, "config": config_to_dict(ucfg),
                      "latency": extra["latency"], "modes": dict(extra.get("modes", {})),
                      "streams": streams})
    body = {"protocol": PROTOCOL_VERSION, "name": board_cfg.name, "board": board_cfg.board,
            "clock_hz": BOARD_CLOCK_HZ[board_cfg.board], "max_payload": MAX_PAYLOAD,
            "units": units}
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]
    return {"protocol": PROTOCOL_VERSION, "name": board_cfg.name, "board": board_cfg.board,
            "hash": digest, "clock_hz": body["clock_hz"], "max_payload": MAX_PAYLOAD,
            "units": units}


def describe_bytes(board_cfg: BoardConfig) -> bytes:
    """The compact UTF-8 JSON text INFO serves."""
    return json.dumps(describe(board_cfg), separators=(",", ":")).encode()
