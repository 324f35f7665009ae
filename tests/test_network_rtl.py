"""HLS flow end to end on Verilator: the jet-tagging MLP lowered from hls4ml runs as RTL and
equals hls4ml's own C++ emulation (``predict()``) bit for bit on 1000 inputs, in exactly the
analytic cycle count."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("hls4ml")

from network_cases import converted

from generators.network import family
from sim.unit import simulate

pytestmark = pytest.mark.rtl


def test_jet_mlp_rtl_equals_hls4ml_predict(tmp_path_factory, rng):
    graph, lowered, cfg = converted("jet", 16, False, str(tmp_path_factory.mktemp("hls")))
    graph.compile()
    p = family.params(cfg)
    fmt = lowered.inp.fmt
    x = fmt.quantize(rng.normal(0, 2, (1000, 16)))
    x[0], x[1], x[2] = fmt.min_code, fmt.max_code, 0
    y_hls = np.asarray(graph.predict(np.ascontiguousarray(fmt.dequantize(x))), dtype=np.float64)
    expect = lowered.out.fmt.quantize(y_hls)
    assert np.array_equal(lowered.out.fmt.dequantize(expect), y_hls)

    res = simulate(family, p, family.check_inputs(p, {"x": x}), sim="verilator", name=cfg.name,
                   config={"name": cfg.name})
    got = res.outputs["y"]
    assert np.array_equal(got, expect), f"{int((got != expect).sum())} codes differ"
    assert res.cycles == p.expected_cycles(1000)
    assert p.multipliers == 64 + 128 + 64 + 10  # ceil(n_in / 16) x n_out per layer
