"""adbapi lanes: psycopg2's runQuery/runOperation on nonblocking connections the reactor drives.

Every test runs against the real PostgreSQL server (``postgresDSN``) and, except
the tests of the automatic choice, forces lanes with ``cp_nonblocking=True`` and
checks ``statistics().lanes`` so that it cannot pass on worker threads by accident.
Time-dependent health settings get an injected :class:`reactor.task.Clock`; real
waits are bounded polls on the reactor's own ``callLater`` (never ``sleep``).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from typing import Any

import psycopg2
import psycopg2.errors
import pytest

import deferthreads
from adbapi import ConnectionLost, ConnectionPool, PoolClosedError, Transaction
from reactor import CancelledError, Deferred, Reactor, TimeoutError, gatherResults
from reactor.task import Clock, LoopingCall, deferLater
from tests.adbapi_support import (  # noqa: F401
    LONG_QUERY,
    PID_QUERY,
    Backend,
    isActive,
    lanesFixture,
    markedLongQuery,
    poolThreads,
    poolThreadsOf,
    runReactor,
    statementRunning,
    threadsEnded,
    uniqueName,
    until,
    workerThreads,
)
from tests.loopsupport import makeReactor


def _sessionState(backend: Backend, pid: int) -> str | None:
    """pg_stat_activity's state of session ``pid`` (None once the session is gone)."""
    rows = backend.admin("SELECT state FROM pg_stat_activity WHERE pid = %s", pid)
    return rows[0][0] if rows else None


def _liveSessions(backend: Backend, pids: Any) -> set[int]:
    """The ones of ``pids`` that are still server sessions."""
    rows = backend.admin("SELECT pid FROM pg_stat_activity WHERE pid = ANY(%s)", list(pids))
    return {r[0] for r in rows}


def _rowCount(backend: Backend, table: str) -> int:
    return int(backend.admin(f"SELECT count(*) FROM {table}")[0][0])


# -- 1. when lanes are used -----------------------------------------------------------------------


def test_autoModeUsesLanesForRunQueryWhenCpMaxAboveOne(postgresDSN: str) -> None:
    """psycopg2 with cp_max=4 and no cp_nonblocking runs runQuery on lanes, with no worker thread."""

    async def body(reactor: Reactor) -> Any:
        pool = ConnectionPool("psycopg2", postgresDSN, cp_min=1, cp_max=4, cp_reactor=reactor)
        rows = await gatherResults([pool.runQuery("SELECT %s::int", (i,)) for i in range(3)])
        stats = pool.statistics()
        await pool.close()
        return rows, stats

    rows, stats = runReactor(body)
    assert [r[0][0] for r in rows] == [0, 1, 2]
    assert stats.lanes > 0 and stats.workers == 0


def test_autoModeUsesNoLanesWithCpMaxOne(postgresDSN: str) -> None:
    """With cp_max=1 (every call shares one connection, as in Twisted) auto mode runs runQuery on a worker."""

    async def body(reactor: Reactor) -> Any:
        pool = ConnectionPool("psycopg2", postgresDSN, cp_min=1, cp_max=1, cp_reactor=reactor)
        rows = await pool.runQuery("SELECT 1")
        stats = pool.statistics()
        await pool.close()
        return rows, stats

    rows, stats = runReactor(body)
    assert rows[0][0] == 1
    assert stats.lanes == 0 and stats.workers == 1


def test_cpOpenfunDisablesLanesInAutoMode(postgresDSN: str) -> None:
    """cp_openfun expects a blocking connection: auto mode then runs runQuery on workers, calling openfun."""
    opened: list[Any] = []

    async def body(reactor: Reactor) -> Any:
        pool = ConnectionPool("psycopg2", postgresDSN, cp_min=1, cp_max=4, cp_openfun=opened.append,
                              cp_reactor=reactor)
        rows = await pool.runQuery("SELECT 1")
        stats = pool.statistics()
        await pool.close()
        return rows, stats

    rows, stats = runReactor(body)
    assert rows[0][0] == 1
    assert stats.lanes == 0 and stats.workers >= 1
    assert len(opened) == 1


def test_cpNonblockingTrueWithCpOpenfunRaisesValueError(postgresDSN: str) -> None:
    """Forcing lanes where they cannot run raises ValueError at construction, naming cp_nonblocking."""
    with pytest.raises(ValueError, match="cp_nonblocking"):
        ConnectionPool("psycopg2", postgresDSN, cp_max=4, cp_nonblocking=True, cp_openfun=lambda c: None,
                       cp_reactor=Reactor())


def test_cpNonblockingMustBeABool(postgresDSN: str) -> None:
    """cp_nonblocking="yes" raises TypeError naming cp_nonblocking."""
    with pytest.raises(TypeError, match="cp_nonblocking"):
        ConnectionPool("psycopg2", postgresDSN, cp_max=4, cp_nonblocking="yes", cp_reactor=Reactor())


def test_cpNonblockingTrueWithSqliteRaisesValueError(tmp_path: Any) -> None:
    """sqlite3 has no nonblocking connections: cp_nonblocking=True raises ValueError naming it."""
    with pytest.raises(ValueError, match="cp_nonblocking"):
        ConnectionPool(sqlite3, str(tmp_path / "db.sqlite"), cp_max=4, cp_nonblocking=True,
                       cp_reactor=Reactor())


# -- 2. no worker thread --------------------------------------------------------------------------


def test_laneQueriesRunWithoutWorkerThreads(lanes: Backend) -> None:
    """runQuery on lanes starts no worker thread; callbacks run in the reactor thread; side threads end."""
    name = uniqueName("nothreads")
    seen: list[tuple[list[str], bool]] = []

    async def body(reactor: Reactor) -> Any:
        reactorThread = threading.current_thread()
        pool = lanes.pool(reactor, cp_min=1, cp_max=2, cp_name=name)

        def record(rows: Any) -> Any:
            seen.append((workerThreads(name), threading.current_thread() is reactorThread))
            return rows

        results = []
        for i in range(10):
            results.append(await pool.runQuery("SELECT %s::int", (i,)).addCallback(record))
        results += await gatherResults([pool.runQuery("SELECT %s::int", (i,)).addCallback(record)
                                        for i in range(10, 20)])
        # The connect side threads are short-lived: wait (bounded) for them to end.
        ending = await threadsEnded(reactor, poolThreadsOf(name))
        assert ending == [], f"the lanes' connect threads did not end: {ending}"
        stats = pool.statistics()
        left = poolThreads(name)
        await pool.close()
        return results, stats, left

    results, stats, left = runReactor(body)
    assert [r[0][0] for r in results] == list(range(20))
    assert stats.lanes >= 1 and stats.workers == 0
    assert left == []
    assert len(seen) == 20
    assert all(workers == [] and inReactor for workers, inReactor in seen)


# -- 3, 4. cancellation and timeouts reach the server ------------------------------------------


async def _startedOnServer(reactor: Reactor, backend: Backend, pid: int) -> None:
    await until(reactor, lambda: isActive(backend, pid), "the long statement showing up on the server")


async def _goneFromServer(reactor: Reactor, backend: Backend, pid: int) -> None:
    await until(reactor, lambda: not isActive(backend, pid), "the statement ending on the server")


def test_cancelRunningLaneQueryStopsItOnTheServerAndReusesTheLane(lanes: Backend) -> None:
    """Cancelling a lane's pg_sleep(30) errbacks CancelledError at once, stops it on the server, and the
    same connection (same backend pid) serves the next call within 1 s."""

    name = uniqueName("cancel")

    async def body(reactor: Reactor) -> Any:
        pool = lanes.pool(reactor, cp_min=1, cp_max=1, cp_name=name)
        pid = (await pool.runQuery(PID_QUERY))[0][0]
        assert pool.statistics().lanes == 1
        d = pool.runQuery(LONG_QUERY)
        await _startedOnServer(reactor, lanes, pid)
        began = time.monotonic()
        d.cancel()
        with pytest.raises(CancelledError):
            await d
        elapsed = time.monotonic() - began
        after = (await pool.runQuery(PID_QUERY))[0][0]
        reusedWithin = time.monotonic() - began
        await _goneFromServer(reactor, lanes, pid)
        stats = pool.statistics()
        await pool.close()
        return pid, after, elapsed, reusedWithin, stats

    pid, after, elapsed, reusedWithin, stats = runReactor(body)
    assert poolThreads(name) == []  # the cancel side thread is gone too
    assert elapsed < 1.0
    assert reusedWithin < 1.0  # the statement really ended: the lane's connection answered again
    assert after == pid
    assert stats.lanes == 1 and stats.workers == 0
    assert stats.cancelled == 1 and stats.reconnects == 0 and stats.connectionsOpened == 1


@pytest.mark.parametrize("how", ["cp_timeout", "addTimeout"])
def test_timeoutOnALaneIsAStatementTimeout(lanes: Backend, how: str) -> None:
    """cp_timeout, or runQuery(...).addTimeout(t, reactor), on a lane errbacks TimeoutError on time, stops the
    statement on the server and keeps the connection."""

    async def body(reactor: Reactor) -> Any:
        options = {"cp_timeout": 0.3} if how == "cp_timeout" else {}
        pool = lanes.pool(reactor, cp_min=1, cp_max=1, **options)
        pid = (await pool.runQuery(PID_QUERY))[0][0]
        began = time.monotonic()
        with pytest.raises(TimeoutError):
            d = pool.runQuery(LONG_QUERY)
            await (d if how == "cp_timeout" else d.addTimeout(0.3, reactor))
        elapsed = time.monotonic() - began
        after = (await pool.runQuery(PID_QUERY))[0][0]
        reusedWithin = time.monotonic() - began
        await _goneFromServer(reactor, lanes, pid)
        return pid, after, elapsed, reusedWithin, pool.statistics()

    pid, after, elapsed, reusedWithin, stats = runReactor(body)
    assert 0.25 < elapsed < 1.5
    assert reusedWithin < 1.5
    assert after == pid
    assert stats.lanes == 1 and stats.reconnects == 0 and stats.connectionsOpened == 1


def test_cancelInsideTheStatementsOwnTransactionRollsItBack(lanes: Backend, uniqueTableName: str) -> None:
    """Cancelling "BEGIN; INSERT ...; SELECT pg_sleep(30)" on a lane rolls the insert back and leaves the
    session idle (not in an aborted transaction) for the next call on the same connection."""
    table = lanes.createTable(uniqueTableName)

    async def body(reactor: Reactor) -> Any:
        pool = lanes.pool(reactor, cp_min=1, cp_max=1)
        pid = (await pool.runQuery(PID_QUERY))[0][0]
        d = pool.runOperation(f"BEGIN; INSERT INTO {table} (id, v) VALUES (1, 1); {LONG_QUERY}")
        await _startedOnServer(reactor, lanes, pid)
        d.cancel()
        with pytest.raises(CancelledError):
            await d
        after = (await pool.runQuery(PID_QUERY))[0][0]
        state = _sessionState(lanes, pid)
        return pid, after, state, pool.statistics()

    pid, after, state, stats = runReactor(body)
    assert after == pid and state == "idle"
    assert _rowCount(lanes, table) == 0
    assert stats.lanes == 1 and stats.reconnects == 0


def test_queuedLaneCallsRunInOrder(lanes: Backend, uniqueTableName: str) -> None:
    """Calls waiting for the one lane run in the order they were made (their writes land in that order)."""
    table = lanes.createTable(uniqueTableName, "n SERIAL PRIMARY KEY, v INTEGER")

    async def body(reactor: Reactor) -> Any:
        pool = lanes.pool(reactor, cp_min=1, cp_max=1)
        fired: list[int] = []
        calls = [pool.runOperation(f"INSERT INTO {table} (v) VALUES (%s)", (i,)).addCallback(
            lambda _, i=i: fired.append(i)) for i in range(20)]
        waiting = pool.statistics().waiting
        await gatherResults(calls)
        return fired, waiting, pool.statistics()

    fired, waiting, stats = runReactor(body)
    assert waiting >= 18
    assert fired == list(range(20))
    assert [r[0] for r in lanes.admin(f"SELECT v FROM {table} ORDER BY n")] == list(range(20))
    assert stats.lanes == 1 and stats.connectionsOpened == 1


# -- 5. statements that open a transaction themselves -------------------------------------------------


def test_multiStatementLeavingATransactionOpenIsCommitted(lanes: Backend, uniqueTableName: str) -> None:
    """runOperation("BEGIN; INSERT ...; ") is committed (visible from another session); the lane's session
    is left idle, not in a transaction, and serves the next call."""
    table = lanes.createTable(uniqueTableName)

    async def body(reactor: Reactor) -> Any:
        pool = lanes.pool(reactor, cp_min=1, cp_max=1)
        pid = (await pool.runQuery(PID_QUERY))[0][0]
        result = await pool.runOperation(f"BEGIN; INSERT INTO {table} (id, v) VALUES (1, 10); ")
        visible = _rowCount(lanes, table)
        state = _sessionState(lanes, pid)
        after = (await pool.runQuery(PID_QUERY))[0][0]
        return pid, result, visible, state, after, pool.statistics()

    pid, result, visible, state, after, stats = runReactor(body)
    assert result is None
    assert visible == 1
    assert state == "idle"
    assert after == pid
    assert stats.lanes == 1 and stats.reconnects == 0 and stats.errors == 0


def test_multiStatementFailingInsideItsTransactionRollsBack(lanes: Backend, uniqueTableName: str) -> None:
    """runOperation("BEGIN; INSERT ...; SELECT 1/0") errbacks psycopg2's DivisionByZero, the insert is
    rolled back, and the same connection serves the next call."""
    table = lanes.createTable(uniqueTableName)

    async def body(reactor: Reactor) -> Any:
        pool = lanes.pool(reactor, cp_min=1, cp_max=1)
        pid = (await pool.runQuery(PID_QUERY))[0][0]
        with pytest.raises(psycopg2.errors.DivisionByZero):
            await pool.runOperation(f"BEGIN; INSERT INTO {table} (id, v) VALUES (1, 10); SELECT 1/0")
        visible = _rowCount(lanes, table)
        state = _sessionState(lanes, pid)
        after = (await pool.runQuery(PID_QUERY))[0][0]
        inserted = await pool.runOperation(f"INSERT INTO {table} (id, v) VALUES (1, 11)")
        return pid, visible, state, after, inserted, pool.statistics()

    pid, visible, state, after, inserted, stats = runReactor(body)
    assert visible == 0
    assert state == "idle"
    assert after == pid
    assert inserted is None and _rowCount(lanes, table) == 1  # the same key inserts fine: rolled back
    assert stats.lanes == 1 and stats.reconnects == 0 and stats.errors == 1


def test_failedCommitOfTheStatementsOwnTransactionKeepsTheConnection(lanes: Backend,
                                                                    uniqueTableName: str) -> None:
    """A "BEGIN; ..." statement whose COMMIT fails (a deferred unique constraint) errbacks the driver's
    UniqueViolation, nothing is committed, and, as on a worker, the healthy connection is kept."""
    table = lanes.createTable(uniqueTableName, "id INTEGER PRIMARY KEY DEFERRABLE INITIALLY DEFERRED")

    async def body(reactor: Reactor) -> Any:
        pool = lanes.pool(reactor, cp_min=1, cp_max=1)
        pid = (await pool.runQuery(PID_QUERY))[0][0]
        with pytest.raises(psycopg2.errors.UniqueViolation):
            await pool.runOperation(f"BEGIN; INSERT INTO {table} VALUES (1); INSERT INTO {table} VALUES (1);")
        after = (await pool.runQuery(PID_QUERY))[0][0]
        return pid, after, pool.statistics()

    pid, after, stats = runReactor(body)
    assert _rowCount(lanes, table) == 0
    assert stats.lanes == 1 and stats.errors == 1
    assert (after, stats.reconnects) == (pid, 0), "a healthy connection was discarded after a failed COMMIT"


@pytest.mark.parametrize("direction", ["TO STDOUT", "FROM STDIN"])
def test_copyStatementOnALaneErrbacksAndTheNextCallWorks(lanes: Backend, uniqueTableName: str,
                                                         direction: str) -> None:
    """runOperation("COPY ... TO STDOUT / FROM STDIN") errbacks psycopg2's ProgrammingError (as on a
    worker); the next, unrelated call on the pool succeeds."""
    table = lanes.createTable(uniqueTableName)

    async def body(reactor: Reactor) -> Any:
        pool = lanes.pool(reactor, cp_min=1, cp_max=1)
        await pool.runQuery("SELECT 1")
        with pytest.raises(psycopg2.ProgrammingError, match="COPY"):
            await pool.runOperation(f"COPY {table} {direction}").addTimeout(5, reactor)
        try:
            nextRows: Any = await pool.runQuery("SELECT 8").addTimeout(5, reactor)
        except Exception as e:
            nextRows = e
        return nextRows, pool.statistics()

    nextRows, stats = runReactor(body)
    assert nextRows == [(8,)], f"the call after the COPY failed: {nextRows!r}"
    assert stats.lanes == 1 and stats.errors == 1


def test_poolRestartedAfterCloseRunsOnLanesAgain(lanes: Backend) -> None:
    """start() after close() reopens the pool (Twisted's cannot): runQuery runs on lanes again."""

    async def body(reactor: Reactor) -> Any:
        pool = lanes.pool(reactor, cp_min=1, cp_max=2)
        first = (await pool.runQuery(PID_QUERY))[0][0]
        await pool.close()
        closed = pool.statistics()
        pool.start()
        second = (await pool.runQuery(PID_QUERY))[0][0]
        return first, second, closed, pool.statistics()

    first, second, closed, stats = runReactor(body)
    assert closed.lanes == 0 and closed.connectionsOpen == 0
    assert second != first
    assert stats.state == "running" and stats.lanes == 1 and stats.workers == 0


# -- 6, 7. killed sessions ------------------------------------------------------------------------------


def test_killedLaneSessionFailsTheNextCallWithOperationalErrorThenReconnects(lanes: Backend) -> None:
    """A statement sent on a lane whose session was terminated errbacks psycopg2's OperationalError; the
    call after it runs on a new session."""

    async def body(reactor: Reactor) -> Any:
        pool = lanes.pool(reactor, cp_min=1, cp_max=1)
        pid = (await pool.runQuery(PID_QUERY))[0][0]
        lanes.killSession(pid)
        # Issued in the same reactor turn, so the lane has not read the EOF yet: the statement meets it.
        with pytest.raises(psycopg2.OperationalError):
            await pool.runQuery("SELECT 1")
        newPid = (await pool.runQuery(PID_QUERY))[0][0]
        return pid, newPid, pool.statistics()

    pid, newPid, stats = runReactor(body)
    assert newPid != pid
    assert stats.lanes == 1 and stats.reconnects == 1 and stats.errors == 1


def test_killedLaneSessionFailsWithConnectionLostUnderCpReconnect(lanes: Backend) -> None:
    """With cp_reconnect=True the statement on a terminated lane session errbacks ConnectionLost (caused
    by the driver's error); the next call works on a new session."""

    async def body(reactor: Reactor) -> Any:
        pool = lanes.pool(reactor, cp_min=1, cp_max=1, cp_reconnect=True)
        pid = (await pool.runQuery(PID_QUERY))[0][0]
        lanes.killSession(pid)
        with pytest.raises(ConnectionLost) as info:
            await pool.runQuery("SELECT 1")
        newPid = (await pool.runQuery(PID_QUERY))[0][0]
        return pid, newPid, info.value, pool.statistics()

    pid, newPid, lost, stats = runReactor(body)
    assert isinstance(lost.__cause__, psycopg2.OperationalError)
    assert newPid != pid
    assert stats.lanes == 1 and stats.reconnects == 1


def test_killedSessionDuringALaneStatementFailsItPromptly(lanes: Backend) -> None:
    """Terminating a lane's session while its statement runs errbacks OperationalError at once (the reactor
    reads the server's goodbye), and the next call works on a new session."""

    async def body(reactor: Reactor) -> Any:
        pool = lanes.pool(reactor, cp_min=1, cp_max=1)
        pid = (await pool.runQuery(PID_QUERY))[0][0]
        d = pool.runQuery(LONG_QUERY)
        await _startedOnServer(reactor, lanes, pid)
        began = time.monotonic()
        lanes.killSession(pid)
        with pytest.raises(psycopg2.OperationalError):
            await d.addTimeout(5, reactor)
        elapsed = time.monotonic() - began
        newPid = (await pool.runQuery(PID_QUERY))[0][0]
        return pid, newPid, elapsed, pool.statistics()

    pid, newPid, elapsed, stats = runReactor(body)
    assert elapsed < 1.0
    assert newPid != pid
    assert stats.lanes == 1 and stats.reconnects == 1 and stats.errors == 1


def test_idleLaneNoticesItsSessionWasTerminated(lanes: Backend) -> None:
    """The reactor reads the EOF of an idle lane whose session was terminated: the lane lets its connection
    go without any call, and the next call opens a new session (no error, no hang)."""

    async def body(reactor: Reactor) -> Any:
        pool = lanes.pool(reactor, cp_min=1, cp_max=2)
        pid = (await pool.runQuery(PID_QUERY))[0][0]
        assert pool.statistics().connectionsOpen == 1
        lanes.killSession(pid)
        await until(reactor, lambda: pool.statistics().connectionsOpen == 0,
                     "the idle lane noticing its session was terminated", seconds=2.0)
        newPid = (await pool.runQuery(PID_QUERY))[0][0]
        return pid, newPid, pool.statistics()

    pid, newPid, stats = runReactor(body)
    assert newPid != pid
    assert stats.errors == 0 and stats.reconnects == 1 and stats.lanes == 1


def test_idleLaneWithTerminatedSessionDoesNotSpinTheReactor(lanes: Backend) -> None:
    """After an idle lane's session is terminated the reactor stops watching the dead socket: once the lane
    noticed, further turns of the loop call its doRead no more."""

    async def body(reactor: Reactor) -> Any:
        before = list(reactor.getReaders())
        pool = lanes.pool(reactor, cp_min=1, cp_max=2)
        pid = (await pool.runQuery(PID_QUERY))[0][0]
        # The idle lane is the one reader the pool added (it watches its socket for the server's EOF).
        added = [r for r in reactor.getReaders() if not any(r is b for b in before)]
        assert len(added) == 1, added
        lane = added[0]
        reads: list[int] = []
        original = lane.doRead

        def countingRead() -> None:
            reads.append(1)
            original()

        lane.doRead = countingRead
        lanes.killSession(pid)  # returns once the backend is gone, its end of the socket closed
        await until(reactor, lambda: pool.statistics().connectionsOpen == 0,
                    "the idle lane noticing its session was terminated", seconds=2.0)
        readsWhenNoticed = len(reads)
        for _ in range(50):  # 50 turns of the loop, each one polling the descriptors
            await deferLater(reactor, 0)
        stillWatched = any(r is lane for r in reactor.getReaders())
        return readsWhenNoticed, len(reads), stillWatched, pool.statistics()

    readsWhenNoticed, reads, stillWatched, stats = runReactor(body)
    assert 1 <= readsWhenNoticed <= 3, f"{readsWhenNoticed} doRead calls to notice one EOF"
    assert reads == readsWhenNoticed, f"the reactor called doRead {reads - readsWhenNoticed} more times " \
                                      "in 50 turns for a dead idle connection"
    assert not stillWatched
    assert stats.connectionsOpen == 0


# -- 8, 9, 10. health settings (time from a Clock) ------------------------------------------------------


def test_pingAfterChecksAnIdleLane(lanes: Backend, uniqueTableName: str) -> None:
    """With cp_ping_after a lane idle that long runs cp_good_sql before the statement; a recently used one
    does not (cp_good_sql inserts a row, so each check is counted)."""
    table = lanes.createTable(uniqueTableName, "id SERIAL PRIMARY KEY")
    clock = Clock()

    async def body(reactor: Reactor) -> Any:
        pool = lanes.pool(reactor, cp_min=1, cp_max=1, cp_ping_after=5, cp_clock=clock,
                          cp_good_sql=f"INSERT INTO {table} DEFAULT VALUES")
        pid = (await pool.runQuery(PID_QUERY))[0][0]
        fresh = _rowCount(lanes, table)
        clock.advance(4)
        await pool.runQuery("SELECT 1")
        notYet = _rowCount(lanes, table)
        clock.advance(5)
        after = (await pool.runQuery(PID_QUERY))[0][0]
        pinged = _rowCount(lanes, table)
        await pool.runQuery("SELECT 1")
        again = _rowCount(lanes, table)
        return pid, after, (fresh, notYet, pinged, again), pool.statistics()

    pid, after, counts, stats = runReactor(body)
    assert counts == (0, 0, 1, 1)
    assert after == pid
    assert stats.lanes == 1 and stats.reconnects == 0 and stats.errors == 0


def test_pingAfterReplacesAKilledIdleLaneSessionBeforeTheStatement(lanes: Backend) -> None:
    """A lane idle for cp_ping_after whose session was killed fails its check and reconnects: the
    statement succeeds on a new session."""
    clock = Clock()

    async def body(reactor: Reactor) -> Any:
        pool = lanes.pool(reactor, cp_min=1, cp_max=1, cp_ping_after=30, cp_clock=clock)
        pid = (await pool.runQuery(PID_QUERY))[0][0]
        lanes.killSession(pid)
        clock.advance(31)
        # Same reactor turn as the kill: the check, not the reactor's read, finds the dead session.
        newPid = (await pool.runQuery(PID_QUERY))[0][0]
        return pid, newPid, pool.statistics()

    pid, newPid, stats = runReactor(body)
    assert newPid != pid
    assert stats.lanes == 1 and stats.reconnects == 1 and stats.errors == 0


def test_maxLifetimeRecyclesALaneConnection(lanes: Backend) -> None:
    """A lane's connection older than cp_max_lifetime is closed and replaced before its next statement."""
    clock = Clock()

    async def body(reactor: Reactor) -> Any:
        pool = lanes.pool(reactor, cp_min=1, cp_max=1, cp_max_lifetime=60, cp_clock=clock)
        pid = (await pool.runQuery(PID_QUERY))[0][0]
        clock.advance(59)
        same = (await pool.runQuery(PID_QUERY))[0][0]
        clock.advance(1)
        newPid = (await pool.runQuery(PID_QUERY))[0][0]
        await until(reactor, lambda: not _liveSessions(lanes, [pid]), "the old session ending")
        return pid, same, newPid, pool.statistics()

    pid, same, newPid, stats = runReactor(body)
    assert same == pid and newPid != pid
    assert stats.lanes == 1 and stats.recycled == 1 and stats.reconnects == 0
    assert stats.connectionsOpened == 2 and stats.connectionsOpen == 1


def test_idleTimeoutRetiresIdleLanesDownToCpMin(lanes: Backend) -> None:
    """Lanes idle for cp_idle_timeout are retired (their sessions end) down to cp_min; the rest serves."""
    clock = Clock()

    async def body(reactor: Reactor) -> Any:
        pool = lanes.pool(reactor, cp_min=1, cp_max=3, cp_idle_timeout=30, cp_clock=clock)
        # Three calls dispatched in one turn: three lanes, three sessions.
        pids = {r[0][0] for r in await gatherResults([pool.runQuery(PID_QUERY) for _ in range(3)])}
        busy = pool.statistics()
        clock.advance(15)
        half = pool.statistics()
        clock.advance(15)
        after = pool.statistics()
        await until(reactor, lambda: len(_liveSessions(lanes, pids)) == 1, "two retired sessions ending")
        survivor = _liveSessions(lanes, pids)
        used = (await pool.runQuery(PID_QUERY))[0][0]
        return pids, busy, half, after, survivor, used

    pids, busy, half, after, survivor, used = runReactor(body)
    assert len(pids) == 3
    assert (busy.lanes, busy.connectionsOpen) == (3, 3)
    assert (half.lanes, half.connectionsOpen) == (3, 3)
    assert (after.lanes, after.connectionsOpen, after.recycled) == (1, 1, 2)
    assert survivor == {used}


# -- 11, 12. big results and long statements --------------------------------------------------------


def test_bigResultIsCompleteAndFetchedWithoutStallingTheReactor(lanes: Backend,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A 50,000-row result arrives whole and correct; it is converted in a side thread while the reactor
    keeps ticking; the lane serves the next call afterwards."""
    started: list[str] = []  # "<side work>@<thread>" for each piece of side work the pool ran
    submit = deferthreads.ThreadPool.callInThreadWithCallback

    def recording(self: Any, onResult: Any, f: Any, /, *args: Any) -> None:
        def run() -> Any:
            started.append(f"{getattr(f, '__name__', f)}@{threading.current_thread().name}")
            return f(*args)

        submit(self, onResult, run)

    monkeypatch.setattr(deferthreads.ThreadPool, "callInThreadWithCallback", recording)

    async def body(reactor: Reactor) -> Any:
        pool = lanes.pool(reactor, cp_min=1, cp_max=1)
        await pool.runQuery("SELECT 1")
        ticks: list[float] = []
        ticker = LoopingCall(lambda: ticks.append(time.monotonic()))
        ticker.clock = reactor
        ticker.start(0.002)
        began = time.monotonic()
        rows = await pool.runQuery("SELECT i, md5(i::text) FROM generate_series(1, 50000) AS i")
        ended = time.monotonic()
        ticker.stop()
        during = [t for t in ticks if began <= t <= ended]
        gaps = [b - a for a, b in zip([began, *during], [*during, ended], strict=True)]
        nextRows = await pool.runQuery("SELECT 2")
        return rows, len(during), max(gaps), nextRows, pool.statistics()

    rows, ticksDuring, longestGap, nextRows, stats = runReactor(body)
    assert len(rows) == 50_000
    assert [r[0] for r in rows] == list(range(1, 50_001))
    import hashlib

    assert rows[0][1] == hashlib.md5(b"1").hexdigest()
    assert rows[-1][1] == hashlib.md5(b"50000").hexdigest()
    assert ticksDuring >= 1
    assert longestGap < 0.5
    assert any(what.startswith("fetchall@") and "-side-worker-" in what for what in started), started
    assert nextRows[0][0] == 2
    assert stats.lanes == 1 and stats.workers == 0


def test_veryLongStatementTextIsSentWhole(lanes: Backend) -> None:
    """Statements far larger than a socket buffer (a 200 KB IN list, an 8 MB literal) are sent whole."""
    inList = ",".join(str(i) for i in range(1, 30_001))
    literal = "x" * (8 * 1024 * 1024)

    async def body(reactor: Reactor) -> Any:
        pool = lanes.pool(reactor, cp_min=1, cp_max=1)
        statement = f"SELECT count(*) FROM generate_series(1, 40000) AS i WHERE i IN ({inList})"
        assert len(statement) > 100_000
        counted = await pool.runQuery(statement)
        length = await pool.runQuery(f"SELECT length('{literal}')")
        bound = await pool.runQuery("SELECT length(%s)", (literal,))
        after = await pool.runQuery("SELECT 3")
        return counted, length, bound, after, pool.statistics()

    counted, length, bound, after, stats = runReactor(body)
    assert counted[0][0] == 30_000
    assert length[0][0] == len(literal) and bound[0][0] == len(literal)
    assert after[0][0] == 3
    assert stats.lanes == 1 and stats.reconnects == 0


# -- 13. lanes and workers sharing cp_max -------------------------------------------------------------


def test_mixedQueriesAndInteractionsStayWithinCpMax(lanes: Backend, uniqueTableName: str) -> None:
    """20 concurrent runQuery and 5 runInteraction with cp_max=2 all complete correctly, and the pool never
    holds more than 2 connections or slots."""
    table = lanes.createTable(uniqueTableName)
    samples: list[tuple[int, int]] = []

    def interaction(txn: Transaction, i: int) -> int:
        txn.execute(f"INSERT INTO {table} (id, v) VALUES (%s, %s)", (i, i * 10))
        txn.execute(f"SELECT v FROM {table} WHERE id = %s", (i,))
        return int(txn.fetchall()[0][0])

    async def body(reactor: Reactor) -> Any:
        pool = lanes.pool(reactor, cp_min=1, cp_max=2)

        def sample(result: Any) -> Any:
            stats = pool.statistics()
            samples.append((stats.connectionsOpen, stats.lanes + stats.workers))
            return result

        queries: list[Deferred[Any]] = []
        interactions: list[Deferred[Any]] = []
        for i in range(25):
            if i % 5 == 2:
                interactions.append(pool.runInteraction(interaction, i).addCallback(sample))
            else:
                queries.append(pool.runQuery("SELECT %s::int, pg_backend_pid()", (i,)).addCallback(sample))
        sample(None)
        lanesAtStart = pool.statistics().lanes
        queryRows = await gatherResults(queries)
        interactionResults = await gatherResults(interactions)
        return lanesAtStart, queryRows, interactionResults, pool.statistics()

    lanesAtStart, queryRows, interactionResults, stats = runReactor(body)
    assert lanesAtStart >= 1
    assert [r[0][0] for r in queryRows] == [i for i in range(25) if i % 5 != 2]
    assert interactionResults == [i * 10 for i in range(25) if i % 5 == 2]
    assert len(samples) == 26
    assert max(s[0] for s in samples) <= 2 and max(s[1] for s in samples) <= 2
    assert stats.errors == 0 and stats.connectionsOpen <= 2
    assert _rowCount(lanes, table) == 5


# -- 14. close and reactor shutdown --------------------------------------------------------------------


def test_closeLetsInFlightLaneQueriesFinishThenClosesEveryConnection(lanes: Backend) -> None:
    """close() with lane queries in flight: they complete first, then close() fires, every session of the
    pool ends, and a later runQuery errbacks PoolClosedError at once."""

    async def body(reactor: Reactor) -> Any:
        pool = lanes.pool(reactor, cp_min=1, cp_max=3)
        pids = {r[0][0] for r in await gatherResults([pool.runQuery(PID_QUERY) for _ in range(3)])}
        assert pool.statistics().lanes == 3
        order: list[str] = []

        def finished(rows: Any) -> Any:
            order.append(f"query {rows[0][0]}")
            return rows

        # Three running, two waiting for a lane.
        statement = "SELECT %s::int, pg_sleep(0.1)"
        inFlight = [pool.runQuery(statement, (i,)).addCallback(finished) for i in range(5)]
        closed = pool.close().addCallback(lambda _: order.append("closed"))
        refused = pool.runQuery("SELECT 1")
        refusedAtOnce = refused.called
        with pytest.raises(PoolClosedError):
            await refused
        rows = await gatherResults(inFlight)
        await closed
        await until(reactor, lambda: not _liveSessions(lanes, pids), "the pool's sessions ending")
        late = pool.runQuery("SELECT 1")
        lateAtOnce = late.called
        with pytest.raises(PoolClosedError):
            await late
        return order, rows, refusedAtOnce, lateAtOnce, pool.statistics()

    order, rows, refusedAtOnce, lateAtOnce, stats = runReactor(body)
    assert [r[0][0] for r in rows] == list(range(5))
    assert order[-1] == "closed" and sorted(order[:-1]) == [f"query {i}" for i in range(5)]
    assert refusedAtOnce and lateAtOnce
    assert stats.state == "closed" and stats.lanes == 0 and stats.connectionsOpen == 0


def test_reactorShutdownWithLaneQueriesInFlightFiresEveryDeferred(lanes: Backend) -> None:
    """reactor.stop() with lane queries running and waiting: every Deferred fires, and no thread of the
    pool is left when run() returns."""
    name = uniqueName("shutdown")
    reactor = Reactor()
    calls: list[Deferred[Any]] = []
    outcomes: list[Any] = []
    lanesSeen: list[int] = []

    def start() -> None:
        pool = lanes.pool(reactor, cp_min=1, cp_max=2, cp_name=name)
        for i in range(6):
            d = pool.runQuery("SELECT %s::int, pg_sleep(0.05)", (i,))
            d.addBoth(outcomes.append)
            calls.append(d)
        lanesSeen.append(pool.statistics().lanes)
        reactor.callLater(0.02, reactor.stop)

    reactor.callWhenRunning(start)
    guard = reactor.callLater(10, reactor.crash)
    reactor.run(installSignalHandlers=False)
    timedOut = not guard.active()
    if not timedOut:
        guard.cancel()
    reactor.close()
    assert not timedOut, "the reactor did not shut down within 10 s"
    assert lanesSeen == [2]
    assert all(d.called for d in calls)
    # Accepted calls (running or waiting for a lane) all run to the end before the pool closes.
    assert sorted(o[0][0] for o in outcomes) == list(range(6)), outcomes
    assert poolThreads(name) == []


def test_callMadeWhileTheReactorIsNotRunningIsServedWhenItRunsAgain(lanes: Backend) -> None:
    """After a crash() leaves the pool's lane idle, a runQuery made while the reactor is not running waits
    and is served once the reactor runs again (it must never be left unfired, even when the pool closes)."""
    reactor = Reactor()
    first: list[Any] = []
    outcome: list[Any] = []
    pools: list[Any] = []

    def crashWith(result: Any) -> None:
        first.append(result)
        reactor.crash()

    def stopWith(result: Any) -> None:
        outcome.append(result)
        reactor.stop()

    def begin() -> None:
        pool = lanes.pool(reactor, cp_min=1, cp_max=1)
        pools.append(pool)
        pool.runQuery("SELECT 1").addBoth(crashWith)

    reactor.callWhenRunning(begin)
    guard = reactor.callLater(5, reactor.crash)
    reactor.run(installSignalHandlers=False)
    guard.cancel()
    pool = pools[0]
    assert first == [[(1,)]] and pool.statistics().lanes == 1
    d = pool.runQuery("SELECT 2")
    d.addBoth(stopWith)
    # Run again; stop after 2 s at the latest (stop closes the pool, which must fire the call either way).
    guard = reactor.callLater(2, lambda: reactor.stop() if not reactor.stopping else None)
    reactor.run(installSignalHandlers=False)
    if guard.active():
        guard.cancel()
    reactor.close()
    assert d.called, f"the call never fired (pool: {pool.statistics()})"
    assert outcome == [[(2,)]]


# -- 15. bad parameters -----------------------------------------------------------------------------


def test_badParametersErrbackTheDriverErrorAndDoNotRaiseAtTheCall(lanes: Backend) -> None:
    """A statement the driver refuses errbacks the driver's own error class; runQuery itself returns a
    Deferred that has not fired yet (no raise at the call site, no result inside the call)."""

    async def body(reactor: Reactor) -> Any:
        pool = lanes.pool(reactor, cp_min=1, cp_max=1)
        await pool.runQuery("SELECT 1")
        serverSide = pool.runQuery("SELECT %s")  # no parameters: sent as is, the server rejects it
        clientSide = pool.runQuery("SELECT %s", (object(),))  # psycopg2 cannot adapt it
        firedInCall = (serverSide.called, clientSide.called)
        with pytest.raises(psycopg2.errors.SyntaxError):
            await serverSide
        with pytest.raises(psycopg2.ProgrammingError, match="can't adapt"):
            await clientSide
        after = await pool.runQuery("SELECT 4")
        return firedInCall, after, pool.statistics()

    firedInCall, after, stats = runReactor(body)
    assert firedInCall == (False, False)
    assert after[0][0] == 4
    assert stats.lanes == 1 and stats.reconnects == 0 and stats.errors == 2


@pytest.mark.parametrize("statement,params", [("SELECT %s", (object(),)), ("SELECT %s", None)],
                         ids=["clientSide", "serverSide"])
def test_chainOfFailingCallsDoesNotRecurse(lanes: Backend, statement: str, params: Any) -> None:
    """5,000 failing runQuery calls, each issued from the previous one's errback, complete without
    RecursionError; each fails with the driver's error and the lane keeps its connection."""
    total = 5_000 if params is not None else 1_000  # a server-side error costs a round trip

    async def body(reactor: Reactor) -> Any:
        pool = lanes.pool(reactor, cp_min=1, cp_max=1)
        await pool.runQuery("SELECT 1")
        done: Deferred[None] = Deferred()
        errors: list[type] = []

        def issue() -> None:
            d = pool.runQuery(statement, params) if params is not None else pool.runQuery(statement)
            d.addCallbacks(lambda _: done.errback(AssertionError("the bad statement succeeded")), failed)

        def failed(failure: Any) -> None:
            errors.append(failure.type)
            if len(errors) < total:
                issue()
            else:
                done.callback(None)

        issue()
        await done
        after = await pool.runQuery("SELECT 5")
        return errors, after, pool.statistics()

    errors, after, stats = runReactor(body)
    assert len(errors) == total
    assert all(issubclass(e, psycopg2.ProgrammingError) for e in errors), set(errors)
    assert after[0][0] == 5
    assert stats.lanes == 1 and stats.reconnects == 0 and stats.connectionsOpened == 1


# -- 16. connect failures --------------------------------------------------------------------------


def test_connectFailureErrbacksWithoutThePasswordAndTheNextCallRetries(lanes: Backend) -> None:
    """A lane that cannot connect errbacks OperationalError with the password scrubbed; the next call tries
    again (and succeeds once the server is reachable)."""
    goodDSN = lanes.connargs[0]
    badDSN = "host=127.0.0.1 port=1 dbname=test password=secret connect_timeout=2"

    async def body(reactor: Reactor) -> Any:
        pool = ConnectionPool("psycopg2", badDSN, cp_min=1, cp_max=2, cp_nonblocking=True,
                              cp_reactor=reactor)
        failures = []
        for _ in range(2):
            d = pool.runQuery("SELECT 1")
            lanesWhileConnecting = pool.statistics().lanes
            try:
                await d
            except psycopg2.OperationalError as e:
                failures.append((e, lanesWhileConnecting))
        pool.connargs = (goodDSN,)
        rows = await pool.runQuery("SELECT 6")
        return failures, rows, pool.statistics()

    failures, rows, stats = runReactor(body)
    assert len(failures) == 2
    for error, lanesWhileConnecting in failures:
        assert lanesWhileConnecting == 1
        assert "secret" not in str(error) and "secret" not in repr(error)
        assert "secret" not in "".join(str(a) for a in error.args)
    assert rows[0][0] == 6
    assert stats.lanes == 1 and stats.connectionsOpened == 1


# -- 17. the asyncio-hosted reactor ---------------------------------------------------------------


def test_lanesWorkOnTheAsyncioHostedReactor(lanes: Backend, uniqueTableName: str) -> None:
    """On AsyncioReactor, lanes run queries (concurrently and in sequence), a cancel and an operation."""
    table = lanes.createTable(uniqueTableName)
    hosted = makeReactor("asyncio")
    from reactor.asyncioreactor import AsyncioReactor

    assert isinstance(hosted, AsyncioReactor)

    async def body(reactor: Any) -> Any:
        pool = lanes.pool(reactor, cp_min=1, cp_max=2)
        together = await gatherResults([pool.runQuery("SELECT %s::int", (i,)) for i in range(4)])
        inTurn = [(await pool.runQuery("SELECT %s::int", (i,)))[0][0] for i in range(4, 8)]
        await pool.runOperation(f"INSERT INTO {table} (id, v) VALUES (1, 1)")
        marker = uniqueName("hosted")
        long = pool.runQuery(markedLongQuery(lanes, marker))
        await statementRunning(reactor, lanes, marker=marker)
        long.cancel()
        with pytest.raises(CancelledError):
            await long
        big = await pool.runQuery("SELECT i FROM generate_series(1, 5000) AS i")
        stats = pool.statistics()
        # An idle lane's terminated session is noticed through the asyncio loop's reader too.
        # (The two queries may share one lane if the other is still busy after the cancel: count only the
        # sessions killed.)
        pids = {r[0][0] for r in await gatherResults([pool.runQuery(PID_QUERY) for _ in range(2)])}
        openBefore = pool.statistics().connectionsOpen
        for pid in pids:
            lanes.killSession(pid)
        await until(reactor, lambda: pool.statistics().connectionsOpen <= openBefore - len(pids),
                     "the idle lanes noticing their sessions were terminated", seconds=5.0)
        again = (await pool.runQuery(PID_QUERY))[0][0]
        assert again not in pids
        await pool.close()
        return together, inTurn, big, stats

    together, inTurn, big, stats = runReactor(body, 15.0, reactor=hosted)
    assert [r[0][0] for r in together] == [0, 1, 2, 3]
    assert inTurn == [4, 5, 6, 7]
    assert [r[0] for r in big] == list(range(1, 5001))
    assert stats.lanes >= 1 and stats.workers == 0
    assert _rowCount(lanes, table) == 1
