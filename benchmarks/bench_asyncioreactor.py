"""The reactor hosted on asyncio, against Twisted 26.10's ``AsyncioSelectorReactor``.

Both reactors run on a fresh ``asyncio.new_event_loop()`` per round (Twisted's cannot
be restarted). Cases:

* ``callLater fired``: N timed calls 0..1 ms ahead, timed until the last one ran;
* ``callFromThread``: 2 threads make N calls in all, timed until the last one ran;
* ``await a thread call``: an asyncio coroutine awaits N blocking calls in a row, each
  ``deferToThreadPool(...).asFuture(loop)`` on a 4-thread pool (ours and Twisted's),
  beside ``asyncio.to_thread`` (the default executor) as the asyncio reference: the
  everyday way an asyncio application calls blocking code through the bridge.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

from benchmarks._harness import Comparison, Side, Target, compare
from benchmarks._reactorsides import callLaterFiredSide

OURS = "deferthreads on asyncio"
TWISTED = "twisted asyncioreactor"
ASYNCIO = "asyncio.to_thread"


def _ours(loop: asyncio.AbstractEventLoop) -> Any:
    from reactor.asyncioreactor import AsyncioReactor

    return AsyncioReactor(loop)


def _twisted(loop: asyncio.AbstractEventLoop) -> Any:
    from twisted.internet.asyncioreactor import AsyncioSelectorReactor

    factory: Any = AsyncioSelectorReactor
    return factory(loop)


def _fresh(make: Callable[[asyncio.AbstractEventLoop], Any]) -> tuple[asyncio.AbstractEventLoop, Any]:
    loop = asyncio.new_event_loop()
    return loop, make(loop)


def _finish(loop: asyncio.AbstractEventLoop, reactor: Any) -> None:
    close = getattr(reactor, "close", None)
    if close is not None:
        close()
    loop.close()


def _callLaterSide(make: Callable[[asyncio.AbstractEventLoop], Any], total: int) -> Side:
    loops: list[asyncio.AbstractEventLoop] = []

    def fresh() -> Any:
        loop, reactor = _fresh(make)
        loops.append(loop)
        return reactor

    return callLaterFiredSide(fresh, total, lambda reactor: _finish(loops.pop(), reactor))


def _threadCallSide(make: Callable[[asyncio.AbstractEventLoop], Any], total: int) -> Side:
    perThread = total // 2

    def side() -> float:
        loop, r = _fresh(make)
        go = threading.Event()
        remaining = [perThread * 2]
        end: list[float] = []

        def count() -> None:
            remaining[0] -= 1
            if remaining[0] == 0:
                end.append(time.perf_counter())
                r.stop()

        def caller() -> None:
            go.wait()
            call = r.callFromThread
            for _ in range(perThread):
                call(count)

        threads = [threading.Thread(target=caller) for _ in range(2)]
        for t in threads:
            t.start()
        start: list[float] = []
        r.callWhenRunning(lambda: (start.append(time.perf_counter()), go.set()))
        r.run(installSignalHandlers=False)
        for t in threads:
            t.join()
        _finish(loop, r)
        return end[0] - start[0]

    return side


def _blocking(x: int) -> int:
    return x + 1


def _awaitThreadSide(kind: str, total: int) -> Side:
    def side() -> float:
        loop = asyncio.new_event_loop()
        elapsed: list[float] = []
        if kind == "asyncio":

            async def main() -> None:
                start = time.perf_counter()
                for i in range(total):
                    await asyncio.to_thread(_blocking, i)
                elapsed.append(time.perf_counter() - start)

            loop.run_until_complete(main())
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()
            return elapsed[0]
        if kind == "ours":
            import deferthreads

            r = _ours(loop)
            pool = deferthreads.ThreadPool(4, 4, "bench")
            toThread = deferthreads.deferToThreadPool
        else:
            from twisted.internet.threads import deferToThreadPool
            from twisted.python.threadpool import ThreadPool

            r = _twisted(loop)
            pool = ThreadPool(4, 4, "bench")
            toThread = deferToThreadPool
        pool.start()

        async def mainPool() -> None:
            start = time.perf_counter()
            for i in range(total):
                await toThread(r, pool, _blocking, i).asFuture(loop)
            elapsed.append(time.perf_counter() - start)
            r.stop()

        tasks: list[asyncio.Task[None]] = []

        def begin() -> None:
            tasks.append(loop.create_task(mainPool()))

        r.callWhenRunning(begin)
        r.run(installSignalHandlers=False)
        pool.stop()
        _finish(loop, r)
        return elapsed[0]

    return side


def run(quick: bool) -> list[Comparison]:
    """The three asyncio-hosting comparisons (smaller and fewer rounds with ``quick``)."""
    rounds = 3 if quick else 5
    n = 20_000 if quick else 100_000
    calls = 2_000 if quick else 10_000
    note = "each round on a fresh asyncio loop"
    return [
        compare(f"hosted on asyncio: callLater(0..1 ms) x {n:,}, scheduled and fired",
                {OURS: _callLaterSide(_ours, n), TWISTED: _callLaterSide(_twisted, n)},
                ops=n, rounds=rounds, ours=OURS, targets=[Target(TWISTED, 1.5)], note=note),
        compare(f"hosted on asyncio: callFromThread from 2 threads, {2 * n:,} calls until all ran",
                {OURS: _threadCallSide(_ours, 2 * n), TWISTED: _threadCallSide(_twisted, 2 * n)},
                ops=2 * n, rounds=rounds, ours=OURS, targets=[Target(TWISTED, 2.0)], note=note),
        compare(f"hosted on asyncio: a coroutine awaits {calls:,} thread calls in a row",
                {OURS: _awaitThreadSide("ours", calls), TWISTED: _awaitThreadSide("twisted", calls),
                 ASYNCIO: _awaitThreadSide("asyncio", calls)},
                ops=calls, rounds=rounds, ours=OURS,
                targets=[Target(TWISTED, 1.5), Target(ASYNCIO, 1.0)], note=note),
    ]
