"""The ``unit: network`` config: a network lowered from hls4ml (``tensorfab hls``), its layers
with hls4ml's ``ap_fixed`` types and its weights as integer codes."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from ..gelu.params import check_format as gelu_format
from ..numerics import Format
from ..schema import FormatField, Identifier, UnitBase, field_problem, tuple_of
from ..softmax.params import check_in as softmax_in
from ..softmax.params import check_out as softmax_out

__all__ = ["NetworkConfig", "QuantConfig", "LayerConfig", "LAYER_MODELS"]




class QuantConfig(BaseModel):
    """An ``ap_fixed``-style type: the format of the codes, and how a value is converted into
    it (``rounding`` when fraction bits are dropped, ``overflow`` when out of range)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True,
                              arbitrary_types_allowed=True)

    format: FormatField = Field(description="The format of the codes.")
    rounding: Literal["trn", "rnd", "rnd_conv"] = Field("trn", description="Rounding.")
    overflow: Literal["wrap", "sat"] = Field("wrap", description="Overflow rule.")


def _int_tuple(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_int_tuple(v) for v in value)
    return value


IntVector = Annotated[tuple[int, ...], BeforeValidator(_int_tuple)]
IntMatrix = Annotated[tuple[tuple[int, ...], ...], BeforeValidator(_int_tuple)]


def _check_codes(field: str, values, q: QuantConfig) -> None:
    fmt = q.format
    for i, v in enumerate(values if not values or isinstance(values[0], int)
                          else [x for row in values for x in row]):
        if not fmt.min_code <= v <= fmt.max_code:
            raise field_problem(field, f"code {v} (entry {i}) does not fit {fmt} (allowed: "
                                 f"{fmt.min_code}..{fmt.max_code})")


class DenseLayerConfig(BaseModel):
    """``y = result(accum(b) + sum_i accum(x_i * w_ij))`` (hls4ml's Dense, latency strategy).
    ``w`` [n_in][n_out] and ``b`` [n_out] are integer codes of ``weight`` and ``bias``."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    kind: Literal["dense"]
    name: Identifier
    weight: QuantConfig
    bias: QuantConfig
    accum: QuantConfig
    result: QuantConfig
    reuse_factor: int = Field(1, ge=1, le=4096, description="Uses of each multiplier per row.")
    w: IntMatrix = Field(min_length=1)
    b: IntVector = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> DenseLayerConfig:
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


class BatchNormLayerConfig(BaseModel):
    """``y = result(x * scale + b)`` per feature, exact inside (hls4ml's BatchNormalization and
    ApplyAlpha)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    kind: Literal["batchnorm"]
    name: Identifier
    scale_type: QuantConfig
    bias: QuantConfig
    result: QuantConfig
    scale: IntVector = Field(min_length=1)
    b: IntVector = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> BatchNormLayerConfig:
        if len(self.b) != len(self.scale):
            raise field_problem("b", f"{len(self.b)} codes but scale has {len(self.scale)} "
                                 f"(allowed: {len(self.scale)} codes)")
        _check_codes("scale", self.scale, self.scale_type)
        _check_codes("b", self.b, self.bias)
        return self


class ReluLayerConfig(BaseModel):
    """``y = result(max(x, 0))``."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    kind: Literal["relu"]
    name: Identifier
    result: QuantConfig


class SoftmaxLayerConfig(BaseModel):
    """Row-wise softmax computed by the softmax unit (one row per beat): its input is the
    result of the layer before (2..12 bits), ``result`` a probability format (``ufixed<W,I>``,
    ``I <= 1``; the unit rounds to nearest and saturates, ``rounding``/``overflow`` are not
    used). Only as the last layer."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    kind: Literal["softmax"]
    name: Identifier
    result: QuantConfig


class GeluLayerConfig(BaseModel):
    """Element-wise exact GELU computed by the gelu unit: from the result of the layer before
    (signed, 2..16 bits) to ``result`` (signed, 2..16 bits; rounded to nearest, saturated by
    the unit's specification)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    kind: Literal["gelu"]
    name: Identifier
    result: QuantConfig


LayerConfig = Annotated[
    DenseLayerConfig | BatchNormLayerConfig | ReluLayerConfig | SoftmaxLayerConfig
    | GeluLayerConfig, Field(discriminator="kind")
]
LAYER_MODELS = {"dense": DenseLayerConfig, "batchnorm": BatchNormLayerConfig,
                "relu": ReluLayerConfig, "softmax": SoftmaxLayerConfig,
                "gelu": GeluLayerConfig}


class NetworkConfig(UnitBase):
    """A network lowered from hls4ml (``tensorfab hls``): ``y = layers(x)`` row by row, each
    layer with hls4ml's ``ap_fixed`` types; weights are integer codes in the file."""

    unit: Literal["network"] = Field("network", description="The unit family: `network`.")
    input: QuantConfig = Field(description="The type of the input codes `x`.")
    layers: Annotated[tuple[LayerConfig, ...], tuple_of("layers")] = Field(
        min_length=1, description="The layers in order; the first is a dense layer.")
    source: str = Field("", description="What the network was lowered from (informative).")

    @model_validator(mode="after")
    def _check(self) -> NetworkConfig:
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
        return self


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
