"""Lock step of a MAC-type unit and its fused epilogue: one clock enable, decided a cycle
ahead, registered and duplicated.

On its own a unit advances on ``en = ~valid | ready`` of its result stream: one net, a
combinational function of the consumer's ``ready``, reaching every clock enable of the unit.
With the fused requant epilogue (:class:`generators.requant.rtl.WithRequant`) that net would
drive some 11k flip-flop enables (and every hard multiplier's), and its routing limits the
clock. So there the unit and the epilogue form one pipeline that advances in lock step, and
the epilogue ends in a small FIFO (:class:`generators.requant.rtl.RequantEpilogue`) whose
occupancy says one cycle ahead whether the pipeline may advance. Each group of registers (a
PE row, an epilogue lane, the control, ...) advances on its own registered copy of that
enable (:func:`enables`): no clock enable depends combinationally on ``ready``, and each
copy drives about a thousand enables.

What the pipeline's next cycle depends on comes from the epilogue as :data:`ROOM`: whether
the FIFO (after this cycle) has room for one beat, for two, and whether a beat reaches the
last stage if the pipeline advances now. Each copy ``en`` of the enable computes its own next
value from those and from itself, ``en <= two | (one & ~(en & incoming))``: the pipeline
advances next cycle if the FIFO has room for the beat it may load then, besides the one it
loads now. The copies are equal in every cycle, but each one's next value depends on its own
output, so no synthesis tool merges them back into one flip-flop (Yosys' ``opt_merge``
merges flip-flops with the same inputs whatever ``keep`` their output wires carry).

A unit in lock step (``lockstep=True``) has a ``room`` input of :data:`ROOM`; its result
stream's ``ready`` is the consumer's copy of the same enable, so a beat leaves exactly when
the unit advances (the unit does not read ``ready``).
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import data

#: The epilogue's word to the copies of the enable: the FIFO has room for ``one`` beat, for
#: ``two``; a beat reaches the last stage if the pipeline advances in this cycle
#: (``incoming``).
ROOM = data.StructLayout({"one": 1, "two": 1, "incoming": 1})


def enables(m: Module, room, names: list[str]) -> list[Signal]:
    """One copy of the enable per name (after reset 1: the pipeline is empty), each the
    pipeline's advance in the next cycle computed from ``room`` (:data:`ROOM`) and from the
    copy itself."""
    out = []
    for name in names:
        en = Signal(init=1, name=name)
        m.d.sync += en.eq(room.two | (room.one & ~(en & room.incoming)))
        out.append(en)
    return out
