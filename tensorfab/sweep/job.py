"""One sweep job: measure one point on one target, in a subprocess with time and memory limits.

:func:`run_job` is what a Dask worker runs. It starts ``python -m tensorfab.sweep.job`` in a
new session with the job as JSON on stdin, watches it (the wall time, and the resident memory
of the job's whole process tree, polled with psutil) and kills the session when a limit is
passed. The subprocess (:func:`measure`) writes its row as the last line of stdout. Whatever
happens, :func:`run_job` returns a row: ``status`` ``ok``, ``failed`` (with the reason in
``error``) or ``timeout``; it never raises for a job's own failure.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FIGURES = ("luts", "ffs", "dsps", "brams", "carry", "fmax_mhz", "cycles", "sim_cycles",
           "macs", "latency_us", "macs_per_s")


def _row(job: dict, **fields) -> dict:
    row = {"key": job["key"], "point": job["point"], "target": job["target"],
           "seed": job["seed"], "measure": job["measure"], "status": "failed", "error": None,
           "design_hash": None, **{f: None for f in FIGURES}, "config": job["config"],
           "config_hash": job.get("config_hash"), "tools": job.get("tools")}
    row.update(fields)
    return row


# -- the worker side -------------------------------------------------------------------------


def _tree_rss(proc) -> int:
    import psutil

    try:
        p = psutil.Process(proc.pid)
        procs = [p, *p.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for q in procs:
        try:
            total += q.memory_info().rss
        except psutil.Error:
            pass
    return total


def run_job(job: dict, work_root: str | None = None) -> dict:
    """Run ``job`` in a subprocess; its row (never raises for the job's own failure)."""
    t0 = time.time()
    root = Path(work_root) if work_root else Path(tempfile.gettempdir()) / "tensorfab-sweep"
    (root / job["key"]).mkdir(parents=True, exist_ok=True)
    # a folder per attempt: a job Dask runs again (its worker died) never shares files with
    # an attempt still running somewhere
    work = Path(tempfile.mkdtemp(prefix=time.strftime("%Y%m%d-%H%M%S-"), dir=root / job["key"]))
    env = dict(os.environ)
    here = str(Path(__file__).resolve().parents[2])  # this checkout first on the job's path
    env["PYTHONPATH"] = here + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    limit_s, limit_b = float(job["timeout"]), int(job["memory_mb"]) << 20
    with open(work / "job.out", "w+") as out, open(work / "job.err", "w+") as err:
        proc = subprocess.Popen([sys.executable, "-m", "tensorfab.sweep.job", str(work)],
                                stdin=subprocess.PIPE, stdout=out, stderr=err, env=env,
                                start_new_session=True)
        proc.stdin.write(json.dumps(job).encode())
        proc.stdin.close()
        reason = status = None
        peak = 0
        try:
            while proc.poll() is None:
                if time.time() - t0 > limit_s:
                    status, reason = "timeout", f"time limit of {limit_s:g} s passed"
                    break
                rss = _tree_rss(proc)
                peak = max(peak, rss)
                if rss > limit_b:
                    status, reason = "failed", (f"memory limit of {job['memory_mb']} MiB "
                                                f"passed ({rss >> 20} MiB resident)")
                    break
                time.sleep(0.1)
        finally:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()
        seconds = round(time.time() - t0, 2)
        if status is not None:
            return _row(job, status=status, error=f"{reason}; job killed", seconds=seconds,
                        peak_mib=peak >> 20, host=os.uname().nodename)
        out.seek(0)
        lines = [ln for ln in out.read().splitlines() if ln.startswith("{")]
        if proc.returncode != 0 or not lines:
            err.seek(0)
            tail = [ln for ln in err.read().splitlines() if ln.strip()][-2:]
            how = (f"killed by signal {-proc.returncode}" if proc.returncode < 0
                   else f"exit status {proc.returncode}")
            return _row(job, error=f"job process {how}: {' | '.join(tail) or 'no output'}",
                        seconds=seconds, peak_mib=peak >> 20, host=os.uname().nodename)
    row = json.loads(lines[-1])
    row.update(seconds=seconds, peak_mib=peak >> 20, host=os.uname().nodename, work=str(work))
    return row


# -- the job process -------------------------------------------------------------------------


def workload_arrays(fam, cfg, workload: dict, seed: int = 0) -> dict:
    """Arrays for a workload: ``{m, k, n}`` for a GEMM family (its split's rows array is
    ``[m, k]``, its cols array ``[k, n]``), or array names with shapes. Codes are random in
    the format of the config key named like the array, zeros where there is none."""
    rng = np.random.default_rng(seed)
    shapes: dict[str, list[int]] = {}
    dims = {k: v for k, v in workload.items() if k in ("m", "k", "n")}
    if dims:
        split = fam.split
        if split.kind != "gemm" or set(dims) != {"m", "k", "n"}:
            raise ValueError(f"workload {', '.join(dims)}: m, k, n together, for a GEMM unit "
                             f"(allowed for {fam.name}: array shapes, e.g. "
                             f"{{{fam.in_arrays[0]}: [16, 64]}})")
        shapes[split.rows[0]] = [dims["m"], dims["k"]]
        shapes[split.cols[0]] = [dims["k"], dims["n"]]
    for name, shape in workload.items():
        if name in dims:
            continue
        if name not in fam.in_arrays:
            raise ValueError(f"{name!r} is not an array of {fam.name} (allowed: "
                             f"{', '.join(fam.in_arrays)}" + (", or m, k, n" if
                                                              fam.split.kind == "gemm" else "")
                             + ")")
        shapes[name] = [shape] if isinstance(shape, int) else list(shape)
    arrays = {}
    for name, shape in shapes.items():
        fmt = getattr(cfg, name, None)
        if hasattr(fmt, "min_code") and hasattr(fmt, "max_code"):
            arrays[name] = rng.integers(fmt.min_code, fmt.max_code + 1, size=shape,
                                        dtype=np.int64)
        else:
            arrays[name] = np.zeros(shape, np.int64)
    return fam.check_inputs(fam.params(cfg), arrays)


def measure(job: dict, work: Path) -> dict:
    """Measure a job in this process; its row (raises only for bugs)."""
    from generators.config import BoardConfig, parse_config
    from generators.devices import DoesNotFit
    from generators.errors import UserError
    from generators.synth import SynthError, synthesize
    from generators.units import family

    row = _row(job)
    cfg = parse_config(job["config"], f"point {job['point']}")
    if isinstance(cfg, BoardConfig):
        return measure_board(job, cfg, work, row)
    fam = family(cfg.unit)
    params = fam.params(cfg)
    measures = set(job["measure"])
    target = job["target"]
    device = None if target in ("xilinx", "generic") else target
    family_name = target if device is None else None
    clock = job.get("clock_mhz")
    try:
        if measures & {"synth", "pnr"}:
            rep = synthesize(cfg, family_name, work / "synth", pnr="pnr" in measures,
                             seed=job["seed"] or 1, freq_mhz=job.get("freq_mhz"),
                             timeout=job["timeout"], device=device)
            row.update({k: rep.get(k) for k in ("luts", "ffs", "dsps", "brams", "carry",
                                                "fmax_mhz", "design_hash")})
            row["part"] = rep.get("part")
            row["fit"] = rep.get("fit")
            row["multipliers"] = (rep.get("multipliers") or {}).get("text")
            if "pnr" in job.get("wanted", ()) and "pnr" not in measures:
                row["note"] = f"no open place and route for {target}: synthesis only"
            if rep.get("pnr"):
                row["critical_path_ns"] = (rep["pnr"].get("critical_path") or {}).get(
                    "delay_ns")
        else:
            from generators.generate import render

            row["design_hash"] = render(cfg)[1]["design_hash"]
        if measures & {"cycles", "sim"}:
            arrays = workload_arrays(fam, cfg, job["workload"])
            row["cycles"] = int(fam.expected_cycles(params, arrays))
            row["macs"] = fam.stats(params, arrays, None).get("macs")
            if "sim" in measures:
                from tensorfab.cli import run_rtl

                _, stats = run_rtl(cfg, fam, params, arrays)
                row["sim_cycles"] = stats.get("cycles")
                row["mismatches"] = stats.get("mismatches")
        row["status"] = "ok"
    except DoesNotFit as err:
        row["error"] = f"does not fit: {err}"
        rep_path = work / "synth" / "report.json"  # written before the refusal
        if rep_path.exists():
            rep = json.loads(rep_path.read_text())
            row.update({k: rep.get(k) for k in ("luts", "ffs", "dsps", "brams", "carry",
                                                "design_hash", "part", "fit")})
    except (UserError, SynthError, ValueError) as err:
        row["error"] = " ".join(str(err).split())
    except RuntimeError as err:  # a simulation that differs from golden, a simulator failure
        row["error"] = " ".join(str(err).split())
    if row["cycles"]:
        from generators.devices import part

        if clock is None:
            clock = row["fmax_mhz"] or (part(device).default_mhz if device else None)
        if clock:
            row["clock_mhz"] = clock
            row["latency_us"] = round(row["cycles"] / clock, 4)
            if row["macs"]:
                row["macs_per_s"] = round(row["macs"] * clock * 1e6 / row["cycles"], 1)
    return row


def measure_board(job: dict, cfg, work: Path, row: dict) -> dict:
    """Measure a board design (measure synth): Yosys on the whole design, the board top's
    Verilog as the simulated board and ``tensorfab bitstream`` put it on the board (the UART
    face: units, tensor memory, program sequencer, protocol engine, UART), with the capacity
    check on the target's part. ``design_hash``: of that Verilog text."""
    import hashlib

    from generators.errors import UserError
    from generators.synth import SynthError, synthesize_files
    from sim import board

    target = job["target"]
    device = None if target in ("xilinx", "generic") else target
    try:
        vpath = board.verilog(cfg, "uart")
        row["design_hash"] = hashlib.sha256(vpath.read_bytes()).hexdigest()[:16]
        rep = synthesize_files([vpath], board.TOP, target if device is None else None,
                               work / "synth", timeout=job["timeout"], device=device)
        row.update({k: rep.get(k) for k in ("luts", "ffs", "dsps", "brams", "carry", "part",
                                            "fit")})
        row["status"] = "ok"
    except (UserError, SynthError, ValueError) as err:
        row["error"] = " ".join(str(err).split())
    return row


def _main() -> int:
    work = Path(sys.argv[1])
    job = json.loads(sys.stdin.read())
    row = measure(job, work)
    sys.stdout.write("\n" + json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(_main())
