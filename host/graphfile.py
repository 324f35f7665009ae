"""A :class:`host.Graph` as a file (``tensorfab compile`` writes one, ``tensorfab board run
--graph`` reads it; docs/qonnx.md).

JSON: ``{"format": "tensorfab-graph", "version": 1, "nodes": [...], "outputs": {name:
tensor}, "output_layouts": {name: "row"|"col"}, "meta": {...}}``, one entry per op in graph
order with its kind, name, operand names and attributes (weights and requant arrays as
lists of integers). ``meta`` is free-form (the compiler puts the QONNX model's input and
output quantizers there).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .graph import Graph, GraphError

__all__ = ["dump", "load", "save"]

FORMAT, VERSION = "tensorfab-graph", 1


def _plain(v):
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    return v


def dump(g: Graph, meta: dict | None = None) -> dict:
    """The graph as plain JSON data."""
    nodes = []
    for n in g.nodes:
        e = {"kind": n.kind, "name": n.name, "inputs": [t.name for t in n.inputs]}
        if n.kind == "input":
            e.update(shape=list(n.out.shape), fmt=str(n.out.fmt))
        elif n.kind == "weight":
            e.update(fmt=str(n.out.fmt), codes=n.attrs["codes"].tolist())
        for key in ("transpose_b", "transpose_x", "mode"):
            if key in n.attrs:
                e[key] = n.attrs[key]
        rq = n.attrs.get("requant")
        if rq:
            e["requant"] = {"out": str(rq["out"]), "rounding": rq["rounding"],
                            **{k: _plain(v) for k, v in rq["arrays"].items()}}
        nodes.append(e)
    return {"format": FORMAT, "version": VERSION, "nodes": nodes,
            "outputs": {k: t.name for k, t in g.outputs.items()},
            "output_layouts": dict(g.output_layouts), "meta": meta or {}}


def save(g: Graph, path, meta: dict | None = None) -> None:
    Path(path).write_text(json.dumps(dump(g, meta)) + "\n")


def _build(data: dict) -> Graph:
    g = Graph()
    t = g.tensors
    for e in data["nodes"]:
        kind, name, ins = e["kind"], e["name"], [t[i] for i in e["inputs"]]
        if kind == "input":
            g.input(name, e["shape"], e["fmt"])
        elif kind == "weight":
            g.weight(name, np.asarray(e["codes"], dtype=np.int64), e["fmt"])
        elif kind == "matmul":
            g.matmul(*ins, transpose_b=e.get("transpose_b", False),
                     requant=e.get("requant"), name=name)
        elif kind == "sparse_matmul":
            g.sparse_matmul(*ins, mode=e.get("mode"), requant=e.get("requant"),
                            transpose_x=e.get("transpose_x", False), name=name)
        elif kind in ("softmax", "gelu"):
            getattr(g, kind)(ins[0], name=name)
        elif kind == "requant":
            rq = dict(e["requant"])
            g.requant(ins[0], out=rq.pop("out"), name=name, **rq)
        elif kind == "concat":
            g.concat(ins, name=name)
        else:
            raise GraphError(f"node {name!r}: kind {kind!r} (allowed: input, weight, matmul, "
                             "sparse_matmul, softmax, gelu, requant, concat)")
    lays = data.get("output_layouts") or {}
    for k, v in data["outputs"].items():
        g.output(k, t[v], layout=lays.get(k))
    return g


def load(path) -> tuple[Graph, dict]:
    """``(graph, meta)`` from a file :func:`save` wrote; one line for anything else."""
    p = Path(path)
    if not p.is_file():
        raise GraphError(f"{path}: no such file (allowed: a graph.json of tensorfab compile)")
    try:
        data = json.loads(p.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise GraphError(f"{path}: not JSON ({err})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise GraphError(f"{path}: not a tensorfab graph (allowed: a file with \"format\": "
                         f"\"{FORMAT}\", as tensorfab compile writes)")
    if data.get("version") != VERSION:
        raise GraphError(f"{path}: graph file version {data.get('version')!r} (allowed: "
                         f"{VERSION})")
    try:
        return _build(data), data.get("meta") or {}
    except GraphError as err:
        raise GraphError(f"{path}: {err}") from None
    except (KeyError, TypeError, ValueError, IndexError) as err:
        raise GraphError(f"{path}: malformed graph ({type(err).__name__}: {err})") from None
