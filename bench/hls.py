"""Bench rows of the HLS flow (issue 7): each Dense layer of the jet-tagging MLP as tensorfab
RTL next to da4ml 0.6's RTL for the same constant-weight layer, both synthesized by the same
Yosys flow in one run.

da4ml (an optional bench dependency) emits fully unrolled, pipelined adder graphs with no
multipliers; tensorfab's `network` stage uses ceil(n_in / R) x n_out multipliers (here R = 1,
fully parallel, like hls4ml's latency strategy). Both compute the layer exactly (the product
and sum of the `ap_fixed` codes, before the result conversion).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

TARGET = "xilinx"


def _stages():
    """The Dense stages of the jet MLP (hls4ml's default types)."""
    from generators.hls import lower
    from generators.hls.examples import jet_mlp
    from generators.hls.frontend import convert

    graph, _ = convert(jet_mlp(softmax=False), name="jet",
                       output_dir=tempfile.mkdtemp(prefix="tf-jet-"))
    return lower(graph).dense_stages


def _ours(stage, out: Path) -> dict:
    from generators.generate import render
    from generators.network.params import NetworkParams
    from generators.synth import synthesize_files

    layer = stage.head
    name = f"tf_{layer.name.lower()}"
    p = NetworkParams(name=name, input=stage.inp, layers=(layer,))  # the Dense layer alone
    text, _ = render(p)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.v").write_text(text)
    rep = synthesize_files([out / f"{name}.v"], name, TARGET, out)
    rep.update(latency_cycles=p.latency, interval_cycles=p.stage_cycles()[0],
               multipliers=p.multipliers)
    return rep


def _da4ml(stage, out: Path) -> dict:
    from da4ml.codegen import VerilogModel
    from da4ml.trace import FixedVariableArrayInput, comb_trace

    from generators.synth import synthesize_files

    layer = stage.head
    fi, fw, fb = stage.inp.format, layer.weight.format, layer.bias.format
    w = np.ldexp(layer.w_codes.astype(np.float64), -fw.frac_bits)
    b = np.ldexp(layer.b_codes.astype(np.float64), -fb.frac_bits)
    k = 1 if fi.signed else 0
    inp = FixedVariableArrayInput((layer.n_in,)).quantize(k, fi.int_bits - k, fi.frac_bits)
    comb = comb_trace(inp, inp @ w + b)
    name = f"da_{layer.name.lower()}"
    model = VerilogModel(comb, name, out, latency_cutoff=5, print_latency=False)
    model.write()
    srcs = sorted((out / "src").glob("*.v")) + sorted((out / "src" / "static").glob("*.v"))
    # the wrapper (I/O binder) and the table primitive (unused by a CMVM) stay out
    srcs = [s for s in srcs if not s.name.endswith("_wrapper.v") and s.name != "lookup_table.v"]
    rep = synthesize_files(srcs, name, TARGET, out / "synth")
    stages = len(list((out / "src").glob(f"{name}_stage*.v")))
    rep.update(latency_cycles=stages, interval_cycles=1, multipliers=0)
    return rep


def bench_hls(out_dir: str | None = None) -> list[dict]:
    import importlib.metadata as md

    root = Path(out_dir or tempfile.mkdtemp(prefix="tf-bench-hls-"))
    rows = []
    try:
        da_version = md.version("da4ml")
    except md.PackageNotFoundError:
        da_version = None
    for stage in _stages():
        layer = stage.head
        row = {"layer": layer.name, "shape": f"{layer.n_in}x{layer.n_out}",
               "input": str(stage.inp.format), "weight": str(layer.weight.format),
               "target": TARGET}
        t0 = time.perf_counter()
        row["tensorfab"] = _slim(_ours(stage, root / "ours" / layer.name))
        print(f"  {layer.name}: tensorfab {row['tensorfab']} ({time.perf_counter() - t0:.0f} s)",
              flush=True)
        if da_version:
            t0 = time.perf_counter()
            row["da4ml"] = _slim(_da4ml(stage, root / "da4ml" / layer.name))
            row["da4ml"]["version"] = da_version
            print(f"  {layer.name}: da4ml {row['da4ml']} ({time.perf_counter() - t0:.0f} s)",
                  flush=True)
        rows.append(row)
    return rows


def bench_hls_accuracy(rows: int = 5000, seed: int = 0) -> dict:
    """Softmax of the jet MLP example (generators.hls.examples, its precisions): the error
    against float64 softmax of the same logits, of hls4ml's predict() (its table softmax with
    its defaults) and of tensorfab's softmax unit, over ``rows`` random inputs. The logits are
    checked equal to hls4ml's (``trace``) first. About half a minute (one hls4ml compile)."""
    import contextlib
    import io

    from generators.hls import lower
    from generators.hls.examples import hls4ml_config, jet_mlp
    from generators.hls.frontend import convert
    from generators.hls.model import run_until, softmax_errors
    from generators.network.layers import SoftmaxLayer

    tmp = tempfile.mkdtemp(prefix="tf-bench-hls-acc-")
    with contextlib.redirect_stdout(io.StringIO()):
        model = jet_mlp()
        _, base = convert(model, name="jet_acc0", output_dir=f"{tmp}/a")
        graph, _ = convert(model, hls4ml_config=hls4ml_config("jet_mlp", base),
                           name="jet_acc", output_dir=f"{tmp}/b")
        lowered = lower(graph)
        before = lowered.layers[-2]
        for layer in graph.get_layers():
            layer.set_attr("trace", layer.name == before.name)
        rng = np.random.default_rng(seed)
        fmt = lowered.input.format
        x = fmt.quantize(rng.normal(0, 2, (rows, lowered.n_in)))
        y, trace = graph.trace(np.ascontiguousarray(fmt.dequantize(x)))
    logits_hls = before.result.format.quantize(np.asarray(trace[before.name], dtype=np.float64)
                                            .reshape(rows, -1))
    logits = run_until(lowered, x, SoftmaxLayer)
    mismatches = int((logits != logits_hls).sum())
    err = softmax_errors(lowered, logits_hls, np.asarray(y, dtype=np.float64))
    sm = lowered.stages[-1]
    return {"model": "jet_mlp 16-64-32-32-5 + softmax", "rows": rows, "seed": seed,
            "logits": str(sm.inp.format), "result": str(sm.result.format),
            "logit_mismatches_vs_hls4ml": mismatches,
            "hls4ml_softmax": "hls4ml 1.3 stable, table_size 1024, exp/inv tables "
                              "fixed<18,8,RND,SAT>",
            "hls4ml": err["hls4ml"], "tensorfab": err["tensorfab"]}


def hls_accuracy_targets(row: dict) -> list[dict]:
    t, h = row["tensorfab"], row["hls4ml"]
    return [{"issue": 7, "target": "jet MLP softmax: error vs float smaller than hls4ml's "
             "(logits bit exact)",
             "measured": f"max {t['max']:.3g} vs {h['max']:.3g}, mean {t['mean']:.3g} vs "
                         f"{h['mean']:.3g} ({row['rows']} rows, "
                         f"{row['logit_mismatches_vs_hls4ml']} logit mismatches)",
             "met": t["max"] < h["max"] and t["mean"] < h["mean"]
             and row["logit_mismatches_vs_hls4ml"] == 0}]


def hls_accuracy_markdown(row: dict) -> list[str]:
    t, h = row["tensorfab"], row["hls4ml"]
    return ["## HLS flow: softmax of the jet MLP against float, hls4ml vs tensorfab", "",
            f"{row['rows']} random inputs (seed {row['seed']}); logits {row['logits']} (equal "
            f"to hls4ml's trace: {row['logit_mismatches_vs_hls4ml']} mismatches), softmax "
            f"result {row['result']}; error = |output - float64 softmax of the same logits|. "
            f"hls4ml: {row['hls4ml_softmax']}. `python -m bench.run --hls-accuracy-only`.", "",
            "| softmax | max abs error | mean abs error | max (LSB) | mean (LSB) |",
            "|---|---|---|---|---|",
            f"| hls4ml predict() | {h['max']:.3g} | {h['mean']:.3g} | {h['max_lsb']:.1f} | "
            f"{h['mean_lsb']:.1f} |",
            f"| tensorfab softmax unit | {t['max']:.3g} | {t['mean']:.3g} | "
            f"{t['max_lsb']:.3f} | {t['mean_lsb']:.3f} |", ""]


def _slim(rep: dict) -> dict:
    keys = ("luts", "ffs", "dsps", "carry", "generic_multipliers", "latency_cycles",
            "interval_cycles", "multipliers")
    return {k: rep[k] for k in keys if k in rep}


def hls_markdown(rows: list[dict]) -> list[str]:
    out = ["## HLS flow: Dense layers of the jet MLP, tensorfab vs da4ml (Yosys synth_xilinx)",
           "",
           "| layer | shape | tensorfab LUTs | FFs | DSPs | latency / interval (cycles) "
           "| da4ml LUTs | FFs | DSPs | latency / interval |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        t = r["tensorfab"]
        d = r.get("da4ml")
        dcols = (f"{d['luts']} | {d['ffs']} | {d['dsps']} | {d['latency_cycles']} / "
                 f"{d['interval_cycles']}") if d else "not installed | | |"
        out.append(f"| {r['layer']} | {r['shape']} | {t['luts']} | {t['ffs']} | {t['dsps']} | "
                   f"{t['latency_cycles']} / {t['interval_cycles']} | {dcols} |")
    out += ["", "tensorfab at reuse factor 1 (one stage, `n_in x n_out` multipliers, products "
            "registered, a row every `C + 2 = 3` cycles); da4ml 0.6 with `latency_cutoff=5`, "
            "fully pipelined adder graph (one row per cycle). Both exact before the result "
            "conversion; Yosys maps tensorfab's multipliers to DSP48E1 and da4ml's adders to "
            "LUTs and CARRY4.", ""]
    return out


if __name__ == "__main__":
    import json

    res = bench_hls()
    print(json.dumps(res, indent=1))
    print("\n".join(hls_markdown(res)))
