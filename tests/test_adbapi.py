"""adbapi: the Twisted-compatible API, run against sqlite3, psycopg2/PostgreSQL and PyMySQL/MariaDB."""

from __future__ import annotations

import threading
from typing import Any

import pytest

import adbapi
from adbapi import Connection, ConnectionPool, PoolClosedError, Transaction
from reactor import Deferred, Reactor
from tests.adbapi_support import Backend, backendFixture, runReactor  # noqa: F401


def runUntilStopped(reactor: Reactor, close: bool = True) -> None:
    """Run ``reactor`` until the test's own code stops it; fail if that takes over 20 s (then close it)."""
    guard = reactor.callLater(20, reactor.crash)
    reactor.run(installSignalHandlers=False)
    assert guard.active(), "the reactor did not stop within 20 s"
    guard.cancel()
    if close:
        reactor.close()

def test_runQueryReturnsRows(backend: Backend, uniqueTableName: str) -> None:
    """runQuery fires with fetchall() of the statement."""
    table = backend.createTable(uniqueTableName)
    backend.admin(f"INSERT INTO {table} (id, v) VALUES (1, 10), (2, 20)")

    async def body(reactor: Reactor) -> Any:
        pool = backend.pool(reactor, cp_min=1, cp_max=2)
        return await pool.runQuery(backend.sql(f"SELECT id, v FROM {table} WHERE v > ? ORDER BY id"), (5,))

    assert [tuple(r) for r in runReactor(body)] == [(1, 10), (2, 20)]


def test_runOperationCommitsAndReturnsNone(backend: Backend, uniqueTableName: str) -> None:
    """runOperation fires with None and its change is committed (visible to another connection)."""
    table = backend.createTable(uniqueTableName)

    async def body(reactor: Reactor) -> Any:
        pool = backend.pool(reactor, cp_min=1, cp_max=2)
        return await pool.runOperation(backend.sql(f"INSERT INTO {table} (id, v) VALUES (?, ?)"), (1, 7))

    assert runReactor(body) is None
    assert [tuple(r) for r in backend.admin(f"SELECT id, v FROM {table}")] == [(1, 7)]


def test_runInteractionCommitsOnReturn(backend: Backend, uniqueTableName: str) -> None:
    """runInteraction gets a Transaction, fires with its return value and commits."""
    table = backend.createTable(uniqueTableName)

    def interaction(txn: Transaction, n: int) -> str:
        assert isinstance(txn, Transaction)
        for i in range(n):
            txn.execute(backend.sql(f"INSERT INTO {table} (id, v) VALUES (?, ?)"), (i, i * i))
        return "done"

    async def body(reactor: Reactor) -> Any:
        pool = backend.pool(reactor, cp_min=1, cp_max=2)
        return await pool.runInteraction(interaction, 3)

    assert runReactor(body) == "done"
    assert backend.admin(f"SELECT count(*) FROM {table}")[0][0] == 3


def test_runInteractionRollsBackOnError(backend: Backend, uniqueTableName: str) -> None:
    """An interaction that raises errbacks with that exception and its writes are rolled back."""
    table = backend.createTable(uniqueTableName)

    def interaction(txn: Transaction) -> None:
        txn.execute(backend.sql(f"INSERT INTO {table} (id, v) VALUES (?, ?)"), (1, 1))
        raise KeyError("nope")

    async def body(reactor: Reactor) -> Any:
        pool = backend.pool(reactor, cp_min=1, cp_max=1)
        with pytest.raises(KeyError):
            await pool.runInteraction(interaction)
        return await pool.runQuery(f"SELECT count(*) FROM {table}")

    assert runReactor(body)[0][0] == 0


def test_databaseErrorArrivesAsDriverClass(backend: Backend, uniqueTableName: str) -> None:
    """A failing statement errbacks with the driver's own exception class; the connection stays usable."""
    table = backend.createTable(uniqueTableName)

    async def body(reactor: Reactor) -> Any:
        pool = backend.pool(reactor, cp_min=1, cp_max=1)
        await pool.runOperation(backend.sql(f"INSERT INTO {table} (id, v) VALUES (?, ?)"), (1, 1))
        with pytest.raises(backend.module.IntegrityError):
            await pool.runOperation(backend.sql(f"INSERT INTO {table} (id, v) VALUES (?, ?)"), (1, 2))
        with pytest.raises(backend.module.Error):
            await pool.runQuery("SELECT * FROM no_such_table_adbapi_x")
        rows = await pool.runQuery(f"SELECT v FROM {table}")
        return rows, pool.statistics()

    rows, stats = runReactor(body)
    assert [tuple(r) for r in rows] == [(1,)]
    assert stats.errors == 2 and stats.reconnects == 0


def test_runWithConnectionCommits(backend: Backend, uniqueTableName: str) -> None:
    """runWithConnection gets a Connection wrapper; its work is committed when it returns."""
    table = backend.createTable(uniqueTableName)

    def work(conn: Connection, v: int) -> int:
        assert isinstance(conn, Connection)
        cursor = conn.cursor()
        cursor.execute(backend.sql(f"INSERT INTO {table} (id, v) VALUES (?, ?)"), (1, v))
        cursor.close()
        conn.close()  # ignored, as in Twisted
        return v

    async def body(reactor: Reactor) -> Any:
        pool = backend.pool(reactor, cp_min=1, cp_max=1)
        return await pool.runWithConnection(work, 5)

    assert runReactor(body) == 5
    assert backend.admin(f"SELECT v FROM {table}")[0][0] == 5


def test_runWithConnectionRollsBackOnError(backend: Backend, uniqueTableName: str) -> None:
    """runWithConnection rolls back when its function raises."""
    table = backend.createTable(uniqueTableName)

    def work(conn: Connection) -> None:
        cursor = conn.cursor()
        cursor.execute(backend.sql(f"INSERT INTO {table} (id, v) VALUES (?, ?)"), (1, 1))
        raise RuntimeError("undo")

    async def body(reactor: Reactor) -> None:
        pool = backend.pool(reactor, cp_min=1, cp_max=1)
        with pytest.raises(RuntimeError):
            await pool.runWithConnection(work)

    runReactor(body)
    assert backend.admin(f"SELECT count(*) FROM {table}")[0][0] == 0


def test_concurrentCallsUpToCpMax(backend: Backend) -> None:
    """Many concurrent calls all complete, on at most cp_max connections."""

    async def body(reactor: Reactor) -> Any:
        from reactor import gatherResults

        pool = backend.pool(reactor, cp_min=1, cp_max=3)
        results = await gatherResults([pool.runQuery(backend.sql("SELECT ?"), (i,)) for i in range(40)])
        return results, pool.statistics()

    results, stats = runReactor(body)
    assert [r[0][0] for r in results] == list(range(40))
    assert stats.connectionsOpened <= 3 and stats.calls == 40


def test_connectionsLiveInTheirWorkerThread(backend: Backend) -> None:
    """Each connection is opened, used and closed in one worker thread named after cp_name."""
    seen: list[tuple[str, int]] = []

    def interaction(txn: Transaction) -> None:
        seen.append((threading.current_thread().name, id(txn._connection._connection)))

    async def body(reactor: Reactor) -> None:
        from reactor import gatherResults

        pool = backend.pool(reactor, cp_min=2, cp_max=2, cp_name="named")
        await gatherResults([pool.runInteraction(interaction) for _ in range(10)])
        await pool.close()

    runReactor(body)
    byConn: dict[int, set[str]] = {}
    for name, conn in seen:
        byConn.setdefault(conn, set()).add(name)
        assert name.startswith("PoolThread-named-")
    assert all(len(names) == 1 for names in byConn.values())


def test_sqliteCheckSameThreadHolds(tmp_path: Any, caplog: pytest.LogCaptureFixture) -> None:
    """sqlite3 with its default check_same_thread=True works, including close at shutdown."""
    path = str(tmp_path / "same.sqlite")

    async def body(reactor: Reactor) -> Any:
        pool = ConnectionPool("sqlite3", path, cp_min=2, cp_max=3, cp_reactor=reactor)
        await pool.runOperation("CREATE TABLE t (a INTEGER)")
        await pool.runOperation("INSERT INTO t VALUES (1)")
        return await pool.runQuery("SELECT a FROM t")

    with caplog.at_level("WARNING", logger="adbapi"):
        assert runReactor(body) == [(1,)]
    assert "closing a connection failed" not in caplog.text


def test_openfunRunsOnEveryNewConnection(backend: Backend) -> None:
    """cp_openfun is called with each new DB-API connection, in its worker thread."""
    opened: list[str] = []

    def openfun(conn: Any) -> None:
        opened.append(threading.current_thread().name)

    async def body(reactor: Reactor) -> None:
        from reactor import gatherResults

        pool = backend.pool(reactor, cp_min=1, cp_max=2, cp_openfun=openfun)
        blockers = [threading.Event() for _ in range(2)]
        started = [Deferred[None]() for _ in range(2)]

        def hold(txn: Transaction, i: int) -> None:
            reactor.callFromThread(started[i].callback, None)
            blockers[i].wait(10)

        calls = [pool.runInteraction(hold, i) for i in range(2)]
        await gatherResults(started)
        for b in blockers:
            b.set()
        await gatherResults(calls)

    runReactor(body)
    assert len(opened) == 2 and all(n.startswith("PoolThread-") for n in opened)


def test_closeThenCallErrbacksAtOnce(backend: Backend) -> None:
    """After close() every call errbacks PoolClosedError immediately."""

    async def body(reactor: Reactor) -> Any:
        pool = backend.pool(reactor, cp_min=1, cp_max=1)
        await pool.runQuery("SELECT 1")
        closing = pool.close()
        d = pool.runQuery("SELECT 1")
        assert d.called
        with pytest.raises(PoolClosedError):
            await d
        await closing
        with pytest.raises(PoolClosedError):
            await pool.runInteraction(lambda txn: None)
        return pool.statistics()

    stats = runReactor(body)
    assert stats.state == "closed" and stats.workers == 0 and stats.connectionsOpen == 0


def test_closeWaitsForRunningAndQueuedCalls(backend: Backend) -> None:
    """close() lets the running and the queued calls finish before its Deferred fires."""

    async def body(reactor: Reactor) -> Any:
        pool = backend.pool(reactor, cp_min=1, cp_max=1)
        release = threading.Event()
        started: Deferred[None] = Deferred()

        def hold(txn: Transaction) -> str:
            reactor.callFromThread(started.callback, None)
            release.wait(10)
            return "first"

        first = pool.runInteraction(hold)
        await started
        second = pool.runQuery("SELECT 2")
        closing = pool.close()
        order: list[str] = []
        first.addCallback(lambda r: order.append(r))
        second.addCallback(lambda r: order.append("second"))
        closing.addCallback(lambda _: order.append("closed"))
        release.set()
        await closing
        return order

    assert runReactor(body) == ["first", "second", "closed"]


def test_reactorShutdownDrainsThePool(backend: Backend) -> None:
    """Stopping the reactor lets running and queued calls finish, refuses later ones, leaves no thread."""
    outcome: list[Any] = []
    release = threading.Event()

    def hold(txn: Transaction) -> str:
        release.wait(10)
        return "finished"

    reactor = Reactor()
    pool = backend.pool(reactor, cp_min=1, cp_max=1, cp_name="drain")

    def start() -> None:
        pool.runInteraction(hold).addBoth(outcome.append)
        for i in range(3):  # queued behind the running call
            pool.runQuery(backend.sql("SELECT ?"), (i,)).addBoth(lambda r: outcome.append(r[0][0]))
        reactor.stop()
        reactor.addSystemEventTrigger("during", "shutdown", lateCall)
        reactor.callLater(0, release.set)

    def lateCall() -> None:
        # After "before shutdown" the pool is closed: a call is refused at once, not lost.
        d = pool.runQuery("SELECT 1")
        d.addErrback(lambda f: outcome.append(f.check(PoolClosedError)))
        outcome.append(d.called)

    reactor.callWhenRunning(start)
    runUntilStopped(reactor, close=False)
    assert outcome == ["finished", 0, 1, 2, PoolClosedError, True]
    assert not [t for t in threading.enumerate() if t.name.startswith("PoolThread-drain")]
    assert pool.statistics().state == "closed"


def test_closeThenReactorStopStillFiresEveryQueuedCall(backend: Backend) -> None:
    """Twisted's idiom ``pool.close(); reactor.stop()`` (close's Deferred ignored): the shutdown waits for
    the close, so the running call and the calls queued behind it all fire and no thread is left."""
    outcome: list[Any] = []
    release = threading.Event()

    def hold(txn: Transaction) -> str:
        release.wait(10)
        return "finished"

    reactor = Reactor()
    pool = backend.pool(reactor, cp_min=1, cp_max=1, cp_name="closestop")

    def start() -> None:
        pool.runInteraction(hold).addBoth(outcome.append)
        for i in range(3):
            pool.runQuery(backend.sql("SELECT ?"), (i,)).addBoth(lambda r: outcome.append(r[0][0]))
        pool.close()
        reactor.stop()
        reactor.callLater(0, release.set)

    reactor.callWhenRunning(start)
    runUntilStopped(reactor)
    assert outcome == ["finished", 0, 1, 2]
    assert not [t for t in threading.enumerate() if t.name.startswith("PoolThread-closestop")]
    assert pool.statistics().state == "closed"



def test_beforeShutdownTriggerAddedLaterCanStillQuery(backend: Backend) -> None:
    """A 'before shutdown' trigger added after the pool started (so it fires after the pool's own) can
    still run a last query: the pool closes one reactor turn later and lets it finish."""
    outcome: list[Any] = []
    reactor = Reactor()
    pool = backend.pool(reactor, cp_min=1, cp_max=2)

    def lastFlush() -> Any:
        return pool.runQuery(backend.sql("SELECT ?"), ("flushed",)).addBoth(outcome.append)

    def start() -> None:
        def started(_: object) -> None:
            reactor.addSystemEventTrigger("before", "shutdown", lastFlush)
            reactor.stop()

        pool.runQuery("SELECT 1").addCallback(started)

    reactor.callWhenRunning(start)
    runUntilStopped(reactor)
    assert [[tuple(r) for r in rows] for rows in outcome] == [[("flushed",)]]
    assert pool.statistics().state == "closed"

def test_startsAtFirstUseBeforeReactorRuns(backend: Backend) -> None:
    """A call made before the reactor runs starts the pool and fires once the reactor runs."""
    reactor = Reactor()
    pool = backend.pool(reactor, cp_min=0, cp_max=1)
    d = pool.runQuery("SELECT 1")
    got: list[Any] = []
    d.addBoth(got.append)
    d.addBoth(lambda _: reactor.stop())
    guard = reactor.callLater(20, reactor.crash)
    reactor.run(installSignalHandlers=False)
    guard.cancel()
    assert [tuple(r) for r in got[0]] == [(1,)]


def test_subclassHooksAreHonoured(backend: Backend) -> None:
    """Overriding Twisted's _runQuery hook in a subclass takes effect for runQuery."""

    class Upper(ConnectionPool):
        def _runQuery(self, trans: Transaction, *args: Any, **kw: Any) -> list[Any]:
            trans.execute(*args, **kw)
            return [("hooked", *row) for row in trans.fetchall()]

    async def body(reactor: Reactor) -> Any:
        pool = Upper(backend.module, *backend.connargs, cp_reactor=reactor, cp_min=1, cp_max=1,
                     **backend.connkw)
        return await pool.runQuery("SELECT 1")

    assert [tuple(r) for r in runReactor(body)] == [("hooked", 1)]


def test_connectOutsideWorkerRaises(tmp_path: Any) -> None:
    """connect() called outside a worker thread raises RuntimeError (no stray connection)."""
    pool = ConnectionPool("sqlite3", str(tmp_path / "c.sqlite"), cp_reactor=Reactor())
    with pytest.raises(RuntimeError, match="worker threads"):
        pool.connect()


def test_connectAndDisconnectInsideWorker(backend: Backend) -> None:
    """Inside a worker, connect() returns the thread's connection and disconnect() replaces it."""

    def work(conn: Connection) -> bool:
        pool = conn._pool
        raw = pool.connect()
        same = raw is pool.connect() is conn._connection
        with pytest.raises(ValueError, match="wrong connection"):
            pool.disconnect(object())
        conn.reconnect()  # disconnect() + connect() on this thread's connection
        return same and conn._connection is not raw and conn._connection is pool.connect()

    async def body(reactor: Reactor) -> Any:
        pool = backend.pool(reactor, cp_min=1, cp_max=1)
        ok = await pool.runWithConnection(lambda c: work(c))
        return ok, await pool.runQuery("SELECT 1")

    ok, rows = runReactor(body)
    assert ok and [tuple(r) for r in rows] == [(1,)]


def test_badArgumentsRaiseAtTheCall(tmp_path: Any) -> None:
    """Wrong constructor or call arguments raise TypeError/ValueError naming them."""
    path = str(tmp_path / "b.sqlite")
    r = Reactor()
    with pytest.raises(TypeError, match="cp_mni"):
        ConnectionPool("sqlite3", path, cp_mni=1, cp_reactor=r)
    with pytest.raises(ValueError, match="cp_max"):
        ConnectionPool("sqlite3", path, cp_max=0, cp_reactor=r)
    with pytest.raises(TypeError, match="cp_min"):
        ConnectionPool("sqlite3", path, cp_min="3", cp_reactor=r)
    with pytest.raises(ValueError, match="cp_timeout"):
        ConnectionPool("sqlite3", path, cp_timeout=-1, cp_reactor=r)
    with pytest.raises(TypeError, match="cp_retry"):
        ConnectionPool("sqlite3", path, cp_retry=3, cp_reactor=r)
    with pytest.raises(TypeError, match="dbapiName"):
        ConnectionPool(42, cp_reactor=r)  # type: ignore[arg-type]
    with pytest.raises(ModuleNotFoundError):
        ConnectionPool("no_such_dbapi_module_x", cp_reactor=r)
    pool = ConnectionPool("sqlite3", path, cp_reactor=r)
    with pytest.raises(TypeError, match="interaction"):
        pool.runInteraction(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="SQL"):
        pool.runQuery()
    with pytest.raises(ValueError, match="attempts"):
        adbapi.RetryPolicy(attempts=0)


def test_twistedAttributesAndMinMaxNormalised(tmp_path: Any) -> None:
    """Twisted's attributes exist with its defaults; cp_min > cp_max is normalised as Twisted does."""
    pool = ConnectionPool("sqlite3", str(tmp_path / "a.sqlite"), cp_min=7, cp_max=4, cp_reactor=Reactor())
    assert (pool.min, pool.max) == (4, 4)
    assert pool.good_sql == "select 1" and pool.reconnect is False and pool.noisy is False
    assert pool.dbapiName == "sqlite3" and pool.connargs == (str(tmp_path / "a.sqlite"),)
    assert pool.running is False
    assert pool.connectionFactory is Connection and pool.transactionFactory is Transaction


def test_publicNames() -> None:
    """The package re-exports its public names with an explicit __all__."""
    for name in adbapi.__all__:
        assert hasattr(adbapi, name)
    assert {"ConnectionPool", "Transaction", "Connection", "ConnectionLost"} <= set(adbapi.__all__)


def test_driverAdaptersProvideTheirInterface() -> None:
    """Every driver adapter provides IDriverAdapter (checked with verifyObject)."""
    import sqlite3

    import psycopg2
    import pymysql
    from zope.interface.verify import verifyObject

    from adbapi import IDriverAdapter
    from adbapi._drivers import adapterFor

    for module in (sqlite3, psycopg2, pymysql, __import__("json")):
        adapter = adapterFor(module)
        assert verifyObject(IDriverAdapter, adapter)
    assert adapterFor(psycopg2).name == "psycopg2" and adapterFor(__import__("json")).name == "generic"
