"""The family registry is the one list of unit families: a new family is one package and one
``register`` line, and every path (configs, boards, ``tensorfab run`` on both backends,
``generate``, the host driver) takes it with no edit anywhere else. The family here is
``tests/relu_unit``; nothing outside that package and this file knows about it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import relu_unit

from generators import registry
from generators.config import BoardConfig, load_config
from generators.errors import ConfigError, UserError
from generators.family import UnitFamily
from host import open_board
from tensorfab.cli import main

RELU = "name: relu4\nunit: relu\nfmt: int6\nlanes: 4\n"


@pytest.fixture
def relu_family():
    fam = registry.register(relu_unit.family)  # the family's one registry line
    yield fam
    registry.unregister("relu")


@pytest.fixture
def relu_cfg(tmp_path, relu_family):
    path = tmp_path / "relu4.yaml"
    path.write_text(RELU)
    return path


def test_builtin_families_follow_the_protocol():
    assert registry.names() == tuple(registry.BUILTIN)
    for fam in registry.families():
        assert isinstance(fam, UnitFamily) and not type(fam).__abstractmethods__
        assert fam.config.model_fields["unit"].default == fam.name


def test_a_registered_family_is_a_config_unit(relu_cfg):
    cfg = load_config(relu_cfg)
    assert isinstance(cfg, relu_unit.ReluParams) and cfg.lanes == 4 and str(cfg.fmt) == "int6"
    assert "relu" in registry.names()
    bad = relu_cfg.with_name("bad.yaml")
    bad.write_text(RELU + "lane: 2\n")
    with pytest.raises(ConfigError, match=r"lane: unknown key, did you mean 'lanes'\? "
                                          r"\(allowed: fmt, lanes, name, unit\)"):
        load_config(bad)


def test_an_unregistered_unit_names_every_registered_one(tmp_path, relu_family):
    path = tmp_path / "x.yaml"
    path.write_text("name: x\nunit: reluu\n")
    with pytest.raises(ConfigError, match=r"unit: 'reluu' is not a unit \(allowed: mac_array, "
                                          r"sparse_chain, softmax, gelu, requant, network, copy, "
                                          r"relu\)"):
        load_config(path)
    registry.unregister("relu")
    path.write_text(RELU)
    with pytest.raises(ConfigError, match="'relu' is not a unit"):
        load_config(path)
    registry.register(relu_unit.family)  # the fixture unregisters it again


def test_register_checks_the_protocol():
    class Half(UnitFamily):
        name = "half"
        config = relu_unit.ReluParams

        def component(self, params):
            return None

    with pytest.raises(TypeError):
        registry.register(Half())  # abstract methods left: cannot even be made
    with pytest.raises(TypeError, match="not a UnitFamily"):
        registry.register(object())
    with pytest.raises(TypeError, match="unit: Literal"):
        registry.register(type("Other", (relu_unit.ReluFamily,), {"name": "other"})())
    with pytest.raises(ValueError, match="built-in"):
        registry.unregister("mac_array")


def test_run_golden_and_generate(tmp_path, relu_cfg, capsys):
    x = np.arange(-32, 32).reshape(8, 8)
    np.savez(tmp_path / "in.npz", x=x)
    assert main(["run", str(relu_cfg), "--inputs", str(tmp_path / "in.npz"),
                 "--out", str(tmp_path / "out.npz")]) == 0
    assert np.array_equal(np.load(tmp_path / "out.npz")["y"], np.where(x < 0, 0, x))
    assert main(["generate", str(relu_cfg), "--out", str(tmp_path / "rtl")]) == 0
    man = json.loads((tmp_path / "rtl" / "relu4.json").read_text())
    assert man["unit"] == "relu" and man["config"]["fmt"] == "int6"
    assert "module relu4" in (tmp_path / "rtl" / "relu4.v").read_text()
    # a bad array is one line, exit 2, as for every family
    np.savez(tmp_path / "bad.npz", x=np.array([40]))
    assert main(["run", str(relu_cfg), "--inputs", str(tmp_path / "bad.npz"),
                 "--out", str(tmp_path / "o2.npz")]) == 2
    assert "value 40" in capsys.readouterr().err


@pytest.mark.rtl
def test_run_rtl_equals_golden(tmp_path, relu_cfg):
    x = np.arange(-32, 32)[np.random.default_rng(3).permutation(64)][:45]
    np.savez(tmp_path / "in.npz", x=x)
    assert main(["run", str(relu_cfg), "--inputs", str(tmp_path / "in.npz"), "--backend",
                 "rtl", "--out", str(tmp_path / "out.npz"), "--stats",
                 str(tmp_path / "s.json")]) == 0
    assert np.array_equal(np.load(tmp_path / "out.npz")["y"], np.maximum(x, 0))
    stats = json.loads((tmp_path / "s.json").read_text())
    assert stats["cycles"] == stats["expected_cycles"] == 12 + 1


def test_a_board_serves_it_and_the_host_splits_it(tmp_path, relu_family):
    """A board design with the new unit: the reference board serves it and the host cuts an
    input larger than its buffers into several RUNs (the family's ``split``)."""
    path = tmp_path / "board.yaml"
    path.write_text("name: rb\nboard: ulx3s\nbuffer_bytes: 256\nunits:\n"
                    "  - {name: r, unit: relu, fmt: int8, lanes: 4}\n")
    assert isinstance(load_config(path), BoardConfig)
    x = np.random.default_rng(1).integers(-128, 128, (30, 50))
    with open_board(f"model://{path}") as board:
        y = board.run("r", {"x": x})["y"]
        assert board.last_run["runs"] > 1
        with pytest.raises(UserError, match="has no modes"):
            board.run("r", {"x": x}, mode="2:4")
    assert np.array_equal(y, np.maximum(x, 0))
