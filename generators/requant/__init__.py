"""Requant unit: integer-only requantization of accumulator codes (per-channel multiplier,
shift and zero point; gemmlowp/TFLite ``double`` or ``single`` rounding, or a power-of-two
scale with an ``ap_fixed`` rounding).

``params`` (the config, latency, ``expected_cycles``), ``model`` (the run's arrays and the
golden model, :func:`generators.numerics.requantize_fixed`) and ``rtl`` (the Amaranth
component, with :class:`~.rtl.RequantLane`, one lane's datapath, for other units to reuse).

Streams of a run ``acc [R, N]`` (``P = ceil(N / lanes)`` beats per row):

- ``p_stream``: ``P`` beats, beat ``j`` holding channels ``j * lanes + l`` in its lanes
  (``bias``; per channel also ``multiplier >> (32 - mult_bits)`` and ``shift``; per tensor
  those two as one field) and, in every beat, ``zero_point``, ``act_min`` and ``act_max``;
  ``last`` on beat ``P - 1``. Lanes past ``N`` are zero.
- ``acc_stream``: ``R * P`` beats, row by row, each row's last beat zero-padded; ``last`` on
  the final beat. The unit takes it only after the parameter beat marked ``last``.
- ``y_stream``: one beat per ``acc`` beat, ``last`` passed through.
"""

from __future__ import annotations

import numpy as np

from ..errors import ArrayError
from ..family import Split, UnitFamily
from .model import ARRAYS, check_inputs, requant
from .params import SHIFT_BITS, RequantParams

__all__ = ["RequantParams", "requant", "check_inputs", "family"]


def _sign_extend(v: np.ndarray, width: int) -> np.ndarray:
    """Raw ``width``-bit values as two's complement (values already signed stay as they
    are)."""
    half = 1 << (width - 1)
    return ((v + half) & ((1 << width) - 1)) - half


class RequantFamily(UnitFamily):
    """The requant unit as the CLI, the simulator runner and the host see it.

    Not split by the host (``Split("none")``): the parameters go with every run, and the
    parameter memory bounds ``N`` anyway.
    """

    name = "requant"
    config = RequantParams
    in_arrays = ARRAYS
    out_arrays = ("y",)
    operand_streams = {"acc": "acc_stream", "y": "y_stream", "p": "p_stream"}
    split = Split("none")

    def component(self, params):
        from .rtl import Requant  # local: Amaranth only when the hardware is built

        return Requant(params)

    def manifest_extra(self, params: RequantParams) -> dict:
        return {
            "latency": params.latency,
            "throughput": {"elements_per_cycle": params.lanes, "beats_per_cycle": 1,
                           "p_beats_per_cycle": 1},
            "lanes": params.lanes,
            "rounding": params.rounding,
            "per": params.per,
            "channels": params.channels,
            "mult_bits": params.mult_bits,
            "expected_cycles": "RequantParams.expected_cycles(R, N)",
        }

    def check_inputs(self, params, arrays: dict, *, mode: str | None = None) -> dict:
        self.mode(params, mode)
        return check_inputs(params, arrays)

    def golden(self, params, arrays: dict, *, mode: str | None = None) -> dict:
        return {"y": requant(params, arrays)}

    # -- streams -----------------------------------------------------------------------------

    def _lane_rows(self, params, v: np.ndarray, n: int) -> np.ndarray:
        """``[N]`` -> ``[P, lanes]``, zero-padded."""
        p = params.row_beats(n)
        flat = np.zeros(p * params.lanes, dtype=np.int64)
        flat[:n] = v
        return flat.reshape(p, params.lanes)

    def param_beats(self, params, arrays: dict, n: int) -> dict:
        p = params.row_beats(n)
        per = params.per == "channel"
        fields = {"bias": self._lane_rows(params, arrays["bias"], n)}
        names = ("multiplier", "shift") if params.uses_multiplier else ("shift",)
        for name in names:
            v = np.asarray(arrays[name], dtype=np.int64)
            if name == "multiplier":
                v = v >> params.mult_shift
            fields[name] = self._lane_rows(params, v, n) if per else np.full(p, int(v))
        for name in ("zero_point", "act_min", "act_max"):
            fields[name] = np.full(p, int(arrays[name]), dtype=np.int64)
        last = np.zeros(p, dtype=np.int64)
        last[-1] = 1
        fields["last"] = last
        return fields

    def _acc_beats(self, params, acc: np.ndarray) -> dict:
        r, n = acc.shape
        p = params.row_beats(n)
        data = np.zeros((r, p * params.lanes), dtype=np.int64)
        data[:, :n] = acc
        last = np.zeros(r * p, dtype=np.int64)
        last[-1] = 1
        return {"data": data.reshape(r * p, params.lanes), "last": last}

    def schedule(self, params, arrays: dict, *, mode: str | None = None):
        acc = np.asarray(arrays["acc"], dtype=np.int64)
        inputs = {"p_stream": self.param_beats(params, arrays, acc.shape[1]),
                  "acc_stream": self._acc_beats(params, acc)}
        return inputs, {"y_stream": len(inputs["acc_stream"]["last"])}, acc.shape

    def assemble(self, params, ctx, received: dict) -> dict:
        r, n = ctx
        data = np.asarray(received["y_stream"]["data"], dtype=np.int64)
        return {"y": data.reshape(r, -1)[:, :n]}

    # -- for the host driver and the reference board (docs/protocol.md, RUN) -----------------

    def shape_key(self, arrays: dict) -> tuple[int, int]:
        r, n = np.shape(arrays["acc"])
        return int(r), int(n)

    def stream_beats(self, params, dims, *, mode: str | None = None) -> dict:
        r, n = int(dims[0]), int(dims[1])
        p = params.row_beats(n)
        return {"p_stream": p, "acc_stream": r * p, "y_stream": r * p}

    def unschedule(self, params, inputs: dict, dims, *, mode: str | None = None) -> dict:
        """Inverse of :meth:`schedule` for ``dims = (R, N)``; ``ValueError`` for beats that no
        schedule makes (padding that is not zero, scalars that differ between beats, values
        out of range)."""
        r, n = int(dims[0]), int(dims[1])
        if r < 1 or not 1 <= n <= params.channels:
            raise ValueError(f"dims {(r, n)} (allowed: R >= 1, 1 <= N <= {params.channels})")
        beats = self.stream_beats(params, (r, n))
        pin = {k: np.asarray(v, dtype=np.int64) for k, v in inputs["p_stream"].items()}
        ain = {k: np.asarray(v, dtype=np.int64) for k, v in inputs["acc_stream"].items()}
        if len(ain["last"]) != beats["acc_stream"] or len(pin["last"]) != beats["p_stream"]:
            raise ValueError(f"beat counts do not match dims {(r, n)}")
        per = params.per == "channel"
        arrays = {"acc": ain["data"].reshape(r, -1)[:, :n],
                  "bias": pin["bias"].reshape(-1)[:n]}
        # signed scalar fields arrive as their raw bits (host.tensor.unpack_beats)
        if params.out.signed:
            for name in ("zero_point", "act_min", "act_max"):
                pin[name] = _sign_extend(pin[name], params.out.width)
        if not per:
            pin["shift"] = _sign_extend(pin["shift"], SHIFT_BITS)
        for name in ("multiplier", "shift") if params.uses_multiplier else ("shift",):
            v = pin[name].reshape(-1)[:n] if per else pin[name][0]
            arrays[name] = v << params.mult_shift if name == "multiplier" else v
        for name in ("zero_point", "act_min", "act_max"):
            arrays[name] = pin[name][0]
        try:
            checked = check_inputs(params, arrays)
        except ArrayError as err:  # beats that no valid run makes
            raise ValueError(str(err)) from None
        again, _, _ = self.schedule(params, checked)
        for sname, fields in (("p_stream", pin), ("acc_stream", ain)):
            for fname, v in again[sname].items():
                if not np.array_equal(fields[fname].reshape(np.shape(v)), v):
                    raise ValueError(f"{sname}.{fname} is not what schedule makes for "
                                     f"dims {(r, n)}")
        return checked

    def disassemble(self, params, ctx, outputs: dict) -> dict:
        """Inverse of :meth:`assemble`: ``y`` -> the ``y_stream`` beats."""
        return {"y_stream": self._acc_beats(params, np.asarray(outputs["y"], dtype=np.int64))}

    def expected_cycles(self, params, arrays: dict, *, mode: str | None = None) -> int:
        return params.expected_cycles(*self.shape_key(arrays))

    def program_streams(self, params, dims, places, streams, *, mode=None) -> dict:
        """Descriptors for ``y = requant(acc)`` of ``dims = (R, N)``: ``p`` ``raw`` (the
        ``p_stream`` beats, :meth:`raw_operands`), ``acc`` and ``y`` at ``row`` places (rows
        of ``ceil(N / lanes)`` beats, each row's padding codes zero in memory) or, with one
        lane, ``row`` or ``col`` places (element strides)."""
        from ..tm import DATA, RAW, Descriptor, data_beat, elem_bytes, elements, flags, raw_bytes

        self.mode(params, mode)
        r, n = int(dims[0]), int(dims[1])
        pp = places["p"]
        pp.need("requant p (parameters)", "raw")
        out = {"p_stream": Descriptor(pp.bank, RAW, raw_bytes(streams, "p_stream"), pp.base,
                                      (params.row_beats(n),), (pp.ld,))}
        for op, stream in (("acc", "acc_stream"), ("y", "y_stream")):
            pl = places[op]
            lanes, sw, nb = data_beat(streams, stream, f"requant {op}")
            if lanes == 1:
                pl.need(f"requant {op}", "row", "col")
                count, stride = elements(pl, r, n, elem_bytes(sw, f"requant {op}"))
            else:
                pl.need(f"requant {op} ({lanes} lanes)", "row")
                count, stride = (r, params.row_beats(n)), (pl.ld, nb)
            last = flags(streams, stream, last=0b1111) if op == "acc" else ()
            out[stream] = Descriptor(pl.bank, DATA, nb, pl.base, count, stride, last=last)
        return {s: out[s] for s in streams}

    def raw_operands(self, params, arrays: dict, *, mode=None) -> dict:
        return {"p": self.schedule(params, arrays)[0]["p_stream"]}

    def stats(self, params, arrays: dict, cycles: int | None, *, mode: str | None = None) -> dict:
        r, n = self.shape_key(arrays)
        out = {"rows": r, "channels": n, "elements": r * n,
               "param_beats": params.row_beats(n), "acc_beats": r * params.row_beats(n),
               "expected_cycles": params.expected_cycles(r, n)}
        if cycles:
            out["cycles"] = cycles
        return out


family = RequantFamily()
