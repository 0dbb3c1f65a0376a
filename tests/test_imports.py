"""The dependency rules between the project's packages, read from the source (every import, also the
ones inside functions and under TYPE_CHECKING):

- ``mnist_serving`` is the contract package: it imports no other package of the project, and every
  package may import it;
- nothing outside ``gateway/`` (its tests aside) imports ``gateway.app``;
- nothing imports another package's underscore names;
- ``load_tests`` is layered: the generator (it ships in the Locust image) imports only the shared
  contracts; measuring a point imports no run or report; reports import no run;
- there is no import cycle anywhere.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO

PACKAGES = ("mnist_serving", "gateway", "serving", "training", "load_tests", "benchmarks", "containers", "tests")
# load_tests' layers: what each may import from load_tests (besides itself).
LAYERS = {
    "load_tests.generator": ("load_tests.contracts", "load_tests.targets", "load_tests.stats"),
    "load_tests.servers": (),
    "load_tests.measure": ("load_tests.contracts", "load_tests.targets", "load_tests.stats", "load_tests.results"),
    "load_tests.reports": (
        "load_tests.contracts",
        "load_tests.targets",
        "load_tests.stats",
        "load_tests.measure",
        "load_tests.results",
        "load_tests.estimate",
    ),
    "load_tests.contracts": (),
    "load_tests.stats": (),
    "load_tests.targets": (),
    "load_tests.results": (),  # the typed results.json: data only
    "load_tests.estimate": (),  # the estimator: pure functions of points
    "load_tests.blocks": ("load_tests.estimate", "load_tests.results", "load_tests.stats", "load_tests.targets"),
}


def _module(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _sources() -> dict[str, Path]:
    return {
        _module(p): p
        for pkg in PACKAGES
        for p in sorted((REPO / pkg).rglob("*.py"))
        if ".venv" not in p.parts and "schemas" not in p.parts
    }


SOURCES = _sources()


def _imports(module: str, path: Path) -> Iterator[tuple[str, str | None, int]]:
    """(imported module, imported name or None, line) for every import in the file."""
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                yield (sub, None, node.lineno) if sub in SOURCES else (base, alias.name, node.lineno)


def _project(name: str) -> str | None:
    """The project module an import refers to (the longest known prefix), or None for a library."""
    parts = name.split(".")
    for n in range(len(parts), 0, -1):
        candidate = ".".join(parts[:n])
        if candidate in SOURCES:
            return candidate
    return None


EDGES = {
    (module, target, name, line)
    for module, path in SOURCES.items()
    for imported, name, line in _imports(module, path)
    if (target := _project(imported)) is not None
}


def _top(module: str) -> str:
    return module.split(".")[0]


def test_the_contract_package_imports_no_other_package() -> None:
    bad = [(m, t, line) for m, t, _, line in EDGES if _top(m) == "mnist_serving" and _top(t) != "mnist_serving"]
    assert bad == []


def test_only_the_gateway_imports_its_app() -> None:
    bad = [
        (m, t, line)
        for m, t, _, line in EDGES
        if t.startswith("gateway.app") and not m.startswith(("gateway", "tests.gateway"))
    ]
    assert bad == []


def test_no_package_imports_another_ones_private_names() -> None:
    bad = [
        (m, t, name, line)
        for m, t, name, line in EDGES
        if name and name.startswith("_") and not name.startswith("__") and _top(m) != _top(t)
        and not (m.startswith("tests.") and m.split(".")[1] == _top(t))  # a package's own tests
    ]  # fmt: skip
    assert bad == []


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_load_tests_layers(layer: str) -> None:
    allowed = (layer, *LAYERS[layer])
    bad = [
        (m, t, line)
        for m, t, _, line in EDGES
        if (m == layer or m.startswith(layer + "."))
        and t.startswith("load_tests")
        and not any(t == a or t.startswith(a + ".") for a in allowed)
    ]
    assert bad == []


def test_no_import_cycle_anywhere() -> None:
    graph: dict[str, set[str]] = {m: set() for m in SOURCES}
    for m, t, _, _ in EDGES:
        if t != m and not m.startswith(t + ".") and t != m.rpartition(".")[0]:  # a package's __init__ is no cycle
            graph[m].add(t)
    # Tarjan's strongly connected components: a component of more than one module is a cycle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    assert cycles == []


def test_the_rules_see_the_imports() -> None:
    """The rules above read real edges (a parser that found nothing would pass them all)."""
    assert ("load_tests.generator.openloop", "load_tests.generator.recorder") in {(m, t) for m, t, _, _ in EDGES}
    assert any(t == "mnist_serving.spec" for _, t, _, _ in EDGES) and len(EDGES) > 300
