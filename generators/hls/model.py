"""The golden model of a lowered network: exact integers with ``ap_fixed`` conversions.

One function, :func:`run`, used by the tests, ``tensorfab run --backend golden`` and the RTL
checks, on a :class:`~generators.network.params.NetworkParams` (what
:func:`~generators.hls.lower.lower` gives and a ``unit: network`` config is). Each layer
function takes the layer, the type ``inp`` of its input codes (the result of the layer before:
``NetworkParams.inputs``) and the codes. Imports no Amaranth and no hls4ml.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..gelu.model import gelu as gelu_model
from ..numerics import Format, exact_matmul, requantize
from ..softmax.model import reference
from ..softmax.model import softmax as softmax_model

if TYPE_CHECKING:  # the layers import nothing from here; generators.network imports run
    from ..network.layers import (
        BatchNormLayer,
        DenseLayer,
        GeluLayer,
        Quant,
        ReluLayer,
        RequantLayer,
        SoftmaxLayer,
    )
    from ..network.params import NetworkParams

__all__ = ["run", "run_until", "dense", "batchnorm", "relu", "requant", "softmax", "gelu",
           "softmax_errors"]


def _product_format(layer: DenseLayer, inp: Quant) -> Format:
    a, w = inp.format, layer.weight.format
    width = a.width + w.width
    return Format(width=width, int_bits=width - (a.frac_bits + w.frac_bits),
                  signed=a.signed or w.signed)


def dense(layer: DenseLayer, inp: Quant, x: np.ndarray) -> np.ndarray:
    """One Dense layer on codes ``x`` [batch, n_in] in ``inp`` → codes in ``layer.result``.

    Follows ``nnet_dense_latency.h``: ``acc = accum_t(bias)``, then ``acc += accum_t(x*w)`` for
    each input in order, then ``result_t(acc)``.
    """
    acc = layer.accum
    prod = _product_format(layer, inp)
    x = np.asarray(x, dtype=np.int64)
    w = layer.w_codes
    bias = requantize(layer.b_codes, layer.bias.format, acc.format, acc.rounding, acc.overflow)
    if acc.overflow == "wrap":
        # Modular sums do not depend on the order: convert every product, sum, wrap once.
        if prod.frac_bits <= acc.format.frac_bits:  # each product converts exactly
            s = exact_matmul(x, w)
            s = requantize(s, prod, acc.format, "trn", "wrap")
        else:
            big = prod.width > 62
            p = (x[:, :, None].astype(object) if big else x[:, :, None]) * w[None, :, :]
            p = requantize(p, prod, acc.format, acc.rounding, "wrap")
            s = p.sum(axis=1, dtype=object) if acc.format.width > 56 else p.sum(axis=1)
        total = acc.format.wrap(np.asarray(s, dtype=object) + bias[None, :].astype(object))
    else:
        # Saturating accumulation: in order, one conversion per addition, bias first.
        p = x[:, :, None].astype(object) * w[None, :, :].astype(object)
        p = requantize(p, prod, acc.format, acc.rounding, "sat")
        total = np.broadcast_to(bias[None, :], (x.shape[0], layer.n_out)).astype(object)
        for i in range(layer.n_in):
            total = acc.format.saturate(total + p[:, i, :])
    return requantize(total, acc.format, layer.result.format, layer.result.rounding,
                      layer.result.overflow)


def batchnorm(layer: BatchNormLayer, inp: Quant, x: np.ndarray) -> np.ndarray:
    """``result_t(x * scale + bias)`` with the product and the sum exact."""
    fx, fs = inp.format.frac_bits, layer.scale_type.format.frac_bits
    fb = layer.bias.format.frac_bits
    frac = max(fx + fs, fb)
    p = np.asarray(x, dtype=object) * layer.scale_codes[None, :].astype(object)
    total = p * (1 << (frac - fx - fs)) \
        + layer.b_codes[None, :].astype(object) * (1 << (frac - fb))
    # requantize rescales codes outside the source range exactly: only frac_bits matters here
    exact = Format(width=64, int_bits=64 - frac, signed=True)
    return requantize(total, exact, layer.result.format, layer.result.rounding,
                      layer.result.overflow)


def relu(layer: ReluLayer, inp: Quant, x: np.ndarray) -> np.ndarray:
    y = np.where(np.asarray(x, dtype=object) > 0, x, 0)
    return requantize(y, inp.format, layer.result.format, layer.result.rounding,
                      layer.result.overflow)


def softmax(layer: SoftmaxLayer, inp: Quant, x: np.ndarray) -> np.ndarray:
    """The softmax unit's golden model (:func:`generators.softmax.model.softmax`) on each row."""
    x = np.asarray(x, dtype=np.int64)
    return softmax_model(layer.unit_params(inp.format, x.shape[-1]), x)


def gelu(layer: GeluLayer, inp: Quant, x: np.ndarray) -> np.ndarray:
    """The gelu unit's golden model (:func:`generators.gelu.model.gelu`), element-wise."""
    x = np.asarray(x, dtype=np.int64)
    return gelu_model(layer.unit_params(inp.format, x.shape[-1]), x)


def requant(layer: RequantLayer, inp: Quant, x: np.ndarray) -> np.ndarray:
    """``requantize_fixed`` of the accumulator codes ``x`` (in ``inp``, the dense layer's
    result) per output, clamped to ``act_min..act_max``."""
    from ..numerics import requantize_fixed

    return requantize_fixed(np.asarray(x, dtype=np.int64), bias=np.asarray(layer.b),
                            multiplier=np.asarray(layer.multiplier),
                            shift=np.asarray(layer.shift), zero_point=layer.zero_point,
                            act_min=layer.lo, act_max=layer.hi, rounding=layer.rounding,
                            out_fmt=layer.result.format, acc_fmt=inp.format)


#: The golden model of each layer kind.
LAYER = {"dense": dense, "batchnorm": batchnorm, "relu": relu, "requant": requant,
         "softmax": softmax, "gelu": gelu}


def run(net: NetworkParams, x: np.ndarray) -> np.ndarray:
    """Codes ``x`` [batch, n_in] in the input format → codes [batch, n_out] of the last layer."""
    y = np.asarray(x)
    for layer, inp in zip(net.layers, net.inputs, strict=True):
        y = LAYER[layer.kind](layer, inp, y)
    return y


def run_until(net: NetworkParams, x: np.ndarray, stop: type) -> np.ndarray:
    """Codes out of the layers before the first layer of type ``stop`` (e.g. the logits before
    a :class:`~generators.network.layers.SoftmaxLayer`)."""
    y = np.asarray(x)
    for layer, inp in zip(net.layers, net.inputs, strict=True):
        if isinstance(layer, stop):
            break
        y = LAYER[layer.kind](layer, inp, y)
    return y


def softmax_errors(net: NetworkParams, logits: np.ndarray, y_hls: np.ndarray) -> dict:
    """Errors against float64 softmax of the same ``logits`` (codes into the model's final
    softmax): of hls4ml's outputs ``y_hls`` (real values, from ``predict()``) and of ours (the
    softmax unit's golden model), as ``{"hls4ml"|"tensorfab": {"max", "mean"}}`` in absolute
    probability and ``{"max_lsb", "mean_lsb"}`` in LSBs of the softmax's result format."""
    stage = net.stages[-1]
    if stage.kind != "softmax":
        raise ValueError("the model does not end in a softmax")
    p = stage.unit
    exact = reference(p, np.asarray(logits, dtype=np.int64))
    ours = p.out.dequantize(softmax_model(p, np.asarray(logits, dtype=np.int64)))
    lsb = 2.0 ** -p.out.frac_bits
    out = {}
    for who, y in (("hls4ml", np.asarray(y_hls, dtype=np.float64)), ("tensorfab", ours)):
        err = np.abs(y.reshape(exact.shape) - exact)
        out[who] = {"max": float(err.max()), "mean": float(err.mean()),
                    "max_lsb": float(err.max() / lsb), "mean_lsb": float(err.mean() / lsb)}
    out["rows"] = int(exact.shape[0])
    out["result"] = str(p.out)
    return out
