"""``tensorfab board info|run|bench --url URL``: the command line of the host driver.

Called from :mod:`tensorfab.cli`; every problem is a :class:`~generators.errors.UserError`
(exit status 2, one line), including a board that does not answer after its retries.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np

from generators.errors import ArrayError, UserError
from host.board import open_board
from host.files import DEFAULT_MAX_BYTES, check_out_path, load_inputs


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _max_bytes(text: str) -> int:
    # local: the same check as `tensorfab run --max-bytes` (tensorfab.cli imports this module)
    from .cli import max_bytes_arg

    return max_bytes_arg(text)


def _open(args):
    return open_board(args.url, timeout=args.timeout, retries=args.retries)


def cmd_info(args) -> int:
    with _open(args) as board:
        info = board.info()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"{info['name']} on {info['board']} (hash {info['hash']}, {info['clock_hz']} Hz, "
          f"protocol {info['protocol']}, max payload {info['max_payload']} bytes)")
    for i, u in enumerate(info["units"]):
        modes = f", modes {', '.join(u['modes'])}" if u.get("modes") else ""
        print(f"  unit {i}: {u['name']} ({u['unit']}, latency {u.get('latency')}{modes})")
        for name, s in u["streams"].items():
            print(f"    {name:10s} {s['dir']:3s} buffer {s['buffer']}: {s['depth']} beats of "
                  f"{s['beat_bytes']} bytes")
    return 0


def cmd_run(args) -> int:
    if args.graph is not None:
        return _run_graph(args)
    if args.unit is None:
        raise UserError("board run: no UNIT (allowed: a unit name of the design, or --graph "
                        "GRAPH.json)")
    out = check_out_path(args.out, args.inputs, suffix=".npz")
    arrays = load_inputs(args.inputs, max_bytes=args.max_bytes)
    with _open(args) as board:
        t0 = time.perf_counter()
        try:
            outputs = board.run(args.unit, arrays, mode=args.mode)
        except ArrayError as err:
            raise ArrayError(f"{args.inputs}: {err}") from None
        wall = time.perf_counter() - t0
        runs, cycles = board.last_run["runs"], board.last_run["cycles"]
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, **outputs)
    _say(f"wrote {out} ({args.url}, unit {args.unit}: {runs} run{'s' * (runs != 1)}, "
         f"{cycles} cycles, {wall:.3f} s)")
    return 0


def _run_graph(args) -> int:
    """``board run --graph``: a compiled graph (tensorfab compile) on the board, the inputs
    in calls of the graph's rows."""
    from host import graphfile
    from host.qonnx import run_graph

    if args.unit is not None:
        raise UserError(f"board run: UNIT {args.unit!r} with --graph (allowed: one of them)")
    out = check_out_path(args.out, args.inputs, args.graph, suffix=".npz")
    g, meta = graphfile.load(args.graph)
    arrays = load_inputs(args.inputs, max_bytes=args.max_bytes)
    with _open(args) as board:
        t0 = time.perf_counter()
        outputs, st = run_graph(board, g, meta, arrays, where=args.inputs)
        wall = time.perf_counter() - t0
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, **outputs)
    _say(f"wrote {out} ({args.url}, graph {args.graph}: {st['rows']} rows in {st['calls']} "
         f"program run{'s' * (st['calls'] != 1)}, {st['cycles']} cycles, {st['link_bytes']} "
         f"link bytes after loading, {wall:.3f} s)")
    return 0


def cmd_bench(args) -> int:
    if args.bytes < 1:
        raise UserError(f"--bytes {args.bytes}: allowed: at least 1")
    with _open(args) as board:
        spec = max((s for u in board.units for _, s in u.streams),
                   key=lambda s: s["depth"] * s["beat_bytes"])
        size = spec["depth"] * spec["beat_bytes"]
        rng = np.random.default_rng(0)
        block = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
        moved = 0
        s0 = dict(board.stats)
        t0 = time.perf_counter()
        while moved < args.bytes:
            board.write(spec["buffer"], 0, block)
            back = board.read(spec["buffer"], 0, spec["depth"])
            if back != block:
                raise UserError(f"{args.url}: buffer {spec['buffer']} read back differs from "
                                "what was written")
            moved += 2 * size
        wall = time.perf_counter() - t0
        st = {k: board.stats[k] - s0[k] for k in s0}
    payload = st["payload_out"] + st["payload_in"]
    wire = st["wire_out"] + st["wire_in"]
    print(f"{args.url}: moved {payload} payload bytes ({wire} link bytes, protocol overhead "
          f"{100 * (wire - payload) / wire:.2f} % of link bytes) in {wall:.3f} s: "
          f"{payload / wall / 1e6:.3f} MB/s; {st['requests']} requests, {st['retries']} "
          "retries")
    return 0


def add_parser(sub) -> None:
    """Add ``board`` with its actions to the ``tensorfab`` subcommands."""
    b = sub.add_parser("board", help="talk to a board, the simulated board or model://")
    acts = b.add_subparsers(dest="action", required=True, metavar="ACTION")

    def common(p):
        p.add_argument("--url", required=True, metavar="URL",
                       help="socket://HOST:PORT, serial://DEVICE[?baud=N], a device path, "
                            "or model://CONFIG.yaml")
        p.add_argument("--timeout", type=float, default=1.0, metavar="S",
                       help="seconds to wait for each reply (default 1)")
        p.add_argument("--retries", type=int, default=5, metavar="N",
                       help="re-sends of a request before giving up (default 5)")

    i = acts.add_parser("info", help="print the design description")
    common(i)
    i.add_argument("--json", action="store_true", help="print the description as JSON")
    i.set_defaults(func=cmd_info)
    r = acts.add_parser("run", help="run a unit of the design on arrays (as `tensorfab run`), "
                        "or a compiled graph (--graph)")
    common(r)
    r.add_argument("unit", metavar="UNIT", nargs="?", default=None,
                   help="unit name (or family) in the design (not with --graph)")
    r.add_argument("--graph", metavar="GRAPH.json", default=None,
                   help="run this graph (tensorfab compile) as a program instead of a unit; "
                        "float inputs are quantized by the model's input quantizer")
    r.add_argument("--inputs", required=True, metavar="IN.npz", help="input arrays (npz)")
    r.add_argument("--out", required=True, metavar="OUT.npz", help="output arrays (npz)")
    r.add_argument("--mode", metavar="N:M", default=None,
                   help="sparse_chain: the N:M pattern (default: the unit's first mode)")
    r.add_argument("--max-bytes", type=_max_bytes, default=DEFAULT_MAX_BYTES, metavar="N",
                   help="refuse input arrays that would take more than N bytes as int64 codes "
                        f"(default {DEFAULT_MAX_BYTES}; checked on the .npz headers first)")
    r.set_defaults(func=cmd_run)
    bb = acts.add_parser("bench", help="move bytes through a buffer and report throughput")
    common(bb)
    bb.add_argument("--bytes", type=int, default=1 << 20, metavar="N",
                    help="payload bytes to move, written and read back (default 1 MiB)")
    bb.set_defaults(func=cmd_bench)
