"""The HLS flow: models read through hls4ml's front end, lowered onto tensorfab's units.

``frontend`` converts a Keras/PyTorch/ONNX model with hls4ml (its graph, ``ap_fixed``
precisions and reuse factors are the input: nothing here reparses the model), ``lower`` turns
that graph into a :class:`~generators.hls.lower.LoweredModel` of integer layers, and
``model`` is the bit-exact golden model of the lowered pipeline (``ap_fixed`` semantics).
"""

from .lower import (
                    BatchNormLayer,
                    DenseLayer,
                    GeluLayer,
                    LoweredModel,
                    ReluLayer,
                    SoftmaxLayer,
                    lower,
)
from .model import run

__all__ = ["lower", "run", "LoweredModel", "DenseLayer", "BatchNormLayer", "ReluLayer",
           "SoftmaxLayer", "GeluLayer"]
