"""A transformer encoder block as a :class:`host.Graph` (the workload of ``make demo``).

Multi-head attention (per head: Q/K/V projections, ``Q K^T``, softmax, ``P V``; the heads side
by side, then the output projection), then the feed-forward network (up-projection, GELU, a
2:4-sparse down-projection on the sparse chain). Residual connections and layer norms are not
ops of the board and are left out.

Weights are int8 codes of a float model quantized per output channel (symmetric). Every
requantization is calibrated on a calibration input: its real scale maps the 99.9th percentile
of the accumulator (per tensor, or per output channel where the consumer reads rows) onto
about 3/4 of the output format's range, and :func:`generators.numerics.quantize_multiplier`
turns the scale into a multiplier and shift, as a TFLite or ONNX QDQ export does.

``Q``, ``K``, the heads' outputs and the attention output are read by their consumers in
columns, so the compiler computes them as ``C^T = B^T A^T`` and their requantization is per
tensor; ``V``, the up-projection and the down-projection are per channel.
"""

from __future__ import annotations

import numpy as np

from generators.numerics import Format, quantize_multiplier, requantize_fixed

__all__ = ["encoder_block", "sparsify"]


def sparsify(w: np.ndarray, n: int, m: int) -> np.ndarray:
    """Keep the ``n`` largest of every ``m`` consecutive weights along axis 1 (N:M pruning)."""
    o, k = w.shape
    pad = -k % m
    g = np.pad(w, ((0, 0), (0, pad))).reshape(o, -1, m)
    order = np.argsort(-np.abs(g), axis=-1, kind="stable")
    mask = np.zeros_like(g, dtype=bool)
    np.put_along_axis(mask, order[..., :n], True, axis=-1)
    return np.where(mask, g, 0).reshape(o, -1)[:, :k]


def _weights(rng, k: int, n: int) -> np.ndarray:
    """int8 codes of an N(0, 1/sqrt(k)) weight quantized per output column (symmetric)."""
    w = rng.normal(0, 1 / np.sqrt(k), (k, n))
    scale = np.abs(w).max(axis=0) / 127
    return np.clip(np.rint(w / scale), -127, 127).astype(np.int64)


def _calibrate(acc: np.ndarray, out: Format, per_channel: bool, rng, bias: bool) -> dict:
    """Requant arrays mapping the 99.9th percentile of ``|acc + bias|`` to 3/4 of ``out``."""
    acc = np.asarray(acc, dtype=np.int64)
    b = np.zeros(acc.shape[1], np.int64)
    if bias:
        b = np.rint(rng.normal(0, 0.1, acc.shape[1]) * acc.std(axis=0)).astype(np.int64)
    x = np.abs(acc + b)
    peak = np.percentile(x, 99.9, axis=0) if per_channel else np.percentile(x, 99.9)
    target = 0.75 * max(abs(out.min_code), out.max_code)
    m, s = quantize_multiplier(target / np.maximum(peak, 1.0))
    rq = {"bias": b if per_channel else int(b[0]) if bias else 0, "multiplier": m,
          "shift": s, "zero_point": 0, "out": str(out)}
    if not per_channel:
        rq["multiplier"], rq["shift"] = int(np.ravel(m)[0]), int(np.ravel(s)[0])
    return rq


def encoder_block(design, seq: int = 64, d_model: int = 64, heads: int = 2, ffn: int = 256,
                  mode: str = "2:4", seed: int = 2026):
    """``(graph, x_codes)``: the encoder block for a protocol-2 ``design`` (a BoardConfig:
    its softmax and GELU formats are used) and a calibration input. The graph's output ``yT``
    is the block's output transposed, ``[d_model, seq]`` (the sparse chain's ``w @ x``)."""
    from host import Graph

    if d_model % heads:
        raise ValueError(f"d_model {d_model} is not a multiple of heads {heads}")
    units = {u.unit: u for u in design.units}
    s_in = units["softmax"].inp
    g_in = units["gelu"].inp
    i8 = Format.parse("int8")
    n, m = (int(v) for v in mode.split(":"))
    dh = d_model // heads
    rng = np.random.default_rng(seed)
    X = np.clip(np.rint(rng.normal(0, 1, (seq, d_model)) * 32), -128, 127).astype(np.int64)

    g = Graph()
    x = g.input("x", (seq, d_model), "int8")

    def golden(t):
        return g.evaluate(design=design, keep=[t], x=X)[t.name]

    def linear(a, a_codes, w, name, out, per_channel, bias=True):
        acc = a_codes @ w
        rq = _calibrate(acc, out, per_channel, rng, bias)
        t = g.matmul(a, g.weight(f"w_{name}", w), requant=rq, name=name)
        return t, _apply(acc, rq)

    def _apply(acc, rq):
        f = Format.parse(rq["out"])
        return requantize_fixed(acc, bias=rq["bias"], multiplier=rq["multiplier"],
                                shift=rq["shift"], zero_point=0,
                                out_fmt=Format.parse(f"{'int' if f.signed else 'uint'}"
                                                     f"{f.width}"))

    outs = []
    for h in range(heads):
        q, qc = linear(x, X, _weights(rng, d_model, dh), f"q{h}", i8, False)
        k, kc = linear(x, X, _weights(rng, d_model, dh), f"k{h}", i8, False)
        v, vc = linear(x, X, _weights(rng, d_model, dh), f"v{h}", i8, True)
        acc = qc @ kc.T
        rq = _calibrate(acc, s_in, False, rng, False)
        sc = g.matmul(q, k, transpose_b=True, requant={**rq, "out": str(s_in)}, name=f"s{h}")
        p = g.softmax(sc, name=f"p{h}")
        pc = golden(p)
        acc = pc @ vc
        rq = _calibrate(acc, i8, False, rng, False)
        outs.append(g.matmul(p, v, requant=rq, name=f"o{h}"))
    o = g.concat(outs, name="o") if heads > 1 else outs[0]
    oc = golden(o)
    a, ac = linear(o, oc, _weights(rng, d_model, d_model), "attn", i8, False)
    hid, _ = linear(a, ac, _weights(rng, d_model, ffn), "up", g_in, True)
    ge = g.gelu(hid, name="gelu")
    gc = golden(ge)
    wd = sparsify(_weights(rng, ffn, d_model).T, n, m)          # [d_model, ffn], N:M along ffn
    acc = wd @ gc.T
    rq = _calibrate(acc.T, i8, True, rng, True)               # per output row of yT
    g.output("yT", g.sparse_matmul(g.weight("w_down", wd), ge, mode=mode, transpose_x=True,
                                   requant=rq, name="down"))
    return g, X
