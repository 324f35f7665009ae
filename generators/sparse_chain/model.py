"""Bit-exact golden model of the sparse chain, and N:M compression (NumPy only; no Amaranth).

:func:`matmul` is the one model of the unit: the Amaranth-simulator tests, the cocotb benches,
``tensorfab run --backend golden`` and the host's reference board all call it. It is the dense
``w @ x`` followed by the accumulator's overflow rule, the same semantics as the MAC array.
:func:`chain_matmul` computes the same result the way the RTL does, from the compressed form,
pass by pass; tests show the two agree.

Compressed form
---------------
``w [O, K]`` is cut along K into ``G = ceil(K / m)`` groups of ``m`` consecutive columns (the
last group zero-padded). In mode ``n:m`` every group keeps exactly ``n`` *slots*, each a value
and a position index ``0 <= idx < m``: ``values [O, G, n]`` and ``indices [O, G, n]``. The slots
of a group are its non-zero positions plus, when it has fewer than ``n``, its lowest zero
positions, in ascending position order (so the form is canonical and the indices of a group are
distinct; for the dense mode ``m:m`` they are ``0..m-1``).

Bit packing (the one wire and file format of compressed weights)
----------------------------------------------------------------
Each slot is one lane of ``W + log2(m)`` bits, ``W`` the weight format's width: bits
``0..W-1`` hold the value's code modulo ``2**W`` (two's complement), bits ``W..W+log2(m)-1``
the index. The lanes of one row ``o`` are taken in ``(group, slot)`` order and packed by
:func:`generators.numerics.pack_bits` (lane 0 at bit 0 of byte 0, little-endian, the row padded
with zero bits to a whole byte), giving ``uint8 [O, ceil(G * n * (W + log2(m)) / 8)]``. See
docs/sparse_packing.md for a worked example.
"""

from __future__ import annotations

import numpy as np

from ..errors import ArrayError
from ..numerics import Format, exact_matmul, pack_bits, unpack_bits
from .params import Mode, SparseChainParams


def _check_nm(n: int, m: int) -> None:
    if m < 2 or m & (m - 1):
        raise ValueError(f"m = {m} is not a power of two >= 2")
    if not 1 <= n <= m:
        raise ValueError(f"n = {n} is out of range for m = {m} (allowed: 1..{m})")


def compress(w, n: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Compress an N:M-sparse ``w [O, K]`` into ``values, indices`` of shape ``[O, G, n]``.

    Parameters
    ----------
    w:
        Integer codes, at most ``n`` non-zero in every group of ``m`` consecutive columns.
    n, m:
        The pattern.

    Returns
    -------
    ``values`` (int64 codes) and ``indices`` (int64, ``0..m-1``), canonical as described in the
    module docstring.

    Raises
    ------
    ValueError
        ``w`` is not 2-D, or a group holds more than ``n`` non-zero values; the message names
        the first offending row and group (row-major order).
    """
    _check_nm(n, m)
    w = np.asarray(w)
    if w.ndim != 2:
        raise ValueError(f"w: shape {w.shape} is not 2-D (allowed: [O, K])")
    o, k = w.shape
    groups = -(-k // m)
    wp = np.zeros((o, groups * m), dtype=np.int64)
    wp[:, :k] = w
    wg = wp.reshape(o, groups, m)
    nz = np.count_nonzero(wg, axis=2)
    bad = nz > n
    if bad.any():
        r, g = (int(v) for v in np.argwhere(bad)[0])
        raise ValueError(
            f"row {r}, group {g} (columns {g * m}..{min(k, g * m + m) - 1}) has {int(nz[r, g])} "
            f"non-zero values (allowed: at most {n} per group of {m} in mode {n}:{m})")
    # non-zero positions first, then the lowest zero positions; ascending within the n chosen
    score = (wg == 0) * m + np.arange(m)
    idx = np.sort(np.argsort(score, axis=2, kind="stable")[:, :, :n], axis=2)
    return np.take_along_axis(wg, idx, axis=2), idx.astype(np.int64)


def decompress(values, indices, m: int, k: int) -> np.ndarray:
    """Inverse of :func:`compress`: ``[O, G, n]`` slots back to ``w [O, K]``.

    Raises ``ValueError`` for mismatched shapes, an index outside ``0..m-1``, a group that
    names one position twice, or ``k`` that does not fit ``G`` groups.
    """
    values = np.asarray(values, dtype=np.int64)
    indices = np.asarray(indices, dtype=np.int64)
    if values.shape != indices.shape or values.ndim != 3:
        raise ValueError(f"values {values.shape} and indices {indices.shape} must both be "
                         "[O, G, n]")
    o, groups, n = values.shape
    _check_nm(n, m)
    if not (groups - 1) * m < k <= groups * m:
        raise ValueError(f"k = {k} does not fit {groups} groups of {m}")
    if indices.size and (indices.min() < 0 or indices.max() >= m):
        raise ValueError(f"indices must lie in 0..{m - 1}")
    srt = np.sort(indices, axis=2)
    if n > 1 and (srt[:, :, 1:] == srt[:, :, :-1]).any():
        r, g = (int(v) for v in np.argwhere((srt[:, :, 1:] == srt[:, :, :-1]).any(axis=2))[0])
        raise ValueError(f"row {r}, group {g} names one position twice")
    wg = np.zeros((o, groups, m), dtype=np.int64)
    np.put_along_axis(wg, indices, values, axis=2)
    w = wg.reshape(o, groups * m)
    if w[:, k:].any():
        raise ValueError(f"non-zero values beyond column {k - 1}")
    return w[:, :k]


def pack(values, indices, w_format: Format, m: int) -> np.ndarray:
    """Compressed slots -> bytes ``uint8 [O, nbytes]`` (the bit packing of the module
    docstring). Values are taken modulo ``2**W``: validate them first."""
    values = np.asarray(values, dtype=np.int64)
    indices = np.asarray(indices, dtype=np.int64)
    o = values.shape[0]
    ib = m.bit_length() - 1
    wbits = w_format.width
    lanes = (values & ((1 << wbits) - 1)) | (indices << wbits)
    return pack_bits(lanes.reshape(o, -1), wbits + ib)


def unpack(buf, w_format: Format, n: int, m: int, groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`pack`: bytes ``[O, nbytes]`` -> ``values, indices [O, groups, n]``."""
    _check_nm(n, m)
    ib = m.bit_length() - 1
    wbits = w_format.width
    lanes = unpack_bits(buf, wbits + ib, groups * n, signed=False)
    o = lanes.shape[0]
    idx = (lanes >> wbits) & (m - 1)
    raw = lanes & ((1 << wbits) - 1)
    if w_format.signed:
        raw = np.where(raw >= 1 << (wbits - 1), raw - (1 << wbits), raw)
    return raw.reshape(o, groups, n), idx.reshape(o, groups, n)


# -- golden models ------------------------------------------------------------------------------


def matmul(params: SparseChainParams, w: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``y = overflow(w @ x)``: the exact integer product, then the accumulator's rule once.

    The sparsity mode does not change the result (it only says how ``w`` is stored).
    Returns ``[O, B]`` codes in the accumulator format.
    """
    return params.acc.apply_overflow(exact_matmul(w, x), params.overflow)


def chain_matmul(params: SparseChainParams, values, indices, x,
                 mode: str | Mode | None = None) -> np.ndarray:
    """The compressed-form model the RTL mirrors, pass by pass.

    Each activation beat (pass) covers ``groups_per_pass`` groups, whose slots the weight
    beats hold ``length`` at a time (stage ``s`` of beat ``j`` holds slot ``t = j * length +
    s`` of the pass: slot ``t % n`` of group ``t // n``; a group spans several beats when ``n >
    length``); a stage multiplies its value by the activation its index picks from its
    group's window of ``m`` activations; the cascade sums the stages of a beat, and the
    accumulator sums the beats, all in ``internal_width`` two's complement; the overflow rule
    is applied to the final sum.
    """
    mode = params.mode(mode)
    values = np.asarray(values, dtype=np.int64)
    indices = np.asarray(indices, dtype=np.int64)
    x = np.asarray(x, dtype=np.int64)
    o, groups, n = values.shape
    if n != mode.n:
        raise ValueError(f"slots per group {n} do not match mode {mode}")
    kx, b = x.shape
    per, q, L = params.groups_per_pass(mode), params.beats_per_group(mode), params.length
    passes = -(-groups // per)
    gp = passes * per
    vals = np.zeros((o, gp, n), dtype=np.int64)
    idx = np.zeros((o, gp, n), dtype=np.int64)
    vals[:, :groups], idx[:, :groups] = values, indices
    xp = np.zeros((gp * params.m, b), dtype=np.int64)
    xp[:kx] = x
    pos = np.arange(gp)[None, :, None] * params.m + idx           # [O, gp, n]
    picked = xp[pos]                                               # [O, gp, n, B]
    prods = vals[..., None].astype(object) * picked.astype(object)
    slots = np.zeros((o, passes, q * L, b), dtype=object)          # a pass's slots on beats
    slots[:, :, :per * n] = prods.reshape(o, passes, per * n, b)
    per_pass = slots.reshape(o, passes * q, L, b).sum(axis=2)      # the cascade's sums
    inner = Format(params.internal_width, params.internal_width, params.acc.signed)
    total = inner.wrap(inner.wrap(per_pass).astype(object).sum(axis=1))
    return params.acc.apply_overflow(total, params.overflow)


def check_inputs(params: SparseChainParams, arrays: dict,
                 mode: str | Mode | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Validate a ``run`` input set ``{'w': [O,K], 'x': [K,B]}`` for ``mode``; raise
    ``ArrayError`` (one line) for a missing/extra array, a bad shape or code, or a ``w`` that
    breaks the mode's pattern."""
    need = "sparse_chain needs: w [O,K], x [K,B]"
    missing = [name for name in ("w", "x") if name not in arrays]
    if missing:
        raise ArrayError(f"missing array {missing[0]!r} ({need})")
    extra = sorted(set(arrays) - {"w", "x"})
    if extra:
        raise ArrayError(f"unexpected array {extra[0]!r} (sparse_chain takes: w [O,K], x [K,B])")
    try:
        nm = params.mode(mode)
    except ValueError as err:
        raise ArrayError(str(err)) from None
    w, x = arrays["w"], arrays["x"]
    for name, arr in (("w", w), ("x", x)):
        if getattr(arr, "ndim", None) != 2:
            raise ArrayError(f"{name}: shape {tuple(np.shape(arr))} is not 2-D ({need})")
        if 0 in arr.shape:
            raise ArrayError(f"{name}: shape {arr.shape} is empty (allowed: every dimension >= 1)")
    if w.shape[1] != x.shape[0]:
        raise ArrayError(f"w: shape {w.shape} and x: shape {x.shape} do not chain "
                         f"(w's K = {w.shape[1]} must equal x's K = {x.shape[0]})")
    if params.overflow == "sat" and w.shape[1] > params.max_k:
        raise ArrayError(
            f"w: K = {w.shape[1]} exceeds this chain's max_k = {params.max_k} for overflow: sat "
            f"(allowed: K <= {params.max_k}; raise max_k in the config)")
    try:
        w = params.w.check_codes(w, "w")
        x = params.x.check_codes(x, "x")
        compress(w, nm.n, nm.m)
    except ValueError as err:
        msg = str(err)
        raise ArrayError(msg if msg.startswith(("w:", "x:")) else f"w: {msg}") from None
    return w, x
