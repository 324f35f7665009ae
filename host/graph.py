"""Graphs of unit ops and their compiler for protocol-2 boards (docs/graph.md).

>>> g = Graph()                                                     # doctest: +SKIP
>>> x = g.input("x", (64, 32), "int8")
>>> q = g.matmul(x, g.weight("wq", Wq), requant=dict(bias=0, multiplier=m, shift=-7))
>>> g.output("y", g.gelu(q))
>>> want = g.evaluate(x=X)                    # golden models only
>>> prog = board.compile(g)                   # weights and the program written once
>>> got = prog(x=X)                           # one PROG_RUN per call

The board only plays stream descriptors; every family's knowledge is here, on the host: the
compiler picks a unit per op, a layout per tensor (``row`` or ``col``, see
:mod:`generators.tm`; a matmul whose output is needed in columns computes ``C^T = B^T A^T``),
banks and addresses, and asks each family's ``program_streams`` for the descriptors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from generators.errors import UserError
from generators.numerics import Format
from generators.tm import Place, ProgramError, storage_bits

from . import program as P
from .protocol import CRC_BYTES, HEADER_BYTES, TM_SCATTER_HEAD
from .tensor import beat_bytes

__all__ = ["Graph", "Tensor", "GraphError", "Program", "compile_graph"]

REQUANT_KEYS = ("bias", "multiplier", "shift", "zero_point", "act_min", "act_max")


class GraphError(UserError):
    """A graph the host or the board's design cannot run; one line, raised before anything
    is sent."""


def _int_name(f: Format) -> str:
    """The integer format of the same width and sign as ``f`` (the codes a requant
    epilogue gives when ``f`` is a fixed-point name for them), e.g. ``int8``."""
    return f"{'int' if f.signed else 'uint'}{f.width}"


def _fmt(f) -> Format:
    if isinstance(f, Format):
        return f
    try:
        return Format.parse(str(f))
    except ValueError as err:
        raise GraphError(f"format {f!r}: {err}") from None


def _flip(layout: str) -> str:
    return {"row": "col", "col": "row"}[layout]


@dataclass(eq=False)
class Tensor:
    """A tensor of a :class:`Graph`: its name, 2-D shape and format (codes)."""

    graph: Graph
    name: str
    shape: tuple[int, int]
    fmt: Format
    node: Node | None = None

    def __repr__(self) -> str:
        return f"Tensor({self.name!r}, {self.shape}, {self.fmt})"


@dataclass(eq=False)
class Node:
    kind: str
    name: str
    inputs: tuple[Tensor, ...]
    attrs: dict
    out: Tensor | None = None


class Graph:
    """A dataflow graph of unit ops over 2-D code tensors (see the module docstring)."""

    def __init__(self):
        self.nodes: list[Node] = []
        self.tensors: dict[str, Tensor] = {}
        self.outputs: dict[str, Tensor] = {}
        self.output_layouts: dict[str, str] = {}

    # -- building ----------------------------------------------------------------------------

    def _tensor(self, name, shape, fmt, node) -> Tensor:
        if name in self.tensors:
            raise GraphError(f"tensor name {name!r} is used twice (allowed: distinct names)")
        t = Tensor(self, name, tuple(int(s) for s in shape), fmt, node)
        self.tensors[name] = t
        if node is not None:
            node.out = t
        return t

    def _node(self, kind, name, inputs, attrs, shape, fmt) -> Tensor:
        for t in inputs:
            if not isinstance(t, Tensor) or t.graph is not self:
                raise GraphError(f"{kind} {name or ''}: an operand is not a tensor of this "
                                 "graph (allowed: tensors from g.input, g.weight or an op)")
        name = name or f"{kind}{len(self.nodes)}"
        node = Node(kind, name, tuple(inputs), attrs)
        self.nodes.append(node)
        return self._tensor(name, shape, fmt, node)

    def input(self, name: str, shape, fmt="int8") -> Tensor:
        """An input tensor, given at each call of the compiled program."""
        shape = tuple(int(s) for s in shape)
        if len(shape) != 2 or min(shape) < 1:
            raise GraphError(f"input {name}: shape {shape} (allowed: 2-D, both axes >= 1)")
        return self._node("input", name, (), {}, shape, _fmt(fmt))

    def weight(self, name: str, codes, fmt="int8") -> Tensor:
        """A constant tensor of codes, written to the board once at compile time."""
        f = _fmt(fmt)
        c = np.asarray(codes)
        if c.ndim != 2 or 0 in c.shape or c.dtype.kind not in "iub":
            raise GraphError(f"weight {name}: shape {c.shape} dtype {c.dtype} (allowed: a "
                             "2-D array of integer codes)")
        c = c.astype(np.int64)
        if c.min() < f.min_code or c.max() > f.max_code:
            raise GraphError(f"weight {name}: codes {c.min()}..{c.max()} do not fit {f} "
                             f"(allowed: {f.min_code}..{f.max_code})")
        return self._node("weight", name, (), {"codes": c}, c.shape, f)

    def matmul(self, a: Tensor, b: Tensor, transpose_b: bool = False,
               requant: dict | None = None, name: str | None = None) -> Tensor:
        """``a @ b`` (``a @ b.T`` with ``transpose_b``) on a MAC array; ``requant``: the
        fused epilogue's arrays (``bias``, ``multiplier``, ``shift``, ``zero_point``,
        ``act_min``, ``act_max``; per output column or scalar) and ``out`` (its format, or a
        fixed-point format of the same width and sign that names the codes' scale) and
        ``rounding``."""
        bs = b.shape[::-1] if transpose_b else b.shape
        if a.shape[1] != bs[0]:
            raise GraphError(f"matmul {name or ''}: a {a.shape} and b {b.shape}"
                             f"{' transposed' if transpose_b else ''} do not chain (allowed: "
                             "a [M, K] and b [K, N])")
        rq = _requant_attrs("matmul", name, requant, bs[1])
        fmt = rq["out"] if rq else _fmt("int32")
        return self._node("matmul", name, (a, b), {"transpose_b": bool(transpose_b),
                                                    "requant": rq}, (a.shape[0], bs[1]), fmt)

    def sparse_matmul(self, w: Tensor, x: Tensor, mode: str | None = None,
                      requant: dict | None = None, transpose_x: bool = False,
                      name: str | None = None) -> Tensor:
        """``w @ x`` on the N:M sparse chain in ``mode`` (``w`` a weight that keeps the
        pattern, compressed on the host; ``x`` any tensor, read from the tensor memory with
        each column contiguous; ``transpose_x``: ``w @ x.T``, x [B, K] read by rows)."""
        xs = x.shape[::-1] if transpose_x else x.shape
        if w.shape[1] != xs[0]:
            raise GraphError(f"sparse_matmul {name or ''}: w {w.shape} and x {x.shape}"
                             f"{' transposed' if transpose_x else ''} do not chain (allowed: "
                             "w [O, K] and x [K, B])")
        rq = _requant_attrs("sparse_matmul", name, requant, w.shape[0])
        fmt = rq["out"] if rq else _fmt("int32")
        return self._node("sparse_matmul", name, (w, x), {"mode": mode, "requant": rq,
                                                          "transpose_x": bool(transpose_x)},
                          (w.shape[0], xs[1]), fmt)

    def softmax(self, x: Tensor, name: str | None = None) -> Tensor:
        """Row softmax (the output format is the unit's; ``ufixed<8,0>`` until compiled)."""
        return self._node("softmax", name, (x,), {}, x.shape, None)

    def gelu(self, x: Tensor, name: str | None = None) -> Tensor:
        """Element-wise GELU (the output format is the unit's)."""
        return self._node("gelu", name, (x,), {}, x.shape, x.fmt)

    def requant(self, x: Tensor, out="int8", name: str | None = None, **params) -> Tensor:
        """The stand-alone requant unit on accumulator codes ``x [R, N]`` (channels along
        axis 1): ``bias``, ``multiplier``, ``shift``, ``zero_point``, ``act_min``,
        ``act_max``, ``rounding``."""
        rq = _requant_attrs("requant", name, {**params, "out": out}, x.shape[1])
        return self._node("requant", name, (x,), {"requant": rq}, x.shape, rq["out"])

    def concat(self, tensors, name: str | None = None) -> Tensor:
        """The tensors side by side along axis 1 (``np.concatenate(..., axis=1)``). Free on
        the board: each piece's producer writes into its columns of the result (the pieces
        must be made by ops, each used in one concat, with column counts that are multiples
        of the design's tile, see docs/graph.md)."""
        ts = tuple(tensors)
        if len(ts) < 2:
            raise GraphError(f"concat {name or ''}: {len(ts)} tensors (allowed: 2 or more)")
        for t in ts:
            if not isinstance(t, Tensor) or t.graph is not self:
                raise GraphError(f"concat {name or ''}: an operand is not a tensor of this "
                                 "graph (allowed: tensors from g.input, g.weight or an op)")
        rows = {t.shape[0] for t in ts}
        fmts = {t.fmt for t in ts}
        if len(rows) > 1:
            raise GraphError(f"concat {name or ''}: row counts {[t.shape[0] for t in ts]} "
                             "(allowed: the same for every piece)")
        if len(fmts) > 1 or None in fmts:
            raise GraphError(f"concat {name or ''}: formats "
                             f"{', '.join(str(t.fmt) for t in ts)} (allowed: one format)")
        return self._node("concat", name, ts, {}, (ts[0].shape[0],
                          sum(t.shape[1] for t in ts)), ts[0].fmt)

    def output(self, name: str, t: Tensor, layout: str | None = None) -> None:
        """Name ``t`` an output of the graph (read back at every call). ``layout``: store
        and read it back in ``row`` or ``col`` layout (docs/graph.md); ``col`` reads a tall,
        narrow output (logits of many images) without each row's padding, at the cost of a
        transpose where its producer writes rows."""
        if not isinstance(t, Tensor) or t.graph is not self:
            raise GraphError(f"output {name}: not a tensor of this graph")
        if name in self.outputs:
            raise GraphError(f"output name {name!r} is used twice (allowed: distinct names)")
        if layout not in (None, "row", "col"):
            raise GraphError(f"output {name}: layout {layout!r} (allowed: row, col)")
        self.outputs[name] = t
        if layout:
            self.output_layouts[name] = layout

    # -- golden ------------------------------------------------------------------------------

    def evaluate(self, design=None, keep=(), **inputs) -> dict:
        """The outputs (and the ``keep`` tensors) from the golden models only, no board.

        ``design``: a :class:`~generators.config.BoardConfig` (or a board's INFO dict) whose
        units run the ops; without it, units are made from the ops' formats (``acc``
        int32 with wrap; softmax ``length`` 4096, ``out`` ``ufixed<8,0>``), which equals
        any board whose units have those parameters.
        """
        units = _design_units(design)
        plan = [(n, _pick(units, n, {})) for n in self.nodes]
        vals = {}
        for node, (_idx, fam, params, _) in plan:
            vals[node.out.name] = _golden(node, fam, params, vals, inputs)
        return _results(self, vals, keep)

    def run_ops(self, board, keep=(), host_requant: bool = False, **inputs) -> tuple:
        """The op-by-op way, for comparison with a compiled program: every op is one
        protocol-1 ``board.run`` (operands to the board, results back, over the link), a
        ``concat`` is done on the host. ``host_requant``: the matmuls' requantization is
        done on the host instead (int32 accumulators cross the link; a design whose MAC
        units have no epilogue). Returns ``(outputs, stats)``: ``link_bytes``, ``runs``,
        ``cycles``, ``op_cycles`` (op name -> unit cycles) and ``op_link_bytes``."""
        from generators.numerics import requantize_fixed

        units = _design_units(board.info())
        vals = {}
        stats = {"runs": 0, "cycles": 0, "op_cycles": {}, "op_link_bytes": {}}
        before = mark = board.stats["wire_out"] + board.stats["wire_in"]
        for node in self.nodes:
            if node.kind in ("input", "weight", "concat"):
                vals[node.out.name] = _golden(node, None, None, vals, inputs)
                continue
            rq = node.attrs.get("requant")
            run = node
            if host_requant and rq and node.kind in ("matmul", "sparse_matmul"):
                run = Node(node.kind, node.name, node.inputs, {**node.attrs, "requant": None})
                run.out = Tensor(self, node.name, node.out.shape, _fmt("int32"), run)
            u = _pick(units, run, {})[3]
            arrays = _arrays(run, vals)
            mode = node.attrs.get("mode") if node.kind == "sparse_matmul" else None
            try:
                out = board.run(u.name, arrays, mode=mode)[u.fam.out_arrays[0]]
            except (UserError, ValueError) as err:
                raise GraphError(f"{node.kind} {node.name}: {err}") from None
            out = np.asarray(out, dtype=np.int64)
            if run is not node:
                f = rq["out"]
                a = rq["arrays"]
                rows = node.kind == "sparse_matmul"     # its channels are the rows of y
                out = requantize_fixed(
                    out.T if rows else out, **{k: a[k] for k in a},
                    rounding=rq["rounding"] or "double",
                    out_fmt=Format.parse(_int_name(f)),
                    acc_fmt=u.params.acc, overflow=u.params.overflow)
                out = out.T if rows else out
            vals[node.out.name] = out
            stats["runs"] += board.last_run["runs"]
            stats["cycles"] += board.last_run["cycles"]
            stats["op_cycles"][node.name] = board.last_run["cycles"]
            now = board.stats["wire_out"] + board.stats["wire_in"]
            stats["op_link_bytes"][node.name] = now - mark
            mark = now
        stats["link_bytes"] = board.stats["wire_out"] + board.stats["wire_in"] - before
        return _results(self, vals, keep), stats


def _requant_attrs(kind, name, requant, channels) -> dict | None:
    if requant is None:
        return None
    if not isinstance(requant, dict):
        raise GraphError(f"{kind} {name or ''}: requant {requant!r} (allowed: a dict of "
                         f"{', '.join(REQUANT_KEYS)}, out, rounding)")
    bad = set(requant) - set(REQUANT_KEYS) - {"out", "rounding"}
    if bad:
        raise GraphError(f"{kind} {name or ''}: requant key {sorted(bad)[0]!r} (allowed: "
                         f"{', '.join(REQUANT_KEYS)}, out, rounding)")
    arrays = {k: np.asarray(v, dtype=np.int64) for k, v in requant.items()
              if k in REQUANT_KEYS}
    for k in ("bias", "multiplier", "shift"):
        if k in arrays and arrays[k].ndim and arrays[k].shape != (channels,):
            raise GraphError(f"{kind} {name or ''}: requant {k} of shape {arrays[k].shape} "
                             f"(allowed: a scalar or ({channels},), one per output channel)")
    return {"out": _fmt(requant.get("out", "int8")), "rounding": requant.get("rounding"),
            "arrays": arrays}


# -- units of a design -----------------------------------------------------------------------


@dataclass
class _DUnit:
    index: int
    name: str
    fam: object
    params: object
    streams: dict | None


def _design_units(design) -> list | None:
    """``[_DUnit]`` of a design (BoardConfig, INFO dict or None)."""
    from generators.config import BoardConfig, parse_config
    from generators.units import family

    if design is None:
        return None
    if isinstance(design, BoardConfig):
        cfgs = [(u, None) for u in design.units]
    else:
        cfgs = [(parse_config(u["config"], f"unit {u['name']}"), u["streams"])
                for u in design["units"]]
    out = []
    for i, (cfg, streams) in enumerate(cfgs):
        fam = family(cfg.unit)
        out.append(_DUnit(i, cfg.name, fam, fam.params(cfg), streams))
    return out


def _codes_fit(prod: Format, cons: Format) -> bool:
    """Codes of ``prod`` read by a unit that takes ``cons``: the same format, or an integer
    ``cons`` of the same storage holding every code of ``prod``."""
    if prod == cons:
        return True
    return (cons.is_integer and storage_bits(prod.width) == storage_bits(cons.width)
            and cons.min_code <= prod.min_code and prod.max_code <= cons.max_code)


def _same_codes(user: Format, unit: Format) -> bool:
    return user.width == unit.width and user.signed == unit.signed


def _synth(node: Node):
    """A unit config for ``node`` from its formats (evaluate without a design)."""
    from generators.config import parse_config
    from generators.units import family

    ins = node.inputs
    if node.kind == "matmul":
        keys = {"name": "mac", "unit": "mac_array", "rows": 8, "cols": 8,
                "a": str(ins[0].fmt), "b": str(ins[1].fmt), "acc": "int32"}
        rq = node.attrs["requant"]
        if rq:
            keys["requant"] = {"out": _int_name(rq["out"]), "channels": 4096,
                               "rounding": rq["rounding"] or "double"}
    elif node.kind == "sparse_matmul":
        keys = {"name": "sc", "unit": "sparse_chain", "length": 16, "m": 4,
                "modes": [node.attrs["mode"] or "2:4"], "w": str(ins[0].fmt),
                "x": str(ins[1].fmt), "acc": "int32"}
        rq = node.attrs["requant"]
        if rq:
            keys["requant"] = {"out": _int_name(rq["out"]), "channels": 4096,
                               "rounding": rq["rounding"] or "double"}
    elif node.kind == "softmax":
        keys = {"name": "sm", "unit": "softmax", "length": 4096, "in": str(ins[0].fmt),
                "out": "ufixed<8,0>"}
    elif node.kind == "gelu":
        keys = {"name": "ge", "unit": "gelu", "in": str(ins[0].fmt), "out": str(ins[0].fmt)}
    else:
        rq = node.attrs["requant"]
        keys = {"name": "rq", "unit": "requant", "in": str(ins[0].fmt),
                "out": _int_name(rq["out"]),
                "channels": 4096, "rounding": rq["rounding"] or "double"}
    cfg = parse_config(keys, f"{node.kind} {node.name}")
    fam = family(cfg.unit)
    return _DUnit(-1, cfg.name, fam, fam.params(cfg), None)


_FAMILY = {"matmul": "mac_array", "sparse_matmul": "sparse_chain", "softmax": "softmax",
           "gelu": "gelu", "requant": "requant"}


def _unit_fits(node: Node, u: _DUnit) -> str | None:
    """``None`` when unit ``u`` can run ``node``, else what does not fit."""
    p = u.params
    ins = node.inputs
    rq = node.attrs.get("requant")
    if node.kind in ("matmul", "sparse_matmul"):
        fa, fb = (p.a, p.b) if node.kind == "matmul" else (p.w, p.x)
        if not (_codes_fit(ins[0].fmt, fa) and _codes_fit(ins[1].fmt, fb)):
            return f"operands {ins[0].fmt}, {ins[1].fmt} (unit {u.name} takes {fa}, {fb})"
        if (p.requant is None) != (rq is None):
            return (f"unit {u.name} {'has no' if p.requant is None else 'has a'} requant "
                    "epilogue")
        if rq and not _same_codes(rq["out"], p.epilogue.out):
            return f"requant out {rq['out']} (unit {u.name} gives {p.epilogue.out})"
        if rq and rq["rounding"] and rq["rounding"] != p.epilogue.rounding:
            return f"rounding {rq['rounding']} (unit {u.name} has {p.epilogue.rounding})"
        if node.kind == "sparse_matmul" and node.attrs["mode"] is not None:
            try:
                p.mode(node.attrs["mode"])
            except ValueError as err:
                return str(err)
        return None
    if node.kind == "requant":
        if not _codes_fit(ins[0].fmt, p.inp):
            return f"input {ins[0].fmt}"
        if not _same_codes(rq["out"], p.out):
            return f"out {rq['out']} (unit {u.name} gives {p.out})"
        if rq["rounding"] and rq["rounding"] != p.rounding:
            return f"rounding {rq['rounding']} (unit {u.name} has {p.rounding})"
        return None
    if ins[0].fmt != p.inp:
        return f"input format {ins[0].fmt} (unit {u.name} takes {p.inp})"
    return None


def _pick(units, node: Node, _) -> tuple:
    """``(index, family, params, unit)`` of the unit that runs ``node``."""
    if node.kind in ("input", "weight", "concat"):
        return (None, None, None, None)
    if units is None:
        u = _synth(node)
    else:
        fam = _FAMILY[node.kind]
        cands = [u for u in units if u.fam.name == fam]
        if not cands:
            have = ", ".join(sorted({u.fam.name for u in units}))
            raise GraphError(f"{node.kind} {node.name}: the design has no {fam} unit "
                             f"(allowed ops for its units: {have})")
        why = [(u, _unit_fits(node, u)) for u in cands]
        ok = [u for u, w in why if w is None]
        if not ok:
            raise GraphError(f"{node.kind} {node.name}: no {fam} unit takes it: "
                             f"{'; '.join(w for _, w in why)}")
        u = ok[0]
    if node.out.fmt is None or node.kind == "softmax":
        node.out.fmt = u.params.out
    elif node.kind == "gelu":
        node.out.fmt = u.params.out
    return (u.index, u.fam, u.params, u)


def _arrays(node: Node, vals: dict) -> dict:
    """The family's run arrays of ``node`` from the values of its inputs."""
    ins = [vals[t.name] for t in node.inputs]
    rq = node.attrs.get("requant")
    extra = dict(rq["arrays"]) if rq else {}
    if node.kind == "matmul":
        b = ins[1].T if node.attrs["transpose_b"] else ins[1]
        return {"a": ins[0], "b": np.ascontiguousarray(b), **extra}
    if node.kind == "sparse_matmul":
        x = ins[1].T if node.attrs["transpose_x"] else ins[1]
        return {"w": ins[0], "x": np.ascontiguousarray(x), **extra}
    if node.kind == "requant":
        return {"acc": ins[0], **extra}
    return {"x": ins[0]}


def _check_input(t: Tensor, v) -> np.ndarray:
    a = np.asarray(v)
    if a.shape != t.shape or a.dtype.kind not in "iub":
        raise GraphError(f"input {t.name}: shape {a.shape} dtype {a.dtype} (allowed: "
                         f"{t.shape} integer codes of {t.fmt})")
    a = a.astype(np.int64)
    if a.size and (a.min() < t.fmt.min_code or a.max() > t.fmt.max_code):
        raise GraphError(f"input {t.name}: codes {a.min()}..{a.max()} do not fit {t.fmt} "
                         f"(allowed: {t.fmt.min_code}..{t.fmt.max_code})")
    return a


def _golden(node, fam, params, vals, inputs):
    if node.kind == "input":
        if node.name not in inputs:
            names = [n.name for n in node.out.graph.nodes if n.kind == "input"]
            raise GraphError(f"input {node.name} is not given (allowed: the inputs "
                             f"{', '.join(names)})")
        return _check_input(node.out, inputs[node.name])
    if node.kind == "weight":
        return node.attrs["codes"]
    if node.kind == "concat":
        return np.concatenate([vals[t.name] for t in node.inputs], axis=1)
    mode = node.attrs.get("mode") if node.kind == "sparse_matmul" else None
    whole = _arrays(node, vals)
    parts = []
    n = node.out.shape[1]
    unit = _DUnit(-1, "", fam, params, None)
    # the column blocks the compiler cuts a matmul into (same codes as one op: the blocks
    # are independent columns with their slices of the per-channel parameters)
    for j0, j1 in _blocks(node, unit, (0, 0, n), 1):
        arrays = whole if (j0, j1) == (0, n) else _column_block(whole, j0, j1)
        try:
            arrays = fam.check_inputs(params, arrays, mode=mode)
        except (UserError, ValueError) as err:
            raise GraphError(f"{node.kind} {node.name}: {err}") from None
        out = fam.golden(params, arrays, mode=mode)
        parts.append(np.asarray(out[fam.out_arrays[0]], dtype=np.int64))
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)


def _results(graph: Graph, vals: dict, keep) -> dict:
    out = {name: vals[t.name] for name, t in graph.outputs.items()}
    for k in keep:
        name = k.name if isinstance(k, Tensor) else str(k)
        if name not in vals:
            raise GraphError(f"keep {name!r} is not a tensor of the graph (allowed: "
                             f"{', '.join(vals)})")
        out[name] = vals[name]
    return out


# -- the compiler ----------------------------------------------------------------------------


@dataclass(eq=False)
class _Stored:
    """One stored copy of a tensor (``layout`` row/col) or a raw operand."""

    key: str
    layout: str
    nbytes: int
    ld: int
    rows: int = 0
    tensor: Tensor | None = None
    bank: int = -1
    base: int = -1
    co: set = field(default_factory=set)   # keys read in the same op
    parent: _Stored | None = None          # a view (a concat's piece) of this stored tensor
    offset: int = 0                        # ... at this byte offset from its base


def _root(s: _Stored) -> _Stored:
    while s.parent is not None:
        s = s.parent
    return s


def _mac_layouts(params) -> tuple[str, str, str]:
    from generators.mac_array.params import OUTPUT_STATIONARY

    return ("col", "row", "row") if params.dataflow == OUTPUT_STATIONARY else \
        ("row", "row", "row")


def _lanes(u: _DUnit, stream: str) -> int:
    lanes, _, _ = P.data_lanes(u.streams[stream]["fields"]["data"])
    return lanes


def _frames_cost(head: int, nbytes: int, per: int) -> int:
    """Link bytes of ``nbytes`` of data sent ``per`` to a frame behind a ``head``-byte request
    header, with the ACKs: COBS, the packet header and CRC, delimiters."""
    frames = max(1, -(-nbytes // max(1, per)))
    return nbytes + frames * (head + 2 * (HEADER_BYTES + CRC_BYTES + 2)) + nbytes // 254


def _segments(rows, chunk: int, count: int, cap: int) -> list:
    """Rows ``0..count-1`` (their first ``chunk`` bytes) as TM_SCATTER pieces: ``(first row,
    rows, replicated)``; a run of equal rows long enough to pay for its frame is one piece
    replicated, the others go together as strided pieces."""
    segs = []
    i = 0
    while i < count:
        j = i + 1
        while j < count and np.array_equal(rows[j, :chunk], rows[i, :chunk]):
            j += 1
        if (j - i - 1) * chunk > _frames_cost(TM_SCATTER_HEAD, 0, cap):
            segs.append((i, j - i, True))
        elif segs and not segs[-1][2] and segs[-1][0] + segs[-1][1] == i:
            segs[-1] = (segs[-1][0], segs[-1][1] + j - i, False)
        else:
            segs.append((i, j - i, False))
        i = j
    return segs


def put_image(board, bank: int, base: int, img: bytes, pitch: int,
              chunk: int | None = None) -> None:
    """Make bytes ``base ..`` of bank ``bank`` hold ``img``, a stored tensor of rows
    ``pitch`` bytes apart, with few link bytes (TM_WRITE and TM_SCATTER, docs/programs.md).

    With ``chunk`` (raw beats: only a row's first ``chunk`` bytes are ever read) the rest of
    each row may be left as it is. Rows go as strided pieces, a run of equal rows as one piece
    replicated; or the region is first zero-filled (one small frame) and then each row only up
    to its last non-zero byte: whichever of these (or one plain TM_WRITE) sends fewest bytes."""
    n = len(img)
    if n == 0:
        return
    pitch = int(pitch) if pitch and n % int(pitch) == 0 else n
    rows = np.frombuffer(bytes(img), dtype=np.uint8).reshape(n // pitch, pitch)
    used = np.flatnonzero(rows.any(axis=1))
    nz_count = int(used[-1]) + 1 if used.size else 0
    cols = np.flatnonzero(rows[:nz_count].any(axis=0))
    nz_chunk = int(cols[-1]) + 1 if cols.size else 0
    cap = board.max_payload - TM_SCATTER_HEAD

    def cost(c, segs):
        if c > cap:
            return math.inf
        return sum(_frames_cost(TM_SCATTER_HEAD, c, cap) if rep else
                   _frames_cost(TM_SCATTER_HEAD, c * k, cap // c * c) for _, k, rep in segs)

    fill_cost = -(-n // 0xFFFF) * _frames_cost(TM_SCATTER_HEAD, 1, cap)
    plans = [(_frames_cost(5, n, board.max_payload - 5), None)]   # TM_WRITE
    segs = _segments(rows, nz_chunk, nz_count, cap)
    plans.append((fill_cost + cost(nz_chunk, segs), (True, nz_chunk, segs)))
    if chunk is not None:
        segs = _segments(rows, chunk, len(rows), cap)
        plans.append((cost(chunk, segs), (False, chunk, segs)))
    _, plan = min(plans, key=lambda c: c[0])
    if plan is None:
        board.tm_write(bank, base, bytes(img))
        return
    fill, chunk, segs = plan
    if fill:
        for k in range(0, n, 0xFFFF):
            c = min(0xFFFF, n - k)
            board.tm_scatter(bank, base + k, c, c, 1, b"\0")
    for first, k, rep in segs:
        data = rows[first:first + (1 if rep else k), :chunk].tobytes()
        if chunk == pitch and not rep:
            board.tm_write(bank, base + first * pitch, data)
        else:
            board.tm_scatter(bank, base + first * pitch, chunk, pitch, k, data)


class Program:
    """A compiled graph on a board: call it with the inputs (see :func:`compile_graph`).

    ``stats``: ``weight_bytes`` (link bytes of loading, once) and ``load_bytes`` (the same
    split: ``weights``, ``params`` (requant parameter beats), ``zeros`` (padding no unit
    writes), ``program``), then per call
    ``link_bytes``, ``cycles`` (total), ``op_cycles`` (name -> cycles),
    ``mac_utilization`` (useful MACs over the MAC-type units' capacity in the program's
    cycles).
    """

    def __init__(self, board, graph, plan, stored, prog, nops, mem_bytes, pad, loads, addr):
        self.board, self.graph, self.plan, self.stored = board, graph, plan, stored
        self.program, self.nops, self.pad, self.addr = prog, nops, pad, addr
        # [(kind, bank, base, bytes, pitch, chunk)]: what a load puts (put_image)
        self._loads = loads
        self.stats = {"weight_bytes": 0, "memory_bytes": mem_bytes,
                      "program_bytes": len(P.to_bytes(prog)), "reloads": 0}

    def _load(self) -> None:
        """Write the resident tensors and the program; again if the board reset meanwhile
        (its STATUS counters, as protocol-1 runs check them: docs/protocol.md)."""
        from .board import RESET_ROUNDS

        b = self.board
        for _ in range(RESET_ROUNDS):
            before = b._ensure_marker()
            split = dict.fromkeys(("weights", "params", "zeros", "program"), 0)
            for kind, bank, base, data, pitch, chunk in self._loads:
                w0 = b.stats["wire_out"] + b.stats["wire_in"]
                put_image(b, bank, base, data, pitch, chunk)
                split[kind] += b.stats["wire_out"] + b.stats["wire_in"] - w0
            w0 = b.stats["wire_out"] + b.stats["wire_in"]
            b.prog_write(self.addr, P.to_bytes(self.program))
            split["program"] += b.stats["wire_out"] + b.stats["wire_in"] - w0
            self.stats["load_bytes"] = split
            after = b._counted(before, runs=0, naks=0)
            if after:
                b._marker = after
                return
            b._reset_seen()
        raise GraphError(f"{b.url}: the board reset while the program was loaded "
                         f"{RESET_ROUNDS} times in a row")

    def _after_reset(self) -> None:
        self.board._reset_seen()
        self.stats["reloads"] += 1
        self._load()

    def _write(self, s: _Stored, codes) -> None:
        data = P.layout_bytes(codes, s.layout, s.tensor.fmt.width, s.ld, s.rows)
        put_image(self.board, s.bank, s.base, data, s.ld)

    def _read(self, s: _Stored) -> np.ndarray:
        t = s.tensor
        rows = t.shape[0] if s.layout == "row" else t.shape[1]
        # the last row only as far as its codes go (a concat's piece ends inside the row)
        used = -(-(t.shape[1] if s.layout == "row" else t.shape[0])
                 * storage_bits(t.fmt.width) // 8)
        data = self.board.tm_read(s.bank, s.base, (rows - 1) * s.ld + used)
        data += bytes(rows * s.ld - len(data))
        return P.layout_codes(data, s.layout, t.shape, t.fmt.width, t.fmt.signed, s.ld)

    def __call__(self, keep=(), **inputs) -> dict:
        g = self.graph
        names = [n.name for n in g.nodes if n.kind == "input"]
        extra = set(inputs) - set(names)
        if extra or set(names) - set(inputs):
            raise GraphError(f"inputs {sorted(inputs)} (allowed: exactly {sorted(names)})")
        vals = {n: _check_input(g.tensors[n], v) for n, v in inputs.items()}
        keep_names = [k.name if isinstance(k, Tensor) else str(k) for k in keep]
        for k in keep_names:
            if k not in g.tensors:
                raise GraphError(f"keep {k!r} is not a tensor of the graph (allowed: "
                                 f"{', '.join(g.tensors)})")
            if k in self.reused:
                raise GraphError(f"keep {k!r}: its memory is reused later in the program "
                                 "(allowed: the outputs, and tensors named in "
                                 "board.compile(graph, keep=[...]))")
        # every check is done: from here on, requests
        from . import protocol as proto
        from .board import RESET_ROUNDS, BoardError

        b = self.board
        before = b.stats["wire_out"] + b.stats["wire_in"]
        want = dict(g.outputs)
        for k in keep_names:
            want[k] = g.tensors[k]
        for _ in range(RESET_ROUNDS):
            mark = b._ensure_marker()
            for s in self.stored:
                if s.tensor is not None and s.tensor.node.kind == "input":
                    self._write(s, vals[s.tensor.name])
            try:
                total, per_op = b.prog_run(self.addr, self.nops)
            except BoardError as err:
                # a reset can leave a half-written program, which the board refuses
                if err.nak is None or err.nak.code != proto.NakCode.BAD_PROGRAM:
                    raise
                if b._counted(mark, runs=0, naks=1):
                    raise
                self._after_reset()
                continue
            out = {}
            for name, t in want.items():
                if t.node.kind == "input":
                    out[name] = vals[t.name]
                elif t.node.kind == "weight":
                    out[name] = t.node.attrs["codes"]
                else:
                    lay = g.output_layouts.get(name)
                    out[name] = self._read(next(x for x in self.stored if x.tensor is t
                                                and lay in (None, x.layout)))
            st = b._counted(mark, runs=1, naks=0)
            if st:
                b._marker = st
                break
            # a reset since the last check (the counters fell behind): the resident tensors
            # and the program are not what was written; load them again, run again
            self._after_reset()
        else:
            raise GraphError(f"{b.url}: the board reset during the program run "
                             f"{RESET_ROUNDS} times in a row")
        after = b.stats["wire_out"] + b.stats["wire_in"]
        macs = cap = 0
        op_cycles = {}
        for (node, u, dims), c in zip(self.plan, per_op, strict=True):
            op_cycles[node.name] = op_cycles.get(node.name, 0) + c
            if u.fam.name in ("mac_array", "sparse_chain"):
                macs += int(np.prod(dims))
                cap = max(cap, u.params.macs_per_cycle)
        self.stats.update(link_bytes=after - before, cycles=total, op_cycles=op_cycles,
                          mac_utilization=round(macs / (cap * total), 4) if cap and total
                          else 0.0)
        return out


def _need_layouts(graph: Graph, picks: dict, copier) -> tuple[dict, dict, dict, dict]:
    """Layouts: ``need[tensor name]`` = set of layouts its consumers read it in,
    ``mode[matmul name]`` = ``normal`` or ``transposed``, the layout each producer writes,
    and ``copies[tensor name]`` = the other layout a copy op makes from it (``copier(t)``:
    the design's copy unit for tensor ``t``, or None); raises GraphError on a conflict no
    copy resolves."""
    need: dict[str, set] = {t: set() for t in graph.tensors}
    for name, lay in graph.output_layouts.items():
        need[graph.outputs[name].name].add(lay)
    modes = {}
    producers_fixed = {}
    copies = {}

    def copy_or(t: Tensor, layout: str, why: str) -> None:
        if copier(t) is None:
            raise GraphError(f"{why} (allowed: one layout, or a copy unit taking {t.fmt} "
                             "in the design for the copy/transpose op)")
        copies[t.name] = layout

    for node in reversed(graph.nodes):
        out = node.out
        u = picks[node.name]
        wanted = need[out.name]
        if node.kind == "matmul":
            la, lb, lc = _mac_layouts(u.params)
            rq = node.attrs["requant"]
            per_channel = rq and any(np.ndim(rq["arrays"].get(k, 0)) for k in
                                     ("bias", "multiplier", "shift"))
            if wanted == {_flip(lc)} and not (per_channel and copier(out) is not None):
                if per_channel:
                    raise GraphError(f"matmul {node.name}: its output is read in "
                                     f"{_flip(lc)} layout, computed as C^T = B^T A^T, so "
                                     "requant bias, multiplier and shift must be scalars "
                                     "(allowed: scalars here, a row-layout consumer, or a "
                                     "copy unit in the design to transpose the output)")
                modes[node.name] = "transposed"
                need_a, need_bt = _flip(lb), _flip(la)
                producers_fixed[out.name] = _flip(lc)
            else:
                if wanted - {lc}:
                    copy_or(out, _flip(lc), f"matmul {node.name}: its output is read in "
                            f"{' and '.join(sorted(wanted))} layout, computed in {lc}")
                modes[node.name] = "normal"
                need_a, need_bt = la, lb
                producers_fixed[out.name] = lc
            a, b = node.inputs
            need[a.name].add(need_a)
            need[b.name].add(_flip(need_bt) if node.attrs["transpose_b"] else need_bt)
        elif node.kind == "concat":
            if len(wanted) > 1:
                copy_or(out, "col", f"concat {node.name}: its output is read in both row and "
                        "col layout")
                wanted = {"row"}
                producers_fixed[out.name] = "row"
            for t in node.inputs:
                need[t.name] |= wanted or {"row"}
        elif node.kind == "sparse_matmul":
            w, x = node.inputs
            need[x.name].add("row" if node.attrs["transpose_x"] else "col")
            if w.node.kind != "weight":
                raise GraphError(f"sparse_matmul {node.name}: w {w.name} is not a weight "
                                 "(allowed: g.weight codes, compressed on the host)")
        elif node.kind in ("softmax", "gelu", "requant"):
            stream = {"softmax": "i_stream", "gelu": "i_stream", "requant": "acc_stream"}
            x = node.inputs[0]
            if _lanes(u, stream[node.kind]) > 1:
                need[x.name].add("row")
            if node.kind == "softmax" and x.shape[1] > u.params.length:
                raise GraphError(f"softmax {node.name}: rows of {x.shape[1]} elements "
                                 f"(allowed: at most {u.params.length}, the unit's length)")
        if node.kind in ("softmax", "gelu", "requant", "sparse_matmul") and len(wanted) > 1:
            copy_or(out, "col", f"{node.kind} {node.name}: its output is read in both row "
                    "and col layout")
            producers_fixed[out.name] = "row"
    return need, modes, producers_fixed, copies


def _lives(stored, ops_places, graph, keep: set, needs_zeros: set) -> dict:
    """``{root key: (first op, last op)}``: when each stored tensor holds codes the program
    needs. Resident tensors (weights, raw operands, tensors whose zero padding is written
    once at load) live always; inputs from before the run; outputs and ``keep`` tensors to
    after it."""
    end = len(ops_places) + 1
    lives = {}
    for i, (_node, _u, _dims, places, _mode) in enumerate(ops_places):
        for _, st, *_rest in places.values():
            r = _root(st)
            lo, hi = lives.get(r.key, (i, i))
            lives[r.key] = (min(lo, i), max(hi, i))
    outs = {t.name for t in graph.outputs.values()} | set(keep)
    for s in stored:
        if s.parent is not None:
            continue
        lo, hi = lives.get(s.key, (-1, end))
        t = s.tensor
        if t is None or t.node.kind == "weight" or s.key in needs_zeros:
            lo, hi = -1, end
        elif t.node.kind == "input":
            lo = -1
        if t is not None and (t.name in outs or any(v.tensor is not None and v.tensor.name
                                                    in outs and _root(v) is s
                                                    for v in stored)):
            hi = end
        lives[s.key] = (lo, hi)
    return lives


def _allocate(stored, lives, floor, tmd, word, graph) -> list[int]:
    """Give every stored root a bank and a base; returns each bank's end. The operands an op
    reads together go to different banks where possible (one read port each), else the bank
    where the tensor starts lowest. ``lives`` None: each tensor its own bytes (a bump per
    bank); else first fit among the tensors whose lives overlap."""
    banks, size = tmd["banks"], tmd["bank_bytes"]
    placed = [[] for _ in range(banks)]     # per bank: (base, end, lo, hi)
    byk = {s.key: s for s in stored}
    for s in stored:
        s.bank = s.base = -1
    always = (-1, 1 << 30)

    def fit(bank, s):
        life = lives[s.key] if lives else always
        busy = sorted((b, e) for b, e, lo, hi in placed[bank]
                      if lo <= life[1] and life[0] <= hi)
        base = -(-floor[bank] // word) * word
        for b, e in busy:
            if base + s.nbytes <= b:
                break
            base = max(base, -(-e // word) * word)
        return base, life

    for s in stored:
        if s.parent is not None:
            continue
        taken = {byk[k].bank for k in s.co if byk[k].bank >= 0}
        choices = [b for b in range(banks) if b not in taken] or list(range(banks))
        bank = min(choices, key=lambda b: fit(b, s)[0])
        base, life = fit(bank, s)
        if base + s.nbytes > size:
            what = s.tensor.name if s.tensor is not None else s.key
            user = next((n for n in graph.nodes if s.tensor is n.out), None)
            opname = f"{user.kind} {user.name}" if user else f"op {s.key.split(':')[0]}"
            shared = ", memory shared between tensors whose lives do not overlap" \
                if lives else ""
            raise GraphError(f"{opname}: tensor {what} needs {s.nbytes} bytes; bank {bank} "
                             f"has {max(0, size - base)} left of {size} ({banks} banks"
                             f"{shared}; tiling larger-than-memory ops is not built)")
        s.bank, s.base = bank, base
        placed[bank].append((base, base + s.nbytes, *life))
    return [max([floor[b]] + [e for _, e, _, _ in placed[b]]) for b in range(banks)]


def padding_unit(units) -> int:
    """The unit both axes of every stored tensor are padded to: the least common multiple of
    2 and every unit's ``rows``, ``cols`` and ``lanes`` (unit configs or params)."""
    pad = 2
    for p in units:
        for v in (getattr(p, "rows", 1), getattr(p, "cols", 1), getattr(p, "lanes", 1)):
            pad = pad * v // math.gcd(pad, v)
    return pad


def _column_block(arrays: dict, j0: int, j1: int) -> dict:
    """A matmul's run arrays for output columns ``j0:j1``: that block of ``b`` and of the
    per-channel requant parameters (scalars go to every block)."""
    out = {**arrays, "b": np.ascontiguousarray(arrays["b"][:, j0:j1])}
    for key in ("bias", "multiplier", "shift"):
        if key in out and np.ndim(out[key]):
            out[key] = out[key][j0:j1]
    return out


def _blocks(node: Node, u: _DUnit, dims, pad: int) -> list[tuple[int, int]]:
    """Column blocks ``[(j0, j1)]`` of a matmul's computed output: one op per block when its
    channels exceed the requant epilogue's parameter memory (each block a multiple of the
    padding unit ``pad``, so blocks never write into each other's columns)."""
    n = dims[-1]
    p = u.params
    if node.kind != "matmul" or p.requant is None or n <= p.epilogue.channels:
        return [(0, n)]
    step = p.epilogue.channels // pad * pad
    if step == 0:
        raise GraphError(f"matmul {node.name}: N = {n} output channels exceed unit {u.name}'s "
                         f"{p.epilogue.channels}-entry requant memory, and no block of "
                         f"{pad} channels (the tile) fits it (allowed: N <= "
                         f"{p.epilogue.channels})")
    return [(j, min(n, j + step)) for j in range(0, n, step)]


def _has_unwritten_padding(t: Tensor, u: _DUnit, pad: int) -> bool:
    """Whether the stored copy of ``t`` has padding codes its producer does not write: a
    tensor whose axes are multiples of ``pad`` has none, a MAC array with ``rows`` and
    ``cols`` equal to ``pad`` writes all of its padded tiles."""
    r, c = t.shape
    if r % pad == 0 and c % pad == 0:
        return False
    if u is None:       # a concat (its pieces' producers write their own columns only) or
        return True     # a copy (one lane: the codes only)
    p = u.params
    return not (u.fam.name == "mac_array" and p.rows == p.cols == pad)


def compile_graph(board, graph: Graph, *, keep=(), reuse: bool | None = None,
                  name_prefix: str = "") -> Program:
    """Check, lay out, allocate, write weights and the program; return a :class:`Program`.

    Every check is made before anything is sent (GraphError, one line). ``reuse``: share
    tensor memory between intermediates whose lives in the program do not overlap (``None``:
    only if the graph does not fit otherwise). With reuse, only the outputs and the tensors
    named in ``keep`` can be read back at a call. Not built: tiling of ops larger than the
    memory.
    """
    info = board.info()
    tmd = info.get("tensor_memory")
    if not tmd:
        raise GraphError(f"{board.url}: design {info.get('name')} has no tensor memory "
                         "(allowed: a protocol-2 design with tensor_memory)")
    if not graph.outputs:
        raise GraphError("the graph has no outputs (allowed: g.output(name, tensor))")
    units = _design_units(info)
    picks = {}
    for node in graph.nodes:
        picks[node.name] = _pick(units, node, {})[3]
    # the golden checks of constant operands (weights fit the unit, sparsity pattern, params)
    for node in graph.nodes:
        for t in node.inputs:
            if t.fmt is None:
                raise GraphError(f"{node.kind} {node.name}: input {t.name} has no format")
    copy_units = [u for u in units if u.fam.name == "copy"]

    def copier(t: Tensor):
        # the codes pass unchanged: the copy unit must hold every code of t (same storage)
        return next((u for u in copy_units if _codes_fit(t.fmt, u.params.format)), None)

    need, modes, fixed, copies = _need_layouts(graph, picks, copier)
    word = tmd["word_bytes"]
    pad = padding_unit(u.params for u in units)

    stored: list[_Stored] = []
    by_tensor: dict[tuple, _Stored] = {}
    # a stored tensor's tail: a player may read up to one beat past its last element (the
    # sparse chain's activation beats of a short last pass)
    tail = max([int(st["beat_bytes"]) for u in units for st in (u.streams or {}).values()]
               + [word])
    view_of: dict[str, tuple] = {}     # piece name -> (concat tensor, first column)

    def data_item(t: Tensor, layout: str) -> _Stored:
        if (t.name, layout) in by_tensor:
            return by_tensor[(t.name, layout)]
        if t.name in view_of:
            whole, col0, last = view_of[t.name]
            parent = data_item(whole, layout)
            sw = storage_bits(t.fmt.width)
            off = col0 * sw // 8 if layout == "row" else col0 * parent.ld
            rows = parent.rows if layout == "row" else \
                (parent.rows - col0 if last else t.shape[1])
            s = _Stored(f"{t.name}:{layout}", layout, 0, parent.ld, rows, t)
            s.parent, s.offset = parent, off
        else:
            r, c = t.shape if layout == "row" else t.shape[::-1]
            rows = -(-r // pad) * pad
            ld = -(-(-(-c // pad) * pad * storage_bits(t.fmt.width) // 8) // word) * word
            s = _Stored(f"{t.name}:{layout}", layout, rows * ld + tail, ld, rows, t)
        stored.append(s)
        by_tensor[(t.name, layout)] = s
        return s

    layout_of = {}
    for node in graph.nodes:
        t = node.out
        wanted = need[t.name]
        if node.kind in ("input", "weight"):
            users = [c for c in graph.nodes if t in c.inputs]
            only_raw = bool(users) and all(c.kind == "sparse_matmul" for c in users)
            lays = sorted(wanted) or ([] if only_raw and t not in graph.outputs.values()
                                      else ["row"])
            for lay in lays:
                data_item(t, lay)
            layout_of[t.name] = lays
        elif t.name in fixed:
            layout_of[t.name] = [fixed[t.name]]
        else:
            if len(wanted) > 1:   # (a copy makes the second layout: in ``fixed``)
                raise GraphError(f"{node.kind} {node.name}: its output is read in both row "
                                 "and col layout (allowed: one; copy ops are not built)")
            layout_of[t.name] = sorted(wanted) or ["row"]
    # concat: the pieces are views of the whole (in its layout), written by their producers
    for node in graph.nodes:
        if node.kind != "concat":
            continue
        col0 = 0
        for t in node.inputs:
            why = None
            if t.node.kind in ("input", "weight", "concat"):
                why = f"it is {'an' if t.node.kind == 'input' else 'a'} {t.node.kind}"
            elif t.name in view_of:
                why = f"it is a piece of concat {view_of[t.name][0].name} too"
            elif t.shape[1] % pad and t is not node.inputs[-1]:
                why = (f"{t.shape[1]} columns (allowed: multiples of {pad}, the design's "
                       "tile, except for the last piece)")
            if why:
                raise GraphError(f"concat {node.name}: piece {t.name}: {why} (allowed: op "
                                 "outputs, each in one concat, whose producers write into the "
                                 "concat's columns)")
            view_of[t.name] = (node.out, col0, t is node.inputs[-1])
            col0 += t.shape[1]

    plan = []
    ops_places = []

    def emit_copy(t: Tensor) -> None:
        """The copy op that makes ``t``'s second stored layout from the one its producer
        wrote (a transpose: one lane, element strides on both sides)."""
        src_l, dst_l = layout_of[t.name][0], copies[t.name]
        src, dst = data_item(t, src_l), data_item(t, dst_l)
        dst.by_copy = True
        cu = copier(t)
        cnode = Node("copy", f"{t.name}.{dst_l}", (t,), {})
        cdims = (t.shape[0] * t.shape[1],)
        plan.append((cnode, cu, cdims))
        ops_places.append((cnode, cu, cdims, {"x": ("x", src, src_l), "y": ("y", dst, dst_l)},
                           None))

    for node in graph.nodes:
        if node.kind == "concat" and node.out.name in copies:
            emit_copy(node.out)
        if node.kind in ("input", "weight", "concat"):
            continue
        u = picks[node.name]
        fam, params = u.fam, u.params
        places = {}
        dims = None
        mode = node.attrs.get("mode") if node.kind == "sparse_matmul" else None

        def place(t, layout, transposed=False):
            s = by_tensor[(t.name, layout)]
            return s, (t.shape[::-1] if transposed else t.shape)

        reads = []
        if node.kind == "matmul":
            a, b = node.inputs
            la, lb, lc = _mac_layouts(params)
            tb = node.attrs["transpose_b"]
            m, k = a.shape
            n = node.out.shape[1]
            if modes[node.name] == "normal":
                sa, _ = place(a, la)
                sb, _ = place(b, _flip(lb) if tb else lb)
                places["a"] = ("a", sa, la)
                places["b"] = ("b", sb, lb)
                sc = data_item(node.out, lc)
                places["c"] = ("c", sc, lc)
                dims = (m, k, n)
            else:
                # C^T = B^T A^T: a' = b_eff^T (b_eff stored flip(la)), b' = a^T
                sbt, _ = place(b, la if tb else _flip(la))
                sat, _ = place(a, _flip(lb))
                places["a"] = ("a", sbt, la)
                places["b"] = ("b", sat, lb)
                sc = data_item(node.out, _flip(lc))
                places["c"] = ("c", sc, lc)
                dims = (n, k, m)
            reads = [places["a"][1], places["b"][1]]
        elif node.kind == "sparse_matmul":
            w, x = node.inputs
            tx = node.attrs["transpose_x"]
            dims = (w.shape[0], w.shape[1], x.shape[0] if tx else x.shape[1])
            sx, _ = place(x, "row" if tx else "col")
            places["x"] = ("x", sx, "col")      # x^T stored in rows = x in columns
            lay = layout_of[node.out.name][0]
            places["y"] = ("y", data_item(node.out, lay), lay)
            reads = [sx]
        else:
            x = node.inputs[0]
            sx = next(by_tensor[(x.name, lay)] for lay in ("row", "col")
                      if (x.name, lay) in by_tensor)
            op_in = "acc" if node.kind == "requant" else "x"
            places[op_in] = (op_in, sx, sx.layout)
            lay = layout_of[node.out.name][0]
            places["y"] = ("y", data_item(node.out, lay), lay)
            r, c = x.shape
            dims = {"softmax": (r, c), "gelu": (r * c,), "requant": (r, c)}[node.kind]
            reads = [sx]
        # raw operands, resident: parameters, compressed sparse weights
        zeros = {t.name: np.zeros(t.shape, np.int64) for t in node.inputs}
        consts = {t.name: t.node.attrs["codes"] for t in node.inputs if t.node.kind == "weight"}

        def run_arrays(vals, node=node, zeros=zeros, consts=consts):
            v = {**zeros, **consts, **vals}
            arr = _arrays(node, v)
            if node.kind == "matmul" and modes[node.name] == "transposed":
                arr = {**arr, "a": np.ascontiguousarray(arr["b"].T),
                       "b": np.ascontiguousarray(arr["a"].T)}
            return arr

        for bi, (j0, j1) in enumerate(_blocks(node, u, dims, pad)):
            job = dict(places)
            jdims = dims
            arrays = run_arrays({})
            if (j0, j1) != (0, dims[-1]):
                # a column block of the computed c (and of b, and of the per-channel
                # parameters): a place inside the stored tensors, one op each
                e = {k: storage_bits(job[k][1].tensor.fmt.width) // 8 for k in ("b", "c")}
                for k in ("b", "c"):
                    name, st, lay = job[k][:3]
                    rows = dims[1] if k == "b" else dims[0]
                    job[k] = (name, st, lay, j0 * e[k], (rows, j1 - j0))
                jdims = dims[:2] + (j1 - j0,)
                arrays = _column_block(arrays, j0, j1)
            try:
                checked = fam.check_inputs(params, arrays, mode=mode)
                raw = fam.raw_operands(params, checked, mode=mode)
            except (UserError, ValueError) as err:
                raise GraphError(f"{node.kind} {node.name}: {err}") from None
            jreads = list(reads)
            for op_name, beats in raw.items():
                if op_name in job:       # read from its stored tensor instead
                    continue
                stream = fam.operand_streams[op_name]
                bb = u.streams[stream]["beat_bytes"]
                pitch = P.raw_pitch(bb, word)
                n_beats = len(next(iter(beats.values())))
                s = _Stored(f"{node.name}#{bi}:{op_name}", "raw", n_beats * pitch, pitch)
                s.beats, s.node, s.operand = beats, node, op_name
                stored.append(s)
                job[op_name] = (op_name, s, "raw")
                jreads.append(s)
            jreads = [_root(s) for s in jreads]
            for s in jreads:
                s.co.update(x.key for x in jreads if x is not s)
            plan.append((node, u, jdims))
            ops_places.append((node, u, jdims, job, mode))
        if node.out.name in copies:
            emit_copy(node.out)

    # banks and addresses (after what earlier compiles on this board hold: their programs
    # stay valid); first without reusing memory, then, if that does not fit, sharing memory
    # between tensors whose lives in the program do not overlap
    floor = list(getattr(board, "_tm_next", None) or [0] * tmd["banks"])
    needs_zeros = {s.key for s in stored if s.tensor is not None and s.parent is None
                   and s.tensor.node.kind not in ("input", "weight")
                   and _has_unwritten_padding(s.tensor, None if getattr(s, "by_copy", False)
                                              else picks.get(s.tensor.node.name), pad)}
    lives = _lives(stored, ops_places, graph, set(keep), needs_zeros)
    if reuse is not True:
        try:
            free = _allocate(stored, None, floor, tmd, word, graph)
        except GraphError:
            if reuse is False:
                raise
            reuse = True
    if reuse is True:
        free = _allocate(stored, lives, floor, tmd, word, graph)
    for s in stored:
        if s.parent is not None:
            root = _root(s)
            s.bank, s.base = root.bank, s.parent.base + s.offset
    end = len(ops_places) + 1
    reused = {s.tensor.name for s in stored if reuse is True and s.tensor is not None
              and lives[_root(s).key][1] < end}

    ops = []
    for node, u, dims, places, mode in ops_places:
        pl = {}
        for op_name, (_, s, lay, *block) in places.items():
            t = s.tensor
            shape = None
            if t is not None:
                shape = t.shape if lay == s.layout else t.shape[::-1]
            off = 0
            if block:
                off, shape = block
            pl[op_name] = Place(s.bank, s.base + off, lay, s.ld, shape)
        try:
            descs = u.fam.program_streams(u.params, dims, pl, u.streams, mode=mode)
            for sname, d in descs.items():
                P.check_descriptor(d, u.streams[sname]["fields"], tmd["bank_bytes"],
                                   tmd["word_bytes"], tmd["banks"], sname)
        except ProgramError as err:
            raise GraphError(f"{node.kind} {node.name}: {err}") from None
        mcode = u.params.mode_code(mode) if u.fam.has_modes else 0
        ops.append(P.Op(u.index, mcode, tuple(dims) + (0,) * (3 - len(dims)),
                        tuple(descs.values())))
    prog = P.Program(tuple(ops))
    data = P.to_bytes(prog)
    paddr = getattr(board, "_prog_next", 0)
    if paddr + len(data) > info.get("program_bytes", 0):
        raise GraphError(f"the program is {len(data)} bytes, {paddr} are taken by earlier "
                         f"programs (allowed: at most {info.get('program_bytes')}, the program "
                         "memory)")
    if 4 + 4 * len(ops) > board.max_payload:
        raise GraphError(f"{len(ops)} ops (allowed: at most {(board.max_payload - 4) // 4})")
    # what a load writes: weights and resident raw operands, then zeros over the
    # intermediates whose padding no unit writes (the units read their padding codes; a
    # producer writes its own padding, never the stored rows past its tiles)
    loads = []
    for s in stored:
        if s.tensor is not None and s.tensor.node.kind == "weight":
            loads.append(("weights", s.bank, s.base, P.layout_bytes(
                s.tensor.node.attrs["codes"], s.layout, s.tensor.fmt.width, s.ld, s.rows),
                s.ld, None))
        elif s.layout == "raw" and getattr(s, "beats", None) is not None:
            u = picks[s.node.name]
            f = u.streams[u.fam.operand_streams[s.operand]]["fields"]
            # the requant epilogue's parameter beats, or a weight's compressed beats
            loads.append(("params" if s.operand == "p" else "weights", s.bank, s.base,
                          P.raw_tensor_bytes(f, s.beats, s.ld), s.ld, beat_bytes(f)))
    for s in stored:
        writer = None if getattr(s, "by_copy", False) else picks.get(s.tensor.node.name) \
            if s.tensor is not None else None
        if s.tensor is not None and s.parent is None and \
                s.tensor.node.kind not in ("input", "weight") and \
                _has_unwritten_padding(s.tensor, writer, pad):
            loads.append(("zeros", s.bank, s.base, bytes(s.nbytes - tail), 1, None))
    mem = sum(f - f0 for f, f0 in zip(free, floor, strict=True))
    out = Program(board, graph, plan, stored, prog, len(ops), mem, pad, loads, paddr)
    out.reused = reused
    # requests from here on
    board._tm_next, board._prog_next = free, paddr + len(data)
    before = board.stats["wire_out"] + board.stats["wire_in"]
    out._load()
    out.stats["weight_bytes"] = board.stats["wire_out"] + board.stats["wire_in"] - before
    return out
