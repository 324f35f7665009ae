"""The golden model of a lowered network: exact integers with ``ap_fixed`` conversions.

One function, :func:`run`, used by the tests, ``tensorfab run --backend golden`` and (later) the
RTL checks. Imports no Amaranth and no hls4ml.
"""

from __future__ import annotations

import numpy as np

from ..gelu.model import gelu as gelu_model
from ..numerics import Format, exact_matmul, requantize
from ..softmax.model import reference
from ..softmax.model import softmax as softmax_model
from .lower import (
    BatchNormLayer,
    DenseLayer,
    GeluLayer,
    LoweredModel,
    ReluLayer,
    SoftmaxLayer,
    gelu_params,
    softmax_params,
)

__all__ = ["run", "run_until", "dense", "batchnorm", "relu", "softmax", "gelu", "softmax_errors"]


def _product_format(layer: DenseLayer) -> Format:
    a, w = layer.inp.fmt, layer.weight.fmt
    width = a.width + w.width
    return Format(width=width, int_bits=width - (a.frac_bits + w.frac_bits),
                  signed=a.signed or w.signed)


def dense(layer: DenseLayer, x: np.ndarray) -> np.ndarray:
    """One Dense layer on codes ``x`` [batch, n_in] in ``layer.inp`` → codes in ``layer.result``.

    Follows ``nnet_dense_latency.h``: ``acc = accum_t(bias)``, then ``acc += accum_t(x*w)`` for
    each input in order, then ``result_t(acc)``.
    """
    acc = layer.accum
    prod = _product_format(layer)
    x = np.asarray(x, dtype=np.int64)
    bias = requantize(layer.b, layer.bias.fmt, acc.fmt, acc.rounding, acc.overflow)
    if acc.overflow == "wrap":
        # Modular sums do not depend on the order: convert every product, sum, wrap once.
        if prod.frac_bits <= acc.fmt.frac_bits:  # each product converts exactly
            s = exact_matmul(x, layer.w)
            s = requantize(s, prod, acc.fmt, "trn", "wrap")
        else:
            big = prod.width > 62
            p = (x[:, :, None].astype(object) if big else x[:, :, None]) * layer.w[None, :, :]
            p = requantize(p, prod, acc.fmt, acc.rounding, "wrap")
            s = p.sum(axis=1, dtype=object) if acc.fmt.width > 56 else p.sum(axis=1)
        total = acc.fmt.wrap(np.asarray(s, dtype=object) + bias[None, :].astype(object))
    else:
        # Saturating accumulation: in order, one conversion per addition, bias first.
        p = x[:, :, None].astype(object) * layer.w[None, :, :].astype(object)
        p = requantize(p, prod, acc.fmt, acc.rounding, "sat")
        total = np.broadcast_to(bias[None, :], (x.shape[0], layer.n_out)).astype(object)
        for i in range(layer.n_in):
            total = acc.fmt.saturate(total + p[:, i, :])
    return requantize(total, acc.fmt, layer.result.fmt, layer.result.rounding,
                      layer.result.overflow)


def batchnorm(layer: BatchNormLayer, x: np.ndarray) -> np.ndarray:
    """``result_t(x * scale + bias)`` with the product and the sum exact."""
    fx, fs, fb = layer.inp.fmt.frac_bits, layer.scale_q.fmt.frac_bits, layer.bias.fmt.frac_bits
    frac = max(fx + fs, fb)
    p = np.asarray(x, dtype=object) * layer.scale[None, :].astype(object)
    total = p * (1 << (frac - fx - fs)) + layer.b[None, :].astype(object) * (1 << (frac - fb))
    # requantize rescales codes outside the source range exactly: only frac_bits matters here
    exact = Format(width=64, int_bits=64 - frac, signed=True)
    return requantize(total, exact, layer.result.fmt, layer.result.rounding,
                      layer.result.overflow)


def relu(layer: ReluLayer, x: np.ndarray) -> np.ndarray:
    y = np.where(np.asarray(x, dtype=object) > 0, x, 0)
    return requantize(y, layer.inp.fmt, layer.result.fmt, layer.result.rounding,
                      layer.result.overflow)


def softmax(layer: SoftmaxLayer, x: np.ndarray) -> np.ndarray:
    """The softmax unit's golden model (:func:`generators.softmax.model.softmax`) on each row."""
    return softmax_model(softmax_params(layer), np.asarray(x, dtype=np.int64))


def gelu(layer: GeluLayer, x: np.ndarray) -> np.ndarray:
    """The gelu unit's golden model (:func:`generators.gelu.model.gelu`), element-wise."""
    return gelu_model(gelu_params(layer), np.asarray(x, dtype=np.int64))


_LAYER = {DenseLayer: dense, BatchNormLayer: batchnorm, ReluLayer: relu, SoftmaxLayer: softmax,
          GeluLayer: gelu}


def run(model: LoweredModel, x: np.ndarray) -> np.ndarray:
    """Codes ``x`` [batch, n_in] in the input format → codes [batch, n_out] of the last layer."""
    y = np.asarray(x)
    for layer in model.layers:
        y = _LAYER[type(layer)](layer, y)
    return y


def run_until(model: LoweredModel, x: np.ndarray, stop: type) -> np.ndarray:
    """Codes out of the layers before the first layer of type ``stop`` (e.g. the logits before
    a :class:`SoftmaxLayer`)."""
    y = np.asarray(x)
    for layer in model.layers:
        if isinstance(layer, stop):
            break
        y = _LAYER[type(layer)](layer, y)
    return y


def softmax_errors(model: LoweredModel, logits: np.ndarray, y_hls: np.ndarray) -> dict:
    """Errors against float64 softmax of the same ``logits`` (codes into the model's final
    softmax): of hls4ml's outputs ``y_hls`` (real values, from ``predict()``) and of ours (the
    softmax unit's golden model), as ``{"hls4ml"|"tensorfab": {"max", "mean"}}`` in absolute
    probability and ``{"max_lsb", "mean_lsb"}`` in LSBs of the softmax's result format."""
    layer = model.layers[-1]
    if not isinstance(layer, SoftmaxLayer):
        raise ValueError("the model does not end in a softmax")
    p = softmax_params(layer)
    exact = reference(p, np.asarray(logits, dtype=np.int64))
    ours = p.out.dequantize(softmax(layer, logits))
    lsb = 2.0 ** -p.out.frac_bits
    out = {}
    for who, y in (("hls4ml", np.asarray(y_hls, dtype=np.float64)), ("tensorfab", ours)):
        err = np.abs(y.reshape(exact.shape) - exact)
        out[who] = {"max": float(err.max()), "mean": float(err.mean()),
                    "max_lsb": float(err.max() / lsb), "mean_lsb": float(err.mean() / lsb)}
    out["rows"] = int(exact.shape[0])
    out["result"] = str(p.out)
    return out
