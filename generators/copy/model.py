"""Bit-exact golden model of the copy unit (NumPy only): the identity on codes of the format.

:func:`copy` is the one model of the unit, called by every test tier, ``tensorfab run
--backend golden`` and the host.
"""

from __future__ import annotations

import numpy as np

from ..errors import ArrayError
from .params import CopyParams


def copy(p: CopyParams, x: np.ndarray) -> np.ndarray:
    """``y = x``: the codes ``x`` (any shape) as a new int64 array."""
    return np.array(x, dtype=np.int64)


def check_inputs(p: CopyParams, arrays: dict) -> np.ndarray:
    """Validate a ``run`` input set ``{'x': [...]}`` (any shape, at least one element, codes
    of ``format``)."""
    if "x" not in arrays:
        raise ArrayError("missing array 'x' (copy needs: x [...] of input codes)")
    extra = sorted(set(arrays) - {"x"})
    if extra:
        raise ArrayError(f"unexpected array {extra[0]!r} (copy takes: x [...])")
    x = arrays["x"]
    if np.size(x) == 0:
        raise ArrayError(f"x: shape {tuple(np.shape(x))} is empty (allowed: at least one "
                         "element)")
    try:
        return p.format.check_codes(x, "x")
    except ValueError as err:
        raise ArrayError(str(err)) from None
