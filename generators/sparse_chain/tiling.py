"""How ``y = w @ x`` of any O, K, B is streamed through a chain (NumPy only).

:func:`schedule` compresses ``w`` for the mode and turns it and ``x`` into the beats of the
chain's two input streams; :func:`assemble` turns the ``y_stream`` beats back into ``y``. The
simulator benches, the CLI and the host driver all use these two functions, so the streaming
order is written down once.

A *pass* covers ``P = length // n`` groups, i.e. ``P * m`` consecutive K positions; K is cut
into ``C = ceil(ceil(K / m) / P)`` passes (the last zero-padded). Beats are ordered
``for o in O: for b in B: for c in C`` and both streams carry one beat each per cycle:

``w_stream``
    ``w``/``idx``: ``length`` lanes; lane ``s`` is slot ``s % n`` of group ``c * P + s // n``
    of row ``o`` (value and its position in the group); lanes ``s >= P * n`` are zero.
    ``mode``: the mode's position in the config's ``modes`` list. ``last``: set when ``c = C-1``.
``x_stream``
    ``data``: ``x_lanes = length * m`` lanes, ``m`` per stage: lanes ``s*m + j`` (``j < m``)
    are ``x[(c * P + s // n) * m + j, b]``, the window of the group whose slot lane ``s`` of
    ``w_stream`` holds; zero for stages ``s >= P * n``. A window thus appears ``n`` times in a
    beat (once per slot of its group), which lets each stage select by its index alone.
``y_stream``
    ``data``: one lane, ``y[o, b]``, after the pass with ``last`` (``O * B`` beats, row-major).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .model import compress
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
    groups = values.shape[1]
    per = p.groups_per_pass(nm)
    passes = p.passes(k, nm)
    used = per * nm.n
    L = p.length
    wl = np.zeros((o, passes, L), dtype=np.int64)
    il = np.zeros((o, passes, L), dtype=np.int64)
    vpad = np.zeros((o, passes * per, nm.n), dtype=np.int64)
    ipad = np.zeros((o, passes * per, nm.n), dtype=np.int64)
    vpad[:, :groups], ipad[:, :groups] = values, indices
    wl[:, :, :used] = vpad.reshape(o, passes, used)
    il[:, :, :used] = ipad.reshape(o, passes, used)
    kp = per * p.m
    xp = np.zeros((passes * kp, b), dtype=np.int64)
    xp[:k] = x
    xl = np.zeros((b, passes, L, p.m), dtype=np.int64)
    windows = xp.reshape(passes, per, p.m, b).transpose(3, 0, 1, 2)  # [b, passes, per, m]
    xl[:, :, :used] = np.repeat(windows, nm.n, axis=2)             # stage s: group s // n
    xl = xl.reshape(b, passes, p.x_lanes)
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
            "data": np.broadcast_to(xl[None], (o, b, passes, p.x_lanes)).reshape(
                beats, p.x_lanes),
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
