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
    """Names of the live worker threads of the pool named ``name`` (lane side threads excluded)."""
    return [n for n in poolThreads(name) if "-lane-" not in n]


async def until(reactor: Any, predicate: Callable[[], bool], what: str, seconds: float = 3.0) -> None:
    """Wait on the reactor (polling every 10 ms) until ``predicate()``; fail after ``seconds``."""
    from reactor.task import deferLater

    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {seconds} s")
        await deferLater(reactor, 0.01)


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
