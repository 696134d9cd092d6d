"""Thread hand-off benchmarks: deferthreads against Twisted 26.10, asyncio.to_thread and a raw executor.

Every event loop (ours, Twisted's ``EPollReactor`` instance, asyncio's) runs in a
background thread of its own for the whole benchmark, so each round is started
the same way for every side: the measuring thread posts the round into the loop
and waits on a ``threading.Event``. The raw ``ThreadPoolExecutor`` side (the
floor of what a thread hand-off costs) runs in the measuring thread.

Pools are sized alike: 10 workers for the reactor-shared pools (Twisted's
default reactor pool is ``ThreadPool(0, 10)``), ``max_workers=10`` for the
executor and asyncio's default executor.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import itertools
import threading
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from benchmarks._harness import Comparison, Target, compare
from deferthreads import ThreadPool, deferToThreadPool, getThreadPool
from reactor import Deferred, gatherResults, spinCalibration
from reactor._loop import Reactor

POOL_SIZE = 10


def noop() -> None:
    return None


class _LoopThread:
    """Runs a reactor-like loop in a daemon thread; ``post(f)`` schedules f in it."""

    def __init__(self, run: Callable[[], None], post: Callable[[Callable[[], None]], None]) -> None:
        self._post = post
        self._thread = threading.Thread(target=run, daemon=True, name="bench-loop")
        self._thread.start()

    def roundTrip(self, start: Callable[[Callable[[], None]], None]) -> None:
        """Post ``start(done)`` into the loop and wait until it calls ``done()``."""
        finished = threading.Event()
        self._post(lambda: start(finished.set))
        if not finished.wait(120):
            raise RuntimeError("benchmark round did not finish")


def _ours() -> tuple[Reactor, ThreadPool, _LoopThread]:
    reactor = Reactor()
    started = threading.Event()
    reactor.callWhenRunning(started.set)
    loop = _LoopThread(lambda: reactor.run(installSignalHandlers=False), reactor.callFromThread)
    started.wait(10)
    box: list[ThreadPool] = []

    def fetch(done: Callable[[], None]) -> None:
        box.append(getThreadPool(reactor))
        done()

    loop.roundTrip(fetch)
    pool = box[0]
    pool.adjustPoolsize(maxthreads=POOL_SIZE)
    return reactor, pool, loop


def _twisted() -> tuple[Any, Any, _LoopThread]:
    from twisted.internet.epollreactor import EPollReactor

    reactor = EPollReactor()
    started = threading.Event()
    reactor.callWhenRunning(started.set)
    loop = _LoopThread(lambda: reactor.run(installSignalHandlers=False), reactor.callFromThread)
    started.wait(10)
    pool = reactor.getThreadPool()
    return reactor, pool, loop


def _asyncio() -> tuple[asyncio.AbstractEventLoop, threading.Thread]:
    loop = asyncio.new_event_loop()
    loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(max_workers=POOL_SIZE))
    thread = threading.Thread(target=loop.run_forever, daemon=True, name="bench-asyncio")
    thread.start()
    return loop, thread


def _runAsync(loop: asyncio.AbstractEventLoop, coro: Any) -> None:
    asyncio.run_coroutine_threadsafe(coro, loop).result(120)


def _stopAll(ours: Any, twisted: Any, aio: Any, executor: concurrent.futures.ThreadPoolExecutor) -> None:
    reactor, _, oursLoop = ours
    reactor.callFromThread(reactor.stop)
    oursLoop._thread.join(30)
    treactor, _, twistedLoop = twisted
    treactor.callFromThread(treactor.stop)
    twistedLoop._thread.join(30)
    loop, thread = aio
    loop.call_soon_threadsafe(loop.stop)
    thread.join(30)
    executor.shutdown(wait=True)


def run(quick: bool) -> list[Comparison]:
    from twisted.internet import defer as tdefer
    from twisted.internet import threads as tthreads
    from twisted.python.threadpool import ThreadPool as TwistedThreadPool

    burstN = 2_000 if quick else 20_000
    seqN = 1_000 if quick else 20_000
    dispatchN = 5_000 if quick else 50_000
    rounds = 3 if quick else 7

    ours = _ours()
    twisted = _twisted()
    aio = _asyncio()
    executor = concurrent.futures.ThreadPoolExecutor(max_workers=POOL_SIZE)
    results: list[Comparison] = []
    try:
        oursReactor, oursPool, oursLoop = ours
        tReactor, tPool, tLoop = twisted
        aLoop, _ = aio

        # -- burst: N calls at once, then gathered -------------------------------------------
        def oursBurst(done: Callable[[], None]) -> None:
            ds = [deferToThreadPool(oursReactor, oursPool, noop) for _ in range(burstN)]
            gatherResults(ds).addCallback(lambda _: done())

        def twistedBurst(done: Callable[[], None]) -> None:
            ds = [tthreads.deferToThreadPool(tReactor, tPool, noop) for _ in range(burstN)]
            tdefer.gatherResults(ds).addCallback(lambda _: done())

        async def asyncioBurst() -> None:
            await asyncio.gather(*[asyncio.to_thread(noop) for _ in range(burstN)])

        def executorBurst() -> None:
            futures = [executor.submit(noop) for _ in range(burstN)]
            for f in futures:
                f.result()

        results.append(
            compare(
                f"burst: {burstN:,} no-op calls, then gathered",
                {
                    "deferthreads": lambda: oursLoop.roundTrip(oursBurst),
                    "twisted deferToThreadPool": lambda: tLoop.roundTrip(twistedBurst),
                    "asyncio.to_thread": lambda: _runAsync(aLoop, asyncioBurst()),
                    "raw ThreadPoolExecutor": executorBurst,
                },
                ops=burstN,
                rounds=rounds,
                targets=[Target("twisted deferToThreadPool", 3.0), Target("raw ThreadPoolExecutor", 1.0)],
            )
        )

        # -- sequential: await each call before the next -------------------------------------
        def oursSequential(done: Callable[[], None]) -> None:
            async def body() -> None:
                for _ in range(seqN):
                    await deferToThreadPool(oursReactor, oursPool, noop)
                done()

            Deferred.fromCoroutine(body())

        def twistedSequential(done: Callable[[], None]) -> None:
            async def body() -> None:
                for _ in range(seqN):
                    await tthreads.deferToThreadPool(tReactor, tPool, noop)
                done()

            tdefer.Deferred.fromCoroutine(body())

        async def asyncioSequential() -> None:
            for _ in range(seqN):
                await asyncio.to_thread(noop)

        def executorSequential() -> None:
            for _ in range(seqN):
                executor.submit(noop).result()

        # The burst above spun already, so the background calibration is done (or nearly).
        calibration = spinCalibration()
        calibrated = (
            f"spin calibration chose {calibration.pauseBytes // 1024} KiB pauses "
            f"({calibration.pauseSeconds * 1e6:.1f} us), loop "
            f"{'spins' if calibration.loopSpins else 'blocks'} (ping-pong: "
            f"{calibration.spinningLoopRoundTrip * 1e6:.1f} us spinning, "
            f"{calibration.blockingLoopRoundTrip * 1e6:.1f} us blocking; took "
            f"{calibration.seconds * 1e3:.1f} ms)"
        )
        results.append(
            compare(
                f"sequential: {seqN:,} calls, each awaited before the next",
                {
                    "deferthreads": lambda: oursLoop.roundTrip(oursSequential),
                    "twisted deferToThreadPool": lambda: tLoop.roundTrip(twistedSequential),
                    "asyncio.to_thread": lambda: _runAsync(aLoop, asyncioSequential()),
                    "raw ThreadPoolExecutor": executorSequential,
                },
                ops=seqN,
                rounds=rounds,
                targets=[Target("twisted deferToThreadPool", 1.5), Target("raw ThreadPoolExecutor", 1.0)],
                note=calibrated,
            )
        )

        # -- callInThread raw dispatch: N calls submitted, until the last has run --------------
        ourRaw = ThreadPool(5, 20, "bench")
        ourRaw.start()
        theirRaw = TwistedThreadPool(5, 20, "bench")
        theirRaw.start()

        def dispatch(pool: Any) -> float:
            finished = threading.Event()
            counter = itertools.count(1)

            def work() -> None:
                if next(counter) == dispatchN:
                    finished.set()

            start = time.perf_counter()
            callInThread = pool.callInThread
            for _ in range(dispatchN):
                callInThread(work)
            if not finished.wait(120):
                raise RuntimeError("dispatch round did not finish")
            return time.perf_counter() - start

        def executorDispatch() -> float:
            finished = threading.Event()
            counter = itertools.count(1)

            def work() -> None:
                if next(counter) == dispatchN:
                    finished.set()

            start = time.perf_counter()
            submit = executor.submit
            for _ in range(dispatchN):
                submit(work)
            finished.wait(120)
            return time.perf_counter() - start

        try:
            results.append(
                compare(
                    f"callInThread dispatch: {dispatchN:,} calls until the last has run",
                    {
                        "deferthreads": lambda: dispatch(ourRaw),
                        "twisted ThreadPool": lambda: dispatch(theirRaw),
                        "raw ThreadPoolExecutor": executorDispatch,
                    },
                    ops=dispatchN,
                    rounds=rounds,
                    targets=[Target("twisted ThreadPool", 2.0)],
                )
            )
        finally:
            ourRaw.stop(timeout=30)
            theirRaw.stop()

        # -- memory: 100,000 calls queued on a pool that has not started -------------------------
        results.append(_memory(1_000 if quick else 100_000))
    finally:
        _stopAll(ours, twisted, aio, executor)
    return results


def _peakBytes(queue: Callable[[], Any]) -> tuple[int, Any]:
    gc.collect()
    tracemalloc.start()
    try:
        kept = queue()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, kept


def _memory(count: int) -> Comparison:
    """Peak traced memory while ``count`` deferred calls wait in a pool that has not started."""
    from twisted.internet import threads as tthreads
    from twisted.internet.epollreactor import EPollReactor
    from twisted.python.threadpool import ThreadPool as TwistedThreadPool

    reactor = Reactor()
    pool = ThreadPool(0, 1, "mem")
    oursPeak, kept = _peakBytes(lambda: [deferToThreadPool(reactor, pool, noop) for _ in range(count)])
    del kept
    treactor = EPollReactor()
    tpool = TwistedThreadPool(0, 1, "mem")
    theirPeak, kept = _peakBytes(
        lambda: [tthreads.deferToThreadPool(treactor, tpool, noop) for _ in range(count)]
    )
    del kept
    executor = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    gate = threading.Event()
    executor.submit(gate.wait, 60)  # the one worker blocks: everything else stays queued
    execPeak, kept = _peakBytes(lambda: [executor.submit(noop) for _ in range(count)])
    for f in kept:
        f.cancel()
    gate.set()
    executor.shutdown(wait=True)
    del kept
    mib = 1024 * 1024
    note = (
        f"peak traced memory for {count:,} queued calls: deferthreads {oursPeak / mib:.1f} MiB "
        f"({oursPeak / count:.0f} B/call), twisted {theirPeak / mib:.1f} MiB "
        f"({theirPeak / count:.0f} B/call), "
        f"raw executor {execPeak / mib:.1f} MiB ({execPeak / count:.0f} B/call)"
    )
    # Reported as "calls per MiB of peak memory" so that higher is better, like the other rows.
    result = Comparison(
        name=f"memory: {count:,} queued calls (calls per MiB of peak traced memory)",
        ops=count,
        opsPerSecond={
            "deferthreads": count / (oursPeak / mib),
            "twisted deferToThreadPool": count / (theirPeak / mib),
            "raw ThreadPoolExecutor": count / (execPeak / mib),
        },
        note=note,
    )
    print("\n".join(result.lines()).replace("ops/s", "calls/MiB"), flush=True)
    return result
