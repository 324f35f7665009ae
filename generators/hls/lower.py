"""Lower an hls4ml ``ModelGraph`` into the integer layers of a ``unit: network`` (NumPy only;
hls4ml objects are read, never imported here, so a lowered model can be saved and run without
hls4ml).

hls4ml's Dense (latency strategy, ``nnet_dense_latency.h``) computes, per output ``j``::

    acc = accum_t(bias[j]);  for i: acc += accum_t(data_t(x[i]) * weight_t(w[i][j]))
    res[j] = result_t(acc)

Every assignment converts to the destination ``ap_fixed`` type with that type's rounding and
saturation (``TRN``/``WRAP`` unless the precision says otherwise). ReLU assigns ``x`` or 0 to its
result type. :func:`lower` gives the network's one object, a
:class:`~generators.network.params.NetworkParams` (the ``unit: network`` config), whose layers
(:mod:`generators.network.layers`) keep exactly these types as
:class:`~generators.network.layers.Quant` (a :class:`~generators.numerics.Format` plus
rounding/overflow names) and the weights as their codes; ``config_to_dict`` of it is the YAML
``tensorfab hls`` writes.
"""

from __future__ import annotations

import numpy as np
from pydantic import ValidationError

from ..config_errors import first_error
from ..errors import UserError
from ..network.layers import (
    BatchNormLayer,
    DenseLayer,
    GeluLayer,
    Quant,
    ReluLayer,
    SoftmaxLayer,
)
from ..network.params import NetworkParams
from ..numerics import Format

__all__ = ["lower", "quant_of", "SUPPORTED", "GELU_NOTE", "config_name"]

#: hls4ml layer classes this version lowers (as the ONNX, Keras 3 and PyTorch front ends name
#: them: a Keras ``ReLU`` layer reaches the graph as a threshold-0 ``ThresholdedReLU``).
SUPPORTED = ("Input", "Dense", "Activation(relu)", "ReLU", "ThresholdedReLU(threshold 0)",
             "BatchNormalization", "ApplyAlpha", "Softmax", "Activation(softmax)",
             "Activation(gelu)")

_ROUNDING = {"TRN": "trn", "RND": "rnd", "RND_CONV": "rnd_conv"}
_OVERFLOW = {"WRAP": "wrap", "SAT": "sat"}


def quant_of(precision, where: str, setting: str = "") -> Quant:
    """A :class:`Quant` from an hls4ml precision type (``FixedPrecisionType``,
    ``IntegerPrecisionType``); ``where`` names the layer and type in messages, ``setting``
    (``"LayerName.MatMul_0.Precision.weight"``) the configuration entry that sets it."""
    to = f"; set {setting} in the hls4ml configuration" if setting else ""
    name = type(precision).__name__
    width = getattr(precision, "width", None)
    kinds = {c.__name__ for c in type(precision).__mro__}
    if width is None or not kinds & {"FixedPrecisionType", "IntegerPrecisionType"}:
        raise UserError(f"{where}: precision {precision} ({name}) is not supported "
                        f"(allowed: ap_fixed, ap_ufixed, ap_int, ap_uint{to})")
    integer = precision.integer
    signed = bool(precision.signed)
    rnd = getattr(getattr(precision, "rounding_mode", None), "name", "TRN") or "TRN"
    sat = getattr(getattr(precision, "saturation_mode", None), "name", "WRAP") or "WRAP"
    if rnd not in _ROUNDING:
        raise UserError(f"{where}: rounding mode {rnd} of {precision} is not supported "
                        f"(allowed: {', '.join(_ROUNDING)}{to})")
    if sat not in _OVERFLOW or getattr(precision, "saturation_bits", 0):
        raise UserError(f"{where}: saturation mode {sat} of {precision} is not supported "
                        f"(allowed: {', '.join(_OVERFLOW)}{to})")
    try:
        fmt = Format(width=int(width), int_bits=int(integer), signed=signed)
    except (TypeError, ValueError) as err:
        hint = f" (allowed: {to[2:]})" if to else ""
        raise UserError(f"{where}: precision {precision}: {err}{hint}") from None
    return Quant(format=fmt, rounding=_ROUNDING[rnd], overflow=_OVERFLOW[sat])


#: How a GELU reaches the lowering (hls4ml has no GELU layer of its own).
GELU_NOTE = ("an ONNX Gelu node (opset 20, or com.microsoft Gelu) or an activation named "
             "gelu, e.g. Keras Activation('gelu')")


def check_unit_formats(layer, inp: Quant, where: str, before: str = "",
                       own: str = "") -> None:
    """Raise :class:`UserError` when the unit behind a softmax or GELU layer cannot take the
    layer's input (``inp``, the result of the layer before) and result formats (one line,
    naming what is allowed and the precision to change: ``before``, the configuration entry
    of the layer before's result, ``own`` that of this layer's, e.g.
    ``"LayerName.Add_1.Precision.result"``)."""
    before = before or "the result precision of the layer before"
    own = own or "the layer's result precision"
    i, o = inp.format, layer.result.format
    if isinstance(layer, SoftmaxLayer):
        if not 2 <= i.width <= 12:
            raise UserError(f"{where}: input {i} is {i.width} bits (allowed: 2..12 bits for "
                            f"the softmax unit; set {before} in the hls4ml configuration, "
                            "e.g. fixed<12,5,RND,SAT>)")
        if o.signed or not 2 <= o.width <= 16 or o.int_bits > 1 or o.frac_bits < 1:
            raise UserError(f"{where}: result {o} is not a probability format (allowed: "
                            "ufixed<W,I> with 2 <= W <= 16 and I <= 1; set "
                            f"{own} in the hls4ml configuration, e.g. ufixed<16,0,RND,SAT>)")
    else:
        for what, f, entry in (("input", i, before), ("result", o, own)):
            if not f.signed or not 2 <= f.width <= 16:
                raise UserError(f"{where}: {what} {f} is not allowed for the gelu unit "
                                "(allowed: signed fixed<W,I> with 2 <= W <= 16; set "
                                f"{entry} in the hls4ml configuration, e.g. "
                                "fixed<8,3,RND,SAT>)")


def config_name(layer_name: str, names) -> str:
    """The entry of hls4ml's ``LayerName`` configuration that configures the graph layer
    ``layer_name``: itself, or the layer of ``names`` hls4ml's optimizers made it from (they
    name it by a prefix: ``Dense_MatMul_0`` of ``MatMul_0``, ``bn_Add_0`` of ``Add_0``, and
    copy that layer's configuration to it), the shortest such name."""
    match = [n for n in names if layer_name == n or layer_name.endswith("_" + n)]
    return min(match, key=len) if match else layer_name


def _config_names(graph) -> list[str]:
    """The layer names hls4ml's reader made of the model (the keys of a ``granularity="name"``
    configuration): those :func:`..frontend.convert` recorded, else the configuration's."""
    from .frontend import _PARSED  # local: frontend imports this module

    made = _PARSED.get(graph)
    if made is not None:
        return [n for n, _ in made[0]]
    hls = graph.config.config.get("HLSConfig") or {}
    return list(hls.get("LayerName") or ())


def _types(layer) -> dict:
    return {k: v.precision for k, v in layer.types.items()}


def _weights(layer, key: str) -> np.ndarray | None:
    var = layer.weights.get(key) if hasattr(layer, "weights") else None
    if var is None:
        return None
    return np.asarray(var.data, dtype=np.float64)


def _describe(layer) -> str:
    return f"layer {layer.name!r} ({layer.class_name})"


def _codes(values: np.ndarray, q: Quant, where: str) -> list:
    """The codes of ``values`` in ``q`` (nested lists of ints, as a layer takes them)."""
    if not np.all(np.isfinite(values)):
        raise UserError(f"{where}: holds NaN or infinite values (allowed: finite numbers)")
    return q.format.quantize(values, q.rounding, q.overflow).tolist()


def _build(cls, where: str, **fields):
    """A layer (or the network) from its fields, validated as a config entry is; a field it
    refuses (a name that is not a Verilog identifier, a first layer that is not a Dense) is one
    line naming ``where``."""
    try:
        return cls(**fields)
    except ValidationError as err:
        raise UserError(f"{where}: {first_error(err, cls)}") from None


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


def lower(graph, name: str | None = None, source: str = "") -> NetworkParams:
    """Lower an hls4ml ``ModelGraph`` (after ``convert_from_*``; no compile needed) into the
    ``unit: network`` it computes, named ``name`` (default: the hls4ml project's name), with
    ``source`` (what it was read from, informative).

    Raises
    ------
    UserError
        A layer hls4ml produced that this version cannot lower (one line naming the layer,
        its type and what is supported), or a precision it cannot represent exactly.
    """
    layers = list(graph.get_layers())
    if not layers or layers[0].class_name != "Input":
        raise UserError("the model has no input layer (allowed: models hls4ml converts)")
    names = _config_names(graph)

    def setting(layer, key: str) -> str:
        return f"LayerName.{config_name(layer.name, names)}.Precision.{key}"

    def q(layer, key: str) -> Quant:
        return quant_of(_types(layer)[f"{key}_t"], f"{_describe(layer)} {key}_t",
                        setting(layer, key))

    inp = q(layers[0], "result")
    out: list = []
    cur = inp
    cur_setting = setting(layers[0], "result")
    width = None
    for layer in layers[1:]:
        cls = layer.class_name
        where = _describe(layer)
        if cls == "Dense":
            wq = q(layer, "weight")
            bq = q(layer, "bias")
            aq = q(layer, "accum")
            rq = q(layer, "result")
            w = _weights(layer, "weight")
            b = _weights(layer, "bias")
            n_in, n_out = layer.get_attr("n_in"), layer.get_attr("n_out")
            w = w.reshape(n_in, n_out)
            b = np.zeros(n_out) if b is None else b.reshape(n_out)
            out.append(_build(
                DenseLayer, where, name=layer.name, weight=wq, bias=bq, accum=aq, result=rq,
                reuse_factor=int(layer.get_attr("reuse_factor") or 1),
                w=_codes(w, wq, f"{where} weights"), b=_codes(b, bq, f"{where} biases")))
            cur, cur_setting = rq, setting(layer, "result")
            width = n_out
        elif cls in ("BatchNormalization", "ApplyAlpha"):
            sq = q(layer, "scale")
            bq = q(layer, "bias")
            rq = q(layer, "result")
            n = int(layer.get_attr("n_in"))
            sc = _weights(layer, "scale")
            b = _weights(layer, "bias")
            sc = np.ones(n) if sc is None else np.broadcast_to(sc.reshape(-1), (n,))
            b = np.zeros(n) if b is None else np.broadcast_to(b.reshape(-1), (n,))
            out.append(_build(
                BatchNormLayer, where, name=layer.name, scale_type=sq, bias=bq, result=rq,
                scale=_codes(sc, sq, f"{where} scale"), b=_codes(b, bq, f"{where} bias")))
            cur, cur_setting = rq, setting(layer, "result")
        elif _is_relu(layer):
            rq = q(layer, "result")
            out.append(_build(ReluLayer, where, name=layer.name, result=rq))
            cur, cur_setting = rq, setting(layer, "result")
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
            rq = q(layer, "result")
            new = _build(SoftmaxLayer if kind == "softmax" else GeluLayer, where,
                         name=layer.name, result=rq)
            check_unit_formats(new, cur, where, before=f"{cur_setting} (the result of the "
                               "layer before)", own=setting(layer, "result"))
            out.append(new)
            cur, cur_setting = rq, setting(layer, "result")
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
    name = name or graph.config.get_project_name()
    return _build(NetworkParams, f"the lowered model {name!r}", name=name, input=inp,
                  layers=tuple(out), source=source)
