"""GELU unit: element-wise exact-by-specification GELU (a full table up to 10 input bits, a
piecewise quadratic beyond).

``params`` (formats, tables and coefficients from one function, latency, ``expected_cycles``),
``model`` (the golden model, the float64 reference, the error measure) and ``rtl`` (the
Amaranth component).
"""

from __future__ import annotations

import math

import numpy as np

from ..family import Split, UnitFamily
from .model import check_inputs, error_lsb, gelu, reference
from .params import GeluParams

__all__ = ["GeluParams", "gelu", "reference", "error_lsb", "check_inputs", "family"]


class GeluFamily(UnitFamily):
    """The gelu unit as the CLI, the simulator runner and the benches see it.

    Streaming: ``x`` is flattened (C order) and cut into beats of ``lanes`` elements, the last
    beat zero-padded and marked ``last``; ``o_stream`` returns one beat per input beat.
    """

    name = "gelu"
    config = GeluParams
    in_arrays = ("x",)
    out_arrays = ("y",)
    operand_streams = {"x": "i_stream", "y": "o_stream"}
    split = Split("elements")

    def component(self, params):
        from .rtl import Gelu  # local: Amaranth only when the hardware is built

        return Gelu(params)

    def manifest_extra(self, params: GeluParams) -> dict:
        out = {
            "latency": params.latency,
            "throughput": {"elements_per_cycle": params.lanes, "beats_per_cycle": 1},
            "lanes": params.lanes,
            "implementation": params.kind,
            "expected_cycles": "GeluParams.expected_cycles(ceil(x.size / lanes))",
        }
        if params.kind == "poly":
            out["poly"] = {"segments": len(params.poly.c0), "offset_bits": params.poly.k,
                           "span_codes": params.poly.span,
                           "internal_frac_bits": params.internal_frac}
        return out

    def check_inputs(self, params, arrays: dict, *, mode: str | None = None) -> dict:
        self.mode(params, mode)
        return {"x": check_inputs(params, arrays)}

    def golden(self, params, arrays: dict, *, mode: str | None = None) -> dict:
        return {"y": gelu(params, arrays["x"])}

    def beats(self, params, arrays: dict) -> int:
        return math.ceil(np.size(arrays["x"]) / params.lanes)

    def schedule(self, params, arrays: dict, *, mode: str | None = None):
        x = np.asarray(arrays["x"], dtype=np.int64)
        n = self.beats(params, arrays)
        flat = np.zeros(n * params.lanes, dtype=np.int64)
        flat[:x.size] = x.reshape(-1)
        last = np.zeros(n, dtype=np.int64)
        last[-1] = 1
        inputs = {"i_stream": {"data": flat.reshape(n, params.lanes), "last": last}}
        return inputs, {"o_stream": n}, x.shape

    def assemble(self, params, ctx, received: dict) -> dict:
        data = np.asarray(received["o_stream"]["data"]).reshape(-1)
        size = int(np.prod(ctx))
        return {"y": data[:size].reshape(ctx)}

    # -- for the host driver and the reference board (docs/protocol.md, RUN) -----------------

    def shape_key(self, arrays: dict) -> tuple[int]:
        return (int(np.size(arrays["x"])),)

    def stream_beats(self, params, dims, *, mode: str | None = None) -> dict:
        n = math.ceil(int(dims[0]) / params.lanes)
        return {"i_stream": n, "o_stream": n}

    def unschedule(self, params, inputs: dict, dims, *, mode: str | None = None) -> dict:
        """Inverse of :meth:`schedule` for ``dims = (n,)``: the flat ``x`` from the beats.
        Raises ``ValueError`` on beats that ``schedule`` cannot have made."""
        n = int(dims[0])
        if n < 1:
            raise ValueError(f"dims {n} (allowed: n >= 1)")
        data = np.asarray(inputs["i_stream"]["data"], dtype=np.int64).reshape(-1)
        if data.size != math.ceil(n / params.lanes) * params.lanes:
            raise ValueError(f"{data.size} data codes for {n} elements (allowed: "
                             f"{math.ceil(n / params.lanes)} beats of {params.lanes})")
        x = data[:n]
        again, _, _ = self.schedule(params, {"x": x})
        for name, v in again["i_stream"].items():
            got = np.asarray(inputs["i_stream"][name], dtype=np.int64)
            if got.size != v.size or not np.array_equal(got.reshape(np.shape(v)), v):
                raise ValueError(f"field {name} is not what schedule makes for {n} elements")
        return {"x": x}

    def disassemble(self, params, ctx, outputs: dict) -> dict:
        """Inverse of :meth:`assemble`: ``y`` -> the ``o_stream`` beats."""
        again, _, _ = self.schedule(params, {"x": outputs["y"]})
        return {"o_stream": again["i_stream"]}

    def expected_cycles(self, params, arrays: dict, *, mode: str | None = None) -> int:
        return params.expected_cycles(self.beats(params, arrays))

    def program_streams(self, params, dims, places, streams, *, mode=None) -> dict:
        """Descriptors for ``y = gelu(x)`` of ``dims = (n,)``: ``x`` and ``y`` are 2-D
        tensors (``Place.shape``, ``R * N = n``; flattened row by row as :meth:`schedule`
        does). One lane: any ``row`` or ``col`` places (element strides; so GELU also
        changes a tensor's layout for free). More lanes: ``row`` places with ``N`` a
        multiple of ``lanes``, or dense (``ld`` = ``N`` codes) with the last beat's padding
        zero in memory."""
        from ..tm import elementwise_streams

        self.mode(params, mode)
        return elementwise_streams("gelu", int(dims[0]), places, streams)

    def stats(self, params, arrays: dict, cycles: int | None, *, mode: str | None = None) -> dict:
        out = {"elements": int(np.size(arrays["x"])), "beats": self.beats(params, arrays),
               "expected_cycles": self.expected_cycles(params, arrays)}
        if cycles:
            out["cycles"] = cycles
        return out


family = GeluFamily()

