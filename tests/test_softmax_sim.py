"""Amaranth-simulator tier: the softmax design against the golden model on adversarial rows of
mixed lengths streamed back to back, with exact cycle counts, then with idle inputs and
back-pressure."""

from __future__ import annotations

import numpy as np
import pytest
from nonlin_cases import RowBatch, golden_rows, softmax_params

from generators.softmax import family, softmax
from generators.softmax.stimuli import adversarial_rows
from sim.unit import simulate

SMALL = [
    dict(length=8, lanes=1),
    dict(length=7, lanes=2, inp="int6", out="ufixed<12,0>"),
    dict(length=9, lanes=4, inp="fixed<6,2>", out="ufixed<10,1>"),
    dict(length=5, lanes=1, inp="uint4", out="ufixed<4,0>"),
    dict(length=1, lanes=1, inp="int8", out="ufixed<8,1>"),
]


def _id(c):
    return "-".join(f"{k}{v}" for k, v in c.items())


@pytest.mark.parametrize("cfg", SMALL, ids=_id)
def test_adversarial_rows_exact_and_cycles(cfg, rng):
    p = softmax_params(**cfg)
    rows = adversarial_rows(p, rng, lengths=sorted({1, min(p.lanes + 1, p.length), p.length}))
    batch = RowBatch()
    res = simulate(batch, p, {"rows": rows}, sim="amaranth")
    for got, want, row in zip(res.outputs["rows"], golden_rows(p, rows), rows, strict=True):
        assert np.array_equal(got, want), row
    assert res.cycles == batch.expected_cycles(p, {"rows": rows})


@pytest.mark.parametrize("cfg", SMALL, ids=_id)
def test_idle_and_backpressure(cfg, rng):
    p = softmax_params(**cfg)
    rows = [rng.integers(p.inp.min_code, p.inp.max_code + 1, int(n))
            for n in rng.integers(1, p.length + 1, 12)]
    batch = RowBatch()
    for idle, stall, seed in [(0.3, 0.0, 1), (0.0, 0.5, 2), (0.4, 0.4, 3)]:
        res = simulate(batch, p, {"rows": rows}, sim="amaranth", idle=idle, stall=stall,
                       seed=seed)
        for got, want in zip(res.outputs["rows"], golden_rows(p, rows), strict=True):
            assert np.array_equal(got, want)
        assert res.cycles >= batch.expected_cycles(p, {"rows": rows})


def test_family_run_sustains_lanes_per_cycle(rng):
    """Rows of equal length through the family itself: every further row costs its beats."""
    p = softmax_params(length=6, lanes=2)
    x = rng.integers(-128, 128, (10, 6))
    res = simulate(family, p, {"x": x}, sim="amaranth")
    assert np.array_equal(res.outputs["y"], softmax(p, x))
    assert res.cycles == p.expected_cycles([6] * 10) == 10 * 3 + p.expected_cycles([6]) - 3
