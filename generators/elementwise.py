"""The streaming every element-wise family shares (GELU, copy): ``x`` flattened in C order and
cut into beats of ``lanes`` elements, the last beat zero-padded and marked ``last`` on
``i_stream``; ``o_stream`` returns one beat per input beat; RUN dims ``(n,)``; descriptors
over tensor-memory places from :func:`generators.tm.elementwise_streams`.

A family subclasses :class:`ElementwiseFamily` and adds its config, component, manifest,
input check and golden model; its params give ``lanes`` and ``expected_cycles(beats)``.
"""

from __future__ import annotations

import math

import numpy as np

from .family import Split, UnitFamily

__all__ = ["ElementwiseFamily"]


class ElementwiseFamily(UnitFamily):
    """An element-wise unit ``y = f(x)`` (see the module docstring)."""

    in_arrays = ("x",)
    out_arrays = ("y",)
    operand_streams = {"x": "i_stream", "y": "o_stream"}
    split = Split("elements")

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
        """Descriptors for ``y = f(x)`` of ``dims = (n,)``: ``x`` and ``y`` are 2-D tensors
        (``Place.shape``, ``R * N = n``, each place giving the tensor's own shape whatever its
        layout; flattened row by row as :meth:`schedule` does). One lane: any ``row`` or
        ``col`` places (element strides, so the op also changes a tensor's layout for free;
        codes of 5 bits or more). More lanes: ``row`` places with ``N`` a multiple of
        ``lanes``, or dense (``ld`` = ``N`` codes) with the last beat's padding zero in
        memory (:func:`generators.tm.elementwise`)."""
        from .tm import elementwise_streams

        self.mode(params, mode)
        return elementwise_streams(self.name, int(dims[0]), places, streams)

    def stats(self, params, arrays: dict, cycles: int | None, *, mode: str | None = None) -> dict:
        out = {"elements": int(np.size(arrays["x"])), "beats": self.beats(params, arrays),
               "expected_cycles": self.expected_cycles(params, arrays)}
        if cycles:
            out["cycles"] = cycles
        return out
