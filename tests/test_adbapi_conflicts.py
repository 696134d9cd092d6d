"""The retry policy against real conflicts: SERIALIZABLE write skew on PostgreSQL, real deadlocks."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest

from adbapi import RetryPolicy, Transaction
from reactor import DeferredList, Reactor, gatherResults
from tests.adbapi_support import Backend, WatchedClock, runReactor, serverBackendFixture, within  # noqa: F401


@pytest.mark.parametrize("driver", ["psycopg2", "psycopg"])
def test_serializableWriteSkewIsRetriedWithBackoff(driver: str, postgresDSN: str, uniqueTableName: str,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    """Two SERIALIZABLE transactions in write skew: PostgreSQL aborts one (40001), re-run after backoff."""
    module = pytest.importorskip(driver)
    backend = Backend("postgres", module, (postgresDSN,), {}, "%s")
    table = backend.createTable(uniqueTableName)
    backend.admin(f"INSERT INTO {table} (id, v) VALUES (1, 0), (2, 0)")
    bothRead = threading.Barrier(2, timeout=10)
    attempts: dict[int, int] = {1: 0, 2: 0}

    def skew(txn: Transaction, me: int) -> int:
        attempts[me] += 1
        txn.execute("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE")
        txn.execute(f"SELECT sum(v) FROM {table}")
        if attempts[me] == 1:
            bothRead.wait()  # each has read what the other is about to write
        txn.execute(f"UPDATE {table} SET v = v + 1 WHERE id = %s", (me,))
        return attempts[me]

    async def body(reactor: Reactor) -> Any:
        clock = WatchedClock()
        policy = RetryPolicy(attempts=3, backoff=0.5, jitter=0.0)
        pool = backend.pool(reactor, cp_min=2, cp_max=2, cp_retry=policy, cp_clock=clock)
        calls = [pool.runInteraction(skew, 1), pool.runInteraction(skew, 2)]
        await within(reactor, clock.scheduled(), "a retry waiting on the clock")  # one of the two failed
        delays = [c.getTime() - clock.seconds() for c in clock.getDelayedCalls()]
        # The survivor must have committed before the retry runs, or the retry conflicts with it again.
        await within(reactor, DeferredList(calls, fireOnOneCallback=True, fireOnOneErrback=True),
                     "the surviving transaction's commit")
        clock.advance(0.49)
        assert sum(attempts.values()) == 2  # not re-run before the backoff is over
        clock.advance(0.01)
        return delays, await gatherResults(calls), pool.statistics()

    try:
        with caplog.at_level(logging.INFO, logger="adbapi"):
            delays, results, stats = runReactor(body)
        assert delays == [0.5]
        assert sorted(results) == [1, 2] and stats.retries == 1 and stats.errors == 0
        assert "SerializationFailure" in caplog.text
        assert backend.admin(f"SELECT sum(v) FROM {table}")[0][0] == 2  # each increment exactly once
    finally:
        backend.dropTables()


def _lowerDeadlockTimeout(conn: Any) -> None:
    # PostgreSQL looks for deadlocks after deadlock_timeout (1 s by default); a superuser may shorten it.
    cursor = conn.cursor()
    try:
        cursor.execute("SET deadlock_timeout = '100ms'")
        conn.commit()
    except Exception:
        conn.rollback()
    finally:
        cursor.close()


def test_realDeadlockIsRetried(serverBackend: Backend, uniqueTableName: str,
                               caplog: pytest.LogCaptureFixture) -> None:
    """Two interactions locking two rows in opposite orders deadlock; the server's victim is re-run."""
    backend = serverBackend
    table = backend.createTable(uniqueTableName)
    backend.admin(f"INSERT INTO {table} (id, v) VALUES (1, 0), (2, 0)")
    bothLocked = threading.Barrier(2, timeout=10)
    attempts: dict[int, int] = {1: 0, 2: 0}

    def crossUpdate(txn: Transaction, first: int, second: int) -> int:
        attempts[first] += 1
        txn.execute(f"UPDATE {table} SET v = v + 1 WHERE id = %s", (first,))
        if attempts[first] == 1:
            bothLocked.wait()  # each holds the row the other is about to ask for
        txn.execute(f"UPDATE {table} SET v = v + 10 WHERE id = %s", (second,))
        return attempts[first]

    async def body(reactor: Reactor) -> Any:
        openfun = _lowerDeadlockTimeout if backend.name == "postgres" else None
        pool = backend.pool(reactor, cp_min=2, cp_max=2, cp_openfun=openfun,
                            cp_retry=RetryPolicy(attempts=3, backoff=0.01))
        results = await gatherResults([pool.runInteraction(crossUpdate, 1, 2),
                                       pool.runInteraction(crossUpdate, 2, 1)])
        return results, pool.statistics()

    with caplog.at_level(logging.INFO, logger="adbapi"):
        results, stats = runReactor(body)
    assert sorted(results) == [1, 2] and stats.retries == 1 and stats.errors == 0
    # Each driver's own class for the server's deadlock error (MySQL error 1213).
    expected = {"psycopg2": "DeadlockDetected", "psycopg": "DeadlockDetected",
                "mysql.connector": "InternalError"}
    assert expected.get(backend.module.__name__, "OperationalError") in caplog.text
    rows = backend.admin(f"SELECT id, v FROM {table} ORDER BY id")
    assert [tuple(r) for r in rows] == [(1, 11), (2, 11)]  # both interactions applied exactly once


def test_deadlockNotRetriedWithoutPolicyArrivesAsDriverError(serverBackend: Backend,
                                                            uniqueTableName: str) -> None:
    """Without cp_retry the deadlock victim errbacks with the driver's error; the other commits."""
    backend = serverBackend
    table = backend.createTable(uniqueTableName)
    backend.admin(f"INSERT INTO {table} (id, v) VALUES (1, 0), (2, 0)")
    bothLocked = threading.Barrier(2, timeout=10)

    def crossUpdate(txn: Transaction, first: int, second: int) -> str:
        txn.execute(f"UPDATE {table} SET v = v + 1 WHERE id = %s", (first,))
        bothLocked.wait()
        txn.execute(f"UPDATE {table} SET v = v + 10 WHERE id = %s", (second,))
        return "ok"

    async def body(reactor: Reactor) -> Any:
        openfun = _lowerDeadlockTimeout if backend.name == "postgres" else None
        pool = backend.pool(reactor, cp_min=2, cp_max=2, cp_openfun=openfun)
        outcomes = await DeferredList([pool.runInteraction(crossUpdate, 1, 2),
                                       pool.runInteraction(crossUpdate, 2, 1)], consumeErrors=True)
        after = await pool.runQuery(f"SELECT count(*) FROM {table}")
        return outcomes, after, pool.statistics()

    outcomes, after, stats = runReactor(body)
    failed = [r for ok, r in outcomes if not ok]
    assert len(failed) == 1 and [r for ok, r in outcomes if ok] == ["ok"]
    assert failed[0].check(backend.module.Error)
    assert after[0][0] == 2 and stats.errors == 1 and stats.reconnects == 0  # rolled back, not lost
    assert sorted(r[1] for r in backend.admin(f"SELECT id, v FROM {table}")) == [1, 10]

