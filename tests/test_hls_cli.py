"""`tensorfab hls`: a model file becomes a network config plus RTL that `tensorfab run` runs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

pytest.importorskip("hls4ml")

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
    assert "Traceback" not in r.stderr
