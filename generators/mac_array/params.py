"""Parameters of a systolic MAC array, derived once from its config.

Everything the RTL, the schedule, the simulator and the reports need to know about an array
(widths, latency, the analytic cycle count) is computed here, in plain Python, so nothing
downstream re-derives it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..numerics import Format, Overflow

OUTPUT_STATIONARY = "output_stationary"
WEIGHT_STATIONARY = "weight_stationary"
DATAFLOWS = (OUTPUT_STATIONARY, WEIGHT_STATIONARY)


def product_format(a: Format, b: Format) -> Format:
    """The format that holds every exact product of an ``a`` code and a ``b`` code."""
    # W1 + W2 bits hold every product in any signed/unsigned mix (e.g. int8 x uint8 lies in
    # -32640..32385); the result is signed when either operand is.
    return Format(width=a.width + b.width, int_bits=a.int_bits + b.int_bits,
                  signed=a.signed or b.signed)


@dataclass(frozen=True)
class MacArrayParams:
    """A rows x cols systolic array computing ``c = a @ b`` with the accumulator's overflow rule.

    Parameters
    ----------
    rows, cols:
        Array size in processing elements.
    a, b, acc:
        Operand and accumulator formats (integer codes; fixed-point formats only give meaning).
    overflow:
        ``"wrap"`` or ``"sat"``, applied once to the exact sum (see :mod:`.model`).
    dataflow:
        ``"output_stationary"`` or ``"weight_stationary"``.
    tile_m:
        Weight-stationary only: rows of ``a`` streamed per weight load (accumulator depth).
    max_k:
        Longest K for which ``sat`` is exact: the accumulator keeps that many guard bits.
    """

    rows: int
    cols: int
    a: Format
    b: Format
    acc: Format
    overflow: str = "wrap"
    dataflow: str = OUTPUT_STATIONARY
    tile_m: int = 64
    max_k: int = 65536
    name: str = "mac_array"

    def __post_init__(self):
        if self.dataflow not in DATAFLOWS:
            raise ValueError(f"dataflow {self.dataflow!r} (allowed: {', '.join(DATAFLOWS)})")
        if Overflow(self.overflow) not in (Overflow.WRAP, Overflow.SAT):
            raise ValueError(f"overflow {self.overflow!r}")
        if self.rows < 1 or self.cols < 1 or self.tile_m < 1 or self.max_k < 1:
            raise ValueError("rows, cols, tile_m and max_k must be positive")

    @classmethod
    def from_config(cls, cfg) -> MacArrayParams:
        return cls(
            rows=cfg.rows,
            cols=cfg.cols,
            a=cfg.a,
            b=cfg.b,
            acc=cfg.acc,
            overflow=str(getattr(cfg.overflow, "value", cfg.overflow)),
            dataflow=str(getattr(cfg.dataflow, "value", cfg.dataflow)),
            tile_m=cfg.tile_m,
            max_k=cfg.max_k,
            name=cfg.name,
        )

    # -- widths -------------------------------------------------------------------------------

    @property
    def product(self) -> Format:
        return product_format(self.a, self.b)

    @property
    def internal_width(self) -> int:
        """Width of the accumulators inside the array.

        With ``wrap`` the accumulator's own width suffices (two's-complement sums are exact
        modulo 2**width). With ``sat`` the exact sum must be known before it is clamped: the
        product's width in the accumulator's signedness (one more bit for an unsigned product
        in a signed accumulator) plus ``ceil(log2(max_k))`` guard bits, which holds ``max_k``
        worst-case products. Every partial sum in the array is a sum of at most K <= max_k
        products (padding adds zeros), so none overflows.
        """
        if Overflow(self.overflow) is Overflow.WRAP:
            return self.acc.width
        prod = self.product
        width = prod.width + (1 if self.acc.signed and not prod.signed else 0)
        guard = (self.max_k - 1).bit_length()  # ceil(log2(max_k)) for integers
        return max(self.acc.width, width + guard)

    # -- timing -------------------------------------------------------------------------------

    @property
    def latency(self) -> int:
        """Cycles from accepting the input beat that completes an output row to that row being
        valid on ``c_stream`` (no stalls)."""
        if self.dataflow == OUTPUT_STATIONARY:
            # skew register, PE input chain (cols), product register, accumulate+capture,
            # drain select, deskew (cols-1), output register
            return self.cols + 4
        return self.rows + self.cols + 3

    @property
    def ws_pass_gap(self) -> int:
        """Weight-stationary: least cycles between the first beats of two passes (weight
        load of R beats may start once the previous weights reached every PE)."""
        return 2 * self.rows + self.cols - 1

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

    def macs(self, m: int, k: int, n: int) -> int:
        return m * k * n

    def utilization(self, m: int, k: int, n: int, cycles: int) -> float:
        """Useful MACs over the MACs the PEs could have done in ``cycles``."""
        return self.macs(m, k, n) / (self.rows * self.cols * cycles)
