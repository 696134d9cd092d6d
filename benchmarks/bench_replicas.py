"""Read replicas: read throughput with a primary plus one hot standby against the primary alone.

A throwaway primary and streaming standby (``tests/pgcluster_support.py``: initdb, pg_basebackup -R, free
loopback ports, removed at the end) hold a table of 50,000 rows. Each round runs the same read (an
aggregate over a tenth of the table, a few ms of server CPU: the server's work dominates, as for the
reads worth sending to a replica) through ``adbapi``, psycopg2, 32 calls in flight:

- "primary + standby": ``ReplicatedPool(primary, [standby], primaryReads=True).reads.runQuery``, 4
  connections to each, every read to the less busy of the two;
- "primary alone": one ``ConnectionPool`` of 8 connections to the primary.

Both servers run on this machine's cores, so the standby adds no CPU here: the ratio shows the router's
cost and how evenly it spreads reads; on separate machines each standby adds its server's capacity.
Skipped with a note when the PostgreSQL server binaries are missing.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks._harness import Comparison, compare
from reactor import Deferred, Reactor, gatherResults

HERE = Path(__file__).resolve().parent
QUERY = "SELECT count(*), sum(v) FROM bench_rows WHERE id %% 10 = %s"
IN_FLIGHT = 32


def readSide(makePool: Callable[[Reactor], Any], calls: int) -> Callable[[], float]:
    """One round: ``calls`` reads through ``makePool(reactor).reads`` (or the pool), 32 in flight."""

    def side() -> float:
        reactor = Reactor()
        elapsed: list[float] = []

        async def main() -> None:
            pool = makePool(reactor)
            reads = getattr(pool, "reads", pool)
            if hasattr(pool, "reads"):
                # The standby takes reads once its first health check passed.
                began = time.monotonic()
                while pool.statistics().replicas[0].state != "up":
                    if time.monotonic() - began > 30:
                        raise RuntimeError("the standby never became usable")
                    await pool.checkNow()
            await gatherResults([reads.runQuery(QUERY, (i % 10,)) for i in range(IN_FLIGHT)])  # warm
            began = time.perf_counter()
            for _ in range(calls // IN_FLIGHT):
                await gatherResults([reads.runQuery(QUERY, (i % 10,)) for i in range(IN_FLIGHT)])
            elapsed.append(time.perf_counter() - began)
            await pool.close()

        def start() -> None:
            d = Deferred.fromCoroutine(main())
            d.addBoth(lambda result: (reactor.stop(), result)[1])

        reactor.callWhenRunning(start)
        reactor.run(installSignalHandlers=False)
        if not elapsed:
            raise RuntimeError("the read round did not finish")
        return elapsed[0]

    return side


def run(quick: bool) -> list[Comparison]:
    sys.path.insert(0, str(HERE.parent))
    import adbapi
    from tests.pgcluster_support import PgCluster, removeTemplates, serverBinaries

    binaries = serverBinaries()
    if binaries is None:
        print("replica comparison skipped: no PostgreSQL server binaries (/usr/lib/postgresql/*/bin)",
              flush=True)
        return []
    try:
        cluster = PgCluster.create(binaries)
    except Exception as e:
        print(f"replica comparison skipped: the throwaway cluster did not start ({e})", flush=True)
        return []
    try:
        cluster.primary.query("CREATE TABLE bench_rows (id INTEGER PRIMARY KEY, v INTEGER)")
        cluster.primary.query("INSERT INTO bench_rows SELECT i, mod(i * 7, 1000) "
                              "FROM generate_series(1, 50000) i")
        cluster.primary.query("VACUUM (FREEZE, ANALYZE) bench_rows")
        cluster.waitForReplay()

        def replicated(reactor: Reactor) -> adbapi.ReplicatedPool:
            def pool(dsn: str) -> adbapi.ConnectionPool:
                return adbapi.ConnectionPool("psycopg2", dsn, cp_min=4, cp_max=4, cp_reactor=reactor)

            return adbapi.ReplicatedPool(pool(cluster.primary.dsn), [pool(cluster.standby.dsn)],
                                         clock=reactor, checkInterval=0.5, primaryReads=True)

        def alone(reactor: Reactor) -> adbapi.ConnectionPool:
            return adbapi.ConnectionPool("psycopg2", cluster.primary.dsn, cp_min=8, cp_max=8,
                                         cp_reactor=reactor)

        calls = 640 if quick else 3200
        return [compare(
            "adbapi reads (an aggregate over 5,000 of 50,000 rows), primary + 1 standby vs the primary alone "
            "(calls/s)",
            {"primary + standby": readSide(replicated, calls), "primary alone": readSide(alone, calls)},
            ops=calls, rounds=2 if quick else 5, warmup=1, ours="primary + standby",
            note="psycopg2, 32 in flight; 4+4 connections vs 8; both servers share this machine's CPUs",
        )]
    finally:
        cluster.close()
        removeTemplates()
