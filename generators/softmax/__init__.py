"""Softmax unit: row-wise softmax, exact by its integer specification (see :mod:`.params`).

``params`` (formats, the exp table, buffer sizes, latency, ``expected_cycles``), ``model``
(the golden model, the float64 reference, the error measure) and ``rtl`` (the Amaranth
component: a store/max pass, an exp/sum pass and a divide pass over row buffers).
"""

from __future__ import annotations

import numpy as np

from ..family import Split, UnitFamily
from .model import check_inputs, error_lsb, reference, softmax
from .params import SoftmaxParams

__all__ = ["SoftmaxParams", "softmax", "reference", "error_lsb", "check_inputs", "family",
           "schedule_rows", "assemble_rows"]


def schedule_rows(p: SoftmaxParams, rows) -> tuple[dict, int]:
    """Input beats for a list of 1-D code rows (each 1..length long, lengths may differ).

    A row is cut into ``ceil(n / lanes)`` beats; ``last`` marks its final beat; with more than
    one lane, ``keep`` has one bit per lane in use (the final beat's unused lanes are 0 and
    ignored). Returns the ``i_stream`` fields and the number of ``o_stream`` beats (the same).
    """
    data, keep, last = [], [], []
    for row in rows:
        row = np.asarray(row, dtype=np.int64).reshape(-1)
        b = p.beats(row.size)
        pad = np.zeros(b * p.lanes, dtype=np.int64)
        pad[:row.size] = row
        data.append(pad.reshape(b, p.lanes))
        k = np.zeros(b * p.lanes, dtype=np.int64)
        k[:row.size] = 1
        keep.append((k.reshape(b, p.lanes) << np.arange(p.lanes)).sum(axis=1))
        flag = np.zeros(b, dtype=np.int64)
        flag[-1] = 1
        last.append(flag)
    fields = {"data": np.concatenate(data), "last": np.concatenate(last)}
    if p.lanes > 1:
        fields["keep"] = np.concatenate(keep)
    return fields, len(fields["last"])


def assemble_rows(p: SoftmaxParams, lengths, data: np.ndarray) -> list[np.ndarray]:
    """The output rows from ``o_stream`` lane data ``[beats, lanes]``."""
    data = np.asarray(data)
    out, at = [], 0
    for n in lengths:
        b = p.beats(n)
        out.append(data[at: at + b].reshape(-1)[:n])
        at += b
    if at != len(data):
        raise ValueError(f"expected {at} output beats, got {len(data)}")
    return out


class SoftmaxFamily(UnitFamily):
    """The softmax unit as the CLI, the simulator runner and the benches see it."""

    name = "softmax"
    config = SoftmaxParams
    in_arrays = ("x",)
    out_arrays = ("y",)
    operand_streams = {"x": "i_stream", "y": "o_stream"}
    split = Split("rows")

    def component(self, params):
        from .rtl import Softmax  # local: Amaranth only when the hardware is built

        return Softmax(params)

    def manifest_extra(self, params: SoftmaxParams) -> dict:
        return {
            "latency": params.latency,
            "latency_note": "first beat of a row to its first output beat, unit idle, "
                            "plus 2 * (beats of the row - 1)",
            "throughput": {"elements_per_cycle": params.lanes, "beats_per_cycle": 1},
            "lanes": params.lanes,
            "exp_table": {"entries": params.table_size, "guard_bits": params.guard},
            "row_buffer_beats": params.x_depth,
            "exp_buffer_beats": params.e_depth,
            "expected_cycles": "SoftmaxParams.expected_cycles(row_lengths)",
        }

    def check_inputs(self, params, arrays: dict, *, mode: str | None = None) -> dict:
        self.mode(params, mode)
        return {"x": check_inputs(params, arrays)}

    def golden(self, params, arrays: dict, *, mode: str | None = None) -> dict:
        return {"y": softmax(params, arrays["x"])}

    def schedule(self, params, arrays: dict, *, mode: str | None = None):
        x = np.asarray(arrays["x"], dtype=np.int64)
        fields, beats = schedule_rows(params, list(x))
        return {"i_stream": fields}, {"o_stream": beats}, x.shape

    def assemble(self, params, ctx, received: dict) -> dict:
        r, n = ctx
        rows = assemble_rows(params, [n] * r, received["o_stream"]["data"])
        return {"y": np.stack(rows).reshape(r, n)}

    # -- for the host driver and the reference board (docs/protocol.md, RUN) -----------------

    def shape_key(self, arrays: dict) -> tuple[int, int]:
        r, n = np.shape(arrays["x"])
        return int(r), int(n)

    def stream_beats(self, params, dims, *, mode: str | None = None) -> dict:
        r, n = int(dims[0]), int(dims[1])
        return {"i_stream": r * params.beats(n), "o_stream": r * params.beats(n)}

    def unschedule(self, params, inputs: dict, dims, *, mode: str | None = None) -> dict:
        """Inverse of :meth:`schedule` for ``dims = (R, L)``: the ``x`` rows from the beats.
        Raises ``ValueError`` on beats that ``schedule`` cannot have made."""
        r, n = int(dims[0]), int(dims[1])
        if not (r >= 1 and 1 <= n <= params.length):
            raise ValueError(f"dims {r}x{n} (allowed: R >= 1, 1 <= L <= {params.length})")
        b = params.beats(n)
        data = np.asarray(inputs["i_stream"]["data"], dtype=np.int64)
        if data.shape[0] != r * b:
            raise ValueError(f"{data.shape[0]} beats for {r} rows of {n}")
        x = data.reshape(r, b * params.lanes)[:, :n]
        again, _ = schedule_rows(params, list(x))
        for name, v in again.items():
            if not np.array_equal(np.asarray(inputs["i_stream"][name], dtype=np.int64), v):
                raise ValueError(f"field {name} is not what schedule makes for {r}x{n}")
        return {"x": x}

    def disassemble(self, params, ctx, outputs: dict) -> dict:
        """Inverse of :meth:`assemble`: ``y`` [R, L] -> the ``o_stream`` beats."""
        fields, _ = schedule_rows(params, list(np.asarray(outputs["y"], dtype=np.int64)))
        return {"o_stream": {"data": fields["data"], "last": fields["last"]}}

    def expected_cycles(self, params, arrays: dict, *, mode: str | None = None) -> int:
        r, n = np.shape(arrays["x"])
        return params.expected_cycles([n] * r)

    def program_streams(self, params, dims, places, streams, *, mode=None) -> dict:
        """Descriptors for the row softmax of ``dims = (R, L)``: ``x`` and ``y`` at ``row``
        or ``col`` places (one code per beat, element strides: the output can be written in
        either layout). A unit of more than one lane is refused: its ``keep`` field is not
        one bit, so its input beats cannot be played from the tensor memory."""
        from ..tm import DATA, Descriptor, ProgramError, elem_bytes, elements, flags

        self.mode(params, mode)
        r, n = int(dims[0]), int(dims[1])
        if params.lanes != 1:
            raise ProgramError(f"softmax with {params.lanes} lanes cannot read from the tensor "
                               "memory (its keep field is not one bit; allowed: lanes 1)")
        out = {}
        for op, stream in (("x", "i_stream"), ("y", "o_stream")):
            pl = places[op]
            pl.need(f"softmax {op}", "row", "col")
            e = elem_bytes(streams[stream]["fields"]["data"]["width"], f"softmax {op}")
            count, stride = elements(pl, r, n, e)
            last = flags(streams, stream, last=0b1000) if op == "x" else ()
            out[stream] = Descriptor(pl.bank, DATA, e, pl.base, count, stride, last=last)
        return {s: out[s] for s in streams}

    def stats(self, params, arrays: dict, cycles: int | None, *, mode: str | None = None) -> dict:
        r, n = np.shape(arrays["x"])
        out = {"rows": int(r), "row_length": int(n),
               "expected_cycles": self.expected_cycles(params, arrays)}
        if cycles:
            out["cycles"] = cycles
            out["elements_per_cycle"] = round(r * n / cycles, 4)
        return out


family = SoftmaxFamily()
