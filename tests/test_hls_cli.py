"""`tensorfab hls`: a model file becomes a network config plus RTL that `tensorfab run` runs."""

from __future__ import annotations

import json

import hls4ml  # noqa: F401  (a main dependency: a broken install fails, never skips)
import numpy as np
import pytest
import yaml
from test_cli import tf

from generators.hls.examples import mlp


def test_hls_writes_config_and_rtl_then_run_golden(tmp_path):
    import onnx

    onnx.save(mlp([6, 5, 3], seed=1), tmp_path / "small.onnx")
    hcfg = tmp_path / "hls.yaml"
    hcfg.write_text(yaml.safe_dump({"Model": {"Precision": "fixed<12,4>", "ReuseFactor": 2}}))
    r = tf("hls", tmp_path / "small.onnx", "--out", tmp_path / "auto")
    assert r.returncode == 0, r.stderr
    assert "'auto' resolved to fixed<" in r.stderr  # auto precisions are reported
    r = tf("hls", tmp_path / "small.onnx", "--out", tmp_path / "out", "--reuse-factor", "3",
           "--hls4ml-config", hcfg)
    assert r.returncode == 0, r.stderr
    cfg = yaml.safe_load((tmp_path / "out" / "small_net.yaml").read_text())
    assert cfg["input"]["format"] == "fixed<12,4>"  # the given hls4ml configuration was used
    kinds = [x["kind"] for x in cfg["layers"]]
    assert cfg["unit"] == "network" and kinds.count("dense") == 2 and "relu" in kinds
    assert all(x["reuse_factor"] == 3 for x in cfg["layers"] if x["kind"] == "dense")
    manifest = json.loads((tmp_path / "out" / "small_net.json").read_text())
    assert manifest["unit"] == "network" and manifest["top"] == "small_net"
    assert (tmp_path / "out" / "small_net.v").read_text().count("module small_net") == 1

    x = np.arange(-12, 12, dtype=np.int64).reshape(4, 6) * 97
    np.savez(tmp_path / "in.npz", x=x)
    r = tf("run", tmp_path / "out" / "small_net.yaml", "--inputs", tmp_path / "in.npz",
           "--out", tmp_path / "y.npz")
    assert r.returncode == 0, r.stderr
    assert np.load(tmp_path / "y.npz")["y"].shape == (4, 3)


def test_hls_bad_inputs_exit_2_one_line(tmp_path):
    from onnx import TensorProto, helper, save

    r = tf("hls", tmp_path / "missing.onnx", "--out", tmp_path / "o")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1] == (
        f"{tmp_path / 'missing.onnx'}: no such file (allowed: a .onnx or .keras model file)")
    node = helper.make_node("Sigmoid", ["x"], ["y"])
    g = helper.make_graph([node], "sig", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, 4])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, [1, 4])])
    save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]),
         tmp_path / "sig.onnx")
    r = tf("hls", tmp_path / "sig.onnx", "--out", tmp_path / "o")
    assert r.returncode == 2
    last = r.stderr.strip().splitlines()[-1]
    assert "Sigmoid" in last and "is not supported (allowed: Input, Dense" in last
    assert "Softmax" in last and "Activation(gelu)" in last
    assert "Traceback" not in r.stderr


def _tiny_softmax(tmp_path):
    """A 6->5->3 MLP with a final softmax and an hls4ml configuration that fits the unit."""
    import onnx

    from generators.hls.frontend import convert

    model = mlp([6, 5, 3], seed=1, name="tiny", softmax=True)
    onnx.save(model, tmp_path / "tiny.onnx")
    _, cfg = convert(model, output_dir=str(tmp_path / "prj"), name="tiny")
    for lname, lc in cfg["LayerName"].items():
        prec = lc.get("Precision", {})
        if lname in ("MatMul_1", "Dense_MatMul_1", "Add_1", "bn_Add_1"):
            prec["result"] = "fixed<10,4,RND,SAT>"
        if lname.startswith("Softmax"):
            prec["result"] = "ufixed<12,0,RND,SAT>"
    (tmp_path / "tiny_hls4ml.yaml").write_text(yaml.safe_dump(cfg))
    return tmp_path / "tiny.onnx", tmp_path / "tiny_hls4ml.yaml"


def test_hls_board_design_runs_on_model_board(tmp_path):
    from generators.config import load_config
    from generators.units import family
    from host import open_board

    onnx_path, hcfg = _tiny_softmax(tmp_path)
    r = tf("hls", onnx_path, "--hls4ml-config", hcfg, "--out", tmp_path / "out",
           "--board", "ulx3s")
    assert r.returncode == 0, r.stderr
    assert "UnusedElaboratable" not in r.stderr
    bpath = tmp_path / "out" / "tiny_board.yaml"
    bcfg = load_config(bpath)
    assert bcfg.board == "ulx3s" and [u.unit for u in bcfg.units] == ["network"]
    assert bcfg.units[0].layers[-1].kind == "softmax"
    fam = family("network")
    p = fam.params(bcfg.units[0])
    x = np.arange(-30, 30, dtype=np.int64).reshape(10, 6) * 51
    with open_board(f"model://{bpath}") as board:
        y = board.run("tiny", {"x": x})["y"]
    assert np.array_equal(y, fam.golden(p, {"x": x})["y"])

    r = tf("hls", onnx_path, "--out", tmp_path / "o2", "--board", "zedboard")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1] == (
        "--board 'zedboard': not a board (allowed: ulx3s, icebreaker, pynq_z2, alveo_u280)")


@pytest.mark.rtl
def test_hls_board_design_served(tmp_path):
    """The board design of a lowered network (with its softmax stage) on the simulated board:
    one inference over socket:// equals the golden model."""
    import signal
    import socket
    import subprocess
    import sys

    from generators.config import load_config
    from generators.units import family
    from host import open_board

    onnx_path, hcfg = _tiny_softmax(tmp_path)
    r = tf("hls", onnx_path, "--hls4ml-config", hcfg, "--out", tmp_path / "out",
           "--board", "ulx3s")
    assert r.returncode == 0, r.stderr
    bpath = tmp_path / "out" / "tiny_board.yaml"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "tensorfab", "serve", str(bpath),
                             "--port", str(port)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()
        assert url == f"socket://127.0.0.1:{port}", url
        x = np.arange(-21, 21, dtype=np.int64).reshape(7, 6) * 73
        with open_board(url) as board:
            y = board.run("tiny", {"x": x})["y"]
        fam = family("network")
        p = fam.params(load_config(bpath).units[0])
        assert np.array_equal(y, fam.golden(p, {"x": x})["y"])
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err


def test_hls_examples_write_models(tmp_path):
    """`python -m generators.hls.examples` writes models that `tensorfab hls` lowers."""
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "generators.hls.examples", "--out",
                        str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    for name in ("jet_mlp", "ffn"):
        assert (tmp_path / f"{name}.onnx").exists()
    hcfg = yaml.safe_load((tmp_path / "ffn_hls4ml.yaml").read_text())
    assert hcfg["LayerName"]["Gelu_0"]["Precision"]["result"] == "fixed<8,3,RND,SAT>"
    r = tf("hls", tmp_path / "jet_mlp.onnx", "--out", tmp_path / "auto")
    assert r.returncode == 2  # hls4ml's 'auto' types are too wide for the softmax unit
    assert "Softmax_0" in r.stderr.strip().splitlines()[-1]
