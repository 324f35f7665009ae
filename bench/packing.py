"""Two MACs per DSP (issue 18): packed against unpacked MAC arrays on every target.

For each array size, int8 x int8 (``packing: dsp48``, the Xilinx packing) and int4 x int4
(``packing: mult18``, the ECP5 packing) against the same arrays with ``packing: none``:

* Yosys resources on ECP5, iCE40, Xilinx 7-series (DSP48E1) and UltraScale+ (DSP48E2): hard
  multipliers, LUTs, FFs (the same flow as ``tensorfab synth``);
* nextpnr-ecp5 Fmax (median of seeds) of the int4 pair on ECP5, sizes up to ``fmax_max``;
* utilization of a 256^3 GEMM from Verilator cycles (sizes up to ``sim_max``; above that the
  analytic ``expected_cycles``, which the RTL tests check cycle for cycle), with the outputs
  checked against the golden model;
* MACs per DSP per cycle: ``M*K*N / (cycles * DSPs)``, the DSPs on the packing's own target.

``python -m bench.packing --sizes 8`` runs it alone and merges the rows into
``bench/results.json`` and ``bench/RESULTS.md``; ``make bench`` runs it with everything else.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

#: (label, a, b, acc, packing, the packing's own targets)
DESIGNS = (
    ("int8 unpacked", "int8", "int8", "int32", "none", ()),
    ("int8 dsp48", "int8", "int8", "int32", "dsp48", ("xilinx", "ultrascale")),
    ("int4 unpacked", "int4", "int4", "int20", "none", ()),
    ("int4 mult18", "int4", "int4", "int20", "mult18", ("ecp5",)),
)
BASELINE = {"int8 dsp48": "int8 unpacked", "int4 mult18": "int4 unpacked"}
TARGETS = ("xilinx", "ultrascale", "ecp5", "ice40")
DATAFLOWS = ("output_stationary", "weight_stationary")
GEMM = 256
MIN_MACS_PER_DSP = 1.9
MAX_XILINX_LUTS = 8
MAX_ECP5_LUTS = 20
MIN_FMAX_RATIO = 0.9
MIN_UTILIZATION = 0.99


def config(label: str, n: int, dataflow: str = "output_stationary") -> dict:
    _, a, b, acc, packing, _ = next(d for d in DESIGNS if d[0] == label)
    cfg = {"name": f"mac{n}x{n}_{a}_{packing}", "unit": "mac_array", "rows": n, "cols": n,
           "a": a, "b": b, "acc": acc, "dataflow": dataflow}
    if packing != "none":
        cfg["packing"] = packing
    return cfg


def _synth_job(job: tuple) -> dict:
    from generators.config import parse_config
    from generators.synth import synthesize

    label, n, target, pnr, seed = job
    cfg = parse_config(config(label, n), "bench")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tensorfab-pack-") as tmp:
        rep = synthesize(cfg, target, tmp, pnr=pnr, seed=seed)
    print(f"  packing {label} {n}x{n} {target}{f' seed {seed}' if pnr else ''}: DSPs "
          f"{rep['dsps']}, LUTs {rep['luts']}, FFs {rep['ffs']}"
          + (f", Fmax {rep['fmax_mhz']} MHz" if pnr else "")
          + f" ({time.perf_counter() - t0:.0f} s)", flush=True)
    return {"label": label, "n": n, "target": target, "seed": seed if pnr else None,
            "dsps": rep["dsps"], "luts": rep["luts"], "ffs": rep["ffs"],
            # Xilinx inverters are LUT1s on the device; the report's LUTs count LUT1..LUT6
            "inv": rep["cells"].get("INV", 0), "cells": rep["cells"],
            "carry": rep["carry"], "generic_multipliers": rep["generic_multipliers"],
            "fmax_mhz": rep["fmax_mhz"],
            "critical_path": (rep.get("pnr") or {}).get("critical_path"),
            "seconds": rep["seconds"]}


def _own_targets(label: str) -> tuple:
    """The targets of a design's packing (an unpacked design: those of its packed twin)."""
    twin = next((k for k, v in BASELINE.items() if v == label), label)
    return next(d[5] for d in DESIGNS if d[0] == twin)


def bench_synth(sizes, jobs: int = 2, all_targets=(8,), only=None) -> list[dict]:
    """Yosys resources of every design (output stationary): on every target for the sizes in
    ``all_targets``, else on its packing's own targets only."""
    from concurrent.futures import ProcessPoolExecutor

    plan = [(d[0], n, t, False, 1) for n in sizes for d in DESIGNS
            for t in (TARGETS if n in all_targets else _own_targets(d[0]))
            if only is None or (d[0], t) in only]
    with ProcessPoolExecutor(jobs) as pool:
        return list(pool.map(_synth_job, plan))


def bench_fmax(sizes, seeds=(1, 2, 3), jobs: int = 2) -> list[dict]:
    """nextpnr-ecp5 Fmax of the int4 designs (unpacked and mult18), one run per seed."""
    from concurrent.futures import ProcessPoolExecutor

    plan = [(label, n, "ecp5", True, s) for n in sizes
            for label in ("int4 unpacked", "int4 mult18") for s in seeds]
    with ProcessPoolExecutor(jobs) as pool:
        return list(pool.map(_synth_job, plan))


def bench_utilization(sizes, sim_max: int = 8) -> list[dict]:
    """Cycles of a GEMM^3 on each packed design and dataflow: Verilator up to ``sim_max``
    (outputs checked against the golden model), ``expected_cycles`` above."""
    from generators.config import parse_config
    from generators.mac_array import family, gemm
    from generators.units import family as fam_of
    from sim.unit import simulate

    rows = []
    rng = np.random.default_rng(18)
    for n in sizes:
        for label in ("int8 dsp48", "int4 mult18"):
            for df in DATAFLOWS:
                cfg = parse_config(config(label, n, df), "bench")
                p = fam_of("mac_array").params(cfg)
                want = p.expected_cycles(GEMM, GEMM, GEMM)
                row = {"label": label, "n": n, "dataflow": df, "expected_cycles": want,
                       "multipliers": p.multipliers, "macs_per_cycle": p.macs_per_cycle}
                if n <= sim_max:
                    a = rng.integers(p.a.min_code, p.a.max_code + 1, (GEMM, GEMM))
                    b = rng.integers(p.b.min_code, p.b.max_code + 1, (GEMM, GEMM))
                    t0 = time.perf_counter()
                    res = simulate(family, p, {"a": a, "b": b}, name=cfg.name)
                    row.update(cycles=res.cycles, source="Verilator",
                               mismatches=int((res.outputs["c"] != gemm(p, a, b)).sum()),
                               seconds=round(time.perf_counter() - t0, 1))
                else:
                    row.update(cycles=want, source="expected_cycles", mismatches=None)
                row["utilization"] = round(p.utilization(GEMM, GEMM, GEMM, row["cycles"]), 5)
                print(f"  packing {label} {n}x{n} {df}: {row['cycles']} cycles "
                      f"({row['source']}; expected {want}), utilization "
                      f"{100 * row['utilization']:.2f} %, mismatches {row['mismatches']}",
                      flush=True)
                rows.append(row)
    return rows


def _median(xs):
    xs = sorted(x for x in xs if x is not None)
    return xs[len(xs) // 2] if xs else None


def summarize(sec: dict) -> dict:
    """Per size: the comparison table rows and the issue's targets."""
    synth = {(r["label"], r["n"], r["target"]): r for r in sec.get("synth", [])}
    fmax = {}
    for r in sec.get("fmax", []):
        fmax.setdefault((r["label"], r["n"]), []).append(r["fmax_mhz"])
    util = {(r["label"], r["n"], r["dataflow"]): r for r in sec.get("utilization", [])}
    targets = []
    for n in sorted({r["n"] for r in sec.get("synth", []) + sec.get("fmax", [])}):
        macs = n * n
        for label, base in BASELINE.items():
            own = next(d[5] for d in DESIGNS if d[0] == label)
            for t in own:
                s, b0 = synth.get((label, n, t)), synth.get((base, n, t))
                if not (s and b0):
                    continue
                for df in DATAFLOWS:
                    u = util.get((label, n, df))
                    if u is None or not s["dsps"]:
                        continue
                    per = GEMM ** 3 / (u["cycles"] * s["dsps"])
                    targets.append({
                        "target": f"{label} {n}x{n} ({df.split('_')[0]} stationary) on {t}: "
                                  f">= {MIN_MACS_PER_DSP} MACs per DSP per cycle (issue 18)",
                        "measured": f"{per:.3f} ({GEMM}^3 GEMM: {u['cycles']} cycles "
                                    f"({u['source']}), {s['dsps']} DSPs for {macs} MACs; "
                                    f"unpacked {b0['dsps']} DSPs)",
                        "met": per >= MIN_MACS_PER_DSP, "issue": 18})
                limit = MAX_ECP5_LUTS if t == "ecp5" else MAX_XILINX_LUTS
                lut_s, lut_b = s["luts"] + s.get("inv", 0), b0["luts"] + b0.get("inv", 0)
                extra = (lut_s - lut_b) / macs
                inv = " (LUT1..6 and INV)" if "inv" in s and t != "ecp5" else ""
                targets.append({
                    "target": f"{label} {n}x{n} on {t}: at most {limit} extra LUTs per packed "
                              "MAC (issue 18)",
                    "measured": f"{extra:+.2f} LUTs per MAC ({lut_s} against "
                                f"{lut_b} unpacked{inv}); FFs {s['ffs']} against "
                                f"{b0['ffs']}",
                    "met": extra <= limit, "issue": 18})
        fp, fb = _median(fmax.get(("int4 mult18", n), [])), \
            _median(fmax.get(("int4 unpacked", n), []))
        if fp and fb:
            targets.append({
                "target": f"int4 mult18 {n}x{n} Fmax on ECP5 >= {100 * MIN_FMAX_RATIO:.0f} % "
                          "of unpacked, median of seeds (issue 18)",
                "measured": f"{fp} MHz against {fb} MHz = {100 * fp / fb:.1f} % (seeds: "
                            f"{fmax[('int4 mult18', n)]} and {fmax[('int4 unpacked', n)]})",
                "met": fp >= MIN_FMAX_RATIO * fb, "issue": 18})
    for r in sec.get("utilization", []):
        targets.append({
            "target": f"{r['label']} {r['n']}x{r['n']} {r['dataflow']}: {GEMM}^3 GEMM "
                      f"utilization >= {100 * MIN_UTILIZATION:.0f} %, 0 mismatches (issue 18)",
            "measured": f"{100 * r['utilization']:.2f} % ({r['cycles']} cycles, "
                        f"{r['source']}; mismatches {r['mismatches']})",
            "met": r["utilization"] >= MIN_UTILIZATION and not r["mismatches"], "issue": 18})
    return {"targets": targets}


def markdown(sec: dict) -> list[str]:
    out = ["## Two MACs per DSP (issue 18): packed against unpacked", "",
           "Output-stationary arrays; Yosys (the `tensorfab synth` flow) on each target. "
           "`dsp48`: int8 x int8, acc int32; `mult18`: int4 x int4, acc int20.", "",
           "| design | array | target | DSPs | LUTs | FFs | MACs per DSP (rows x cols / DSPs) |",
           "|---|---|---|---|---|---|---|"]
    for r in sec.get("synth", []):
        per = f"{r['n'] ** 2 / r['dsps']:.2f}" if r["dsps"] else "-"
        inv = f" + {r['inv']} INV" if r.get("inv") and r["target"] != "ecp5" else ""
        out.append(f"| {r['label']} | {r['n']}x{r['n']} | {r['target']} | {r['dsps']} | "
                   f"{r['luts']}{inv} | {r['ffs']} | {per} |")
    if sec.get("fmax"):
        out += ["", "nextpnr-ecp5 (LFE5U-85F, speed 8, registered shell), Fmax in MHz:", "",
                "| design | array | seeds | median |", "|---|---|---|---|"]
        seen = {}
        for r in sec["fmax"]:
            seen.setdefault((r["label"], r["n"]), []).append(r["fmax_mhz"])
        for (label, n), fs in seen.items():
            out.append(f"| {label} | {n}x{n} | {fs} | {_median(fs)} |")
    if sec.get("utilization"):
        out += ["", f"{GEMM}^3 GEMM:", "",
                "| design | array | dataflow | cycles | source | utilization | mismatches |",
                "|---|---|---|---|---|---|---|"]
        for r in sec["utilization"]:
            out.append(f"| {r['label']} | {r['n']}x{r['n']} | {r['dataflow']} | {r['cycles']}"
                       f" | {r['source']} | {100 * r['utilization']:.2f} % | "
                       f"{r['mismatches']} |")
    out += ["", "| target | measured | met |", "|---|---|---|"]
    for t in sec.get("targets", []):
        out.append(f"| {t['target']} | {t['measured']} | {'yes' if t['met'] else 'NO'} |")
    return out + [""]


def splice(path: Path, lines: list[str]) -> None:
    """Put this section into an existing RESULTS.md in place of its previous version (or at
    the end), leaving every other section as it is."""
    text = path.read_text() if path.exists() else ""
    head = lines[0]
    if head in text:
        before, rest = text.split(head, 1)
        nxt = rest.find("\n## ")
        after = rest[nxt + 1:] if nxt >= 0 else ""
    else:
        before, after = (text.rstrip("\n") + "\n\n") if text else "", ""
    path.write_text(before + "\n".join(lines) + ("\n" + after if after else ""))


def run(sizes=(8, 16), fmax_sizes=(8,), sim_max: int = 8, jobs: int = 2,
        parts=("synth", "fmax", "utilization"), previous: dict | None = None) -> dict:
    """The section of bench/results.json; ``parts`` limits what is rerun (the rest is kept
    from ``previous``)."""
    sec = dict(previous or {})
    if "synth" in parts:
        old = [r for r in sec.get("synth", []) if r["n"] not in sizes]
        sec["synth"] = old + bench_synth(sizes, jobs)
    if "fmax" in parts:
        old = [r for r in sec.get("fmax", []) if r["n"] not in fmax_sizes]
        sec["fmax"] = old + bench_fmax(fmax_sizes, jobs=jobs)
    if "utilization" in parts:
        old = [r for r in sec.get("utilization", []) if r["n"] not in sizes]
        sec["utilization"] = old + bench_utilization(sizes, sim_max)
    sec.update(summarize(sec))
    return sec


def main(argv=None) -> int:
    import os

    ap = argparse.ArgumentParser(prog="python -m bench.packing")
    ap.add_argument("--sizes", default="8,16", help="array sizes (n x n)")
    ap.add_argument("--fmax-sizes", default="8", help="sizes placed and routed (ECP5)")
    ap.add_argument("--sim-max", type=int, default=8, help="largest size simulated")
    ap.add_argument("--parts", default="synth,fmax,utilization")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", default=str(HERE))
    ap.add_argument("--merge", default="",
                    help="comma-separated folders whose results.json packing rows to merge "
                    "into OUT (nothing is rerun)")
    args = ap.parse_args(argv)
    os.environ.setdefault("TENSORFAB_CACHE", str(ROOT / "build" / "cache"))
    out = Path(args.out)
    path = out / "results.json"
    res = json.loads(path.read_text()) if path.exists() else {"targets": []}
    sizes = tuple(int(v) for v in args.sizes.split(","))
    if args.merge:  # sections measured apart (e.g. in parallel, into other folders)
        sec = dict(res.get("packing") or {})
        for folder in args.merge.split(","):
            part = json.loads((Path(folder) / "results.json").read_text())["packing"]
            for key, col in (("synth", "target"), ("fmax", "seed"),
                             ("utilization", "dataflow")):
                if part.get(key):
                    def ident(r, col=col):
                        return r["label"], r["n"], r[col]

                    have = {ident(r) for r in part[key]}
                    sec[key] = [r for r in sec.get(key, []) if ident(r) not in have]
                    sec[key] += part[key]
        sec.update(summarize(sec))
        res["packing"] = sec
    else:
        res["packing"] = run(sizes, tuple(int(v) for v in args.fmax_sizes.split(",") if v),
                             args.sim_max, args.jobs, tuple(args.parts.split(",")),
                             res.get("packing"))
    res["targets"] = [t for t in res.get("targets", []) if t.get("issue") != 18] + \
        res["packing"]["targets"]
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(res, indent=2) + "\n")
    splice(out / "RESULTS.md", markdown(res["packing"]))
    for t in res["packing"]["targets"]:
        print(f"  [{'met' if t['met'] else 'NOT MET'}] {t['target']}: {t['measured']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
