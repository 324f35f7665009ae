"""Parameters of the GELU unit (its config model), and the one function that makes its
tables and coefficients.

``gelu(x) = x * Phi(x) = relu(x) - delta(|x|)`` with ``delta(u) = u * Phi(-u)`` (exact GELU,
not the tanh approximation).

Two integer specifications, chosen by the input width:

``table`` (``in`` up to :data:`TABLE_MAX_BITS` bits)
    ``y = T[x - in.min_code]`` where ``T`` holds ``sat(round(gelu(x) * 2**out.frac_bits))``,
    correctly rounded (computed with 60-digit decimal arithmetic; ties cannot occur except at
    exact values, which round up).
``poly`` (wider inputs)
    ``u = |x|``; ``u`` below ``span`` is cut into ``2**SEG_BITS`` segments of ``2**k`` codes,
    segment ``s = u >> k``, offset ``t = u & (2**k - 1)``; with per-segment integer
    coefficients ``c0, c1, c2`` (:func:`poly_coefficients`)::

        h1 = (c2 * t) >> k
        D  = c0 + (((c1 + h1) * t) >> (k + COEF_FRAC))      # ~ delta(|x|) * 2**g
        R  = max(x, 0) * 2**(g - in.frac_bits)               # relu, exact
        y  = sat((R - D + 2**(g - out.frac_bits - 1)) >> (g - out.frac_bits))

    (``D = 0`` for ``u >= span``; ``>>`` floors; ``g = internal_frac``). Two multipliers,
    pipelined over seven register stages.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Context, Decimal
from fractions import Fraction
from functools import cached_property, lru_cache
from typing import Annotated, Literal

import numpy as np
from pydantic import AfterValidator, ConfigDict, Field

from ..numerics import Format, round_real
from ..schema import FormatField, UnitBase, problem

#: Inputs of at most this many bits use a full table.
TABLE_MAX_BITS = 10
#: log2 of the polynomial segments.
SEG_BITS = 6
#: Extra fraction bits of ``c1`` and ``c2`` (and of the first Horner step).
COEF_FRAC = 4
#: Fraction bits the polynomial path keeps below the output LSB.
POLY_GUARD = 6


_CTX = Context(prec=90)
_SQRT2 = _CTX.sqrt(Decimal(2))
_SQRT_PI = _CTX.sqrt(Decimal("3.14159265358979323846264338327950288419716939937510"
                             "58209749445923078164062862089986280348253421170679"))


def _erf(z: Decimal) -> Decimal:
    """erf by its Taylor series at 90 digits (for |z| <= 9 at least 45 correct digits)."""
    ctx = _CTX
    term = z
    total = z
    n = 0
    z2 = ctx.multiply(z, z)
    eps = Decimal(10) ** -80
    while True:
        n += 1
        term = ctx.divide(ctx.multiply(ctx.minus(term), z2), Decimal(n))
        add = ctx.divide(term, Decimal(2 * n + 1))
        total = ctx.add(total, add)
        if abs(add) < eps:
            break
    return ctx.divide(ctx.multiply(total, 2), _SQRT_PI)


def gelu_code(x: Fraction, out_frac: int) -> int:
    """``round(gelu(x) * 2**out_frac)`` (to nearest, ties up), correctly rounded, for an exact
    binary fraction ``x``."""
    if x == 0:
        return 0
    if abs(x) > 12:
        # |delta| < 1e-33: rounds as relu(x) minus a positive infinitesimal.
        if x < 0:
            return 0
        v = x * (Fraction(2) ** out_frac)
        return math.ceil(v - Fraction(1, 2))
    xd = _CTX.divide(Decimal(x.numerator), Decimal(x.denominator))  # exact: binary fractions
    phi = _CTX.divide(_CTX.add(1, _erf(_CTX.divide(xd, _SQRT2))), 2)
    return round_real(_CTX.multiply(xd, phi), out_frac)


def gelu_float(x: np.ndarray) -> np.ndarray:
    """Exact GELU in float64 (``x * Phi(x)`` via erfc; relative error ~1e-16)."""
    x = np.asarray(x, dtype=np.float64)
    erfc = np.frompyfunc(math.erfc, 1, 1)
    return x * 0.5 * erfc(-x / math.sqrt(2)).astype(np.float64)


def delta_float(u: np.ndarray) -> np.ndarray:
    """``delta(u) = u * Phi(-u)`` in float64."""
    u = np.asarray(u, dtype=np.float64)
    erfc = np.frompyfunc(math.erfc, 1, 1)
    return u * 0.5 * erfc(u / math.sqrt(2)).astype(np.float64)


@lru_cache(maxsize=32)
def gelu_table(inp: Format, out: Format) -> tuple[int, ...]:
    """``T[x - in.min_code]``: the saturated, correctly rounded output code of every input."""
    scale = Fraction(2) ** (-inp.frac_bits)
    return tuple(min(max(gelu_code(c * scale, out.frac_bits), out.min_code), out.max_code)
                 for c in range(inp.min_code, inp.max_code + 1))


@dataclass(frozen=True)
class Poly:
    """Segment layout and integer coefficients of the ``poly`` specification."""

    k: int                  #: offset bits per segment
    span: int               #: codes |x| < span use the polynomial; D = 0 beyond
    c0: tuple[int, ...]
    c1: tuple[int, ...]
    c2: tuple[int, ...]


def _eval_poly(c0, c1, c2, t, k):
    """The integer evaluation of the spec (NumPy arrays or ints; ``>>`` floors)."""
    h1 = (c2 * t) >> k
    return c0 + (((c1 + h1) * t) >> (k + COEF_FRAC))


@lru_cache(maxsize=32)
def poly_coefficients(inp: Format, g: int) -> Poly:
    """Fit ``delta(|x|) * 2**g`` by one quadratic per segment (least squares on the segment's
    codes, then integer coefficients with ``c0`` re-centred so the integer evaluation's error is
    balanced). The model and the RTL both take their constants from here."""
    lsb = math.ldexp(1.0, -inp.frac_bits)
    full = 1 << (inp.width - 1)          # largest |x| (for min_code)
    # smallest code from which delta * 2**g < 1/4 everywhere after (delta decreases for u > 1)
    u = np.arange(0, 2 * full + 1, dtype=np.float64)
    small = np.ldexp(delta_float(u * lsb), g) < 0.25
    small &= u * lsb > 1.0
    first = int(np.argmax(small)) if small.any() else 2 * full + 1
    span = min(1 << max(SEG_BITS, (first - 1).bit_length()), 2 * full)
    span = max(span, 1 << SEG_BITS)
    k = (span.bit_length() - 1) - SEG_BITS
    c0s, c1s, c2s = [], [], []
    tt = np.arange(1 << k, dtype=np.int64)
    for s in range(1 << SEG_BITS):
        us = (s << k) + tt
        target = np.ldexp(delta_float(us * lsb), g)
        tau = tt / float(1 << k)
        if k >= 2:
            a2, a1, a0 = np.polyfit(tau, target, 2)
        elif k == 1:
            a2, (a1, a0) = 0.0, np.polyfit(tau, target, 1)
        else:
            a2, a1, a0 = 0.0, 0.0, float(target[0])
        c2 = int(round(a2 * (1 << COEF_FRAC)))
        c1 = int(round(a1 * (1 << COEF_FRAC)))
        c0 = int(round(a0))
        err = _eval_poly(c0, c1, c2, tt, k) - target
        c0 -= int(round((err.max() + err.min()) / 2))
        c0s.append(c0)
        c1s.append(c1)
        c2s.append(c2)
    return Poly(k=k, span=span, c0=tuple(c0s), c1=tuple(c1s), c2=tuple(c2s))


WIDTHS = (2, 16)


def check_format(fmt: Format) -> Format:
    """The input and output formats the unit takes: signed, 2..16 bits."""
    lo, hi = WIDTHS
    if not fmt.signed or not lo <= fmt.width <= hi:
        raise problem(f"{fmt} is not allowed for gelu (allowed: signed fixed<W,I> or intW "
                      f"with {lo} <= W <= {hi})")
    return fmt


GeluFormat = Annotated[FormatField, AfterValidator(check_format)]


class GeluParams(UnitBase):
    """Element-wise exact GELU, ``lanes`` elements per cycle (``unit: gelu``): ``x [...]`` in
    ``in`` -> ``y [...]`` in ``out``; a correctly rounded table for inputs up to
    :data:`TABLE_MAX_BITS` bits, a piecewise quadratic beyond."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", strict=True, arbitrary_types_allowed=True,
        validate_by_alias=True, validate_by_name=True, serialize_by_alias=True,
    )

    unit: Literal["gelu"] = Field("gelu", description="The unit family: `gelu`.")
    inp: GeluFormat = Field(
        alias="in", description="Input format: signed fixed<W,I> or intW, 2..16 bits."
    )
    out: GeluFormat = Field(
        description="Output format: signed fixed<W,I> or intW, 2..16 bits (saturating)."
    )
    lanes: int = Field(default=1, ge=1, le=64,
                       description="Elements per stream beat and per cycle (sustained).")

    @cached_property
    def table(self) -> tuple[int, ...]:
        """The table path's outputs for every input code (``()`` on the poly path)."""
        return gelu_table(self.inp, self.out) if self.kind == "table" else ()

    @cached_property
    def poly(self) -> Poly | None:
        """The poly path's coefficients (``None`` on the table path)."""
        return poly_coefficients(self.inp, self.internal_frac) if self.kind == "poly" else None

    @property
    def kind(self) -> str:
        """``table`` up to :data:`TABLE_MAX_BITS` input bits, else ``poly``."""
        return "table" if self.inp.width <= TABLE_MAX_BITS else "poly"

    @property
    def internal_frac(self) -> int:
        """``g``: fraction bits of ``R`` and ``D`` in the ``poly`` path (at least the input's,
        so ``R`` is exact, and :data:`POLY_GUARD` below the output LSB)."""
        return max(self.out.frac_bits + POLY_GUARD, self.inp.frac_bits)

    @property
    def latency(self) -> int:
        """Cycles from accepting an input beat to its output beat being valid."""
        return 2 if self.kind == "table" else 7

    def expected_cycles(self, beats: int) -> int:
        """First input beat to last output beat taken, ``beats`` beats back to back with no
        idle input and no back-pressure: one beat per cycle, then the latency."""
        if beats < 1:
            raise ValueError("at least one beat")
        return beats + self.latency
