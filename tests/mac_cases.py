"""Shared parameters and stimuli for the MAC-array tests of every tier."""

from __future__ import annotations

import math

import numpy as np

from generators.mac_array import MacArrayParams
from generators.numerics import Format


def make_params(rows: int, cols: int, a: str = "int8", b: str = "int8", acc: str = "int32",
                **keys) -> MacArrayParams:
    """An array with these formats; other config keys (overflow, dataflow, tile_m, max_k) as
    given, else the config's own defaults."""
    return MacArrayParams(rows=rows, cols=cols, a=Format.parse(a), b=Format.parse(b),
                          acc=Format.parse(acc), name=f"mac{rows}x{cols}", **keys)


def random_operands(p: MacArrayParams, m: int, k: int, n: int, rng) -> tuple:
    a = rng.integers(p.a.min_code, p.a.max_code + 1, size=(m, k), dtype=np.int64)
    b = rng.integers(p.b.min_code, p.b.max_code + 1, size=(k, n), dtype=np.int64)
    # a few zero rows/columns and extreme codes mixed in
    if m > 2:
        a[rng.integers(0, m)] = 0
    if n > 2:
        b[:, rng.integers(0, n)] = p.b.max_code
    a[0, 0] = p.a.min_code
    return a, b


def overflow_k(p: MacArrayParams, cap: int = 320) -> int:
    """A K at which all-min x all-min (or all-max x all-max) products overflow the
    accumulator, capped for test time."""
    prod = max(abs(p.a.min_code * p.b.min_code), abs(p.a.max_code * p.b.max_code), 1)
    need = math.ceil((p.acc.max_code + 1) / prod) + 2
    return max(1, min(need, cap, p.max_k))


def corner_operands(p: MacArrayParams, which: str, rng) -> tuple:
    """Named corner cases: all-min x all-min over a long K, all-max x all-max, zeros, and
    ragged K = 1 extremes."""
    R, C = p.rows, p.cols
    m, n = R + 1 if R > 1 else 2, C + 1 if C > 1 else 3
    if which == "allmin_longk":
        k = overflow_k(p)
        return (np.full((m, k), p.a.min_code, np.int64), np.full((k, n), p.b.min_code, np.int64))
    if which == "allmax_longk":
        k = overflow_k(p)
        return (np.full((m, k), p.a.max_code, np.int64), np.full((k, n), p.b.max_code, np.int64))
    if which == "minmax_mixed":
        k = overflow_k(p)
        a = np.where(rng.random((m, k)) < 0.5, p.a.min_code, p.a.max_code).astype(np.int64)
        b = np.where(rng.random((k, n)) < 0.5, p.b.min_code, p.b.max_code).astype(np.int64)
        return a, b
    if which == "zeros":
        return np.zeros((m, 3), np.int64), rng.integers(p.b.min_code, p.b.max_code + 1, (3, n))
    if which == "k1_ragged":
        a = rng.choice([p.a.min_code, p.a.max_code, 0], size=(2 * R + 1, 1)).astype(np.int64)
        b = rng.choice([p.b.min_code, p.b.max_code, 0], size=(1, 2 * C + 1)).astype(np.int64)
        return a, b
    raise ValueError(which)


CORNERS = ("allmin_longk", "allmax_longk", "minmax_mixed", "zeros", "k1_ragged")
