"""adbapi: ``async with pool.transaction() as txn`` on the three backends."""

from __future__ import annotations

import time
from typing import Any

import pytest

from adbapi import AsyncTransaction, PoolClosedError
from reactor import CancelledError, Reactor
from reactor.task import deferLater
from tests.adbapi_support import Backend, backendFixture, runReactor  # noqa: F401


def test_asyncTransactionCommitsOnNormalExit(backend: Backend, uniqueTableName: str) -> None:
    """Statements awaited inside the block are committed when it ends normally."""
    table = backend.createTable(uniqueTableName)

    async def body(reactor: Reactor) -> Any:
        pool = backend.pool(reactor, cp_min=1, cp_max=2)
        async with pool.transaction() as txn:
            assert isinstance(txn, AsyncTransaction)
            count = await txn.execute(backend.sql(f"INSERT INTO {table} (id, v) VALUES (?, ?)"), (1, 10))
            insert = backend.sql(f"INSERT INTO {table} (id, v) VALUES (?, ?)")
            await txn.executemany(insert, [(2, 20), (3, 30)])
            rows = await txn.runQuery(f"SELECT id, v FROM {table} ORDER BY id")
            await txn.execute(f"SELECT v FROM {table} WHERE id = 3")
            one = await txn.fetchone()
        return count, rows, one

    count, rows, one = runReactor(body)
    assert count == 1 and [tuple(r) for r in rows] == [(1, 10), (2, 20), (3, 30)] and tuple(one) == (30,)
    assert backend.admin(f"SELECT count(*) FROM {table}")[0][0] == 3


def test_asyncTransactionRollsBackOnException(backend: Backend, uniqueTableName: str) -> None:
    """An exception leaving the block rolls the transaction back and propagates unchanged."""
    table = backend.createTable(uniqueTableName)

    async def body(reactor: Reactor) -> Any:
        pool = backend.pool(reactor, cp_min=1, cp_max=1)
        with pytest.raises(ZeroDivisionError):
            async with pool.transaction() as txn:
                await txn.execute(backend.sql(f"INSERT INTO {table} (id, v) VALUES (?, ?)"), (1, 10))
                1 / 0  # noqa: B018
        return await pool.runQuery(f"SELECT count(*) FROM {table}")

    assert runReactor(body)[0][0] == 0


def test_asyncTransactionDatabaseErrorArrivesAtTheAwait(backend: Backend) -> None:
    """A failing statement raises the driver's error at its await; the connection stays usable."""

    async def body(reactor: Reactor) -> Any:
        pool = backend.pool(reactor, cp_min=1, cp_max=1)
        with pytest.raises(backend.module.Error):
            async with pool.transaction() as txn:
                await txn.execute("SELECT * FROM no_such_table_adbapi_async")
        return await pool.runQuery("SELECT 1"), pool.statistics()

    rows, stats = runReactor(body)
    assert [tuple(r) for r in rows] == [(1,)] and stats.reconnects == 0


def test_asyncTransactionCancelStopsStatementOnServer(backend: Backend, uniqueTableName: str) -> None:
    """Cancelling an awaited statement stops it on the server and the transaction is rolled back."""
    table = backend.createTable(uniqueTableName)

    async def body(reactor: Reactor) -> Any:
        pool = backend.pool(reactor, cp_min=1, cp_max=1)
        began = 0.0
        with pytest.raises(CancelledError):
            async with pool.transaction() as txn:
                await txn.execute(backend.sql(f"INSERT INTO {table} (id, v) VALUES (?, ?)"), (1, 10))
                d = txn.execute(backend.longQuery)
                await deferLater(reactor, 0.3)
                began = time.monotonic()
                d.cancel()
                await d
        elapsed = time.monotonic() - began
        return elapsed, await pool.runQuery(f"SELECT count(*) FROM {table}"), pool.statistics()

    elapsed, rows, stats = runReactor(body)
    assert elapsed < 1.0 and rows[0][0] == 0 and stats.reconnects == 0


def test_asyncTransactionHoldsOneConnection(backend: Backend) -> None:
    """While a transaction is open its connection serves nobody else; other calls use other ones."""

    async def body(reactor: Reactor) -> Any:
        if backend.name == "sqlite":
            query = "SELECT 1"
        else:
            query = backend.serverIdQuery
        pool = backend.pool(reactor, cp_min=2, cp_max=2)
        async with pool.transaction() as txn:
            inside = await txn.runQuery(query)
            outside = await pool.runQuery(query)
            busy = pool.statistics().busy
        return inside, outside, busy

    inside, outside, busy = runReactor(body)
    assert busy == 1
    if backend.name != "sqlite":
        assert inside[0][0] != outside[0][0]


def test_asyncTransactionOnClosedPoolRaises(tmp_path: Any) -> None:
    """Entering a transaction on a closed pool raises PoolClosedError; ops outside the block raise."""
    backend = Backend("sqlite", __import__("sqlite3"), (str(tmp_path / "a.sqlite"),), {}, "?")

    async def body(reactor: Reactor) -> None:
        pool = backend.pool(reactor, cp_min=1, cp_max=1)
        txn = pool.transaction()
        with pytest.raises(RuntimeError, match="async with"):
            txn.execute("SELECT 1")
        await pool.close()
        with pytest.raises(PoolClosedError):
            async with pool.transaction():
                pass

    runReactor(body)
