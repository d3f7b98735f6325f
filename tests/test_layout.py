"""Package layout: no product package imports a package that imports it back, and config stays a leaf."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.helpers import ROOT, parse_python

PACKAGES = (
    "activities",
    "archives",
    "config",
    "gateway",
    "models",
    "payloads",
    "releases",
    "service",
    "telemetry",
    "tools",
    "workflows",
)
"""Product packages; worker.py is the top and may import any of them."""


def package_imports() -> dict[str, set[str]]:
    """For each product package, the other product packages its modules import (at any depth, lazily or not)."""
    graph: dict[str, set[str]] = {}
    for package in PACKAGES:
        if not (ROOT / package).is_dir():
            continue
        graph[package] = set()
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(parse_python(path)):
                names = (
                    [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module or ""]
                    if isinstance(node, ast.ImportFrom) and node.level == 0
                    else []
                )
                graph[package] |= {n.split(".")[0] for n in names if n.split(".")[0] in PACKAGES} - {package}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle between packages, as a path that ends where it starts; None when there is none."""
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return path[path.index(node) :] + [node]
        if node in done:
            return None
        for nxt in sorted(graph.get(node, ())):
            if cycle := visit(nxt, path + [node]):
                return cycle
        done.add(node)
        return None

    return next((c for c in (visit(p, []) for p in sorted(graph)) if c), None)


def test_no_package_imports_a_package_that_imports_it_back():
    cycle = find_cycle(package_imports())
    assert cycle is None, "import cycle between packages: " + " -> ".join(cycle or [])


def test_config_is_a_leaf_that_imports_only_models():
    assert package_imports()["config"] <= {"models"}


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_only_settings_reads_the_environment():
    readers = [
        str(path.relative_to(ROOT))
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if "os.environ" in path.read_text() or "getenv" in path.read_text()
    ]
    assert readers == [str(Path("config/settings.py"))]
