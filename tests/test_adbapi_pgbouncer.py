"""adbapi through PgBouncer in transaction pooling mode: psycopg2 (threads and lanes) and psycopg 3.

A throwaway PgBouncer (tests/pgbouncer_support.py) sits in front of the test server with a server pool of
2, so the pools' client connections share server connections between transactions, as in production.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import adbapi
from deferthreads import deferToExecutor
from reactor import CancelledError, Reactor, gatherResults
from tests.adbapi_support import runReactor, waitUntil
from tests.pgbouncer_support import PgBouncer, pgbouncer, serverRows

__all__ = ["pgbouncer"]  # the fixture, imported for the tests below

DRIVERS = ["psycopg2-threads", "psycopg2-lanes", "psycopg"]


def makePool(driver: str, dsn: str, reactor: Reactor, **kw: Any) -> adbapi.ConnectionPool:
    """A pool of ``driver`` on ``dsn``; psycopg 3 with its automatic prepared statements off (see below)."""
    if driver == "psycopg":
        return adbapi.ConnectionPool("psycopg", dsn, cp_reactor=reactor, prepare_threshold=None, **kw)
    return adbapi.ConnectionPool("psycopg2", dsn, cp_reactor=reactor,
                                 cp_nonblocking=driver == "psycopg2-lanes", **kw)


@pytest.fixture
def table(postgresDSN: str) -> Iterator[str]:
    """A table name of this test's own, dropped afterwards (on the server directly)."""
    name = f"t_pgb_{uuid.uuid4().hex[:12]}"
    yield name
    serverRows(postgresDSN, f"DROP TABLE IF EXISTS {name}; SELECT 1")


@pytest.mark.parametrize("driver", DRIVERS)
def test_queriesAndInteractionsRunThroughPgBouncer(driver: str, pgbouncer: PgBouncer, table: str) -> None:
    """runOperation, runInteraction (commit, rollback) and runQuery keep their meaning through PgBouncer."""

    def insertTwo(txn: adbapi.Transaction) -> int:
        txn.execute(f"INSERT INTO {table} (v) VALUES (%s)", (1,))
        txn.execute(f"INSERT INTO {table} (v) VALUES (%s)", (2,))
        txn.execute(f"SELECT count(*) FROM {table}")
        return int(txn.fetchall()[0][0])

    def insertThenFail(txn: adbapi.Transaction) -> None:
        txn.execute(f"INSERT INTO {table} (v) VALUES (%s)", (99,))
        raise LookupError("roll back")

    async def body(reactor: Reactor) -> Any:
        pool = makePool(driver, pgbouncer.dsn, reactor, cp_min=1, cp_max=4)
        await pool.runOperation(f"CREATE TABLE {table} (v INTEGER)")
        assert await pool.runInteraction(insertTwo) == 2
        with pytest.raises(LookupError):
            await pool.runInteraction(insertThenFail)
        many = await gatherResults([pool.runQuery(f"SELECT sum(v) FROM {table} WHERE v < %s", (i,))
                                    for i in range(10)])
        return [row[0][0] for row in many]

    sums = runReactor(body)
    assert sums == [None, None, 1, 3, 3, 3, 3, 3, 3, 3]


@pytest.mark.parametrize("driver", DRIVERS)
def test_transactionScopedSettingsAreSafeThroughPgBouncer(driver: str, pgbouncer: PgBouncer) -> None:
    """SET LOCAL inside an interaction holds for that transaction only: the safe kind of session state."""

    def local(txn: adbapi.Transaction) -> str:
        txn.execute("SET LOCAL statement_timeout = '1234ms'")
        txn.execute("SHOW statement_timeout")
        return str(txn.fetchall()[0][0])

    async def body(reactor: Reactor) -> tuple[str, str]:
        pool = makePool(driver, pgbouncer.dsn, reactor, cp_min=1, cp_max=2)
        inside = await pool.runInteraction(local)
        after = await pool.runInteraction(lambda txn: (txn.execute("SHOW statement_timeout"), txn.fetchall()))
        return inside, after[1][0][0]

    inside, after = runReactor(body)
    assert inside == "1234ms"
    assert after != "1234ms"


@pytest.mark.parametrize("driver", DRIVERS)
def test_cancellingAQueryCancelsItOnTheServerThroughPgBouncer(
    driver: str, pgbouncer: PgBouncer, postgresDSN: str
) -> None:
    """The cancel request goes to PgBouncer, which forwards it: the statement stops on the server."""
    marker = f"pgb_cancel_{uuid.uuid4().hex[:10]}"
    statement = f"SELECT pg_sleep(30) AS {marker}"
    running = f"SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%{marker}%' " \
              "AND pid <> pg_backend_pid()"

    def onServer() -> int:
        return int(serverRows(postgresDSN, running)[0][0])

    async def body(reactor: Reactor) -> None:
        pool = makePool(driver, pgbouncer.dsn, reactor, cp_min=1, cp_max=2)
        d = pool.runQuery(statement)
        with ThreadPoolExecutor(1) as watcher:
            assert await deferToExecutor(reactor, watcher, waitUntil, lambda: onServer() == 1, 10.0), \
                "the statement never showed up on the server"
            d.cancel()
            with pytest.raises(CancelledError):
                await d
            assert await deferToExecutor(reactor, watcher, waitUntil, lambda: onServer() == 0, 10.0), \
                "the statement still runs on the server after the cancel"
        # The pool's connection (and PgBouncer's server connection) is usable again.
        assert [tuple(r) for r in await pool.runQuery("SELECT 7")] == [(7,)]

    runReactor(body, timeout=40)


def test_psycopg3AutomaticPreparedStatementsBreakInTransactionMode(pgbouncer: PgBouncer) -> None:
    """Why the psycopg 3 pools above pass prepare_threshold=None: with the default (prepare after 5 runs)
    clients sharing a server connection collide on its prepared statement names (PgBouncer < 1.21, or
    max_prepared_statements = 0)."""
    import psycopg

    connections = [psycopg.connect(pgbouncer.dsn, autocommit=True) for _ in range(4)]
    errors: list[str] = []
    try:
        for i in range(40):
            try:
                connections[i % 4].execute("SELECT %s::int + 1", (i,)).fetchone()
            except psycopg.Error as e:
                errors.append(type(e).__name__)
    finally:
        for c in connections:
            c.close()
    assert errors and set(errors) <= {"DuplicatePreparedStatement", "InvalidSqlStatementName"}, errors


def test_psycopg3WithoutAutomaticPreparedStatementsRepeatsQueriesSafely(pgbouncer: PgBouncer) -> None:
    """prepare_threshold=None: the same query many times from 4 pool connections over 2 server ones works."""

    async def body(reactor: Reactor) -> list[int]:
        pool = makePool("psycopg", pgbouncer.dsn, reactor, cp_min=4, cp_max=4)
        results = []
        for _ in range(5):
            rows = await gatherResults([pool.runQuery("SELECT %s::int + 1", (i,)) for i in range(20)])
            results.extend(r[0][0] for r in rows)
        return results

    assert runReactor(body) == list(range(1, 21)) * 5


@pytest.mark.parametrize("driver", DRIVERS)
def test_aPgBouncerRestartIsSurvivedLikeAServerRestart(driver: str, pgbouncer: PgBouncer) -> None:
    """PgBouncer stopped and started again: a call on a dropped connection errbacks ConnectionLost (or
    runs after a reconnect), and the pool serves again on new connections without being restarted."""

    async def body(reactor: Reactor) -> tuple[list[str], list[int]]:
        pool = makePool(driver, pgbouncer.dsn, reactor, cp_min=2, cp_max=2, cp_reconnect=True)
        assert len(await gatherResults([pool.runQuery("SELECT 1") for _ in range(4)])) == 4
        with ThreadPoolExecutor(1) as side:
            await deferToExecutor(reactor, side, pgbouncer.restart)
        seen: list[str] = []
        answers: list[int] = []
        for i in range(10):
            try:
                answers.append((await pool.runQuery("SELECT %s::int", (i,)))[0][0])
            except adbapi.ConnectionLost:
                seen.append("ConnectionLost")
        return seen, answers

    lost, answers = runReactor(body, timeout=40)
    # At most each of the pool's two connections meets its drop once; every later call succeeds.
    assert len(lost) <= 2, lost
    assert answers == list(range(len(lost), 10))
