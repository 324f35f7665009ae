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
from .model import SCALE_ARRAYS, check_inputs, gemm
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
    operand_streams = {"a": "a_stream", "b": "b_stream", "c": "c_stream", "p": "p_stream"}
    split = Split("gemm", rows=("a", 0), cols=("b", 1), col_arrays=("bias", "multiplier",
                                                                     "shift"),
                  row_with=(("a_scale", 0),), col_with=(("b_scale", 1),))

    def component(self, params):
        # local: Amaranth only to build hardware
        from ..requant.rtl import WithRequant
        from .rtl import MacArray, check_rtl

        check_rtl(params)
        if params.requant is None:
            return MacArray(params)
        return WithRequant(MacArray(params, lockstep=True), params.epilogue,
                           ("a_stream", "b_stream"), "c_stream", "array", params.latency)

    def manifest_extra(self, params: MacArrayParams) -> dict:
        return {
            "latency": params.latency,
            "throughput": {"macs_per_cycle": params.macs_per_cycle,
                           "a_beats_per_cycle": 1, "c_beats_per_cycle": 1},
            "internal_acc_width": params.internal_width,
            "dataflow": params.dataflow,
            "expected_cycles": "MacArrayParams.expected_cycles(M, K, N)",
            # packed arrays only (none keeps its manifest): two MACs per multiplier
            **({"packing": params.packing, "multipliers": params.multipliers}
               if params.packing != "none" else {}),
            **epi.manifest(params.epilogue, "ceil(N / cols), before the a/b beats"),
        }

    def check_inputs(self, params, arrays: dict, *, mode: str | None = None) -> dict:
        self.mode(params, mode)
        rp = params.epilogue
        own = arrays if rp is None else {k: v for k, v in arrays.items()
                                         if k not in epi.PARAM_ARRAYS}
        a, b, *scales = check_inputs(params, own)
        out = {"a": a, "b": b}
        for name, s in zip(SCALE_ARRAYS, scales, strict=False):
            if s is not None:
                out[name] = s
        if rp is not None:
            out.update(epi.check_param_arrays(rp, arrays, b.shape[1], "mac_array",
                                              "b: N"))
        return out

    def golden(self, params, arrays: dict, *, mode: str | None = None) -> dict:
        c = gemm(params, arrays["a"], arrays["b"], arrays.get("a_scale"),
                 arrays.get("b_scale"))
        if params.requant is not None:  # the epilogue: the requant unit's golden model on c
            c = epi.requantize(params.epilogue, c, _param_part(arrays))
        return {"c": c}

    def schedule(self, params, arrays: dict, *, mode: str | None = None):
        s = schedule(params, arrays["a"], arrays["b"], arrays.get("a_scale"),
                     arrays.get("b_scale"))
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

    def program_streams(self, params, dims, places, streams, *, mode=None) -> dict:
        """Descriptors for ``c = a @ b`` of ``dims = (M, K, N)`` (operands ``a``, ``b``,
        ``c``, and ``p`` with the requant block).

        Output stationary: ``a`` in ``col`` layout (a beat is ``rows`` codes of one column of
        a row block), ``b`` and ``c`` in ``row`` layout; weight stationary: ``a``, ``b``
        and ``c`` all in ``row`` layout, ``M <= tile_m`` or a multiple of it. ``a`` is
        read with its rows padded to a multiple of ``rows`` (output stationary), ``b`` with
        its columns padded to a multiple of ``cols`` (and K to a multiple of ``rows``,
        weight stationary), ``c`` is written so too: the padding codes must be zero.
        ``p`` (requant parameters): ``raw``, the ``p_stream`` beats of :meth:`schedule`.
        """
        self.mode(params, mode)
        return _program_streams(params, dims, places, streams)

    def raw_operands(self, params, arrays: dict, *, mode=None) -> dict:
        if params.requant is None:
            return {}
        return {"p": self.schedule(params, arrays)[0]["p_stream"]}

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


def _program_streams(params, dims, places, streams):
    """:meth:`UnitFamily.program_streams` of the MAC array (see :class:`MacArrayFamily`)."""
    import math

    from ..tm import DATA, RAW, Descriptor, ProgramError, data_beat, raw_bytes
    from ..tm import flags as _flags
    from .params import OUTPUT_STATIONARY

    m, k, n = (int(d) for d in dims)
    R, C = params.rows, params.cols
    nb = math.ceil(n / C)
    a, b, c = places["a"], places["b"], places["c"]
    a.need("mac_array a", "col") if params.dataflow == OUTPUT_STATIONARY else \
        a.need("mac_array a", "row")
    b.need("mac_array b", "row")
    c.need("mac_array c", "row")
    _, sa, na = data_beat(streams, "a_stream", "mac_array a")
    _, sb, nbb = data_beat(streams, "b_stream", "mac_array b")
    _, sc, nc = data_beat(streams, "c_stream", "mac_array c")
    out = {}
    if params.requant is not None:
        pp = places["p"]
        pp.need("mac_array p (requant parameters)", "raw")
        out["p_stream"] = Descriptor(pp.bank, RAW, raw_bytes(streams, "p_stream"), pp.base,
                                     (params.epilogue.row_beats(n),), (pp.ld,))
    if params.dataflow == OUTPUT_STATIONARY:
        mb = math.ceil(m / R)
        # beat (mb, nb, k): column k of a's row block mb; row k of b's column block nb
        out["a_stream"] = Descriptor(a.bank, DATA, na, a.base, (1, mb, nb, k),
                                     (0, na, 0, a.ld),
                                     last=_flags(streams, "a_stream", last=0b1000))
        out["b_stream"] = Descriptor(b.bank, DATA, nbb, b.base, (1, mb, nb, k),
                                     (0, 0, nbb, b.ld))
        out["c_stream"] = Descriptor(c.bank, DATA, nc, c.base, (1, mb, nb, R),
                                     (0, R * c.ld, nc, c.ld))
    else:
        tm_ = params.tile_m
        if m > tm_ and m % tm_:
            raise ProgramError(f"mac_array (weight_stationary): M = {m} is not a multiple "
                               f"of tile_m {tm_} (allowed: M <= {tm_} or a multiple of it: "
                               "one loop nest per op)")
        mt, rows = math.ceil(m / tm_), min(m, tm_)
        kt = math.ceil(k / R)
        # pass (m-block, n-block, k-tile): R rows of b's block, last row first; then the
        # m-block's rows of a restricted to the k-tile; flags last / k_first / k_last
        out["a_stream"] = Descriptor(a.bank, DATA, na, a.base, (mt, nb, kt, rows),
                                     (tm_ * a.ld, 0, na, a.ld),
                                     first=_flags(streams, "a_stream", k_first=0b0100),
                                     last=_flags(streams, "a_stream", last=0b1000,
                                                 k_last=0b0100))
        out["b_stream"] = Descriptor(b.bank, DATA, nbb, b.base + (R - 1) * b.ld,
                                     (mt, nb, kt, R), (0, nbb, R * b.ld, -b.ld))
        out["c_stream"] = Descriptor(c.bank, DATA, nc, c.base, (mt, nb, rows),
                                     (tm_ * c.ld, nc, c.ld))
    del sa, sb, sc
    return {s: out[s] for s in streams if s in out}
