"""Config files: YAML -> typed, frozen, validated unit configs.

A config file holds one YAML document, a mapping of the keys in DESIGN.md ("Contracts"). It is
read with PyYAML's safe loader and validated by pydantic v2 models that are frozen (a config is
a value: hash it, compare it, never mutate it) and forbid unknown keys. The ``unit`` key selects
the model (``mac_array``, ``sparse_chain``, ``softmax``, ``gelu``); :data:`UnitConfig` is the
discriminated union other families (board designs) will join.

Every problem with a file is raised as :class:`~generators.errors.ConfigError` whose message
is one line, ``FILE: field.path: problem (allowed: ...)``, built from the first validation
error (unknown keys are reported before anything else: a misspelt key otherwise shows up as a
confusing "missing required key" on its correct spelling).

Example
-------
>>> cfg = load_config("configs/mac8x8.yaml")          # doctest: +SKIP
>>> cfg.rows, str(cfg.acc), cfg.internal_acc_width      # doctest: +SKIP
(8, 'int32', 32)
"""

from __future__ import annotations

import difflib
import os
from typing import Annotated, Any, Literal, get_args

import yaml
from annotated_types import Ge, Gt, Le, Lt
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

from .errors import ConfigError
from .numerics import Format

__all__ = [
    "MacArrayConfig",
    "NetworkConfig",
    "SparseChainConfig",
    "SoftmaxConfig",
    "GeluConfig",
    "UnitConfig",
    "BoardConfig",
    "LinkConfig",
    "BOARDS",
    "UNIT_MODELS",
    "PLANNED_UNITS",
    "load_config",
    "parse_config",
    "config_to_dict",
    "replace_config",
]

#: Every unit name of the design; those without a model in :data:`UNIT_MODELS` are refused
#: with "not available in this version".
PLANNED_UNITS = ("mac_array", "sparse_chain", "softmax", "gelu")

OPERAND_WIDTHS = (2, 16)
MAX_ACC_WIDTH = 64
MAX_NAME_LENGTH = 64


# -- errors raised inside validation ---------------------------------------------------------
# Our own validators raise these two error types; their text is already in the final wording,
# so the translation below passes it through instead of rephrasing pydantic's.


def _problem(problem: str) -> PydanticCustomError:
    """An error about the value at the error's own location."""
    return PydanticCustomError("tensorfab", "{problem}", {"problem": problem})


def _field_problem(field: str, problem: str) -> PydanticCustomError:
    """An error from a cross-field check (raised on the model), naming the field it is about."""
    return PydanticCustomError(
        "tensorfab_field", "{field}: {problem}", {"field": field, "problem": problem}
    )


def _show(value: Any) -> str:
    """A value as the user wrote it in YAML, short and on one line."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, str) and len(value) > 36:
        return repr(value[:36] + "...")
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# -- field types -----------------------------------------------------------------------------


def _to_format(value: Any) -> Format:
    if isinstance(value, Format):
        return value
    if not isinstance(value, str):
        raise _problem(f"expected a format string such as int8 or fixed<8,3>, got {_show(value)}")
    try:
        return Format.parse(value)
    except ValueError as err:
        raise _problem(str(err).splitlines()[0] if str(err) else f"bad format {value!r}") from None


#: A number format, written as its canonical string (``int8``, ``fixed<8,3>``) in YAML.
FormatField = Annotated[
    Format,
    BeforeValidator(_to_format),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "examples": ["int8", "uint4", "fixed<8,3>"]}),
]


def _operand_width(fmt: Format) -> Format:
    lo, hi = OPERAND_WIDTHS
    if fmt.width > hi:
        raise _problem(f"{fmt} is too wide for an operand (allowed: {lo}..{hi} bits)")
    if fmt.width < lo:
        raise _problem(f"{fmt} is too narrow for an operand (allowed: {lo}..{hi} bits)")
    return fmt


def _acc_width(fmt: Format) -> Format:
    if fmt.width > MAX_ACC_WIDTH:
        raise _problem(
            f"{fmt} is too wide for an accumulator (allowed: up to {MAX_ACC_WIDTH} bits)"
        )
    return fmt


OperandFormat = Annotated[FormatField, AfterValidator(_operand_width)]
AccFormat = Annotated[FormatField, AfterValidator(_acc_width)]


#: Verilog-2005 keywords (plus common SystemVerilog ones): tools escape them as ``\\name``.
VERILOG_KEYWORDS = frozenset("""
always and assign automatic begin buf bufif0 bufif1 case casex casez cell cmos config deassign
default defparam design disable edge else end endcase endconfig endfunction endgenerate
endmodule endprimitive endspecify endtable endtask event for force forever fork function
generate genvar highz0 highz1 if ifnone incdir include initial inout input instance integer
join large liblist library localparam macromodule medium module nand negedge nmos nor
noshowcancelled not notif0 notif1 or output parameter pmos posedge primitive pull0 pull1
pulldown pullup pulsestyle_ondetect pulsestyle_onevent rcmos real realtime reg release repeat
rnmos rpmos rtran rtranif0 rtranif1 scalared showcancelled signed small specify specparam
strong0 strong1 supply0 supply1 table task time tran tranif0 tranif1 tri tri0 tri1 triand
trior trireg unsigned use uwire vectored wait wand weak0 weak1 while wire wor xnor xor
bit byte logic int shortint longint class interface package program typedef enum struct
union const string void return break continue import export
""".split())


def _identifier(name: str) -> str:
    ok = (
        name[:1].isascii()
        and (name[:1].isalpha() or name[:1] == "_")
        and all(c.isascii() and (c.isalnum() or c == "_") for c in name)
    )
    if not ok:
        raise _problem(
            f"{_show(name)} is not a Verilog identifier (allowed: letters, digits "
            "and _, not starting with a digit)"
        )
    if name in VERILOG_KEYWORDS:
        raise _problem(f"{_show(name)} is a Verilog keyword (allowed: another name, e.g. "
                       f"{name}_0)")
    if len(name) > MAX_NAME_LENGTH:
        raise _problem(
            f"{_show(name)} is {len(name)} characters long (allowed: at most {MAX_NAME_LENGTH})"
        )
    return name


Identifier = Annotated[
    str,
    AfterValidator(_identifier),
    WithJsonSchema(
        {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_]*$", "maxLength": MAX_NAME_LENGTH}
    ),
]


# -- models ----------------------------------------------------------------------------------


class _UnitBase(BaseModel):
    """Keys every unit config has."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", strict=True, arbitrary_types_allowed=True
    )

    name: Identifier = Field(
        description="Names the emitted top module and its files (`<name>.v`, `<name>.json`): "
        "a Verilog identifier of at most 64 characters."
    )


class MacArrayConfig(_UnitBase):
    """A ``rows x cols`` systolic MAC array computing ``c = a @ b`` (DESIGN.md, ``mac_array``).

    The exact integer product of an ``a`` code and a ``b`` code is summed over K, then the
    accumulator's ``overflow`` rule is applied once to the exact sum.

    Cross-field rules (checked on load): ``acc`` is signed when either operand is; ``acc``
    has exactly ``a.frac_bits + b.frac_bits`` fraction bits; ``acc`` is at least as wide as
    the exact product (one more bit when both operands are unsigned and ``acc`` is signed).
    ``tile_m`` is accepted with ``output_stationary`` and ignored there.
    """

    unit: Literal["mac_array"] = Field(description="The unit family: `mac_array`.")
    rows: int = Field(ge=1, le=64, description="Processing elements along M (rows of `c`).")
    cols: int = Field(ge=1, le=64, description="Processing elements along N (columns of `c`).")
    a: OperandFormat = Field(description="Format of the left operand `a` [M,K] (2..16 bits).")
    b: OperandFormat = Field(description="Format of the right operand `b` [K,N] (2..16 bits).")
    acc: AccFormat = Field(
        description="Format of the accumulator and of the result `c` (up to 64 bits)."
    )
    overflow: Literal["wrap", "sat"] = Field(
        default="wrap",
        description="The accumulator's overflow rule, applied once to the exact sum: `wrap` "
        "(two's complement modulo 2**acc.width) or `sat` (clamp to acc's range).",
    )
    dataflow: Literal["output_stationary", "weight_stationary"] = Field(
        default="output_stationary",
        description="`output_stationary`: each PE keeps one element of `c`; "
        "`weight_stationary`: each PE keeps one element of `b`.",
    )
    tile_m: int = Field(
        default=64,
        ge=1,
        le=4096,
        description="weight_stationary only (ignored otherwise): rows of `a` streamed per "
        "weight load, i.e. the depth of each column's accumulator buffer.",
    )
    max_k: int = Field(
        default=65536,
        ge=1,
        le=2**24,
        description="The longest K for which `overflow: sat` is exact: the array keeps "
        "ceil(log2(max_k)) guard bits above the product (see internal_acc_width).",
    )

    @model_validator(mode="after")
    def _check_acc(self) -> MacArrayConfig:
        _check_acc_for(self.a, self.b, self.acc)
        return self

    # -- derived, read-only ------------------------------------------------------------------

    @property
    def product_format(self) -> Format:
        """The format of the exact product of an ``a`` code and a ``b`` code.

        ``a.width + b.width`` bits hold every product in any signed/unsigned mix (int8 x uint8
        lies in -32640..32385); it is signed when either operand is, and its fraction bits are
        the sum of the operands'.
        """
        from .mac_array.params import product_format

        return product_format(self.a, self.b)

    def _product_width_in_acc(self) -> int:
        # An unsigned product in a signed accumulator needs a sign bit on top.
        prod = self.product_format
        return prod.width + (1 if self.acc.signed and not prod.signed else 0)

    @property
    def internal_acc_width(self) -> int:
        """Width of the accumulators inside the array.

        ``wrap``: ``acc.width`` (two's-complement sums are exact modulo 2**width).
        ``sat``: the exact sum must be known before it is clamped, so
        ``max(acc.width, product_width + ceil(log2(max_k)))``, where ``product_width`` is the
        product's width in the accumulator's signedness (one more bit for an unsigned product
        in a signed accumulator).
        """
        from .mac_array.params import MacArrayParams

        return MacArrayParams.from_config(self).internal_width

    @property
    def macs_per_cycle(self) -> int:
        """Multiply-accumulates the array completes per cycle when fully busy."""
        return self.rows * self.cols


def _check_acc_for(a: Format, b: Format, acc: Format) -> None:
    """The accumulator rules of every MAC-type unit (raised as an error on field ``acc``):
    signed when the product is, the product's fraction bits, at least the product's width."""
    from .mac_array.params import product_format

    prod = product_format(a, b)
    operands = f"{a} x {b}"
    need = prod.width + (1 if acc.signed and not prod.signed else 0)
    if prod.signed and not acc.signed:
        raise _field_problem(
            "acc",
            f"{acc} is unsigned but the product of {operands} is signed "
            f"(allowed: a signed format such as {_fmt_str(acc.width, acc.int_bits, True)})",
        )
    if acc.frac_bits != prod.frac_bits:
        width = max(acc.width, need)
        example = _fmt_str(width, width - prod.frac_bits, acc.signed)
        raise _field_problem(
            "acc",
            f"{acc} has {acc.frac_bits} fraction bits but the product of "
            f"{operands} has {prod.frac_bits} (allowed: {prod.frac_bits} fraction "
            f"bits, e.g. {example})",
        )
    if acc.width < need:
        how = "" if need == prod.width else " as a signed format"
        raise _field_problem(
            "acc",
            f"{acc} is narrower than the product of {operands} "
            f"({need} bits{how}) (allowed: at least {need} bits)",
        )


def _mode_text(value: Any) -> str:
    """One ``N:M`` pattern of ``modes``, in canonical spelling."""
    from .sparse_chain.params import Mode

    if isinstance(value, int) and not isinstance(value, bool):
        # YAML 1.1 reads an unquoted 2:4 as the base-60 number 124
        raise _problem(
            f"{value} is not an N:M pattern (allowed: quoted strings such as '2:4'; "
            "YAML reads an unquoted 2:4 as a number)"
        )
    if not isinstance(value, str):
        raise _problem(f"expected an N:M string such as '2:4', got {_show(value)}")
    try:
        return str(Mode.parse(value))
    except ValueError:
        raise _problem(
            f"{_show(value)} is not an N:M pattern (allowed: strings such as '2:4')"
        ) from None


def _mode_list(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(value)
    if not isinstance(value, tuple):
        raise _problem(f"expected a list of N:M patterns such as ['2:4', '4:4'], "
                       f"got {_show(value)}")
    return value


ModeText = Annotated[str, BeforeValidator(_mode_text)]


class SparseChainConfig(_UnitBase):
    """A chain of ``length`` MAC stages computing ``y = w @ x`` from N:M-sparse ``w``
    (DESIGN.md, ``sparse_chain``), the pattern chosen at run time among ``modes``.

    Cross-field rules (checked on load): every mode is ``N:m`` with ``1 <= N <= m``, listed
    once, with ``N <= length`` (a pass covers ``length // N`` whole groups); ``acc`` follows the
    MAC array's rules for the product ``w x x``.
    """

    unit: Literal["sparse_chain"] = Field(description="The unit family: `sparse_chain`.")
    length: int = Field(ge=1, le=256, description="MAC stages (hard multipliers) in the chain.")
    m: Literal[2, 4, 8, 16] = Field(
        description="Group size M: weights are N:M sparse along K in groups of M consecutive "
        "positions; indices are log2(M) bits."
    )
    modes: Annotated[tuple[ModeText, ...], BeforeValidator(_mode_list)] = Field(
        description="N:M patterns selectable at run time (`tensorfab run --mode`), e.g. "
        "['2:4', '1:4', '4:4']; the first is the default; the dense M:M is the baseline.",
        json_schema_extra={"items": {"type": "string", "pattern": r"^[0-9]+:[0-9]+$"}},
    )
    w: OperandFormat = Field(description="Format of the weights `w` [O,K] (2..16 bits).")
    x: OperandFormat = Field(description="Format of the activations `x` [K,B] (2..16 bits).")
    acc: AccFormat = Field(
        description="Format of the accumulator and of the result `y` (up to 64 bits)."
    )
    overflow: Literal["wrap", "sat"] = Field(
        default="wrap",
        description="The accumulator's overflow rule, applied once to the exact sum: `wrap` "
        "or `sat`, as for mac_array.",
    )
    max_k: int = Field(
        default=65536,
        ge=1,
        le=2**24,
        description="The longest K for which `overflow: sat` is exact: the chain keeps "
        "ceil(log2(max_k)) guard bits above the product.",
    )

    @model_validator(mode="after")
    def _check(self) -> SparseChainConfig:
        from .sparse_chain.params import Mode

        if not self.modes:
            raise _field_problem("modes", "empty list (allowed: at least one N:M pattern "
                                 "such as '2:4')")
        seen: set = set()
        for i, text in enumerate(self.modes):
            mode = Mode.parse(text)
            where = f"modes[{i}]"
            if mode.m != self.m:
                raise _field_problem(where, f"'{mode}' has M = {mode.m} but the chain's m is "
                                     f"{self.m} (allowed: N:{self.m} with 1 <= N <= {self.m})")
            if not 1 <= mode.n <= self.m:
                raise _field_problem(where, f"'{mode}' has N = {mode.n} (allowed: N:{self.m} "
                                     f"with 1 <= N <= {self.m})")
            if mode.n > self.length:
                raise _field_problem(where, f"'{mode}' needs at least {mode.n} stages but "
                                     f"length is {self.length} (allowed: N <= length)")
            if text in seen:
                raise _field_problem(where, f"'{mode}' is listed twice (allowed: each "
                                     "pattern once)")
            seen.add(text)
        _check_acc_for(self.w, self.x, self.acc)
        return self

    @property
    def product_format(self) -> Format:
        """The format of the exact product of a ``w`` code and an ``x`` code."""
        from .mac_array.params import product_format

        return product_format(self.w, self.x)

    @property
    def internal_acc_width(self) -> int:
        """Width of the partial sums and the accumulator inside the chain (the MAC array's
        rule)."""
        from .sparse_chain.params import SparseChainParams

        return SparseChainParams.from_config(self).internal_width

    @property
    def macs_per_cycle(self) -> int:
        """Hard multiply-accumulates per cycle when the chain is busy."""
        return self.length


SOFTMAX_IN_WIDTHS = (2, 12)
SOFTMAX_OUT_WIDTHS = (2, 16)
GELU_WIDTHS = (2, 16)


def _softmax_in(fmt: Format) -> Format:
    lo, hi = SOFTMAX_IN_WIDTHS
    if not lo <= fmt.width <= hi:
        raise _problem(f"{fmt} is {fmt.width} bits (allowed: {lo}..{hi} bits: the exp table "
                       f"has up to 2**width entries)")
    return fmt


def _softmax_out(fmt: Format) -> Format:
    lo, hi = SOFTMAX_OUT_WIDTHS
    if fmt.signed or not lo <= fmt.width <= hi or fmt.int_bits > 1 or fmt.frac_bits < 1:
        raise _problem(f"{fmt} is not a probability format (allowed: ufixed<W,I> with "
                       f"{lo} <= W <= {hi} and I <= 1, e.g. ufixed<8,0>)")
    return fmt


def _gelu_format(fmt: Format) -> Format:
    lo, hi = GELU_WIDTHS
    if not fmt.signed or not lo <= fmt.width <= hi:
        raise _problem(f"{fmt} is not allowed for gelu (allowed: signed fixed<W,I> or intW "
                       f"with {lo} <= W <= {hi})")
    return fmt


class SoftmaxConfig(_UnitBase):
    """Row-wise softmax over rows of 1..``length`` elements, ``lanes`` per cycle (DESIGN.md,
    ``softmax``): ``x [R, n]`` in ``in`` -> ``y [R, n]`` probabilities in ``out``, exact by the
    integer specification of :mod:`generators.softmax.params`.

    Cross-field rule (checked on load): ``lanes <= length``.
    """

    model_config = ConfigDict(
        frozen=True, extra="forbid", strict=True, arbitrary_types_allowed=True,
        populate_by_name=False, serialize_by_alias=True,
    )

    unit: Literal["softmax"] = Field(description="The unit family: `softmax`.")
    length: int = Field(ge=1, le=4096, description="The longest row (elements).")
    lanes: int = Field(default=1, ge=1, le=64,
                       description="Elements per stream beat and per cycle (sustained).")
    in_: Annotated[FormatField, AfterValidator(_softmax_in)] = Field(
        alias="in", description="Input format (logits), fixed<W,I>/intW or unsigned, 2..12 bits."
    )
    out: Annotated[FormatField, AfterValidator(_softmax_out)] = Field(
        description="Output format (probabilities): ufixed<W,I>, 2..16 bits, I <= 1."
    )

    @model_validator(mode="after")
    def _check(self) -> SoftmaxConfig:
        if self.lanes > self.length:
            raise _field_problem("lanes", f"{self.lanes} lanes exceed length {self.length} "
                                 f"(allowed: 1..{self.length})")
        return self


class GeluConfig(_UnitBase):
    """Element-wise exact GELU (DESIGN.md, ``gelu``): ``x [...]`` in ``in`` -> ``y [...]`` in
    ``out``; a correctly rounded table for inputs up to 10 bits, a piecewise quadratic beyond
    (:mod:`generators.gelu.params`)."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", strict=True, arbitrary_types_allowed=True,
        populate_by_name=False, serialize_by_alias=True,
    )

    unit: Literal["gelu"] = Field(description="The unit family: `gelu`.")
    in_: Annotated[FormatField, AfterValidator(_gelu_format)] = Field(
        alias="in", description="Input format: signed fixed<W,I> or intW, 2..16 bits."
    )
    out: Annotated[FormatField, AfterValidator(_gelu_format)] = Field(
        description="Output format: signed fixed<W,I> or intW, 2..16 bits (saturating)."
    )
    lanes: int = Field(default=1, ge=1, le=64,
                       description="Elements per stream beat and per cycle (sustained).")


def _fmt_str(width: int, int_bits: int, signed: bool) -> str:
    """Canonical text of a format, for suggestions in messages."""
    try:
        return str(Format(width=width, int_bits=int_bits, signed=signed))
    except (TypeError, ValueError):
        return f"{'' if signed else 'u'}fixed<{width},{int_bits}>"


# -- lowered networks (the HLS flow) ---------------------------------------------------------


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
            raise _field_problem(field, f"code {v} (entry {i}) does not fit {fmt} (allowed: "
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
            raise _field_problem("w", "rows of different lengths (allowed: n_in rows of "
                                 "n_out codes)")
        if len(self.b) != len(self.w[0]):
            raise _field_problem("b", f"{len(self.b)} codes but w has {len(self.w[0])} "
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
            raise _field_problem("b", f"{len(self.b)} codes but scale has {len(self.scale)} "
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


def _layer_list(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(value)
    return value


LayerConfig = Annotated[
    DenseLayerConfig | BatchNormLayerConfig | ReluLayerConfig | SoftmaxLayerConfig
    | GeluLayerConfig, Field(discriminator="kind")
]
LAYER_MODELS = {"dense": DenseLayerConfig, "batchnorm": BatchNormLayerConfig,
                "relu": ReluLayerConfig, "softmax": SoftmaxLayerConfig,
                "gelu": GeluLayerConfig}


class NetworkConfig(_UnitBase):
    """A network lowered from hls4ml (``tensorfab hls``): ``y = layers(x)`` row by row, each
    layer with hls4ml's ``ap_fixed`` types; weights are integer codes in the file."""

    unit: Literal["network"] = Field(description="The unit family: `network`.")
    input: QuantConfig = Field(description="The type of the input codes `x`.")
    layers: Annotated[tuple[LayerConfig, ...], BeforeValidator(_layer_list)] = Field(
        min_length=1, description="The layers in order; the first is a dense layer.")
    source: str = Field("", description="What the network was lowered from (informative).")

    @model_validator(mode="after")
    def _check(self) -> NetworkConfig:
        if self.layers[0].kind != "dense":
            raise _field_problem("layers[0]", f"the first layer is {self.layers[0].kind} "
                                 "(allowed: a dense layer first)")
        width = None
        prev = self.input.format
        for i, layer in enumerate(self.layers):
            if layer.kind == "softmax" and i != len(self.layers) - 1:
                raise _field_problem(f"layers[{i}]", "a softmax before other layers (allowed: "
                                     "softmax as the last layer)")
            if layer.kind in ("softmax", "gelu"):
                _check_unit_layer(f"layers[{i}]", layer.kind, prev, layer.result.format)
            prev = layer.result.format
            if layer.kind == "dense":
                n_in = len(layer.w)
                if width is not None and n_in != width:
                    raise _field_problem(f"layers[{i}].w", f"{n_in} inputs but the layer "
                                         f"before gives {width} (allowed: {width} rows)")
                width = len(layer.w[0])
            elif layer.kind == "batchnorm" and len(layer.scale) != width:
                raise _field_problem(f"layers[{i}].scale", f"{len(layer.scale)} codes but the "
                                     f"layer before gives {width} (allowed: {width})")
        return self


def _check_unit_layer(where: str, kind: str, inp: Format, out: Format) -> None:
    """The formats a softmax/gelu layer's unit accepts (its input: the layer before)."""
    checks = ((_softmax_in, inp, "input (the result of the layer before)"),
              (_softmax_out, out, "result.format")) if kind == "softmax" else (
        (_gelu_format, inp, "input (the result of the layer before)"),
        (_gelu_format, out, "result.format"))
    for check, fmt, what in checks:
        try:
            check(fmt)
        except PydanticCustomError as err:
            raise _field_problem(f"{where}", f"{kind} {what}: {err.context['problem']}") \
                from None


#: The config models by ``unit``.
UNIT_MODELS: dict[str, type[BaseModel]] = {
    "mac_array": MacArrayConfig,
    "sparse_chain": SparseChainConfig,
    "softmax": SoftmaxConfig,
    "gelu": GeluConfig,
    "network": NetworkConfig,
}

#: Any unit config, selected by its ``unit`` key. Grows as families are added.
UnitConfig = Annotated[
    MacArrayConfig | SparseChainConfig | SoftmaxConfig | GeluConfig | NetworkConfig,
    Field(discriminator="unit"),
]

_ADAPTER: TypeAdapter = TypeAdapter(UnitConfig)


# -- board designs ---------------------------------------------------------------------------

#: Boards a design can name (see boards/): the open-flow ones build bitstreams here, the
#: vendor-flow ones get RTL and constraints only.
BOARDS = ("ulx3s", "icebreaker", "pynq_z2", "alveo_u280")


class LinkConfig(BaseModel):
    """The host link of a board design."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    uart: int = Field(
        3_000_000, ge=9600, le=12_000_000,
        description="UART line rate in baud (8N1).",
    )


def _unique_unit_names(units: tuple) -> tuple:
    seen = set()
    for u in units:
        if u.name in seen:
            raise _problem(f"unit name {u.name!r} is used twice (allowed: distinct names)")
        seen.add(u.name)
    return units


def _unit_list(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(value)
    if not isinstance(value, tuple):
        raise _problem(f"expected a list of unit configs, got {_show(value)}")
    return value


class BoardConfig(BaseModel):
    """A design for a board (DESIGN.md, "Boards"): a host link plus the units it serves.

    Each unit is a full unit config (the same keys as a unit file); its streams get on-chip
    buffers of ``buffer_bytes`` bytes each.
    """

    model_config = ConfigDict(
        frozen=True, extra="forbid", strict=True, arbitrary_types_allowed=True
    )

    name: Identifier = Field(description="Names the board top module and its files.")
    board: Literal[BOARDS] = Field(description="The target board.")  # type: ignore[valid-type]
    link: LinkConfig = Field(default_factory=LinkConfig, description="The host link.")
    buffer_bytes: int = Field(
        16384, ge=256, le=1 << 20,
        description="Bytes of on-chip buffer per unit stream (block RAM).",
    )
    units: Annotated[
        tuple[UnitConfig, ...], BeforeValidator(_unit_list), AfterValidator(_unique_unit_names)
    ] = Field(min_length=1, description="The units of the design, each a unit config.")


_BOARD_ADAPTER: TypeAdapter = TypeAdapter(BoardConfig)


# -- public API ------------------------------------------------------------------------------


def parse_config(data: object, source: str) -> UnitConfig | BoardConfig:
    """Validate ``data`` (as returned by ``yaml.safe_load``) into a unit config, or into a
    :class:`BoardConfig` when it has a ``board`` key and no ``unit`` key.

    Parameters
    ----------
    data:
        The loaded YAML document: a mapping with string keys.
    source:
        What to call the data in messages, usually the file name.

    Raises
    ------
    ConfigError
        ``"{source}: field.path: problem (allowed: ...)"`` for the first problem found.
    """
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}: the top level is {_kind(data)} "
            "(allowed: a mapping of config keys such as name, unit, rows)"
        )
    bad_key = _non_string_key(data, ())
    if bad_key is not None:
        path, key = bad_key
        where = f"{_dotted(path)}: " if path else ""
        raise ConfigError(
            f"{source}: {where}key {_show(key)} is not a string "
            "(allowed: config key names such as rows)"
        )
    adapter = _BOARD_ADAPTER if "board" in data and "unit" not in data else _ADAPTER
    try:
        return adapter.validate_python(data)
    except ValidationError as err:
        raise ConfigError(f"{source}: {_first_error(err, data)}") from None


def load_config(path: str | os.PathLike) -> UnitConfig | BoardConfig:
    """Read and validate one config file.

    Raises
    ------
    ConfigError
        The file is missing or unreadable, empty, not valid YAML, holds more than one YAML
        document, or does not validate (see :func:`parse_config`).
    """
    source = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise ConfigError(f"{source}: no such file (allowed: a YAML config file)") from None
    except IsADirectoryError:
        raise ConfigError(f"{source}: is a folder (allowed: a YAML config file)") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{source}: is not UTF-8 text (allowed: a YAML config file)") from None
    except OSError as err:
        raise ConfigError(f"{source}: cannot be read ({err.strerror or err})") from None

    try:
        docs = [d for d in yaml.load_all(text, Loader=_Loader) if d is not None]
    except yaml.MarkedYAMLError as err:
        raise ConfigError(f"{source}: {_yaml_error(err)}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{source}: YAML error: {_one_line(str(err))}") from None
    if not docs:
        raise ConfigError(f"{source}: empty file (allowed: one YAML mapping of config keys)")
    if len(docs) > 1:
        raise ConfigError(
            f"{source}: {len(docs)} YAML documents in one file (allowed: one config per file)"
        )
    return parse_config(docs[0], source)


def config_to_dict(cfg: BaseModel) -> dict:
    """A plain, YAML-able dict of every key (formats as strings), in field order.

    ``parse_config(config_to_dict(cfg), ...) == cfg``.
    """
    return cfg.model_dump(mode="json")


def replace_config(cfg: BaseModel, **changes: Any) -> UnitConfig:
    """A copy of ``cfg`` with some keys changed, validated like a file (a preset with changes).

    Raises
    ------
    ConfigError
        If the changed config is not valid; the source is ``<name with changes>``.
    """
    return parse_config({**config_to_dict(cfg), **changes}, f"<{cfg.name} with changes>")


# -- YAML ------------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, but a key given twice in one mapping is an error, not a silent
    overwrite."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: set = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=deep)
                try:
                    dup = key in seen
                    seen.add(key)
                except TypeError:  # unhashable: the base class reports it
                    continue
                if dup:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {_show(key)}", key_node.start_mark
                    )
        return super().construct_mapping(node, deep=deep)


def _yaml_error(err: yaml.MarkedYAMLError) -> str:
    mark = err.problem_mark or err.context_mark
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    problem = _one_line(err.problem or err.context or "not valid YAML")
    if problem.startswith("duplicate key"):
        return f"{problem}{where} (allowed: each key once per mapping)"
    return f"YAML syntax error{where}: {problem}"


def _one_line(text: str) -> str:
    return " ".join(text.split())


# -- validation errors -> one line -----------------------------------------------------------


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return f"a {type(value).__name__}"


def _non_string_key(value: Any, path: tuple, _seen: set | None = None):
    """``(path, key)`` of the first mapping key that is not a string, else None."""
    seen = set() if _seen is None else _seen
    if id(value) in seen:  # YAML aliases share objects; visit each once
        return None
    seen.add(id(value))
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                return path, k
            found = _non_string_key(v, (*path, k), seen)
            if found:
                return found
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found = _non_string_key(v, (*path, i), seen)
            if found:
                return found
    return None


def _dotted(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _first_error(err: ValidationError, data: dict) -> str:
    errors = err.errors(include_url=False)
    # An unknown key first: a misspelling also makes its correct spelling "missing".
    errors.sort(key=lambda e: e["type"] != "extra_forbidden")
    return _describe(errors[0], data)


def _describe(e: dict, data: dict) -> str:
    kind, loc, value, ctx = e["type"], tuple(e["loc"]), e.get("input"), e.get("ctx") or {}

    # Pydantic puts the discriminator tag into the location (("mac_array", "rows") or, in a
    # board design, ("units", 0, "mac_array", "rows")): drop the tags, remember the innermost
    # model, and find the mapping the error is about.
    model = BoardConfig if "board" in data and "unit" not in data else None
    where, node, clean = data, data, []
    for part in loc:
        if isinstance(node, dict) and part not in node and part in UNIT_MODELS:
            model = UNIT_MODELS[part]
            continue
        if isinstance(node, dict) and part not in node and part in LAYER_MODELS:
            model = LAYER_MODELS[part]  # a layer's kind tag
            continue
        clean.append(part)
        if isinstance(node, (dict, list)):
            try:
                node = node[part]
            except (KeyError, IndexError, TypeError):
                node = None
            if isinstance(node, dict):
                where = node
    loc = tuple(clean)
    at = f"{_dotted(loc)}." if loc else ""

    if kind == "union_tag_not_found":
        return f"{at}unit: missing required key (allowed: {', '.join(UNIT_MODELS)})"
    if kind == "union_tag_invalid":
        unit = where.get("unit") if isinstance(where, dict) else None
        allowed = ", ".join(UNIT_MODELS)
        if isinstance(unit, str) and unit in PLANNED_UNITS:
            return f"{at}unit: {unit!r} is not available in this version (allowed: {allowed})"
        return f"{at}unit: {_show(unit)} is not a unit (allowed: {allowed})"

    if model is BoardConfig and len(loc) > 1 and loc[0] == "link":
        model = LinkConfig
    if len(loc) > 1 and isinstance(model, type) and loc[-2] in ("input", "weight", "bias",
                                                                "accum", "result", "scale_type"):
        model = QuantConfig
    last_index = max((i for i, part in enumerate(loc) if isinstance(part, int)), default=-1)
    field_loc = loc[last_index + 1:]
    if model is LinkConfig or model is QuantConfig:
        field_loc = loc[-1:]
    path = _dotted(loc)
    field = None
    if model is not None and len(field_loc) == 1:
        field = model.model_fields.get(field_loc[0]) or next(
            (f for f in model.model_fields.values() if f.alias == field_loc[0]), None)
    prefix = f"{path}: " if path else ""

    if kind == "tensorfab_field":
        return f"{at}{ctx['field']}: {ctx['problem']}"
    if kind == "too_short":
        return f"{prefix}empty list (allowed: at least {ctx.get('min_length', 1)} item)"
    if kind == "tensorfab":
        return f"{prefix}{ctx['problem']}"
    if kind == "missing":
        return f"{prefix}missing required key"
    if kind == "extra_forbidden":
        keys = sorted(f.alias or k for k, f in model.model_fields.items()) \
            if model is not None else []
        hint = difflib.get_close_matches(str(loc[-1]), keys, n=1, cutoff=0.75)
        guess = f", did you mean {hint[0]!r}?" if hint else ""
        return f"{prefix}unknown key{guess} (allowed: {', '.join(keys)})"
    expected = {
        "int_type": "an integer",
        "string_type": "a string",
        "bool_type": "true or false",
        "float_type": "a number",
        "list_type": "a list",
        "dict_type": "a mapping",
    }
    if kind in expected:
        return f"{prefix}expected {expected[kind]}, got {_show(value)}"
    if kind == "literal_error":
        options = get_args(field.annotation) if field is not None else ()
        allowed = ", ".join(map(str, options)) if options else ctx.get("expected", "")
        return f"{prefix}{_show(value)} is not allowed (allowed: {allowed})"
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        return f"{prefix}{_show(value)} is out of range (allowed: {_range(field, ctx)})"
    msg = str(e.get("msg", kind))
    return f"{prefix}{msg[:1].lower()}{msg[1:]}, got {_show(value)}"


def _range(field, ctx: dict) -> str:
    """``lo..hi`` from a field's bounds (pydantic's error names only the bound it broke)."""
    lo = hi = None
    for m in getattr(field, "metadata", ()):
        if isinstance(m, Ge):
            lo = m.ge
        elif isinstance(m, Gt):
            lo = m.gt + 1
        elif isinstance(m, Le):
            hi = m.le
        elif isinstance(m, Lt):
            hi = m.lt - 1
    if lo is None and hi is None:
        return ", ".join(f"{k} {v}" for k, v in ctx.items())
    if hi is None:
        return f"at least {lo}"
    if lo is None:
        return f"at most {hi}"
    return f"{lo}..{hi}"
