"""How a GEMM of any M, K, N is streamed through a fixed rows x cols array (NumPy only).

:func:`schedule` turns ``a`` and ``b`` into the beats of the array's input streams and
:func:`assemble` turns the output beats back into ``c``. The simulator benches, the CLI and the
host driver all use these two functions, so the streaming order is written down once.

Output stationary
    For each output tile (``rows`` x ``cols`` block of ``c``, M-blocks outer, N-blocks inner) the
    array takes K beats, beat k carrying column k of the ``a`` block on ``a_stream`` (lane i =
    tile row i, ``last`` set on k = K-1) and row k of the ``b`` block on ``b_stream``. It then
    emits ``rows`` beats on ``c_stream``, tile row 0 first, lane j = tile column j.

Weight stationary
    Passes over (M-block of ``tile_m`` rows, N-block, K-tile of ``rows``), K-tiles innermost.
    A pass loads a ``rows`` x ``cols`` block of ``b`` as ``rows`` beats on ``b_stream`` (the block's
    last row first: the weights shift down the columns), then streams the M-block's rows of
    ``a`` restricted to the K-tile on ``a_stream`` (``last`` on the block's final row,
    ``k_first``/``k_last`` on every beat of the first/last K-tile). The last K-tile's pass emits
    one ``c_stream`` beat per ``a`` row. Ragged edges are zero-padded; padded outputs are dropped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .params import OUTPUT_STATIONARY, MacArrayParams


@dataclass
class Schedule:
    """Input beats per stream (field name -> array with one leading entry per beat) and the
    number of output beats expected on ``c_stream``."""

    inputs: dict[str, dict[str, np.ndarray]]
    out_beats: int
    m: int
    k: int
    n: int


def _pad(x: np.ndarray, rows: int, cols: int) -> np.ndarray:
    if x.shape == (rows, cols):
        return x
    out = np.zeros((rows, cols), dtype=x.dtype)
    out[: x.shape[0], : x.shape[1]] = x
    return out


def schedule(p: MacArrayParams, a: np.ndarray, b: np.ndarray, a_scale=None,
             b_scale=None) -> Schedule:
    """The beats that make the array compute ``a @ b`` (see the module docstring). MX
    operands (output stationary): every beat also carries, per lane, the E8M0 scale code of
    the block of 32 its k is in (field ``scale``: ``a_scale`` [M, K/32], ``b_scale``
    [K/32, N]; padding lanes 0)."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    m, k = a.shape
    n = b.shape[1]
    R, C = p.rows, p.cols
    nb = math.ceil(n / C)
    if p.dataflow == OUTPUT_STATIONARY:
        mb = math.ceil(m / R)
        ap = _pad(a, mb * R, k).reshape(mb, R, k).transpose(0, 2, 1)  # [mb, k, R]
        bp = _pad(b, k, nb * C).reshape(k, nb, C).transpose(1, 0, 2)  # [nb, k, C]
        a_data = np.broadcast_to(ap[:, None], (mb, nb, k, R)).reshape(-1, R)
        b_data = np.broadcast_to(bp[None], (mb, nb, k, C)).reshape(-1, C)
        last = np.zeros((mb, nb, k), dtype=np.int64)
        last[..., -1] = 1
        inputs = {
            "a_stream": {"data": a_data, "last": last.reshape(-1)},
            "b_stream": {"data": b_data},
        }
        if a_scale is not None:
            sa = np.repeat(np.asarray(a_scale, dtype=np.int64), 32, axis=1)     # [M, K]
            sp = _pad(sa, mb * R, k).reshape(mb, R, k).transpose(0, 2, 1)
            inputs["a_stream"]["scale"] = np.broadcast_to(sp[:, None], (mb, nb, k, R)).reshape(
                -1, R)
        if b_scale is not None:
            sb = np.repeat(np.asarray(b_scale, dtype=np.int64), 32, axis=0)     # [K, N]
            sp = _pad(sb, k, nb * C).reshape(k, nb, C).transpose(1, 0, 2)
            inputs["b_stream"]["scale"] = np.broadcast_to(sp[None], (mb, nb, k, C)).reshape(
                -1, C)
        return Schedule(inputs, mb * nb * R, m, k, n)

    kt = math.ceil(k / R)
    ap = _pad(a, m, kt * R)
    bp = _pad(b, kt * R, nb * C)
    # weights per (nb, kt) pass: [nb, kt, R, C], rows reversed (the first beat ends at the bottom)
    w = bp.reshape(kt, R, nb, C).transpose(2, 0, 1, 3)[:, :, ::-1, :]
    a_parts, last_parts, kf_parts, kl_parts, b_parts = [], [], [], [], []
    for m0 in range(0, m, p.tile_m):
        rows = min(p.tile_m, m - m0)
        blk = ap[m0 : m0 + rows].reshape(rows, kt, R).transpose(1, 0, 2)  # [kt, rows, R]
        a_parts.append(np.broadcast_to(blk[None], (nb, kt, rows, R)).reshape(-1, R))
        last = np.zeros((nb, kt, rows), dtype=np.int64)
        last[..., -1] = 1
        kf = np.zeros((nb, kt, rows), dtype=np.int64)
        kf[:, 0, :] = 1
        kl = np.zeros((nb, kt, rows), dtype=np.int64)
        kl[:, -1, :] = 1
        last_parts.append(last.reshape(-1))
        kf_parts.append(kf.reshape(-1))
        kl_parts.append(kl.reshape(-1))
        b_parts.append(w.reshape(-1, C))
    inputs = {
        "a_stream": {
            "data": np.concatenate(a_parts),
            "last": np.concatenate(last_parts),
            "k_first": np.concatenate(kf_parts),
            "k_last": np.concatenate(kl_parts),
        },
        "b_stream": {"data": np.concatenate(b_parts)},
    }
    return Schedule(inputs, m * nb, m, k, n)


def assemble(p: MacArrayParams, sched: Schedule, c_data: np.ndarray) -> np.ndarray:
    """Turn the ``c_stream`` beats (``[out_beats, cols]`` lane codes) back into ``c [M, N]``."""
    m, n = sched.m, sched.n
    R, C = p.rows, p.cols
    nb = math.ceil(n / C)
    c_data = np.asarray(c_data)
    if c_data.shape != (sched.out_beats, C):
        raise ValueError(f"expected {sched.out_beats} output beats of {C} lanes, "
                         f"got {c_data.shape}")
    if p.dataflow == OUTPUT_STATIONARY:
        mb = math.ceil(m / R)
        full = c_data.reshape(mb, nb, R, C).transpose(0, 2, 1, 3).reshape(mb * R, nb * C)
        return full[:m, :n]
    parts = []
    for m0 in range(0, m, p.tile_m):
        rows = min(p.tile_m, m - m0)
        blk = c_data[m0 * nb : (m0 + rows) * nb].reshape(nb, rows, C)
        parts.append(blk.transpose(1, 0, 2).reshape(rows, nb * C))
    return np.concatenate(parts)[:, :n]


def stream_beats(p: MacArrayParams, m: int, k: int, n: int) -> dict[str, int]:
    """Beats on each stream for ``[M,K] @ [K,N]`` as :func:`schedule` makes them (without
    making them): what a board's buffers must hold."""
    R, C = p.rows, p.cols
    nb = math.ceil(n / C)
    if p.dataflow == OUTPUT_STATIONARY:
        tiles = math.ceil(m / R) * nb
        return {"a_stream": tiles * k, "b_stream": tiles * k, "c_stream": tiles * R}
    kt = math.ceil(k / R)
    return {"a_stream": nb * kt * m, "b_stream": math.ceil(m / p.tile_m) * nb * kt * R,
            "c_stream": m * nb}


def _same_beats(given: dict, made: dict) -> bool:
    if set(given) != set(made):
        return False
    for stream, fields in made.items():
        if set(given[stream]) != set(fields):
            return False
        for name, arr in fields.items():
            g = np.asarray(given[stream][name])
            if g.shape != arr.shape or not np.array_equal(g, arr):
                return False
    return True


def unschedule(p: MacArrayParams, inputs: dict, dims: tuple[int, int, int]) -> dict:
    """Inverse of :func:`schedule`: the input beats of a GEMM of shape ``dims = (M, K, N)``
    back to ``{"a": [M,K], "b": [K,N]}``.

    Raises ``ValueError`` when the beats are not exactly what :func:`schedule` makes for some
    ``a`` and ``b`` of that shape (wrong counts, copies that disagree, flags out of place,
    non-zero padding): the Python reference board refuses such a RUN.
    """
    m, k, n = (int(d) for d in dims)
    if min(m, k, n) < 1:
        raise ValueError(f"dims {dims} (allowed: M, K, N >= 1)")
    counts = stream_beats(p, m, k, n)
    R, C = p.rows, p.cols
    try:
        a_data = np.asarray(inputs["a_stream"]["data"], dtype=np.int64)
        b_data = np.asarray(inputs["b_stream"]["data"], dtype=np.int64)
    except KeyError as err:
        raise ValueError(f"missing stream field {err}") from None
    if a_data.shape != (counts["a_stream"], R) or b_data.shape != (counts["b_stream"], C):
        raise ValueError(f"beats {a_data.shape[:1]} and {b_data.shape[:1]} do not make a "
                         f"{m}x{k}x{n} GEMM (expected {counts['a_stream']} and "
                         f"{counts['b_stream']})")
    nb = math.ceil(n / C)
    if p.dataflow == OUTPUT_STATIONARY:
        mb = math.ceil(m / R)
        a = a_data.reshape(mb, nb, k, R)[:, 0].transpose(0, 2, 1).reshape(mb * R, k)[:m]
        b = b_data.reshape(mb, nb, k, C)[0].transpose(1, 0, 2).reshape(k, nb * C)[:, :n]
    else:
        kt = math.ceil(k / R)
        parts = []
        pos = 0
        for m0 in range(0, m, p.tile_m):
            rows = min(p.tile_m, m - m0)
            blk = a_data[pos:pos + nb * kt * rows].reshape(nb, kt, rows, R)[0]
            parts.append(blk.transpose(1, 0, 2).reshape(rows, kt * R))
            pos += nb * kt * rows
        a = np.concatenate(parts)[:, :k]
        w = b_data[:nb * kt * R].reshape(nb, kt, R, C)[:, :, ::-1, :]
        b = w.transpose(1, 2, 0, 3).reshape(kt * R, nb * C)[:k, :n]
    a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
    out = {"a": a, "b": b}
    if p.dataflow == OUTPUT_STATIONARY and k % 32 == 0:  # MX scales: every 32nd k
        mb = math.ceil(m / R)
        if "scale" in inputs["a_stream"]:
            sa = np.asarray(inputs["a_stream"]["scale"], dtype=np.int64)
            sa = sa.reshape(mb, nb, k, R)[:, 0].transpose(0, 2, 1).reshape(mb * R, k)[:m]
            out["a_scale"] = np.ascontiguousarray(sa[:, ::32])
        if "scale" in inputs["b_stream"]:
            sb = np.asarray(inputs["b_stream"]["scale"], dtype=np.int64)
            sb = sb.reshape(mb, nb, k, C)[0].transpose(1, 0, 2).reshape(k, nb * C)[:, :n]
            out["b_scale"] = np.ascontiguousarray(sb[::32])
    made = schedule(p, a, b, out.get("a_scale"), out.get("b_scale")).inputs
    if not _same_beats(inputs, made):
        raise ValueError(f"the beats are not a {m}x{k}x{n} GEMM schedule (copies, flags, "
                         "scales or padding differ)")
    return out


def disassemble(p: MacArrayParams, sched: Schedule, c: np.ndarray) -> np.ndarray:
    """Inverse of :func:`assemble`: ``c [M, N]`` to the ``c_stream`` beats ``[out_beats, cols]``
    the array emits for ``sched``."""
    m, n = sched.m, sched.n
    R, C = p.rows, p.cols
    nb = math.ceil(n / C)
    c = np.asarray(c)
    if c.shape != (m, n):
        raise ValueError(f"expected c of shape {(m, n)}, got {c.shape}")
    if p.dataflow == OUTPUT_STATIONARY:
        mb = math.ceil(m / R)
        full = _pad(c, mb * R, nb * C)
        return full.reshape(mb, R, nb, C).transpose(0, 2, 1, 3).reshape(-1, C)
    parts = []
    for m0 in range(0, m, p.tile_m):
        rows = min(p.tile_m, m - m0)
        blk = _pad(c[m0:m0 + rows], rows, nb * C)
        parts.append(blk.reshape(rows, nb, C).transpose(1, 0, 2).reshape(-1, C))
    return np.concatenate(parts)
