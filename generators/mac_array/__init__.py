"""Systolic MAC array: ``c = a @ b`` with the accumulator's overflow rule.

``params`` (sizes, widths, latency, ``expected_cycles``), ``model`` (the golden model),
``tiling`` (how any GEMM streams through the array) and ``rtl`` (the Amaranth component).

With the config block ``requant`` (:mod:`generators.requant.epilogue`), ``c`` leaves as codes
of ``requant.out``: the run also takes the requant unit's arrays (``bias``, ``multiplier``,
``shift`` per output column or scalar; ``zero_point``, ``act_min``, ``act_max``) and a
``p_stream`` carries them first.
"""

from __future__ import annotations

from ..family import Split, UnitFamily
from ..requant import epilogue as epi
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
    split = Split("gemm", rows=("a", 0), cols=("b", 1), col_arrays=("bias", "multiplier",
                                                                     "shift"))

    def component(self, params):
        # local: Amaranth only to build hardware
        from ..requant.rtl import WithRequant
        from .rtl import MacArray

        if params.requant is None:
            return MacArray(params)
        return WithRequant(MacArray(params), params.epilogue, ("a_stream", "b_stream"),
                           "c_stream", "array", params.latency)

    def manifest_extra(self, params: MacArrayParams) -> dict:
        return {
            "latency": params.latency,
            "throughput": {"macs_per_cycle": params.macs_per_cycle,
                           "a_beats_per_cycle": 1, "c_beats_per_cycle": 1},
            "internal_acc_width": params.internal_width,
            "dataflow": params.dataflow,
            "expected_cycles": "MacArrayParams.expected_cycles(M, K, N)",
            **epi.manifest(params.epilogue, "ceil(N / cols), before the a/b beats"),
        }

    def check_inputs(self, params, arrays: dict, *, mode: str | None = None) -> dict:
        self.mode(params, mode)
        rp = params.epilogue
        own = arrays if rp is None else {k: v for k, v in arrays.items()
                                         if k not in epi.PARAM_ARRAYS}
        a, b = check_inputs(params, own)
        out = {"a": a, "b": b}
        if rp is not None:
            out.update(epi.check_param_arrays(rp, arrays, b.shape[1], "mac_array",
                                              "b: N"))
        return out

    def golden(self, params, arrays: dict, *, mode: str | None = None) -> dict:
        c = gemm(params, arrays["a"], arrays["b"])
        if params.requant is not None:  # the epilogue: the requant unit's golden model on c
            c = epi.requantize(params.epilogue, c, _param_part(arrays))
        return {"c": c}

    def schedule(self, params, arrays: dict, *, mode: str | None = None):
        s = schedule(params, arrays["a"], arrays["b"])
        inputs = s.inputs
        if params.requant is not None:
            inputs = {"p_stream": epi.param_beats(params.epilogue, arrays, s.n,
                                                  params.epilogue_seq(s.m)), **inputs}
        return inputs, {"c_stream": s.out_beats}, s

    def assemble(self, params, ctx: Schedule, received: dict) -> dict:
        return {"c": assemble(params, ctx, received["c_stream"]["data"])}

    def unschedule(self, params, inputs: dict, dims: tuple[int, int, int], *,
                   mode: str | None = None) -> dict:
        """Inverse of :meth:`schedule`: input beats of shape ``dims = (M, K, N)`` -> arrays."""
        if params.requant is None:
            return unschedule(params, inputs, dims)
        own = {k: v for k, v in inputs.items() if k != "p_stream"}
        if "p_stream" not in inputs:
            raise ValueError("missing stream p_stream")
        arrays = unschedule(params, own, dims)
        m, n = int(dims[0]), int(dims[2])
        if n > params.epilogue.channels:
            raise ValueError(f"N = {n} exceeds the epilogue's channels")
        arrays.update(epi.params_from_beats(params.epilogue, inputs["p_stream"], n,
                                            params.epilogue_seq(m)))
        return arrays

    def disassemble(self, params, ctx: Schedule, outputs: dict) -> dict:
        """Inverse of :meth:`assemble`: ``{"c": [M,N]}`` -> the ``c_stream`` beats."""
        return {"c_stream": {"data": disassemble(params, ctx, outputs["c"])}}

    def stream_beats(self, params, dims: tuple[int, int, int], *,
                     mode: str | None = None) -> dict:
        """Beats per stream :meth:`schedule` makes for ``dims = (M, K, N)``."""
        beats = stream_beats(params, *dims)
        if params.requant is not None:
            beats = {"p_stream": params.epilogue.row_beats(int(dims[2])), **beats}
        return beats

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
        if params.requant is not None:
            out["param_beats"] = params.epilogue.row_beats(n)
        if cycles:
            out["cycles"] = cycles
            out["utilization"] = params.utilization(m, k, n, cycles)
        return out


def _param_part(arrays: dict) -> dict:
    return {k: v for k, v in arrays.items() if k in epi.PARAM_ARRAYS}


family = MacArrayFamily()
