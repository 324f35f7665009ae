"""Board designs: the host-link gateware (UART, CRC, COBS, the protocol engine, buffers) and
the board top-level that serves a :class:`~generators.config.BoardConfig`'s units over it.

See docs/protocol.md for the wire protocol the engine implements.
"""

from .top import BoardCore, BoardTop

__all__ = ["BoardCore", "BoardTop"]
