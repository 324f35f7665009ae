"""A QONNX MLP as a ``unit: network`` config: each dense layer a Dense layer whose result is
its int32 accumulator, then a ``requant`` layer with the layer's per-channel multipliers,
shifts, bias, zero point and clamp (:class:`generators.network.layers.RequantLayer`). The
dataflow unit then computes exactly :meth:`generators.qonnx.ir.QModel.golden`."""

from __future__ import annotations

import numpy as np

from ..numerics import Format
from .ir import QModel

__all__ = ["to_network"]


def _signed_fmt(codes: np.ndarray, at_least: int) -> str:
    lo, hi = int(codes.min(initial=0)), int(codes.max(initial=0))
    bits = max(at_least, 2)
    while not (-(1 << (bits - 1)) <= lo and hi < (1 << (bits - 1))):
        bits += 1
    return f"int{bits}"


def to_network(qm: QModel, name: str = "qonnx_mlp", reuse_factor: int = 1,
               rounding: str = "double"):
    """The :class:`~generators.network.params.NetworkParams` of ``qm`` (each Dense stage
    with ``reuse_factor``: ``ceil(n_in / reuse_factor)`` multipliers per output)."""
    from ..config import parse_config

    def q(fmt):
        return {"format": str(fmt), "rounding": "trn", "overflow": "wrap"}

    layers = []
    for d in qm.layers:
        rq = d.requant(rounding)
        layers.append({
            "kind": "dense", "name": d.name, "weight": q(_signed_fmt(d.w, d.weight.bits)),
            "bias": q("int32"), "accum": q("int32"), "result": q("int32"),
            "reuse_factor": int(min(reuse_factor, d.shape[0])),
            "w": d.w.tolist(), "b": [0] * d.shape[1]})
        layers.append({
            "kind": "requant", "name": f"{d.name}_requant", "result": q(d.out.fmt),
            "rounding": rounding, "b": rq["bias"].tolist(),
            "multiplier": np.asarray(rq["multiplier"]).tolist(),
            "shift": np.asarray(rq["shift"]).tolist(), "zero_point": rq["zero_point"],
            "act_min": rq["act_min"], "act_max": rq["act_max"]})
    cfg = {"name": name, "unit": "network", "input": q(Format.parse(str(qm.input.fmt))),
           "layers": layers, "source": f"QONNX ({qm.input_name} -> {qm.output_name})"}
    return parse_config(cfg, name)
