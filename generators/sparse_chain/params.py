"""Parameters of an N:M sparse DSP chain, derived once from its config.

Everything the RTL, the schedule, the simulator and the reports need to know about a chain
(modes, bus widths, latency, the analytic cycle count) is computed here, in plain Python, so
nothing downstream re-derives it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from ..mac_array.params import product_format
from ..numerics import Format, Overflow

_MODE_RE = re.compile(r"\s*([0-9]+)\s*:\s*([0-9]+)\s*")


@dataclass(frozen=True)
class Mode:
    """An N:M pattern: at most ``n`` non-zero weights in every group of ``m`` consecutive K."""

    n: int
    m: int

    @classmethod
    def parse(cls, text: str) -> Mode:
        """``"2:4"`` -> ``Mode(2, 4)``; raises ``ValueError`` for anything else."""
        match = _MODE_RE.fullmatch(text) if isinstance(text, str) else None
        if not match:
            raise ValueError(f"{text!r} is not an N:M pattern (allowed: strings such as '2:4')")
        return cls(int(match.group(1)), int(match.group(2)))

    def __str__(self) -> str:
        return f"{self.n}:{self.m}"


@dataclass(frozen=True)
class SparseChainParams:
    """A chain of ``length`` MAC stages computing ``y = w @ x`` from N:M-compressed ``w``.

    Parameters
    ----------
    length:
        MAC stages (hard multipliers) in the chain.
    m:
        Group size M (a power of two; indices are ``log2(m)`` bits).
    modes:
        The N:M patterns (``"N:M"`` strings) selectable at run time; the first is the default.
    w, x, acc:
        Weight, activation and accumulator formats (integer codes).
    overflow:
        ``"wrap"`` or ``"sat"``, applied once to the exact sum (see :mod:`.model`).
    max_k:
        Longest K for which ``sat`` is exact: the accumulator keeps that many guard bits.
    """

    length: int
    m: int
    modes: tuple[str, ...]
    w: Format
    x: Format
    acc: Format
    overflow: str = "wrap"
    max_k: int = 65536
    name: str = "sparse_chain"

    def __post_init__(self):
        if Overflow(self.overflow) not in (Overflow.WRAP, Overflow.SAT):
            raise ValueError(f"overflow {self.overflow!r}")
        if self.m < 2 or self.m & (self.m - 1):
            raise ValueError(f"m = {self.m} is not a power of two >= 2")
        if not self.modes:
            raise ValueError("at least one mode is needed")
        object.__setattr__(self, "modes", tuple(str(Mode.parse(t)) for t in self.modes))
        for mode in self.mode_list:
            if mode.m != self.m or not 1 <= mode.n <= self.m:
                raise ValueError(f"mode {mode} does not fit m = {self.m}")
            if mode.n > self.length:
                raise ValueError(f"mode {mode} needs length >= {mode.n}")
        if self.length < 1 or self.max_k < 1:
            raise ValueError("length and max_k must be positive")

    @classmethod
    def from_config(cls, cfg) -> SparseChainParams:
        return cls(length=cfg.length, m=cfg.m, modes=tuple(cfg.modes), w=cfg.w, x=cfg.x,
                   acc=cfg.acc, overflow=str(getattr(cfg.overflow, "value", cfg.overflow)),
                   max_k=cfg.max_k, name=cfg.name)

    # -- modes --------------------------------------------------------------------------------

    @property
    def mode_list(self) -> tuple[Mode, ...]:
        return tuple(Mode.parse(t) for t in self.modes)

    def mode(self, mode: str | Mode | None = None) -> Mode:
        """The :class:`Mode` named by ``mode`` (default: the first); ``ValueError`` (one line
        naming the allowed modes) when the chain has no such mode."""
        if mode is None:
            return self.mode_list[0]
        try:
            found = mode if isinstance(mode, Mode) else Mode.parse(mode)
        except ValueError:
            found = None
        if found not in self.mode_list:
            raise ValueError(f"mode {str(mode)!r} is not a mode of this chain "
                             f"(allowed: {', '.join(self.modes)})")
        return found

    def mode_code(self, mode: str | Mode | None = None) -> int:
        """The value of the ``mode`` field in the weight stream that selects ``mode``."""
        return self.mode_list.index(self.mode(mode))

    @property
    def mode_bits(self) -> int:
        return max(1, (len(self.modes) - 1).bit_length())

    @property
    def index_bits(self) -> int:
        """Bits of one position index inside a group, ``log2(m)``."""
        return self.m.bit_length() - 1

    def groups_per_pass(self, mode: str | Mode | None = None) -> int:
        """Groups of M consecutive K one chain pass covers: ``length // n``."""
        return self.length // self.mode(mode).n

    def k_per_pass(self, mode: str | Mode | None = None) -> int:
        """Dense K positions one beat covers: ``(length // n) * m``."""
        return self.groups_per_pass(mode) * self.m

    @property
    def x_lanes(self) -> int:
        """Activation lanes per ``x_stream`` beat: one window of ``m`` per stage, ``length * m``
        (stage ``s`` reads lanes ``s*m .. s*m+m-1`` only, whatever the mode)."""
        return self.length * self.m

    # -- widths -------------------------------------------------------------------------------

    @property
    def product(self) -> Format:
        return product_format(self.w, self.x)

    @property
    def internal_width(self) -> int:
        """Width of the partial sums and of the accumulator (see
        :attr:`generators.mac_array.params.MacArrayParams.internal_width`: the same rule)."""
        if Overflow(self.overflow) is Overflow.WRAP:
            return self.acc.width
        prod = self.product
        width = prod.width + (1 if self.acc.signed and not prod.signed else 0)
        return max(self.acc.width, width + (self.max_k - 1).bit_length())

    # -- timing -------------------------------------------------------------------------------

    @property
    def latency(self) -> int:
        """Cycles from accepting the beat that ends an output to that output being valid on
        ``y_stream``: the mux register, ``length - 1`` skew stages, the product register,
        ``length`` cascade adders of which the last also accumulates, and the output register
        (no stalls)."""
        return self.length + 3

    def passes(self, k: int, mode: str | Mode | None = None) -> int:
        """Beats per output element: ``ceil(ceil(K / m) / groups_per_pass)``."""
        return math.ceil(math.ceil(k / self.m) / self.groups_per_pass(mode))

    def beats(self, o: int, k: int, b: int, mode: str | Mode | None = None) -> int:
        return o * b * self.passes(k, mode)

    def expected_cycles(self, o: int, k: int, b: int, mode: str | Mode | None = None) -> int:
        """Cycles from the first input beat presented to the last output beat accepted, for
        ``w [O,K] @ x [K,B]`` streamed by :func:`.tiling.schedule` with no idle input cycles
        and no output back-pressure: one beat per cycle, then the pipeline latency."""
        if min(o, k, b) < 1:
            raise ValueError("O, K and B must be at least 1")
        return self.beats(o, k, b, mode) + self.latency

    def dense_macs(self, o: int, k: int, b: int) -> int:
        """The MACs of the dense product ``w @ x`` (what the chain's work is worth)."""
        return o * k * b

    def slot_macs(self, o: int, k: int, b: int, mode: str | Mode | None = None) -> int:
        """MACs of the compressed product (every kept slot, zero or not)."""
        return o * math.ceil(k / self.m) * self.mode(mode).n * b

    def utilization(self, o: int, k: int, b: int, cycles: int,
                    mode: str | Mode | None = None) -> float:
        """Compressed-form MACs over the MACs the stages could have done in ``cycles``."""
        return self.slot_macs(o, k, b, mode) / (self.length * cycles)

    def effective_macs_per_dsp_cycle(self, o: int, k: int, b: int, cycles: int) -> float:
        """Dense-equivalent MACs per stage (hard multiplier) per cycle."""
        return self.dense_macs(o, k, b) / (self.length * cycles)
