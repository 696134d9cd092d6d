"""adbapi: the single-statement fast path of runQuery/runOperation (psycopg2 and psycopg 3: autocommit mode,
one cursor)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from adbapi import Connection, SingleRunner
from adbapi import _drivers as drivers
from reactor import Reactor
from tests.adbapi_support import Backend, _makeBackend, runReactor


@pytest.fixture(name="pg", params=["postgres", "psycopg3"])
def pgFixture(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Backend]:
    """psycopg2, then psycopg 3, on the test PostgreSQL server."""
    yield from _makeBackend(request.param, request, tmp_path)


def _status(conn: Any) -> int:
    return drivers._transactionStatusOf(conn)()


def _mode(conn: Connection) -> tuple[bool, int]:
    return bool(conn.autocommit), _status(conn)


def test_transactionStatusConstantsMatchPsycopg2() -> None:
    """The runner's libpq transaction states are psycopg2's."""
    ext = pytest.importorskip("psycopg2.extensions")
    assert drivers._PG_IDLE == ext.TRANSACTION_STATUS_IDLE
    assert drivers._PG_INTRANS == ext.TRANSACTION_STATUS_INTRANS
    assert drivers._PG_INERROR == ext.TRANSACTION_STATUS_INERROR


def test_transactionStatusConstantsMatchPsycopg3() -> None:
    """psycopg 3 reports the same libpq transaction states."""
    pq = pytest.importorskip("psycopg.pq")
    assert drivers._PG_IDLE == pq.TransactionStatus.IDLE
    assert drivers._PG_INTRANS == pq.TransactionStatus.INTRANS
    assert drivers._PG_INERROR == pq.TransactionStatus.INERROR


def test_psycopg3GetsItsOwnAdapter() -> None:
    psycopg = pytest.importorskip("psycopg")
    adapter = drivers.adapterFor(psycopg)
    assert isinstance(adapter, drivers.Psycopg3Adapter) and adapter.name == "psycopg" and adapter.canCancel


def test_runnerKeepsOneCursorAcrossStatements(pg: Backend) -> None:
    """Consecutive single statements share one cursor in autocommit mode; leave() restores the default."""
    conn = pg.module.connect(*pg.connargs)
    try:
        runner = drivers.adapterFor(pg.module).singleRunner(conn)
        assert isinstance(runner, SingleRunner)
        assert runner.run(("SELECT 1",), {}, True) == [(1,)]
        first = runner.cursor  # type: ignore[attr-defined]
        assert runner.run(("SELECT %s", (2,)), {}, True) == [(2,)]
        assert runner.cursor is first and conn.autocommit  # type: ignore[attr-defined]
        runner.leave()
        assert first.closed and not conn.autocommit
        assert _status(conn) == drivers._PG_IDLE
    finally:
        conn.close()


def test_runnerDoesNotHoldALargeResult(pg: Backend) -> None:
    """After a result larger than the keep limit the runner holds a fresh cursor, not the result."""
    conn = pg.module.connect(*pg.connargs)
    try:
        runner = drivers.adapterFor(pg.module).singleRunner(conn)
        rows = runner.run(("SELECT g FROM generate_series(1, 1000) g",), {}, True)
        assert len(rows) == 1000
        assert runner.cursor.rowcount == -1  # type: ignore[attr-defined]
        runner.leave()
    finally:
        conn.close()


def test_interactionAfterSingleStatementsIsTransactional(pg: Backend, uniqueTableName: str) -> None:
    """runQuery leaves no autocommit behind: a later interaction still rolls back on error."""
    table = pg.createTable(uniqueTableName)

    async def body(reactor: Reactor) -> Any:
        pool = pg.pool(reactor, cp_min=1, cp_max=1)
        await pool.runOperation(f"INSERT INTO {table} (id, v) VALUES (1, 1)")
        assert await pool.runQuery(f"SELECT v FROM {table}") == [(1,)]
        assert await pool.runWithConnection(_mode) == (False, drivers._PG_IDLE)

        def failing(txn: Any) -> None:
            txn.execute(f"INSERT INTO {table} (id, v) VALUES (2, 2)")
            raise ValueError("undo")

        with pytest.raises(ValueError):
            await pool.runInteraction(failing)
        return await pool.runQuery(f"SELECT id FROM {table} ORDER BY id")

    assert runReactor(body) == [(1,)]


def test_failedSingleStatementRestoresTheConnection(pg: Backend) -> None:
    """A failing runQuery fires with the driver's error and the connection is back in its default mode."""

    async def body(reactor: Reactor) -> Any:
        pool = pg.pool(reactor, cp_min=1, cp_max=1)
        with pytest.raises(pg.module.errors.DivisionByZero):
            await pool.runQuery("SELECT 1 / 0")
        mode = await pool.runWithConnection(_mode)
        return mode, await pool.runQuery("SELECT 2")

    assert runReactor(body) == ((False, drivers._PG_IDLE), [(2,)])



def test_refusedCopyErrbacksItsOwnErrorAndTheNextStatementRunsOnItsOwn(pg: Backend) -> None:
    """runQuery("COPY ... TO STDOUT"), which the driver refuses after the server began the COPY, errbacks
    the driver's own error (not one from putting the connection back), and the next runQuery runs as its
    own statement: not inside a transaction left open by the unfinished COPY."""

    async def body(reactor: Reactor) -> Any:
        pool = pg.pool(reactor, cp_min=1, cp_max=1)
        await pool.runQuery("SELECT 1")
        with pytest.raises(pg.module.ProgrammingError, match=r"(?i)copy"):
            await pool.runQuery("COPY (SELECT 1) TO STDOUT")
        # In a transaction, now() is the transaction's start, so it differs from the statement's time.
        ownStatement = await pool.runQuery("SELECT now() = statement_timestamp()")
        return ownStatement, await pool.runWithConnection(_mode)

    assert runReactor(body) == ([(True,)], (False, drivers._PG_IDLE))

def test_statementThatOpensATransactionIsCommitted(pg: Backend, uniqueTableName: str) -> None:
    """runOperation('BEGIN; ...') is committed as Twisted's commit would, and the pool stays usable."""
    table = pg.createTable(uniqueTableName)

    async def body(reactor: Reactor) -> Any:
        pool = pg.pool(reactor, cp_min=1, cp_max=1)
        await pool.runOperation(f"BEGIN; INSERT INTO {table} (id, v) VALUES (1, 1)")
        return await pool.runWithConnection(_mode)

    assert runReactor(body) == (False, drivers._PG_IDLE)
    assert pg.admin(f"SELECT id FROM {table}") == [(1,)]


def test_openfunAutocommitIsKept(pg: Backend) -> None:
    """A connection put in autocommit mode by cp_openfun is left in that mode by the fast path."""
    opened = threading.Event()

    def openfun(conn: Any) -> None:
        conn.autocommit = True
        opened.set()

    async def body(reactor: Reactor) -> Any:
        pool = pg.pool(reactor, cp_min=1, cp_max=1, cp_openfun=openfun)
        await pool.runQuery("SELECT 1")
        return await pool.runWithConnection(lambda conn: bool(conn.autocommit))

    assert runReactor(body) is True and opened.is_set()
