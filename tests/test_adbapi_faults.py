"""adbapi under faults, on real servers: cancellation on the server, killed sessions, retries."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest

from adbapi import ConnectionLost, RetryPolicy, Transaction
from reactor import CancelledError, Deferred, Reactor, TimeoutError, gatherResults
from tests.adbapi_support import (  # noqa: F401
    Backend,
    StatementProbe,
    WatchedClock,
    backendFixture,
    isRunningOnServer,
    markedLongQuery,
    runReactor,
    serverBackendFixture,
    statementGone,
    statementRunning,
    uniqueName,
    within,
)


def test_cancelRunningQueryStopsItOnTheServer(backend: Backend) -> None:
    """Cancelling runQuery of a long statement errbacks CancelledError in 1 s and stops it on the server."""

    name = f"cancelled-{backend.name}"

    async def body(reactor: Reactor) -> Any:
        probe = StatementProbe(reactor)
        pool = backend.pool(reactor, cp_min=1, cp_max=1, cp_name=name, cp_openfun=probe.openfun)
        serverId = (await pool.runQuery(backend.serverIdQuery))[0][0] if backend.name != "sqlite" else None
        d = pool.runQuery(backend.longQuery)
        await statementRunning(reactor, backend, serverId, probe)
        began = time.monotonic()
        d.cancel()
        with pytest.raises(CancelledError):
            await d
        elapsed = time.monotonic() - began
        # The same (only) connection serves the next call: it is reusable and the statement is gone.
        after = await pool.runQuery(backend.serverIdQuery if serverId is not None else "SELECT 1")
        reusedWithin = time.monotonic() - began
        gone = not isRunningOnServer(backend, serverId) if serverId is not None else True
        stats = pool.statistics()
        await pool.close()
        return elapsed, reusedWithin, serverId, after, gone, stats

    elapsed, reusedWithin, serverId, after, gone, stats = runReactor(body)
    # The worker and the side thread that sent the cancel are both gone.
    assert not [t.name for t in threading.enumerate() if t.name.startswith(f"PoolThread-{name}")]
    assert elapsed < 1.0
    assert reusedWithin < 1.0  # the statement really ended on the server: its connection answered again
    assert gone
    if serverId is not None:
        assert after[0][0] == serverId
    assert stats.cancelled == 1 and stats.reconnects == 0 and stats.connectionsOpened == 1


def test_cancelledQueryIsGoneFromTheServer(serverBackend: Backend) -> None:
    """After the cancel the server soon stops running the statement (checked from another session)."""
    backend = serverBackend

    async def body(reactor: Reactor) -> Any:
        pool = backend.pool(reactor, cp_min=1, cp_max=1)
        sid = (await pool.runQuery(backend.serverIdQuery))[0][0]
        d = pool.runQuery(backend.longQuery)
        await statementRunning(reactor, backend, sid)
        d.cancel()
        with pytest.raises(CancelledError):
            await d
        await statementGone(reactor, backend, sid)  # the server reports the end asynchronously

    runReactor(body)


def test_cancelRunningInteractionRollsBack(backend: Backend, uniqueTableName: str) -> None:
    """Cancelling an interaction in its long statement rolls back its earlier writes."""
    table = backend.createTable(uniqueTableName)

    def interaction(txn: Transaction) -> None:
        txn.execute(backend.sql(f"INSERT INTO {table} (id, v) VALUES (?, ?)"), (1, 1))
        txn.execute(backend.longQuery)

    async def body(reactor: Reactor) -> Any:
        probe = StatementProbe(reactor)
        pool = backend.pool(reactor, cp_min=1, cp_max=1, cp_openfun=probe.openfun)
        serverId = (await pool.runQuery(backend.serverIdQuery))[0][0] if backend.name != "sqlite" else None
        d = pool.runInteraction(interaction)
        await statementRunning(reactor, backend, serverId, probe)
        began = time.monotonic()
        d.cancel()
        with pytest.raises(CancelledError):
            await d
        rows = await pool.runQuery(f"SELECT count(*) FROM {table}")
        reusedWithin = time.monotonic() - began
        sameSession = (await pool.runQuery(backend.serverIdQuery))[0][0] == serverId if serverId else True
        gone = not isRunningOnServer(backend, serverId) if serverId is not None else True
        return rows, reusedWithin, sameSession, gone, pool.statistics()

    rows, reusedWithin, sameSession, gone, stats = runReactor(body)
    assert rows[0][0] == 0  # the insert before the long statement was rolled back
    assert reusedWithin < 1.0 and sameSession and gone
    assert stats.reconnects == 0 and stats.connectionsOpened == 1


def test_cancelQueuedCallJustRemovesIt(backend: Backend, uniqueTableName: str) -> None:
    """A call still waiting for a connection is removed when cancelled and never runs."""
    table = backend.createTable(uniqueTableName)

    async def body(reactor: Reactor) -> Any:
        pool = backend.pool(reactor, cp_min=1, cp_max=1)
        release = threading.Event()
        started: Deferred[None] = Deferred()

        def hold(txn: Transaction) -> None:
            reactor.callFromThread(started.callback, None)
            release.wait(10)

        first = pool.runInteraction(hold)
        await started
        queued = pool.runOperation(backend.sql(f"INSERT INTO {table} (id, v) VALUES (?, ?)"), (1, 1))
        waitingBefore = pool.statistics().waiting
        queued.cancel()
        waitingAfter = pool.statistics().waiting
        with pytest.raises(CancelledError):
            await queued
        release.set()
        await first
        return waitingBefore, waitingAfter, await pool.runQuery(f"SELECT count(*) FROM {table}")

    before, after, rows = runReactor(body)
    assert (before, after) == (1, 0)
    assert rows[0][0] == 0


def test_addTimeoutIsAStatementTimeout(backend: Backend) -> None:
    """runQuery(...).addTimeout(t, reactor) stops the statement on the server and errbacks TimeoutError."""

    async def body(reactor: Reactor) -> Any:
        pool = backend.pool(reactor, cp_min=1, cp_max=1)
        began = time.monotonic()
        with pytest.raises(TimeoutError):
            await pool.runQuery(backend.longQuery).addTimeout(0.3, reactor)
        elapsed = time.monotonic() - began
        return elapsed, await pool.runQuery("SELECT 1")

    elapsed, rows = runReactor(body)
    assert 0.25 < elapsed < 2.0
    assert [tuple(r) for r in rows] == [(1,)]


def test_poolDefaultTimeoutCancelsOnServer(backend: Backend) -> None:
    """cp_timeout gives every call a timeout that cancels it on the server."""

    async def body(reactor: Reactor) -> Any:
        pool = backend.pool(reactor, cp_min=1, cp_max=1, cp_timeout=0.3)
        began = time.monotonic()
        with pytest.raises(TimeoutError):
            await pool.runQuery(backend.longQuery)
        elapsed = time.monotonic() - began
        return elapsed, await pool.runQuery("SELECT 1"), pool.statistics()

    elapsed, rows, stats = runReactor(body)
    assert elapsed < 2.0 and [tuple(r) for r in rows] == [(1,)]
    assert stats.cancelled == 1 and stats.reconnects == 0


def test_killedSessionIsReplaced(serverBackend: Backend) -> None:
    """After pg_terminate_backend / KILL the call meeting the dead connection fails with the driver's
    error and the next call works on a new session."""
    backend = serverBackend

    async def body(reactor: Reactor) -> Any:
        pool = backend.pool(reactor, cp_min=1, cp_max=1)
        sid = (await pool.runQuery(backend.serverIdQuery))[0][0]
        backend.killSession(sid)
        with pytest.raises(backend.module.Error):
            await pool.runQuery("SELECT 1")
        newSid = (await pool.runQuery(backend.serverIdQuery))[0][0]
        return sid, newSid, pool.statistics()

    sid, newSid, stats = runReactor(body)
    assert newSid != sid
    assert stats.reconnects == 1 and stats.connectionsOpened == 2


def _cursorPings(backend: Backend) -> bool:
    """mysql.connector's ``cursor()`` pings the server: a dead connection fails there, before a statement."""
    return backend.module.__name__ == "mysql.connector"


def _serverId(txn: Transaction, backend: Backend) -> int:
    txn.execute(backend.serverIdQuery)
    return int(txn.fetchall()[0][0])


def test_killedSessionInInteractionIsReplaced(serverBackend: Backend) -> None:
    """A session killed in the middle of an interaction is replaced too."""
    backend = serverBackend

    def interaction(txn: Transaction, sid: int) -> None:
        txn.execute("SELECT 1")
        backend.killSession(sid)
        txn.execute("SELECT 2")

    async def body(reactor: Reactor) -> Any:
        pool = backend.pool(reactor, cp_min=1, cp_max=1)
        # Asked in an interaction: on lanes, runQuery's session is not the interactions' one.
        sid = await pool.runInteraction(_serverId, backend)
        with pytest.raises(backend.module.Error):
            await pool.runInteraction(interaction, sid)
        return await pool.runQuery("SELECT 3")

    assert [tuple(r) for r in runReactor(body)] == [(3,)]


def test_reconnectTrueErrbacksConnectionLost(serverBackend: Backend) -> None:
    """With cp_reconnect=True the call that met the dead connection errbacks ConnectionLost."""
    backend = serverBackend

    async def body(reactor: Reactor) -> Any:
        pool = backend.pool(reactor, cp_min=1, cp_max=1, cp_reconnect=True)
        sid = (await pool.runQuery(backend.serverIdQuery))[0][0]
        backend.killSession(sid)
        if _cursorPings(backend):
            # cursor() finds the connection dead before the statement is sent: runQuery reconnects and
            # runs on a new session, as runInteraction does below (and as Twisted does).
            assert (await pool.runQuery(backend.serverIdQuery))[0][0] != sid
            cause: Any = backend.module.Error()
        else:
            with pytest.raises(ConnectionLost) as info:
                await pool.runQuery("SELECT 1")
            cause = info.value.__cause__
        sid2 = await pool.runInteraction(_serverId, backend)
        backend.killSession(sid2)
        if _cursorPings(backend):
            # The Transaction's cursor() finds the connection dead before anything ran, and, as in
            # Twisted, with cp_reconnect the pool then replaces it and the interaction runs on the new one.
            assert await pool.runInteraction(_serverId, backend) != sid2
        else:
            with pytest.raises(ConnectionLost):
                await pool.runInteraction(lambda txn: (txn.execute("SELECT 1"), txn.fetchall()))
        return cause, await pool.runQuery("SELECT 1")

    cause, rows = runReactor(body)
    assert isinstance(cause, backend.module.Error)
    assert [tuple(r) for r in rows] == [(1,)]


def test_failedRollbackDiscardsConnectionKeepsOriginalError(backend: Backend) -> None:
    """If the rollback fails the connection is discarded and the caller still gets its own error."""

    def interaction(txn: Transaction) -> None:
        txn.execute("SELECT 1")
        txn._connection._connection.close()  # the rollback that follows cannot succeed
        raise LookupError("original")

    async def body(reactor: Reactor) -> Any:
        pool = backend.pool(reactor, cp_min=1, cp_max=1)
        with pytest.raises(LookupError, match="original"):
            await pool.runInteraction(interaction)
        rows = await pool.runQuery("SELECT 1")
        return rows, pool.statistics()

    rows, stats = runReactor(body)
    assert [tuple(r) for r in rows] == [(1,)]
    assert stats.reconnects == 1 and stats.connectionsOpened == 2


@pytest.mark.parametrize("reconnect", [False, True], ids=["plain", "cp_reconnect"])
def test_failedRollbackOnKilledSessionKeepsOriginalError(serverBackend: Backend, reconnect: bool,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    """A session killed before the rollback: the rollback fails, the connection is discarded, the caller
    gets the interaction's own error (with cp_reconnect too) and the next call runs on a new session."""
    backend = serverBackend

    def interaction(txn: Transaction, sid: int) -> None:
        txn.execute("SELECT 1")
        txn.fetchall()
        backend.killSession(sid)  # the client has not noticed yet: the rollback is what fails
        raise LookupError("original")

    async def body(reactor: Reactor) -> Any:
        pool = backend.pool(reactor, cp_min=1, cp_max=1, cp_reconnect=reconnect)
        sid = await pool.runInteraction(_serverId, backend)
        with pytest.raises(LookupError, match="original"):
            await pool.runInteraction(interaction, sid)
        newSid = await pool.runInteraction(_serverId, backend)
        return sid, newSid, pool.statistics()

    with caplog.at_level(logging.DEBUG, logger="adbapi"):
        sid, newSid, stats = runReactor(body)
    assert "rollback failed" in caplog.text or "rollback or check failed" in caplog.text
    assert newSid != sid and stats.reconnects == 1 and stats.connectionsOpened == 2


def test_retryPolicyRerunsAfterSerializationFailure(backend: Backend, uniqueTableName: str) -> None:
    """With cp_retry an interaction that hits a serialization failure / lock conflict runs again."""
    table = backend.createTable(uniqueTableName)
    backend.admin(f"INSERT INTO {table} (id, v) VALUES (1, 0)")
    attempts: list[int] = []

    def interfere() -> None:
        backend.admin(f"UPDATE {table} SET v = v + 100 WHERE id = 1")

    def interaction(txn: Transaction) -> int:
        attempts.append(1)
        first = len(attempts) == 1
        if backend.name == "postgres":
            txn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            txn.execute(f"SELECT v FROM {table} WHERE id = 1")
            if first:
                interfere()
            txn.execute(f"UPDATE {table} SET v = v + 1 WHERE id = 1")
        elif backend.name == "mysql":
            txn.execute("SET SESSION innodb_lock_wait_timeout = 1")
            if first:
                # Another session holds the row lock: our update gives up with a lock wait timeout.
                blocker = backend.adminConnect(autocommit=False)
                cursor = blocker.cursor()
                cursor.execute(f"UPDATE {table} SET v = v + 100 WHERE id = 1")
                try:
                    txn.execute(f"UPDATE {table} SET v = v + 1 WHERE id = 1")
                finally:
                    blocker.rollback()
                    blocker.close()
            else:
                txn.execute(f"UPDATE {table} SET v = v + 1 WHERE id = 1")
        else:
            if first:
                locker = backend.adminConnect()
                locker.execute("BEGIN IMMEDIATE")
                try:
                    txn.execute(f"UPDATE {table} SET v = v + 1 WHERE id = 1")
                finally:
                    locker.rollback()
                    locker.close()
            else:
                txn.execute(f"UPDATE {table} SET v = v + 1 WHERE id = 1")
        return len(attempts)

    async def body(reactor: Reactor) -> Any:
        pool = backend.pool(reactor, cp_min=1, cp_max=1, cp_retry=RetryPolicy(attempts=3, backoff=0.0))
        result = await pool.runInteraction(interaction)
        return result, pool.statistics()

    result, stats = runReactor(body)
    assert result == 2 and stats.retries == 1
    v = backend.admin(f"SELECT v FROM {table} WHERE id = 1")[0][0]
    assert v in (1, 101)  # our increment applied exactly once (the other session's may have won)


def test_retryPolicyRerunsAfterLostConnection(serverBackend: Backend) -> None:
    """A connection lost before commit is retried on a new connection when the policy allows it."""
    backend = serverBackend
    attempts: list[int] = []

    def interaction(txn: Transaction) -> int:
        txn.execute(backend.serverIdQuery)
        sid = txn.fetchall()[0][0]
        attempts.append(sid)
        if len(attempts) == 1:
            backend.killSession(sid)
            txn.execute("SELECT 1")
        return len(attempts)

    async def body(reactor: Reactor) -> Any:
        pool = backend.pool(reactor, cp_min=1, cp_max=1, cp_retry=RetryPolicy(attempts=2, backoff=0.0))
        return await pool.runInteraction(interaction), pool.statistics()

    result, stats = runReactor(body)
    assert result == 2 and attempts[0] != attempts[1]
    assert stats.retries == 1 and stats.reconnects == 1


def test_connectionLostDuringCommitIsNotRetried(serverBackend: Backend) -> None:
    """A connection that dies when the commit is sent is never retried (the outcome is unknown)."""
    backend = serverBackend
    attempts: list[int] = []

    def interaction(txn: Transaction) -> None:
        txn.execute(backend.serverIdQuery)
        sid = txn.fetchall()[0][0]
        attempts.append(sid)
        backend.killSession(sid)  # the interaction's statements are done: the commit meets the dead session

    async def body(reactor: Reactor) -> Any:
        pool = backend.pool(reactor, cp_min=1, cp_max=1, cp_retry=RetryPolicy(attempts=3, backoff=0.0))
        with pytest.raises(backend.module.Error):
            await pool.runInteraction(interaction)
        return await pool.runQuery("SELECT 1"), pool.statistics()

    rows, stats = runReactor(body)
    assert len(attempts) == 1 and stats.retries == 0 and stats.reconnects == 1
    assert [tuple(r) for r in rows] == [(1,)]


def test_retryPolicyIsBoundedAndIgnoresOtherErrors(tmp_path: Any) -> None:
    """Retries stop after `attempts`; errors that are not conflicts or losses are never retried."""
    backend = Backend("sqlite", __import__("sqlite3"), (str(tmp_path / "r.sqlite"),), {"timeout": 0.0}, "?")
    calls: list[str] = []

    def locked(txn: Transaction) -> None:
        calls.append("locked")
        raise __import__("sqlite3").OperationalError("database is locked")

    def plain(txn: Transaction) -> None:
        calls.append("plain")
        raise ValueError("not retried")

    async def body(reactor: Reactor) -> Any:
        pool = backend.pool(reactor, cp_min=1, cp_max=1, cp_retry=RetryPolicy(attempts=3, backoff=0.0))
        with pytest.raises(__import__("sqlite3").OperationalError):
            await pool.runInteraction(locked)
        with pytest.raises(ValueError):
            await pool.runInteraction(plain)
        return pool.statistics()

    stats = runReactor(body)
    assert calls == ["locked"] * 3 + ["plain"]
    assert stats.retries == 2


def test_retryBackoffWaitsOnTheClockAndCanBeCancelled(tmp_path: Any) -> None:
    """The backoff waits on cp_clock; cancelling during it cancels the retry."""
    backend = Backend("sqlite", __import__("sqlite3"), (str(tmp_path / "b.sqlite"),), {}, "?")
    clock = WatchedClock()
    calls: list[int] = []

    def locked(txn: Transaction) -> None:
        calls.append(1)
        raise __import__("sqlite3").OperationalError("database is locked")

    async def body(reactor: Reactor) -> Any:
        policy = RetryPolicy(attempts=5, backoff=1.0, multiplier=2.0, jitter=0.0)
        pool = backend.pool(reactor, cp_min=1, cp_max=1, cp_retry=policy, cp_clock=clock)
        d = pool.runInteraction(locked)
        await within(reactor, clock.scheduled(), "attempt 1 failing and its retry waiting on the clock")
        delays = [c.getTime() - clock.seconds() for c in clock.getDelayedCalls()]
        d.cancel()
        with pytest.raises(CancelledError):
            await d
        clock.advance(10)
        return delays, len(calls), pool.statistics()

    delays, ncalls, stats = runReactor(body)
    assert delays == [1.0] and ncalls == 1 and stats.retries == 1 and stats.cancelled == 1


def test_manyConcurrentCancelsLeaveThePoolHealthy(backend: Backend) -> None:
    """Cancelling a mix of running and queued long statements leaves every connection reusable."""

    async def body(reactor: Reactor) -> Any:
        probe = StatementProbe(reactor)
        pool = backend.pool(reactor, cp_min=2, cp_max=2,
                            **({"cp_openfun": probe.openfun} if backend.name == "sqlite" else {}))
        marker = uniqueName("manycancels")
        calls = [pool.runQuery(markedLongQuery(backend, marker)) for _ in range(5)]
        await statementRunning(reactor, backend, probe=probe, marker=marker, count=2)  # 2 run, 3 queued
        assert pool.statistics().waiting == 3
        for d in calls:
            d.cancel()
        for d in calls:
            with pytest.raises(CancelledError):
                await d
        rows = await gatherResults([pool.runQuery(backend.sql("SELECT ?"), (i,)) for i in range(6)])
        return rows, pool.statistics()

    rows, stats = runReactor(body)
    assert [r[0][0] for r in rows] == list(range(6))
    assert stats.cancelled == 5 and stats.reconnects == 0
