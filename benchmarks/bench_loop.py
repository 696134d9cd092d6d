"""Event-loop benchmarks: the thread door and timed calls, against Twisted 26.10's epoll reactor and asyncio.

* ``callFromThread``: 2 threads make N calls in all; timed from the moment the threads
  are released until the last call ran in the reactor thread.
* ``callLater fired``: N calls scheduled 0..1 ms ahead, timed until the last one ran.
* ``callLater + cancel``: N calls scheduled, then all cancelled, then one loop iteration
  (where Twisted and asyncio drop cancelled calls; ours drops them while cancelling).

Twisted's ``EPollReactor`` is instantiated directly (not installed) and, since it cannot
be restarted, a fresh one is made (untimed) for each round that runs it. asyncio uses
``asyncio.new_event_loop()`` (``call_soon_threadsafe``, ``call_later``, ``handle.cancel``).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

from benchmarks._harness import Comparison, Side, Target, compare
from benchmarks._reactorsides import callLaterFiredSide
from reactor import Reactor

OURS = "deferthreads"
TWISTED = "twisted 26.10 epoll"
ASYNCIO = "asyncio"


def _twistedReactor() -> Any:
    from twisted.internet import epollreactor

    factory: Any = epollreactor.EPollReactor
    return factory()


# ---------------------------------------------------------------- callFromThread


def _threadCallSide(
    makeLoop: Callable[[], Any],
    callFromThread: Callable[[Any, Callable[[], None]], None],
    runUntilStopped: Callable[[Any], None],
    stop: Callable[[Any], None],
    callWhenRunning: Callable[[Any, Callable[[], None]], None],
    total: int,
    threads: int = 2,
) -> Callable[[], float]:
    perThread = total // threads

    def side() -> float:
        loop = makeLoop()
        go = threading.Event()
        remaining = [perThread * threads]
        times: list[float] = []

        def count() -> None:
            remaining[0] -= 1
            if remaining[0] == 0:
                times.append(time.perf_counter())
                stop(loop)

        def worker() -> None:
            go.wait(30)
            for _ in range(perThread):
                callFromThread(loop, count)

        def release() -> None:
            times.append(time.perf_counter())
            go.set()

        workers = [threading.Thread(target=worker) for _ in range(threads)]
        for w in workers:
            w.start()
        callWhenRunning(loop, release)
        try:
            runUntilStopped(loop)
        finally:
            go.set()
            for w in workers:
                w.join(30)
        return times[1] - times[0]

    return side


def _benchCallFromThread(total: int, rounds: int) -> Comparison:
    ours = Reactor()
    aloop = asyncio.new_event_loop()
    try:
        sides: dict[str, Side] = {
            OURS: _threadCallSide(
                lambda: ours,
                lambda r, f: r.callFromThread(f),
                lambda r: r.run(installSignalHandlers=False),
                lambda r: r.stop(),
                lambda r, f: r.callWhenRunning(f),
                total,
            ),
            TWISTED: _threadCallSide(
                _twistedReactor,
                lambda r, f: r.callFromThread(f),
                lambda r: r.run(installSignalHandlers=False),
                lambda r: r.stop(),
                lambda r, f: r.callWhenRunning(f),
                total,
            ),
            ASYNCIO: _threadCallSide(
                lambda: aloop,
                lambda lp, f: lp.call_soon_threadsafe(f),
                lambda lp: lp.run_forever(),
                lambda lp: lp.stop(),
                lambda lp, f: lp.call_soon(f),
                total,
            ),
        }
        return compare(
            f"callFromThread from 2 threads, {total:,} calls until all ran",
            sides,
            ops=total,
            rounds=rounds,
            targets=[Target(TWISTED, 5.0)],
        )
    finally:
        ours.close()
        aloop.close()


# ---------------------------------------------------------------- callLater fired


class _AsyncioAsReactor:
    """An asyncio loop under the three reactor names a benchmark side calls (no per-call layer:
    ``callLater`` is the loop's own bound ``call_later``)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.callLater = loop.call_later
        self.stop = loop.stop
        self._loop = loop

    def run(self, installSignalHandlers: bool = False) -> None:
        self._loop.run_forever()


def _benchCallLaterFired(total: int, rounds: int) -> Comparison:
    ours = Reactor()
    aloop = asyncio.new_event_loop()

    try:
        return compare(
            f"callLater(0..1 ms) x {total:,}, scheduled and fired",
            {
                OURS: callLaterFiredSide(lambda: ours, total),
                TWISTED: callLaterFiredSide(_twistedReactor, total),
                ASYNCIO: callLaterFiredSide(lambda: _AsyncioAsReactor(aloop), total),
            },
            ops=total,
            rounds=rounds,
            targets=[Target(TWISTED, 1.5), Target(ASYNCIO, 1.0)],
        )
    finally:
        ours.close()
        aloop.close()


# ---------------------------------------------------------------- callLater + cancel


def _benchCallLaterCancelled(total: int, rounds: int) -> Comparison:
    ours = Reactor()
    aloop = asyncio.new_event_loop()
    delays = [10.0 + i * 1e-6 for i in range(total)]
    twisted: list[Any] = []

    # Each side schedules, cancels, and lets its loop drop the cancelled calls (Twisted and
    # asyncio defer that to their next iteration; ours does it while cancelling), all timed.
    def oursSide() -> float:
        start = time.perf_counter()
        callLater = ours.callLater
        calls = [callLater(d, print) for d in delays]
        for c in calls:
            c.cancel()
        ours.iterate(0)
        return time.perf_counter() - start

    def twistedSide() -> float:
        tr = twisted[0] if twisted else _twistedReactor()
        twisted[:] = [tr]
        start = time.perf_counter()
        callLater = tr.callLater
        calls = [callLater(d, print) for d in delays]
        for c in calls:
            c.cancel()
        tr.runUntilCurrent()
        tr.doIteration(0)
        return time.perf_counter() - start

    def asyncioSide() -> float:
        start = time.perf_counter()
        callLater = aloop.call_later
        handles = [callLater(d, print) for d in delays]
        for h in handles:
            h.cancel()
        aloop.call_soon(aloop.stop)
        aloop.run_forever()
        return time.perf_counter() - start

    try:
        return compare(
            f"callLater x {total:,}, cancel each, one loop pass",
            {OURS: oursSide, TWISTED: twistedSide, ASYNCIO: asyncioSide},
            ops=total,
            rounds=rounds,
            targets=[Target(TWISTED, 1.5), Target(ASYNCIO, 1.0)],
        )
    finally:
        ours.close()
        aloop.close()


def run(quick: bool) -> list[Comparison]:
    """Run the three loop benchmarks (smaller and fewer rounds with ``quick``)."""
    rounds = 3 if quick else 7
    n = 20_000 if quick else 100_000
    return [
        _benchCallFromThread(2 * n, rounds),
        _benchCallLaterFired(n, rounds),
        _benchCallLaterCancelled(n, rounds),
    ]
