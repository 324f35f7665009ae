"""Host driver on the softmax, GELU and network units of a design (model:// reference board):
results equal the golden models, including problems split into several RUNs."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from generators.config import load_config
from generators.errors import ArrayError
from generators.units import family
from host import open_board

ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent
DEMO = ROOT / "configs" / "ulx3s_units.yaml"


@pytest.fixture(scope="module")
def design(tmp_path_factory):
    units = [yaml.safe_load((ROOT / "configs" / f"{n}.yaml").read_text())
             for n in ("softmax64", "gelu8", "gelu16")]
    path = tmp_path_factory.mktemp("nl") / "nl.yaml"
    path.write_text(yaml.safe_dump({"name": "nl", "board": "ulx3s", "buffer_bytes": 4096,
                                    "units": units}))
    return path, load_config(path)


def _codes(rng, fmt, shape):
    return rng.integers(fmt.min_code, fmt.max_code + 1, shape)


def test_softmax_whole_and_split(design, rng):
    path, cfg = design
    p = family("softmax").params(cfg.units[0])
    with open_board(f"model://{path}") as board:
        for shape in [(3, 1), (5, 64), (400, 37)]:  # the last needs several RUNs
            x = _codes(rng, p.inp, shape)
            y = board.softmax(x)
            assert np.array_equal(y, family("softmax").golden(p, {"x": x})["y"])
        assert board.last_run["runs"] > 1


@pytest.mark.parametrize("unit", ["gelu8", "gelu16"])
def test_gelu_any_shape_and_split(design, rng, unit):
    path, cfg = design
    ucfg = next(u for u in cfg.units if u.name == unit)
    p = family("gelu").params(ucfg)
    with open_board(f"model://{path}") as board:
        for shape in [(1,), (7, 33), (60, 300)]:  # the last needs several RUNs
            x = _codes(rng, p.inp, shape)
            y = board.gelu(x, unit=unit)
            assert y.shape == shape
            assert np.array_equal(y, family("gelu").golden(p, {"x": x})["y"])
        assert board.last_run["runs"] > 1


def test_row_too_long_is_a_clear_error(design, rng):
    path, cfg = design
    p = family("softmax").params(cfg.units[0])
    from generators.errors import ArrayError

    with open_board(f"model://{path}") as board, pytest.raises(ArrayError, match="x"):
        board.softmax(_codes(rng, p.inp, (2, 65)))  # longer than the unit's length


@pytest.mark.parametrize("op", ["gemm", "sparse", "softmax", "gelu"])
def test_every_unit_takes_lists_and_qtensors_and_refuses_object_arrays(op):
    """The host API takes what NumPy takes, the same for every unit: nested lists and the
    package's QTensor give the same codes as arrays; object arrays are refused in one line."""
    from generators.numerics import Format
    from host import QTensor

    rng = np.random.default_rng(5)
    if op == "gemm":
        arrays = {"a": rng.integers(-128, 128, (3, 5)), "b": rng.integers(-128, 128, (5, 2))}
        fmt = {"a": "int8", "b": "int8"}
    elif op == "sparse":
        w = rng.integers(-128, 128, (2, 8))
        w[:, 1::2] = 0  # 2:4 sparse
        arrays = {"w": w, "x": rng.integers(-128, 128, (8, 3))}
        fmt = {"w": "int8", "x": "int8"}
    else:
        arrays = {"x": rng.integers(-128, 128, (2, 6))}
        fmt = {"x": "fixed<8,3>"}
    unit = {"gemm": "mac_array", "sparse": "sparse_chain"}.get(op, op)
    with open_board(f"model://{DEMO}") as board:
        want = board.run(unit, arrays)
        as_lists = board.run(unit, {k: v.tolist() for k, v in arrays.items()})
        as_q = board.run(unit, {k: QTensor(v, Format.parse(fmt[k])) for k, v in arrays.items()})
        for got in (as_lists, as_q):
            assert got.keys() == want.keys()
            for k in want:
                assert np.array_equal(got[k], want[k])
        name = next(iter(arrays))
        bad = dict(arrays, **{name: arrays[name].astype(object)})
        with pytest.raises(ArrayError, match=rf"^{name}: dtype object \(allowed: integer codes"):
            board.run(unit, bad)
        ragged = dict(arrays, **{name: [[1, 2], [3]]})
        with pytest.raises(ArrayError, match=rf"^{name}: not an array"):
            board.run(unit, ragged)
