"""Number formats side by side (issue 17): area of the MAC array per format (Yosys, nextpnr)
and GEMM quantization error per format (the golden model), with a plot.

``python -m bench.formats [--synth] [--accuracy] [--jobs N]`` writes bench/formats.json, the
"Number formats" section of bench/RESULTS.md and bench/formats_error.png. Area rows are only
for the formats the RTL builds (MX operands: golden model only, see docs/formats.md).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT_JSON = ROOT / "bench" / "formats.json"
RESULTS = ROOT / "bench" / "RESULTS.md"
PLOT = ROOT / "bench" / "formats_error.png"
GUARD = 16  # accumulator bits above the exact product, for every format alike

#: (label, a, b): the area rows; acc = the exact product's format plus GUARD bits
AREA_FORMATS = [
    ("int8 x int8", "int8", "int8", None),
    ("fp8_e4m3 x fp8_e4m3", "fp8_e4m3", "fp8_e4m3", None),
    ("fp8_e4m3 x fp8_e4m3, acc fp32", "fp8_e4m3", "fp8_e4m3", "fp32"),
    ("fp6_e2m3 x fp6_e2m3", "fp6_e2m3", "fp6_e2m3", None),
    ("fp4_e2m1 x fp4_e2m1", "fp4_e2m1", "fp4_e2m1", None),
    ("fp4_e2m1 x fp8_e4m3", "fp4_e2m1", "fp8_e4m3", None),
    ("mxfp8_e4m3 x mxfp8_e4m3", "mxfp8_e4m3", "mxfp8_e4m3", "fp32"),
    ("mxfp6_e2m3 x mxfp6_e2m3", "mxfp6_e2m3", "mxfp6_e2m3", "fp32"),
    ("mxfp4 x mxfp4", "mxfp4", "mxfp4", "fp32"),
    ("mxfp4 x mxfp8_e4m3", "mxfp4", "mxfp8_e4m3", "fp32"),
    ("mxint8 x mxint8", "mxint8", "mxint8", "fp32"),
]


def _acc(a: str, b: str) -> str:
    from generators.mac_array.params import operand_fixed, product_format
    from generators.numerics import Format

    prod = product_format(operand_fixed(Format.parse(a)), operand_fixed(Format.parse(b)))
    w = prod.width + GUARD
    return str(Format(width=w, int_bits=w - prod.frac_bits, signed=True))


def _synth_job(job):
    import tempfile

    from generators.config import parse_config
    from generators.synth import synthesize

    label, n, a, b, acc, target, pnr = job
    acc = acc or _acc(a, b)
    cfg = parse_config({"name": f"fmt{n}x{n}", "unit": "mac_array", "rows": n, "cols": n,
                        "a": a, "b": b, "acc": acc}, "bench")
    with tempfile.TemporaryDirectory(prefix="tensorfab-synth-") as tmp:
        rep = synthesize(cfg, target, tmp, pnr=pnr)
    macs = n * n
    row = {"formats": label, "array": f"{n}x{n}", "target": target, "acc": acc,
           "luts": rep["luts"], "ffs": rep["ffs"], "dsps": rep["dsps"], "carry": rep["carry"],
           "luts_per_mac": round(rep["luts"] / macs, 1), "ffs_per_mac": round(rep["ffs"] / macs, 1),
           "dsps_per_mac": round(rep["dsps"] / macs, 2), "fmax_mhz": rep.get("fmax_mhz"),
           "seconds": rep["seconds"]}
    print(f"  {label} {n}x{n} {target}: LUTs {row['luts']}, FFs {row['ffs']}, DSPs "
          f"{row['dsps']}, Fmax {row['fmax_mhz']}", flush=True)
    return row


def bench_area(jobs: int = 1, sizes=(1, 8), targets=("ecp5", "xilinx"),
               only: str | None = None) -> list[dict]:
    """Area rows; ``only``: a substring of the labels to run (the others are kept from the
    previous results)."""
    from concurrent.futures import ProcessPoolExecutor

    plan = [(label, n, a, b, acc, t, t == "ecp5" and n == 1)
            for n in sizes for t in targets for label, a, b, acc in AREA_FORMATS
            if only is None or only in label]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(_synth_job, plan))


def _merge_rows(old: list[dict], new: list[dict], keys: tuple) -> list[dict]:
    got = {tuple(r[k] for k in keys): r for r in old}
    got.update({tuple(r[k] for k in keys): r for r in new})
    order = {label: i for i, (label, *_) in enumerate(AREA_FORMATS)}
    return sorted(got.values(), key=lambda r: (r.get("array", ""), r.get("target", ""),
                                               order.get(r["formats"], 99)))


def bench_utilization() -> list[dict]:
    """The 8x8 output-stationary array with float operands on a 256^3 GEMM in Verilator:
    cycles, utilization and equality with the golden model (random finite codes)."""
    from generators.mac_array import family, gemm
    from generators.mac_array.params import MacArrayParams
    from sim.unit import simulate

    rows = []
    for label, a_f, b_f, acc in (("fp8_e4m3 x fp8_e4m3, acc fp32", "fp8_e4m3", "fp8_e4m3",
                                  "fp32"),
                                 ("mxfp4 x mxfp8_e4m3", "mxfp4", "mxfp8_e4m3", "fp32")):
        p = MacArrayParams(name="fmtutil8x8", rows=8, cols=8, a=a_f, b=b_f, acc=acc)
        rng = np.random.default_rng(0)
        x, y = rng.standard_normal((256, 256)), rng.standard_normal((256, 256))
        if p.mx:
            (a, sa), (b, sb) = p.a.quantize(x, axis=1), p.b.quantize(y, axis=0)
            arrays = {"a": a, "b": b, "a_scale": sa, "b_scale": sb}
        else:
            arrays = {"a": p.a.quantize(x), "b": p.b.quantize(y)}
        res = simulate(family, p, arrays, name=p.name)
        a, b = arrays["a"], arrays["b"]
        row = {"formats": label, "array": "8x8", "gemm": "256x256x256", "cycles": res.cycles,
               "expected_cycles": p.expected_cycles(256, 256, 256),
               "utilization": round(256 ** 3 / (64 * res.cycles), 5),
               "equal_to_golden": bool(np.array_equal(
                   res.outputs["c"], gemm(p, a, b, arrays.get("a_scale"),
                                          arrays.get("b_scale"))))}
        print(f"  utilization {label}: {100 * row['utilization']:.2f} % "
              f"({res.cycles} cycles), equal {row['equal_to_golden']}", flush=True)
        rows.append(row)
    return rows


# -- accuracy -----------------------------------------------------------------------------------

ACC_FORMATS = ["int8 per-channel", "int4 per-channel", "fp8_e4m3", "mxfp8_e4m3", "mxfp6_e2m3",
               "mxfp4", "mxint8"]


def _data(kind: str, shape, rng) -> np.ndarray:
    if kind == "gaussian":
        return rng.standard_normal(shape)
    if kind == "laplace":
        return rng.laplace(size=shape)
    return rng.standard_t(3, shape)  # outlier-heavy


def quantized_gemm(a: np.ndarray, b: np.ndarray, fmt: str) -> np.ndarray:
    """``a @ b`` with both operands quantized to ``fmt``, computed as the hardware does: int
    per-channel (one scale per row of ``a`` / column of ``b``): the exact integer GEMM times
    the scales; fp8_e4m3 (one scale per tensor, its max to the format's max) and MX (blocks
    of 32 along K): the MAC array's golden model with ``acc: fp32``, then the tensor
    scales."""
    from generators.mac_array import gemm
    from generators.mac_array.params import MacArrayParams
    from generators.numerics import Format, exact_matmul, fp32_values

    if fmt.endswith("per-channel"):
        bits = int(fmt.split()[0][3:])
        f = Format.parse(f"int{bits}")
        qmax = 2 ** (bits - 1) - 1
        sa = np.abs(a).max(axis=1, keepdims=True) / qmax
        sb = np.abs(b).max(axis=0, keepdims=True) / qmax
        ca = f.quantize(a / sa, rounding="rnd_conv", overflow="sat")
        cb = f.quantize(b / sb, rounding="rnd_conv", overflow="sat")
        return exact_matmul(ca, cb).astype(np.float64) * sa * sb
    f = Format.parse(fmt)
    p = MacArrayParams(name="bench", rows=8, cols=8, a=fmt, b=fmt, acc="fp32")
    if f.kind == "mx":
        ca, xa = f.quantize(a, axis=1)
        cb, xb = f.quantize(b, axis=0)
        return fp32_values(gemm(p, ca, cb, xa, xb)).astype(np.float64)
    sa, sb = np.abs(a).max() / f.max_value, np.abs(b).max() / f.max_value
    c = gemm(p, f.quantize(a / sa), f.quantize(b / sb))
    return fp32_values(c).astype(np.float64) * sa * sb


def gemm_error(fmt: str, kind: str, m=64, k=256, n=64, seed=0) -> dict:
    rng = np.random.default_rng(seed)
    a = _data(kind, (m, k), rng)
    b = _data(kind, (k, n), rng)
    ref = a @ b
    err = quantized_gemm(a, b, fmt) - ref
    sqnr = 10 * math.log10(float((ref ** 2).sum() / (err ** 2).sum()))
    rel = float(np.abs(err).max() / np.abs(ref).max())
    return {"format": fmt, "data": kind, "sqnr_db": round(sqnr, 2), "max_rel_err": round(rel, 5)}


def bench_accuracy() -> list[dict]:
    rows = [gemm_error(f, kind) for kind in ("gaussian", "laplace", "student_t3")
            for f in ACC_FORMATS]
    return rows


def plot(rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = sorted({r["data"] for r in rows})
    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.8 / len(kinds)
    for i, kind in enumerate(kinds):
        vals = [next((r["sqnr_db"] for r in rows if r["data"] == kind and r["format"] == f),
                     np.nan) for f in ACC_FORMATS]
        ax.bar(np.arange(len(ACC_FORMATS)) + i * width, vals, width, label=kind)
    ax.set_xticks(np.arange(len(ACC_FORMATS)) + 0.4 - width / 2, ACC_FORMATS, rotation=20)
    ax.set_ylabel("GEMM SQNR (dB)")
    ax.set_title("GEMM quantization error per format (64x256x64, both operands quantized)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(PLOT, dpi=110)


def markdown(res: dict) -> list[str]:
    lines = ["", "## Number formats (issue 17)", "",
             "`python -m bench.formats`. Area: Yosys (`tensorfab synth`), the MAC array with "
             f"an exact accumulator (the product's format plus {GUARD} guard bits) per operand "
             "pair, or `acc: fp32` (MX rows: blocks of 32 summed exactly, one fp32 rounding unit "
             "and fp32 adder per row of PEs, shared by the row); Fmax: nextpnr ECP5 "
             "(LFE5U-85F, seed 1) of the 1x1 array. A pair or target without a row was not "
             "measured in the session's time.", "",
             "| formats | array | target | LUTs | FFs | DSPs | LUTs/MAC | FFs/MAC | DSPs/MAC | "
             "Fmax MHz |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in res.get("area", []):
        lines.append(f"| {r['formats']} | {r['array']} | {r['target']} | {r['luts']} | "
                     f"{r['ffs']} | {r['dsps']} | {r['luts_per_mac']} | {r['ffs_per_mac']} | "
                     f"{r['dsps_per_mac']} | {r['fmax_mhz'] or ''} |")
    lines += ["", "GEMM quantization error (64x256x64, float64 reference, both operands "
              "quantized; int per-channel: one scale per row of a / column of b; fp8_e4m3: "
              "one scale per tensor; MX: blocks of 32 along K):", "",
              "| data | " + " | ".join(ACC_FORMATS) + " |",
              "|---|" + "---|" * len(ACC_FORMATS)]
    acc = res.get("accuracy", [])
    for kind in dict.fromkeys(r["data"] for r in acc):
        cells = []
        for f in ACC_FORMATS:
            r = next(x for x in acc if x["data"] == kind and x["format"] == f)
            cells.append(f"{r['sqnr_db']} dB / {r['max_rel_err']}")
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    lines += ["", "Cells: SQNR / max relative error (max |error| over max |reference|). "
              "Plot: bench/formats_error.png. The project ships no trained model weights (the "
              "encoder demo draws Gaussian weights), so the Gaussian row stands for them.", ""]
    util = res.get("utilization", [])
    if util:
        lines += ["Utilization of the 8x8 output-stationary array on a 256x256x256 GEMM "
                  "(Verilator, cycles from the first input beat to the last output beat):", "",
                  "| formats | cycles | expected | utilization | equal to golden |",
                  "|---|---|---|---|---|"]
        for r in util:
            lines.append(f"| {r['formats']} | {r['cycles']} | {r['expected_cycles']} | "
                         f"{100 * r['utilization']:.2f} % | {r['equal_to_golden']} |")
        lines.append("")
    lines += PAPERS
    return lines


#: The papers' qualitative claims (../shared/PAPERS.md) beside our measurements.
PAPERS = [
    "Against the papers' claims:",
    "",
    "- *MXFP4 against INT4* (the MXFP4 study; ZeroQuant-FP's W4): MXFP4 with blocks of 32 "
    "beats INT4 per channel on every distribution here, by about 1 dB on Gaussian data and by "
    "about 6 dB on outlier-heavy Student-t data, where one outlier spoils a whole INT4 channel "
    "but only its own MX block. Agrees.",
    "- *FP8 against INT8* (ZeroQuant-FP: FP8 activations beat INT8): on these synthetic "
    "tensors INT8 per channel has the higher SQNR (about 40 dB against 29 dB Gaussian, 33 "
    "against 28 dB Student-t), because FP8 E4M3 spends bits on range that a per-channel scale "
    "already provides; FP8's error stays flat across distributions while INT8's falls with "
    "heavier tails. Disagrees at these tail weights; the paper's gain comes from LLM "
    "activations with far larger outliers than nu = 3.",
    "- *MXINT8* is within 1.5 dB of INT8 per channel on Gaussian data (its power-of-two block "
    "scales lose up to one bit of range) and better than it on Student-t data (35.3 against "
    "33.0 dB: a block scale follows outliers more closely than a channel scale). *MXFP6 E2M3* "
    "is as accurate as MXFP8 E4M3 on these data (ZeroQuant(4+2)'s case for FP6), at 6 bits "
    "instead of 8.",
]


def _merge(lines: list[str]) -> None:
    text = RESULTS.read_text() if RESULTS.exists() else "# Bench results\n"
    head = "\n## Number formats (issue 17)\n"
    if head in text:
        pre, rest = text.split(head, 1)
        nxt = rest.find("\n## ")
        text = pre + ("" if nxt < 0 else rest[nxt:])
    RESULTS.write_text(text.rstrip("\n") + "\n" + "\n".join(lines) + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.formats")
    ap.add_argument("--synth", action="store_true")
    ap.add_argument("--accuracy", action="store_true")
    ap.add_argument("--utilization", action="store_true")
    ap.add_argument("--only", help="area rows whose label contains this text")
    ap.add_argument("--jobs", type=int, default=1)
    args = ap.parse_args(argv)
    res = json.loads(OUT_JSON.read_text()) if OUT_JSON.exists() else {}
    if args.accuracy:
        res["accuracy"] = bench_accuracy()
        plot(res["accuracy"])
    if args.utilization:
        res["utilization"] = bench_utilization()
    if args.synth:
        new = bench_area(args.jobs, only=args.only)
        res = json.loads(OUT_JSON.read_text()) if OUT_JSON.exists() else res  # fresh copy
        res["area"] = _merge_rows(res.get("area", []), new, ("formats", "array", "target"))
    OUT_JSON.write_text(json.dumps(res, indent=1) + "\n")
    _merge(markdown(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
