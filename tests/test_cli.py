"""The `tensorfab` command: generate, run (golden and rtl), and exit status 2 with one line on
every bad input. The commands run main() in this process (tests/cli_helpers.py); the entry
points themselves, `python -m tensorfab` and the console script, run as real processes in
test_the_real_entry_points."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import real_tf, tf

from generators.config import load_config
from generators.units import family

ROOT = Path(__file__).resolve().parent.parent
CFG = ROOT / "configs" / "mac8x8.yaml"


def golden(cfg_path, arrays: dict) -> dict:
    """The outputs of the config's family golden model (its overflow rule included): the
    reference every run is compared with, not an inline ``a @ b``."""
    cfg = load_config(cfg_path)
    fam = family(cfg.unit)
    return fam.golden(fam.params(cfg), arrays)


def test_generate_writes_verilog_and_manifest(tmp_path):
    r = tf("generate", CFG, "--out", tmp_path)
    assert r.returncode == 0, r.stderr
    v = (tmp_path / "mac8x8.v").read_text()
    assert "module mac8x8" in v and "Do not edit" in v
    man = json.loads((tmp_path / "mac8x8.json").read_text())
    assert man["top"] == "mac8x8" and man["unit"] == "mac_array"
    names = {p["name"]: p for p in man["ports"]}
    assert names["a_stream__payload"]["width"] == 8 * 8 + 1
    assert names["c_stream__payload"]["dir"] == "out"
    assert names["c_stream__ready"]["dir"] == "in"
    assert man["streams"]["c_stream"]["fields"]["data"]["lanes"] == 8
    assert man["latency"] == 8 + 4
    for p in man["ports"]:
        assert f" {p['name']}" in v or f"\\{p['name']}" in v or p["name"] in v


def test_run_golden(tmp_path, rng):
    a = rng.integers(-128, 128, (5, 9))
    b = rng.integers(-128, 128, (9, 3))
    np.savez(tmp_path / "in.npz", a=a, b=b)
    r = tf("run", CFG, "--inputs", tmp_path / "in.npz", "--out", tmp_path / "out.npz",
           "--stats", tmp_path / "s.json")
    assert r.returncode == 0, r.stderr
    c = np.load(tmp_path / "out.npz")["c"]
    assert np.array_equal(c, golden(CFG, {"a": a, "b": b})["c"])
    stats = json.loads((tmp_path / "s.json").read_text())
    assert stats["macs"] == 5 * 9 * 3 and stats["expected_cycles"] > 0


@pytest.mark.rtl
def test_run_rtl_with_stats(tmp_path, rng):
    a = rng.integers(-128, 128, (13, 1))
    b = rng.integers(-128, 128, (1, 11))
    np.savez(tmp_path / "in.npz", a=a, b=b)
    r = tf("run", CFG, "--inputs", tmp_path / "in.npz", "--out", tmp_path / "out.npz",
           "--backend", "rtl", "--stats", tmp_path / "s.json")
    assert r.returncode == 0, r.stderr
    assert np.array_equal(np.load(tmp_path / "out.npz")["c"], golden(CFG, {"a": a, "b": b})["c"])
    stats = json.loads((tmp_path / "s.json").read_text())
    assert stats["cycles"] == stats["expected_cycles"]
    assert 0 < stats["utilization"] <= 1 and stats["mismatches"] == 0


def _bad_inputs(tmp_path):
    good_b = np.zeros((4, 3), np.int64)
    cases = {
        "float": ({"a": np.zeros((2, 4)), "b": good_b}, "float64"),
        "range": ({"a": np.full((2, 4), 300), "b": good_b}, "out of range"),
        "shape": ({"a": np.zeros((2, 5), np.int64), "b": good_b}, "do not chain"),
        "rank": ({"a": np.zeros((2, 4, 1), np.int64), "b": good_b}, "not 2-D"),
        "missing": ({"a": np.zeros((2, 4), np.int64)}, "missing array 'b'"),
        "extra": ({"a": np.zeros((2, 4), np.int64), "b": good_b, "q": good_b},
                  "unexpected array 'q'"),
    }
    for name, (arrays, text) in cases.items():
        np.savez(tmp_path / f"{name}.npz", **arrays)
        yield tmp_path / f"{name}.npz", text


@pytest.mark.parametrize("backend", ["golden", "rtl"])
def test_bad_arrays_exit_2_before_simulating(tmp_path, backend):
    for path, text in _bad_inputs(tmp_path):
        r = tf("run", CFG, "--inputs", path, "--out", tmp_path / "o.npz", "--backend", backend)
        assert r.returncode == 2, (path, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and text in lines[0] and str(path) in lines[0], r.stderr
        assert not (tmp_path / "o.npz").exists()


def test_bad_files_and_paths(tmp_path):
    (tmp_path / "garbage.npz").write_bytes(b"not a zip")
    np.save(tmp_path / "single.npy", np.zeros(3))
    obj = tmp_path / "obj.npz"
    np.savez(obj, a=np.array([object()], dtype=object), b=np.zeros(1))
    np.savez(tmp_path / "in.npz", a=np.zeros((1, 1), np.int64), b=np.zeros((1, 1), np.int64))
    cases = [
        (["run", CFG, "--inputs", tmp_path / "nope.npz", "--out", tmp_path / "o.npz"],
         "no such file"),
        (["run", CFG, "--inputs", tmp_path / "garbage.npz", "--out", tmp_path / "o.npz"],
         "not a readable .npz"),
        (["run", CFG, "--inputs", tmp_path / "single.npy", "--out", tmp_path / "o.npz"],
         "not an .npz archive"),
        (["run", CFG, "--inputs", obj, "--out", tmp_path / "o.npz"], "object arrays"),
        (["run", CFG, "--inputs", tmp_path / "in.npz", "--out", tmp_path / "in.npz"],
         "would overwrite the input"),
        (["run", tmp_path / "missing.yaml", "--inputs", tmp_path / "in.npz", "--out",
          tmp_path / "o.npz"], "missing.yaml"),
        (["generate", tmp_path / "missing.yaml", "--out", tmp_path / "g"], "missing.yaml"),
    ]
    for args, text in cases:
        r = tf(*args)
        assert r.returncode == 2, (args, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and text in lines[0], (args, r.stderr)
    # the input the user sent is untouched
    assert np.load(tmp_path / "in.npz")["a"].shape == (1, 1)


def test_bad_config_exit_2_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nunit: mac_array\nrows: 0\ncols: 2\na: int8\nb: int8\nacc: int32\n")
    r = tf("generate", bad, "--out", tmp_path / "g")
    assert r.returncode == 2
    assert r.stderr.strip() == f"{bad}: rows: 0 is out of range (allowed: 1..64)"
    assert not (tmp_path / "g").exists()


def test_unit_commands_refuse_a_board_design(tmp_path):
    board = ROOT / "configs" / "ulx3s_units.yaml"
    for cmd in (["generate", board, "--out", tmp_path / "g"],
                ["run", board, "--inputs", tmp_path / "i.npz", "--out", tmp_path / "o.npz"]):
        r = tf(*cmd)
        assert r.returncode == 2, r.stderr
        assert r.stderr.strip().splitlines() == [
            f"{board}: is a board design (board: ulx3s), not a unit config (allowed for "
            f"`tensorfab {cmd[0]}`: a config with a `unit` key, such as configs/mac8x8.yaml)"]
    assert not (tmp_path / "g").exists()


def test_usage_errors_exit_2():
    r = tf("run", CFG, "--backend", "spice")
    assert r.returncode == 2 and "invalid choice" in r.stderr
    r = tf()
    assert r.returncode == 2


# -- sparse_chain ------------------------------------------------------------------------------

SPARSE = ROOT / "configs" / "sparse16.yaml"


def _sparse_inputs(tmp_path, rng, n=2, m=4, o=6, k=37, b=3):
    from sparse_cases import sparse_mask

    w = rng.integers(-128, 128, (o, k)) * sparse_mask(rng, o, k, n, m)
    x = rng.integers(-128, 128, (k, b))
    np.savez(tmp_path / "in.npz", w=w, x=x)
    return w, x


def test_sparse_generate_and_run_golden_every_mode(tmp_path, rng):
    r = tf("generate", SPARSE, "--out", tmp_path)
    assert r.returncode == 0, r.stderr
    man = json.loads((tmp_path / "sparse16.json").read_text())
    assert man["unit"] == "sparse_chain" and man["latency"] == 16 + 3
    assert man["modes"] == {"2:4": 0, "1:4": 1, "4:4": 2} and man["default_mode"] == "2:4"
    assert man["streams"]["x_stream"]["fields"]["data"]["lanes"] == 64
    for mode, n in [(None, 2), ("2:4", 2), ("1:4", 1), ("4:4", 4)]:
        w, x = _sparse_inputs(tmp_path, rng, n=n)
        extra = ["--mode", mode] if mode else []
        r = tf("run", SPARSE, "--inputs", tmp_path / "in.npz", "--out", tmp_path / "out.npz",
               "--stats", tmp_path / "s.json", *extra)
        assert r.returncode == 0, r.stderr
        assert np.array_equal(np.load(tmp_path / "out.npz")["y"],
                              golden(SPARSE, {"w": w, "x": x})["y"])
        stats = json.loads((tmp_path / "s.json").read_text())
        assert stats["mode"] == (mode or "2:4") and stats["macs"] == 6 * 37 * 3


def test_sparse_bad_mode_and_pattern_exit_2(tmp_path, rng):
    _sparse_inputs(tmp_path, rng, n=2)
    w = np.zeros((3, 8), np.int64)
    w[2, 4:7] = 1
    np.savez(tmp_path / "bad.npz", w=w, x=np.zeros((8, 2), np.int64))
    cases = [
        (SPARSE, "in.npz", ["--mode", "3:4"],
         f"--mode: '3:4' is not a mode of {SPARSE} (allowed: 2:4, 1:4, 4:4)"),
        (SPARSE, "in.npz", ["--mode", "dense"], "--mode: 'dense' is not a mode"),
        (SPARSE, "bad.npz", [], "bad.npz: w: row 2, group 1 (columns 4..7) has 3 non-zero "
         "values (allowed: at most 2 per group of 4 in mode 2:4)"),
        (SPARSE, "bad.npz", ["--mode", "1:4", "--backend", "rtl"], "row 2, group 1"),
        (CFG, "in.npz", ["--mode", "2:4"], "--mode 2:4: mac_array has no sparsity modes"),
    ]
    for cfg, inp, extra, text in cases:
        r = tf("run", cfg, "--inputs", tmp_path / inp, "--out", tmp_path / "o.npz", *extra)
        assert r.returncode == 2, (extra, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and text in lines[0], (extra, r.stderr)
        assert not (tmp_path / "o.npz").exists()


@pytest.mark.rtl
def test_sparse_run_rtl_with_stats(tmp_path, rng):
    w, x = _sparse_inputs(tmp_path, rng, n=1, o=3, k=70, b=2)
    r = tf("run", SPARSE, "--inputs", tmp_path / "in.npz", "--out", tmp_path / "out.npz",
           "--backend", "rtl", "--mode", "1:4", "--stats", tmp_path / "s.json")
    assert r.returncode == 0, r.stderr
    assert np.array_equal(np.load(tmp_path / "out.npz")["y"], golden(SPARSE, {"w": w, "x": x})["y"])
    stats = json.loads((tmp_path / "s.json").read_text())
    assert stats["cycles"] == stats["expected_cycles"] == 3 * 2 * 2 + 19
    assert stats["mismatches"] == 0 and stats["mode"] == "1:4"


@pytest.mark.parametrize("config, x", [
    ("softmax64", np.arange(-128, 128).reshape(4, 64)),
    ("gelu8", np.arange(-128, 128).reshape(16, 16)),
    ("gelu16", np.arange(-32768, 32768, 97).reshape(-1, 1)),
])
def test_nonlinear_run_golden_and_rtl(tmp_path, config, x):
    cfg = ROOT / "configs" / f"{config}.yaml"
    np.savez(tmp_path / "in.npz", x=x)
    outs = {}
    for backend in ("golden", "rtl"):
        r = tf("run", cfg, "--inputs", tmp_path / "in.npz", "--out",
               tmp_path / f"{backend}.npz", "--backend", backend,
               "--stats", tmp_path / f"{backend}.json")
        assert r.returncode == 0, r.stderr
        outs[backend] = np.load(tmp_path / f"{backend}.npz")["y"]
        assert outs[backend].shape == x.shape
    assert np.array_equal(outs["golden"], outs["rtl"])
    stats = json.loads((tmp_path / "rtl.json").read_text())
    assert stats["cycles"] == stats["expected_cycles"] and stats["mismatches"] == 0


test_nonlinear_run_golden_and_rtl = pytest.mark.rtl(test_nonlinear_run_golden_and_rtl)


@pytest.mark.parametrize("config, arrays, msg", [
    ("softmax64", {"x": np.zeros((2, 65), dtype=np.int64)},
     "x: rows of 65 elements are longer than this unit's length 64 (allowed: 1..64)"),
    ("softmax64", {"x": np.zeros(5, dtype=np.int64)}, "x: shape (5,) is not 2-D"),
    ("softmax64", {"y": np.zeros((1, 5), dtype=np.int64)}, "missing array 'x'"),
    ("gelu8", {"x": np.array([0, 300])}, "x: value 300 at index 1 is out of range"),
    ("gelu16", {"x": np.zeros(3)}, "x: dtype float64 is not an integer dtype"),
])
def test_nonlinear_bad_arrays_exit_2(tmp_path, config, arrays, msg):
    np.savez(tmp_path / "in.npz", **arrays)
    r = tf("run", ROOT / "configs" / f"{config}.yaml", "--inputs", tmp_path / "in.npz",
           "--out", tmp_path / "o.npz")
    assert r.returncode == 2
    line = r.stderr.strip()
    assert "\n" not in line and msg in line, line


# -- what a newcomer meets: version, defaults in --help, paths checked up front -----------------

def test_version():
    from tensorfab import __version__

    r = tf("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"tensorfab {__version__}"
    assert __version__ == "0.1.0" or __version__ == "unknown"


def test_the_real_entry_points(tmp_path):
    """`python -m tensorfab` and the installed console script as real processes: the exit
    status and the one line on stderr reach the shell as main() returns them in-process."""
    from tensorfab import __version__

    r = real_tf("--version")
    assert (r.returncode, r.stdout.strip(), r.stderr) == (0, f"tensorfab {__version__}", "")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nunit: mac_array\nrows: 0\ncols: 2\na: int8\nb: int8\nacc: int32\n")
    for console_script in (False, True):
        r = real_tf("generate", bad, "--out", tmp_path / "g", console_script=console_script)
        assert r.returncode == 2, (console_script, r.stderr)
        assert r.stderr.strip().splitlines() == [
            f"{bad}: rows: 0 is out of range (allowed: 1..64)"], (console_script, r.stderr)
        assert r.stdout == "" and not (tmp_path / "g").exists()


def _parsers():
    """Every (sub)command's parser, by its prog (`tensorfab run`, `tensorfab board run`, ...)."""
    import argparse

    from tensorfab.cli import build_parser

    todo, seen = [build_parser()], {}
    while todo:
        p = todo.pop()
        seen[p.prog] = p
        for a in p._actions:
            if isinstance(a, argparse._SubParsersAction):
                todo.extend(a.choices.values())
    return seen


def test_help_states_every_default():
    import argparse

    parsers = _parsers()
    assert {"tensorfab run", "tensorfab synth", "tensorfab board run"} <= set(parsers)
    for prog, p in parsers.items():
        text = " ".join(p.format_help().split())
        fmt = p._get_formatter()  # the parser's own formatter class
        for a in p._actions:
            if a.option_strings and a.default not in (None, False, argparse.SUPPRESS):
                assert "(default" in fmt._get_help_string(a), (prog, a.option_strings)
        if prog == "tensorfab run":
            assert "(default: golden)" in text and "(default: verilator)" in text
        if prog == "tensorfab hls":
            assert "(default: fixed<16,6>)" in text


def test_help_does_not_import_the_heavy_packages():
    code = ("import sys, contextlib, io\n"
            "from tensorfab.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    for argv in (['--help'], ['run', '--help'], ['board', 'info', '--help']):\n"
            "        try:\n"
            "            main(argv)\n"
            "        except SystemExit:\n"
            "            pass\n"
            "print(sorted({m.split('.')[0] for m in sys.modules}\n"
            "             & {'amaranth', 'hls4ml', 'torch', 'keras', 'pydantic', 'cocotb'}))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def _one_line_exit_2(capsys, argv, *needles):
    from tensorfab.cli import main

    assert main([str(a) for a in argv]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    for n in needles:
        assert str(n) in lines[0], lines
    return lines[0]


def test_output_paths_checked_before_any_work(tmp_path, capsys):
    np.savez(tmp_path / "in.npz", a=np.zeros((1, 1), np.int64), b=np.zeros((1, 1), np.int64))
    afile = tmp_path / "afile"
    afile.write_text("a file, not a folder")
    inp = tmp_path / "in.npz"
    board = ROOT / "configs" / "ulx3s_units.yaml"
    cases = [
        ["run", CFG, "--inputs", inp, "--out", "/proc/x/y.npz"],
        ["run", CFG, "--inputs", inp, "--out", tmp_path / "o.npz", "--stats", afile / "s.json"],
        ["run", CFG, "--inputs", inp, "--out", afile / "deeper" / "o.npz"],
        ["generate", CFG, "--out", afile / "g"],
        ["synth", CFG, "--target", "ecp5", "--out", "/proc/x"],
        ["bitstream", board, "--out", afile / "b"],
        ["hls", tmp_path / "model.onnx", "--out", "/proc/x"],
        ["board", "run", "--url", f"model://{board}", "mac", "--inputs", inp,
         "--out", "/proc/x/y.npz"],
    ]
    for argv in cases:
        bad = argv[argv.index("--stats") + 1] if "--stats" in argv else argv[-1]
        line = _one_line_exit_2(capsys, argv, bad)
        assert ("is a file, not a folder" in line) == (str(afile) in str(bad)), line
        assert "(allowed: a path in a writable folder)" in line
    assert not (tmp_path / "o.npz").exists() and not (tmp_path / "s.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "in.npz"]  # no probe left


def test_rtl_run_checks_its_paths_before_simulating(tmp_path, capsys, monkeypatch):
    import tensorfab.cli as cli

    def no_simulation(*args, **kwargs):
        raise AssertionError("simulated before checking the output path")

    monkeypatch.setattr(cli, "run_rtl", no_simulation)
    np.savez(tmp_path / "in.npz", a=np.zeros((1, 1), np.int64), b=np.zeros((1, 1), np.int64))
    _one_line_exit_2(capsys, ["run", CFG, "--inputs", tmp_path / "in.npz", "--backend", "rtl",
                              "--out", "/proc/x/y.npz"], "/proc/x/y.npz", "cannot write in")
    # the waveform file goes next to --out: it must not overwrite an input either
    (tmp_path / "o.vcd").mkdir()
    _one_line_exit_2(capsys, ["run", CFG, "--inputs", tmp_path / "in.npz", "--backend", "rtl",
                              "--waves", "--out", tmp_path / "o.npz"], "o.vcd", "is a folder")
    _one_line_exit_2(capsys, ["run", CFG, "--inputs", tmp_path / "in.npz", "--waves",
                              "--out", tmp_path / "o.npz"], "--waves", "--backend rtl")


class _InterruptedRunner:
    """cocotb's runner, as far as run_stream_jobs uses it, interrupted (Ctrl-C) mid-run."""

    seen: list = []

    def test(self, *, test_dir, **kwargs):
        _InterruptedRunner.seen.append(sorted(p.name for p in Path(test_dir).iterdir()))
        raise KeyboardInterrupt


def test_ctrl_c_removes_the_simulation_folder(tmp_path, capsys, monkeypatch, rng):
    import tempfile

    import sim.runner
    import tensorfab.cli as cli

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    monkeypatch.setattr(cli, "is_built", lambda *a, **k: True)  # no Verilator build
    monkeypatch.setattr(sim.runner, "build", lambda *a, **k: tmp_path / "no-build")
    monkeypatch.setattr(sim.runner, "_get_runner", lambda sim: _InterruptedRunner())
    _InterruptedRunner.seen.clear()
    np.savez(tmp_path / "in.npz", a=rng.integers(-128, 128, (4, 3)),
             b=rng.integers(-128, 128, (3, 2)))
    code = cli.main([str(a) for a in ("run", CFG, "--inputs", tmp_path / "in.npz",
                                      "--backend", "rtl", "--out", tmp_path / "o.npz")])
    assert code == 130 and capsys.readouterr().err.strip().endswith("interrupted")
    assert _InterruptedRunner.seen and "stim.npz" in _InterruptedRunner.seen[0]
    assert list(scratch.iterdir()) == []  # the run folder, stimulus and all, is gone
    assert not (tmp_path / "o.npz").exists()


@pytest.mark.rtl
def test_waves_go_next_to_out(tmp_path, rng):
    # the 1x1 array of tests/test_mac_array_rtl.py's waves test: one traced build serves both
    cfg = tmp_path / "mac1x1.yaml"
    cfg.write_text("name: mac1x1\nunit: mac_array\nrows: 1\ncols: 1\na: int8\nb: int8\n"
                   "acc: int32\n")
    np.savez(tmp_path / "in.npz", a=rng.integers(-128, 128, (2, 3)),
             b=rng.integers(-128, 128, (3, 2)))
    out = tmp_path / "res" / "o.npz"
    r = tf("run", cfg, "--inputs", tmp_path / "in.npz", "--out", out, "--backend", "rtl",
           "--waves", "--stats", tmp_path / "s.json")
    assert r.returncode == 0, r.stderr
    vcd = tmp_path / "res" / "o.vcd"
    assert vcd.stat().st_size > 0 and f"waveforms recorded in {vcd}" in r.stderr
    assert json.loads((tmp_path / "s.json").read_text())["waves"] == str(vcd)


def _fake_board(script: str):
    def start(cfg, port, face, say=None, timeout=30.0, stderr=None, idle_timeout=300.0):
        return subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                                stderr=stderr, text=True)
    return start


@pytest.mark.parametrize("script, reason", [
    ("import sys; print('listening', flush=True); "
     "sys.stderr.write('harness: out of memory\\n'); sys.exit(3)",
     "(exit status 3); its last message: harness: out of memory"),
    ("import os, signal; print('listening', flush=True); os.kill(os.getpid(), signal.SIGKILL)",
     "(killed by signal 9 (SIGKILL))"),
])
def test_serve_says_why_the_board_stopped(capsys, monkeypatch, script, reason):
    import socket

    import sim.board
    from tensorfab.cli import main

    monkeypatch.setattr(sim.board, "start", _fake_board(script))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert main(["serve", str(ROOT / "configs" / "ulx3s_units.yaml"), "--port", str(port)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"tensorfab: the simulated board stopped {reason}"


def test_layering():
    """generators -> host -> sim, boards -> tensorfab: a package imports only packages to its
    left (sim and boards share a rank), and host imports no Amaranth."""
    import ast

    banned = {"generators": {"host", "sim", "boards", "tensorfab"},
              "host": {"sim", "boards", "tensorfab", "amaranth"},
              "sim": {"tensorfab"}, "boards": {"tensorfab"}}
    found = []
    for pkg, bad in banned.items():
        for path in sorted((ROOT / pkg).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0:
                    names = [node.module or ""]
                else:
                    continue
                found += [(str(path.relative_to(ROOT)), n) for n in names
                          if n.split(".")[0] in bad]
    assert found == []
