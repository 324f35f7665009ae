"""Parameters of the `network` unit: the lowered model, its stages and its cycle model."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import ConfigError
from ..hls.lower import (
    DenseLayer,
    GeluLayer,
    LoweredModel,
    SoftmaxLayer,
    from_config,
    gelu_params,
    softmax_params,
)

__all__ = ["NetworkParams"]

#: Layers that start a stage of their own (the others, ReLU and BatchNorm, are fused after it).
HEADS = (DenseLayer, SoftmaxLayer, GeluLayer)


@dataclass(frozen=True, eq=False)
class NetworkParams:
    """A lowered model cut into stages: each a Dense layer, a softmax unit or a gelu unit,
    followed by the element-wise layers (ReLU, BatchNorm) after it."""

    name: str
    model: LoweredModel
    stages: tuple

    @classmethod
    def from_config(cls, cfg) -> NetworkParams:
        model = from_config(cfg)
        stages: list[list] = []
        for layer in model.layers:
            if isinstance(layer, HEADS):
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

    @property
    def dense_stages(self) -> list:
        return [s for s in self.stages if isinstance(s[0], DenseLayer)]

    @staticmethod
    def chunking(dense: DenseLayer) -> tuple[int, int]:
        """``(P, C)``: inputs multiplied per cycle and cycles per row, from the reuse factor."""
        reuse = max(1, min(dense.reuse_factor, dense.n_in))
        p = math.ceil(dense.n_in / reuse)
        return p, math.ceil(dense.n_in / p)

    @property
    def multipliers(self) -> int:
        """Multipliers of the Dense stages (the gelu unit's polynomial path adds two per
        element of its row when its input is wider than 10 bits; they are not counted)."""
        return sum(self.chunking(s[0])[0] * s[0].n_out for s in self.dense_stages)

    @staticmethod
    def unit_params(head):
        """The softmax or gelu unit's parameters behind a stage head (None for Dense)."""
        if isinstance(head, SoftmaxLayer):
            return softmax_params(head)
        if isinstance(head, GeluLayer):
            return gelu_params(head)
        return None

    def stage_cycles(self) -> list[int]:
        """Cycles from a stage taking a row to offering its result: ``C + 2`` for Dense, the
        unit's latency for softmax (one beat per row) and GELU."""
        return [self.chunking(s[0])[1] + 2 if isinstance(s[0], DenseLayer)
                else self.unit_params(s[0]).latency for s in self.stages]

    @property
    def latency(self) -> int:
        """Cycles from a row taken to its result offered, with nothing ahead of it."""
        return sum(self.stage_cycles())

    def expected_cycles(self, rows: int) -> int:
        """Cycles from the first row offered to the last result taken, inputs always offered
        and outputs always ready: the stages' handshakes replayed cycle by cycle.

        Dense stage (``rtl._dense_stage``): ready when idle, or done and handing on; the result
        is offered ``C + 2`` cycles after a row is taken. gelu stage: a pipeline of ``latency``
        registers under one clock enable ``~out_valid | out_ready`` (ready = that enable).
        softmax stage: only last, with its output always ready, it takes every row at once and
        offers it ``latency`` cycles later (its passes never wait on each other for rows of
        one beat).
        """
        if rows <= 0:
            return 0
        kinds = []
        for s in self.stages:
            head = s[0]
            if isinstance(head, DenseLayer):
                kinds.append(("dense", self.chunking(head)[1]))
            elif isinstance(head, GeluLayer):
                kinds.append(("gelu", self.unit_params(head).latency))
            else:
                kinds.append(("softmax", self.unit_params(head).latency))
        n = len(kinds)
        # dense: [run, done, cnt]; gelu: list of valid bits (last = out valid);
        # softmax: list of cycles at which rows are offered
        state = [[0, 0, 0] if k == "dense" else ([0] * d if k == "gelu" else [])
                 for k, d in kinds]
        offered = taken_out = 0
        t = 0
        while True:
            out_valid = []
            for (k, _d), st in zip(kinds, state, strict=True):
                if k == "dense":
                    out_valid.append(st[1])
                elif k == "gelu":
                    out_valid.append(st[-1])
                else:
                    out_valid.append(1 if st and st[0] <= t else 0)
            out_ready = [0] * n
            in_ready = [0] * n
            ready = 1
            for s in range(n - 1, -1, -1):
                out_ready[s] = ready
                k, d = kinds[s]
                st = state[s]
                if k == "dense":
                    in_ready[s] = int(not st[0] and (not st[1] or out_ready[s]))
                elif k == "gelu":
                    in_ready[s] = int(not st[-1] or out_ready[s])
                else:
                    in_ready[s] = 1
                ready = in_ready[s]
            in_valid = [int(offered < rows)] + out_valid[:-1]
            for s in range(n):
                k, d = kinds[s]
                st = state[s]
                take = in_valid[s] and in_ready[s]
                give = out_valid[s] and out_ready[s]
                if k == "dense":
                    run, done, cnt = st
                    if take:
                        st[:] = [1, 0, 0]
                    elif give:
                        st[1] = 0
                    if run:
                        if cnt < d:
                            st[2] = cnt + 1
                        else:
                            st[0], st[1] = 0, 1
                elif k == "gelu":
                    if in_ready[s]:  # the clock enable
                        st[:] = [int(in_valid[s])] + st[:-1]
                else:
                    if give:
                        st.pop(0)
                    if take:
                        st.append(t + d)
            if in_valid[0] and in_ready[0]:
                offered += 1
            if out_valid[-1]:
                taken_out += 1
                if taken_out == rows:
                    return t + 1
            t += 1

    def check_rtl(self) -> None:
        """Raise :class:`ConfigError` for what the RTL does not build (the golden model does)."""
        for stage in self.dense_stages:
            acc = stage[0].accum
            if acc.overflow != "wrap":
                raise ConfigError(
                    f"{self.name}: layer {stage[0].name!r}: a saturating accumulator is "
                    "modelled but not built in RTL (allowed for --backend rtl: overflow wrap "
                    "in accum)")
