"""HLS flow, Keras 3 and PyTorch front ends: the example networks built with the same weights
as Keras models (torch backend) and ``torch.nn.Module``s lower through hls4ml's own
``convert_from_keras_model``/``convert_from_pytorch_model``.

* the lowered golden model equals hls4ml's C++ emulation bit for bit on 1000 inputs: the jet
  MLP's logits (``trace()`` of the layer before its softmax) and the Dense/BatchNorm/ReLU
  network's output (``predict()``), for each front end;
* the lowered configs equal the ONNX path's, which the Verilator and Amaranth-simulator tests
  check as RTL: with hls4ml's default types the designs are the same (config and design hash);
  with the examples' explicit result types they differ only where hls4ml's ONNX front end keeps
  a MatMul's bias ``Add`` as a layer of its own (a Keras Dense or PyTorch Linear holds its
  bias), which the test asserts is the only difference;
* ``tensorfab hls model.keras`` end to end, and bad inputs as one line with exit status 2.

hls4ml's ``compile()`` runs g++ (10-15 s a model): each compiled model is a module fixture.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
import yaml
from network_cases import N_IN, converted, example, trace_before
from test_cli import tf

from generators.config import config_to_dict
from generators.errors import UserError
from generators.hls import lower, run
from generators.hls.examples import bn_mlp, jet_mlp, mlp
from generators.hls.frontend import convert, import_keras
from generators.hls.model import run_until, softmax_errors
from generators.network.layers import (
    BatchNormLayer,
    DenseLayer,
    GeluLayer,
    ReluLayer,
    SoftmaxLayer,
)

FRONTS = ("keras", "pytorch")


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("fronts"))


def _inputs(lowered, rng, n=1000):
    fmt = lowered.input.format
    x = fmt.quantize(rng.normal(0, 2, (n, lowered.n_in)))
    x[0], x[1], x[2] = fmt.min_code, fmt.max_code, 0  # corners: all-min, all-max, zeros
    return x


def _layers(cfg) -> list[dict]:
    """The layers of a network's config (``config_to_dict``) without their names: the names
    are each front end's (``fc0``, ``Dense_MatMul_0``); everything else makes the design."""
    return [{k: v for k, v in layer.items() if k != "name"} for layer in cfg["layers"]]


def _plain(lowered) -> dict:
    return config_to_dict(lowered)


def _merge_split_bias(layers: list[dict]) -> tuple[list[dict], int]:
    """ONNX layers with each bias hls4ml kept apart (a dense layer with zero biases, then a
    batchnorm of unit scales holding the bias: hls4ml's ``ApplyAlpha`` of the ``Add``) put back
    into the dense layer, and how many there were."""
    out: list[dict] = []
    merged = 0
    for layer in layers:
        prev = out[-1] if out else None
        if (layer["kind"] == "batchnorm" and prev is not None and prev["kind"] == "dense"
                and not any(prev["b"]) and layer["scale_type"]["format"] == "uint1"
                and set(layer["scale"]) == {1}):
            assert layer["result"] == prev["result"], "the split bias keeps the Dense's type"
            out[-1] = {**prev, "b": layer["b"], "bias": layer["bias"]}
            merged += 1
        else:
            out.append(layer)
    return out, merged


# -- KERAS_BACKEND ----------------------------------------------------------------------------


def test_keras_runs_on_torch():
    """frontend.import_keras is the one place the backend is set (the CLI tests below run
    ``tensorfab hls`` on .keras files without KERAS_BACKEND in the environment)."""
    assert import_keras().backend.backend() == "torch"
    assert "tensorflow" not in sys.modules


# -- bit exact against hls4ml's C++ emulation -------------------------------------------------


@pytest.fixture(scope="module", params=FRONTS)
def jet(request, out_dir):
    """The jet MLP example (its precisions, reuse 16 as the Verilator test) from Keras or
    PyTorch; hls4ml compiles it on the first ``trace``."""
    return request.param, *example("jet_mlp", 16, out_dir, request.param)


@pytest.fixture(scope="module", params=FRONTS)
def bn(request, out_dir):
    """The Dense/BatchNorm/ReLU example with narrow types, compiled by hls4ml."""
    graph, lowered = example("bn_mlp", 1, out_dir, request.param)
    graph.compile()
    return request.param, graph, lowered


def test_jet_mlp_logits_equal_hls4ml_trace(jet, rng):
    front, graph, lowered = jet
    kinds = [type(x) for x in lowered.layers]
    assert kinds == [DenseLayer, ReluLayer] * 3 + [DenseLayer, SoftmaxLayer], front
    assert [x.name for x in lowered.layers if isinstance(x, DenseLayer)] == [
        "fc0", "fc1", "fc2", "fc3"]  # the Keras layer / PyTorch module names
    sm = lowered.stages[-1]
    assert str(sm.inp.format) == "fixed<12,5>" and str(sm.result.format) == "ufixed<16,0>"
    x = _inputs(lowered, rng)
    logits_hls, y_hls = trace_before(graph, lowered, x, SoftmaxLayer)
    logits = run_until(lowered, x, SoftmaxLayer)
    assert np.array_equal(logits, logits_hls), f"{int((logits != logits_hls).sum())} differ"
    assert len(np.unique(logits)) > 100  # a real spread, not a saturated constant
    from generators.softmax.model import softmax as unit_softmax

    assert np.array_equal(run(lowered, x), unit_softmax(sm.unit, logits))
    err = softmax_errors(lowered, logits, y_hls)
    assert err["tensorfab"]["max"] < err["hls4ml"]["max"]


def test_dense_batchnorm_relu_equals_hls4ml_predict(bn, rng):
    front, graph, lowered = bn
    kinds = [type(x) for x in lowered.layers]
    assert kinds == [DenseLayer, BatchNormLayer, ReluLayer, DenseLayer], front
    norm = lowered.layers[1]
    assert norm.name == "bn0" and len(set(norm.scale)) > 1  # a real BatchNorm
    x = _inputs(lowered, rng)
    xf = np.ascontiguousarray(lowered.input.format.dequantize(x))
    y = np.asarray(graph.predict(xf), dtype=np.float64).reshape(len(x), -1)
    expect = lowered.out.format.quantize(y)
    assert np.array_equal(lowered.out.format.dequantize(expect), y)  # every code exact
    got = np.asarray(run(lowered, x), dtype=np.int64)
    assert np.array_equal(got, expect), f"{int((got != expect).sum())} codes differ"
    assert len(np.unique(expect)) > 100
    # the narrow types do saturate: the BatchNorm's fixed<10,4> tops out on some inputs
    assert norm.result.format.max_code in run_until(lowered, x, ReluLayer)


# -- the same designs as the ONNX path --------------------------------------------------------


@pytest.fixture(scope="module")
def small_design_hash(out_dir):
    """The design hash of the ONNX path's small network (reuse 2, hls4ml's default types), one
    of the designs test_network_sim.py runs in the Amaranth simulator."""
    from generators.generate import render

    return render(converted("small", 2, False, out_dir)[1])[1]["design_hash"]


@pytest.mark.parametrize("front", FRONTS)
@pytest.mark.parametrize("which,reuse", [("jet", 1), ("small", 2)])
def test_default_types_give_the_onnx_design(out_dir, small_design_hash, front, which, reuse):
    """hls4ml's default ('auto') types: the lowered config equals the ONNX path's layer for
    layer (weights, types, reuse factors), the design the network tests run as RTL."""
    _, ours = converted(which, reuse, False, out_dir, front)
    _, ref = converted(which, reuse, False, out_dir)
    assert _layers(_plain(ours)) == _layers(_plain(ref))
    assert _plain(ours)["input"] == _plain(ref)["input"]
    if which == "small" and front == "pytorch":  # the Verilog is the same, byte for byte
        from generators.generate import render  # (Keras: through the command line, below)

        assert render(ours)[1]["design_hash"] == small_design_hash


@pytest.mark.parametrize("front", FRONTS)
def test_batchnorm_folds_like_onnx(tmp_path, front):
    """With 'auto' Dense results hls4ml folds the BatchNorm into the Dense before it, in
    every front end, to the same weight and bias codes."""
    shape = (None, N_IN["bn_mlp"]) if front == "pytorch" else None
    g, _ = convert(bn_mlp(front=front), input_shape=shape, output_dir=str(tmp_path / "f"))
    ref, _ = convert(bn_mlp(), output_dir=str(tmp_path / "o"))
    ours = _layers(_plain(lower(g)))
    assert [x["kind"] for x in ours] == ["dense", "relu", "dense"]
    assert ours == _layers(_plain(lower(ref)))


@pytest.mark.parametrize("which,reuse", [("jet_mlp", 16), ("bn_mlp", 1), ("ffn", 4)])
def test_example_types_onnx_differs_only_by_its_split_bias(out_dir, which, reuse):
    """The examples' explicit result types: Keras and PyTorch give the same design; the ONNX
    path's differs only in that hls4ml keeps each bias ``Add`` whose MatMul has a result type
    as an ApplyAlpha layer (its own rounding and saturation), where Keras' Dense and PyTorch's
    Linear hold the bias (same weights, bias codes, types and reuse factors otherwise)."""
    keras_cfg = _plain(example(which, reuse, out_dir, "keras")[1])
    torch_cfg = _plain(example(which, reuse, out_dir, "pytorch")[1])
    onnx_cfg = _plain(example(which, reuse, out_dir)[1])
    assert keras_cfg == torch_cfg  # names included: fc0, bn0, relu0, gelu0, softmax
    merged, n = _merge_split_bias(_layers(onnx_cfg))
    assert n == {"jet_mlp": 1, "bn_mlp": 2, "ffn": 1}[which]
    assert merged == _layers(keras_cfg)
    assert keras_cfg["input"] == onnx_cfg["input"]
    if which == "ffn":  # Keras Activation('gelu') and PyTorch nn.GELU() reach the gelu unit
        gelu = example(which, reuse, out_dir, "keras")[1].stages[1]
        assert isinstance(gelu.head, GeluLayer) and str(gelu.inp.format) == "fixed<8,3>"


# -- the command line ------------------------------------------------------------------------


def _keras_file(tmp_path, model, name):
    path = tmp_path / f"{name}.keras"
    model.save(path)
    return path


def test_hls_cli_keras_file_end_to_end(tmp_path, out_dir, small_design_hash, monkeypatch):
    """``tensorfab hls small_r2.keras --reuse-factor 2`` (a file from model.save, no
    KERAS_BACKEND in the environment) writes the ONNX path's design, byte for byte, and its
    manifest; ``tensorfab run`` on the config equals the golden model."""
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    model = mlp([6, 5, 3], seed=1, name="small", front="keras")
    path = _keras_file(tmp_path, model, "small_r2")
    r = tf("hls", path, "--reuse-factor", "2", "--out", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr and "da4ml" not in r.stderr
    cfg = yaml.safe_load((tmp_path / "out" / "small_r2.yaml").read_text())
    assert [x["name"] for x in cfg["layers"]] == ["fc0", "relu0", "fc1"]
    assert cfg["source"] == "small_r2.keras"
    _, ref = converted("small", 2, False, out_dir)
    assert _layers(cfg) == _layers(_plain(ref))
    manifest = json.loads((tmp_path / "out" / "small_r2.json").read_text())
    assert manifest["unit"] == "network" and manifest["top"] == "small_r2"
    assert manifest["design_hash"] == small_design_hash
    assert (tmp_path / "out" / "small_r2.v").read_text().count("module small_r2(") == 1

    x = np.arange(-60, 60, dtype=np.int64).reshape(20, 6) * 97
    np.savez(tmp_path / "in.npz", x=x)
    r = tf("run", tmp_path / "out" / "small_r2.yaml", "--inputs", tmp_path / "in.npz",
           "--out", tmp_path / "y.npz")
    assert r.returncode == 0, r.stderr
    assert np.array_equal(np.load(tmp_path / "y.npz")["y"], run(ref, x))


def test_hls_cli_keras_bad_inputs_exit_2_one_line(tmp_path, monkeypatch):
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    keras = import_keras()
    conv = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(2, 3, name="conv"),
                             keras.layers.Flatten(), keras.layers.Dense(3, name="fc")])
    r = tf("hls", _keras_file(tmp_path, conv, "conv"), "--out", tmp_path / "o")
    assert r.returncode == 2, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("layer 'conv' (Conv2D): type Conv2D is not supported (allowed: "
                           "Input, Dense, Activation(relu), ReLU, ThresholdedReLU(threshold 0), "
                           "BatchNormalization"), last
    assert "Traceback" not in r.stderr


# -- bad models from Python: one line naming the layer or problem and what is allowed ---------


def _one_line(fn) -> str:
    with pytest.raises(UserError) as err:
        fn()
    msg = str(err.value)
    assert "\n" not in msg and "(allowed: " in msg, msg
    return msg


def test_unreadable_keras_file(tmp_path):
    junk = tmp_path / "junk.keras"
    junk.write_bytes(b"not a zip file")
    msg = _one_line(lambda: convert(junk, output_dir=str(tmp_path)))
    assert msg.startswith(f"{junk}: not a readable Keras model (") and msg.endswith(
        "(allowed: a file written by Keras 3's model.save)"), msg


def test_pytorch_module_needs_input_shape(tmp_path):
    msg = _one_line(lambda: convert(jet_mlp(front="pytorch"), output_dir=str(tmp_path)))
    assert msg.startswith("a PyTorch module needs input_shape")


def test_front_end_specific_layers(tmp_path):
    keras = import_keras()
    nn = torch.nn

    def lowered(model, shape=None):
        return lambda: lower(convert(model, input_shape=shape, output_dir=str(tmp_path))[0])

    # Keras' ReLU layer reaches hls4ml as ThresholdedReLU: threshold 0 is ReLU, others are not
    plain = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="fc"),
                              keras.layers.ReLU(name="r")])
    assert [type(x) for x in lowered(plain)().layers] == [DenseLayer, ReluLayer]
    thr = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="fc"),
                            keras.layers.ReLU(threshold=0.5, name="thr")])
    msg = _one_line(lowered(thr))
    assert msg.startswith("layer 'thr' (ParametrizedActivation): type ParametrizedActivation("
                          "thresholdedrelu, threshold 0.5) is not supported")
    # Keras Dense(activation=...) is split by hls4ml into the Dense and its activation
    act = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="relu",
                                                                  name="fc")])
    assert [type(x) for x in lowered(act)().layers] == [DenseLayer, ReluLayer]
    # PyTorch: Softmax(dim=1) on [batch, n] is the last axis; dim=0 is not
    for dim, ok in ((1, True), (-1, True), (0, False)):
        m = nn.Sequential(nn.Linear(4, 3), nn.Softmax(dim=dim))
        cfg = {"Model": {"Precision": "fixed<10,4>", "ReuseFactor": 1},
               "LayerName": {"_1": {"Precision": {"result": "ufixed<8,0>"}}}}
        fn = lambda m=m, cfg=cfg: lower(convert(  # noqa: E731
            m, input_shape=(None, 4), hls4ml_config=cfg, output_dir=str(tmp_path))[0])
        if ok:
            assert isinstance(fn().layers[-1], SoftmaxLayer)
        else:
            assert "softmax over axis 0" in _one_line(fn)
    # PyTorch GELU: exact only (the gelu unit's function)
    m = nn.Sequential(nn.Linear(4, 3), nn.GELU(approximate="tanh"))
    msg = _one_line(lambda: convert(m, input_shape=(None, 4), output_dir=str(tmp_path)))
    assert "approximate='tanh'" in msg and "'none'" in msg
    # a layer hls4ml itself does not read: its words, and what tensorfab lowers
    m = nn.Sequential(nn.Linear(4, 3), nn.SiLU())
    msg = _one_line(lambda: convert(m, input_shape=(None, 4), output_dir=str(tmp_path)))
    assert msg.startswith("hls4ml could not convert the model: Unsupported layer SiLU")
    assert "Dense" in msg and "Activation(gelu)" in msg
