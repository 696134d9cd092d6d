"""adbapi is typed with ParamSpec: mypy checks runInteraction's extra arguments and infers Deferred[T]."""

from __future__ import annotations

import pathlib

from tests.deferred_support import mypyErrors

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
    errors, output = mypyErrors(SNIPPET, tmp_path)
    assert len(errors) == 2, output
    assert ':18: error: Argument 2 to "runInteraction"' in errors[0], errors
    assert ":19: error:" in errors[1], errors
