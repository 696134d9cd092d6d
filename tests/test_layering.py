"""The three layers import only downwards, and only the public API of the layers below.

``reactor`` imports neither ``deferthreads`` nor ``adbapi``; ``deferthreads`` imports only
``reactor``'s public modules; ``adbapi`` imports only the public modules of ``reactor`` and
``deferthreads``. A module is public when no part of its dotted name starts with ``_``. Imports
are read from the source (ast), including those under ``if TYPE_CHECKING:`` and inside functions.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("reactor", "deferthreads", "adbapi")
BELOW = {"reactor": (), "deferthreads": ("reactor",), "adbapi": ("reactor", "deferthreads")}


def importedModules(path: Path) -> list[tuple[int, str]]:
    """Every absolute module name ``path`` imports, with its line number."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module is not None:
            found.append((node.lineno, node.module))
            # ``from reactor import _spin`` reaches a private module too.
            found.extend((node.lineno, f"{node.module}.{alias.name}") for alias in node.names
                         if alias.name.startswith("_") and not alias.name.startswith("__"))
    return found


def layerViolations(layer: str) -> list[str]:
    """What the package ``layer`` imports that the layering forbids, as ``file:line: module`` lines."""
    bad: list[str] = []
    for path in sorted((ROOT / layer).rglob("*.py")):
        for line, module in importedModules(path):
            top = module.split(".")[0]
            if top not in LAYERS or top == layer:
                continue
            where = f"{path.relative_to(ROOT)}:{line}: {module}"
            if top not in BELOW[layer]:
                bad.append(f"{where} (a layer above or beside {layer})")
            elif any(part.startswith("_") for part in module.split(".")[1:]):
                bad.append(f"{where} (a private module of {top})")
    return bad


@pytest.mark.parametrize("layer", LAYERS)
def test_layerImportsOnlyPublicApiBelowIt(layer: str) -> None:
    """Each package imports only the public modules of the layers below it."""
    assert layerViolations(layer) == []


def test_layeringCheckSeesPrivateAndUpwardImports(tmp_path: Path) -> None:
    """The import reader finds a private import, an upward import and one under TYPE_CHECKING."""
    source = tmp_path / "m.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "from reactor._spinwait import pause\n"
        "from reactor import _failure\n"
        "if TYPE_CHECKING:\n"
        "    import adbapi\n"
        "def f():\n"
        "    from deferthreads._team import Team\n"
    )
    modules = [name for _, name in importedModules(source)]
    assert {"reactor._spinwait", "reactor._failure", "adbapi", "deferthreads._team"} <= set(modules)
