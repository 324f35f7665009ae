"""Random well-formed host.Graph programs over a design's units (the fuzzing of
tests/test_program_fuzz.py): random shapes, formats and op orders, every op one the design
has a unit for.

A graph is a random walk from one input: each step picks an op the current tensor's format
allows on this design (matmul by a weight, with or without the fused requant, optionally
``transpose_b``; an activation x activation matmul; softmax; GELU; the requant unit; a 2:4
sparse matmul, optionally with x transposed; a concat of two branches), and a few
intermediates become outputs too. Requant parameters are random but keep codes inside the
format most of the time (saturation happens as well, on purpose).
"""

from __future__ import annotations

import numpy as np

from host import Graph
from host.graph import padding_unit


def _units(design):
    return {u.unit: u for u in design.units} if design is not None else {}


def _rq(rng, channels, out, per_channel):
    n = channels if per_channel else None

    def pick(lo, hi):
        return rng.integers(lo, hi, n) if per_channel else int(rng.integers(lo, hi))

    return dict(bias=pick(-200, 200), multiplier=pick(1 << 29, 1 << 31),
                shift=pick(-14, -8), zero_point=int(rng.integers(-3, 4)), out=out)


def _sparse_w(rng, o, k, n=2, m=4):
    w = rng.integers(-128, 128, (o, k))
    for r in range(o):
        for g0 in range(0, k, m):
            idx = rng.permutation(np.arange(g0, min(k, g0 + m)))
            w[r, idx[n:]] = 0
    return w


def tile(design) -> int:
    """The compiler's padding unit for ``design``."""
    return padding_unit(design.units)


def random_graph(rng, design, max_ops: int = 6, max_dim: int = 24):
    """``(graph, {input name: codes})`` for ``design`` (a BoardConfig)."""
    units = _units(design)
    macs = [u for u in design.units if u.unit == "mac_array"]
    mac = next((u for u in macs if u.requant is not None), macs[0] if macs else None)
    epi = mac is not None and mac.requant is not None
    plain = any(u.requant is None for u in macs)
    sm = units.get("softmax")
    ge = units.get("gelu")
    rqu = units.get("requant")
    sc = units.get("sparse_chain")
    # with a copy unit a per-channel matmul may feed columns (computed in rows, transposed)
    per_ok = "copy" in units
    sm_in = str(sm.inp) if sm else None
    ge_in = str(ge.inp) if ge else None
    g = Graph()
    r = int(rng.integers(1, max_dim))
    c = int(rng.integers(1, max_dim))
    x = g.input("x", (r, c), "int8")
    X = rng.integers(-128, 128, (r, c))
    t = x
    made = []
    for i in range(int(rng.integers(1, max_ops + 1))):
        f = str(t.fmt)
        choices = []
        if f in ("int8", sm_in, ge_in, "ufixed<7,0>") and mac is not None:
            choices += ["matmul", "matmul_t"] * 2
            if f == "int8" and epi and len(made) > 0:
                choices += ["matmul_act"]
            if epi:
                choices += ["concat"]
        if f == sm_in and sm is not None and t.shape[1] <= sm.length:
            choices += ["softmax"] * 2
        if f == ge_in and ge is not None:
            choices += ["gelu"] * 3
        if f == "int8" and sc is not None:
            choices += ["sparse"]
        if f == "int8" and rqu is not None and plain:
            choices += ["requant"]
        if not choices:
            break
        kind = str(rng.choice(choices))
        n = int(rng.integers(1, max_dim))
        outf = str(rng.choice(["int8"] + [v for v in (sm_in, ge_in) if v]))
        if kind in ("matmul", "matmul_t", "concat"):
            shape = (n, t.shape[1]) if kind == "matmul_t" else (t.shape[1], n)
            w = g.weight(f"w{i}", rng.integers(-128, 128, shape))
            rq = _rq(rng, n, outf, per_ok and bool(rng.integers(0, 2))) if epi else None
            if kind == "concat":
                # two branches of the same input side by side; the first's columns a
                # multiple of the tile
                n0 = tile(design) * int(rng.integers(1, 3))
                w0 = g.weight(f"w{i}a", rng.integers(-128, 128, (t.shape[1], n0)))
                a = g.matmul(t, w0, requant=_rq(rng, n0, outf, False), name=f"c{i}a")
                b = g.matmul(t, w, requant=_rq(rng, n, outf, False), name=f"c{i}b")
                t = g.concat([a, b], name=f"cat{i}")
            else:
                t = g.matmul(t, w, transpose_b=kind == "matmul_t", requant=rq)
        elif kind == "matmul_act":
            other = made[int(rng.integers(0, len(made)))]
            if str(other.fmt) != "int8" or other.shape[1] != t.shape[1]:
                continue
            t = g.matmul(t, other, transpose_b=True,
                         requant=_rq(rng, other.shape[0], outf, False))
        elif kind == "softmax":
            t = g.softmax(t)
        elif kind == "gelu":
            t = g.gelu(t)
        elif kind == "sparse":
            tx = bool(rng.integers(0, 2))
            k = t.shape[1] if tx else t.shape[0]
            w = g.weight(f"w{i}", _sparse_w(rng, n, k))
            rq = _rq(rng, n, "int8", True) if sc.requant is not None else None
            t = g.sparse_matmul(w, t, mode="2:4", transpose_x=tx, requant=rq)
        elif kind == "requant":
            w = g.weight(f"w{i}", rng.integers(-128, 128, (t.shape[1], n)))
            t = g.requant(g.matmul(t, w), **_rq(rng, n, "int8", True))
        made.append(t)
        if rng.random() < 0.25 and t is not x:
            g.output(f"mid{i}", t)
    if t is x or not g.outputs or t not in g.outputs.values():
        if t is x:
            return random_graph(rng, design, max_ops, max_dim)
        g.output("y", t)
    return g, {"x": X}


def small_graph(rng, design):
    """``(graph, inputs, want)``: a short chain (matmul with requant, GELU) to check that a
    board still computes correctly."""
    g = Graph()
    x = g.input("x", (8, 8), "int8")
    ge_in = str(_units(design)["gelu"].inp)
    h = g.matmul(x, g.weight("w", rng.integers(-128, 128, (8, 8))),
                 requant=_rq(rng, 8, ge_in, False), name="h")
    g.output("y", g.gelu(h, name="y"))
    inputs = {"x": rng.integers(-128, 128, (8, 8))}
    return g, inputs, g.evaluate(design=design, **inputs)
