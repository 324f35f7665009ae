"""Copy unit: passes its input beats to its output unchanged, for layout changes and copies
inside programs (a 1-lane copy from a ``row`` place to a ``col`` place is a transpose, done by
the tensor memory's address generators).

``params`` (the format, lanes, latency, ``expected_cycles``), ``model`` (the golden model, the
identity) and ``rtl`` (the Amaranth component, one register stage).
"""

from __future__ import annotations

import math

import numpy as np

from ..family import Split, UnitFamily
from .model import check_inputs, copy
from .params import CopyParams

__all__ = ["CopyParams", "copy", "check_inputs", "family"]


class CopyFamily(UnitFamily):
    """The copy unit as the CLI, the simulator runner, the boards and the host see it.

    Streaming (as GELU's): ``x`` is flattened (C order) and cut into beats of ``lanes``
    elements, the last beat zero-padded and marked ``last``; ``o_stream`` returns one beat per
    input beat, the same beat.
    """

    name = "copy"
    config = CopyParams
    in_arrays = ("x",)
    out_arrays = ("y",)
    operand_streams = {"x": "i_stream", "y": "o_stream"}
    split = Split("elements")

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
        """Descriptors for ``y = x`` of ``dims = (n,)``: ``x`` and ``y`` are 2-D tensors
        (``Place.shape``, ``R * N = n``; flattened row by row as :meth:`schedule` does), each
        place giving the tensor's own shape ``(R, N)`` whatever its layout. One lane: any
        ``row`` or ``col`` places (element strides; a ``row`` x to a ``col`` y is a transpose;
        codes of 5 bits or more). More lanes: ``row`` places with ``N`` a multiple of
        ``lanes``, or dense (``ld`` = ``N`` codes) with the last beat's padding zero in
        memory (:func:`generators.tm.elementwise`)."""
        from ..tm import elementwise_streams

        self.mode(params, mode)
        return elementwise_streams("copy", int(dims[0]), places, streams)

    def stats(self, params, arrays: dict, cycles: int | None, *, mode: str | None = None) -> dict:
        out = {"elements": int(np.size(arrays["x"])), "beats": self.beats(params, arrays),
               "expected_cycles": self.expected_cycles(params, arrays)}
        if cycles:
            out["cycles"] = cycles
        return out


family = CopyFamily()
