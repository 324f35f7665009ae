"""The QONNX front end (generators/qonnx, host/qonnx.py; docs/qonnx.md): QONNX models with
real scales as integer codes and requant parameters, checked against qonnx's own
``execute_onnx``; the digits MLP as a board program on ``model://``; ``tensorfab compile``
and ``tensorfab board run --graph``; and a one-line error for every construct that cannot be
lowered exactly. The RTL board's half is tests/test_qonnx_rtl.py."""

from __future__ import annotations

import json
import sys
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import tf
from qonnx_cases import DIGITS, Builder, digits_inputs, execute, mlp

from generators.qonnx import QonnxError, read
from host import graphfile, open_board
from host.model import board_config
from host.qonnx import to_graph

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / DIGITS
BOARD = ROOT / "models/digits/board.yaml"
sys.path.insert(0, str(ROOT / "models/digits"))


@pytest.fixture(scope="module")
def digits():
    import onnx

    return onnx.load(str(MODEL)), read(MODEL)


@pytest.fixture(scope="module")
def split():
    import train

    return train.split()


def _codes_of(qm, floats):
    return qm.output.codes(np.asarray(floats, dtype=np.float64))


def test_digits_golden_against_execute_onnx_on_10k_inputs(digits):
    """Issue 16's target: >= 99.9 % of output codes equal to QONNX's, every argmax equal.
    QONNX computes each layer in float32 (x * scale products summed in float32, then
    ``round(y / scale)``): where the real value lies within float32 rounding of a half-code
    boundary, the two round to neighbouring codes."""
    model, qm = digits
    x = digits_inputs(10_000, seed=16)
    ref = _codes_of(qm, execute(model, x))
    got = qm.golden(qm.quantize_input(x))
    equal = (ref == got).mean()
    assert equal >= 0.999, equal
    assert np.abs(ref - got).max() <= 2
    assert np.array_equal(ref.argmax(1), got.argmax(1))


def test_digits_accuracy_equals_qonnx_to_the_image(digits, split):
    model, qm = digits
    _, x_te, _, y_te = split
    ref = execute(model, x_te).argmax(1)
    got = qm.golden(qm.quantize_input(x_te)).argmax(1)
    assert np.array_equal(ref, got)
    meta = json.loads((MODEL.parent / "digits_mlp.json").read_text())
    assert (got == y_te).mean() >= 0.95
    assert meta["test_images"] == len(y_te)


def test_digits_layers(digits):
    """What the shipped model is: 64-64-32-10, 4-bit weights with per-channel scales that are
    not powers of two, 4/6-bit activations, int8 input and logits."""
    _, qm = digits
    assert [d.shape for d in qm.layers] == [(64, 64), (64, 32), (32, 10)]
    for d in qm.layers:
        assert d.weight.bits == 4 and d.weight.scale.size == d.shape[1]
        assert len(np.unique(d.weight.scale)) > 1
        assert not np.all(np.log2(d.weight.scale) == np.round(np.log2(d.weight.scale)))
    assert [d.out.bits for d in qm.layers] == [4, 6, 8]
    assert [d.relu for d in qm.layers] == [True, True, False]


VARIANTS = {
    "gemm_per_channel": {},
    "matmul_add": dict(gemm=False),
    "per_tensor": dict(per_channel=False),
    "zero_points": dict(in_zp=5, act_zp=3),
    "weight_zero_points_8bit": dict(w_zp=True, narrow=False, wbits=8),
    "2bit": dict(wbits=2, abits=(2,)),
    "signed_acts_no_relu": dict(abits=(7, 3), act_signed=True, relu=False),
    "weights_floor": dict(w_rounding="FLOOR"),
    "weights_half_down": dict(w_rounding="HALF_DOWN"),
    "acts_half_up": dict(a_rounding="HALF_UP"),
    "3bit_input_5bit_acts": dict(in_bits=3, abits=(5,), out_bits=6),
}


@pytest.mark.parametrize("name", VARIANTS)
def test_variants_against_execute_onnx(name):
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    m = mlp(rng, [12, 9, 7, 5], **VARIANTS[name])
    qm = read(m)
    x = rng.uniform(-1, 1, (2000, 12)).astype(np.float32)
    ref = _codes_of(qm, execute(m, x))
    got = qm.golden(qm.quantize_input(x))
    assert (ref == got).mean() >= 0.999
    assert np.array_equal(ref.argmax(1), got.argmax(1))
    assert len(np.unique(got)) >= 3     # not a degenerate model


def test_requant_parameters_come_from_quantize_multiplier(digits):
    from generators.numerics import quantize_multiplier

    _, qm = digits
    d = qm.layers[0]
    single = d.requant("single")
    m, s = quantize_multiplier(d.real_multiplier())
    assert np.array_equal(single["multiplier"], m) and np.array_equal(single["shift"], s)
    double = d.requant("double")     # the right shift folded into the multiplier
    assert np.all(double["shift"] == 0) and np.all(s < 0)
    assert np.all(np.abs(double["multiplier"] * 2.0 ** -31 - d.real_multiplier())
                  <= 2.0 ** -31)


def test_digits_program_on_the_model_board(digits, split):
    _, qm = digits
    _, x_te, _, _ = split
    X = qm.quantize_input(x_te[:96])
    g = to_graph(qm, 32, board_config(str(BOARD)))
    with open_board(f"model://{BOARD}", progress=False) as b:
        prog = b.compile(g)
        got = np.concatenate([prog(x=X[i:i + 32])["y"] for i in range(0, 96, 32)])
    assert np.array_equal(got, qm.golden(X))
    assert list(prog.stats["op_cycles"]) == ["MatMul_0", "MatMul_0.col", "MatMul_1",
                                             "MatMul_1.col", "MatMul_2", "MatMul_2.col"]


def test_col_output_reads_fewer_link_bytes(digits):
    """The logits stored in columns cross the link without each row's padding (10 codes in a
    32-byte row): fewer link bytes per call than the same graph with a row output."""
    _, qm = digits
    cfg = board_config(str(BOARD))
    X = np.random.default_rng(1).integers(-128, 128, (32, 64))
    col = to_graph(qm, 32, cfg)
    row = to_graph(qm, 32, cfg)
    row.output_layouts.clear()
    bytes_ = {}
    with open_board(f"model://{BOARD}", progress=False) as b:
        for name, g in (("col", col), ("row", row)):
            prog = b.compile(g)
            assert np.array_equal(prog(x=X)["y"], qm.golden(X))
            bytes_[name] = prog.stats["link_bytes"]
    assert bytes_["col"] < bytes_["row"] - 32 * 20, bytes_


def test_graph_file_round_trip(digits, tmp_path):
    _, qm = digits
    g = to_graph(qm, 4, None)
    graphfile.save(g, tmp_path / "g.json", {"k": 1})
    g2, meta = graphfile.load(tmp_path / "g.json")
    X = np.random.default_rng(0).integers(-128, 128, (4, 64))
    assert meta == {"k": 1}
    assert np.array_equal(g.evaluate(x=X)["y"], g2.evaluate(x=X)["y"])


def test_compile_and_board_run_cli(tmp_path, split):
    _, x_te, _, y_te = split
    out = tmp_path / "c"
    r = tf("compile", str(MODEL), "--board", str(BOARD), "--out", str(out), "--rows", "16")
    assert r.returncode == 0, r.stderr
    assert "link bytes per image" in r.stdout and "MatMul_0" in r.stdout
    rep = json.loads((out / "report.json").read_text())
    assert rep["rows"] == 16 and rep["cycles_per_image"] > 0
    np.savez(tmp_path / "x.npz", x=x_te[:40])
    r = tf("board", "run", "--url", f"model://{BOARD}", "--graph", str(out / "graph.json"),
           "--inputs", str(tmp_path / "x.npz"), "--out", str(tmp_path / "y.npz"))
    assert r.returncode == 0, r.stderr
    y = np.load(tmp_path / "y.npz")
    qm = read(MODEL)
    assert np.array_equal(y["y"], qm.golden(qm.quantize_input(x_te[:40])))
    assert y["y_float"].shape == (40, 10)


def test_compile_refuses_a_design_without_a_copy_unit(tmp_path):
    """The demo design's MAC epilogue cannot take per-channel parameters for an operand read
    in columns, and it has no copy unit: one line, exit 2."""
    r = tf("compile", str(MODEL), "--board", str(ROOT / "configs/demo.yaml"), "--out",
           str(tmp_path / "c"))
    err = r.stderr.strip()
    assert r.returncode == 2 and "\n" not in err and "copy unit" in err


# -- what cannot be lowered: one line naming the node and what is allowed ---------------------


def _conv(**attrs):
    b = Builder(64)
    t = b.quant("x", 0.01, 0, 8, True)
    w = b.quant(b.const(np.ones((4, 1, 3, 3)), "w"), 0.1, 0, 4, True, True)
    y = b.op("Conv", [t, w], **attrs)
    m = b.model(y, [1, 4, 8, 8])
    m.graph.input[0].type.tensor_type.shape.dim[1].dim_value = 1
    for d in (8, 8):
        m.graph.input[0].type.tensor_type.shape.dim.add().dim_value = d
    return m


def _add_two_activations():
    b = Builder(8)
    t = b.quant("x", 0.01, 0, 8, True)
    u = b.quant(t, 0.02, 0, 8, True)
    return b.model(b.op("Add", [t, u]), [1, 8])


def _computed_scale():
    """A dynamic quantizer: its scale computed from the tensor at run time."""
    b = Builder(8)
    s = b.op("Abs", [b.op("ReduceMax", ["x"], keepdims=0)])
    t = b.quant("x", None, 0, 8, True, scale_input=s)
    w = b.quant(b.const(np.ones((8, 4)), "w"), 0.1, 0, 4, True, True)
    return b.model(b.quant(b.op("MatMul", [t, w]), 0.1, 0, 8, True), [1, 4])


def _float_weights():
    b = Builder(8)
    t = b.quant("x", 0.01, 0, 8, True)
    y = b.op("MatMul", [t, b.const(np.ones((8, 4)), "w")])
    return b.model(b.quant(y, 0.1, 0, 8, True), [1, 4])


def _float_bias():
    b = Builder(8)
    t = b.quant("x", 0.01, 0, 8, True)
    w = b.quant(b.const(np.ones((8, 4)), "w"), 0.1, 0, 4, True, True)
    y = b.op("Add", [b.op("MatMul", [t, w]), b.const(np.ones(4), "b")])
    return b.model(b.quant(y, 0.1, 0, 8, True), [1, 4])


def _float_output():
    b = Builder(8)
    t = b.quant("x", 0.01, 0, 8, True)
    w = b.quant(b.const(np.ones((8, 4)), "w"), 0.1, 0, 4, True, True)
    return b.model(b.op("MatMul", [t, w]), [1, 4])


def _float_input():
    b = Builder(8)
    w = b.quant(b.const(np.ones((8, 4)), "w"), 0.1, 0, 4, True, True)
    y = b.op("MatMul", ["x", w])
    return b.model(b.quant(y, 0.1, 0, 8, True), [1, 4])


def _mlp(**kw):
    return lambda: mlp(np.random.default_rng(0), [8, 6, 4], **kw)


REFUSED = {
    "stride_2": (lambda: _conv(strides=[2, 2], pads=[1, 1, 1, 1]), "strides [2, 2]"),
    "dilation_2": (lambda: _conv(dilations=[2, 2], pads=[2, 2, 2, 2]), "dilations [2, 2]"),
    "groups": (lambda: _conv(group=2), "group 2"),
    "add_of_two_activations": (_add_two_activations, "Add of two activations"),
    "computed_scale": (_computed_scale, "input scale"),
    "float_weights": (_float_weights, "float tensor left in the graph"),
    "float_bias": (_float_bias, "float tensor left in the graph"),
    "float_output": (_float_output, "float tensor"),
    "float_input": (_float_input, "float tensor"),
    "bit_width_9": (_mlp(wbits=9), "bitwidth 9"),
    "bit_width_1": (_mlp(abits=(1,)), "bitwidth 1"),
    "activation_floor": (_mlp(a_rounding="FLOOR"), "rounding_mode 'FLOOR'"),
}


@pytest.mark.parametrize("case", REFUSED)
def test_refused_constructs(case):
    make, words = REFUSED[case]
    with pytest.raises(QonnxError) as err:
        read(make())
    msg = str(err.value)
    assert "\n" not in msg and words in msg and "allowed" in msg, msg


def test_unsigned_8bit_activation_does_not_fit_int8():
    qm = read(mlp(np.random.default_rng(0), [8, 6, 4], abits=(8,)))
    with pytest.raises(QonnxError, match="do not fit the MAC array's int8"):
        to_graph(qm, 4)


def test_cli_errors_are_one_line(tmp_path):
    import onnx

    bad = tmp_path / "stride.onnx"
    onnx.save(_conv(strides=[2, 2], pads=[1, 1, 1, 1]), str(bad))
    r = tf("compile", str(bad), "--board", str(BOARD), "--out", str(tmp_path / "o"))
    err = r.stderr.strip()
    assert r.returncode == 2 and "\n" not in err and "strides" in err, err
    r = tf("board", "run", "--url", f"model://{BOARD}", "--graph", str(BOARD), "--inputs",
           str(bad), "--out", str(tmp_path / "y.npz"))
    assert r.returncode == 2 and "not JSON" in r.stderr, r.stderr


# -- the network unit: a pure MLP as the dataflow unit with requant layers ---------------------


def test_digits_as_a_network_unit_equals_the_golden(digits, split):
    from generators.network import family
    from generators.qonnx.network import to_network

    _, qm = digits
    net = to_network(qm, reuse_factor=64)
    assert [la.kind for la in net.layers] == ["dense", "requant"] * 3
    p = family.params(net)
    X = qm.quantize_input(split[1])
    assert np.array_equal(family.golden(p, {"x": X})["y"], qm.golden(X))
    assert p.stage_cycles() == [64 + 10 + 2, 64 + 10 + 2, 32 + 10 + 2]   # C + L + 2


def test_requant_layer_refusals():
    from generators.config import parse_config
    from generators.errors import ConfigError

    q = {"format": "int32", "rounding": "trn", "overflow": "wrap"}
    dense = {"kind": "dense", "name": "d", "weight": dict(q, format="int4"), "bias": q,
             "accum": q, "result": q, "w": [[1, 2], [3, 4]], "b": [0, 0]}
    rq = {"kind": "requant", "name": "r", "result": dict(q, format="uint4"), "b": [0, 0],
          "multiplier": [1 << 30, 1 << 30], "shift": [-3, -3]}
    base = {"name": "n", "unit": "network", "input": dict(q, format="int8")}
    parse_config({**base, "layers": [dense, rq]}, "ok")
    bad = [([dense, dict(rq, shift=[-3])], "1 codes but multiplier has 2"),
           ([dense, dict(rq, multiplier=[1 << 31, 1])], "allowed: 0..2147483647"),
           ([dense, dict(rq, zero_point=16)], "allowed: 0..15"),
           ([dense, {"kind": "relu", "name": "x", "result": q}, rq], "right after a dense"),
           ([dict(dense, result=dict(q, format="fixed<16,8>")), rq], "accumulator")]
    for layers, words in bad:
        with pytest.raises(ConfigError) as err:
            parse_config({**base, "layers": layers}, "cfg")
        assert words in str(err.value) and "\n" not in str(err.value), str(err.value)


@pytest.mark.regress
def test_the_training_script_writes_the_shipped_model(tmp_path):
    """models/digits/train.py is seeded: it writes the shipped file's weights and scales
    again (about a minute of Brevitas QAT)."""
    import onnx
    import train
    from onnx import numpy_helper

    with warnings.catch_warnings():     # brevitas' and torch's deprecation warnings
        warnings.simplefilter("ignore")
        assert train.main(["--out", str(tmp_path)]) == 0
    new, old = onnx.load(str(tmp_path / "digits_mlp.onnx")), onnx.load(str(MODEL))
    a = {t.name: numpy_helper.to_array(t) for t in new.graph.initializer}
    b = {t.name: numpy_helper.to_array(t) for t in old.graph.initializer}
    assert a.keys() == b.keys()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert json.loads((tmp_path / "digits_mlp.json").read_text())["float_accuracy"] == \
        json.loads((MODEL.parent / "digits_mlp.json").read_text())["float_accuracy"]


def test_compile_network_config_runs_as_the_golden(tmp_path, digits, split):
    """``tensorfab compile --network``: the model as a `unit: network` config, which
    ``tensorfab run`` runs (golden backend here; the RTL in test_qonnx_rtl.py)."""
    _, qm = digits
    r = tf("compile", str(MODEL), "--network", "--reuse-factor", "64", "--out",
           str(tmp_path))
    assert r.returncode == 0, r.stderr
    X = qm.quantize_input(split[1][:50])
    np.savez(tmp_path / "x.npz", x=X)
    r = tf("run", str(tmp_path / "digits_mlp.yaml"), "--inputs", str(tmp_path / "x.npz"),
           "--out", str(tmp_path / "y.npz"))
    assert r.returncode == 0, r.stderr
    assert np.array_equal(np.load(tmp_path / "y.npz")["y"], qm.golden(X))
    r = tf("compile", str(MODEL), "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "--network" in r.stderr
