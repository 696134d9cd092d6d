"""COPY streamed through a pool (adbapi._copy) on the real PostgreSQL server, psycopg2 and psycopg 3."""

from __future__ import annotations

import datetime
import decimal
import sqlite3
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

import adbapi
from reactor import CancelledError, Deferred, Reactor
from reactor.task import deferLater
from tests.adbapi_support import runReactor, until, within


@pytest.fixture(params=["psycopg2", "psycopg"])
def driver(request: pytest.FixtureRequest, postgresDSN: str) -> Iterator[tuple[str, str]]:
    """(driver module name, DSN) for each PostgreSQL driver."""
    pytest.importorskip(request.param)
    yield request.param, postgresDSN


@pytest.fixture
def table(postgresDSN: str) -> Iterator[str]:
    """A fresh table (id int, s text, n numeric, d date, b bytea), dropped after the test."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin(postgresDSN, f"CREATE TABLE {name} (id int PRIMARY KEY, s text, n numeric, d date, b bytea)")
    yield name
    admin(postgresDSN, f"DROP TABLE IF EXISTS {name}")


def admin(dsn: str, sql: str, *params: Any) -> list[Any]:
    import psycopg2

    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    try:
        cursor = conn.cursor()
        cursor.execute(sql, params)
        return list(cursor.fetchall()) if cursor.description else []
    finally:
        conn.close()


def makePool(driver: tuple[str, str], reactor: Any) -> adbapi.ConnectionPool:
    return adbapi.ConnectionPool(driver[0], driver[1], cp_reactor=reactor, cp_min=1, cp_max=2)


def copyActive(dsn: str, table: str) -> bool:
    """Whether a session runs a COPY touching ``table`` (asked from another session)."""
    rows = admin(dsn, "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE %s "
                 "AND pid <> pg_backend_pid()", f"COPY%{table}%")
    return bool(rows[0][0])


TRICKY = ["plain", "tab\there", "new\nline", "back\\slash", "cr\rx", "\\N", "", None, "ünïcode ✓"]


def test_copyInThenCopyOutRoundTripsTrickyValues(driver: tuple[str, str], table: str) -> None:
    """Tabs, newlines, backslashes, NULL, numerics, dates and bytes come back as PostgreSQL prints them."""

    async def body(reactor: Any) -> None:
        pool = makePool(driver, reactor)
        rows = [(i, s, decimal.Decimal("1.50"), datetime.date(2024, 2, 29), b"\x00\xff")
                for i, s in enumerate(TRICKY)]
        count = await within(reactor, pool.copyIn(table, rows), "copyIn")
        assert count == len(TRICKY)
        got = [row async for row in pool.copyOut(f"SELECT id, s, n, d, b FROM {table} ORDER BY id")]
        assert [r[1] for r in got] == TRICKY
        assert got[0] == ("0", "plain", "1.50", "2024-02-29", "\\x00ff")
        stream = pool.copyOut(f"SELECT s FROM {table} ORDER BY id", raw=True)
        raw = b"".join([chunk async for chunk in stream])
        assert raw.split(b"\n")[:3] == [b"plain", b"tab\\there", b"new\\nline"]
        await pool.close()

    runReactor(body)


def test_copyInTakesColumnsAndAnAsyncProducerThatWaits(driver: tuple[str, str], table: str) -> None:
    """An async generator that yields to the reactor between rows feeds 2,500 rows into the named columns."""

    async def produce(reactor: Any) -> AsyncIterator[tuple[Any, ...]]:
        for i in range(2500):
            if i % 500 == 0:
                await deferLater(reactor, 0)  # a slow producer: the worker waits for it
            yield (i, f"r{i}")

    async def body(reactor: Any) -> None:
        pool = makePool(driver, reactor)
        d = adbapi.copyIn(pool, table, produce(reactor), columns=["id", "s"])
        count = await within(reactor, d, "copyIn")
        assert count == 2500
        assert await pool.runQuery(f"SELECT count(*), sum(id), count(n) FROM {table}") == [(2500, 3123750, 0)]
        await pool.close()

    runReactor(body)


def test_badDataRollsBackWithTheServerMessage(driver: tuple[str, str], table: str) -> None:
    """A value the column refuses fails copyIn with the driver's error naming it; no row is kept."""

    async def body(reactor: Any) -> None:
        pool = makePool(driver, reactor)
        rows = [(1, "ok"), ("not a number", "bad"), (3, "never")]
        with pytest.raises(Exception) as info:
            await within(reactor, pool.copyIn(table, rows, columns=["id", "s"]), "the failure")
        assert type(info.value).__name__ == "InvalidTextRepresentation"
        assert "not a number" in str(info.value)
        assert await pool.runQuery(f"SELECT count(*) FROM {table}") == [(0,)]
        await pool.close()

    runReactor(body)


def test_cancellingCopyInEndsTheServersCopyAndKeepsThePoolUsable(driver: tuple[str, str], table: str
                                                                   ) -> None:
    """Cancelling a copyIn fed by an endless producer ends the server's COPY, keeps no row; the pool works."""

    async def body(reactor: Any) -> None:
        pool = makePool(driver, reactor)
        produced: Deferred[None] = Deferred()

        async def endless() -> AsyncIterator[tuple[Any, ...]]:
            i = 0
            while True:
                i += 1
                if i == 5000 and not produced.called:
                    produced.callback(None)
                if i % 1000 == 0:
                    await deferLater(reactor, 0)
                yield (i, "x")

        d = pool.copyIn(table, endless(), columns=["id", "s"])
        await within(reactor, produced, "5,000 rows produced")
        await until(reactor, lambda: copyActive(driver[1], table), "the COPY to run on the server")
        d.cancel()
        with pytest.raises(CancelledError):
            await d
        await until(reactor, lambda: not copyActive(driver[1], table), "the server's COPY to end", 5.0)
        assert await pool.runQuery(f"SELECT count(*) FROM {table}") == [(0,)]
        assert await pool.runQuery("SELECT 1") == [(1,)]
        await pool.close()

    runReactor(body)


def test_slowConsumerPausesTheServerAndCloseAbortsTheCopy(driver: tuple[str, str], table: str) -> None:
    """A consumer that stops reading leaves the server waiting to write (ClientWrite); close() ends it."""
    marker = f"m{uuid.uuid4().hex[:8]}"

    def serverWaitsToWrite() -> bool:
        rows = admin(driver[1], "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'ClientWrite' "
                     "AND query LIKE %s AND pid <> pg_backend_pid()", f"COPY%{marker}%")
        return bool(rows[0][0])

    def serverCopying() -> bool:
        rows = admin(driver[1], "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
                     "AND query LIKE %s AND pid <> pg_backend_pid()", f"COPY%{marker}%")
        return bool(rows[0][0])

    async def body(reactor: Any) -> None:
        pool = makePool(driver, reactor)
        query = f"SELECT i, repeat('x', 200) AS {marker} FROM generate_series(1, 5000000) AS i"
        stream = pool.copyOut(query, maxBatches=2)
        first = await within(reactor, Deferred.fromCoroutine(stream.__anext__()), "the first row")
        assert first[0] == "1"
        await until(reactor, serverWaitsToWrite, "the server to wait for the client to read", seconds=10.0)
        await within(reactor, stream.close(), "close")
        await until(reactor, lambda: not serverCopying(), "the server's COPY to end", seconds=5.0)
        assert stream.rowsRead < 100_000
        assert await pool.runQuery("SELECT 2") == [(2,)]
        await pool.close()

    runReactor(body, timeout=40.0)


def test_copyOutRaisesTheServerErrorFromTheIteration(driver: tuple[str, str]) -> None:
    """A query failing midway raises the driver's error in ``async for`` after the rows before it."""

    async def body(reactor: Any) -> None:
        pool = makePool(driver, reactor)
        got = []
        with pytest.raises(Exception) as info:
            async for row in pool.copyOut("SELECT 10 / (3 - i) FROM generate_series(1, 5) AS i"):
                got.append(row)
        assert type(info.value).__name__ == "DivisionByZero"
        assert await pool.runQuery("SELECT 3") == [(3,)]
        await pool.close()

    runReactor(body)


def test_copyOutAsyncWithLeavesEarlyAndTakesParameters(driver: tuple[str, str]) -> None:
    """``async with`` + break stops the COPY; ``params`` fill the query's placeholders via the driver."""

    async def body(reactor: Any) -> None:
        pool = makePool(driver, reactor)
        async with pool.copyOut("SELECT i, %s FROM generate_series(1, 100000) AS i", ("it's",)) as rows:
            async for row in rows:
                assert row == ("1", "it's")
                break
        assert await pool.runQuery("SELECT 4") == [(4,)]
        await pool.close()

    runReactor(body)


def test_badArgumentsRaiseNamingThem(driver: tuple[str, str]) -> None:
    """A bad table, columns, rows, query or maxBatches raises at the call, naming it."""
    pool = adbapi.ConnectionPool(driver[0], driver[1], cp_reactor=Reactor(), cp_min=0)
    with pytest.raises(TypeError, match="table"):
        pool.copyIn(3, [])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="columns"):
        pool.copyIn("t", [], columns="a")
    with pytest.raises(TypeError, match="rows"):
        pool.copyIn("t", 5)
    with pytest.raises(TypeError, match="query"):
        pool.copyOut("")
    with pytest.raises(ValueError, match="maxBatches"):
        pool.copyOut("SELECT 1", maxBatches=0)


def test_nonPostgresPoolRaisesNamingCopy() -> None:
    """A sqlite3 pool refuses copyIn and copyOut with NotImplementedError naming COPY."""
    pool = adbapi.ConnectionPool(sqlite3, ":memory:", cp_reactor=Reactor(), cp_min=0)
    with pytest.raises(NotImplementedError, match="COPY"):
        pool.copyIn("t", [])
    with pytest.raises(NotImplementedError, match="COPY"):
        pool.copyOut("SELECT 1")


def test_unreadCopyOutIsClosedByTheReactorShutdown(driver: tuple[str, str]) -> None:
    """A stream left unread does not hold the pool's shutdown until its deadline: shutdown closes it first."""
    import time

    async def body(reactor: Any) -> None:
        pool = makePool(driver, reactor)
        query = "SELECT i, repeat('x', 200) FROM generate_series(1, 5000000) AS i"
        stream = pool.copyOut(query, maxBatches=1)
        await within(reactor, Deferred.fromCoroutine(stream.__anext__()), "the first row")
        # Returning stops the reactor with the stream unread and the pool open.

    started = time.monotonic()
    runReactor(body, timeout=40.0)
    assert time.monotonic() - started < 15.0  # the pool's own shutdown deadline is 30 s


def test_binaryCopyInTakesTypedValuesOnPsycopg3(driver: tuple[str, str], table: str) -> None:
    """binary=True loads typed values on psycopg 3 (NULLs, numerics, dates, bytes); psycopg2 refuses it."""

    async def body(reactor: Any) -> None:
        pool = makePool(driver, reactor)
        day = datetime.date(2024, 1, 1)
        rows = [(i, None if i % 3 else f"v{i}", decimal.Decimal(i) / 4, day, b"\x01") for i in range(3000)]
        if driver[0] == "psycopg2":
            with pytest.raises(ValueError, match="binary"):
                pool.copyIn(table, rows, binary=True)
        else:
            assert await within(reactor, pool.copyIn(table, rows, binary=True), "copyIn") == 3000
            assert await pool.runQuery(f"SELECT count(*), count(s), sum(n), min(d) FROM {table}") == \
                [(3000, 1000, decimal.Decimal("1124625.00"), datetime.date(2024, 1, 1))]
        await pool.close()

    runReactor(body)


def test_plainBatchesAndMixedBatchesKeepTheirValuesAndOrder(driver: tuple[str, str], table: str) -> None:
    """Batches of plain ints/floats/strs (formatted per column) and batches needing value-by-value formatting
    (a None, an escape, an infinity, list rows) arrive intact and in the order given."""

    def value(i: int) -> tuple[Any, ...]:
        if i == 1500:
            return (i, None, 2.5)  # this batch and, on psycopg 3, the later ones go row by row
        if i == 2600:
            return (i, "tab\there", float("inf"))
        if i == 3700:
            return (i, "nul?\\N", float("-inf"))
        return (i, f"row {i}", i * 0.25)

    rows: list[Any] = [value(i) for i in range(4500)]
    rows[4200] = list(rows[4200])

    async def body(reactor: Any) -> None:
        pool = makePool(driver, reactor)
        count = await within(reactor, pool.copyIn(table, rows, columns=["id", "s", "n"]), "copyIn")
        assert count == 4500
        got = await pool.runQuery(f"SELECT id, s, n::float8 FROM {table} ORDER BY ctid")
        assert [tuple(r) for r in got] == [tuple(r) for r in rows]
        await pool.close()

    runReactor(body)


def test_psycopg3CopyUsesPsycopgsOwnRowFormatters(postgresDSN: str) -> None:
    """copyIn finds psycopg 3's C row formatters, text and binary (not public API: a psycopg upgrade that
    moves them fails here rather than silently falling back to write_row)."""
    psycopg = pytest.importorskip("psycopg")
    from adbapi._copy import _psycopgRowFormatter

    with psycopg.connect(postgresDSN) as conn, conn.cursor() as cursor:
        cursor.execute("CREATE TEMP TABLE fmt (i int, s text)")
        for sql in ("COPY fmt FROM STDIN", "COPY fmt FROM STDIN (FORMAT BINARY)"):
            with cursor.copy(sql) as copy:
                found = _psycopgRowFormatter(copy)
                assert found is not None and callable(found[0])


def test_binaryCopyInOfNoRowsSendsAValidEmptyCopy(postgresDSN: str, table: str) -> None:
    """An empty source in binary format still sends the format's header and trailer: 0 rows, no error."""
    pytest.importorskip("psycopg")
    driver = ("psycopg", postgresDSN)

    async def body(reactor: Any) -> None:
        pool = makePool(driver, reactor)
        assert await within(reactor, pool.copyIn(table, [], columns=["id"], binary=True), "copyIn") == 0
        assert await within(reactor, pool.copyIn(table, [(7,)], columns=["id"], binary=True), "copyIn") == 1
        assert await pool.runQuery(f"SELECT id FROM {table}") == [(7,)]
        await pool.close()

    runReactor(body)


def test_psycopg3CopyInFallsBackToWriteRowWithoutTheFormatter(postgresDSN: str, table: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Were psycopg's row formatter not found, copyIn writes row by row with write_row: same rows, text and
    binary."""
    pytest.importorskip("psycopg")
    import adbapi._copy

    monkeypatch.setattr(adbapi._copy, "_psycopgRowFormatter", lambda copy: None)
    driver = ("psycopg", postgresDSN)

    async def body(reactor: Any) -> None:
        pool = makePool(driver, reactor)
        rows = [(i, s) for i, s in enumerate(TRICKY)]
        assert await within(reactor, pool.copyIn(table, rows, columns=["id", "s"]), "copyIn") == len(TRICKY)
        more = [(100 + i, None) for i in range(1500)]
        d = pool.copyIn(table, more, columns=["id", "s"], binary=True)
        assert await within(reactor, d, "binary") == 1500
        got = await pool.runQuery(f"SELECT s FROM {table} WHERE id < 100 ORDER BY id")
        assert [r[0] for r in got] == TRICKY
        assert await pool.runQuery(f"SELECT count(*) FROM {table} WHERE id >= 100") == [(1500,)]
        await pool.close()

    runReactor(body)
