"""The house's layers, read from the source: no import circle, and imports go one way only."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

SRC = Path(__file__).parents[1] / "src"
MAX_LINES = 600

# Surfaces: what a person or a program talks to. They reach the store through the service layer.
SURFACES = (
    "spud.server",
    "spud.cli",
    "spud.eval.cli",
    "spud.memory.cli",
    "spud.mcp.cli",
    "spud.mcp.serve_cli",
)


@cache
def modules() -> dict[str, Path]:
    """Every module under src/spud by dotted name (a package by its __init__)."""
    found = {}
    for path in sorted((SRC / "spud").rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


@cache
def imports(name: str) -> frozenset[str]:
    """The spud modules a module imports anywhere in it: at the top, inside functions, or only
    for type checking (a deferred import still ties the two modules together)."""
    mods = modules()
    path = mods[name]
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in mods}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                here = package[: len(package) - (node.level - 1)]
                base = ".".join([*here, base] if base else here)
            for alias in node.names:
                sub = f"{base}.{alias.name}"  # `from pkg import module` names the module
                if sub in mods:
                    found.add(sub)
                elif base in mods:
                    found.add(base)
    found.discard(name)
    return frozenset(found)


def reachable(name: str) -> set[str]:
    """Every spud module that importing this one can pull in."""
    seen: set[str] = set()
    todo = [name]
    while todo:
        for dep in imports(todo.pop()):
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


def circles() -> list[list[str]]:
    """Groups of modules that import each other, directly or round a loop (Tarjan's SCC)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(imports(v)):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for name in sorted(modules()):
        if name not in index:
            visit(name)
    return found


def under(name: str, *prefixes: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_the_walk_sees_the_imports_it_must_judge():
    """Guards the checks below against passing on an empty graph."""
    assert len(modules()) > 100
    assert "spud.core.run" in imports("spud.core.agent")
    assert "spud.tools.office.workbook" in imports("spud.tools.office.documents")
    assert "spud.core.live" in imports("spud.core.tooling")  # imported inside a function


def test_no_import_circle_in_src():
    assert circles() == [], "modules that import each other round a circle"


def test_a_circle_would_be_found(monkeypatch: pytest.MonkeyPatch):
    """The detector itself: a made-up back edge from the office tools' bottom to their top."""
    real = imports

    def with_back_edge(name: str) -> frozenset[str]:
        extra = {"spud.tools.office.tools"} if name == "spud.tools.office.formula" else set()
        return real(name) | extra

    monkeypatch.setattr(f"{__name__}.imports", with_back_edge)
    assert any("spud.tools.office.formula" in group for group in circles())


def test_configuration_imports_no_tool_module():
    """spud.config (and the settings models it holds) pulls in only the core."""
    for name in ("spud.config", "spud.browser_policy"):
        beyond = sorted(
            m for m in reachable(name) if not under(m, "spud.core", "spud.browser_policy")
        )
        assert beyond == [], f"{name} imports beyond the core: {beyond}"
    assert "spud.browser_policy" in imports("spud.config")


def test_the_core_imports_nothing_above_it():
    for name in modules():
        if under(name, "spud.core"):
            above = sorted(m for m in imports(name) if not under(m, "spud.core"))
            assert above == [], f"{name} (core) imports {above}"


def test_tools_sandbox_and_store_import_no_higher_layer():
    higher = (
        "spud.service",
        "spud.server",
        "spud.cli",
        "spud.eval",
        "spud.memory",
        "spud.models",
        "spud.playbooks",
        "spud.toolsets",
        "spud.mcp",
        "spud.config",
    )
    for name in modules():
        if under(name, "spud.tools", "spud.sandbox", "spud.store"):
            wrong = sorted(m for m in imports(name) if under(m, *higher))
            assert wrong == [], f"{name} imports a higher layer: {wrong}"


def test_surfaces_reach_the_store_only_through_the_service_layer():
    surfaces = [m for m in modules() if under(m, *SURFACES)]
    assert "spud.eval.cli" in surfaces and "spud.server.web" in surfaces
    for name in surfaces:
        direct = sorted(m for m in imports(name) if under(m, "spud.store"))
        assert direct == [], f"{name} opens the store itself: {direct}"


def test_the_office_and_browser_packages_import_one_way():
    """Each package's parts in order; a part imports only parts before it."""
    orders = {
        "spud.tools.office": ["formula", "recalc", "workbook", "sheets", "documents", "verify"],
        "spud.tools.browser": ["snapshot", "launch", "session", "tools"],
    }
    for package, parts in orders.items():
        for i, part in enumerate(parts):
            later = {f"{package}.{p}" for p in parts[i + 1 :]} | {f"{package}.tools"}
            later.discard(f"{package}.{part}")
            wrong = sorted(imports(f"{package}.{part}") & later)
            assert wrong == [], f"{package}.{part} imports a later part: {wrong}"


def test_no_module_in_src_is_over_600_lines():
    long = {
        name: n
        for name, path in modules().items()
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}, f"modules over {MAX_LINES} lines: {long}"
