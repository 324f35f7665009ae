"""Read a QONNX model (Brevitas ``export_qonnx``, or any graph of QONNX ``Quant`` nodes) into
the integer form of :mod:`.ir`.

The model is first prepared as for hls4ml (:func:`generators.hls.frontend.prepare_onnx`:
qonnx's cleanup, which keeps the ``Quant`` nodes, and ``Gemm`` → ``MatMul`` + ``Add``), then
walked from its input along the one chain of activations:

    Quant (the input) → [MatMul (weight Quant) → Add (bias Quant) → Relu? → Quant]+

with ``Flatten``/``Reshape``/``Identity`` that keep ``[batch, features]`` skipped. Anything
that cannot be lowered exactly is refused in one line naming the node, the attribute or input
and what is allowed (:class:`QonnxError`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import UserError
from .ir import EPILOGUE_ROUNDINGS, ROUNDING_MODES, Dense, QModel, Quantizer

__all__ = ["QonnxError", "read", "load"]

#: The ops the walk takes (the error message lists them).
LAYERS = ("Quant", "MatMul", "Gemm", "Add (of a quantized bias)", "Relu", "Flatten", "Reshape")
QUANT_DOMAINS = ("qonnx.custom_op.general", "onnx.brevitas", "finn.custom_op.general")
BITS = (2, 8)
BIAS_BITS = 32


class QonnxError(UserError):
    """A QONNX model tensorfab cannot lower exactly: one line naming the node."""


def load(path):
    """An ONNX file as a ``ModelProto`` (one line for a missing or garbled file)."""
    import onnx

    p = Path(path)
    if not p.is_file():
        raise QonnxError(f"{path}: no such file (allowed: an .onnx file)")
    try:
        return onnx.load(str(p))
    except Exception as err:
        raise QonnxError(f"{path}: not an ONNX model ({type(err).__name__})") from None


class _Walk:
    def __init__(self, model):
        from qonnx.core.modelwrapper import ModelWrapper

        self.m = model if isinstance(model, ModelWrapper) else ModelWrapper(model)
        self.inits = {t.name for t in self.m.graph.initializer}

    # -- helpers -------------------------------------------------------------------------

    def const(self, node, i: int, what: str) -> np.ndarray:
        name = node.input[i] if i < len(node.input) else ""
        if not name:
            raise QonnxError(f"{node.name}: input {what} is missing (allowed: a constant)")
        v = self.m.get_initializer(name)
        if v is None:
            prod = self.m.find_producer(name)
            by = f" (made by {prod.name}, {prod.op_type})" if prod is not None else ""
            raise QonnxError(f"{node.name}: input {what} {name!r} is not a constant{by} "
                             "(allowed: a constant initializer)")
        return np.asarray(v)

    def consumers(self, tensor: str) -> list:
        return [n for n in self.m.graph.node if tensor in n.input]

    def only_consumer(self, tensor: str):
        cons = self.consumers(tensor)
        if tensor in [o.name for o in self.m.graph.output]:
            return None if not cons else cons[0]
        for n in cons:
            if n.op_type == "Add" and len(cons) > 1:
                raise QonnxError(f"{n.name}: Add of two activations (a residual: {tensor!r} "
                                 "is also read by "
                                 f"{', '.join(c.name for c in cons if c is not n)}) (allowed: "
                                 "an Add of a constant bias after a MatMul)")
        if len(cons) > 1:
            raise QonnxError(f"tensor {tensor!r} is read by {len(cons)} nodes "
                             f"({', '.join(n.name for n in cons)}) (allowed: a chain of "
                             "layers, each tensor read once)")
        return cons[0] if cons else None

    def quantizer(self, node, role: str) -> Quantizer:
        """The :class:`Quantizer` of a ``Quant`` node (``role``: ``weight``, ``bias``,
        ``activation`` or ``input``)."""
        from onnx import helper

        if node.op_type != "Quant":
            raise QonnxError(f"{node.name}: {node.op_type} where a Quant node is needed "
                             f"for the {role} (allowed: Quant)")
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        scale = self.const(node, 1, "scale").astype(np.float64)
        zp = self.const(node, 2, "zeropt").astype(np.float64)
        bits = self.const(node, 3, "bitwidth")
        if bits.size != 1 or float(bits.reshape(-1)[0]) != int(bits.reshape(-1)[0]):
            raise QonnxError(f"{node.name}: bitwidth {bits.tolist()} (allowed: one integer)")
        bits = int(bits.reshape(-1)[0])
        lo, hi = (2, BIAS_BITS) if role == "bias" else BITS
        if not lo <= bits <= hi:
            raise QonnxError(f"{node.name}: bitwidth {bits} of the {role} (allowed: {lo}..{hi})")
        if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
            raise QonnxError(f"{node.name}: scale {scale.reshape(-1)[:4].tolist()} (allowed: "
                             "finite and > 0)")
        if np.any(zp != np.round(zp)):
            raise QonnxError(f"{node.name}: zeropt {zp.reshape(-1)[:4].tolist()} (allowed: "
                             "integers)")
        rounding = attrs.get("rounding_mode", b"ROUND")
        rounding = (rounding.decode() if isinstance(rounding, bytes) else str(rounding)).upper()
        if rounding not in ROUNDING_MODES:
            raise QonnxError(f"{node.name}: rounding_mode {rounding!r} (allowed: "
                             f"{', '.join(ROUNDING_MODES)})")
        signed, narrow = bool(attrs.get("signed", 1)), bool(attrs.get("narrow", 0))
        if role in ("activation",) and rounding not in EPILOGUE_ROUNDINGS:
            raise QonnxError(f"{node.name}: rounding_mode {rounding!r} of an activation "
                             "(allowed: " + ", ".join(EPILOGUE_ROUNDINGS) + ", which the "
                             "requant epilogue rounds to nearest)")
        if role in ("activation", "input") and scale.size != 1:
            raise QonnxError(f"{node.name}: {scale.size} scales for an activation (allowed: "
                             "one scale per tensor)")
        if role in ("activation", "input") and zp.size != 1:
            raise QonnxError(f"{node.name}: {zp.size} zero points for an activation "
                             "(allowed: one per tensor)")
        q = Quantizer(node.name, scale, zp, bits, signed, narrow, rounding)
        if role in ("activation", "input"):
            z = int(zp.reshape(-1)[0])
            if not q.min_code <= z <= q.max_code:
                raise QonnxError(f"{node.name}: zeropt {z} outside the codes "
                                 f"{q.min_code}..{q.max_code} (allowed: inside)")
        return q

    def const_quant(self, name: str, user, what: str, role: str):
        """``(Quantizer, codes)`` of a constant behind a Quant node (the ``what`` input of
        node ``user``)."""
        if name in self.inits:
            how = "bias_quant such as Int32Bias" if role == "bias" else "weight_quant"
            raise QonnxError(f"{user.name}: input {what} {name!r} is a float tensor left in "
                             f"the graph (allowed: the output of a Quant node; in Brevitas a "
                             f"{how})")
        prod = self.m.find_producer(name)
        if prod is None or prod.op_type != "Quant":
            kind = "a graph input" if prod is None else f"{prod.name} ({prod.op_type})"
            raise QonnxError(f"{user.name}: input {what} comes from {kind} (allowed: a Quant "
                             "node of a constant)")
        q = self.quantizer(prod, role)
        x = self.const(prod, 0, "x (the values to quantize)")
        return q, q.codes(x)

    # -- the walk ------------------------------------------------------------------------

    def run(self) -> QModel:
        g = self.m.graph
        ins = [i for i in g.input if i.name not in self.inits]
        if len(ins) != 1 or len(g.output) != 1:
            raise QonnxError(f"the model has {len(ins)} inputs and {len(g.output)} outputs "
                             "(allowed: one of each)")
        in_name, out_name = ins[0].name, g.output[0].name
        for node in g.node:      # a quantizer's parameters first: they decide everything
            if node.op_type == "Quant":
                for i, what in ((1, "scale"), (2, "zeropt"), (3, "bitwidth")):
                    self.const(node, i, what)
        first = self.only_consumer(in_name)
        if first is None or first.op_type != "Quant":
            what = "nothing" if first is None else f"{first.name} ({first.op_type})"
            raise QonnxError(f"input {in_name!r} is a float tensor read by {what} (allowed: "
                             "a Quant node first, e.g. Brevitas QuantIdentity)")
        act = self.quantizer(first, "input")
        inq = act
        tensor = first.output[0]
        layers = []
        while tensor != out_name:
            node = self.skip_shape_ops(self.only_consumer(tensor), tensor)
            if node is None:
                break
            layer, tensor = self.dense(node, act)
            layers.append(layer)
            act = layer.out
        if not layers:
            raise QonnxError("the model has no MatMul/Gemm layer (allowed: a chain of "
                             "quantized dense layers)")
        return QModel(in_name, out_name, inq, layers)

    def skip_shape_ops(self, node, tensor):
        while node is not None and node.op_type in ("Flatten", "Reshape", "Identity"):
            shape = self.m.get_tensor_shape(node.output[0])
            if shape is None or len(shape) != 2:
                raise QonnxError(f"{node.name}: {node.op_type} to shape {shape} (allowed: "
                                 "[batch, features], the shape of a dense layer's input)")
            tensor = node.output[0]
            node = self.only_consumer(tensor)
        return node

    def dense(self, node, act: Quantizer):
        """One layer from its MatMul node: ``(Dense, the tensor after its output Quant)``."""
        from onnx import helper

        if node.op_type == "Add":
            raise QonnxError(f"{node.name}: Add of an activation with no MatMul before it "
                             "(allowed: an Add of a constant bias after a MatMul)")
        if node.op_type == "Conv":
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            for key, ok in (("strides", 1), ("dilations", 1), ("group", 1)):
                v = attrs.get(key, ok)
                if any(int(x) != ok for x in np.atleast_1d(v)):
                    raise QonnxError(f"{node.name}: Conv attribute {key} {v} (allowed: {ok})")
            raise QonnxError(f"{node.name}: Conv is not lowered by this version (allowed: "
                             f"{', '.join(LAYERS)})")
        if node.op_type != "MatMul":
            raise QonnxError(f"{node.name}: {node.op_type} is not supported (allowed: "
                             f"{', '.join(LAYERS)})")
        wq, w = self.const_quant(node.input[1], node, "B (the weights)", "weight")
        if w.ndim != 2:
            raise QonnxError(f"{node.name}: weights of shape {list(w.shape)} (allowed: 2-D)")
        k, n = w.shape
        # MatMul computes x @ W with W [K, N]: per-channel scales lie along N
        wscale = self._per_out(wq.scale, wq, n, "scale")
        wzp = self._per_out(wq.zero_point, wq, n, "zeropt")
        codes = w - np.broadcast_to(wzp, (k, n)).astype(np.int64)
        zx = int(act.zero_point.reshape(-1)[0])
        bias = -zx * codes.sum(axis=0)
        nxt = self.only_consumer(node.output[0])
        if nxt is not None and nxt.op_type == "Add":
            other = [t for t in nxt.input if t != node.output[0]]
            prod = self.m.find_producer(other[0]) if other else None
            if prod is not None and prod.op_type != "Quant":
                raise QonnxError(f"{nxt.name}: Add of two activations (allowed: an Add of a "
                                 "constant bias after a MatMul)")
            bq, b = self.const_quant(other[0], nxt, "B (the bias)", "bias")
            acc_scale = float(act.scale.reshape(-1)[0]) * wscale
            bcodes = np.broadcast_to(b, (n,)).astype(np.float64) - np.broadcast_to(
                bq.zero_point.reshape(-1), (n,))
            real = bcodes * np.broadcast_to(bq.scale.reshape(-1), (n,)) / acc_scale
            ints = np.round(real)
            if np.any(np.abs(real - ints) > 1e-3 * np.maximum(1, np.abs(ints))):
                i = int(np.argmax(np.abs(real - ints)))
                raise QonnxError(f"{bq.node}: bias scale {float(bq.scale.reshape(-1)[i]):.6g} "
                                 f"of channel {i} is not the accumulator's "
                                 f"{acc_scale[i]:.6g} (input scale x weight scale) times an "
                                 "integer (allowed: a bias quantized at the accumulator's "
                                 "scale, e.g. Brevitas Int32Bias)")
            bias = bias + ints.astype(np.int64)
            nxt = self.only_consumer(nxt.output[0])
        relu = False
        if nxt is not None and nxt.op_type == "Relu":
            relu = True
            nxt = self.only_consumer(nxt.output[0])
        if nxt is None or nxt.op_type != "Quant":
            what = "the model's output" if nxt is None else f"{nxt.name} ({nxt.op_type})"
            raise QonnxError(f"{node.name}: its output is a float tensor read by {what} "
                             "(allowed: a Quant node after the layer, its bias and ReLU, e.g. "
                             "Brevitas output_quant or QuantReLU)")
        out = self.quantizer(nxt, "activation")
        if abs(int(bias.max(initial=0))) >= 2**31 or abs(int(bias.min(initial=0))) > 2**31:
            raise QonnxError(f"{node.name}: bias codes beyond int32 (allowed: int32)")
        layer = Dense(node.name, codes, bias, act, wq, out, relu, wscale)
        return layer, nxt.output[0]

    @staticmethod
    def _per_out(v: np.ndarray, q: Quantizer, n: int, what: str) -> np.ndarray:
        """A weight quantizer's ``scale``/``zeropt`` as ``[N]`` (per output channel)."""
        if v.size == 1:
            return np.full(n, float(v.reshape(-1)[0]))
        shape = [s for s in v.shape]
        if v.size == n and (len(shape) == 1 or (len(shape) == 2 and shape[0] == 1)):
            return v.reshape(-1).astype(np.float64)
        raise QonnxError(f"{q.node}: {what} of shape {shape} for weights [K, {n}] (allowed: "
                         f"one per tensor or one per output channel, [{n}] or [1, {n}])")


def read(model) -> QModel:
    """A QONNX model (``ModelProto``, qonnx ``ModelWrapper`` or a path) → :class:`QModel`."""
    from ..hls.frontend import prepare_onnx

    if isinstance(model, (str, Path)):
        model = load(model)
    try:
        prepared = prepare_onnx(model, channels_last=False)
    except UserError:
        raise
    except Exception as err:
        raise QonnxError(f"qonnx could not prepare the model: {type(err).__name__}: "
                         f"{str(err).splitlines()[0] if str(err) else ''}") from None
    return _Walk(prepared).run()
