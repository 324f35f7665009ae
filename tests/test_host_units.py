"""Host driver on the softmax, GELU and network units of a design (model:// reference board):
results equal the golden models, including problems split into several RUNs."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from generators.config import load_config
from generators.units import family
from host import open_board

ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent


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
