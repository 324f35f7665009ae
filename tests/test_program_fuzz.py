"""Fuzzing the protocol-2 path (docs/programs.md).

- Random well-formed graphs (tests/graph_cases.py: shapes, formats, op orders) give the same
  codes from Graph.evaluate, from model:// and from the Verilator-built RTL board of
  tests/tm_rtl_design.yaml, for every output; every other one compiled with memory shared
  between tensors whose lives do not overlap.
- Malformed programs (each kind of error the board's whole-program check covers, and random
  bytes) written to the RTL board's program memory get a NAK BAD_PROGRAM, never run, and the
  board still answers INFO and runs a compiled program correctly afterwards.

`make test` runs a sample; `make regress` the full counts (200 graphs, 10^4 programs).
"""

from __future__ import annotations

import socket
import struct
from pathlib import Path

import numpy as np
import pytest
from graph_cases import random_graph, small_graph

from host import open_board
from host import program as P
from host import protocol as proto
from host.board import BoardError
from host.model import board_config

DESIGN = str(Path(__file__).parent / "tm_rtl_design.yaml")
MODEL_DESIGN = str(Path(__file__).parent / "tm_design.yaml")
CFG = board_config(DESIGN)


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


def _check_graph(rtl, model, design, seed):
    rng = np.random.default_rng(seed)
    g, inputs = random_graph(rng, design)
    want = g.evaluate(design=design, **inputs)
    reuse = bool(seed % 2)          # every other graph shares memory between its tensors
    got = rtl.compile(g, reuse=reuse)(**inputs) if rtl is not None else None
    again = model.compile(g, reuse=reuse)(**inputs)
    for name in want:
        assert np.array_equal(again[name], want[name]), (seed, name, "model://")
        if got is not None:
            assert np.array_equal(got[name], want[name]), (seed, name, "rtl")
    return g


@pytest.mark.parametrize("seed", range(40))
def test_random_graphs_on_model(seed):
    design = board_config(MODEL_DESIGN)
    with open_board("model://" + MODEL_DESIGN, progress=False) as model:
        _check_graph(None, model, design, 5000 + seed)


def _fresh(url):
    """A board whose tensor and program memories are allocated from 0 again (each graph
    compiles into a fresh allocation; the RTL board's memory keeps old bytes, which the
    compiler must never rely on)."""
    return open_board(url, progress=False)


def _random_graphs_on_rtl(url, seeds):
    kinds = set()
    for seed in seeds:
        with _fresh(url) as rtl, open_board("model://" + DESIGN, progress=False) as model:
            g = _check_graph(rtl, model, CFG, seed)
            kinds |= {n.kind for n in g.nodes}
    return kinds


@pytest.mark.rtl
@pytest.mark.xdist_group("tm_rtl_board")
def test_random_graphs_on_the_rtl_board(url):
    kinds = _random_graphs_on_rtl(url, range(7200, 7224))
    assert {"matmul", "softmax", "gelu", "sparse_matmul", "concat"} <= kinds


@pytest.mark.rtl
@pytest.mark.regress
@pytest.mark.xdist_group("tm_rtl_board")
def test_200_random_graphs_on_the_rtl_board(url):
    kinds = _random_graphs_on_rtl(url, range(8000, 8200))
    assert {"matmul", "softmax", "gelu", "sparse_matmul", "concat"} <= kinds


# -- malformed programs ------------------------------------------------------------------------


def _mutations(info):
    """Functions ``(rng, Program) -> bytes`` making a program the board's check refuses."""
    tm = info["tensor_memory"]
    units = info["units"]
    nstreams = [len(u["streams"]) for u in units]

    def op_field(prog, rng, **kw):
        ops = list(prog.ops)
        i = int(rng.integers(0, len(ops)))
        o = ops[i]
        ops[i] = P.Op(kw.get("unit", o.unit), kw.get("mode", o.mode), o.dims,
                      kw.get("streams", o.streams), kw.get("kind", o.kind))
        return P.to_bytes(P.Program(tuple(ops)))

    def desc_field(prog, rng, pick=lambda d: True, **kw):
        ops = list(prog.ops)
        where = [(i, j) for i, o in enumerate(ops) for j, d in enumerate(o.streams) if pick(d)]
        i, j = where[int(rng.integers(0, len(where)))]
        o = ops[i]
        d = o.streams[j]
        kw = {f: v(d) if callable(v) else v for f, v in kw.items()}
        vals = {f: kw.get(f, getattr(d, f)) for f in ("bank", "kind", "nbytes", "base",
                                                      "count", "stride", "first", "last")}
        streams = list(o.streams)
        streams[j] = P.Descriptor(**vals)
        ops[i] = P.Op(o.unit, o.mode, o.dims, tuple(streams), o.kind)
        return P.to_bytes(P.Program(tuple(ops)))

    def kind(rng, prog):
        return op_field(prog, rng, kind=int(rng.choice([0, *range(2, 256)])))

    def unit(rng, prog):
        return op_field(prog, rng, unit=int(rng.integers(len(units), 256)))

    def streams(rng, prog):
        o = prog.ops[0]
        n = nstreams[o.unit]
        k = int(rng.choice([m for m in range(0, 6) if m != n]))
        extra = (o.streams * 6)[:k]
        ops = (P.Op(o.unit, o.mode, o.dims, tuple(extra), o.kind),) + prog.ops[1:]
        return P.to_bytes(P.Program(ops))

    def mode(rng, prog):
        return op_field(prog, rng, mode=int(rng.integers(1, 256)))

    def bank(rng, prog):
        return desc_field(prog, rng, bank=int(rng.integers(tm["banks"], 256)))

    def dkind(rng, prog):
        return desc_field(prog, rng, kind=int(rng.integers(2, 256)))

    def nbytes(rng, prog):
        return desc_field(prog, rng, nbytes=int(rng.choice([0, 3, 5, 7, 9, 1000, 65535])))

    def count0(rng, prog):
        c = [1, 1, 1, 1]
        c[int(rng.integers(0, 4))] = 0
        return desc_field(prog, rng, count=tuple(c))

    def range_(rng, prog):
        return desc_field(prog, rng, base=int(tm["bank_bytes"] + rng.integers(0, 1 << 20)))

    def masks(rng, prog):
        m = [0, 0, 0, 0]
        m[int(rng.integers(0, 4))] = int(rng.integers(16, 256))
        return desc_field(prog, rng, **{str(rng.choice(["first", "last"])): tuple(m)})

    def past_memory(rng, prog):
        # a program count that runs past the end of the program memory
        data = P.to_bytes(prog)
        return struct.pack("<H", int(rng.integers(len(prog.ops) + 1, 300))) + data[2:]

    def misaligned(rng, prog):
        # a beat of more than one byte at an odd address
        return desc_field(prog, rng, pick=lambda d: d.nbytes > 1, base=lambda d: d.base + 1)

    return [kind, unit, streams, mode, bank, dkind, nbytes, count0, range_, masks,
            past_memory, misaligned]


def _malformed_programs(url, count, seed):
    """``count`` malformed programs; returns the NAK count per mutation kind."""
    rng = np.random.default_rng(seed)
    with open_board(url, progress=False) as b:
        info = b.info()
        tm = info["tensor_memory"]
        g, inputs, want = small_graph(rng, CFG)
        prog = b.compile(g)
        assert np.array_equal(prog(**inputs)["y"], want["y"])
        good = prog.program
        base = info["program_bytes"] // 2          # the malformed ones live above the good one
        muts = _mutations(info)
        naks = {}
        for i in range(count):
            if i % 10 == 9:
                data = bytes(rng.integers(0, 256, int(rng.integers(2, 400)), dtype=np.uint8))
                name = "random bytes"
            else:
                m = muts[i % len(muts)]
                data, name = m(rng, good), m.__name__
            data = data[:info["program_bytes"] - base]
            b.prog_write(base, data)
            try:
                b.prog_run(base)
                refused = False
            except BoardError as err:
                assert err.nak is not None and err.nak.code == proto.NakCode.BAD_PROGRAM, \
                    (name, err)
                refused = True
            assert refused or name == "random bytes", (name, data[:64].hex())
            naks[name] = naks.get(name, 0) + refused
            if i % 50 == 49 or i == count - 1:
                assert b.info()["name"] == info["name"]
                x = rng.integers(-128, 128, inputs["x"].shape)
                assert np.array_equal(prog(x=x)["y"], g.evaluate(design=CFG, x=x)["y"])
        assert tm == b.info()["tensor_memory"]
    return naks


@pytest.mark.rtl
@pytest.mark.xdist_group("tm_rtl_board")
def test_malformed_programs_are_refused_by_the_rtl_board(url):
    naks = _malformed_programs(url, 1200, 11)
    assert sum(naks.values()) >= 1080


@pytest.mark.rtl
@pytest.mark.regress
@pytest.mark.xdist_group("tm_rtl_board")
def test_10k_malformed_programs_on_the_rtl_board(url):
    naks = _malformed_programs(url, 10_000, 12)
    assert sum(naks.values()) >= 9000
