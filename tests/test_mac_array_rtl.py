"""rtl tier: cocotb on the emitted Verilog (Verilator; a smaller set on Icarus), against the
golden model, with cycle counts checked against ``expected_cycles``."""

from __future__ import annotations

import numpy as np
import pytest

from generators.mac_array import family, gemm
from sim import toolenv
from sim.unit import simulate_many

from mac_cases import corner_operands, make_params, random_operands

pytestmark = pytest.mark.rtl

OS, WS = "output_stationary", "weight_stationary"
CONFIGS = [
    dict(rows=1, cols=1),
    dict(rows=1, cols=1, dataflow=WS, tile_m=1),
    dict(rows=1, cols=8, dataflow=WS, tile_m=16),
    dict(rows=3, cols=5, a="int4", b="int8", acc="int16", overflow="sat"),
    dict(rows=3, cols=5, a="uint8", b="int8", acc="int20", dataflow=WS, tile_m=8),
    dict(rows=8, cols=8),
    dict(rows=8, cols=8, acc="int24", overflow="sat", dataflow=WS),
    dict(rows=16, cols=16, acc="int26"),
    dict(rows=16, cols=16, acc="int24", overflow="sat", dataflow=WS, tile_m=32),
    dict(rows=4, cols=4, a="int16", b="int16", acc="int48"),
    dict(rows=4, cols=4, a="int16", b="int16", acc="int40", overflow="sat", dataflow=WS,
         tile_m=8),
    dict(rows=2, cols=3, a="uint8", b="int8", acc="int18", overflow="sat"),
    dict(rows=5, cols=2, a="int4", b="int8", acc="int14", dataflow=WS, tile_m=4),
    dict(rows=8, cols=1, a="uint4", b="uint4", acc="uint10", overflow="sat"),
    dict(rows=2, cols=2, a="int2", b="uint16", acc="int20", dataflow=WS, tile_m=3),
]


def _id(c):
    return "{rows}x{cols}-".format(**c) + "-".join(
        str(v) for k, v in c.items() if k not in ("rows", "cols"))


def _check(p, res, a, b):
    golden = gemm(p, a, b)
    mism = np.argwhere(res.outputs["c"] != golden)
    assert mism.size == 0, f"{len(mism)} mismatches, first at {tuple(mism[0])}"


@pytest.mark.parametrize("cfg", CONFIGS, ids=_id)
def test_rtl_verilator(cfg, rng):
    p = make_params(**cfg)
    # random operands, ragged M and N, no stalls: exact cycle count
    m, k, n = 2 * p.rows + 1, 37, 3 * p.cols - 1
    runs = [dict(arrays=dict(zip("ab", random_operands(p, m, k, n, rng), strict=True)), exact=True)]
    # overflow corners over a long K and K = 1 extremes, with idle inputs and back-pressure
    for i, which in enumerate(("allmin_longk", "minmax_mixed", "k1_ragged")):
        runs.append(dict(arrays=dict(zip("ab", corner_operands(p, which, rng), strict=True)),
                         idle=0.25, stall=0.35, seed=i, exact=False))
    # K = 1 without stalls keeps the exact count too
    runs.append(dict(arrays=dict(zip("ab", corner_operands(p, "k1_ragged", rng), strict=True)),
                     exact=True))
    # one simulator run for all five, the design reset between them
    results = simulate_many(family, p, [{k: v for k, v in r.items() if k != "exact"}
                                        for r in runs], name=p.name)
    for r, res in zip(runs, results, strict=True):
        a, b = r["arrays"]["a"], r["arrays"]["b"]
        _check(p, res, a, b)
        want = p.expected_cycles(a.shape[0], a.shape[1], b.shape[1])
        if r["exact"]:
            assert res.cycles == want
        else:
            assert res.cycles >= want


ICARUS = [CONFIGS[0], CONFIGS[3], CONFIGS[4], CONFIGS[13]]


@pytest.mark.icarus
@pytest.mark.parametrize("cfg", ICARUS, ids=_id)
def test_rtl_icarus(cfg, rng):
    if not toolenv.have("icarus"):
        pytest.fail("iverilog is not installed: `apt-get install iverilog` (.ci/run does this)")
    p = make_params(**cfg)
    m, k, n = p.rows + 2, 11, p.cols + 1
    a, b = random_operands(p, m, k, n, rng)
    a2, b2 = corner_operands(p, "allmin_longk", rng)
    a2, b2 = a2[:, :60], b2[:60]
    res, res2 = simulate_many(family, p, [dict(arrays={"a": a, "b": b}),
                                          dict(arrays={"a": a2, "b": b2}, idle=0.3, stall=0.3,
                                               seed=3)], sim="icarus", name=p.name)
    _check(p, res, a, b)
    assert res.cycles == p.expected_cycles(m, k, n)
    _check(p, res2, a2, b2)


def test_waves_only_when_asked(rng, monkeypatch):
    import shutil
    from pathlib import Path

    from generators.mac_array import schedule
    from sim.runner import run_streams
    from sim.unit import cached_render

    p = make_params(1, 1)  # the 1x1 design of test_rtl_verilator: its plain build is shared
    a, b = random_operands(p, 2, 3, 2, rng)
    vpath, manifest = cached_render(family, p, p.name, "mac_array", {})
    s = schedule(p, a, b)
    monkeypatch.setenv("WAVES", "1")
    res = run_streams(manifest, vpath, s.inputs, {"c_stream": s.out_beats})
    assert (Path(res["work_dir"]) / "dump.vcd").stat().st_size > 0
    shutil.rmtree(res["work_dir"])
    monkeypatch.setenv("WAVES", "0")
    res = run_streams(manifest, vpath, s.inputs, {"c_stream": s.out_beats})
    assert not Path(res["work_dir"]).exists()  # no waves: the run folder is cleaned up
