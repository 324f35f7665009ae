"""`make regress`: a long random sweep of array configurations and GEMM shapes in Verilator,
and the largest arrays. Not part of `make test`."""

from __future__ import annotations

import random

import numpy as np
import pytest

from generators.mac_array import family, gemm
from sim.unit import simulate

from mac_cases import make_params, random_operands

pytestmark = [pytest.mark.regress, pytest.mark.rtl]

FORMATS = ["int2", "int4", "uint4", "int8", "uint8", "int12", "int16", "uint16"]


def _random_config(seed: int) -> dict:
    r = random.Random(seed)
    a, b = r.choice(FORMATS), r.choice(FORMATS)
    wa, wb = int(a.lstrip("uint")), int(b.lstrip("uint"))
    signed = not (a.startswith("u") and b.startswith("u"))
    acc_w = wa + wb + r.choice([0, 1, 4, 8])
    return dict(rows=r.randint(1, 8), cols=r.randint(1, 8), a=a, b=b,
                acc=("int" if signed else "uint") + str(acc_w),
                overflow=r.choice(["wrap", "sat"]),
                dataflow=r.choice(["output_stationary", "weight_stationary"]),
                tile_m=r.choice([1, 3, 8, 64]))


@pytest.mark.parametrize("seed", range(24))
def test_random_configs(seed):
    cfg = _random_config(seed)
    p = make_params(**cfg)
    rng = np.random.default_rng(seed)
    for trial in range(4):
        m, k, n = (int(x) for x in rng.integers(1, 40, 3))
        a, b = random_operands(p, m, k, n, rng)
        idle, stall = (0.0, 0.0) if trial == 0 else (0.3, 0.3)
        res = simulate(family, p, {"a": a, "b": b}, idle=idle, stall=stall, seed=trial,
                       name=f"reg{seed}")
        assert np.array_equal(res.outputs["c"], gemm(p, a, b)), (cfg, m, k, n)
        if trial == 0:
            assert res.cycles == p.expected_cycles(m, k, n)


@pytest.mark.parametrize("dataflow", ["output_stationary", "weight_stationary"])
def test_32x32(dataflow):
    p = make_params(32, 32, dataflow=dataflow)
    rng = np.random.default_rng(32)
    a, b = random_operands(p, 70, 100, 65, rng)
    res = simulate(family, p, {"a": a, "b": b}, name="mac32x32")
    assert np.array_equal(res.outputs["c"], gemm(p, a, b))
    assert res.cycles == p.expected_cycles(70, 100, 65)
