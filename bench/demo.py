"""`make demo`: generate the default config, run a GEMM on its RTL in Verilator, print a table.

Later issues extend this to the simulated board; for now it is the MAC array end to end:
config -> Verilog + manifest -> Verilator build (cached) -> streamed GEMM -> golden check.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.demo")
    ap.add_argument("--config", default="configs/mac8x8.yaml")
    ap.add_argument("--sim", default="verilator", choices=("verilator", "icarus"))
    ap.add_argument("--out", default="out/demo")
    ap.add_argument("--shape", default="100,200,120", help="M,K,N of the GEMM")
    args = ap.parse_args(argv)

    from generators.cli import run_rtl
    from generators.config import load_config
    from generators.errors import UserError
    from generators.generate import generate
    from generators.units import family

    try:
        cfg = load_config(args.config)
        m, k, n = (int(x) for x in args.shape.split(","))
    except UserError as err:
        print(err, file=sys.stderr)
        return 2
    fam = family(cfg.unit)
    params = fam.params(cfg)
    t0 = time.perf_counter()
    vpath, jpath = generate(cfg, args.out)
    t_gen = time.perf_counter() - t0
    print(f"generated {vpath} and {jpath} in {t_gen:.2f} s", flush=True)

    rng = np.random.default_rng(2026)
    a = rng.integers(params.a.min_code, params.a.max_code + 1, (m, k))
    b = rng.integers(params.b.min_code, params.b.max_code + 1, (k, n))
    print(f"running a {m}x{k} @ {k}x{n} GEMM on the {params.rows}x{params.cols} "
          f"{params.dataflow} array in {args.sim} (first run builds the model)...", flush=True)
    t0 = time.perf_counter()
    outputs, stats = run_rtl(cfg, fam, params, {"a": a, "b": b}, sim=args.sim, check=False)
    wall = time.perf_counter() - t0
    golden = fam.golden(params, {"a": a, "b": b})["c"]
    mismatches = int(np.count_nonzero(outputs["c"] != golden))

    rows = [
        ("design", f"{cfg.name}: {params.rows}x{params.cols} {params.a} x {params.b} -> "
                   f"{params.acc} ({params.overflow}), {params.dataflow}"),
        ("GEMM shape (M x K x N)", f"{m} x {k} x {n}"),
        ("cycles (RTL)", f"{stats['cycles']}"),
        ("cycles (analytic model)", f"{stats['expected_cycles']}"),
        ("PE utilization", f"{100 * stats['utilization']:.2f} %"),
        ("simulator speed", f"{stats['sim_cycles_per_second']:.0f} cycles/s ({args.sim})"),
        ("wall time (incl. build)", f"{wall:.1f} s"),
        ("result equals golden model", f"{'yes' if mismatches == 0 else 'NO'} "
                                       f"({mismatches} mismatches)"),
    ]
    width = max(len(r[0]) for r in rows)
    print()
    for key, val in rows:
        print(f"  {key:<{width}}  {val}")
    print()
    ok = mismatches == 0 and stats["cycles"] == stats["expected_cycles"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
