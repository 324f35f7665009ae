"""QONNX models as board programs: a :class:`generators.qonnx.QModel` lowered to a
:class:`host.Graph` (docs/qonnx.md).

    >>> from generators.qonnx import read                            # doctest: +SKIP
    >>> qm = read("models/digits/digits_mlp.onnx")
    >>> g = to_graph(qm, rows=32, design=board.info())
    >>> prog = board.compile(g)
    >>> y = prog(x=qm.quantize_input(images))["y"]                  # output codes

Each dense layer is one ``matmul`` with the fused requant epilogue: the weights are the
layer's integer codes (stored as int8), the epilogue's per-channel ``multiplier``/``shift``
come from ``quantize_multiplier`` of ``input scale x weight scale / output scale``, the bias
is the int32 bias codes with the input's zero point folded in, the output zero point is the
epilogue's ``zero_point`` and a ReLU is its ``act_min``.
"""

from __future__ import annotations

from generators.qonnx.ir import QModel, Quantizer
from generators.qonnx.reader import QonnxError

from .graph import Graph, _design_units

__all__ = ["to_graph", "epilogue_rounding", "container"]


def container(q: Quantizer, what: str) -> str:
    """The storage format of a quantizer's codes on the board: ``int8`` holds every signed
    format up to 8 bits and unsigned up to 7."""
    if q.min_code >= -128 and q.max_code <= 127:
        return "int8"
    raise QonnxError(f"{q.node}: {what} codes {q.min_code}..{q.max_code} ({q.fmt}) do not fit "
                     "the MAC array's int8 operands (allowed: signed up to 8 bits, unsigned "
                     "up to 7)")


def epilogue_rounding(design) -> str:
    """The rounding of the first MAC unit with a requant epilogue in ``design`` (a
    BoardConfig or INFO dict); ``double`` without a design."""
    for u in _design_units(design) or []:
        if u.fam.name == "mac_array" and u.params.requant is not None:
            return u.params.epilogue.rounding
    return "double"


def to_graph(qm: QModel, rows: int, design=None) -> Graph:
    """The model as a graph over ``rows`` inputs per call: input ``x`` [rows, n_in] (the
    input quantizer's codes), output ``y`` [rows, n_out] (the last quantizer's codes)."""
    rounding = epilogue_rounding(design)
    if rounding not in ("double", "single"):
        raise QonnxError(f"the design's MAC epilogue rounds {rounding!r} (allowed: double or "
                         "single, a fixed-point multiplier for real scales)")
    g = Graph()
    t = g.input("x", (int(rows), qm.n_in), container(qm.input, "input"))
    for layer in qm.layers:
        container(layer.weight, "weight")
        w = g.weight(f"{layer.name}.w", layer.w, "int8")
        rq = layer.requant(rounding)
        t = g.matmul(t, w, name=layer.name,
                     requant=dict(rq, out=container(layer.out, "activation"),
                                  rounding=rounding))
    # the logits in columns: read back without each row's padding (docs/qonnx.md)
    g.output("y", t, layout="col")
    return g


def link_bytes_per_second(cfg) -> float | None:
    """Bytes per second of a board design's link (a UART: 10 bits per byte)."""
    baud = getattr(getattr(cfg, "link", None), "uart", None)
    return baud / 10 if baud else None


def compile_model(model, board_config_path, out_dir, rows: int = 32) -> dict:
    """``tensorfab compile``: the QONNX model as a graph for the board design, checked by
    compiling and running it once on ``model://`` of that design; writes
    ``out_dir/graph.json`` and ``out_dir/report.json`` and returns the report."""
    import json
    from pathlib import Path

    import numpy as np

    from generators.qonnx.reader import read

    from . import graphfile
    from .board import open_board
    from .model import board_config

    if int(rows) < 1:
        raise QonnxError(f"--rows {rows} (allowed: at least 1)")
    qm = read(model)
    cfg = board_config(str(board_config_path))
    g = to_graph(qm, rows, cfg)
    # measured on random codes (zeros would cross the link as a fill, fewer bytes)
    x = np.random.default_rng(0).integers(qm.input.min_code, qm.input.max_code + 1,
                                          (int(rows), qm.n_in))
    with open_board(f"model://{board_config_path}", progress=False) as board:
        prog = board.compile(g)
        prog(x=x)
        info = board.info()
    st = prog.stats
    per = link_bytes_per_second(cfg)
    cyc = st["cycles"] / rows
    lb = st["link_bytes"] / rows
    rate = {"board": info["clock_hz"] / cyc}
    if per:
        rate["link"] = per / lb
    report = {
        "model": str(model), "board": str(board_config_path), "rows": int(rows),
        "layers": qm.summary(),
        "ops": st["op_cycles"],
        "cycles_per_call": st["cycles"], "cycles_per_image": round(cyc, 2),
        "link_bytes_per_call": st["link_bytes"], "link_bytes_per_image": round(lb, 2),
        "image_bytes": qm.n_in, "logit_bytes": qm.layers[-1].shape[1],
        "load_bytes": st["load_bytes"], "memory_bytes": st["memory_bytes"],
        "program_bytes": st["program_bytes"], "mac_utilization": st["mac_utilization"],
        "clock_hz": info["clock_hz"], "images_per_second": {k: round(v, 1)
                                                           for k, v in rate.items()},
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"source": str(model), "board": str(board_config_path), "rows": int(rows),
            "quantize": {"x": qm.input.to_dict()}, "dequantize": {"y": qm.output.to_dict()}}
    graphfile.save(g, out / "graph.json", meta)
    (out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    return report


def report_lines(r: dict) -> list[str]:
    """The report as the command prints it."""
    ips = r["images_per_second"]
    lines = list(r["layers"])
    lines.append(f"program: {len(r['ops'])} ops on {r['rows']} images per call: "
                 f"{r['cycles_per_image']} cycles and {r['link_bytes_per_image']} link bytes "
                 f"per image ({r['image_bytes']} image + {r['logit_bytes']} logit bytes)")
    lines.append("  op cycles per call: " + ", ".join(f"{k} {v}" for k, v in r["ops"].items()))
    lines.append(f"  loaded once: {sum(r['load_bytes'].values())} link bytes "
                 f"({', '.join(f'{k} {v}' for k, v in r['load_bytes'].items())}); tensor "
                 f"memory {r['memory_bytes']} bytes, program {r['program_bytes']} bytes")
    lines.append(f"  images/s: {ips['board']:.0f} at {r['clock_hz'] / 1e6:g} MHz"
                 + (f", {ips['link']:.0f} over the link" if "link" in ips else ""))
    return lines


def run_graph(board, g, meta: dict, arrays: dict, where: str = "inputs") -> tuple[dict, dict]:
    """Run a graph file's graph on ``board`` over any number of rows: the inputs cut into
    calls of the graph's rows (the last padded with zeros, its padding rows dropped), float
    inputs quantized by ``meta["quantize"]``, and each output also dequantized
    (``<name>_float``) where ``meta["dequantize"]`` names its quantizer. Returns
    ``(outputs, stats)``: ``rows``, ``calls``, ``cycles``, ``link_bytes`` (of the calls)."""
    import numpy as np

    from generators.errors import ArrayError

    names = [n.name for n in g.nodes if n.kind == "input"]
    if set(arrays) != set(names):
        raise ArrayError(f"{where}: arrays {', '.join(sorted(arrays)) or 'none'} (allowed: "
                         f"exactly {', '.join(names)})")
    quant = meta.get("quantize") or {}
    vals, rows = {}, None
    for name in names:
        t = g.tensors[name]
        a = np.asarray(arrays[name])
        if a.ndim != 2 or a.shape[1] != t.shape[1]:
            raise ArrayError(f"{where}: {name} has shape {list(a.shape)} (allowed: [rows, "
                             f"{t.shape[1]}])")
        if a.dtype.kind == "f":
            if name not in quant:
                raise ArrayError(f"{where}: {name} is float and the graph has no quantizer for "
                                 "it (allowed: integer codes)")
            a = Quantizer.from_dict(quant[name]).codes(a.astype(np.float32))
        elif a.dtype.kind not in "iu":
            raise ArrayError(f"{where}: {name} of dtype {a.dtype} (allowed: integer codes, or "
                             "floats for a quantized input)")
        if rows is not None and a.shape[0] != rows:
            raise ArrayError(f"{where}: inputs with {rows} and {a.shape[0]} rows (allowed: "
                             "the same)")
        rows = a.shape[0]
        vals[name] = a.astype(np.int64)
    per = g.tensors[names[0]].shape[0]
    prog = board.compile(g)
    outs = {k: [] for k in g.outputs}
    st = {"rows": rows, "calls": 0, "cycles": 0, "link_bytes": 0}
    for i in range(0, rows, per):
        chunk = {}
        for k, v in vals.items():
            c = v[i:i + per]
            if len(c) < per:
                c = np.concatenate([c, np.zeros((per - len(c), c.shape[1]), np.int64)])
            chunk[k] = c
        got = prog(**chunk)
        for k in outs:
            outs[k].append(got[k][:min(per, rows - i)])
        st["calls"] += 1
        st["cycles"] += prog.stats["cycles"]
        st["link_bytes"] += prog.stats["link_bytes"]
    result = {k: np.concatenate(v) for k, v in outs.items()}
    for k, q in (meta.get("dequantize") or {}).items():
        if k in result:
            result[f"{k}_float"] = Quantizer.from_dict(q).dequantize(result[k])
    return result, st
