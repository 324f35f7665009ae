"""How ``y = w @ x`` of any O, K, B is streamed through a chain (NumPy only).

:func:`schedule` compresses ``w`` for the mode and turns it and ``x`` into the beats of the
chain's two input streams; :func:`assemble` turns the ``y_stream`` beats back into ``y``. The
simulator benches, the CLI and the host driver all use these two functions, so the streaming
order is written down once.

A *pass* (one activation beat) covers ``P = length // n`` groups (``P = 1`` when ``n >
length``), i.e. ``P * m`` consecutive K positions; K is cut into ``C = ceil(ceil(K / m) / P)``
passes (the last zero-padded). A pass's ``P * n`` slots take ``Q = ceil(P * n / length)``
weight beats (``Q = 1`` when ``n <= length``; when ``n > length`` a group spans ``Q`` beats).
Beats are ordered ``for o in O: for b in B: for c in C`` (and ``for j in Q`` on ``w_stream``);
the chain takes one weight beat per cycle and holds each activation beat for ``Q`` of them:

``w_stream``
    ``w``/``idx``: ``length`` lanes; lane ``s`` of beat ``j`` is slot ``t = j * length + s`` of
    the pass, i.e. slot ``t % n`` of group ``c * P + t // n`` of row ``o`` (value and its
    position in the group); lanes with ``t >= P * n`` are zero.
    ``mode``: the mode's position in the config's ``modes`` list. ``last``: set on the last
    beat of ``c = C-1``.
``x_stream``
    ``data``: ``x_lanes`` lanes (the largest ``P * m`` over the config's modes): lane ``i <
    P * m`` is ``x[c * P * m + i, b]``, the pass's ``P * m`` consecutive K positions of column
    ``b``, each once (zero past ``K``); lanes ``i >= P * m`` are zero here and don't-care for
    the chain (stage ``s`` reads lane ``(t // n) * m + idx[s]`` of its group's window, and a
    stage with ``t >= P * n`` reads none). A beat is thus ``x_lanes`` consecutive codes of a
    column stored contiguously, starting at K position ``c * P * m``: the board's address
    generator reads it straight from a ``col`` place of ``x`` (``SparseChainFamily.
    program_streams``), the lanes past the pass reading whatever follows
    (``SparseChainParams.x_overread_bytes``).
``y_stream``
    ``data``: one lane, ``y[o, b]``, after the pass with ``last`` (``O * B`` beats, row-major).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .model import compress, decompress
from .params import Mode, SparseChainParams


@dataclass
class Schedule:
    """Input beats per stream (field name -> array with one leading entry per beat) and the
    number of output beats expected on ``y_stream``."""

    inputs: dict[str, dict[str, np.ndarray]]
    out_beats: int
    o: int
    k: int
    b: int
    mode: str


def _weight_lanes(p: SparseChainParams, nm: Mode, values: np.ndarray,
                  indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The compressed ``values``/``indices [O, groups, n]`` as the ``w``/``idx`` lanes of one
    column's weight beats, ``[O, passes, length]`` (slot ``t`` of pass ``c`` on lane ``t %
    length`` of beat ``t // length``; zero past the pass's ``P * n`` slots)."""
    o, groups = values.shape[:2]
    per, q, L = p.groups_per_pass(nm), p.beats_per_group(nm), p.length
    xpasses = -(-groups // per) if groups else 1
    out = []
    for arr in (values, indices):
        pad = np.zeros((o, xpasses * per, nm.n), dtype=np.int64)
        pad[:, :groups] = arr
        lanes = np.zeros((o, xpasses, q * L), dtype=np.int64)
        lanes[:, :, :per * nm.n] = pad.reshape(o, xpasses, per * nm.n)
        out.append(lanes.reshape(o, xpasses * q, L))
    return out[0], out[1]


def schedule(p: SparseChainParams, w: np.ndarray, x: np.ndarray,
             mode: str | Mode | None = None) -> Schedule:
    """The beats that make the chain compute ``w @ x`` in ``mode`` (see the module docstring).

    Raises ``ValueError`` when ``w`` breaks the mode's pattern (see :func:`.model.compress`).
    """
    nm = p.mode(mode)
    w = np.asarray(w, dtype=np.int64)
    x = np.asarray(x, dtype=np.int64)
    o, k = w.shape
    b = x.shape[1]
    values, indices = compress(w, nm.n, nm.m)
    wl, il = _weight_lanes(p, nm, values, indices)
    per, xpasses, q = p.groups_per_pass(nm), p.x_passes(k, nm), p.beats_per_group(nm)
    passes, L = xpasses * q, p.length
    kp = per * p.m
    xp = np.zeros((xpasses * kp, b), dtype=np.int64)
    xp[:k] = x
    xl = np.zeros((b, xpasses, p.x_lanes), dtype=np.int64)
    xl[:, :, :kp] = xp.reshape(xpasses, kp, b).transpose(2, 0, 1)   # [b, xpasses, kp]
    beats = o * b * passes
    last = np.zeros((o, b, passes), dtype=np.int64)
    last[..., -1] = 1
    inputs = {
        "w_stream": {
            "w": np.broadcast_to(wl[:, None], (o, b, passes, L)).reshape(beats, L),
            "idx": np.broadcast_to(il[:, None], (o, b, passes, L)).reshape(beats, L),
            "mode": np.full(beats, p.mode_code(nm), dtype=np.int64),
            "last": last.reshape(-1),
        },
        "x_stream": {
            "data": np.broadcast_to(xl[None], (o, b, xpasses, p.x_lanes)).reshape(
                o * b * xpasses, p.x_lanes),
        },
    }
    return Schedule(inputs, o * b, o, k, b, str(nm))


def assemble(p: SparseChainParams, sched: Schedule, y_data: np.ndarray) -> np.ndarray:
    """Turn the ``y_stream`` beats (``[out_beats, 1]`` lane codes) back into ``y [O, B]``."""
    y_data = np.asarray(y_data)
    if y_data.shape != (sched.out_beats, 1):
        raise ValueError(f"expected {sched.out_beats} output beats of 1 lane, "
                         f"got {y_data.shape}")
    return y_data.reshape(sched.o, sched.b)


def stream_beats(p: SparseChainParams, o: int, k: int, b: int,
                 mode: str | Mode | None = None) -> dict[str, int]:
    """Beats on each stream for ``w [O,K] @ x [K,B]`` in ``mode`` as :func:`schedule` makes
    them (without making them)."""
    return {"w_stream": p.beats(o, k, b, mode), "x_stream": o * b * p.x_passes(k, mode),
            "y_stream": o * b}


def unschedule(p: SparseChainParams, inputs: dict, dims: tuple[int, int, int],
               mode: str | Mode | None = None) -> dict:
    """Inverse of :func:`schedule`: the input beats of ``dims = (O, K, B)`` in ``mode`` back to
    ``{"w": [O,K], "x": [K,B]}``.

    Raises ``ValueError`` when the beats are not exactly what :func:`schedule` makes for some
    ``w`` and ``x`` of that shape (counts, copies, mode or flags, non-canonical compression),
    except in the ``x_stream`` lanes that are don't-care: past the pass's ``k_per_pass``
    positions and past K, any code is accepted (the chain multiplies them by zero weights,
    and a board playing ``x`` from its tensor memory reads whatever follows the tensor there).
    """
    nm = p.mode(mode)
    o, k, b = (int(d) for d in dims)
    if min(o, k, b) < 1:
        raise ValueError(f"dims {dims} (allowed: O, K, B >= 1)")
    per, xpasses, q = p.groups_per_pass(nm), p.x_passes(k, nm), p.beats_per_group(nm)
    passes = xpasses * q
    used = per * nm.n
    groups = -(-k // p.m)
    beats = o * b * passes
    xbeats = o * b * xpasses
    try:
        wl = np.asarray(inputs["w_stream"]["w"], dtype=np.int64)
        il = np.asarray(inputs["w_stream"]["idx"], dtype=np.int64)
        xl = np.asarray(inputs["x_stream"]["data"], dtype=np.int64)
    except KeyError as err:
        raise ValueError(f"missing stream field {err}") from None
    L = p.length
    if wl.shape != (beats, L) or il.shape != (beats, L) or xl.shape != (xbeats, p.x_lanes):
        raise ValueError(f"beats {wl.shape[:1]} and {xl.shape[:1]} do not make a "
                         f"{o}x{k}x{b} product in mode {nm} (expected {beats} and {xbeats})")
    wv = wl.reshape(o, b, xpasses, q * L)[:, 0, :, :used].reshape(o, xpasses * per, nm.n)
    iv = il.reshape(o, b, xpasses, q * L)[:, 0, :, :used].reshape(o, xpasses * per, nm.n)
    w = decompress(wv[:, :groups], iv[:, :groups], p.m, k)
    # a beat holds the pass's k_per_pass positions of one column on its first lanes
    kp = per * p.m
    xs = xl.reshape(o, b, xpasses, p.x_lanes)[0, :, :, :kp]            # [b, xpasses, kp]
    x = np.ascontiguousarray(xs.transpose(1, 2, 0).reshape(xpasses * kp, b)[:k])
    made = schedule(p, w, x, nm).inputs
    # the lanes past the pass and the K positions past K are don't-care (their weights are
    # zero, the chain never reads them): a board playing x from memory has any codes there
    lane = np.arange(p.x_lanes)
    valid = (lane[None, :] < kp) & (np.arange(xpasses)[:, None] * kp + lane[None, :] < k)
    given_x = np.where(np.broadcast_to(valid, (o, b, xpasses, p.x_lanes)).reshape(
        xbeats, p.x_lanes), xl, 0)
    for stream, fields in made.items():
        for name, arr in fields.items():
            given = np.asarray(inputs[stream].get(name)) if name in inputs[stream] else None
            if stream == "x_stream" and name == "data":
                given = given_x
            if given is None or given.shape != arr.shape or not np.array_equal(given, arr):
                raise ValueError(f"the beats are not a {o}x{k}x{b} schedule in mode {nm} "
                                 f"({stream}.{name} differs)")
    return {"w": w, "x": x}


def disassemble(p: SparseChainParams, sched: Schedule, y: np.ndarray) -> np.ndarray:
    """Inverse of :func:`assemble`: ``y [O, B]`` to the ``y_stream`` beats ``[O*B, 1]``."""
    y = np.asarray(y)
    if y.shape != (sched.o, sched.b):
        raise ValueError(f"expected y of shape {(sched.o, sched.b)}, got {y.shape}")
    return y.reshape(sched.out_beats, 1)
