"""host.Graph and board.compile on model:// with a protocol-2 design (tests/tm_design.yaml):
evaluate (golden models only) equals the compiled program's outputs code for code; bad graphs
are refused on the host, before anything is sent, with one line."""

from pathlib import Path

import numpy as np
import pytest

from generators.config import BoardConfig, TensorMemoryConfig
from host import Graph, GraphError, open_board
from host.board import Board
from host.model import ModelBoard, board_config
from host.transport import ModelTransport

DESIGN = str(Path(__file__).parent / "tm_design.yaml")
CFG = board_config(DESIGN)


@pytest.fixture
def board():
    with open_board("model://" + DESIGN, timeout=0.05, progress=False) as b:
        yield b


def _attention(rng, s=16, d=24, per_channel_v=True):
    g = Graph()
    x = g.input("x", (s, d), "int8")
    rq = dict(bias=3, multiplier=1 << 30, shift=-9, zero_point=0, out="int8")
    q = g.matmul(x, g.weight("wq", rng.integers(-128, 128, (d, d))), requant=rq, name="q")
    k = g.matmul(x, g.weight("wk", rng.integers(-128, 128, (d, d))), requant=rq, name="k")
    vb = rng.integers(-99, 99, d) if per_channel_v else 0
    v = g.matmul(x, g.weight("wv", rng.integers(-128, 128, (d, d))),
                 requant=dict(bias=vb, multiplier=rng.integers(1 << 29, 1 << 30, d),
                              shift=-9), name="v")
    sc = g.matmul(q, k, transpose_b=True, requant=dict(rq, out="fixed<8,3>"), name="s")
    p = g.softmax(sc, name="p")
    o = g.matmul(p, v, requant=dict(bias=0, multiplier=1 << 30, shift=-7,
                                    out="fixed<8,3>"), name="o")
    g.output("y", g.gelu(o, name="y"))
    return g


@pytest.mark.parametrize("s,d", [(16, 24), (13, 19), (64, 32)])
def test_attention_chain_equals_evaluate(board, s, d):
    rng = np.random.default_rng(s * d)
    g = _attention(rng, s, d)
    prog = board.compile(g)
    assert prog.stats["weight_bytes"] > 3 * d * d
    for _ in range(2):      # weights resident: the second call sends only x
        X = rng.integers(-128, 128, (s, d))
        want = g.evaluate(design=CFG, x=X, keep=["p", "s", "q"])
        got = prog(x=X, keep=["p", "s", "q"])
        assert set(got) == {"y", "p", "s", "q"}
        for name in want:
            assert np.array_equal(got[name], want[name]), name
        assert len(np.unique(want["p"])) > 1   # not a degenerate softmax
    st = prog.stats
    assert list(st["op_cycles"]) == ["q", "k", "v", "s", "p", "o", "y"]
    assert st["cycles"] == sum(st["op_cycles"].values())
    assert 0 < st["mac_utilization"] < 1
    # the link carries x, y (padded rows) and frames, not the weights
    assert st["link_bytes"] < 3 * (s * d + 4 * s * -(-d // 32) * 32) + 400


def _random_graph(rng):
    """A random chain over the design's units: matmuls (normal, transposed b, with and
    without requant), the requant unit, gelu, softmax, a sparse matmul on an input."""
    g = Graph()
    r, c = int(rng.integers(1, 20)), int(rng.integers(1, 20))
    t = g.input("x", (r, c), "int8")
    outs = 0
    for i in range(int(rng.integers(2, 6))):
        kind = rng.choice(["matmul", "matmul_t", "requant_unit", "gelu", "softmax"])
        fmt = str(t.fmt)
        n = int(rng.integers(1, 20))
        if fmt == "int8" and kind in ("matmul", "matmul_t"):
            if kind == "matmul":
                w = g.weight(f"w{i}", rng.integers(-128, 128, (t.shape[1], n)))
                # scalars: a matmul whose output feeds another's a is computed
                # transposed (C^T = B^T A^T), where per-channel parameters are refused
                rq = dict(bias=int(rng.integers(-50, 50)), multiplier=int(rng.integers(
                    1 << 29, 1 << 31)), shift=int(rng.integers(-12, -8)),
                          out=str(rng.choice(["int8", "fixed<8,3>"])))
                t = g.matmul(t, w, requant=rq)
            else:
                w = g.weight(f"w{i}", rng.integers(-128, 128, (n, t.shape[1])))
                t = g.matmul(t, w, transpose_b=True, requant=dict(
                    bias=int(rng.integers(-9, 9)), multiplier=1 << 30, shift=-8))
        elif fmt == "int8" and kind == "requant_unit":
            w = g.weight(f"w{i}", rng.integers(-128, 128, (t.shape[1], n)))
            acc = g.matmul(t, w)                       # the plain MAC array: int32
            t = g.requant(acc, bias=rng.integers(-50, 50, n), multiplier=1 << 30,
                          shift=-10, zero_point=int(rng.integers(-3, 3)))
        elif fmt == "fixed<8,3>" and kind == "gelu":
            t = g.gelu(t)
        elif fmt == "fixed<8,3>" and kind == "softmax":
            t = g.softmax(t)
            g.output(f"out{outs}", t)
            outs += 1
            break
        elif fmt == "fixed<8,3>":
            t = g.gelu(t)
    g.output(f"out{outs}", t)
    return g


@pytest.mark.parametrize("seed", range(8))
def test_random_graphs_equal_evaluate(board, seed):
    rng = np.random.default_rng(1000 + seed)
    g = _random_graph(rng)
    prog = board.compile(g)
    x = g.tensors["x"]
    X = rng.integers(-128, 128, x.shape)
    want = g.evaluate(design=CFG, x=X)
    got = prog(x=X)
    assert set(got) == set(want)
    for name in want:
        assert np.array_equal(got[name], want[name]), (seed, name)


def _sparse_w(rng, o, k):
    w = rng.integers(-128, 128, (o, k))
    for r in range(o):
        for g0 in range(0, k, 4):
            idx = rng.permutation(np.arange(g0, min(k, g0 + 4)))
            w[r, idx[2:]] = 0
    return w


def test_sparse_matmul_on_an_input(board):
    rng = np.random.default_rng(5)
    g = Graph()
    x = g.input("x", (30, 7), "int8")
    w = g.weight("w24", _sparse_w(rng, 9, 30))
    y = g.sparse_matmul(w, x, mode="2:4", name="y")
    g.output("y", y)
    prog = board.compile(g)
    for _ in range(2):
        X = rng.integers(-128, 128, (30, 7))
        assert np.array_equal(prog(x=X)["y"], g.evaluate(design=CFG, x=X)["y"])


@pytest.mark.parametrize("transpose_x", [False, True])
def test_sparse_matmul_on_an_intermediate(board, transpose_x):
    """The chain reads x from the tensor memory, one column per pass (x^T by rows with
    transpose_x): x made on the board by the requant unit, never sent."""
    rng = np.random.default_rng(9)
    g = Graph()
    x = g.input("x", (20, 40), "int8")
    acc = g.matmul(x, g.weight("w3", rng.integers(-128, 128, (40, 36))))
    xr = g.requant(acc, multiplier=1 << 30, shift=-9, name="xr")            # [20, 36]
    k = 20 if not transpose_x else 36
    y = g.sparse_matmul(g.weight("w", _sparse_w(rng, 9, k)), xr, mode="2:4",
                        transpose_x=transpose_x, name="y")
    g.output("y", y)
    prog = board.compile(g)
    for _ in range(2):
        X = rng.integers(-128, 128, (20, 40))
        want = g.evaluate(design=CFG, x=X, keep=["xr"])
        got = prog(x=X, keep=["xr"])
        assert np.array_equal(got["y"], want["y"]) and np.array_equal(got["xr"], want["xr"])
    assert y.shape == ((9, 36) if not transpose_x else (9, 20))


@pytest.mark.parametrize("transposed", [False, True])
def test_a_matmul_wider_than_the_requant_memory_runs_in_column_blocks(board, transposed):
    """N = 300 output channels on an epilogue that holds 256: the compiler cuts the computed
    output into column blocks of at most 256 (multiples of the tile), one op each, with
    their slices of the per-channel parameters (computed as C^T when its consumer reads it
    in columns, where the blocks run along M)."""
    rng = np.random.default_rng(12)
    g = Graph()
    x = g.input("x", (40, 24) if not transposed else (300, 24), "int8")
    n = 300 if not transposed else 16
    per = not transposed
    rq = dict(bias=rng.integers(-99, 99, n) if per else 5,
              multiplier=rng.integers(1 << 29, 1 << 31, n) if per else 1 << 30, shift=-9)
    y = g.matmul(x, g.weight("w", rng.integers(-128, 128, (24, n))), requant=rq, name="y")
    if transposed:      # y is the a operand of an output-stationary matmul: read in columns
        y = g.matmul(y, g.weight("w2", rng.integers(-128, 128, (n, 8))),
                     requant=dict(multiplier=1 << 30, shift=-8), name="z")
    g.output("y", y)
    prog = board.compile(g)
    X = rng.integers(-128, 128, x.shape)
    want = g.evaluate(design=CFG, x=X)
    assert np.array_equal(want["y"], g.evaluate(x=X)["y"])  # blocks == one 4096-channel op
    got = prog(x=X)
    assert np.array_equal(got["y"], want["y"])
    assert len(prog.plan) == 2 + transposed          # two blocks (256 + 44), then z
    assert [d[-1] for _, _, d in prog.plan[:2]] == [256, 44]


def _refused(board, g, match):
    before = board.stats["requests"]
    with pytest.raises(GraphError, match=match) as err:
        board.compile(g)
    assert "\n" not in str(err.value)
    assert board.stats["requests"] == before      # nothing was sent


def test_bad_graphs_are_refused_before_anything_is_sent(board):
    rng = np.random.default_rng(6)
    with pytest.raises(GraphError, match=r"weight w: codes -300\.\.\d+ do not fit int8"):
        Graph().weight("w", np.array([[-300, 5]]))
    g = Graph()
    x = g.input("x", (4, 4), "int8")
    g.output("y", g.softmax(x))
    _refused(board, g, r"softmax softmax\d: no softmax unit takes it: input format int8 "
             r"\(unit softmax64 takes fixed<8,3>\)")
    g = Graph()
    x = g.input("x", (4, 100), "fixed<8,3>")
    g.output("y", g.softmax(x))
    _refused(board, g, "rows of 100 elements .allowed: at most 64")
    g = Graph()
    x = g.input("x", (4, 8), "int8")
    q = g.matmul(x, g.weight("w", rng.integers(-9, 9, (8, 8))),
                 requant=dict(bias=np.arange(8), multiplier=1 << 30, shift=-8))
    g.output("s", g.matmul(x, q, transpose_b=True, requant=dict(multiplier=1 << 30,
                                                                 shift=-8)))
    _refused(board, g, "computed as C\\^T = B\\^T A\\^T, so requant bias, multiplier and "
             "shift must be scalars")
    g = Graph()
    x = g.input("x", (300, 300), "int8")
    g.output("y", g.matmul(x, g.weight("w", rng.integers(-9, 9, (300, 300)))))
    _refused(board, g, r"needs \d+ bytes; bank \d has \d+ left of 65536 .* tiling "
             "larger-than-memory ops is not built")
    with pytest.raises(GraphError, match="do not chain"):
        Graph().matmul(Graph().input("a", (2, 3)), Graph().input("b", (4, 2)))


def test_a_unit_the_design_lacks_and_bad_call_inputs(board):
    v = BoardConfig(name="nogelu", board="ulx3s", tensor_memory=TensorMemoryConfig(),
                    units=CFG.units[:2])
    b2 = Board(ModelTransport("model://nogelu", ModelBoard(v)), timeout=0.05, progress=False)
    g = Graph()
    x = g.input("x", (4, 4), "fixed<8,3>")
    g.output("y", g.gelu(x))
    _refused(b2, g, r"gelu gelu\d: the design has no gelu unit")
    v1 = BoardConfig(name="v1", board="ulx3s", units=CFG.units[3:4])
    b1 = Board(ModelTransport("model://v1", ModelBoard(v1)), timeout=0.05, progress=False)
    _refused(b1, g, "has no tensor memory")
    prog = board.compile(g)
    X = np.arange(-8, 8).reshape(4, 4)
    assert np.array_equal(prog(x=X)["y"], g.evaluate(design=CFG, x=X)["y"])
    before = board.stats["requests"]
    with pytest.raises(GraphError, match=r"input x: shape \(4, 5\)"):
        prog(x=np.zeros((4, 5), int))
    with pytest.raises(GraphError, match=r"input x: codes -200\.\.-200 do not fit fixed<8,3>"):
        prog(x=np.full((4, 4), -200))
    with pytest.raises(GraphError, match="allowed: exactly"):
        prog(z=X)
    with pytest.raises(GraphError, match="keep 'nope'"):
        prog(x=X, keep=["nope"])
    assert board.stats["requests"] == before


def test_evaluate_without_a_design_uses_the_op_formats():
    rng = np.random.default_rng(8)
    g = Graph()
    x = g.input("x", (5, 6), "int8")
    w = rng.integers(-128, 128, (6, 7))
    g.output("y", g.matmul(x, g.weight("w", w), requant=dict(multiplier=1 << 30, shift=-6,
                                                            bias=2)))
    g.output("z", g.requant(g.matmul(x, g.weight("w2", w)), multiplier=1 << 30, shift=-7))
    X = rng.integers(-128, 128, (5, 6))
    from generators.numerics import Format, requantize_fixed

    got = g.evaluate(x=X)
    for name, bias, shift in (("y", 2, -6), ("z", 0, -7)):
        want = requantize_fixed(X @ w, bias=bias, multiplier=1 << 30, shift=shift,
                                out_fmt=Format.parse("int8"))
        assert np.array_equal(got[name], want), name


def test_two_programs_stay_resident_on_one_board():
    with open_board("model://" + DESIGN, timeout=0.05, progress=False) as b:
        rng = np.random.default_rng(11)
        g1, g2 = _attention(rng, 8, 16), _random_graph(np.random.default_rng(1003))
        p1, p2 = b.compile(g1), b.compile(g2)
        assert p2.addr > p1.addr == 0
        for _ in range(2):
            X1 = rng.integers(-128, 128, (8, 16))
            X2 = rng.integers(-128, 128, g2.tensors["x"].shape)
            got1, got2 = p1(x=X1), p2(x=X2)
            assert np.array_equal(got1["y"], g1.evaluate(design=CFG, x=X1)["y"])
            for name, want in g2.evaluate(design=CFG, x=X2).items():
                assert np.array_equal(got2[name], want)


def test_stale_memory_does_not_leak_into_padding(board):
    """Whatever the tensor memory held before (another program's tensors), the compiler
    leaves zeros where the units read padding."""
    tm = board.tensor_memory
    for bank in range(tm["banks"]):
        board.tm_write(bank, 0, b"\xa5" * 8192)
    rng = np.random.default_rng(12)
    for g in (_attention(rng, 13, 19), _random_graph(np.random.default_rng(1001))):
        prog = board.compile(g)
        X = rng.integers(-128, 128, g.tensors["x"].shape)
        for name, want in g.evaluate(design=CFG, x=X).items():
            assert np.array_equal(prog(x=X)[name], want), name


def test_a_weight_stationary_array_chains_per_channel_matmuls():
    """A weight-stationary array reads a in row layout: x @ W1 @ W2 with per-channel
    requant on both (an output-stationary array would need scalars on the first)."""
    from generators.config import parse_config

    ws = parse_config({"name": "macws", "unit": "mac_array", "rows": 8, "cols": 8,
                       "a": "int8", "b": "int8", "acc": "int32",
                       "dataflow": "weight_stationary", "tile_m": 16,
                       "requant": {"out": "int8", "channels": 64}}, "t")
    cfg = BoardConfig(name="ws", board="ulx3s", tensor_memory=TensorMemoryConfig(),
                      units=(ws, *CFG.units[2:4]))
    b = Board(ModelTransport("model://ws", ModelBoard(cfg)), timeout=0.05, progress=False)
    rng = np.random.default_rng(21)
    g = Graph()
    x = g.input("x", (32, 20), "int8")

    def rq(n):
        return dict(bias=rng.integers(-50, 50, n), multiplier=rng.integers(1 << 29, 1 << 31, n),
                    shift=rng.integers(-12, -9, n))
    h = g.matmul(x, g.weight("w1", rng.integers(-128, 128, (20, 24))), requant=rq(24))
    y = g.matmul(h, g.weight("w2", rng.integers(-128, 128, (24, 9))), requant=rq(9))
    g.output("y", y)
    prog = b.compile(g)
    X = rng.integers(-128, 128, (32, 20))
    assert np.array_equal(prog(x=X)["y"], g.evaluate(design=cfg, x=X)["y"])


def _two_heads(rng, s, d, dh):
    """Two attention heads side by side (a concat of their outputs), then the output
    projection over both: the multi-head layout of a transformer."""
    g = Graph()
    x = g.input("x", (s, d), "int8")
    rq = dict(bias=0, multiplier=1 << 30, shift=-9, out="int8")
    heads = []
    for h in range(2):
        q = g.matmul(x, g.weight(f"wq{h}", rng.integers(-128, 128, (d, dh))), requant=rq,
                     name=f"q{h}")
        k = g.matmul(x, g.weight(f"wk{h}", rng.integers(-128, 128, (d, dh))), requant=rq,
                     name=f"k{h}")
        v = g.matmul(x, g.weight(f"wv{h}", rng.integers(-128, 128, (d, dh))), name=f"v{h}",
                     requant=dict(bias=rng.integers(-99, 99, dh),
                                  multiplier=rng.integers(1 << 29, 1 << 30, dh), shift=-9))
        sc = g.matmul(q, k, transpose_b=True, requant=dict(rq, out="fixed<8,3>"),
                      name=f"s{h}")
        p = g.softmax(sc, name=f"p{h}")
        heads.append(g.matmul(p, v, requant=dict(bias=0, multiplier=1 << 30, shift=-7),
                              name=f"o{h}"))
    o = g.concat(heads, name="o")
    g.output("y", g.matmul(o, g.weight("wo", rng.integers(-128, 128, (2 * dh, d))),
                           requant=dict(bias=rng.integers(-99, 99, d), multiplier=1 << 30,
                                        shift=-9), name="y"))
    return g


@pytest.mark.parametrize("s,d,dh", [(16, 24, 8), (13, 19, 16), (64, 32, 16)])
def test_concat_of_heads_costs_no_op(board, s, d, dh):
    rng = np.random.default_rng(s + d + dh)
    g = _two_heads(rng, s, d, dh)
    prog = board.compile(g)
    keep = ["o0", "o1", "o", "p1"]
    for _ in range(2):
        X = rng.integers(-128, 128, (s, d))
        want = g.evaluate(design=CFG, x=X, keep=keep)
        got = prog(x=X, keep=keep)
        assert np.array_equal(want["o"], np.concatenate([want["o0"], want["o1"]], axis=1))
        for name in want:
            assert np.array_equal(got[name], want[name]), name
    # the concat is no op on the board: its pieces' producers write into its columns
    assert "o" not in prog.stats["op_cycles"] and len(prog.stats["op_cycles"]) == 13


def test_bad_concats_are_refused(board):
    rng = np.random.default_rng(8)
    g = Graph()
    x = g.input("x", (8, 8), "int8")
    w = g.weight("w", rng.integers(-9, 9, (8, 12)))
    a = g.matmul(x, w, requant=dict(multiplier=1 << 30, shift=-8), name="a")
    b = g.matmul(x, w, requant=dict(multiplier=1 << 30, shift=-8), name="b")
    g.output("y", g.concat([a, b], name="c"))
    _refused(board, g, r"concat c: piece a: 12 columns \(allowed: multiples of 8")
    g = Graph()
    x = g.input("x", (8, 8), "int8")
    a = g.matmul(x, g.weight("w", rng.integers(-9, 9, (8, 8))),
                 requant=dict(multiplier=1 << 30, shift=-8), name="a")
    g.output("y", g.concat([x, a], name="c"))
    _refused(board, g, r"concat c: piece x: it is an input")
    g = Graph()
    x = g.input("x", (8, 8), "int8")
    a = g.matmul(x, g.weight("w", rng.integers(-9, 9, (8, 8))),
                 requant=dict(multiplier=1 << 30, shift=-8), name="a")
    g.output("y", g.concat([a, a], name="c"))
    _refused(board, g, r"concat c: piece a: it is a piece of concat c too")
    with pytest.raises(GraphError, match=r"concat c: row counts \[8, 4\]"):
        g.concat([a, g.input("z", (4, 8))], name="c")
    with pytest.raises(GraphError, match="concat d: formats int8, fixed<8,3>"):
        g.concat([a, g.input("z2", (8, 8), "fixed<8,3>")], name="d")


def _with_copy(units_extra=({"name": "copy8", "unit": "copy", "format": "int8"},)):
    from generators.config import parse_config

    cfg = parse_config({**CFG.model_dump(by_alias=True, exclude_none=True),
                        "name": "tm_copy", "units": [*[u.model_dump(by_alias=True,
                                                                    exclude_none=True)
                                                       for u in CFG.units],
                                                     *units_extra]}, "tm_copy")
    return cfg, Board(ModelTransport("model://tm_copy", ModelBoard(cfg)), timeout=0.05,
                      progress=False)


def test_copy_ops_transpose_where_a_tensor_is_needed_in_columns():
    """With a copy unit in the design: a per-channel matmul whose output is the a operand of
    the next (read in columns) is computed in rows and transposed by a copy op, and a tensor
    read in both layouts is stored in both; evaluate equals the program."""
    cfg, board = _with_copy()
    rng = np.random.default_rng(21)
    g = Graph()
    x = g.input("x", (13, 20), "int8")
    h = g.matmul(x, g.weight("w1", rng.integers(-128, 128, (20, 24))), name="h",
                 requant=dict(bias=rng.integers(-99, 99, 24),
                              multiplier=rng.integers(1 << 29, 1 << 31, 24), shift=-9))
    y = g.matmul(h, g.weight("w2", rng.integers(-128, 128, (24, 8))), name="y",
                 requant=dict(multiplier=1 << 30, shift=-8))
    q = g.matmul(h, h, transpose_b=True, name="q", requant=dict(multiplier=1 << 30, shift=-9))
    r = g.matmul(g.weight("w3", rng.integers(-128, 128, (5, 13))), h, name="r",
                 requant=dict(bias=rng.integers(-9, 9, 24), multiplier=1 << 30, shift=-9))
    g.output("y", y)
    g.output("q", q)
    g.output("r", r)     # h also in rows (the b of r): both stored layouts
    with board:
        prog = board.compile(g)
        for _ in range(2):
            X = rng.integers(-128, 128, (13, 20))
            want = g.evaluate(design=cfg, x=X, keep=["h"])
            got = prog(x=X, keep=["h"])
            for k in want:
                assert np.array_equal(got[k], want[k]), k
        assert "h.col" in prog.stats["op_cycles"]
        assert [n.kind for n, _, _ in prog.plan].count("copy") == 1


def test_without_a_copy_unit_both_layouts_are_refused(board):
    rng = np.random.default_rng(22)
    g = Graph()
    x = g.input("x", (8, 8), "int8")
    h = g.matmul(x, g.weight("w1", rng.integers(-9, 9, (8, 8))),
                 requant=dict(multiplier=1 << 30, shift=-8), name="h")
    g.output("q", g.matmul(h, h, transpose_b=True, requant=dict(multiplier=1 << 30,
                                                                   shift=-8)))
    g.output("r", g.matmul(g.weight("w2", rng.integers(-9, 9, (8, 8))), h,
                           requant=dict(multiplier=1 << 30, shift=-8)))
    _refused(board, g, r"matmul h: its output is read in col and row layout, computed in row "
             r"\(allowed: one layout, or a copy unit taking int8 in the design")


def _deep(rng, layers=10, d=64):
    g = Graph()
    t = g.input("x", (64, d), "int8")
    for i in range(layers):
        t = g.matmul(t, g.weight(f"w{i}", rng.integers(-128, 128, (d, d))), name=f"h{i}",
                     requant=dict(bias=int(rng.integers(-99, 99)), multiplier=1 << 30,
                                  shift=-9))
    g.output("y", t)
    return g


def test_memory_is_shared_between_tensors_whose_lives_do_not_overlap():
    """Eight 64x64 layers (about 41 KiB of weights and requant parameters, 37 KiB of
    activations) in 64 KiB of tensor memory: refused without reuse, run with it (the
    activations share a few buffers); the outputs equal evaluate, and only outputs and
    compile-time keep tensors can be read back."""
    small = CFG.model_copy(update={"name": "tm_small", "tensor_memory": TensorMemoryConfig(
        banks=4, bytes=65536, word_bytes=32)})
    rng = np.random.default_rng(31)
    g = _deep(rng, layers=8)

    def board():
        return Board(ModelTransport("model://tm_small", ModelBoard(small)), timeout=0.05,
                     progress=False)

    with board() as b, pytest.raises(GraphError, match=r"needs \d+ bytes; bank \d has \d+ "
                                     r"left of 16384 \(4 banks; tiling"):
        b.compile(g, reuse=False)
    with board() as b:
        prog = b.compile(g)                    # reuse=None: shares memory because it must
        assert prog.stats["memory_bytes"] < 65536
        X = rng.integers(-128, 128, (64, 64))
        want = g.evaluate(design=small, x=X, keep=["h3"])
        assert np.array_equal(prog(x=X)["y"], want["y"])
        with pytest.raises(GraphError, match="keep 'h3': its memory is reused later"):
            prog(x=X, keep=["h3"])
    with board() as b:
        prog = b.compile(g, keep=["h3"])
        got = prog(x=X, keep=["h3"])
        assert np.array_equal(got["h3"], want["h3"]) and np.array_equal(got["y"], want["y"])


@pytest.mark.parametrize("seed", range(6))
def test_put_image_writes_what_a_plain_write_would(seed):
    """``put_image`` (the loads' and inputs' writes: TM_WRITE, or strided / replicated
    TM_SCATTER pieces, or a zero fill and the rows' non-zero prefixes) leaves the bank as a
    plain write of the image would, over memory holding garbage; with ``chunk`` (raw beats)
    each row's first ``chunk`` bytes. It never sends more than a plain write."""
    from host.graph import put_image

    rng = np.random.default_rng(seed)
    with open_board("model://" + DESIGN, timeout=0.05, progress=False) as b:
        for trial in range(12):
            pitch = int(rng.choice([1, 3, 8, 32, 96]))
            rows = int(rng.integers(1, 40))
            used = int(rng.integers(1, pitch + 1))
            img = np.zeros((rows, pitch), np.uint8)
            kind = trial % 4
            if kind == 0:      # dense
                img[:] = rng.integers(0, 256, img.shape)
            elif kind == 1:    # padded rows, padded tail rows
                img[:max(1, rows - 3), :used] = rng.integers(1, 256, (max(1, rows - 3), used))
            elif kind == 2:    # runs of equal rows (per-tensor parameters) and one odd row
                img[:, :used] = rng.integers(0, 256, used)
                img[-1, 0] ^= 1
            # kind 3: all zero
            chunk = used if trial % 3 == 0 else None
            bank, base = int(rng.integers(0, 4)), int(rng.integers(0, 200))
            b.tm_write(bank, base, rng.integers(0, 256, img.size).astype(np.uint8).tobytes())
            w0 = b.stats["wire_out"]
            put_image(b, bank, base, img.tobytes(), pitch, chunk)
            sent = b.stats["wire_out"] - w0
            got = np.frombuffer(b.tm_read(bank, base, img.size), np.uint8).reshape(img.shape)
            if chunk is None:
                assert np.array_equal(got, img), (seed, trial)
            else:
                assert np.array_equal(got[:, :chunk], img[:, :chunk]), (seed, trial)
            w0 = b.stats["wire_out"]
            b.tm_write(bank, base, img.tobytes())
            assert sent <= b.stats["wire_out"] - w0 + 4, (seed, trial, pitch, used)


def test_tm_scatter_splits_into_frames():
    """``Board.tm_scatter`` across frames: more pieces than a frame holds, pieces longer than
    a frame, a replicated piece over more places than a count field holds; bad arguments are
    a one-line UserError before anything is sent."""
    from generators.errors import UserError

    rng = np.random.default_rng(3)
    with open_board("model://" + DESIGN, timeout=0.05, progress=False) as b:
        bank_bytes = b.tensor_memory["bank_bytes"]
        cases = [(7, 9, 500), (1500, 1600, 3), (1, 1, 65536), (5, 16, 300)]
        for chunk, pitch, count in cases:
            whole = chunk * count <= 40000
            data = rng.integers(0, 256, chunk * count if whole else 1).astype(np.uint8)
            b.tm_write(0, 0, bytes(min(bank_bytes, (count - 1) * pitch + chunk)))
            b.tm_scatter(0, 0, chunk, pitch, count, data.tobytes())
            got = np.frombuffer(b.tm_read(0, 0, (count - 1) * pitch + chunk), np.uint8)
            want = np.zeros_like(got)
            pieces = np.resize(data, chunk * count).reshape(count, chunk)
            for i in range(count):
                want[i * pitch:i * pitch + chunk] = pieces[i]
            assert np.array_equal(got, want), (chunk, pitch, count)
        for args in [(0, 0, 0, 1, 1, b"x"), (0, 0, 4, 3, 1, b"x"), (0, 0, 1, 1, 1, b""),
                     (9, 0, 1, 1, 1, b"x"), (0, bank_bytes - 1, 2, 2, 1, b"x"),
                     (0, 0, 2, 2, 3, b"x" * 7), (0, 0, 1, 1, 5000, bytes(2000))]:
            with pytest.raises(UserError):
                b.tm_scatter(*args)


def test_a_chain_shorter_than_n_runs_groups_that_span_beats(tmp_path):
    """A 2-stage chain in 4:4 (each group's 4 slots on 2 weight beats that share one
    activation beat) and 2:4, on an input and on an intermediate read from memory: equal to
    evaluate, at the chain's expected cycles."""
    text = Path(DESIGN).read_text().replace(
        'length: 16, m: 4, modes: ["2:4", "1:4", "4:4"]', 'length: 2, m: 4, modes: ["4:4", "2:4"]')
    assert "length: 2," in text
    (tmp_path / "short.yaml").write_text(text)
    design = str(tmp_path / "short.yaml")
    cfg = board_config(design)
    rng = np.random.default_rng(21)
    g = Graph()
    x = g.input("x", (20, 40), "int8")
    acc = g.matmul(x, g.weight("w3", rng.integers(-128, 128, (40, 12))))
    xr = g.requant(acc, multiplier=1 << 30, shift=-9, name="xr")            # [20, 12]
    y4 = g.sparse_matmul(g.weight("wd", rng.integers(-128, 128, (5, 20))), xr, mode="4:4",
                         name="y4")
    y2 = g.sparse_matmul(g.weight("w24", _sparse_w(rng, 3, 30)), g.input("x2", (30, 6), "int8"),
                         mode="2:4", name="y2")
    g.output("y4", y4)
    g.output("y2", y2)
    with open_board("model://" + design, timeout=0.05, progress=False) as b:
        prog = b.compile(g)
        for _ in range(2):
            X, X2 = rng.integers(-128, 128, (20, 40)), rng.integers(-128, 128, (30, 6))
            want = g.evaluate(design=cfg, x=X, x2=X2)
            got = prog(x=X, x2=X2)
            assert np.array_equal(got["y4"], want["y4"]) and np.array_equal(got["y2"],
                                                                             want["y2"])
