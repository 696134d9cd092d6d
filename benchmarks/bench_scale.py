"""Scaling out: web requests/s with 2 worker processes against 1, and CPU-bound work through processes.

Web: ``reactor.prefork`` supervisors run ``benchmarks/_preforkhello.py`` (``reactor.web``, a 13-byte
text answer) with 2 workers and with 1 worker, each on its own port; ``wrk -t2 -c64`` measures each in
turn. On a 2-core machine wrk itself needs a good share of a core, so 2 workers cannot reach 2x.

Blocking work: ``hashlib.pbkdf2_hmac`` calls through ``deferthreads.deferToExecutor`` on a reactor,
to a ``ProcessPoolExecutor`` of 2 processes and to a Dask ``LocalCluster`` of 2 worker processes
(``Client.get_executor()``), each against a ``ThreadPoolExecutor`` of 2 threads. CPython's
``pbkdf2_hmac`` releases the GIL while OpenSSL works, so threads already use both cores: the ratios
show what a process hop costs for GIL-free work (Dask adds its scheduler's round trips). Work that
holds the GIL (pure Python) is what processes are for; the pure-Python comparison shows that.
Dask is skipped with a note when ``distributed`` is not installed, the web part when wrk is missing.

PgBouncer: ``adbapi`` ``runQuery("SELECT 1")`` calls (psycopg2, 4 connections, 32 in flight) through a
throwaway PgBouncer in transaction mode (``tests/pgbouncer_support.py``) against the same pool connected
to PostgreSQL directly: the price of the extra hop. Skipped when pgbouncer or PostgreSQL is missing.
"""

from __future__ import annotations

import contextlib
import hashlib
import multiprocessing
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks._harness import Comparison, compare
from deferthreads import deferToExecutor
from reactor import Deferred, Reactor, gatherResults

HERE = Path(__file__).resolve().parent
NOMINAL_OPS = 100_000  # scales the harness's arithmetic only; the measured rate is what counts
DURATION = float(os.environ.get("BENCH_SCALE_SECONDS", "3"))
SALT = b"bench_scale"


def pbkdf2(index: int, iterations: int) -> bytes:
    """The CPU-bound call (module level, so that it pickles by reference)."""
    return hashlib.pbkdf2_hmac("sha256", index.to_bytes(8, "big"), SALT, iterations)


def pureLoop(index: int, rounds: int) -> int:
    """CPU-bound work that holds the GIL throughout."""
    total = index
    for i in range(rounds):
        total = (total * 31 + i) % 1_000_003
    return total


@contextlib.contextmanager
def supervisor(workers: int) -> Iterator[int]:
    """A prefork supervisor of ``workers`` hello workers; yields the port once all are ready."""
    command = [sys.executable, "-m", "reactor.prefork", "--workers", str(workers), "--bind", "127.0.0.1:0",
               "--", sys.executable, str(HERE / "_preforkhello.py"), "{port}"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, cwd=HERE.parent)
    try:
        assert process.stderr is not None
        port = None
        deadline = time.monotonic() + 60
        for line in process.stderr:
            found = re.search(r"port (\d+) reserved", line)
            if found:
                port = int(found.group(1))
            if "worker(s) ready" in line:
                break
            if time.monotonic() > deadline:
                raise RuntimeError("the prefork supervisor did not get ready within 60 s")
        if port is None:
            raise RuntimeError(f"the prefork supervisor ended: status {process.wait(10)}")
        yield port
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def wrkSide(port: int, seconds: float) -> Callable[[], float]:
    def side() -> float:
        out = subprocess.run(
            ["wrk", "-t2", "-c64", f"-d{max(1, round(seconds))}s", f"http://127.0.0.1:{port}/"],
            capture_output=True, text=True, timeout=seconds + 60, check=True,
        )
        rate = re.search(r"Requests/sec:\s*([\d.]+)", out.stdout)
        if rate is None:
            raise RuntimeError(f"cannot read wrk's output: {out.stdout!r}")
        if re.search(r"Non-2xx or 3xx responses|Socket errors", out.stdout):
            raise RuntimeError(f"wrk saw errors:\n{out.stdout}")
        return NOMINAL_OPS / float(rate.group(1))

    return side


def executorSide(
    executor: Executor, f: Callable[[int, int], Any], calls: int, size: int
) -> Callable[[], float]:
    """One round: ``calls`` calls of ``f`` through deferToExecutor on a fresh reactor, all awaited."""

    def side() -> float:
        reactor = Reactor()
        elapsed: list[float] = []

        def start() -> None:
            began = time.perf_counter()
            d = gatherResults([deferToExecutor(reactor, executor, f, i, size) for i in range(calls)])

            def done(result: object) -> object:
                elapsed.append(time.perf_counter() - began)
                reactor.stop()
                return result

            d.addBoth(done)

        reactor.callWhenRunning(start)
        reactor.run(installSignalHandlers=False)
        if not elapsed:
            raise RuntimeError("the executor round did not finish")
        return elapsed[0]

    return side


def poolSide(dsn: str, calls: int) -> Callable[[], float]:
    """One round: ``calls`` runQuery("SELECT 1") on a psycopg2 pool of 4, 32 in flight, on a fresh reactor."""
    import adbapi

    def side() -> float:
        reactor = Reactor()
        elapsed: list[float] = []

        async def main() -> None:
            pool = adbapi.ConnectionPool("psycopg2", dsn, cp_min=4, cp_max=4, cp_reactor=reactor)
            await gatherResults([pool.runQuery("SELECT 1") for _ in range(8)])  # connections open
            began = time.perf_counter()
            for _ in range(calls // 32):
                await gatherResults([pool.runQuery("SELECT 1") for _ in range(32)])
            elapsed.append(time.perf_counter() - began)
            await pool.close()

        def start() -> None:
            d = Deferred.fromCoroutine(main())
            d.addBoth(lambda result: (reactor.stop(), result)[1])

        reactor.callWhenRunning(start)
        reactor.run(installSignalHandlers=False)
        if not elapsed:
            raise RuntimeError("the pool round did not finish")
        return elapsed[0]

    return side


def pgbouncerComparison(quick: bool, rounds: int) -> list[Comparison]:
    sys.path.insert(0, str(HERE.parent))
    from tests.pgbouncer_support import PgBouncer, pgbouncerBinary

    direct = os.environ.get("ADBAPI_TEST_POSTGRES_DSN", "host=127.0.0.1 port=5432 dbname=test")
    binary = pgbouncerBinary()
    if binary is None:
        print("PgBouncer comparison skipped: pgbouncer is not installed (apt-get install pgbouncer)",
              flush=True)
        return []
    try:
        bouncer = PgBouncer(binary, direct, poolSize=4)
    except Exception as e:
        print(f"PgBouncer comparison skipped: PostgreSQL is unreachable ({e})", flush=True)
        return []
    calls = 640 if quick else 3200
    try:
        bouncer.start()
        return [compare(
            "adbapi runQuery('SELECT 1') through PgBouncer (transaction mode) vs direct, psycopg2 (calls/s)",
            {"through PgBouncer": poolSide(bouncer.dsn, calls), "direct": poolSide(direct, calls)},
            ops=calls, rounds=rounds, warmup=1, ours="through PgBouncer",
            note="4 pool connections, 32 calls in flight; PgBouncer 4 server connections",
        )]
    finally:
        bouncer.close()


def run(quick: bool) -> list[Comparison]:
    seconds = 1.0 if quick else DURATION
    rounds = 2 if quick else 5
    results: list[Comparison] = pgbouncerComparison(quick, rounds)
    if shutil.which("wrk") is None:
        print("web scaling skipped: wrk is not installed (apt-get install wrk)", flush=True)
    else:
        with supervisor(2) as two, supervisor(1) as one:
            results.append(compare(
                "reactor.web hello, 2 worker processes vs 1 (reactor.prefork, SO_REUSEPORT), wrk -t2 -c64",
                {"2 workers": wrkSide(two, seconds), "1 worker": wrkSide(one, seconds)},
                ops=NOMINAL_OPS, rounds=rounds, warmup=1, ours="2 workers",
                note=f"{max(1, round(seconds))} s per side per round, {os.cpu_count()} CPUs shared with wrk",
            ))
    calls = 16 if quick else 48
    iterations = 50_000 if quick else 100_000
    loopRounds = 200_000 if quick else 500_000
    spawn = multiprocessing.get_context("spawn")
    with ThreadPoolExecutor(2) as threads, ProcessPoolExecutor(2, mp_context=spawn) as processes:
        # Start the processes before timing anything.
        list(processes.map(pureLoop, range(4), [10] * 4))
        results.append(compare(
            f"pbkdf2_hmac(sha256, {iterations:,}) via deferToExecutor: 2 processes vs 2 threads (calls/s)",
            {"process pool": executorSide(processes, pbkdf2, calls, iterations),
             "threads": executorSide(threads, pbkdf2, calls, iterations)},
            ops=calls, rounds=rounds, warmup=1, ours="process pool",
            note="pbkdf2_hmac releases the GIL: threads use both cores too",
        ))
        results.append(compare(
            f"pure-Python loop ({loopRounds:,} steps) via deferToExecutor: 2 processes vs 2 threads "
            "(calls/s)",
            {"process pool": executorSide(processes, pureLoop, calls, loopRounds),
             "threads": executorSide(threads, pureLoop, calls, loopRounds)},
            ops=calls, rounds=rounds, warmup=1, ours="process pool",
            note="holds the GIL: threads run one at a time",
        ))
        try:
            import distributed
        except ImportError:
            print("Dask comparison skipped: distributed is not installed (pip install 'deferthreads[dask]')",
                  flush=True)
            return results
        with (
            distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                     dashboard_address=None, silence_logs=40) as cluster,
            distributed.Client(cluster) as client,
        ):
            dask = client.get_executor(pure=False)
            results.append(compare(
                f"pbkdf2_hmac(sha256, {iterations:,}) via deferToExecutor: Dask, 2 worker processes, "
                "vs 2 threads (calls/s)",
                {"dask 2 workers": executorSide(dask, pbkdf2, calls, iterations),
                 "threads": executorSide(threads, pbkdf2, calls, iterations)},
                ops=calls, rounds=rounds, warmup=1, ours="dask 2 workers",
                note="LocalCluster on this machine: the scheduler and the client share its 2 CPUs",
            ))
    return results
