"""Systolic MAC array: ``c = a @ b`` with the accumulator's overflow rule.

``params`` (sizes, widths, latency, ``expected_cycles``), ``model`` (the golden model),
``tiling`` (how any GEMM streams through the array) and ``rtl`` (the Amaranth component).
"""

from __future__ import annotations

from ..family import Split, UnitFamily
from .model import check_inputs, gemm
from .params import MacArrayParams
from .tiling import Schedule, assemble, disassemble, schedule, stream_beats, unschedule

__all__ = ["MacArrayParams", "gemm", "check_inputs", "schedule", "assemble", "unschedule",
           "disassemble", "stream_beats", "Schedule", "family"]


class MacArrayFamily(UnitFamily):
    """The mac_array unit as the CLI, the simulator runner, the boards and the host see it."""

    name = "mac_array"
    config = MacArrayParams
    in_arrays = ("a", "b")
    out_arrays = ("c",)
    split = Split("gemm", rows=("a", 0), cols=("b", 1))

    def component(self, params):
        from .rtl import MacArray  # local: Amaranth only when the hardware is built

        return MacArray(params)

    def manifest_extra(self, params: MacArrayParams) -> dict:
        return {
            "latency": params.latency,
            "throughput": {"macs_per_cycle": params.macs_per_cycle,
                           "a_beats_per_cycle": 1, "c_beats_per_cycle": 1},
            "internal_acc_width": params.internal_width,
            "dataflow": params.dataflow,
            "expected_cycles": "MacArrayParams.expected_cycles(M, K, N)",
        }

    def check_inputs(self, params, arrays: dict, *, mode: str | None = None) -> dict:
        self.mode(params, mode)
        a, b = check_inputs(params, arrays)
        return {"a": a, "b": b}

    def golden(self, params, arrays: dict, *, mode: str | None = None) -> dict:
        return {"c": gemm(params, arrays["a"], arrays["b"])}

    def schedule(self, params, arrays: dict, *, mode: str | None = None):
        s = schedule(params, arrays["a"], arrays["b"])
        return s.inputs, {"c_stream": s.out_beats}, s

    def assemble(self, params, ctx: Schedule, received: dict) -> dict:
        return {"c": assemble(params, ctx, received["c_stream"]["data"])}

    def unschedule(self, params, inputs: dict, dims: tuple[int, int, int], *,
                   mode: str | None = None) -> dict:
        """Inverse of :meth:`schedule`: input beats of shape ``dims = (M, K, N)`` -> arrays."""
        return unschedule(params, inputs, dims)

    def disassemble(self, params, ctx: Schedule, outputs: dict) -> dict:
        """Inverse of :meth:`assemble`: ``{"c": [M,N]}`` -> the ``c_stream`` beats."""
        return {"c_stream": {"data": disassemble(params, ctx, outputs["c"])}}

    def stream_beats(self, params, dims: tuple[int, int, int], *,
                     mode: str | None = None) -> dict:
        """Beats per stream :meth:`schedule` makes for ``dims = (M, K, N)``."""
        return stream_beats(params, *dims)

    def shape_key(self, arrays: dict) -> tuple[int, int, int]:
        m, k = arrays["a"].shape
        return m, k, arrays["b"].shape[1]

    def expected_cycles(self, params, arrays: dict, *, mode: str | None = None) -> int:
        return params.expected_cycles(*self.shape_key(arrays))

    def stats(self, params, arrays: dict, cycles: int | None, *,
              mode: str | None = None) -> dict:
        m, k, n = self.shape_key(arrays)
        out = {"m": m, "k": k, "n": n, "macs": m * k * n,
               "expected_cycles": params.expected_cycles(m, k, n)}
        if cycles:
            out["cycles"] = cycles
            out["utilization"] = params.utilization(m, k, n, cycles)
        return out


family = MacArrayFamily()
