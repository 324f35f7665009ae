"""N:M sparse DSP chain: ``y = w @ x`` from compressed weights, sparsity chosen at run time.

``params`` (sizes, modes, widths, latency, ``expected_cycles``), ``model`` (the golden model,
compression and its bit packing), ``tiling`` (how any O, K, B streams through the chain) and
``rtl`` (the Amaranth component).
"""

from __future__ import annotations

from ..family import Split, UnitFamily
from .model import chain_matmul, check_inputs, compress, decompress, matmul, pack, unpack
from .params import Mode, SparseChainParams
from .tiling import Schedule, assemble, disassemble, schedule, stream_beats, unschedule

__all__ = ["SparseChainParams", "Mode", "matmul", "chain_matmul", "check_inputs", "compress",
           "decompress", "pack", "unpack", "schedule", "assemble", "unschedule", "disassemble",
           "stream_beats", "Schedule", "family"]


class SparseChainFamily(UnitFamily):
    """The sparse_chain unit as the CLI, the simulator runner, the boards and the host see it.

    Its modes are the config's N:M patterns (``mode="2:4"``; default: the config's first).
    """

    name = "sparse_chain"
    config = SparseChainParams
    in_arrays = ("w", "x")
    out_arrays = ("y",)
    has_modes = True
    split = Split("gemm", rows=("w", 0), cols=("x", 1))

    def modes(self, params) -> tuple[str, ...]:
        return params.modes

    def mode(self, params, mode: str | None) -> str:
        return str(params.mode(mode))

    def component(self, params):
        from .rtl import SparseChain  # local: Amaranth only when the hardware is built

        return SparseChain(params)

    def manifest_extra(self, params: SparseChainParams) -> dict:
        return {
            "latency": params.latency,
            "throughput": {"macs_per_cycle": params.macs_per_cycle, "w_beats_per_cycle": 1,
                           "x_beats_per_cycle": 1,
                           "dense_k_per_beat": {mode: params.k_per_pass(mode)
                                                for mode in params.modes}},
            "modes": {mode: params.mode_code(mode) for mode in params.modes},
            "default_mode": params.modes[0],
            "x_lanes": params.x_lanes,
            "internal_acc_width": params.internal_width,
            "expected_cycles": "SparseChainParams.expected_cycles(O, K, B, mode)",
            "weight_packing": "docs/sparse_packing.md",
        }

    def check_inputs(self, params, arrays: dict, *, mode: str | None = None) -> dict:
        w, x = check_inputs(params, arrays, mode)
        return {"w": w, "x": x}

    def golden(self, params, arrays: dict, *, mode: str | None = None) -> dict:
        params.mode(mode)
        return {"y": matmul(params, arrays["w"], arrays["x"])}

    def schedule(self, params, arrays: dict, *, mode: str | None = None):
        s = schedule(params, arrays["w"], arrays["x"], mode)
        return s.inputs, {"y_stream": s.out_beats}, s

    def assemble(self, params, ctx: Schedule, received: dict) -> dict:
        return {"y": assemble(params, ctx, received["y_stream"]["data"])}

    def unschedule(self, params, inputs: dict, dims: tuple[int, int, int],
                   *, mode: str | None = None) -> dict:
        """Inverse of :meth:`schedule`: input beats of shape ``dims = (O, K, B)`` -> arrays."""
        return unschedule(params, inputs, dims, mode)

    def disassemble(self, params, ctx: Schedule, outputs: dict) -> dict:
        """Inverse of :meth:`assemble`: ``{"y": [O,B]}`` -> the ``y_stream`` beats."""
        return {"y_stream": {"data": disassemble(params, ctx, outputs["y"])}}

    def stream_beats(self, params, dims: tuple[int, int, int], *,
                     mode: str | None = None) -> dict:
        """Beats per stream :meth:`schedule` makes for ``dims = (O, K, B)``."""
        return stream_beats(params, *dims, mode)

    def shape_key(self, arrays: dict) -> tuple[int, int, int]:
        o, k = arrays["w"].shape
        return o, k, arrays["x"].shape[1]

    def expected_cycles(self, params, arrays: dict, *, mode: str | None = None) -> int:
        return params.expected_cycles(*self.shape_key(arrays), mode)

    def stats(self, params, arrays: dict, cycles: int | None, *,
              mode: str | None = None) -> dict:
        o, k, b = self.shape_key(arrays)
        nm = params.mode(mode)
        out = {"o": o, "k": k, "b": b, "mode": str(nm),
               "macs": params.dense_macs(o, k, b),
               "slot_macs": params.slot_macs(o, k, b, nm),
               "expected_cycles": params.expected_cycles(o, k, b, nm)}
        if cycles:
            out["cycles"] = cycles
            out["utilization"] = params.utilization(o, k, b, cycles, nm)
            out["effective_macs_per_dsp_cycle"] = params.effective_macs_per_dsp_cycle(
                o, k, b, cycles)
        return out


family = SparseChainFamily()
