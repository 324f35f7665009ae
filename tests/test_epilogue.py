"""The fused requant epilogue of mac_array and sparse_chain (config block ``requant``): golden =
the family's golden then numerics.requantize_fixed, configs without the block unchanged, RTL
equal to golden code for code with exact cycles (Amaranth simulator for both dataflows and
the chain; Verilator for configs/mac8x8_requant.yaml), tensorfab run, model:// board with a
split problem, and bad inputs. With mult_bits 16 each lane's product is split over one 18 x 18
multiplier and LUT logic (Amaranth simulator; Verilator under regress)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from cli_helpers import tf

from generators.config import config_to_dict, load_config, parse_config
from generators.errors import ArrayError, ConfigError
from generators.mac_array import family as mac
from generators.numerics import Format, requantize_fixed
from generators.sparse_chain import family as sparse
from sim.unit import simulate, simulate_many

ROOT = Path(__file__).resolve().parent.parent
I32_MIN, I32_MAX = -(1 << 31), (1 << 31) - 1
MAC_RQ = ROOT / "configs" / "mac8x8_requant.yaml"


def _mac(**keys):
    base = config_to_dict(load_config(MAC_RQ))
    return parse_config({**base, "name": "epi_t", **keys}, "test")


def _params(rng, n, mults=None, shifts=None, **scalars):
    return {"bias": rng.integers(-(1 << 16), 1 << 16, n),
            "multiplier": rng.integers(1 << 30, 1 << 31, n) if mults is None else mults,
            "shift": rng.integers(-12, 1, n) if shifts is None else shifts, **scalars}


def _sparse_w(rng, o, k, n, m):
    w = rng.integers(-128, 128, (o, k))
    for r in range(o):
        for g in range(0, k, m):
            idx = rng.permutation(np.arange(g, min(k, g + m)))
            w[r, idx[n:]] = 0
    return w


def test_golden_is_gemm_then_requantize_fixed(rng):
    cfg = load_config(MAC_RQ)
    a, b = rng.integers(-128, 128, (9, 40)), rng.integers(-128, 128, (40, 11))
    par = _params(rng, 11, zero_point=np.int64(-3), act_max=np.int64(90))
    got = mac.golden(cfg, mac.check_inputs(cfg, {"a": a, "b": b, **par}))["c"]
    acc = a.astype(np.int64) @ b    # int32 never overflows here
    want = requantize_fixed(acc, bias=par["bias"], multiplier=par["multiplier"],
                            shift=par["shift"], zero_point=-3, act_min=-128, act_max=90,
                            rounding="double", out_fmt=Format.parse("int8"),
                            acc_fmt=Format.parse("int32"), overflow="wrap")
    assert np.array_equal(got, want) and got.min() >= -128 and got.max() <= 90
    # the sparse chain: per row of y
    sc = parse_config({**config_to_dict(load_config(ROOT / "configs" / "sparse16.yaml")),
                       "requant": {"rounding": "single", "per": "tensor"}}, "t")
    w, x = _sparse_w(rng, 6, 20, 2, 4), rng.integers(-128, 128, (20, 5))
    arr = sparse.check_inputs(sc, {"w": w, "x": x, "bias": rng.integers(-99, 99, 6),
                                   "multiplier": np.int64(1 << 30), "shift": np.int64(-4)})
    want = requantize_fixed((w @ x).T, bias=arr["bias"], multiplier=1 << 30, shift=-4,
                            zero_point=0, act_min=-128, act_max=127, rounding="single",
                            out_fmt=Format.parse("int8"), acc_fmt=Format.parse("int32"),
                            overflow="wrap").T
    assert np.array_equal(sparse.golden(sc, arr)["y"], want)


def test_without_the_block_nothing_changes():
    from generators.generate import render

    cfg = load_config(ROOT / "configs" / "mac8x8.yaml")
    assert "requant" not in config_to_dict(cfg)
    text, manifest = render(cfg)
    assert text == (ROOT / "rtl" / "mac8x8.v").read_text()
    import json
    ref = json.loads((ROOT / "rtl" / "mac8x8.json").read_text())
    assert manifest["design_hash"] == ref["design_hash"] and "requant" not in manifest
    # with the block: another design, a p_stream, c in the out format
    text2, man2 = render(load_config(MAC_RQ))
    assert man2["design_hash"] != ref["design_hash"]
    assert "p_stream" in man2["streams"] and man2["latency"] == 8 + 4 + 11


def _corner_arrays(rng, n):
    """Corners of the requant unit's tests on few channels: multipliers 0, 2**30, 2**31-1;
    shifts -31, -1, 0, 30; biases at INT32 extremes."""
    mults = np.array([0, 1 << 30, I32_MAX, 1 << 30, I32_MAX, 1 << 29, 1 << 30, 12345][:n])
    shifts = np.array([-31, -1, 0, 30, -5, 1, -30, -16][:n])
    bias = np.array([I32_MIN, I32_MAX, 0, -1, 1, 7, -7, 0][:n])
    return {"bias": bias, "multiplier": mults, "shift": shifts}


@pytest.mark.parametrize("dataflow", ["output_stationary", "weight_stationary"])
def test_mac_epilogue_amaranth(dataflow, rng):
    cfg = _mac(rows=3, cols=2, dataflow=dataflow, tile_m=4)
    runs = []
    for m, k, n in [(5, 7, 5), (9, 3, 3), (1, 1, 1)]:
        a, b = rng.integers(-128, 128, (m, k)), rng.integers(-128, 128, (k, n))
        runs.append(mac.check_inputs(cfg, {"a": a, "b": b, **_params(rng, n)}))
        runs.append(mac.check_inputs(cfg, {"a": a, "b": b, **_corner_arrays(rng, n),
                                           "zero_point": np.int64(127)}))
        runs.append(mac.check_inputs(cfg, {"a": a, "b": b, **_params(rng, n),
                                           "act_min": np.int64(5), "act_max": np.int64(5)}))
    for arr in runs:
        want = mac.golden(cfg, arr)["c"]
        r = simulate(mac, cfg, arr, sim="amaranth")
        assert np.array_equal(r.outputs["c"], want)
        assert r.cycles == mac.expected_cycles(cfg, arr)
        r = simulate(mac, cfg, arr, sim="amaranth", idle=0.3, stall=0.4, seed=3)
        assert np.array_equal(r.outputs["c"], want) and r.cycles > mac.expected_cycles(cfg, arr)


def _split_runs(cfg, rng, shapes):
    """Runs of a mult_bits 16 epilogue: random and corner parameters (multipliers multiples
    of 2**16), accumulators from random a and b."""
    k = 32 - cfg.requant.mult_bits
    runs = []
    for m, kk, n in shapes:
        a, b = rng.integers(-128, 128, (m, kk)), rng.integers(-128, 128, (kk, n))
        par = _params(rng, n, zero_point=np.int64(-7))
        par["multiplier"] = par["multiplier"] >> k << k
        runs.append(mac.check_inputs(cfg, {"a": a, "b": b, **par}))
        corner = {key: np.resize(v, n) for key, v in _corner_arrays(rng, 8).items()}
        corner["multiplier"] = corner["multiplier"] >> k << k
        runs.append(mac.check_inputs(cfg, {"a": a, "b": b, **corner,
                                           "zero_point": np.int64(127)}))
    return runs


def _split_cfg(acc):
    return _mac(rows=2, cols=3, acc=acc, requant={"out": "int8", "rounding": "double",
                                                  "per": "channel", "mult_bits": 16})


@pytest.mark.parametrize("acc", ["int24", pytest.param("int32", marks=pytest.mark.regress)])
def test_mac_epilogue_split_product_amaranth(acc, rng):
    """mult_bits 16: each lane's product is split over one 18 x 18 multiplier and LUT logic
    (generators/requant/widemul.py), as many stages as mult_bits 32's sum of four hard
    partial products; exact, with exact cycle counts."""
    cfg = _split_cfg(acc)
    assert cfg.latency == _mac(rows=2, cols=3, acc=acc).latency
    assert cfg.epilogue.latency == 1 + 10
    for arr in _split_runs(cfg, rng, [(5, 7, 5), (1, 3, 3)]):
        want = mac.golden(cfg, arr)["c"]
        r = simulate(mac, cfg, arr, sim="amaranth")
        assert np.array_equal(r.outputs["c"], want)
        assert r.cycles == mac.expected_cycles(cfg, arr)


@pytest.mark.rtl
@pytest.mark.regress
def test_mac_epilogue_split_product_verilator(rng):
    cfg = _split_cfg("int24")
    runs = _split_runs(cfg, rng, [(9, 5, 7), (4, 2, 3), (2, 9, 12)])
    jobs = [dict(arrays=r) for r in runs] + [dict(arrays=r, idle=0.3, stall=0.4, seed=i)
                                             for i, r in enumerate(runs)]
    res = simulate_many(mac, cfg, jobs, name="epi_split", config=config_to_dict(cfg))
    for job, r in zip(jobs, res, strict=True):
        assert np.array_equal(r.outputs["c"], mac.golden(cfg, job["arrays"])["c"])
        expected = mac.expected_cycles(cfg, job["arrays"])
        assert r.cycles == expected if "idle" not in job else r.cycles > expected


def test_sparse_epilogue_amaranth(rng):
    base = config_to_dict(load_config(ROOT / "configs" / "sparse16.yaml"))
    cfg = parse_config({**base, "length": 4, "name": "t", "requant": {
        "out": "uint8", "rounding": "single", "mult_bits": 16}}, "t")
    for o, k, b in [(5, 9, 3), (2, 20, 4)]:
        w, x = _sparse_w(rng, o, k, 2, 4), rng.integers(-128, 128, (k, b))
        arr = sparse.check_inputs(cfg, {"w": w, "x": x, **_params(
            rng, o, mults=rng.integers(1 << 14, 1 << 15, o) << 16), "zero_point": np.int64(9)})
        want = sparse.golden(cfg, arr)["y"]
        for idle, stall in ((0, 0), (0.3, 0.4)):
            r = simulate(sparse, cfg, arr, sim="amaranth", idle=idle, stall=stall, seed=1)
            assert np.array_equal(r.outputs["y"], want)
            if not idle:
                assert r.cycles == sparse.expected_cycles(cfg, arr)


@pytest.mark.rtl
def test_mac8x8_requant_verilator(rng):
    cfg = load_config(MAC_RQ)
    runs = []
    for m, k, n in [(16, 9, 20), (3, 1, 8), (8, 30, 64)]:
        a, b = rng.integers(-128, 128, (m, k)), rng.integers(-128, 128, (k, n))
        runs.append(mac.check_inputs(cfg, {"a": a, "b": b, **_params(rng, n)}))
        corner = {key: np.resize(v, n) for key, v in _corner_arrays(rng, 8).items()}
        runs.append(mac.check_inputs(cfg, {"a": a, "b": b, **corner,
                                           "zero_point": np.int64(-128)}))
    jobs = [dict(arrays=r) for r in runs] + [dict(arrays=r, idle=0.3, stall=0.4, seed=i)
                                             for i, r in enumerate(runs)]
    res = simulate_many(mac, cfg, jobs, name=cfg.name, config=config_to_dict(cfg))
    for job, r in zip(jobs, res, strict=True):
        assert np.array_equal(r.outputs["c"], mac.golden(cfg, job["arrays"])["c"])
        expected = mac.expected_cycles(cfg, job["arrays"])
        assert r.cycles == expected if "idle" not in job else r.cycles > expected


@pytest.mark.rtl
@pytest.mark.regress
def test_sparse_epilogue_verilator(rng):
    """The sparse chain's epilogue in Verilator (make regress: the Amaranth simulator checks
    the same RTL in make test): double rounding per row of y, corner parameters, every mode,
    with idle cycles and back-pressure."""
    base = config_to_dict(load_config(ROOT / "configs" / "sparse16.yaml"))
    cfg = parse_config({**base, "length": 8, "name": "sparse8_rq", "requant": {
        "out": "int8", "rounding": "double", "per": "channel"}}, "t")
    jobs = []
    for i, (mode, n) in enumerate([("2:4", 2), ("1:4", 1), ("4:4", 4), ("2:4", 2)]):
        o, k, b = (7, 40, 5) if i % 2 else (16, 16, 3)
        w, x = _sparse_w(rng, o, k, n, 4), rng.integers(-128, 128, (k, b))
        par = _params(rng, o) if i < 2 else {
            key: np.resize(v, o) for key, v in _corner_arrays(rng, 8).items()}
        arr = sparse.check_inputs(cfg, {"w": w, "x": x, **par}, mode=mode)
        jobs.append(dict(arrays=arr, opts={"mode": mode}))
        jobs.append(dict(arrays=arr, opts={"mode": mode}, idle=0.3, stall=0.4, seed=i))
    res = simulate_many(sparse, cfg, jobs, name=cfg.name, config=config_to_dict(cfg))
    for job, r in zip(jobs, res, strict=True):
        mode = job["opts"]["mode"]
        want = sparse.golden(cfg, job["arrays"], mode=mode)["y"]
        assert np.array_equal(r.outputs["y"], want), mode
        expected = sparse.expected_cycles(cfg, job["arrays"], mode=mode)
        assert r.cycles == expected if "idle" not in job else r.cycles > expected


def test_run_golden_with_the_arrays_and_bad_ones(tmp_path, rng):
    a, b = rng.integers(-128, 128, (5, 6)), rng.integers(-128, 128, (6, 10))
    par = _params(rng, 10, zero_point=np.int64(4))
    np.savez(tmp_path / "in.npz", a=a, b=b, **par)

    def run(inputs):
        return tf("run", MAC_RQ, "--inputs", inputs, "--out", tmp_path / "out.npz", cwd=ROOT)

    r = run(tmp_path / "in.npz")
    assert r.returncode == 0, r.stderr
    cfg = load_config(MAC_RQ)
    want = mac.golden(cfg, mac.check_inputs(cfg, {"a": a, "b": b, **par}))["c"]
    assert np.array_equal(np.load(tmp_path / "out.npz")["c"], want)
    bad = [({"multiplier": np.full(10, 1 << 31)}, "multiplier: value 2147483648 at index 0"),
           ({"shift": np.full(10, 31)}, "shift: value 31 at index 0"),
           ({"bias": np.zeros(3, np.int64)}, "bias: shape (3,)"),
           ({"zero_point": np.int64(200)}, "zero_point: value 200"),
           ({"act_min": np.int64(5), "act_max": np.int64(4)}, "act_min: 5 > act_max 4")]
    for change, text in bad:
        np.savez(tmp_path / "bad.npz", a=a, b=b, **{**par, **change})
        r = run(tmp_path / "bad.npz")
        assert r.returncode == 2 and text in r.stderr and len(r.stderr.strip().splitlines()) == 1, \
            r.stderr
    # the unit without the block refuses the arrays
    np.savez(tmp_path / "plain.npz", a=a, b=b, bias=par["bias"])
    r = tf("run", ROOT / "configs" / "mac8x8.yaml", "--inputs", tmp_path / "plain.npz", "--out",
           tmp_path / "o.npz", cwd=ROOT)
    assert r.returncode == 2 and "unexpected array 'bias'" in r.stderr


def test_bad_configs():
    for keys, text in [({"acc": "int33"}, "requant: needs acc intN with N <= 32"),
                       ({"requant": {"out": "int32"}}, "requant.out"),
                       ({"requant": {"rounding": "trn", "mult_bits": 16}}, "mult_bits")]:
        with pytest.raises(ConfigError, match=text.replace("(", r"\(")):
            _mac(**keys)
    cfg = load_config(MAC_RQ)
    with pytest.raises(ArrayError, match="b: N = 300 output channels exceed"):
        mac.check_inputs(cfg, {"a": np.zeros((1, 1), int), "b": np.zeros((1, 300), int),
                               "multiplier": np.int64(1 << 30)})


def test_model_board_gemm_with_requant_split(rng, tmp_path):
    import yaml

    from host import open_board

    design = tmp_path / "d.yaml"
    design.write_text(yaml.safe_dump({"name": "d", "board": "ulx3s", "buffer_bytes": 4096,
                                      "units": [config_to_dict(load_config(MAC_RQ))]}))
    a, b = rng.integers(-128, 128, (40, 20)), rng.integers(-128, 128, (20, 50))
    par = _params(rng, 50, zero_point=np.int64(-7))
    cfg = load_config(MAC_RQ)
    want = mac.golden(cfg, mac.check_inputs(cfg, {"a": a, "b": b, **par}))["c"]
    with open_board(f"model://{design}", progress=False) as board:
        got = board.gemm(a, b, requant=par)
        assert board.last_run["runs"] > 1   # split: per-column parameters cut with b
        assert np.array_equal(got, want)
        with pytest.raises(ArrayError, match="requant: unexpected array 'scale'"):
            board.gemm(a, b, requant={"scale": 1})
    plain = ROOT / "configs" / "mac8x8.yaml"
    with open_board(f"model://{plain}", progress=False) as board:
        with pytest.raises(Exception, match="has no requant epilogue") as err:
            board.gemm(a, b, requant=par)
        assert "\n" not in str(err.value)
