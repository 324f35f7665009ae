"""tensorfab host driver: talk to a board (real, simulated or the Python reference board).

``from host import open_board``; see :mod:`host.board`. The wire protocol is
:mod:`host.protocol` (no I/O), transports are chosen by URL in :mod:`host.transport`, and
quantized tensors and beat packing are in :mod:`host.tensor`. Nothing here imports Amaranth
(the ``model://`` reference board builds its description from the generators, lazily).
"""

from __future__ import annotations

__all__ = ["open_board", "Board", "QTensor", "FTensor", "MXTensor", "BoardError", "Graph",
           "GraphError"]


def __getattr__(name: str):
    # local: ``import host`` (and ``host.protocol``) stays cheap for tools that need only the
    # codec: the driver brings NumPy and the families' golden models
    if name in ("open_board", "Board", "BoardError"):
        from . import board

        return getattr(board, name)
    if name in ("Graph", "GraphError"):
        from . import graph

        return getattr(graph, name)
    if name in ("QTensor", "FTensor", "MXTensor"):
        from . import tensor

        return getattr(tensor, name)
    raise AttributeError(f"module 'host' has no attribute {name!r}")
