"""Integer requantization against ONNX Runtime, and the requant unit's resources (issue 14).

Agreement
---------
ONNX Runtime's CPU provider runs ``QLinearMatMul`` (opset 21) and ``com.microsoft.QGemm`` on
int8 weights and int8 (or uint8) activations with float32 scales and zero points, per tensor
or with a per-column weight scale and zero point. Its kernels compute the int32 accumulator
exactly and then requantize it in float32: ``acc * (a_scale * b_scale / y_scale)`` with the
scale a float32 product, rounded to nearest even, plus the output zero point, saturated. We
check that reading against ORT itself: :func:`ort_float32_emulation` does exactly that in
NumPy, and its codes are counted against ORT's alongside ours.

Ours is what the hardware does: the exact accumulator of the same codes,
``(a - a_zp) @ (b - b_zp)`` (:func:`generators.numerics.exact_matmul`), then
``quantize_multiplier(a_scale * b_scale / y_scale)`` (the scale in float64 from the float32
parameters) and :func:`generators.numerics.requantize_fixed` with ``double`` or ``single``
rounding and the output zero point. The two can differ only where ``acc * scale`` lies within
float32 rounding error (or the fixed-point multiplier's 2**-31 relative error) of a rounding
tie, and at exact ties (ORT: to even; gemmlowp: away from zero): by one LSB. Every
mismatch's distance from a tie of the exact product is reported.

Resources
---------
Yosys on ``configs/requant8.yaml`` (64 channels, 4 lanes, int32 -> int8) at ``mult_bits`` 32
and 16, ECP5 and Xilinx; nextpnr Fmax on ECP5 when asked (``fmax=True``).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

OPS = ("QLinearMatMul", "QGemm")
ROUNDINGS = ("double", "single")
TARGET_EQUAL = 0.999
TARGET_MAX_DIFF = 1
U8S8_WEIGHT_MAX = 64    # uint8-activation cases: weights in [-64, 63] (see random_case)


def onnx_model(op: str, a_dtype: str, m: int, k: int, b: np.ndarray, a_scale, a_zp,
               b_scale, b_zp, y_scale, y_zp) -> bytes:
    """A one-node graph ``y = op(a, ...)`` with ``a [m, k]`` its input and everything else
    an initializer, serialized.

    ``y`` has ``a``'s type (``a_dtype``, ``int8`` or ``uint8``): ORT's CPU kernels exist only
    for that combination. ``b`` is int8 ``[k, n]``; ``b_scale`` and ``b_zp`` are scalars or
    ``[n]`` (per output column).
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    at = np.dtype(a_dtype)
    elem = {np.dtype(np.int8): TensorProto.INT8, np.dtype(np.uint8): TensorProto.UINT8}[at]
    n = b.shape[1]
    inits = [numpy_helper.from_array(np.asarray(a_scale, np.float32), "a_scale"),
             numpy_helper.from_array(np.asarray(a_zp, at), "a_zp"),
             numpy_helper.from_array(np.asarray(b, np.int8), "b"),
             numpy_helper.from_array(np.asarray(b_scale, np.float32), "b_scale"),
             numpy_helper.from_array(np.asarray(b_zp, np.int8), "b_zp"),
             numpy_helper.from_array(np.asarray(y_scale, np.float32), "y_scale"),
             numpy_helper.from_array(np.asarray(y_zp, at), "y_zp")]
    names = ["a", "a_scale", "a_zp", "b", "b_scale", "b_zp", "y_scale", "y_zp"]
    if op == "QGemm":
        # QGemm's inputs: A, a_scale, a_zp, B, b_scale, b_zp, C (none), y_scale, y_zp
        names = names[:6] + [""] + names[6:]
        node = helper.make_node("QGemm", names, ["y"], domain="com.microsoft")
    elif op == "QLinearMatMul":
        node = helper.make_node("QLinearMatMul", names, ["y"])
    else:
        raise ValueError(f"op {op!r} is not allowed (allowed: {', '.join(OPS)})")
    graph = helper.make_graph([node], op, [helper.make_tensor_value_info("a", elem, [m, k])],
                              [helper.make_tensor_value_info("y", elem, [m, n])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21),
                                                    helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 10
    onnx.checker.check_model(model)
    return model.SerializeToString()


def run_ort(model: bytes, a: np.ndarray) -> np.ndarray:
    """ORT's output codes of ``model`` on ``a`` (CPU provider, one thread), as int64."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    return sess.run(None, {"a": a})[0].astype(np.int64)


def random_case(rng: np.random.Generator, op: str, out: str, per: str, m: int, k: int,
                n: int) -> dict:
    """One random layer: codes, float32 scales, zero points.

    Scales are log-uniform (``a_scale``, ``b_scale`` in ``[1e-3, 1e-1]``, per column when
    ``per == "channel"``); ``y_scale`` puts the output's standard deviation at 8 to 64 codes
    (log-uniform), so a few codes saturate and most do not. Weight zero points are small
    (-4..4, per column when per channel); activation and output zero points lie near the
    middle of their range.

    With uint8 activations the weights are 7-bit (``[-64, 63]``, ORT's ``reduce_range``): its
    u8 x s8 kernel on AVX2 without VNNI adds pairs of products in saturating int16
    (``vpmaddubsw``), so full-range int8 weights make ORT's own accumulator wrong
    (:func:`u8s8_saturation`), which is not what is compared here.
    """
    signed = out == "int8"
    lo, hi = (-128, 127) if signed else (0, 255)
    mid = 0 if signed else 128
    a = rng.integers(lo, hi + 1, (m, k))
    wmax = 128 if signed else U8S8_WEIGHT_MAX
    b = rng.integers(-wmax, wmax, (k, n))
    shape = (n,) if per == "channel" else ()
    a_scale = np.float32(10 ** rng.uniform(-3, -1))
    b_scale = (10 ** rng.uniform(-3, -1, shape)).astype(np.float32)
    b_zp = rng.integers(-4, 5, shape)
    a_zp = int(rng.integers(mid - 20, mid + 21))
    y_zp = int(rng.integers(mid - 20, mid + 21))
    # about the std of (a - a_zp) @ (b - b_zp): uniform codes have std range / sqrt(12)
    spread = np.sqrt(k) * 74.0 * (wmax / 1.73)
    typical = float(np.median(b_scale)) * float(a_scale) * spread
    y_scale = np.float32(typical / 10 ** rng.uniform(np.log10(8), np.log10(64)))
    return {"op": op, "out": out, "per": per, "m": m, "k": k, "n": n, "a": a, "b": b,
            "a_scale": a_scale, "a_zp": a_zp, "b_scale": b_scale, "b_zp": b_zp,
            "y_scale": y_scale, "y_zp": y_zp}


def accumulator(case: dict) -> np.ndarray:
    """The exact int32 accumulator ``(a - a_zp) @ (b - b_zp)`` (ONNX's definition)."""
    from generators.numerics import exact_matmul

    bz = np.broadcast_to(np.asarray(case["b_zp"]), (case["n"],))
    return exact_matmul(case["a"] - case["a_zp"], case["b"] - bz[None, :])


def real_scale(case: dict) -> np.ndarray:
    """``a_scale * b_scale / y_scale`` in float64 from the float32 parameters (``[n]``)."""
    s = (np.float64(case["a_scale"]) * np.asarray(case["b_scale"], np.float64)
         / np.float64(case["y_scale"]))
    return np.broadcast_to(s, (case["n"],))


def ours(case: dict, acc: np.ndarray, rounding: str, bits: int = 32) -> np.ndarray:
    """Our codes: ``quantize_multiplier`` of the real scale, then ``requantize_fixed``."""
    from generators.numerics import Format, quantize_multiplier, requantize_fixed

    mult, shift = quantize_multiplier(real_scale(case), bits=bits)
    return requantize_fixed(acc, multiplier=mult, shift=shift, zero_point=case["y_zp"],
                            rounding=rounding, out_fmt=Format.parse(case["out"]))


def ort_float32_emulation(case: dict, acc: np.ndarray) -> np.ndarray:
    """What ORT's CPU kernels compute, as read from them: the float32 scale
    ``a_scale * b_scale / y_scale``, ``float32(acc) * scale``, rounded to nearest even,
    plus ``y_zp``, saturated to the output type."""
    lo, hi = (-128, 127) if case["out"] == "int8" else (0, 255)
    s32 = (np.float32(case["a_scale"]) * np.asarray(case["b_scale"], np.float32)
           / np.float32(case["y_scale"]))
    v = acc.astype(np.float32) * s32.astype(np.float32)
    return np.clip(np.rint(v).astype(np.int64) + case["y_zp"], lo, hi)


def u8s8_saturation(seed: int = 3, m: int = 64, k: int = 64, n: int = 64) -> dict:
    """How often ORT's uint8 x int8 ``QLinearMatMul`` output differs from its own float32
    requantization of the exact accumulator, with full-range int8 weights (none expected
    with 7-bit weights): on CPUs whose kernel saturates int16 pair sums, the accumulator
    itself is wrong there."""
    rng = np.random.default_rng(seed)
    out = {}
    for wmax in (128, U8S8_WEIGHT_MAX):
        c = random_case(rng, "QLinearMatMul", "uint8", "tensor", m, k, n)
        c["b"] = rng.integers(-wmax, wmax, (k, n))
        acc = accumulator(c)
        y = run_ort(onnx_model(c["op"], "uint8", m, k, c["b"], c["a_scale"], c["a_zp"],
                               c["b_scale"], c["b_zp"], c["y_scale"], c["y_zp"]),
                    c["a"].astype(np.uint8))
        out[f"weights_-{wmax}..{wmax - 1}"] = float((y == ort_float32_emulation(c, acc)).mean())
    return out


def plan(codes: int, seed: int) -> list[dict]:
    """Random cases, cycling over op x output type x per-tensor/per-channel, until they hold
    at least ``codes`` output codes (only the first ``codes`` are counted)."""
    rng = np.random.default_rng(seed)
    combos = [(op, out, per) for op in OPS for out in ("int8", "uint8")
              for per in ("tensor", "channel")]
    cases, total, i = [], 0, 0
    while total < codes:
        op, out, per = combos[i % len(combos)]
        n = int(rng.integers(4, 97))
        k = int(np.round(10 ** rng.uniform(0, np.log10(1024))))
        m = int(rng.integers(4, 129))
        m = min(m, -(-(codes - total) // n))
        cases.append(random_case(rng, op, out, per, m, k, n))
        total += m * n
        i += 1
    return cases


def compare(codes: int = 10 ** 5, seed: int = 14) -> dict:
    """Per-code arrays over the first ``codes`` output codes of :func:`plan` ``(codes, seed)``:
    ORT's codes (``ort``), ours (``double``, ``single``), ``float32_emulation``, ``tie`` (the
    distance of ``acc * scale``, exact in float64, from the nearest ``.5``), ``right_shift``
    (``max(-shift, 0)`` of the 32-bit multiplier), ``saturated`` (ORT's code at a bound),
    and ``cases`` (the shapes)."""
    from generators.numerics import quantize_multiplier

    cases = plan(codes, seed)
    keys = ("ort", "float32_emulation", *ROUNDINGS, "tie", "right_shift", "saturated")
    got = {k: [] for k in keys}
    for c in cases:
        acc = accumulator(c)
        y = run_ort(onnx_model(c["op"], c["out"], c["m"], c["k"], c["b"], c["a_scale"],
                               c["a_zp"], c["b_scale"], c["b_zp"], c["y_scale"], c["y_zp"]),
                    c["a"].astype(np.dtype(c["out"])))
        got["ort"].append(y)
        got["float32_emulation"].append(ort_float32_emulation(c, acc))
        for r in ROUNDINGS:
            got[r].append(ours(c, acc, r))
        exact = acc * real_scale(c)[None, :]
        got["tie"].append(np.abs(exact - np.floor(exact) - 0.5))
        _, shift = quantize_multiplier(real_scale(c))
        got["right_shift"].append(np.broadcast_to(np.maximum(-shift, 0), y.shape))
        lo, hi = (-128, 127) if c["out"] == "int8" else (0, 255)
        got["saturated"].append((y == lo) | (y == hi))
    flat = {k: np.concatenate([v.reshape(-1) for v in got[k]])[:codes] for k in keys}
    flat["cases"] = [{k: c[k] for k in ("op", "out", "per", "m", "k", "n")} for c in cases]
    return flat


SHIFT_BANDS = ((0, 7), (8, 9), (10, 11), (12, 31))


def agreement(codes: int = 10 ** 5, seed: int = 14) -> dict:
    """Our codes (``double``, ``single``) and the float32 emulation against ORT's
    (:func:`compare`), summarised; the ``double`` agreement also by the multiplier's right
    shift (its first rounding, of ``x * multiplier`` to 32 bits, errs by up to
    ``2**-(right_shift + 1)`` output LSB, so small shifts disagree more often)."""
    t0 = time.perf_counter()
    f = compare(codes, seed)
    sat, tie, rs = f["saturated"], f["tie"], f["right_shift"]
    res = {"codes": int(f["ort"].size), "cases": len(f["cases"]), "seed": seed,
           "case_shapes": f["cases"], "saturated_fraction": round(float(sat.mean()), 5),
           "u8s8_full_range_weights": u8s8_saturation(), "variants": [], "double_by_shift": []}
    for name in (*ROUNDINGS, "float32_emulation"):
        d = f[name] - f["ort"]
        bad = d != 0
        res["variants"].append({
            "ours": name, "equal": int((~bad).sum()),
            "fraction_equal": float((~bad).mean()),
            "fraction_equal_unsaturated": float((~bad[~sat]).mean()) if (~sat).any() else None,
            "max_abs_diff_lsb": int(np.abs(d).max()) if d.size else 0,
            "diff_counts": {str(int(v)): int((d == v).sum()) for v in np.unique(d[bad])},
            "max_tie_distance_of_mismatches": float(tie[bad].max()) if bad.any() else None,
        })
    d = f["double"] != f["ort"]
    for lo, hi in SHIFT_BANDS:
        sel = (rs >= lo) & (rs <= hi)
        if sel.any():
            res["double_by_shift"].append({"right_shift": f"{lo}..{hi}", "codes": int(sel.sum()),
                                           "fraction_equal": float((~d[sel]).mean())})
    res["seconds"] = round(time.perf_counter() - t0, 2)
    for v in res["variants"]:
        print(f"  ORT agreement ({v['ours']}): {v['equal']}/{res['codes']} equal "
              f"({100 * v['fraction_equal']:.3f} %), max diff {v['max_abs_diff_lsb']} LSB",
              flush=True)
    return res


#: The designs of the resource rows: (label, config file, mult_bits or None for the file's).
RESOURCE_DESIGNS = (("requant8", "requant8.yaml", 32), ("requant8", "requant8.yaml", 16),
                    ("mac8x8 (no epilogue)", "mac8x8.yaml", None),
                    ("mac8x8_requant", "mac8x8_requant.yaml", 32),
                    ("mac8x8_requant", "mac8x8_requant.yaml", 16))


def _with_mult_bits(cfg, bits):
    from generators.config import config_to_dict, parse_config, replace_config

    if bits is None:
        return cfg
    if cfg.unit == "requant":
        return replace_config(cfg, mult_bits=bits)
    d = config_to_dict(cfg)
    d["requant"] = {**d["requant"], "mult_bits": bits}
    return parse_config(d, "bench")


def bench_resources(designs=RESOURCE_DESIGNS, targets=("ecp5", "xilinx"),
                    fmax: bool = False) -> list[dict]:
    """Yosys resources of the requant unit and of the 8x8 array with and without the fused
    epilogue, at each ``mult_bits``; with ``fmax``, also nextpnr on ECP5 (seed 1, 125 MHz
    constraint)."""
    from generators.config import load_config
    from generators.synth import synthesize

    rows = []
    for label, name, bits in designs:
        cfg = _with_mult_bits(load_config(ROOT / "configs" / name), bits)
        for target in targets:
            pnr = fmax and target == "ecp5"
            with tempfile.TemporaryDirectory(prefix="tensorfab-requant-") as tmp:
                t0 = time.perf_counter()
                rep = synthesize(cfg, target, tmp, pnr=pnr, seed=1)
                wall = time.perf_counter() - t0
            cp = (rep.get("pnr") or {}).get("critical_path") or {}
            rows.append({"design": label, "config": f"configs/{name}", "mult_bits": bits,
                         "target": target,
                         "device": rep["device"], "dsps": rep["dsps"], "luts": rep["luts"],
                         "ffs": rep["ffs"], "carry": rep["carry"], "brams": rep["brams"],
                         "generic_multipliers": rep["generic_multipliers"],
                         "fmax_mhz": rep.get("fmax_mhz") if pnr else None,
                         "critical_path": (f"{cp.get('from')} -> {cp.get('to')} "
                                           f"({cp.get('delay_ns')} ns)") if pnr and cp else None,
                         "seconds": round(wall, 1), "tools": rep["tools"]})
            r = rows[-1]
            print(f"  {label} mult_bits {bits or '-'} {target}: DSPs {r['dsps']}, LUTs "
                  f"{r['luts']}, FFs {r['ffs']}" + (f", Fmax {r['fmax_mhz']} MHz" if pnr
                                                    else "") + f" ({wall:.0f} s)", flush=True)
    return rows


#: The 8x8 array without the epilogue on ECP5, median of seeds 1-3 (bench synthesis rows).
ARRAY_FMAX_MHZ = 154.75


def _pnr_seed(seed: int) -> dict:
    from generators.config import load_config
    from generators.synth import synthesize

    cfg = load_config(ROOT / "configs" / "mac8x8_requant.yaml")
    with tempfile.TemporaryDirectory(prefix="tensorfab-requant-") as tmp:
        rep = synthesize(cfg, "ecp5", tmp, pnr=True, seed=seed)
    cp = (rep.get("pnr") or {}).get("critical_path") or {}
    return {"seed": seed, "fmax_mhz": rep.get("fmax_mhz"),
            "critical_path": f"{cp.get('from')} -> {cp.get('to')} ({cp.get('delay_ns')} ns)",
            "luts": rep["luts"], "ffs": rep["ffs"], "dsps": rep["dsps"]}


def bench_fmax_seeds(seeds=(1, 2, 3), jobs: int = 2) -> dict:
    """nextpnr Fmax of configs/mac8x8_requant.yaml on ECP5 (125 MHz constraint) per seed,
    ``jobs`` place-and-route runs at a time; the median against issue 14's target."""
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(jobs) as pool:
        runs = list(pool.map(_pnr_seed, seeds))
    for r in runs:
        print(f"  mac8x8_requant seed {r['seed']}: Fmax {r['fmax_mhz']} MHz, "
              f"{r['critical_path']}", flush=True)
    med = sorted(r["fmax_mhz"] for r in runs)[len(runs) // 2]
    return {"runs": runs, "median_mhz": med, "array_mhz": ARRAY_FMAX_MHZ,
            "target": {"target": f"Fmax of the 8x8 array with the epilogue on ECP5 >= 90 % of "
                                 f"the array without it ({ARRAY_FMAX_MHZ} MHz), median of "
                                 f"seeds {', '.join(map(str, seeds))} (issue 14)",
                       "measured": f"{med} MHz = {100 * med / ARRAY_FMAX_MHZ:.1f} % ("
                                   + ", ".join(f"seed {r['seed']}: {r['fmax_mhz']}"
                                               for r in runs) + ")",
                       "met": med >= 0.9 * ARRAY_FMAX_MHZ, "issue": 14}}


def targets(agree: dict) -> list[dict]:
    """The issue-14 ONNX Runtime target, one row per rounding variant."""
    out = []
    for v in agree["variants"]:
        if v["ours"] not in ROUNDINGS:
            continue
        out.append({
            "target": f"requantize_fixed ({v['ours']} rounding) equals ONNX Runtime "
                      f"QLinearMatMul/QGemm on >= {100 * TARGET_EQUAL:.1f} % of "
                      f"{agree['codes']} int8/uint8 codes, max diff <= {TARGET_MAX_DIFF} LSB "
                      "(issue 14)",
            "measured": f"{100 * v['fraction_equal']:.3f} % equal, max diff "
                        f"{v['max_abs_diff_lsb']} LSB",
            "met": v["fraction_equal"] >= TARGET_EQUAL
            and v["max_abs_diff_lsb"] <= TARGET_MAX_DIFF,
            "issue": 14})
    return out


def markdown(sec: dict) -> list[str]:
    a = sec["agreement"]
    ops = sorted({c["op"] for c in a["case_shapes"]})
    ks = [c["k"] for c in a["case_shapes"]]
    lines = ["", "## Requantization against ONNX Runtime, and the requant unit (issue 14)", "",
             f"ONNX Runtime {sec['onnxruntime']} (CPU provider) runs {' and '.join(ops)} on "
             f"{a['cases']} random int8-weight layers (int8 -> int8 and uint8 -> uint8 "
             f"activations, per-tensor and per-column weight scales and zero points, K "
             f"{min(ks)}..{max(ks)}, seed {a['seed']}); the first {a['codes']} output codes "
             "are compared. ORT computes the int32 accumulator exactly and rescales it in "
             "float32 (float32 scale `a_scale * b_scale / y_scale`, round to nearest even); "
             "the float32-emulation row repeats that in NumPy and is the check of that "
             "reading. Ours is the integer-only path of the hardware: the exact accumulator, "
             "`quantize_multiplier` of the scale (float64 from the float32 parameters, "
             "32-bit multiplier) and `requantize_fixed`. A mismatch means `acc * scale` lay "
             "within rounding error of a tie (distance of the exact product from the nearest "
             ".5 in the last column) or on one: float32 carries 24 bits, the multiplier 31. "
             f"{100 * a['saturated_fraction']:.2f} % of ORT's codes are saturated.", "",
             *(f"- {'met' if t['met'] else 'NOT MET'}: {t['target']}: {t['measured']}"
               for t in sec["targets"]), "",
             "| ours | codes equal to ORT | fraction equal | equal, unsaturated codes only "
             "| max diff (LSB) | diffs (ours - ORT: count) | largest tie distance of a mismatch |",
             "|---|---|---|---|---|---|---|"]
    for v in a["variants"]:
        diffs = ", ".join(f"{k}: {n}" for k, n in v["diff_counts"].items()) or "-"
        tie = v["max_tie_distance_of_mismatches"]
        lines.append(f"| {v['ours']} | {v['equal']} / {a['codes']} | "
                     f"{100 * v['fraction_equal']:.3f} % | "
                     f"{100 * v['fraction_equal_unsaturated']:.3f} % | "
                     f"{v['max_abs_diff_lsb']} | {diffs} | "
                     f"{'-' if tie is None else f'{tie:.2e}'} |")
    lines += ["", "`double` by the multiplier's right shift (its first rounding, of `x * "
              "multiplier` to 32 bits, errs by up to 2^-(shift+1) output LSB before the second; "
              "`single` and float32 round once):", "",
              "| right shift | codes | double: fraction equal to ORT |", "|---|---|---|"]
    lines += [f"| {b['right_shift']} | {b['codes']} | {100 * b['fraction_equal']:.3f} % |"
              for b in a["double_by_shift"]]
    u = a["u8s8_full_range_weights"]
    lines += ["", "The uint8-activation layers use 7-bit weights [-64, 63] (ORT's "
              "`reduce_range`): on this CPU (AVX2, no VNNI) ORT's u8 x s8 kernel adds product "
              "pairs in saturating int16, so with full-range int8 weights its own output "
              "equals its float32 requantization of the exact accumulator on only "
              + ", ".join(f"{100 * v:.1f} % ({k.replace('_', ' ')})" for k, v in u.items())
              + " of a 64x64x64 layer's codes: that is ORT's accumulator, not rounding."]
    fs = sec.get("fmax_seeds")
    if fs:
        lines += ["", "### Fmax of the 8x8 array with the fused epilogue (configs/"
                  "mac8x8_requant.yaml, ECP5, `tensorfab synth --pnr`, 125 MHz constraint)", "",
                  f"Median {fs['median_mhz']} MHz against {fs['array_mhz']} MHz for the array "
                  "without the epilogue.", "", "| seed | Fmax MHz | critical path |",
                  "|---|---|---|"]
        lines += [f"| {r['seed']} | {r['fmax_mhz']} | {r['critical_path']} |"
                  for r in fs["runs"]]
    res = sec.get("resources") or []
    if res:
        tools = res[0]["tools"]
        lines += ["", "### requant unit and 8x8 array resources (configs/requant8.yaml: 64 "
                  "channels, 4 lanes, int32 -> int8, double rounding; configs/mac8x8.yaml and "
                  "configs/mac8x8_requant.yaml: the 8x8 int8 array without and with the fused "
                  "epilogue, 8 output lanes)", "",
                  "Yosys on the unit alone. Tools: "
                  + ", ".join(f"{k} {v}" for k, v in tools.items()) + ". "
                  + (sec.get("fmax_note") or ""), "",
                  "| design | mult_bits | target | DSPs | LUTs | FFs | carry | BRAMs | Fmax MHz "
                  "(ECP5, seed 1) |", "|---|---|---|---|---|---|---|---|---|"]
        for r in res:
            lines.append(f"| {r.get('design', 'requant8')} | {r['mult_bits'] or '-'} | "
                         f"{r['target']} | {r['dsps']} | {r['luts']} | "
                         f"{r['ffs']} | {r['carry']} | {r['brams']} | "
                         f"{r['fmax_mhz'] if r['fmax_mhz'] is not None else '-'} |")
    return lines + [""]


def run(codes: int = 10 ** 5, synth: bool = True, fmax: bool = False) -> dict:
    """The whole section: ORT agreement, resources (``synth``), Fmax (``fmax``), targets."""
    import onnxruntime

    sec = {"onnxruntime": onnxruntime.__version__, "agreement": agreement(codes)}
    sec["resources"] = bench_resources(fmax=fmax) if synth else []
    sec["fmax_note"] = ("Fmax: nextpnr on LFE5U-85F-8 inside the registered shell, seed 1."
                        if fmax else "Fmax not measured in this run (`--requant-fmax` adds "
                        "nextpnr on ECP5).")
    sec["targets"] = targets(sec["agreement"])
    return sec
