"""HLS flow, plain ONNX exports: MLPs exported in the test with ``torch.onnx.export`` (each
``nn.Linear`` a ``Gemm`` node) go through ``tensorfab hls`` with no extra step (the front end
runs qonnx's cleanup and ``GemmToMatMul`` itself), and the lowered network equals hls4ml's own
``predict()`` bit for bit (the logits before a final softmax: ``trace()``, as for the jet MLP
example); one of them as RTL on Verilator too. Also: the hls4ml configuration a user writes
(``--layers`` lists the names and precision keys; an unknown key, layer name or precision key
is exit 2 with one line; every precision error names the entry to set).

hls4ml's ``compile()`` runs g++ (10-15 s a model).
"""

from __future__ import annotations

import contextlib
import io
import warnings

import hls4ml  # noqa: F401  (a main dependency: a broken install fails, never skips)
import numpy as np
import pytest
import torch
import yaml
from network_cases import trace_before
from test_cli import tf

from generators.config import config_to_dict, load_config
from generators.errors import UserError
from generators.hls import lower, run
from generators.hls.frontend import convert, layer_table
from generators.hls.model import run_until
from generators.network.layers import DenseLayer, ReluLayer, SoftmaxLayer

N_IN = 6


def _module(sizes, softmax=False, bias=True, seed=0):
    """Linear/ReLU stack of ``sizes`` (and a final Softmax), seeded; ``bias=False``: the first
    Linear has none."""
    torch.manual_seed(seed)
    mods = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:], strict=False)):
        mods.append(torch.nn.Linear(a, b, bias=bias or i > 0))
        if i < len(sizes) - 2:
            mods.append(torch.nn.ReLU())
    if softmax:
        mods.append(torch.nn.Softmax(dim=-1))
    return torch.nn.Sequential(*mods).eval()


def _export(module, path, dynamo=True):
    """``torch.onnx.export`` as a user calls it (the dynamo exporter is torch's default)."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.zeros(1, module[0].in_features),), str(path),
                          dynamo=dynamo)
    import onnx

    ops = [n.op_type for n in onnx.load(str(path)).graph.node]
    assert "Gemm" in ops  # what hls4ml's ONNX reader alone refuses
    return path


def _inputs(net, rng, n=1000):
    fmt = net.input.format
    x = fmt.quantize(rng.normal(0, 2, (n, net.n_in)))
    x[0], x[1], x[2] = fmt.min_code, fmt.max_code, 0
    return x


def _predict_codes(graph, net, x):
    xf = np.ascontiguousarray(net.input.format.dequantize(x))
    y = np.asarray(graph.predict(xf), dtype=np.float64).reshape(len(x), -1)
    codes = net.out.format.quantize(y)
    assert np.array_equal(net.out.format.dequantize(codes), y)  # every code exact
    return codes


def _softmax_config(path, tmp_path, last: int):
    """hls4ml's configuration of the export with the precisions the softmax unit takes: the
    last Dense's (``MatMul_<last>`` and its bias ``Add_<last>``) result 12 bits, the softmax's
    a probability format."""
    _, cfg = convert(path, output_dir=str(tmp_path / "base"), name="base")
    for lname, lc in cfg["LayerName"].items():
        if lname in (f"MatMul_{last}", f"Add_{last}"):
            lc["Precision"]["result"] = "fixed<12,5,RND,SAT>"
        if lname.startswith("Softmax"):
            lc["Precision"]["result"] = "ufixed<16,0,RND,SAT>"
    for extra in [n for n in cfg["LayerName"] if n.startswith(("Dense_", "bn_"))]:
        del cfg["LayerName"][extra]  # the names hls4ml's optimizers add: they copy these
    hpath = tmp_path / "hls.yaml"
    hpath.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return hpath


CASES = {
    # name: (sizes, softmax, bias, dynamo)
    "relu_stack": ([N_IN, 16, 8, 4], False, True, True),
    "no_bias_first": ([N_IN, 8, 3], False, False, True),
    "legacy_exporter": ([N_IN, 8, 3], False, True, False),
    "softmax": ([N_IN, 16, 8, 5], True, True, True),
}


@pytest.mark.parametrize("case", list(CASES))
def test_torch_export_through_cli_equals_hls4ml(case, tmp_path, rng):
    sizes, softmax, bias, dynamo = CASES[case]
    path = _export(_module(sizes, softmax, bias), tmp_path / "mlp.onnx", dynamo)
    args = ["hls", path, "--out", tmp_path / "out"]
    hcfg = None
    if softmax:
        hcfg = _softmax_config(path, tmp_path, len(sizes) - 2)
        args += ["--hls4ml-config", hcfg]
    r = tf(*args)
    assert r.returncode == 0, r.stderr
    cli_net = load_config(tmp_path / "out" / "mlp.yaml")
    # the same network from Python, with hls4ml's C++ emulation to compare against
    user = yaml.safe_load(hcfg.read_text()) if hcfg else None
    graph, _ = convert(path, hls4ml_config=user, output_dir=str(tmp_path / "py"), name="mlp")
    net = lower(graph, name="mlp", source="mlp.onnx")
    assert config_to_dict(cli_net) == config_to_dict(net)
    kinds = [type(x) for x in net.layers]
    dense = [DenseLayer, ReluLayer] * (len(sizes) - 2) + [DenseLayer]
    assert kinds[:len(dense)] == dense or softmax  # the softmax case keeps its bias Add apart
    assert kinds.count(DenseLayer) == len(sizes) - 1
    w0 = np.asarray(net.layers[0].w_codes)
    assert w0.shape == (N_IN, sizes[1]) and np.count_nonzero(w0) > w0.size // 2
    graph.compile()
    x = _inputs(net, rng)
    if softmax:
        assert kinds[-1] is SoftmaxLayer
        logits_hls, _ = trace_before(graph, net, x, SoftmaxLayer)
        logits = run_until(net, x, SoftmaxLayer)
        assert np.array_equal(logits, logits_hls), f"{int((logits != logits_hls).sum())} differ"
        assert len(np.unique(logits)) > 100
        from generators.softmax.model import softmax as unit_softmax

        assert np.array_equal(run(net, x), unit_softmax(net.stages[-1].unit, logits))
    else:
        expect = _predict_codes(graph, net, x)
        got = np.asarray(run(cli_net, x), dtype=np.int64)
        assert np.array_equal(got, expect), f"{int((got != expect).sum())} codes differ"
        assert len(np.unique(expect)) > 100
    # the float model agrees too (the export is the module, not something else)
    xf = net.input.format.dequantize(x[3:50]).astype(np.float32)
    with torch.no_grad():
        ref = _module(sizes, softmax, bias)(torch.from_numpy(xf)).numpy()
    got_f = net.out.format.dequantize(np.asarray(run(net, x[3:50])))
    assert np.abs(got_f - ref).max() < (0.02 if softmax else 0.05)


@pytest.mark.rtl
def test_torch_export_rtl_equals_hls4ml_predict(tmp_path, rng):
    """A torch-exported MLP with narrow types (rounding, saturation) as RTL on Verilator:
    its output equals hls4ml's ``predict()`` bit for bit, in the analytic cycle count."""
    from generators.network import family
    from sim.unit import simulate

    path = _export(_module([N_IN, 8, 3]), tmp_path / "tmlp.onnx")
    _, cfg = convert(path, output_dir=str(tmp_path / "base"), name="tmlp")
    for lname, lc in cfg["LayerName"].items():
        prec = lc.get("Precision", {})
        if lname.startswith(("MatMul_", "Add_")) and not lname.endswith("param0"):
            prec.update({"result": "fixed<10,4,RND,SAT>"})
            if "accum" in prec:
                prec["accum"] = "fixed<18,8,TRN,WRAP>"
        if lname.startswith("Relu"):
            prec["result"] = "ufixed<8,3,RND,SAT>"
    cfg["Model"]["ReuseFactor"] = 2
    graph, _ = convert(path, hls4ml_config=cfg, output_dir=str(tmp_path / "n"), name="tmlp")
    net = lower(graph, name="tmlp")
    graph.compile()
    p = family.params(net)
    x = _inputs(net, rng, 300)
    expect = _predict_codes(graph, net, x)
    arrays = family.check_inputs(p, {"x": x})
    res = simulate(family, p, arrays, sim="verilator", name=net.name, config={"name": net.name})
    got = res.outputs["y"]
    assert np.array_equal(got, expect), f"{int((got != expect).sum())} codes differ"
    assert res.cycles == p.expected_cycles(300)
    assert len(np.unique(expect)) > 50


# -- the hls4ml configuration a user writes ---------------------------------------------------


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    d = tmp_path_factory.mktemp("export")
    return _export(_module([N_IN, 8, 3], softmax=True), d / "net.onnx")


def test_layers_lists_names_classes_and_precision_keys(exported, tmp_path):
    r = tf("hls", exported, "--layers")
    assert r.returncode == 0, r.stderr
    assert not (tmp_path / "out").exists()
    rows = {line.split()[0]: line for line in r.stdout.splitlines()[2:]}
    assert "LayerName.<name>.Precision.<key>" in r.stdout.splitlines()[0]
    # the reader's names (what a configuration is keyed by), each with its keys
    assert "MatMul" in rows["MatMul_0"].split()[1]
    assert "result, accum, weight, bias" in rows["MatMul_0"]  # weight/bias: of its Dense
    assert "Dense_MatMul_0 (Dense)" in rows["MatMul_0"]
    assert "exp_table" in rows["Softmax_0"] and "Softmax_0 (Softmax)" in rows["Softmax_0"]
    assert "made by hls4ml from MatMul_1" in rows["Dense_MatMul_1"]
    # the listing is layer_table's, which names every layer of the converted graph
    graph, _ = convert(exported, output_dir=str(tmp_path / "p"))
    table = layer_table(graph)
    assert set(rows) == {row.name for row in table}
    finals = {x.name for x in graph.get_layers()}
    assert finals <= {b for row in table for b in row.becomes}


@pytest.mark.parametrize("text,line", [
    ({"Modle": {"Precision": "fixed<8,3>"}},
     "unknown key 'Modle' (did you mean 'Model'?) (allowed: Model, LayerName, LayerType, "),
    ({"LayerName": {"MatMul_O": {"Precision": {"result": "fixed<8,3>"}}}},
     "unknown LayerName 'MatMul_O' (did you mean 'MatMul_1' or 'MatMul_0'"),
    ({"LayerName": {"MatMul_0": {"Precision": {"reslt": "fixed<8,3>"}}}},
     "LayerName 'MatMul_0': unknown Precision key 'reslt' (did you mean 'result'?) "
     "(allowed: default, result, accum, weight, bias)"),
    ({"LayerType": {"Dens": {"Precision": "fixed<8,3>"}}},
     "unknown LayerType 'Dens' (did you mean 'Dense'"),
])
def test_unknown_config_names_exit_2_one_line(exported, tmp_path, text, line):
    hcfg = tmp_path / "user.yaml"
    hcfg.write_text(yaml.safe_dump(text))
    r = tf("hls", exported, "--hls4ml-config", hcfg, "--out", tmp_path / "out")
    assert r.returncode == 2, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith(f"{hcfg}: {line}"), last
    assert "Traceback" not in r.stderr and not (tmp_path / "out" / "net.yaml").exists()
    with pytest.raises(UserError, match="the hls4ml configuration: "):
        convert(exported, hls4ml_config=text, output_dir=str(tmp_path / "p"))


def test_precision_errors_name_the_entry_to_set(exported, tmp_path):
    """hls4ml's 'auto' types are too wide for the softmax unit: the message names the entry
    to set (the layer before's result); set it, and a wrong softmax result names the
    softmax's own entry; set that too, and the model lowers."""
    graph, cfg = convert(exported, output_dir=str(tmp_path / "a"))
    with pytest.raises(UserError) as err:
        lower(graph)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("layer 'Softmax_0' (Softmax): input fixed<")
    assert "set LayerName.MatMul_1.Precision.result (the result of the layer before)" in msg
    cfg = {"Model": cfg["Model"], "LayerName": {
        "MatMul_1": {"Precision": {"result": "fixed<12,5,RND,SAT>"}},
        "Add_1": {"Precision": {"result": "fixed<12,5,RND,SAT>"}},
        "Softmax_0": {"Precision": {"result": "fixed<16,6>"}}}}
    graph, _ = convert(exported, hls4ml_config=cfg, output_dir=str(tmp_path / "b"))
    with pytest.raises(UserError) as err:
        lower(graph)
    msg = str(err.value)
    assert "is not a probability format" in msg
    assert "set LayerName.Softmax_0.Precision.result in the hls4ml configuration" in msg
    cfg["LayerName"]["Softmax_0"]["Precision"]["result"] = "ufixed<16,0,RND,SAT>"
    graph, _ = convert(exported, hls4ml_config=cfg, output_dir=str(tmp_path / "c"))
    net = lower(graph)
    assert str(net.stages[-1].inp.format) == "fixed<12,5>"
