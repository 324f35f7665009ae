"""Regenerate the reference Verilog in rtl/ from every config in configs/ (`make rtl`)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def reference_configs() -> list[Path]:
    """The unit configs in configs/ (board designs, with a ``board`` key, are not units)."""
    import yaml

    return [p for p in sorted((ROOT / "configs").glob("*.yaml"))
            if "unit" in (yaml.safe_load(p.read_text()) or {})]


def main() -> int:
    from generators.config import load_config
    from generators.generate import generate

    for path in reference_configs():
        cfg = load_config(path)
        vpath, jpath = generate(cfg, ROOT / "rtl")
        print(f"{path.relative_to(ROOT)} -> {vpath.relative_to(ROOT)}, {jpath.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
