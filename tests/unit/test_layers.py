"""The package's layers: lower layers import nothing from higher ones, and no module imports itself back.

Layers, lowest first (README "Layout"): ``cli`` and ``core`` (numerics), ``settings``, ``io`` (input
readers), ``store`` (the patch-file format), ``engine`` (the extraction), the modes ``luna16`` and
``ldct`` (which never import each other), ``readers`` (training side), ``report``.  Every import
is counted, those inside functions too: a deferred import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from paths import REPO

PACKAGE = REPO / "workflow" / "ctpatch"
LAYERS = {
    "cli": 0,
    "core": 0,
    "settings": 1,
    "io": 2,
    "store": 3,
    "engine": 4,
    "luna16": 5,
    "ldct": 5,
    "readers": 6,
    "report": 7,
    "__main__": 8,
}


def modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The package modules ``name`` imports (``from a import b`` counts ``a.b`` when that is a module)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}
    return {m for m in found if m in known and m != name}


def layer(module: str) -> tuple[str, int]:
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else "__init__"
    return top, LAYERS.get(top, -1)


GRAPH = {name: imports(name, path, set(modules())) for name, path in modules().items()}


def test_every_module_has_a_layer():
    loose = [m for m in GRAPH if m != "ctpatch" and layer(m)[1] < 0]
    assert not loose, f"modules outside the layer folders (add them to a layer): {loose}"


@pytest.mark.parametrize("name", sorted(GRAPH))
def test_no_upward_import(name):
    top, level = layer(name)
    if name == "ctpatch":
        return
    for dep in sorted(GRAPH[name]):
        if dep == "ctpatch":
            continue
        dtop, dlevel = layer(dep)
        assert dlevel <= level, f"{name} (layer {top}) imports {dep} from the higher layer {dtop}"
        if dlevel == level and dtop != top:
            pytest.fail(f"{name} imports {dep}: the modes {top} and {dtop} must not import each other")


def test_no_import_cycle():
    """Depth-first search for a cycle in the module graph; the cycle is named when found."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for d in sorted(GRAPH.get(m, ())):
            if state.get(d) == 1:
                cycle = stack[stack.index(d) :] + [d]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if d not in state:
                visit(d)
        stack.pop()
        state[m] = 2

    for m in sorted(GRAPH):
        if m not in state:
            visit(m)


def test_the_check_finds_a_cycle_and_an_upward_import(tmp_path):
    """The walk itself: a planted cycle and a planted upward import are found."""
    pkg = tmp_path / "ctpatch"
    (pkg / "core").mkdir(parents=True)
    (pkg / "report").mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "core" / "__init__.py").write_text("")
    (pkg / "report" / "__init__.py").write_text("")
    (pkg / "core" / "a.py").write_text("def f():\n    from ctpatch.report import b\n")
    (pkg / "report" / "b.py").write_text("from ctpatch.core.a import f\n")
    known = {"ctpatch.core.a", "ctpatch.report.b", "ctpatch.report", "ctpatch.core"}
    a = imports("ctpatch.core.a", pkg / "core" / "a.py", known)
    b = imports("ctpatch.report.b", pkg / "report" / "b.py", known)
    assert a == {"ctpatch.report.b", "ctpatch.report"} and b == {"ctpatch.core.a"}
    assert layer("ctpatch.report.b")[1] > layer("ctpatch.core.a")[1]
