"""adbapi at work: concurrent queries, a rolled-back transaction, a cancelled query, statistics.

Runs on SQLite in a temporary file with no server at all:

    python examples/adbapi_demo.py

With ``ADBAPI_DEMO_POSTGRES_DSN`` set (a libpq DSN such as
``host=127.0.0.1 port=5432 dbname=test``) it runs the same steps on PostgreSQL
with psycopg2, or with psycopg 3 when ``ADBAPI_DEMO_POSTGRES_DRIVER=psycopg``.
It finishes in a few seconds and exits 0 when every step behaved as shown.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from adbapi import ConnectionPool, Transaction
from reactor import CancelledError, gatherResults
from reactor.task import deferLater, react


def makePool(reactor: Any, workdir: str) -> tuple[ConnectionPool, str, str]:
    """The pool, its parameter marker and a statement that runs until cancelled."""
    dsn = os.environ.get("ADBAPI_DEMO_POSTGRES_DSN")
    if dsn:
        driver = os.environ.get("ADBAPI_DEMO_POSTGRES_DRIVER", "psycopg2")
        if driver not in ("psycopg2", "psycopg"):
            raise SystemExit(f"ADBAPI_DEMO_POSTGRES_DRIVER must be psycopg2 or psycopg, not {driver!r}")
        pool = ConnectionPool(driver, dsn, cp_min=2, cp_max=4, cp_name="demo", cp_reactor=reactor)
        return pool, "%s", "SELECT pg_sleep(30)"
    path = os.path.join(workdir, "demo.sqlite")
    pool = ConnectionPool("sqlite3", path, cp_min=2, cp_max=4, cp_name="demo", cp_reactor=reactor)
    forever = "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) SELECT count(*) FROM r"
    return pool, "?", forever


async def main(reactor: Any, workdir: str) -> None:
    pool, mark, longQuery = makePool(reactor, workdir)
    table = f"demo_{uuid.uuid4().hex[:8]}"
    print(f"pool: {pool!r}")
    await pool.runOperation(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, name TEXT, balance INTEGER)")
    try:
        # 1. Concurrent queries: 20 inserts and 20 lookups in flight at once, on at most 4 connections.
        await gatherResults(
            [
                pool.runOperation(
                    f"INSERT INTO {table} VALUES ({mark}, {mark}, {mark})", (i, f"user{i}", 100)
                )
                for i in range(20)
            ]
        )
        rows = await gatherResults(
            [pool.runQuery(f"SELECT name, balance FROM {table} WHERE id = {mark}", (i,)) for i in range(20)]
        )
        first, last = tuple(rows[0][0]), tuple(rows[-1][0])
        print(f"1. concurrent queries: {len(rows)} answers, first {first}, last {last}")

        # 2. A transaction that fails half-way is rolled back as a whole.
        def transfer(txn: Transaction, src: int, dst: int, amount: int) -> None:
            txn.execute(f"UPDATE {table} SET balance = balance - {mark} WHERE id = {mark}", (amount, src))
            txn.execute(f"UPDATE {table} SET balance = balance + {mark} WHERE id = {mark}", (amount, dst))
            raise ValueError("insufficient funds (checked too late)")

        try:
            await pool.runInteraction(transfer, 1, 2, 500)
        except ValueError as e:
            balances = await pool.runQuery(f"SELECT balance FROM {table} WHERE id IN (1, 2) ORDER BY id")
            print(f"2. transaction rolled back ({e}); balances still {[b[0] for b in balances]}")
        else:
            raise AssertionError("the transfer should have failed")

        # 3. A query that would run for a long time, cancelled on the database itself.
        d = pool.runQuery(longQuery)
        await deferLater(reactor, 0.3)
        began = time.monotonic()
        d.cancel()
        try:
            await d
        except CancelledError:
            print(
                f"3. long query cancelled after 0.3 s: CancelledError in {time.monotonic() - began:.3f} s, "
                "statement stopped on the server"
            )
        after = await pool.runQuery("SELECT 1")
        print(f"   the connection is reusable: SELECT 1 -> {after[0][0]}")

        # 4. A statement timeout is just addTimeout on the Deferred.
        began = time.monotonic()
        try:
            await pool.runQuery(longQuery).addTimeout(0.2, reactor)
        except Exception as e:
            print(
                f"4. addTimeout(0.2) stopped the statement after {time.monotonic() - began:.2f} s: "
                f"{type(e).__name__}"
            )
    finally:
        await pool.runOperation(f"DROP TABLE {table}")

    stats = pool.statistics()
    print(
        f"5. statistics: open={stats.connectionsOpen} busy={stats.busy} idle={stats.idle} "
        f"waiting={stats.waiting} calls={stats.calls} errors={stats.errors} cancelled={stats.cancelled} "
        f"longestWait={stats.longestWait * 1000:.1f} ms reconnects={stats.reconnects}"
    )
    await pool.close()
    print(f"closed: {pool!r}")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as workdir:
        try:
            react(lambda r: main(r, workdir))
        except SystemExit as exit:
            code = exit.code
    raise SystemExit(code)
