"""Parameters of the softmax unit, derived once from its config (NumPy/decimal only).

The unit's integer specification (what :mod:`.model` computes and the RTL must equal):

1. ``d_i = max_j x_j - x_i`` (input codes; ``0 <= d_i < 2**in.width``).
2. ``E_i = T[min(d_i, table_size - 1)]`` with the exp table
   ``T[d] = round(exp(-d * in.lsb) * 2**guard)`` (correctly rounded, ties up; the last entry
   is 0: every ``d`` from there on rounds to 0). ``E`` of the row maximum is exactly
   ``2**guard``, so the sum below is never 0.
3. ``S = sum_j E_j`` (exact).
4. ``y_i = min(round(E_i * 2**out.frac_bits / S), out.max_code)``: the exact quotient rounded
   to nearest (ties up), computed by a restoring divider.

Error against exact softmax, in output LSBs: at most 0.5 for the final rounding plus
``0.5 * (n + 1) * 2**(out.frac_bits - guard)`` for the table rounding (``n`` = row length);
``guard = out.frac_bits + ceil(log2(length + 1)) + GUARD_MARGIN`` keeps the second term
under ``2**-GUARD_MARGIN``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Context, Decimal
from functools import lru_cache

from ..numerics import Format, round_real

#: Bits of the exp table beyond those that carry the output: the table-rounding error is
#: below ``2**-GUARD_MARGIN`` output LSBs.
GUARD_MARGIN = 9

#: Pipeline cycles in the exp/sum stage from the issue of a row's last beat to its sum being
#: pushed (buffer read, difference, table read, table register, beat sum, accumulate).
SUM_DEPTH = 5


def _pow2_at_least(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


@lru_cache(maxsize=64)
def exp_table(in_fmt: Format, guard: int) -> tuple[int, ...]:
    """``T[d] = round(exp(-d * in.lsb) * 2**guard)`` for ``d = 0, 1, ...`` up to the first 0
    entry (included) or ``2**in.width - 1``. Computed with decimal arithmetic of at least 60
    digits (the exp is correctly rounded there), so every entry is the correctly rounded value."""
    # enough digits for the exact lsb (2**-f has up to f significant digits) and 60 more
    ctx = Context(prec=60 + max(0, in_fmt.frac_bits))
    f = in_fmt.frac_bits
    lsb = ctx.divide(Decimal(1), Decimal(2 ** f)) if f >= 0 else Decimal(2 ** -f)
    out = []
    for d in range(1 << in_fmt.width):
        v = round_real(ctx.exp(ctx.multiply(Decimal(-d), lsb)), guard)
        out.append(v)
        if v == 0:
            break
    return tuple(out)


@dataclass(frozen=True)
class SoftmaxParams:
    """A softmax over rows of up to ``length`` elements, ``lanes`` elements per cycle.

    Parameters
    ----------
    length:
        Longest row (elements).
    lanes:
        Elements per stream beat (and per cycle, sustained).
    inp:
        Input format (signed or unsigned fixed/int, 2..12 bits: the exp table has up to
        ``2**width`` entries).
    out:
        Output format (unsigned, ``ufixed<W,I>`` with ``I <= 1``).
    """

    length: int
    lanes: int
    inp: Format
    out: Format
    name: str = "softmax"
    table: tuple = field(default=(), compare=False, repr=False)

    def __post_init__(self):
        if not 1 <= self.lanes <= self.length:
            raise ValueError(f"lanes = {self.lanes} must be 1..length ({self.length})")
        if self.out.signed or self.out.frac_bits < 1:
            raise ValueError(f"out {self.out} must be unsigned with fraction bits")
        if self.inp.width > 12:
            raise ValueError(f"in {self.inp} is wider than 12 bits")
        object.__setattr__(self, "table", exp_table(self.inp, self.guard))

    @classmethod
    def from_config(cls, cfg) -> SoftmaxParams:
        return cls(length=cfg.length, lanes=cfg.lanes, inp=cfg.in_, out=cfg.out, name=cfg.name)

    # -- numerics -----------------------------------------------------------------------------

    @property
    def out_frac(self) -> int:
        return self.out.frac_bits

    @property
    def guard(self) -> int:
        """Fraction bits of the exp table (``exp(0) = 2**guard``)."""
        return self.out_frac + math.ceil(math.log2(self.length + 1)) + GUARD_MARGIN

    @property
    def table_size(self) -> int:
        return len(self.table)

    @property
    def addr_bits(self) -> int:
        return max(1, (self.table_size - 1).bit_length())

    @property
    def e_bits(self) -> int:
        """Bits of an exp value ``E`` (``0..2**guard``)."""
        return self.guard + 1

    @property
    def sum_bits(self) -> int:
        """Bits of a row sum ``S <= length * 2**guard``."""
        return (self.length << self.guard).bit_length()

    @property
    def num_bits(self) -> int:
        """Bits of the divider's numerator ``2 * E * 2**out_frac + S``."""
        return ((2 << (self.guard + self.out_frac)) + (self.length << self.guard)).bit_length()

    @property
    def quotient_bits(self) -> int:
        """The rounded quotient is at most ``2**out_frac``."""
        return self.out_frac + 1

    # -- buffers and timing ---------------------------------------------------------------------

    @property
    def beats_max(self) -> int:
        return math.ceil(self.length / self.lanes)

    @property
    def x_depth(self) -> int:
        """Entries (beats) of the input row buffer: two rows plus slack, a power of two."""
        return _pow2_at_least(2 * self.beats_max + 4)

    @property
    def e_depth(self) -> int:
        """Entries (beats) of the exp buffer between the sum and the divide stages."""
        return _pow2_at_least(2 * self.beats_max + SUM_DEPTH + 4)

    @property
    def sum_depth(self) -> int:
        """Cycles from issuing a row's last beat in the sum stage to its sum being readable by
        the divide stage."""
        return SUM_DEPTH + 1

    @property
    def div_depth(self) -> int:
        """Cycles from issuing a beat in the divide stage to its output beat being valid: the
        buffer read, the numerator register, ``out_frac + 1`` divider stages, the output
        register."""
        return self.quotient_bits + 3

    @property
    def latency(self) -> int:
        """Cycles from the first beat of a row of ``n`` beats to its first output beat when the
        unit is otherwise idle, for a one-beat row (add ``2 * (n - 1)`` for ``n`` beats):
        the row is read twice from the buffer (max/sum pass, then the divide pass)."""
        return 1 + self.sum_depth + self.div_depth

    def beats(self, n: int) -> int:
        return math.ceil(n / self.lanes)

    def expected_cycles(self, row_lengths) -> int:
        """Cycles from the first input beat to the last output beat taken, for rows of the
        given lengths streamed back to back with no idle input and no back-pressure.

        Each of the three stages (store and max, exp and sum, divide) takes one beat per cycle;
        a row enters the next stage when the previous stage has finished it and the next
        stage has finished the row before. Sustained throughput is ``lanes`` elements per
        cycle; the total is the input beats plus the last row's two further passes.
        """
        t_in = 0          # cycle the next input beat is accepted
        s2_free = 0       # first cycle the sum stage can issue a new row
        s3_free = 0
        last_out = 0
        for n in row_lengths:
            b = self.beats(n)
            if b < 1:
                raise ValueError("row lengths must be at least 1")
            t_last = t_in + b - 1
            t_in += b
            s2 = max(t_last + 1, s2_free)
            s2_free = s2 + b
            s3 = max(s2 + b - 1 + self.sum_depth, s3_free)
            s3_free = s3 + b
            last_out = s3 + b - 1 + self.div_depth
        return last_out + 1
