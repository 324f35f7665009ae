"""Amaranth-simulator tier: the GELU design against the golden model, every 8-bit input, the
polynomial path on random and corner inputs, exact cycle counts, idle and back-pressure."""

from __future__ import annotations

import numpy as np
import pytest
from nonlin_cases import gelu_params

from generators.gelu import family, gelu
from generators.gelu.model import all_inputs
from sim.unit import simulate


@pytest.mark.parametrize("inp, out, lanes", [("fixed<8,3>", "fixed<8,3>", 1),
                                             ("fixed<8,3>", "fixed<8,3>", 3),
                                             ("fixed<10,4>", "fixed<8,2>", 2)])
def test_table_every_input(inp, out, lanes):
    p = gelu_params(inp, out, lanes)
    x = all_inputs(p)
    res = simulate(family, p, {"x": x}, sim="amaranth")
    assert np.array_equal(res.outputs["y"], gelu(p, x))
    assert res.cycles == family.expected_cycles(p, {"x": x})


def poly_corners(p) -> np.ndarray:
    q = p.poly
    edges = [p.inp.min_code, p.inp.min_code + 1, -1, 0, 1, p.inp.max_code,
             q.span - 1, q.span, -(q.span - 1), -q.span]
    edges += [s << q.k for s in range(0, 1 << 6, 7)] + [(s << q.k) - 1 for s in range(1, 64, 9)]
    edges = [e for e in edges if p.inp.min_code <= e <= p.inp.max_code]
    return np.array(edges + [-e for e in edges if -e <= p.inp.max_code], dtype=np.int64)


@pytest.mark.parametrize("inp, out, lanes", [("fixed<16,5>", "fixed<16,5>", 1),
                                             ("fixed<12,4>", "fixed<8,3>", 2),
                                             ("int16", "int16", 1)])
def test_poly_random_and_corners(inp, out, lanes, rng):
    p = gelu_params(inp, out, lanes)
    x = np.concatenate([poly_corners(p),
                        rng.integers(p.inp.min_code, p.inp.max_code + 1, 150)])
    if p.inp.width <= 12:  # DESIGN.md: unary units of <= 12 bits are checked on all inputs
        x = all_inputs(p)
    res = simulate(family, p, {"x": x}, sim="amaranth")
    assert np.array_equal(res.outputs["y"], gelu(p, x))
    assert res.cycles == family.expected_cycles(p, {"x": x})
    res = simulate(family, p, {"x": x[:80]}, sim="amaranth", idle=0.3, stall=0.4, seed=5)
    assert np.array_equal(res.outputs["y"], gelu(p, x[:80]))


def test_table_idle_and_backpressure(rng):
    p = gelu_params(lanes=2)
    x = rng.integers(-128, 128, (6, 9))
    for idle, stall, seed in [(0.5, 0.0, 1), (0.0, 0.6, 2), (0.3, 0.3, 3)]:
        res = simulate(family, p, {"x": x}, sim="amaranth", idle=idle, stall=stall, seed=seed)
        assert np.array_equal(res.outputs["y"], gelu(p, x))
        assert res.cycles >= family.expected_cycles(p, {"x": x})
