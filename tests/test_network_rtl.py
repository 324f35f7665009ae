"""HLS flow end to end on Verilator: the example networks lowered from hls4ml run as RTL.

* the jet-tagging MLP with its final softmax: the RTL equals the golden model code for code on
  1000 inputs (so the logits equal hls4ml's ``trace`` of the layer before the softmax bit for
  bit, and the softmax is the softmax unit's), in exactly the analytic cycle count; the softmax
  error against float is reported next to hls4ml's;
* a Dense/ReLU/BatchNorm network with narrow types (rounding, saturation, hls4ml's ApplyAlpha):
  the RTL output equals hls4ml's ``predict()`` bit for bit on 1000 inputs, directly;
* the transformer FFN block (Dense -> GELU -> Dense): RTL equals the golden model (the first
  Dense is checked against hls4ml in test_hls_model.py; hls4ml has no GELU to run the rest).
"""

from __future__ import annotations

import hls4ml  # noqa: F401  (a main dependency: a broken install fails, never skips)
import numpy as np
import pytest
from network_cases import converted, example, trace_before

from generators.hls.model import run_until, softmax_errors
from generators.network import family
from generators.network.layers import BatchNormLayer, SoftmaxLayer
from sim.unit import simulate, simulate_many

pytestmark = pytest.mark.rtl


def _inputs(fmt, rng, n, width):
    x = fmt.quantize(rng.normal(0, 2, (n, width)))
    x[0], x[1], x[2] = fmt.min_code, fmt.max_code, 0
    return x


def test_jet_mlp_softmax_rtl(tmp_path_factory, rng):
    graph, net = example("jet_mlp", 16, str(tmp_path_factory.mktemp("hls")))
    p = family.params(net)
    x = _inputs(net.input.format, rng, 1000, 16)
    logits_hls, y_hls = trace_before(graph, net, x, SoftmaxLayer)
    assert np.array_equal(run_until(net, x, SoftmaxLayer), logits_hls)

    arrays = family.check_inputs(p, {"x": x})
    gold = family.golden(p, arrays)["y"]
    res = simulate(family, p, arrays, sim="verilator", name=net.name, config={"name": net.name})
    got = res.outputs["y"]
    assert np.array_equal(got, gold), f"{int((got != gold).sum())} codes differ"
    assert res.cycles == p.expected_cycles(1000)
    assert p.multipliers == 64 + 128 + 64 + 10  # ceil(n_in / 16) x n_out per layer
    err = softmax_errors(net, logits_hls, y_hls)
    print(f"jet MLP softmax error vs float: hls4ml max {err['hls4ml']['max']:.3g} mean "
          f"{err['hls4ml']['mean']:.3g}; RTL max {err['tensorfab']['max']:.3g} mean "
          f"{err['tensorfab']['mean']:.3g}")
    assert err["tensorfab"]["max"] < err["hls4ml"]["max"]


def test_ffn_block_gelu_rtl(tmp_path_factory, rng):
    _, net = example("ffn", 4, str(tmp_path_factory.mktemp("hls")))
    p = family.params(net)
    x = _inputs(net.input.format, rng, 300, 16)
    arrays = family.check_inputs(p, {"x": x})
    gold = family.golden(p, arrays)["y"]
    res, res_idle = simulate_many(family, p, [
        dict(arrays=arrays), dict(arrays=arrays, idle=0.3, stall=0.3, seed=5)],
        name=net.name, config={"name": net.name})
    assert np.array_equal(res.outputs["y"], gold)
    assert res.cycles == p.expected_cycles(300)
    assert np.array_equal(res_idle.outputs["y"], gold)


def test_dense_relu_bn_rtl_equals_hls4ml_predict(tmp_path_factory, rng):
    graph, net = converted("small", 2, True, str(tmp_path_factory.mktemp("hls")))
    assert any(isinstance(x, BatchNormLayer) for x in net.layers)
    graph.compile()
    p = family.params(net)
    x = _inputs(net.input.format, rng, 1000, p.n_in)
    y = np.asarray(graph.predict(np.ascontiguousarray(net.input.format.dequantize(x))),
                   dtype=np.float64).reshape(len(x), -1)
    expect = net.out.format.quantize(y)
    assert np.array_equal(net.out.format.dequantize(expect), y)  # every code exact
    arrays = family.check_inputs(p, {"x": x})
    res = simulate(family, p, arrays, sim="verilator", name=net.name, config={"name": net.name})
    got = res.outputs["y"]
    assert np.array_equal(got, expect), f"{int((got != expect).sum())} codes differ"
    assert len(np.unique(expect)) > 20  # a real spread of outputs
    assert res.cycles == p.expected_cycles(1000)
