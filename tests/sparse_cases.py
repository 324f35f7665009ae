"""Shared parameters and stimuli for the sparse-chain tests of every tier."""

from __future__ import annotations

import math

import numpy as np

from generators import registry
from generators.numerics import Format
from generators.sparse_chain import SparseChainParams


def make_params(length: int, m: int, modes, w: str = "int8", x: str = "int8",
                acc: str = "int32", name: str | None = None, **keys) -> SparseChainParams:
    """A chain with these formats; other config keys (overflow, max_k) as given, else the
    config's own defaults."""
    return SparseChainParams(length=length, m=m, modes=tuple(modes), w=Format.parse(w),
                             x=Format.parse(x), acc=Format.parse(acc),
                             name=name or f"sparse{length}m{m}", **keys)


def sparse_mask(rng, o: int, k: int, n: int, m: int, zero_groups: float = 0.1) -> np.ndarray:
    """A keep-mask with at most ``n`` kept positions in every group of ``m`` columns: random
    positions, some groups with fewer (or none) kept."""
    groups = math.ceil(k / m)
    keep = np.zeros((o, groups * m), dtype=bool)
    for r in range(o):
        for g in range(groups):
            width = min(m, k - g * m)
            cnt = min(n, width)
            u = rng.random()
            if u < zero_groups:
                cnt = 0
            elif u < 2 * zero_groups:
                cnt = int(rng.integers(0, cnt + 1))
            pos = rng.choice(width, size=cnt, replace=False)
            keep[r, g * m + pos] = True
    return keep[:, :k]


def random_operands(p: SparseChainParams, mode: str, o: int, k: int, b: int, rng) -> tuple:
    nm = p.mode(mode)
    w = rng.integers(p.w.min_code, p.w.max_code + 1, size=(o, k), dtype=np.int64)
    w = np.where(sparse_mask(rng, o, k, nm.n, nm.m), w, 0)
    x = rng.integers(p.x.min_code, p.x.max_code + 1, size=(k, b), dtype=np.int64)
    w.flat[0] = p.w.min_code if w.flat[0] else 0
    x[0, 0] = p.x.min_code
    return w, x


def overflow_k(p: SparseChainParams, n: int, cap: int = 320) -> int:
    """A K at which extreme products overflow the accumulator (with ``n`` of every ``m`` kept),
    capped for test time."""
    prod = max(abs(p.w.min_code * p.x.min_code), abs(p.w.max_code * p.x.max_code), 1)
    need = math.ceil((p.acc.max_code + 1) / prod * p.m / n) + 2 * p.m
    return max(1, min(need, cap, p.max_k))


def corner_operands(p: SparseChainParams, mode: str, which: str, rng, cap: int = 320) -> tuple:
    """Named corners: extreme codes over a long K (overflow), all-zero groups, K = 1."""
    nm = p.mode(mode)
    o, b = 3, 2
    if which in ("allmin_longk", "allmax_longk", "minmax_mixed"):
        k = overflow_k(p, nm.n, cap)
        keep = sparse_mask(rng, o, k, nm.n, nm.m, zero_groups=0.0)
        if which == "allmin_longk":
            w = np.full((o, k), p.w.min_code, np.int64)
            x = np.full((k, b), p.x.min_code, np.int64)
        elif which == "allmax_longk":
            w = np.full((o, k), p.w.max_code, np.int64)
            x = np.full((k, b), p.x.max_code, np.int64)
        else:
            w = np.where(rng.random((o, k)) < 0.5, p.w.min_code, p.w.max_code).astype(np.int64)
            x = np.where(rng.random((k, b)) < 0.5, p.x.min_code, p.x.max_code).astype(np.int64)
        return np.where(keep, w, 0), x
    if which == "zero_groups":
        k = 3 * p.k_per_pass(nm) + 1
        w, x = random_operands(p, mode, o, k, b, rng)
        w[:, : p.m] = 0                 # a whole group of zeros in every row
        w[1] = 0                        # and a row with no non-zero at all
        w[:, -1] = 0
        return w, x
    if which == "k1":
        w = rng.choice([p.w.min_code, p.w.max_code, 0], size=(5, 1)).astype(np.int64)
        x = rng.choice([p.x.min_code, p.x.max_code, 0], size=(1, 4)).astype(np.int64)
        return w, x
    raise ValueError(which)


CORNERS = ("allmin_longk", "allmax_longk", "minmax_mixed", "zero_groups", "k1")


class Batch(type(registry.family("sparse_chain"))):
    """The sparse_chain family playing several ``(w, x, mode)`` runs back to back as one
    stream on one design: the mode changes from beat to beat, and one simulator start serves
    them all (arrays: ``{"runs": [(w, x, mode), ...]}``)."""

    def schedule(self, params, arrays, *, mode=None):
        parts = [super(Batch, self).schedule(params, {"w": w, "x": x}, mode=m)
                 for w, x, m in arrays["runs"]]
        inputs = {s: {f: np.concatenate([p[0][s][f] for p in parts]) for f in parts[0][0][s]}
                  for s in parts[0][0]}
        return inputs, {"y_stream": sum(p[1]["y_stream"] for p in parts)}, parts

    def expected_cycles(self, params, arrays, *, mode=None):
        """No idle, no stall: the beats of all runs back to back, then one latency."""
        return sum(params.beats(*w.shape, x.shape[1], m)
                   for w, x, m in arrays["runs"]) + params.latency

    def assemble(self, params, parts, received):
        data = received["y_stream"]["data"]
        outs, start = [], 0
        for _, counts, ctx in parts:
            n = counts["y_stream"]
            chunk = {"y_stream": {"data": data[start:start + n]}}
            outs.append(super().assemble(params, ctx, chunk)["y"])
            start += n
        return {"y": outs}
