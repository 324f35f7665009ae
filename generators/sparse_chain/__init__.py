"""N:M sparse DSP chain: ``y = w @ x`` from compressed weights, sparsity chosen at run time.

``params`` (sizes, modes, widths, latency, ``expected_cycles``), ``model`` (the golden model,
compression and its bit packing), ``tiling`` (how any O, K, B streams through the chain) and
``rtl`` (the Amaranth component).

With the config block ``requant`` (:mod:`generators.requant.epilogue`), ``y`` leaves as codes
of ``requant.out``, requantized per output row ``o``: the run also takes the requant unit's
arrays (``bias``, ``multiplier``, ``shift`` [O] or scalar; ``zero_point``, ``act_min``,
``act_max``), carried first by a ``p_stream``.
"""

from __future__ import annotations

import numpy as np

from ..family import Split, UnitFamily
from ..requant import epilogue as epi
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
    operand_streams = {"w": "w_stream", "x": "x_stream", "y": "y_stream", "p": "p_stream"}
    has_modes = True
    split = Split("gemm", rows=("w", 0), cols=("x", 1), row_arrays=("bias", "multiplier",
                                                                     "shift"))

    def modes(self, params) -> tuple[str, ...]:
        return params.modes

    def mode(self, params, mode: str | None) -> str:
        return str(params.mode(mode))

    def component(self, params):
        # local: Amaranth only to build hardware
        from ..requant.rtl import WithRequant
        from .rtl import SparseChain

        if params.requant is None:
            return SparseChain(params)
        return WithRequant(SparseChain(params, lockstep=True), params.epilogue,
                           ("w_stream", "x_stream"), "y_stream", "chain", params.latency)

    def manifest_extra(self, params: SparseChainParams) -> dict:
        return {
            "latency": params.latency,
            "throughput": {"macs_per_cycle": params.macs_per_cycle, "w_beats_per_cycle": 1,
                           "x_beats_per_cycle": 1 if not params.spans else {
                               mode: 1 / params.beats_per_group(mode)
                               for mode in params.modes},
                           "dense_k_per_beat": {mode: params.k_per_pass(mode)
                                                for mode in params.modes}},
            "modes": {mode: params.mode_code(mode) for mode in params.modes},
            "default_mode": params.modes[0],
            "x_lanes": params.x_lanes,
            "internal_acc_width": params.internal_width,
            "expected_cycles": "SparseChainParams.expected_cycles(O, K, B, mode)",
            "weight_packing": "docs/sparse_packing.md",
            **epi.manifest(params.epilogue, "O, before the w/x beats"),
        }

    def check_inputs(self, params, arrays: dict, *, mode: str | None = None) -> dict:
        rp = params.epilogue
        own = arrays if rp is None else {k: v for k, v in arrays.items()
                                         if k not in epi.PARAM_ARRAYS}
        w, x = check_inputs(params, own, mode)
        out = {"w": w, "x": x}
        if rp is not None:
            out.update(epi.check_param_arrays(rp, arrays, w.shape[0], "sparse_chain", "w: O"))
        return out

    def golden(self, params, arrays: dict, *, mode: str | None = None) -> dict:
        params.mode(mode)
        y = matmul(params, arrays["w"], arrays["x"])
        if params.requant is not None:  # channels are the rows of y: requantize y.T
            part = {k: v for k, v in arrays.items() if k in epi.PARAM_ARRAYS}
            y = epi.requantize(params.epilogue, y.T, part).T
        return {"y": y}

    def schedule(self, params, arrays: dict, *, mode: str | None = None):
        s = schedule(params, arrays["w"], arrays["x"], mode)
        inputs = s.inputs
        if params.requant is not None:
            o, b = arrays["w"].shape[0], arrays["x"].shape[1]
            inputs = {"p_stream": epi.param_beats(params.epilogue, arrays, o,
                                                  params.epilogue_seq(b)), **inputs}
        return inputs, {"y_stream": s.out_beats}, s

    def assemble(self, params, ctx: Schedule, received: dict) -> dict:
        return {"y": assemble(params, ctx, received["y_stream"]["data"])}

    def unschedule(self, params, inputs: dict, dims: tuple[int, int, int],
                   *, mode: str | None = None) -> dict:
        """Inverse of :meth:`schedule`: input beats of shape ``dims = (O, K, B)`` -> arrays."""
        if params.requant is None:
            return unschedule(params, inputs, dims, mode)
        if "p_stream" not in inputs:
            raise ValueError("missing stream p_stream")
        arrays = unschedule(params, {k: v for k, v in inputs.items() if k != "p_stream"},
                            dims, mode)
        o, b = int(dims[0]), int(dims[2])
        if o > params.epilogue.channels:
            raise ValueError(f"O = {o} exceeds the epilogue's channels")
        arrays.update(epi.params_from_beats(params.epilogue, inputs["p_stream"], o,
                                            params.epilogue_seq(b)))
        return arrays

    def disassemble(self, params, ctx: Schedule, outputs: dict) -> dict:
        """Inverse of :meth:`assemble`: ``{"y": [O,B]}`` -> the ``y_stream`` beats."""
        return {"y_stream": {"data": disassemble(params, ctx, outputs["y"])}}

    def stream_beats(self, params, dims: tuple[int, int, int], *,
                     mode: str | None = None) -> dict:
        """Beats per stream :meth:`schedule` makes for ``dims = (O, K, B)``."""
        beats = stream_beats(params, *dims, mode)
        if params.requant is not None:
            beats = {"p_stream": params.epilogue.row_beats(int(dims[0])), **beats}
        return beats

    def shape_key(self, arrays: dict) -> tuple[int, int, int]:
        o, k = arrays["w"].shape
        return o, k, arrays["x"].shape[1]

    def expected_cycles(self, params, arrays: dict, *, mode: str | None = None) -> int:
        return params.expected_cycles(*self.shape_key(arrays), mode)

    def program_streams(self, params, dims, places, streams, *, mode=None) -> dict:
        """Descriptors for ``y = w @ x`` of ``dims = (O, K, B)`` in ``mode``.

        ``w``: ``raw``, the compressed weight beats of one ``b`` (``O * passes`` beats, row
        ``o``'s passes in order), replayed for every column of ``x``. ``x``: ``col`` (each
        column contiguous), read as ``data`` beats of ``x_lanes`` codes (``x_passes`` per
        column: in a mode with ``n > length`` each serves ``beats_per_group`` weight beats),
        pass ``c`` of column
        ``b`` at ``base + b * ld + c * x_pass_bytes(mode)`` and replayed for every row of
        ``w``; the lanes past ``k_per_pass(mode)`` read whatever follows, so the bank must hold
        :meth:`SparseChainParams.x_overread_bytes` bytes (any values) after the last pass of
        the last column, and the codes past K need not be zero (the weights are zero there).
        The pass stride must be a multiple of the beat's alignment on the board
        (:func:`generators.tm.alignment`; the board refuses the descriptor otherwise, and
        :meth:`SparseChainParams.check_x_col` says so beforehand, knowing the word size):
        e.g. sparse16's 4:4 mode steps 16 bytes for 64-byte beats, too little on 32-byte
        words once K needs two passes.
        Or ``raw``: the ``x_stream`` beats of one ``o`` (``B * x_passes``), packed by the host.
        ``y`` (one code per beat): ``row`` or ``col``. ``p``: ``raw``."""
        from ..tm import DATA, RAW, Descriptor, data_beat, elem_bytes, elements, raw_bytes

        nm = params.mode(mode)
        o, k, b = (int(d) for d in dims)
        passes, xpasses = params.passes(k, nm), params.x_passes(k, nm)
        w, x, y = places["w"], places["x"], places["y"]
        w.need("sparse_chain w", "raw")
        x.need("sparse_chain x", "col", "raw")
        y.need("sparse_chain y", "row", "col")
        out = {"w_stream": Descriptor(w.bank, RAW, raw_bytes(streams, "w_stream"), w.base,
                                      (o, b, passes), (passes * w.ld, 0, w.ld))}
        if x.layout == "raw":
            out["x_stream"] = Descriptor(x.bank, RAW, raw_bytes(streams, "x_stream"), x.base,
                                         (o, b, xpasses), (0, xpasses * x.ld, x.ld))
        else:
            _, _, nx = data_beat(streams, "x_stream", "sparse_chain x")
            out["x_stream"] = Descriptor(x.bank, DATA, nx, x.base, (o, b, xpasses),
                                         (0, x.ld, params.x_pass_bytes(nm)))
        _, sw, _ = data_beat(streams, "y_stream", "sparse_chain y")
        e = elem_bytes(sw, "sparse_chain y")
        count, stride = elements(y, o, b, e)
        out["y_stream"] = Descriptor(y.bank, DATA, e, y.base, count, stride)
        if params.requant is not None:
            pp = places["p"]
            pp.need("sparse_chain p (requant parameters)", "raw")
            out["p_stream"] = Descriptor(pp.bank, RAW, raw_bytes(streams, "p_stream"),
                                         pp.base, (params.epilogue.row_beats(o),), (pp.ld,))
        return {s: out[s] for s in streams}

    def raw_operands(self, params, arrays: dict, *, mode=None) -> dict:
        o, k = arrays["w"].shape
        b = arrays["x"].shape[1]
        nm = params.mode(mode)
        passes, xpasses = params.passes(k, nm), params.x_passes(k, nm)
        ins = self.schedule(params, arrays, mode=mode)[0]
        w = {f: np.asarray(v).reshape(o, b, passes, *np.shape(v)[1:])[:, 0].reshape(
            o * passes, *np.shape(v)[1:]) for f, v in ins["w_stream"].items()}
        x = {f: np.asarray(v).reshape(o, b, xpasses, *np.shape(v)[1:])[0].reshape(
            b * xpasses, *np.shape(v)[1:]) for f, v in ins["x_stream"].items()}
        out = {"w": w, "x": x}
        if params.requant is not None:
            out["p"] = ins["p_stream"]
        return out

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
