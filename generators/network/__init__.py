"""A network lowered from hls4ml (``unit: network``): ``y = layers(x)`` row by row.

``params`` (:class:`NetworkParams`: the config model and the parameters, its stages and cycle
model), ``layers`` (the layer models of its ``layers``), ``rtl`` (the Amaranth component); the
golden model is :func:`generators.hls.model.run`, the one model of a lowered network.
"""

from __future__ import annotations

import numpy as np

from ..errors import ArrayError
from ..family import Split, UnitFamily
from ..hls.model import run
from .params import NetworkParams

__all__ = ["NetworkParams", "family"]


class NetworkFamily(UnitFamily):
    """The network unit as the CLI, the simulator runner and the benches see it."""

    name = "network"
    config = NetworkParams
    in_arrays = ("x",)
    out_arrays = ("y",)
    split = Split("rows")

    def component(self, params: NetworkParams):
        from .rtl import Network  # local: Amaranth only when the hardware is built

        params.check_rtl()
        return Network(params)

    def manifest_extra(self, params: NetworkParams) -> dict:
        return {
            "latency": params.latency,
            "throughput": {"multipliers": params.multipliers,
                           "stage_cycles": params.stage_cycles()},
            "layers": [layer.name for layer in params.layers],
            "input_format": str(params.input.format),
            "output_format": str(params.out.format),
            "expected_cycles": "NetworkParams.expected_cycles(rows)",
        }

    def check_inputs(self, params: NetworkParams, arrays: dict,
                     *, mode: str | None = None) -> dict:
        self.mode(params, mode)
        if set(arrays) != {"x"}:
            names = ", ".join(sorted(arrays)) or "none"
            raise ArrayError(f"arrays {names} (allowed: exactly one array named x)")
        x = arrays["x"]
        if x.ndim != 2 or x.shape[1] != params.n_in or x.shape[0] < 1:
            raise ArrayError(f"x has shape {list(x.shape)} (allowed: [rows, {params.n_in}], "
                             "rows >= 1)")
        fmt = params.input.format
        return {"x": fmt.check_codes(x, "x")}

    def golden(self, params: NetworkParams, arrays: dict, *, mode: str | None = None) -> dict:
        return {"y": np.asarray(run(params, arrays["x"]), dtype=np.int64)}

    def schedule(self, params: NetworkParams, arrays: dict, *, mode: str | None = None):
        x = arrays["x"]
        return {"x_stream": {"data": x}}, {"y_stream": x.shape[0]}, x.shape[0]

    def assemble(self, params: NetworkParams, ctx, received: dict) -> dict:
        return {"y": np.asarray(received["y_stream"]["data"], dtype=np.int64)}

    # -- for the host driver and the reference board (docs/protocol.md, RUN) -----------------

    def shape_key(self, arrays: dict) -> tuple[int]:
        return (int(arrays["x"].shape[0]),)

    def stream_beats(self, params: NetworkParams, dims, *, mode: str | None = None) -> dict:
        return {"x_stream": int(dims[0]), "y_stream": int(dims[0])}

    def unschedule(self, params: NetworkParams, inputs: dict, dims,
                   *, mode: str | None = None) -> dict:
        x = np.asarray(inputs["x_stream"]["data"], dtype=np.int64)
        if x.shape[0] != int(dims[0]):
            raise ValueError(f"{x.shape[0]} beats for {dims[0]} rows")
        return {"x": x}

    def disassemble(self, params: NetworkParams, ctx, outputs: dict) -> dict:
        return {"y_stream": {"data": np.asarray(outputs["y"], dtype=np.int64)}}

    def expected_cycles(self, params: NetworkParams, arrays: dict,
                        *, mode: str | None = None) -> int:
        return params.expected_cycles(arrays["x"].shape[0])

    def stats(self, params: NetworkParams, arrays: dict, cycles: int | None,
              *, mode: str | None = None) -> dict:
        rows = arrays["x"].shape[0]
        macs = rows * sum(s.n_in * s.n_out for s in params.dense_stages)
        out = {"rows": rows, "macs": macs, "expected_cycles": params.expected_cycles(rows)}
        if cycles:
            out["cycles"] = cycles
            out["utilization"] = round(macs / (cycles * params.multipliers), 5)
        return out


family = NetworkFamily()
