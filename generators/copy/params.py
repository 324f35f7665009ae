"""Parameters of the copy unit (its config model).

The unit passes every input beat to its output unchanged, through one register stage: with
one lane and element strides on both sides (``program_streams``), a copy from a ``row`` place
to a ``col`` place is a transpose done by the tensor memory's address generators.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from ..numerics import Format
from ..schema import FormatField, UnitBase, problem

#: Code widths the unit takes (the tensor memory stores codes of up to 32 bits).
WIDTHS = (2, 32)


def check_format(fmt: Format) -> Format:
    """Any integer or fixed-point format, signed or unsigned, of 2..32 bits."""
    lo, hi = WIDTHS
    if not lo <= fmt.width <= hi:
        raise problem(f"{fmt} is not allowed for copy (allowed: intW, uintW, fixed<W,I> or "
                      f"ufixed<W,I> with {lo} <= W <= {hi})")
    return fmt


CopyFormat = Annotated[FormatField, AfterValidator(check_format)]


class CopyParams(UnitBase):
    """A copy of ``x [...]`` into ``y`` (the same codes), ``lanes`` elements per cycle
    (``unit: copy``): layout changes and copies inside programs."""

    unit: Literal["copy"] = Field("copy", description="The unit family: `copy`.")
    format: CopyFormat = Field(
        default=Format.parse("int8"),
        description="Format of x and y: intW, uintW, fixed<W,I> or ufixed<W,I>, 2..32 bits.",
    )
    lanes: int = Field(default=1, ge=1, le=64,
                       description="Elements per stream beat and per cycle (sustained).")

    @property
    def latency(self) -> int:
        """Cycles from accepting an input beat to its output beat being valid: one register
        stage."""
        return 1

    def expected_cycles(self, beats: int) -> int:
        """First input beat to last output beat taken, ``beats`` beats back to back with no
        idle input and no back-pressure: one beat per cycle, then the latency."""
        if beats < 1:
            raise ValueError("at least one beat")
        return beats + self.latency
