"""Sweep files: YAML -> a validated :class:`SweepSpec`, its points and its jobs.

A sweep file is read like a config file (PyYAML's safe loader, a key given twice is an
error) and validated by a pydantic model, its errors worded by the config validator's own
:func:`generators.config_errors.first_error`: ``FILE: key: problem (allowed: ...)``. Every
point of a grid or random sweep is then validated as a config (the base with the point's
values) before any job starts, and a refused one is reported with the point named.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import random
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from generators.config import config_to_dict, parse_config, read_yaml_documents
from generators.config_errors import first_error
from generators.devices import ALIASES, PARTS, part
from generators.errors import ConfigError, UserError
from generators.schema import problem, show

__all__ = ["SweepSpec", "Job", "METRICS", "load_sweep", "points", "jobs_for", "point_config",
           "Constraint"]

MEASURES = ("synth", "pnr", "cycles", "sim")
#: Figures a row can have, for objectives, constraints and the Pareto front.
METRICS = ("luts", "ffs", "dsps", "brams", "fmax_mhz", "cycles", "latency_us", "macs_per_s",
           "sim_cycles")
#: What a sweep measures on a board design (the whole design's Yosys counts).
BOARD_MEASURES = ("synth",)
#: Targets that are a family without a part (no capacity check).
FAMILY_TARGETS = ("xilinx", "generic")
_CONSTRAINT = re.compile(r"^\s*([a-z_]+)\s*(<=|>=|<|>)\s*([-+0-9.eE]+)\s*$")


def _list(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    return value


def _target(name: Any) -> str:
    if not isinstance(name, str):
        raise problem(f"expected a part name, got {show(name)}")
    if name in FAMILY_TARGETS:
        return name
    try:
        return part(name).name if name not in ALIASES else name
    except UserError:
        raise problem(f"{show(name)} is not a target (allowed: {', '.join(PARTS)}, "
                      f"{', '.join(ALIASES)}, {', '.join(FAMILY_TARGETS)})") from None


def _constraint(text: Any) -> str:
    if not isinstance(text, str) or not _CONSTRAINT.match(text):
        raise problem(f"{show(text)} is not a constraint (allowed: 'METRIC <= NUMBER' or "
                      "'>=', '<', '>', e.g. 'dsps <= 156')")
    metric = _CONSTRAINT.match(text).group(1)
    if metric not in METRICS:
        raise problem(f"{show(metric)} is not a metric (allowed: {', '.join(METRICS)})")
    try:
        float(_CONSTRAINT.match(text).group(3))
    except ValueError:
        raise problem(f"{show(text)}: the bound is not a number") from None
    return text


def _axes(value: Any) -> Any:
    if not isinstance(value, dict):
        raise problem(f"expected a mapping of config keys to lists of values, got {show(value)}")
    if not value:
        raise problem("empty grid: no axes (allowed: at least one config key with a list of "
                      "values, e.g. rows: [4, 8])")
    for key, vals in value.items():
        keys = key.split(",") if isinstance(key, str) else [key]
        for k in keys:
            if (not isinstance(k, str) or not k.strip()
                    or k.strip().split(".")[-1] in ("unit", "name")):
                raise problem(f"axis {show(key)} is not a config key to vary (allowed: config "
                              "keys such as rows, dotted ones such as requant.out or, in a "
                              "board design, units.0.rows, or keys varied together such as "
                              "'rows,cols'; not unit or name)")
        if not isinstance(vals, list):
            raise problem(f"{key}: expected a list of values, got {show(vals)}")
        if not vals:
            raise problem(f"{key}: empty list, an empty grid (allowed: at least one value)")
        for v in vals:
            if len(keys) > 1:
                if not isinstance(v, list) or len(v) != len(keys) or any(
                        isinstance(x, (dict, list)) for x in v):
                    raise problem(f"{key}: {show(v)} (allowed: lists of {len(keys)} plain "
                                  f"values, one per key, e.g. {[1] * len(keys)})")
            elif isinstance(v, (dict, list)):
                raise problem(f"{key}: {show(v)} (allowed: plain values: numbers, strings, "
                              "true/false)")
    return value


Metric = Literal[METRICS]  # type: ignore[valid-type]


class Objective(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)
    maximize: Metric | None = None
    minimize: Metric | None = None


class Pareto(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)
    minimize: list[Metric] = Field(default_factory=lambda: ["luts", "dsps", "cycles"])
    maximize: list[Metric] = Field(default_factory=lambda: ["fmax_mhz"])


class SweepSpec(BaseModel):
    """The keys of a sweep file (docs/sweep.md)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    base: str = Field(description="The unit config or board design every point starts "
                      "from.")
    mode: Literal["grid", "random", "tune"] = "grid"
    axes: Annotated[dict[str, list], BeforeValidator(_axes)]
    targets: Annotated[list[Annotated[str, BeforeValidator(_target)]],
                       BeforeValidator(_list)] = Field(min_length=1)
    seeds: list[Annotated[int, Field(ge=0, le=2**31 - 1)]] = Field([1], min_length=1)
    measure: list[Literal[MEASURES]] = Field(min_length=1)  # type: ignore[valid-type]
    workload: dict[str, int | list[int]] | None = None
    samples: int | None = Field(None, ge=1, le=100_000)
    sample_seed: int = Field(0, ge=0)
    objective: Objective | None = None
    constraints: list[Annotated[str, BeforeValidator(_constraint)]] = Field(default_factory=list)
    timeout: float = Field(3600.0, ge=1, le=7 * 86400)
    memory_mb: int = Field(8192, ge=64, le=1 << 22)
    freq_mhz: float | None = Field(None, gt=0, le=1000)
    clock_mhz: float | None = Field(None, gt=0, le=1000)
    pareto: Pareto = Field(default_factory=Pareto)


class Constraint:
    def __init__(self, text: str):
        m = _CONSTRAINT.match(text)
        self.metric, self.op, self.bound = m.group(1), m.group(2), float(m.group(3))
        self.text = text

    def violation(self, value: float | None) -> float:
        """<= 0 when met (Optuna's convention); +inf for a missing figure."""
        if value is None:
            return math.inf
        if self.op in ("<=", "<"):
            return value - self.bound + (1e-9 if self.op == "<" else 0.0)
        return self.bound - value + (1e-9 if self.op == ">" else 0.0)


def _read_yaml(path: Path) -> Any:
    source = str(path)
    docs = read_yaml_documents(path, "sweep")
    if len(docs) != 1 or not isinstance(docs[0], dict):
        raise ConfigError(f"{source}: expected one YAML mapping of sweep keys (allowed: base, "
                          "mode, axes, targets, seeds, measure, workload, ...)")
    return docs[0]


def has_pnr(target: str) -> bool:
    """Whether nextpnr places on ``target`` (a sweep's pnr on other targets is synthesis
    alone, its row noting why there is no Fmax)."""
    return target not in FAMILY_TARGETS and part(target).nextpnr is not None


class Sweep:
    """A validated sweep: the spec, the base config as a dict, and where it came from."""

    def __init__(self, spec: SweepSpec, base: dict, source: str, base_path: Path,
                 board: bool = False):
        self.spec, self.base, self.source, self.base_path = spec, base, source, base_path
        self.board = board  # the base is a board design (measured by synth alone)
        self.constraints = [Constraint(c) for c in spec.constraints]

    @property
    def pnr(self) -> bool:
        return "pnr" in self.spec.measure


def load_sweep(path: str | Path) -> Sweep:
    """Read and validate a sweep file (not its points: :func:`check_points`)."""
    path = Path(path)
    source = str(path)
    data = _read_yaml(path)
    try:
        spec = SweepSpec.model_validate(data)
    except ValidationError as err:
        raise ConfigError(f"{source}: {first_error(err, SweepSpec)}") from None
    s = spec

    def bad(key: str, text: str) -> ConfigError:
        return ConfigError(f"{source}: {key}: {text}")

    if s.mode in ("random", "tune") and s.samples is None:
        raise bad("samples", f"missing required key for mode {s.mode} (allowed: a number of "
                  "points, e.g. samples: 16)")
    if s.mode == "grid" and s.samples is not None:
        raise bad("samples", "only with mode random or tune (allowed: no samples key in a "
                  "grid)")
    if s.mode == "tune":
        if s.objective is None or (s.objective.maximize is None) == (s.objective.minimize
                                                                      is None):
            raise bad("objective", "mode tune needs one goal (allowed: {maximize: METRIC} "
                      f"or {{minimize: METRIC}}, METRIC one of {', '.join(METRICS)})")
        if len(s.targets) != 1:
            raise bad("targets", "mode tune searches on one target (allowed: a list of one)")
    elif s.objective is not None:
        raise bad("objective", "only with mode tune (allowed: mode: tune)")
    if "pnr" in s.measure and not any(has_pnr(t) for t in s.targets):
        pnr = [p.name for p in PARTS.values() if p.nextpnr]
        raise bad("targets", f"measure pnr needs a target with open place and route (allowed: "
                  f"{', '.join(pnr)}, ecp5, ice40)")
    if ("cycles" in s.measure or "sim" in s.measure) and not s.workload:
        raise bad("workload", "measure cycles or sim needs a workload (allowed: e.g. "
                  "workload: {m: 64, k: 64, n: 64}, or array shapes such as {a: [64, 64]})")
    base_path = Path(s.base)
    if not base_path.is_absolute() and not base_path.exists():
        near = path.parent / base_path
        base_path = near if near.exists() else base_path
    from generators.config import BoardConfig, load_config

    try:
        cfg = load_config(base_path)
    except ConfigError as err:
        raise bad("base", str(err)) from None
    board = isinstance(cfg, BoardConfig)
    if board:
        other = [m for m in s.measure if m not in BOARD_MEASURES]
        if other:
            raise bad("measure", f"{', '.join(other)} on a board design ({s.base}; allowed: "
                      f"{', '.join(BOARD_MEASURES)}; `tensorfab bitstream` places and routes "
                      "a board design, a unit base measures pnr, cycles and sim)")
        if s.workload:
            raise bad("workload", f"a board design ({s.base}) is measured by synth alone "
                      "(allowed: no workload key)")
    sweep = Sweep(s, config_to_dict(cfg), source, base_path, board)
    for key in (k.strip() for axis in s.axes for k in axis.split(",")):
        set_key(sweep.base, key, None, f"{source}: axes")  # a key that cannot be addressed
    return sweep


# -- points ----------------------------------------------------------------------------------


def set_key(d: dict, dotted: str, value: Any, where: str = "axes") -> dict:
    """A copy of config dict ``d`` with ``dotted`` (``rows``, ``requant.out``; in a board
    design ``tensor_memory.bytes`` or ``units.0.rows``, a number indexing a list) set.
    A number that indexes no element of the list is a ConfigError naming ``where``."""
    out = json.loads(json.dumps(d))
    parts = dotted.split(".")
    node = out
    for i, p in enumerate(parts):
        if isinstance(node, list):
            if not (p.isdigit() and int(p) < len(node)):
                path = ".".join(parts[:i])
                raise ConfigError(f"{where}: {dotted}: {p} is not an element of {path} "
                                  f"(allowed: 0..{len(node) - 1})")
            p = int(p)
        elif i < len(parts) - 1 and not isinstance(node.get(p), (dict, list)):
            node[p] = {}
        if i == len(parts) - 1:
            node[p] = value
        else:
            node = node[p]
    return out


def point_config(sweep: Sweep, point: dict):
    """The validated config of a point (ConfigError names the point)."""
    d = sweep.base
    for k, v in point.items():
        d = set_key(d, k, v)
    label = point_label(point)
    try:
        return parse_config(d, f"{sweep.source}: point {label}")
    except ConfigError as err:
        raise ConfigError(str(err)) from None


def point_label(point: dict) -> str:
    return ", ".join(f"{k}={show(v).strip(chr(39))}" for k, v in point.items())


def expand(axis_values: dict) -> dict:
    """A point as config keys: an axis of keys varied together (``rows,cols``) gives each
    key its value."""
    out = {}
    for key, v in axis_values.items():
        if "," in key:
            out.update(zip((k.strip() for k in key.split(",")), v, strict=True))
        else:
            out[key] = v
    return out


def grid(sweep: Sweep) -> list[dict]:
    axes = sweep.spec.axes
    return [expand(dict(zip(axes, combo, strict=True)))
            for combo in itertools.product(*axes.values())]


def points(sweep: Sweep) -> list[dict]:
    """The points of a grid or random sweep, in a fixed order."""
    g = grid(sweep)
    if sweep.spec.mode == "random":
        rng = random.Random(sweep.spec.sample_seed)
        return rng.sample(g, min(sweep.spec.samples, len(g)))
    return g


# -- jobs ------------------------------------------------------------------------------------


class Job(dict):
    """One job: a point on a target (and a nextpnr seed), as the plain dict the worker gets."""


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def tool_versions() -> dict:
    from generators.generate import generator_hash
    from generators.synth import versions

    return {**versions(), "generators": generator_hash()}


def jobs_for(sweep: Sweep, point: dict, cfg, tools: dict) -> list[Job]:
    """The jobs of one point: one per target (and per seed with measure pnr)."""
    s = sweep.spec
    config = config_to_dict(cfg)
    out = []
    for target in s.targets:
        for seed in (s.seeds if sweep.pnr and has_pnr(target) else [None]):
            measure = [m for m in s.measure if m != "pnr" or has_pnr(target)]
            what = {"config": config, "target": target, "seed": seed,
                    "measure": sorted(measure), "workload": s.workload,
                    "freq_mhz": s.freq_mhz, "tools": tools}
            out.append(Job(key=_hash(what), point=point, config=config, target=target,
                           seed=seed, measure=measure, workload=s.workload,
                           freq_mhz=s.freq_mhz, clock_mhz=s.clock_mhz, timeout=s.timeout,
                           memory_mb=s.memory_mb, config_hash=_hash(config), tools=tools,
                           wanted=list(s.measure)))
    return out
