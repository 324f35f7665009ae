"""Run a unit family on arrays in any simulator tier and get arrays and cycles back.

``sim="amaranth"`` plays the stream traffic in Amaranth's Python simulator (no Verilog);
``"verilator"`` and ``"icarus"`` emit the Verilog (cached) and run it under cocotb. Either way
the same :class:`~sim.streams.StreamPlayer` traffic and the family's own schedule/assemble are
used, so the tiers differ only in what executes the design.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .streams import StreamPlayer, default_max_cycles, pack_payloads, unpack_payloads

TIERS = ("amaranth", "verilator", "icarus")


@dataclass
class SimResult:
    outputs: dict
    cycles: int
    info: dict = field(default_factory=dict)


def simulate(fam, params, arrays: dict, *, sim: str = "verilator", idle: float = 0.0,
             stall: float = 0.0, seed: int = 0, name: str | None = None,
             config: dict | None = None, max_cycles: int | None = None,
             **opts) -> SimResult:
    """Simulate ``fam``'s design for ``params`` on validated ``arrays``.

    ``opts`` (e.g. a sparse chain's ``mode``) go to the family's ``schedule`` and
    ``expected_cycles``.
    """
    inputs, out_counts, ctx = fam.schedule(params, arrays, **opts)
    if max_cycles is None:
        max_cycles = default_max_cycles(inputs, out_counts,
                                        fam.expected_cycles(params, arrays, **opts))
    if sim == "amaranth":
        from generators.emit import describe_ports

        from .pysim import play

        comp = fam.component(params)
        _, streams = describe_ports(comp)
        player = StreamPlayer({k: pack_payloads(streams[k]["fields"], v)
                               for k, v in inputs.items()},
                              out_counts, idle=idle, stall=stall, seed=seed)
        play(comp, player, max_cycles)
        received = {k: unpack_payloads(streams[k]["fields"], v)
                    for k, v in player.received.items()}
        return SimResult(fam.assemble(params, ctx, received), player.cycles,
                         {"total_cycles": player.cycle})
    from generators.generate import cached_render

    from .runner import run_streams

    name = name or fam.name
    vpath, manifest = cached_render(fam, params, name, fam.name, config or {})
    res = run_streams(manifest, vpath, inputs, out_counts, sim=sim, idle=idle, stall=stall,
                      seed=seed, max_cycles=max_cycles)
    info = {k: v for k, v in res.items() if k != "received"}
    return SimResult(fam.assemble(params, ctx, res["received"]), res["cycles"], info)
