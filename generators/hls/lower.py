"""Lower an hls4ml ``ModelGraph`` into integer layers (NumPy only; hls4ml objects are read,
never imported here, so a lowered model can be saved and run without hls4ml).

hls4ml's Dense (latency strategy, ``nnet_dense_latency.h``) computes, per output ``j``::

    acc = accum_t(bias[j]);  for i: acc += accum_t(data_t(x[i]) * weight_t(w[i][j]))
    res[j] = result_t(acc)

Every assignment converts to the destination ``ap_fixed`` type with that type's rounding and
saturation (``TRN``/``WRAP`` unless the precision says otherwise). ReLU assigns ``x`` or 0 to its
result type. The lowered layers keep exactly these types as :class:`~generators.numerics.Format`
plus rounding/overflow names.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import UserError
from ..gelu.params import GeluParams
from ..numerics import Format
from ..softmax.params import SoftmaxParams

__all__ = ["Quant", "DenseLayer", "BatchNormLayer", "ReluLayer", "SoftmaxLayer", "GeluLayer",
           "LoweredModel", "lower", "to_config", "from_config", "quant_of", "softmax_params",
           "gelu_params"]

#: hls4ml layer classes this version lowers (as the ONNX, Keras 3 and PyTorch front ends name
#: them: a Keras ``ReLU`` layer reaches the graph as a threshold-0 ``ThresholdedReLU``).
SUPPORTED = ("Input", "Dense", "Activation(relu)", "ReLU", "ThresholdedReLU(threshold 0)",
             "BatchNormalization", "ApplyAlpha", "Softmax", "Activation(softmax)",
             "Activation(gelu)")

_ROUNDING = {"TRN": "trn", "RND": "rnd", "RND_CONV": "rnd_conv"}
_OVERFLOW = {"WRAP": "wrap", "SAT": "sat"}


@dataclass(frozen=True)
class Quant:
    """An ``ap_fixed``/``ap_int`` type: the format of its codes and how a value is converted
    into it (``rounding`` when fraction bits are dropped, ``overflow`` when it is too big)."""

    fmt: Format
    rounding: str = "trn"
    overflow: str = "wrap"

    def __str__(self) -> str:
        return f"{self.fmt} ({self.rounding}, {self.overflow})"


def quant_of(precision, where: str) -> Quant:
    """A :class:`Quant` from an hls4ml precision type (``FixedPrecisionType``,
    ``IntegerPrecisionType``); ``where`` names the layer and type in messages."""
    name = type(precision).__name__
    width = getattr(precision, "width", None)
    kinds = {c.__name__ for c in type(precision).__mro__}
    if width is None or not kinds & {"FixedPrecisionType", "IntegerPrecisionType"}:
        raise UserError(f"{where}: precision {precision} ({name}) is not supported "
                        "(allowed: ap_fixed, ap_ufixed, ap_int, ap_uint)")
    integer = precision.integer
    signed = bool(precision.signed)
    rnd = getattr(getattr(precision, "rounding_mode", None), "name", "TRN") or "TRN"
    sat = getattr(getattr(precision, "saturation_mode", None), "name", "WRAP") or "WRAP"
    if rnd not in _ROUNDING:
        raise UserError(f"{where}: rounding mode {rnd} of {precision} is not supported "
                        f"(allowed: {', '.join(_ROUNDING)})")
    if sat not in _OVERFLOW or getattr(precision, "saturation_bits", 0):
        raise UserError(f"{where}: saturation mode {sat} of {precision} is not supported "
                        f"(allowed: {', '.join(_OVERFLOW)})")
    try:
        fmt = Format(width=int(width), int_bits=int(integer), signed=signed)
    except (TypeError, ValueError) as err:
        raise UserError(f"{where}: precision {precision}: {err}") from None
    return Quant(fmt, _ROUNDING[rnd], _OVERFLOW[sat])


@dataclass(frozen=True, eq=False)
class DenseLayer:
    """``y = result(accum(bias) + sum_i accum(x_i * w_ij))`` on codes.

    ``w`` holds weight codes [n_in, n_out] in ``weight.fmt``; ``b`` bias codes [n_out] in
    ``bias.fmt``.
    """

    name: str
    w: np.ndarray
    b: np.ndarray
    inp: Quant
    weight: Quant
    bias: Quant
    accum: Quant
    result: Quant
    reuse_factor: int = 1

    @property
    def n_in(self) -> int:
        return self.w.shape[0]

    @property
    def n_out(self) -> int:
        return self.w.shape[1]


@dataclass(frozen=True, eq=False)
class BatchNormLayer:
    """``y = result(x * scale + bias)`` per feature, the sum exact (``nnet_batchnorm.h``):
    hls4ml's BatchNormalization, and the ApplyAlpha it makes of a lone bias or scale."""

    name: str
    scale: np.ndarray
    b: np.ndarray
    inp: Quant
    scale_q: Quant
    bias: Quant
    result: Quant


@dataclass(frozen=True)
class ReluLayer:
    """``y = result(max(x, 0))``."""

    name: str
    inp: Quant
    result: Quant


@dataclass(frozen=True)
class SoftmaxLayer:
    """Row-wise softmax of the ``n`` values of a row, computed by the softmax unit
    (:mod:`generators.softmax`, its integer specification): ``inp`` is the type of the layer
    before, ``result`` hls4ml's ``result_t`` of the layer (only its format is used: the unit
    rounds to nearest and saturates by its own specification). Not hls4ml's table softmax:
    the outputs differ from ``predict()`` (README, "HLS flow")."""

    name: str
    n: int
    inp: Quant
    result: Quant

    @property
    def n_in(self) -> int:
        return self.n

    @property
    def n_out(self) -> int:
        return self.n


@dataclass(frozen=True)
class GeluLayer:
    """Element-wise exact GELU computed by the gelu unit (:mod:`generators.gelu`), from the
    type of the layer before (``inp``) to the layer's ``result`` format (the unit rounds to
    nearest and saturates). hls4ml has no GELU: see :data:`GELU_NOTE`."""

    name: str
    n: int
    inp: Quant
    result: Quant

    @property
    def n_in(self) -> int:
        return self.n

    @property
    def n_out(self) -> int:
        return self.n


#: How a GELU reaches the lowering (hls4ml has no GELU layer of its own).
GELU_NOTE = ("an ONNX Gelu node (opset 20, or com.microsoft Gelu) or an activation named "
             "gelu, e.g. Keras Activation('gelu')")


def softmax_params(layer: SoftmaxLayer):
    """The softmax unit that computes ``layer``: one row of ``n`` elements per beat."""
    return SoftmaxParams(length=int(layer.n), lanes=int(layer.n), inp=layer.inp.fmt,
                         out=layer.result.fmt, name=layer.name)


def gelu_params(layer: GeluLayer):
    """The gelu unit that computes ``layer``: one row of ``n`` elements per beat."""
    return GeluParams(inp=layer.inp.fmt, out=layer.result.fmt, lanes=int(layer.n), name=layer.name)


def check_unit_formats(layer, where: str) -> None:
    """Raise :class:`UserError` when the unit behind a softmax or GELU layer cannot take the
    layer's input and result formats (one line, naming what is allowed)."""
    i, o = layer.inp.fmt, layer.result.fmt
    if isinstance(layer, SoftmaxLayer):
        if not 2 <= i.width <= 12:
            raise UserError(f"{where}: input {i} is {i.width} bits (allowed: 2..12 bits for "
                            "the softmax unit; set the result precision of the layer before, "
                            "e.g. fixed<12,5,RND,SAT>)")
        if o.signed or not 2 <= o.width <= 16 or o.int_bits > 1 or o.frac_bits < 1:
            raise UserError(f"{where}: result {o} is not a probability format (allowed: "
                            "ufixed<W,I> with 2 <= W <= 16 and I <= 1, e.g. "
                            "ufixed<16,0,RND,SAT>)")
    else:
        for what, f in (("input", i), ("result", o)):
            if not f.signed or not 2 <= f.width <= 16:
                raise UserError(f"{where}: {what} {f} is not allowed for the gelu unit "
                                "(allowed: signed fixed<W,I> with 2 <= W <= 16; set it in "
                                "the hls4ml configuration)")


@dataclass(frozen=True, eq=False)
class LoweredModel:
    """The integer pipeline of a model: its input type, its layers in order, and notes on how
    ``'auto'`` precisions were resolved."""

    name: str
    inp: Quant
    layers: tuple
    notes: tuple = field(default=())

    @property
    def out(self) -> Quant:
        return self.layers[-1].result if self.layers else self.inp

    @property
    def n_in(self) -> int:
        return next(x.n_in for x in self.layers if hasattr(x, "n_in"))

    @property
    def n_out(self) -> int:
        last = [x for x in self.layers if hasattr(x, "n_out")]
        return last[-1].n_out


def _types(layer) -> dict:
    return {k: v.precision for k, v in layer.types.items()}


def _weights(layer, key: str) -> np.ndarray | None:
    var = layer.weights.get(key) if hasattr(layer, "weights") else None
    if var is None:
        return None
    return np.asarray(var.data, dtype=np.float64)


def _describe(layer) -> str:
    return f"layer {layer.name!r} ({layer.class_name})"


def _codes(values: np.ndarray, q: Quant, where: str) -> np.ndarray:
    if not np.all(np.isfinite(values)):
        raise UserError(f"{where}: holds NaN or infinite values (allowed: finite numbers)")
    return q.fmt.quantize(values, q.rounding, q.overflow)


def _act(layer) -> str:
    return str(layer.get_attr("activation") or "").lower()


def _is_relu(layer) -> bool:
    """``max(x, 0)`` as each front end gives it to hls4ml: ``Activation(relu)`` (ONNX, PyTorch,
    Keras ``Activation('relu')``), ``ReLU``, and the ``ParametrizedActivation(thresholdedrelu)``
    hls4ml makes of a Keras 3 ``ReLU`` layer, which with threshold 0 (``x > 0 ? x : 0``) is the
    same function."""
    cls, act = layer.class_name, _act(layer)
    if cls == "ReLU" or (cls == "Activation" and act == "relu"):
        return True
    return (cls in ("ParametrizedActivation", "ThresholdedReLU") and act == "thresholdedrelu"
            and float(layer.get_attr("activ_param") or 0.0) == 0.0)


def _softmax_axis_ok(layer, axis) -> bool:
    """The last axis: ``-1``, or its index counted with the batch axis (PyTorch's
    ``Softmax(dim=1)`` on [batch, n], which hls4ml keeps as ``axis=1``)."""
    if axis in (None, -1):
        return True
    shape = layer.get_input_variable().shape  # without the batch axis
    return axis == len(shape)


def lower(graph, name: str | None = None) -> LoweredModel:
    """Lower an hls4ml ``ModelGraph`` (after ``convert_from_*``; no compile needed).

    Raises
    ------
    UserError
        A layer hls4ml produced that this version cannot lower (one line naming the layer,
        its type and what is supported), or a precision it cannot represent exactly.
    """
    layers = list(graph.get_layers())
    if not layers or layers[0].class_name != "Input":
        raise UserError("the model has no input layer (allowed: models hls4ml converts)")
    inp = quant_of(_types(layers[0])["result_t"], _describe(layers[0]) + " result_t")
    out: list = []
    notes: list[str] = []
    cur = inp
    width = None
    for layer in layers[1:]:
        cls = layer.class_name
        where = _describe(layer)
        types = _types(layer)
        if cls == "Dense":
            wq = quant_of(types["weight_t"], f"{where} weight_t")
            bq = quant_of(types["bias_t"], f"{where} bias_t")
            aq = quant_of(types["accum_t"], f"{where} accum_t")
            rq = quant_of(types["result_t"], f"{where} result_t")
            w = _weights(layer, "weight")
            b = _weights(layer, "bias")
            n_in, n_out = layer.get_attr("n_in"), layer.get_attr("n_out")
            w = w.reshape(n_in, n_out)
            b = np.zeros(n_out) if b is None else b.reshape(n_out)
            layer_out = DenseLayer(
                name=layer.name, w=_codes(w, wq, f"{where} weights"),
                b=_codes(b, bq, f"{where} biases"), inp=cur, weight=wq, bias=bq, accum=aq,
                result=rq, reuse_factor=int(layer.get_attr("reuse_factor") or 1))
            out.append(layer_out)
            cur = rq
            width = n_out
        elif cls in ("BatchNormalization", "ApplyAlpha"):
            sq = quant_of(types["scale_t"], f"{where} scale_t")
            bq = quant_of(types["bias_t"], f"{where} bias_t")
            rq = quant_of(types["result_t"], f"{where} result_t")
            n = int(layer.get_attr("n_in"))
            sc = _weights(layer, "scale")
            b = _weights(layer, "bias")
            sc = np.ones(n) if sc is None else np.broadcast_to(sc.reshape(-1), (n,))
            b = np.zeros(n) if b is None else np.broadcast_to(b.reshape(-1), (n,))
            out.append(BatchNormLayer(
                name=layer.name, scale=_codes(sc, sq, f"{where} scale"),
                b=_codes(b, bq, f"{where} bias"), inp=cur, scale_q=sq, bias=bq, result=rq))
            cur = rq
        elif _is_relu(layer):
            rq = quant_of(types["result_t"], f"{where} result_t")
            out.append(ReluLayer(name=layer.name, inp=cur, result=rq))
            cur = rq
        elif cls == "Softmax" or (cls == "Activation" and _act(layer) in ("softmax", "gelu")):
            kind = "softmax" if cls == "Softmax" else _act(layer)
            if width is None:
                raise UserError(f"{where}: a {kind} before any Dense layer (allowed: a "
                                "Dense layer first)")
            if kind == "softmax":
                axis = layer.get_attr("axis")
                if not _softmax_axis_ok(layer, axis):
                    raise UserError(f"{where}: softmax over axis {axis} (allowed: the last "
                                    "axis: -1, or its index counted with the batch axis, "
                                    "e.g. PyTorch's dim=1 on [batch, n])")
            rq = quant_of(types["result_t"], f"{where} result_t")
            cls_ = SoftmaxLayer if kind == "softmax" else GeluLayer
            new = cls_(name=layer.name, n=width, inp=cur, result=rq)
            check_unit_formats(new, where)
            out.append(new)
            cur = rq
        else:
            act = layer.get_attr("activation")
            if cls == "ParametrizedActivation" and _act(layer) == "thresholdedrelu":
                act = f"thresholdedrelu, threshold {layer.get_attr('activ_param')}"
            kind = f"{cls}({act})" if cls in ("Activation", "ParametrizedActivation") and act \
                else cls
            raise UserError(f"{where}: type {kind} is not supported "
                            f"(allowed: {', '.join(SUPPORTED)})")
    for i, layer in enumerate(out[:-1]):
        if isinstance(layer, SoftmaxLayer):
            nxt = out[i + 1]
            raise UserError(f"layer {layer.name!r} (Softmax): followed by layer {nxt.name!r} "
                            "(allowed: a softmax as the last layer)")
    return LoweredModel(name=name or graph.config.get_project_name(), inp=inp,
                        layers=tuple(out), notes=tuple(notes))


# -- to and from the `network` config ---------------------------------------------------------


def _quant_dict(q: Quant) -> dict:
    return {"format": str(q.fmt), "rounding": q.rounding, "overflow": q.overflow}


def _quant(c) -> Quant:
    return Quant(c.format, c.rounding, c.overflow)


def to_config(model: LoweredModel, name: str, source: str = "") -> dict:
    """The ``unit: network`` config (a plain YAML-able dict) of a lowered model."""
    layers = []
    for layer in model.layers:
        if isinstance(layer, DenseLayer):
            layers.append({"kind": "dense", "name": layer.name,
                           "weight": _quant_dict(layer.weight), "bias": _quant_dict(layer.bias),
                           "accum": _quant_dict(layer.accum),
                           "result": _quant_dict(layer.result),
                           "reuse_factor": layer.reuse_factor,
                           "w": np.asarray(layer.w, dtype=np.int64).tolist(),
                           "b": np.asarray(layer.b, dtype=np.int64).tolist()})
        elif isinstance(layer, BatchNormLayer):
            layers.append({"kind": "batchnorm", "name": layer.name,
                           "scale_type": _quant_dict(layer.scale_q),
                           "bias": _quant_dict(layer.bias), "result": _quant_dict(layer.result),
                           "scale": np.asarray(layer.scale, dtype=np.int64).tolist(),
                           "b": np.asarray(layer.b, dtype=np.int64).tolist()})
        elif isinstance(layer, (SoftmaxLayer, GeluLayer)):
            layers.append({"kind": "softmax" if isinstance(layer, SoftmaxLayer) else "gelu",
                           "name": layer.name, "result": _quant_dict(layer.result)})
        else:
            layers.append({"kind": "relu", "name": layer.name,
                           "result": _quant_dict(layer.result)})
    return {"name": name, "unit": "network", "input": _quant_dict(model.inp),
            "layers": layers, "source": source}


def from_config(cfg) -> LoweredModel:
    """The lowered model a ``unit: network`` config describes."""
    cur = _quant(cfg.input)
    layers = []
    width = None
    for lc in cfg.layers:
        if lc.kind == "dense":
            layer = DenseLayer(name=lc.name, w=np.array(lc.w, dtype=np.int64),
                               b=np.array(lc.b, dtype=np.int64), inp=cur,
                               weight=_quant(lc.weight), bias=_quant(lc.bias),
                               accum=_quant(lc.accum), result=_quant(lc.result),
                               reuse_factor=lc.reuse_factor)
            width = layer.n_out
        elif lc.kind in ("softmax", "gelu"):
            cls = SoftmaxLayer if lc.kind == "softmax" else GeluLayer
            layer = cls(name=lc.name, n=width, inp=cur, result=_quant(lc.result))
        elif lc.kind == "batchnorm":
            layer = BatchNormLayer(name=lc.name, scale=np.array(lc.scale, dtype=np.int64),
                                   b=np.array(lc.b, dtype=np.int64), inp=cur,
                                   scale_q=_quant(lc.scale_type), bias=_quant(lc.bias),
                                   result=_quant(lc.result))
        else:
            layer = ReluLayer(name=lc.name, inp=cur, result=_quant(lc.result))
        layers.append(layer)
        cur = layer.result
    return LoweredModel(name=cfg.name, inp=_quant(cfg.input), layers=tuple(layers))
