"""adbapi under load *and* failures: storms of calls while the server kills the pool's sessions.

Each storm runs 32 callers (runQuery, runOperation, runInteraction, runWithConnection; some
cancelled, some with ``addTimeout``) while a killer thread, fed by a reactor timer, terminates
the pool's own sessions (PostgreSQL: found by a unique ``application_name``; MariaDB: the thread
ids the pool's ``cp_openfun`` recorded). The promises checked: every Deferred fires, the pool
never holds more than ``cp_max`` connections (its statistics and the server agree), the calls
after the storm work, statistics are consistent once quiet, and ``close()`` / reactor shutdown
drain everything and leave no thread. Randomness is seeded; every wait is bounded.
"""

from __future__ import annotations

import queue
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

import adbapi
from adbapi._drivers import adapterFor
from reactor import CancelledError, Deferred, DeferredList, Reactor, TimeoutError
from reactor.task import deferLater
from tests.adbapi_support import (  # noqa: F401
    Backend,
    _mysqlDriver,
    lanesFixture,
    poolThreads,
    poolThreadsOf,
    runReactor,
    serverBackendFixture,
    threadsEnded,
    uniqueName,
    until,
    waitUntil,
    within,
)

CALLERS = 32
CP_MAX = 4
STORM_SECONDS = 1.5
KILL_EVERY = 0.02


def _kinds() -> list[Any]:
    return [
        pytest.param("lanes", id="lanes"),
        pytest.param("threads", id="pg-threads"),
        pytest.param("mysql", id="mysql"),
        pytest.param("mysqlclient", id="mysqlclient"),
        pytest.param("mysqlconnector", id="mysqlconnector"),
    ]


class Chaos:
    """One pool on one server, its sessions, and a killer for them."""

    def __init__(self, kind: str, request: pytest.FixtureRequest) -> None:
        self.kind = kind
        #: "mysql" for the three MySQL drivers on MariaDB (PyMySQL, MySQLdb, mysql.connector), else "postgres"
        self.server = "mysql" if kind.startswith("mysql") else "postgres"
        self.name = uniqueName("chaos").replace("-", "_")
        self.ids: set[int] = set()  # MariaDB: thread ids of the pool's connections
        self.killed: set[int] = set()
        self.lock = threading.Lock()  # ids and killed change in workers and the killer thread
        if self.server == "mysql":
            self.module: Any = _mysqlDriver(kind)
            self.connkw: dict[str, Any] = dict(request.getfixturevalue("mysqlConnectKw"))
            self.dsn = ""
            self.sleep = "SLEEP"
        else:
            import psycopg2

            self.module = psycopg2
            self.dsn = request.getfixturevalue("postgresDSN")
            self.connkw = {}
            self.sleep = "pg_sleep"
        self.table = f"chaos_{self.name}"
        serial = "INTEGER AUTO_INCREMENT" if self.server == "mysql" else "SERIAL"
        self.admin(f"CREATE TABLE {self.table} (id {serial} PRIMARY KEY, v INTEGER)")

    # -- the server side (test code only) -------------------------------------------------------

    def adminConnect(self) -> Any:
        if self.server == "mysql":
            return self.module.connect(autocommit=True, **self.connkw)
        conn = self.module.connect(self.dsn)
        conn.autocommit = True
        return conn

    def admin(self, statement: str, *params: Any) -> list[Any]:
        conn = self.adminConnect()
        try:
            cursor = conn.cursor()
            cursor.execute(statement, params or None)
            return list(cursor.fetchall()) if cursor.description else []
        finally:
            conn.close()

    def drop(self) -> None:
        try:
            self.admin(f"DROP TABLE IF EXISTS {self.table}")
        except Exception:
            pass

    def sessions(self) -> set[int]:
        """Server ids of the pool's live sessions (killed ones excluded: they may linger a moment)."""
        if self.server == "mysql":
            alive = {r[0] for r in self.admin("SELECT id FROM information_schema.processlist")}
            with self.lock:
                return (alive & self.ids) - self.killed
        rows = self.admin("SELECT pid FROM pg_stat_activity WHERE application_name = %s", self.name)
        with self.lock:
            return {r[0] for r in rows} - self.killed

    def lingering(self) -> set[int]:
        """Server ids of the pool's killed sessions the server still lists (MariaDB's KILL only marks one)."""
        with self.lock:
            killed = set(self.killed)
        if self.server == "mysql":
            alive = {r[0] for r in self.admin("SELECT id FROM information_schema.processlist")}
        else:
            alive = {r[0] for r in self.admin("SELECT pid FROM pg_stat_activity")}
        return alive & killed

    def killAll(self) -> None:
        """Terminate every session of the pool and wait until they are gone."""
        if self.server == "mysql":
            with self.lock:
                ids = sorted(self.ids - self.killed)
                self.killed |= self.ids
            for i in ids:
                try:
                    self.admin(f"KILL {int(i)}")
                except Exception:
                    pass
        else:
            self.admin("SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
                       "WHERE application_name = %s", self.name)

    def pool(self, reactor: Reactor, **kw: Any) -> Any:
        kw.setdefault("cp_min", 1)
        kw.setdefault("cp_max", CP_MAX)
        if self.server == "mysql":
            describe = adapterFor(self.module).describeConnection  # the connection's id, per driver

            def openfun(conn: Any) -> None:
                with self.lock:
                    self.ids.add(describe(conn))

            return adbapi.ConnectionPool(self.module, cp_reactor=reactor, cp_name=self.name,
                                         cp_openfun=openfun, **self.connkw, **kw)
        return adbapi.ConnectionPool(self.module, f"{self.dsn} application_name={self.name}",
                                     cp_reactor=reactor, cp_name=self.name,
                                     cp_nonblocking=self.kind == "lanes", **kw)


class Killer:
    """A thread that kills one of the pool's sessions whenever the reactor's timer asks it to."""

    def __init__(self, chaos: Chaos, seed: int) -> None:
        self.chaos = chaos
        self.rng = random.Random(seed)
        self.requests: queue.SimpleQueue[bool] = queue.SimpleQueue()
        self.kills = 0
        self.thread = threading.Thread(target=self._main, name=f"chaos-killer-{chaos.name}", daemon=True)
        self.timer: Any = None
        self.reactor: Any = None

    def start(self, reactor: Reactor) -> None:
        self.reactor = reactor
        self.thread.start()
        self._tick()

    def _tick(self) -> None:
        if self.requests.qsize() == 0:
            self.requests.put(True)
        self.timer = self.reactor.callLater(KILL_EVERY, self._tick)

    def stop(self) -> None:
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        self.requests.put(False)
        self.thread.join(10)
        assert not self.thread.is_alive(), "the killer thread did not stop"

    def _main(self) -> None:
        chaos = self.chaos
        conn = chaos.adminConnect()
        cursor = conn.cursor()
        try:
            while self.requests.get():
                try:
                    if chaos.server == "mysql":
                        with chaos.lock:
                            ids = sorted(chaos.ids - chaos.killed)
                            victim = self.rng.choice(ids) if ids else None
                            if victim is not None:
                                chaos.killed.add(victim)
                        if victim is not None:
                            cursor.execute(f"KILL {int(victim)}")
                            self.kills += 1
                    else:
                        cursor.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s",
                                       (chaos.name,))
                        pids = sorted(r[0] for r in cursor.fetchall())
                        if pids:
                            victim = self.rng.choice(pids)
                            with chaos.lock:
                                chaos.killed.add(victim)
                            cursor.execute("SELECT pg_terminate_backend(%s)", (victim,))
                            self.kills += 1
                except Exception:
                    pass  # the victim was gone already
        finally:
            conn.close()


@pytest.fixture(name="chaos", params=_kinds())
def chaosFixture(request: pytest.FixtureRequest) -> Any:
    chaos = Chaos(request.param, request)
    try:
        yield chaos
    finally:
        chaos.drop()


EXPECTED_ERRORS: tuple[type[BaseException], ...] = (CancelledError, TimeoutError, adbapi.ConnectionLost)


def _driverErrors(chaos: Chaos) -> tuple[type[BaseException], ...]:
    return (chaos.module.OperationalError, chaos.module.InterfaceError, chaos.module.DatabaseError)


class Storm:
    """32 seeded callers issuing a mix of calls on one pool until told to stop."""

    def __init__(self, chaos: Chaos, pool: Any, reactor: Reactor, seed: int, cancels: bool) -> None:
        self.chaos = chaos
        self.pool = pool
        self.reactor = reactor
        self.seed = seed
        self.cancels = cancels
        self.stopping = False
        self.issued: list[Deferred[Any]] = []
        self.outstanding = 0
        self.ok = 0
        self.errors: Counter[str] = Counter()
        self.unexpected: list[str] = []
        self.allowed = EXPECTED_ERRORS + _driverErrors(chaos)
        self.callers: list[Deferred[None]] = []

    def start(self) -> None:
        self.callers = [Deferred.fromCoroutine(self._caller(i)) for i in range(CALLERS)]

    def _issue(self, rng: random.Random) -> Deferred[Any]:
        pool, table, sleep = self.pool, self.chaos.table, self.chaos.sleep
        r = rng.random()
        if r < 0.3:
            d = pool.runQuery(f"SELECT {sleep}(%s), 1", (rng.choice([0, 0, 0.001, 0.005]),))
        elif r < 0.5:
            d = pool.runOperation(f"INSERT INTO {table} (v) VALUES (%s)", (rng.randint(0, 1000),))
        elif r < 0.8:
            def interaction(txn: Any, v: int) -> Any:
                txn.execute(f"INSERT INTO {table} (v) VALUES (%s)", (v,))
                txn.execute(f"SELECT {sleep}(0.002)")
                txn.execute(f"SELECT count(*) FROM {table}")
                return txn.fetchall()

            d = pool.runInteraction(interaction, rng.randint(0, 1000))
        else:
            def withConnection(conn: Any) -> Any:
                cursor = conn.cursor()
                cursor.execute("SELECT 1")
                return cursor.fetchall()

            d = pool.runWithConnection(withConnection)
        c = rng.random() if self.cancels else 1.0
        if c < 0.08:
            self.reactor.callLater(rng.uniform(0, 0.01), d.cancel)
        elif c < 0.16:
            d.addTimeout(rng.uniform(0.001, 0.03), self.reactor)
        self.issued.append(d)
        return d

    async def _caller(self, i: int) -> None:
        rng = random.Random(self.seed * 1000 + i)
        while not self.stopping:
            d = self._issue(rng)
            self.outstanding += 1
            try:
                await d
                self.ok += 1
            except adbapi.PoolClosedError:
                self.errors["PoolClosedError"] += 1
                return  # the pool is closed: every further call would fail at once
            except self.allowed as e:
                self.errors[type(e).__name__] += 1
            except Exception as e:
                self.errors[type(e).__name__] += 1
                self.unexpected.append(repr(e))
            finally:
                self.outstanding -= 1

    def unfired(self) -> int:
        return sum(not d.called for d in self.issued)


def _checkBounds(chaos: Chaos, pool: Any, problems: list[str], server: bool) -> None:
    s = pool.statistics()
    if s.connectionsOpen > CP_MAX or s.workers + s.lanes > CP_MAX:
        problems.append(f"more than cp_max connections: {s}")
    if server:
        live = chaos.sessions()
        if len(live) > CP_MAX:
            problems.append(f"{len(live)} live server sessions > cp_max: {s}")


async def _quiet(reactor: Reactor, pool: Any, seconds: float) -> None:
    """Wait (bounded) until no slot is busy, once every Deferred fired. A call given up on (a timeout)
    fires at once but keeps its slot until the server confirms its statement ended, and a slot whose
    session was killed waits on the server too: the state this waits for is decided in another process."""
    await until(reactor, lambda: pool.statistics().busy == 0, "every slot going idle", seconds)


async def _weather(reactor: Reactor, killer: Killer, seconds: float, check: Callable[[], None],
                   stop: Callable[[], None]) -> None:
    """Let a started storm and ``killer`` run for ``seconds``, calling ``check`` every 50 ms; then stop
    both (``stop`` ends the storm), also when a check raises."""
    started = time.monotonic()
    try:
        while time.monotonic() - started < seconds:
            check()
            # Not a wait for anything: the storm lasts ``seconds`` of real time (the killer's timer and
            # the callers run meanwhile) and the bounds are sampled every 50 ms of it.
            await deferLater(reactor, 0.05)
    finally:
        stop()
        killer.stop()


async def _boundedClose(reactor: Reactor, pool: Any, seconds: float) -> bool:
    closing = pool.close()
    guard = reactor.callLater(seconds, lambda: None if closing.called else closing.cancel())
    try:
        await closing
    except CancelledError:
        return False
    finally:
        if guard.active():
            guard.cancel()
    return True


def _fetchOne(txn: Any, statement: str) -> Any:
    """An interaction running one query and fetching its rows (mysql.connector's unbuffered cursors
    refuse to close with rows unread)."""
    txn.execute(statement)
    return txn.fetchall()


async def _nextCallsWork(reactor: Reactor, pool: Any) -> list[str]:
    """After the storm (no more kills): at most one failure per dead connection, then calls work."""
    failures: list[str] = []
    for _ in range(CP_MAX + 1):
        try:
            await pool.runQuery("SELECT 1").addTimeout(5, reactor)
        except Exception as e:
            failures.append(type(e).__name__)

    async def burst() -> list[str]:
        calls = [pool.runQuery("SELECT 1").addTimeout(5, reactor) for _ in range(CALLERS)]
        calls += [pool.runInteraction(_fetchOne, "SELECT 1").addTimeout(5, reactor) for _ in range(CP_MAX)]
        failed: list[str] = []
        for d in calls:
            try:
                await d
            except Exception as e:
                failed.append(type(e).__name__)
        return failed

    # Idle workers are taken warmest first, so one-at-a-time calls may never reach a cold worker whose
    # connection died: the first burst may meet those. Each dead connection fails at most one call...
    failures += await burst()
    broken: list[str] = []
    if len(failures) > CP_MAX:
        broken.append(f"{len(failures)} calls after the storm failed (at most {CP_MAX}): {failures}")
    # ... and then every call works.
    broken += await burst()
    return broken


STORM_OPTIONS = [
    pytest.param({}, id="plain"),
    pytest.param({"cp_reconnect": True}, id="reconnect"),
    pytest.param({"cp_retry": adbapi.RetryPolicy(attempts=3, backoff=0.001)}, id="retry"),
]


@pytest.mark.parametrize("options", STORM_OPTIONS)
def test_stormWithKilledSessions(chaos: Chaos, options: dict[str, Any]) -> None:
    """32 callers, sessions killed every 20 ms: every Deferred fires, <= cp_max, recovery, clean close."""
    problems: list[str] = []
    cancels = True

    async def body(reactor: Reactor) -> None:
        pool = chaos.pool(reactor, **options)
        storm = Storm(chaos, pool, reactor, seed=7, cancels=cancels)
        killer = Killer(chaos, seed=7)
        killer.start(reactor)
        storm.start()
        await _weather(reactor, killer, STORM_SECONDS,
                       lambda: _checkBounds(chaos, pool, problems, server=True),
                       lambda: setattr(storm, "stopping", True))
        try:  # each caller ends once its last call fired
            await within(reactor, DeferredList(storm.callers), "every caller's last call firing", 8)
        except AssertionError:
            problems.append(f"{storm.unfired()} Deferreds never fired: {pool.statistics()}")
            return
        problems.extend(storm.unexpected[:3])
        assert killer.kills > 0 and storm.ok > 0, (killer.kills, storm.ok, dict(storm.errors))
        problems.extend(await _nextCallsWork(reactor, pool))
        await _quiet(reactor, pool, 2)
        s = pool.statistics()
        # (A worker whose broken connection was discarded opens its next one lazily, at its next call: idle
        # workers without a connection are fine, so connectionsOpen is checked against the server instead.)
        if s.busy != 0 or s.waiting != 0:
            problems.append(f"inconsistent statistics when quiet: {s}")
        _checkBounds(chaos, pool, problems, server=True)
        live = chaos.sessions()
        if len(live) != s.connectionsOpen:
            problems.append(f"{len(live)} server sessions but connectionsOpen={s.connectionsOpen}")
        if not await _boundedClose(reactor, pool, 8):
            problems.append(f"close() did not finish: {pool.statistics()}")
            return
        left = await threadsEnded(reactor, poolThreadsOf(chaos.name), 2)
        if left:
            problems.append(f"threads left after close(): {left}")

    runReactor(body, timeout=19)
    assert problems == []


def _stopMidway(reactor: Reactor, pool: Any, storm: Any, killer: Killer, mode: str,
                atClose: Callable[[], dict[str, Any]], hung: Callable[[], Any]) -> dict[str, Any]:
    """Run ``storm`` and ``killer`` in the fresh ``reactor``, then at 0.8 s ``close()`` the pool or
    ``reactor.stop()`` or both (``mode``: "close", "stop", "close+stop"), with a 10 s guard.

    The result holds what ``atClose()`` gave when close() fired (mode "close"), and under "hung"
    what ``hung()`` gave if the guard had to end the run.
    """
    out: dict[str, Any] = {}

    def start() -> None:
        killer.start(reactor)
        storm.start()

    def midway() -> None:
        if mode == "close":
            closing = pool.close()

            def closed(_: Any) -> None:
                out.update(atClose())
                reactor.stop()

            closing.addBoth(closed)
        elif mode == "close+stop":
            pool.close()
            reactor.stop()
        else:
            reactor.stop()

    def tooLong() -> None:
        out["hung"] = hung()
        reactor.crash()

    reactor.callWhenRunning(start)
    reactor.callLater(0.8, midway)
    guard = reactor.callLater(10, tooLong)
    try:
        reactor.run(installSignalHandlers=False)
    finally:
        if guard.active():
            guard.cancel()
        storm.stopping = True
        killer.stop()
    return out


def _runUntilStopped(chaos: Chaos, mode: str, cancels: bool, seed: int) -> dict[str, Any]:
    """A storm in a fresh reactor, then ``close()`` or ``reactor.stop()`` (or both) at 0.8 s."""
    reactor = Reactor()
    pool = chaos.pool(reactor)
    storm = Storm(chaos, pool, reactor, seed=seed, cancels=cancels)
    killer = Killer(chaos, seed=seed)
    out = _stopMidway(
        reactor, pool, storm, killer, mode,
        atClose=lambda: {"unfiredAtClose": storm.unfired(), "threadsAtClose": poolThreads(chaos.name)},
        hung=pool.statistics,
    )
    out["unfired"] = storm.unfired()
    out["unexpected"] = storm.unexpected[:3]
    out["errors"] = dict(storm.errors)
    out["stats"] = pool.statistics()
    return out


@pytest.mark.parametrize("mode", ["close", "stop", "close+stop"])
def test_stormStoppedMidway(chaos: Chaos, mode: str) -> None:
    """close() and/or reactor.stop() in the middle of a storm with kills: everything drains."""
    out = _runUntilStopped(chaos, mode, cancels=True, seed=11)
    assert "hung" not in out, f"the shutdown/close hung: {out}"
    assert out["unfired"] == 0, out
    assert out["unexpected"] == [], out
    if mode == "close":
        assert out["unfiredAtClose"] == 0, out  # close() fires after every call it let finish
    assert out["errors"].get("PoolClosedError") == CALLERS, out
    assertPoolGone(chaos, out["stats"])


def assertPoolGone(chaos: Chaos, stats: Any) -> None:
    """After a stopped storm: the pool closed and empty, no thread of it left, no session on the server."""
    s = stats
    assert (s.state, s.connectionsOpen, s.busy, s.idle, s.waiting, s.workers, s.lanes) == (
        "closed", 0, 0, 0, 0, 0, 0), s
    # Joined workers are gone; a lane's side thread (connect, cancel) ends right after.
    deadline = time.monotonic() + 2
    for t in poolThreadsOf(chaos.name):
        t.join(max(0.0, deadline - time.monotonic()))
    assert poolThreads(chaos.name) == []
    # The server ends a session a moment after its client closed the socket.
    waitUntil(lambda: not chaos.sessions(), 3, 0.02)
    assert chaos.sessions() == set()


@pytest.mark.parametrize("pingAfter", [None, 0], ids=["noping", "ping0"])
@pytest.mark.parametrize("mixed", [False, True], ids=["single", "mixed"])
def test_idleConnectionsDieThenBurst(chaos: Chaos, pingAfter: float | None, mixed: bool) -> None:
    """All connections die while idle; a burst of 32 calls: one failure per dead connection at most
    (none with ``cp_ping_after=0``), every slot replaced, statistics consistent."""
    problems: list[str] = []
    options = {} if pingAfter is None else {"cp_ping_after": pingAfter}

    async def burst(pool: Any) -> Counter[str]:
        failures: Counter[str] = Counter()
        ds = []
        for i in range(CALLERS):
            if mixed and i % 3 == 0:
                ds.append(pool.runInteraction(_fetchOne, f"SELECT {chaos.sleep}(0.01)"))
            else:
                ds.append(pool.runQuery(f"SELECT {chaos.sleep}(0.01)"))
        for d in ds:
            try:
                await d.addTimeout(8, reactorRef[0])
            except Exception as e:
                failures[type(e).__name__] += 1
        return failures

    reactorRef: list[Any] = []

    async def body(reactor: Reactor) -> None:
        reactorRef.append(reactor)
        pool = chaos.pool(reactor, **options)
        for _ in range(2):
            warm = await burst(pool)
            if warm:
                problems.append(f"warm-up failed: {dict(warm)}")
            before = pool.statistics()
            chaos.killAll()
            await until(reactor, lambda: not chaos.lingering(), "the killed sessions ending on the server")
            failures = await burst(pool)
            allowed = 0 if pingAfter == 0 else before.connectionsOpen
            if sum(failures.values()) > allowed:
                problems.append(f"{dict(failures)} failures, at most {allowed} expected")
            await _quiet(reactor, pool, 2)
            s = pool.statistics()
            if s.busy or s.waiting or s.busy + s.idle != s.connectionsOpen or s.connectionsOpen > CP_MAX:
                problems.append(f"statistics after the burst: {s}")
            live = chaos.sessions()
            if len(live) != s.connectionsOpen:
                problems.append(f"{len(live)} server sessions, connectionsOpen={s.connectionsOpen}")
        if not await _boundedClose(reactor, pool, 5):
            problems.append(f"close() did not finish: {pool.statistics()}")

    runReactor(body, timeout=19)
    assert problems == []
    assert poolThreads(chaos.name) == []


def test_laneCancelRacingAKilledSessionFreesTheSlot(lanes: Backend) -> None:
    """Cancel a lane's statement just after its backend was terminated: the pool must recover."""
    name = uniqueName("chaos-lane").replace("-", "_")
    dsn = f"{lanes.connargs[0]} application_name={name}"
    seen: dict[str, Any] = {}

    async def body(reactor: Reactor) -> None:
        pool = adbapi.ConnectionPool(lanes.module, dsn, cp_reactor=reactor, cp_name=name, cp_max=2,
                                     cp_nonblocking=True)
        d = pool.runQuery("SELECT pg_sleep(30)")
        query = ("SELECT pid FROM pg_stat_activity WHERE application_name = %s AND state = 'active' "
                 "AND query LIKE 'SELECT pg_sleep(30)%%'")
        await until(reactor, lambda: bool(lanes.admin(query, name)), "the statement on the server", 5)
        pid = lanes.admin(query, name)[0][0]
        # Blocking, in the reactor thread: the backend is gone before the reactor reads its EOF.
        lanes.admin("SELECT pg_terminate_backend(%s, 5000)", pid)
        d.cancel()  # the lane starts its cancel side thread
        with pytest.raises(CancelledError):
            await d
        # The Deferred fired at once; the slot is free once the server ended the statement's session.
        await _quiet(reactor, pool, 1)
        seen["afterCancel"] = pool.statistics()
        rows = await pool.runQuery("SELECT 1").addTimeout(2, reactor)
        assert rows == [(1,)]
        closed = await _boundedClose(reactor, pool, 2)
        seen["closed"] = closed
        assert closed, f"close() did not finish: {pool.statistics()}"

    try:
        runReactor(body, timeout=6)
    finally:
        lanes.admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
                    name)
    s = seen["afterCancel"]
    assert s.busy == 0 and s.busy + s.idle == s.connectionsOpen, s


def test_closeFiresAfterTheDeferredOfACallItDrained(postgresDSN: str) -> None:
    """close() fires after the Deferred of a call it let finish, even when an idle worker's exit notice
    reached the reactor first (worker Y idles, X runs an interaction; close(); Y exits, X finishes)."""
    import psycopg2

    name = uniqueName("chaos-order")
    order: list[tuple[str, Any]] = []

    async def body(reactor: Reactor) -> None:
        pool = adbapi.ConnectionPool(psycopg2, postgresDSN, cp_reactor=reactor, cp_name=name,
                                     cp_min=2, cp_max=2, cp_nonblocking=False)
        release, started = threading.Event(), threading.Event()
        running: list[threading.Thread] = []

        def blocked(txn: Any) -> str:
            running.append(threading.current_thread())
            started.set()
            release.wait(5)
            txn.execute("SELECT 1")
            return "x"

        await pool.runInteraction(_fetchOne, "SELECT 1")
        dx = pool.runInteraction(blocked)
        assert started.wait(5)
        dx.addBoth(lambda r: order.append(("call", r)))
        closing = pool.close()  # the idle worker Y gets its exit order
        closing.addBoth(lambda _: order.append(("close", dx.called)))
        others = [t for t in threading.enumerate()
                  if t.name.startswith(f"PoolThread-{name}-") and t is not running[0]]
        # Blocking the reactor thread on purpose: Y's exit notice, then X's result, queue up unread.
        for t in others:
            t.join(5)
        release.set()
        running[0].join(5)
        await within(reactor, DeferredList([dx, closing], consumeErrors=True), "the call and close firing", 5)
        assert [what for what, _ in order] == ["call", "close"], order

    runReactor(body, timeout=10)
    assert poolThreads(name) == []
