"""DeferredList/gatherResults, locks, queues, Clock and LoopingCall against Twisted 26.10.

Each side does the same work with its own classes, in the same process:

1. ``gatherResults`` over 10 unfired Deferreds, then fire them all;
2. ``DeferredLock.run`` of a plain function, 10 calls queued behind a held lock, then release;
3. ``DeferredQueue``: 10 gets waiting, 10 puts, then 10 puts and 10 gets;
4. ``Clock``: 2,000 ``callLater`` with spread-out delays, then one ``advance`` that runs them;
5. ``LoopingCall`` on a ``Clock``: 1,000 ticks, one ``advance`` per tick.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from benchmarks._harness import Comparison, compare
from reactor import Deferred, DeferredLock, DeferredQueue, gatherResults
from reactor.task import Clock, LoopingCall

tdefer: Any
ttask: Any
try:
    from twisted.internet import defer as tdefer
    from twisted.internet import task as ttask
except ImportError:  # pragma: no cover - the bench extra installs it
    tdefer = ttask = None


def _noop(*_: object) -> None:
    pass


def _gather(deferredCls: Any, gather: Any, ops: int) -> Callable[[], float]:
    def side() -> float:
        start = time.perf_counter()
        for _ in range(ops):
            ds = [deferredCls() for _ in range(10)]
            g = gather(ds)
            for i, d in enumerate(ds):
                d.callback(i)
            g.addCallback(_noop)
        return time.perf_counter() - start

    return side


def _lockRun(lockCls: Any, ops: int) -> Callable[[], float]:
    def side() -> float:
        start = time.perf_counter()
        for _ in range(ops):
            lock = lockCls()
            lock.acquire()
            for _ in range(10):
                lock.run(_noop, 1)
            lock.release()
        return time.perf_counter() - start

    return side


def _queue(queueCls: Any, ops: int) -> Callable[[], float]:
    def side() -> float:
        start = time.perf_counter()
        for _ in range(ops):
            q = queueCls()
            gets = [q.get() for _ in range(10)]
            for i in range(10):
                q.put(i)
            for i in range(10):
                q.put(i)
            for _ in range(10):
                q.get()
            del gets
        return time.perf_counter() - start

    return side


def _clock(clockCls: Any, ops: int) -> Callable[[], float]:
    def side() -> float:
        clock = clockCls()
        start = time.perf_counter()
        for i in range(ops):
            clock.callLater((i * 7919) % 1000 / 10, _noop)
        clock.advance(1000)
        return time.perf_counter() - start

    return side


def _looping(loopCls: Any, clockCls: Any, ops: int) -> Callable[[], float]:
    def side() -> float:
        clock = clockCls()
        lc = loopCls(_noop)
        lc.clock = clock
        start = time.perf_counter()
        lc.start(1)
        for _ in range(ops):
            clock.advance(1)
        lc.stop()
        return time.perf_counter() - start

    return side


def run(quick: bool) -> list[Comparison]:
    if tdefer is None or ttask is None:
        print("twisted is not installed; skipping (pip install -e .[bench])")
        return []
    rounds = 3 if quick else 7
    n = 2_000 if quick else 20_000
    ticks = 1_000 if quick else 10_000
    # Twisted's Clock re-sorts its whole list on every callLater (quadratic), so keep N modest.
    calls = 500 if quick else 2_000
    return [
        compare(
            "gatherResults of 10 Deferreds, fired after",
            {
                "deferthreads": _gather(Deferred, gatherResults, n),
                "twisted": _gather(tdefer.Deferred, tdefer.gatherResults, n),
            },
            ops=n,
            rounds=rounds,
        ),
        compare(
            "DeferredLock: 10 run() queued behind a held lock",
            {"deferthreads": _lockRun(DeferredLock, n), "twisted": _lockRun(tdefer.DeferredLock, n)},
            ops=n,
            rounds=rounds,
        ),
        compare(
            "DeferredQueue: 10 waiting gets + 10 puts, 10 puts + 10 gets",
            {"deferthreads": _queue(DeferredQueue, n), "twisted": _queue(tdefer.DeferredQueue, n)},
            ops=n,
            rounds=rounds,
        ),
        compare(
            "Clock: callLater x N, then one advance",
            {"deferthreads": _clock(Clock, calls), "twisted": _clock(ttask.Clock, calls)},
            ops=calls,
            rounds=rounds,
        ),
        compare(
            "LoopingCall on a Clock: one tick per advance",
            {
                "deferthreads": _looping(LoopingCall, Clock, ticks),
                "twisted": _looping(ttask.LoopingCall, ttask.Clock, ticks),
            },
            ops=ticks,
            rounds=rounds,
        ),
    ]
