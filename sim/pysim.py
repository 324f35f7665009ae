"""Play a :class:`~sim.streams.StreamPlayer` against a component in Amaranth's simulator.

This is the fast tier: no Verilog, no C++ build, the same traffic and checks as the cocotb
benches. Use it for small arrays and short streams (Python simulates a few thousand cycles/s).
"""

from __future__ import annotations

from amaranth.sim import Simulator

from .streams import StreamPlayer


def play(component, player: StreamPlayer, max_cycles: int, vcd: str | None = None) -> None:
    """Run until every expected output beat arrived; raise if ``max_cycles`` pass first."""
    ins = {k: getattr(component, k) for k in player.inputs}
    outs = {k: getattr(component, k) for k in player.expect}

    async def bench(ctx):
        for _ in range(max_cycles):
            if player.done:
                return
            valid, payload, ready = player.drive()
            for k, port in ins.items():
                ctx.set(port.valid, valid[k])
                ctx.set(port.payload.as_value(), payload[k])
            for k, port in outs.items():
                ctx.set(port.ready, ready[k])
            in_ready = {k: ctx.get(port.ready) for k, port in ins.items()}
            out_valid = {k: ctx.get(port.valid) for k, port in outs.items()}
            out_payload = {k: ctx.get(port.payload.as_value()) for k, port in outs.items()}
            player.sample(in_ready, out_valid, out_payload)
            await ctx.tick()
        raise AssertionError(f"no completion within {max_cycles} cycles "
                             f"(received {[len(v) for v in player.received.values()]})")

    sim = Simulator(component)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
