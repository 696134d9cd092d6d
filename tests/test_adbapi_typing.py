"""adbapi is typed with ParamSpec: mypy checks runInteraction's extra arguments and infers Deferred[T]."""

from __future__ import annotations

import pathlib
import subprocess
import sys

SNIPPET = '''
from typing import Any, assert_type
from adbapi import Connection, ConnectionPool, Transaction
from reactor import Deferred

pool = ConnectionPool("sqlite3", ":memory:")

def interaction(txn: Transaction, a: int, b: str) -> float:
    return 1.0

def withConnection(conn: Connection, n: int) -> bytes:
    return b""

assert_type(pool.runInteraction(interaction, 1, b="x"), Deferred[float])
assert_type(pool.runWithConnection(withConnection, 2), Deferred[bytes])
assert_type(pool.runQuery("SELECT 1"), Deferred[list[Any]])
assert_type(pool.runOperation("SELECT 1"), Deferred[None])
pool.runInteraction(interaction, "one", "x")  # line 18: expected error
pool.runWithConnection(withConnection)  # line 19: expected error (missing argument)
'''


def test_runInteractionIsTypedWithParamSpec(tmp_path: pathlib.Path) -> None:
    """runInteraction/runWithConnection check extra arguments against the function, infer Deferred[T]."""
    snippet = tmp_path / "snippet.py"
    snippet.write_text(SNIPPET)
    root = pathlib.Path(__file__).resolve().parent.parent
    command = [sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent", "--no-incremental"]
    result = subprocess.run([*command, str(snippet)], capture_output=True, text=True, cwd=root, timeout=110,
                            check=False)
    lines = result.stdout.splitlines()
    errors = [line for line in lines if line.startswith(str(snippet)) and ": error:" in line]
    assert len(errors) == 2, result.stdout
    assert ":18: error: Argument 2 to \"runInteraction\"" in errors[0], errors
    assert ":19: error:" in errors[1], errors
