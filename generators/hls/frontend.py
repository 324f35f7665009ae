"""Read a model through hls4ml's own front end (hls4ml is imported here only).

Accepts a ``.onnx`` or ``.keras`` file, an ONNX ``ModelProto``, a Keras 3 model or a PyTorch
module (with ``input_shape``). The hls4ml configuration dictionary (``hls4ml_config``, as
``config_from_*_model`` makes it, or a user's YAML of it) sets precisions and reuse factors; when
none is given, hls4ml's defaults are used with ``default_precision``.

Keras runs on the torch backend (no TensorFlow): :func:`import_keras` is the one place that
sets ``KERAS_BACKEND`` (unless the environment already names one) before Keras is imported;
everything in tensorfab that needs Keras, the tests included, gets it from there.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import io
import os
import tempfile
from pathlib import Path

from ..errors import UserError
from .lower import SUPPORTED

__all__ = ["convert", "auto_notes", "import_keras"]

BACKEND = "Vitis"  # only its C++ emulation (predict) is used; no vendor tool runs


def _hls4ml():
    try:
        import hls4ml  # local: hls4ml takes seconds to import; only the HLS flow needs it
    except ImportError as err:  # pragma: no cover - a pinned dependency
        raise UserError(f"hls4ml is not installed ({err}) (allowed: pip install -e .)") from None
    return hls4ml


def import_keras():
    """The ``keras`` module, imported with ``KERAS_BACKEND=torch`` unless the environment
    already names a backend (Keras reads the variable once, at its first import)."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    try:
        import keras  # local: Keras and torch (seconds) only for .keras models
    except ImportError as err:
        raise UserError(f"Keras 3 is not installed ({err}) (allowed: pip install -e '.[dev]', "
                        "which pins keras==3.15.1 and torch==2.13.0), or an .onnx export") from None
    return keras


def _gelu_handler(node, input_names, input_shapes, graph):
    """hls4ml's ONNX reader has no Gelu: pass an ONNX ``Gelu`` node (opset 20, exact GELU)
    through as an ``Activation`` named ``gelu``, which :func:`..lower.lower` maps onto the
    gelu unit. hls4ml itself cannot compile such a graph (it has no GELU kernel)."""
    approx = "none"
    for attr in node.attribute:
        if attr.name == "approximate":
            approx = attr.s.decode() if isinstance(attr.s, bytes) else str(attr.s)
    if approx != "none":
        raise ValueError(f"Gelu node {node.name!r} has approximate={approx!r} (allowed: "
                         "'none': the gelu unit computes exact GELU)")
    return {"name": node.name, "class_name": "Activation", "activation": "gelu",
            "inputs": list(input_names), "outputs": list(node.output)}


def _torch_gelu_handler(operation, layer_name, input_names, input_shapes, node, class_object,
                        data_reader, config):
    """hls4ml's PyTorch reader has no GELU either: pass ``nn.GELU()`` (exact) through as the
    same ``Activation`` named ``gelu`` as :func:`_gelu_handler`."""
    approx = getattr(class_object, "approximate", "none")
    if approx != "none":
        raise ValueError(f"GELU module {layer_name!r} has approximate={approx!r} (allowed: "
                         "'none': the gelu unit computes exact GELU)")
    return ({"name": layer_name, "class_name": "Activation", "activation": "gelu",
             "inputs": list(input_names)}, input_shapes[0])


def _register_gelu(hls4ml) -> None:
    """Register the GELU pass-through handlers with hls4ml's ONNX and PyTorch readers."""
    # the package re-exports functions of the same names: fetch the modules themselves
    mod = importlib.import_module("hls4ml.converters.onnx_to_hls")
    if "Gelu" not in mod.get_supported_onnx_layers():
        mod.register_onnx_layer_handler("Gelu", _gelu_handler)
    mod = importlib.import_module("hls4ml.converters.pytorch_to_hls")
    if "GELU" not in mod.get_supported_pytorch_layers():
        mod.register_pytorch_layer_handler("GELU", _torch_gelu_handler)


def _gemm_bias(model) -> None:
    """Give every ``Gemm`` without its optional ``C`` input (``torch.onnx.export`` of an
    ``nn.Linear(bias=False)``) a zero bias, which qonnx's ``GemmToMatMul`` expects (it reads
    ``C`` unconditionally); hls4ml folds the zero ``Add`` into the Dense."""
    import numpy as np
    from onnx import numpy_helper

    for node in model.graph.node:
        if node.op_type != "Gemm" or (len(node.input) > 2 and node.input[2]):
            continue
        shape = model.get_tensor_shape(node.output[0])
        if not shape:
            continue  # GemmToMatMul then fails, and the message says so
        name = model.make_new_valueinfo_name()
        model.graph.initializer.append(
            numpy_helper.from_array(np.zeros(shape[-1], dtype=np.float32), name))
        del node.input[2:]
        node.input.append(name)


def _needs_channels_last(model) -> bool:
    """Whether qonnx's channels-last conversion has anything to do: a node of the layouts it
    converts (``Conv``, ``MaxPool``, ``BatchNormalization``) on a 3D or 4D tensor. On an MLP
    ([batch, features] everywhere) it changes nothing, and it is not run."""
    from qonnx.transformation.channels_last import _channelsLast_node_types

    for node in model.graph.node:
        if node.op_type in _channelsLast_node_types and node.domain == "":
            shape = model.get_tensor_shape(node.input[0])
            if shape is not None and len(shape) in (3, 4):
                return True
    return False


def _onnx_model(model):
    """``model`` prepared for hls4ml's ONNX reader as its documentation says (hls4ml 1.x,
    "ONNX and QONNX"): qonnx's cleanup (constant folding, shape inference, names), the
    channels-last conversion where the model has channels-first layers, ``Gemm`` → ``MatMul``
    + ``Add`` (every ``nn.Linear`` of a ``torch.onnx.export``), and a cleanup again. A plain
    PyTorch export needs no step of its own."""
    import warnings

    # local: qonnx (and onnxruntime behind it) only for ONNX models
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.channels_last import ConvertToChannelsLastAndClean
    from qonnx.transformation.gemm_to_matmul import GemmToMatMul
    from qonnx.util.cleanup import cleanup_model

    model = cleanup_model(ModelWrapper(model))
    if _needs_channels_last(model):
        model = model.transform(ConvertToChannelsLastAndClean())
    if any(node.op_type == "Gemm" for node in model.graph.node):
        _gemm_bias(model)
        with warnings.catch_warnings():
            # "only offers explicit support for version 9 of the Gemm node": Gemm is the same
            # operator from opset 9 to 21 but for the optional C, which _gemm_bias supplies
            warnings.filterwarnings("ignore", message=".*GemmToMatMul transformation")
            model = model.transform(GemmToMatMul())
    return cleanup_model(model)


def convert(model, *, input_shape=None, hls4ml_config: dict | None = None,
            default_precision: str = "fixed<16,6>", output_dir: str | None = None,
            name: str = "model"):
    """hls4ml ``ModelGraph`` of ``model`` and the configuration dictionary used.

    Raises
    ------
    UserError
        A file that does not exist or is not ``.onnx``/``.keras``, or a model hls4ml rejects
        (its message, on one line).
    """
    hls4ml = _hls4ml()
    out = output_dir or tempfile.mkdtemp(prefix="tensorfab-hls-")
    common = {"output_dir": os.fspath(out), "backend": BACKEND, "io_type": "io_parallel",
              "project_name": name}
    kind, obj = _kind(model)
    _register_gelu(hls4ml)
    try:
        if kind == "onnx":
            obj = _onnx_model(obj)
            cfg = hls4ml_config or hls4ml.utils.config_from_onnx_model(
                obj, granularity="name", backend=BACKEND, default_precision=default_precision)
            graph = hls4ml.converters.convert_from_onnx_model(obj, hls_config=cfg, **common)
        elif kind == "keras":
            if not hls4ml_config:
                # it parses the model with hls4ml's da4ml fallback on (no argument turns it
                # off): with da4ml installed, da4ml then fails on Keras 3 layers it has no
                # plugin for (BatchNormalization); without, it prints a line on stderr per
                # layer. Parse as convert_from_keras_model below does, without the fallback.
                parse = hls4ml.converters.parse_keras_v3_model
                hls4ml.converters.parse_keras_v3_model = functools.partial(
                    parse, allow_da_fallback=False)
                try:
                    with contextlib.redirect_stderr(io.StringIO()):
                        hls4ml_config = hls4ml.utils.config_from_keras_model(
                            obj, granularity="name", backend=BACKEND,
                            default_precision=default_precision)
                finally:
                    hls4ml.converters.parse_keras_v3_model = parse
            cfg = hls4ml_config
            # no da4ml fallback: a layer without a Keras 3 handler goes to hls4ml's Keras 2
            # handlers (BatchNormalization does), never into a DA-combinational block
            graph = hls4ml.converters.convert_from_keras_model(
                obj, hls_config=cfg, allow_da_fallback=False, **common)
        else:
            # hls4ml reads the shape from the configuration's InputShape, which only
            # config_from_pytorch_model writes: a configuration of the user's gets it too
            shape = input_shape or (hls4ml_config or {}).get("InputShape")
            if shape is None:
                raise UserError("a PyTorch module needs input_shape, e.g. (None, 16) "
                                "(allowed: a tuple with the batch dimension first)")
            cfg = hls4ml_config or hls4ml.utils.config_from_pytorch_model(
                obj, shape, granularity="name", backend=BACKEND,
                default_precision=default_precision)
            cfg = {**cfg, "InputShape": shape}
            graph = hls4ml.converters.convert_from_pytorch_model(obj, hls_config=cfg, **common)
    except UserError:
        raise
    except Exception as err:  # hls4ml raises many types; report its words on one line
        text = " ".join(str(err).split()) or type(err).__name__
        raise UserError(f"hls4ml could not convert the model: {text} (allowed: models hls4ml "
                        f"reads, of the layers tensorfab lowers: {', '.join(SUPPORTED)})"
                        ) from None
    return graph, cfg


def _kind(model):
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if not path.exists():
            raise UserError(f"{path}: no such file (allowed: a .onnx or .keras model file)")
        if path.suffix == ".onnx":
            import onnx  # local: only for ONNX files

            try:
                return "onnx", onnx.load(os.fspath(path))
            except Exception as err:
                raise UserError(f"{path}: not a readable ONNX model ({err})") from None
        if path.suffix == ".keras":
            keras = import_keras()
            try:
                return "keras", keras.models.load_model(os.fspath(path))
            except Exception as err:
                text = " ".join(str(err).split()) or type(err).__name__
                raise UserError(f"{path}: not a readable Keras model ({text}) (allowed: a "
                                "file written by Keras 3's model.save)") from None
        raise UserError(f"{path}: unknown model file type {path.suffix!r} "
                        "(allowed: .onnx, .keras)")
    mod = type(model).__module__
    if mod.startswith("onnx"):
        return "onnx", model
    if mod.startswith(("keras", "tf_keras", "tensorflow")):
        return "keras", model
    if mod.startswith("torch") or any(c.__module__.startswith("torch")
                                      for c in type(model).__mro__):
        return "pytorch", model
    raise UserError(f"a {type(model).__name__} is not a model hls4ml reads "
                    "(allowed: .onnx/.keras files, onnx.ModelProto, Keras models, "
                    "torch.nn.Module)")


def auto_notes(cfg: dict, graph) -> list[str]:
    """One line per ``'auto'`` precision in ``cfg``, saying what hls4ml resolved it to."""
    notes: list[str] = []
    layers = {layer.name: layer for layer in graph.get_layers()}
    for lname, lcfg in (cfg.get("LayerName") or {}).items():
        for key, val in (lcfg.get("Precision") or {}).items():
            if val != "auto":
                continue
            match = [x for n, x in layers.items() if n == lname or n.endswith("_" + lname)]
            for layer in match:
                t = layer.types.get(f"{key}_t")
                line = (f"{layer.name}.{key}: 'auto' resolved to {t.precision}"
                        if t is not None else None)
                if line and line not in notes:
                    notes.append(line)
    return notes
