"""`make bench`: measure what the issues set targets for; write bench/results.json and
bench/RESULTS.md.

Speed is judged here, not in timed tests. Every figure comes from a real run in this process:
utilization from RTL cycle counts in Verilator, emission from timing the Verilog writer, and the
end-to-end `tensorfab run --backend rtl` time from the command itself with an empty build cache.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _params(rows, cols, dataflow="output_stationary", **kw):
    from generators.mac_array import MacArrayParams
    from generators.numerics import Format

    return MacArrayParams(rows=rows, cols=cols, a=Format.parse(kw.get("a", "int8")),
                          b=Format.parse(kw.get("b", "int8")),
                          acc=Format.parse(kw.get("acc", "int32")),
                          overflow=kw.get("overflow", "wrap"), dataflow=dataflow,
                          tile_m=kw.get("tile_m", 64), name=f"bench{rows}x{cols}")


def bench_emission(sizes=(8, 16, 32)) -> list[dict]:
    from amaranth.back import verilog

    from generators.mac_array.rtl import MacArray

    rows = []
    for n in sizes:
        for df in ("output_stationary", "weight_stationary"):
            p = _params(n, n, df)
            t0 = time.perf_counter()
            text = verilog.convert(MacArray(p), name=p.name, emit_src=False)
            dt = time.perf_counter() - t0
            rows.append({"array": f"{n}x{n}", "dataflow": df, "seconds": round(dt, 2),
                         "verilog_bytes": len(text)})
            print(f"  emission {n}x{n} {df}: {dt:.2f} s", flush=True)
    return rows


def _gemm_rtl(p, m, k, n, seed=0):
    from generators.mac_array import family, gemm
    from sim.unit import simulate

    rng = np.random.default_rng(seed)
    a = rng.integers(-128, 128, (m, k))
    b = rng.integers(-128, 128, (k, n))
    res = simulate(family, p, {"a": a, "b": b}, name=p.name)
    equal = bool(np.array_equal(res.outputs["c"], gemm(p, a, b)))
    return res, equal


def bench_utilization() -> list[dict]:
    rows = []
    for df in ("output_stationary", "weight_stationary"):
        p = _params(8, 8, df)
        res_full, eq_full = _gemm_rtl(p, 256, 256, 256)
        res_half, eq_half = _gemm_rtl(p, 128, 256, 256, seed=1)
        macs_full, macs_half = 256 ** 3, 128 * 256 * 256
        e2e = macs_full / (64 * res_full.cycles)
        # steady state: the extra work of the larger GEMM over the extra cycles it took, so
        # pipeline fill and drain cancel out
        steady = (macs_full - macs_half) / (64 * (res_full.cycles - res_half.cycles))
        row = {
            "array": "8x8", "dataflow": df, "gemm": "256x256x256",
            "cycles": res_full.cycles, "expected_cycles": p.expected_cycles(256, 256, 256),
            "utilization_end_to_end": round(e2e, 5), "utilization_steady_state": round(steady, 5),
            "equal_to_golden": eq_full and eq_half,
            "sim_cycles_per_second": round(res_full.info["cycles_per_second"]),
            "sim_seconds": round(res_full.info["sim_seconds"], 2),
        }
        rows.append(row)
        print(f"  utilization 8x8 {df}: steady {100 * steady:.2f} %, end-to-end "
              f"{100 * e2e:.2f} % ({res_full.cycles} cycles, "
              f"{row['sim_cycles_per_second']} cycles/s)", flush=True)
    return rows


SWEEP = [(8, 1, 8), (64, 4, 64), (64, 8, 64), (64, 64, 64), (16, 256, 16), (256, 256, 8),
         (100, 37, 75)]


def bench_shapes() -> list[dict]:
    """Where the array is not fully used: short K (drain-bound tiles, weight loads not hidden),
    small M, ragged edges. RTL cycle counts next to the analytic model."""
    rows = []
    for df in ("output_stationary", "weight_stationary"):
        p = _params(8, 8, df)
        for m, k, n in SWEEP:
            res, eq = _gemm_rtl(p, m, k, n, seed=m + k + n)
            rows.append({"dataflow": df, "shape": f"{m}x{k}x{n}", "cycles": res.cycles,
                         "expected_cycles": p.expected_cycles(m, k, n),
                         "utilization": round(p.utilization(m, k, n, res.cycles), 4),
                         "equal_to_golden": eq})
        print(f"  shape sweep {df}: " + ", ".join(
            f"{r['shape']} {100 * r['utilization']:.1f}%" for r in rows if r["dataflow"] == df),
            flush=True)
    return rows


def bench_cli_run() -> dict:
    """`tensorfab run --backend rtl` of 256x256x256 on the default 8x8 config, cold cache."""
    with tempfile.TemporaryDirectory(prefix="tensorfab-bench-") as tmp:
        rng = np.random.default_rng(7)
        inp = Path(tmp) / "in.npz"
        np.savez(inp, a=rng.integers(-128, 128, (256, 256)),
                 b=rng.integers(-128, 128, (256, 256)))
        env = dict(os.environ, TENSORFAB_CACHE=str(Path(tmp) / "cache"))
        exe = Path(sys.executable).with_name("tensorfab")
        cmd = [str(exe), "run", str(ROOT / "configs" / "mac8x8.yaml"), "--inputs", str(inp),
               "--out", str(Path(tmp) / "out.npz"), "--backend", "rtl",
               "--stats", str(Path(tmp) / "stats.json")]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"tensorfab run failed: {proc.stderr}")
        stats = json.loads((Path(tmp) / "stats.json").read_text())
        print(f"  tensorfab run --backend rtl 256^3 on 8x8, cold cache: {wall:.1f} s", flush=True)
        return {"gemm": "256x256x256", "array": "8x8", "wall_seconds_cold_cache": round(wall, 1),
                "cycles": stats["cycles"], "mismatches": stats.get("mismatches"),
                "utilization": round(stats["utilization"], 5)}


def versions() -> dict:
    from sim import toolenv

    v = toolenv.versions()
    v["python"] = platform.python_version()
    return v


def write_markdown(res: dict, path: Path) -> None:
    t = res["targets"]
    lines = [
        "# tensorfab benchmark results",
        "",
        f"Measured {res['date']} on {res['machine']} by `make bench`; tools: "
        + ", ".join(f"{k} {v}" for k, v in res["versions"].items()) + ".",
        "",
        "## Targets (issue 2)",
        "",
        "| target | measured | met |",
        "|---|---|---|",
    ]
    for row in t:
        lines.append(f"| {row['target']} | {row['measured']} | {'yes' if row['met'] else 'NO'} |")
    lines += ["", "## PE utilization, 8x8 int8 array, 256x256x256 GEMM (Verilator cycle counts)",
              "", "| dataflow | cycles | analytic | steady state | end to end | equal to golden "
              "| sim cycles/s |", "|---|---|---|---|---|---|---|"]
    for r in res["utilization"]:
        lines.append(f"| {r['dataflow']} | {r['cycles']} | {r['expected_cycles']} | "
                     f"{100 * r['utilization_steady_state']:.2f} % | "
                     f"{100 * r['utilization_end_to_end']:.2f} % | {r['equal_to_golden']} | "
                     f"{r['sim_cycles_per_second']} |")
    lines += ["", "## Utilization against GEMM shape, 8x8 int8 array (Verilator cycle counts)", "",
              "Short K limits output stationary (each tile drains 8 rows through one port) and "
              "weight stationary (a weight load takes 2R+C-1 cycles to hide); small M limits "
              "weight stationary (passes of fewer rows than that).", "",
              "| dataflow | M x K x N | cycles | analytic | utilization | equal to golden |",
              "|---|---|---|---|---|---|"]
    for r in res["shapes"]:
        lines.append(f"| {r['dataflow']} | {r['shape']} | {r['cycles']} | {r['expected_cycles']} "
                     f"| {100 * r['utilization']:.1f} % | {r['equal_to_golden']} |")
    lines += ["", "## Verilog emission time (int8 x int8 -> int32)", "",
              "| array | dataflow | seconds | Verilog bytes |", "|---|---|---|---|"]
    for r in res["emission"]:
        lines.append(f"| {r['array']} | {r['dataflow']} | {r['seconds']} | {r['verilog_bytes']} |")
    c = res["cli_run"]
    lines += ["", "## `tensorfab run --backend rtl`, 256x256x256 on 8x8, empty build cache", "",
              f"{c['wall_seconds_cold_cache']} s wall (Verilator build included), "
              f"{c['cycles']} cycles, utilization {100 * c['utilization']:.2f} %, "
              f"mismatches against the golden model: {c['mismatches']}.", ""]
    path.write_text("\n".join(lines))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.run")
    ap.add_argument("--out", default=str(HERE))
    args = ap.parse_args(argv)
    os.environ.setdefault("TENSORFAB_CACHE", str(ROOT / "build" / "cache"))
    print("tensorfab bench", flush=True)
    res = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "machine": f"{platform.machine()}, {os.cpu_count()} cores",
           "versions": versions()}
    res["emission"] = bench_emission()
    res["utilization"] = bench_utilization()
    res["shapes"] = bench_shapes()
    res["cli_run"] = bench_cli_run()
    os_row = next(r for r in res["utilization"] if r["dataflow"] == "output_stationary")
    ws_row = next(r for r in res["utilization"] if r["dataflow"] == "weight_stationary")
    em32 = max(r["seconds"] for r in res["emission"] if r["array"] == "32x32")
    res["targets"] = [
        {"target": "PE utilization >= 98 % steady state (8x8)",
         "measured": f"OS {100 * os_row['utilization_steady_state']:.2f} %, "
                     f"WS {100 * ws_row['utilization_steady_state']:.2f} %",
         "met": min(os_row["utilization_steady_state"], ws_row["utilization_steady_state"])
         >= 0.98},
        {"target": "PE utilization >= 90 % end to end, 256^3 on 8x8",
         "measured": f"OS {100 * os_row['utilization_end_to_end']:.2f} %, "
                     f"WS {100 * ws_row['utilization_end_to_end']:.2f} %",
         "met": min(os_row["utilization_end_to_end"], ws_row["utilization_end_to_end"]) >= 0.90},
        {"target": "Emission of a 32x32 array <= 10 s", "measured": f"{em32:.2f} s (slower "
         "dataflow)", "met": em32 <= 10},
        {"target": "`tensorfab run --backend rtl` 256^3 on 8x8 <= 60 s incl. build",
         "measured": f"{res['cli_run']['wall_seconds_cold_cache']} s",
         "met": res["cli_run"]["wall_seconds_cold_cache"] <= 60},
    ]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(res, indent=2) + "\n")
    write_markdown(res, out / "RESULTS.md")
    print(f"wrote {out / 'results.json'} and {out / 'RESULTS.md'}")
    for row in res["targets"]:
        print(f"  [{'met' if row['met'] else 'NOT MET'}] {row['target']}: {row['measured']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
