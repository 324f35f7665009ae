"""Example networks for the HLS flow, built in code as ONNX models (no downloads, no torch).

``jet_mlp()`` is the jet-tagging-style MLP of hls4ml's tutorials (16→64→32→32→5, ReLU, final
softmax); ``ffn_block()`` a transformer feed-forward block (Dense→GELU→Dense, 16→64→16, the
GELU an ONNX opset-20 ``Gelu`` node). Weights are random, seeded. ``hls4ml_config(name, cfg)``
sets the precisions the examples are lowered with (hls4ml's ``'auto'`` types are too wide for
the softmax and gelu units' inputs).

``python -m generators.hls.examples --out DIR`` writes ``DIR/<name>.onnx`` and
``DIR/<name>_hls4ml.yaml`` for both, ready for ``tensorfab hls``.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import numpy as np

__all__ = ["mlp", "jet_mlp", "ffn_block", "hls4ml_config", "EXAMPLES", "write_examples"]


def _dense(rng, nodes, inits, x: str, i: int, n_in: int, n_out: int, bias_sd: float = 0.25):
    from onnx import numpy_helper

    w = rng.normal(0, 1 / np.sqrt(n_in), (n_in, n_out)).astype(np.float32)
    b = rng.normal(0, bias_sd, n_out).astype(np.float32)
    inits += [numpy_helper.from_array(w, f"W{i}"), numpy_helper.from_array(b, f"b{i}")]
    nodes += [_node("MatMul", [x, f"W{i}"], [f"mm{i}"]), _node("Add", [f"mm{i}", f"b{i}"],
                                                              [f"dense{i}"])]
    return f"dense{i}"


def _node(op, inputs, outputs, **attrs):
    from onnx import helper

    return helper.make_node(op, inputs, outputs, **attrs)


def _model(nodes, inits, name: str, n_in: int, n_out: int, out: str, opset: int = 13):
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, n_in])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, [1, n_out])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def mlp(sizes: list[int], seed: int = 0, name: str = "mlp", softmax: bool = False):
    """An ONNX ``ModelProto``: Dense (MatMul + Add) layers of ``sizes``, ReLU between them, and
    a final Softmax when ``softmax``."""
    rng = np.random.default_rng(seed)
    nodes, inits, x = [], [], "x"
    for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
        x = _dense(rng, nodes, inits, x, i, n_in, n_out)
        if i < len(sizes) - 2:
            nodes.append(_node("Relu", [x], [f"relu{i}"]))
            x = f"relu{i}"
    if softmax:
        nodes.append(_node("Softmax", [x], ["prob"], axis=-1))
        x = "prob"
    return _model(nodes, inits, name, sizes[0], sizes[-1], x)


def jet_mlp(seed: int = 0, softmax: bool = True):
    """16→64→32→32→5 with ReLU and (unless ``softmax=False``) the final softmax."""
    return mlp([16, 64, 32, 32, 5], seed=seed, name="jet_mlp", softmax=softmax)


def ffn_block(seed: int = 0, d_model: int = 16, d_ff: int = 64, gelu: bool = True):
    """A transformer feed-forward block ``Dense(d_model→d_ff) → GELU → Dense(d_ff→d_model)``;
    the GELU is an ONNX ``Gelu`` node (opset 20). ``gelu=False`` stops after the first Dense
    (the part hls4ml itself can run, for checks against ``predict()``)."""
    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    x = _dense(rng, nodes, inits, "x", 0, d_model, d_ff, bias_sd=0.5)
    if not gelu:
        return _model(nodes, inits, "ffn", d_model, d_ff, x, opset=20)
    nodes.append(_node("Gelu", [x], ["gelu0"]))
    x = _dense(rng, nodes, inits, "gelu0", 1, d_ff, d_model)
    return _model(nodes, inits, "ffn", d_model, d_model, x, opset=20)


#: Precisions of the examples, by hls4ml layer name prefix (the rest: hls4ml's defaults).
#: jet_mlp: the last Dense's result feeds the softmax unit (2..12 bits) and the softmax result
#: is a probability format; ffn: the GELU takes and gives 8-bit fixed<8,3> (its table path).
PRECISIONS = {
    "jet_mlp": {"MatMul_3": "fixed<12,5,RND,SAT>", "Dense_MatMul_3": "fixed<12,5,RND,SAT>",
                "Add_3": "fixed<12,5,RND,SAT>", "bn_Add_3": "fixed<12,5,RND,SAT>",
                "Softmax": "ufixed<16,0,RND,SAT>"},
    "ffn": {"MatMul_0": "fixed<8,3,RND,SAT>", "Dense_MatMul_0": "fixed<8,3,RND,SAT>",
            "Add_0": "fixed<8,3,RND,SAT>", "bn_Add_0": "fixed<8,3,RND,SAT>",
            "Gelu": "fixed<8,3,RND,SAT>"},
}

#: The example models by name.
EXAMPLES = {"jet_mlp": jet_mlp, "ffn": ffn_block}


def hls4ml_config(name: str, base: dict, reuse: int | None = None) -> dict:
    """hls4ml's configuration dictionary ``base`` (``config_from_onnx_model`` with
    ``granularity='name'``) with the example's precisions (and every reuse factor set to
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
            if lname == prefix or (prefix in ("Softmax", "Gelu") and lname.startswith(prefix)):
                prec["result"] = value
    return cfg


def write_examples(out: Path) -> list[Path]:
    """Write each example's ``.onnx`` and ``_hls4ml.yaml`` into ``out``."""
    import onnx
    import yaml

    from .frontend import convert

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
    import contextlib
    import io

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
