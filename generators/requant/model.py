"""Golden model of the requant unit and the validation of its run-time arrays.

The arithmetic is :func:`generators.numerics.requantize_fixed` (the one implementation); this
module only checks a run's arrays and fills in the defaults.
"""

from __future__ import annotations

import numpy as np

from ..errors import ArrayError
from ..numerics import SHIFT_RANGE, requantize_fixed
from .params import X_FORMAT, RequantParams

#: Arrays ``tensorfab run`` takes: the accumulators, then the parameters (all optional except
#: ``multiplier`` with rounding double/single).
ARRAYS = ("acc", "bias", "multiplier", "shift", "zero_point", "act_min", "act_max")
_I32 = (X_FORMAT.min_code, X_FORMAT.max_code)
_MULT = (0, (1 << 31) - 1)


def _ints(value, what: str) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind not in "iu":
        raise ArrayError(f"{what}: dtype {arr.dtype} is not an integer dtype (parameters "
                         "must be integers)")
    return arr.astype(np.int64)


def _in_range(arr: np.ndarray, what: str, lo: int, hi: int, allowed: str | None = None):
    bad = (arr < lo) | (arr > hi)
    if bad.any():
        flat = int(np.flatnonzero(bad.reshape(-1))[0])
        where = f" at index {flat}" if arr.ndim else ""
        raise ArrayError(f"{what}: value {int(arr.reshape(-1)[flat])}{where} is out of range "
                         f"(allowed: {allowed or f'{lo}..{hi}'})")


def _per_channel(arrays: dict, what: str, n: int, per: bool, default: int | None):
    """A parameter that is a scalar or (``per``) shape ``[N]``, as int64 (``[N]`` when per
    channel, a 0-d array otherwise)."""
    if what not in arrays:
        return None if default is None else np.full(n if per else (), default, np.int64)
    v = _ints(arrays[what], what)
    if v.ndim == 0:
        return np.full(n, int(v), np.int64) if per else v
    if per and v.shape == (n,):
        return v
    allowed = f"a scalar or shape ({n},)" if per else "a scalar (the unit is per: tensor)"
    raise ArrayError(f"{what}: shape {tuple(v.shape)} does not fit acc's N = {n} "
                     f"(allowed: {allowed})")


def _scalar(arrays: dict, what: str, p: RequantParams, default: int) -> int:
    if what not in arrays:
        return default
    v = _ints(arrays[what], what)
    if v.ndim != 0:
        raise ArrayError(f"{what}: shape {tuple(v.shape)} is not a scalar (allowed: shape ())")
    _in_range(v, what, p.out.min_code, p.out.max_code,
              f"{p.out.min_code}..{p.out.max_code}, the range of {p.out}")
    return int(v)


def check_inputs(p: RequantParams, arrays: dict) -> dict:
    """Validate a run's arrays; return them complete (defaults filled in) as int64:
    ``acc [R, N]``, ``bias [N]``, ``multiplier`` and ``shift`` (``[N]`` per channel, 0-d per
    tensor; no ``multiplier`` with a power-of-two rounding) and 0-d ``zero_point``,
    ``act_min``, ``act_max``. Raises :class:`ArrayError` (one line naming the array, the
    index and the allowed range) before anything is simulated."""
    if "acc" not in arrays:
        raise ArrayError("missing array 'acc' (requant needs: acc [R, N] of accumulator "
                         "codes)")
    extra = sorted(set(arrays) - set(ARRAYS))
    if extra:
        raise ArrayError(f"unexpected array {extra[0]!r} (requant takes: {', '.join(ARRAYS)})")
    acc = arrays["acc"]
    if np.ndim(acc) != 2 or 0 in np.shape(acc):
        raise ArrayError(f"acc: shape {tuple(np.shape(acc))} is not [R, N] (allowed: 2-D, "
                         "at least one row and one channel)")
    try:
        acc = p.inp.check_codes(acc, "acc")
    except ValueError as err:
        raise ArrayError(str(err)) from None
    n = acc.shape[1]
    if n > p.channels:
        raise ArrayError(f"acc: N = {n} channels exceed the parameter memory (allowed: N <= "
                         f"{p.channels}, the config's channels)")
    per = p.per == "channel"
    out = {"acc": acc}
    out["bias"] = _per_channel(arrays, "bias", n, True, 0)
    _in_range(out["bias"], "bias", *_I32)
    if p.uses_multiplier:
        m = _per_channel(arrays, "multiplier", n, per, None)
        if m is None:
            raise ArrayError(f"missing array 'multiplier' (rounding {p.rounding} needs it: a "
                             "scalar or [N] in 0..2**31-1, from quantize_multiplier)")
        _in_range(m, "multiplier", *_MULT, "0..2147483647, i.e. [0, 2**31)")
        if p.mult_shift:
            bad = (m & ((1 << p.mult_shift) - 1)) != 0
            if bad.any():
                flat = int(np.flatnonzero(bad.reshape(-1))[0])
                where = f" at index {flat}" if m.ndim else ""
                raise ArrayError(f"multiplier: value {int(m.reshape(-1)[flat])}{where} has "
                                 f"nonzero low {p.mult_shift} bits (allowed: multiples of "
                                 f"2**{p.mult_shift} in [0, 2**31) with mult_bits "
                                 f"{p.mult_bits}; quantize_multiplier(scale, "
                                 f"bits={p.mult_bits}) makes them)")
        out["multiplier"] = m
    elif "multiplier" in arrays:
        raise ArrayError(f"multiplier: not used with rounding {p.rounding} (the scale is "
                         "2**shift; allowed: no multiplier array)")
    out["shift"] = _per_channel(arrays, "shift", n, per, 0)
    _in_range(out["shift"], "shift", *SHIFT_RANGE)
    out["zero_point"] = np.asarray(_scalar(arrays, "zero_point", p, 0), np.int64)
    lo = _scalar(arrays, "act_min", p, p.out.min_code)
    hi = _scalar(arrays, "act_max", p, p.out.max_code)
    if lo > hi:
        raise ArrayError(f"act_min: {lo} > act_max {hi} (allowed: act_min <= act_max)")
    out["act_min"] = np.asarray(lo, np.int64)
    out["act_max"] = np.asarray(hi, np.int64)
    return out


def requant(p: RequantParams, arrays: dict) -> np.ndarray:
    """``y [R, N]``: the unit's output codes for checked arrays (:func:`check_inputs`)."""
    return requantize_fixed(
        arrays["acc"], bias=arrays["bias"], multiplier=arrays.get("multiplier"),
        shift=arrays["shift"], zero_point=int(arrays["zero_point"]),
        act_min=int(arrays["act_min"]), act_max=int(arrays["act_max"]),
        rounding=p.rounding, out_fmt=p.out, acc_fmt=X_FORMAT, overflow="wrap")
