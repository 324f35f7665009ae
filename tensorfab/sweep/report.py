"""The sweep report, rebuilt from the store alone: ``DIR/report.md``, ``DIR/pareto.json`` and
``DIR/front.png``.

The Pareto front is taken over the objectives of the sweep file's ``pareto`` key (default:
fewer LUTs, DSPs and cycles, higher Fmax) that the ``ok`` rows measured, per target (points
on different parts do not compete). A point is on the front when no other row of its target
is at least as good in every objective and better in one. Rows whose config is one of the
shipped ``configs/*.yaml`` (apart from its name) are marked with that file's name. A row whose
design does not fit its part (the synthesis report's capacity check) is never on the front.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from .engine import RESULTS, Store

ROOT = Path(__file__).resolve().parents[2]
COLUMNS = ("status", "luts", "ffs", "dsps", "brams", "fmax_mhz", "cycles", "macs_per_s")


def _shipped_configs() -> dict[str, str]:
    """Config (as JSON, without its name) -> the configs/ file name."""
    from generators.config import config_to_dict, load_config
    from generators.errors import UserError

    out = {}
    for path in sorted((ROOT / "configs").glob("*.yaml")):
        try:
            cfg = load_config(path)
        except UserError:
            continue
        d = config_to_dict(cfg)
        d.pop("name", None)
        out[json.dumps(d, sort_keys=True)] = path.name
    return out


def _objectives(spec: dict, rows: list[dict]) -> list[tuple[str, int]]:
    """(metric, sign): sign +1 to minimize, -1 to maximize; only metrics some row has."""
    pareto = spec.get("pareto") or {}
    mins = pareto.get("minimize", ["luts", "dsps", "cycles"])
    maxs = pareto.get("maximize", ["fmax_mhz"])
    have = [(m, 1) for m in mins] + [(m, -1) for m in maxs]
    return [(m, s) for m, s in have if any(r.get(m) is not None for r in rows)]


def pareto_front(rows: list[dict], objectives: list[tuple[str, int]]) -> list[dict]:
    """The non-dominated rows (each with every objective measured)."""
    full = [r for r in rows if all(r.get(m) is not None for m, _ in objectives)]

    def vec(r):
        return [s * float(r[m]) for m, s in objectives]

    front = []
    for r in full:
        v = vec(r)
        dominated = any(all(a <= b for a, b in zip(vec(o), v, strict=True))
                        and any(a < b for a, b in zip(vec(o), v, strict=True))
                        for o in full if o is not r)
        if not dominated:
            front.append(r)
    return front


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e6 else f"{v:.3e}"
    return str(v)


def _label(point: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in point.items())


def _fits(row: dict):
    """True/False from the row's capacity check, None without one."""
    fit = row.get("fit")
    return fit.get("fits") if isinstance(fit, dict) else None


def table(rows: list[dict], marks: dict[str, str], front_keys: set) -> list[str]:
    head = ["point", "target", "seed", *COLUMNS, "fits", "pareto", "config", "error"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        err = (r.get("error") or "").replace("|", "/")
        cells = [_label(r["point"]), r["target"], _fmt(r.get("seed")),
                 *(_fmt(r.get(c)) for c in COLUMNS),
                 {True: "yes", False: "NO: " + "; ".join((r.get("fit") or {}).get("problems", [])),
                  None: "-"}[_fits(r)],
                 "yes" if r["key"] in front_keys else "",
                 marks.get(r["key"], ""), err[:140]]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def build(out: Path, say=print) -> Path:
    """Write the report of ``out``'s store; print its table; the report's path."""
    out = Path(out)
    store = Store(out)
    if not store.path.exists():
        from generators.errors import UserError

        raise UserError(f"{out}: no {RESULTS} here (allowed: the --out folder of a sweep)")
    spec_path = out / "sweep.yaml"
    spec = yaml.safe_load(spec_path.read_text()) if spec_path.exists() else {}
    rows = list(store.rows.values())
    ok = [r for r in rows if r.get("status") == "ok"]
    objectives = _objectives(spec or {}, ok)
    shipped = _shipped_configs()
    marks = {}
    for r in ok:
        cfg = dict(r.get("config") or {})
        cfg.pop("name", None)
        name = shipped.get(json.dumps(cfg, sort_keys=True))
        if name:
            marks[r["key"]] = name
    front = []
    for target in sorted({r["target"] for r in ok}):
        # a design that does not fit the part is no choice for it
        mine = [r for r in ok if r["target"] == target and _fits(r) is not False]
        # the objectives this target measured (no Fmax where nextpnr does not place)
        front += pareto_front(mine, [(m, sg) for m, sg in objectives
                                     if any(r.get(m) is not None for r in mine)])
    front_keys = {r["key"] for r in front}
    counts = {s: sum(r.get("status") == s for r in rows) for s in ("ok", "failed", "timeout")}
    obj_text = ", ".join(f"{'min' if s > 0 else 'max'} {m}" for m, s in objectives) or "none"
    lines = [f"# Sweep report: {out.name}", "",
             f"{len(rows)} jobs: {counts['ok']} ok, {counts['failed']} failed, "
             f"{counts['timeout']} timed out. Pareto objectives (per target): {obj_text}. "
             f"Rebuild with `tensorfab sweep --report {out}`.", ""]
    if (out / "sweep.yaml").exists():
        lines += ["Sweep file:", "", "```yaml", spec_path.read_text().rstrip(), "```", ""]
    lines += ["## Pareto front", ""] + table(front, marks, front_keys) + [""]
    png = _plot(out, ok, front_keys, marks, objectives)
    if png:
        lines += [f"![Pareto front]({png.name})", ""]
    lines += ["## All points", ""] + table(rows, marks, front_keys) + [""]
    tools = next((r.get("tools") for r in rows if r.get("tools")), None)
    if tools:
        lines += ["Tools: " + ", ".join(f"{k} {v}" for k, v in tools.items()), ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    (out / "pareto.json").write_text(json.dumps(
        {"objectives": [{"metric": m, "goal": "minimize" if s > 0 else "maximize"}
                        for m, s in objectives],
         "front": [{k: r.get(k) for k in ("key", "point", "target", "seed", *COLUMNS)}
                   for r in front]}, indent=2) + "\n")
    say("\n".join(table(rows, marks, front_keys)))
    return path


def _plot(out: Path, ok: list[dict], front: set, marks: dict, objectives) -> Path | None:
    """The first objective against Fmax (else the next objective measured): every ok row
    grey, the front red, a marker per target, configs/ ones circled and named."""
    if len(objectives) < 2 or not ok:
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    names = [m for m, _ in objectives]
    mx = names[0]
    # Fmax first (where it was measured), then the next objective: one panel each
    ys = [m for m in (["fmax_mhz"] if "fmax_mhz" in names[1:] else [])
          + [m for m in names[1:] if m != "fmax_mhz"]
          if any(r.get(mx) is not None and r.get(m) is not None for r in ok)][:2]
    if not ys:
        return None
    fig, axes = plt.subplots(1, len(ys), figsize=(6.5 * len(ys), 5), squeeze=False)
    markers = "osD^v<>"
    targets = sorted({r["target"] for r in ok})
    for ax, my in zip(axes[0], ys, strict=True):
        pts = [r for r in ok if r.get(mx) is not None and r.get(my) is not None]
        for i, target in enumerate(targets):
            mine = [r for r in pts if r["target"] == target]
            if not mine:
                continue
            rest = [r for r in mine if r["key"] not in front]
            on = [r for r in mine if r["key"] in front]
            mk = markers[i % len(markers)]
            ax.scatter([r[mx] for r in rest], [r[my] for r in rest], c="0.6", marker=mk,
                       label=f"{target}")
            ax.scatter([r[mx] for r in on], [r[my] for r in on], c="tab:red", marker=mk,
                       label=f"{target}: Pareto front")
        for r in pts:
            if r["key"] in marks:
                ax.annotate(marks[r["key"]], (r[mx], r[my]), textcoords="offset points",
                            xytext=(4, 4), fontsize=8)
                ax.scatter([r[mx]], [r[my]], facecolors="none", edgecolors="k", s=120)
        ax.set_xlabel(mx)
        ax.set_ylabel(my)
        ax.set_title(f"{mx} vs {my}")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle(f"{out.name}: the front over all objectives, per target (red)")
    path = out / "front.png"
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
