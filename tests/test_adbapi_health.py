"""adbapi: connection health (time from a Clock), backpressure, statistics and password redaction."""

from __future__ import annotations

import logging
import threading
from types import ModuleType
from typing import Any

import pytest

from adbapi import ConnectionPool, PoolOverloadedError, PoolStatistics, PoolTimeoutError, Transaction
from adbapi._redact import Redactor, redactDSN
from reactor import Deferred, Reactor
from reactor.task import Clock
from tests.adbapi_support import (  # noqa: F401
    Backend,
    backendFixture,
    runReactor,
    serverBackendFixture,
    threadsEnded,
    uniqueName,
    workerThreadsOf,
)


def _holder(reactor: Reactor) -> tuple[Any, Deferred[None], threading.Event]:
    """An interaction that blocks its worker until released, and a Deferred fired when it starts."""
    started: Deferred[None] = Deferred()
    release = threading.Event()

    def hold(txn: Transaction) -> str:
        reactor.callFromThread(started.callback, None)
        release.wait(10)
        return "held"

    return hold, started, release


def test_prePingReplacesAConnectionThatDiedWhileIdle(serverBackend: Backend) -> None:
    """With cp_ping_after a connection idle that long is checked and replaced if dead; the call works."""
    backend = serverBackend
    clock = Clock()

    async def body(reactor: Reactor) -> Any:
        pool = backend.pool(reactor, cp_min=1, cp_max=1, cp_ping_after=30, cp_clock=clock)
        sid = (await pool.runQuery(backend.serverIdQuery))[0][0]
        backend.killSession(sid)
        clock.advance(31)
        newSid = (await pool.runQuery(backend.serverIdQuery))[0][0]
        return sid, newSid, pool.statistics()

    sid, newSid, stats = runReactor(body)
    assert newSid != sid
    assert stats.reconnects == 1 and stats.errors == 0


def test_prePingSkippedForRecentlyUsedConnection(serverBackend: Backend) -> None:
    """A connection used less than cp_ping_after ago is not checked (the dead one fails the call)."""
    backend = serverBackend
    clock = Clock()

    async def body(reactor: Reactor) -> Any:
        pool = backend.pool(reactor, cp_min=1, cp_max=1, cp_ping_after=30, cp_clock=clock)
        sid = (await pool.runQuery(backend.serverIdQuery))[0][0]
        backend.killSession(sid)
        clock.advance(29)
        with pytest.raises(backend.module.Error):
            await pool.runQuery("SELECT 1")
        return pool.statistics()

    stats = runReactor(body)
    assert stats.errors == 1 and stats.reconnects == 1


def test_prePingUsesCpGoodSql(backend: Backend) -> None:
    """An explicit cp_good_sql is what the pre-ping runs (sqlite3 included)."""
    clock = Clock()
    seen: list[str] = []

    def openfun(conn: Any) -> None:
        if backend.name == "sqlite":
            conn.set_trace_callback(seen.append)

    async def body(reactor: Reactor) -> Any:
        pool = backend.pool(reactor, cp_min=1, cp_max=1, cp_ping_after=5, cp_clock=clock,
                            cp_good_sql="SELECT 12345", cp_openfun=openfun)
        await pool.runQuery("SELECT 1")
        clock.advance(6)
        return await pool.runQuery("SELECT 2"), pool.statistics()

    rows, stats = runReactor(body)
    assert [tuple(r) for r in rows] == [(2,)] and stats.reconnects == 0
    if backend.name == "sqlite":
        assert "SELECT 12345" in seen


def test_maxLifetimeRecyclesOldConnections(backend: Backend) -> None:
    """A connection older than cp_max_lifetime is closed and replaced before its next use."""
    clock = Clock()
    opened: list[Any] = []

    async def body(reactor: Reactor) -> Any:
        pool = backend.pool(reactor, cp_min=1, cp_max=1, cp_max_lifetime=60, cp_clock=clock,
                            cp_openfun=opened.append)
        await pool.runQuery("SELECT 1")
        clock.advance(59)
        await pool.runQuery("SELECT 1")
        before = len(opened)
        clock.advance(1)
        await pool.runQuery("SELECT 1")
        return before, pool.statistics()

    before, stats = runReactor(body)
    assert before == 1 and len(opened) == 2
    assert stats.recycled == 1 and stats.reconnects == 0


def test_idleTimeoutRetiresIdleConnectionsDownToMin(backend: Backend,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    """Connections idle for cp_idle_timeout are closed in their threads, keeping cp_min of them."""
    clock = Clock()

    async def body(reactor: Reactor) -> Any:
        from reactor import gatherResults

        name = uniqueName("idle")
        pool = backend.pool(reactor, cp_min=1, cp_max=3, cp_idle_timeout=30, cp_clock=clock, cp_name=name)
        holds = [_holder(reactor) for _ in range(3)]
        calls = [pool.runInteraction(h[0]) for h in holds]
        await gatherResults([h[1] for h in holds])
        for h in holds:
            h[2].set()
        await gatherResults(calls)
        busy = pool.statistics()
        workers = workerThreadsOf(name)
        clock.advance(15)
        half = pool.statistics()
        clock.advance(15)
        after = pool.statistics()
        # The one worker kept takes the next interaction; the two retired ones close their connections
        # and end: wait for those threads to end (joined off the reactor thread, bounded).
        kept = await pool.runInteraction(lambda txn: threading.current_thread())
        left = await threadsEnded(reactor, [t for t in workers if t is not kept])
        return busy, len(workers), half, after, left, pool.statistics(), await pool.runQuery("SELECT 1")

    with caplog.at_level(logging.WARNING, logger="adbapi"):
        busy, nworkers, half, after, left, settled, rows = runReactor(body)
    assert busy.connectionsOpen == 3 and busy.idle == 3 and nworkers == 3
    assert left == [], f"retired workers still running: {left}"
    assert half.idle == 3 and half.recycled == 0
    assert after.idle == 1 and after.recycled == 2
    assert settled.workers == 1 and settled.connectionsOpen == 1 and [tuple(r) for r in rows] == [(1,)]
    assert "closing a connection failed" not in caplog.text  # sqlite3 refuses a close from another thread


def test_maxWaitingFailsFast(backend: Backend) -> None:
    """Past cp_max_waiting waiting calls, a new call errbacks PoolOverloadedError at once."""

    async def body(reactor: Reactor) -> Any:
        pool = backend.pool(reactor, cp_min=1, cp_max=1, cp_max_waiting=2)
        hold, started, release = _holder(reactor)
        first = pool.runInteraction(hold)
        await started
        waiting = [pool.runQuery("SELECT 1") for _ in range(2)]
        refused = pool.runQuery("SELECT 1")
        assert refused.called
        with pytest.raises(PoolOverloadedError):
            await refused
        release.set()
        await first
        for d in waiting:
            await d
        return pool.statistics()

    stats = runReactor(body)
    assert stats.rejected == 1 and stats.calls == 3


def test_waitTimeoutGivesUpOnAConnection(backend: Backend) -> None:
    """A call that waited cp_wait_timeout for a connection errbacks PoolTimeoutError (Clock time)."""
    clock = Clock()

    async def body(reactor: Reactor) -> Any:
        pool = backend.pool(reactor, cp_min=1, cp_max=1, cp_wait_timeout=5, cp_clock=clock)
        hold, started, release = _holder(reactor)
        first = pool.runInteraction(hold)
        await started
        waiting = pool.runQuery("SELECT 1")
        clock.advance(4.9)
        assert not waiting.called
        clock.advance(0.1)
        with pytest.raises(PoolTimeoutError):
            await waiting
        release.set()
        await first
        return pool.statistics()

    stats = runReactor(body)
    assert stats.rejected == 1 and stats.waiting == 0


def test_statisticsReportTheState(backend: Backend) -> None:
    """statistics() reports workers, open/busy/idle connections, waiting calls and the longest wait."""
    clock = Clock()

    async def body(reactor: Reactor) -> Any:
        pool = backend.pool(reactor, cp_min=1, cp_max=1, cp_name="stats", cp_clock=clock)
        hold, started, release = _holder(reactor)
        first = pool.runInteraction(hold)
        await started
        second = pool.runQuery("SELECT 1")
        clock.advance(2.5)
        during = pool.statistics()
        release.set()
        await first
        await second
        return during, pool.statistics()

    during, after = runReactor(body)
    assert isinstance(during, PoolStatistics)
    assert (during.name, during.state, during.workers, during.busy, during.idle, during.waiting) == (
        "stats", "running", 1, 1, 0, 1)
    assert during.connectionsOpen == 1
    assert (after.busy, after.idle, after.waiting, after.calls, after.errors) == (0, 1, 0, 2, 0)
    assert after.longestWait == 2.5
    with pytest.raises(AttributeError):
        after.calls = 3  # type: ignore[misc]


def test_reprSaysTheStateAtAGlance(tmp_path: Any) -> None:
    """The pool's repr names it, its driver and state, and counts workers."""
    pool = ConnectionPool("sqlite3", str(tmp_path / "r.sqlite"), cp_name="glance", cp_reactor=Reactor())
    text = repr(pool)
    assert "glance" in text and "sqlite3" in text and "new" in text and "waiting=0" in text


def test_redactDSNMasksPasswords() -> None:
    """libpq key=value and URL passwords are masked, other fields kept."""
    assert redactDSN("host=db password=s3cr3t user=me") == "host=db password=*** user=me"
    assert redactDSN("host=db password='s3 cr''et' port=1") == "host=db password=*** port=1"
    assert redactDSN("postgresql://me:s3cr3t@db:5432/x") == "postgresql://me:***@db:5432/x"
    assert redactDSN("host=db") == "host=db"


def test_redactorScrubsKeywordSecretsAnywhere() -> None:
    """A Redactor masks secret keyword values wherever they appear in text."""
    r = Redactor(("host=db password=pw1",), {"passwd": "pw2", "user": "me", "token": "tk3"})
    text = r.scrub("failed for pw1 and pw2 and tk3 as me")
    assert "pw1" not in text and "pw2" not in text and "tk3" not in text and "me" in text
    described = r.describe()
    assert "pw1" not in described and "pw2" not in described and "user='me'" in described


def test_passwordNeverInReprOrLogs(postgresDSN: str, caplog: pytest.LogCaptureFixture) -> None:
    """A password given in the DSN or as a keyword appears in no repr and no log line."""
    secret = "Sup3rS3cretPw"

    async def body(reactor: Reactor) -> Any:
        pool = ConnectionPool("psycopg2", postgresDSN + f" password={secret}", cp_reactor=reactor,
                              cp_noisy=True, cp_min=1, cp_max=1)
        rows = await pool.runQuery("SELECT 1")
        text = repr(pool) + str(pool.statistics())
        await pool.close()
        return rows, text

    with caplog.at_level(logging.DEBUG):
        rows, text = runReactor(body)
    assert [tuple(r) for r in rows] == [(1,)]
    assert secret not in text and "password=***" in text
    assert secret not in caplog.text and "connecting" in caplog.text


def _echoingDriver(secret: str) -> ModuleType:
    """A DB-API module whose connect() fails with a message that echoes its DSN, as some drivers do."""
    module = ModuleType("echodb")

    class Error(Exception):
        pass

    def connect(dsn: str) -> Any:
        raise Error(f"cannot connect with {dsn!r}")

    module.Error = Error  # type: ignore[attr-defined]
    module.connect = connect  # type: ignore[attr-defined]
    module.apilevel = "2.0"  # type: ignore[attr-defined]
    module.threadsafety = 1  # type: ignore[attr-defined]
    return module


def test_passwordNeverInConnectErrors() -> None:
    """A connect error that echoes the DSN arrives (same class) with the password masked."""
    secret = "EchoedPw42"
    module = _echoingDriver(secret)

    async def body(reactor: Reactor) -> Any:
        pool = ConnectionPool(module, f"host=x password={secret}", cp_reactor=reactor, cp_min=0, cp_max=1)
        try:
            await pool.runQuery("SELECT 1")
        except module.Error as e:  # type: ignore[attr-defined]
            return e
        raise AssertionError("connect did not fail")

    error = runReactor(body)
    assert type(error).__name__ == "Error" and secret not in str(error) and "password=***" in str(error)


def test_passwordNeverShownWithRealDrivers(postgresDSN: str, mysqlConnectKw: dict[str, Any],
                                           caplog: pytest.LogCaptureFixture) -> None:
    """Real drivers, real secrets (connect keyword and DSN), cp_noisy logging: no repr, statistics, log
    line, error message or traceback shows them, including errors raised while connecting."""
    import psycopg2
    import pymysql

    secret = "Kw5ecretPw"
    shown: list[str] = []

    async def body(reactor: Reactor) -> Any:
        # psycopg2 with the password as a keyword (the server trusts us, so the call succeeds).
        good = ConnectionPool("psycopg2", postgresDSN, password=secret, cp_reactor=reactor, cp_noisy=True,
                              cp_min=1, cp_max=1)
        rows = await good.runQuery("SELECT 1")
        shown.extend([repr(good), str(good.statistics())])
        # psycopg2 with the password in a URI that libpq rejects and echoes in its message.
        badDSN = ConnectionPool("psycopg2", f"postgresql://me:{secret}@[::1/test", cp_reactor=reactor,
                                cp_noisy=True, cp_min=0, cp_max=1)
        shown.append(repr(badDSN))
        d1 = badDSN.runQuery("SELECT 1")
        # PyMySQL with a wrong password as a keyword: the server refuses the login.
        kw = dict(mysqlConnectKw, password=secret)
        badKw = ConnectionPool("pymysql", cp_reactor=reactor, cp_noisy=True, cp_min=0, cp_max=1, **kw)
        shown.append(repr(badKw))
        d2 = badKw.runQuery("SELECT 1")
        errors = []
        for d in (d1, d2):
            (failure,) = await d.addErrback(lambda f: (f,))  # the Failure, as an errback sees it
            errors.append(failure.type)
            shown.extend([failure.getErrorMessage(), failure.getTraceback(), repr(failure.value)])
        await good.close()
        return rows, errors

    with caplog.at_level(logging.DEBUG):
        rows, errors = runReactor(body)
    assert [tuple(r) for r in rows] == [(1,)]
    assert errors == [psycopg2.ProgrammingError, pymysql.err.OperationalError]  # the drivers' own classes
    assert any("***" in text for text in shown)
    assert any("invalid dsn" in text and "me:***@" in text for text in shown)  # libpq's echo, masked
    for text in shown:
        assert secret not in text, text
    assert "connecting" in caplog.text and secret not in caplog.text
