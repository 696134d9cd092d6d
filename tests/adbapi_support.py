"""Shared fixtures for the adbapi tests: one behaviour suite, six real drivers.

``backend`` is parametrized over sqlite3 (a file in ``tmp_path``), psycopg2 (twice:
single statements on worker threads, and on lanes) and psycopg 3 on the test
PostgreSQL server, and PyMySQL, MySQLdb (mysqlclient) and MySQL Connector/Python
on the test MariaDB server; it hands the driver module, its connect arguments,
its parameter marker and the server-side tools the fault tests use (a long
statement, the connection's server id, killing a connection). ``runReactor``
runs one test body inside a fresh reactor, with a bound on the whole run.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import pytest

from reactor import Deferred, Reactor
from reactor.task import Clock

BACKENDS = ["sqlite", "postgres", "lanes", "psycopg3", "mysql", "mysqlclient", "mysqlconnector"]
SERVER_BACKENDS = BACKENDS[1:]


@dataclass
class Backend:
    """How to reach one database and drive its faults; ``sql()`` rewrites ``?`` to the driver's marker."""

    name: str
    module: ModuleType
    connargs: tuple[Any, ...]
    connkw: dict[str, Any]
    marker: str
    tables: list[str] = field(default_factory=list)
    #: the pool's ``cp_nonblocking`` for psycopg2: False (worker threads) or True (lanes), unless a test says
    nonblocking: bool | None = None

    def sql(self, text: str) -> str:
        return text.replace("?", self.marker)

    @property
    def longQuery(self) -> str:
        """A statement that runs for many seconds unless cancelled."""
        if self.name == "postgres":
            return "SELECT pg_sleep(30)"
        if self.name == "mysql":
            return "SELECT SLEEP(30)"
        return "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) SELECT count(*) FROM r"

    @property
    def serverIdQuery(self) -> str:
        """A query returning the id of the server session of the connection that runs it."""
        if self.name == "postgres":
            return "SELECT pg_backend_pid()"
        if self.name == "mysql":
            return "SELECT CONNECTION_ID()"
        raise pytest.skip.Exception("sqlite3 has no server session")

    def pool(self, reactor: Reactor, **kw: Any) -> Any:
        import adbapi

        if self.nonblocking is not None and "cp_nonblocking" not in kw and "cp_openfun" not in kw:
            kw["cp_nonblocking"] = self.nonblocking
        return adbapi.ConnectionPool(self.module, *self.connargs, cp_reactor=reactor, **self.connkw, **kw)

    def adminConnect(self, autocommit: bool = True) -> Any:
        """A direct, blocking connection for setup and fault injection (test code only).

        On the servers it autocommits unless ``autocommit`` is False; sqlite3 connections keep the module's
        default.
        """
        conn = self.module.connect(*self.connargs, **self.connkw)
        if self.name == "postgres" or self.module.__name__ == "mysql.connector":
            conn.autocommit = autocommit
        elif self.name == "mysql":
            conn.autocommit(autocommit)  # PyMySQL and MySQLdb: a method
        return conn

    def admin(self, statement: str, *params: Any) -> list[Any]:
        """Run one statement on a fresh admin connection and return its rows."""
        conn = self.adminConnect()
        try:
            cursor = conn.cursor()
            cursor.execute(self.sql(statement), params)
            rows = list(cursor.fetchall()) if cursor.description else []
            cursor.close()
            if self.name == "sqlite":
                conn.commit()
            return rows
        finally:
            conn.close()

    def killSession(self, serverId: int) -> None:
        """End a server session the way an administrator would."""
        if self.name == "postgres":
            # With a timeout (PostgreSQL >= 14) it returns once the backend is gone, not just signalled.
            self.admin("SELECT pg_terminate_backend(?, 5000)", serverId)
        elif self.name == "mysql":
            self.admin(f"KILL {int(serverId)}")
            # KILL only marks the session; wait until its thread has closed the connection, so the
            # test's next statement meets a dead connection, not a dying one.
            gone = waitUntil(
                lambda: not self.admin("SELECT 1 FROM information_schema.PROCESSLIST WHERE ID = ?", serverId),
                seconds=5.0,
            )
            assert gone, f"MariaDB session {serverId} still listed 5 s after KILL"
        else:
            raise pytest.skip.Exception("sqlite3 has no server session")

    def createTable(self, name: str, columns: str = "id INTEGER PRIMARY KEY, v INTEGER") -> str:
        self.admin(f"CREATE TABLE {name} ({columns})")
        self.tables.append(name)
        return name

    def dropTables(self) -> None:
        for name in self.tables:
            try:
                self.admin(f"DROP TABLE IF EXISTS {name}")
            except Exception:
                pass
        self.tables.clear()


@pytest.fixture(name="backend", params=BACKENDS)
def backendFixture(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Backend]:
    """sqlite3; psycopg2 and psycopg 3 on PostgreSQL; three MySQL drivers on MariaDB (see conftest)."""
    yield from _makeBackend(request.param, request, tmp_path)


@pytest.fixture(name="serverBackend", params=SERVER_BACKENDS)
def serverBackendFixture(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Backend]:
    """The server backends only (for faults that need a server session)."""
    yield from _makeBackend(request.param, request, tmp_path)


def _makeBackend(name: str, request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Backend]:
    if name == "sqlite":
        path = str(tmp_path / f"db-{uuid.uuid4().hex[:8]}.sqlite")
        b = Backend("sqlite", sqlite3, (path,), {"timeout": 0.2}, "?")
    elif name in ("postgres", "lanes"):
        # psycopg2 twice: runQuery/runOperation on worker threads, and on lanes (nonblocking connections
        # the reactor drives). Interactions run on worker threads in both.
        import psycopg2

        dsn = request.getfixturevalue("postgresDSN")
        b = Backend("postgres", psycopg2, (dsn,), {}, "%s", nonblocking=name == "lanes")
    elif name == "psycopg3":
        # psycopg 3 on the same server: a Backend named "postgres", as the server is what the faults use.
        import psycopg

        dsn = request.getfixturevalue("postgresDSN")
        b = Backend("postgres", psycopg, (dsn,), {}, "%s")
    else:
        kw = dict(request.getfixturevalue("mysqlConnectKw"))
        b = Backend("mysql", _mysqlDriver(name), (), kw, "%s")
    try:
        yield b
    finally:
        b.dropTables()


def _mysqlDriver(name: str) -> ModuleType:
    """The MariaDB driver behind backend ``name``: PyMySQL, MySQLdb (mysqlclient) or mysql.connector."""
    import importlib

    moduleName = {"mysql": "pymysql", "mysqlclient": "MySQLdb", "mysqlconnector": "mysql.connector"}[name]
    try:
        return importlib.import_module(moduleName)
    except ImportError as e:
        from tests.conftest import _unavailable

        hint = ""
        if name == "mysqlclient":
            hint = " (mysqlclient: `apt-get install libmariadb-dev pkg-config`, then `make clean test`)"
        _unavailable("REQUIRE_MYSQL", f"{moduleName} is not installed: {e}{hint}")
        raise


def runReactor(body: Callable[[Any], Coroutine[Any, Any, Any]], timeout: float = 20.0,
               reactor: Any = None) -> Any:
    """Run ``body(reactor)`` as a coroutine in a fresh reactor; return its result or raise its error.

    The reactor stops when the body finishes (firing ``before shutdown``, so pools
    drain) or after ``timeout`` seconds, which fails the test. A ``reactor`` made
    elsewhere (one hosted on asyncio, say) is used instead and closed afterwards.
    """
    given = reactor is not None
    if reactor is None:
        reactor = Reactor()
    outcome: dict[str, Any] = {}

    def start() -> None:
        d: Deferred[Any] = Deferred.fromCoroutine(body(reactor))

        def done(result: Any) -> None:
            outcome["result"] = result
            if reactor.running and not reactor.stopping:
                reactor.stop()

        d.addBoth(done)

    def tooLong() -> None:
        outcome.setdefault("timeout", True)
        reactor.crash()

    reactor.callWhenRunning(start)
    guard = reactor.callLater(timeout, tooLong)
    try:
        reactor.run(installSignalHandlers=False)
    finally:
        if guard.active():
            guard.cancel()
        if given:
            reactor.close()
    if "timeout" in outcome and "result" not in outcome:
        raise AssertionError(f"test body did not finish within {timeout} s")
    result = outcome.get("result")
    from reactor import Failure

    if isinstance(result, Failure):
        result.raiseException()
    return result


# -- lanes (psycopg2 runQuery/runOperation on nonblocking connections) -------------------------------

LONG_QUERY = "SELECT pg_sleep(30)"
PID_QUERY = "SELECT pg_backend_pid()"


@pytest.fixture(name="lanes")
def lanesFixture(postgresDSN: str) -> Iterator[Backend]:
    """psycopg2 on the test server with lanes forced (``cp_nonblocking=True``); its tables dropped after."""
    backend = Backend("postgres", psycopg2Module(), (postgresDSN,), {}, "%s", nonblocking=True)
    try:
        yield backend
    finally:
        backend.dropTables()


def psycopg2Module() -> ModuleType:
    import psycopg2

    return psycopg2


def uniqueName(prefix: str) -> str:
    """A pool name no other test uses (its threads are named after it)."""
    return f"{prefix}-{time.monotonic_ns()}"


def poolThreads(name: str) -> list[str]:
    """Names of the live threads of the pool named ``name`` (workers and lane side threads)."""
    return [t.name for t in threading.enumerate() if t.name.startswith(f"PoolThread-{name}-")]


def workerThreads(name: str) -> list[str]:
    """Names of the live worker threads of the pool named ``name`` (side threads excluded)."""
    return [n for n in poolThreads(name) if "-lane-" not in n and "-side-" not in n]


async def until(reactor: Any, predicate: Callable[[], bool], what: str, seconds: float = 3.0) -> None:
    """Wait on the reactor (polling every 10 ms) until ``predicate()``; fail after ``seconds``.

    Only for state that lives in another process (a server's session table) or that changes only when
    it does (a lane reading the EOF of a session the server ended): work inside this process is awaited
    on an event or a Deferred instead.
    """
    from reactor.task import deferLater

    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {seconds} s")
        await deferLater(reactor, 0.01)


async def within(reactor: Any, d: Deferred[Any], what: str, seconds: float = 10.0) -> Any:
    """Await ``d`` (a Deferred fired when what the test waits for happened) and return its result or raise
    its error; fail the test naming ``what`` if it has not fired after ``seconds``.

    ``d`` is left alone on a timeout (not cancelled), so the test can still report what was pending. Its
    result is consumed: add other callbacks to ``d`` before calling this.
    """
    outcome: Deferred[Any] = Deferred()

    def tooLate() -> None:
        if not outcome.called:
            outcome.errback(AssertionError(f"{what} did not happen within {seconds} s"))

    timer = reactor.callLater(seconds, tooLate)

    def relay(result: Any, ok: bool) -> None:
        if timer.active():
            timer.cancel()
        if outcome.called:
            return  # fired after the deadline: the test has failed already
        if ok:
            outcome.callback(result)
        else:
            outcome.errback(result)

    d.addCallbacks(relay, relay, callbackArgs=(True,), errbackArgs=(False,))
    return await outcome


def isActive(backend: Backend, pid: int, like: str = "%pg_sleep(30)%") -> bool:
    """Whether server session ``pid`` is running a statement like ``like`` (asked from another session)."""
    rows = backend.admin(
        "SELECT count(*) FROM pg_stat_activity WHERE pid = %s AND state = 'active' AND query LIKE %s",
        pid, like,
    )
    return bool(rows[0][0])


def waitUntil(predicate: Callable[[], object], seconds: float, step: float = 0.01) -> bool:
    """Block the calling thread (not a running reactor's) until ``predicate()`` is true or ``seconds``
    passed; True if it became true. For what only another process or thread changes (server sessions,
    threads ending)."""
    pause = threading.Event()
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        pause.wait(step)
    return True


# -- waiting for a long statement to be running, and for threads to end ----------------------------


class StatementProbe:
    """Tells the test when long statements are running in workers, for sqlite3, which has no server to ask.

    Pass ``probe.openfun`` as ``cp_openfun``: it gives each sqlite3 connection a progress handler, which
    sqlite calls from the worker's thread only once a statement has run long enough (short statements:
    setup, ``SELECT 1``, never get that far). ``running(n)`` is a Deferred fired in the reactor thread once
    ``n`` connections have been seen in such a statement. On other drivers ``openfun`` does nothing.
    """

    def __init__(self, reactor: Any) -> None:
        self._reactor = reactor
        self._lock = threading.Lock()
        self._ticked: set[int] = set()  # ids of connections seen in a long statement (workers, under _lock)
        self._seen = 0  # reactor thread: how many of them the reactor has heard of
        self._waiters: list[tuple[int, Deferred[None]]] = []  # reactor thread

    def openfun(self, conn: Any) -> None:
        if not isinstance(conn, sqlite3.Connection):
            return
        key = id(conn)

        def tick() -> int:
            with self._lock:
                first = key not in self._ticked
                self._ticked.add(key)
            if first:
                self._reactor.callFromThread(self._oneMore)
            return 0  # go on: the test cancels the statement, the probe does not

        conn.set_progress_handler(tick, 100_000)

    def _oneMore(self) -> None:
        self._seen += 1
        due = [d for n, d in self._waiters if n <= self._seen]
        self._waiters = [(n, d) for n, d in self._waiters if n > self._seen]
        for d in due:
            d.callback(None)

    def running(self, count: int = 1) -> Deferred[None]:
        """A Deferred fired (reactor thread) once ``count`` connections have been in a long statement."""
        d: Deferred[None] = Deferred()
        if self._seen >= count:
            d.callback(None)
        else:
            self._waiters.append((count, d))
        return d


def markedLongQuery(backend: Backend, marker: str) -> str:
    """``backend.longQuery`` carrying ``marker`` in a comment, so the server's session table tells this
    test's statements from those of other tests running at the same time."""
    return f"{backend.longQuery} /* {marker} */"


def isRunningOnServer(backend: Backend, serverId: int) -> bool:
    """Whether server session ``serverId`` is running ``backend.longQuery`` (asked from another session)."""
    if backend.name == "postgres":
        rows = backend.admin(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = ? AND state = 'active' AND query LIKE ?",
            serverId, "%pg_sleep(30)%",
        )
    elif backend.name == "mysql":
        rows = backend.admin(
            "SELECT count(*) FROM information_schema.PROCESSLIST WHERE ID = ? AND INFO LIKE ?",
            serverId, "SELECT SLEEP(30)%",
        )
    else:
        raise pytest.skip.Exception("sqlite3 has no server session")
    return bool(rows[0][0])


def runningOnServer(backend: Backend, marker: str) -> int:
    """How many server sessions are running ``markedLongQuery(backend, marker)`` (the asking one excluded)."""
    like = f"%/* {marker} */%"
    if backend.name == "postgres":
        rows = backend.admin(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE state = 'active' AND query LIKE ? AND pid <> pg_backend_pid()", like,
        )
    elif backend.name == "mysql":
        rows = backend.admin(
            "SELECT count(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE ? AND ID <> CONNECTION_ID()",
            like,
        )
    else:
        raise pytest.skip.Exception("sqlite3 has no server session")
    return int(rows[0][0])


async def statementRunning(reactor: Any, backend: Backend, serverId: int | None = None,
                           probe: StatementProbe | None = None, *, marker: str | None = None,
                           count: int = 1, seconds: float = 10.0) -> None:
    """Wait until ``backend.longQuery`` is running, or fail the test with a clear message after ``seconds``.

    On a server: until session ``serverId`` runs it, or (with ``marker``) until ``count`` sessions run
    ``markedLongQuery(backend, marker)``, as the server's session table says (polled: it lives in another
    process). On sqlite3: until ``probe`` saw ``count`` connections in a long statement (no polling).
    """
    if backend.name == "sqlite":
        if probe is None:
            raise TypeError("statementRunning: sqlite3 needs a probe (a StatementProbe whose openfun is the "
                            "pool's cp_openfun)")
        await within(reactor, probe.running(count), f"{count} long statement(s) starting in workers", seconds)
        return
    if marker is not None:
        await until(reactor, lambda: runningOnServer(backend, marker) >= count,
                    f"{count} long statement(s) marked {marker} showing up on the server", seconds)
    elif serverId is not None:
        await until(reactor, lambda: isRunningOnServer(backend, serverId),
                    f"the long statement showing up in session {serverId} on the server", seconds)
    else:
        raise TypeError("statementRunning: a server backend needs serverId or marker")


async def statementGone(reactor: Any, backend: Backend, serverId: int, seconds: float = 5.0) -> None:
    """Wait until session ``serverId`` no longer runs ``backend.longQuery`` (the server reports a cancel's
    end asynchronously); fail after ``seconds``."""
    await until(reactor, lambda: not isRunningOnServer(backend, serverId),
                f"the long statement ending in session {serverId} on the server", seconds)


class WatchedClock(Clock):
    """A :class:`reactor.task.Clock` that tells the test when the code under test schedules a call on it
    (a retry's backoff, a wait timeout), so a test awaits that instead of polling ``getDelayedCalls()``.

    ``callLater`` must be called in the reactor thread (it fires Deferreds), as the pool does.
    """

    def __init__(self) -> None:
        super().__init__()
        self._waiters: list[Deferred[None]] = []

    def callLater(self, delay: float, f: Callable[..., object], /, *args: Any, **kw: Any) -> Any:
        call = super().callLater(delay, f, *args, **kw)
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.callback(None)
        return call

    def scheduled(self) -> Deferred[None]:
        """A Deferred fired once a call is pending on this clock (at once if one already is)."""
        d: Deferred[None] = Deferred()
        if self.getDelayedCalls():
            d.callback(None)
        else:
            self._waiters.append(d)
        return d


def threadsEnded(reactor: Any, threads: list[threading.Thread], seconds: float = 5.0) -> Deferred[list[str]]:
    """A Deferred that fires (in the reactor thread) with the names of those of ``threads`` still alive
    once they all ended or ``seconds`` passed.

    The joins run in a helper thread, so the reactor thread never blocks on them; its result comes home
    through ``callFromThread``, after anything the ended threads handed to the reactor before ending.
    """
    done: Deferred[list[str]] = Deferred()

    def join() -> None:
        deadline = time.monotonic() + seconds
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        reactor.callFromThread(done.callback, [t.name for t in threads if t.is_alive()])

    threading.Thread(target=join, name="test-threadsEnded", daemon=True).start()
    return done


def poolThreadsOf(name: str) -> list[threading.Thread]:
    """The live threads of the pool named ``name`` (workers and lane side threads)."""
    return [t for t in threading.enumerate() if t.name.startswith(f"PoolThread-{name}-")]


def workerThreadsOf(name: str) -> list[threading.Thread]:
    """The live worker threads of the pool named ``name`` (side threads excluded)."""
    prefix = f"PoolThread-{name}-"
    return [t for t in threading.enumerate()
            if t.name.startswith(prefix) and "-lane-" not in t.name and "-side-" not in t.name]
