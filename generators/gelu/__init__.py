"""GELU unit: element-wise exact-by-specification GELU (a full table up to 10 input bits, a
piecewise quadratic beyond).

``params`` (formats, tables and coefficients from one function, latency, ``expected_cycles``),
``model`` (the golden model, the float64 reference, the error measure) and ``rtl`` (the
Amaranth component).
"""

from __future__ import annotations

from ..elementwise import ElementwiseFamily
from .model import check_inputs, error_lsb, gelu, reference
from .params import GeluParams

__all__ = ["GeluParams", "gelu", "reference", "error_lsb", "check_inputs", "family"]


class GeluFamily(ElementwiseFamily):
    """The gelu unit as the CLI, the simulator runner and the benches see it.

    Streaming: ``x`` is flattened (C order) and cut into beats of ``lanes`` elements, the last
    beat zero-padded and marked ``last``; ``o_stream`` returns one beat per input beat.
    """

    name = "gelu"
    config = GeluParams

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


family = GeluFamily()

