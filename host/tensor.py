"""Quantized tensors and the packing of stream beats for the wire.

:class:`QTensor` holds integer codes with their :class:`~generators.numerics.Format` and an
affine scale/zero-point (per tensor or per channel): ``real = (code - zero_point) * scale``.

:func:`pack_beats` / :func:`unpack_beats` turn a stream's fields (``{field: array}``, one leading
entry per beat, as the families' ``schedule`` makes them) into the bytes of a board buffer and
back, following the manifest's field layout (``offset``, ``width``, ``lanes``, ``lane_width``,
``signed``; docs/protocol.md "Beats in buffers"). Lane data goes through the project's one
packing routine, :func:`generators.numerics.pack_bits`; fields that do not start on a byte are
shifted into place with byte-wide NumPy operations, so packing is vectorised end to end.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from generators.errors import ArrayError
from generators.numerics import Format, Overflow, Rounding, pack_bits, unpack_bits

__all__ = ["QTensor", "FTensor", "MXTensor", "pack_beats", "unpack_beats", "beat_bytes",
           "code_dtype", "as_code_arrays"]


def beat_bytes(fields: dict) -> int:
    """Bytes of one beat: ``ceil(payload_width / 8)`` where the payload ends at the last
    field's last bit."""
    width = max((spec["offset"] + spec["width"] for spec in fields.values()), default=0)
    return (width + 7) // 8


def _lanes(spec: dict) -> tuple[int, int]:
    if "lanes" in spec:
        return spec["lanes"], spec["lane_width"]
    return 1, spec["width"]


def _needs_spare(fields: dict, nbytes: int) -> bool:
    """A field that does not start on a byte boundary and reaches the beat's last byte is
    read and written through one spare byte past the end."""
    return any(spec["offset"] % 8 and spec["offset"] // 8
               + (_lanes(spec)[0] * _lanes(spec)[1] + 7) // 8 >= nbytes
               for spec in fields.values())


def pack_beats(fields: dict, arrays: dict, nbytes: int | None = None) -> np.ndarray:
    """Beats as bytes ``[n, beat_bytes]`` (uint8) from ``{field: array}`` laid out as
    ``fields`` (a manifest stream's ``fields``). Pad bits are zero; codes are taken modulo
    their field width (callers validate ranges first)."""
    nbytes = beat_bytes(fields) if nbytes is None else nbytes
    n = None
    for name in fields:
        arr = np.asarray(arrays[name])
        n = arr.shape[0] if n is None else n
        if arr.shape[0] != n:
            raise ValueError(f"field {name}: {arr.shape[0]} beats, other fields have {n}")
    n = n or 0
    spare = _needs_spare(fields, nbytes)
    out = np.zeros((n, nbytes + spare), dtype=np.uint8)
    for name, spec in fields.items():
        lanes, lw = _lanes(spec)
        arr = np.asarray(arrays[name])
        byte, shift = divmod(spec["offset"], 8)
        if arr.dtype.kind in "iu" and shift == 0 and lw == 8:
            # whole bytes on a byte boundary (int8 lanes): one casting copy into place,
            # taken modulo 256 like pack_bits
            np.copyto(out[:, byte:byte + lanes], arr.reshape(n, lanes), casting="unsafe")
            continue
        if arr.dtype.kind in "iu" and "lanes" not in spec and shift + lw <= 8:
            # a flag or a small field inside one byte: mask, shift and or in, in uint8
            tmp = np.empty(n, dtype=np.uint8)
            np.bitwise_and(arr.reshape(n), (1 << lw) - 1, out=tmp, casting="unsafe")
            if shift:
                np.left_shift(tmp, np.uint8(shift), out=tmp)
            np.bitwise_or(out[:, byte], tmp, out=out[:, byte])
            continue
        if "lanes" not in spec and lw <= 56 and arr.dtype.kind in "iu":
            # a flag or a small scalar: its low bytes, without the lane machinery
            k = (lw + 7) // 8
            masked = arr.astype(np.uint64) & np.uint64((1 << lw) - 1)
            packed = masked.astype("<u8").view(np.uint8).reshape(n, 8)[:, :k]
        else:
            packed = pack_bits(arr.reshape(n, lanes), lw)
        k = packed.shape[1]
        if shift == 0:
            out[:, byte:byte + k] |= packed
        else:
            wide = packed.astype(np.uint16) << shift
            out[:, byte:byte + k] |= wide.astype(np.uint8)
            out[:, byte + 1:byte + k + 1] |= (wide >> 8).astype(np.uint8)
    return out[:, :nbytes] if spare else out


def unpack_beats(fields: dict, buf, n: int | None = None, narrow: bool = False) -> dict:
    """Inverse of :func:`pack_beats`: bytes (``[n, beat_bytes]`` or flat) -> ``{field: array}``
    (lane fields ``[n, lanes]``, sign-extended when ``signed``; other fields ``[n]``, their raw
    bits, as :func:`sim.streams.unpack_payloads` gives them), int64 unless ``narrow`` (then the
    smallest NumPy integer dtype that holds the field's codes)."""
    nbytes = beat_bytes(fields)
    b = np.frombuffer(buf, dtype=np.uint8) if isinstance(buf, (bytes, bytearray, memoryview)) \
        else np.asarray(buf, dtype=np.uint8)
    if n is None:
        n = b.size // nbytes if nbytes else 0
    b = b[:n * nbytes].reshape(n, nbytes)
    spare = _needs_spare(fields, nbytes)
    if spare:   # a shifted field reads one byte past its end: pad (only then copy)
        padded = np.zeros((n, nbytes + 1), dtype=np.uint8)
        padded[:, :nbytes] = b
    else:
        padded = b
    out = {}
    for name, spec in fields.items():
        lanes, lw = _lanes(spec)
        byte, shift = divmod(spec["offset"], 8)
        if "lanes" not in spec and shift + lw <= 8:
            # a flag or a small field inside one byte: its raw bits, straight from the byte
            bits = padded[:, byte] >> np.uint8(shift) if shift else padded[:, byte].copy()
            bits &= np.uint8((1 << lw) - 1)
            out[name] = bits.astype(code_dtype(lw, False) if narrow else np.int64)
            continue
        k = (lanes * lw + 7) // 8
        if shift == 0:
            raw = padded[:, byte:byte + k]
        else:
            lo = padded[:, byte:byte + k].astype(np.uint16)
            hi = padded[:, byte + 1:byte + k + 1].astype(np.uint16)
            raw = ((lo >> shift) | (hi << (8 - shift))).astype(np.uint8)
        # Lane fields are sign-extended as the manifest says; a scalar field comes back as
        # its raw bits, as sim.streams.unpack_payloads gives it to the families' assemble.
        signed = bool(spec.get("signed", False)) and "lanes" in spec
        dtype = code_dtype(lw, signed) if narrow else None
        codes = unpack_bits(raw, lw, lanes, signed, dtype=dtype)
        out[name] = codes if "lanes" in spec else codes.reshape(n)
    return out


def code_dtype(width: int, signed: bool) -> np.dtype:
    """The smallest signed NumPy integer dtype that holds every code of a ``width``-bit field
    (uint64 for 64-bit unsigned fields)."""
    for bits in (8, 16, 32, 64):
        if (width <= bits) if signed else (width < bits):
            return np.dtype(f"int{bits}")
    return np.dtype(np.uint64)


@dataclass(frozen=True, eq=False)
class QTensor:
    """Integer codes with a format and an affine quantization: ``real = (code - zp) * scale``.

    Parameters
    ----------
    codes:
        Integer codes within ``fmt`` (stored in the smallest integer dtype that holds them).
    fmt:
        The codes' :class:`~generators.numerics.Format` (``int8``, ``int4``, ``fixed<8,3>`` ...).
    scale, zero_point:
        Per tensor (scalars) or per channel (1-D arrays along ``axis``). The default scale is
        the format's LSB (``2**-frac_bits``), so a fixed-point format alone means what it says.
    axis:
        The channel axis of per-channel ``scale``/``zero_point`` (None: per tensor).
    """

    codes: np.ndarray
    fmt: Format
    scale: float | np.ndarray = field(default=None)  # type: ignore[assignment]
    zero_point: int | np.ndarray = 0
    axis: int | None = None

    def __post_init__(self):
        fmt = Format.parse(self.fmt) if isinstance(self.fmt, str) else self.fmt
        if fmt.kind != "fixed":
            raise ValueError(f"fmt: {fmt} is not a fixed-point format (QTensor holds integer "
                             "codes with an affine scale; floating-point and MX formats: "
                             "quantize with Format.parse(name).quantize)")
        object.__setattr__(self, "fmt", fmt)
        codes = fmt.check_codes(self.codes, "codes")
        object.__setattr__(self, "codes", codes.astype(code_dtype(fmt.width, fmt.signed))
                           if codes.dtype != object else codes)
        scale = fmt.lsb if self.scale is None else self.scale
        object.__setattr__(self, "scale", _param(scale, "scale", np.float64, self))
        object.__setattr__(self, "zero_point", _param(self.zero_point, "zero_point",
                                                      np.int64, self))
        if np.any(np.asarray(self.scale) <= 0) or not np.all(np.isfinite(self.scale)):
            raise ValueError("scale: must be finite and positive")

    @classmethod
    def quantize(cls, x, fmt: Format | str, scale=None, zero_point=0, axis: int | None = None,
                 rounding: Rounding | str = "rnd_conv",
                 overflow: Overflow | str = "sat") -> QTensor:
        """Codes for real values ``x``: ``round(x / scale) + zero_point`` under ``rounding``,
        then ``overflow`` into ``fmt``'s code range. ``scale=None``: the format's LSB.

        Raises ``ValueError`` (one line) for NaN, infinities under ``wrap``, or a scale or
        zero point that does not fit ``x`` along ``axis``.
        """
        fmt = Format.parse(fmt) if isinstance(fmt, str) else fmt
        x = np.asarray(x, dtype=np.float64)
        probe = cls(np.zeros(x.shape, dtype=np.int64), fmt, scale, zero_point, axis)
        s, zp = probe._bcast(probe.scale), probe._bcast(probe.zero_point)
        as_int = Format(width=fmt.width, int_bits=fmt.width, signed=fmt.signed)
        with np.errstate(all="ignore"):
            t = x / s
        wide = Format(width=64, int_bits=64, signed=True)
        # round in a wide integer format first, then add the zero point and apply overflow
        codes = wide.quantize(t, rounding, "sat") + zp
        return cls(as_int.apply_overflow(codes, overflow), fmt, probe.scale, probe.zero_point,
                   axis)

    def dequantize(self) -> np.ndarray:
        """Real values ``(codes - zero_point) * scale`` as float64."""
        c = self.codes.astype(np.float64)
        return (c - self._bcast(self.zero_point)) * self._bcast(self.scale)

    def _bcast(self, v):
        v = np.asarray(v)
        if v.ndim == 0 or self.axis is None:
            return v
        shape = [1] * self.codes.ndim
        shape[self.axis] = v.size
        return v.reshape(shape)

    @property
    def shape(self) -> tuple:
        return self.codes.shape


def _param(v, name: str, dtype, t: QTensor):
    arr = np.asarray(v, dtype=dtype)
    if arr.ndim == 0:
        return arr.item()
    if arr.ndim != 1:
        raise ValueError(f"{name}: shape {arr.shape} (allowed: a scalar or a 1-D array of "
                         "per-channel values)")
    codes = np.asarray(t.codes)
    if t.axis is None or not -codes.ndim <= t.axis < codes.ndim:
        raise ValueError(f"{name}: per-channel values need axis (allowed: 0..{codes.ndim - 1})")
    if arr.size != codes.shape[t.axis]:
        raise ValueError(f"{name}: {arr.size} values for {codes.shape[t.axis]} channels on "
                         f"axis {t.axis}")
    return arr


@dataclass(frozen=True, eq=False)
class FTensor:
    """Codes of a floating-point element format (``fp8_e4m3``, ``fp8_e5m2``, ``fp6_e3m2``,
    ``fp6_e2m3``, ``fp4_e2m1``, ``fp32``): the bit patterns as integers. A board with such an
    operand takes it as its codes; ``fp32`` results (``acc: fp32``) come back as codes too:
    ``FTensor(c, "fp32").dequantize()`` gives their values."""

    codes: np.ndarray
    fmt: object

    def __post_init__(self):
        fmt = Format.parse(self.fmt) if isinstance(self.fmt, str) else self.fmt
        if getattr(fmt, "kind", None) != "float":
            raise ValueError(f"fmt: {fmt} is not a floating-point element format (allowed: "
                             "fp8_e4m3, fp8_e5m2, fp6_e3m2, fp6_e2m3, fp4_e2m1, fp32)")
        object.__setattr__(self, "fmt", fmt)
        object.__setattr__(self, "codes", fmt.check_codes(self.codes, "codes"))

    @classmethod
    def quantize(cls, x, fmt, saturate: bool = True) -> FTensor:
        """Codes of float values, round to nearest even, saturating (see docs/formats.md)."""
        f = Format.parse(fmt) if isinstance(fmt, str) else fmt
        if getattr(f, "kind", None) != "float":
            raise ValueError(f"fmt: {f} is not a floating-point element format")
        return cls(f.quantize(x, saturate=saturate), f)

    def dequantize(self) -> np.ndarray:
        """The exact values as float64 (NaN and ±inf for those codes)."""
        return self.fmt.dequantize(self.codes)

    def pack(self) -> np.ndarray:
        """Wire bytes, each row along the last axis packed by ``pack_bits`` (FP4: two codes a
        byte, FP6: four in three bytes)."""
        return pack_bits(self.codes, self.fmt.width)

    @classmethod
    def unpack(cls, buf, fmt, length: int) -> FTensor:
        f = Format.parse(fmt) if isinstance(fmt, str) else fmt
        return cls(unpack_bits(buf, f.width, length, signed=False), f)

    @property
    def shape(self) -> tuple:
        return self.codes.shape


@dataclass(frozen=True, eq=False)
class MXTensor:
    """An OCP MX tensor: element ``codes``, E8M0 ``scales`` (one per block of 32 along
    ``axis``) and its ``fmt`` (``mxfp8_e4m3`` ... ``mxint8``). Given to a board as operand
    ``a`` it is the arrays ``a`` and ``a_scale`` (``b``: ``b`` and ``b_scale``); a MAC
    array's K is its blocked axis (``a``: axis 1, ``b``: axis 0)."""

    codes: np.ndarray
    scales: np.ndarray
    fmt: object
    axis: int = -1

    def __post_init__(self):
        fmt = Format.parse(self.fmt) if isinstance(self.fmt, str) else self.fmt
        if getattr(fmt, "kind", None) != "mx":
            raise ValueError(f"fmt: {fmt} is not an MX format (allowed: mxfp8_e4m3, "
                             "mxfp8_e5m2, mxfp6_e3m2, mxfp6_e2m3, mxfp4, mxint8)")
        object.__setattr__(self, "fmt", fmt)
        c, sc, ax = fmt._check_pair(self.codes, self.scales, self.axis)
        object.__setattr__(self, "codes", c)
        object.__setattr__(self, "scales", sc)
        object.__setattr__(self, "axis", ax)

    @classmethod
    def quantize(cls, x, fmt, axis: int = -1) -> MXTensor:
        """OCP MX conversion of float values, blocks of 32 along ``axis`` (docs/formats.md)."""
        f = Format.parse(fmt) if isinstance(fmt, str) else fmt
        if getattr(f, "kind", None) != "mx":
            raise ValueError(f"fmt: {f} is not an MX format")
        codes, scales = f.quantize(x, axis=axis)
        return cls(codes, scales, f, axis)

    def dequantize(self) -> np.ndarray:
        return self.fmt.dequantize(self.codes, self.scales, axis=self.axis)

    def pack(self) -> np.ndarray:
        """Wire bytes: per block a scale byte and the packed element codes
        (:meth:`~generators.numerics.MXFormat.pack`)."""
        return self.fmt.pack(self.codes, self.scales, axis=self.axis)

    @classmethod
    def unpack(cls, buf, fmt, length: int, axis: int = -1) -> MXTensor:
        f = Format.parse(fmt) if isinstance(fmt, str) else fmt
        codes, scales = f.unpack(buf, length, axis=axis)
        return cls(codes, scales, f, axis)

    @property
    def shape(self) -> tuple:
        return self.codes.shape


def as_code_arrays(arrays: dict) -> dict:
    """The host API's inputs as NumPy arrays, whatever NumPy takes: arrays, (nested) lists and
    tuples, scalars, :class:`QTensor` and :class:`FTensor` (their codes) and
    :class:`MXTensor` (array ``NAME``: its codes, and ``NAME_scale``: its scales). Object
    arrays are refused (codes are integers; an object array hides what it holds). The unit's
    ``check_inputs`` then checks names, shapes, dtypes and ranges, the same for every unit.

    Raises
    ------
    ArrayError
        One line naming the array: not array-like (ragged lists), or of object dtype.
    """
    out = {}
    for name, value in arrays.items():
        if isinstance(value, MXTensor):  # the codes, and the scales beside them
            out[f"{name}_scale"] = value.scales
            value = value.codes
        if isinstance(value, (QTensor, FTensor)):
            value = value.codes
        if isinstance(value, np.ndarray) and value.dtype == object:
            raise ArrayError(f"{name}: dtype object (allowed: integer codes: lists, NumPy "
                             "integer arrays or a QTensor)")
        try:
            arr = np.asarray(value)
        except (ValueError, TypeError) as err:
            raise ArrayError(f"{name}: not an array ({str(err).splitlines()[0]})") from None
        if arr.dtype == object:
            raise ArrayError(f"{name}: holds values NumPy cannot make integer codes of "
                             "(allowed: integer codes: lists, NumPy integer arrays or a "
                             "QTensor)")
        out[name] = arr
    return out
