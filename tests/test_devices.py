"""Parts (generators.devices): capacities, the fit check before place and route, and the
`tensorfab synth --device` refusals."""

from __future__ import annotations

import json

import pytest

from generators.devices import PARTS, fit, part
from generators.errors import UserError
from generators.synth import multiplier_count, resolve
from tensorfab.cli import main

MAC = "name: {name}\nunit: mac_array\nrows: {rows}\ncols: {cols}\na: int8\nb: int8\nacc: int32\n"


def test_issue_parts_exist():
    for name in ("LFE5U-25F", "LFE5U-45F", "LFE5U-85F", "iCE40UP5K", "iCE40HX8K", "xc7a35t",
                 "xc7a100t"):
        p = part(name)
        assert p.name == name and p.limits["luts"] > 0
    assert part("lfe5u-25f").name == "LFE5U-25F"  # any case
    assert part("ecp5").name == "LFE5U-85F" and part("ice40").name == "iCE40UP5K"
    # the larger ECP5 parts hold strictly more of everything
    small, mid, big = (PARTS[f"LFE5U-{n}F"].limits for n in (25, 45, 85))
    assert all(small[k] < mid[k] < big[k] for k in small)
    assert PARTS["iCE40HX8K"].limits["dsps"] == 0 and PARTS["iCE40HX8K"].synth == "synth_ice40"


def test_resolve_targets_and_parts():
    t, p = resolve(None, "LFE5U-25F")
    assert t.name == "ecp5" and p.name == "LFE5U-25F" and "--25k" in t.pnr.args
    t, p = resolve("ice40", None)
    assert p.name == "iCE40UP5K" and t.synth == "synth_ice40 -dsp"
    t, p = resolve(None, "iCE40HX8K")
    assert t.synth == "synth_ice40" and "--hx8k" in t.pnr.args
    t, p = resolve(None, "xc7a35t")
    assert t.pnr is None and p.limits["dsps"] == 90
    assert resolve("xilinx", None)[1] is None
    with pytest.raises(UserError, match="is a ecp5 part, not ice40"):
        resolve("ice40", "LFE5U-45F")
    with pytest.raises(UserError, match="not a known part"):
        resolve(None, "LFE5U-12F")


def test_fit_counts_weighted_cells():
    p = part("LFE5U-25F")
    rep = {"name": "x", "cells": {"LUT4": 20_000, "CCU2C": 3_000, "MULT18X18D": 28,
                                  "TRELLIS_FF": 100, "DP16KD": 57}, "ffs": 100, "dsps": 28}
    f = fit(p, rep)
    assert f["used"]["luts"] == 26_000 and f["used"]["brams"] == 57
    assert not f["fits"]
    assert f["problems"] == ["26000 LUTs > 24288 on LFE5U-25F", "57 block RAMs > 56 on LFE5U-25F"]
    x = fit(part("xc7a35t"), {"cells": {"RAMB36E1": 50, "RAMB18E1": 1}, "luts": 1, "ffs": 1,
                              "dsps": 90})
    assert x["used"]["brams"] == 101 and x["problems"] == ["101 block RAMs > 100 on xc7a35t"]


def test_multiplier_count_walks_the_hierarchy():
    text = ("module top(a);\n  sub u0 (\n  );\n  sub u1 (\n  );\nendmodule\n"
            "module sub(a);\n  tf_mulreg_s4xs4 mul (\n  );\nendmodule\n"
            "module tf_mulreg_s4xs4(a);\nendmodule\n")
    assert multiplier_count(text, "top") == {"tf_mulreg_s4xs4": 2}


@pytest.mark.parametrize("argv, text", [
    (["--target", "ecp5", "--freq", "0"], "--freq 0.0: not a clock frequency"),
    (["--target", "ecp5", "--freq", "-5"], "--freq -5.0: not a clock frequency"),
    (["--target", "ecp5", "--freq", "nan"], "--freq nan: not a clock frequency"),
    (["--target", "ecp5", "--seed", "-1"], "--seed -1: not a nextpnr seed"),
    (["--device", "LFE5U-99F"], "device 'LFE5U-99F' is not a known part"),
    (["--device", "xc7a35t", "--pnr"], "--pnr on device xc7a35t: no open place-and-route"),
    (["--device", "iCE40UP5K", "--target", "ecp5"], "is a ice40 part, not ecp5"),
    ([], "--target or --device is needed"),
])
def test_synth_refuses_nonsense(tmp_path, capsys, argv, text):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(MAC.format(name="c", rows=2, cols=2))
    assert main(["synth", str(cfg), *argv, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and text in err[0], err
    assert not (tmp_path / "o").exists()


def test_6x3_does_not_fit_up5k_before_nextpnr(tmp_path, capsys):
    cfg = tmp_path / "m6x3.yaml"
    cfg.write_text(MAC.format(name="m6x3", rows=6, cols=3))
    out = tmp_path / "o"
    assert main(["synth", str(cfg), "--device", "iCE40UP5K", "--pnr", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == ("m6x3 does not fit iCE40UP5K: 18 DSPs > 8 on iCE40UP5K (allowed: a "
                       "smaller design or a larger part)")
    assert not (out / "nextpnr.log").exists()  # refused before place and route
    rep = json.loads((out / "report.json").read_text())
    assert rep["fit"]["fits"] is False and rep["fit"]["used"]["dsps"] == 18
    assert rep["multipliers"]["count"] == 18 and rep["multipliers"]["on_dsps"] == 18
    assert rep["part"] == "iCE40UP5K" and rep["pnr"] is None
