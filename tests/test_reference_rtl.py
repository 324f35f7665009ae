"""The reference Verilog in rtl/ is exactly what the generators emit from configs/ today."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.refresh_rtl import reference_configs
from generators.config import load_config
from generators.generate import render

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("path", reference_configs(), ids=lambda p: p.stem)
def test_reference_rtl_is_current(path):
    cfg = load_config(path)
    text, manifest = render(cfg)
    vfile, jfile = ROOT / "rtl" / f"{cfg.name}.v", ROOT / "rtl" / f"{cfg.name}.json"
    assert vfile.exists() and jfile.exists(), f"{vfile} missing: run `make rtl`"
    assert vfile.read_text() == text, f"{vfile} is stale: run `make rtl`"
    assert json.loads(jfile.read_text()) == manifest, f"{jfile} is stale: run `make rtl`"
