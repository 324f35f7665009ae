"""host.Graph programs on the RTL board: the Verilator-built board of tests/tm_rtl_design.yaml
served over TCP, driven through open_board and board.compile exactly as a real board is.
Every output and every kept intermediate must equal Graph.evaluate (the golden models) code
for code, and model:// must give the same codes."""

import socket
from pathlib import Path

import numpy as np
import pytest

from host import Graph, open_board
from host.model import board_config

pytestmark = [pytest.mark.rtl, pytest.mark.xdist_group("tm_rtl_board")]

DESIGN = str(Path(__file__).parent / "tm_rtl_design.yaml")
CFG = board_config(DESIGN)
KEEP = ["q", "k", "v", "s", "p", "o"]


@pytest.fixture(scope="module")
def url():
    from sim import board as sim_board

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = sim_board.start(CFG, port, timeout=60.0)
    try:
        yield f"socket://127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait()


def _attention(rng, s, d):
    """Q/K/V projections (V per-channel), Q K^T, softmax, P V, GELU."""
    g = Graph()
    x = g.input("x", (s, d), "int8")
    rq = dict(bias=3, multiplier=1 << 30, shift=-8, zero_point=0, out="int8")
    q = g.matmul(x, g.weight("wq", rng.integers(-128, 128, (d, d))), requant=rq, name="q")
    k = g.matmul(x, g.weight("wk", rng.integers(-128, 128, (d, d))), requant=rq, name="k")
    v = g.matmul(x, g.weight("wv", rng.integers(-128, 128, (d, d))), name="v",
                 requant=dict(bias=rng.integers(-99, 99, d),
                              multiplier=rng.integers(1 << 29, 1 << 30, d), shift=-8))
    sc = g.matmul(q, k, transpose_b=True, requant=dict(rq, out="fixed<8,3>"), name="s")
    p = g.softmax(sc, name="p")
    o = g.matmul(p, v, requant=dict(bias=0, multiplier=1 << 30, shift=-6, out="fixed<8,3>"),
                 name="o")
    g.output("y", g.gelu(o, name="y"))
    return g


@pytest.mark.parametrize("s,d", [(16, 12), (7, 5)])
def test_attention_program_on_the_rtl_board(url, s, d):
    rng = np.random.default_rng(s * 31 + d)
    g = _attention(rng, s, d)
    with open_board(url, progress=False) as rtl, \
            open_board("model://" + DESIGN, progress=False) as model:
        prog, ref = rtl.compile(g), model.compile(g)
        for _ in range(3):      # weights resident: later calls send only x
            X = rng.integers(-128, 128, (s, d))
            want = g.evaluate(design=CFG, x=X, keep=KEEP)
            got = prog(x=X, keep=KEEP)
            again = ref(x=X, keep=KEEP)
            assert set(got) == set(want) == {"y", *KEEP}
            for name in want:
                assert np.array_equal(got[name], want[name]), name
                assert np.array_equal(again[name], want[name]), name
            assert len(np.unique(want["p"])) > 1     # not a degenerate softmax
        st = prog.stats
        assert list(st["op_cycles"]) == ["q", "k", "v", "s", "p", "o", "y"]
        assert st["cycles"] >= sum(ref.stats["op_cycles"].values())   # measured >= ideal
        assert 0 < st["mac_utilization"] < 1
