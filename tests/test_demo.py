"""`make demo` (`python -m bench.demo`): the board demo on configs/demo.yaml end to end on the
served simulated board, its table and exit status; bad input is exit 2 and one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEMO = [sys.executable, "-m", "bench.demo"]


def run_demo(*args, timeout=900):
    return subprocess.run([*DEMO, *args], capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT)


def run_demo_here(*args):
    """bench.demo's main() in this process (tests/cli_helpers.py): bad input is refused before
    any board is built, so only the interpreter start-up would differ from run_demo."""
    from cli_helpers import run_main

    from bench.demo import main

    return run_main(main, *args, cwd=ROOT, prog="python -m bench.demo")


@pytest.mark.parametrize("target", ["demo", "serve", "bitstream"])
def test_makefile_board_targets_default_to_the_demo_design(target):
    """`make demo|serve|bitstream` run on configs/demo.yaml unless CONFIG is given (make -n
    prints the commands without running them; the venv stamp is assumed fresh)."""
    def dry(*extra):
        r = subprocess.run(["make", "-n", "-o", ".venv/.installed", target, *extra],
                           capture_output=True, text=True, cwd=ROOT, timeout=60)
        assert r.returncode == 0, r.stderr
        return r.stdout

    assert "configs/demo.yaml" in dry()
    assert "configs/other.yaml" in dry("CONFIG=configs/other.yaml")
    if target == "demo":
        assert "-m bench.demo --config configs/demo.yaml" in dry()


def test_make_help_names_every_target():
    text = (ROOT / "Makefile").read_text()
    phony = next(line for line in text.splitlines() if line.startswith(".PHONY:"))
    r = subprocess.run(["make", "help"], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 0
    for target in phony.split(":", 1)[1].split():
        if target != "help":
            assert f"make {target} " in r.stdout, target


def test_demo_config_has_every_unit():
    from generators.config import load_config

    cfg = load_config(ROOT / "configs" / "demo.yaml")
    assert cfg.board == "ulx3s" and cfg.tensor_memory is not None
    assert [u.unit for u in cfg.units] == ["mac_array", "sparse_chain", "softmax", "gelu"]
    assert cfg.units[0].requant is not None and cfg.units[1].requant is not None


@pytest.mark.parametrize("args, msg", [
    (["--config", "configs/nope.yaml"], "configs/nope.yaml"),
    (["--seq", "0"], "--seq 0: out of range (allowed: 1..4096)"),
    (["--d-model", "30", "--heads", "4"], "--d-model 30: not a multiple of --heads 4"),
    (["--seq", "65"], "--seq 65: longer than the softmax unit's rows (allowed: 1..64)"),
    (["--config", "configs/softmax64.yaml"], "configs/softmax64.yaml: unit softmax (allowed"),
    (["--config", "configs/ulx3s_units.yaml"], "design ulx3s_units has no tensor_memory"),
    (["--mode", "3:4"], "--mode 3:4"),
])
def test_bad_input_is_exit_2_one_line(args, msg):
    r = run_demo_here(*args)
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.count("\n") == 1 and msg in r.stderr and "Traceback" not in r.stderr


def _cell(out, row):
    line = next(line for line in out.splitlines() if line.strip().startswith(row))
    return line[len(line) - len(line.lstrip()) + len(row):].split()


@pytest.mark.rtl
@pytest.mark.xdist_group("demo_board")
def test_board_demo_table():
    """The encoder block op by op and as a program on the RTL board: every output equals
    evaluate, and the table's figures hold together."""
    r = run_demo("--batch", "2")
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert _cell(out, "mismatches against evaluate") == ["0", "0", "0"]
    b32, b_ops, b_prog = (int(v.replace(",", "")) for v in _cell(out, "link bytes per inference"))
    assert b32 > b_ops > 30 * b_prog          # int32 > 8-bit op by op >> program
    runs = _cell(out, "RUNs / PROG_RUNs per inference")
    assert int(runs[2]) == 1 and int(runs[1]) >= 16
    ops = [line.split() for line in out.splitlines()
           if line.strip().split()[:1] and line.split()[0] in
           ("q0", "k0", "v0", "s0", "p0", "o0", "attn", "up", "gelu", "down")]
    assert len(ops) == 10
    for cells in ops:
        assert int(cells[2].replace(",", "")) > 0
        assert 1.0 <= float(cells[4]) < 1.25, cells     # measured / expected cycles
    assert "every output equals Graph.evaluate (the golden models): yes" in out
    assert "M cycles/s" in out
