"""Lock step of a MAC-type unit and its fused epilogue: one clock enable, decided a cycle
ahead, registered and duplicated.

On its own a unit advances on ``en = ~valid | ready`` of its result stream: one net, a
combinational function of the consumer's ``ready``, reaching every clock enable of the unit.
With the fused requant epilogue (:class:`generators.requant.rtl.WithRequant`) that net would
drive some 11k flip-flop enables (and every hard multiplier's), and its routing limits the
clock. So there the unit and the epilogue form one pipeline that advances in lock step, and
the epilogue ends in a small FIFO (:class:`generators.requant.rtl.RequantEpilogue`) that
says one cycle ahead whether the pipeline may advance: ``advance``, from the FIFO's
occupancy, true when the FIFO has room for the beat the pipeline may add. Each group of
registers (a PE row, an epilogue lane, the control, ...) advances on its own registered
copy of ``advance`` (:func:`enables`): no clock enable depends combinationally on
``ready``, and each copy drives about a thousand enables.

A unit in lock step (``lockstep=True``) has an ``advance`` input; its result stream's
``ready`` is the consumer's copy of the same enable, so a beat leaves exactly when the unit
advances (the unit does not read ``ready``).
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal


def enables(m: Module, advance, names: list[str]) -> list[Signal]:
    """One register per name, each ``advance`` of the previous cycle (after reset: 1, the
    pipeline is empty).

    The copies carry ``keep``: they are identical flip-flops, which Yosys' ``opt_merge``
    would otherwise merge back into one."""
    out = []
    for name in names:
        en = Signal(init=1, name=name, attrs={"keep": 1})
        m.d.sync += en.eq(advance)
        out.append(en)
    return out
