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


# -- no module writes another module's private attributes ----------------------------------------------

#: Twisted's overridable hooks: other modules call them on the pool, so subclasses' overrides run.
_POOL_HOOKS = frozenset({"_close", "_runInteraction", "_runWithConnection", "_runQuery", "_runOperation"})


def _isPrivate(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _onSelf(node: ast.Attribute) -> bool:
    return isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")


def _ownPrivates(tree: ast.AST) -> set[str]:
    """The private attribute names a module's own code sets or defines on its objects (``self._x``)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _onSelf(node) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _isPrivate(node.name):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            for item in node.body:  # class-level defaults and __slots__-less annotations
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    names.add(item.target.id)
                elif isinstance(item, ast.Assign):
                    names.update(t.id for t in item.targets if isinstance(t, ast.Name))
    return {name for name in names if _isPrivate(name)}


def _foreignPrivateWrites(tree: ast.AST) -> list[str]:
    """``obj._x = ...`` (or ``+=``, ``del``) in ``tree`` where ``obj`` is not self and ``_x`` is not an
    attribute this module's own classes have: a write into another module's object."""
    own = _ownPrivates(tree)
    found: list[str] = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.ctx, (ast.Store, ast.Del))
                and _isPrivate(node.attr) and not _onSelf(node) and node.attr not in own):
            found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


def _moduleTrees() -> dict[str, ast.AST]:
    paths = sorted((ROOT / PACKAGE).glob("*.py"))
    return {path.name: ast.parse(path.read_text(), str(path)) for path in paths}


def test_noAdbapiModuleWritesAnotherModulesPrivateAttributes() -> None:
    """Every ``x._private = ...`` outside ``self`` sets an attribute of the module's own classes."""
    trees = _moduleTrees()
    offences = {name: found for name, tree in trees.items() if (found := _foreignPrivateWrites(tree))}
    assert offences == {}


def test_privateWriteFinderSeesAForeignWrite() -> None:
    """The finder reports ``pool._state = ...`` in a module that has no ``_state`` of its own, and not
    ``self._state`` nor a write to its own class's attribute."""
    foreign = ast.parse("def f(pool):\n    pool._state = 1\n")
    assert _foreignPrivateWrites(foreign) == ["line 2: pool._state"]
    own = ast.parse("class A:\n    def __init__(self):\n        self._state = 0\n"
                    "def f(a):\n    a._state = 1\n")
    assert _foreignPrivateWrites(own) == []


def test_noAdbapiModuleReadsThePoolsPrivateAttributes() -> None:
    """Only ``_pool.py`` touches ConnectionPool's private attributes; the others use ``pool.context`` and
    public methods, and call Twisted's overridable hooks (``pool._close``, ``pool._runInteraction``...)."""
    trees = _moduleTrees()
    poolPrivates = _ownPrivates(trees.pop("_pool.py")) - _POOL_HOOKS
    offences: dict[str, list[str]] = {}
    for name, tree in trees.items():
        own = _ownPrivates(tree)
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and not _onSelf(node) and node.attr in poolPrivates
                    and node.attr not in own and isinstance(node.value, (ast.Name, ast.Attribute))
                    and ast.unparse(node.value).split(".")[-1] in ("pool", "_pool")):
                offences.setdefault(name, []).append(f"line {node.lineno}: {ast.unparse(node)}")
    assert offences == {}
