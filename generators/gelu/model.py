"""Bit-exact golden model of the GELU unit and its exact float64 reference (NumPy only).

:func:`gelu` is the one model of the unit (the integer specifications in :mod:`.params`),
called by every test tier, ``tensorfab run --backend golden`` and the benches.
"""

from __future__ import annotations

import numpy as np

from ..errors import ArrayError
from .params import COEF_FRAC, GeluParams, gelu_float


def poly_delta(p: GeluParams, u: np.ndarray) -> np.ndarray:
    """``D``: the integer polynomial of the ``poly`` spec at ``u = |x|`` (0 beyond span)."""
    q = p.poly
    u = np.asarray(u, dtype=np.int64)
    inside = u < q.span
    s = np.where(inside, u >> q.k, 0)
    t = u & ((1 << q.k) - 1)
    c0 = np.asarray(q.c0, dtype=np.int64)[s]
    c1 = np.asarray(q.c1, dtype=np.int64)[s]
    c2 = np.asarray(q.c2, dtype=np.int64)[s]
    h1 = (c2 * t) >> q.k
    d = c0 + (((c1 + h1) * t) >> (q.k + COEF_FRAC))
    return np.where(inside, d, 0)


def gelu(p: GeluParams, x: np.ndarray) -> np.ndarray:
    """Element-wise GELU of codes ``x`` (any shape) -> output codes (int64)."""
    x = np.asarray(x, dtype=np.int64)
    if p.kind == "table":
        return np.asarray(p.table, dtype=np.int64)[x - p.inp.min_code]
    g = p.internal_frac
    r = np.maximum(x, 0) << (g - p.inp.frac_bits)
    d = poly_delta(p, np.abs(x))
    sh = g - p.out.frac_bits
    y = (r - d + (1 << (sh - 1))) >> sh
    return np.clip(y, p.out.min_code, p.out.max_code)


def reference(p: GeluParams, x: np.ndarray) -> np.ndarray:
    """Exact GELU of the real values of ``x`` in float64."""
    return gelu_float(p.inp.dequantize(x))


def error_lsb(p: GeluParams, y: np.ndarray, exact: np.ndarray, signed: bool = False):
    """``code - clip(exact * 2**frac, min_code, max_code)`` in output LSBs (DESIGN.md)."""
    e = np.clip(np.ldexp(exact, p.out.frac_bits), p.out.min_code, p.out.max_code)
    err = np.asarray(y, dtype=np.float64) - e
    return err if signed else np.abs(err)


def all_inputs(p: GeluParams) -> np.ndarray:
    """Every input code, ascending."""
    return np.arange(p.inp.min_code, p.inp.max_code + 1, dtype=np.int64)


def check_inputs(p: GeluParams, arrays: dict) -> np.ndarray:
    """Validate a ``run`` input set ``{'x': [...]}`` (any shape, at least one element)."""
    if "x" not in arrays:
        raise ArrayError("missing array 'x' (gelu needs: x [...] of input codes)")
    extra = sorted(set(arrays) - {"x"})
    if extra:
        raise ArrayError(f"unexpected array {extra[0]!r} (gelu takes: x [...])")
    x = arrays["x"]
    if np.size(x) == 0:
        raise ArrayError(f"x: shape {tuple(np.shape(x))} is empty (allowed: at least one "
                         "element)")
    try:
        return p.inp.check_codes(x, "x")
    except ValueError as err:
        raise ArrayError(str(err)) from None
