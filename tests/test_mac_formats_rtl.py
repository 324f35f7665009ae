"""rtl tier: the MAC array with floating-point element and MX operands (decoded in each PE to
a sign, a mantissa and an exponent; the mantissas multiplied and the product aligned into the
exact fixed-point accumulator; MX: each block's exact sum scaled, rounded to fp32 and added to
the PE's fp32 running sum) in Verilator, code for code against the golden model, NaN/inf
codes and scales included."""

from __future__ import annotations

import numpy as np
import pytest

from generators.mac_array import family, gemm
from generators.mac_array.params import MacArrayParams
from sim.unit import simulate_many

from test_mac_formats import mx_operand

pytestmark = pytest.mark.rtl

OS, WS = "output_stationary", "weight_stationary"
CONFIGS = [  # a few configs in make test (each a Verilator build), the rest in make regress
    dict(rows=2, cols=3, a="mxfp4", b="mxfp8_e4m3", acc="fp32"),
    dict(rows=2, cols=3, a="fp8_e5m2", b="fp8_e4m3", acc="fp32"),
    pytest.param(dict(rows=3, cols=2, a="fp4_e2m1", b="int8", acc="fixed<16,15>",
                      overflow="sat", dataflow=WS, tile_m=4), marks=pytest.mark.regress),
    pytest.param(dict(rows=2, cols=2, a="mxint8", b="mxint8", acc="fp32"),
                 marks=pytest.mark.regress),
    pytest.param(dict(rows=3, cols=2, a="mxfp8_e5m2", b="mxfp6_e3m2", acc="fp32"),
                 marks=pytest.mark.regress),
    pytest.param(dict(rows=2, cols=2, a="mxfp6_e2m3", b="int8", acc="fp32"),
                 marks=pytest.mark.regress),
    pytest.param(dict(rows=2, cols=3, a="fp8_e4m3", b="mxfp4", acc="fp32"),
                 marks=pytest.mark.regress),
    pytest.param(dict(rows=2, cols=3, a="fp8_e4m3", b="fp8_e4m3", acc="fixed<40,22>"),
                 marks=pytest.mark.regress),
    pytest.param(dict(rows=2, cols=2, a="fp6_e2m3", b="fp6_e3m2", acc="fixed<24,17>"),
                 marks=pytest.mark.regress),
    pytest.param(dict(rows=3, cols=2, a="int8", b="fp4_e2m1", acc="fp32"),
                 marks=pytest.mark.regress),
    pytest.param(dict(rows=2, cols=2, a="fp8_e5m2", b="fp4_e2m1", acc="fixed<48,31>",
                      dataflow=WS, tile_m=3), marks=pytest.mark.regress),
    pytest.param(dict(rows=4, cols=4, a="int8", b="fp8_e4m3", acc="fixed<32,23>",
                      overflow="sat"), marks=pytest.mark.regress),
]


def _id(c):
    return "{rows}x{cols}-{a}-{b}".format(**c) + ("-ws" if c.get("dataflow") == WS else "")


def _codes(fmt, shape, rng, specials: bool):
    """Random codes with the extremes; NaN/inf codes (refused with a fixed-point acc) only
    with ``specials``, and then in a few elements (so most outputs stay finite)."""
    if fmt.kind == "fixed":
        c = rng.integers(fmt.min_code, fmt.max_code + 1, shape)
        c.flat[:2] = [fmt.min_code, fmt.max_code]
        return c
    allc = np.arange(1 << fmt.width)
    fin = allc[~(fmt.is_nan(allc) | fmt.is_inf(allc))]
    c = rng.choice(fin, shape)
    top = fmt.max_code_finite
    c.flat[:4] = [top, top | (1 << (fmt.width - 1)), 1, 0]   # ±max, smallest subnormal, 0
    spec = allc[fmt.is_nan(allc) | fmt.is_inf(allc)]
    if specials and spec.size and c.size > 8:
        pick = rng.choice(c.size, 3, replace=False)
        c.flat[pick] = rng.choice(spec, 3)
    return c


@pytest.mark.parametrize("cfg", CONFIGS, ids=[_id(c if isinstance(c, dict) else c.values[0])
                                              for c in CONFIGS])
def test_float_rtl_verilator(cfg, rng):
    safe = cfg["a"].replace("_", "") + cfg["b"].replace("_", "")
    p = MacArrayParams(name=f"macf_{safe}_{cfg.get('dataflow', OS)[0]}", **cfg)
    runs = []
    ks = (64, 96, 32) if p.mx else (23, 40, 1)   # MX: K a multiple of 32
    for (m, n, stall), k in zip(((2 * p.rows + 1, 2 * p.cols + 1, 0.0), (p.rows, p.cols, 0.3),
                                 (1, 1, 0.0)), ks, strict=True):
        fp32 = p.acc.kind != "fixed"
        arrays = {}
        for name, f, shape, axis in (("a", p.a, (m, k), 1), ("b", p.b, (k, n), 0)):
            if f.kind == "mx":
                arrays[name], arrays[name + "_scale"] = mx_operand(rng, f, shape, axis)
            else:
                arrays[name] = _codes(f, shape, rng, fp32)
        runs.append(dict(arrays=arrays, idle=stall, stall=stall, seed=m))
    results = simulate_many(family, p, runs, name=p.name)
    for r, res in zip(runs, results, strict=True):
        a, b = r["arrays"]["a"], r["arrays"]["b"]
        golden = gemm(p, a, b, r["arrays"].get("a_scale"), r["arrays"].get("b_scale"))
        mism = np.argwhere(res.outputs["c"] != golden)
        assert mism.size == 0, f"{len(mism)} mismatches, first at {tuple(mism[0])}"
        want = p.expected_cycles(a.shape[0], a.shape[1], b.shape[1])
        assert res.cycles == want if not r["stall"] else res.cycles >= want
