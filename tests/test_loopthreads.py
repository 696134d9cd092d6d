"""Tests for the reactor's thread door: callFromThread, wakeUp, and wake-up coalescing."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import pytest

from reactor import Reactor
from tests.loopsupport import REACTOR_KINDS, makeReactor, recordThenStop, runBounded


@pytest.fixture(params=REACTOR_KINDS)
def reactor(request: pytest.FixtureRequest) -> Iterator[Reactor]:
    r = makeReactor(request.param)
    yield r
    r.close()


def test_callFromThreadBeforeRunRunsAtStart(reactor: Reactor) -> None:
    """Calls made before run(), from another thread too, run once the reactor runs."""
    out: list[str] = []
    t = threading.Thread(target=reactor.callFromThread, args=(out.append, "from thread"))
    t.start()
    t.join(5)
    reactor.callFromThread(out.append, "from main")
    reactor.callWhenRunning(reactor.stop)
    runBounded(reactor)
    assert out == ["from thread", "from main"]


def test_callFromThreadAfterStopRunsAtNextRun(reactor: Reactor) -> None:
    """A call made after the reactor stopped waits for the next run()."""
    out: list[str] = []
    reactor.callWhenRunning(reactor.stop)
    runBounded(reactor)
    reactor.callFromThread(out.append, "late")
    assert out == []
    reactor.callWhenRunning(reactor.callLater, 0.001, reactor.stop)
    runBounded(reactor)
    assert out == ["late"]


def test_callFromThreadPassesArguments(reactor: Reactor) -> None:
    """Positional and keyword arguments reach the call, including one named f."""
    seen: list[object] = []

    def target(*a: object, **kw: object) -> None:
        seen.append((a, kw))
        reactor.stop()

    reactor.callFromThread(target, 1, 2, f="kw", x=3)
    runBounded(reactor)
    assert seen == [((1, 2), {"f": "kw", "x": 3})]


def test_callFromThreadRejectsNonCallable(reactor: Reactor) -> None:
    """A non-callable raises TypeError at the call, not later in the reactor."""
    with pytest.raises(TypeError):
        reactor.callFromThread("nope")  # type: ignore[arg-type]


def test_callFromThreadIsFifoPerThread(reactor: Reactor) -> None:
    """Calls from several threads arrive complete and in each thread's order."""
    threads, perThread = 4, 5000
    got: list[tuple[int, int]] = []
    done = threading.Event()
    remaining = [threads * perThread]

    def record(who: int, i: int) -> None:
        got.append((who, i))
        remaining[0] -= 1
        if remaining[0] == 0:
            reactor.stop()

    def worker(who: int) -> None:
        done.wait(5)
        for i in range(perThread):
            reactor.callFromThread(record, who, i)

    workers = [threading.Thread(target=worker, args=(w,)) for w in range(threads)]
    for w in workers:
        w.start()
    reactor.callWhenRunning(done.set)
    try:
        runBounded(reactor)
    finally:
        done.set()
        for w in workers:
            w.join(5)
    assert len(got) == threads * perThread
    for who in range(threads):
        assert [i for (w, i) in got if w == who] == list(range(perThread))


def test_wakeUpsCoalesceBeforeRun(reactor: Reactor) -> None:
    """Many calls while the reactor is not sleeping write the waker once."""
    base = reactor._waker.writes
    for _ in range(1000):
        reactor.callFromThread(lambda: None)
    assert reactor._waker.writes - base == 1
    reactor.callWhenRunning(reactor.stop)
    runBounded(reactor)


def test_callsFromReactorThreadNeverWriteWaker(reactor: Reactor) -> None:
    """callFromThread in the reactor thread (the loop is awake) costs no pipe write."""
    counts: list[int] = []

    def inside() -> None:
        base = reactor._waker.writes
        for _ in range(1000):
            reactor.callFromThread(lambda: None)
        counts.append(reactor._waker.writes - base)
        reactor.stop()

    reactor.callWhenRunning(inside)
    runBounded(reactor)
    assert counts == [0]


def test_burstFromThreadWritesFarFewerThanCalls(reactor: Reactor) -> None:
    """A burst of calls from another thread costs at most one write per loop sleep, far below one per call."""
    calls = 20_000
    go = threading.Event()
    ran = [0]

    def count() -> None:
        ran[0] += 1

    def worker() -> None:
        go.wait(5)
        for _ in range(calls):
            reactor.callFromThread(count)
        reactor.callFromThread(reactor.stop)

    t = threading.Thread(target=worker)
    t.start()
    base = reactor._waker.writes
    reactor.callWhenRunning(go.set)
    try:
        runBounded(reactor)
    finally:
        go.set()
        t.join(5)
    assert ran[0] == calls
    assert reactor._waker.writes - base < calls // 20


def test_sleepingLoopWakesForThreadCall(reactor: Reactor) -> None:
    """A loop asleep with nothing to do wakes up promptly for a call from another thread."""
    asleep = threading.Event()
    ranAt: list[float] = []

    def worker() -> None:
        asleep.wait(5)
        reactor.callFromThread(recordThenStop, reactor, ranAt, time.monotonic)

    t = threading.Thread(target=worker)
    t.start()
    # The reactor thread goes to sleep right after this call; the worker may call in before or after.
    reactor.callWhenRunning(asleep.set)
    start = time.monotonic()
    try:
        runBounded(reactor, seconds=10)
    finally:
        asleep.set()
        t.join(5)
    assert ranAt and ranAt[0] - start < 5


def test_wakeUpInterruptsIterate(reactor: Reactor) -> None:
    """wakeUp() makes a waiting iterate(delay) return at once."""
    reactor.wakeUp()
    start = time.monotonic()
    reactor.iterate(5)
    assert time.monotonic() - start < 2.5


def test_threadCallExceptionIsLoggedAndLoopContinues(
    reactor: Reactor, caplog: pytest.LogCaptureFixture
) -> None:
    """An exception in a thread call is logged with its traceback; the next call still runs."""
    out: list[str] = []

    def boom() -> None:
        raise LookupError("thread boom")

    reactor.callFromThread(boom)
    reactor.callFromThread(out.append, "after")
    reactor.callFromThread(reactor.stop)
    with caplog.at_level(logging.ERROR, logger="reactor"):
        runBounded(reactor)
    assert out == ["after"]
    assert "thread boom" in caplog.text and "Traceback" in caplog.text


def test_threadCallsQueuedByThreadCallsWaitForNextIteration(reactor: Reactor) -> None:
    """A thread call that queues another does not starve timers: the batch is bounded."""
    out: list[str] = []
    count = [0]

    def again() -> None:
        count[0] += 1
        if out:
            reactor.stop()
        else:
            reactor.callFromThread(again)

    reactor.callLater(0, out.append, "timer ran")
    reactor.callFromThread(again)
    runBounded(reactor)
    assert out == ["timer ran"]
    assert count[0] <= 3
