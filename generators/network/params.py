"""Parameters of the `network` unit: its config model, validated once.

:class:`NetworkParams` is both the ``unit: network`` config schema (a network lowered from
hls4ml by ``tensorfab hls``: its layers with hls4ml's ``ap_fixed`` types and its weights as
integer codes) and the parameters everything downstream reads: :func:`generators.hls.lower.lower`
builds it, the golden model (:func:`generators.hls.model.run`), the RTL and the cycle model read
its layers (:mod:`.layers`), its ``inputs`` (the type into each layer) and its ``stages``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Annotated, Literal

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from ..errors import ConfigError
from ..gelu.params import check_format as gelu_format
from ..numerics import Format
from ..schema import UnitBase, field_problem, tuple_of
from ..softmax.params import check_in as softmax_in
from ..softmax.params import check_out as softmax_out
from .layers import HEAD_KINDS, DenseLayer, Layer, Quant

__all__ = ["NetworkParams", "Stage"]


@dataclass(frozen=True, eq=False)
class Stage:
    """One stage of the hardware: a head (a Dense layer, or the softmax or gelu unit of a
    softmax or GELU layer) and the element-wise layers fused after it (ReLU, BatchNorm), with
    the type ``inp`` and width ``n_in`` of the rows it takes and the width ``n_out`` it gives."""

    layers: tuple
    inp: Quant
    n_in: int
    n_out: int

    @property
    def head(self):
        return self.layers[0]

    @property
    def tail(self) -> tuple:
        """The element-wise layers after the head."""
        return self.layers[1:]

    @property
    def kind(self) -> str:
        """The head's kind: ``dense``, ``softmax`` or ``gelu``."""
        return self.head.kind

    @property
    def result(self) -> Quant:
        """The type of the rows the stage gives."""
        return self.layers[-1].result

    @cached_property
    def unit(self):
        """The softmax or gelu unit's parameters behind the head (one row per beat; None for
        a Dense stage)."""
        return None if self.kind == "dense" else self.head.unit_params(self.inp.format,
                                                                        self.n_in)

    @property
    def requant_stages(self) -> int:
        """Register stages of a requant layer fused right after a Dense head (its
        ``RequantLane``), else 0: the Dense stage offers its result that much later."""
        if self.kind != "dense" or not self.tail or self.tail[0].kind != "requant":
            return 0
        from ..requant.params import lane_stages

        return lane_stages(self.tail[0].rounding)

    @property
    def chunking(self) -> tuple[int, int]:
        """Dense: ``(P, C)``, inputs multiplied per cycle and cycles per row, from the reuse
        factor."""
        reuse = max(1, min(self.head.reuse_factor, self.n_in))
        p = math.ceil(self.n_in / reuse)
        return p, math.ceil(self.n_in / p)


class NetworkParams(UnitBase):
    """A network lowered from hls4ml (``tensorfab hls``): ``y = layers(x)`` row by row, each
    layer with hls4ml's ``ap_fixed`` types; weights are integer codes in the file. In hardware
    it is cut into :attr:`stages`."""

    unit: Literal["network"] = Field("network", description="The unit family: `network`.")
    input: Quant = Field(description="The type of the input codes `x`.")
    layers: Annotated[tuple[Layer, ...], tuple_of("layers")] = Field(
        min_length=1, description="The layers in order; the first is a dense layer.")
    source: str = Field("", description="What the network was lowered from (informative).")

    @model_validator(mode="after")
    def _check(self) -> NetworkParams:
        if self.layers[0].kind != "dense":
            raise field_problem("layers[0]", f"the first layer is {self.layers[0].kind} "
                                 "(allowed: a dense layer first)")
        width = None
        prev = self.input.format
        for i, layer in enumerate(self.layers):
            if layer.kind == "softmax" and i != len(self.layers) - 1:
                raise field_problem(f"layers[{i}]", "a softmax before other layers (allowed: "
                                     "softmax as the last layer)")
            if layer.kind in ("softmax", "gelu"):
                _check_unit_layer(f"layers[{i}]", layer.kind, prev, layer.result.format)
            prev = layer.result.format
            if layer.kind == "dense":
                n_in = len(layer.w)
                if width is not None and n_in != width:
                    raise field_problem(f"layers[{i}].w", f"{n_in} inputs but the layer "
                                         f"before gives {width} (allowed: {width} rows)")
                width = len(layer.w[0])
            elif layer.kind == "batchnorm" and len(layer.scale) != width:
                raise field_problem(f"layers[{i}].scale", f"{len(layer.scale)} codes but the "
                                     f"layer before gives {width} (allowed: {width})")
            elif layer.kind == "requant":
                before = self.layers[i - 1]
                acc = before.result.format
                if before.kind != "dense":
                    raise field_problem(f"layers[{i}]", f"a requant layer after a {before.kind}"
                                         " layer (allowed: right after a dense layer)")
                if not (acc.signed and acc.is_integer and acc.width <= 32):
                    raise field_problem(f"layers[{i - 1}].result.format", f"{acc} before a "
                                         "requant layer (allowed: the accumulator, a signed "
                                         "integer format of at most 32 bits)")
                if layer.n != width:
                    raise field_problem(f"layers[{i}].multiplier", f"{layer.n} codes but the "
                                         f"layer before gives {width} (allowed: {width})")
        return self

    # -- the layers in context ---------------------------------------------------------------

    @cached_property
    def inputs(self) -> tuple[Quant, ...]:
        """The type of the codes into each layer: ``input``, then each layer's ``result``."""
        return (self.input,) + tuple(x.result for x in self.layers[:-1])

    @property
    def out(self) -> Quant:
        """The type of the output codes ``y``."""
        return self.layers[-1].result

    @cached_property
    def stages(self) -> tuple[Stage, ...]:
        """The layers cut into stages: each Dense, softmax or GELU layer starts one."""
        groups: list[list[int]] = []
        for i, layer in enumerate(self.layers):
            if layer.kind in HEAD_KINDS:
                groups.append([i])
            else:
                groups[-1].append(i)
        out = []
        width = self.layers[0].n_in
        for g in groups:
            head = self.layers[g[0]]
            n_out = head.n_out if isinstance(head, DenseLayer) else width
            out.append(Stage(tuple(self.layers[i] for i in g), self.inputs[g[0]], width, n_out))
            width = n_out
        return tuple(out)

    @property
    def n_in(self) -> int:
        return self.layers[0].n_in

    @property
    def n_out(self) -> int:
        return self.stages[-1].n_out

    @property
    def dense_stages(self) -> list[Stage]:
        return [s for s in self.stages if s.kind == "dense"]

    # -- the hardware ------------------------------------------------------------------------

    @property
    def multipliers(self) -> int:
        """Multipliers of the Dense stages (the gelu unit's polynomial path adds two per
        element of its row when its input is wider than 10 bits; they are not counted)."""
        return sum(s.chunking[0] * s.n_out for s in self.dense_stages)

    def stage_cycles(self) -> list[int]:
        """Cycles from a stage taking a row to offering its result: ``C + 2`` for Dense, the
        unit's latency for softmax (one beat per row) and GELU."""
        return [s.chunking[1] + s.requant_stages + 2 if s.kind == "dense" else s.unit.latency
                for s in self.stages]

    @property
    def latency(self) -> int:
        """Cycles from a row taken to its result offered, with nothing ahead of it."""
        return sum(self.stage_cycles())

    def expected_cycles(self, rows: int) -> int:
        """Cycles from the first row offered to the last result taken, inputs always offered
        and outputs always ready: the stages' handshakes replayed cycle by cycle.

        Dense stage (``rtl._dense_stage``): ready when idle, or done and handing on; the result
        is offered ``C + 2`` cycles after a row is taken (``C + L + 2`` with a requant layer
        of ``L`` stages fused after it). gelu stage: a pipeline of ``latency``
        registers under one clock enable ``~out_valid | out_ready`` (ready = that enable).
        softmax stage: only last, with its output always ready, it takes every row at once and
        offers it ``latency`` cycles later (its passes never wait on each other for rows of
        one beat).
        """
        if rows <= 0:
            return 0
        kinds = [(s.kind, s.chunking[1] + s.requant_stages if s.kind == "dense"
                  else s.unit.latency) for s in self.stages]
        n = len(kinds)
        # dense: [run, done, cnt]; gelu: list of valid bits (last = out valid);
        # softmax: list of cycles at which rows are offered
        state = [[0, 0, 0] if k == "dense" else ([0] * d if k == "gelu" else [])
                 for k, d in kinds]
        offered = taken_out = 0
        t = 0
        while True:
            out_valid = []
            for (k, _d), st in zip(kinds, state, strict=True):
                if k == "dense":
                    out_valid.append(st[1])
                elif k == "gelu":
                    out_valid.append(st[-1])
                else:
                    out_valid.append(1 if st and st[0] <= t else 0)
            out_ready = [0] * n
            in_ready = [0] * n
            ready = 1
            for s in range(n - 1, -1, -1):
                out_ready[s] = ready
                k, d = kinds[s]
                st = state[s]
                if k == "dense":
                    in_ready[s] = int(not st[0] and (not st[1] or out_ready[s]))
                elif k == "gelu":
                    in_ready[s] = int(not st[-1] or out_ready[s])
                else:
                    in_ready[s] = 1
                ready = in_ready[s]
            in_valid = [int(offered < rows)] + out_valid[:-1]
            for s in range(n):
                k, d = kinds[s]
                st = state[s]
                take = in_valid[s] and in_ready[s]
                give = out_valid[s] and out_ready[s]
                if k == "dense":
                    run, done, cnt = st
                    if take:
                        st[:] = [1, 0, 0]
                    elif give:
                        st[1] = 0
                    if run:
                        if cnt < d:
                            st[2] = cnt + 1
                        else:
                            st[0], st[1] = 0, 1
                elif k == "gelu":
                    if in_ready[s]:  # the clock enable
                        st[:] = [int(in_valid[s])] + st[:-1]
                else:
                    if give:
                        st.pop(0)
                    if take:
                        st.append(t + d)
            if in_valid[0] and in_ready[0]:
                offered += 1
            if out_valid[-1]:
                taken_out += 1
                if taken_out == rows:
                    return t + 1
            t += 1

    def check_rtl(self) -> None:
        """Raise :class:`ConfigError` for what the RTL does not build (the golden model does)."""
        for stage in self.dense_stages:
            if stage.head.accum.overflow != "wrap":
                raise ConfigError(
                    f"{self.name}: layer {stage.head.name!r}: a saturating accumulator is "
                    "modelled but not built in RTL (allowed for --backend rtl: overflow wrap "
                    "in accum)")


def _check_unit_layer(where: str, kind: str, inp: Format, out: Format) -> None:
    """The formats a softmax/gelu layer's unit accepts (its input: the layer before)."""
    checks = ((softmax_in, inp, "input (the result of the layer before)"),
              (softmax_out, out, "result.format")) if kind == "softmax" else (
        (gelu_format, inp, "input (the result of the layer before)"),
        (gelu_format, out, "result.format"))
    for check, fmt, what in checks:
        try:
            check(fmt)
        except PydanticCustomError as err:
            raise field_problem(f"{where}", f"{kind} {what}: {err.context['problem']}") \
                from None
