"""Issue 19's bench rows: sweep throughput on 1 and 2 workers, and one real sweep.

- Throughput: ``bench/sweeps/throughput.yaml`` (16 small ECP5 synthesis jobs) run by
  ``tensorfab sweep`` on a LocalCluster of 1 worker, then of 2, each into an empty folder, in
  one run of this module; jobs per hour of each and their ratio. CPU seconds of the jobs and
  the load average are recorded beside the wall times, since other work on the machine takes
  cores from the sweep.
- The real sweep: ``bench/sweeps/arrays.yaml`` into ``bench/sweep_arrays/`` (its
  ``results.jsonl``, ``report.md``, ``pareto.json`` and ``front.png`` are committed; a rerun
  measures only what is missing).

``python -m bench.sweep [--throughput] [--real]`` (both by default) writes the ``sweep`` key of
``bench/results.json`` and rebuilds ``bench/RESULTS.md``; ``python -m bench.run --sweep-only``
does the same.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _sweep(sweep: Path, out: Path, workers: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "tensorfab", "sweep", str(sweep), "--out",
                           str(out), "--workers", str(workers), "--no-progress"], env=env,
                          capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"tensorfab sweep failed: {proc.stderr.strip()[-500:]}")
    rows = [json.loads(ln) for ln in (out / "results.jsonl").read_text().splitlines() if ln]
    ok = sum(r["status"] == "ok" for r in rows)
    return {"workers": workers, "jobs": len(rows), "ok": ok, "wall_seconds": round(wall, 1),
            "jobs_per_hour": round(len(rows) * 3600 / wall, 1),
            "job_seconds_sum": round(sum(r.get("seconds") or 0 for r in rows), 1),
            "load_average_before": round(load0, 1),
            "load_average_after": round(os.getloadavg()[0], 1)}


def bench_throughput() -> dict:
    sweep = HERE / "sweeps" / "throughput.yaml"
    runs = []
    with tempfile.TemporaryDirectory(prefix="tensorfab-bench-sweep-") as tmp:
        for workers in (1, 2):
            r = _sweep(sweep, Path(tmp) / f"w{workers}", workers)
            print(f"  sweep throughput, {workers} worker(s): {r['jobs']} jobs in "
                  f"{r['wall_seconds']} s = {r['jobs_per_hour']} jobs/h (load "
                  f"{r['load_average_before']} -> {r['load_average_after']})", flush=True)
            runs.append(r)
    return {"runs": runs, "ratio": round(runs[1]["jobs_per_hour"] / runs[0]["jobs_per_hour"],
                                         3), "cores": os.cpu_count()}


def bench_real(out: Path = HERE / "sweep_arrays") -> dict:
    sweep = HERE / "sweeps" / "arrays.yaml"
    r = _sweep(sweep, out, 2)
    rows = [json.loads(ln) for ln in (out / "results.jsonl").read_text().splitlines() if ln]
    refused = [x for x in rows if (x.get("error") or "").startswith("does not fit")]
    fmax = [x["fmax_mhz"] for x in rows if x.get("fmax_mhz")]
    return {**r, "report": str((out / "report.md").relative_to(ROOT)),
            "refused_before_pnr": len(refused), "fmax_mhz": sorted(fmax),
            "failed": [x["error"] for x in rows if x["status"] != "ok" and x not in refused]}


def targets(res: dict) -> list[dict]:
    out = []
    t = res.get("throughput")
    if t:
        one, two = t["runs"]
        out.append({"issue": 19, "target": "sweep: 2 workers on 2 cores >= 1.8x the throughput "
                    "of 1 worker (16-point ECP5 synth sweep, one run)",
                    "measured": f"{t['ratio']:.2f}x ({one['jobs_per_hour']} -> "
                                f"{two['jobs_per_hour']} jobs/h; load average "
                                f"{one['load_average_before']}-{two['load_average_after']})",
                    "met": t["ratio"] >= 1.8})
    return out


def markdown(res: dict) -> list[str]:
    lines = ["", "## Design-space sweeps (`tensorfab sweep`, issue 19)", ""]
    t = res.get("throughput")
    if t:
        lines += ["`bench/sweeps/throughput.yaml`: 16 ECP5 synthesis jobs (1x1 to 4x4 int8 "
                  "arrays), each into an empty results folder, on a LocalCluster of 1 and of 2 "
                  f"workers ({t['cores']} cores; the load average is other work on the "
                  "machine).", "",
                  "| workers | jobs | ok | wall s | jobs/h | sum of job seconds | load average "
                  "before / after |", "|---|---|---|---|---|---|---|"]
        for r in t["runs"]:
            lines.append(f"| {r['workers']} | {r['jobs']} | {r['ok']} | {r['wall_seconds']} | "
                         f"{r['jobs_per_hour']} | {r['job_seconds_sum']} | "
                         f"{r['load_average_before']} / {r['load_average_after']} |")
        lines += ["", f"Ratio 2 workers / 1 worker: {t['ratio']:.2f}x. With other work on "
                  "the machine (the load average above), two worker processes also win a "
                  "larger share of the cores than one, so a ratio measured under load is not "
                  "the idle machine's.", ""]
    r = res.get("real")
    if r:
        lines += [f"The real sweep `bench/sweeps/arrays.yaml`: report `{r['report']}` "
                  f"({r['jobs']} jobs, {r['ok']} ok, {r['refused_before_pnr']} refused by the "
                  "capacity check before nextpnr; Fmax of the placed ones: "
                  f"{', '.join(f'{v:g}' for v in r['fmax_mhz']) or '-'} MHz; the jobs' own "
                  f"times sum to {r['job_seconds_sum']:g} s on 2 workers; a rerun measures "
                  f"nothing again: {r['wall_seconds']} s).", ""]
    return lines


def merge_markdown(sec: dict, path: Path) -> None:
    """Put this section and its target rows into an existing RESULTS.md (the other sections
    stay as their own runs wrote them)."""
    text = path.read_text()
    head = "\n## Design-space sweeps (`tensorfab sweep`, issue 19)\n"
    body = "\n".join(markdown(sec)).strip("\n")
    if head in text:
        start = text.index(head)
        nxt = text.find("\n## ", start + len(head))
        text = text[:start] + "\n\n" + body + ("\n" + text[nxt:] if nxt >= 0 else "\n")
    else:
        text = text.rstrip("\n") + "\n\n" + body + "\n"
    lines = [ln for ln in text.split("\n") if not ln.startswith("| sweep: ")]
    rows = [f"| {t['target']} | {t['measured']} | {'yes' if t['met'] else 'NO'} |"
            for t in targets(sec)]
    # after the last row of the targets table
    at = next(i for i, ln in enumerate(lines) if ln.startswith("| target | measured | met |"))
    end = at + 2
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    path.write_text("\n".join(lines[:end] + rows + lines[end:]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.sweep")
    ap.add_argument("--throughput", action="store_true", help="only the 1 vs 2 worker rows")
    ap.add_argument("--real", action="store_true", help="only the real sweep")
    args = ap.parse_args(argv)
    both = not (args.throughput or args.real)
    os.environ.setdefault("TENSORFAB_CACHE", str(ROOT / "build" / "cache"))
    path = HERE / "results.json"
    res = json.loads(path.read_text())
    sec = res.get("sweep", {})
    if args.throughput or both:
        sec["throughput"] = bench_throughput()
    if args.real or both:
        sec["real"] = bench_real()
    res["sweep"] = sec
    res["targets"] = [t for t in res["targets"] if t.get("issue") != 19] + targets(sec)
    path.write_text(json.dumps(res, indent=2) + "\n")
    merge_markdown(sec, HERE / "RESULTS.md")
    for row in targets(sec):
        print(f"  [{'met' if row['met'] else 'NOT MET'}] {row['target']}: {row['measured']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
