"""rtl tier: the softmax and GELU Verilog of configs/softmax64.yaml, gelu8.yaml and gelu16.yaml
under cocotb + Verilator (one build per config, shared with the CLI tests): code for code
against the golden models (every 8-bit GELU input; random and adversarial softmax rows of
mixed lengths), cycle counts against ``expected_cycles``, then idle inputs and back-pressure."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from nonlin_cases import RowBatch, golden_rows
from test_gelu_sim import poly_corners

from generators.config import config_to_dict, load_config
from generators.gelu import family as gelu_family
from generators.gelu import gelu
from generators.gelu.model import all_inputs
from generators.softmax import family as softmax_family
from generators.softmax.stimuli import adversarial_rows
from sim.unit import simulate, simulate_many

pytestmark = pytest.mark.rtl

ROOT = Path(__file__).resolve().parent.parent


def _load(name):
    cfg = load_config(ROOT / "configs" / f"{name}.yaml")
    return cfg, cfg.name, config_to_dict(cfg)


def test_softmax64_verilator(rng):
    cfg, name, plain = _load("softmax64")
    p = softmax_family.params(cfg)
    batch = RowBatch()
    rows = adversarial_rows(p, rng) + [rng.integers(-128, 128, int(n))
                                       for n in rng.integers(1, 65, 40)]
    # ragged rows, then with idle input and output back-pressure: one simulator run, the
    # design reset between them
    res, res_idle = simulate_many(batch, p, [
        dict(arrays={"rows": rows}),
        dict(arrays={"rows": rows[::3]}, idle=0.3, stall=0.4, seed=7)],
        name=name, config=plain)
    for got, want, row in zip(res.outputs["rows"], golden_rows(p, rows), rows, strict=True):
        assert np.array_equal(got, want), row.tolist()
    assert res.cycles == batch.expected_cycles(p, {"rows": rows})
    # sustained throughput: 32 full rows, one element per cycle after the first row's passes
    x = rng.integers(-128, 128, (32, 64))
    res = simulate(softmax_family, p, {"x": x}, name=name, config=plain)
    assert np.array_equal(res.outputs["y"], softmax_family.golden(p, {"x": x})["y"])
    assert res.cycles == p.expected_cycles([64] * 32) == 32 * 64 + 2 * 64 + p.sum_depth \
        + p.div_depth - 1
    for got, want in zip(res_idle.outputs["rows"], golden_rows(p, rows[::3]), strict=True):
        assert np.array_equal(got, want)
    assert res_idle.cycles >= batch.expected_cycles(p, {"rows": rows[::3]})


def test_gelu8_every_input_verilator():
    cfg, name, plain = _load("gelu8")
    p = gelu_family.params(cfg)
    x = all_inputs(p)
    res, res_idle = simulate_many(gelu_family, p, [
        dict(arrays={"x": x}), dict(arrays={"x": x}, idle=0.3, stall=0.4, seed=3)],
        name=name, config=plain)
    assert np.array_equal(res.outputs["y"], gelu(p, x))
    assert res.cycles == gelu_family.expected_cycles(p, {"x": x}) == 256 + 2
    assert np.array_equal(res_idle.outputs["y"], gelu(p, x))


def test_gelu16_verilator(rng):
    cfg, name, plain = _load("gelu16")
    p = gelu_family.params(cfg)
    x = np.concatenate([poly_corners(p), rng.integers(-32768, 32768, 3000)])
    res, res_idle = simulate_many(gelu_family, p, [
        dict(arrays={"x": x}), dict(arrays={"x": x[:500]}, idle=0.3, stall=0.4, seed=4)],
        name=name, config=plain)
    assert np.array_equal(res.outputs["y"], gelu(p, x))
    assert res.cycles == gelu_family.expected_cycles(p, {"x": x})
    assert np.array_equal(res_idle.outputs["y"], gelu(p, x[:500]))
