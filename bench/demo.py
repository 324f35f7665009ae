"""`make demo`: the board demo end to end on the simulated board.

For a board design (default ``configs/demo.yaml``): emit the board top's Verilog, build it with
the C++ TCP harness in Verilator (cached by design hash), serve it on a free local port (the
``tensorfab serve`` machinery) and drive it from the host through
``host.open_board("socket://127.0.0.1:P")`` with a quantized workload, one attention head and
its feed-forward step:

1. ``scores = Q @ K^T`` on the MAC array (int8 codes, int32 accumulators),
2. the scores requantized on the host to the softmax unit's input format, softmax on the board,
3. the probabilities requantized to int8, ``P @ V`` on the MAC array,
4. the attention output requantized to the GELU unit's format, GELU on the board,
5. a 2:4-sparse projection of the GELU output on the sparse chain.

Every result is compared with the unit family's golden model on the same inputs; a table gives
per step the bytes moved, the unit's cycles, the wall time and the mismatches (all must be 0;
any mismatch makes the exit status 1). Bad input is exit status 2 and one line.

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


def _units_needed(board) -> dict:
    from generators.errors import UserError

    have = {}
    for u in board.units:
        have.setdefault(u.kind, u)
    missing = [k for k in NEEDS if k not in have]
    if missing:
        names = ", ".join(f"{u.name} ({u.kind})" for u in board.units)
        raise UserError(f"{board.url}: the board demo needs a {', '.join(missing)} unit as "
                        f"well (the design has: {names}; allowed: a design like "
                        "configs/demo.yaml)")
    return have


def attention_workload(board, seq: int = 64, dim: int = 32, seed: int = 2026) -> list[dict]:
    """Run the demo workload on ``board`` (an open :class:`host.board.Board`); returns one row
    per step: ``step``, ``unit``, ``shape``, ``runs``, ``payload_bytes``, ``link_bytes``,
    ``cycles``, ``wall_s``, ``mismatches``, ``elements``."""
    from generators.errors import UserError
    from generators.numerics import Format, requantize
    from host import QTensor

    have = _units_needed(board)
    fam = {k: u.family() for k, u in have.items()}
    sm_p = fam["softmax"][1]
    if seq > sm_p.length:
        raise UserError(f"--seq {seq}: longer than the softmax unit's rows (allowed: "
                        f"1..{sm_p.length})")
    rng = np.random.default_rng(seed)
    scale = 1 / 32                                     # int8 codes of N(0, 1) activations
    q = QTensor.quantize(rng.normal(0, 1, (seq, dim)), "int8", scale=scale).codes
    k = QTensor.quantize(rng.normal(0, 1, (seq, dim)), "int8", scale=scale).codes
    v = QTensor.quantize(rng.normal(0, 1, (seq, dim)), "int8", scale=scale).codes
    rows: list[dict] = []

    def step(name, kind, call, golden, inputs, shape, mode=None):
        u = have[kind]
        f, p = fam[kind]
        before = dict(board.stats)
        t0 = time.perf_counter()
        out = call(u.name)
        wall = time.perf_counter() - t0
        want = f.golden(p, inputs, **({"mode": mode} if mode else {}))[golden]
        bad = int(np.count_nonzero(np.asarray(out) != want)) if out.shape == want.shape \
            else int(want.size)
        st = board.stats
        rows.append({
            "step": name, "unit": u.name, "shape": shape, "runs": board.last_run["runs"],
            "payload_bytes": st["payload_out"] + st["payload_in"]
            - before["payload_out"] - before["payload_in"],
            "link_bytes": st["wire_out"] + st["wire_in"] - before["wire_out"] - before["wire_in"],
            "cycles": int(board.last_run["cycles"]), "wall_s": wall, "mismatches": bad,
            "elements": int(want.size)})
        return out

    # 1. scores = Q @ K^T: int32 codes at scale 2**-10 (two int8 codes of scale 2**-5)
    kt = np.ascontiguousarray(k.T)
    scores = step("scores = Q @ K^T", "mac_array", lambda n: board.gemm(q, kt, unit=n), "c",
                  {"a": q, "b": kt}, f"{seq}x{dim} @ {dim}x{seq}")
    # 2. softmax of scores / sqrt(dim): fold 1/sqrt(32) ~ 2**-2.5 into a shift of 3 bits
    acc = fam["mac_array"][1].acc
    s_in = Format.parse(str(have["softmax"].desc["config"]["in"]))
    logits = requantize(scores, Format(width=acc.width, int_bits=acc.width - 13, signed=True),
                        s_in, "rnd_conv", "sat")
    probs = step("P = softmax(scores)", "softmax", lambda n: board.softmax(logits, unit=n), "y",
                 {"x": logits}, f"{seq} rows of {seq}")
    # 3. out = P @ V with P as int8 codes (7 fraction bits)
    s_out = Format.parse(str(have["softmax"].desc["config"]["out"]))
    p8 = requantize(probs, s_out, Format.parse("fixed<8,1>"), "rnd_conv", "sat")
    att = step("O = P @ V", "mac_array", lambda n: board.gemm(p8, v, unit=n), "c",
               {"a": p8, "b": v}, f"{seq}x{seq} @ {seq}x{dim}")
    # 4. GELU of the attention output (7 + 5 fraction bits) in the GELU unit's format
    g_in = Format.parse(str(have["gelu"].desc["config"]["in"]))
    o_q = requantize(att, Format(width=acc.width, int_bits=acc.width - 12, signed=True), g_in,
                     "rnd_conv", "sat")
    g = step("H = GELU(O)", "gelu", lambda n: board.gelu(o_q, unit=n), "y", {"x": o_q},
             f"{seq}x{dim}")
    # 5. a 2:4-sparse projection of H^T on the sparse chain
    sp_p = fam["sparse_chain"][1]
    mode = str(sp_p.modes[0])
    nm = sp_p.mode(mode)
    w = QTensor.quantize(rng.normal(0, 0.5, (dim, dim)), "int8", scale=scale).codes
    groups = w.reshape(dim, -1, nm.m)
    order = np.argsort(-np.abs(groups), axis=-1, kind="stable")   # keep the N largest of M
    mask = np.zeros_like(groups, dtype=bool)
    np.put_along_axis(mask, order[..., :nm.n], True, axis=-1)
    w = np.where(mask, groups, 0).reshape(dim, dim)
    ht = np.ascontiguousarray(g.T)
    step(f"Y = W({mode}) @ H^T", "sparse_chain",
         lambda n: board.sparse_matmul(w, ht, mode=mode, unit=n), "y", {"w": w, "x": ht},
         f"{dim}x{dim} @ {dim}x{seq}", mode=mode)
    return rows


def print_table(rows: list[dict], out=sys.stdout) -> None:
    head = ("step", "unit", "shape", "RUNs", "payload B", "link B", "cycles", "wall s",
            "mismatches")
    body = [(r["step"], r["unit"], r["shape"], str(r["runs"]), str(r["payload_bytes"]),
             str(r["link_bytes"]), str(r["cycles"]), f"{r['wall_s']:.3f}",
             str(r["mismatches"])) for r in rows]
    tot = ("total", "", "", str(sum(r["runs"] for r in rows)),
           str(sum(r["payload_bytes"] for r in rows)), str(sum(r["link_bytes"] for r in rows)),
           str(sum(r["cycles"] for r in rows)), f"{sum(r['wall_s'] for r in rows):.3f}",
           str(sum(r["mismatches"] for r in rows)))
    widths = [max(len(x[i]) for x in (head, *body, tot)) for i in range(len(head))]
    left = {0, 1, 2}

    def line(cells):
        return "  " + "  ".join(c.ljust(w) if i in left else c.rjust(w)
                                for i, (c, w) in enumerate(zip(cells, widths, strict=True)))

    print(line(head), file=out)
    print("  " + "  ".join("-" * w for w in widths), file=out)
    for b in body:
        print(line(b), file=out)
    print("  " + "  ".join("-" * w for w in widths), file=out)
    print(line(tot), file=out)


def check_design(cfg, seq: int, where: str) -> None:
    """Refuse (one line) a design the workload cannot run on, before anything is built."""
    from generators.errors import UserError

    kinds = [u.unit for u in cfg.units]
    missing = [k for k in NEEDS if k not in kinds]
    if missing:
        names = ", ".join(f"{u.name} ({u.unit})" for u in cfg.units)
        raise UserError(f"{where}: the board demo needs a {', '.join(missing)} unit as well "
                        f"(the design has: {names}; allowed: a design like configs/demo.yaml)")
    length = next(u.length for u in cfg.units if u.unit == "softmax")
    if seq > length:
        raise UserError(f"--seq {seq}: longer than the softmax unit's rows (allowed: "
                        f"1..{length})")


def board_demo(cfg, args) -> int:
    from host import open_board

    check_design(cfg, args.seq, args.config)

    def say(msg):
        print(msg, flush=True)

    t_all = time.perf_counter()
    with served_board(cfg, say=say) as (url, proc, times):
        say(f"{cfg.name}: board top Verilog ready in {times['emit']:.1f} s, simulated board "
            f"{'built' if times['build'] > 1 else 'from the cache'} in {times['build']:.1f} s, "
            f"serving {url} (up in {times['start']:.1f} s)")
        with open_board(url, timeout=args.timeout, progress=False) as board:
            info = board.info()
            say(f"INFO: design {info['name']} on {info['board']}, hash {info['hash']}, units "
                + ", ".join(f"{u['name']} ({u['unit']})" for u in info["units"]))
            say(f"workload: one attention head (seq {args.seq}, head dim {args.dim}) and a "
                "sparse projection, int8 codes from N(0, 1) data")
            rows = attention_workload(board, args.seq, args.dim, args.seed)
            stats = dict(board.stats)
        report = harness_report(proc)
    print()
    print_table(rows)
    print()
    if report:
        print(f"  simulated board: {report['cycles']} cycles in {report['busy_s']:.3f} s of "
              f"simulation = {report['cycles_per_s'] / 1e6:.2f} M cycles/s "
              f"(Verilator, {report['wall_s']:.2f} s connected)")
    print(f"  link: {stats['wire_out'] + stats['wire_in']} bytes, {stats['requests']} requests, "
          f"{stats['retries']} retries; total wall time {time.perf_counter() - t_all:.1f} s")
    bad = sum(r["mismatches"] for r in rows)
    verdict = "yes" if bad == 0 else f"NO ({bad} mismatches)"
    print(f"  every result equals its golden model: {verdict}")
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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m bench.demo",
        description="The board demo on the simulated board (a board design), or a GEMM on a "
                    "mac_array unit's RTL (a unit config).")
    ap.add_argument("--config", default="configs/demo.yaml")
    ap.add_argument("--seq", type=int, default=64, help="sequence length (board demo)")
    ap.add_argument("--dim", type=int, default=32, help="head dimension (board demo)")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--timeout", type=float, default=5.0,
                    help="seconds to wait for each reply (board demo)")
    ap.add_argument("--sim", default="verilator", choices=("verilator", "icarus"),
                    help="simulator (unit demo; the board demo runs Verilator)")
    ap.add_argument("--out", default="out/demo", help="output folder (unit demo)")
    ap.add_argument("--shape", default="100,200,120", help="M,K,N of the GEMM (unit demo)")
    args = ap.parse_args(argv)

    from amaranth.hdl import UnusedElaboratable

    from generators.config import BoardConfig, load_config
    from generators.errors import UserError
    from sim.runner import SimulationError

    warnings.simplefilter("ignore", UnusedElaboratable)
    try:
        for name in ("seq", "dim"):
            val = getattr(args, name)
            if not 1 <= val <= 4096:
                raise UserError(f"--{name} {val}: out of range (allowed: 1..4096)")
        if args.dim % 4:
            raise UserError(f"--dim {args.dim}: not a multiple of 4 (allowed: multiples of 4, "
                            "the sparse groups)")
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
