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
import difflib
import functools
import importlib
import io
import os
import tempfile
import weakref
from pathlib import Path
from typing import NamedTuple

from ..errors import UserError
from .lower import SUPPORTED, config_name

__all__ = ["convert", "auto_notes", "import_keras", "layer_table", "LayerInfo", "TOP_KEYS",
           "check_config_keys", "check_layer_names"]

#: The top-level keys of hls4ml's configuration dictionary that hls4ml 1.3 reads
#: (``converters/__init__.py`` ``_check_hls_config``, ``model/graph.py`` ``HLSConfig``; the
#: PyTorch reader's ``InputShape``, and the module ``config_from_pytorch_model`` stores).
#: Any other key would be ignored without a word.
TOP_KEYS = ("Model", "LayerName", "LayerType", "Flows", "Optimizers", "SkipOptimizers",
            "InputShape", "PytorchModel")

#: The layers hls4ml's reader made of each converted model, before its optimizers (name and
#: class, in order): what ``granularity="name"`` configurations are keyed by.
_PARSED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

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


def prepare_onnx(model, channels_last: bool = True):
    """``model`` prepared for hls4ml's ONNX reader as its documentation says (hls4ml 1.x,
    "ONNX and QONNX"): qonnx's cleanup (constant folding, shape inference, names), the
    channels-last conversion where the model has channels-first layers, ``Gemm`` → ``MatMul``
    + ``Add`` (every ``nn.Linear`` of a ``torch.onnx.export``), and a cleanup again. A plain
    PyTorch export needs no step of its own. ``channels_last=False`` (the QONNX front end)
    leaves convolutions in ONNX's own layout."""
    import warnings

    # local: qonnx (and onnxruntime behind it) only for ONNX models
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.channels_last import ConvertToChannelsLastAndClean
    from qonnx.transformation.gemm_to_matmul import GemmToMatMul
    from qonnx.util.cleanup import cleanup_model

    model = cleanup_model(ModelWrapper(model))
    if channels_last and _needs_channels_last(model):
        model = model.transform(ConvertToChannelsLastAndClean())
    if any(node.op_type == "Gemm" for node in model.graph.node):
        _gemm_bias(model)
        with warnings.catch_warnings():
            # "only offers explicit support for version 9 of the Gemm node": Gemm is the same
            # operator from opset 9 to 21 but for the optional C, which _gemm_bias supplies
            warnings.filterwarnings("ignore", message=".*GemmToMatMul transformation")
            model = model.transform(GemmToMatMul())
    return cleanup_model(model)


def _unknown(where: str, what: str, name, allowed) -> UserError:
    """One line: ``name`` is not one of ``allowed``, with the close matches."""
    allowed = [str(a) for a in allowed]
    close = difflib.get_close_matches(str(name), allowed, n=3, cutoff=0.6)
    hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
    return UserError(f"{where}: unknown {what} {name!r}{hint} (allowed: {', '.join(allowed)})")


def check_config_keys(cfg: dict, where: str = "the hls4ml configuration") -> None:
    """Refuse a top-level key hls4ml does not read (``Modle``) and a ``LayerType`` that is
    not an hls4ml layer class, each in one line with the close matches."""
    for key in cfg:
        if key not in TOP_KEYS:
            raise _unknown(where, "key", key, TOP_KEYS)
    for key in ("Model", "LayerName", "LayerType"):
        if cfg.get(key) is not None and not isinstance(cfg[key], dict):
            raise UserError(f"{where}: {key} is a {type(cfg[key]).__name__} (allowed: a "
                            "mapping)")
    if cfg.get("LayerType"):
        classes = sorted(importlib.import_module("hls4ml.model.layers").layer_map)
        for cls in cfg["LayerType"]:
            if cls not in classes:
                raise _unknown(where, "LayerType", cls, classes)


class LayerInfo(NamedTuple):
    """One layer of a model as hls4ml's configuration names it (a key of ``LayerName``)."""

    name: str  #: the key of ``LayerName``
    cls: str  #: hls4ml's class of the layer (``MatMul``, ``Dense``, ``Activation``...)
    precisions: tuple  #: the keys its ``Precision`` takes (``result``, ``accum``, ...)
    becomes: tuple  #: the layers of the converted graph it configures (empty: folded away)
    source: str  #: the reader's layer hls4ml's optimizers made it from ('' for those)


def _type_keys(cls) -> list[str]:
    """The precision keys hls4ml configures on a layer class (its configurable types)."""
    from hls4ml.backends import get_backend
    from hls4ml.model.attributes import TypeAttribute
    from hls4ml.model.layers import layer_map

    if cls not in layer_map:
        return []
    layer_cls = get_backend(BACKEND).create_layer_class(layer_map[cls])
    keys = [a.name[:-2] if a.name.endswith("_t") else a.name
            for a in layer_cls.expected_attributes
            if isinstance(a, TypeAttribute) and a.configurable]
    return list(dict.fromkeys(keys))


def layer_table(graph) -> list[LayerInfo]:
    """The layers of a graph :func:`convert` made, as hls4ml's configuration names them: first
    those of hls4ml's reader (``granularity="name"`` configurations are keyed by these), then
    those its optimizers made of them (``Dense_MatMul_0`` of an ONNX ``MatMul_0``, which takes
    its configuration). Each with its class, the precision keys it takes (those hls4ml
    configures for its class and the types of the graph layers it becomes: an ONNX ``MatMul_0``
    takes ``weight`` and ``bias`` for its Dense) and the graph layers it configures."""
    made = _PARSED.get(graph)
    if made is None:
        raise ValueError("layer_table needs a graph made by generators.hls.frontend.convert")
    parsed, created = made
    final = list(graph.get_layers())
    names = [n for n, _ in parsed]
    every = names + [n for n, _ in created if n not in names]
    rows, seen = [], set()
    for name, cls in [*parsed, *created]:
        if name in seen:
            continue
        seen.add(name)
        becomes = [x for x in final if x.name == name or config_name(x.name, every) == name]
        keys = list(_type_keys(cls))
        for x in becomes:
            for k in [*_type_keys(x.class_name), *(t[:-2] for t in x.types)]:
                if k not in keys and k != "index":
                    keys.append(k)
        src = config_name(name, names) if name not in names else ""
        rows.append(LayerInfo(name, cls, tuple(keys), tuple(x.name for x in becomes),
                              "" if src == name else src))
    return rows


def check_layer_names(user: dict, graph, where: str = "the hls4ml configuration") -> None:
    """Refuse a ``LayerName`` entry of the user's configuration that names no layer of the
    model, or a ``Precision`` key its layer does not take, in one line with the close matches
    (hls4ml ignores both without a word)."""
    table = {row.name: row for row in layer_table(graph)}
    for lname, lcfg in (user.get("LayerName") or {}).items():
        if lname not in table:
            raise _unknown(where, "LayerName", lname, table)
        prec = lcfg.get("Precision") if isinstance(lcfg, dict) else None
        if isinstance(prec, dict):
            keys = ("default", *table[lname].precisions)
            for key in prec:
                if key not in keys:
                    raise _unknown(f"{where}: LayerName {lname!r}", "Precision key", key, keys)


@contextlib.contextmanager
def _recording(hls4ml, parsed: list, created: list):
    """Keep the layers hls4ml's reader gives ``ModelGraph`` (name, class) in ``parsed`` and
    every layer made while converting (the reader's, then its optimizers') in ``created``."""
    cls = hls4ml.model.graph.ModelGraph
    make_graph, make_node = cls._make_graph, cls.make_node

    def record_graph(self, layer_list):
        parsed[:] = [(x["name"], x["class_name"]) for x in layer_list]
        return make_graph(self, layer_list)

    def record_node(self, *args, **kwargs):
        node = make_node(self, *args, **kwargs)
        created.append((node.name, node.class_name))
        return node

    cls._make_graph, cls.make_node = record_graph, record_node
    try:
        yield
    finally:
        cls._make_graph, cls.make_node = make_graph, make_node


def convert(model, *, input_shape=None, hls4ml_config: dict | None = None,
            default_precision: str = "fixed<16,6>", output_dir: str | None = None,
            name: str = "model", config_source: str = "the hls4ml configuration"):
    """hls4ml ``ModelGraph`` of ``model`` and the configuration dictionary used.

    A given ``hls4ml_config`` is checked (``config_source`` names it in messages): a top-level
    key hls4ml does not read, an unknown ``LayerType``, a ``LayerName`` that names no layer of
    the model or a ``Precision`` key its layer does not take is refused (hls4ml would ignore
    it); :func:`layer_table` lists the names and keys.

    Raises
    ------
    UserError
        A file that does not exist or is not ``.onnx``/``.keras``, a model hls4ml rejects
        (its message, on one line), or a configuration key as above.
    """
    hls4ml = _hls4ml()
    if hls4ml_config:
        check_config_keys(hls4ml_config, config_source)
        user_names = {"LayerName": dict(hls4ml_config.get("LayerName") or {})}
    out = output_dir or tempfile.mkdtemp(prefix="tensorfab-hls-")
    common = {"output_dir": os.fspath(out), "backend": BACKEND, "io_type": "io_parallel",
              "project_name": name}
    kind, obj = _kind(model)
    _register_gelu(hls4ml)
    parsed: list = []
    created: list = []
    try:
        with _recording(hls4ml, parsed, created):
            graph, cfg = _convert(hls4ml, kind, obj, input_shape, hls4ml_config,
                                  default_precision, common)
    except UserError:
        raise
    except Exception as err:  # hls4ml raises many types; report its words on one line
        text = " ".join(str(err).split()) or type(err).__name__
        raise UserError(f"hls4ml could not convert the model: {text} (allowed: models hls4ml "
                        f"reads, of the layers tensorfab lowers: {', '.join(SUPPORTED)})"
                        ) from None
    _PARSED[graph] = (tuple(parsed), tuple(created))
    if hls4ml_config:
        check_layer_names(user_names, graph, config_source)
    return graph, cfg


def _convert(hls4ml, kind, obj, input_shape, hls4ml_config, default_precision, common):
    if kind == "onnx":
        obj = prepare_onnx(obj)
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
