"""Config -> Verilog + manifest, and the cache of generated designs used by simulation."""

from __future__ import annotations

import hashlib
import json
import os
from functools import lru_cache
from pathlib import Path

from .units import family


@lru_cache(maxsize=1)
def generator_hash() -> str:
    """Hash of the generator sources, so cached designs follow code changes."""
    h = hashlib.sha256()
    root = Path(__file__).parent
    for path in sorted(root.rglob("*.py")):
        h.update(path.relative_to(root).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def config_dict(cfg) -> dict:
    from .config import config_to_dict

    return config_to_dict(cfg)


def render(cfg) -> tuple[str, dict]:
    """Verilog text and manifest of a unit config."""
    from .emit import render as _render

    fam = family(cfg.unit)
    params = fam.params(cfg)
    comp = fam.component(params)
    return _render(comp, cfg.name, cfg.unit, config_dict(cfg), fam.manifest_extra(params))


def generate(cfg, out_dir: str | Path, port_style: str | None = None) -> tuple[Path, Path]:
    """Write ``out_dir/<name>.v`` and ``out_dir/<name>.json``.

    With a ``port_style`` (``tensorfab generate`` passes one) the IP files are written beside
    them too: ``<name>.core`` and, for ``"axis"``, ``<name>_axis.v`` (see
    :mod:`generators.ipcore`). Without one nothing else is written, so ``rtl/`` and the other
    callers keep exactly their two files.
    """
    if port_style is not None:
        from .ipcore import check_port_style

        check_port_style(port_style)  # before any file is written
    text, manifest = render(cfg)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    vpath, jpath = out_dir / f"{cfg.name}.v", out_dir / f"{cfg.name}.json"
    vpath.write_text(text)
    jpath.write_text(json.dumps(manifest, indent=2) + "\n")
    if port_style is not None:
        from .ipcore import write_ipcore

        write_ipcore(manifest, out_dir, port_style)
    return vpath, jpath


def cached_design(cfg) -> tuple[Path, dict]:
    """Generate a config into the design cache (once per config and generator version)."""
    fam = family(cfg.unit)
    return cached_render(fam, fam.params(cfg), cfg.name, cfg.unit, config_dict(cfg))


def cached_render(fam, params, name: str, unit: str, config: dict) -> tuple[Path, dict]:
    """Verilog file and manifest of ``params``, emitted once per parameters and generator
    version into ``$TENSORFAB_CACHE/designs``."""
    from sim.runner import cache_root

    from .emit import render as _render

    key = hashlib.sha256(
        (repr(params) + name + generator_hash()).encode()).hexdigest()[:16]
    d = cache_root() / "designs" / f"{name}-{key}"
    vpath, jpath = d / f"{name}.v", d / f"{name}.json"
    if not (vpath.exists() and jpath.exists()):
        text, manifest = _render(fam.component(params), name, unit, config,
                                 fam.manifest_extra(params))
        tmp = d.with_name(d.name + f".tmp{os.getpid()}")
        tmp.mkdir(parents=True, exist_ok=True)
        (tmp / vpath.name).write_text(text)
        (tmp / jpath.name).write_text(json.dumps(manifest, indent=2) + "\n")
        try:
            tmp.rename(d)
        except OSError:  # another process won the race; use its copy
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    return vpath, json.loads(jpath.read_text())
