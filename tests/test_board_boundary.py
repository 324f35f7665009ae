"""Facts that cross the hardware/software boundary have one source: the board RTL takes the
protocol's constants from :mod:`host.protocol` and its buffer depths from
:mod:`generators.board_info`, and the simulated board's harness takes its port names from the
board's manifest."""

from __future__ import annotations

import ast
import re
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


def test_verilator_names():
    from sim.board import verilator_name

    assert verilator_name("rx__valid") == "rx___05Fvalid"
    assert verilator_name("u0_clk") == "u0_clk"
    assert verilator_name("a___b") == "a___05F_b"
    assert verilator_name("a$b") == "a__024b"


@pytest.mark.parametrize("face", ["bytes", "uart"])
def test_ports_header_follows_the_manifest(small_cfg, face, tmp_path):
    """The harness header names exactly the manifest's ports, as the members Verilator
    makes of them (checked against Verilator's own header of the board), with their widths."""
    import subprocess

    import sim.board as sb
    from sim import toolenv

    vpath = sb.verilog(small_cfg, face)
    meta = sb.manifest(vpath)
    module = re.search(r"^module tensorfab_board\(([^)]*)\);", vpath.read_text(), re.M)
    assert {p["name"] for p in meta["ports"]} == {n.strip() for n in module[1].split(",")}
    header = sb.ports_header(meta)
    defines = dict(re.findall(r"^#define (PORT_\w+) (\w+)$", header, re.M))
    members = {v: defines[k + "_WIDTH"] for k, v in defines.items()
               if not k.endswith("_WIDTH")}
    # the manifest's widths, under Verilator's member names
    assert members == {sb.verilator_name(p["name"]): str(p["width"]) for p in meta["ports"]}
    n_units = len(small_cfg.units) if face == "bytes" else 0
    assert f"#define BOARD_UNITS {n_units}\n" in header
    assert header.count("_clk = (g >> ") == n_units

    toolenv.ensure()
    subprocess.run(["verilator", "--cc", "-Wno-fatal", "-Wno-lint", "--Mdir", str(tmp_path),
                    str(vpath)], check=True, capture_output=True, timeout=600)
    vl = (tmp_path / "Vtensorfab_board.h").read_text()
    made = {name: str(int(msb) - int(lsb) + 1) for name, msb, lsb in
            re.findall(r"VL_(?:IN|OUT)\w*\(&(\w+),(\d+),(\d+)(?:,\d+)?\)", vl)}
    assert made == members


def test_ports_header_changes_the_binary_key(small_cfg, monkeypatch):
    import sim.board as sb

    vpath = sb.verilog(small_cfg, "bytes")
    before = sb.binary_dir(vpath, "bytes")
    monkeypatch.setattr(sb, "ports_header", lambda meta: "// another header\n")
    assert sb.binary_dir(vpath, "bytes") != before


@pytest.mark.parametrize("name", sorted(p.stem for p in (ROOT / "rtl").glob("*.json")))
def test_runner_ports_come_from_the_manifest(name, tmp_path):
    """``ports.vlt`` lists the manifest's ports, which are the Verilog module's ports."""
    import json

    from sim.runner import _ports_control_file

    manifest = json.loads((ROOT / "rtl" / f"{name}.json").read_text())
    text = (ROOT / "rtl" / f"{name}.v").read_text()
    module = re.search(rf"^module {manifest['top']}\(([^)]*)\);", text, re.M)
    in_verilog = {n.strip() for n in module[1].split(",")}
    vlt = _ports_control_file(tmp_path, manifest["top"], manifest["ports"]).read_text()
    listed = set(re.findall(rf'-module "{manifest["top"]}" -var "(\w+)"', vlt))
    assert listed == {p["name"] for p in manifest["ports"]} == in_verilog
