"""rtl tier: the sparse chain's emitted Verilog under cocotb + Verilator in every mode, against
the golden model, with cycle counts checked against ``expected_cycles`` (one build per config;
the runs of all modes share one simulator start, the mode changing from beat to beat)."""

from __future__ import annotations

import numpy as np
import pytest
from sparse_cases import Batch, corner_operands, make_params, random_operands

from generators.sparse_chain import family, matmul
from sim.unit import simulate

pytestmark = pytest.mark.rtl

CONFIGS = [
    # the parameters of configs/sparse16.yaml, so the CLI test reuses this build
    dict(length=16, m=4, modes=("2:4", "1:4", "4:4"), name="sparse16"),
    dict(length=6, m=2, modes=("1:2", "2:2"), w="int4", x="int8", acc="int14", overflow="sat"),
    dict(length=8, m=8, modes=("2:8", "1:8", "8:8"), w="int16", x="int16", acc="int40",
         overflow="sat", max_k=1024),
    # no 1:m mode: x_lanes = 12 (2:4) < length * m; stage 6 holds no slot in 3:4
    dict(length=7, m=4, modes=("3:4", "2:4", "4:4"), w="int8", x="uint8", acc="int24"),
    # shorter than N: 8:8 spans 3 weight beats per activation beat, 4:8 spans 2, 2:8 none
    dict(length=3, m=8, modes=("8:8", "4:8", "2:8"), w="int8", x="int8", acc="int24",
         overflow="sat", max_k=1024),
]


def _id(c):
    return f"L{c['length']}-m{c['m']}-" + "-".join(
        str(v) for k, v in c.items() if k not in ("length", "m", "modes", "name"))


def _check(p, runs, res):
    for (w, x, mode), y in zip(runs, res.outputs["y"], strict=True):
        golden = matmul(p, w, x)
        mism = np.argwhere(y != golden)
        assert mism.size == 0, f"{mode} {w.shape}: {len(mism)} mismatches at {tuple(mism[0])}"


@pytest.mark.parametrize("cfg", CONFIGS, ids=_id)
def test_rtl_verilator_every_mode(cfg, rng):
    p = make_params(**cfg)
    batch = Batch()
    # one mode alone, through the family itself: exact cycle count
    mode = p.modes[-1]
    o, k, b = 5, 3 * p.k_per_pass(mode) + 3, 3
    w, x = random_operands(p, mode, o, k, b, rng)
    res = simulate(family, p, {"w": w, "x": x}, name=p.name, mode=mode)
    assert np.array_equal(res.outputs["y"], matmul(p, w, x))
    assert res.cycles == p.expected_cycles(o, k, b, mode)
    # every mode back to back, random values and indices, ragged K, K = 1: no stalls, exact
    runs = []
    for mode in p.modes:
        runs.append((*random_operands(p, mode, 4, 2 * p.k_per_pass(mode) + 1, 3, rng), mode))
        runs.append((*corner_operands(p, mode, "k1", rng), mode))
    res = simulate(batch, p, {"runs": runs}, name=p.name)
    _check(p, runs, res)
    assert res.cycles == batch.expected_cycles(p, {"runs": runs})
    # overflow corners over a long K and all-zero groups, with idle inputs and back-pressure
    runs = [(*corner_operands(p, mode, which, rng, cap=1024), mode) for mode in p.modes
            for which in ("allmin_longk", "minmax_mixed", "zero_groups")]
    res = simulate(batch, p, {"runs": runs}, name=p.name, idle=0.25, stall=0.35, seed=3)
    _check(p, runs, res)
    assert res.cycles >= batch.expected_cycles(p, {"runs": runs})
