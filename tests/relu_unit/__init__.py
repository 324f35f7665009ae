"""A trivial unit family, ``unit: relu``, written as a plug-in would be: this package and the
``registry.register(family)`` line in its test are all it takes (``tests/test_registry.py``
shows the config, ``tensorfab run`` on both backends, ``generate`` and a board using it).

``y = max(x, 0)`` element-wise on codes of a signed integer format, ``lanes`` elements per beat
(``x`` flattened, the last beat zero-padded and marked ``last``), one cycle of latency.
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from generators.errors import ArrayError
from generators.family import Split, UnitFamily
from generators.schema import FormatField, UnitBase


class ReluParams(UnitBase):
    """``unit: relu``: its config and its parameters."""

    unit: Literal["relu"] = Field("relu", description="The unit family: `relu`.")
    fmt: FormatField = Field(description="Format of x and y.")
    lanes: int = Field(1, ge=1, le=16, description="Elements per beat.")

    latency: ClassVar[int] = 1  # a constant of the design, not a config key

    def beats(self, n: int) -> int:
        return math.ceil(n / self.lanes)


def relu(p: ReluParams, x) -> np.ndarray:
    """The golden model."""
    return np.maximum(np.asarray(x, dtype=np.int64), 0)


class ReluFamily(UnitFamily):
    name = "relu"
    config = ReluParams
    in_arrays = ("x",)
    out_arrays = ("y",)
    split = Split("elements")

    def component(self, params):
        from .rtl import Relu  # local: Amaranth only when the hardware is built

        return Relu(params)

    def manifest_extra(self, params) -> dict:
        return {"latency": 1, "throughput": {"elements_per_cycle": params.lanes}}

    def check_inputs(self, params, arrays, *, mode=None):
        self.mode(params, mode)
        if set(arrays) != {"x"}:
            raise ArrayError(f"arrays {', '.join(sorted(arrays)) or 'none'} (allowed: x)")
        if np.size(arrays["x"]) == 0:
            raise ArrayError("x is empty (allowed: at least one element)")
        try:
            return {"x": params.fmt.check_codes(arrays["x"], "x")}
        except ValueError as err:
            raise ArrayError(str(err)) from None

    def golden(self, params, arrays, *, mode=None):
        return {"y": relu(params, arrays["x"])}

    def _beats(self, params, x):
        n = params.beats(x.size)
        flat = np.zeros(n * params.lanes, dtype=np.int64)
        flat[:x.size] = x.reshape(-1)
        last = np.zeros(n, dtype=np.int64)
        last[-1] = 1
        return {"data": flat.reshape(n, params.lanes), "last": last}

    def schedule(self, params, arrays, *, mode=None):
        x = np.asarray(arrays["x"], dtype=np.int64)
        beats = self._beats(params, x)
        return {"i_stream": beats}, {"o_stream": len(beats["last"])}, x.shape

    def assemble(self, params, ctx, received):
        data = np.asarray(received["o_stream"]["data"]).reshape(-1)
        return {"y": data[:math.prod(ctx)].reshape(ctx)}

    def shape_key(self, arrays):
        return (int(np.size(arrays["x"])),)

    def stream_beats(self, params, dims, *, mode=None):
        n = params.beats(int(dims[0]))
        return {"i_stream": n, "o_stream": n}

    def unschedule(self, params, inputs, dims, *, mode=None):
        n = int(dims[0])
        x = np.asarray(inputs["i_stream"]["data"], dtype=np.int64).reshape(-1)[:n]
        if n < 1 or x.size != n:
            raise ValueError(f"{x.size} elements for dims {n}")
        return {"x": x}

    def disassemble(self, params, ctx, outputs):
        return {"o_stream": self._beats(params, np.asarray(outputs["y"], dtype=np.int64))}

    def expected_cycles(self, params, arrays, *, mode=None):
        return params.beats(np.size(arrays["x"])) + params.latency

    def stats(self, params, arrays, cycles, *, mode=None):
        out = {"elements": int(np.size(arrays["x"])),
               "expected_cycles": self.expected_cycles(params, arrays)}
        if cycles:
            out["cycles"] = cycles
        return out


family = ReluFamily()
