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
    assert cfg.board == "ulx3s"
    assert [u.unit for u in cfg.units] == ["mac_array", "sparse_chain", "softmax", "gelu"]


@pytest.mark.parametrize("args, msg", [
    (["--config", "configs/nope.yaml"], "configs/nope.yaml"),
    (["--seq", "0"], "--seq 0: out of range (allowed: 1..4096)"),
    (["--dim", "30"], "--dim 30: not a multiple of 4"),
    (["--seq", "65"], "--seq 65: longer than the softmax unit's rows (allowed: 1..64)"),
    (["--config", "configs/softmax64.yaml"], "configs/softmax64.yaml: unit softmax (allowed"),
])
def test_bad_input_is_exit_2_one_line(args, msg):
    r = run_demo_here(*args)
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.count("\n") == 1 and msg in r.stderr and "Traceback" not in r.stderr


@pytest.mark.rtl
@pytest.mark.xdist_group("demo_board")  # see test_board_served.py
def test_board_demo_table():
    r = run_demo()
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    steps = ["scores = Q @ K^T", "P = softmax(scores)", "O = P @ V", "H = GELU(O)",
             "Y = W(2:4) @ H^T"]
    lines = {s: next(line for line in out.splitlines() if line.strip().startswith(s))
             for s in steps}
    for line in lines.values():
        cells = line.split()
        assert cells[-1] == "0", line            # mismatches
        assert int(cells[-3]) > 0, line           # cycles
    total = next(line for line in out.splitlines() if line.strip().startswith("total"))
    assert total.split()[-1] == "0"
    assert "every result equals its golden model: yes" in out
    assert "M cycles/s" in out
