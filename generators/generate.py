"""Config -> Verilog + manifest.

The cache of generated designs that simulation reads is :func:`sim.unit.cached_render`
(generators import nothing from sim).
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path

from .config import config_to_dict
from .emit import render as _render
from .ipcore import check_port_style, write_ipcore
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
    return config_to_dict(cfg)


def render(cfg) -> tuple[str, dict]:
    """Verilog text and manifest of a unit config."""
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
        check_port_style(port_style)  # before any file is written
    text, manifest = render(cfg)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    vpath, jpath = out_dir / f"{cfg.name}.v", out_dir / f"{cfg.name}.json"
    vpath.write_text(text)
    jpath.write_text(json.dumps(manifest, indent=2) + "\n")
    if port_style is not None:
        write_ipcore(manifest, out_dir, port_style)
    return vpath, jpath
