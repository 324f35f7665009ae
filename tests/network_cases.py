"""Networks for the `network` unit tests, converted through hls4ml (shared by the tiers)."""

from __future__ import annotations

import copy
import functools

from generators.hls import lower
from generators.hls.examples import EXAMPLES, bn_mlp, hls4ml_config, jet_mlp, mlp
from generators.hls.frontend import convert

# narrow types on purpose: products lose fraction bits (rounded to even), results round and
# saturate, ReLU outputs are unsigned
NARROW = {"accum": "fixed<18,8,RND_CONV,WRAP>", "MatMul": "fixed<10,5,RND,SAT>",
          "Relu": "ufixed<8,4,RND_CONV,SAT>"}


def hls_config(base: dict, reuse: int, narrow: bool) -> dict:
    cfg = copy.deepcopy(base)
    cfg["Model"]["ReuseFactor"] = reuse
    for lname, lc in cfg["LayerName"].items():
        if "ReuseFactor" in lc:
            lc["ReuseFactor"] = reuse
        prec = lc.get("Precision", {})
        if not narrow:
            continue
        if "accum" in prec:
            prec["accum"] = NARROW["accum"]
        for prefix in ("MatMul", "Relu"):
            if "result" in prec and lname.startswith(prefix):
                prec["result"] = NARROW[prefix]
    return cfg


#: Inputs per row of each network (PyTorch modules are read with input_shape=(None, n)).
N_IN = {"jet": 16, "small": 6, "jet_mlp": 16, "ffn": 16, "bn_mlp": 6}

#: The example networks by name: those of generators.hls.examples.EXAMPLES and bn_mlp.
BUILDERS = {**EXAMPLES, "bn_mlp": bn_mlp}


def _convert(which: str, model, front: str, **kw):
    shape = (None, N_IN[which]) if front == "pytorch" else None
    return convert(model, input_shape=shape, **kw)


@functools.cache
def converted(which: str, reuse: int, narrow: bool, out_dir: str, front: str = "onnx"):
    """``(hls4ml graph, lowered network)`` (the network a ``unit: network`` config is);
    ``front``: the network built for the ONNX (default), Keras or PyTorch front end (the same
    weights; ``narrow`` names ONNX layers)."""
    model = jet_mlp(softmax=False, front=front) if which == "jet" else mlp(
        [6, 5, 3], seed=1, name="small", front=front)
    name = f"{which}_r{reuse}{'_n' if narrow else ''}"
    sub = name if front == "onnx" else f"{name}_{front}"
    graph, base = _convert(which, model, front, output_dir=f"{out_dir}/{sub}0", name=name)
    graph, _ = _convert(which, model, front, hls4ml_config=hls_config(base, reuse, narrow),
                        output_dir=f"{out_dir}/{sub}", name=name)
    return graph, lower(graph, name=name)


@functools.cache
def example(which: str, reuse: int, out_dir: str, front: str = "onnx"):
    """``(hls4ml graph, lowered network)`` of an example of
    :mod:`generators.hls.examples` (``jet_mlp``, ``ffn``, ``bn_mlp``) with its precisions,
    built for ``front`` (``onnx``, ``keras``, ``pytorch``); the design's name does not depend
    on the front end."""
    model = BUILDERS[which](front=front)
    name = f"{which}_ex_r{reuse}"
    sub = name if front == "onnx" else f"{name}_{front}"
    _, base = _convert(which, model, front, output_dir=f"{out_dir}/{sub}0", name=name)
    graph, _ = _convert(which, model, front, hls4ml_config=hls4ml_config(which, base, reuse),
                        output_dir=f"{out_dir}/{sub}", name=name)
    return graph, lower(graph, name=name)


def trace_before(graph, net, x_codes, stop: type):
    """hls4ml's own codes out of the layer just before the first layer of type ``stop``
    (``graph.trace``, hls4ml's C++ emulation) and its final output (floats), for codes
    ``x_codes`` in the input format."""
    import numpy as np

    idx = next(i for i, layer in enumerate(net.layers) if isinstance(layer, stop))
    before = net.layers[idx - 1]
    for layer in graph.get_layers():
        layer.set_attr("trace", layer.name == before.name)
    xf = np.ascontiguousarray(net.input.format.dequantize(x_codes))
    y, trace = graph.trace(xf)
    codes = before.result.format.quantize(np.asarray(trace[before.name], dtype=np.float64)
                                       .reshape(len(x_codes), -1))
    return codes, np.asarray(y, dtype=np.float64).reshape(len(x_codes), -1)
