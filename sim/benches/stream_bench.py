"""The cocotb bench every streaming unit runs under: play beats, collect beats, count cycles.

It is started by :func:`sim.runner.run_streams`, which passes a spec (stream layouts from the
manifest, idle/back-pressure rates, a cycle limit) and the input beats through files named by
environment variables, and reads the output beats and cycle counts back. Checking against the
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
    spec = json.loads(open(os.environ["TENSORFAB_SPEC"]).read())
    stim = np.load(os.environ["TENSORFAB_STIM"])
    streams = spec["streams"]
    inputs = {}
    for sname in spec["inputs"]:
        fields = streams[sname]["fields"]
        arrays = {f: stim[f"{sname}.{f}"] for f in fields}
        inputs[sname] = pack_payloads(fields, arrays)
    player = StreamPlayer(inputs, spec["outputs"], idle=spec["idle"], stall=spec["stall"],
                          seed=spec["seed"])

    ins = {k: (getattr(dut, f"{k}__valid"), getattr(dut, f"{k}__payload"),
               getattr(dut, f"{k}__ready")) for k in inputs}
    outs = {k: (getattr(dut, f"{k}__valid"), getattr(dut, f"{k}__payload"),
                getattr(dut, f"{k}__ready")) for k in spec["outputs"]}

    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    for valid, payload, _ in ins.values():
        valid.value = 0
        payload.value = 0
    for _, _, ready in outs.values():
        ready.value = 0
    edge = RisingEdge(dut.clk)
    for _ in range(2):
        await edge
    dut.rst.value = 0

    # Cache what was last written so each cycle writes only what changed.
    last_in = {k: (None, None) for k in ins}
    last_rdy = {k: None for k in outs}
    read_only = ReadOnly()
    total = 0
    max_cycles = spec["max_cycles"]
    while not player.done:
        await edge
        total += 1
        if total > max_cycles:
            got = {k: len(v) for k, v in player.received.items()}
            raise AssertionError(f"no completion within {max_cycles} cycles (received {got} "
                                 f"of {spec['outputs']})")
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

    result = {"cycles": np.int64(player.cycles), "total_cycles": np.int64(total)}
    for k, beats in player.received.items():
        for f, arr in unpack_payloads(streams[k]["fields"], beats).items():
            result[f"{k}.{f}"] = arr
    np.savez(os.environ["TENSORFAB_RESULT"], **result)
