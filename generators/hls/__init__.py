"""The HLS flow: models read through hls4ml's front end, lowered onto tensorfab's units.

``frontend`` converts a Keras/PyTorch/ONNX model with hls4ml (its graph, ``ap_fixed``
precisions and reuse factors are the input: nothing here reparses the model), ``lower`` turns
that graph into the ``unit: network`` it computes (a
:class:`~generators.network.params.NetworkParams`, its layers those of
:mod:`generators.network.layers`), and ``model`` is the bit-exact golden model of that network
(``ap_fixed`` semantics).
"""

from .lower import lower
from .model import run

__all__ = ["lower", "run"]
