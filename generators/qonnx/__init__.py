"""The QONNX front end: Brevitas/QONNX models with real scales as integer codes and requant
parameters (docs/qonnx.md). ``read`` (:mod:`.reader`) gives a :class:`~.ir.QModel`;
``host.qonnx`` lowers it to a board program (``host.Graph``) and ``generators.qonnx.network``
to a ``unit: network`` config."""

from .ir import Dense, QModel, Quantizer
from .reader import QonnxError, load, read

__all__ = ["Dense", "QModel", "Quantizer", "QonnxError", "load", "read"]
