"""The pool's shutdown deadline (``cp_shutdown_timeout``, ``setShutdownTimeout``): close never waits forever.

A connect to a server that accepts the TCP connection and never answers (a
listening socket nobody accepts on) and a long statement at shutdown are the two
ways a close could wait without end. Every test uses a small deadline and a
bound on the whole run (``runReactor``), and asserts what the pool did when the
deadline passed: the Deferreds it fired, the statement stopped on the server,
the threads it left.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from adbapi import ConnectionPool, PoolAbandonedError, PoolClosedError
from reactor import Deferred, Reactor, TimeoutError
from tests.adbapi_support import Backend, isActive, psycopg2Module, runReactor, uniqueName, until, waitUntil

DEADLINE = 0.3


@pytest.fixture(name="silentServer")
def silentServerFixture() -> Iterator[int]:
    """A port on 127.0.0.1 whose kernel completes TCP handshakes that no one ever accepts or answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    try:
        yield server.getsockname()[1]
    finally:
        server.close()


@pytest.fixture(name="mode", params=["threads", "lanes", "psycopg3"])
def modeFixture(request: pytest.FixtureRequest) -> str:
    """psycopg2 on worker threads, psycopg2 on lanes, psycopg 3."""
    return str(request.param)


def makePool(mode: str, dsn: str, reactor: Reactor, **kw: Any) -> ConnectionPool:
    kw.setdefault("cp_min", 0)
    kw.setdefault("cp_max", 1)
    kw.setdefault("cp_shutdown_timeout", DEADLINE)
    if mode == "psycopg3":
        return ConnectionPool("psycopg", dsn, cp_reactor=reactor, **kw)
    return ConnectionPool("psycopg2", dsn, cp_reactor=reactor, cp_nonblocking=mode == "lanes", **kw)


def silentDSN(port: int) -> str:
    return f"host=127.0.0.1 port={port} dbname=test"


def outcomeOf(d: Deferred[Any]) -> list[Any]:
    """A list that receives ``d``'s result or Failure (the failure is consumed)."""
    seen: list[Any] = []
    d.addBoth(seen.append)
    return seen


def test_closeGivesUpOnStuckConnect(mode: str, silentServer: int) -> None:
    """A connect that never completes: cp_timeout fails the call, close() still fires by the deadline."""

    async def body(reactor: Reactor) -> Any:
        pool = makePool(mode, silentDSN(silentServer), reactor, cp_timeout=0.1)
        with pytest.raises(TimeoutError):
            await pool.runQuery("SELECT 1")
        started = time.monotonic()
        await pool.close()
        return time.monotonic() - started, pool.statistics()

    took, stats = runReactor(body, timeout=10)
    assert took < DEADLINE + 2
    assert (stats.state, stats.workers, stats.lanes, stats.busy) == ("closed", 0, 0, 0)


def test_closeFailsRunningAndWaitingCallsClearly(mode: str, silentServer: int) -> None:
    """Past the deadline the running call errbacks PoolAbandonedError, a waiting one PoolClosedError."""

    async def body(reactor: Reactor) -> Any:
        pool = makePool(mode, silentDSN(silentServer), reactor)
        running = outcomeOf(pool.runQuery("SELECT 1"))
        waiting = outcomeOf(pool.runQuery("SELECT 2"))
        await pool.close()
        return running, waiting

    running, waiting = runReactor(body, timeout=10)
    assert len(running) == 1 and running[0].check(PoolAbandonedError)
    assert "shutdown timeout" in running[0].getErrorMessage()
    assert len(waiting) == 1 and waiting[0].check(PoolClosedError)
    assert not waiting[0].check(PoolAbandonedError)


def test_reactorShutdownGivesUpOnStuckConnect(mode: str, silentServer: int) -> None:
    """reactor.run() returns although a connect never completes: the shutdown waits only the deadline."""
    seen: list[Any] = []

    async def body(reactor: Reactor) -> None:
        pool = makePool(mode, silentDSN(silentServer), reactor)
        seen.extend([pool, outcomeOf(pool.runQuery("SELECT 1"))])
        # Returning stops the reactor (runReactor) with the connect still stuck.

    started = time.monotonic()
    runReactor(body, timeout=10)
    assert time.monotonic() - started < DEADLINE + 5
    pool, outcome = seen
    assert pool.statistics().state == "closed"
    assert len(outcome) == 1 and outcome[0].check(PoolAbandonedError)


def test_shutdownCancelsLongStatementOnServer(mode: str, postgresDSN: str) -> None:
    """A statement still running at the deadline errbacks, and the server stops running it."""
    backend = Backend("postgres", psycopg2Module(), (postgresDSN,), {}, "%s")
    seen: list[Any] = []

    async def body(reactor: Reactor) -> None:
        pool = makePool(mode, postgresDSN, reactor)
        pid = (await pool.runQuery("SELECT pg_backend_pid()"))[0][0]
        seen.extend([pid, outcomeOf(pool.runQuery("SELECT pg_sleep(60)"))])
        await until(reactor, lambda: isActive(backend, pid, "%pg_sleep(60)%"), "the long statement to start")

    started = time.monotonic()
    runReactor(body, timeout=15)
    assert time.monotonic() - started < 10, "the shutdown waited out the statement"
    pid, outcome = seen
    assert len(outcome) == 1 and outcome[0].check(PoolAbandonedError)
    assert waitUntil(lambda: not isActive(backend, pid, "%pg_sleep(60)%"), seconds=5.0), \
        "the statement still runs on the server"


def test_closeWithReactorStoppedGivesUpOnStuckConnect(silentServer: int) -> None:
    """close() while the reactor is not running waits for a stuck worker only until the deadline."""
    reactor = Reactor()
    pool = makePool("threads", silentDSN(silentServer), reactor)
    outcome = outcomeOf(pool.runQuery("SELECT 1"))
    started = time.monotonic()
    closed = outcomeOf(pool.close())
    assert time.monotonic() - started < DEADLINE + 2
    assert closed == [None]
    assert len(outcome) == 1 and outcome[0].check(PoolAbandonedError)


def test_abandonedWorkerNeverServesTheRestartedPool(tmp_path: Any) -> None:
    """A worker the close gave up on exits when its call ends; calls after start() run on new workers."""
    release = threading.Event()
    name = uniqueName("abandoned")

    def stuck(txn: Any) -> str:
        release.wait(10)
        return threading.current_thread().name

    def whichThread(txn: Any) -> str:
        txn.execute("SELECT 1")
        return threading.current_thread().name

    async def body(reactor: Reactor) -> Any:
        pool = ConnectionPool("sqlite3", str(tmp_path / "a.sqlite"), cp_reactor=reactor, cp_min=1, cp_max=1,
                              cp_name=name, cp_shutdown_timeout=DEADLINE)
        outcome = outcomeOf(pool.runInteraction(stuck))
        await pool.close()
        abandoned = [t for t in threading.enumerate()
                     if t.name.startswith(f"PoolThread-{name}-") and "-side-" not in t.name]
        pool.start()
        release.set()
        assert waitUntil(lambda: not any(t.is_alive() for t in abandoned), seconds=5.0)
        threads = [await pool.runInteraction(whichThread) for _ in range(3)]
        stats = pool.statistics()
        await pool.close()
        return outcome, [t.name for t in abandoned], threads, stats.workers

    outcome, abandoned, threads, workers = runReactor(body, timeout=15)
    assert len(outcome) == 1 and outcome[0].check(PoolAbandonedError)
    assert len(abandoned) == 1 and not set(threads) & set(abandoned)
    assert workers == 1


def test_asyncTransactionOperationFailsAtTheDeadline(postgresDSN: str) -> None:
    """An async transaction's operation still running at the deadline errbacks; the block raises."""
    backend = Backend("postgres", psycopg2Module(), (postgresDSN,), {}, "%s")
    marker = uniqueName("txn").replace("-", "_")
    outcome: list[Any] = []

    def running() -> bool:
        rows = backend.admin("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
                             "AND pid <> pg_backend_pid() AND query LIKE %s", f"%{marker}%")
        return bool(rows[0][0])

    async def body(reactor: Reactor) -> None:
        pool = makePool("threads", postgresDSN, reactor)

        async def block() -> None:
            async with pool.transaction() as txn:
                await txn.execute(f"SELECT pg_sleep(60) /* {marker} */")

        outcome.append(outcomeOf(Deferred.fromCoroutine(block())))
        await until(reactor, running, "the transaction's statement to start")
        await pool.close()

    runReactor(body, timeout=15)
    [result] = outcome
    assert len(result) == 1 and result[0].check(PoolAbandonedError)
    assert waitUntil(lambda: not running(), seconds=5.0), "the statement still runs on the server"


def test_shutdownTimeoutArguments(tmp_path: Any) -> None:
    """cp_shutdown_timeout and setShutdownTimeout take seconds > 0 or None; anything else raises."""
    reactor = Reactor()
    path = str(tmp_path / "args.sqlite")
    assert ConnectionPool("sqlite3", path, cp_reactor=reactor)._shutdownTimeout == 30.0
    unbounded = ConnectionPool("sqlite3", path, cp_reactor=reactor, cp_shutdown_timeout=None)
    assert unbounded._shutdownTimeout is None
    with pytest.raises(TypeError, match="cp_shutdown_timeout"):
        ConnectionPool("sqlite3", path, cp_reactor=reactor, cp_shutdown_timeout="1")
    with pytest.raises(ValueError, match="cp_shutdown_timeout"):
        ConnectionPool("sqlite3", path, cp_reactor=reactor, cp_shutdown_timeout=0)
    pool = ConnectionPool("sqlite3", path, cp_reactor=reactor)
    pool.setShutdownTimeout(2)
    assert pool._shutdownTimeout == 2.0
    pool.setShutdownTimeout(None)
    assert pool._shutdownTimeout is None
    with pytest.raises(TypeError, match="timeout"):
        pool.setShutdownTimeout(True)
    with pytest.raises(ValueError, match="timeout"):
        pool.setShutdownTimeout(-1)
