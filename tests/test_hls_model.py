"""HLS flow, model tier: the lowered integer pipeline equals hls4ml's own C++ emulation
(``predict()``, ``ap_fixed`` semantics) bit for bit."""

from __future__ import annotations

import copy

import hls4ml  # noqa: F401  (a main dependency: a broken install fails, never skips)
import numpy as np
import pytest
from network_cases import example, trace_before

from generators.config import config_to_dict, parse_config
from generators.errors import UserError
from generators.hls import lower, run
from generators.hls.examples import ffn_block, hls4ml_config, jet_mlp, mlp
from generators.hls.frontend import auto_notes, convert
from generators.hls.model import run_until, softmax_errors
from generators.network.layers import (
    BatchNormLayer,
    DenseLayer,
    GeluLayer,
    ReluLayer,
    SoftmaxLayer,
)
from generators.registry import family


def _predict_codes(graph, lowered, x_codes):
    xf = np.ascontiguousarray(lowered.input.format.dequantize(x_codes))
    y = np.asarray(graph.predict(xf), dtype=np.float64).reshape(len(x_codes), -1)
    codes = lowered.out.format.quantize(y)
    # float64 holds every code of these formats exactly: nothing was rounded on the way back
    assert np.array_equal(lowered.out.format.dequantize(codes), y)
    return codes


def _inputs(lowered, rng, n=1000):
    fmt = lowered.input.format
    x = fmt.quantize(rng.normal(0, 2, (n, lowered.n_in)))
    x[0] = fmt.min_code  # corners: all-min, all-max, zeros
    x[1] = fmt.max_code
    x[2] = 0
    return x


@pytest.fixture(scope="module")
def jet(tmp_path_factory):
    graph, cfg = convert(jet_mlp(softmax=False), name="jet",
                         output_dir=str(tmp_path_factory.mktemp("jet")))
    graph.compile()
    return graph, cfg, lower(graph)


def test_jet_mlp_auto_precisions_bit_exact(jet, rng):
    graph, cfg, lowered = jet
    assert [type(x) for x in lowered.layers] == [DenseLayer, ReluLayer] * 3 + [DenseLayer]
    # the lowered network is the `unit: network` config: its YAML dump parses back to it
    assert parse_config(config_to_dict(lowered), "<jet>") == lowered
    assert family("network").params(lowered) is lowered
    assert [x.n_out for x in lowered.layers if isinstance(x, DenseLayer)] == [64, 32, 32, 5]
    x = _inputs(lowered, rng)
    expect = _predict_codes(graph, lowered, x)
    got = np.asarray(run(lowered, x), dtype=np.int64)
    assert got.shape == (1000, 5)
    assert np.array_equal(got, expect), f"{int((got != expect).sum())} codes differ"
    assert len(np.unique(expect)) > 100  # a real spread of outputs, not a constant


def test_auto_precisions_are_reported(jet):
    graph, cfg, _ = jet
    notes = auto_notes(cfg, graph)
    assert any("accum: 'auto' resolved to fixed<" in n for n in notes)


@pytest.mark.parametrize("accum,result,relu", [
    # products lose fraction bits one by one; results round to nearest and saturate
    ("fixed<18,8,TRN,WRAP>", "fixed<10,5,RND,SAT>", "ufixed<8,4,RND_CONV,SAT>"),
    # a saturating accumulator (order matters: bias first, then inputs in order)
    ("fixed<14,6,TRN,SAT>", "fixed<12,6,TRN,WRAP>", "fixed<8,4,TRN,SAT>"),
])
def test_explicit_precisions_bit_exact(tmp_path, rng, accum, result, relu):
    model = mlp([12, 24, 6], seed=3)
    graph, cfg = convert(model, output_dir=str(tmp_path / "a"), name="probe")
    cfg = copy.deepcopy(cfg)
    for lname, lcfg in cfg["LayerName"].items():
        prec = lcfg.get("Precision", {})
        if "accum" in prec:
            prec["accum"] = accum
        if "result" in prec and lname.startswith("MatMul"):
            prec["result"] = result
        if "result" in prec and lname.startswith("Relu"):
            prec["result"] = relu
    graph, _ = convert(model, hls4ml_config=cfg, output_dir=str(tmp_path / "b"), name="narrow")
    lowered = lower(graph)
    assert any(isinstance(x, BatchNormLayer) for x in lowered.layers)  # bias as ApplyAlpha
    graph.compile()
    x = _inputs(lowered, rng)
    expect = _predict_codes(graph, lowered, x)
    got = np.asarray(run(lowered, x), dtype=np.int64)
    assert np.array_equal(got, expect), f"{int((got != expect).sum())} codes differ"


def test_unsupported_layer_one_line(tmp_path):
    from onnx import TensorProto, helper

    node = helper.make_node("Sigmoid", ["x"], ["y"])
    g = helper.make_graph([node], "sig", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                        [1, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    graph, _ = convert(model, output_dir=str(tmp_path))
    with pytest.raises(UserError) as err:
        lower(graph)
    msg = str(err.value)
    assert "\n" not in msg
    assert "Sigmoid" in msg and "is not supported (allowed: Input, Dense" in msg
    assert "Softmax" in msg and "Activation(gelu)" in msg


def test_bad_model_files(tmp_path):
    with pytest.raises(UserError, match=r"no such file \(allowed: a \.onnx or \.keras"):
        convert(tmp_path / "missing.onnx")
    other = tmp_path / "model.h5"
    other.write_bytes(b"x")
    with pytest.raises(UserError, match=r"unknown model file type '\.h5'"):
        convert(other)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not onnx")
    with pytest.raises(UserError, match="not a readable ONNX model"):
        convert(junk)
    with pytest.raises(UserError, match="is not a model hls4ml reads"):
        convert(42)


def test_jet_mlp_softmax_logits_exact_error_smaller_than_hls4ml(tmp_path_factory, rng):
    """Everything before the softmax equals hls4ml bit for bit; the softmax is the softmax
    unit's golden model, and its error against float softmax of the same logits is smaller
    than that of hls4ml's table softmax (its defaults: 1024 entries, fixed<18,8> tables)."""
    graph, lowered = example("jet_mlp", 1, str(tmp_path_factory.mktemp("jet_sm")))
    assert [type(x) for x in lowered.layers][-1] is SoftmaxLayer
    sm = lowered.stages[-1]  # the softmax unit's stage: its input is the last Dense's result
    assert sm.head is lowered.layers[-1] and sm.inp is lowered.layers[-2].result
    assert str(sm.inp.format) == "fixed<12,5>" and str(sm.result.format) == "ufixed<16,0>"
    x = _inputs(lowered, rng, n=1000)
    logits_hls, y_hls = trace_before(graph, lowered, x, SoftmaxLayer)
    logits = run_until(lowered, x, SoftmaxLayer)
    assert np.array_equal(logits, logits_hls), f"{int((logits != logits_hls).sum())} differ"
    from generators.softmax.model import softmax as unit_softmax

    got = np.asarray(run(lowered, x), dtype=np.int64)
    assert np.array_equal(got, unit_softmax(sm.unit, logits))
    err = softmax_errors(lowered, logits, y_hls)
    print(f"softmax error vs float over {err['rows']} rows: hls4ml {err['hls4ml']}, "
          f"tensorfab {err['tensorfab']}")
    assert err["tensorfab"]["max"] < err["hls4ml"]["max"]
    assert err["tensorfab"]["mean"] < err["hls4ml"]["mean"]
    assert err["tensorfab"]["max_lsb"] <= 0.5 + 2 ** -9  # the unit's stated bound


def test_ffn_block_dense_exact_gelu_is_the_unit(tmp_path_factory, rng):
    """Dense -> GELU -> Dense: the ONNX Gelu node lowers onto the gelu unit; the first Dense
    equals hls4ml (which has no GELU to run the rest) bit for bit."""
    out = tmp_path_factory.mktemp("ffn")
    graph, lowered = example("ffn", 1, str(out))
    kinds = [type(x) for x in lowered.layers]
    assert GeluLayer in kinds and kinds.count(DenseLayer) == 2
    g = next(s for s in lowered.stages if isinstance(s.head, GeluLayer))
    assert g.n_in == 64 and str(g.inp.format) == "fixed<8,3>"
    # hls4ml runs the block up to the GELU: the same configuration on the model cut there
    prefix = ffn_block(gelu=False)
    _, base = convert(prefix, output_dir=str(out / "p0"), name="ffn_prefix")
    pgraph, _ = convert(prefix, hls4ml_config=hls4ml_config("ffn", base),
                        output_dir=str(out / "p1"), name="ffn_prefix")
    pgraph.compile()
    plowered = lower(pgraph)
    x = _inputs(lowered, rng, n=1000)
    before = run_until(lowered, x, GeluLayer)
    assert np.array_equal(before, _predict_codes(pgraph, plowered, x))
    from generators.gelu.model import error_lsb, gelu, reference

    p = g.unit
    assert (p.lanes, p.inp, p.out) == (64, g.inp.format, g.head.result.format)
    assert np.asarray(run(lowered, x)).shape == (1000, 16)
    err = error_lsb(p, gelu(p, before), reference(p, before))
    print(f"GELU stage error vs float: max {err.max():.3f} LSB, mean {err.mean():.3f} LSB")
    assert err.max() <= 0.5


def test_softmax_and_gelu_need_unit_formats(tmp_path):
    """hls4ml's default ('auto') precisions are too wide for the units: one line naming the
    layer, the format and what is allowed."""
    with pytest.raises(UserError) as err:
        graph, _ = convert(jet_mlp(), output_dir=str(tmp_path / "j"), name="j")
        lower(graph)
    msg = str(err.value)
    assert "\n" not in msg and "Softmax_0" in msg and "(allowed: 2..12 bits" in msg
    with pytest.raises(UserError) as err:
        graph, _ = convert(ffn_block(), output_dir=str(tmp_path / "f"), name="f")
        lower(graph)
    msg = str(err.value)
    assert "\n" not in msg and "Gelu_0" in msg and "not allowed for the gelu unit" in msg
