"""Async transactions and SQLAlchemy units under load while the server kills the pool's sessions.

``test_adbapi_chaos.py`` storms runQuery/runOperation/runInteraction/runWithConnection; this file
does the same for ``async with pool.transaction()`` blocks (multi-statement, some cancelled
mid-block, some raising) mixed with runQuery traffic, and for ``adbapi.sqlalchemy.SQLAlchemyPool``
Core and ORM units, plain, with ``cp_reconnect=True`` and with ``cp_retry``. The promises checked:
every coroutine and Deferred finishes, committed blocks' rows are there exactly once, blocks that
were rolled back (raised, cancelled, killed before their commit) left none, a block is never half
committed, the pool stays within ``cp_max``, statistics are consistent when quiet, and ``close()`` /
``reactor.stop()`` drain and leave no thread. Randomness is seeded; every wait is bounded.
"""

from __future__ import annotations

import gc
import logging
import random
import traceback
from collections import Counter
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

import adbapi
from reactor import CancelledError, Deferred, DeferredList, Reactor
from tests.adbapi_support import poolThreadsOf, runReactor, threadsEnded, uniqueName, waitUntil, within
from tests.test_adbapi_chaos import (  # noqa: F401
    CP_MAX,
    STORM_OPTIONS,
    Chaos,
    Killer,
    _boundedClose,
    _quiet,
    _stopMidway,
    _weather,
    assertPoolGone,
    chaosFixture,
)

BLOCK_CALLERS = 24
QUERY_CALLERS = 8
STORM_SECONDS = 1.5


class Boom(Exception):
    """Raised inside a block on purpose: the block must roll back."""


def _rowsByBlock(chaos: Chaos) -> dict[int, list[tuple[int, int]]]:
    """Block id -> sorted [(row index in the block, how many times it is stored)]."""
    counts = Counter(r[0] for r in chaos.admin(f"SELECT v FROM {chaos.table}"))
    per: dict[int, list[tuple[int, int]]] = {}
    for v, n in counts.items():
        per.setdefault(v // 10, []).append((v % 10, n))
    return {k: sorted(x) for k, x in per.items()}


def _atCommit(error: BaseException) -> bool:
    """Whether ``error`` was raised by the pool's own ``commit()`` (the outcome is then unknown)."""
    frames = traceback.extract_tb(error.__traceback__)
    return any(f.line is not None and "commit()" in f.line for f in frames)


class TxnStorm:
    """24 seeded coroutines running multi-statement async transactions, 8 issuing runQuery."""

    FULL = [(0, 1), (1, 1), (2, 1)]

    def __init__(self, chaos: Chaos, pool: Any, reactor: Reactor, seed: int) -> None:
        self.chaos, self.pool, self.reactor, self.seed = chaos, pool, reactor, seed
        self.stopping = False
        self.nextId = 1
        self.stage: dict[int, str] = {}  # block id -> where its coroutine is
        self.outcome: dict[int, tuple[str, str]] = {}  # block id -> (outcome, stage when it ended)
        self.cancelStage: dict[int, str] = {}
        self.cancelInBody: set[int] = set()
        self.running: dict[int, Deferred[Any]] = {}
        self.errors: Counter[str] = Counter()
        self.unexpected: list[str] = []
        self.queriesOk = 0
        m = chaos.module
        self.allowed = (m.OperationalError, m.InterfaceError, m.DatabaseError, adbapi.ConnectionLost)
        self.callers: list[Deferred[None]] = []

    def start(self) -> None:
        self.callers = [Deferred.fromCoroutine(self._blockCaller(i)) for i in range(BLOCK_CALLERS)]
        self.callers += [Deferred.fromCoroutine(self._queryCaller(i)) for i in range(QUERY_CALLERS)]

    def finished(self) -> bool:
        return all(c.called for c in self.callers)

    def hanging(self) -> dict[int, str]:
        return {b: self.stage.get(b, "?") for b in self.running if b > 0}

    async def _block(self, bid: int, rng: random.Random) -> None:
        t, sleep = self.chaos.table, self.chaos.sleep
        self.stage[bid] = "enter"
        async with self.pool.transaction() as txn:
            self.stage[bid] = "body"
            if bid in self.cancelInBody:
                self.reactor.callLater(rng.uniform(0, 0.01), self._cancel, bid)
            assert await txn.execute(f"INSERT INTO {t} (v) VALUES (%s)", (bid * 10,)) == 1
            await txn.execute(f"SELECT {sleep}(%s)", (rng.choice([0, 0.001, 0.003]),))
            await txn.fetchall()
            rows = await txn.runQuery(f"SELECT count(*) FROM {t} WHERE v = %s", (bid * 10,))
            assert rows[0][0] == 1, rows
            await txn.executemany(f"INSERT INTO {t} (v) VALUES (%s)", [(bid * 10 + 1,), (bid * 10 + 2,)])
            await txn.execute(f"SELECT v FROM {t} WHERE v BETWEEN %s AND %s ORDER BY v",
                              (bid * 10, bid * 10 + 9))
            first = await txn.fetchone()
            rest = await txn.fetchall()
            got = [first[0]] + [r[0] for r in rest]
            assert got == [bid * 10, bid * 10 + 1, bid * 10 + 2], got
            if rng.random() < 0.15:
                self.stage[bid] = "raising"
                raise Boom()
            self.stage[bid] = "exiting"  # from here the commit may or may not have happened on an error
        self.stage[bid] = "done"

    def _cancel(self, bid: int) -> None:
        d = self.running.get(bid)
        if d is not None and not d.called:
            self.cancelStage[bid] = self.stage.get(bid, "?")
            d.cancel()  # the coroutine's Deferred (Deferred.fromCoroutine)

    async def _blockCaller(self, i: int) -> None:
        rng = random.Random(self.seed * 1000 + i)
        while not self.stopping:
            bid = self.nextId
            self.nextId += 1
            c = rng.random()
            if c < 0.15:
                self.cancelInBody.add(bid)
            d = Deferred.fromCoroutine(self._block(bid, rng))
            self.running[bid] = d
            if 0.15 <= c < 0.2:
                self.reactor.callLater(rng.uniform(0, 0.02), self._cancel, bid)
            try:
                await d
                self.outcome[bid] = ("committed", "")
            except Boom:
                self.outcome[bid] = ("raised", "")
            except CancelledError:
                self.outcome[bid] = ("cancelled", self.cancelStage.get(bid, self.stage.get(bid, "?")))
                self.errors["CancelledError"] += 1
            except adbapi.PoolClosedError:
                self.outcome[bid] = ("closed", self.stage.get(bid, "?"))
                self.errors["PoolClosedError"] += 1
                return
            except self.allowed as e:
                self.outcome[bid] = ("error", self.stage.get(bid, "?"))
                self.errors[type(e).__name__] += 1
            except BaseException as e:
                self.outcome[bid] = ("unexpected", self.stage.get(bid, "?"))
                self.errors[type(e).__name__] += 1
                self.unexpected.append(f"block {bid} at {self.stage.get(bid)}: {e!r}")
            finally:
                del self.running[bid]

    async def _queryCaller(self, i: int) -> None:
        rng = random.Random(self.seed * 7777 + i)
        while not self.stopping:
            key = -self.nextId
            self.nextId += 1
            d = self.pool.runQuery(f"SELECT {self.chaos.sleep}(%s), 1", (rng.choice([0, 0.001]),))
            self.running[key] = d
            try:
                await d
                self.queriesOk += 1
            except adbapi.PoolClosedError:
                self.errors["query:PoolClosedError"] += 1
                return
            except self.allowed as e:
                self.errors[f"query:{type(e).__name__}"] += 1
            except BaseException as e:
                self.unexpected.append(f"runQuery: {e!r}")
            finally:
                del self.running[key]

    def checkRows(self) -> list[str]:
        per = _rowsByBlock(self.chaos)
        problems: list[str] = []
        for bid, (outcome, stage) in self.outcome.items():
            got = per.get(bid, [])
            if outcome == "committed":
                if got != self.FULL:
                    problems.append(f"committed block {bid} has rows {got}")
            elif stage == "exiting":  # failed or cancelled at its commit: all or nothing
                if got not in ([], self.FULL):
                    problems.append(f"{outcome} block {bid} (at its commit) is half committed: {got}")
            elif got:
                problems.append(f"{outcome} block {bid} (at {stage}) left rows {got}")
        for bid in set(per) - set(self.outcome):
            problems.append(f"rows of block {bid}, which never finished: {per[bid]}")
        return problems


def _checkBounds(chaos: Chaos, pool: Any, problems: list[str]) -> None:
    s = pool.statistics()
    if s.connectionsOpen > CP_MAX or s.workers + s.lanes > CP_MAX:
        problems.append(f"more than cp_max connections: {s}")
    live = chaos.sessions()
    if len(live) > CP_MAX:
        problems.append(f"{len(live)} live server sessions > cp_max: {s}")


async def _quietChecks(chaos: Chaos, pool: Any, reactor: Reactor, problems: list[str],
                       sessions: bool = True) -> None:
    await _quiet(reactor, pool, 2)
    s = pool.statistics()
    # (A worker whose broken connection was discarded opens its next one lazily, at its next call: idle
    # workers without a connection are fine, so connectionsOpen is checked against the server instead.)
    if s.busy != 0 or s.waiting != 0:
        problems.append(f"inconsistent statistics when quiet: {s}")
    if not sessions:  # connections killed while idle count as open until a call meets them
        return
    live = chaos.sessions()
    if len(live) != s.connectionsOpen:
        problems.append(f"{len(live)} server sessions but connectionsOpen={s.connectionsOpen}")


@pytest.mark.parametrize("options", STORM_OPTIONS)
def test_transactionStormWithKilledSessions(chaos: Chaos, options: dict[str, Any]) -> None:
    """24 async-transaction coroutines (some cancelled, some raising) + 8 runQuery callers while
    sessions die every 20 ms: no hang, rows all-or-nothing as reported, <= cp_max, recovery."""
    problems: list[str] = []
    seen: dict[str, Any] = {}

    async def body(reactor: Reactor) -> None:
        pool = chaos.pool(reactor, **options)
        storm = TxnStorm(chaos, pool, reactor, seed=7)
        killer = Killer(chaos, seed=7)
        killer.start(reactor)
        storm.start()
        await _weather(reactor, killer, STORM_SECONDS, lambda: _checkBounds(chaos, pool, problems),
                       lambda: setattr(storm, "stopping", True))
        try:  # each caller ends once its last block or query fired
            await within(reactor, DeferredList(storm.callers), "every caller finishing", 8)
        except AssertionError:
            problems.append(f"coroutines never finished: {storm.hanging()} {pool.statistics()}")
            return
        outcomes = Counter(o for o, _ in storm.outcome.values())
        seen.update(kills=killer.kills, outcomes=outcomes, errors=dict(storm.errors))
        problems.extend(storm.unexpected[:3])
        problems.extend(storm.checkRows())
        # After the storm: at most one failure per dead connection, then blocks work.
        failures = []
        for _ in range(CP_MAX + 1):
            try:
                async with pool.transaction() as txn:
                    await txn.runQuery("SELECT 1").addTimeout(5, reactor)
            except Exception as e:
                failures.append(type(e).__name__)
        if len(failures) > CP_MAX:
            problems.append(f"{len(failures)} blocks after the storm failed: {failures}")
        async with pool.transaction() as txn:
            rows = await txn.runQuery("SELECT 1").addTimeout(5, reactor)
        assert [tuple(r) for r in rows] == [(1,)]

        async def oneBlock() -> list[Any]:
            async with pool.transaction() as txn:
                return list(await txn.runQuery("SELECT 1"))

        # A concurrent burst reaches every worker, so each one whose connection was dropped reopens it.
        burst = [Deferred.fromCoroutine(oneBlock()).addTimeout(5, reactor) for _ in range(2 * CP_MAX)]
        burst += [pool.runQuery("SELECT 1").addTimeout(5, reactor) for _ in range(2 * CP_MAX)]
        for d in burst:
            try:
                await d
            except Exception as e:
                problems.append(f"a call after the storm failed: {e!r}")
        await _quietChecks(chaos, pool, reactor, problems)
        if not await _boundedClose(reactor, pool, 8):
            problems.append(f"close() did not finish: {pool.statistics()}")
            return
        left = await threadsEnded(reactor, poolThreadsOf(chaos.name), 2)
        if left:
            problems.append(f"threads left after close(): {left}")

    runReactor(body, timeout=19)
    assert problems == [], (problems, seen)
    outcomes = seen["outcomes"]
    assert seen["kills"] > 0 and outcomes["committed"] > 0 and outcomes["raised"] > 0, seen
    assert outcomes["cancelled"] > 0 and outcomes["error"] > 0, seen


@pytest.mark.parametrize("mode", ["close", "stop", "close+stop"])
def test_transactionStormStoppedMidway(chaos: Chaos, mode: str) -> None:
    """close() and/or reactor.stop() in the middle of an async-transaction storm with kills."""
    reactor = Reactor()
    pool = chaos.pool(reactor)
    storm = TxnStorm(chaos, pool, reactor, seed=11)
    killer = Killer(chaos, seed=11)
    out = _stopMidway(reactor, pool, storm, killer, mode,
                      atClose=lambda: {"unfinishedAtClose": storm.hanging()},
                      hung=lambda: (pool.statistics(), storm.hanging()))
    assert "hung" not in out, f"the shutdown/close hung: {out}"
    assert storm.finished(), storm.hanging()
    assert storm.unexpected == []
    if mode == "close":
        assert out["unfinishedAtClose"] == {}, out  # close() fired after every block it let end
    assert storm.errors["PoolClosedError"] == BLOCK_CALLERS, storm.errors
    assert storm.errors["query:PoolClosedError"] == QUERY_CALLERS, storm.errors
    assert storm.checkRows() == []
    assertPoolGone(chaos, pool.statistics())


def test_transactionEnterFailureLeavesNoUnhandledError(
    postgresDSN: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A block whose connection cannot be opened: `async with` raises the driver's error, once."""
    import psycopg2

    # The same path is taken, in the storms, by blocks still queued when close() runs.
    dsn = postgresDSN + " port=1 connect_timeout=2"
    seen: dict[str, Any] = {}

    async def body(reactor: Reactor) -> None:
        pool = adbapi.ConnectionPool(psycopg2, dsn, cp_reactor=reactor, cp_name=uniqueName("txn-enter"),
                                     cp_min=1, cp_max=2, cp_nonblocking=False)
        try:
            async with pool.transaction() as txn:
                await txn.execute("SELECT 1")
        except psycopg2.OperationalError as e:
            seen["error"] = type(e)  # not e: its traceback would keep the call's Deferred alive
        await pool.close()

    with caplog.at_level(logging.ERROR, logger="reactor.deferred"):
        runReactor(body, timeout=10)
        gc.collect()
    assert seen.get("error") is psycopg2.OperationalError
    unhandled = [r.getMessage().splitlines()[-1] for r in caplog.records
                 if "Unhandled error" in r.getMessage()]
    assert unhandled == []




# -- SQLAlchemyPool ----------------------------------------------------------------------------


@pytest.fixture(name="saChaos", params=["threads", "mysql"], ids=["pg", "mysql"])
def saChaosFixture(request: pytest.FixtureRequest) -> Any:
    chaos = Chaos(request.param, request)
    try:
        yield chaos
    finally:
        chaos.drop()


def _models(chaos: Chaos) -> tuple[Any, Any]:
    class Base(DeclarativeBase):
        metadata = sa.MetaData()

    class Item(Base):
        __tablename__ = chaos.table
        id: Mapped[int] = mapped_column(primary_key=True)
        v: Mapped[int] = mapped_column()

    return Item.__table__, Item


@pytest.mark.parametrize("options", STORM_OPTIONS)
def test_sqlalchemyStormWithKilledSessions(saChaos: Chaos, options: dict[str, Any]) -> None:
    """16 callers of runCore/runSession/execute (some cancelled) while sessions die: every Deferred
    fires, database errors are DBAPIError (ConnectionLost with cp_reconnect), units all-or-nothing,
    the next unit after a kill works, close() drains."""
    from sqlalchemy.exc import DBAPIError

    from adbapi.sqlalchemy import SQLAlchemyPool

    chaos = saChaos
    table, Item = _models(chaos)
    sleep = sa.text(f"SELECT {chaos.sleep}(0.002)")
    reconnect = bool(options.get("cp_reconnect"))
    problems: list[str] = []
    seen: dict[str, Any] = {}

    def core(conn: sa.Connection, bid: int) -> int:
        conn.execute(sa.insert(table), [{"v": bid * 10}, {"v": bid * 10 + 1}])
        conn.execute(sleep)
        where = table.c.v.between(bid * 10, bid * 10 + 9)
        return int(conn.execute(sa.select(sa.func.count()).select_from(table).where(where)).scalar_one())

    def orm(session: Any, bid: int) -> list[int]:
        session.add_all([Item(v=bid * 10), Item(v=bid * 10 + 1)])
        session.flush()
        session.execute(sleep)
        mine = sa.select(Item).where(Item.v.between(bid * 10, bid * 10 + 9)).order_by(Item.v)
        return [i.v for i in session.scalars(mine).all()]

    async def body(reactor: Reactor) -> None:
        pool = chaos.pool(reactor, **options)
        db = SQLAlchemyPool(pool)
        killer = Killer(chaos, seed=5)
        stopping = False
        outcome: dict[int, str] = {}
        errors: Counter[str] = Counter()
        nextId = [1]

        async def caller(i: int) -> None:
            rng = random.Random(500 + i)
            while not stopping:
                bid = nextId[0]
                nextId[0] += 1
                r = rng.random()
                what = "core" if r < 0.4 else "orm" if r < 0.8 else "execute"
                if what == "core":
                    d: Deferred[Any] = db.runCore(core, bid)
                elif what == "orm":
                    d = db.runSession(orm, bid)
                else:
                    d = db.execute(sa.select(sa.literal(1)))
                if rng.random() < 0.1:
                    reactor.callLater(rng.uniform(0, 0.01), d.cancel)
                try:
                    value = await d
                    expected = {"core": 2, "orm": [bid * 10, bid * 10 + 1], "execute": [(1,)]}[what]
                    if (value if what != "execute" else [tuple(x) for x in value]) != expected:
                        problems.append(f"{what} {bid} returned {value!r}")
                    outcome[bid] = "ok" if what != "execute" else "none"
                except adbapi.PoolClosedError:
                    problems.append(f"{what} {bid}: PoolClosedError before close()")
                    return
                except CancelledError:
                    outcome[bid] = "unknown"
                    errors["CancelledError"] += 1
                except DBAPIError as e:
                    outcome[bid] = "unknown"
                    errors[f"{type(e).__name__}({type(e.orig).__name__})"] += 1
                    if reconnect and chaos.module.OperationalError in type(e.orig).__mro__ and \
                            "lost" in str(e).lower():
                        pass  # a lost connection met by SQLAlchemy's own statement, before the pool saw it
                except adbapi.ConnectionLost as e:
                    outcome[bid] = "unknown"
                    errors["ConnectionLost"] += 1
                    if not reconnect:
                        problems.append(f"{what} {bid}: ConnectionLost without cp_reconnect: {e!r}")
                except chaos.module.Error as e:
                    outcome[bid] = "unknown"
                    # The pool's own commit is outside SQLAlchemy: see test_sqlalchemyCommitLostIsDBAPIError.
                    errors[f"raw {type(e).__name__}" + (" at commit" if _atCommit(e) else "")] += 1
                    if not _atCommit(e):
                        problems.append(f"{what} {bid}: driver error not wrapped by SQLAlchemy: {e!r}")
                except BaseException as e:
                    outcome[bid] = "unknown"
                    problems.append(f"{what} {bid}: unexpected {e!r}")

        killer.start(reactor)
        callers = [Deferred.fromCoroutine(caller(i)) for i in range(16)]

        def stop() -> None:
            nonlocal stopping
            stopping = True

        await _weather(reactor, killer, STORM_SECONDS, lambda: _checkBounds(chaos, pool, problems), stop)
        try:
            await within(reactor, DeferredList(callers), "every caller's Deferred firing", 8)
        except AssertionError:
            problems.append(f"Deferreds never fired: {pool.statistics()}")
            return
        seen.update(kills=killer.kills, errors=dict(errors), outcomes=Counter(outcome.values()))
        per = _rowsByBlock(chaos)
        for bid, o in outcome.items():
            got = per.get(bid, [])
            if o == "ok" and got != [(0, 1), (1, 1)]:
                problems.append(f"committed unit {bid} has rows {got}")
            elif o == "unknown" and got not in ([], [(0, 1), (1, 1)]):
                problems.append(f"unit {bid} is half committed: {got}")
        # Every session dies once more while idle: at most one failure per dead connection, then units work.
        chaos.killAll()
        failures = []
        for _ in range(CP_MAX + 1):
            try:
                await db.runCore(lambda c: c.execute(sa.text("SELECT 1")).scalar_one()).addTimeout(5, reactor)
            except (DBAPIError, adbapi.ConnectionLost) as e:
                failures.append(type(e).__name__)
        if len(failures) > CP_MAX:
            problems.append(f"{len(failures)} units after the kills failed: {failures}")
        one = db.runSession(lambda s: s.execute(sa.text("SELECT 1")).scalar_one())
        assert await one.addTimeout(5, reactor) == 1
        await _quietChecks(chaos, pool, reactor, problems, sessions=False)
        closing = db.close()
        guard = reactor.callLater(8, lambda: None if closing.called else closing.cancel())
        try:
            await closing
        except CancelledError:
            problems.append(f"close() did not finish: {pool.statistics()}")
            return
        finally:
            if guard.active():
                guard.cancel()
        left = await threadsEnded(reactor, poolThreadsOf(chaos.name), 2)
        if left:
            problems.append(f"threads left after close(): {left}")

    runReactor(body, timeout=19)
    assert problems == [], (problems, seen)
    assert seen["kills"] > 0 and seen["outcomes"]["ok"] > 0, seen


@pytest.mark.parametrize("kind", ["orm", "core"])
def test_sqlalchemyCommitLostIsDBAPIError(saChaos: Chaos, kind: str) -> None:
    """The session dies after the unit's last statement, before the pool commits: still a DBAPIError."""
    from sqlalchemy.exc import DBAPIError

    from adbapi.sqlalchemy import SQLAlchemyPool

    chaos = saChaos
    table, Item = _models(chaos)
    seen: dict[str, Any] = {}

    def killMe(conn: sa.Connection) -> None:
        sid = conn.execute(sa.text(
            "SELECT CONNECTION_ID()" if chaos.server == "mysql" else "SELECT pg_backend_pid()")).scalar_one()
        if chaos.server == "mysql":
            chaos.admin(f"KILL {int(sid)}")
            gone = waitUntil(lambda: not chaos.admin(
                "SELECT count(*) FROM information_schema.processlist WHERE id = %s", sid)[0][0], 3)
            assert gone, "the killed session did not go away"
        else:
            chaos.admin("SELECT pg_terminate_backend(%s, 5000)", sid)

    def coreUnit(conn: sa.Connection) -> None:
        conn.execute(sa.insert(table), [{"v": 10}])
        killMe(conn)

    def ormUnit(session: Any) -> None:
        session.add(Item(v=10))
        session.flush()
        killMe(session.connection())

    async def body(reactor: Reactor) -> None:
        db = SQLAlchemyPool(chaos.pool(reactor, cp_max=2))
        d = db.runCore(coreUnit) if kind == "core" else db.runSession(ormUnit)
        try:
            await d.addTimeout(8, reactor)
        except Exception as e:
            seen["error"] = e
        seen["after"] = await db.execute(sa.select(sa.literal(1))).addTimeout(5, reactor)
        await db.close()

    runReactor(body, timeout=15)
    assert [tuple(r) for r in seen["after"]] == [(1,)]
    assert chaos.admin(f"SELECT count(*) FROM {chaos.table}")[0][0] == 0
    error = seen.get("error")
    assert isinstance(error, DBAPIError), f"{type(error).__module__}.{type(error).__name__}: {error!r}"
    assert isinstance(error.orig, chaos.module.OperationalError)
