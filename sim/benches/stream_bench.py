"""The cocotb bench every streaming unit runs under: play beats, collect beats, count cycles.

It is started by :func:`sim.runner.run_stream_jobs`, which passes a spec (stream layouts from
the manifest; per job, idle/back-pressure rates and a cycle limit) and the input beats through
files named by environment variables, and reads the output beats and cycle counts back. Jobs
run one after another in one simulator run, the design reset before each. Checking against the
golden model happens in the caller, on whole arrays, with the same code for every simulator.
"""

from __future__ import annotations

import json
import os

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

from sim.streams import StreamPlayer, pack_payloads, unpack_payloads


@cocotb.test()
async def stream_bench(dut):
    with open(os.environ["TENSORFAB_SPEC"]) as fh:
        spec = json.load(fh)
    stim = np.load(os.environ["TENSORFAB_STIM"])
    streams = spec["streams"]
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    result = {}
    for i, job in enumerate(spec["jobs"]):
        got = await _play(dut, streams, job, {k[len(f"j{i}."):]: stim[k] for k in stim.files
                                              if k.startswith(f"j{i}.")},
                          f"job {i + 1} of {len(spec['jobs'])}: ")
        result.update({f"j{i}.{k}": v for k, v in got.items()})
    np.savez(os.environ["TENSORFAB_RESULT"], **result)


async def _play(dut, streams, job, stim, where):
    """Reset the design, play one job's beats, return its received fields and cycle counts."""
    inputs = {}
    for sname in job["inputs"]:
        fields = streams[sname]["fields"]
        arrays = {f: stim[f"{sname}.{f}"] for f in fields}
        inputs[sname] = pack_payloads(fields, arrays)
    player = StreamPlayer(inputs, job["outputs"], idle=job["idle"], stall=job["stall"],
                          seed=job["seed"])

    ins = {k: (getattr(dut, f"{k}__valid"), getattr(dut, f"{k}__payload"),
               getattr(dut, f"{k}__ready")) for k in inputs}
    outs = {k: (getattr(dut, f"{k}__valid"), getattr(dut, f"{k}__payload"),
                getattr(dut, f"{k}__ready")) for k in job["outputs"]}

    edge = RisingEdge(dut.clk)
    dut.rst.value = 1
    for valid, payload, _ in ins.values():
        valid.value = 0
        payload.value = 0
    for _, _, ready in outs.values():
        ready.value = 0
    for _ in range(2):
        await edge
    dut.rst.value = 0

    # Cache what was last written so each cycle writes only what changed.
    last_in = {k: (None, None) for k in ins}
    last_rdy = {k: None for k in outs}
    read_only = ReadOnly()
    total = 0
    max_cycles = job["max_cycles"]
    while not player.done:
        await edge
        total += 1
        if total > max_cycles:
            got = {k: len(v) for k, v in player.received.items()}
            raise AssertionError(f"{where}no completion within {max_cycles} cycles (received "
                                 f"{got} of {job['outputs']})")
        valid, payload, ready = player.drive()
        for k, (vh, ph, _) in ins.items():
            v, p = valid[k], payload[k]
            lv, lp = last_in[k]
            if v != lv:
                vh.value = v
            if v and p != lp:
                ph.value = p
                lp = p
            last_in[k] = (v, lp)
        for k, (_, _, rh) in outs.items():
            if ready[k] != last_rdy[k]:
                rh.value = ready[k]
                last_rdy[k] = ready[k]
        await read_only
        in_ready = {k: int(h[2].value) for k, h in ins.items()}
        out_valid = {k: int(h[0].value) for k, h in outs.items()}
        out_payload = {k: (int(h[1].value) if out_valid[k] else 0) for k, h in outs.items()}
        player.sample(in_ready, out_valid, out_payload)
    # leave the ReadOnly phase before the next job (or the end) writes to the design
    await edge

    result = {"cycles": np.int64(player.cycles), "total_cycles": np.int64(total)}
    for k, beats in player.received.items():
        for f, arr in unpack_payloads(streams[k]["fields"], beats).items():
            result[f"{k}.{f}"] = arr
    return result
