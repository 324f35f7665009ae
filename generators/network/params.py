"""Parameters of the `network` unit: the lowered model, its stages and its cycle model."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import ConfigError
from ..hls.lower import DenseLayer, LoweredModel, from_config

__all__ = ["NetworkParams"]


@dataclass(frozen=True, eq=False)
class NetworkParams:
    """A lowered model cut into stages: each a Dense layer and the elementwise layers after it."""

    name: str
    model: LoweredModel
    stages: tuple

    @classmethod
    def from_config(cls, cfg) -> NetworkParams:
        model = from_config(cfg)
        stages: list[list] = []
        for layer in model.layers:
            if isinstance(layer, DenseLayer):
                stages.append([layer])
            else:
                stages[-1].append(layer)
        return cls(name=cfg.name, model=model, stages=tuple(tuple(s) for s in stages))

    def __repr__(self) -> str:  # the build cache key: everything that shapes the RTL
        parts = []
        for stage in self.stages:
            for layer in stage:
                d = {k: v for k, v in vars(layer).items() if k not in ("w", "b", "scale")}
                for k in ("w", "b", "scale"):
                    if hasattr(layer, k):
                        d[k] = getattr(layer, k).tolist()
                parts.append(repr(sorted(d.items())))
        return f"NetworkParams({self.model.inp!r}, {parts})"

    @property
    def n_in(self) -> int:
        return self.stages[0][0].n_in

    @property
    def n_out(self) -> int:
        return self.stages[-1][0].n_out

    @staticmethod
    def chunking(dense: DenseLayer) -> tuple[int, int]:
        """``(P, C)``: inputs multiplied per cycle and cycles per row, from the reuse factor."""
        reuse = max(1, min(dense.reuse_factor, dense.n_in))
        p = math.ceil(dense.n_in / reuse)
        return p, math.ceil(dense.n_in / p)

    @property
    def multipliers(self) -> int:
        return sum(self.chunking(s[0])[0] * s[0].n_out for s in self.stages)

    def stage_cycles(self) -> list[int]:
        """Cycles from a stage taking a row to offering its result: ``C + 2``."""
        return [self.chunking(s[0])[1] + 2 for s in self.stages]

    @property
    def latency(self) -> int:
        """Cycles from a row taken to its result offered, with nothing ahead of it."""
        return sum(self.stage_cycles())

    def expected_cycles(self, rows: int) -> int:
        """Cycles from the first row offered to the last result taken, inputs always offered
        and outputs always ready (the stage handshake replayed row by row)."""
        if rows <= 0:
            return 0
        d = self.stage_cycles()
        n = len(d)
        free = [0] * n  # cycle from which each stage may take its next row
        offered = 0
        last = 0
        for _ in range(rows):
            t = offered
            taken = []
            for s in range(n):
                t = max(t, free[s])
                taken.append(t)
                t += d[s]  # result offered from here
            last = t
            for s in range(n - 1):
                free[s] = taken[s + 1]  # handed on when the next stage takes it
            free[-1] = last  # the output is always ready: handed on at once
            offered = taken[0] + 1
        return last + 1

    def check_rtl(self) -> None:
        """Raise :class:`ConfigError` for what the RTL does not build (the golden model does)."""
        for stage in self.stages:
            acc = stage[0].accum
            if acc.overflow != "wrap":
                raise ConfigError(
                    f"{self.name}: layer {stage[0].name!r}: a saturating accumulator is "
                    "modelled but not built in RTL (allowed for --backend rtl: overflow wrap "
                    "in accum)")
