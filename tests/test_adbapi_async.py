"""adbapi: ``async with pool.transaction() as txn`` on the three backends."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from adbapi import AsyncTransaction, PoolClosedError
from reactor import CancelledError, Deferred, Reactor
from tests.adbapi_support import Backend, StatementProbe, backendFixture, runReactor, statementRunning  # noqa: F401


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
        probe = StatementProbe(reactor)
        pool = backend.pool(reactor, cp_min=1, cp_max=1,
                            **({"cp_openfun": probe.openfun} if backend.name == "sqlite" else {}))
        began = 0.0
        with pytest.raises(CancelledError):
            async with pool.transaction() as txn:
                await txn.execute(backend.sql(f"INSERT INTO {table} (id, v) VALUES (?, ?)"), (1, 10))
                serverId = None
                if backend.name != "sqlite":
                    serverId = (await txn.runQuery(backend.serverIdQuery))[0][0]
                d = txn.execute(backend.longQuery)
                await statementRunning(reactor, backend, serverId, probe)
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


def test_shutdownRollsBackAnAbandonedTransaction(backend: Backend, uniqueTableName: str) -> None:
    """A transaction whose coroutine never leaves its block does not hold up shutdown: it is rolled
    back, the reactor stops and no worker thread is left."""
    table = backend.createTable(uniqueTableName)
    reactor = Reactor()
    pool = backend.pool(reactor, cp_min=1, cp_max=1, cp_name="abandoned")
    never: Deferred[None] = Deferred()
    inserted: Deferred[None] = Deferred()

    async def stuck() -> None:
        async with pool.transaction() as txn:
            await txn.execute(backend.sql(f"INSERT INTO {table} (id, v) VALUES (?, ?)"), (1, 1))
            inserted.callback(None)
            await never  # never fires: the block is never left

    outcome: list[Any] = []
    Deferred.fromCoroutine(stuck()).addBoth(outcome.append)
    inserted.addCallback(lambda _: reactor.stop())
    guard = reactor.callLater(20, reactor.crash)
    reactor.run(installSignalHandlers=False)
    stoppedCleanly = guard.active()
    if stoppedCleanly:
        guard.cancel()
    assert stoppedCleanly, "shutdown waited for the abandoned transaction"
    assert not [t for t in threading.enumerate() if t.name.startswith("PoolThread-abandoned")]
    assert backend.admin(f"SELECT count(*) FROM {table}")[0][0] == 0
    never.callback(None)  # if the coroutine ever resumes, leaving the block says what happened
    assert len(outcome) == 1 and outcome[0].check(PoolClosedError)


def test_transactionOperationsAfterCloseFailAtOnce(backend: Backend, uniqueTableName: str) -> None:
    """Once close() is called an open transaction accepts no new operation (PoolClosedError at once),
    operations already issued still run, and the block's exit raises PoolClosedError (rolled back)."""
    table = backend.createTable(uniqueTableName)

    async def body(reactor: Reactor) -> Any:
        pool = backend.pool(reactor, cp_min=1, cp_max=1)
        with pytest.raises(PoolClosedError):
            async with pool.transaction() as txn:
                issued = txn.execute(backend.sql(f"INSERT INTO {table} (id, v) VALUES (?, ?)"), (1, 1))
                closing = pool.close()
                late = txn.runQuery("SELECT 1")
                assert late.called
                with pytest.raises(PoolClosedError):
                    await late
                assert await issued == 1
        await closing
        return pool.statistics()

    stats = runReactor(body)
    assert stats.state == "closed" and stats.workers == 0
    assert backend.admin(f"SELECT count(*) FROM {table}")[0][0] == 0


@pytest.mark.parametrize("driver", ["psycopg2", "psycopg"])
def test_asyncTransactionCommitConflictIsNotRetried(
    driver: str, postgresDSN: str, uniqueTableName: str
) -> None:
    """With cp_retry, a serialization failure at an async transaction's commit arrives at the block's exit
    (its operations cannot be replayed), instead of re-running the transaction and hanging."""
    from adbapi import RetryPolicy

    module = pytest.importorskip(driver)
    errors = pytest.importorskip(f"{driver}.errors")
    backend = Backend("postgres", module, (postgresDSN,), {}, "%s")
    table = backend.createTable(uniqueTableName)
    backend.admin(f"INSERT INTO {table} (id, v) VALUES (1, 0), (2, 0)")

    async def body(reactor: Reactor) -> Any:
        pool = backend.pool(reactor, cp_min=2, cp_max=2, cp_retry=RetryPolicy(attempts=3, backoff=0.0))
        with pytest.raises(errors.SerializationFailure):
            async with pool.transaction() as first:
                await first.execute("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE")
                await first.execute(f"SELECT sum(v) FROM {table}")
                async with pool.transaction() as second:  # write skew with the first
                    await second.execute("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE")
                    await second.execute(f"SELECT sum(v) FROM {table}")
                    await second.execute(f"UPDATE {table} SET v = v + 1 WHERE id = 2")
                    await first.execute(f"UPDATE {table} SET v = v + 1 WHERE id = 1")
        return await pool.runQuery(f"SELECT sum(v) FROM {table}"), pool.statistics()

    try:
        rows, stats = runReactor(body, timeout=10)
        assert rows[0][0] == 1 and stats.retries == 0  # one of the two committed, nothing re-run
    finally:
        backend.dropTables()


def test_cancelWhileWaitingToEnterFreesTheSlot(backend: Backend) -> None:
    """A transaction given up while waiting for a connection (a timeout on the caller) never takes one."""

    async def body(reactor: Reactor) -> Any:
        from reactor import TimeoutError

        pool = backend.pool(reactor, cp_min=1, cp_max=1)
        release = threading.Event()
        started: Deferred[None] = Deferred()

        def hold(txn: Any) -> None:
            reactor.callFromThread(started.callback, None)
            release.wait(10)

        holding = pool.runInteraction(hold)
        await started

        async def wantsATransaction() -> None:
            async with pool.transaction() as txn:
                await txn.execute("SELECT 1")

        attempt = Deferred.fromCoroutine(wantsATransaction()).addTimeout(0.1, reactor)
        with pytest.raises(TimeoutError):
            await attempt
        waiting = pool.statistics().waiting
        release.set()
        await holding
        # The only connection is free again: the abandoned transaction did not take it.
        return waiting, await pool.runQuery("SELECT 1")

    waiting, rows = runReactor(body, timeout=10)
    assert waiting == 0 and [tuple(r) for r in rows] == [(1,)]
