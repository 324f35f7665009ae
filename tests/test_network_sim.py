"""`network` unit, Amaranth-simulator tier: the RTL equals the golden model code for code and
takes exactly ``expected_cycles``, for several reuse factors, with idle and back-pressure."""

from __future__ import annotations

import hls4ml  # noqa: F401  (a main dependency: a broken install fails, never skips)
import numpy as np
import pytest
from network_cases import converted

from generators.network import family
from sim.unit import simulate


@pytest.mark.parametrize("reuse", [1, 2, 4, 6])
@pytest.mark.parametrize("narrow", [False, True], ids=["auto", "narrow"])
def test_rtl_equals_golden_and_cycles(tmp_path_factory, rng, reuse, narrow):
    _, net = converted("small", reuse, narrow, str(tmp_path_factory.getbasetemp() / "hls"))
    p = family.params(net)
    kinds = [type(x).__name__ for x in p.layers]
    if narrow:  # hls4ml keeps the bias apart (ApplyAlpha) with these types: the BN path
        assert "BatchNormLayer" in kinds
    fmt = p.input.format
    x = fmt.quantize(rng.normal(0, 3, (25, p.n_in)))
    x[0], x[1], x[2] = fmt.min_code, fmt.max_code, 0
    arrays = family.check_inputs(p, {"x": x})
    gold = family.golden(p, arrays)["y"]
    res = simulate(family, p, arrays, sim="amaranth")
    assert np.array_equal(res.outputs["y"], gold)
    assert res.cycles == p.expected_cycles(25)
    if reuse == 1 and not narrow:  # one row every C + 2 = 3 cycles, two stages
        assert p.stage_cycles() == [3, 3] and res.cycles == 3 * 25 + 3 + 1
    res = simulate(family, p, arrays, sim="amaranth", idle=0.4, stall=0.4, seed=7)
    assert np.array_equal(res.outputs["y"], gold)
    assert res.cycles > p.expected_cycles(25)


def test_expected_cycles_single_row_is_latency(tmp_path_factory):
    _, net = converted("small", 2, False, str(tmp_path_factory.getbasetemp() / "hls"))
    p = family.params(net)
    assert p.expected_cycles(1) == p.latency + 1
    assert p.expected_cycles(0) == 0


def test_bad_arrays(tmp_path_factory):
    _, net = converted("small", 1, False, str(tmp_path_factory.getbasetemp() / "hls"))
    p = family.params(net)
    from generators.errors import ArrayError

    with pytest.raises(ArrayError, match=r"x has shape \[3, 5\] \(allowed: \[rows, 6\]"):
        family.check_inputs(p, {"x": np.zeros((3, 5), dtype=np.int64)})
    with pytest.raises(ArrayError, match="exactly one array named x"):
        family.check_inputs(p, {"a": np.zeros((3, 6), dtype=np.int64)})
    with pytest.raises(ValueError, match="x"):
        family.check_inputs(p, {"x": np.full((2, 6), p.input.format.max_code + 1)})
