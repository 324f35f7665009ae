"""The layers of a `network` unit: the ``layers`` entries of its config, and the one kind of
layer object everything uses (the hls4ml lowering builds them, the golden model and the RTL
read them).

A layer holds what its config entry holds: its types (hls4ml's ``ap_fixed`` types as
:class:`Quant`) and its weights as integer codes (tuples, validated against their types). The
type of its input is the result of the layer before (or the network's ``input``), and a
softmax or GELU layer's width is that of the row: :class:`~.params.NetworkParams` knows both
(its ``inputs`` and ``stages``). The codes as read-only NumPy arrays: ``w_codes``,
``b_codes``, ``scale_codes``.
"""

from __future__ import annotations

from functools import cached_property
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from ..gelu.params import GeluParams
from ..numerics import Format
from ..schema import FormatField, Identifier, field_problem
from ..softmax.params import SoftmaxParams

__all__ = ["Quant", "DenseLayer", "BatchNormLayer", "ReluLayer", "RequantLayer", "SoftmaxLayer",
           "GeluLayer", "Layer", "LAYER_MODELS", "HEAD_KINDS"]


class Quant(BaseModel):
    """An ``ap_fixed``/``ap_int`` type: the format of its codes and how a value is converted
    into it (``rounding`` when fraction bits are dropped, ``overflow`` when it is too big)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True,
                              arbitrary_types_allowed=True)

    format: FormatField = Field(description="The format of the codes.")
    rounding: Literal["trn", "rnd", "rnd_conv"] = Field("trn", description="Rounding.")
    overflow: Literal["wrap", "sat"] = Field("wrap", description="Overflow rule.")

    def __str__(self) -> str:
        return f"{self.format} ({self.rounding}, {self.overflow})"


def _int_tuple(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_int_tuple(v) for v in value)
    return value


IntVector = Annotated[tuple[int, ...], BeforeValidator(_int_tuple)]
IntMatrix = Annotated[tuple[tuple[int, ...], ...], BeforeValidator(_int_tuple)]


def _check_codes(field: str, values, q: Quant) -> None:
    fmt = q.format
    for i, v in enumerate(values if not values or isinstance(values[0], int)
                          else [x for row in values for x in row]):
        if not fmt.min_code <= v <= fmt.max_code:
            raise field_problem(field, f"code {v} (entry {i}) does not fit {fmt} (allowed: "
                                 f"{fmt.min_code}..{fmt.max_code})")


def _array(values) -> np.ndarray:
    out = np.array(values, dtype=np.int64)
    out.flags.writeable = False
    return out


class DenseLayer(BaseModel):
    """``y = result(accum(b) + sum_i accum(x_i * w_ij))`` (hls4ml's Dense, latency strategy,
    ``nnet_dense_latency.h``). ``w`` [n_in][n_out] and ``b`` [n_out] are integer codes of
    ``weight`` and ``bias``."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    kind: Literal["dense"] = "dense"
    name: Identifier
    weight: Quant
    bias: Quant
    accum: Quant
    result: Quant
    reuse_factor: int = Field(1, ge=1, le=4096, description="Uses of each multiplier per row.")
    w: IntMatrix = Field(min_length=1)
    b: IntVector = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> DenseLayer:
        widths = {len(row) for row in self.w}
        if len(widths) != 1:
            raise field_problem("w", "rows of different lengths (allowed: n_in rows of "
                                 "n_out codes)")
        if len(self.b) != len(self.w[0]):
            raise field_problem("b", f"{len(self.b)} codes but w has {len(self.w[0])} "
                                 f"outputs (allowed: {len(self.w[0])} codes)")
        _check_codes("w", self.w, self.weight)
        _check_codes("b", self.b, self.bias)
        return self

    @property
    def n_in(self) -> int:
        return len(self.w)

    @property
    def n_out(self) -> int:
        return len(self.w[0])

    @cached_property
    def w_codes(self) -> np.ndarray:
        """``w`` as a read-only int64 array [n_in, n_out]."""
        return _array(self.w)

    @cached_property
    def b_codes(self) -> np.ndarray:
        """``b`` as a read-only int64 array [n_out]."""
        return _array(self.b)


class BatchNormLayer(BaseModel):
    """``y = result(x * scale + b)`` per feature, the product and the sum exact
    (``nnet_batchnorm.h``): hls4ml's BatchNormalization, and the ApplyAlpha it makes of a lone
    bias or scale. ``scale`` and ``b`` are codes of ``scale_type`` and ``bias``."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    kind: Literal["batchnorm"] = "batchnorm"
    name: Identifier
    scale_type: Quant
    bias: Quant
    result: Quant
    scale: IntVector = Field(min_length=1)
    b: IntVector = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> BatchNormLayer:
        if len(self.b) != len(self.scale):
            raise field_problem("b", f"{len(self.b)} codes but scale has {len(self.scale)} "
                                 f"(allowed: {len(self.scale)} codes)")
        _check_codes("scale", self.scale, self.scale_type)
        _check_codes("b", self.b, self.bias)
        return self

    @cached_property
    def scale_codes(self) -> np.ndarray:
        """``scale`` as a read-only int64 array [n]."""
        return _array(self.scale)

    @cached_property
    def b_codes(self) -> np.ndarray:
        """``b`` as a read-only int64 array [n]."""
        return _array(self.b)


class ReluLayer(BaseModel):
    """``y = result(max(x, 0))``."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    kind: Literal["relu"] = "relu"
    name: Identifier
    result: Quant


class RequantLayer(BaseModel):
    """``y = clamp(zero_point + MulByQuantizedMultiplier(x + b, multiplier, shift), act_min,
    act_max)`` per output (:func:`generators.numerics.requantize_fixed`, the requant unit's
    golden model; its ``RequantLane`` in the RTL): real scales on integer accumulators, as a
    QONNX model has them (``generators.qonnx``). Only right after a dense layer whose result
    is its accumulator (a signed integer format of at most 32 bits); ``result`` names the
    output codes' format (its ``rounding``/``overflow`` are not used: the layer's own
    ``rounding`` and the clamp are)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    kind: Literal["requant"] = "requant"
    name: Identifier
    result: Quant
    rounding: Literal["double", "single"] = Field(
        "double", description="The fixed-point multiplier's rounding (requantize_fixed).")
    b: IntVector = Field(min_length=1, description="int32 bias per output.")
    multiplier: IntVector = Field(min_length=1, description="Per output, 0..2**31-1.")
    shift: IntVector = Field(min_length=1, description="Per output, -31..30 (left > 0).")
    zero_point: int = 0
    act_min: int | None = None
    act_max: int | None = None

    @model_validator(mode="after")
    def _check(self) -> RequantLayer:
        from ..numerics import SHIFT_RANGE
        from ..requant.params import check_out

        n = len(self.multiplier)
        for key in ("b", "shift"):
            if len(getattr(self, key)) != n:
                raise field_problem(key, f"{len(getattr(self, key))} codes but multiplier has "
                                    f"{n} (allowed: {n}, one per output)")
        try:
            check_out(self.result.format)
        except Exception as err:
            raise field_problem("result.format", str(getattr(err, "context", {}).get(
                "problem", err))) from None
        ranges = {"multiplier": (0, (1 << 31) - 1), "shift": SHIFT_RANGE,
                  "b": (-(1 << 31), (1 << 31) - 1)}
        for key, (lo, hi) in ranges.items():
            for i, v in enumerate(getattr(self, key)):
                if not lo <= v <= hi:
                    raise field_problem(key, f"{v} (entry {i}) (allowed: {lo}..{hi})")
        f = self.result.format
        for key in ("zero_point", "act_min", "act_max"):
            v = getattr(self, key)
            if v is not None and not f.min_code <= v <= f.max_code:
                raise field_problem(key, f"{v} (allowed: {f.min_code}..{f.max_code}, codes of "
                                    f"{f})")
        if self.lo > self.hi:
            raise field_problem("act_min", f"{self.lo} > act_max {self.hi} (allowed: "
                                "act_min <= act_max)")
        return self

    @property
    def n(self) -> int:
        return len(self.multiplier)

    @property
    def lo(self) -> int:
        return self.result.format.min_code if self.act_min is None else self.act_min

    @property
    def hi(self) -> int:
        return self.result.format.max_code if self.act_max is None else self.act_max


class SoftmaxLayer(BaseModel):
    """Row-wise softmax computed by the softmax unit (:mod:`generators.softmax`, its integer
    specification; one row per beat): its input is the result of the layer before (2..12
    bits), ``result`` a probability format (``ufixed<W,I>``, ``I <= 1``; the unit rounds to
    nearest and saturates, ``rounding``/``overflow`` are not used). Only as the last layer.
    Not hls4ml's table softmax: the outputs differ from ``predict()`` (docs/hls.md)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    kind: Literal["softmax"] = "softmax"
    name: Identifier
    result: Quant

    def unit_params(self, inp: Format, n: int) -> SoftmaxParams:
        """The softmax unit that computes this layer on rows of ``n`` codes in ``inp``: one row
        per beat."""
        return SoftmaxParams(length=int(n), lanes=int(n), inp=inp, out=self.result.format,
                             name=self.name)


class GeluLayer(BaseModel):
    """Element-wise exact GELU computed by the gelu unit (:mod:`generators.gelu`): from the
    result of the layer before (signed, 2..16 bits) to ``result`` (signed, 2..16 bits; rounded
    to nearest, saturated by the unit's specification). hls4ml has no GELU layer of its own."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    kind: Literal["gelu"] = "gelu"
    name: Identifier
    result: Quant

    def unit_params(self, inp: Format, n: int) -> GeluParams:
        """The gelu unit that computes this layer on rows of ``n`` codes in ``inp``: one row
        per beat."""
        return GeluParams(inp=inp, out=self.result.format, lanes=int(n), name=self.name)


#: One entry of ``layers``, picked by its ``kind``.
Layer = Annotated[
    DenseLayer | BatchNormLayer | ReluLayer | RequantLayer | SoftmaxLayer | GeluLayer,
    Field(discriminator="kind"),
]
LAYER_MODELS = {"dense": DenseLayer, "batchnorm": BatchNormLayer, "relu": ReluLayer,
                "requant": RequantLayer, "softmax": SoftmaxLayer, "gelu": GeluLayer}
#: The kinds that start a stage of their own (ReLU, BatchNorm and requant are fused after one).
HEAD_KINDS = ("dense", "softmax", "gelu")
