"""adbapi's modules import each other without a cycle, so each can be read (and loaded) on its own.

Imports are read from the source (ast): module level and inside functions. Imports under
``if TYPE_CHECKING:`` are left out: they exist for annotations only (``from __future__ import
annotations`` everywhere), are never executed, and naming the class that calls you in a type hint
does not make two modules depend on each other at run time.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "adbapi"


def _isTypeChecking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtimeImports(tree: ast.AST) -> set[str]:
    """The adbapi modules ``tree`` imports at run time (``adbapi._x`` names, ``adbapi`` for the package)."""
    found: set[str] = set()
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _isTypeChecking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == PACKAGE)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module is not None:
            if node.module == PACKAGE:
                # ``from adbapi import _x`` imports the submodule _x; a public name comes from __init__.
                found.update(f"{PACKAGE}.{a.name}" if a.name.startswith("_") else PACKAGE for a in node.names)
            elif node.module.split(".")[0] == PACKAGE:
                found.add(node.module)
        stack.extend(ast.iter_child_nodes(node))
    return found


def importGraph() -> dict[str, set[str]]:
    """Module name -> the adbapi modules it imports at run time."""
    graph: dict[str, set[str]] = {}
    for path in sorted((ROOT / PACKAGE).glob("*.py")):
        name = PACKAGE if path.stem == "__init__" else f"{PACKAGE}.{path.stem}"
        graph[name] = _runtimeImports(ast.parse(path.read_text(), str(path))) - {name}
    return graph


def findCycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` as a list of modules (first repeated at the end), or None."""
    WHITE, GREY, BLACK = 0, 1, 2
    colour = dict.fromkeys(graph, WHITE)
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        colour[node] = GREY
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if colour.get(nxt, BLACK) == GREY:
                return [*path[path.index(nxt):], nxt]
            if colour.get(nxt) == WHITE:
                cycle = visit(nxt)
                if cycle is not None:
                    return cycle
        path.pop()
        colour[node] = BLACK
        return None

    for start in sorted(graph):
        if colour[start] == WHITE:
            cycle = visit(start)
            if cycle is not None:
                return cycle
    return None


def test_adbapiModulesImportWithoutACycle() -> None:
    """No chain of run-time imports among adbapi's modules leads back to where it started."""
    graph = importGraph()
    assert "adbapi._pool" in graph and graph["adbapi"]  # the reader found the package
    # The package __init__ re-exports everything; a submodule importing ``adbapi`` itself would close
    # a cycle through it, which the search below reports too.
    cycle = findCycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_cycleFinderReportsACycle() -> None:
    """The cycle finder itself sees a cycle through three modules, and none in a chain."""
    assert findCycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert findCycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
