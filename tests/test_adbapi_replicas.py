"""adbapi.ReplicatedPool: writes on the primary, reads on healthy replicas, read-your-writes.

Two halves. The routing decisions run on real sqlite3 pools (one file per member, each holding its own
name, so a read tells where it ran) while the health checks' results and time are the test's: a fake
``healthCheck`` and a :class:`reactor.task.Clock`. Then end to end on a real PostgreSQL primary and a real
streaming hot standby (tests/pgcluster_support.py, one pair shared by the module), with the default
``standbyLag`` check on the real clock.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import adbapi
from adbapi import ConnectionLost, ConnectionPool, ReplicaState, ReplicatedPool, Transaction
from deferthreads import deferToExecutor
from reactor import CancelledError, Deferred, Reactor, fail, succeed
from reactor.task import Clock
from tests.adbapi_support import runReactor, until, within
from tests.pgcluster_support import PgCluster, pgcluster, pgclusterTemplates

__all__ = ["pgcluster", "pgclusterTemplates"]  # the fixtures, imported for the tests below


# -- routing decisions: sqlite3 members, fake health results, a Clock ------------------------------


class FakeHealth:
    """A healthCheck whose answers the test sets per member name: a lag, an exception, or None (pending)."""

    def __init__(self, **answers: float | Exception | None) -> None:
        self.answers: dict[str, float | Exception | None] = dict(answers)
        self.pending: list[Deferred[float]] = []
        self.asked: list[str] = []

    def __call__(self, pool: ConnectionPool) -> Deferred[float]:
        name = pool.statistics().name
        self.asked.append(name)
        answer = self.answers[name]
        if answer is None:
            d: Deferred[float] = Deferred()
            self.pending.append(d)
            return d
        if isinstance(answer, Exception):
            return fail(answer)
        return succeed(answer)


@pytest.fixture
def files(tmp_path: Any) -> dict[str, str]:
    """One sqlite3 file per member, each with a table naming it and a counter to write to."""
    paths = {}
    for name in ("primary", "r1", "r2"):
        path = os.path.join(tmp_path, f"{name}.sqlite")
        with sqlite3.connect(path) as conn:
            conn.execute("CREATE TABLE who (name TEXT, n INTEGER)")
            conn.execute("INSERT INTO who VALUES (?, 0)", (name,))
        paths[name] = path
    return paths


def sqlitePool(files: dict[str, str], name: str, reactor: Reactor) -> ConnectionPool:
    return ConnectionPool("sqlite3", files[name], cp_min=1, cp_max=2, cp_name=name, cp_reactor=reactor,
                          check_same_thread=False)


def router(files: dict[str, str], reactor: Reactor, health: FakeHealth, clock: Clock,
           **kw: Any) -> ReplicatedPool:
    return ReplicatedPool(sqlitePool(files, "primary", reactor),
                          [sqlitePool(files, "r1", reactor), sqlitePool(files, "r2", reactor)],
                          healthCheck=health, clock=clock, **kw)


async def where(view: Any) -> str:
    """The name of the member a read through ``view`` ran on."""
    rows = await view.runQuery("SELECT name FROM who")
    return str(rows[0][0])


def test_writesAndPlainCallsGoToThePrimary(files: dict[str, str]) -> None:
    """runQuery/runOperation/runInteraction/runWithConnection/transaction on the router run on the primary."""
    clock = Clock()

    def name(txn: Transaction) -> str:
        txn.execute("SELECT name FROM who")
        return str(txn.fetchall()[0][0])

    async def body(reactor: Reactor) -> list[str]:
        pool = router(files, reactor, FakeHealth(r1=0.0, r2=0.0), clock)
        seen = [await where(pool), await pool.runInteraction(name),
                await pool.runWithConnection(lambda conn: conn.cursor().execute("SELECT name FROM who")
                                             .fetchall()[0][0])]
        await pool.runOperation("UPDATE who SET n = n + 1")
        async with pool.transaction() as txn:
            await txn.execute("SELECT name FROM who")
            seen.append((await txn.fetchall())[0][0])
        await pool.close()
        return seen

    assert runReactor(body) == ["primary"] * 4
    with sqlite3.connect(files["primary"]) as conn:
        assert conn.execute("SELECT n FROM who").fetchone() == (1,)


def test_readsTakeEquallyIdleReplicasInTurn(files: dict[str, str]) -> None:
    """Reads through pool.reads alternate between two idle, caught-up replicas (statistics, repr say so)."""

    async def body(reactor: Reactor) -> tuple[list[str], Any]:
        pool = router(files, reactor, FakeHealth(r1=0.0, r2=0.1), Clock())
        seen = [await where(pool.reads) for _ in range(6)]
        stats = pool.statistics()
        text = repr(pool.reads)
        await pool.close()
        return seen, stats, text

    seen, stats, text = runReactor(body)
    assert text == "<ReadView of <ReplicatedPool primary=primary replicas=[r1 up, r2 up]>>"
    assert seen == ["r1", "r2"] * 3
    assert [m.reads for m in stats.replicas] == [3, 3] and stats.primary.reads == 0
    assert [m.state for m in stats.replicas] == ["up", "up"]
    assert [m.lag for m in stats.replicas] == [0.0, 0.1]


def test_readsAvoidABusyReplica(files: dict[str, str]) -> None:
    """A replica running other work (busy in its statistics) gets no reads while an idle one is usable."""
    release = threading.Event()

    def hold(txn: Transaction) -> None:
        release.wait(10)

    async def body(reactor: Reactor) -> list[str]:
        pool = router(files, reactor, FakeHealth(r1=0.0, r2=0.0), Clock())
        held = pool.replicas[0].runInteraction(hold)
        await until(reactor, lambda: pool.replicas[0].statistics().busy == 1, "r1 busy")
        seen = [await where(pool.reads) for _ in range(4)]
        release.set()
        await held
        await pool.close()
        return seen

    try:
        assert runReactor(body) == ["r2"] * 4
    finally:
        release.set()


def test_primaryReadsMakesThePrimaryOneMoreReadMember(files: dict[str, str]) -> None:
    """With primaryReads=True reads take the primary in turn with the usable replicas."""

    async def body(reactor: Reactor) -> list[str]:
        pool = router(files, reactor, FakeHealth(r1=0.0, r2=OSError("down")), Clock(), primaryReads=True)
        seen = [await where(pool.reads) for _ in range(4)]
        await pool.close()
        return seen

    assert runReactor(body) == ["r1", "primary"] * 2


def test_aReplicaLaggingPastMaxLagIsSkippedUntilItCatchesUp(files: dict[str, str]) -> None:
    """A check finding lag > maxLag takes the replica out of rotation; a later one within brings it back."""
    clock = Clock()
    health = FakeHealth(r1=12.0, r2=0.0)

    async def body(reactor: Reactor) -> tuple[list[str], list[str], list[str]]:
        pool = router(files, reactor, health, clock, maxLag=5.0, checkInterval=1.0)
        states = [m.state for m in pool.statistics().replicas]
        lagging = [await where(pool.reads) for _ in range(3)]
        health.answers["r1"] = 4.0
        clock.advance(1.0)
        back = [await where(pool.reads) for _ in range(2)]
        await pool.close()
        return states, lagging, back

    states, lagging, back = runReactor(body)
    assert states == [ReplicaState.LAGGING, ReplicaState.UP]
    assert lagging == ["r2"] * 3
    assert sorted(back) == ["r1", "r2"]
    assert health.asked == ["r1", "r2", "r1", "r2"]


def test_aReplicaWhoseCheckFailsIsDownUntilACheckSucceeds(files: dict[str, str]) -> None:
    """A failing check marks the replica down (its error in the statistics); a good one brings it back."""
    clock = Clock()
    health = FakeHealth(r1=0.0, r2=OSError("connection refused"))

    async def body(reactor: Reactor) -> tuple[Any, list[str], list[str]]:
        pool = router(files, reactor, health, clock)
        down = pool.statistics().replicas[1]
        seen = [await where(pool.reads) for _ in range(3)]
        health.answers["r2"] = 0.0
        clock.advance(1.0)
        after = [await where(pool.reads) for _ in range(2)]
        await pool.close()
        return down, seen, after

    down, seen, after = runReactor(body)
    assert down.state == "down" and down.lastError == "OSError: connection refused"
    assert seen == ["r1"] * 3
    assert sorted(after) == ["r1", "r2"]


def test_aCheckNotAnsweredWithinCheckTimeoutMarksTheReplicaDown(files: dict[str, str]) -> None:
    """A check still pending after checkTimeout is cancelled and counts as failed; rounds never overlap."""
    clock = Clock()
    health = FakeHealth(r1=0.0, r2=None)

    async def body(reactor: Reactor) -> tuple[str, str, int, bool]:
        pool = router(files, reactor, health, clock, checkInterval=1.0, checkTimeout=3.0)
        before = pool.statistics().replicas[1].state
        clock.advance(2.0)  # the round is still waiting for r2: no new round
        asked = len(health.asked)
        clock.advance(1.0)
        after = pool.statistics().replicas[1]
        cancelled = health.pending[0].called
        await pool.close()
        return before, after.state, asked, cancelled and "TimeoutError" in (after.lastError or "")

    before, after, asked, timedOut = runReactor(body)
    assert (before, after, asked, timedOut) == ("unknown", "down", 2, True)


def test_readsFallBackToThePrimaryWhenNoReplicaIsUsable(files: dict[str, str]) -> None:
    """Before any check answered, and with every replica down, reads run on the primary (counted)."""
    clock = Clock()
    health = FakeHealth(r1=None, r2=None)

    async def body(reactor: Reactor) -> tuple[list[str], Any]:
        pool = router(files, reactor, health, clock, checkTimeout=0.5)
        seen = [await where(pool.reads)]  # unknown: not checked yet
        clock.advance(0.5)  # both checks time out: down
        seen.append(await where(pool.reads))
        stats = pool.statistics()
        await pool.close()
        return seen, stats

    seen, stats = runReactor(body)
    assert seen == ["primary", "primary"]
    assert stats.fallbacks == 2 and stats.primary.reads == 2
    assert [m.state for m in stats.replicas] == ["down", "down"]


def test_withoutReplicasEveryReadRunsOnThePrimary(files: dict[str, str]) -> None:
    """An empty replica list is allowed (a deployment without standbys yet): reads go to the primary."""

    async def body(reactor: Reactor) -> str:
        pool = ReplicatedPool(sqlitePool(files, "primary", reactor), [], clock=Clock())
        seen = await where(pool.reads)
        await pool.close()
        return seen

    assert runReactor(body) == "primary"


def test_aCallerReadsItsOwnWritesFromThePrimaryForTheWindow(files: dict[str, str]) -> None:
    """After a write, that coroutine's reads (and those of coroutines it starts) go to the primary for
    readYourWrites seconds; a coroutine that did not write reads from replicas meanwhile."""
    clock = Clock()

    async def body(reactor: Reactor) -> dict[str, Any]:
        pool = router(files, reactor, FakeHealth(r1=0.0, r2=0.0), clock, readYourWrites=2.0)
        seen: dict[str, Any] = {}
        written: Deferred[None] = Deferred()
        proceed: Deferred[None] = Deferred()

        async def writer() -> None:
            seen["before"] = await where(pool.reads)
            await pool.runOperation("UPDATE who SET n = n + 1")
            seen["after"] = [await where(pool.reads) for _ in range(2)]
            seen["child"] = await Deferred.fromCoroutine(child())  # started after the write: shares it
            written.callback(None)
            await proceed
            clock.advance(1.9)
            seen["stillInWindow"] = await where(pool.reads)
            clock.advance(0.2)
            seen["afterWindow"] = await where(pool.reads)

        async def child() -> str:
            return await where(pool.reads)

        done = Deferred.fromCoroutine(writer())  # runs in a copy of this context
        await written
        seen["other"] = await where(pool.reads)  # this coroutine wrote nothing
        proceed.callback(None)
        await done
        seen["stats"] = pool.statistics()
        await pool.close()
        return seen

    seen = runReactor(body)
    assert seen["before"] in ("r1", "r2")
    assert seen["after"] == ["primary", "primary"] and seen["child"] == "primary"
    assert seen["other"] in ("r1", "r2")
    assert seen["stillInWindow"] == "primary"
    assert seen["afterWindow"] in ("r1", "r2")
    assert seen["stats"].readYourWrites == 4


def test_readYourWritesIsPerAsyncioTask(files: dict[str, str]) -> None:
    """On the asyncio reactor, each asyncio task is a caller: the writing task reads from the primary,
    a task running beside it from the replicas."""
    import asyncio

    from tests.netsupport import newReactor

    clock = Clock()

    async def body(reactor: Reactor) -> tuple[list[str], str]:
        pool = router(files, reactor, FakeHealth(r1=0.0, r2=0.0), clock, readYourWrites=2.0)
        written = asyncio.Event()

        async def writer() -> list[str]:
            await pool.runOperation("UPDATE who SET n = n + 1")
            written.set()
            seen = [await where(pool.reads)]
            await asyncio.sleep(0)
            seen.append(await where(pool.reads))
            return seen

        async def reader() -> str:
            await written.wait()
            return await where(pool.reads)

        loop = asyncio.get_running_loop()
        both = asyncio.gather(loop.create_task(writer()), loop.create_task(reader()))
        mine, theirs = await Deferred.fromFuture(both)
        await pool.close()
        return mine, theirs

    mine, theirs = runReactor(body, reactor=newReactor("asyncio"))
    assert mine == ["primary", "primary"] and theirs in ("r1", "r2")


def test_aWriteStillRunningKeepsItsCallersReadsOnThePrimary(files: dict[str, str]) -> None:
    """While a caller's write has not finished, its reads go to the primary whatever the window's clock."""
    clock = Clock()
    release = threading.Event()

    def slowWrite(txn: Transaction) -> None:
        release.wait(10)
        txn.execute("UPDATE who SET n = n + 1")

    async def body(reactor: Reactor) -> tuple[str, str]:
        pool = router(files, reactor, FakeHealth(r1=0.0, r2=0.0), clock, readYourWrites=0.5)
        write = pool.runInteraction(slowWrite)
        clock.advance(10)
        during = await where(pool.reads)
        release.set()
        await write
        clock.advance(0.5)
        after = await where(pool.reads)
        await pool.close()
        return during, after

    try:
        during, after = runReactor(body)
    finally:
        release.set()
    assert during == "primary" and after in ("r1", "r2")


def test_readYourWritesZeroSendsReadsToReplicasRightAfterAWrite(files: dict[str, str]) -> None:
    """readYourWrites=0 turns read-your-writes off."""

    async def body(reactor: Reactor) -> str:
        pool = router(files, reactor, FakeHealth(r1=0.0, r2=0.0), Clock(), readYourWrites=0)
        await pool.runOperation("UPDATE who SET n = n + 1")
        seen = await where(pool.reads)
        await pool.close()
        return seen

    assert runReactor(body) in ("r1", "r2")


def test_aReadThatLostItsReplicaRunsOnceMoreElsewhereAndMarksItDown(files: dict[str, str]) -> None:
    """A read whose replica errbacks ConnectionLost is run again on another member; the replica is down."""

    def lostOnR1(txn: Transaction) -> str:
        txn.execute("SELECT name FROM who")
        name = str(txn.fetchall()[0][0])
        if name == "r1":
            raise ConnectionLost("the database connection was lost")
        return name

    async def body(reactor: Reactor) -> tuple[str, Any]:
        pool = router(files, reactor, FakeHealth(r1=0.0, r2=0.0), Clock())
        seen = await pool.reads.runInteraction(lostOnR1)  # r1 first (taken in turn)
        stats = pool.statistics()
        await pool.close()
        return seen, stats

    seen, stats = runReactor(body)
    assert seen == "r2"
    assert stats.rerouted == 1 and stats.replicas[0].state == "down"


def test_otherErrorsOfAReadReachTheCallerUnchanged(files: dict[str, str]) -> None:
    """A read's own error (bad SQL; sqlite3 calls it OperationalError, so a check runs at once and finds
    the replica fine) reaches the caller unchanged, is not run again, and leaves the replica up."""

    async def body(reactor: Reactor) -> tuple[type[BaseException], Any]:
        pool = router(files, reactor, FakeHealth(r1=0.0, r2=0.0), Clock())
        try:
            await pool.reads.runQuery("SELECT nope FROM nowhere")
        except Exception as e:
            error: type[BaseException] = type(e)
        stats = pool.statistics()
        await pool.close()
        return error, stats

    error, stats = runReactor(body)
    assert error is sqlite3.OperationalError
    assert stats.rerouted == 0 and [m.state for m in stats.replicas] == ["up", "up"]


def test_cancellingAReadCancelsItOnItsReplica(files: dict[str, str]) -> None:
    """Cancelling a read's Deferred cancels the call on the replica running it; nothing is rerun."""
    forever = "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) SELECT count(*) FROM r"

    async def body(reactor: Reactor) -> tuple[bool, Any, str]:
        pool = router(files, reactor, FakeHealth(r1=0.0, r2=0.0), Clock())
        d = pool.reads.runQuery(forever)
        await until(reactor, lambda: pool.replicas[0].statistics().busy == 1, "the read running on r1")
        d.cancel()
        try:
            await d
            cancelled = False
        except CancelledError:
            cancelled = True
        stats = pool.statistics()
        after = await where(pool.reads)
        await pool.close()
        return cancelled, stats, after

    cancelled, stats, after = runReactor(body)
    assert cancelled and stats.rerouted == 0
    assert [m.state for m in stats.replicas] == ["up", "up"] and after in ("r1", "r2")


def test_closeStopsTheChecksAndClosesEveryMemberPool(files: dict[str, str]) -> None:
    """close() stops the LoopingCall and fires once the primary and every replica pool have closed."""
    clock = Clock()
    health = FakeHealth(r1=0.0, r2=0.0)

    async def body(reactor: Reactor) -> tuple[list[str], int]:
        pool = router(files, reactor, health, clock)
        await pool.close()
        clock.advance(5)
        stats = pool.statistics()
        return [m.pool.state for m in (stats.primary, *stats.replicas)], len(health.asked)

    states, asked = runReactor(body)
    assert states == ["closed"] * 3 and asked == 2


def test_checksStopAtShutdownAndStartRestartsThemOnTheNextRun(files: dict[str, str]) -> None:
    """The reactor's shutdown stops the checks (and closes the member pools); run again, start() restarts
    both."""
    health = FakeHealth(r1=0.0, r2=0.0)
    reactor = Reactor()
    try:
        pool = ReplicatedPool(sqlitePool(files, "primary", reactor),
                              [sqlitePool(files, "r1", reactor), sqlitePool(files, "r2", reactor)],
                              healthCheck=health, clock=reactor, checkInterval=60)

        async def first(reactor: Reactor) -> str:
            return await where(pool.reads)

        async def second(reactor: Reactor) -> tuple[int, str]:
            asked = len(health.asked)
            pool.start()
            seen = await where(pool.reads)
            result = len(health.asked) - asked, seen
            await pool.close()
            return result

        assert runReactor(first, reactor=_Reusable(reactor)) in ("r1", "r2")
        assert len(health.asked) == 2
        restarted, seen = runReactor(second, reactor=reactor)
        assert restarted == 2 and seen in ("r1", "r2")
    finally:
        if not reactor.running:
            reactor.close()


class _Reusable:
    """Hands runReactor a reactor it must not close (the test runs it again)."""

    def __init__(self, reactor: Reactor) -> None:
        self._reactor = reactor

    def __getattr__(self, name: str) -> Any:
        if name == "close":
            return lambda: None
        return getattr(self._reactor, name)


def test_badArgumentsAreRefusedNamingThem(files: dict[str, str]) -> None:
    """Wrong members, numbers or hooks raise TypeError/ValueError naming the argument."""
    reactor = Reactor()
    try:
        primary = sqlitePool(files, "primary", reactor)
        replica = sqlitePool(files, "r1", reactor)
        cases: list[tuple[Any, dict[str, Any], type[Exception], str]] = [
            ("primary", {"replicas": []}, TypeError, "primary"),
            (primary, {"replicas": "r1"}, TypeError, "replicas"),
            (primary, {"replicas": [replica, 3]}, TypeError, r"replicas\[1\]"),
            (primary, {"replicas": [replica, replica]}, ValueError, r"replicas\[1\]"),
            (primary, {"replicas": [primary]}, ValueError, r"replicas\[0\]"),
            (primary, {"replicas": [], "maxLag": -1}, ValueError, "maxLag"),
            (primary, {"replicas": [], "checkInterval": 0}, ValueError, "checkInterval"),
            (primary, {"replicas": [], "checkTimeout": "2"}, TypeError, "checkTimeout"),
            (primary, {"replicas": [], "readYourWrites": float("nan")}, TypeError, "readYourWrites"),
            (primary, {"replicas": [], "healthCheck": 5}, TypeError, "healthCheck"),
            (primary, {"replicas": [], "primaryReads": 1}, TypeError, "primaryReads"),
            (primary, {"replicas": [], "clock": object()}, TypeError, "clock"),
        ]
        for first, kw, error, match in cases:
            with pytest.raises(error, match=match):
                ReplicatedPool(first, **kw)
    finally:
        reactor.close()


def test_theRouterIsExportedWithItsParts() -> None:
    """adbapi exports ReplicatedPool, its view, states, statistics and the default check."""
    for name in ("ReplicatedPool", "ReadView", "ReplicaState", "ReplicatedStatistics", "MemberStatistics",
                 "standbyLag"):
        assert name in adbapi.__all__ and hasattr(adbapi, name)


# -- end to end: a real primary and a real streaming standby ------------------------------------------


@pytest.fixture
def table(pgcluster: PgCluster) -> Iterator[str]:
    """A table on the cluster's primary (replicated to the standby), dropped afterwards."""
    import uuid

    name = f"t_rep_{uuid.uuid4().hex[:12]}"
    pgcluster.primary.query(f"CREATE TABLE {name} (id INTEGER PRIMARY KEY)")
    pgcluster.waitForReplay()
    yield name
    pgcluster.primary.query(f"DROP TABLE IF EXISTS {name}")


def clusterRouter(cluster: PgCluster, reactor: Reactor, driver: str = "psycopg2",
                  **kw: Any) -> ReplicatedPool:
    def pool(dsn: str, name: str) -> ConnectionPool:
        return ConnectionPool(driver, dsn, cp_min=1, cp_max=3, cp_name=name, cp_reconnect=True,
                              cp_reactor=reactor)

    kw.setdefault("checkInterval", 0.05)
    return ReplicatedPool(pool(cluster.primary.dsn, "primary"), [pool(cluster.standby.dsn, "standby")],
                          clock=reactor, **kw)


RECOVERY = "SELECT pg_is_in_recovery()"


def blocking(reactor: Reactor, f: Callable[..., Any], *args: Any) -> Deferred[Any]:
    """Run ``f(*args)`` (pg_ctl, an admin query) in a thread of its own; fires in ``reactor``'s thread."""
    executor = ThreadPoolExecutor(1, thread_name_prefix="replicas-admin")
    d = deferToExecutor(reactor, executor, f, *args)
    executor.shutdown(wait=False)  # the thread ends once f returns
    return d


@pytest.mark.parametrize("driver", ["psycopg2", "psycopg"])
def test_readsRunOnTheStandbyAndWritesOnThePrimary(pgcluster: PgCluster, table: str, driver: str) -> None:
    """Once checked, reads run on the hot standby (in recovery) and everything else on the primary."""

    async def body(reactor: Reactor) -> tuple[Any, ...]:
        pool = clusterRouter(pgcluster, reactor, driver, readYourWrites=0)
        await until(reactor, lambda: pool.statistics().replicas[0].state == "up", "the standby is up")
        await pool.runOperation(f"INSERT INTO {table} VALUES (1)")
        onPrimary = (await pool.runQuery(RECOVERY))[0][0]
        onStandby = (await pool.reads.runQuery(RECOVERY))[0][0]
        lag = pool.statistics().replicas[0].lag
        await pool.close()
        return onPrimary, onStandby, lag

    onPrimary, onStandby, lag = runReactor(body)
    assert (onPrimary, onStandby) == (False, True)
    assert lag is not None and lag < 5.0


def test_standbyLagIsZeroForACaughtUpStandbyAndThePrimary(pgcluster: PgCluster) -> None:
    """The default check measures 0 on a streaming standby that replayed everything (asked by a role
    without pg_read_all_stats too) and on a primary, however long ago the last write was."""
    pgcluster.primary.query("DO $$ BEGIN CREATE ROLE plain LOGIN; EXCEPTION WHEN duplicate_object THEN "
                            "NULL; END $$")

    async def body(reactor: Reactor) -> tuple[float, float, float]:
        await blocking(reactor, pgcluster.waitForReplay)
        standby = ConnectionPool("psycopg2", pgcluster.standby.dsn, cp_min=1, cp_max=1, cp_reactor=reactor)
        plain = ConnectionPool("psycopg2", pgcluster.standby.dsn.replace("user=postgres", "user=plain"),
                               cp_min=1, cp_max=1, cp_reactor=reactor)
        primary = ConnectionPool("psycopg2", pgcluster.primary.dsn, cp_min=1, cp_max=1, cp_reactor=reactor)
        lags = (await adbapi.standbyLag(standby), await adbapi.standbyLag(plain),
                await adbapi.standbyLag(primary))
        for pool in (standby, plain, primary):
            await pool.close()
        return lags

    assert runReactor(body) == (0.0, 0.0, 0.0)


def test_aStandbyWithReplayPausedLagsAndReadsMoveToThePrimary(pgcluster: PgCluster, table: str) -> None:
    """Replay paused on the standby while the primary writes: the lag passes maxLag, reads fall back;
    replay resumed: the standby is back."""

    async def body(reactor: Reactor) -> tuple[bool, float, bool]:
        pool = clusterRouter(pgcluster, reactor, maxLag=0.3, readYourWrites=0)
        await until(reactor, lambda: pool.statistics().replicas[0].state == "up", "the standby is up")
        await blocking(reactor, pgcluster.standby.query, "SELECT pg_wal_replay_pause()")
        try:
            await pool.runOperation(f"INSERT INTO {table} VALUES (1)")
            await until(reactor, lambda: pool.statistics().replicas[0].state == "lagging", "lagging", 10)
            lag = pool.statistics().replicas[0].lag
            fellBack = (await pool.reads.runQuery(RECOVERY))[0][0] is False
        finally:
            await blocking(reactor, pgcluster.standby.query, "SELECT pg_wal_replay_resume()")
        await until(reactor, lambda: pool.statistics().replicas[0].state == "up", "up again", 10)
        back = (await pool.reads.runQuery(RECOVERY))[0][0]
        await pool.close()
        assert lag is not None
        return fellBack, lag, back

    fellBack, lag, back = runReactor(body, timeout=30)
    assert fellBack and lag > 0.3 and back is True


def test_aWriterReadsItsRowAtOnceWhileOthersSeeTheStandby(pgcluster: PgCluster, table: str) -> None:
    """Read-your-writes on real servers: with replay paused, the writing coroutine sees its new row
    (primary); another coroutine reading at the same moment does not (standby)."""

    async def body(reactor: Reactor) -> tuple[int, int]:
        pool = clusterRouter(pgcluster, reactor, maxLag=60.0, readYourWrites=5.0)
        await until(reactor, lambda: pool.statistics().replicas[0].state == "up", "the standby is up")
        await blocking(reactor, pgcluster.standby.query, "SELECT pg_wal_replay_pause()")
        count = f"SELECT count(*) FROM {table}"

        async def writer() -> int:
            await pool.runOperation(f"INSERT INTO {table} VALUES (7)")
            return int((await pool.reads.runQuery(count))[0][0])

        async def reader() -> int:
            return int((await pool.reads.runQuery(count))[0][0])

        try:
            mine = await Deferred.fromCoroutine(writer())
            theirs = await Deferred.fromCoroutine(reader())
        finally:
            await blocking(reactor, pgcluster.standby.query, "SELECT pg_wal_replay_resume()")
        await pool.close()
        return mine, theirs

    assert runReactor(body, timeout=30) == (1, 0)


def test_aStandbyThatStopsIsSkippedAndItsReadRerunOnThePrimary(pgcluster: PgCluster) -> None:
    """The standby stopped: the read that finds its connection dead runs again on the primary, the
    standby is down; started again, a check brings it back."""

    async def body(reactor: Reactor) -> tuple[Any, ...]:
        pool = clusterRouter(pgcluster, reactor, checkInterval=0.2)
        await until(reactor, lambda: pool.statistics().replicas[0].state == "up", "the standby is up")
        assert (await pool.reads.runQuery(RECOVERY))[0][0] is True  # the standby's connection is open
        await blocking(reactor, pgcluster.standby.stop, "fast")
        try:
            rerun = (await within(reactor, pool.reads.runQuery(RECOVERY), "the read"))[0][0]
            stats = pool.statistics()
        finally:
            await blocking(reactor, pgcluster.standby.start)
        await until(reactor, lambda: pool.statistics().replicas[0].state == "up", "up again", 15)
        back = (await pool.reads.runQuery(RECOVERY))[0][0]
        await pool.close()
        return rerun, stats, back

    rerun, stats, back = runReactor(body, timeout=40)
    assert rerun is False and back is True
    assert stats.rerouted + stats.fallbacks >= 1 and stats.replicas[0].state == "down"

