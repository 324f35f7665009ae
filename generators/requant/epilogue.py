"""The fused requantization epilogue of MAC-type units (``requant:`` block of ``mac_array`` and
``sparse_chain``): its config block, and the run-time side every such family shares.

With the block, a unit's accumulators pass through :class:`~.rtl.RequantEpilogue` (the requant
unit's parameter memory and :class:`~.rtl.RequantLane` per output lane) and leave as codes of
``out``. The block is turned into a :class:`~.params.RequantParams` (``in`` = the unit's
``acc``, ``lanes`` = the unit's output lanes), so the requant unit's checks, parameter beats
and golden model (:func:`generators.numerics.requantize_fixed`) are the ones used here.

Parameter stream of a fused unit: the requant unit's ``p_stream`` (see :mod:`generators.requant`)
plus three scalar fields saying which parameter entry each output beat uses. The output beats
of a run come as ``groups`` groups; a group walks the ``P`` parameter entries in order and
uses each for ``rep`` consecutive beats (``rep_last`` in the final group); ``rep_m1``,
``rep_last_m1`` and ``groups_m1`` hold those counts minus one. The run ends with its last
output beat; the unit takes the next run's parameters after that.
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from ..errors import ArrayError
from ..numerics import Format
from ..schema import FormatField, field_problem
from .model import ARRAYS, check_inputs
from .params import MAX_IN_BITS, RequantParams, check_out

__all__ = ["RequantBlock", "RequantField", "PARAM_ARRAYS", "SEQ_FIELDS", "SEQ_BITS",
           "drop_absent_block", "check_block_acc", "epilogue_params", "check_param_arrays",
           "param_beats", "params_from_beats", "requantize", "manifest"]

#: Run-time arrays of the epilogue (the requant unit's, without ``acc``).
PARAM_ARRAYS = tuple(a for a in ARRAYS if a != "acc")
#: The sequence fields added to the requant unit's ``p_stream`` (see the module docstring).
SEQ_FIELDS = ("rep_m1", "rep_last_m1", "groups_m1")
SEQ_BITS = 32


class RequantBlock(BaseModel):
    """``requant: {out: int8, rounding: double, per: channel, mult_bits: 32, channels: 256}``:
    requantize the accumulators inside the unit (the requant unit's keys, ``in`` being the
    unit's ``acc`` and ``lanes`` its output lanes)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True,
                              arbitrary_types_allowed=True)

    out: Annotated[FormatField, AfterValidator(check_out)] = Field(
        Format.parse("int8"), description="Output format of `c`/`y`: intN or uintN, 2..16 "
        "bits (clamped to act_min..act_max).")
    rounding: Literal["double", "single", "trn", "rnd", "rnd_conv"] = Field(
        "double", description="As the requant unit's `rounding`.")
    per: Literal["channel", "tensor"] = Field(
        "channel", description="`channel`: multiplier and shift per output column of `c` "
        "(per output row of the sparse chain's `y`); `tensor`: one of each.")
    mult_bits: int = Field(32, ge=2, le=32, description="As the requant unit's `mult_bits`.")
    channels: int = Field(
        256, ge=1, le=4096, description="Most output channels (N of mac_array, O of "
        "sparse_chain) a run may have: the parameter memory's size.")

    @model_validator(mode="after")
    def _check(self) -> RequantBlock:
        # the default (32) is allowed without a multiplier, so a dumped block parses back
        if self.rounding not in ("double", "single") and self.mult_bits != 32:
            raise field_problem("mult_bits", f"{self.mult_bits} is not used with rounding "
                                f"{self.rounding} (a power-of-two scale 2**shift; allowed: "
                                "omit mult_bits, or rounding double or single)")
        return self


#: The optional ``requant`` key of a MAC-type unit (absent: the accumulators leave as they are).
RequantField = Field(
    None, description="Optional fused requantization epilogue (see docs/units.md): `c`/`y` "
    "leave the unit as codes of `out`, with run-time bias, multiplier, shift, zero_point, "
    "act_min, act_max.")


def drop_absent_block(dumped: dict) -> dict:
    """A config dump without ``requant: null``: a unit without the block dumps (and so
    renders its manifest) exactly as before the key existed."""
    if isinstance(dumped, dict) and dumped.get("requant", 0) is None:
        del dumped["requant"]
    return dumped


def check_block_acc(acc: Format) -> None:
    """The epilogue takes what the requant unit takes: a signed integer accumulator of at most
    32 bits."""
    if not (acc.kind == "fixed" and acc.signed and acc.is_integer and acc.width <= MAX_IN_BITS):
        raise field_problem("requant", f"needs acc intN with N <= {MAX_IN_BITS} (the "
                            f"requant unit's in), got acc {acc} (allowed: an int acc of at "
                            "most 32 bits, or no requant block)")


def epilogue_params(block: RequantBlock, acc: Format, lanes: int) -> RequantParams:
    """The requant unit the epilogue is: ``in`` = ``acc``, ``lanes`` output lanes."""
    keys = {"name": "epilogue", "in": str(acc), "out": str(block.out),
            "rounding": block.rounding, "per": block.per, "channels": block.channels,
            "lanes": lanes}
    if block.rounding in ("double", "single"):
        keys["mult_bits"] = block.mult_bits
    return RequantParams.model_validate(keys, strict=False)


def check_param_arrays(rp: RequantParams, arrays: dict, n: int, unit: str,
                       channel_axis: str) -> dict:
    """The epilogue's arrays of a run with ``n`` output channels, checked by the requant unit's
    rules (:func:`.model.check_inputs`; the same one-line errors) and completed with the
    defaults. ``channel_axis`` names where the channels are (for the message when ``n``
    exceeds the parameter memory)."""
    if n > rp.channels:
        raise ArrayError(f"{channel_axis} = {n} output channels exceed the requant "
                         f"epilogue's parameter memory (allowed: at most {rp.channels}, the "
                         "requant block's channels)")
    given = {k: v for k, v in arrays.items() if k in PARAM_ARRAYS}
    checked = check_inputs(rp, {"acc": np.zeros((1, n), np.int64), **given})
    del checked["acc"]
    return checked


def requantize(rp: RequantParams, acc: np.ndarray, checked: dict) -> np.ndarray:
    """The golden epilogue: the requant unit's golden model on the unit's accumulators (channels
    along axis 1; a sparse chain passes ``y.T``)."""
    from .model import requant

    return requant(rp, {"acc": acc, **checked})


def param_beats(rp: RequantParams, checked: dict, n: int, seq: tuple[int, int, int]) -> dict:
    """The ``p_stream`` beats: the requant unit's, plus the sequence ``(rep, rep_last,
    groups)`` (counts, not minus one) in every beat."""
    from . import family

    fields = family.param_beats(rp, checked, n)
    beats = len(fields["last"])
    for name, v in zip(SEQ_FIELDS, seq, strict=True):
        fields[name] = np.full(beats, int(v) - 1, dtype=np.int64)
    return fields


def params_from_beats(rp: RequantParams, pin: dict, n: int, seq: tuple[int, int, int]) -> dict:
    """Inverse of :func:`param_beats` (the reference board): the checked arrays, or
    ``ValueError`` for beats that no run of ``n`` channels makes."""
    from . import family

    pin = {k: np.asarray(v, dtype=np.int64) for k, v in pin.items()}
    beats = rp.row_beats(n)
    if any(len(v) != beats for v in pin.values()):
        raise ValueError(f"p_stream: {len(pin['last'])} beats (expected {beats} for "
                         f"{n} channels)")
    acc_beats = family._acc_beats(rp, np.zeros((1, n), np.int64))
    checked = family.unschedule(rp, {"p_stream": {k: v for k, v in pin.items()
                                                  if k not in SEQ_FIELDS},
                                     "acc_stream": acc_beats}, (1, n))
    del checked["acc"]
    for name, v in zip(SEQ_FIELDS, seq, strict=True):
        if not np.array_equal(pin[name], np.full(beats, int(v) - 1)):
            raise ValueError(f"p_stream.{name} is not what schedule makes")
    return checked


def manifest(rp: RequantParams | None, p_beats: str) -> dict:
    """Manifest keys of the fused epilogue (none without the block: the manifest is today's)."""
    if rp is None:
        return {}
    return {"requant": {"out": str(rp.out), "rounding": rp.rounding, "per": rp.per,
                        "mult_bits": rp.mult_bits, "channels": rp.channels,
                        "lanes": rp.lanes, "latency": rp.latency, "p_beats": p_beats}}
