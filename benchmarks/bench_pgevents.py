"""PostgreSQL beyond request and response: LISTEN/NOTIFY latency and throughput, COPY in and out.

Sides (each run in turn, every round, in one process; the machine's noise falls on all alike):

- notifications, **latency**: a sender thread sends ``pg_notify`` on its own
  blocking psycopg2 connection, one at a time, carrying ``perf_counter()``; the
  receiver notes the time at which its consumer sees it and acknowledges, and the
  sender sends the next. Ours: ``pool.listen(channel)`` consumed with ``async
  for`` (psycopg2 pool and psycopg 3 pool); references: asyncpg's
  ``add_listener`` callback and psycopg 3's ``AsyncConnection.notifies()``, both on
  the default asyncio loop. Reported as medians and 99th percentiles (ratio =
  reference latency / ours, so >= 1 means we are faster; the goal is within 1.2x
  of asyncpg, a ratio >= 0.83).
- notifications, **throughput**: one statement sends N notifications
  (``pg_notify`` over ``generate_series``), delivered at its commit in a burst;
  time from sending it to the last one consumed.
- **copyIn** of N rows (int, text, float) already in memory: ours
  ``pool.copyIn(table, rows)`` on a psycopg 3 pool and a psycopg2 pool, and
  ``binary=True`` on psycopg 3; asyncpg's ``copy_records_to_table`` (binary);
  psycopg 3's ``copy.write_row`` (text, binary, and async text).
- **copyOut** of N rows: ours ``async for row in pool.copyOut(query)`` (text
  tuples) and ``raw=True`` chunks; psycopg 3 ``copy.rows()`` and chunks; asyncpg
  ``copy_from_query`` to a coroutine (chunks: it does not parse rows).
- **peak memory**: the process's peak RSS during each side (``VmHWM`` reset
  through ``/proc/self/clear_refs``), above its RSS at the side's start; and the
  process CPU time of each side (steadier than wall time on a loaded machine).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import threading
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

from benchmarks._harness import Comparison, Target

DSN = os.environ.get("ADBAPI_TEST_POSTGRES_DSN", "host=127.0.0.1 port=5432 dbname=test")


def _dsnToURL(dsn: str) -> str:
    parts = dict(p.split("=", 1) for p in dsn.split())
    user, password = parts.get("user", ""), parts.get("password", "")
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host, port = parts.get("host", "127.0.0.1"), parts.get("port", "5432")
    return f"postgresql://{auth}{host}:{port}/{parts.get('dbname', '')}"


# -- memory ----------------------------------------------------------------------------------------------


def _status(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def _resetPeak() -> int:
    """Reset the peak RSS (Linux: VmHWM) to the current RSS and return that RSS."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    return _status("VmRSS")


# -- running one side -------------------------------------------------------------------------------------


def _runOurs(body: Callable[[Any], Coroutine[Any, Any, float]]) -> float:
    """Run ``body(reactor)`` in a fresh reactor in this thread; its result (seconds it measured)."""
    from reactor import Deferred, Reactor

    reactor = Reactor()
    out: dict[str, Any] = {}

    def start() -> None:
        d = Deferred.fromCoroutine(body(reactor))

        def done(result: Any) -> None:
            out["r"] = result
            reactor.stop()

        d.addBoth(done)

    reactor.callWhenRunning(start)
    reactor.run(installSignalHandlers=False)
    result = out.get("r")
    if not isinstance(result, float):
        raise RuntimeError(f"benchmark side failed: {result}")
    return result


def _runAsyncio(body: Callable[[], Coroutine[Any, Any, float]]) -> float:
    return asyncio.run(body())


class _Sender:
    """A thread with its own blocking connection sending notifications (ping-pong or one burst)."""

    def __init__(self, channel: str) -> None:
        import psycopg2

        self.conn = psycopg2.connect(DSN)
        self.conn.autocommit = True
        self.channel = channel
        self.ack = threading.Event()
        self.latencies: list[float] = []

    def received(self, payload: str) -> None:
        """Any thread: one notification arrived (ping-pong mode): note its latency, let the next go."""
        self.latencies.append(time.perf_counter() - float(payload))
        self.ack.set()

    def pingPong(self, count: int, ready: threading.Event) -> threading.Thread:
        def loop() -> None:
            cursor = self.conn.cursor()
            ready.wait(30)
            for _ in range(count):
                self.ack.clear()
                cursor.execute("SELECT pg_notify(%s, %s)", (self.channel, repr(time.perf_counter())))
                if not self.ack.wait(10):
                    raise RuntimeError("a notification was not received within 10 s")

        thread = threading.Thread(target=loop, daemon=True, name="bench-notify-sender")
        thread.start()
        return thread

    def burst(self, count: int, ready: threading.Event, started: list[float]) -> threading.Thread:
        def send() -> None:
            ready.wait(30)
            started.append(time.perf_counter())
            sql = "SELECT count(pg_notify(%s, g::text)) FROM generate_series(1, %s) AS g"
            self.conn.cursor().execute(sql, (self.channel, count))

        thread = threading.Thread(target=send, daemon=True, name="bench-notify-burst")
        thread.start()
        return thread

    def close(self) -> None:
        self.conn.close()


# -- notifications ----------------------------------------------------------------------------------------


def _oursNotify(driver: str, count: int, burst: bool) -> tuple[float, list[float]]:
    import adbapi

    channel = f"bench_{uuid.uuid4().hex[:8]}"
    sender = _Sender(channel)
    ready = threading.Event()
    started: list[float] = []

    async def body(reactor: Any) -> float:
        pool = adbapi.ConnectionPool(driver, DSN, cp_reactor=reactor, cp_min=1, cp_max=1)
        listener = await pool.listen(channel, maxQueue=max(count, 10))
        thread = sender.burst(count, ready, started) if burst else sender.pingPong(count, ready)
        ready.set()
        seen = 0
        async for event in listener:
            seen += 1
            if not burst:
                sender.received(event.payload)
            if seen == count:
                break
        elapsed = time.perf_counter() - started[0] if burst else 0.0
        await listener.close()
        thread.join(10)
        await pool.close()
        return elapsed

    try:
        elapsed = _runOurs(body)
    finally:
        sender.close()
    return elapsed, sender.latencies


def _asyncpgNotify(count: int, burst: bool) -> tuple[float, list[float]]:
    import asyncpg

    channel = f"bench_{uuid.uuid4().hex[:8]}"
    sender = _Sender(channel)
    ready = threading.Event()
    started: list[float] = []

    async def body() -> float:
        conn = await asyncpg.connect(_dsnToURL(DSN))
        done = asyncio.get_running_loop().create_future()
        seen = 0

        def callback(connection: Any, pid: int, chan: str, payload: str) -> None:
            nonlocal seen
            seen += 1
            if not burst:
                sender.received(payload)
            if seen == count and not done.done():
                done.set_result(time.perf_counter())

        await conn.add_listener(channel, callback)
        thread = sender.burst(count, ready, started) if burst else sender.pingPong(count, ready)
        ready.set()
        end = await done
        await conn.remove_listener(channel, callback)
        await conn.close()
        await asyncio.get_running_loop().run_in_executor(None, thread.join, 10)
        return end - started[0] if burst else 0.0

    try:
        elapsed = _runAsyncio(body)
    finally:
        sender.close()
    return elapsed, sender.latencies


def _psycopg3Notify(count: int, burst: bool) -> tuple[float, list[float]]:
    import psycopg

    channel = f"bench_{uuid.uuid4().hex[:8]}"
    sender = _Sender(channel)
    ready = threading.Event()
    started: list[float] = []

    async def body() -> float:
        conn = await psycopg.AsyncConnection.connect(DSN, autocommit=True)
        await conn.execute(f'LISTEN "{channel}"')
        thread = sender.burst(count, ready, started) if burst else sender.pingPong(count, ready)
        ready.set()
        seen = 0
        async for note in conn.notifies():
            seen += 1
            if not burst:
                sender.received(note.payload)
            if seen == count:
                break
        end = time.perf_counter()
        await conn.close()
        await asyncio.get_running_loop().run_in_executor(None, thread.join, 10)
        return end - started[0] if burst else 0.0

    try:
        elapsed = _runAsyncio(body)
    finally:
        sender.close()
    return elapsed, sender.latencies


# -- COPY --------------------------------------------------------------------------------------------------


def _makeTable() -> str:
    import psycopg2

    name = f"bench_copy_{uuid.uuid4().hex[:8]}"
    conn = psycopg2.connect(DSN)
    conn.autocommit = True
    conn.cursor().execute(f"CREATE UNLOGGED TABLE {name} (id int, s text, f float8)")
    conn.close()
    return name


def _adminRun(sql: str) -> None:
    import psycopg2

    conn = psycopg2.connect(DSN)
    conn.autocommit = True
    conn.cursor().execute(sql)
    conn.close()


def _oursCopyIn(driver: str, table: str, rows: list[tuple[Any, ...]], binary: bool = False) -> float:
    import adbapi

    async def body(reactor: Any) -> float:
        pool = adbapi.ConnectionPool(driver, DSN, cp_reactor=reactor, cp_min=1, cp_max=1)
        await pool.runQuery("SELECT 1")
        start = time.perf_counter()
        await pool.copyIn(table, rows, columns=["id", "s", "f"], binary=binary)
        elapsed = time.perf_counter() - start
        await pool.close()
        return elapsed

    return _runOurs(body)


def _asyncpgCopyIn(table: str, rows: list[tuple[Any, ...]]) -> float:
    import asyncpg

    async def body() -> float:
        conn = await asyncpg.connect(_dsnToURL(DSN))
        start = time.perf_counter()
        await conn.copy_records_to_table(table, records=rows, columns=["id", "s", "f"])
        elapsed = time.perf_counter() - start
        await conn.close()
        return elapsed

    return _runAsyncio(body)


def _psycopg3CopyIn(table: str, rows: list[tuple[Any, ...]], binary: bool = False) -> float:
    import psycopg

    with psycopg.connect(DSN) as conn:
        start = time.perf_counter()
        sql = f"COPY {table} (id, s, f) FROM STDIN" + (" (FORMAT BINARY)" if binary else "")
        with conn.cursor() as cur, cur.copy(sql) as copy:
            if binary:
                copy.set_types(["int4", "text", "float8"])
            for row in rows:
                copy.write_row(row)
        conn.commit()
        return time.perf_counter() - start


def _psycopg3AsyncCopyIn(table: str, rows: list[tuple[Any, ...]]) -> float:
    import psycopg

    async def body() -> float:
        conn = await psycopg.AsyncConnection.connect(DSN)
        start = time.perf_counter()
        async with conn.cursor() as cur, cur.copy(f"COPY {table} (id, s, f) FROM STDIN") as copy:
            for row in rows:
                await copy.write_row(row)
        await conn.commit()
        elapsed = time.perf_counter() - start
        await conn.close()
        return elapsed

    return _runAsyncio(body)


def _oursCopyOut(driver: str, query: str, raw: bool) -> float:
    import adbapi

    async def body(reactor: Any) -> float:
        pool = adbapi.ConnectionPool(driver, DSN, cp_reactor=reactor, cp_min=1, cp_max=1)
        await pool.runQuery("SELECT 1")
        start = time.perf_counter()
        n = 0
        async for _ in pool.copyOut(query, raw=raw):
            n += 1
        elapsed = time.perf_counter() - start
        await pool.close()
        return elapsed

    return _runOurs(body)


def _asyncpgCopyOut(query: str) -> float:
    import asyncpg

    async def body() -> float:
        conn = await asyncpg.connect(_dsnToURL(DSN))
        size = 0

        async def sink(data: bytes) -> None:
            nonlocal size
            size += len(data)

        start = time.perf_counter()
        await conn.copy_from_query(query, output=sink)
        elapsed = time.perf_counter() - start
        await conn.close()
        return elapsed

    return _runAsyncio(body)


def _psycopg3CopyOut(query: str, raw: bool) -> float:
    import psycopg

    async def body() -> float:
        conn = await psycopg.AsyncConnection.connect(DSN)
        start = time.perf_counter()
        n = 0
        async with conn.cursor() as cur, cur.copy(f"COPY ({query}) TO STDOUT") as copy:
            if raw:
                async for _ in copy:
                    n += 1
            else:
                async for _ in copy.rows():
                    n += 1
        elapsed = time.perf_counter() - start
        await conn.close()
        return elapsed

    return _runAsyncio(body)


# -- the run -----------------------------------------------------------------------------------------------


_cpu: dict[str, float] = {}  # side -> median process CPU seconds per run, of the last _measure


def _measure(sides: dict[str, Callable[[], Any]], rounds: int) -> tuple[dict[str, list[Any]], dict[str, int]]:
    """Run every side ``rounds`` times, interleaved and rotated; their outcomes and peak extra memory.

    Each side's process CPU time (this client's, connection setup included) goes to ``_cpu``: on a
    loaded machine it is steadier than the wall time, which also waits for the server.
    """
    outcomes: dict[str, list[Any]] = {n: [] for n in sides}
    peaks: dict[str, int] = {n: 0 for n in sides}
    cpu: dict[str, list[float]] = {n: [] for n in sides}
    names = list(sides)
    for i in range(rounds):
        for name in names[i % len(names):] + names[: i % len(names)]:
            base = _resetPeak()
            started = time.process_time()
            outcomes[name].append(sides[name]())
            cpu[name].append(time.process_time() - started)
            peaks[name] = max(peaks[name], _status("VmHWM") - base)
    _cpu.clear()
    _cpu.update({n: statistics.median(v) for n, v in cpu.items()})
    return outcomes, peaks


def _cpuText() -> str:
    return ", ".join(f"{k} {v:.2f} s" for k, v in _cpu.items())


def _comparison(name: str, ops: int, rates: dict[str, float], ours: str, targets: list[Target],
                note: str = "") -> Comparison:
    result = Comparison(name=name, ops=ops, opsPerSecond=rates, ours=ours, targets=targets, note=note)
    print("\n".join(result.lines()), flush=True)
    return result


def _mib(peaks: dict[str, int]) -> str:
    return ", ".join(f"{k} {v / 2**20:.1f} MiB" for k, v in peaks.items())


def run(quick: bool) -> list[Comparison]:
    pingN = 300 if quick else 3000
    burstN = 5000 if quick else 50_000
    copyN = 100_000 if quick else 1_000_000
    rounds = 3 if quick else 5
    results: list[Comparison] = []

    # Notification latency (ping-pong).
    outcomes, _ = _measure({
        "adbapi listen (psycopg2)": lambda: _oursNotify("psycopg2", pingN, False),
        "adbapi listen (psycopg 3)": lambda: _oursNotify("psycopg", pingN, False),
        "asyncpg add_listener": lambda: _asyncpgNotify(pingN, False),
        "psycopg 3 notifies()": lambda: _psycopg3Notify(pingN, False),
    }, rounds)
    latencies = {k: sorted(x for _, lat in v for x in lat) for k, v in outcomes.items()}
    median = {k: statistics.median(v) for k, v in latencies.items()}
    p99 = {k: v[int(len(v) * 0.99) - 1] for k, v in latencies.items()}
    text = ", ".join(f"{k} {median[k] * 1e6:.0f}/{p99[k] * 1e6:.0f} us" for k in median)
    print(f"notification latency median/p99: {text}", flush=True)
    for ours in ("adbapi listen (psycopg2)", "adbapi listen (psycopg 3)"):
        results.append(_comparison(
            f"NOTIFY latency, median ({ours})", pingN, {k: 1 / v for k, v in median.items()}, ours,
            [Target("asyncpg add_listener", 1 / 1.2)], note=f"ops/s = 1 / median latency; {text}"))
        results.append(_comparison(
            f"NOTIFY latency, p99 ({ours})", pingN, {k: 1 / v for k, v in p99.items()}, ours,
            [Target("asyncpg add_listener", 1 / 1.2)], note="ops/s = 1 / p99 latency"))

    # Notification throughput (one burst).
    outcomes, peaks = _measure({
        "adbapi listen (psycopg2)": lambda: _oursNotify("psycopg2", burstN, True),
        "adbapi listen (psycopg 3)": lambda: _oursNotify("psycopg", burstN, True),
        "asyncpg add_listener": lambda: _asyncpgNotify(burstN, True),
        "psycopg 3 notifies()": lambda: _psycopg3Notify(burstN, True),
    }, rounds)
    rates = {k: burstN / statistics.median(e for e, _ in v) for k, v in outcomes.items()}
    results.append(_comparison("NOTIFY throughput (psycopg2 pool)", burstN, rates, "adbapi listen (psycopg2)",
                               [Target("asyncpg add_listener", 1 / 1.2)], note=f"peak memory: {_mib(peaks)}"))

    # COPY in.
    rows = [(i, f"row number {i}", i * 0.5) for i in range(copyN)]
    table = _makeTable()
    try:
        def fresh(side: Callable[[], float]) -> Callable[[], float]:
            def run() -> float:
                _adminRun(f"TRUNCATE {table}")
                return side()
            return run

        outcomes, peaks = _measure({
            "adbapi copyIn (psycopg 3)": fresh(lambda: _oursCopyIn("psycopg", table, rows)),
            "adbapi copyIn (psycopg2)": fresh(lambda: _oursCopyIn("psycopg2", table, rows)),
            "adbapi copyIn binary (psycopg 3)": fresh(lambda: _oursCopyIn("psycopg", table, rows, True)),
            "asyncpg copy_records_to_table": fresh(lambda: _asyncpgCopyIn(table, rows)),
            "psycopg 3 copy.write_row": fresh(lambda: _psycopg3CopyIn(table, rows)),
            "psycopg 3 copy.write_row binary": fresh(lambda: _psycopg3CopyIn(table, rows, True)),
            "psycopg 3 async copy.write_row": fresh(lambda: _psycopg3AsyncCopyIn(table, rows)),
        }, rounds)
        rates = {k: copyN / statistics.median(v) for k, v in outcomes.items()}
        note = f"peak memory above the rows: {_mib(peaks)}; client CPU per run: {_cpuText()}"
        text = ("psycopg 3 copy.write_row", "asyncpg copy_records_to_table", "psycopg 3 async copy.write_row")
        for ours in ("adbapi copyIn (psycopg 3)", "adbapi copyIn (psycopg2)"):
            results.append(_comparison(f"copyIn {copyN:,} rows ({ours})", copyN,
                                       {k: rates[k] for k in (ours, *text)}, ours,
                                       [Target("psycopg 3 copy.write_row", 1.0)], note=note))
        ours = "adbapi copyIn binary (psycopg 3)"
        results.append(_comparison(
            f"copyIn {copyN:,} rows, binary ({ours})", copyN,
            {k: rates[k] for k in (ours, "psycopg 3 copy.write_row binary", "psycopg 3 copy.write_row",
                                   "asyncpg copy_records_to_table")}, ours,
            [Target("psycopg 3 copy.write_row binary", 1.0), Target("psycopg 3 copy.write_row", 1.0)],
            note=note))
    finally:
        _adminRun(f"DROP TABLE IF EXISTS {table}")

    # COPY out.
    query = f"SELECT i, 'row number ' || i, i * 0.5 FROM generate_series(1, {copyN}) AS i"
    outcomes, peaks = _measure({
        "adbapi copyOut rows (psycopg 3)": lambda: _oursCopyOut("psycopg", query, False),
        "adbapi copyOut rows (psycopg2)": lambda: _oursCopyOut("psycopg2", query, False),
        "adbapi copyOut raw (psycopg 3)": lambda: _oursCopyOut("psycopg", query, True),
        "psycopg 3 copy.rows()": lambda: _psycopg3CopyOut(query, False),
        "psycopg 3 copy chunks": lambda: _psycopg3CopyOut(query, True),
        "asyncpg copy_from_query": lambda: _asyncpgCopyOut(query),
    }, rounds)
    rates = {k: copyN / statistics.median(v) for k, v in outcomes.items()}
    note = f"peak memory: {_mib(peaks)}; client CPU per run: {_cpuText()}"
    for ours in ("adbapi copyOut rows (psycopg 3)", "adbapi copyOut rows (psycopg2)"):
        results.append(_comparison(
            f"copyOut {copyN:,} rows ({ours})", copyN,
            {k: rates[k] for k in (ours, "psycopg 3 copy.rows()")}, ours,
            [Target("psycopg 3 copy.rows()", 1.0)], note=note))
    raw = "adbapi copyOut raw (psycopg 3)"
    results.append(_comparison(
        f"copyOut {copyN:,} rows, raw chunks", copyN,
        {k: rates[k] for k in (raw, "psycopg 3 copy chunks", "asyncpg copy_from_query")}, raw,
        [Target("psycopg 3 copy chunks", 1.0)], note=note))
    return results


if __name__ == "__main__":
    import sys

    run(quick="--quick" in sys.argv)
