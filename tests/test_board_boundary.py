"""Facts that cross the hardware/software boundary have one source: the board RTL takes the
protocol's constants from :mod:`host.protocol` and its buffer depths from
:mod:`generators.board_info`, and the simulated board's harness takes its port names from the
board's manifest."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import boards.top as top
import host.protocol as proto
from generators import board_info
from generators.config import parse_config

ROOT = Path(__file__).resolve().parent.parent

SMALL = {
    "name": "tiny", "board": "ulx3s", "link": {"uart": 3000000}, "buffer_bytes": 300,
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


def test_board_protocol_constants_are_the_host_protocols():
    for name in ("Op", "NakCode", "COBS_MAX", "HEADER_BYTES", "CRC_BYTES", "NAK_OP", "ACK_BIT",
                 "VERSION"):
        assert getattr(top, name) is getattr(proto, name), name
    assert top.PACKET_MAX == proto.HEADER_BYTES + proto.MAX_PAYLOAD + proto.CRC_BYTES


def test_board_rtl_defines_no_protocol_numbers_of_its_own():
    # no module-level OP_*/BAD_*/HEADER/COBS_MAX assignments left in boards/top.py
    tree = ast.parse((ROOT / "boards" / "top.py").read_text())
    names = {t.id for node in tree.body if isinstance(node, ast.Assign)
             for tgt in node.targets for t in ast.walk(tgt) if isinstance(t, ast.Name)}
    assert not {n for n in names if n.startswith(("OP_", "BAD_")) or n in (
        "HEADER", "COBS_MAX", "OUT_OF_RANGE")}, names


def test_generators_and_host_agree_on_the_protocol():
    # generators may not import host (layering), so these two are checked here instead
    assert board_info.PROTOCOL == proto.VERSION
    assert board_info.MAX_PAYLOAD == proto.MAX_PAYLOAD


def test_buffer_depths_of_the_rtl_are_the_descriptions(small_cfg):
    core = top.BoardCore(small_cfg)
    desc = board_info.describe(small_cfg)
    described = {s["buffer"]: (s["depth"], s["beat_bytes"])
                 for u in desc["units"] for s in u["streams"].values()}
    assert {b.buffer: (b.depth, b.beat_bytes) for b in core.buffers} == described
    # buffer_bytes 300 is not a multiple of every beat: the depth rounds down
    assert any(d * bb < 300 for d, bb in described.values())


def test_buffer_depth():
    assert board_info.beat_bytes(1) == 1 and board_info.beat_bytes(9) == 2
    assert board_info.buffer_depth(256, 32) == 64
    assert board_info.buffer_depth(100, 24) == 33
    assert board_info.buffer_depth(2, 32) == 0
