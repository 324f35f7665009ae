"""Example networks for the HLS flow, built in code (no downloads) for every front end.

``jet_mlp()`` is the jet-tagging-style MLP of hls4ml's tutorials (16→64→32→32→5, ReLU, final
softmax); ``ffn_block()`` a transformer feed-forward block (Dense→GELU→Dense, 16→64→16, the
GELU an ONNX opset-20 ``Gelu`` node); ``bn_mlp()`` a Dense→BatchNorm→ReLU→Dense network (the
weights of ``mlp([6, 5, 3], seed=1)``). Weights are random, seeded. ``hls4ml_config(name, cfg)``
sets the precisions the examples are lowered with (hls4ml's ``'auto'`` types are too wide for
the softmax and gelu units' inputs).

Every network is first a list of layers (:func:`mlp_layers`, :func:`ffn_layers`): tuples
``("dense", w [n_in, n_out], b)``, ``("batchnorm", gamma, beta, mean, var, eps)``,
``("relu",)``, ``("softmax",)``, ``("gelu",)`` holding float32 arrays. :func:`build` turns it
into an ONNX ``ModelProto`` (:func:`onnx_model`), a Keras 3 model (:func:`keras_model`) or a
``torch.nn.Module`` (:func:`torch_module`) with the same weights, so the three front ends read
the same network; ``front=`` of the example builders picks one (default ONNX).

``python -m generators.hls.examples --out DIR`` writes ``DIR/<name>.onnx`` and
``DIR/<name>_hls4ml.yaml`` for the jet MLP and the FFN block, ready for ``tensorfab hls``.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import yaml

from .frontend import convert, import_keras

__all__ = ["mlp", "jet_mlp", "ffn_block", "bn_mlp", "mlp_layers", "ffn_layers", "build",
           "onnx_model", "keras_model", "torch_module", "FRONTS", "hls4ml_config", "EXAMPLES",
           "write_examples"]

#: The front ends :func:`build` makes models for.
FRONTS = ("onnx", "keras", "pytorch")


def _dense(rng, n_in: int, n_out: int, bias_sd: float = 0.25) -> tuple:
    w = rng.normal(0, 1 / np.sqrt(n_in), (n_in, n_out)).astype(np.float32)
    b = rng.normal(0, bias_sd, n_out).astype(np.float32)
    return ("dense", w, b)


def _batchnorm(rng, n: int, eps: float = 1e-5) -> tuple:
    gamma = rng.uniform(0.5, 1.5, n).astype(np.float32)
    beta = rng.normal(0, 0.25, n).astype(np.float32)
    mean = rng.normal(0, 0.5, n).astype(np.float32)
    var = rng.uniform(0.5, 2.0, n).astype(np.float32)
    return ("batchnorm", gamma, beta, mean, var, eps)


def mlp_layers(sizes: list[int], seed: int = 0, softmax: bool = False,
               batchnorm: bool = False) -> list[tuple]:
    """Dense layers of ``sizes`` with ReLU between them (after a BatchNorm when
    ``batchnorm``), and a final softmax when ``softmax``. The Dense weights depend on
    ``sizes`` and ``seed`` only (the BatchNorm statistics come from a second stream)."""
    rng = np.random.default_rng(seed)
    bn_rng = np.random.default_rng([seed, 1])
    layers: list[tuple] = []
    for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:], strict=False)):  # pairs: 1 shorter
        layers.append(_dense(rng, n_in, n_out))
        if i < len(sizes) - 2:
            if batchnorm:
                layers.append(_batchnorm(bn_rng, n_out))
            layers.append(("relu",))
    if softmax:
        layers.append(("softmax",))
    return layers


def ffn_layers(seed: int = 0, d_model: int = 16, d_ff: int = 64, gelu: bool = True):
    """``Dense(d_model→d_ff) → GELU → Dense(d_ff→d_model)``; ``gelu=False`` stops after the
    first Dense."""
    rng = np.random.default_rng(seed)
    layers = [_dense(rng, d_model, d_ff, bias_sd=0.5)]
    if gelu:
        layers += [("gelu",), _dense(rng, d_ff, d_model)]
    return layers


def _names(layers: list[tuple]) -> list[str]:
    """Each layer's name in the Keras and PyTorch models: ``fc<i>``, ``bn<i>``, ``relu<i>``,
    ``gelu<i>`` (``i``: the Dense layer before) and ``softmax``."""
    names, i = [], -1
    for layer in layers:
        if layer[0] == "dense":
            i += 1
        names.append({"dense": f"fc{i}", "batchnorm": f"bn{i}", "softmax": "softmax"}
                     .get(layer[0], f"{layer[0]}{i}"))
    return names


def _sizes(layers: list[tuple]) -> tuple[int, int]:
    dense = [x for x in layers if x[0] == "dense"]
    return dense[0][1].shape[0], dense[-1][1].shape[1]


def onnx_model(layers: list[tuple], name: str, opset: int = 13):
    """An ONNX ``ModelProto``: a Dense is ``MatMul`` + ``Add`` (weights ``W<i>``, ``b<i>``),
    then ``BatchNormalization``, ``Relu``, ``Softmax`` (last axis), ``Gelu`` (opset 20)."""
    from onnx import TensorProto, helper, numpy_helper  # local: onnx only to build an ONNX model

    nodes, inits, x, i = [], [], "x", -1
    for layer in layers:
        kind = layer[0]
        if kind == "dense":
            i += 1
            inits += [numpy_helper.from_array(layer[1], f"W{i}"),
                      numpy_helper.from_array(layer[2], f"b{i}")]
            nodes += [helper.make_node("MatMul", [x, f"W{i}"], [f"mm{i}"]),
                      helper.make_node("Add", [f"mm{i}", f"b{i}"], [f"dense{i}"])]
            x = f"dense{i}"
        elif kind == "batchnorm":
            params = [f"bn{i}_{p}" for p in ("scale", "bias", "mean", "var")]
            inits += [numpy_helper.from_array(a, n)
                      for a, n in zip(layer[1:5], params, strict=True)]
            nodes.append(helper.make_node("BatchNormalization", [x, *params], [f"bn{i}"],
                                          epsilon=layer[5]))
            x = f"bn{i}"
        elif kind == "softmax":
            nodes.append(helper.make_node("Softmax", [x], ["prob"], axis=-1))
            x = "prob"
        else:  # relu, gelu
            nodes.append(helper.make_node(kind.capitalize(), [x], [f"{kind}{i}"]))
            x = f"{kind}{i}"
    n_in, n_out = _sizes(layers)
    graph = helper.make_graph(
        nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, n_in])],
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, [1, n_out])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def keras_model(layers: list[tuple], name: str):
    """A Keras 3 ``Sequential`` model (on the backend :func:`..frontend.import_keras` sets):
    ``Dense``, ``BatchNormalization``, ``ReLU``, ``Softmax``, ``Activation('gelu')``."""
    keras = import_keras()
    ks = keras.layers
    n_in, _ = _sizes(layers)
    model = keras.Sequential(name=name)
    model.add(keras.Input(shape=(n_in,), name="x"))
    for layer, lname in zip(layers, _names(layers), strict=True):
        kind = layer[0]
        if kind == "dense":
            k = ks.Dense(layer[1].shape[1], name=lname)
            model.add(k)
            k.set_weights([layer[1], layer[2]])
        elif kind == "batchnorm":
            k = ks.BatchNormalization(epsilon=layer[5], name=lname)  # Keras' default is 1e-3
            model.add(k)
            k.set_weights(list(layer[1:5]))  # gamma, beta, moving mean, moving variance
        elif kind == "relu":
            model.add(ks.ReLU(name=lname))
        elif kind == "softmax":
            model.add(ks.Softmax(name=lname))
        else:
            model.add(ks.Activation("gelu", name=lname))  # exact GELU (approximate=False)
    return model


def torch_module(layers: list[tuple]):
    """A ``torch.nn.Sequential`` in eval mode: ``Linear``, ``BatchNorm1d``, ``ReLU``,
    ``Softmax(dim=1)``, ``GELU()``; read it with ``input_shape=(None, n_in)``."""
    import torch  # local: torch (seconds to import) only for the PyTorch variant
    from torch import nn

    mods = []
    for layer, lname in zip(layers, _names(layers), strict=True):
        kind = layer[0]
        if kind == "dense":
            m = nn.Linear(*layer[1].shape)
            with torch.no_grad():
                m.weight.copy_(torch.from_numpy(layer[1].T.copy()))
                m.bias.copy_(torch.from_numpy(layer[2]))
        elif kind == "batchnorm":
            m = nn.BatchNorm1d(len(layer[1]), eps=layer[5])
            with torch.no_grad():
                for dst, src in zip((m.weight, m.bias, m.running_mean, m.running_var),
                                    layer[1:5], strict=True):
                    dst.copy_(torch.from_numpy(src))
        elif kind == "relu":
            m = nn.ReLU()
        elif kind == "softmax":
            m = nn.Softmax(dim=1)
        else:
            m = nn.GELU()
        mods.append((lname, m))
    return nn.Sequential(OrderedDict(mods)).eval()


def build(layers: list[tuple], name: str, front: str = "onnx", opset: int = 13):
    """The network ``layers`` as a model of ``front`` (one of :data:`FRONTS`)."""
    if front == "onnx":
        return onnx_model(layers, name, opset)
    if front == "keras":
        return keras_model(layers, name)
    if front == "pytorch":
        return torch_module(layers)
    raise ValueError(f"front {front!r} (allowed: {', '.join(FRONTS)})")


def mlp(sizes: list[int], seed: int = 0, name: str = "mlp", softmax: bool = False,
        batchnorm: bool = False, front: str = "onnx"):
    """Dense layers of ``sizes`` (ONNX: MatMul + Add), ReLU between them (after a BatchNorm
    when ``batchnorm``), and a final Softmax when ``softmax``; a model of ``front``."""
    return build(mlp_layers(sizes, seed, softmax, batchnorm), name, front)


def jet_mlp(seed: int = 0, softmax: bool = True, front: str = "onnx"):
    """16→64→32→32→5 with ReLU and (unless ``softmax=False``) the final softmax."""
    return mlp([16, 64, 32, 32, 5], seed=seed, name="jet_mlp", softmax=softmax, front=front)


def bn_mlp(seed: int = 1, front: str = "onnx"):
    """6→5→3, ``Dense → BatchNorm → ReLU → Dense``: the Dense weights of
    ``mlp([6, 5, 3], seed=1)``."""
    return mlp([6, 5, 3], seed=seed, name="bn_mlp", batchnorm=True, front=front)


def ffn_block(seed: int = 0, d_model: int = 16, d_ff: int = 64, gelu: bool = True,
              front: str = "onnx"):
    """A transformer feed-forward block ``Dense(d_model→d_ff) → GELU → Dense(d_ff→d_model)``;
    in ONNX the GELU is a ``Gelu`` node (opset 20). ``gelu=False`` stops after the first Dense
    (the part hls4ml itself can run, for checks against ``predict()``)."""
    return build(ffn_layers(seed, d_model, d_ff, gelu), "ffn", front, opset=20)


_J = "fixed<12,5,RND,SAT>"  # the jet MLP's logits: the softmax unit takes 2..12 bits
_F = "fixed<8,3,RND,SAT>"  # the FFN's first Dense and its GELU: the gelu unit's table path
_ACC = "fixed<18,8,RND_CONV,WRAP>"  # bn_mlp: every product loses fraction bits (to even)

#: Precisions of the examples, by hls4ml layer name (the rest: hls4ml's defaults); a value is
#: the ``result`` precision, or a dict of precisions by key (``result``, ``accum``, ...). Each
#: layer is named as every front end names it: ONNX, where hls4ml keeps ``MatMul_<i>`` and the
#: bias ``Add_<i>`` as two layers (``Dense_MatMul_<i>``, ``bn_Add_<i>``) once the MatMul's
#: result type is set, and Keras/PyTorch (``fc<i>``, ``bn<i>``, ``relu<i>``: see
#: :func:`keras_model`), whose Dense/Linear layer keeps its bias. Softmax and GELU layers match
#: by prefix. jet_mlp: the last Dense's result feeds the softmax unit and the softmax result is
#: a probability format; ffn: the GELU takes and gives 8-bit fixed<8,3> (its table path);
#: bn_mlp: narrow types that round and saturate in the Dense, BatchNorm and ReLU layers.
PRECISIONS = {
    "jet_mlp": {"MatMul_3": _J, "Dense_MatMul_3": _J, "Add_3": _J, "bn_Add_3": _J,
                "fc3": _J, "Softmax": "ufixed<16,0,RND,SAT>", "softmax": "ufixed<16,0,RND,SAT>"},
    "ffn": {"MatMul_0": _F, "Dense_MatMul_0": _F, "Add_0": _F, "bn_Add_0": _F, "fc0": _F,
            "Gelu": _F, "gelu": _F},
    "bn_mlp": {
        **{k: {"accum": _ACC, "result": "fixed<10,5,RND,SAT>"}
           for k in ("MatMul_0", "Dense_MatMul_0", "Add_0", "bn_Add_0", "fc0")},
        **{k: "fixed<10,4,RND_CONV,SAT>" for k in ("BatchNormalization_0", "bn0")},
        **{k: "ufixed<8,4,RND_CONV,SAT>" for k in ("Relu_0", "relu0")},
        **{k: {"accum": _ACC, "result": "fixed<12,6,RND,SAT>"}
           for k in ("MatMul_1", "Dense_MatMul_1", "Add_1", "bn_Add_1", "fc1")}},
}

#: The example models by name.
EXAMPLES = {"jet_mlp": jet_mlp, "ffn": ffn_block}


def hls4ml_config(name: str, base: dict, reuse: int | None = None) -> dict:
    """hls4ml's configuration dictionary ``base`` (``config_from_*_model`` of any front end,
    with ``granularity='name'``) with the example's precisions (and every reuse factor set to
    ``reuse`` when given)."""
    cfg = copy.deepcopy(base)
    table = PRECISIONS[name]
    if reuse is not None:
        cfg["Model"]["ReuseFactor"] = reuse
    for lname, lc in cfg.get("LayerName", {}).items():
        if reuse is not None and "ReuseFactor" in lc:
            lc["ReuseFactor"] = reuse
        prec = lc.get("Precision")
        if not isinstance(prec, dict) or "result" not in prec or lname.endswith("_param0"):
            continue
        for prefix, value in table.items():
            if lname == prefix or (prefix.lower() in ("softmax", "gelu")
                                   and lname.startswith(prefix)):
                for key, val in ({"result": value} if isinstance(value, str) else value).items():
                    if key in prec:
                        prec[key] = val
    return cfg


def write_examples(out: Path) -> list[Path]:
    """Write each example's ``.onnx`` and ``_hls4ml.yaml`` into ``out``."""
    import onnx  # local: onnx only to write the example files

    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, make in EXAMPLES.items():
        model = make()
        onnx.save(model, out / f"{name}.onnx")
        _, base = convert(model, name=name, output_dir=str(out / f".{name}_hls4ml_prj"))
        cfg = hls4ml_config(name, base)
        (out / f"{name}_hls4ml.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
        written += [out / f"{name}.onnx", out / f"{name}_hls4ml.yaml"]
    return written


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m generators.hls.examples",
                                 description="write the HLS-flow example models")
    ap.add_argument("--out", required=True, metavar="DIR", help="output folder")
    args = ap.parse_args(argv)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        print(f"{out}: exists and is not a folder (allowed: a folder path)", file=sys.stderr)
        return 2
    with contextlib.redirect_stdout(io.StringIO()):  # hls4ml's progress
        paths = write_examples(out)
    for p in paths:
        print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
