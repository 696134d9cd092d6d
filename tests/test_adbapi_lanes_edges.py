"""adbapi lanes at their edges: retries, a mixed stress run within cp_max, close-then-stop with a cancel in
flight, and a failed statement's own transaction (real PostgreSQL server; workers too where it helps)."""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import psycopg2
import pytest

from adbapi import PoolTimeoutError, RetryPolicy
from reactor import CancelledError, Deferred, Reactor
from reactor.task import Clock, LoopingCall, deferLater
from tests.adbapi_support import (  # noqa: F401
    LONG_QUERY,
    PID_QUERY,
    Backend,
    isActive,
    lanesFixture,
    poolThreads,
    runReactor,
    uniqueName,
    until,
    within,
)


def test_retryOnConflictRerunsALaneStatement(lanes: Backend, uniqueTableName: str) -> None:
    """A lane statement failing with a serialization failure (40001) is re-run by cp_retry."""
    seq = f"{uniqueTableName}_s"
    func = f"{uniqueTableName}_f"
    lanes.admin(f"CREATE SEQUENCE {seq}")
    lanes.admin(
        f"CREATE FUNCTION {func}() RETURNS int LANGUAGE plpgsql AS $$ BEGIN "
        f"IF nextval('{seq}') = 1 THEN RAISE EXCEPTION 'conflict' USING ERRCODE = '40001'; END IF; "
        "RETURN 7; END $$"
    )

    async def body(reactor: Reactor) -> Any:
        pool = lanes.pool(reactor, cp_min=1, cp_max=2, cp_retry=RetryPolicy(attempts=3, backoff=0.01))
        rows = await pool.runQuery(f"SELECT {func}()")
        stats = pool.statistics()
        await pool.close()
        return rows, stats

    try:
        rows, stats = runReactor(body)
    finally:
        lanes.admin(f"DROP FUNCTION IF EXISTS {func}()")
        lanes.admin(f"DROP SEQUENCE IF EXISTS {seq}")
    assert rows == [(7,)]
    assert stats.retries == 1 and stats.lanes >= 1


@pytest.mark.parametrize("seed", range(6))
def test_mixedStressStaysWithinCpMaxAndFiresEverything(lanes: Backend, seed: int) -> None:
    """Random runQuery / runInteraction / cancels / timeouts on cp_max=3: never more than 3 slots, every
    Deferred fires, the close fires and no pool thread is left."""
    name = uniqueName("stress")
    rng = random.Random(seed)
    maxSeen: list[int] = [0]

    async def body(reactor: Reactor) -> Any:
        # The health settings, the wait timeout and the random cancels run on a Clock the loop below moves
        # on by a random step now and then, so retirements and timeouts happen mid-stress with no pause in
        # real time. The loop keeps a random 3-12 calls in flight, issuing more as earlier ones end (as the
        # random real-time pauses used to let them), so the clock does not time out a queue of hundreds.
        clock = Clock()
        inFlight = [0]
        ended: list[Deferred[None]] = []

        def oneEnded(_: object) -> None:
            inFlight[0] -= 1
            if ended:
                ended.pop().callback(None)

        pool = lanes.pool(reactor, cp_min=0, cp_max=3, cp_name=name, cp_wait_timeout=0.15,
                          cp_ping_after=0.005, cp_idle_timeout=0.02, cp_max_lifetime=0.05, cp_clock=clock)

        def sample() -> None:
            s = pool.statistics()
            maxSeen[0] = max(maxSeen[0], s.workers + s.lanes)

        loop = LoopingCall(sample)
        loop.clock = reactor
        loop.start(0.001)
        ds: list[Deferred[Any]] = []
        for i in range(300):
            r = rng.random()
            if r < 0.55:
                d = pool.runQuery("SELECT %s::int, pg_sleep(%s)", (i, rng.choice([0, 0, 0.002, 0.01])))
            elif r < 0.75:
                d = pool.runInteraction(lambda t, i=i: (t.execute("SELECT %s::int", (i,)), t.fetchall())[1])
            elif r < 0.85:
                d = pool.runOperation("SELECT pg_sleep(0.01)")
            else:
                d = pool.runQuery("SELECT pg_sleep(0.2)")
                clock.callLater(rng.random() * 0.05, d.cancel)
            d.addErrback(lambda f: f.trap(CancelledError, PoolTimeoutError))
            ds.append(d)
            inFlight[0] += 1
            d.addBoth(oneEnded)
            sample()
            if rng.random() < 0.3:
                clock.advance(rng.random() * 0.01)
                await deferLater(reactor, 0)  # one turn of the loop: lanes read, results come home
            limit = rng.randint(3, 12)
            while inFlight[0] > limit:
                clock.advance(rng.random() * 0.01)  # time passes while the loop waits
                waiter: Deferred[None] = Deferred()
                ended.append(waiter)
                await within(reactor, waiter, "one of the calls in flight ending")
        clock.advance(0.05)  # the cancels still pending
        for d in ds:
            await d
        await pool.close()
        loop.stop()
        return pool.statistics()

    stats = runReactor(body, timeout=60)
    assert maxSeen[0] <= 3
    assert stats.state == "closed"
    assert poolThreads(name) == []


@pytest.mark.parametrize("nonblocking", [False, True], ids=["workers", "lanes"])
def test_closeThenStopWithACancelInFlightLeavesNoThread(lanes: Backend, nonblocking: bool) -> None:
    """Twisted's idiom ``pool.close(); reactor.stop()`` (close's Deferred ignored, as the docs allow) with a
    statement being cancelled: the pool's threads end promptly (within 3 s of run() returning).

    On lanes, the reactor's 'during shutdown' connectionLost ends the lane's call without setting the
    call's ``statementOver``: the cancel side thread keeps looping (and sending cancels) for 10 s."""
    name = uniqueName("closestop")
    reactor = Reactor()
    outcome: list[Any] = []

    async def main() -> None:
        pool = lanes.pool(reactor, cp_min=1, cp_max=2, cp_name=name, cp_nonblocking=nonblocking)
        pid = (await pool.runQuery(PID_QUERY))[0][0]
        d = pool.runQuery(LONG_QUERY)
        d.addBoth(outcome.append)
        await until(reactor, lambda: isActive(lanes, pid), "the long statement on the server")
        d.cancel()
        pool.close()
        reactor.stop()

    reactor.callWhenRunning(lambda: Deferred.fromCoroutine(main()))
    guard = reactor.callLater(10, reactor.crash)
    reactor.run(installSignalHandlers=False)
    timedOut = not guard.active()
    if not timedOut:
        guard.cancel()
    deadline = time.monotonic() + 3.0
    for t in threading.enumerate():
        if t.name.startswith(f"PoolThread-{name}-"):
            t.join(max(0.0, deadline - time.monotonic()))
    left = poolThreads(name)
    reactor.close()
    assert not timedOut
    assert left == [], left


@pytest.mark.parametrize("nonblocking", [False, True], ids=["workers", "lanes"])
def test_runQueryErrorInsideTheStatementsOwnTransactionDoesNotCommitIt(lanes: Backend, uniqueTableName: str,
                                                                      nonblocking: bool) -> None:
    """runQuery("BEGIN; INSERT ...") fails (no result set to fetch); docs/adbapi.md says a statement that
    leaves a transaction open is "rolled back after an error" (Twisted rolls back too): the row must not
    be committed while the caller gets the error."""
    table = lanes.createTable(uniqueTableName)

    async def body(reactor: Reactor) -> Any:
        pool = lanes.pool(reactor, cp_min=1, cp_max=2, cp_nonblocking=nonblocking)
        with pytest.raises(psycopg2.ProgrammingError):
            await pool.runQuery(f"BEGIN; INSERT INTO {table} (id, v) VALUES (1, 1)")
        stats = pool.statistics()
        await pool.close()
        return stats

    stats = runReactor(body)
    assert (stats.lanes > 0) == nonblocking
    assert lanes.admin(f"SELECT count(*) FROM {table}")[0][0] == 0


@pytest.mark.parametrize("nonblocking", [False, True], ids=["workers", "lanes"])
def test_runQueryOfAStatementWithoutRowsIsRolledBack(lanes: Backend, uniqueTableName: str,
                                                     nonblocking: bool) -> None:
    """runQuery("INSERT ...") errbacks the driver's "no results to fetch" and, as in Twisted, nothing is
    committed (the statement ran inside a transaction block, not in autocommit mode)."""
    table = lanes.createTable(uniqueTableName)

    async def body(reactor: Reactor) -> Any:
        pool = lanes.pool(reactor, cp_min=1, cp_max=2, cp_nonblocking=nonblocking)
        with pytest.raises(psycopg2.ProgrammingError):
            await pool.runQuery(f"INSERT INTO {table} (id, v) VALUES (1, 1)")
        rows = await pool.runQuery(f"SELECT count(*) FROM {table}")
        return rows, pool.statistics()

    rows, stats = runReactor(body)
    assert rows == [(0,)]
    assert (stats.lanes > 0) == nonblocking
    assert lanes.admin(f"SELECT count(*) FROM {table}")[0][0] == 0


@pytest.mark.parametrize("nonblocking", [False, True], ids=["workers", "lanes"])
def test_runQueryReturningRowsStaysOutsideATransactionBlock(lanes: Backend, uniqueTableName: str,
                                                            nonblocking: bool) -> None:
    """A SELECT, or an INSERT ... RETURNING, keeps the one-round-trip path: it runs as its own implicit
    transaction, where now() is the statement's own start time."""
    table = lanes.createTable(uniqueTableName)

    async def body(reactor: Reactor) -> Any:
        pool = lanes.pool(reactor, cp_min=1, cp_max=2, cp_nonblocking=nonblocking)
        selected = await pool.runQuery("SELECT now() = statement_timestamp()")
        inserted = await pool.runQuery(
            f"INSERT INTO {table} (id, v) VALUES (1, 1) RETURNING now() = statement_timestamp()")
        return selected, inserted

    assert runReactor(body) == ([(True,)], [(True,)])
    assert lanes.admin(f"SELECT count(*) FROM {table}")[0][0] == 1


@pytest.mark.parametrize("nonblocking", [False, True], ids=["workers", "lanes"])
def test_runOperationThatNeedsATransactionBlockRunsInOne(lanes: Backend, uniqueTableName: str,
                                                         nonblocking: bool) -> None:
    """LOCK TABLE, refused outside a transaction block, runs inside one (as Twisted's BEGIN gives it), and
    the lock is gone once the call fired."""
    table = lanes.createTable(uniqueTableName)

    async def body(reactor: Reactor) -> Any:
        pool = lanes.pool(reactor, cp_min=1, cp_max=2, cp_nonblocking=nonblocking)
        await pool.runOperation(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
        await pool.runOperation(f"INSERT INTO {table} (id, v) VALUES (1, 1)")
        return pool.statistics()

    stats = runReactor(body)
    assert (stats.lanes > 0) == nonblocking
    assert stats.errors == 0
    assert lanes.admin(f"SELECT count(*) FROM {table}")[0][0] == 1
