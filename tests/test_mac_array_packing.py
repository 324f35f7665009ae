"""``packing: dsp48 | mult18`` (two MACs per multiplier): the config rule, the bit-level NumPy
model of the packed datapath against the golden model for every K up to ``max_k``, the
unchanged design of ``packing: none``, and the packed RTL in the Amaranth simulator and in
Verilator (more configurations in ``make regress``)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from generators.config import ConfigError, load_config, parse_config
from generators.generate import render
from generators.mac_array import family, gemm
from generators.mac_array import packing as pk
from sim.unit import simulate, simulate_many

from mac_cases import corner_operands, make_params, random_operands

ROOT = Path(__file__).resolve().parent.parent
OS, WS = "output_stationary", "weight_stationary"

# every (a, b) pair each packing takes, with an accumulator for it
PACKABLE = [
    ("dsp48", "int8", "int8", "int32"), ("dsp48", "int8", "uint8", "int20"),
    ("dsp48", "uint8", "int8", "int18"), ("dsp48", "uint8", "uint8", "uint16"),
    ("dsp48", "int4", "int4", "int8"),
    ("mult18", "int4", "int4", "int20"), ("mult18", "int8", "int4", "int16"),
    ("mult18", "uint8", "int4", "int14"), ("mult18", "int4", "uint4", "int9"),
    ("mult18", "int2", "int4", "int6"),
]


# -- the config rule -------------------------------------------------------------------------


@pytest.mark.parametrize("packing,a,b,acc", PACKABLE)
def test_packable_pairs_fit_their_multiplier(packing, a, b, acc):
    p = make_params(4, 4, a, b, acc, packing=packing)
    lim_b, lim_a, _ = pk.LIMITS[packing]
    assert pk.packed_b_width(p.a, p.b) <= lim_b and pk.shared_width(p.a) <= lim_a
    assert p.pcols == 2 and p.multipliers == 8 and p.macs_per_cycle == 16


@pytest.mark.parametrize("packing,a,b,want", [
    ("mult18", "int8", "int8", "mult18 cannot pack a: int8 x b: int8: two lanes need a "
     "25-bit x 8-bit product, more than an ECP5 MULT18X18D (18x18) (allowed: a x b in "
     "int4 x int4"),
    ("mult18", "int4", "int8", "; or packing: dsp48, which fits these formats, or none)"),
    ("dsp48", "int16", "int8", "dsp48 cannot pack a: int16 x b: int8"),
    ("dsp48", "int8", "int12", "(allowed: a x b in int8 x int8, int8 x uint8"),
])
def test_unpackable_pair_is_a_clear_error(packing, a, b, want, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(f"name: bad\nunit: mac_array\nrows: 2\ncols: 2\na: {a}\nb: {b}\n"
                    f"acc: int48\npacking: {packing}\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = str(err.value)
    assert "packing" in msg and want in msg, msg
    assert "\n" not in msg


def test_unknown_packing_is_refused(tmp_path):
    with pytest.raises(ConfigError) as err:
        parse_config({"name": "x", "unit": "mac_array", "rows": 2, "cols": 2, "a": "int8",
                      "b": "int8", "acc": "int32", "packing": "dsp58"}, "x.yaml")
    assert "packing" in str(err.value) and "dsp48" in str(err.value)


@pytest.mark.parametrize("stem", ["mac8x8", "mac4x4_int4x8_sat"])
def test_packing_none_keeps_design_and_hash(stem):
    """An explicit ``packing: none`` renders the committed rtl/ Verilog and manifest (design
    hash included) byte for byte."""
    import yaml

    raw = yaml.safe_load((ROOT / "configs" / f"{stem}.yaml").read_text())
    cfg = parse_config({**raw, "packing": "none"}, f"{stem}.yaml")
    text, manifest = render(cfg)
    committed = json.loads((ROOT / "rtl" / f"{stem}.json").read_text())
    assert manifest["design_hash"] == committed["design_hash"]
    assert text == (ROOT / "rtl" / f"{stem}.v").read_text()
    assert manifest == committed and "packing" not in manifest["config"]


def test_packed_design_differs_and_halves_the_multipliers():
    cfg = parse_config({"name": "m", "unit": "mac_array", "rows": 4, "cols": 4, "a": "int8",
                        "b": "int8", "acc": "int32", "packing": "dsp48"}, "m.yaml")
    text, manifest = render(cfg)
    assert manifest["config"]["packing"] == "dsp48"
    assert manifest["packing"] == "dsp48" and manifest["multipliers"] == 8
    # one wide multiplier module, 8 instances for 16 MACs
    assert [s["module"] for s in manifest["mul_modules"]] == ["tf_mulreg_s8xs25"]
    assert text.count("tf_pe_os2_") >= 8 and "tf_pe_os_" not in text
    base = parse_config({"name": "m", "unit": "mac_array", "rows": 4, "cols": 4, "a": "int8",
                         "b": "int8", "acc": "int32"}, "m.yaml")
    assert render(base)[1]["design_hash"] != manifest["design_hash"]


# -- the bit-level model: every K up to max_k --------------------------------------------------


def _every_k_exact(p, a, b):
    """packed_gemm for every prefix K against the golden model of that prefix."""
    got = pk.packed_gemm(p, a, b, every_k=True)
    exact = np.cumsum(a[:, :, None].astype(object) * b[None, :, :].astype(object), axis=1)
    want = p.acc.apply_overflow(np.moveaxis(exact, 1, 0), p.overflow)
    return got, want


@pytest.mark.parametrize("packing,a,b,acc", PACKABLE)
@pytest.mark.parametrize("overflow", ["wrap", "sat"])
def test_model_every_k_up_to_max_k_extremes(packing, a, b, acc, overflow):
    """All-min x all-min (and the other extreme pairs) for every K up to max_k: the packed
    lanes, split and corrected each cycle, equal the golden model code for code."""
    max_k = 4096
    p = make_params(1, 3, a, b, acc, packing=packing, overflow=overflow, max_k=max_k)
    for av, bv in [(p.a.min_code, p.b.min_code), (p.a.max_code, p.b.max_code),
                   (p.a.min_code, p.b.max_code), (p.a.max_code, p.b.min_code)]:
        # lane 0 and lane 1 hold different extremes too (the borrow of a negative lane 0)
        aa = np.full((2, max_k), av, np.int64)
        bb = np.stack([np.full(max_k, bv), np.full(max_k, p.b.min_code),
                       np.full(max_k, bv)], axis=1).astype(np.int64)
        aa[1] = p.a.max_code if av == p.a.min_code else p.a.min_code
        got, want = _every_k_exact(p, aa, bb)
        assert np.array_equal(got, want.astype(np.int64)), (av, bv)
        assert np.array_equal(got[-1], gemm(p, aa, bb))


def test_model_all_min_over_the_default_max_k():
    """int8 x int8 all-min over K = 65536 (the default max_k, int32 wrap and int48 sat)."""
    for acc, overflow in (("int32", "wrap"), ("int48", "sat")):
        p = make_params(1, 2, "int8", "int8", acc, packing="dsp48", overflow=overflow)
        a = np.full((1, p.max_k), -128, np.int64)
        b = np.full((p.max_k, 2), -128, np.int64)
        got, want = _every_k_exact(p, a, b)
        assert np.array_equal(got, want.astype(np.int64))


@pytest.mark.parametrize("packing,a,b,acc", PACKABLE)
def test_model_random_codes_every_k(packing, a, b, acc, rng):
    for overflow in ("wrap", "sat"):
        p = make_params(3, 5, a, b, acc, packing=packing, overflow=overflow, max_k=300)
        aa, bb = random_operands(p, 4, 300, 7, rng)
        got, want = _every_k_exact(p, aa, bb)
        assert np.array_equal(got, want.astype(np.int64))


def test_split_is_the_correction():
    """The split of one wide product: lane 1 is the high field plus the low field's sign."""
    p = make_params(1, 2, "int4", "int4", "int8", packing="mult18")
    a = np.arange(-8, 8)
    w0, w1 = np.meshgrid(np.arange(-8, 8), np.arange(-8, 8))
    words = pk.pack_b(p.a, p.b, w0.ravel(), w1.ravel())
    prod = a[:, None] * words[None, :]
    l0, l1 = pk.split_product(p.a, p.b, prod)
    assert np.array_equal(l0, a[:, None] * w0.ravel()[None, :])
    assert np.array_equal(l1, a[:, None] * w1.ravel()[None, :])
    # without the correction, lane 1 is off by one exactly where lane 0 is negative
    raw = prod >> pk.lane_shift(p.a, p.b)
    assert np.array_equal(raw - l1, -(l0 < 0).astype(int))


# -- RTL ---------------------------------------------------------------------------------------

SIM_CONFIGS = [
    dict(rows=2, cols=4, packing="dsp48"),
    dict(rows=3, cols=5, a="int8", b="uint8", acc="int20", overflow="sat", packing="dsp48",
         dataflow=WS, tile_m=4),
    dict(rows=2, cols=3, a="int4", b="int4", acc="int12", overflow="sat", packing="mult18"),
    dict(rows=1, cols=2, a="int8", b="int4", acc="int14", packing="mult18", dataflow=WS,
         tile_m=1),
]


def _id(c):
    return "{rows}x{cols}-".format(**c) + "-".join(
        str(v) for k, v in c.items() if k not in ("rows", "cols"))


@pytest.mark.parametrize("cfg", SIM_CONFIGS, ids=_id)
def test_amaranth_sim_packed(cfg, rng):
    p = make_params(**cfg)
    for m, k, n in [(1, 1, 1), (p.rows + 1, 6, 2 * p.cols + 1)]:
        a, b = random_operands(p, m, k, n, rng)
        res = simulate(family, p, {"a": a, "b": b}, sim="amaranth")
        assert np.array_equal(res.outputs["c"], gemm(p, a, b)), (m, k, n)
        assert res.cycles == p.expected_cycles(m, k, n)
    a, b = corner_operands(p, "allmin_longk", rng)
    a, b = a[:, :30], b[:30]
    res = simulate(family, p, {"a": a, "b": b}, sim="amaranth", idle=0.3, stall=0.4, seed=2)
    assert np.array_equal(res.outputs["c"], gemm(p, a, b))


# make test: one of each packing and dataflow; make regress: more (below)
RTL_CONFIGS = [
    dict(rows=4, cols=4, packing="dsp48", overflow="sat", acc="int24", max_k=400),
    dict(rows=2, cols=5, a="int8", b="int4", acc="int16", overflow="sat", packing="mult18",
         dataflow=WS, tile_m=3),
]
REGRESS_CONFIGS = [
    dict(rows=3, cols=5, a="int8", b="uint8", acc="int20", packing="dsp48", dataflow=WS,
         tile_m=8),
    dict(rows=4, cols=4, a="int4", b="int4", acc="int12", packing="mult18"),
    dict(rows=8, cols=8, packing="dsp48"),
    dict(rows=8, cols=8, a="int4", b="int4", acc="int20", packing="mult18", dataflow=WS),
]


def _rtl_check(cfg, rng, idle_runs=3):
    p = make_params(**cfg)
    runs = [dict(arrays=dict(zip("ab", random_operands(p, 2 * p.rows + 1, 37,
                                                         3 * p.cols - 1, rng), strict=True)),
                 exact=True)]
    # all-min x all-min over the longest K, the other extremes, K = 1: idle and back-pressure
    for i, which in enumerate(("allmin_longk", "minmax_mixed", "k1_ragged")[:idle_runs]):
        a, b = corner_operands(p, which, rng)
        if which == "allmin_longk":
            k = min(p.max_k, 400)
            a, b = np.resize(a, (a.shape[0], k)), np.resize(b, (k, b.shape[1]))
        runs.append(dict(arrays={"a": a, "b": b}, idle=0.25, stall=0.35, seed=i, exact=False))
    results = simulate_many(family, p, [{k: v for k, v in r.items() if k != "exact"}
                                        for r in runs], name=f"pk{p.rows}x{p.cols}")
    for r, res in zip(runs, results, strict=True):
        a, b = r["arrays"]["a"], r["arrays"]["b"]
        mism = np.argwhere(res.outputs["c"] != gemm(p, a, b))
        assert mism.size == 0, f"{len(mism)} mismatches, first at {tuple(mism[0])}"
        want = p.expected_cycles(a.shape[0], a.shape[1], b.shape[1])
        assert res.cycles == want if r["exact"] else res.cycles >= want


@pytest.mark.rtl
@pytest.mark.parametrize("cfg", RTL_CONFIGS, ids=_id)
def test_rtl_verilator_packed(cfg, rng):
    _rtl_check(cfg, rng)


def _random_packed_config(seed: int) -> dict:
    r = random.Random(seed)
    packing, a, b, acc = r.choice(PACKABLE)
    wide = acc[:1] == "u"
    acc = ("uint" if wide else "int") + str(int(acc.lstrip("uint")) + r.choice([0, 4, 12]))
    return dict(rows=r.randint(1, 8), cols=r.randint(2, 9), a=a, b=b, acc=acc,
                packing=packing, overflow=r.choice(["wrap", "sat"]),
                dataflow=r.choice([OS, WS]), tile_m=r.choice([1, 3, 8, 64]),
                max_k=r.choice([64, 400, 65536]))


@pytest.mark.regress
@pytest.mark.rtl
@pytest.mark.parametrize("cfg", REGRESS_CONFIGS, ids=_id)
def test_regress_verilator_packed(cfg, rng):
    _rtl_check(cfg, rng)


@pytest.mark.regress
@pytest.mark.rtl
@pytest.mark.parametrize("seed", range(16))
def test_regress_random_packed_configs(seed):
    _rtl_check(_random_packed_config(seed), np.random.default_rng(seed))


@pytest.mark.regress
@pytest.mark.rtl
@pytest.mark.parametrize("dataflow", [OS, WS])
@pytest.mark.parametrize("packing,a,b,acc", [("dsp48", "int8", "int8", "int32"),
                                             ("mult18", "int4", "int4", "int20")])
def test_regress_16x16_packed(dataflow, packing, a, b, acc):
    p = make_params(16, 16, a, b, acc, packing=packing, dataflow=dataflow)
    rng = np.random.default_rng(16)
    aa, bb = random_operands(p, 40, 100, 37, rng)
    res = simulate(family, p, {"a": aa, "b": bb}, name="pk16x16")
    assert np.array_equal(res.outputs["c"], gemm(p, aa, bb))
    assert res.cycles == p.expected_cycles(40, 100, 37)


@pytest.mark.parametrize("dataflow", [OS, WS])
def test_amaranth_sim_packed_with_requant_epilogue(dataflow, rng):
    """A packed array in lock step with the fused requant epilogue (its own row enables), an
    odd column count (the last column on a PE of its own), idle inputs and back-pressure."""
    from generators.config import config_to_dict

    base = config_to_dict(load_config(ROOT / "configs" / "mac8x8_requant.yaml"))
    cfg = parse_config({**base, "name": "pk_rq", "rows": 2, "cols": 3, "dataflow": dataflow,
                        "tile_m": 3, "packing": "dsp48"}, "test")
    for m, k, n in [(5, 6, 7)]:
        arr = family.check_inputs(cfg, {
            "a": rng.integers(-128, 128, (m, k)), "b": rng.integers(-128, 128, (k, n)),
            "bias": rng.integers(-(1 << 16), 1 << 16, n),
            "multiplier": rng.integers(1 << 30, 1 << 31, n), "shift": rng.integers(-12, 1, n)})
        want = family.golden(cfg, arr)["c"]
        r = simulate(family, cfg, arr, sim="amaranth")
        assert np.array_equal(r.outputs["c"], want) and r.cycles == family.expected_cycles(
            cfg, arr)
        r = simulate(family, cfg, arr, sim="amaranth", idle=0.3, stall=0.4, seed=3)
        assert np.array_equal(r.outputs["c"], want)
