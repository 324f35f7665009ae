"""Parameters of a systolic MAC array: its config model, validated once.

:class:`MacArrayParams` is both the ``unit: mac_array`` config schema and the parameters
everything downstream reads: the RTL, the schedule, the simulator and the reports take widths,
latency and the analytic cycle count from it, in plain Python, so nothing re-derives them.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_serializer, model_validator

from ..numerics import ELEMENT_FLOATS, FP32, MX_BLOCK, FloatFormat, Format, MXFormat, Overflow
from ..requant.epilogue import (
    RequantBlock,
    RequantField,
    check_block_acc,
    drop_absent_block,
    epilogue_params,
)
from ..requant.params import RequantParams
from ..schema import (
    OPERAND_WIDTHS,
    AnyFormatField,
    UnitBase,
    field_problem,
    fmt_str,
    problem,
)
from . import packing as pk

OUTPUT_STATIONARY = "output_stationary"
WEIGHT_STATIONARY = "weight_stationary"
DATAFLOWS = (OUTPUT_STATIONARY, WEIGHT_STATIONARY)


def product_format(a: Format, b: Format) -> Format:
    """The format that holds every exact product of an ``a`` code and a ``b`` code."""
    # W1 + W2 bits hold every product in any signed/unsigned mix (e.g. int8 x uint8 lies in
    # -32640..32385); the result is signed when either operand is.
    return Format(width=a.width + b.width, int_bits=a.int_bits + b.int_bits,
                  signed=a.signed or b.signed)


def product_width_in(prod: Format, acc: Format) -> int:
    """Bits the exact product takes in the accumulator's signedness: one more for an unsigned
    product in a signed accumulator (its sign bit)."""
    return prod.width + (1 if acc.signed and not prod.signed else 0)


def check_acc(a: Format, b: Format, acc: Format, operands: str | None = None) -> None:
    """The accumulator rules of every MAC-type unit, raised as an error on field ``acc``:
    signed when the product is, the product's fraction bits, at least the product's width.
    ``operands``: how to name the operands in messages (default ``"a x b"``)."""
    prod = product_format(a, b)
    operands = operands or f"{a} x {b}"
    need = product_width_in(prod, acc)
    if prod.signed and not acc.signed:
        raise field_problem(
            "acc",
            f"{acc} is unsigned but the product of {operands} is signed "
            f"(allowed: a signed format such as {fmt_str(acc.width, acc.int_bits, True)})",
        )
    if acc.frac_bits != prod.frac_bits:
        width = max(acc.width, need)
        example = fmt_str(width, width - prod.frac_bits, acc.signed)
        raise field_problem(
            "acc",
            f"{acc} has {acc.frac_bits} fraction bits but the product of "
            f"{operands} has {prod.frac_bits} (allowed: {prod.frac_bits} fraction "
            f"bits, e.g. {example})",
        )
    if acc.width < need:
        how = "" if need == prod.width else " as a signed format"
        raise field_problem(
            "acc",
            f"{acc} is narrower than the product of {operands} "
            f"({need} bits{how}) (allowed: at least {need} bits)",
        )


def internal_width(prod: Format, acc: Format, overflow: str, max_k: int) -> int:
    """Width of the accumulators inside a MAC-type unit.

    With ``wrap`` the accumulator's own width suffices (two's-complement sums are exact modulo
    2**width). With ``sat`` the exact sum must be known before it is clamped: the product's
    width in the accumulator's signedness plus ``ceil(log2(max_k))`` guard bits, which holds
    ``max_k`` worst-case products. Every partial sum is a sum of at most K <= max_k products
    (padding adds zeros), so none overflows.
    """
    if Overflow(overflow) is Overflow.WRAP:
        return acc.width
    guard = (max_k - 1).bit_length()  # ceil(log2(max_k)) for integers
    return max(acc.width, product_width_in(prod, acc) + guard)


#: The ``overflow`` key of every MAC-type unit.
OverflowRule = Annotated[Literal["wrap", "sat"], Field(
    default="wrap",
    description="The accumulator's overflow rule, applied once to the exact sum: `wrap` "
    "(two's complement modulo 2**acc.width) or `sat` (clamp to acc's range).",
)]
#: The ``max_k`` key of every MAC-type unit.
MaxK = Annotated[int, Field(
    default=65536, ge=1, le=2**24,
    description="The longest K for which `overflow: sat` is exact: the unit keeps "
    "ceil(log2(max_k)) guard bits above the product (see internal_width).",
)]


_OPERAND_ALLOWED = ("intN, uintN, fixed<W,I>, ufixed<W,I> of 2..16 bits, "
                    + ", ".join(ELEMENT_FLOATS) + ", or an MX format")


def _mac_operand(fmt):
    """An operand of the MAC array: fixed point of 2..16 bits, an element float or MX."""
    lo, hi = OPERAND_WIDTHS
    if fmt.kind == "fixed":
        if not lo <= fmt.width <= hi:
            how = "wide" if fmt.width > hi else "narrow"
            raise problem(f"{fmt} is too {how} for an operand (allowed: {lo}..{hi} bits)")
    elif fmt.kind == "float" and str(fmt) not in ELEMENT_FLOATS:
        raise problem(f"{fmt} is not allowed as an operand (allowed: {_OPERAND_ALLOWED})")
    return fmt


def _mac_acc(fmt):
    """The accumulator/output format of the MAC array: fixed point up to 64 bits, or fp32."""
    if fmt.kind == "fixed":
        if fmt.width > 64:
            raise problem(f"{fmt} is too wide for an accumulator (allowed: up to 64 bits)")
        return fmt
    if fmt is not FP32 and str(fmt) != "fp32":
        raise problem(f"{fmt} is not allowed as acc (allowed: intN, uintN, fixed<W,I>, "
                      "ufixed<W,I> up to 64 bits, or fp32)")
    return fmt


MacOperand = Annotated[AnyFormatField, AfterValidator(_mac_operand)]
MacAcc = Annotated[AnyFormatField, AfterValidator(_mac_acc)]


def operand_fixed(fmt) -> Format:
    """The fixed-point format of an operand's exact element values: the format itself, a
    float's :meth:`~generators.numerics.FloatFormat.as_fixed`, an MX element's (scales
    apart)."""
    if isinstance(fmt, MXFormat):
        return fmt.element_fixed()
    if isinstance(fmt, FloatFormat):
        return fmt.as_fixed()
    return fmt


class MacArrayParams(UnitBase):
    """A ``rows x cols`` systolic MAC array computing ``c = a @ b`` (``unit: mac_array``).

    The exact integer product of an ``a`` code and a ``b`` code is summed over K, then the
    accumulator's ``overflow`` rule is applied once to the exact sum (see :mod:`.model`).

    Cross-field rules (checked on load): ``acc`` is signed when either operand is; ``acc``
    has exactly ``a.frac_bits + b.frac_bits`` fraction bits; ``acc`` is at least as wide as
    the exact product (one more bit when both operands are unsigned and ``acc`` is signed).
    ``tile_m`` is accepted with ``output_stationary`` and ignored there.
    """

    unit: Literal["mac_array"] = Field("mac_array", description="The unit family: `mac_array`.")
    rows: int = Field(ge=1, le=64, description="Processing elements along M (rows of `c`).")
    cols: int = Field(ge=1, le=64, description="Processing elements along N (columns of `c`).")
    a: MacOperand = Field(description="Format of the left operand `a` [M,K]: fixed point "
                          "(2..16 bits), fp8_e4m3, fp8_e5m2, fp6_e3m2, fp6_e2m3, fp4_e2m1 or an "
                          "MX format (then `a_scale` [M, K/32] comes with it).")
    b: MacOperand = Field(description="Format of the right operand `b` [K,N], as `a` (MX: "
                          "`b_scale` [K/32, N]).")
    acc: MacAcc = Field(
        description="Format of the accumulator and of the result `c`: fixed point (up to 64 "
        "bits; exact, then `overflow`) or fp32 (see docs/formats.md)."
    )
    overflow: OverflowRule
    dataflow: Literal["output_stationary", "weight_stationary"] = Field(
        default=OUTPUT_STATIONARY,
        description="`output_stationary`: each PE keeps one element of `c`; "
        "`weight_stationary`: each PE keeps one element of `b`.",
    )
    tile_m: int = Field(
        default=64, ge=1, le=4096,
        description="weight_stationary only (ignored otherwise): rows of `a` streamed per "
        "weight load, i.e. the depth of each column's accumulator buffer.",
    )
    max_k: MaxK
    requant: RequantBlock | None = RequantField
    packing: Literal["none", "dsp48", "mult18"] = Field(
        default="none",
        description="`none`: one multiplier per MAC; `dsp48`: two MACs that share `a` "
        "(neighbouring columns) in one 25x18 multiplier (Xilinx DSP48E1/E2; int8 x int8, "
        "int8 x uint8); `mult18`: two in one 18x18 multiplier (ECP5 MULT18X18D; int4 x int4, "
        "int8 x int4). Exact: see generators.mac_array.packing.",
    )

    @model_validator(mode="after")
    def _check_acc(self) -> MacArrayParams:
        if self.acc.kind == "fixed":
            mx = [str(f) for f in (self.a, self.b) if f.kind == "mx"]
            if mx:
                raise field_problem(
                    "acc", f"{self.acc} cannot hold the products of {mx[0]} operands, whose "
                    "block scales span 2**-254..2**254 (allowed: fp32 with MX operands)")
            check_acc(self.a_fixed, self.b_fixed, self.acc, f"{self.a} x {self.b}")
        elif self.overflow == "sat":
            raise field_problem("overflow", f"sat applies to a fixed-point acc, not to "
                                f"{self.acc} (allowed: wrap, the default, which fp32 ignores: "
                                "its sums round, overflowing to ±inf)")
        if self.requant is not None:
            check_block_acc(self.acc)
        why = pk.check_packing(self.packing, self.a, self.b)
        if why is not None:
            raise field_problem("packing", why)
        return self

    @model_serializer(mode="wrap")
    def _dump(self, handler):
        dumped = drop_absent_block(handler(self))
        # `packing: none` dumps (and so renders its manifest) exactly as before the key existed
        if isinstance(dumped, dict) and dumped.get("packing") == "none":
            del dumped["packing"]
        return dumped

    @property
    def epilogue(self) -> RequantParams | None:
        """The fused requant epilogue (one lane per column), or ``None`` without the block."""
        if self.requant is None:
            return None
        return epilogue_params(self.requant, self.acc, self.cols)

    @property
    def out_format(self) -> Format:
        """The format of ``c`` as it leaves the unit: the accumulator's, or the epilogue's
        ``out``."""
        return self.acc if self.requant is None else self.requant.out

    # -- widths -------------------------------------------------------------------------------

    @property
    def a_fixed(self) -> Format:
        """The fixed-point format of ``a``'s exact element values (see :func:`operand_fixed`)."""
        return operand_fixed(self.a)

    @property
    def b_fixed(self) -> Format:
        return operand_fixed(self.b)

    @property
    def mx(self) -> bool:
        """True when an operand is an MX format (blocks of 32 along K with scales)."""
        return self.a.kind == "mx" or self.b.kind == "mx"

    @property
    def floating(self) -> bool:
        """True when an operand is not fixed point (an element float or MX)."""
        return self.a.kind != "fixed" or self.b.kind != "fixed"

    @property
    def product(self) -> Format:
        """The format of the exact product of an ``a`` code and a ``b`` code (element values;
        MX scales apart)."""
        return product_format(self.a_fixed, self.b_fixed)

    @property
    def kulisch_width(self) -> int:
        """Bits of the exact fixed-point accumulator before an fp32 rounding (its LSB is the
        product's): the signed product and guard bits for a block of 32 (MX) or for
        ``max_k`` products."""
        k = MX_BLOCK if self.mx else self.max_k
        return product_width_in(self.product, Format(2, 2, True)) + (k - 1).bit_length()

    @property
    def internal_width(self) -> int:
        """Width of the accumulators inside the array (see :func:`internal_width`; with
        ``acc: fp32`` the exact accumulator's, :attr:`kulisch_width`)."""
        if self.acc.kind != "fixed":
            return self.kulisch_width
        return internal_width(self.product, self.acc, self.overflow, self.max_k)

    @property
    def pcols(self) -> int:
        """Physical columns of PEs: ``cols``, or ``ceil(cols / 2)`` with packing (a PE then
        serves a column pair through one wide multiplier; an odd last column has its own)."""
        return self.cols if self.packing == "none" else (self.cols + 1) // 2

    def pcol(self, j: int) -> int:
        """The physical column of PEs that computes column ``j`` of ``c``."""
        return j if self.packing == "none" else j // 2

    @property
    def multipliers(self) -> int:
        """Multipliers of the array (one per PE)."""
        return self.rows * self.pcols

    @property
    def macs_per_cycle(self) -> int:
        """Multiply-accumulates the array completes per cycle when fully busy."""
        return self.rows * self.cols

    # -- timing -------------------------------------------------------------------------------

    @property
    def latency(self) -> int:
        """Cycles from accepting the input beat that completes an output row to that row being
        valid on ``c_stream`` (no stalls)."""
        epi = 0 if self.requant is None else self.epilogue.latency
        if self.dataflow == OUTPUT_STATIONARY:
            # skew register, PE input chain (pcols), product register, accumulate+capture,
            # drain select, deskew (pcols-1), output register; MX: the block's fp32 add
            # before the capture
            return self.pcols + 4 + (1 if self.mx else 0) + epi
        return self.rows + self.pcols + 3 + epi

    @property
    def ws_pass_gap(self) -> int:
        """Weight-stationary: least cycles between the first beats of two passes (weight
        load of R beats may start once the previous weights reached every PE)."""
        return 2 * self.rows + self.pcols - 1

    def tiles(self, m: int, k: int, n: int) -> tuple[int, int, int]:
        """Blocks along M, K, N as the schedule streams them."""
        if self.dataflow == OUTPUT_STATIONARY:
            return math.ceil(m / self.rows), k, math.ceil(n / self.cols)
        return math.ceil(m / self.tile_m), math.ceil(k / self.rows), math.ceil(n / self.cols)

    def expected_cycles(self, m: int, k: int, n: int) -> int:
        """Cycles from the first input beat presented to the last output beat accepted, for an
        ``m x k`` by ``k x n`` GEMM streamed by :func:`.tiling.schedule` with no idle input
        cycles and no output back-pressure."""
        if min(m, k, n) < 1:
            raise ValueError("M, K and N must be at least 1")
        # with the epilogue, the parameter beats (one per cycle) come before the array starts
        # (the epilogue's latency is in self.latency)
        params = 0 if self.requant is None else self.epilogue.row_beats(n)
        return params + self._array_cycles(m, k, n)

    def _array_cycles(self, m: int, k: int, n: int) -> int:
        R, C = self.rows, self.cols
        if self.dataflow == OUTPUT_STATIONARY:
            tiles = math.ceil(m / R) * math.ceil(n / C)
            # The last beat of a tile waits until R cycles after the previous tile's last beat:
            # each tile drains R rows through one output port.
            last_beat = (k - 1) + (tiles - 1) * max(k, R)
            return last_beat + self.latency + (R - 1) + 1
        # weight stationary: passes of (rows of A) x (one K tile) x (one N block)
        mb_full, m_rem = divmod(m, self.tile_m)
        pass_rows = [self.tile_m] * mb_full + ([m_rem] if m_rem else [])
        kt = math.ceil(k / R)
        nb = math.ceil(n / C)
        first = R  # the first weight load takes R cycles
        last_rows = 0
        total_passes = len(pass_rows) * nb * kt
        done = 0
        for rows_p in pass_rows:
            for _ in range(nb * kt):
                done += 1
                if done < total_passes:
                    first += max(rows_p, self.ws_pass_gap)
                last_rows = rows_p
        return first + last_rows - 1 + self.latency + 1

    def epilogue_seq(self, m: int) -> tuple[int, int, int]:
        """``(rep, rep_last, groups)`` of the epilogue's parameter sequence for ``M`` rows (see
        :mod:`generators.requant.epilogue`): output stationary emits tiles of ``rows`` beats,
        N-blocks inner; weight stationary emits, per block of ``tile_m`` rows (the last one
        shorter), every N-block's rows in turn."""
        if self.dataflow == OUTPUT_STATIONARY:
            return self.rows, self.rows, math.ceil(m / self.rows)
        groups = math.ceil(m / self.tile_m)
        return self.tile_m, m - (groups - 1) * self.tile_m, groups

    def macs(self, m: int, k: int, n: int) -> int:
        return m * k * n

    def utilization(self, m: int, k: int, n: int, cycles: int) -> float:
        """Useful MACs over the MACs the PEs could have done in ``cycles``."""
        return self.macs(m, k, n) / (self.rows * self.cols * cycles)
