"""Copy unit: passes its input beats to its output unchanged, for layout changes and copies
inside programs (a 1-lane copy from a ``row`` place to a ``col`` place is a transpose, done by
the tensor memory's address generators).

``params`` (the format, lanes, latency, ``expected_cycles``), ``model`` (the golden model, the
identity) and ``rtl`` (the Amaranth component, one register stage).
"""

from __future__ import annotations

from ..elementwise import ElementwiseFamily
from .model import check_inputs, copy
from .params import CopyParams

__all__ = ["CopyParams", "copy", "check_inputs", "family"]


class CopyFamily(ElementwiseFamily):
    """The copy unit as the CLI, the simulator runner, the boards and the host see it.

    Streaming (as GELU's): ``x`` is flattened (C order) and cut into beats of ``lanes``
    elements, the last beat zero-padded and marked ``last``; ``o_stream`` returns one beat per
    input beat, the same beat.
    """

    name = "copy"
    config = CopyParams

    def component(self, params):
        from .rtl import Copy  # local: Amaranth only when the hardware is built

        return Copy(params)

    def manifest_extra(self, params: CopyParams) -> dict:
        return {
            "latency": params.latency,
            "throughput": {"elements_per_cycle": params.lanes, "beats_per_cycle": 1},
            "lanes": params.lanes,
            "expected_cycles": "CopyParams.expected_cycles(ceil(x.size / lanes))",
        }

    def check_inputs(self, params, arrays: dict, *, mode: str | None = None) -> dict:
        self.mode(params, mode)
        return {"x": check_inputs(params, arrays)}

    def golden(self, params, arrays: dict, *, mode: str | None = None) -> dict:
        return {"y": copy(params, arrays["x"])}


family = CopyFamily()
