"""QONNX models built in the tests with onnx.helper (no Brevitas needed): dense layers with
Quant nodes on the input, weights, biases and activations, in every variant the front end
takes, and the neighbours it must refuse; and the reference they are checked against,
qonnx's own ``execute_onnx``."""

from __future__ import annotations

import copy

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

QDOMAIN = "qonnx.custom_op.general"
DIGITS = "models/digits/digits_mlp.onnx"


class Builder:
    """A QONNX graph under construction (float tensors, Quant nodes)."""

    def __init__(self, n_in: int):
        self.nodes, self.inits, self.n = [], [], 0
        self.n_in = n_in
        self.tensor = "x"

    def name(self, base):
        self.n += 1
        return f"{base}_{self.n}"

    def const(self, value, base="c"):
        name = self.name(base)
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=np.float32), name))
        return name

    def quant(self, src, scale, zp=0.0, bits=8, signed=True, narrow=False, rounding="ROUND",
              scale_input=None):
        out = self.name("q")
        s = scale_input or self.const(scale, "scale")
        self.nodes.append(helper.make_node(
            "Quant", [src, s, self.const(zp, "zp"), self.const(bits, "bits")], [out],
            domain=QDOMAIN, name=self.name("Quant"), rounding_mode=rounding,
            signed=int(signed), narrow=int(narrow)))
        return out

    def op(self, op_type, inputs, **attrs):
        out = self.name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=self.name(op_type),
                                           **attrs))
        return out

    def model(self, out_tensor, out_shape):
        g = helper.make_graph(
            self.nodes, "qonnx_case",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, self.n_in])],
            [helper.make_tensor_value_info(out_tensor, TensorProto.FLOAT, out_shape)],
            self.inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13),
                                                helper.make_opsetid(QDOMAIN, 1)])
        return m


def mlp(rng, sizes, *, wbits=4, abits=(6,), in_bits=8, per_channel=True, in_zp=0,
        act_zp=0, w_zp=False, narrow=True, w_rounding="ROUND", a_rounding="ROUND",
        act_signed=False, relu=True, gemm=True, out_bits=8):
    """A random QONNX MLP ``sizes[0] -> ... -> sizes[-1]``: the input ``in_bits`` signed
    (zero point ``in_zp``), weights ``wbits`` (per channel or per tensor, zero points with
    ``w_zp``), int32 biases at the accumulator's scale, hidden activations ``abits[i]`` after
    a ReLU (zero point ``act_zp``), logits ``out_bits`` signed. ``gemm``: Gemm (transB) as
    torch exports, else MatMul + Add."""
    b = Builder(sizes[0])
    s_in = float(rng.uniform(0.005, 0.02))
    t = b.quant("x", s_in, in_zp, in_bits, True, False)
    s_act = s_in
    layers = len(sizes) - 1
    for i, (k, n) in enumerate(zip(sizes, sizes[1:], strict=False)):
        w = rng.normal(0, 1 / np.sqrt(k), (n, k)).astype(np.float32)
        wmax = (1 << (wbits - 1)) - 1
        sw = (np.abs(w).max(axis=1) / wmax if per_channel else
              np.full(n, np.abs(w).max() / wmax)).astype(np.float32)
        zpw = rng.integers(-1, 2, n).astype(np.float32) if w_zp else np.zeros(n, np.float32)
        bias = rng.normal(0, 0.1, n).astype(np.float32)
        acc_scale = (np.float32(s_act) * sw).astype(np.float32)
        last = i == layers - 1
        if gemm:
            wscale = sw.reshape(n, 1) if per_channel else np.float32(sw[0])
            wz = zpw.reshape(n, 1) if w_zp else np.float32(0)
            wq = b.quant(b.const(w, "w"), wscale, wz, wbits, True, narrow, w_rounding)
            bq = b.quant(b.const(bias, "b"), acc_scale, 0.0, 32, True, False)
            y = b.op("Gemm", [t, wq, bq], transB=1)
        else:
            wscale = sw.reshape(1, n) if per_channel else np.float32(sw[0])
            wz = zpw.reshape(1, n) if w_zp else np.float32(0)
            wq = b.quant(b.const(w.T.copy(), "w"), wscale, wz, wbits, True, narrow, w_rounding)
            bq = b.quant(b.const(bias, "b"), acc_scale, 0.0, 32, True, False)
            y = b.op("Add", [b.op("MatMul", [t, wq]), bq])
        if last:
            s_out = float(rng.uniform(0.05, 0.2))
            t = b.quant(y, s_out, 0.0, out_bits, True, False, a_rounding)
        else:
            if relu:
                y = b.op("Relu", [y])
            s_act = float(rng.uniform(0.05, 0.3))
            t = b.quant(y, s_act, act_zp, abits[i % len(abits)], act_signed, False, a_rounding)
    return b.model(t, [1, sizes[-1]])


def execute(model, x: np.ndarray) -> np.ndarray:
    """qonnx's ``execute_onnx`` on a batch (the model's batch axis set to ``len(x)``)."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.util.cleanup import cleanup_model

    m = copy.deepcopy(model if isinstance(model, onnx.ModelProto) else model.model)
    for v in list(m.graph.input) + list(m.graph.output):
        v.type.tensor_type.shape.dim[0].dim_value = len(x)
    del m.graph.value_info[:]
    w = cleanup_model(ModelWrapper(m))
    out = execute_onnx(w, {w.graph.input[0].name: np.asarray(x, dtype=np.float32)})
    return out[w.graph.output[0].name]


def digits_inputs(n: int, seed: int = 0) -> np.ndarray:
    """``n`` digit-like images [n, 64] in [0, 1]: the digits dataset with pixel noise and
    random one-pixel shifts (10^4 of them for the golden-against-QONNX check)."""
    from sklearn.datasets import load_digits

    rng = np.random.default_rng(seed)
    d = load_digits().images / 16.0
    idx = rng.integers(0, len(d), n)
    imgs = d[idx]
    sh = rng.integers(-1, 2, (n, 2))
    out = np.empty_like(imgs)
    for i in range(n):
        out[i] = np.roll(imgs[i], tuple(sh[i]), axis=(0, 1))
    out = np.clip(out + rng.normal(0, 0.05, out.shape), 0, 1)
    return out.reshape(n, 64).astype(np.float32)
