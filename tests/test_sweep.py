"""`tensorfab sweep`: sweep files, jobs on a Dask LocalCluster, resume, killed workers,
time and memory limits, the tune mode and the Pareto report.

The jobs are real: Yosys synthesis of tiny arrays, or the analytic cycle count (a job process
that renders the design); one 2-worker LocalCluster serves the whole module.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tensorfab.cli import main
from tensorfab.sweep import engine, report
from tensorfab.sweep.spec import load_sweep

# one xdist worker runs the module, so its tests share one LocalCluster
pytestmark = pytest.mark.xdist_group("sweep")

ROOT = Path(__file__).resolve().parent.parent
BAD = sorted((Path(__file__).parent / "bad_sweeps").glob("*.yaml"))

TINY = "name: t\nunit: mac_array\nrows: 2\ncols: 2\na: int4\nb: int4\nacc: int16\n"


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, memory_limit=0,
                           dashboard_address=":0", silence_logs=50)
    c = Client(cluster)
    yield c
    c.close()
    cluster.close()


def _sweep(tmp_path: Path, body: str, name: str = "s.yaml") -> Path:
    (tmp_path / "tiny.yaml").write_text(TINY)
    path = tmp_path / name
    path.write_text(body.replace("BASE", str(tmp_path / "tiny.yaml")))
    return path


def _lines(out: Path) -> list[dict]:
    return [json.loads(ln) for ln in (out / "results.jsonl").read_text().splitlines() if ln]


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.stem)
def test_bad_sweep_files(path, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    expect = path.read_text().splitlines()[0].removeprefix("# expect: ")
    out = tmp_path / "out"
    assert main(["sweep", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"{path}: {expect}") or err[0].startswith(expect), err[0]
    assert not out.exists()  # refused before any job


@pytest.mark.parametrize("address, text", [
    ("tcp://127.0.0.1:9", "no Dask scheduler answered within 1 s"),
    ("127.0.0.1:8786", "not a scheduler address (allowed: tcp://HOST:PORT"),
])
def test_unreachable_scheduler(tmp_path, capsys, address, text):
    path = _sweep(tmp_path, "base: BASE\naxes: {rows: [1]}\ntargets: [ecp5]\n"
                  "measure: [cycles]\nworkload: {m: 4, k: 4, n: 4}\n")
    t0 = time.monotonic()
    assert main(["sweep", str(path), "--out", str(tmp_path / "o"), "--scheduler", address,
                 "--connect-timeout", "1"]) == 2
    assert time.monotonic() - t0 < 15
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and text in err[0], err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("argv, text", [
    (["--workers", "0"], "--workers 0: out of range (allowed: 1..512)"),
    (["--connect-timeout", "0"], "--connect-timeout 0: out of range"),
    (["--report", "."], "rebuilds a report alone"),
])
def test_bad_options(tmp_path, capsys, argv, text):
    path = _sweep(tmp_path, "base: BASE\naxes: {rows: [1]}\ntargets: [ecp5]\nmeasure: [synth]\n")
    assert main(["sweep", str(path), "--out", str(tmp_path / "o"), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and text in err[0], err
    assert not (tmp_path / "o").exists()


def test_four_point_synth_sweep(tmp_path, client):
    path = _sweep(tmp_path, "base: BASE\nmode: grid\naxes:\n  rows: [1, 2]\n  cols: [1, 2]\n"
                  "targets: [ice40]\nmeasure: [synth]\n")
    out = tmp_path / "out"
    rows = engine.run(load_sweep(path), out, client=client, progress=False, say=lambda m: None)
    assert len(rows) == 4 and all(r["status"] == "ok" for r in rows), rows
    by = {(r["point"]["rows"], r["point"]["cols"]): r for r in rows}
    for r in rows:
        assert r["target"] == "ice40" and r["part"] == "iCE40UP5K" and r["error"] is None
        assert r["dsps"] == 0 and r["ffs"] > 0 and r["fit"]["fits"]
        # int4 x int4 products go to LUTs on iCE40, and the row says so
        assert "built from LUTs" in r["multipliers"]
        assert r["multipliers"].startswith(f"{r['point']['rows'] * r['point']['cols']} "
                                           "multipliers")
    assert by[(1, 1)]["luts"] < by[(1, 2)]["luts"] < by[(2, 2)]["luts"]
    assert len({r["design_hash"] for r in rows}) == 4
    assert len(_lines(out)) == 4
    # a rerun measures nothing again
    said = []
    again = engine.run(load_sweep(path), out, client=client, progress=False, say=said.append)
    assert again == rows and len(_lines(out)) == 4 and "0 to run" in said[0]
    # the report, rebuilt from the store alone
    (out / "sweep.yaml").write_text(path.read_text())
    assert main(["sweep", "--report", str(out)]) == 0
    text = (out / "report.md").read_text()
    assert "## Pareto front" in text and "## All points" in text
    front = json.loads((out / "pareto.json").read_text())
    assert {o["metric"] for o in front["objectives"]} == {"luts", "dsps"}
    assert [f["point"] for f in front["front"]] == [{"rows": 1, "cols": 1}]


CYCLES = ("base: BASE\naxes:\n  rows: [1, 2]\n  cols: [1, 2]\ntargets: [ecp5]\n"
          "measure: [cycles]\nworkload: {m: 8, k: 8, n: 8}\n")


def test_resume_after_the_sweep_is_killed(tmp_path, client):
    path = _sweep(tmp_path, CYCLES)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-m", "tensorfab", "sweep", str(path), "--out", str(out),
            "--scheduler", client.scheduler.address, "--no-progress"]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if (out / "results.jsonl").exists() and len(_lines(out)) >= 1:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)  # the sweep itself, mid-run
    proc.wait()
    first = _lines(out)
    assert 1 <= len(first) < 4, first
    done = proc.returncode
    assert done == -signal.SIGKILL
    rerun = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{len(first)} already in" in rerun.stderr
    rows = _lines(out)
    assert rows[:len(first)] == first  # the measured rows untouched, none measured again
    assert len(rows) == 4 and len({r["key"] for r in rows}) == 4
    assert all(r["status"] == "ok" and r["cycles"] > 0 for r in rows)


def test_a_worker_killed_mid_job(tmp_path, client):
    path = _sweep(tmp_path, CYCLES)
    out = tmp_path / "out"
    pids = client.run(os.getpid)
    killed = []

    def killer():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            busy = [w for w, tasks in client.processing().items() if tasks]
            if busy and (out / "jobs").exists():
                time.sleep(0.5)  # inside the job
                os.kill(pids[busy[0]], signal.SIGKILL)
                killed.append(busy[0])
                return
            time.sleep(0.05)

    t = threading.Thread(target=killer)
    t.start()
    rows = engine.run(load_sweep(path), out, client=client, progress=False, say=lambda m: None)
    t.join()
    assert killed
    lines = _lines(out)
    assert len(lines) == 4 and len({r["key"] for r in lines}) == 4  # none lost, none twice
    assert all(r["status"] == "ok" for r in rows), [r["error"] for r in rows]
    client.wait_for_workers(2, timeout=60)


def test_time_and_memory_limits(tmp_path, client):
    slow = _sweep(tmp_path, "base: BASE\naxes: {rows: [1, 2]}\ntargets: [ecp5]\n"
                  "measure: [synth]\ntimeout: 1\n", "slow.yaml")
    rows = engine.run(load_sweep(slow), tmp_path / "a", client=client, progress=False,
                      say=lambda m: None)
    assert [r["status"] for r in rows] == ["timeout", "timeout"]
    assert all(r["error"] == "time limit of 1 s passed; job killed" for r in rows)
    big = _sweep(tmp_path, "base: BASE\naxes: {rows: [1]}\ntargets: [ecp5]\n"
                 "measure: [synth]\nmemory_mb: 64\n", "big.yaml")
    rows = engine.run(load_sweep(big), tmp_path / "b", client=client, progress=False,
                      say=lambda m: None)
    assert rows[0]["status"] == "failed"
    assert rows[0]["error"].startswith("memory limit of 64 MiB passed (")


def test_tune_searches_under_constraints(tmp_path, client):
    # base: a shipped config, so the report marks the point that is configs/ own
    path = tmp_path / "tune.yaml"
    path.write_text(f"base: {ROOT / 'configs' / 'mac4x4_int4x8_sat.yaml'}\nmode: tune\n"
                    "samples: 4\nsample_seed: 3\naxes:\n  rows: [1, 2, 4]\n  cols: [1, 2, 4]\n"
                    "targets: [ecp5]\nmeasure: [cycles]\nworkload: {m: 16, k: 16, n: 16}\n"
                    "clock_mhz: 100\nobjective: {maximize: macs_per_s}\n"
                    "constraints: ['latency_us <= 1.5']\n")
    out = tmp_path / "out"
    said = []
    rows = engine.run(load_sweep(path), out, client=client, progress=False, say=said.append)
    assert 1 <= len(rows) <= 4 and all(r["status"] == "ok" for r in rows)
    feasible = [r for r in rows if r["latency_us"] <= 1.5]
    if feasible:
        best = max(feasible, key=lambda r: r["macs_per_s"])
        assert said[-1].startswith(f"tune: best macs_per_s = {best['macs_per_s']} at ")
    else:
        assert said[-1].startswith("tune: no measured point meets latency_us <= 1.5")
    # the same study again: every trial is told from the store, nothing re-measured
    n = len(_lines(out))
    engine.run(load_sweep(path), out, client=client, progress=False, say=said.append)
    assert len(_lines(out)) == n
    (out / "sweep.yaml").write_text(path.read_text())
    report.build(out, say=lambda t: None)
    if any(r["point"] == {"rows": 4, "cols": 4} for r in rows):
        assert "mac4x4_int4x8_sat.yaml" in (out / "report.md").read_text()


def test_store_and_front(tmp_path):
    store = engine.Store(tmp_path)
    store.append({"key": "a", "status": "ok"})
    with open(store.path, "a") as f:
        f.write('{"key": "b", "sta')  # a line torn by a kill
    store = engine.Store(tmp_path)
    assert set(store.rows) == {"a"} and store.torn == 1
    store.append({"key": "c", "status": "ok"})
    assert set(engine.Store(tmp_path).rows) == {"a", "c"}
    rows = [{"key": k, "luts": lu, "fmax_mhz": f} for k, lu, f in
            [("x", 10, 100.0), ("y", 20, 150.0), ("z", 30, 120.0), ("w", 10, 90.0)]]
    front = report.pareto_front(rows, [("luts", 1), ("fmax_mhz", -1)])
    assert [r["key"] for r in front] == ["x", "y"]


@pytest.mark.regress
def test_pnr_and_sim_sweep(tmp_path, client):
    """Fmax per seed on two parts, a Verilator run against golden, and a refusal before
    nextpnr (a 6x3 int8 array needs 18 DSPs; the UP5K has 8)."""
    path = _sweep(tmp_path, "base: BASE\naxes:\n  'rows,cols,a,b,acc': [[2, 2, int4, int4, int16], "
                  "[6, 3, int8, int8, int32]]\ntargets: [LFE5U-25F, iCE40UP5K]\nseeds: [1, 2]\n"
                  "measure: [synth, pnr, cycles, sim]\nworkload: {m: 8, k: 8, n: 8}\n")
    rows = engine.run(load_sweep(path), tmp_path / "out", client=client, progress=False,
                      say=lambda m: None)
    assert len(rows) == 8
    by = {(r["point"]["rows"], r["target"], r["seed"]): r for r in rows}
    for seed in (1, 2):
        assert by[(6, "iCE40UP5K", seed)]["error"].startswith(
            "does not fit: t does not fit iCE40UP5K: 18 DSPs > 8 on iCE40UP5K")
        for target in ("LFE5U-25F", "iCE40UP5K"):
            r = by[(2, target, seed)]
            assert r["status"] == "ok" and r["fmax_mhz"] > 0, r["error"]
            assert r["sim_cycles"] == r["cycles"] and r["mismatches"] == 0
    assert by[(6, "LFE5U-25F", 1)]["status"] == "ok" and by[(6, "LFE5U-25F", 1)]["dsps"] == 18


def test_report_leaves_designs_that_do_not_fit_off_the_front(tmp_path):
    store = engine.Store(tmp_path)
    fit = {"fits": True, "problems": []}
    for key, luts, dsps, fits in [("a", 100, 300, False), ("b", 200, 10, True),
                                  ("c", 300, 5, True), ("d", 400, 20, True)]:
        store.append({"key": key, "point": {"rows": luts // 100}, "target": "xc7a35t",
                      "seed": None, "status": "ok", "error": None, "luts": luts,
                      "dsps": dsps, "cycles": 10, "fit": fit if fits else {
                          "fits": False, "problems": ["300 DSPs > 90 on xc7a35t"]}})
    report.build(tmp_path, say=lambda t: None)
    front = json.loads((tmp_path / "pareto.json").read_text())["front"]
    assert [f["key"] for f in front] == ["b", "c"]  # a is smallest but does not fit
    assert "NO: 300 DSPs > 90 on xc7a35t" in (tmp_path / "report.md").read_text()
    assert (tmp_path / "front.png").stat().st_size > 0


TINY_BOARD = ("name: tb\nboard: ulx3s\nbuffer_bytes: 256\n"
              "tensor_memory: {banks: 2, bytes: 1024, word_bytes: 4, program_bytes: 256}\n"
              "units:\n  - {name: mac, unit: mac_array, rows: 1, cols: 2, a: int4, b: int4, "
              "acc: int16}\n  - {name: cp, unit: copy, format: int8}\n")
BOARD_SWEEP = ("base: tb.yaml\naxes:\n  units.0.rows: [1, 2]\n  tensor_memory.bytes: "
               "[1024, 2048]\ntargets: [ice40]\nmeasure: [synth]\n")


def _board_sweep(tmp_path: Path, body: str = BOARD_SWEEP) -> Path:
    (tmp_path / "tb.yaml").write_text(TINY_BOARD)
    (tmp_path / "s.yaml").write_text(body)
    return tmp_path / "s.yaml"


def test_board_design_base_points_and_jobs(tmp_path):
    """A board design as the base: dotted keys into it (a number indexes the units), every
    point validated as a board design, one job per point with its own key (no Yosys run)."""
    from generators.config import BoardConfig
    from tensorfab.sweep.spec import jobs_for, tool_versions

    sweep = load_sweep(_board_sweep(tmp_path))
    assert sweep.board
    pts = engine.check_points(sweep)
    assert len(pts) == 4
    tools = tool_versions()
    keys = set()
    for p, cfg in pts:
        assert isinstance(cfg, BoardConfig)
        assert cfg.units[0].rows == p["units.0.rows"] and cfg.units[0].cols == 2
        assert cfg.tensor_memory.bytes == p["tensor_memory.bytes"]
        assert cfg.units[1].unit == "copy"  # the rest of the design is the base's
        (job,) = jobs_for(sweep, p, cfg, tools)
        assert job["measure"] == ["synth"] and job["config"]["board"] == "ulx3s"
        keys.add(job["key"])
    assert len(keys) == 4


@pytest.mark.regress
def test_board_design_synth_sweep(tmp_path, client):
    """Yosys on a whole (tiny) board design per point (about 45 s of CPU each): the counts
    grow with the MAC array, and each row carries its design's hash and the capacity check."""
    path = _board_sweep(tmp_path, "base: tb.yaml\naxes:\n  units.0.rows: [1, 2]\n"
                        "targets: [LFE5U-25F]\nmeasure: [synth]\n")
    rows = engine.run(load_sweep(path), tmp_path / "out", client=client, progress=False,
                      say=lambda m: None)
    assert len(rows) == 2 and all(r["status"] == "ok" for r in rows), rows
    by = {r["point"]["units.0.rows"]: r for r in rows}
    for r in rows:
        assert r["part"] == "LFE5U-25F" and r["fit"]["fits"], r["fit"]
        assert r["ffs"] > 0 and r["brams"] > 0 and len(r["design_hash"]) == 16
    assert by[1]["luts"] < by[2]["luts"] and by[1]["design_hash"] != by[2]["design_hash"]
