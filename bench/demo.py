"""`make demo`: a transformer encoder block on the simulated board, op by op and as a program.

For a protocol-2 board design (default ``configs/demo.yaml``): emit the board top's Verilog,
build it with the C++ TCP harness in Verilator (cached by design hash), serve it on a free
local port (the ``tensorfab serve`` machinery) and drive it from the host through
``host.open_board("socket://127.0.0.1:P")`` with the encoder block of :mod:`bench.encoder`
(multi-head attention, then an FFN with a GELU and a 2:4-sparse down-projection; seq 64,
d_model 64, 2 heads, FFN 256 by default):

- **op by op**: ``Graph.run_ops``, every op one protocol-1 RUN, operands to the board and
  results back over the link (8-bit intermediates: the MAC array and the sparse chain
  requantize on the board); also, on ``model://`` with the design's units stripped of their
  epilogues, the same with int32 accumulators requantized on the host (the protocol's own
  byte counts);
- **program**: ``board.compile`` (weights and the program written once), then ``--batch``
  inputs, one PROG_RUN each.

It prints both ways side by side (link bytes, board cycles, link time on the design's UART
from the byte counts, compute time at the board clock, how busy the board is), the program's
cycles per op against each op's stand-alone ``expected_cycles``, and the simulated board's
speed. Every output must equal ``Graph.evaluate`` (the golden models); any mismatch makes the
exit status 1. Bad input is exit status 2 and one line, before anything is built.

A unit config (``--config configs/mac8x8.yaml``) runs the older single-unit demo: a GEMM on
the unit's RTL in Verilator through ``tensorfab run``'s runner.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import socket
import sys
import time
import warnings

import numpy as np

#: The units the board demo needs, by family.
NEEDS = ("mac_array", "softmax", "gelu", "sparse_chain")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def served_board(cfg, say=print, port: int | None = None):
    """Build (cached) and start the simulated board of ``cfg``; yields ``(url, proc, times)``
    with ``times`` = {"emit", "build", "start"} in seconds. The harness's stderr is a pipe:
    :func:`harness_report` reads its per-client line."""
    import subprocess

    import sim.board as sb

    times = {}
    t0 = time.perf_counter()
    sb.verilog(cfg)
    times["emit"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    sb.build(cfg, say=say)
    times["build"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    proc = None
    for attempt in range(5):
        try:
            proc = sb.start(cfg, port or _free_port(), say=say, stderr=subprocess.PIPE)
            break
        except sb.PortInUse:
            if port or attempt == 4:
                raise
    times["start"] = time.perf_counter() - t0
    port = int(proc.args[proc.args.index("--port") + 1])
    try:
        yield f"socket://127.0.0.1:{port}", proc, times
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def harness_report(proc, timeout: float = 10.0) -> dict | None:
    """The harness's line for the client that just left: ``{"cycles", "busy_s", "wall_s",
    "cycles_per_s"}`` (cycles/s while the model was being clocked), or None."""
    deadline = time.monotonic() + timeout
    buf = b""
    fd = proc.stderr.fileno()
    while time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not r:
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        buf += chunk
        for line in buf.decode(errors="replace").splitlines():
            if line.startswith("client left:"):
                # client left: N cycles in W s (R cycles/s while busy, B s busy)
                words = line.replace("(", " ").replace(",", " ").split()
                try:
                    return {"cycles": int(words[2]), "wall_s": float(words[5]),
                            "cycles_per_s": float(words[7]), "busy_s": float(words[11])}
                except (IndexError, ValueError):
                    return None
    return None


def check_design(cfg, args, where: str) -> None:
    """Refuse (one line) a design the encoder block cannot run on, before anything is built."""
    from generators.errors import UserError

    kinds = [u.unit for u in cfg.units]
    missing = [k for k in NEEDS if k not in kinds]
    if missing:
        names = ", ".join(f"{u.name} ({u.unit})" for u in cfg.units)
        raise UserError(f"{where}: the board demo needs a {', '.join(missing)} unit as well "
                        f"(the design has: {names}; allowed: a design like configs/demo.yaml)")
    if cfg.tensor_memory is None:
        raise UserError(f"{where}: design {cfg.name} has no tensor_memory (allowed: a "
                        "protocol-2 design like configs/demo.yaml)")
    length = next(u.length for u in cfg.units if u.unit == "softmax")
    if args.seq > length:
        raise UserError(f"--seq {args.seq}: longer than the softmax unit's rows (allowed: "
                        f"1..{length})")
    modes = [str(m) for m in next(u for u in cfg.units if u.unit == "sparse_chain").modes]
    if args.mode not in modes:
        raise UserError(f"--mode {args.mode}: not a mode of the design's sparse chain "
                        f"(allowed: {', '.join(modes)})")
    # the whole graph through the compiler on model:// (every graph error before any build)
    from host import open_board

    from .encoder import encoder_block

    g, x0 = encoder_block(cfg, args.seq, args.d_model, args.heads, args.ffn, args.mode,
                          args.seed)
    with open_board("model://" + str(args.config), progress=False) as ref:
        ref.compile(g)


def _packed_bytes(graph) -> dict:
    """Packed sizes of what a compile loads: ``weights`` (dense codes at their storage width;
    an N:M weight as its kept values and their indices) and ``params`` (requant bias and
    multiplier 4 bytes, shift 1 byte, per channel or once)."""
    from generators.tm import storage_bits

    w = params = 0
    for node in graph.nodes:
        if node.kind == "weight":
            c = node.attrs["codes"]
            users = [n for n in graph.nodes if node.out in n.inputs]
            sparse = next((n for n in users if n.kind == "sparse_matmul"), None)
            if sparse is not None:
                n_, m_ = (int(v) for v in (sparse.attrs["mode"] or "2:4").split(":"))
                w += c.size * n_ // m_ * (storage_bits(node.out.fmt.width)
                                          + (m_ - 1).bit_length()) // 8
            else:
                w += c.size * storage_bits(node.out.fmt.width) // 8
        rq = node.attrs.get("requant")
        if rq:
            ch = node.out.shape[1] if node.kind != "sparse_matmul" else node.out.shape[0]
            per = any(np.ndim(rq["arrays"].get(k, 0)) for k in ("bias", "multiplier", "shift"))
            params += 9 * (ch if per else 1)
    return {"weights": w, "params": params}


def encoder_workload(board, cfg, args, say=print) -> dict:
    """The encoder block on ``board`` both ways: op by op (each op one protocol-1 RUN, the
    intermediates over the link) and as one compiled program (weights resident, then
    ``args.batch`` inputs). Every output is compared with ``Graph.evaluate``."""
    from host import open_board

    from .encoder import encoder_block

    g, x0 = encoder_block(cfg, args.seq, args.d_model, args.heads, args.ffn, args.mode,
                          args.seed)
    rng = np.random.default_rng(args.seed + 1)
    xs = [x0] + [np.clip(np.rint(rng.normal(0, 1, x0.shape) * 32), -128, 127).astype(np.int64)
                 for _ in range(args.batch - 1)]
    wants = [g.evaluate(design=cfg, x=x) for x in xs]
    res = {"graph": g, "ops": {}, "prog": {}, "mismatches": 0}

    def bad(got, want):
        return sum(int(np.count_nonzero(got[k] != want[k])) if got[k].shape == want[k].shape
                   else int(want[k].size) for k in want)

    say(f"op by op: {len([n for n in g.nodes if n.kind not in ('input', 'weight', 'concat')])} "
        "ops, each a protocol-1 RUN (operands and results over the link)...")
    t0 = time.perf_counter()
    got, st = g.run_ops(board, x=x0)
    res["ops"] = {**st, "wall_s": time.perf_counter() - t0, "mismatches": bad(got, wants[0])}
    say("program: compile (weights and the program written once), then "
        f"{args.batch} inputs, one PROG_RUN each...")
    t0 = time.perf_counter()
    prog = board.compile(g)
    compile_s = time.perf_counter() - t0
    calls = []
    for x, want in zip(xs, wants, strict=True):
        t0 = time.perf_counter()
        got = prog(x=x)
        calls.append({**{k: v for k, v in prog.stats.items() if k != "op_cycles"},
                      "op_cycles": dict(prog.stats["op_cycles"]),
                      "wall_s": time.perf_counter() - t0, "mismatches": bad(got, want)})
    res["prog"] = {"calls": calls, "compile_s": compile_s,
                   "weight_bytes": prog.stats["weight_bytes"],
                   "load_bytes": dict(prog.stats["load_bytes"]),
                   "memory_bytes": prog.stats["memory_bytes"],
                   "program_bytes": prog.stats["program_bytes"],
                   "units": {n.name: u.name for n, u, _ in prog.plan}}
    # the same program on model://: each op's stand-alone expected_cycles, and the op-by-op
    # way with int32 accumulators and the requantization on the host (the design's units
    # without their epilogues), byte for byte the same protocol
    with open_board("model://" + args.config, progress=False) as ref:
        rp = ref.compile(g)
        rp(x=x0)
        res["expected_cycles"] = dict(rp.stats["op_cycles"])
    plain = cfg.model_copy(update={"units": tuple(
        u.model_copy(update={"requant": None}) if getattr(u, "requant", None) is not None
        else u for u in cfg.units)})
    from host.board import Board
    from host.model import ModelBoard
    from host.transport import ModelTransport

    with Board(ModelTransport("model://" + cfg.name + "-int32", ModelBoard(plain)),
               progress=False) as b32:
        got, st = g.run_ops(b32, host_requant=True, x=x0)
        res["ops32"] = {**st, "mismatches": bad(got, wants[0])}
    res["mismatches"] = (res["ops"]["mismatches"] + res["ops32"]["mismatches"]
                         + sum(c["mismatches"] for c in calls))
    x_io = x0.size + sum(w.size for w in wants[0].values())     # int8 codes, 1 byte each
    res["io_bytes"] = x_io
    res["packed"] = _packed_bytes(g)
    return res


def _table(rows, head, out=sys.stdout, left=1):
    widths = [max(len(str(r[i])) for r in (head, *rows)) for i in range(len(head))]

    def line(cells):
        return "  " + "  ".join(str(c).ljust(w) if i < left else str(c).rjust(w)
                                for i, (c, w) in enumerate(zip(cells, widths, strict=True)))

    print(line(head), file=out)
    print("  " + "  ".join("-" * w for w in widths), file=out)
    for r in rows:
        print(line(r), file=out)


def print_report(res, cfg, args, out=sys.stdout) -> None:
    from generators.board_info import BOARD_CLOCK_HZ

    clk = BOARD_CLOCK_HZ[cfg.board]
    baud = cfg.link.uart
    ops, ops32, pr = res["ops"], res["ops32"], res["prog"]
    call = pr["calls"][-1]

    def link_s(n):
        return n * 10 / baud          # 8N1: 10 bits per byte

    def cols(st, bytes_, runs):
        comp = st["cycles"] / clk
        lk = link_s(bytes_)
        return [f"{bytes_:,}", f"{st['cycles']:,}", f"{lk * 1e3:.1f} ms", f"{comp * 1e3:.2f} ms",
                f"{100 * comp / (comp + lk):.2f} %", str(runs)]

    a = cols(ops32, ops32["link_bytes"], ops32["runs"])
    b = cols(ops, ops["link_bytes"], ops["runs"])
    c = cols(call, call["link_bytes"], 1)
    names = ["link bytes per inference", "board cycles per inference",
             f"link time at {baud / 1e6:g} Mbaud", f"compute time at {clk / 1e6:g} MHz",
             "board busy (compute / (link + compute))", "RUNs / PROG_RUNs per inference"]
    rows = [[n, x, y, z] for n, x, y, z in zip(names, a, b, c, strict=True)]
    rows.append(["mismatches against evaluate", ops32["mismatches"], ops["mismatches"],
                 sum(c["mismatches"] for c in pr["calls"])])
    print(file=out)
    _table(rows, ["encoder block", "op by op, int32 (model://)", "op by op (board)",
                  "program (board)"], out)
    print(file=out)
    r_ops = ops["link_bytes"] / call["link_bytes"]
    r_32 = ops32["link_bytes"] / ops["link_bytes"]
    exp = sum(res["expected_cycles"].values())
    units = pr["units"]
    mac = next(u.name for u in cfg.units if u.unit == "mac_array")
    mac_busy = sum(v for k, v in call["op_cycles"].items() if units[k] == mac)
    pk = res["packed"]
    dense = [k for k in ops["op_link_bytes"] if units[k] == mac]
    d32 = sum(ops32["op_link_bytes"][k] for k in dense)
    d8 = sum(ops["op_link_bytes"][k] for k in dense)
    chain = next(u.name for u in cfg.units if u.unit == "sparse_chain")
    sp = sum(v for k, v in ops["op_link_bytes"].items() if units[k] == chain)
    print(f"  link bytes, op by op / program: {r_ops:.1f}x; int32 op by op / on-board "
          f"requant op by op: {r_32:.2f}x (the MAC array's ops alone: {d32:,} / {d8:,} = "
          f"{d32 / d8:.2f}x; the sparse chain's protocol-1 beats, replayed per output, are "
          f"{sp:,} B of the op-by-op bytes)", file=out)
    print(f"  program link bytes per inference / (input + output bytes = {res['io_bytes']:,}): "
          f"{call['link_bytes'] / res['io_bytes']:.3f}x", file=out)
    lb = pr["load_bytes"]
    print(f"  weight load, once: {pr['weight_bytes']:,} link bytes: weights "
          f"{lb['weights']:,} B = {lb['weights'] / pk['weights']:.3f}x their packed "
          f"{pk['weights']:,} B; requant parameter beats {lb['params']:,} B (packed "
          f"{pk['params']:,} B); padding zeros {lb['zeros']:,} B; the program "
          f"{pr['program_bytes']:,} B in {lb['program']:,} link bytes", file=out)
    print(f"  program cycles {call['cycles']:,} / sum of the ops' stand-alone expected cycles "
          f"{exp:,}: {call['cycles'] / exp:.3f}x; MAC array {mac} busy "
          f"{mac_busy:,} of {call['cycles']:,} cycles = {100 * mac_busy / call['cycles']:.1f} %",
          file=out)
    print(f"  tensor memory used: {pr['memory_bytes']:,} of {res['tm_bytes']:,} bytes; "
          f"batch of {len(pr['calls'])} inputs, weights resident", file=out)
    print(file=out)
    rows = [[k, units[k], f"{v:,}", f"{res['expected_cycles'][k]:,}",
             f"{v / res['expected_cycles'][k]:.3f}"] for k, v in call["op_cycles"].items()]
    _table(rows, ["program op", "unit", "cycles (board)", "expected", "ratio"], out, left=2)


def board_demo(cfg, args) -> int:
    from host import open_board

    check_design(cfg, args, args.config)

    def say(msg):
        print(msg, flush=True)

    t_all = time.perf_counter()
    with served_board(cfg, say=say) as (url, proc, times):
        say(f"{cfg.name}: board top Verilog ready in {times['emit']:.1f} s, simulated board "
            f"{'built' if times['build'] > 1 else 'from the cache'} in {times['build']:.1f} s, "
            f"serving {url} (up in {times['start']:.1f} s)")
        with open_board(url, timeout=args.timeout, progress=False) as board:
            info = board.info()
            say(f"INFO: design {info['name']} on {info['board']}, protocol "
                f"{info.get('protocol', 1)}, hash {info['hash']}, units "
                + ", ".join(f"{u['name']} ({u['unit']})" for u in info["units"]))
            say(f"workload: a transformer encoder block (seq {args.seq}, d_model "
                f"{args.d_model}, {args.heads} heads, FFN {args.ffn}, {args.mode}-sparse "
                "down-projection), int8 codes")
            res = encoder_workload(board, cfg, args, say)
            res["tm_bytes"] = info["tensor_memory"]["bank_bytes"] * \
                info["tensor_memory"]["banks"]
            stats = dict(board.stats)
        report = harness_report(proc)
    print_report(res, cfg, args)
    print()
    if report:
        print(f"  simulated board: {report['cycles']:,} cycles in {report['busy_s']:.3f} s of "
              f"simulation = {report['cycles_per_s'] / 1e6:.2f} M cycles/s "
              f"(Verilator, {report['wall_s']:.2f} s connected)")
    print(f"  link: {stats['wire_out'] + stats['wire_in']:,} bytes, {stats['requests']} "
          f"requests, {stats['retries']} retries; total wall time "
          f"{time.perf_counter() - t_all:.1f} s")
    bad = res["mismatches"]
    verdict = "yes" if bad == 0 else f"NO ({bad} mismatches)"
    print(f"  every output equals Graph.evaluate (the golden models): {verdict}")
    return 0 if bad == 0 else 1


def unit_demo(cfg, args) -> int:
    """The single-unit demo: a GEMM on a mac_array config's RTL in Verilator or Icarus."""
    from generators.errors import UserError
    from generators.generate import generate
    from generators.units import family
    from tensorfab.cli import run_rtl

    if cfg.unit != "mac_array":
        raise UserError(f"{args.config}: unit {cfg.unit} (allowed for the demo: a board "
                        "design such as configs/demo.yaml, or a mac_array config)")
    try:
        m, k, n = (int(x) for x in args.shape.split(","))
        if min(m, k, n) < 1:
            raise ValueError
    except ValueError:
        raise UserError(f"--shape {args.shape}: not M,K,N (allowed: three positive integers, "
                        "e.g. 100,200,120)") from None
    fam = family(cfg.unit)
    params = fam.params(cfg)
    t0 = time.perf_counter()
    vpath, jpath = generate(cfg, args.out)
    print(f"generated {vpath} and {jpath} in {time.perf_counter() - t0:.2f} s", flush=True)
    rng = np.random.default_rng(args.seed)
    a = rng.integers(params.a.min_code, params.a.max_code + 1, (m, k))
    b = rng.integers(params.b.min_code, params.b.max_code + 1, (k, n))
    print(f"running a {m}x{k} @ {k}x{n} GEMM on the {params.rows}x{params.cols} "
          f"{params.dataflow} array in {args.sim} (first run builds the model)...", flush=True)
    t0 = time.perf_counter()
    outputs, stats = run_rtl(cfg, fam, params, {"a": a, "b": b}, sim=args.sim, check=False)
    wall = time.perf_counter() - t0
    golden = fam.golden(params, {"a": a, "b": b})["c"]
    mismatches = int(np.count_nonzero(outputs["c"] != golden))
    rows = [
        ("design", f"{cfg.name}: {params.rows}x{params.cols} {params.a} x {params.b} -> "
                   f"{params.acc} ({params.overflow}), {params.dataflow}"),
        ("GEMM shape (M x K x N)", f"{m} x {k} x {n}"),
        ("cycles (RTL)", f"{stats['cycles']}"),
        ("cycles (analytic model)", f"{stats['expected_cycles']}"),
        ("PE utilization", f"{100 * stats['utilization']:.2f} %"),
        ("simulator speed", f"{stats['sim_cycles_per_second']:.0f} cycles/s ({args.sim})"),
        ("wall time (incl. build)", f"{wall:.1f} s"),
        ("result equals golden model", f"{'yes' if mismatches == 0 else 'NO'} "
                                       f"({mismatches} mismatches)"),
    ]
    width = max(len(r[0]) for r in rows)
    print()
    for key, val in rows:
        print(f"  {key:<{width}}  {val}")
    print()
    ok = mismatches == 0 and stats["cycles"] == stats["expected_cycles"]
    return 0 if ok else 1


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m bench.demo",
        description="The board demo on the simulated board (a board design), or a GEMM on a "
                    "mac_array unit's RTL (a unit config).")
    ap.add_argument("--config", default="configs/demo.yaml")
    ap.add_argument("--seq", type=int, default=64, help="sequence length (board demo)")
    ap.add_argument("--d-model", type=int, default=64, help="model width (board demo)")
    ap.add_argument("--heads", type=int, default=2, help="attention heads (board demo)")
    ap.add_argument("--ffn", type=int, default=256, help="FFN width (board demo)")
    ap.add_argument("--mode", default="2:4", help="N:M mode of the FFN down-projection")
    ap.add_argument("--batch", type=int, default=4,
                    help="inputs run through the program (board demo)")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--timeout", type=float, default=5.0,
                    help="seconds to wait for each reply (board demo)")
    ap.add_argument("--sim", default="verilator", choices=("verilator", "icarus"),
                    help="simulator (unit demo; the board demo runs Verilator)")
    ap.add_argument("--out", default="out/demo", help="output folder (unit demo)")
    ap.add_argument("--shape", default="100,200,120", help="M,K,N of the GEMM (unit demo)")
    return ap


def main(argv=None) -> int:
    args = parser().parse_args(argv)

    from amaranth.hdl import UnusedElaboratable

    from generators.config import BoardConfig, load_config
    from generators.errors import UserError
    from sim.runner import SimulationError

    warnings.simplefilter("ignore", UnusedElaboratable)
    try:
        for name in ("seq", "d_model", "heads", "ffn", "batch"):
            val = getattr(args, name)
            if not 1 <= val <= 4096:
                raise UserError(f"--{name.replace('_', '-')} {val}: out of range (allowed: "
                                "1..4096)")
        if args.d_model % args.heads:
            raise UserError(f"--d-model {args.d_model}: not a multiple of --heads "
                            f"{args.heads} (allowed: d_model = heads x head width)")
        cfg = load_config(args.config)
        if isinstance(cfg, BoardConfig):
            return board_demo(cfg, args)
        return unit_demo(cfg, args)
    except UserError as err:
        print(" ".join(str(err).split()), file=sys.stderr)
        return 2
    except SimulationError as err:
        print(f"simulation failed: {str(err).splitlines()[0]}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
