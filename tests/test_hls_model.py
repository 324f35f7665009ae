"""HLS flow, model tier: the lowered integer pipeline equals hls4ml's own C++ emulation
(``predict()``, ``ap_fixed`` semantics) bit for bit."""

from __future__ import annotations

import copy

import numpy as np
import pytest

pytest.importorskip("hls4ml", reason="hls4ml is a pinned dependency; install with make")

from generators.errors import UserError
from generators.hls import BatchNormLayer, DenseLayer, ReluLayer, lower, run
from generators.hls.examples import jet_mlp, mlp
from generators.hls.frontend import auto_notes, convert


def _predict_codes(graph, lowered, x_codes):
    xf = np.ascontiguousarray(lowered.inp.fmt.dequantize(x_codes))
    y = np.asarray(graph.predict(xf), dtype=np.float64).reshape(len(x_codes), -1)
    codes = lowered.out.fmt.quantize(y)
    # float64 holds every code of these formats exactly: nothing was rounded on the way back
    assert np.array_equal(lowered.out.fmt.dequantize(codes), y)
    return codes


def _inputs(lowered, rng, n=1000):
    fmt = lowered.inp.fmt
    x = fmt.quantize(rng.normal(0, 2, (n, lowered.n_in)))
    x[0] = fmt.min_code  # corners: all-min, all-max, zeros
    x[1] = fmt.max_code
    x[2] = 0
    return x


@pytest.fixture(scope="module")
def jet(tmp_path_factory):
    graph, cfg = convert(jet_mlp(), name="jet",
                         output_dir=str(tmp_path_factory.mktemp("jet")))
    graph.compile()
    return graph, cfg, lower(graph)


def test_jet_mlp_auto_precisions_bit_exact(jet, rng):
    graph, cfg, lowered = jet
    assert [type(x) for x in lowered.layers] == [DenseLayer, ReluLayer] * 3 + [DenseLayer]
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
