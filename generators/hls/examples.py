"""Example networks for the HLS flow, built in code as ONNX models (no downloads, no torch).

``jet_mlp()`` is the jet-tagging-style MLP of hls4ml's tutorials (16→64→32→32→5, ReLU; the
final softmax is left out until the softmax unit is lowered). Weights are random, seeded.
"""

from __future__ import annotations

import numpy as np

__all__ = ["mlp", "jet_mlp"]


def mlp(sizes: list[int], seed: int = 0, name: str = "mlp"):
    """An ONNX ``ModelProto``: Dense (MatMul + Add) layers of ``sizes``, ReLU between them."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    nodes, inits, x = [], [], "x"
    for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
        w = rng.normal(0, 1 / np.sqrt(n_in), (n_in, n_out)).astype(np.float32)
        b = rng.normal(0, 0.25, n_out).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"W{i}"), numpy_helper.from_array(b, f"b{i}")]
        nodes += [helper.make_node("MatMul", [x, f"W{i}"], [f"mm{i}"]),
                  helper.make_node("Add", [f"mm{i}", f"b{i}"], [f"dense{i}"])]
        x = f"dense{i}"
        if i < len(sizes) - 2:
            nodes.append(helper.make_node("Relu", [x], [f"relu{i}"]))
            x = f"relu{i}"
    graph = helper.make_graph(
        nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, sizes[0]])],
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, [1, sizes[-1]])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def jet_mlp(seed: int = 0):
    return mlp([16, 64, 32, 32, 5], seed=seed, name="jet_mlp")
