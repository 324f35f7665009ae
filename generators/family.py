"""The unit-family protocol: what every family offers to the command line, the simulator
runner, the board and the host driver.

A family is one package under ``generators/`` (or anywhere, for a plug-in) holding its config
model (a :class:`~generators.schema.UnitBase` subclass that is also the unit's parameters), a
bit-exact golden model, its Amaranth component, and a :class:`UnitFamily` subclass that ties
them together. :mod:`generators.registry` lists the families; every list of families and every
dispatch on ``unit`` (configs, the CLI, boards, the host, the tests) is derived from it.

Streams and schedules
---------------------
A run of a unit on arrays goes through the same steps on every backend:

``check_inputs`` (validate the user's arrays) -> ``schedule`` (input beats per stream, output
beat counts, and a context) -> the hardware or simulator -> ``assemble`` (output arrays from
the received beats). ``golden`` computes the same outputs from the arrays directly.
The reference board needs the inverses: ``unschedule`` (arrays from input beats, refusing
beats no schedule makes) and ``disassemble`` (output beats from output arrays).
``shape_key`` gives the RUN dims of a problem and ``stream_beats`` the beats per stream for
given dims, without building them (the host uses it to cut large problems into several RUNs,
as :attr:`UnitFamily.split` says).

Modes
-----
A family with run-time modes (``has_modes``; the sparse chain's N:M patterns) takes
``mode=`` in every method that depends on it; ``mode=None`` is the config's default mode.
A family without modes refuses any mode other than ``None``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

__all__ = ["UnitFamily", "Split", "Arrays"]

#: Arrays by name, as ``tensorfab run`` reads them from an ``.npz`` file.
Arrays = dict[str, np.ndarray]


@dataclass(frozen=True)
class Split:
    """How the host cuts a problem that does not fit a board's buffers into several RUNs.

    ``kind``:
      - ``"none"``: not split (a problem that does not fit is an error);
      - ``"gemm"``: dims ``(d0, K, d2)``; ``rows`` names the (array, axis) along ``d0`` and
        ``cols`` the one along ``d2``; outputs are ``[d0, d2]`` and K must fit;
      - ``"rows"``: whole rows of ``x`` (axis 0), outputs have the rows of ``x``;
      - ``"elements"``: ``x`` flattened, cut into runs of elements, outputs reshaped back.

    ``row_arrays``/``col_arrays`` (gemm): per-channel arrays along ``d0``/``d2`` (a fused
    epilogue's ``bias``, ``multiplier``, ``shift``); a 1-D one is cut with the rows/columns,
    a scalar goes whole to every RUN. ``row_with``/``col_with`` (gemm): further (array, axis)
    pairs cut with the rows/columns when present (MX operands' scales).
    """

    kind: str = "none"
    rows: tuple[str, int] | None = None
    cols: tuple[str, int] | None = None
    row_arrays: tuple[str, ...] = ()
    col_arrays: tuple[str, ...] = ()
    row_with: tuple[tuple[str, int], ...] = ()
    col_with: tuple[tuple[str, int], ...] = ()

    def __post_init__(self):
        if self.kind not in ("none", "gemm", "rows", "elements"):
            raise ValueError(f"split kind {self.kind!r}")
        if (self.kind == "gemm") != (self.rows is not None and self.cols is not None):
            raise ValueError("a gemm split names its rows and cols (array, axis)")


class UnitFamily(ABC):
    """One unit family. Subclasses set the class attributes and implement every abstract
    method; :func:`generators.registry.register` checks that they did."""

    #: The config's ``unit`` key.
    name: ClassVar[str]
    #: The config model (also the unit's parameters): a :class:`~generators.schema.UnitBase`
    #: subclass with ``unit: Literal[name]``.
    config: ClassVar[type]
    #: Array names ``tensorfab run`` reads and writes.
    in_arrays: ClassVar[tuple[str, ...]]
    out_arrays: ClassVar[tuple[str, ...]]
    #: Whether the unit has run-time modes (``mode=``; see :meth:`mode`).
    has_modes: ClassVar[bool] = False
    #: How the host splits large problems.
    split: ClassVar[Split] = Split()
    #: Operand (a key of :meth:`program_streams`' ``places``) -> the stream that reads or
    #: writes it, for families that can run from the tensor memory (``p``: parameters).
    operand_streams: ClassVar[dict[str, str]] = {}

    # -- parameters and hardware -------------------------------------------------------------

    def params(self, cfg):
        """The unit's parameters: the validated config itself (derived values, like
        ``network``'s stages, are properties of the config model)."""
        return cfg

    @abstractmethod
    def component(self, params):
        """The Amaranth component (imports Amaranth: called only to emit or build)."""

    @abstractmethod
    def manifest_extra(self, params) -> dict:
        """Manifest keys beside ports and streams: at least ``latency`` and ``throughput``."""

    # -- modes -------------------------------------------------------------------------------

    def modes(self, params) -> tuple[str, ...]:
        """The run-time modes, the default first (``()`` without modes)."""
        return ()

    def mode(self, params, mode: str | None) -> str | None:
        """``mode`` in canonical spelling (``None`` -> the default); ``ValueError`` (one line
        naming what is allowed) for a mode the unit does not have."""
        if mode is not None:
            raise ValueError(f"mode {mode!r}: a {self.name} unit has no modes")
        return None

    # -- running -----------------------------------------------------------------------------

    @abstractmethod
    def check_inputs(self, params, arrays: Arrays, *, mode: str | None = None) -> Arrays:
        """The arrays as int64 codes, or :class:`~generators.errors.ArrayError` (one line)."""

    @abstractmethod
    def golden(self, params, arrays: Arrays, *, mode: str | None = None) -> Arrays:
        """The output arrays, from the one bit-exact golden model of the family."""

    @abstractmethod
    def schedule(self, params, arrays: Arrays, *, mode: str | None = None
                 ) -> tuple[dict, dict, Any]:
        """``(inputs, out_beats, ctx)``: field arrays per input stream, beats expected per
        output stream, and what :meth:`assemble` needs."""

    @abstractmethod
    def assemble(self, params, ctx, received: dict) -> Arrays:
        """Output arrays from the received output-stream fields."""

    @abstractmethod
    def shape_key(self, arrays: Arrays) -> tuple[int, ...]:
        """The RUN dims of a problem (at most three)."""

    @abstractmethod
    def stream_beats(self, params, dims: tuple[int, ...], *, mode: str | None = None
                     ) -> dict[str, int]:
        """Beats per stream (inputs and outputs) that :meth:`schedule` makes for ``dims``."""

    @abstractmethod
    def unschedule(self, params, inputs: dict, dims: tuple[int, ...], *,
                   mode: str | None = None) -> Arrays:
        """Inverse of :meth:`schedule`: the arrays from input beats; ``ValueError`` for beats
        that no schedule makes."""

    @abstractmethod
    def disassemble(self, params, ctx, outputs: Arrays) -> dict:
        """Inverse of :meth:`assemble`: output-stream fields from output arrays."""

    @abstractmethod
    def expected_cycles(self, params, arrays: Arrays, *, mode: str | None = None) -> int:
        """Cycles the RTL takes with no idle input and no back-pressure (asserted by tests)."""

    # -- programs over the tensor memory (protocol 2, docs/programs.md) ---------------------

    def program_streams(self, params, dims: tuple[int, ...], places: dict, streams: dict, *,
                        mode: str | None = None) -> dict:
        """The stream descriptors that play exactly the beats :meth:`schedule` makes for a
        problem of RUN dims ``dims``, with each operand at its place in the tensor memory.

        ``places``: operand name (the family's array names; ``p`` for a parameter stream) ->
        :class:`generators.tm.Place` (bank, base, layout, leading stride, optional shape).
        ``streams``: the unit's INFO ``streams`` (fields and beat bytes per stream). Returns
        one :class:`generators.tm.Descriptor` per stream, in the unit's stream order.
        Raises :class:`generators.tm.ProgramError` (one line) for places the unit cannot
        play: a layout it cannot read, a shape it cannot take. A ``raw`` stream's bytes are
        the stream's beats from :meth:`schedule` packed as protocol 1 packs them, each
        distinct beat stored once, ``ld`` bytes apart (see each family's docstring).
        """
        from .tm import no_program

        raise no_program(self.name)

    def raw_operands(self, params, arrays: Arrays, *, mode: str | None = None) -> dict:
        """The beats to store for each operand that :meth:`program_streams` plays ``raw``
        (operand -> ``{field: array}``, each distinct beat once, in stored order), from the
        run's arrays (only the raw operands' arrays need be real; the others may be zeros of
        the right shape). ``{}`` for a family without raw operands."""
        return {}

    @abstractmethod
    def stats(self, params, arrays: Arrays, cycles: int | None, *,
              mode: str | None = None) -> dict:
        """What ``--stats`` reports: sizes, ``expected_cycles``, and with ``cycles`` the
        measured figures (``utilization`` for MAC-type units)."""
