"""Adversarial and random softmax rows, shared by the tests and the benches (NumPy only)."""

from __future__ import annotations

import numpy as np

from .params import SoftmaxParams

#: Names of the adversarial row kinds (:func:`adversarial_rows`).
KINDS = ("all_equal_min", "all_equal_zero", "all_equal_max", "one_huge", "one_huge_last",
         "all_min_one_above", "ties_top2", "ties_all_but_one", "near_tie_top2",
         "alternating", "ramp", "two_level", "random")


def adversarial_row(p: SoftmaxParams, kind: str, n: int, rng) -> np.ndarray:
    """One row of ``n`` codes of the named kind."""
    lo, hi = p.inp.min_code, p.inp.max_code
    zero = 0 if lo <= 0 <= hi else lo
    rand = rng.integers(lo, hi + 1, n)
    pos = int(rng.integers(0, n))
    if kind == "all_equal_min":
        return np.full(n, lo)
    if kind == "all_equal_zero":
        return np.full(n, zero)
    if kind == "all_equal_max":
        return np.full(n, hi)
    if kind == "one_huge":
        row = np.full(n, lo)
        row[pos] = hi
        return row
    if kind == "one_huge_last":
        row = np.full(n, lo)
        row[-1] = hi
        return row
    if kind == "all_min_one_above":
        row = np.full(n, lo)
        row[pos] = lo + 1
        return row
    if kind == "ties_top2":
        row = rng.integers(lo, hi, n)
        row[pos] = hi
        row[(pos + 1 + int(rng.integers(0, max(n - 1, 1)))) % n] = hi
        return row
    if kind == "ties_all_but_one":
        row = np.full(n, hi)
        row[pos] = lo
        return row
    if kind == "near_tie_top2":
        row = rng.integers(lo, hi - 1, n)
        row[pos] = hi
        row[(pos + 1) % n] = hi - 1 if n > 1 else hi
        return row
    if kind == "alternating":
        return np.where(np.arange(n) % 2 == 0, lo, hi)
    if kind == "ramp":
        return np.linspace(lo, hi, n).round().astype(np.int64)
    if kind == "two_level":
        return np.where(rng.random(n) < 0.5, hi, hi - max(1, (hi - lo) // 16))
    if kind == "random":
        return rand
    raise ValueError(f"unknown row kind {kind!r} (allowed: {', '.join(KINDS)})")


def adversarial_rows(p: SoftmaxParams, rng, lengths=None) -> list[np.ndarray]:
    """Every kind at lengths 1, 2, 3, ``lanes + 1``, ``length - 1`` and ``length``."""
    if lengths is None:
        lengths = sorted(n for n in {1, 2, 3, p.lanes + 1, p.length - 1, p.length}
                         if 1 <= n <= p.length)
    return [adversarial_row(p, kind, n, rng).astype(np.int64) for n in lengths for kind in KINDS]


def random_rows(p: SoftmaxParams, rng, count: int, n: int | None = None) -> np.ndarray:
    """``count`` rows of uniformly random codes, all of length ``n`` (default ``length``)."""
    n = p.length if n is None else n
    return rng.integers(p.inp.min_code, p.inp.max_code + 1, (count, n), dtype=np.int64)
