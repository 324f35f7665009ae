"""Parameters of the requant unit (its config model).

The unit applies :func:`generators.numerics.requantize_fixed` to a stream of accumulator
codes: ``acc [R, N]`` in ``in`` (at most 32 bits) -> ``y [R, N]`` in ``out``, with per-channel
(or per-tensor) ``bias``, ``multiplier`` and ``shift`` and a scalar ``zero_point``, ``act_min``
and ``act_max``. Those parameters are run-time data, loaded through the parameter stream into
the unit's parameter memory of ``channels`` entries; the config fixes only the formats, the
rounding variant, the memory size, the multiplier width and the lanes.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import AfterValidator, ConfigDict, Field, model_validator

from ..numerics import Format
from ..schema import FormatField, UnitBase, field_problem, problem

#: Widest accumulator the unit takes (the reference kernels' int32).
MAX_IN_BITS = 32
OUT_WIDTHS = (2, 16)
#: Width of a stored shift (``-31..30``).
SHIFT_BITS = 6
#: Width of a bias.
BIAS_BITS = 32
#: Register stages of one lane's datapath (:class:`.rtl.RequantLane`), by rounding, with the
#: product as one ``*`` (:func:`lane_stages` adds the stage of a product over several hard
#: multipliers, split or wide; ``double``'s 32-bit ``x << left`` always takes one, and is
#: registered before the multipliers' operand registers).
LANE_STAGES = {"double": 9, "single": 5, "trn": 4, "rnd": 4, "rnd_conv": 4}
#: Operand bits one hard multiplier takes (ECP5 MULT18X18D: 18 x 18).
DSP_BITS = 18
#: Widest ``mult_bits`` whose lanes split a product wider than one hard multiplier into one
#: hard ``a[:18] * m`` and a LUT ``a[18:] * m`` (:mod:`.widemul`): one MULT18X18D per lane
#: instead of two.
SPLIT_MAX_MULT_BITS = 17

#: The format ``x = acc + bias`` is held in (wraps, as int32 addition in the reference kernels).
X_FORMAT = Format(width=32, int_bits=32, signed=True)


def splits_product(rounding: str, mult_bits: int, x_width: int) -> bool:
    """Whether a lane splits its product (:mod:`.widemul`): with ``double`` the multiplied
    operand is ``x << left`` in int32, with ``single`` it is ``x`` (``x_width`` bits); split
    when that is wider than one hard multiplier and ``mult_bits <= SPLIT_MAX_MULT_BITS``."""
    if rounding not in ("double", "single") or mult_bits > SPLIT_MAX_MULT_BITS:
        return False
    return (32 if rounding == "double" else x_width) > DSP_BITS


def wide_product(rounding: str, mult_bits: int, x_width: int) -> bool:
    """Whether a lane with ``mult_bits > SPLIT_MAX_MULT_BITS`` forms its product from partial
    products on hard multipliers (:func:`.widemul.wide_product`): when the multiplied operand
    (``double``: 32 bits; ``single``: ``x_width``) or the stored multiplier
    (``mult_bits - 1`` bits) is wider than one hard multiplier takes."""
    if rounding not in ("double", "single") or mult_bits <= SPLIT_MAX_MULT_BITS:
        return False
    return max(32 if rounding == "double" else x_width, mult_bits - 1) > DSP_BITS


def lane_stages(rounding: str, mult_bits: int = 32, x_width: int = X_FORMAT.width) -> int:
    """Register stages of one lane's datapath: :data:`LANE_STAGES`, plus one for a split or
    wide product."""
    return LANE_STAGES[rounding] + (splits_product(rounding, mult_bits, x_width)
                                    or wide_product(rounding, mult_bits, x_width))


def check_in(fmt: Format) -> Format:
    if not (fmt.signed and fmt.is_integer):
        raise problem(f"{fmt} is not allowed for requant's in (allowed: intN with "
                      f"2 <= N <= {MAX_IN_BITS})")
    if fmt.width > MAX_IN_BITS:
        raise problem(f"{fmt} is too wide for requant's in (allowed: intN with "
                      f"2 <= N <= {MAX_IN_BITS})")
    return fmt


def check_out(fmt: Format) -> Format:
    lo, hi = OUT_WIDTHS
    if not fmt.is_integer or not lo <= fmt.width <= hi:
        raise problem(f"{fmt} is not allowed for requant's out (allowed: intN or uintN with "
                      f"{lo} <= N <= {hi})")
    return fmt


class RequantParams(UnitBase):
    """Integer-only requantization, ``lanes`` codes per cycle (``unit: requant``):
    ``acc [R, N]`` in ``in`` -> ``y [R, N]`` in ``out`` by
    :func:`~generators.numerics.requantize_fixed`, parameters from a parameter stream."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", strict=True, arbitrary_types_allowed=True,
        validate_by_alias=True, validate_by_name=True, serialize_by_alias=True,
    )

    unit: Literal["requant"] = Field("requant", description="The unit family: `requant`.")
    inp: Annotated[FormatField, AfterValidator(check_in)] = Field(
        alias="in", description="Accumulator format: intN, 2..32 bits.")
    out: Annotated[FormatField, AfterValidator(check_out)] = Field(
        description="Output format: intN or uintN, 2..16 bits (clamped to act_min..act_max).")
    rounding: Literal["double", "single", "trn", "rnd", "rnd_conv"] = Field(
        "double", description="`double` (gemmlowp/TFLite default: rounding high multiply, "
        "then rounding shift), `single` (TFLITE_SINGLE_ROUNDING, CMSIS-NN), or a "
        "power-of-two scale 2**shift with an ap_fixed rounding (`trn`, `rnd`, `rnd_conv`).")
    per: Literal["channel", "tensor"] = Field(
        "channel", description="`channel`: multiplier and shift per output channel; "
        "`tensor`: one of each (bias is per channel either way).")
    channels: int = Field(
        ge=1, le=4096, description="Most channels N the parameter memory holds.")
    mult_bits: int = Field(
        32, ge=2, le=32, description="Multiplier width in bits, sign included: multipliers "
        "are multiples of 2**(32 - mult_bits) (`quantize_multiplier(scale, bits)`).")
    lanes: int = Field(1, ge=1, le=64, description="Codes per stream beat and per cycle.")

    @model_validator(mode="after")
    def _check(self) -> RequantParams:
        # the default (32) is no multiplier width at all without a multiplier: allowed, so a
        # dumped config (config_to_dict, a board's INFO) parses back
        if not self.uses_multiplier and self.mult_bits != 32:
            raise field_problem("mult_bits", f"{self.mult_bits} is not used with rounding "
                                f"{self.rounding} "
                                "(a power-of-two scale 2**shift; allowed: omit mult_bits, or "
                                "rounding double or single)")
        return self

    @property
    def uses_multiplier(self) -> bool:
        """``double`` and ``single`` scale by ``multiplier * 2**(shift - 31)``; the others by
        ``2**shift``."""
        return self.rounding in ("double", "single")

    @property
    def mult_width(self) -> int:
        """Bits of a stored multiplier: ``multiplier >> mult_shift`` is unsigned, this wide."""
        return self.mult_bits - 1

    @property
    def mult_shift(self) -> int:
        """Low bits every multiplier has zero (``32 - mult_bits``)."""
        return 32 - self.mult_bits

    @property
    def depth(self) -> int:
        """Entries of each lane's parameter memory: channel ``j * lanes + l`` is entry ``j``
        of lane ``l``."""
        return math.ceil(self.channels / self.lanes)

    @property
    def lane_latency(self) -> int:
        """Register stages of one lane's datapath (x in int32)."""
        return lane_stages(self.rounding, self.mult_bits)

    @property
    def latency(self) -> int:
        """Cycles from accepting an ``acc`` beat to its ``y`` beat being valid: the parameter
        memory read, then the lane's stages."""
        return 1 + self.lane_latency

    def row_beats(self, n: int) -> int:
        """Beats per row of ``N`` channels (a row starts a new beat; its last beat is padded),
        and parameter beats per run."""
        return math.ceil(n / self.lanes)

    def expected_cycles(self, rows: int, n: int) -> int:
        """First beat presented to last ``y`` beat taken, no idle input, no back-pressure:
        the parameter beats (one per cycle), then the ``acc`` beats (one per cycle), then the
        latency."""
        if rows < 1 or n < 1:
            raise ValueError("at least one row and one channel")
        p = self.row_beats(n)
        return p + rows * p + self.latency
