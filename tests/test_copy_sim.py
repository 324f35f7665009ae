"""The copy unit's design against its golden model: the Amaranth simulator and (``rtl``)
Verilator, for int8 with 1 and 4 lanes and int16 and int4 with 1 lane: exact cycle counts at
full rate, then idle input cycles and output back-pressure (no beat lost, duplicated or
changed; ``last`` passed through with its beat); and the CLI on a copy config."""

from __future__ import annotations

import json

import numpy as np
import pytest
from copy_cases import SIM_CASES, WithLast, codes, copy_params

from generators.config import config_to_dict
from generators.copy import copy
from generators.copy import family as copy_family
from sim.unit import simulate, simulate_many
from tensorfab.cli import main

#: (idle, stall, seed) of the irregular runs.
IRREGULAR = [(0.5, 0.0, 1), (0.0, 0.6, 2), (0.3, 0.4, 3)]


def _check(p, x, res, exact: bool):
    fam = WithLast()
    beats = fam.beats(p, {"x": x})
    assert np.array_equal(res.outputs["y"], copy(p, x))
    assert res.outputs["last"].tolist() == [0] * (beats - 1) + [1]
    if exact:
        assert res.cycles == fam.expected_cycles(p, {"x": x}) == beats + 1
    else:
        assert res.cycles >= beats + 1


def _arrays(p, rng):
    """A ragged tensor (the last beat padded when lanes > 1), then a 1-element one."""
    return [codes(p, rng, (13, 7)), codes(p, rng, (1,))]


@pytest.mark.parametrize("fmt, lanes", SIM_CASES)
def test_amaranth(fmt, lanes, rng):
    p = copy_params(fmt, lanes)
    for x in _arrays(p, rng):
        _check(p, x, simulate(WithLast(), p, {"x": x}, sim="amaranth"), exact=True)
    x = codes(p, rng, (9, 11))
    for idle, stall, seed in IRREGULAR:
        res = simulate(WithLast(), p, {"x": x}, sim="amaranth", idle=idle, stall=stall,
                       seed=seed)
        _check(p, x, res, exact=False)


@pytest.mark.rtl
@pytest.mark.parametrize("fmt, lanes", SIM_CASES)
def test_verilator(fmt, lanes, rng):
    """One Verilator build per design; the runs share one simulator start-up."""
    p = copy_params(fmt, lanes)
    full = _arrays(p, rng)
    x = codes(p, rng, (9, 11))
    runs = [dict(arrays={"x": a}) for a in full]
    runs += [dict(arrays={"x": x}, idle=i, stall=s, seed=seed) for i, s, seed in IRREGULAR]
    results = simulate_many(WithLast(), p, runs, sim="verilator", name=p.name,
                            config=config_to_dict(p))
    for a, res in zip(full, results[:len(full)], strict=True):
        _check(p, a, res, exact=True)
    for res in results[len(full):]:
        _check(p, x, res, exact=False)


def test_cli_generate_and_run_golden(tmp_path, capsys):
    cfg = tmp_path / "copy16.yaml"
    cfg.write_text("name: copy16\nunit: copy\nformat: int16\nlanes: 2\n")
    x = np.random.default_rng(4).integers(-32768, 32768, (9, 5))
    np.savez(tmp_path / "in.npz", x=x)
    assert main(["generate", str(cfg), "--out", str(tmp_path / "rtl")]) == 0
    man = json.loads((tmp_path / "rtl" / "copy16.json").read_text())
    assert man["unit"] == "copy" and man["config"] == {"name": "copy16", "unit": "copy",
                                                       "format": "int16", "lanes": 2}
    assert man["latency"] == 1
    assert "module copy16" in (tmp_path / "rtl" / "copy16.v").read_text()
    assert main(["run", str(cfg), "--inputs", str(tmp_path / "in.npz"), "--out",
                 str(tmp_path / "out.npz"), "--stats", str(tmp_path / "s.json")]) == 0
    assert np.array_equal(np.load(tmp_path / "out.npz")["y"], x)
    stats = json.loads((tmp_path / "s.json").read_text())
    assert stats["elements"] == 45 and stats["expected_cycles"] == 23 + 1
    np.savez(tmp_path / "bad.npz", x=np.array([0, 40000]))
    capsys.readouterr()
    assert main(["run", str(cfg), "--inputs", str(tmp_path / "bad.npz"), "--out",
                 str(tmp_path / "o2.npz")]) == 2
    err = capsys.readouterr().err.strip()
    assert "x: value 40000 at index 1 is out of range for int16" in err and "\n" not in err


@pytest.mark.rtl
def test_cli_run_rtl(tmp_path):
    cfg = tmp_path / "copy8.yaml"
    cfg.write_text("name: copy8\nunit: copy\nlanes: 4\n")
    x = np.random.default_rng(5).integers(-128, 128, (6, 7))
    np.savez(tmp_path / "in.npz", x=x)
    assert main(["run", str(cfg), "--inputs", str(tmp_path / "in.npz"), "--backend", "rtl",
                 "--out", str(tmp_path / "out.npz"), "--stats", str(tmp_path / "s.json")]) == 0
    assert np.array_equal(np.load(tmp_path / "out.npz")["y"], x)
    stats = json.loads((tmp_path / "s.json").read_text())
    assert stats["cycles"] == stats["expected_cycles"] == 11 + 1
    assert copy_family.expected_cycles(copy_params("int8", 4), {"x": x}) == 12
