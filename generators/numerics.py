"""Number formats, exact quantization and the project's one bit-packing routine.

A :class:`Format` gives integer *codes* a meaning: ``value = code * 2**-frac_bits``, with codes
in ``[min_code, max_code]`` (two's complement when signed). Formats follow the hls4ml/``ap_fixed``
convention: ``fixed<W,I>`` has ``W`` total bits of which ``I`` are integer bits including the
sign; ``intN``/``uintN`` are the formats with no fraction bits.

Rounding rules (``ap_fixed`` quantization modes, applied when bits below the LSB are dropped):

- ``trn`` (``AP_TRN``): truncate toward minus infinity (floor).
- ``rnd`` (``AP_RND``): round to nearest, ties toward plus infinity.
- ``rnd_conv`` (``AP_RND_CONV``): round to nearest, ties to even (convergent rounding).

Overflow rules (``ap_fixed`` overflow modes, applied after rounding):

- ``wrap`` (``AP_WRAP``): keep the low ``W`` bits (modulo ``2**W`` into the code range).
- ``sat`` (``AP_SAT``): clamp to ``[min_code, max_code]``.

Everything here is exact: integer work is done in ``int64`` where it provably cannot overflow and
in Python ints (object arrays) otherwise; float inputs are decomposed without rounding error.
Arrays of codes come back as ``int64`` when the format's range fits in ``int64`` (every format
except 64-bit unsigned ones), otherwise as object arrays of Python ints.

Floating-point element formats (:class:`FloatFormat`: OCP FP8 E4M3FN and E5M2, the MX FP6
and FP4 element types, IEEE fp32) and OCP MX block formats (:class:`MXFormat`) live here too;
``Format.parse`` reads every spelling. Their codes decode exactly to integer mantissas and
exponents; quantization rounds to nearest even, saturating by default (docs/formats.md lists
every choice the OCP specs leave open).

Only NumPy is imported at module import time; Amaranth is imported by :meth:`Format.shape`.
"""

from __future__ import annotations

import enum
import functools
import math
import operator
import re
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

import numpy as np

__all__ = ["Format", "Overflow", "Rounding", "div_round", "exact_matmul", "pack_bits",
           "requantize", "round_real", "unpack_bits", "REQUANT_ROUNDINGS", "SHIFT_RANGE",
           "quantize_multiplier", "requantize_fixed", "NumberFormat", "FloatFormat", "MXFormat",
           "FLOAT_FORMATS", "MX_FORMATS", "ELEMENT_FLOATS", "FP32", "E8M0_NAN", "MX_BLOCK",
           "exact_parts", "fp32_codes", "fp32_values"]

_I64_MIN = -(1 << 63)
_I64_MAX = (1 << 63) - 1
_U64_MASK = (1 << 64) - 1
#: Bounds on ``int_bits`` (keeps every scale ``2**frac_bits`` a normal float64 with headroom).
INT_BITS_RANGE = (-512, 512)


class Rounding(str, enum.Enum):
    """How bits below the destination LSB are dropped (``ap_fixed`` quantization modes)."""

    TRN = "trn"            #: AP_TRN: floor (toward minus infinity)
    RND = "rnd"            #: AP_RND: nearest, ties toward plus infinity
    RND_CONV = "rnd_conv"  #: AP_RND_CONV: nearest, ties to even

    def __str__(self) -> str:
        return self.value


class Overflow(str, enum.Enum):
    """What happens to values outside the code range (``ap_fixed`` overflow modes)."""

    WRAP = "wrap"  #: AP_WRAP: modulo 2**width (two's complement wrap-around)
    SAT = "sat"    #: AP_SAT: clamp to [min_code, max_code]

    def __str__(self) -> str:
        return self.value


def _rounding(value) -> Rounding:
    try:
        return Rounding(value)
    except ValueError:
        allowed = ", ".join(r.value for r in Rounding)
        raise ValueError(f"rounding {value!r} is not a rounding mode (allowed: {allowed})") \
            from None


def _overflow(value) -> Overflow:
    try:
        return Overflow(value)
    except ValueError:
        allowed = ", ".join(o.value for o in Overflow)
        raise ValueError(f"overflow {value!r} is not an overflow mode (allowed: {allowed})") \
            from None


_ALLOWED = ("allowed: intN with 2<=N<=64, uintN with 1<=N<=64, "
            "fixed<W,I> with 2<=W<=64, ufixed<W,I> with 1<=W<=64, fp8_e4m3, fp8_e5m2, "
            "fp6_e3m2, fp6_e2m3, fp4_e2m1, fp32, mxfp8_e4m3, mxfp8_e5m2, mxfp6_e3m2, "
            "mxfp6_e2m3, mxfp4, mxint8")
_INT_RE = re.compile(r"(u?)int([1-9][0-9]*)")
_FIXED_RE = re.compile(r"(u?)fixed<\s*([1-9][0-9]*)\s*,\s*(0|-?[1-9][0-9]*)\s*>")


# -- array helpers ------------------------------------------------------------------------------


def _index_text(shape: tuple, flat: int) -> str:
    idx = np.unravel_index(flat, shape)
    if len(shape) == 1:
        return f" at index {int(idx[0])}"
    return " at index (" + ", ".join(str(int(i)) for i in idx) + ")"


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _pyint(v):
    if isinstance(v, (bool, np.bool_)):
        raise TypeError
    return operator.index(v)


def _int_array(codes, what: str) -> np.ndarray:
    """``codes`` as an int64 array, or an object array of Python ints when int64 cannot hold it.

    Raises ``ValueError`` (one line naming ``what``) for anything that is not integer codes.
    """
    try:
        arr = np.asarray(codes)
    except (ValueError, TypeError) as err:
        raise ValueError(f"{what}: not an array of integer codes ({str(err).splitlines()[0]})") \
            from None
    kind = arr.dtype.kind
    if kind == "i":
        return arr.astype(np.int64, copy=False)
    if kind == "u":
        if arr.dtype.itemsize < 8 or arr.size == 0 or int(arr.max()) <= _I64_MAX:
            return arr.astype(np.int64)
        return arr.astype(object)
    if kind == "O":
        flat = arr.reshape(-1)
        out = np.empty(flat.shape, dtype=object)
        for i, v in enumerate(flat.tolist()):
            try:
                out[i] = _pyint(v)
            except TypeError:
                shown = repr(v)
                shown = shown if len(shown) <= 40 else shown[:37] + "..."
                raise ValueError(
                    f"{what}: value {shown}{_index_text(arr.shape, i)} is not an integer "
                    f"(codes must be integers)") from None
        return out.reshape(arr.shape)
    raise ValueError(f"{what}: dtype {arr.dtype} is not an integer dtype (codes must be integers)")


def _abs_max(c: np.ndarray) -> int:
    """Largest magnitude in an int64/object array (a Python int; 0 when empty)."""
    if c.size == 0:
        return 0
    return max(int(c.max()), -int(c.min()))


def _to_u64(c: np.ndarray) -> np.ndarray:
    """Codes modulo 2**64 as uint64 (two's complement for negatives)."""
    if c.dtype == object:
        return (c & _U64_MASK).astype(np.uint64)
    return c.astype(np.uint64)  # int64 -> uint64 is modulo 2**64


def _rescale(c: np.ndarray, shift: int, rounding: Rounding) -> np.ndarray:
    """Exact ``round(c * 2**shift)`` of a flat int64/object array under ``rounding``."""
    if shift == 0 or c.size == 0:
        return c
    if shift > 0:
        if c.dtype != object and shift <= 62 and _abs_max(c) < (1 << (63 - shift)):
            return c << shift
        return c.astype(object) << shift
    s = -shift
    if c.dtype == object or s > 62:
        c = c.astype(object)
    q = c >> s
    if rounding is Rounding.TRN:
        return q
    r = c & ((1 << s) - 1)      # c - q * 2**s, in [0, 2**s)
    half = 1 << (s - 1)
    if rounding is Rounding.RND:
        up = r >= half
    else:
        up = (r > half) | ((r == half) & ((q & 1) == 1))
    return np.where(up, q + 1, q)


# -- formats ------------------------------------------------------------------------------------


class NumberFormat:
    """What every number format shares: ``kind`` (``fixed``, ``float`` or ``mx``), its text
    (``str``) and :meth:`Format.parse`, which reads all three kinds."""

    kind = "fixed"


@dataclass(frozen=True)
class Format(NumberFormat):
    """A fixed-point number format (``ap_fixed``/``ap_ufixed`` convention).

    Parameters
    ----------
    width : int
        Total bits, 1..64 (2..64 when signed).
    int_bits : int
        Integer bits including the sign bit; ``frac_bits = width - int_bits`` may be negative
        or exceed ``width``. Limited to -512..512.
    signed : bool
        Two's complement codes when true.
    """

    width: int
    int_bits: int
    signed: bool

    def __post_init__(self):
        # ValueError for wrong types too: formats come from user input (configs, CLI).
        lo = 2 if self.signed is True else 1
        if not _is_int(self.width) or not lo <= self.width <= 64:
            kind = "a signed" if self.signed is True else "an unsigned"
            raise ValueError(f"format width {self.width!r} is not allowed for {kind} format "
                             f"(allowed: {lo}..64)")
        a, b = INT_BITS_RANGE
        if not _is_int(self.int_bits) or not a <= self.int_bits <= b:
            raise ValueError(f"format int_bits {self.int_bits!r} is not allowed "
                             f"(allowed: integers {a}..{b})")
        if self.signed not in (True, False) or not isinstance(self.signed, (bool, np.bool_)):
            raise ValueError(f"format signed {self.signed!r} is not allowed (allowed: a bool)")
        object.__setattr__(self, "signed", bool(self.signed))
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "int_bits", int(self.int_bits))

    # -- text ----------------------------------------------------------------------------------

    @classmethod
    def parse(cls, text: str) -> NumberFormat:
        """Parse any format: fixed point (``int8``, ``uint4``, ``intN``/``uintN``,
        ``fixed<W,I>``, ``ufixed<W,I>``; a :class:`Format`), an element float (``fp8_e4m3``,
        ``fp8_e5m2``, ``fp6_e3m2``, ``fp6_e2m3``, ``fp4_e2m1``, ``fp32``; a
        :class:`FloatFormat`) or an OCP MX block format (``mxfp8_e4m3``, ``mxfp8_e5m2``,
        ``mxfp6_e3m2``, ``mxfp6_e2m3``, ``mxfp4``, ``mxint8``; an :class:`MXFormat`).

        Case-sensitive; spaces are allowed inside the angle brackets only. Raises ``ValueError``
        with a one-line message naming ``text`` and the allowed spellings.
        """
        if isinstance(text, str):
            if text in FLOAT_FORMATS:
                return FLOAT_FORMATS[text]
            if text in MX_FORMATS:
                return MX_FORMATS[text]
            m = _INT_RE.fullmatch(text)
            if m:
                signed, width = not m.group(1), int(m.group(2))
                if (2 if signed else 1) <= width <= 64:
                    return cls(width=width, int_bits=width, signed=signed)
            m = _FIXED_RE.fullmatch(text)
            if m:
                signed, width, ib = not m.group(1), int(m.group(2)), int(m.group(3))
                lo, hi = INT_BITS_RANGE
                if (2 if signed else 1) <= width <= 64 and lo <= ib <= hi:
                    return cls(width=width, int_bits=ib, signed=signed)
        raise ValueError(f"{text!r} is not a format ({_ALLOWED})")

    def __str__(self) -> str:
        u = "" if self.signed else "u"
        if self.frac_bits == 0:
            return f"{u}int{self.width}"
        return f"{u}fixed<{self.width},{self.int_bits}>"

    # -- derived properties ----------------------------------------------------------------------

    @property
    def frac_bits(self) -> int:
        """Fraction bits, ``width - int_bits`` (negative: the LSB weighs more than 1)."""
        return self.width - self.int_bits

    @property
    def is_integer(self) -> bool:
        """True when codes are plain integers (``frac_bits == 0``)."""
        return self.frac_bits == 0

    @property
    def min_code(self) -> int:
        """Smallest code (Python int): ``-2**(width-1)`` signed, 0 unsigned."""
        return -(1 << (self.width - 1)) if self.signed else 0

    @property
    def max_code(self) -> int:
        """Largest code (Python int): ``2**(width-1) - 1`` signed, ``2**width - 1`` unsigned."""
        return (1 << (self.width - 1)) - 1 if self.signed else (1 << self.width) - 1

    @property
    def lsb(self) -> float:
        """Value of one code step, ``2**-frac_bits``."""
        return math.ldexp(1.0, -self.frac_bits)

    @property
    def _fits_int64(self) -> bool:
        return self.signed or self.width < 64

    def shape(self):
        """The Amaranth shape of a code: ``signed(width)`` or ``unsigned(width)``."""
        from amaranth.hdl import signed, unsigned  # local: the host uses formats without Amaranth

        return signed(self.width) if self.signed else unsigned(self.width)

    # -- codes ---------------------------------------------------------------------------------

    def _out(self, c: np.ndarray) -> np.ndarray:
        """In-range codes in this format's result dtype (int64, or object for 64-bit unsigned)."""
        return c.astype(np.int64 if self._fits_int64 else object)

    def contains(self, codes) -> bool:
        """True when ``codes`` are integers and all lie in ``[min_code, max_code]``."""
        try:
            c = _int_array(codes, "codes")
        except ValueError:
            return False
        if c.size == 0:
            return True
        return int(c.min()) >= self.min_code and int(c.max()) <= self.max_code

    def check_codes(self, codes, what: str) -> np.ndarray:
        """Validate an array of codes and return it as int64 (object for 64-bit unsigned).

        Codes must have an integer dtype (bool, float -- even integral values -- and strings are
        rejected; object arrays must hold ints) and lie in ``[min_code, max_code]``.
        Raises ``ValueError`` with one line naming ``what``, the value and its index.
        """
        c = _int_array(codes, what)
        if c.size:
            lo, hi = self.min_code, self.max_code
            if c.dtype == object:
                bad = (c < lo) | (c > hi)
            else:
                bad = np.zeros(c.shape, dtype=bool)
                if lo > _I64_MIN:
                    bad |= c < lo
                if hi < _I64_MAX:
                    bad |= c > hi
            if bad.any():
                flat = int(np.flatnonzero(bad.reshape(-1))[0])
                v = c.reshape(-1)[flat]
                where = _index_text(c.shape, flat) if c.ndim else ""
                raise ValueError(f"{what}: value {int(v)}{where} is out of range for {self} "
                                 f"(allowed: {lo}..{hi})")
        return self._out(c)

    def _wrap_u64(self, u: np.ndarray) -> np.ndarray:
        w = self.width
        if self.signed:  # sign-extend the low w bits
            return (u << np.uint64(64 - w)).view(np.int64) >> np.int64(64 - w)
        if w == 64:
            return u.astype(object)
        return (u & np.uint64((1 << w) - 1)).astype(np.int64)

    def _wrap_flat(self, c: np.ndarray) -> np.ndarray:
        return self._wrap_u64(_to_u64(c))

    def _sat_flat(self, c: np.ndarray) -> np.ndarray:
        lo, hi = self.min_code, self.max_code
        if c.dtype == object:
            return self._out(np.where(c < lo, lo, np.where(c > hi, hi, c)))
        return self._out(np.clip(c, max(lo, _I64_MIN), min(hi, _I64_MAX)))

    def _overflow_flat(self, c: np.ndarray, overflow: Overflow) -> np.ndarray:
        return self._sat_flat(c) if overflow is Overflow.SAT else self._wrap_flat(c)

    def wrap(self, codes) -> np.ndarray:
        """Integers modulo ``2**width`` into the code range (``AP_WRAP``), exactly.

        Accepts any integer array, including object arrays of arbitrarily large Python ints.
        """
        c = _int_array(codes, "codes")
        return self._wrap_flat(c.reshape(-1)).reshape(c.shape)

    def saturate(self, codes) -> np.ndarray:
        """Integers clamped to ``[min_code, max_code]`` (``AP_SAT``), exactly."""
        c = _int_array(codes, "codes")
        return self._sat_flat(c.reshape(-1)).reshape(c.shape)

    def apply_overflow(self, codes, overflow: Overflow | str) -> np.ndarray:
        """:meth:`wrap` or :meth:`saturate` by name (``"wrap"``/``"sat"``)."""
        ov = _overflow(overflow)
        return self.wrap(codes) if ov is Overflow.WRAP else self.saturate(codes)

    # -- real values -----------------------------------------------------------------------------

    def quantize(self, x, rounding: Rounding | str = "trn",
                 overflow: Overflow | str = "wrap") -> np.ndarray:
        """Codes for real values: ``code = round(x * 2**frac_bits)``, then the overflow rule.

        Exact for every float64 input (no double rounding) and for integer arrays of any size.
        NaN raises ``ValueError``; infinities saturate under ``sat`` and raise under ``wrap``.
        """
        rnd, ov = _rounding(rounding), _overflow(overflow)
        arr = np.asarray(x)
        if arr.dtype.kind in "iu" or (arr.dtype == object and arr.size and all(
                isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                for v in arr.reshape(-1).tolist())):
            c = _int_array(arr, "x").reshape(-1)
            return self._overflow_flat(_rescale(c, self.frac_bits, rnd), ov).reshape(arr.shape)
        try:
            xf = np.asarray(arr, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"x: dtype {arr.dtype} is not real numbers") from None
        shape = xf.shape
        xf = xf.reshape(-1)
        bad = np.isnan(xf)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            where = _index_text(shape, i) if len(shape) else ""
            raise ValueError(f"x: NaN{where} cannot be quantized to {self}")
        inf = np.isinf(xf)
        if ov is Overflow.WRAP and inf.any():
            i = int(np.flatnonzero(inf)[0])
            where = _index_text(shape, i) if len(shape) else ""
            raise ValueError(f"x: {xf[i]}{where} cannot be quantized to {self} with "
                             f"overflow wrap (use sat)")
        with np.errstate(all="ignore"):
            v = np.ldexp(xf, self.frac_bits)
        # Beyond float64's range (or infinite input): any huge stand-in has the same result,
        # a multiple of 2**64 (wrap -> 0) far outside every code range (sat -> clamp).
        v = np.where(np.isinf(v), np.copysign(2.0 ** 1000, v), v)
        # Tiny nonzero values may have lost bits in ldexp: all of (0, 0.5) round alike.
        v = np.where((xf != 0) & (np.abs(v) < 2.0 ** -1000), np.copysign(0.25, xf), v)
        f = np.floor(v)
        if rnd is not Rounding.TRN:
            nz = v != f                   # then |v| < 2**52 and f + 0.5 is exact
            h = f + 0.5
            if rnd is Rounding.RND:
                up = nz & (v >= h)
            else:
                up = nz & ((v > h) | ((v == h) & (np.fmod(f, 2.0) != 0)))
            f = f + up
        return self._from_float_codes(f, ov).reshape(shape)

    def _from_float_codes(self, c: np.ndarray, ov: Overflow) -> np.ndarray:
        """Flat integral float64 values (exact) -> codes under ``ov``."""
        if ov is Overflow.SAT:
            over = c >= float(self.max_code + 1)   # powers of two: exact comparisons
            under = c < float(self.min_code)
            inside = np.where(over | under, 0.0, c)
            if self._fits_int64:
                ci = inside.astype(np.int64)
            else:
                ci = inside.astype(np.uint64).astype(object)
            return np.where(over, self.max_code, np.where(under, self.min_code, ci)).astype(
                ci.dtype)
        cm = np.fmod(c, 2.0 ** 64)                # exact; |cm| < 2**64
        hi = np.floor(cm / 2.0 ** 32)            # exact; in [-2**32, 2**32)
        lo = cm - hi * 2.0 ** 32                 # exact; in [0, 2**32)
        u = (hi.astype(np.int64).astype(np.uint64) << np.uint64(32)) + lo.astype(np.uint64)
        return self._wrap_u64(u)

    def dequantize(self, codes) -> np.ndarray:
        """Real values ``codes * 2**-frac_bits`` as float64 (exact when they fit in float64)."""
        c = _int_array(codes, "codes")
        return np.ldexp(c.astype(np.float64), -self.frac_bits)


# -- free functions -----------------------------------------------------------------------------


def requantize(codes, src: Format, dst: Format, rounding: Rounding | str = "trn",
               overflow: Overflow | str = "wrap") -> np.ndarray:
    """Re-scale codes of ``src`` to ``dst`` exactly (integer arithmetic only).

    Shifts left when ``dst`` has more fraction bits; otherwise shifts right dropping bits under
    ``rounding`` (``trn``: floor, ``rnd``: ties toward +inf, ``rnd_conv``: ties to even), then
    applies ``overflow`` for ``dst``. Codes outside ``src``'s range are still re-scaled exactly.
    """
    rnd, ov = _rounding(rounding), _overflow(overflow)
    c = _int_array(codes, "codes")
    flat = _rescale(c.reshape(-1), dst.frac_bits - src.frac_bits, rnd)
    return dst._overflow_flat(flat, ov).reshape(c.shape)


# -- integer-only requantization (gemmlowp / TFLite reference kernels) ---------------------------

#: ``rounding`` of :func:`requantize_fixed`: the two fixed-point multiplier variants, then the
#: power-of-two ``ap_fixed`` casts.
REQUANT_ROUNDINGS = ("double", "single", "trn", "rnd", "rnd_conv")
#: Allowed ``shift`` (positive = left) of :func:`requantize_fixed`.
SHIFT_RANGE = (-31, 30)
_INT32 = Format(width=32, int_bits=32, signed=True)
_I32_MIN = -(1 << 31)
_I32_MAX = (1 << 31) - 1


def quantize_multiplier(real_scale, bits: int = 32):
    """``(multiplier, shift)`` with ``real_scale ~= multiplier * 2**(shift - 31)``: TFLite's
    ``QuantizeMultiplier``, exactly.

    ``q, shift = frexp(real_scale)`` (``q`` in ``[0.5, 1)``); ``multiplier = round(q * 2**31)``
    half away from zero; a multiplier of ``2**31`` is halved and ``shift`` incremented; a
    shift below -31 gives ``(0, 0)`` (scales below about ``2**-32`` flush to zero), as does
    ``real_scale == 0``.

    ``bits < 32`` (2..31) rounds ``q`` once, directly to ``bits - 1`` significant bits:
    ``multiplier = round(q * 2**(bits - 1)) * 2**(32 - bits)``, so its low ``32 - bits`` bits
    are zero and a ``bits``-bit signed hardware multiplier operand holds
    ``multiplier >> (32 - bits)`` (one rounding, not a 32-bit rounding rounded again).

    ``real_scale`` is a scalar (Python ints back) or an array (int64 arrays back). Raises
    ``ValueError`` for a negative, NaN or infinite scale and for one that rounds to ``2**30``
    or more (its shift would exceed :data:`SHIFT_RANGE`).
    """
    if not _is_int(bits) or not 2 <= bits <= 32:
        raise ValueError(f"bits {bits!r} is not allowed (allowed: 2..32)")
    scalar = np.ndim(real_scale) == 0
    try:
        s = np.asarray(real_scale, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("real_scale: not real numbers") from None
    bad = ~np.isfinite(s) | (s < 0)
    if bad.any():
        i = int(np.flatnonzero(bad.reshape(-1))[0])
        where = _index_text(s.shape, i) if s.ndim else ""
        raise ValueError(f"real_scale: {s.reshape(-1)[i]}{where} is not allowed "
                         "(allowed: finite and >= 0)")
    q, e = np.frexp(s)
    # q * 2**(bits-1) has at most 53 significant bits below 2**31: + 0.5 and floor are exact,
    # and q >= 0, so this is round half away from zero
    m = np.floor(np.ldexp(q, bits - 1) + 0.5).astype(np.int64)
    full = m == (1 << (bits - 1))
    m = np.where(full, m >> 1, m)
    e = np.where(full, e + 1, e).astype(np.int64)
    big = e > SHIFT_RANGE[1]
    if big.any():
        i = int(np.flatnonzero(big.reshape(-1))[0])
        where = _index_text(s.shape, i) if s.ndim else ""
        raise ValueError(f"real_scale: {s.reshape(-1)[i]}{where} is too large (its shift "
                         f"would exceed {SHIFT_RANGE[1]}; allowed: scales that round below "
                         f"2**{SHIFT_RANGE[1]})")
    tiny = e < SHIFT_RANGE[0]
    m = np.where(tiny, 0, m << (32 - bits))
    e = np.where(tiny | (m == 0), 0, e)
    if scalar:
        return int(m), int(e)
    return m, e


def _wrap32(v: np.ndarray) -> np.ndarray:
    return ((v + (1 << 31)) & ((1 << 32) - 1)) - (1 << 31)


def _srdhm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """gemmlowp's ``SaturatingRoundingDoublingHighMul`` of int32 values (int64 arrays)."""
    ab = a * b                                  # |ab| <= 2**62: exact in int64
    v = ab + np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    q = np.where(v >= 0, v >> 31, -((-v) >> 31))  # C division: toward zero
    return np.where((a == _I32_MIN) & (b == _I32_MIN), _I32_MAX, q)


def _rdbpot(v: np.ndarray, e: np.ndarray) -> np.ndarray:
    """gemmlowp's ``RoundingDivideByPOT``: ``v / 2**e`` to nearest, ties away from zero."""
    mask = (np.int64(1) << e) - 1
    threshold = (mask >> 1) + (v < 0)
    return (v >> e) + ((v & mask) > threshold)


def requantize_fixed(acc, *, bias=0, multiplier=None, shift=0, zero_point=0, act_min=None,
                     act_max=None, rounding: str = "double", out_fmt: Format,
                     acc_fmt: Format = _INT32, overflow: Overflow | str = "wrap") -> np.ndarray:
    """Integer-only requantization of accumulator codes (gemmlowp / TFLite reference kernels).

    The one golden model of the ``requant`` unit (and of any epilogue doing the same)::

        x   = acc + bias                     exact, then acc_fmt's overflow rule
        y   = zero_point + MulByQuantizedMultiplier(x, multiplier, shift)
        out = clamp(y, act_min, act_max)     (defaults: out_fmt's code range)

    ``rounding``:

    - ``double``: ``RDBPOT(SRDHM(wrap32(x * 2**max(shift, 0)), multiplier), max(-shift, 0))``
      (gemmlowp and TFLite's default build; the left shift wraps in int32);
    - ``single``: ``(x * multiplier + 2**(30 - shift)) >> (31 - shift)`` in 64 bits
      (``TFLITE_SINGLE_ROUNDING``, CMSIS-NN);
    - ``trn``, ``rnd``, ``rnd_conv``: a power-of-two scale, ``round(x * 2**shift)`` exactly
      with that ``ap_fixed`` rounding (the rounding of :func:`requantize`); ``multiplier`` is
      not used and must be ``None``.

    ``bias``, ``multiplier`` and ``shift`` are scalars or arrays broadcast against ``acc``
    (per-channel arrays ``[N]`` along its last axis); ``zero_point``, ``act_min`` and
    ``act_max`` are scalars. ``acc_fmt`` is the format ``x`` is held in (a signed integer
    format of at most 32 bits; the reference kernels' int32 by default). Returns int64 codes
    of ``acc``'s broadcast shape. Raises ``ValueError`` (one line) for parameters outside
    their ranges: ``multiplier`` in ``[0, 2**31)``, ``shift`` in :data:`SHIFT_RANGE`,
    ``zero_point``, ``act_min <= act_max`` in ``out_fmt``.
    """
    if rounding not in REQUANT_ROUNDINGS:
        raise ValueError(f"rounding {rounding!r} is not allowed (allowed: "
                         f"{', '.join(REQUANT_ROUNDINGS)})")
    if not (acc_fmt.signed and acc_fmt.is_integer and acc_fmt.width <= 32):
        raise ValueError(f"acc_fmt {acc_fmt} is not allowed (allowed: intN with N <= 32)")
    lo = out_fmt.min_code if act_min is None else int(act_min)
    hi = out_fmt.max_code if act_max is None else int(act_max)
    zp = int(zero_point)
    for what, v in (("zero_point", zp), ("act_min", lo), ("act_max", hi)):
        if not out_fmt.min_code <= v <= out_fmt.max_code:
            raise ValueError(f"{what} {v} is out of range for {out_fmt} (allowed: "
                             f"{out_fmt.min_code}..{out_fmt.max_code})")
    if lo > hi:
        raise ValueError(f"act_min {lo} > act_max {hi} (allowed: act_min <= act_max)")
    a = _int_array(acc, "acc").astype(np.int64)
    b = _int_array(bias, "bias").astype(np.int64)
    s = _int_array(shift, "shift").astype(np.int64)
    if s.size and (int(s.min()) < SHIFT_RANGE[0] or int(s.max()) > SHIFT_RANGE[1]):
        raise ValueError(f"shift out of range (allowed: {SHIFT_RANGE[0]}..{SHIFT_RANGE[1]})")
    if b.size and (int(b.min()) < _I32_MIN or int(b.max()) > _I32_MAX):
        raise ValueError("bias out of range (allowed: int32)")
    if a.size and (int(a.min()) < _I32_MIN or int(a.max()) > _I32_MAX):
        raise ValueError("acc out of range (allowed: int32)")
    x = acc_fmt.apply_overflow(a + b, overflow)
    if rounding in ("double", "single"):
        if multiplier is None:
            raise ValueError(f"rounding {rounding} needs a multiplier")
        m = _int_array(multiplier, "multiplier").astype(np.int64)
        if m.size and (int(m.min()) < 0 or int(m.max()) > _I32_MAX):
            raise ValueError("multiplier out of range (allowed: 0..2**31-1)")
        x, m, s = np.broadcast_arrays(x, m, s)
        if rounding == "double":
            left = np.maximum(s, 0)
            r = _rdbpot(_srdhm(_wrap32(x << left), m), np.maximum(-s, 0))
        else:
            # |x * m| < 2**62 and the nudge is at most 2**61: exact in int64
            r = (x * m + (np.int64(1) << (30 - s))) >> (31 - s)
    else:
        if multiplier is not None:
            raise ValueError(f"rounding {rounding} has a power-of-two scale 2**shift "
                             "(allowed: multiplier=None)")
        x, s = np.broadcast_arrays(x, s)
        r = np.empty(x.shape, dtype=np.int64)
        rnd = _rounding(rounding)
        for sv in np.unique(s):
            sel = s == sv
            # |x| <= 2**31 and shift <= 30: exact in int64
            r[sel] = _rescale(x[sel], int(sv), rnd)
    return np.clip(zp + r, lo, hi)


def div_round(num, den) -> np.ndarray:
    """Exact ``num / den`` rounded to nearest, ties toward plus infinity (``rnd``), for
    non-negative integer ``num`` and positive integer ``den`` (arrays broadcast):
    ``floor((2 * num + den) / (2 * den))``. int64 when ``2 * num + den`` fits, else Python ints.

    This is what a restoring divider computes from the numerator ``2 * num + den`` and the
    divisor ``2 * den`` (the softmax unit's normalisation).
    """
    n = _int_array(num, "num")
    d = _int_array(den, "den")
    if (n.size and int(n.min()) < 0) or (d.size and int(d.min()) < 1):
        raise ValueError("div_round needs num >= 0 and den >= 1")
    if max(_abs_max(n), 1) * 2 + _abs_max(d) < (1 << 62):
        return (2 * n.astype(np.int64) + d.astype(np.int64)) // (2 * d.astype(np.int64))
    return (2 * n.astype(object) + d.astype(object)) // (2 * d.astype(object))


def round_real(value, frac_bits: int) -> int:
    """``round(value * 2**frac_bits)`` to nearest, ties toward plus infinity, of an exact real
    given as a :class:`decimal.Decimal` or :class:`fractions.Fraction` (a Python int back).

    Tables that must be correctly rounded (softmax's exp table, GELU's table) compute their
    entries at high precision and round them here once.
    """
    v = Fraction(value) if isinstance(value, Decimal) else Fraction(value)
    scaled = v * (Fraction(2) ** frac_bits)
    return math.floor(scaled + Fraction(1, 2))


def exact_matmul(a, b) -> np.ndarray:
    """Exact integer ``a @ b`` of 2-D integer arrays.

    Uses float64 BLAS when every partial sum is below ``2**53`` (then exact), int64 when below
    ``2**63``, Python ints otherwise. Returns int64, or an object array in the last case.
    """
    a = _int_array(a, "a")
    b = _int_array(b, "b")
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"exact_matmul needs 2-D arrays, got shapes {a.shape} and {b.shape}")
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"exact_matmul: shapes {a.shape} and {b.shape} do not chain")
    bound = a.shape[1] * _abs_max(a) * _abs_max(b)
    if bound < (1 << 53) and a.dtype != object and b.dtype != object:
        return (a.astype(np.float64) @ b.astype(np.float64)).astype(np.int64)
    if bound < (1 << 63) and a.dtype != object and b.dtype != object:
        return a @ b
    if bound < (1 << 63):  # object inputs holding small values
        return a.astype(np.int64) @ b.astype(np.int64)
    return a.astype(object) @ b.astype(object)


def _check_width(width) -> int:
    if not _is_int(width) or not 1 <= width <= 64:
        raise ValueError(f"bit width {width!r} is not supported (allowed: 1..64)")
    return int(width)


_FAST = {8: "<u1", 16: "<u2", 32: "<u4", 64: "<u8"}


def pack_bits(codes, width: int) -> np.ndarray:
    """Pack ``width``-bit lanes ``[..., L]`` into little-endian bytes ``[..., ceil(L*width/8)]``.

    Lane 0 occupies bits ``0..width-1`` (bit 0 = LSB of byte 0), lane 1 the next ``width`` bits,
    and so on; each leading index is packed separately and padded with zero bits to a whole
    byte. Codes are taken modulo ``2**width`` (two's complement), so callers validate ranges
    first. This is the project's one packing routine (simulator beats and host wire format).

    Widths 8, 16, 32, 64 (a cast) and 1, 2, 4 (a few word-wide shifts) take vectorised fast
    paths on integer arrays; other widths go through a bit array. When the codes are already
    little-endian integers of exactly ``width`` bits (int8 codes for ``width=8``), the result is
    a view of them, not a copy: do not write into it.
    """
    w = _check_width(width)
    arr = np.asarray(codes)
    if arr.ndim == 0:
        raise ValueError("codes: pack_bits needs an array of lanes [..., L], got a scalar")
    if arr.dtype.kind in "iu" and (w in _FAST or w in _SUB):
        lead, lanes = arr.shape[:-1], arr.shape[-1]
        if w in _FAST:
            native_le = arr.dtype.byteorder == "<" or (arr.dtype.byteorder in "=|"
                                                       and np.little_endian)
            if arr.dtype.itemsize * 8 == w and native_le:  # same width: the bytes are the codes
                out = np.ascontiguousarray(arr).view(np.uint8)
            else:                                # integer casts wrap modulo 2**w
                out = np.ascontiguousarray(arr.astype(_FAST[w])).view(np.uint8)
            return out.reshape(*lead, lanes * (w // 8))
        per = 8 // w
        nbytes = -(-lanes // per)
        if arr.dtype.itemsize == 1:
            u = arr.view(np.uint8)
            masked = False
        else:
            # wide codes (int64, the NumPy default): one casting pass to bytes, masked in
            # place; the rest works on the bytes (1/8 of the codes' memory)
            u = arr.astype(np.uint8)
            u &= np.uint8((1 << w) - 1)
            masked = True
        if lanes % per:
            pad = np.zeros((*lead, nbytes * per - lanes), dtype=np.uint8)
            u = np.concatenate([u, pad], axis=-1)
        # The ``per`` lanes of one output byte, read as one little-endian word, are gathered
        # into its low byte by shift-and-or (lane j moves from bit 8*j to bit w*j).
        word = np.ascontiguousarray(u).view(f"<u{per}")
        spread = sum(((1 << w) - 1) << (8 * j) for j in range(per))
        x = word if masked else word & word.dtype.type(spread)
        for shift in _GATHER[w]:
            x |= x >> word.dtype.type(shift)
        return x.astype(np.uint8).reshape(*lead, nbytes)
    c = _int_array(arr, "codes")
    lead, lanes = c.shape[:-1], c.shape[-1]
    u = _to_u64(c.reshape(-1)).reshape(c.shape)
    if w in _FAST:
        out = np.ascontiguousarray(u.astype(_FAST[w])).view(np.uint8)
        return out.reshape(*lead, lanes * (w // 8))
    le = np.ascontiguousarray(u.astype("<u8")).view(np.uint8).reshape(*lead, lanes, 8)
    bits = np.unpackbits(le, axis=-1, bitorder="little")[..., :w]
    return np.packbits(bits.reshape(*lead, lanes * w), axis=-1, bitorder="little")


_SUB = (1, 2, 4)
_GATHER = {4: (4,), 2: (6, 12), 1: (7, 14, 28)}


@functools.lru_cache(maxsize=8)
def _byte_table(width: int, signed: bool) -> np.ndarray:
    """``[256]`` words of ``8 // width`` bytes: byte j of entry v is lane j of byte value v
    (an int8 code, sign-extended when signed), so one ``take`` unpacks a whole byte."""
    per = 8 // width
    b = np.arange(256, dtype=np.int64)[:, None] >> (np.arange(per) * width)
    u = b & ((1 << width) - 1)
    if signed:
        u = u - ((u >> (width - 1)) << width)
    return np.ascontiguousarray(u.astype(np.int8)).view(f"<u{per}").reshape(256)


def unpack_bits(buf, width: int, lanes: int, signed: bool, dtype=None) -> np.ndarray:
    """Inverse of :func:`pack_bits`: bytes ``[..., nbytes]`` -> codes ``[..., lanes]``.

    ``nbytes`` must be at least ``ceil(lanes*width/8)`` (trailing bytes and padding bits are
    ignored). Codes are sign-extended when ``signed``. Returns int64 (object for unsigned
    64-bit lanes, whose codes can exceed int64), or ``dtype`` when given (a NumPy integer dtype
    wide enough for the codes, e.g. ``np.int8`` for int4 lanes: no int64 copy is made).
    """
    w = _check_width(width)
    if not _is_int(lanes) or lanes < 0:
        raise ValueError(f"lanes {lanes!r} is not a lane count (allowed: 0 or more)")
    lanes = int(lanes)
    b = np.asarray(buf)
    if b.dtype != np.uint8:
        if b.dtype.kind not in "iu" or (b.size and (b.min() < 0 or b.max() > 255)):
            raise ValueError(f"buf: dtype {b.dtype} is not bytes (allowed: uint8 values)")
        b = b.astype(np.uint8)
    if b.ndim == 0:
        raise ValueError("buf: unpack_bits needs an array of bytes [..., nbytes], got a scalar")
    need = (lanes * w + 7) // 8
    if b.shape[-1] < need:
        raise ValueError(f"buf: {b.shape[-1]} bytes cannot hold {lanes} lanes of {w} bits "
                         f"(need {need})")
    lead = b.shape[:-1]
    if b.shape[-1] != need:
        b = b[..., :need]
    b = np.ascontiguousarray(b)
    if dtype is not None:
        dtype = np.dtype(dtype)
    if w in _FAST and not (w == 64 and not signed and dtype is None):
        view = b.view(("<i" if signed else "<u") + str(w // 8)).reshape(*lead, lanes)
        return view.astype(dtype or np.int64)
    if w in _SUB:
        if w == 4 and np.little_endian:  # both nibbles of a byte at once, in a 16-bit word
            x = b.astype(np.uint16)
            x |= x << np.uint16(4)            # low nibble -> bits 4..7, high nibble -> 8..11
            if signed:                        # each nibble at the top of its byte, then >> 4
                x <<= np.uint16(4)
                x &= np.uint16(0xF0F0)
                u = x.view(np.int8)
                u >>= np.int8(4)
            else:
                x &= np.uint16(0x0F0F)
                u = x.view(np.int8)
        else:
            u = np.take(_byte_table(w, bool(signed)), b).view(np.int8)
        u = u.reshape(*lead, need * (8 // w))
        if u.shape[-1] != lanes:
            u = u[..., :lanes]
        return u.astype(dtype or np.int64, copy=dtype is not None and dtype != np.int8)
    if w in _FAST:
        u = b.view("<u8").reshape(*lead, lanes)
    else:
        bits = np.unpackbits(b, axis=-1, bitorder="little")[..., :lanes * w]
        bits = bits.reshape(*lead, lanes, w)
        pad = np.zeros((*lead, lanes, 64 - w), dtype=np.uint8)
        u = np.packbits(np.concatenate([bits, pad], axis=-1), axis=-1, bitorder="little")
        u = np.ascontiguousarray(u).view("<u8").reshape(*lead, lanes).astype(np.uint64)
    if signed:
        out = (u << np.uint64(64 - w)).view(np.int64) >> np.int64(64 - w)
    elif w == 64:
        out = u.astype(object)
    else:
        out = u.astype(np.int64)
    return out if dtype is None else out.astype(dtype)


# -- floating-point element formats (OCP FP8, OCP MX FP6/FP4) and fp32 ---------------------------

#: ``special`` of a :class:`FloatFormat`: how the top exponent field is used.
SPECIALS = ("ieee", "fn", "none")


def _bit_length(n: np.ndarray) -> np.ndarray:
    """Bit length of non-negative int64 values (0 for 0), exactly."""
    n = np.asarray(n, dtype=np.int64)
    _, e = np.frexp(n.astype(np.float64))  # n < 2**63 converts with at most one rounding up,
    e = e.astype(np.int64)                   # which can only overstate the length by one
    too_big = (e > 0) & ((n >> np.maximum(e - 1, 0)) == 0)
    return e - too_big


def _reduce_to_int64(n, e) -> tuple[np.ndarray, np.ndarray]:
    """Integers ``n`` (any size, object or int64, >= 0) times ``2**e`` as int64 ``n' < 2**62``
    and exponents ``e'``, keeping a sticky bit: rounding ``n' * 2**e'`` to at most 60
    significant bits (with any rounding to nearest) gives the same result as rounding ``n *
    2**e``."""
    n = np.asarray(n)
    e = np.asarray(e, dtype=np.int64)
    if n.dtype != object and (n.size == 0 or int(n.max()) < (1 << 62)):
        return n.astype(np.int64), e
    flat_n = n.reshape(-1).tolist()
    e_b = np.broadcast_to(e, n.shape).reshape(-1)
    out_n = np.empty(len(flat_n), dtype=np.int64)
    out_e = np.empty(len(flat_n), dtype=np.int64)
    for i, v in enumerate(flat_n):
        v = int(v)
        t = max(v.bit_length() - 62, 0)
        if t:
            v = (v >> t) | (1 if v & ((1 << t) - 1) else 0)
        out_n[i] = v
        out_e[i] = int(e_b[i]) + t
    return out_n.reshape(n.shape), out_e.reshape(n.shape)


@dataclass(frozen=True)
class FloatFormat(NumberFormat):
    """A binary floating-point format with ``exp_bits`` exponent and ``man_bits`` mantissa
    bits: a code is the bit pattern ``S.E.M`` as an unsigned integer.

    ``special``: ``ieee`` (top exponent field: infinities and NaNs, as IEEE 754 and OCP
    E5M2), ``fn`` (only ``S.1..1.1..1`` is NaN, no infinities: OCP E4M3FN) or ``none`` (every
    code is a finite number: the MX FP6/FP4 element types).

    A finite code's value is ``(-1)**S * mant * 2**exp`` with ``mant = (E != 0) << man_bits
    | M`` and ``exp = max(E, 1) - bias - man_bits`` (subnormals when ``E == 0``): exact
    integers, see :meth:`decode`.
    """

    name: str
    exp_bits: int
    man_bits: int
    bias: int
    special: str

    kind = "float"
    signed = False

    def __str__(self) -> str:
        return self.name

    def __reduce__(self):
        return (Format.parse, (self.name,))

    # -- properties ---------------------------------------------------------------------------

    @property
    def width(self) -> int:
        """Bits of a code: ``1 + exp_bits + man_bits``."""
        return 1 + self.exp_bits + self.man_bits

    @property
    def min_code(self) -> int:
        return 0

    @property
    def max_code(self) -> int:
        return (1 << self.width) - 1

    @property
    def _max_fields(self) -> tuple[int, int]:
        """``(E, M)`` of the largest finite value."""
        top = (1 << self.exp_bits) - 1
        mtop = (1 << self.man_bits) - 1
        if self.special == "ieee":
            return top - 1, mtop
        if self.special == "fn":
            return top, mtop - 1
        return top, mtop

    @property
    def emax(self) -> int:
        """Exponent of the largest finite value (``emax_elem`` in the OCP MX spec)."""
        return self._max_fields[0] - self.bias

    @property
    def emin(self) -> int:
        """Exponent of the smallest normal value, ``1 - bias``."""
        return 1 - self.bias

    @property
    def max_code_finite(self) -> int:
        """Code of the largest finite value (positive)."""
        e, mm = self._max_fields
        return (e << self.man_bits) | mm

    @property
    def max_value(self) -> float:
        e, mm = self._max_fields
        return math.ldexp((1 << self.man_bits) | mm, e - self.bias - self.man_bits)

    @property
    def has_inf(self) -> bool:
        return self.special == "ieee"

    @property
    def has_nan(self) -> bool:
        return self.special != "none"

    @property
    def nan_code(self) -> int | None:
        """The NaN code :meth:`quantize` produces (positive, quiet), or ``None``."""
        if self.special == "ieee":
            return (((1 << self.exp_bits) - 1) << self.man_bits) | (1 << (self.man_bits - 1))
        if self.special == "fn":
            return (1 << (self.width - 1)) - 1
        return None

    @property
    def inf_code(self) -> int | None:
        if self.special != "ieee":
            return None
        return ((1 << self.exp_bits) - 1) << self.man_bits

    def as_fixed(self) -> Format:
        """The signed fixed-point format that holds every finite value exactly: LSB
        ``2**(emin - man_bits)`` (the smallest subnormal), ``emax + 2`` integer bits with
        the sign. Its codes are :meth:`to_fixed`'s."""
        frac = self.man_bits - self.emin
        ib = self.emax + 2
        return Format(width=ib + frac, int_bits=ib, signed=True)

    def shape(self):
        """The Amaranth shape of a code: ``unsigned(width)`` (the bit pattern)."""
        from amaranth.hdl import unsigned

        return unsigned(self.width)

    # -- codes ----------------------------------------------------------------------------------

    def contains(self, codes) -> bool:
        try:
            self.check_codes(codes, "codes")
        except ValueError:
            return False
        return True

    def check_codes(self, codes, what: str) -> np.ndarray:
        """Validate codes (integers in ``0..2**width - 1``) and return them as int64."""
        c = _int_array(codes, what)
        if c.size:
            bad = (c < 0) | (c > self.max_code)
            if bad.any():
                flat = int(np.flatnonzero(bad.reshape(-1))[0])
                where = _index_text(c.shape, flat) if c.ndim else ""
                raise ValueError(f"{what}: code {int(c.reshape(-1)[flat])}{where} is out of "
                                 f"range for {self} (allowed: 0..{self.max_code}, the bit "
                                 f"patterns)")
        return c.astype(np.int64)

    def _fields(self, c: np.ndarray):
        s = (c >> (self.width - 1)) & 1
        e = (c >> self.man_bits) & ((1 << self.exp_bits) - 1)
        mm = c & ((1 << self.man_bits) - 1)
        return s, e, mm

    def is_nan(self, codes) -> np.ndarray:
        c = np.asarray(codes, dtype=np.int64)
        _, e, mm = self._fields(c)
        top = (1 << self.exp_bits) - 1
        if self.special == "ieee":
            return (e == top) & (mm != 0)
        if self.special == "fn":
            return (e == top) & (mm == (1 << self.man_bits) - 1)
        return np.zeros(c.shape, dtype=bool)

    def is_inf(self, codes) -> np.ndarray:
        c = np.asarray(codes, dtype=np.int64)
        _, e, mm = self._fields(c)
        if self.special == "ieee":
            return (e == (1 << self.exp_bits) - 1) & (mm == 0)
        return np.zeros(c.shape, dtype=bool)

    def decode(self, codes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Exact ``(sign, mant, exp)`` int64 arrays: a finite code's value is
        ``(-1)**sign * mant * 2**exp``. NaN and infinity codes decode as their bit fields
        would (see :meth:`is_nan`, :meth:`is_inf`); callers mask them."""
        c = self.check_codes(codes, "codes")
        s, e, mm = self._fields(c)
        mant = np.where(e != 0, mm | (1 << self.man_bits), mm)
        exp = np.maximum(e, 1) - self.bias - self.man_bits
        return s, mant, exp

    def to_fixed(self, codes) -> np.ndarray:
        """Signed integer codes of :meth:`as_fixed` with the same values (exact; NaN and
        infinity codes give 0, callers mask them with :meth:`is_nan`/:meth:`is_inf`)."""
        s, mant, exp = self.decode(codes)
        v = mant << (exp - (self.emin - self.man_bits))
        v = np.where(s == 1, -v, v)
        special = self.is_nan(codes) | self.is_inf(codes)
        return np.where(special, 0, v)

    def dequantize(self, codes) -> np.ndarray:
        """Values as float64 (exact: every value of these formats is a float64), with NaN and
        ±inf for those codes."""
        c = self.check_codes(codes, "codes")
        s, mant, exp = self.decode(c)
        v = np.ldexp(mant.astype(np.float64), exp.astype(np.int64))
        v = np.where(self.is_inf(c), np.inf, v)
        v = np.where(self.is_nan(c), np.nan, v)
        return np.where(s == 1, -v, v)

    # -- rounding -----------------------------------------------------------------------------

    def encode(self, sign, n, e, saturate: bool = True) -> np.ndarray:
        """Codes of the exact values ``(-1)**sign * n * 2**e`` rounded to nearest, ties to
        even. ``n``: non-negative integers (int64, or object arrays of any size), ``e``: int64
        exponents, ``sign``: 0/1 (the sign of a zero result too).

        Magnitudes beyond the largest finite value: ``saturate`` gives ±max; otherwise
        ±inf (``ieee``), NaN (``fn``), ±max (``none``: these formats have neither).
        """
        n, e = _reduce_to_int64(n, e)
        sign = np.asarray(sign, dtype=np.int64)
        n, e, sign = np.broadcast_arrays(n, e, sign)
        M = self.man_bits
        bl = _bit_length(n)
        lead = bl - 1 + e
        qe = np.maximum(lead, self.emin) - M
        sh = qe - e
        # sh <= 0: exact (n << -sh, at most M+1 bits); 0 < sh < 63: round; sh >= 63: below
        # half a quantum (n < 2**62), so zero
        sl = np.clip(-sh, 0, 62)
        sr = np.clip(sh, 0, 62)
        q = np.where(sh <= 0, n << sl, n >> sr)
        r = n - (q << sr)
        half = np.where(sr > 0, np.int64(1) << np.maximum(sr - 1, 0), 0)
        up = (sh > 0) & ((r > half) | ((r == half) & ((q & 1) == 1)))
        q = np.where(sh >= 63, 0, q + up)
        carry = q == (1 << (M + 1))
        q = np.where(carry, q >> 1, q)
        qe = qe + carry
        normal = q >= (1 << M)
        ef = np.where(normal, qe + M + self.bias, 0)
        mf = np.where(normal, q - (1 << M), q)
        emx, mmx = self._max_fields
        over = (n != 0) & ((ef > emx) | ((ef == emx) & (mf > mmx)))
        mag = np.where(q == 0, 0, (ef << M) | mf)
        ovf = self.max_code_finite
        if not saturate and self.special == "ieee":
            ovf = self.inf_code
        elif not saturate and self.special == "fn":
            ovf = self.nan_code
        mag = np.where(over, ovf, mag)
        return (sign << (self.width - 1)) | mag

    def quantize(self, x, saturate: bool = True) -> np.ndarray:
        """Codes for float64 values: round to nearest, ties to even, exactly (no double
        rounding). Beyond ±max: ±max (``saturate``, the default and what MX conversion
        requires) or ±inf/NaN as :meth:`encode` says. NaN gives the NaN code (``ieee``,
        ``fn``); infinities give ±max when saturating, else ±inf/NaN. Formats without NaN
        (``none``) raise ``ValueError`` for NaN, and for infinities when not saturating.
        Zeros keep their sign (``-0.0`` gives the sign bit alone)."""
        try:
            xf = np.asarray(x, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"x: not real numbers (cannot be quantized to {self})") from None
        shape = xf.shape
        xf = xf.reshape(-1)
        nan = np.isnan(xf)
        inf = np.isinf(xf)
        if self.special == "none" and (nan.any() or (inf.any() and not saturate)):
            i = int(np.flatnonzero(nan | inf)[0])
            where = _index_text(shape, i) if len(shape) else ""
            raise ValueError(f"x: {xf[i]}{where} cannot be quantized to {self} (it has no "
                             "NaN or infinity)")
        sign = np.signbit(xf).astype(np.int64)
        a = np.where(nan | inf, 0.0, np.abs(xf))
        f, k = np.frexp(a)
        n = np.ldexp(f, 53).astype(np.int64)
        e = k.astype(np.int64) - 53
        c = self.encode(sign, n, e, saturate)
        if inf.any():
            big = self.max_code_finite
            if not saturate:
                big = self.inf_code if self.special == "ieee" else self.nan_code
            c = np.where(inf, (sign << (self.width - 1)) | big, c)
        if nan.any():
            c = np.where(nan, self.nan_code, c)
        return c.reshape(shape)


#: The element float formats by name (OCP 8-bit FP, OCP MX v1.0 FP6/FP4) and IEEE binary32.
FLOAT_FORMATS = {
    f.name: f for f in (
        FloatFormat("fp8_e4m3", 4, 3, 7, "fn"),
        FloatFormat("fp8_e5m2", 5, 2, 15, "ieee"),
        FloatFormat("fp6_e3m2", 3, 2, 3, "none"),
        FloatFormat("fp6_e2m3", 2, 3, 1, "none"),
        FloatFormat("fp4_e2m1", 2, 1, 1, "none"),
        FloatFormat("fp32", 8, 23, 127, "ieee"),
    )
}
#: Element formats an MAC operand may take (fp32 is an accumulator/output format only).
ELEMENT_FLOATS = ("fp8_e4m3", "fp8_e5m2", "fp6_e3m2", "fp6_e2m3", "fp4_e2m1")
FP32 = FLOAT_FORMATS["fp32"]


def fp32_codes(x) -> np.ndarray:
    """float32 values as IEEE binary32 bit patterns (int64 codes 0..2**32-1)."""
    return np.asarray(x, dtype=np.float32).view(np.uint32).astype(np.int64)


def fp32_values(codes) -> np.ndarray:
    """IEEE binary32 bit patterns (integers 0..2**32-1) as float32 values."""
    return np.asarray(FP32.check_codes(codes, "codes")).astype(np.uint32).view(np.float32)


# -- OCP MX block formats -----------------------------------------------------------------------

#: The E8M0 scale code that means NaN.
E8M0_NAN = 255
E8M0_BIAS = 127
MX_BLOCK = 32
_MXINT8_ELEMENT = Format(width=8, int_bits=2, signed=True)


@dataclass(frozen=True)
class MXFormat(NumberFormat):
    """An OCP MX v1.0 block format: blocks of ``block`` (32) elements along one axis share an
    E8M0 scale ``2**(code - 127)`` (code 255: NaN). A tensor is ``(codes, scales)``: element
    codes (the element format's: bit patterns of ``fp*``, or int8 two's complement codes of
    ``mxint8``, whose element is ``fixed<8,2>``, i.e. ``code * 2**-6``) and one scale code per
    block.
    """

    name: str
    element: NumberFormat
    block: int = MX_BLOCK

    kind = "mx"

    def __str__(self) -> str:
        return self.name

    def __reduce__(self):
        return (Format.parse, (self.name,))

    @property
    def width(self) -> int:
        """Bits of an element code."""
        return self.element.width

    @property
    def signed(self) -> bool:
        return self.element.signed

    @property
    def emax(self) -> int:
        """``emax_elem``: the exponent of the element's largest normal value (0 for
        ``mxint8``)."""
        return self.element.emax if isinstance(self.element, FloatFormat) else 0

    def shape(self):
        return self.element.shape()

    def check_codes(self, codes, what: str) -> np.ndarray:
        return self.element.check_codes(codes, what)

    def check_scales(self, scales, what: str) -> np.ndarray:
        c = _int_array(scales, what)
        if c.size:
            bad = (c < 0) | (c > 255)
            if bad.any():
                flat = int(np.flatnonzero(bad.reshape(-1))[0])
                where = _index_text(c.shape, flat) if c.ndim else ""
                raise ValueError(f"{what}: scale code {int(c.reshape(-1)[flat])}{where} is "
                                 "out of range for E8M0 (allowed: 0..255, 255 is NaN)")
        return c.astype(np.int64)

    def blocks(self, length: int, what: str = "x") -> int:
        """Blocks along an axis of ``length``; ``ValueError`` unless a multiple of ``block``."""
        if length % self.block:
            raise ValueError(f"{what}: length {length} along the blocked axis is not a "
                             f"multiple of {self.name}'s block size {self.block} (padding "
                             f"rule: pad with zeros to {-(-length // self.block) * self.block})")
        return length // self.block

    def element_fixed(self) -> Format:
        """The fixed-point format holding every finite element value exactly."""
        el = self.element
        return el.as_fixed() if isinstance(el, FloatFormat) else el

    def element_to_fixed(self, codes) -> np.ndarray:
        el = self.element
        return el.to_fixed(codes) if isinstance(el, FloatFormat) else el.check_codes(codes,
                                                                                      "codes")

    def quantize(self, x, axis: int = -1) -> tuple[np.ndarray, np.ndarray]:
        """``(codes, scales)`` of float64 values, blocks of 32 along ``axis`` (its length a
        multiple of 32). Per block (OCP MX v1.0, section 6.3): ``X = floor(log2(max|x|)) -
        emax_elem`` clamped to ``-127..127`` (an all-zero block: ``-127``, scale code 0);
        elements ``x / 2**X`` rounded to nearest, ties to even, saturating to the element's
        max. A block holding a NaN or an infinity gets scale code 255 (NaN) and element codes
        0. ``scales`` has ``x``'s shape with ``axis`` divided by 32."""
        xf = np.asarray(x, dtype=np.float64)
        if xf.ndim == 0:
            raise ValueError(f"x: {self.name} needs an array with a blocked axis, got a scalar")
        ax = axis % xf.ndim
        xm = np.moveaxis(xf, ax, -1)
        nb = self.blocks(xm.shape[-1])
        xb = xm.reshape(*xm.shape[:-1], nb, self.block)
        bad = ~np.isfinite(xb).all(axis=-1)
        amax = np.where(bad, 0.0, np.abs(np.where(np.isfinite(xb), xb, 0.0)).max(axis=-1))
        _, k = np.frexp(amax)
        X = np.where(amax > 0, k.astype(np.int64) - 1 - self.emax, -E8M0_BIAS)
        X = np.clip(X, -E8M0_BIAS, E8M0_BIAS)
        with np.errstate(all="ignore"):
            scaled = np.ldexp(np.where(bad[..., None], 0.0, xb), -X[..., None])
        el = self.element
        if isinstance(el, FloatFormat):
            codes = el.quantize(scaled, saturate=True)
        else:
            codes = el.quantize(scaled, rounding="rnd_conv", overflow="sat")
        codes = np.where(bad[..., None], 0, codes)
        scales = np.where(bad, E8M0_NAN, X + E8M0_BIAS)
        codes = np.moveaxis(codes.reshape(xm.shape), -1, ax)
        scales = np.moveaxis(scales, -1, ax)
        return codes.astype(np.int64), scales.astype(np.int64)

    def _check_pair(self, codes, scales, axis: int):
        c = self.check_codes(codes, "codes")
        s = self.check_scales(scales, "scales")
        if c.ndim == 0:
            raise ValueError("codes: an MX tensor needs an array with a blocked axis")
        ax = axis % c.ndim
        want = list(c.shape)
        want[ax] = self.blocks(c.shape[ax], "codes")
        if tuple(s.shape) != tuple(want):
            raise ValueError(f"scales: shape {tuple(s.shape)} does not fit codes of shape "
                             f"{tuple(c.shape)} blocked along axis {ax} (allowed: "
                             f"{tuple(want)}, one scale per {self.block} elements)")
        return c, s, ax

    def dequantize(self, codes, scales, axis: int = -1) -> np.ndarray:
        """float64 values of an MX tensor (NaN for every element of a NaN-scale block;
        exact unless the product leaves float64's range)."""
        c, s, ax = self._check_pair(codes, scales, axis)
        v = self.element.dequantize(c)
        sx = np.repeat(s, self.block, axis=ax)
        with np.errstate(all="ignore"):
            out = np.ldexp(v, sx - E8M0_BIAS)
        return np.where(sx == E8M0_NAN, np.nan, out)

    # -- host packing ------------------------------------------------------------------------

    def block_bytes(self) -> int:
        """Bytes of one packed block: the scale byte, then the element codes packed."""
        return 1 + (self.block * self.width + 7) // 8

    def pack(self, codes, scales, axis: int = -1) -> np.ndarray:
        """Wire bytes of an MX tensor: with ``axis`` moved last, each block in row-major order
        is one scale byte followed by its 32 element codes packed by :func:`pack_bits`
        (FP8/INT8: 32 bytes, FP6: 24, FP4: 16, lane 0 in the low bits of byte 0). Returns
        ``[..., blocks * block_bytes]`` uint8 (leading axes as ``codes`` with ``axis``
        moved last)."""
        c, s, ax = self._check_pair(codes, scales, axis)
        cm = np.moveaxis(c, ax, -1)
        sm = np.moveaxis(s, ax, -1)
        nb = sm.shape[-1]
        body = pack_bits(cm.reshape(*cm.shape[:-1], nb, self.block), self.width)
        out = np.concatenate([sm[..., None].astype(np.uint8), body], axis=-1)
        return out.reshape(*cm.shape[:-1], nb * self.block_bytes())

    def unpack(self, buf, length: int, axis: int = -1) -> tuple[np.ndarray, np.ndarray]:
        """Inverse of :meth:`pack`: bytes ``[..., blocks * block_bytes]`` -> ``(codes,
        scales)`` with ``length`` elements along the blocked axis, which is moved back to
        ``axis``."""
        b = np.asarray(buf)
        if b.dtype != np.uint8:
            raise ValueError(f"buf: dtype {b.dtype} is not bytes (allowed: uint8)")
        nb = self.blocks(length, "length")
        bb = self.block_bytes()
        if b.ndim == 0 or b.shape[-1] != nb * bb:
            got = b.shape[-1] if b.ndim else 0
            raise ValueError(f"buf: {got} bytes per row cannot hold {nb} {self.name} blocks "
                             f"(need {nb * bb})")
        blk = b.reshape(*b.shape[:-1], nb, bb)
        scales = blk[..., 0].astype(np.int64)
        codes = unpack_bits(blk[..., 1:], self.width, self.block, signed=self.signed)
        codes = codes.reshape(*b.shape[:-1], length)
        nd = codes.ndim
        return np.moveaxis(codes, -1, axis % nd), np.moveaxis(scales, -1, axis % nd)


MX_FORMATS = {
    f.name: f for f in (
        MXFormat("mxfp8_e4m3", FLOAT_FORMATS["fp8_e4m3"]),
        MXFormat("mxfp8_e5m2", FLOAT_FORMATS["fp8_e5m2"]),
        MXFormat("mxfp6_e3m2", FLOAT_FORMATS["fp6_e3m2"]),
        MXFormat("mxfp6_e2m3", FLOAT_FORMATS["fp6_e2m3"]),
        MXFormat("mxfp4", FLOAT_FORMATS["fp4_e2m1"]),
        MXFormat("mxint8", _MXINT8_ELEMENT),
    )
}


def exact_parts(fmt: NumberFormat, codes) -> tuple[np.ndarray, int]:
    """Element codes as exact signed integers ``v`` and one exponent ``e``: the values are
    ``v * 2**e`` (fixed point: the codes and ``-frac_bits``; floats: :meth:`FloatFormat.to_fixed`,
    NaN/inf as 0; MX: the element's, scales not applied)."""
    if isinstance(fmt, MXFormat):
        fx = fmt.element_fixed()
        return fmt.element_to_fixed(codes), -fx.frac_bits
    if isinstance(fmt, FloatFormat):
        return fmt.to_fixed(codes), -fmt.as_fixed().frac_bits
    return fmt.check_codes(codes, "codes"), -fmt.frac_bits
