"""Shared parameters and helpers for the copy unit's tests of every tier."""

from __future__ import annotations

import numpy as np

from generators.copy import CopyParams
from generators.copy import family as copy_family
from generators.numerics import Format

#: (format, lanes) of the simulated designs: int8 with 1 and 4 lanes, int16 and int4 with 1.
SIM_CASES = [("int8", 1), ("int8", 4), ("int16", 1), ("int4", 1)]


def copy_params(fmt="int8", lanes=1, name=None) -> CopyParams:
    tag = "".join(c if c.isalnum() else "_" for c in fmt)
    return CopyParams(format=Format.parse(fmt), lanes=lanes, name=name or f"copy_{tag}x{lanes}")


class WithLast(type(copy_family)):
    """The copy family that also returns the received ``last`` flags (``last``: one per output
    beat), so a test sees that the unit passes the flag through with its beat."""

    def assemble(self, params, ctx, received):
        out = super().assemble(params, ctx, received)
        out["last"] = np.asarray(received["o_stream"]["last"], dtype=np.int64).reshape(-1)
        return out


def codes(p: CopyParams, rng, shape) -> np.ndarray:
    """Random codes of ``p.format`` with both extreme codes in them."""
    x = rng.integers(p.format.min_code, p.format.max_code + 1, shape)
    flat = x.reshape(-1)
    flat[0], flat[-1] = p.format.min_code, p.format.max_code
    return x
