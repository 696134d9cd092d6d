"""adbapi throughput on PostgreSQL against Twisted adbapi, asyncpg, psycopg 3 and raw psycopg2 threads.

Same run, same server, pool size 4 everywhere; two queries (``SELECT 1`` and a
primary-key lookup in a 10,000-row table this module creates and drops), each at
concurrency 1 and 32 (that many callers, each issuing its next query when the
previous one answered). Sides:

- ``deferthreads``: our ``adbapi.ConnectionPool('psycopg2', cp_min=4, cp_max=4)``
  on our reactor, as configured by default: single statements run on lanes
  (nonblocking connections the reactor drives, ``adbapi/_lane.py``);
- ``deferthreads/threads``: the same with ``cp_nonblocking=False`` (single
  statements on the pool's worker threads), for comparison only;
- ``twisted-adbapi``: Twisted 26.10 ``enterprise.adbapi`` with psycopg2, on its own
  ``EPollReactor`` instance (not installed as the global reactor);
- ``asyncpg``: ``asyncpg.create_pool(min_size=4, max_size=4)``, ``pool.fetch``;
- ``psycopg3-pool``: ``psycopg_pool.AsyncConnectionPool(min_size=4, max_size=4)``
  with autocommit connections (the same single round trip per query as ours);
- ``raw-threads``: psycopg2 in plain threads, one connection each, no pool and
  no event loop (4 threads at concurrency 32, 1 at concurrency 1): the ceiling.

Each case then runs again with psycopg 3 on the three thread-based sides
(``deferthreads/psycopg3``, ``twisted-adbapi/psycopg3``, ``raw-threads/psycopg3``),
beside the same asyncpg and psycopg 3 pool. Every comparison prints its ceiling,
raw threads / Twisted adbapi in that same run.

Every event loop runs in its own background thread for the whole benchmark; a
round hands it the work and waits on an Event, and the side reports the time the
loop measured.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import random
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from benchmarks._harness import Comparison, Target, compare

DSN = os.environ.get("ADBAPI_TEST_POSTGRES_DSN", "host=127.0.0.1 port=5432 dbname=test")
ROWS = 10_000
POOL = 4


def _dsnToURL(dsn: str) -> str:
    parts = dict(p.split("=", 1) for p in dsn.split())
    user = parts.get("user", "")
    password = parts.get("password", "")
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host, port = parts.get("host", "127.0.0.1"), parts.get("port", "5432")
    return f"postgresql://{auth}{host}:{port}/{parts.get('dbname', '')}"


class _LoopThread:
    """Runs ``run()`` of some event loop in a daemon thread; ``call(f)`` schedules f in it."""

    def __init__(self, runner: Callable[[], None], caller: Callable[[Callable[[], None]], None]) -> None:
        self._caller = caller
        self.thread = threading.Thread(target=runner, daemon=True, name="bench-loop")
        self.thread.start()

    def call(self, f: Callable[[], None]) -> None:
        self._caller(f)


def _deferredDriver(loop: _LoopThread, clock: Callable[[], float], issue: Callable[[int], Any],
                    ops: int, concurrency: int) -> Callable[[], float]:
    """A side for Deferred-returning pools: ``concurrency`` callers chaining ``ops`` calls in all."""

    def side() -> float:
        done = threading.Event()
        state: dict[str, Any] = {"left": ops, "active": concurrency, "start": 0.0, "end": 0.0, "error": None}

        def next_(result: Any = None) -> None:
            if state["left"] <= 0:
                state["active"] -= 1
                if state["active"] == 0:
                    state["end"] = clock()
                    done.set()
                return
            state["left"] -= 1
            d = issue(state["left"])
            d.addCallbacks(next_, failed)

        def failed(f: Any) -> None:
            state["error"] = f
            state["end"] = clock()
            done.set()

        def start() -> None:
            state["start"] = clock()
            for _ in range(concurrency):
                next_()

        loop.call(start)
        if not done.wait(120):
            raise RuntimeError("benchmark round did not finish")
        if state["error"] is not None:
            raise RuntimeError(f"benchmark query failed: {state['error']}")
        return float(state["end"]) - float(state["start"])

    return side


def _asyncioDriver(loop: asyncio.AbstractEventLoop, issue: Callable[[int], Any], ops: int,
                   concurrency: int) -> Callable[[], float]:
    async def worker(counter: list[int]) -> None:
        while counter[0] > 0:
            counter[0] -= 1
            await issue(counter[0])

    async def round_() -> float:
        counter = [ops]
        start = time.perf_counter()
        await asyncio.gather(*(worker(counter) for _ in range(concurrency)))
        return time.perf_counter() - start

    def side() -> float:
        return asyncio.run_coroutine_threadsafe(round_(), loop).result(120)

    return side


def _rawThreads(query: str, params: Callable[[int], tuple[Any, ...]], ops: int, threads: int,
                conns: list[Any]) -> Callable[[], float]:
    def side() -> float:
        barrier = threading.Barrier(threads + 1)
        per = ops // threads

        def run(conn: Any) -> None:
            cursor = conn.cursor()
            barrier.wait()
            for i in range(per):
                cursor.execute(query, params(i))
                cursor.fetchall()
            cursor.close()

        ts = [threading.Thread(target=run, args=(conns[i],)) for i in range(threads)]
        for t in ts:
            t.start()
        barrier.wait()
        start = time.perf_counter()
        for t in ts:
            t.join()
        return time.perf_counter() - start

    return side


def _compareWithCeiling(name: str, sides: dict[str, Callable[[], float | None]], ops: int, rounds: int,
                        targets: list[Target], ours: str, twisted: str, raw: str) -> Comparison:
    result = compare(name, sides, ops=ops, rounds=rounds, targets=targets, ours=ours,
                     note="pool size 4; PostgreSQL on localhost; raw threads are the ceiling")
    if twisted in result.opsPerSecond:
        # What a thread design could reach at best against Twisted in this same run: a target
        # above it cannot be met by any pool, only by the noise between runs.
        ceiling = result.opsPerSecond[raw] / result.opsPerSecond[twisted]
        line = f"ceiling in this run: {raw} / {twisted} = {ceiling:.2f}x"
        print(f"    {line}", flush=True)
        result.note += f"; {line}"
    return result


def run(quick: bool) -> list[Comparison]:
    import psycopg2

    import adbapi
    from reactor import Reactor

    table = f"bench_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(DSN)
    admin.autocommit = True
    cursor = admin.cursor()
    cursor.execute(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, v TEXT)")
    cursor.execute(f"INSERT INTO {table} SELECT g, md5(g::text) FROM generate_series(1, {ROWS}) g")
    cursor.execute(f"ANALYZE {table}")
    results: list[Comparison] = []
    cleanups: list[Callable[[], None]] = []
    try:
        # -- ours
        ours = Reactor()
        oursPool = adbapi.ConnectionPool("psycopg2", DSN, cp_min=POOL, cp_max=POOL, cp_reactor=ours,
                                         cp_name="bench")
        # The same pool with lanes turned off: single statements on worker threads, for comparison.
        oursThreadsPool = adbapi.ConnectionPool("psycopg2", DSN, cp_min=POOL, cp_max=POOL, cp_reactor=ours,
                                                cp_name="bench-threads", cp_nonblocking=False)
        oursPool3 = None
        if importlib.util.find_spec("psycopg") is not None:  # psycopg 3: the second driver set
            oursPool3 = adbapi.ConnectionPool("psycopg", DSN, cp_min=POOL, cp_max=POOL, cp_reactor=ours,
                                              cp_name="bench3")
        oursLoop = _LoopThread(lambda: ours.run(installSignalHandlers=False), ours.callFromThread)
        def stopOurs() -> None:
            ours.callFromThread(ours.stop)
            oursLoop.thread.join(30)

        cleanups.append(stopOurs)

        # -- Twisted
        sides: dict[str, Any] = {}
        try:
            from twisted.enterprise import adbapi as tadbapi
            from twisted.internet.epollreactor import EPollReactor

            tr = EPollReactor()  # type: ignore[no-untyped-call]
            tPool = tadbapi.ConnectionPool(  # type: ignore[no-untyped-call]
                "psycopg2", DSN, cp_min=POOL, cp_max=POOL, cp_reactor=tr
            )
            tPool3 = None
            if oursPool3 is not None:
                tPool3 = tadbapi.ConnectionPool(  # type: ignore[no-untyped-call]
                    "psycopg", DSN, cp_min=POOL, cp_max=POOL, cp_reactor=tr
                )
            tLoop = _LoopThread(lambda: tr.run(installSignalHandlers=False), tr.callFromThread)
            def stopTwisted() -> None:
                tr.callFromThread(tr.stop)
                tLoop.thread.join(30)

            cleanups.append(stopTwisted)
            sides["twisted"] = (tLoop, tPool, tr)
            sides["twisted3"] = (tLoop, tPool3, tr)
        except ImportError:  # pragma: no cover - the bench extra installs it
            pass

        # -- asyncio loop for asyncpg and psycopg 3
        aloop = asyncio.new_event_loop()
        athread = threading.Thread(target=aloop.run_forever, daemon=True, name="bench-asyncio")
        athread.start()
        def stopAsyncio() -> None:
            aloop.call_soon_threadsafe(aloop.stop)
            athread.join(30)

        cleanups.append(stopAsyncio)

        async def makePools() -> tuple[Any, Any]:
            apg = None
            p3 = None
            try:
                import asyncpg

                apg = await asyncpg.create_pool(_dsnToURL(DSN), min_size=POOL, max_size=POOL)
            except ImportError:  # pragma: no cover
                pass
            try:
                from psycopg_pool import AsyncConnectionPool

                p3 = AsyncConnectionPool(DSN, min_size=POOL, max_size=POOL, open=False,
                                         kwargs={"autocommit": True})
                await p3.open(wait=True)
            except ImportError:  # pragma: no cover
                pass
            return apg, p3

        apg, p3 = asyncio.run_coroutine_threadsafe(makePools(), aloop).result(60)

        async def closePools() -> None:
            if apg is not None:
                await apg.close()
            if p3 is not None:
                await p3.close()

        def closeAsyncPools() -> None:
            asyncio.run_coroutine_threadsafe(closePools(), aloop).result(30)

        cleanups.insert(0, closeAsyncPools)

        rawConns = [psycopg2.connect(DSN) for _ in range(POOL)]
        for c in rawConns:
            c.autocommit = True
        def closeRaw() -> None:
            for c in rawConns:
                c.close()

        cleanups.append(closeRaw)
        rawConns3: list[Any] = []
        if oursPool3 is not None:
            import psycopg

            rawConns3 = [psycopg.connect(DSN, autocommit=True) for _ in range(POOL)]

            def closeRaw3() -> None:
                for c in rawConns3:
                    c.close()

            cleanups.append(closeRaw3)

        rng = random.Random(7)
        keys = [rng.randint(1, ROWS) for _ in range(4096)]
        queries = {
            "SELECT 1": ("SELECT 1", lambda i: (), "SELECT 1", lambda i: ()),
            "pk lookup": (
                f"SELECT id, v FROM {table} WHERE id = %s",
                lambda i: (keys[i & 4095],),
                f"SELECT id, v FROM {table} WHERE id = $1",
                lambda i: (keys[i & 4095],),
            ),
        }
        rounds = 3 if quick else 5
        for label, (sql, params, dollarSql, _dollarParams) in queries.items():
            for concurrency in (1, 32):
                ops = (400 if concurrency == 1 else 1500) if quick else (1500 if concurrency == 1 else 5000)

                def oursIssue(i: int, sql: str = sql, params: Any = params) -> Any:
                    return oursPool.runQuery(sql, params(i))

                def oursThreadsIssue(i: int, sql: str = sql, params: Any = params) -> Any:
                    return oursThreadsPool.runQuery(sql, params(i))

                bench: dict[str, Callable[[], float | None]] = {
                    "deferthreads": _deferredDriver(oursLoop, time.perf_counter, oursIssue, ops, concurrency),
                    "deferthreads/threads": _deferredDriver(oursLoop, time.perf_counter, oursThreadsIssue,
                                                            ops, concurrency),
                }
                if "twisted" in sides:
                    tLoop, tPool, _tr = sides["twisted"]

                    def twIssue(i: int, sql: str = sql, params: Any = params, tPool: Any = tPool) -> Any:
                        return tPool.runQuery(sql, params(i))

                    bench["twisted-adbapi"] = _deferredDriver(tLoop, time.perf_counter, twIssue, ops,
                                                              concurrency)
                if apg is not None:

                    def apgIssue(i: int, dollarSql: str = dollarSql, params: Any = params) -> Any:
                        return apg.fetch(dollarSql, *params(i))

                    bench["asyncpg"] = _asyncioDriver(aloop, apgIssue, ops, concurrency)
                if p3 is not None:

                    async def p3Issue(i: int, sql: str = sql, params: Any = params) -> Any:
                        async with p3.connection() as conn:
                            cur = await conn.execute(sql, params(i))
                            return await cur.fetchall()

                    bench["psycopg3-pool"] = _asyncioDriver(aloop, p3Issue, ops, concurrency)
                bench["raw-threads"] = _rawThreads(sql, params, ops, POOL if concurrency > 1 else 1, rawConns)
                targets = []
                if concurrency == 32:
                    targets = [
                        Target("twisted-adbapi", 3.0),
                        Target("asyncpg", 1.5),
                        Target("psycopg3-pool", 1.5),
                        Target("raw-threads", 0.6),
                    ]
                results.append(_compareWithCeiling(f"adbapi {label}, concurrency {concurrency}", bench, ops,
                                                   rounds, targets, "deferthreads", "twisted-adbapi",
                                                   "raw-threads"))
                if oursPool3 is None:
                    continue
                # The same comparison with psycopg 3 on both thread pools and the raw threads (asyncpg and
                # psycopg 3's own pool are the same sides as above, measured again in this comparison).
                def ours3Issue(i: int, sql: str = sql, params: Any = params, pool3: Any = oursPool3) -> Any:
                    return pool3.runQuery(sql, params(i))

                bench3: dict[str, Callable[[], float | None]] = {
                    "deferthreads/psycopg3": _deferredDriver(oursLoop, time.perf_counter, ours3Issue, ops,
                                                             concurrency),
                }
                if sides.get("twisted3", (None, None))[1] is not None:
                    t3Loop, t3Pool, _t3r = sides["twisted3"]

                    def tw3Issue(i: int, sql: str = sql, params: Any = params, t3Pool: Any = t3Pool) -> Any:
                        return t3Pool.runQuery(sql, params(i))

                    bench3["twisted-adbapi/psycopg3"] = _deferredDriver(t3Loop, time.perf_counter, tw3Issue,
                                                                        ops, concurrency)
                for name in ("asyncpg", "psycopg3-pool"):
                    if name in bench:
                        bench3[name] = bench[name]
                bench3["raw-threads/psycopg3"] = _rawThreads(sql, params, ops, POOL if concurrency > 1 else 1,
                                                             rawConns3)
                targets3 = [
                    Target(t.reference.replace("twisted-adbapi", "twisted-adbapi/psycopg3")
                           .replace("raw-threads", "raw-threads/psycopg3"), t.ratio)
                    for t in targets
                ]
                results.append(_compareWithCeiling(f"adbapi {label}, concurrency {concurrency}, psycopg 3",
                                                   bench3, ops, rounds, targets3, "deferthreads/psycopg3",
                                                   "twisted-adbapi/psycopg3", "raw-threads/psycopg3"))
    finally:
        for cleanup in cleanups:
            try:
                cleanup()
            except Exception:
                pass
        cursor.execute(f"DROP TABLE IF EXISTS {table}")
        admin.close()
    return results
