"""Host-side measurements (issue 6): packing speed of the wire format, protocol overhead, and
the served simulated board's speed on the demo workload.

Called by ``python -m bench.run`` (and ``--host-only``). Every figure is measured here, on this
machine, in one process on one core; packing speeds are best of several repeats.

Units: *wire MB/s* is packed bytes (what crosses the link) per second, 10**6 bytes per MB;
codes/s is tensor elements per second. For int4, one wire byte holds two codes.
"""

from __future__ import annotations

import os
import time

import numpy as np

N_CODES = 1 << 24   # 16 Mi codes per measurement
REPEATS = 15


def _best(fn, repeats: int = REPEATS) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def bench_packing() -> list[dict]:
    from generators.numerics import pack_bits, unpack_bits

    rng = np.random.default_rng(0)
    rows = []
    lanes = 64
    for fmt, width in (("int8", 8), ("int4", 4)):
        c8 = rng.integers(-(1 << (width - 1)), 1 << (width - 1), (N_CODES // lanes, lanes),
                          dtype=np.int8)
        c64 = c8.astype(np.int64)
        wire = N_CODES * width // 8
        # pack to a contiguous uint8 array (a buffer the transports send as it is)
        t, buf = _best(lambda c8=c8, width=width: pack_bits(c8, width))
        t64, buf64 = _best(lambda c64=c64, width=width: pack_bits(c64, width))
        assert np.array_equal(buf, buf64)
        tu8, back8 = _best(lambda buf=buf, width=width: unpack_bits(buf, width, lanes, True,
                                                                    dtype=np.int8))
        tu64, back64 = _best(lambda buf=buf, width=width: unpack_bits(buf, width, lanes, True))
        assert np.array_equal(back8, c8) and np.array_equal(back64, c64)
        for op, codes, secs, note in (
                ("pack", "int8 array", t, "zero-copy view of the codes" if width == 8 else ""),
                ("pack", "int64 array", t64, ""),
                ("unpack", "int8 array", tu8, ""),
                ("unpack", "int64 array", tu64, "")):
            rows.append({"format": fmt, "op": op, "codes_held_as": codes,
                         "wire_mb_per_s": round(wire / secs / 1e6, 1),
                         "codes_per_s": round(N_CODES / secs), "note": note})
            print(f"  {op} {fmt} ({codes}): {wire / secs / 1e6:.0f} wire MB/s"
                  + (f" ({note})" if note else ""), flush=True)
    return rows


def bench_beats() -> list[dict]:
    """pack_beats/unpack_beats on a real stream layout, from the int64 beats `schedule` makes."""
    from generators.board_info import describe
    from generators.config import load_config
    from generators.mac_array import family as mac
    from host.tensor import pack_beats, unpack_beats

    cfg = load_config("configs/ulx3s_units.yaml")
    streams = describe(cfg)["units"][0]["streams"]
    rng = np.random.default_rng(1)
    a = rng.integers(-128, 128, (512, 2048))
    b = rng.integers(-128, 128, (2048, 512))
    inputs, _, _ = mac.schedule(mac.params(cfg.units[0]), {"a": a, "b": b})
    rows = []
    for name in ("a_stream", "b_stream"):
        fields = streams[name]["fields"]
        t, buf = _best(lambda f=fields, n=name: pack_beats(f, inputs[n]), 3)
        tu, back = _best(lambda f=fields, buf=buf: unpack_beats(f, buf), 3)
        assert all(np.array_equal(back[k], inputs[name][k]) for k in fields)
        rows.append({"stream": f"mac8x8 {name}", "beats": len(buf),
                     "beat_bytes": streams[name]["beat_bytes"],
                     "pack_wire_mb_per_s": round(buf.size / t / 1e6, 1),
                     "unpack_wire_mb_per_s": round(buf.size / tu / 1e6, 1)})
        print(f"  pack_beats {name}: {buf.size / t / 1e6:.0f} MB/s, unpack "
              f"{buf.size / tu / 1e6:.0f} MB/s", flush=True)
    return rows


def bench_overhead(total: int = 1 << 20) -> list[dict]:
    """Link bytes of moving ``total`` payload bytes with WRITE (and READ) at the largest frames,
    counted from the encoder: requests and their replies, COBS, CRC and 0x00 included."""
    from host import protocol as p

    rng = np.random.default_rng(2)
    rows = []
    for beat in (1, 8, 9, 32):
        data = rng.integers(0, 256, total, dtype=np.uint8).tobytes()
        per_w = (p.MAX_PAYLOAD - 5) // beat * beat
        per_r = p.MAX_PAYLOAD // beat * beat
        w_out = w_in = r_out = r_in = 0
        for seq, pos in enumerate(range(0, total, per_w)):
            w_out += len(p.write_request(seq, 0, pos // beat, data[pos:pos + per_w]))
            w_in += len(p.ack_frame(p.Op.WRITE, seq))
        for seq, pos in enumerate(range(0, total, per_r)):
            n = min(per_r, total - pos) // beat
            r_out += len(p.read_request(seq, 0, pos // beat, n))
            r_in += len(p.ack_frame(p.Op.READ, seq, data[pos:pos + per_r]))
        wire_w, wire_r = w_out + w_in, r_out + r_in
        rows.append({"beat_bytes": beat, "payload_bytes": total,
                     "write_link_bytes": wire_w, "read_link_bytes": wire_r,
                     "write_overhead_pct": round(100 * (wire_w - total) / wire_w, 3),
                     "read_overhead_pct": round(100 * (wire_r - total) / wire_r, 3)})
        print(f"  protocol overhead, 1 MiB in {beat}-byte beats: WRITE "
              f"{rows[-1]['write_overhead_pct']} %, READ {rows[-1]['read_overhead_pct']} % of "
              "link bytes", flush=True)
    return rows


def bench_model_board() -> dict:
    """End to end through the driver on model:// (Python reference board): a 256x256x256 GEMM
    on configs/ulx3s_units.yaml's 8x8 array (split into RUNs by the buffers)."""
    from host import open_board

    rng = np.random.default_rng(3)
    a = rng.integers(-128, 128, (256, 256))
    b = rng.integers(-128, 128, (256, 256))
    with open_board("model://configs/ulx3s_units.yaml", progress=False) as board:
        t0 = time.perf_counter()
        c = board.gemm(a, b)
        wall = time.perf_counter() - t0
        ok = bool(np.array_equal(c, a @ b))
        st = board.stats
        row = {"gemm": "256x256x256", "runs": board.last_run["runs"],
               "wall_seconds": round(wall, 3), "payload_bytes": st["payload_out"]
               + st["payload_in"], "link_bytes": st["wire_out"] + st["wire_in"],
               "equal_to_golden": ok}
    print(f"  model:// gemm 256^3: {row['runs']} RUNs, {wall:.2f} s, equal {ok}", flush=True)
    return row


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds of process ``pid`` so far (Linux /proc; 0 elsewhere)."""
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def bench_served_board(repeats: int = 3) -> dict:
    """The simulated board's speed on the demo workload (`make demo`: the encoder block on
    configs/demo.yaml, op by op and as a program, served by the Verilator harness): simulated
    cycles per second of simulation time (the harness's own count while it clocks the model),
    best of ``repeats`` connections, and the workload's link bytes and cycles."""
    import warnings

    from amaranth.hdl import UnusedElaboratable

    from generators.config import load_config
    from host import open_board

    from .demo import encoder_workload, harness_report, parser, served_board

    warnings.simplefilter("ignore", UnusedElaboratable)
    args = parser().parse_args(["--batch", "2"])
    cfg = load_config(args.config)
    best = None
    with served_board(cfg, say=lambda m: print(f"  {m}", flush=True)) as (url, proc, times):
        for _ in range(repeats):
            with open_board(url, timeout=5.0, progress=False) as board:
                cpu0 = _cpu_seconds(proc.pid)
                t0 = time.perf_counter()
                res = encoder_workload(board, cfg, args, say=lambda m: None)
                wall = time.perf_counter() - t0
                cpu = _cpu_seconds(proc.pid) - cpu0
            rep = harness_report(proc)
            if rep:
                # the board process's own CPU time: on a shared machine the harness's wall
                # clock also counts the time other processes held the cores
                rep["cycles_per_cpu_s"] = rep["cycles"] / cpu if cpu > 0 else 0.0
                rep["cpu_s"] = cpu
            if rep and (best is None or rep["cycles_per_cpu_s"] > best["cycles_per_cpu_s"]):
                call = res["prog"]["calls"][-1]
                best = {"design": args.config, "workload": "bench.demo encoder block (seq 64, "
                        "d_model 64, 2 heads, FFN 256, 2:4 down-projection), op by op and as "
                        "a program (2 inputs)", "cycles": rep["cycles"],
                        "sim_seconds": rep["busy_s"], "cycles_per_s": round(rep["cycles_per_s"]),
                        "cpu_seconds": round(rep["cpu_s"], 3),
                        "cycles_per_cpu_s": round(rep["cycles_per_cpu_s"]),
                        "load_average": round(os.getloadavg()[0], 2),
                        "workload_wall_seconds": round(wall, 3),
                        "mismatches": res["mismatches"],
                        "op_by_op_link_bytes": res["ops"]["link_bytes"],
                        "op_by_op_int32_link_bytes": res["ops32"]["link_bytes"],
                        "program_link_bytes": call["link_bytes"],
                        "program_cycles": call["cycles"],
                        "expected_cycles": sum(res["expected_cycles"].values()),
                        "weight_load_bytes": res["prog"]["weight_bytes"],
                        "load_bytes": res["prog"]["load_bytes"],
                        "packed_weight_bytes": res["packed"]["weights"],
                        "packed_param_bytes": res["packed"]["params"],
                        "io_bytes": res["io_bytes"]}
    if best is None:
        raise RuntimeError("the simulated board reported no cycle count")
    print(f"  served demo board: {best['cycles']} cycles in {best['sim_seconds']:.2f} s = "
          f"{best['cycles_per_s'] / 1e6:.2f} M cycles/s ({best['cycles_per_cpu_s'] / 1e6:.2f} M "
          f"per CPU second of the board process; load average {best['load_average']}), "
          f"{best['mismatches']} mismatches", flush=True)
    return best


def bench_pin_level(nbytes: int = 16384) -> dict:
    """The pin-level UART face of configs/ulx3s_units.yaml (3 Mbaud from 25 MHz, the harness driving
    and decoding the pins) moving ``nbytes`` payload bytes with WRITE, then reading them back
    with READ, through ``open_board``. The harness counts only the cycles in which the link or
    the board is busy (it stops clocking while both lines are quiet and the board waits for
    the host), so the figures are for an ideal host: payload bytes per simulated second
    against the line rate, ``baud / 10`` bytes/s in each direction (8N1). Three connections
    (open; open + WRITE; open + WRITE + READ) separate the phases by their cycle counts."""
    import subprocess
    import warnings

    from amaranth.hdl import UnusedElaboratable

    import sim.board as sb
    from generators.board_info import BOARD_CLOCK_HZ
    from generators.config import load_config
    from host import open_board

    from .demo import _free_port, harness_report

    warnings.simplefilter("ignore", UnusedElaboratable)
    cfg = load_config("configs/ulx3s_units.yaml")
    clk, baud = BOARD_CLOCK_HZ[cfg.board], cfg.link.uart
    data = np.random.default_rng(4).integers(0, 256, nbytes, dtype=np.uint8).tobytes()
    sb.build(cfg, "uart", say=lambda m: print(f"  {m}", flush=True))
    proc = sb.start(cfg, _free_port(), "uart", stderr=subprocess.PIPE)
    port = int(proc.args[proc.args.index("--port") + 1])
    cycles, link = [], []
    try:
        for phase in range(3):
            with open_board(f"socket://127.0.0.1:{port}", timeout=10.0, progress=False) as b:
                # a buffer whose beats have no pad bits (all data comes back) and room
                spec = next(s for u in b.units for _, s in u.streams
                            if nbytes % s["beat_bytes"] == 0
                            and s["depth"] * s["beat_bytes"] >= nbytes
                            and max(f["offset"] + f["width"] for f in s["fields"].values())
                            == 8 * s["beat_bytes"])
                buf, bb = spec["buffer"], spec["beat_bytes"]
                if phase >= 1:
                    b.write(buf, 0, data)
                if phase == 2:
                    assert b.read(buf, 0, nbytes // bb) == data
                link.append(b.stats["wire_out"] + b.stats["wire_in"])
            rep = harness_report(proc, timeout=60)
            cycles.append(rep["cycles"])
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        proc.stdout.close()
        proc.stderr.close()
    line = baud / 10   # bytes/s per direction
    w_s, r_s = (cycles[1] - cycles[0]) / clk, (cycles[2] - cycles[1]) / clk
    row = {"design": "configs/ulx3s_units.yaml (uart face)", "clock_hz": clk, "baud": baud,
           "payload_bytes": nbytes, "write_cycles": cycles[1] - cycles[0],
           "read_cycles": cycles[2] - cycles[1],
           "write_pct_of_line": round(100 * nbytes / w_s / line, 2),
           "read_pct_of_line": round(100 * nbytes / r_s / line, 2),
           "write_link_bytes": link[1] - link[0], "read_link_bytes": link[2] - link[1]}
    print(f"  pin-level UART {baud} baud: WRITE {row['write_pct_of_line']} %, READ "
          f"{row['read_pct_of_line']} % of the line rate (payload bytes, ideal host)",
          flush=True)
    return row


def bench_host() -> dict:
    return {"packing": bench_packing(), "beats": bench_beats(), "overhead": bench_overhead(),
            "model_board": bench_model_board(), "served_board": bench_served_board(),
            "pin_level": bench_pin_level()}


def host_targets(res: dict) -> list[dict]:
    def speed(fmt, op, held):
        return next(r["wire_mb_per_s"] for r in res["packing"] if r["format"] == fmt
                    and r["op"] == op and r["codes_held_as"] == held)

    out = []
    for fmt, goal in (("int8", 1000), ("int4", 500)):
        for held in ("int8 array", "int64 array"):
            p_, u_ = speed(fmt, "pack", held), speed(fmt, "unpack", held)
            # int8 codes already are their wire bytes: packing them is a view, no copy
            pack = ("a zero-copy view" if fmt == "int8" and held == "int8 array"
                    else f"{p_:.0f} MB/s")
            out.append({"target": f"{fmt} packing >= {goal} MB/s per core, pack and unpack "
                                  f"(codes held as {held}; wire bytes)",
                        "measured": f"pack {pack}, unpack {u_:.0f} MB/s",
                        "met": p_ >= goal and u_ >= goal})
    sb = res.get("served_board")
    if sb:
        out.append({"target": "simulated board >= 1 M simulated cycles/s on the demo config "
                              "(demo workload, Verilator harness)", "issue": 15,
                    "measured": f"{sb['cycles_per_cpu_s'] / 1e6:.2f} M cycles per CPU second "
                                f"of the board process ({sb['cycles_per_s'] / 1e6:.2f} M per "
                                f"second of the harness's wall clock at load average "
                                f"{sb['load_average']}; {sb['cycles']} cycles, "
                                f"{sb['mismatches']} mismatches)",
                    "met": sb["cycles_per_cpu_s"] >= 1e6 and sb["mismatches"] == 0})
    if sb and "program_link_bytes" in sb:
        out += program_targets(sb)
    pl = res.get("pin_level")
    if pl:
        worst_pl = min(pl["write_pct_of_line"], pl["read_pct_of_line"])
        out.append({"target": "pin-level UART throughput >= 90 % of the line rate (payload "
                              "bytes, WRITE and READ, simulated board, ideal host)",
                    "measured": f"WRITE {pl['write_pct_of_line']} %, READ "
                                f"{pl['read_pct_of_line']} % of {pl['baud'] // 10} bytes/s",
                    "met": worst_pl >= 90.0})
    worst = max(max(r["write_overhead_pct"], r["read_overhead_pct"]) for r in res["overhead"])
    out.append({"target": "protocol overhead <= 3 % of link bytes, 1 MB transfers",
                "measured": f"at most {worst:.2f} % (WRITE and READ, beats of 1-32 bytes)",
                "met": worst <= 3.0})
    return out


def program_targets(sb: dict) -> list[dict]:
    """Issue 15's rows: the encoder block of `make demo` as one program on the RTL board."""
    lb, io = sb["program_link_bytes"], sb["io_bytes"]
    wl, pw, pp = sb["weight_load_bytes"], sb["packed_weight_bytes"], sb["packed_param_bytes"]
    ld = sb["load_bytes"]
    ops = sb["op_by_op_link_bytes"]
    ratio = sb["program_cycles"] / sb["expected_cycles"]
    return [dict(t, issue=15) for t in [
        {"target": "program link bytes per inference <= 1.10 x (input + output bytes), "
                   "weights resident (demo encoder block)",
         "measured": f"{lb:,} B for {io:,} B of input and output codes = {lb / io:.3f}x",
         "met": lb <= 1.10 * io},
        {"target": "weight load <= 1.10 x the weights' packed size",
         "measured": f"{ld['weights']:,} link bytes for {pw:,} B of packed weights = "
                     f"{ld['weights'] / pw:.3f}x (the whole load, once: {wl:,} B, with the "
                     f"requant parameter beats {ld['params']:,} B for {pp:,} B packed, and "
                     f"the program {ld['program']:,} B)",
         "met": ld["weights"] <= 1.10 * pw},
        {"target": "op by op / program link bytes on the demo block (report; expected > 30x)",
         "measured": f"{ops:,} / {lb:,} = {ops / lb:.0f}x (int32 accumulators with host "
                     f"requantization: {sb['op_by_op_int32_link_bytes']:,} B)",
         "met": ops >= 30 * lb},
        {"target": "program cycles <= 1.10 x the sum of its ops' stand-alone expected_cycles",
         "measured": f"{sb['program_cycles']:,} / {sb['expected_cycles']:,} = {ratio:.3f}x",
         "met": ratio <= 1.10},
    ]]


def host_markdown(res: dict) -> list[str]:
    lines = ["", "## Host driver (issue 6)", "",
             "Packing in wire bytes per second (10^6 bytes per MB) on one core, best of "
             f"{REPEATS}, {N_CODES} codes in rows of 64 lanes, on a machine shared with other "
             "jobs (load about 5 on 2 cores: figures vary by 2-3x between runs). Pack ends in "
             "a contiguous uint8 array, sent as it is (for int8 codes held as int8 it is a "
             "view of them, no copy); unpack to an int8 array is the narrow output "
             "(`unpack_bits(..., dtype=np.int8)`), to int64 the default. For int4 one wire "
             "byte holds two codes.", "",
             "| format | op | codes held as | wire MB/s | codes/s | note |",
             "|---|---|---|---|---|---|"]
    for r in res["packing"]:
        lines.append(f"| {r['format']} | {r['op']} | {r['codes_held_as']} | "
                     f"{r['wire_mb_per_s']} | {r['codes_per_s']:.3g} | {r['note']} |")
    lines += ["", "Beats for the wire (`host.tensor.pack_beats`) from the int64 beats "
              "`schedule` makes for a 512x2048x512 GEMM:", "",
              "| stream | beats | beat bytes | pack MB/s | unpack MB/s |", "|---|---|---|---|---|"]
    for r in res["beats"]:
        lines.append(f"| {r['stream']} | {r['beats']} | {r['beat_bytes']} | "
                     f"{r['pack_wire_mb_per_s']} | {r['unpack_wire_mb_per_s']} |")
    lines += ["", "Protocol overhead of moving 1 MiB (requests and replies, header, CRC, COBS "
              "and 0x00 counted; random data):", "",
              "| beat bytes | WRITE link bytes | overhead | READ link bytes | overhead |",
              "|---|---|---|---|---|"]
    for r in res["overhead"]:
        lines.append(f"| {r['beat_bytes']} | {r['write_link_bytes']} | "
                     f"{r['write_overhead_pct']} % | {r['read_link_bytes']} | "
                     f"{r['read_overhead_pct']} % |")
    m = res["model_board"]
    lines += ["", f"`model://configs/ulx3s_units.yaml`, {m['gemm']} GEMM through `open_board`: "
              f"{m['runs']} RUNs, {m['wall_seconds']} s, {m['payload_bytes']} payload bytes "
              f"({m['link_bytes']} link bytes), equal to the golden model: "
              f"{m['equal_to_golden']}.", ""]
    sb = res.get("served_board")
    if sb:
        lines += [f"Simulated board (`tensorfab serve configs/demo.yaml`, Verilator harness, "
                  f"the `make demo` workload: {sb['workload']}): {sb['cycles']} cycles in "
                  f"{sb['sim_seconds']} s of simulation = **{sb['cycles_per_s'] / 1e6:.2f} M "
                  f"simulated cycles/s** (best of 3 connections; workload wall time "
                  f"{sb['workload_wall_seconds']} s, {sb['mismatches']} mismatches).", ""]
        if "program_link_bytes" in sb:
            lb, io = sb["program_link_bytes"], sb["io_bytes"]
            wl, pw, pp = (sb["weight_load_bytes"], sb["packed_weight_bytes"],
                          sb["packed_param_bytes"])
            lines += [
                "Encoder block per inference (link bytes from the protocol's byte counts): "
                "op by op with int32 accumulators and host requantization (model://) "
                f"{sb['op_by_op_int32_link_bytes']:,} B; op by op with on-board requant "
                f"{sb['op_by_op_link_bytes']:,} B; program {lb:,} B = {lb / io:.3f}x the input "
                f"and output codes ({io:,} B), **{sb['op_by_op_link_bytes'] / lb:.0f}x** fewer "
                f"than op by op. Weight load (once): {wl:,} B; the weights' share "
                f"{sb['load_bytes']['weights']:,} B = "
                f"{sb['load_bytes']['weights'] / pw:.3f}x their packed size ({pw:,} B), "
                f"the requant parameter beats {sb['load_bytes']['params']:,} B ({pp:,} B "
                f"packed), the program {sb['load_bytes']['program']:,} B. "
                f"Program cycles {sb['program_cycles']:,} = "
                f"{sb['program_cycles'] / sb['expected_cycles']:.3f}x the ops' stand-alone "
                "expected cycles.", ""]
    pl = res.get("pin_level")
    if pl:
        lines += [f"Pin-level UART (`tensorfab serve configs/ulx3s_units.yaml --pin-level`: "
                  f"{pl['baud']} baud from {pl['clock_hz'] / 1e6:g} MHz, 8N1, the harness "
                  f"driving and decoding the pins), {pl['payload_bytes']} payload bytes "
                  f"written then read back through `open_board`, in simulated time with an "
                  f"ideal host (the harness counts only cycles in which the link or the board "
                  f"is busy): WRITE {pl['write_cycles']} cycles = **{pl['write_pct_of_line']} "
                  f"%** of the line rate ({pl['write_link_bytes']} link bytes), READ "
                  f"{pl['read_cycles']} cycles = **{pl['read_pct_of_line']} %** "
                  f"({pl['read_link_bytes']} link bytes); the rest is protocol overhead "
                  "(headers, CRC, COBS, the replies) and the board's turnaround.", ""]
    return lines
