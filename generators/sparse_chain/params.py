"""Parameters of an N:M sparse DSP chain: its config model, validated once.

:class:`SparseChainParams` is both the ``unit: sparse_chain`` config schema and the parameters
the RTL, the schedule, the simulator and the reports read (modes, bus widths, latency, the
analytic cycle count), computed here in plain Python so nothing downstream re-derives them.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, model_serializer, model_validator

from ..mac_array.params import MaxK, OverflowRule, check_acc, internal_width, product_format
from ..numerics import Format
from ..requant.epilogue import (
    RequantBlock,
    RequantField,
    check_block_acc,
    drop_absent_block,
    epilogue_params,
)
from ..requant.params import RequantParams
from ..schema import AccFormat, OperandFormat, UnitBase, field_problem, problem, show, tuple_of

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


def _mode_text(value: Any) -> str:
    """One ``N:M`` pattern of ``modes``, in canonical spelling."""
    if isinstance(value, int) and not isinstance(value, bool):
        # YAML 1.1 reads an unquoted 2:4 as the base-60 number 124
        raise problem(f"{value} is not an N:M pattern (allowed: quoted strings such as '2:4'; "
                      "YAML reads an unquoted 2:4 as a number)")
    if not isinstance(value, str):
        raise problem(f"expected an N:M string such as '2:4', got {show(value)}")
    try:
        return str(Mode.parse(value))
    except ValueError:
        raise problem(f"{show(value)} is not an N:M pattern (allowed: strings such as "
                      "'2:4')") from None


ModeText = Annotated[str, BeforeValidator(_mode_text)]


class SparseChainParams(UnitBase):
    """A chain of ``length`` MAC stages computing ``y = w @ x`` from N:M-sparse ``w``
    (``unit: sparse_chain``), the pattern chosen at run time among ``modes``.

    Cross-field rules (checked on load): every mode is ``N:m`` with ``1 <= N <= m``, listed
    once; ``acc`` follows the MAC array's rules for the product ``w x x``. A mode with ``N <=
    length`` covers ``length // N`` whole groups per beat; one with ``N > length`` spreads a
    group over ``ceil(N / length)`` weight beats that share one activation beat.
    """

    unit: Literal["sparse_chain"] = Field("sparse_chain",
                                          description="The unit family: `sparse_chain`.")
    length: int = Field(ge=1, le=256, description="MAC stages (hard multipliers) in the chain.")
    m: Literal[2, 4, 8, 16] = Field(
        description="Group size M: weights are N:M sparse along K in groups of M consecutive "
        "positions; indices are log2(M) bits."
    )
    modes: Annotated[tuple[ModeText, ...], tuple_of("N:M patterns such as ['2:4', '4:4']")] \
        = Field(
        description="N:M patterns selectable at run time (`tensorfab run --mode`), e.g. "
        "['2:4', '1:4', '4:4']; the first is the default; the dense M:M is the baseline.",
        json_schema_extra={"items": {"type": "string", "pattern": r"^[0-9]+:[0-9]+$"}},
    )
    w: OperandFormat = Field(description="Format of the weights `w` [O,K] (2..16 bits).")
    x: OperandFormat = Field(description="Format of the activations `x` [K,B] (2..16 bits).")
    acc: AccFormat = Field(
        description="Format of the accumulator and of the result `y` (up to 64 bits)."
    )
    overflow: OverflowRule
    max_k: MaxK
    requant: RequantBlock | None = RequantField

    @model_serializer(mode="wrap")
    def _dump(self, handler):
        return drop_absent_block(handler(self))

    @property
    def epilogue(self) -> RequantParams | None:
        """The fused requant epilogue (one lane; a channel per row of ``y``), or ``None``."""
        if self.requant is None:
            return None
        return epilogue_params(self.requant, self.acc, 1)

    def epilogue_seq(self, b: int) -> tuple[int, int, int]:
        """``(rep, rep_last, groups)`` of the epilogue's sequence: ``y`` leaves row-major, so
        row ``o``'s parameters serve ``B`` consecutive beats, in one group."""
        return b, b, 1

    @model_validator(mode="after")
    def _check(self) -> SparseChainParams:
        if not self.modes:
            raise field_problem("modes", "empty list (allowed: at least one N:M pattern "
                                "such as '2:4')")
        seen: set = set()
        for i, text in enumerate(self.modes):
            mode = Mode.parse(text)
            where = f"modes[{i}]"
            if mode.m != self.m:
                raise field_problem(where, f"'{mode}' has M = {mode.m} but the chain's m is "
                                    f"{self.m} (allowed: N:{self.m} with 1 <= N <= {self.m})")
            if not 1 <= mode.n <= self.m:
                raise field_problem(where, f"'{mode}' has N = {mode.n} (allowed: N:{self.m} "
                                    f"with 1 <= N <= {self.m})")
            if text in seen:
                raise field_problem(where, f"'{mode}' is listed twice (allowed: each "
                                    "pattern once)")
            seen.add(text)
        check_acc(self.w, self.x, self.acc)
        if self.requant is not None:
            check_block_acc(self.acc)
        return self

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
        """Groups of M consecutive K one activation beat covers: ``length // n``, or 1 when
        ``n > length`` (the group then spans :meth:`beats_per_group` weight beats)."""
        return max(1, self.length // self.mode(mode).n)

    def beats_per_group(self, mode: str | Mode | None = None) -> int:
        """Weight beats per activation beat: ``ceil(n / length)`` when ``n > length`` (beat
        ``j`` of a group holds its slots ``j * length ...``; the last one's lanes past ``n``
        are zero), else 1."""
        n = self.mode(mode).n
        return -(-n // self.length) if n > self.length else 1

    @property
    def spans(self) -> bool:
        """Whether some mode spreads a group over several weight beats (``n > length``): the
        chain then holds each activation beat for :meth:`beats_per_group` weight beats."""
        return any(self.beats_per_group(nm) > 1 for nm in self.mode_list)

    def k_per_pass(self, mode: str | Mode | None = None) -> int:
        """Dense K positions one activation beat covers: ``groups_per_pass * m``."""
        return self.groups_per_pass(mode) * self.m

    @property
    def x_lanes(self) -> int:
        """Activation lanes per ``x_stream`` beat: the largest ``k_per_pass`` over ``modes``
        (``length * m`` only when a ``1:m`` mode is configured). A beat carries the pass's
        ``k_per_pass(mode)`` consecutive K positions of one column once, densely, on its first
        lanes; the lanes above are don't-care (see :mod:`.tiling`)."""
        return max(self.k_per_pass(mode) for mode in self.mode_list)

    @property
    def x_storage_bits(self) -> int:
        """Bits one ``x`` code takes in the tensor memory (:func:`generators.tm.storage_bits`)."""
        from ..tm import storage_bits

        return storage_bits(self.x.width)

    def x_pass_bytes(self, mode: str | Mode | None = None) -> int:
        """Bytes between the ``x_stream`` beats of consecutive passes read from a ``col`` place
        of ``x``: ``k_per_pass(mode)`` codes (a whole number of bytes: ``m`` is even)."""
        return self.k_per_pass(mode) * self.x_storage_bits // 8

    def x_overread_bytes(self, mode: str | Mode | None = None) -> int:
        """Slack for an ``x`` read from a ``col`` place in ``mode``: the bytes an ``x_stream``
        beat reads past the end of its pass, ``(x_lanes - k_per_pass(mode))`` codes, so also
        past the end of the last pass of the last column (byte ``(B-1)*ld + passes *
        x_pass_bytes``). The bank must hold that many bytes after it, any values (those lanes
        do not change the result); 0 in the mode with the largest pass."""
        return (self.x_lanes - self.k_per_pass(mode)) * self.x_storage_bits // 8

    def check_x_col(self, word_bytes: int, k: int | None = None,
                    mode: str | Mode | None = None) -> None:
        """Whether ``x`` can be read from a ``col`` place in ``mode`` on a tensor memory of
        ``word_bytes``-byte words (for ``K = k``; any K when ``None``): the pass stride
        :meth:`x_pass_bytes` must be a multiple of the ``x_stream`` beat's alignment
        (:func:`generators.tm.alignment`, the board's rule) once there are two passes or more.
        Raises :class:`generators.tm.ProgramError` (one line naming the modes that can)."""
        from ..tm import ProgramError, alignment

        unit = alignment(self.x_lanes * self.x_storage_bits // 8, word_bytes)

        def fits(nm):
            return self.x_pass_bytes(nm) % unit == 0

        nm = self.mode(mode)
        if fits(nm) or (k is not None and self.x_passes(k, nm) <= 1):
            return
        ok = [str(v) for v in self.mode_list if fits(v)]
        limit = f"K <= {self.k_per_pass(nm)}" if not ok else \
            f"K <= {self.k_per_pass(nm)}, or modes {', '.join(ok)}"
        raise ProgramError(
            f"sparse_chain x: a col place steps {self.x_pass_bytes(nm)} bytes per pass in mode "
            f"{nm}, not a multiple of {unit} ({self.x_lanes}-lane beats in {word_bytes}-byte "
            f"words) (allowed: raw x, or col x with {limit})")

    # -- widths -------------------------------------------------------------------------------

    @property
    def product(self) -> Format:
        """The format of the exact product of a ``w`` code and an ``x`` code."""
        return product_format(self.w, self.x)

    @property
    def internal_width(self) -> int:
        """Width of the partial sums and of the accumulator (the MAC array's rule:
        :func:`generators.mac_array.params.internal_width`)."""
        return internal_width(self.product, self.acc, self.overflow, self.max_k)

    @property
    def macs_per_cycle(self) -> int:
        """Hard multiply-accumulates per cycle when the chain is busy."""
        return self.length

    # -- timing -------------------------------------------------------------------------------

    @property
    def latency(self) -> int:
        """Cycles from accepting the beat that ends an output to that output being valid on
        ``y_stream``: the mux register, ``length - 1`` skew stages, the product register,
        ``length`` cascade adders of which the last also accumulates, and the output register
        (no stalls); with the epilogue, its latency too."""
        return self.length + 3 + (0 if self.requant is None else self.epilogue.latency)

    def x_passes(self, k: int, mode: str | Mode | None = None) -> int:
        """Activation beats per output element: ``ceil(ceil(K / m) / groups_per_pass)``."""
        return math.ceil(math.ceil(k / self.m) / self.groups_per_pass(mode))

    def passes(self, k: int, mode: str | Mode | None = None) -> int:
        """Weight beats (chain passes, one per cycle) per output element: ``x_passes *
        beats_per_group``."""
        return self.x_passes(k, mode) * self.beats_per_group(mode)

    def beats(self, o: int, k: int, b: int, mode: str | Mode | None = None) -> int:
        return o * b * self.passes(k, mode)

    def expected_cycles(self, o: int, k: int, b: int, mode: str | Mode | None = None) -> int:
        """Cycles from the first input beat presented to the last output beat accepted, for
        ``w [O,K] @ x [K,B]`` streamed by :func:`.tiling.schedule` with no idle input cycles
        and no output back-pressure: one beat per cycle, then the pipeline latency."""
        if min(o, k, b) < 1:
            raise ValueError("O, K and B must be at least 1")
        params = 0 if self.requant is None else self.epilogue.row_beats(o)  # p_stream first
        return params + self.beats(o, k, b, mode) + self.latency

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
