"""PostgreSQL as a message bus and a bulk loader: a cache invalidated by NOTIFY, a CSV import through COPY.

    python examples/pg_events.py [CSV file]

It needs a PostgreSQL server: ``PG_EVENTS_DSN`` (default ``host=127.0.0.1
port=5432 dbname=test``), driver ``PG_EVENTS_DRIVER`` (``psycopg2``, the default,
or ``psycopg``). Without a CSV file it imports a generated one (10,000 rows).

What it shows:

1. ``pool.copyIn`` loads the CSV (``csv.reader`` is read in the pool's worker
   thread, a row at a time: memory stays flat whatever the file's size).
2. A ``PriceCache`` answers lookups from memory and listens on a channel: a
   ``NOTIFY prices, '<sku>'`` (sent here with ``pool.notify``, in a real
   system by a trigger or another service) drops that entry, and a
   ``NotificationsMissed`` (the listening connection was lost and is back, or
   the consumer fell behind) drops them all.
3. ``pool.copyOut`` streams the table back, here to count the rows per price band.

It exits 0 when every step behaved as printed.
"""

from __future__ import annotations

import csv
import io
import os
import sys
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from adbapi import ConnectionPool, Listener, Notification
from reactor import Deferred
from reactor.task import react


class PriceCache:
    """SKU -> price, read through from the database and invalidated by notifications (reactor thread)."""

    def __init__(self, pool: ConnectionPool, table: str) -> None:
        self.pool = pool
        self.table = table
        self.prices: dict[str, float] = {}
        self.invalidations = 0
        self.listener: Listener | None = None
        self.consumer: Deferred[None] | None = None

    async def start(self, channel: str) -> None:
        self.listener = await self.pool.listen(channel)
        self.consumer = Deferred.fromCoroutine(self._consume(self.listener))

    async def _consume(self, listener: Listener) -> None:
        async for event in listener:  # ends when the listener is closed
            if isinstance(event, Notification):
                self.prices.pop(event.payload, None)
            else:  # NotificationsMissed: anything may have changed
                self.prices.clear()
            self.invalidations += 1
            self.changed()

    def changed(self) -> None:
        """Called after each invalidation (tests and the demo hook it)."""

    async def price(self, sku: str) -> float:
        if sku not in self.prices:
            rows = await self.pool.runQuery(f"SELECT price FROM {self.table} WHERE sku = %s", (sku,))
            self.prices[sku] = float(rows[0][0])
        return self.prices[sku]

    async def stop(self) -> None:
        if self.listener is not None:
            await self.listener.close()
        if self.consumer is not None:
            await self.consumer


def sampleCsv(rows: int) -> io.StringIO:
    """A CSV of ``rows`` products (sku, name, price) in memory."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["sku", "name", "price"])
    for i in range(rows):
        writer.writerow([f"sku-{i}", f"product, number {i}", f"{(i % 500) / 10 + 0.5:.2f}"])
    out.seek(0)
    return out


async def main(reactor: Any, csvPath: str | None = None) -> None:
    dsn = os.environ.get("PG_EVENTS_DSN", "host=127.0.0.1 port=5432 dbname=test")
    driver = os.environ.get("PG_EVENTS_DRIVER", "psycopg2")
    pool = ConnectionPool(driver, dsn, cp_min=1, cp_max=3, cp_reactor=reactor)
    table = f"products_{uuid.uuid4().hex[:8]}"
    channel = f"prices_{table}"
    await pool.runOperation(f"CREATE TABLE {table} (sku text PRIMARY KEY, name text, price numeric)")
    try:
        # 1. The CSV import: rows go from the reader to the server in one COPY, one transaction.
        source = open(csvPath, newline="") if csvPath else sampleCsv(10_000)
        with source:
            reader = csv.reader(source)
            next(reader)  # the header
            count = await pool.copyIn(table, reader, columns=["sku", "name", "price"])
        print(f"1. imported {count} rows with copyIn")

        # 2. The cache: a lookup is cached; a NOTIFY of its sku drops it; the next lookup reads the new price.
        cache = PriceCache(pool, table)
        await cache.start(channel)
        print(f"2. price of sku-7: {await cache.price('sku-7')} (cached: {'sku-7' in cache.prices})")
        invalidated: Deferred[None] = Deferred()
        cache.changed = lambda: invalidated.called or invalidated.callback(None)  # type: ignore[method-assign]
        await pool.runOperation(f"UPDATE {table} SET price = 99.99 WHERE sku = %s", ("sku-7",))
        await pool.notify(channel, "sku-7")
        await invalidated
        print(f"   after NOTIFY: cached {'sku-7' in cache.prices}, price now {await cache.price('sku-7')}")
        await cache.stop()

        # 3. The export: rows streamed back with copyOut, a batch at a time.
        bands: dict[str, int] = {}
        async for (price,) in pool.copyOut(f"SELECT price FROM {table}"):
            band = "cheap" if float(price or 0) < 10 else "dear"
            bands[band] = bands.get(band, 0) + 1
        print(f"3. exported with copyOut: {dict(sorted(bands.items()))}")
    finally:
        await pool.runOperation(f"DROP TABLE IF EXISTS {table}")
        await pool.close()


if __name__ == "__main__":
    react(main, (sys.argv[1] if len(sys.argv) > 1 else None,))
