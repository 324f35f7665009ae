"""Fault injection against program loads and program runs on the served RTL board of
tests/tm_rtl_design.yaml (Verilator + TCP harness), through host.transport.FaultyTransport:
dropped bytes, flipped bits, truncated chunks, garbage between frames, and board resets in
the middle of loads and runs (SIGUSR1 to the harness, sim.board.reset).

Every output is compared with Graph.evaluate: 0 wrong results, every call completes (each
wait is bounded by the timeouts), and, in the rounds without resets, the board's own run
counter grows by exactly one per program call: a retried PROG_RUN is answered from the reply
cache and never runs twice. `make test` runs a modest count; `make regress` at least 10^4
faults."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from test_board_served import free_port

from host import Graph
from host.board import Board, BoardError
from host.graph import GraphError
from host.model import board_config
from host.transport import FaultyTransport, SocketTransport

pytestmark = [pytest.mark.rtl, pytest.mark.xdist_group("tm_rtl_board")]

DESIGN = str(Path(__file__).parent / "tm_rtl_design.yaml")
CFG = board_config(DESIGN)
T = 0.03
RETRIES = 15


@pytest.fixture(scope="module")
def served():
    import sim.board as sb

    port = free_port()
    proc = sb.start(CFG, port, timeout=900)
    yield port, proc
    proc.terminate()
    proc.wait(timeout=10)
    proc.stdout.close()


def _graph(rng):
    """An attention-like chain over every unit of the design: projections, Q K^T, softmax,
    P V, GELU, and a 2:4 sparse projection of the result."""
    g = Graph()
    x = g.input("x", (8, 12), "int8")
    rq = dict(bias=3, multiplier=1 << 30, shift=-8, zero_point=0, out="int8")
    q = g.matmul(x, g.weight("wq", rng.integers(-128, 128, (12, 8))), requant=rq, name="q")
    k = g.matmul(x, g.weight("wk", rng.integers(-128, 128, (12, 8))), requant=rq, name="k")
    v = g.matmul(x, g.weight("wv", rng.integers(-128, 128, (12, 8))), requant=rq, name="v")
    s = g.matmul(q, k, transpose_b=True, requant=dict(rq, out="fixed<8,3>"), name="s")
    o = g.matmul(g.softmax(s, name="p"), v, name="o",
                 requant=dict(bias=0, multiplier=1 << 30, shift=-6, out="fixed<8,3>"))
    h = g.gelu(o, name="h")
    w = rng.integers(-128, 128, (6, 8))
    w.reshape(6, 2, 4)[:, :, 2:] = 0
    g.output("y", g.sparse_matmul(g.weight("w24", w), h, mode="2:4", transpose_x=True,
                                  requant=dict(bias=0, multiplier=1 << 30, shift=-7),
                                  name="y"))
    return g


class Tally:
    def __init__(self):
        self.calls = self.wrong = self.gave_up = self.faults = self.resets = 0
        self.retries = self.reloads = self.twice = 0


def _status(port):
    b = Board(SocketTransport(f"socket://127.0.0.1:{port}", "127.0.0.1", port, 2.0),
              timeout=2.0, retries=2, progress=False)
    try:
        return b.status()
    finally:
        b.close()


def _round(served, seed, mix, resets, tally, calls=3):
    import sim.board as sb

    port, proc = served
    rng = np.random.default_rng(seed)
    g = _graph(rng)
    xs = [rng.integers(-128, 128, (8, 12)) for _ in range(calls)]
    wants = [g.evaluate(design=CFG, x=x) for x in xs]
    runs0 = _status(port).runs if not resets else None
    inner = SocketTransport(f"socket://127.0.0.1:{port}", "127.0.0.1", port, T)
    link = FaultyTransport(inner, seed=seed, reset=lambda: sb.reset(proc), **mix)
    link.reset_at = set(resets)
    board = Board(link, timeout=T, retries=RETRIES, progress=False)
    done = 0
    try:
        try:
            prog = board.compile(g)
        except (BoardError, GraphError):
            tally.gave_up += 1
            return
        for x, want in zip(xs, wants, strict=True):
            tally.calls += 1
            try:
                got = prog(x=x)
            except (BoardError, GraphError):
                tally.gave_up += 1
                continue
            done += 1
            if not np.array_equal(got["y"], want["y"]):
                tally.wrong += 1
        tally.reloads += prog.stats["reloads"]
    finally:
        tally.faults += link.damaged + link.resets
        tally.resets += link.resets
        tally.retries += board.stats["retries"]
        board.close()
    if runs0 is not None and link.resets == 0:
        # each completed call ran the program exactly once on the board
        if _status(port).runs - runs0 != done:
            tally.twice += 1


MIXES = [dict(drop=0.04), dict(flip=0.06), dict(truncate=0.04), dict(garbage=0.08),
         dict(drop=0.02, flip=0.03, truncate=0.02, garbage=0.03)]


def _campaign(served, want_faults, seed0, dense=1.0):
    tally = Tally()
    t0 = time.monotonic()
    rng = np.random.default_rng(seed0)
    i = 0
    while tally.faults < want_faults:
        mix = {k: min(0.5, dense * v) for k, v in MIXES[i % len(MIXES)].items()}
        resets = () if i % 3 else tuple(int(v) for v in rng.integers(2, 40,
                                                                    int(rng.integers(1, 3))))
        _round(served, seed0 + i, mix, resets, tally)
        i += 1
        assert i < 20 * want_faults, "too few faults injected"
    print(f"{tally.faults} faults ({tally.resets} resets) in {i} rounds, {tally.calls} "
          f"calls, {tally.retries} retries, {tally.reloads} reloads after resets, "
          f"{time.monotonic() - t0:.1f} s")
    return tally


def test_faults_on_program_loads_and_runs(served):
    tally = _campaign(served, 150, 100)
    assert tally.wrong == 0 and tally.gave_up == 0 and tally.twice == 0
    assert tally.resets >= 3 and tally.retries > 0 and tally.reloads > 0


@pytest.mark.regress
def test_ten_thousand_faults_on_programs(served):
    tally = _campaign(served, 10 ** 4, 10_000, dense=3.0)
    assert tally.wrong == 0 and tally.gave_up == 0 and tally.twice == 0
