"""Helpers shared by the Deferred-family tests: read what a fired Deferred holds, type-check a snippet."""

from __future__ import annotations

import pathlib
import subprocess
import sys
from typing import Any

from reactor import Deferred, Failure


def resultOf(d: Deferred[Any]) -> Any:
    """The result a fired Deferred holds now (consuming it); fails the test if it has not fired."""
    box: list[Any] = []
    d.addBoth(box.append)
    assert box, f"{d!r} has not fired"
    return box[0]


def failureOf(d: Deferred[Any]) -> Failure:
    """The Failure a failed Deferred holds now (consuming it)."""
    result = resultOf(d)
    assert isinstance(result, Failure), f"expected a Failure, got {result!r}"
    return result


def mypyErrors(snippet: str, tmpPath: pathlib.Path) -> tuple[list[str], str]:
    """Type-check ``snippet`` with ``mypy --strict`` against this checkout; return error lines and output."""
    path = tmpPath / "snippet.py"
    path.write_text(snippet)
    root = pathlib.Path(__file__).resolve().parent.parent
    command = [sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent", "--no-incremental"]
    command.append(str(path))
    result = subprocess.run(command, capture_output=True, text=True, cwd=root, timeout=110, check=False)
    return [line for line in result.stdout.splitlines() if ": error:" in line], result.stdout
