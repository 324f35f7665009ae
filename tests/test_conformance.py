"""model:// against the RTL board, byte for byte (tests/conformance.py): the same seeded corpus
of requests goes to the reference board and to the Verilator-built board of each design, and
every reply must be the same bytes, except the fields docs/protocol.md allows to differ (the
cycles of RUN and PROG_RUN). `make test` runs 750 items on each of two designs (protocol 1:
the demo units; protocol 2: tests/tm_rtl_design.yaml); `make regress` 10^4 on each."""

from __future__ import annotations

import collections
import functools
import time
from pathlib import Path

import pytest
from conformance import KINDS, OPS, SocketBoard, compare, corpus, run_model, run_socket
from peers import free_port

from host.model import ModelBoard, board_config

DESIGNS = {"v1": "configs/ulx3s_units.yaml",
           "v2": str(Path(__file__).parent / "tm_rtl_design.yaml")}
GROUPS = {"v1": "demo_board", "v2": "tm_rtl_board"}  # share the other tests' board builds


def _model(design: str) -> ModelBoard:
    return ModelBoard(board_config(DESIGNS[design]))


@functools.cache
def _generator_model(design: str) -> ModelBoard:
    """The reference board the corpus is made with (its description; its program check,
    which leaves it as it was)."""
    return _model(design)


def _corpus(design: str, n: int, seed: int):
    m = _generator_model(design)
    return corpus(m.desc, len(m.description), n, seed, model=m)


@pytest.mark.parametrize("design", sorted(DESIGNS))
def test_the_corpus_is_seeded_and_covers_every_op(design):
    a = _corpus(design, 300, 5)
    assert a == _corpus(design, 300, 5)
    assert a[:50] != _corpus(design, 50, 6)
    kinds = collections.Counter(k for k, _ in a)
    want = [k for k in KINDS if design == "v2" or k not in ("scatter_read", "program")]
    assert set(kinds) == set(want), kinds
    ops = set()
    for _, data in a:
        from host.protocol import FrameDecoder

        ops |= {q.op for q in FrameDecoder().feed(data)}
    proto = 2 if design == "v2" else 1
    assert {int(op) for op, s in OPS.items() if proto in s.protocols} <= ops


def _differential(design: str, n: int, seed: int) -> None:
    import subprocess

    import sim.board as sb

    items = _corpus(design, n, seed)
    model = _model(design)
    t0 = time.perf_counter()
    want = run_model(model, items)
    t_model = time.perf_counter() - t0
    port = free_port()
    proc = sb.start(board_config(DESIGNS[design]), port, timeout=900,
                    stderr=subprocess.DEVNULL)
    try:
        rtl = SocketBoard(port)
        t0 = time.perf_counter()
        got = run_socket(rtl, items)
        t_rtl = time.perf_counter() - t0
        rtl.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert proc.returncode in (0, -15), "the board crashed"
    diffs, allowed = [], 0
    for i, ((kind, data), a, b) in enumerate(zip(items, want, got, strict=True)):
        why = compare(a, b)
        if why is not None:
            diffs.append(f"item {i} ({kind}, seed {seed}): {why}; request {data[:40].hex()}")
        elif a != b:
            allowed += 1
    nbytes = sum(len(d) for _, d in items)
    print(f"{design}: {n} items ({nbytes} request bytes), model:// {t_model:.2f} s, RTL board "
          f"{t_rtl:.2f} s; {len(diffs)} differences, {allowed} in the allowed cycles fields")
    assert not diffs, f"{len(diffs)} differences:\n" + "\n".join(diffs[:20])


@pytest.mark.rtl
@pytest.mark.parametrize("design", [pytest.param(d, marks=pytest.mark.xdist_group(GROUPS[d]))
                                    for d in sorted(DESIGNS)])
def test_model_and_rtl_answer_the_same_bytes(design):
    _differential(design, 750, seed=20)


@pytest.mark.rtl
@pytest.mark.regress
@pytest.mark.parametrize("design", [pytest.param(d, marks=pytest.mark.xdist_group(GROUPS[d]))
                                    for d in sorted(DESIGNS)])
def test_model_and_rtl_answer_the_same_bytes_long(design):
    _differential(design, 10_000, seed=21)
