"""The integer form of a QONNX model (what :mod:`.reader` makes of one; docs/qonnx.md).

A QONNX ``Quant`` node maps a float tensor ``x`` to ``q = clamp(round(x / scale + zp))`` and
gives back ``(q - zp) * scale``. Here each quantizer is a :class:`Quantizer` (its scale per
tensor or per channel, zero point, bit width, sign, ``narrow_range`` and rounding mode), each
weight and bias its integer codes, and each layer a :class:`Dense` on codes:

    acc[n] = sum_k (x[k] - zx) * w[k, n] + b[n]          exact, int32
    y[n]   = clamp(round(acc[n] * sx * sw[n] / sy) + zy)  the requant epilogue

with ``sx * sw[n] / sy`` as ``quantize_multiplier``'s ``(multiplier, shift)``
(:meth:`Dense.requant`). Imports no ONNX: the reader and the host lowering share it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..numerics import Format, quantize_multiplier

__all__ = ["ROUNDING_MODES", "EPILOGUE_ROUNDINGS", "Quantizer", "Dense", "QModel"]


def _half_up(x):
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def _half_down(x):
    return np.sign(x) * np.ceil(np.abs(x) - 0.5)


def _up(x):
    return np.sign(x) * np.ceil(np.abs(x))


#: QONNX's rounding modes (``qonnx.custom_op.general.intquant.resolve_rounding_mode``).
ROUNDING_MODES = {"ROUND": np.round, "HALF_EVEN": np.round, "CEIL": np.ceil,
                  "FLOOR": np.floor, "UP": _up, "DOWN": np.fix, "HALF_UP": _half_up,
                  "HALF_DOWN": _half_down}
#: The modes an activation quantizer may have: the requant epilogue rounds to nearest (ties
#: away from zero, ``rounding: double``), which differs from these only on exact ties.
EPILOGUE_ROUNDINGS = ("ROUND", "HALF_EVEN", "HALF_UP")


@dataclass(frozen=True)
class Quantizer:
    """One QONNX ``Quant`` node: ``scale`` and ``zero_point`` are float arrays broadcast
    against the tensor (shape ``()`` per tensor, one entry per channel otherwise)."""

    node: str
    scale: np.ndarray
    zero_point: np.ndarray
    bits: int
    signed: bool
    narrow: bool
    rounding: str

    @property
    def min_code(self) -> int:
        if not self.signed:
            return 0
        return -(1 << (self.bits - 1)) + (1 if self.narrow else 0)

    @property
    def max_code(self) -> int:
        if self.signed:
            return (1 << (self.bits - 1)) - 1
        return (1 << self.bits) - 1 - (1 if self.narrow else 0)

    @property
    def fmt(self) -> Format:
        """The tensorfab format of the codes (``int4``, ``uint6``, ...)."""
        return Format.parse(f"{'int' if self.signed else 'uint'}{self.bits}")

    @property
    def per_tensor(self) -> bool:
        return self.scale.size == 1 and self.zero_point.size == 1

    def codes(self, x) -> np.ndarray:
        """QONNX's ``int_quant`` up to the rounding, in the tensor's own float type (float32
        for an exported model): ``round(clamp(x / scale + zp))``, the integer codes."""
        x = np.asarray(x)
        y = x / self.scale.astype(x.dtype) + self.zero_point.astype(x.dtype)
        y = np.clip(y, self.min_code, self.max_code)
        return ROUNDING_MODES[self.rounding](y).astype(np.int64)

    def dequantize(self, codes) -> np.ndarray:
        """``(codes - zp) * scale`` in float64."""
        return (np.asarray(codes, dtype=np.float64) - self.zero_point) * self.scale

    def to_dict(self) -> dict:
        return {"node": self.node, "scale": self.scale.tolist(),
                "zero_point": self.zero_point.tolist(), "bits": self.bits,
                "signed": self.signed, "narrow": self.narrow, "rounding": self.rounding}

    @classmethod
    def from_dict(cls, d: dict) -> Quantizer:
        return cls(str(d["node"]), np.asarray(d["scale"], dtype=np.float64),
                   np.asarray(d["zero_point"], dtype=np.float64), int(d["bits"]),
                   bool(d["signed"]), bool(d["narrow"]), str(d["rounding"]))

    def describe(self) -> str:
        kind = "per-tensor" if self.scale.size == 1 else f"per-channel ({self.scale.size})"
        zp = (f"zero point {int(self.zero_point.reshape(-1)[0])}" if self.zero_point.size == 1
              else "per-channel zero points")
        return (f"{self.fmt}{' narrow' if self.narrow else ''} {kind} scale, {zp}, "
                f"{self.rounding}")


@dataclass
class Dense:
    """``y = requant(x @ w + b)``: ``w`` [K, N] codes (weight zero points subtracted), ``b``
    [N] int32 codes at the accumulator's scale ``sx * sw`` (the input's zero point folded
    in), ``relu`` whether a ReLU came before the output quantizer."""

    name: str
    w: np.ndarray
    b: np.ndarray
    inp: Quantizer
    weight: Quantizer
    out: Quantizer
    relu: bool
    w_scale: np.ndarray = field(repr=False)

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.w.shape)

    def real_multiplier(self) -> np.ndarray:
        """``sx * sw[n] / sy`` per output channel (float64)."""
        sx = float(self.inp.scale.reshape(-1)[0])
        sy = float(self.out.scale.reshape(-1)[0])
        return np.broadcast_to(sx * self.w_scale.astype(np.float64) / sy, (self.shape[1],))

    def requant(self, rounding: str = "double") -> dict:
        """The requant epilogue's arrays (``Graph.matmul``'s ``requant``, the network's
        ``requant`` layer) for an epilogue of ``rounding`` (``double`` or ``single``):
        per-channel ``bias``, ``multiplier``, ``shift`` from ``quantize_multiplier``; the zero
        point; ``act_min`` the zero point after a ReLU.

        ``double`` rounds twice when ``shift < 0`` (``SRDHM`` to an integer, then
        ``RDBPOT`` by ``-shift`` bits): with a small accumulator and ``shift = -3`` about one
        code in twenty is off by one from the real product rounded once. A scale below one
        needs no right shift: ``multiplier * 2**shift`` (rounded half up, ``31 + shift``
        significant bits instead of 31) with ``shift = 0`` makes ``double`` round once, as
        ``single`` does, which is what a QONNX ``Quant`` computes."""
        if rounding not in ("double", "single"):
            raise ValueError(f"rounding {rounding!r} (allowed: double, single)")
        m, s = quantize_multiplier(self.real_multiplier())
        if rounding == "double":
            neg = s < 0
            m = np.where(neg, (m + (np.int64(1) << np.maximum(-s - 1, 0))) >> np.maximum(-s, 0),
                         m)
            s = np.where(neg, 0, s)
        zp = int(self.out.zero_point.reshape(-1)[0])
        lo = max(zp, self.out.min_code) if self.relu else self.out.min_code
        return {"bias": np.asarray(self.b, dtype=np.int64), "multiplier": m, "shift": s,
                "zero_point": zp, "act_min": lo, "act_max": self.out.max_code}


@dataclass
class QModel:
    """A QONNX MLP in integers: the input quantizer (applied on the host), the layers, and
    the names of the model's input and output."""

    input_name: str
    output_name: str
    input: Quantizer
    layers: list[Dense]

    @property
    def n_in(self) -> int:
        return self.layers[0].shape[0]

    @property
    def output(self) -> Quantizer:
        return self.layers[-1].out

    def quantize_input(self, x) -> np.ndarray:
        """Float inputs [rows, n_in] → the first layer's input codes (as QONNX computes them,
        in float32)."""
        return self.input.codes(np.asarray(x, dtype=np.float32))

    def golden(self, codes, rounding: str = "double") -> np.ndarray:
        """The integer model alone (``requantize_fixed`` per layer, epilogues of
        ``rounding``): input codes → output codes."""
        from ..numerics import exact_matmul, requantize_fixed

        x = np.asarray(codes, dtype=np.int64)
        for layer in self.layers:
            acc = exact_matmul(x, layer.w)
            x = requantize_fixed(acc, **layer.requant(rounding), rounding=rounding,
                                 out_fmt=Format.parse("int32"))
        return x

    def summary(self) -> list[str]:
        """One line per quantizer and layer (the report of ``tensorfab compile``)."""
        lines = [f"input {self.input_name}: {self.input.describe()} (node {self.input.node})"]
        for d in self.layers:
            k, n = d.shape
            lines.append(f"{d.name}: dense {k}->{n}, weights {d.weight.describe()} "
                         f"(node {d.weight.node}), out {d.out.describe()} (node {d.out.node})"
                         f"{', relu' if d.relu else ''}")
        return lines
