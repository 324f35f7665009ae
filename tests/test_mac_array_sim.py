"""Amaranth-simulator tier: the MAC array's Amaranth design, stream by stream, against the
golden model, with cycle counts checked against ``expected_cycles``."""

from __future__ import annotations

import numpy as np
import pytest

from generators.mac_array import family, gemm
from sim.unit import simulate

from mac_cases import CORNERS, corner_operands, make_params, random_operands

CONFIGS = [
    dict(rows=1, cols=1),
    # passes 2 beats apart re-read the row written 2 beats before (the buffer's read-ahead)
    dict(rows=1, cols=1, dataflow="weight_stationary", tile_m=1),
    dict(rows=2, cols=3, a="int4", b="int8", acc="int12", overflow="sat"),
    dict(rows=3, cols=2, a="uint8", b="int8", acc="int18", dataflow="weight_stationary",
         tile_m=3),
    dict(rows=2, cols=2, a="int16", b="int16", acc="int48", overflow="sat",
         dataflow="weight_stationary", tile_m=2),
    dict(rows=1, cols=4, a="uint4", b="uint4", acc="uint9", overflow="sat",
         dataflow="weight_stationary", tile_m=1),
    dict(rows=3, cols=1, a="int2", b="uint16", acc="int19"),
    dict(rows=4, cols=4, a="int8", b="uint8", acc="int20", overflow="sat",
         dataflow="weight_stationary", tile_m=5),
    dict(rows=4, cols=4, a="fixed<8,3>", b="fixed<8,3>", acc="fixed<24,14>"),
]


def _id(c):
    return "{rows}x{cols}-".format(**c) + "-".join(
        str(v) for k, v in c.items() if k not in ("rows", "cols"))


@pytest.mark.parametrize("cfg", CONFIGS, ids=_id)
def test_random_exact_and_cycles(cfg, rng):
    p = make_params(**cfg)
    for m, k, n in [(1, 1, 1), (p.rows + 1, 5, 2 * p.cols + 1), (2, 3, p.cols)]:
        a, b = random_operands(p, m, k, n, rng)
        res = simulate(family, p, {"a": a, "b": b}, sim="amaranth")
        assert np.array_equal(res.outputs["c"], gemm(p, a, b)), (m, k, n)
        assert res.cycles == p.expected_cycles(m, k, n), (m, k, n)


@pytest.mark.parametrize("cfg", CONFIGS, ids=_id)
def test_corners_with_idle_and_backpressure(cfg, rng):
    p = make_params(**cfg)
    for i, which in enumerate(CORNERS):
        a, b = corner_operands(p, which, rng)
        if a.shape[1] > 40:  # keep the Python simulator quick; long K runs in the rtl tier
            a, b = a[:, :40], b[:40]
        res = simulate(family, p, {"a": a, "b": b}, sim="amaranth", idle=0.3, stall=0.4,
                       seed=i)
        assert np.array_equal(res.outputs["c"], gemm(p, a, b)), which
        assert res.cycles >= p.expected_cycles(a.shape[0], a.shape[1], b.shape[1])


def test_overflow_corner_saturates_in_hardware(rng):
    p = make_params(2, 2, "int8", "int8", "int18", overflow="sat")
    a, b = corner_operands(p, "allmin_longk", rng)
    res = simulate(family, p, {"a": a, "b": b}, sim="amaranth", stall=0.2)
    assert (res.outputs["c"] == p.acc.max_code).all()
    p = make_params(2, 2, "int8", "int8", "int18", overflow="wrap", dataflow="weight_stationary")
    res = simulate(family, p, {"a": a, "b": b}, sim="amaranth", idle=0.2)
    assert np.array_equal(res.outputs["c"], gemm(p, a, b))
    assert (res.outputs["c"] != a @ b).all()
