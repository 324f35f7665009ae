"""Softmax and GELU accuracy, side by side with published designs (issue 4), for `make bench`.

Every method sees the same input codes in one run, and every error is measured the same way
(DESIGN.md): ``|code - clip(exact * 2**frac, min_code, max_code)|`` in output LSBs against
float64 softmax/GELU.

Methods
-------
tensorfab
    The golden models of ``configs/softmax64.yaml`` (and the same unit with ``ufixed<16,0>``
    output), ``configs/gelu8.yaml`` and ``configs/gelu16.yaml`` -- the RTL equals them code for
    code (tests/test_nonlin_rtl.py).
I-BERT (re-implemented here from the paper and its reference code, bench-only)
    Kim et al., "I-BERT: Integer-only BERT Quantization", ICML 2021: ``IntSoftmax`` (i-exp with
    the second-order polynomial on ``(-ln2, 0]``, ``2**32 // sum`` normalisation, truncating
    shifts) and ``IntGELU`` (i-erf polynomial, ``n = 14``). I-BERT's integer inputs come from
    int32 accumulators with small scaling factors, so it is run on the same real input values
    with ``scaling_factor = in.lsb / 2**8`` (its design point; at the coarse 8-bit scale its
    polynomial constants lose their meaning and errors are far larger, shown in one row). Its
    output is rounded to the nearest output code, in I-BERT's favour.
hls4ml 1.3.0 (its own C++ emulation)
    ``nnet::softmax`` from hls4ml's ``nnet_utils/nnet_activation.h`` with its ``ap_fixed``
    headers, compiled with g++ into a small harness, with the configuration hls4ml 1.3 derives
    for an ``ap_fixed<8,3>`` input by default (table_size 1024 cut to 256 by its
    FixSoftmaxTableSize pass; exp/inv tables, sum and inverse input ``ap_fixed<18,8,AP_RND,
    AP_SAT>``; ``stable``: ``inp_norm_t = ap_ufixed<7,2>`` and 128 exp entries), implementations
    ``latency`` and ``stable``. The result type is the output format with ``AP_RND, AP_SAT``
    (kinder than the default ``AP_TRN, AP_WRAP``, which wraps 1.0 to 0). hls4ml's softmax has a
    compile-time row length, so it sees the full-length rows only; it has no GELU.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

HIST_EDGES = np.linspace(-100, 100, 20001)   # 0.01 LSB bins for the signed-error histograms


# -- I-BERT, re-implemented for comparison only --------------------------------------------


def ibert_softmax(x_int: np.ndarray, sf: float, output_bit: int) -> np.ndarray:
    """I-BERT's IntSoftmax on integer inputs ``x_int [R, n]`` with scaling factor ``sf``;
    returns output integers in units of ``2**-output_bit`` (I-BERT re-implementation: i-exp,
    its ``QuantAct(16)`` on the exps -- modelled with the calibrated range ``[0, 1.0003]`` --,
    ``2**32 // sum`` and a truncating shift)."""
    x = x_int.astype(np.float64)
    x = x - x.max(axis=-1, keepdims=True)
    # int_exp
    x0 = -0.6931
    n = 30
    x0_int = math.floor(x0 / sf)
    x = np.maximum(x, n * x0_int)
    q = np.floor(x / x0_int)
    r = x - x0_int * q
    # int_polynomial: a (r + b/a) r + c/a with the I-BERT coefficients
    coef = [0.35815147, 0.96963238, 1.0]
    b_int = math.floor(coef[1] / coef[0] / sf)
    c_int = math.floor(coef[2] / coef[0] / sf ** 2)
    z = r * (r + b_int) + c_int
    exp_int = np.maximum(np.floor(z * 2.0 ** (n - q)), 0)
    exp_sf = coef[0] * sf ** 2 / 2.0 ** n
    # QuantAct(16) "to avoid overflow": symmetric 16-bit requantization of the exps, whose
    # largest value (at the row maximum) is the polynomial at 0, about 1.0003
    s16 = 1.0003 / (2 ** 15 - 1)
    exp_int = np.round(exp_int * (exp_sf / s16))
    exp_sum = exp_int.sum(axis=-1, keepdims=True)
    factor = np.floor(2.0 ** 32 / exp_sum)
    return np.floor(exp_int * factor / 2.0 ** (32 - output_bit)).astype(np.int64)


def ibert_gelu(x_int: np.ndarray, sf: float) -> np.ndarray:
    """I-BERT's IntGELU: the real output values for integer inputs with scaling factor ``sf``
    (I-BERT re-implementation)."""
    k, n = 1.4142, 14
    coeff = [-0.2888, -1.769, 1.0]
    coeff[2] /= coeff[0]
    s = sf / k
    b_int = math.floor(coeff[1] / s)
    c_int = math.floor(coeff[2] / s ** 2)
    x = x_int.astype(np.float64)
    sign = np.sign(x)
    abs_int = np.minimum(np.abs(x), -b_int)
    y = sign * ((abs_int + b_int) ** 2 + c_int)
    s2 = s ** 2 * coeff[0]
    y = np.floor(y / 2 ** n)
    s2 = s2 * 2 ** n
    shift = math.floor(1.0 / s2)
    return x * (y + shift) * (sf * s2 / 2)


# -- hls4ml's C++ softmax ------------------------------------------------------------------

_HARNESS = r"""
#include <cstdio>
#include <cstdint>
#include "ap_fixed.h"
#include "nnet_utils/nnet_activation.h"

typedef ap_fixed<TF_IN_W, TF_IN_I> input_t;
typedef ap_ufixed<TF_OUT_W, TF_OUT_I, AP_RND, AP_SAT> result_t;
typedef ap_fixed<18, 8, AP_RND, AP_SAT> tab_t;

struct softmax_config : nnet::activ_config {
    static const unsigned n_in = TF_N;
    static const unsigned n_slice = TF_N;
    static const unsigned n_outer = 1;
    static const unsigned n_inner = 1;
    static const unsigned parallelization_factor = -1;
    static const unsigned exp_table_size = TF_EXP_SIZE;
    static const unsigned inv_table_size = TF_INV_SIZE;
    static const unsigned io_type = nnet::io_parallel;
    static const unsigned reuse_factor = 1;
    static const unsigned axis = -1;
    static const nnet::softmax_implementation implementation =
        nnet::softmax_implementation::TF_IMPL;
    static constexpr float exp_scale = 1.0;
    typedef tab_t exp_table_t;
    typedef tab_t inv_table_t;
    typedef tab_t accum_t;
    typedef tab_t inv_inp_t;
    typedef ap_ufixed<TF_IN_W - 1, TF_IN_I - 1> inp_norm_t;
};

int main() {
    input_t in[TF_N];
    result_t out[TF_N];
    int32_t buf[TF_N];
    while (fread(buf, sizeof(int32_t), TF_N, stdin) == TF_N) {
        for (int i = 0; i < TF_N; i++) in[i].range(TF_IN_W - 1, 0) = (uint32_t)buf[i];
        nnet::softmax<input_t, result_t, softmax_config>(in, out);
        int32_t ob[TF_N];
        for (int i = 0; i < TF_N; i++) ob[i] = (int32_t)out[i].range(TF_OUT_W - 1, 0).to_uint();
        fwrite(ob, sizeof(int32_t), TF_N, stdout);
    }
    return 0;
}
"""


def hls4ml_dir() -> Path:
    import hls4ml

    return Path(hls4ml.__file__).parent / "templates" / "vivado"


def hls4ml_defaults(inp, n: int) -> dict:
    """The softmax configuration hls4ml 1.3 derives by default for input format ``inp``."""
    table_size = 1024
    table_width = 18
    table_size = min(table_size, 2 ** min(inp.width, table_width))   # FixSoftmaxTableSize
    stable_exp = min(table_size, 2 ** (inp.width - 1))               # core_templates, stable
    return {"table_size": table_size, "stable_exp_table_size": stable_exp,
            "table_t": "ap_fixed<18,8,AP_RND,AP_SAT>",
            "inp_norm_t": f"ap_ufixed<{inp.width - 1},{inp.int_bits - 1}>", "n": n}


def build_hls4ml_softmax(impl: str, inp, out, n: int, work: Path) -> Path:
    """Compile hls4ml's softmax (``latency`` or ``stable``) into a filter program."""
    d = hls4ml_defaults(inp, n)
    exp_size = d["table_size"] if impl == "latency" else d["stable_exp_table_size"]
    src = work / "hls4ml_softmax.cpp"
    src.write_text(_HARNESS)
    exe = work / f"hls4ml_softmax_{impl}_{out.width}"
    inc = hls4ml_dir()
    defs = {"TF_IN_W": inp.width, "TF_IN_I": inp.int_bits, "TF_OUT_W": out.width,
            "TF_OUT_I": out.int_bits, "TF_N": n, "TF_EXP_SIZE": exp_size,
            "TF_INV_SIZE": d["table_size"], "TF_IMPL": impl}
    cmd = ["g++", "-O2", "-std=c++14", "-w", *(f"-D{k}={v}" for k, v in defs.items()),
           f"-I{inc / 'ap_types'}", f"-I{inc}", str(src), "-o", str(exe)]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return exe


def run_hls4ml(exe: Path, x: np.ndarray) -> np.ndarray:
    r = subprocess.run([str(exe)], input=x.astype(np.int32).tobytes(), capture_output=True,
                       check=True)
    return np.frombuffer(r.stdout, dtype=np.int32).reshape(x.shape).astype(np.int64)


# -- accumulating error statistics -------------------------------------------------------------


class Acc:
    """Running max/mean/signed-mean, argmax checks and a histogram of signed errors."""

    def __init__(self, label: str):
        self.label = label
        self.max = 0.0
        self.abs_sum = 0.0
        self.signed_sum = 0.0
        self.count = 0
        self.rows = 0
        self.clear_rows = 0
        self.argmax_bad = 0
        self.hist = np.zeros(len(HIST_EDGES) - 1, dtype=np.int64)
        self.worst_row = None

    def add(self, y: np.ndarray, exact_codes: np.ndarray, x: np.ndarray | None = None):
        e = y.astype(np.float64) - exact_codes
        a = np.abs(e)
        if a.size and a.max() > self.max:
            self.max = float(a.max())
            if x is not None:
                self.worst_row = x[np.unravel_index(np.argmax(a), a.shape)[0]].tolist()
        self.abs_sum += float(a.sum())
        self.signed_sum += float(e.sum())
        self.count += e.size
        self.hist += np.histogram(np.clip(e, -99.99, 99.99), HIST_EDGES)[0]
        if y.ndim == 2 and y.shape[1] > 1:
            self.rows += y.shape[0]
            top2 = np.sort(exact_codes, axis=1)[:, -2:]
            clear = top2[:, 1] - top2[:, 0] > 1
            self.clear_rows += int(clear.sum())
            bad = np.argmax(y, axis=1) != np.argmax(exact_codes, axis=1)
            self.argmax_bad += int((bad & clear).sum())

    def summary(self) -> dict:
        out = {"method": self.label, "max_lsb": round(self.max, 4),
               "mean_lsb": round(self.abs_sum / max(self.count, 1), 4),
               "mean_signed_lsb": round(self.signed_sum / max(self.count, 1), 4),
               "elements": self.count}
        if self.rows:
            out.update(rows=self.rows, rows_with_clear_top2=self.clear_rows,
                       argmax_flips=self.argmax_bad)
        return out


def _exact_codes(prob: np.ndarray, out) -> np.ndarray:
    return np.clip(np.ldexp(prob, out.frac_bits), out.min_code, out.max_code)


# -- softmax ------------------------------------------------------------------------------------


def bench_softmax(rows: int, seed: int, work: Path) -> dict:
    from generators.config import load_config
    from generators.numerics import Format
    from generators.softmax import SoftmaxParams, reference, softmax
    from generators.softmax.stimuli import adversarial_rows, random_rows

    cfg = load_config(ROOT / "configs" / "softmax64.yaml")
    p8 = SoftmaxParams.from_config(cfg)
    p16 = SoftmaxParams(length=p8.length, lanes=1, inp=p8.inp, out=Format.parse("ufixed<16,0>"),
                        name="softmax64_16")
    n = p8.length
    rng = np.random.default_rng(seed)
    adv = adversarial_rows(p8, rng)
    t0 = time.perf_counter()
    hls = {}
    hls_error = None
    try:
        for impl in ("latency", "stable"):
            for p in (p8, p16):
                hls[(impl, p.out.width)] = build_hls4ml_softmax(impl, p.inp, p.out, n, work)
    except (subprocess.CalledProcessError, ImportError, OSError) as err:
        hls_error = f"{type(err).__name__}: {getattr(err, 'stderr', '') or err}"[:300]
        print(f"  hls4ml softmax could not be built: {hls_error}", flush=True)
    fine = 8
    accs: dict[str, Acc] = {}

    def acc(key, label):
        if key not in accs:
            accs[key] = Acc(label)
        return accs[key]

    def run_batch(x: np.ndarray, full_length: bool):
        prob = reference(p8, x)
        for p in (p8, p16):
            w = p.out.width
            exact = _exact_codes(prob, p.out)
            acc(f"ours{w}", f"tensorfab softmax, ufixed<{w},0>").add(softmax(p, x), exact, x)
            yi = np.minimum(ibert_softmax(x << fine, p.inp.lsb / 2 ** fine, p.out.frac_bits),
                            p.out.max_code)
            acc(f"ibert{w}", f"I-BERT IntSoftmax (re-impl.), {w}-bit output").add(yi, exact, x)
            if w == 8:
                yc = np.minimum(ibert_softmax(x, p.inp.lsb, p.out.frac_bits), p.out.max_code)
                acc("ibert8_coarse", "I-BERT IntSoftmax (re-impl.), 8-bit output, "
                    "scaling factor = in.lsb").add(yc, exact, x)
            if full_length:
                for impl in ("latency", "stable"):
                    if (impl, w) in hls:
                        y = run_hls4ml(hls[(impl, w)], x)
                        acc(f"hls4ml_{impl}{w}", f"hls4ml 1.3 softmax '{impl}', {w}-bit "
                            "output").add(y, exact, x)

    chunk = 50000
    done = 0
    while done < rows:
        m = min(chunk, rows - done)
        run_batch(random_rows(p8, rng, m), True)
        done += m
        print(f"  softmax: {done} random rows", flush=True)
    for row in adv:
        run_batch(row[None, :], len(row) == n)
    seconds = time.perf_counter() - t0

    results = [a.summary() for a in accs.values()]
    hists = {k: a.hist for k, a in accs.items()}
    worst = {k: a.worst_row for k, a in accs.items() if k.startswith("ours")}
    return {"config": "configs/softmax64.yaml", "random_rows": rows,
            "row_length": n, "adversarial_rows": len(adv),
            "adversarial_lengths": sorted({len(r) for r in adv}),
            "guard_bits": {"8": p8.guard, "16": p16.guard},
            "exp_table_entries": p8.table_size, "hls4ml_defaults": hls4ml_defaults(p8.inp, n),
            "hls4ml_error": hls_error, "seconds": round(seconds, 1), "results": results,
            "worst_rows_ours": worst, "_hists": hists,
            "latency_cycles": p8.latency, "latency_full_row_cycles":
                p8.expected_cycles([n]), "throughput_elements_per_cycle": p8.lanes,
            "cycles_32_rows": p8.expected_cycles([n] * 32)}


# -- GELU -------------------------------------------------------------------------------------


def bench_gelu() -> list[dict]:
    from generators.config import load_config
    from generators.gelu import GeluParams, error_lsb, gelu, reference
    from generators.gelu.model import all_inputs

    out = []
    for name in ("gelu8", "gelu16"):
        p = GeluParams.from_config(load_config(ROOT / "configs" / f"{name}.yaml"))
        x = all_inputs(p)
        exact = reference(p, x)
        ours = gelu(p, x)
        e_ours = error_lsb(p, ours, exact, signed=True)
        fine = 8
        ib_real = ibert_gelu(x << fine, p.inp.lsb / 2 ** fine)
        ib_codes = p.out.quantize(ib_real, "rnd", "sat")
        e_ib = error_lsb(p, ib_codes, exact, signed=True)
        ib_coarse = p.out.quantize(ibert_gelu(x, p.inp.lsb), "rnd", "sat")
        e_ibc = error_lsb(p, ib_coarse, exact, signed=True)
        ours_abs = np.abs(p.out.dequantize(ours) - exact)
        rows = []
        for label, e, absval in [
            (f"tensorfab gelu ({p.kind})", e_ours, ours_abs),
            ("I-BERT i-GELU (re-impl.), rounded to the output format", e_ib,
             np.abs(p.out.dequantize(ib_codes) - exact)),
            ("I-BERT i-GELU (re-impl.), unrounded real output", None, np.abs(ib_real - exact)),
            ("I-BERT i-GELU (re-impl.), scaling factor = in.lsb, rounded", e_ibc,
             np.abs(p.out.dequantize(ib_coarse) - exact)),
        ]:
            row = {"method": label, "max_abs": float(f"{absval.max():.3g}"),
                   "mean_abs": float(f"{absval.mean():.3g}")}
            if e is not None:
                row.update(max_lsb=round(float(np.abs(e).max()), 4),
                           mean_lsb=round(float(np.abs(e).mean()), 4),
                           mean_signed_lsb=round(float(e.mean()), 4))
            rows.append(row)
        out.append({"config": f"configs/{name}.yaml", "in": str(p.inp), "out": str(p.out),
                    "implementation": p.kind, "inputs": int(x.size), "exhaustive": True,
                    "output_lsb": p.out.lsb, "latency_cycles": p.latency,
                    "throughput_elements_per_cycle": p.lanes, "results": rows,
                    "_plot": (p.inp.dequantize(x), e_ours, e_ib)})
    return out


# -- plots, targets, markdown -----------------------------------------------------------------


def plots(sm: dict, ge: list[dict], out_dir: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    centers = (HIST_EDGES[:-1] + HIST_EDGES[1:]) / 2
    fig, axes = plt.subplots(3, 1, figsize=(9, 11))
    methods = [("ours", "tensorfab"), ("ibert", "I-BERT (re-impl.)"),
               ("hls4ml_stable", "hls4ml 1.3 stable"), ("hls4ml_latency", "hls4ml 1.3 latency")]
    panels = [(8, (-1.5, 1.5), 0.02, "8-bit output, zoom"),
              (8, (-100, 100), 1.0, "8-bit output"),
              (16, (-100, 100), 1.0, "16-bit output")]
    for ax, (w, (lo, hi), step, what) in zip(axes, panels, strict=True):
        edges = np.arange(lo, hi + step / 2, step)
        for key, label in methods:
            h = sm["_hists"].get(f"{key}{w}")
            if h is None:
                continue
            counts = np.histogram(np.clip(centers, lo, hi - 1e-9), edges, weights=h)[0]
            ax.stairs(np.maximum(counts, 0.5), edges, label=label)
        ax.set_yscale("log")
        ax.set_xlabel(f"signed error (output LSBs), {what}; errors beyond the axis are counted "
                      "in the edge bins")
        ax.set_ylabel("elements")
        ax.legend(fontsize=8)
    axes[0].set_title(f"softmax error histogram, {sm['random_rows']} random rows of "
                      f"{sm['row_length']} + adversarial rows")
    fig.tight_layout()
    path = out_dir / "softmax_error_hist.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    files.append(path.name)
    for g in ge:
        xv, e_ours, e_ib = g["_plot"]
        fig, ax = plt.subplots(figsize=(9, 4.5))
        ax.plot(xv, e_ib, ",", label="I-BERT i-GELU (re-impl.), rounded", alpha=0.6)
        ax.plot(xv, e_ours, ".", markersize=2, label="tensorfab")
        ax.axhline(0.5, color="grey", lw=0.5)
        ax.axhline(-0.5, color="grey", lw=0.5)
        ax.set_xlabel(f"input value ({g['in']})")
        ax.set_ylabel(f"signed error (LSBs of {g['out']})")
        ax.set_title(f"GELU error against exact GELU, every input ({g['config']})")
        ax.legend()
        fig.tight_layout()
        name = "gelu8_error.png" if "gelu8" in g["config"] else "gelu16_error.png"
        fig.savefig(out_dir / name, dpi=90)
        plt.close(fig)
        files.append(name)
    return files


def targets(sm: dict, ge: list[dict]) -> list[dict]:
    r = {row["method"]: row for row in sm["results"]}
    o8 = r["tensorfab softmax, ufixed<8,0>"]
    o16 = r["tensorfab softmax, ufixed<16,0>"]
    g8 = ge[0]["results"][0]
    g16 = ge[1]["results"][0]
    ib16 = ge[1]["results"][2]
    return [
        {"target": "Softmax 8-bit out: max error <= 0.51 LSB", "measured":
            f"{o8['max_lsb']} LSB", "met": o8["max_lsb"] <= 0.51},
        {"target": "Softmax 8-bit out: mean error <= 0.2 LSB", "measured":
            f"{o8['mean_lsb']} LSB", "met": o8["mean_lsb"] <= 0.2},
        {"target": "Softmax 8-bit out: mean signed error within +-0.05 LSB", "measured":
            f"{o8['mean_signed_lsb']} LSB", "met": abs(o8["mean_signed_lsb"]) <= 0.05},
        {"target": "Softmax: argmax kept where the exact top two differ by > 1 LSB",
         "measured": f"{o8['argmax_flips']} flips in {o8['rows_with_clear_top2']} rows",
         "met": o8["argmax_flips"] == 0},
        {"target": "Softmax 16-bit out: max error <= 1 LSB", "measured":
            f"{o16['max_lsb']} LSB", "met": o16["max_lsb"] <= 1},
        {"target": "GELU 8-bit in and out: <= 0.5 LSB everywhere (exhaustive)", "measured":
            f"{g8['max_lsb']} LSB", "met": g8["max_lsb"] <= 0.5},
        {"target": "GELU 16-bit in and out: <= 2 LSB (exhaustive)", "measured":
            f"{g16['max_lsb']} LSB (abs {g16['max_abs']:.3g}; I-BERT i-GELU abs "
            f"{ib16['max_abs']:.3g})", "met": g16["max_lsb"] <= 2},
        {"target": "Softmax/GELU: lanes elements per cycle sustained", "measured":
            f"softmax 32 rows of 64 in {sm['cycles_32_rows']} cycles (= 32*64 + "
            f"{sm['cycles_32_rows'] - 2048}); GELU 1 element/cycle, latency "
            f"{ge[0]['latency_cycles']} (table) / {ge[1]['latency_cycles']} (poly) cycles",
         "met": sm["cycles_32_rows"] - 32 * 64 == sm["latency_full_row_cycles"] - 64},
    ]


def markdown(sec: dict) -> list[str]:
    sm, ge = sec["softmax"], sec["gelu"]
    lines = ["## Softmax and GELU accuracy against published designs (issue 4)", "",
             "| target | measured | met |", "|---|---|---|"]
    for t in sec["targets"]:
        lines.append(f"| {t['target']} | {t['measured']} | {'yes' if t['met'] else 'NO'} |")
    lines += ["",
             "Error = |code - clip(exact x 2^frac, min, max)| in output LSBs against float64 "
             "(DESIGN.md). The tensorfab rows are the golden models, which the RTL equals code "
             "for code (tests). I-BERT is re-implemented in bench/nonlin.py from the paper "
             "(labelled re-impl.); hls4ml 1.3.0 runs its own C++ `nnet::softmax` through g++ "
             "with the configuration it derives by default (see bench/nonlin.py).", "",
             f"### Softmax, {sm['config']} (in fixed<8,3>, length {sm['row_length']}), "
             f"{sm['random_rows']} random rows of uniform codes plus {sm['adversarial_rows']} "
             f"adversarial rows (lengths {sm['adversarial_lengths']}; hls4ml: full-length rows "
             "only)", "",
             "| method | max | mean | mean signed | argmax flips (rows with top two > 1 LSB "
             "apart) |", "|---|---|---|---|---|"]
    for r in sm["results"]:
        flips = (f"{r['argmax_flips']} / {r['rows_with_clear_top2']}"
                 if "argmax_flips" in r else "")
        lines.append(f"| {r['method']} | {r['max_lsb']} | {r['mean_lsb']} | "
                     f"{r['mean_signed_lsb']} | {flips} |")
    if sm.get("hls4ml_error"):
        lines += ["", f"hls4ml could not be run: {sm['hls4ml_error']}"]
    lines += ["", f"Latency: {sm['latency_full_row_cycles']} cycles from the first element of "
              f"a lone 64-element row to its last output ({sm['latency_cycles']} cycles for a "
              "one-element row; each pass over the row buffer takes one cycle per beat). "
              f"Throughput: {sm['throughput_elements_per_cycle']} element per cycle sustained "
              f"(32 rows of 64: {sm['cycles_32_rows']} cycles).", "",
              "![softmax error histogram](softmax_error_hist.png)", ""]
    if sec.get("fmax"):
        lines += ["### ECP5 place and route (LFE5U-85F speed 8, nextpnr seed 1, registered "
                  "shell of `tensorfab synth --pnr`)", "",
                  "| config | Fmax (MHz) | LUTs | FFs | DSPs | block RAMs | critical path |",
                  "|---|---|---|---|---|---|---|"]
        for r in sec["fmax"]:
            if "fmax_mhz" in r:
                lines.append(f"| {r['config']} | {r['fmax_mhz']} | {r['luts']} | {r['ffs']} | "
                             f"{r['dsps']} | {r['brams']} | {r['critical_path']} |")
            else:
                lines.append(f"| {r['config']} | failed: {r['error']} | | | | | |")
        lines.append("")
    for g in ge:
        lines += [f"### GELU, {g['config']} ({g['in']} -> {g['out']}, {g['implementation']}), "
                  f"every input ({g['inputs']})", "",
                  "| method | max (LSB) | mean (LSB) | mean signed (LSB) | max abs error | "
                  "mean abs error |", "|---|---|---|---|---|---|"]
        for r in g["results"]:
            lines.append(f"| {r['method']} | {r.get('max_lsb', '')} | {r.get('mean_lsb', '')} "
                         f"| {r.get('mean_signed_lsb', '')} | {r['max_abs']} | "
                         f"{r['mean_abs']} |")
        name = "gelu8_error.png" if "gelu8" in g["config"] else "gelu16_error.png"
        lines += ["", f"Latency {g['latency_cycles']} cycles, "
                  f"{g['throughput_elements_per_cycle']} element per cycle per lane.", "",
                  f"![GELU error]({name})", ""]
    return lines


def bench_fmax(work: Path) -> list[dict]:
    """ECP5 (LFE5U-85F, speed 8) place and route of the three reference configs, seed 1, in
    the registered shell of ``tensorfab synth --pnr`` (issue 5)."""
    from generators.config import load_config
    from generators.synth import SynthError, synthesize

    rows = []
    for name in ("softmax64", "gelu8", "gelu16"):
        try:
            rep = synthesize(load_config(ROOT / "configs" / f"{name}.yaml"), "ecp5",
                             work / f"synth-{name}", pnr=True, seed=1)
        except SynthError as err:
            print(f"  synthesis of {name} failed: {err}", flush=True)
            rows.append({"config": f"configs/{name}.yaml", "error": str(err)[:200]})
            continue
        rows.append({"config": f"configs/{name}.yaml", "fmax_mhz": rep["fmax_mhz"],
                     "luts": rep["luts"], "ffs": rep["ffs"], "dsps": rep["dsps"],
                     "brams": rep["brams"], "seed": 1,
                     "critical_path": rep["pnr"]["critical_path"]["from"] + " -> "
                     + rep["pnr"]["critical_path"]["to"]})
        print(f"  {name}: {rep['fmax_mhz']} MHz on ECP5", flush=True)
    return rows


def run(out_dir: Path, rows: int = 10 ** 6, seed: int = 4, synth: bool = True) -> dict:
    """The whole section: accuracy tables, plots, ECP5 Fmax (``synth``) and targets."""
    print("softmax and GELU accuracy (issue 4)", flush=True)
    work = Path(tempfile.mkdtemp(prefix="tensorfab-nonlin-"))
    try:
        sm = bench_softmax(rows, seed, work)
        fmax = bench_fmax(work) if synth else []
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ge = bench_gelu()
    files = plots(sm, ge, out_dir)
    sec = {"softmax": {k: v for k, v in sm.items() if not k.startswith("_")},
           "gelu": [{k: v for k, v in g.items() if not k.startswith("_")} for g in ge],
           "plots": files, "fmax": fmax}
    sec["targets"] = [dict(t, issue=4) for t in targets(sm, ge)]
    for r in fmax:
        if "fmax_mhz" in r:
            sec["targets"].append({"target": f"{r['config']}: >= 100 MHz on ECP5 (nextpnr)",
                                   "measured": f"{r['fmax_mhz']} MHz (seed 1)",
                                   "met": r["fmax_mhz"] >= 100, "issue": 5})
    return sec
