"""Run a unit family on arrays in any simulator tier and get arrays and cycles back.

``sim="amaranth"`` plays the stream traffic in Amaranth's Python simulator (no Verilog);
``"verilator"`` and ``"icarus"`` emit the Verilog (cached) and run it under cocotb. Either way
the same :class:`~sim.streams.StreamPlayer` traffic and the family's own schedule/assemble are
used, so the tiers differ only in what executes the design.

The emitted Verilog is kept in ``$TENSORFAB_CACHE/designs`` (:func:`cached_render`): that cache
is simulation's, so it lives here, above :mod:`generators` (which imports nothing from sim).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from generators.emit import describe_ports
from generators.emit import render as _render
from generators.generate import config_dict, generator_hash
from generators.units import family

from .pysim import play
from .runner import cache_root, run_stream_jobs
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
             waves: bool | None = None, waves_to: str | Path | None = None,
             **opts) -> SimResult:
    """Simulate ``fam``'s design for ``params`` on validated ``arrays``.

    ``opts`` (e.g. a sparse chain's ``mode``) go to the family's ``schedule`` and
    ``expected_cycles``. ``waves`` and ``waves_to`` are :func:`sim.runner.run_streams`'s
    (Verilator and Icarus only).
    """
    if sim != "amaranth":
        return simulate_many(fam, params, [dict(arrays=arrays, idle=idle, stall=stall,
                                                seed=seed, max_cycles=max_cycles, opts=opts)],
                             sim=sim, name=name, config=config, waves=waves,
                             waves_to=waves_to)[0]
    inputs, out_counts, ctx = fam.schedule(params, arrays, **opts)
    if max_cycles is None:
        max_cycles = default_max_cycles(inputs, out_counts,
                                        fam.expected_cycles(params, arrays, **opts))
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


def simulate_many(fam, params, runs: list[dict], *, sim: str = "verilator",
                  name: str | None = None, config: dict | None = None,
                  waves: bool | None = None,
                  waves_to: str | Path | None = None) -> list[SimResult]:
    """:func:`simulate` for several runs of one design; in Verilator and Icarus they share
    one simulator start-up (the design is reset between runs).

    ``runs`` are dicts with ``arrays`` and optionally ``idle``, ``stall``, ``seed``,
    ``max_cycles`` and ``opts`` (as :func:`simulate`'s keyword arguments).
    """
    if sim == "amaranth":
        return [simulate(fam, params, r["arrays"], sim=sim, idle=r.get("idle", 0.0),
                         stall=r.get("stall", 0.0), seed=r.get("seed", 0),
                         max_cycles=r.get("max_cycles"), **r.get("opts", {})) for r in runs]
    jobs, ctxs = [], []
    for r in runs:
        opts = r.get("opts", {})
        inputs, out_counts, ctx = fam.schedule(params, r["arrays"], **opts)
        max_cycles = r.get("max_cycles")
        if max_cycles is None:
            max_cycles = default_max_cycles(inputs, out_counts,
                                            fam.expected_cycles(params, r["arrays"], **opts))
        jobs.append({"inputs": inputs, "outputs": out_counts, "idle": r.get("idle", 0.0),
                     "stall": r.get("stall", 0.0), "seed": r.get("seed", 0),
                     "max_cycles": max_cycles})
        ctxs.append(ctx)
    name = name or fam.name
    vpath, manifest = cached_render(fam, params, name, fam.name, config or {})
    results = run_stream_jobs(manifest, vpath, jobs, sim=sim, waves=waves, waves_to=waves_to)
    return [SimResult(fam.assemble(params, ctx, res["received"]), res["cycles"],
                      {k: v for k, v in res.items() if k != "received"})
            for ctx, res in zip(ctxs, results, strict=True)]


def cached_design(cfg) -> tuple[Path, dict]:
    """Generate a config into the design cache (once per config and generator version)."""
    fam = family(cfg.unit)
    return cached_render(fam, fam.params(cfg), cfg.name, cfg.unit, config_dict(cfg))


def cached_render(fam, params, name: str, unit: str, config: dict) -> tuple[Path, dict]:
    """Verilog file and manifest of ``params``, emitted once per parameters and generator
    version into ``$TENSORFAB_CACHE/designs``."""
    key = hashlib.sha256(
        (repr(params) + name + generator_hash()).encode()).hexdigest()[:16]
    d = cache_root() / "designs" / f"{name}-{key}"
    vpath, jpath = d / f"{name}.v", d / f"{name}.json"
    if not (vpath.exists() and jpath.exists()):
        text, manifest = _render(fam.component(params), name, unit, config,
                                 fam.manifest_extra(params))
        tmp = d.with_name(d.name + f".tmp{os.getpid()}")
        tmp.mkdir(parents=True, exist_ok=True)
        (tmp / vpath.name).write_text(text)
        (tmp / jpath.name).write_text(json.dumps(manifest, indent=2) + "\n")
        try:
            tmp.rename(d)
        except OSError:  # another process won the race; use its copy
            shutil.rmtree(tmp, ignore_errors=True)
    return vpath, json.loads(jpath.read_text())
