"""Tests for reactor._delayed: DelayedCall and the TimerQueue heap (no real time involved)."""

from __future__ import annotations

import tracemalloc
from typing import Any

import pytest
from zope.interface.verify import verifyObject

from reactor import AlreadyCalled, AlreadyCancelled, DelayedCall
from reactor._delayed import TimerQueue
from reactor.interfaces import IDelayedCall


class FakeTime:
    """A settable clock for the queue."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def makeQueue() -> tuple[TimerQueue, FakeTime]:
    t = FakeTime()
    return TimerQueue(t), t


def test_delayedCallProvidesIDelayedCall() -> None:
    """A scheduled call provides IDelayedCall."""
    q, _ = makeQueue()
    call = q.schedule(1.0, print, (), {})
    assert isinstance(call, DelayedCall)
    assert verifyObject(IDelayedCall, call)


def test_runDueRunsInTimeOrderThenFifo() -> None:
    """Due calls run earliest first; equal times run in scheduling order."""
    q, _ = makeQueue()
    out: list[str] = []
    q.schedule(2.0, out.append, ("c",), {})
    q.schedule(1.0, out.append, ("a",), {})
    q.schedule(1.0, out.append, ("b",), {})
    q.schedule(5.0, out.append, ("late",), {})
    assert q.runDue(2.0) == 3
    assert out == ["a", "b", "c"]
    assert len(q) == 1
    assert q.nextTime() == 5.0


def test_runDuePassesArgsAndKwargs() -> None:
    """The call receives its positional and keyword arguments."""
    q, _ = makeQueue()
    seen: list[Any] = []
    q.schedule(0.0, lambda *a, **kw: seen.append((a, kw)), (1, 2), {"x": 3})
    q.runDue(0.0)
    assert seen == [((1, 2), {"x": 3})]


def test_callStateAfterRun() -> None:
    """After running, a call is inactive and cancel/reset/delay raise AlreadyCalled."""
    q, _ = makeQueue()
    call = q.schedule(0.0, lambda: None, (), {})
    assert call.active()
    q.runDue(0.0)
    assert call.called and not call.active()
    for op in (call.cancel, lambda: call.reset(1), lambda: call.delay(1)):
        with pytest.raises(AlreadyCalled):
            op()


def test_cancelPreventsRunAndSecondCancelRaises() -> None:
    """A cancelled call never runs; cancel/reset/delay then raise AlreadyCancelled."""
    q, _ = makeQueue()
    out: list[int] = []
    call = q.schedule(1.0, out.append, (1,), {})
    call.cancel()
    assert call.cancelled and not call.active()
    assert q.runDue(10.0) == 0
    assert out == []
    assert q.nextTime() is None
    assert len(q) == 0
    for op in (call.cancel, lambda: call.reset(1), lambda: call.delay(1)):
        with pytest.raises(AlreadyCancelled):
            op()


def test_resetIsRelativeToNow() -> None:
    """reset(s) moves the call to now + s, earlier or later."""
    q, t = makeQueue()
    out: list[str] = []
    call = q.schedule(10.0, out.append, ("x",), {})
    t.now = 3.0
    call.reset(1.0)
    assert call.getTime() == 4.0
    assert q.nextTime() == 4.0
    assert q.runDue(3.9) == 0
    assert q.runDue(4.0) == 1
    assert out == ["x"]


def test_resetLaterDefersTheRun() -> None:
    """A call reset to a later time does not run at its old time."""
    q, _ = makeQueue()
    out: list[str] = []
    call = q.schedule(1.0, out.append, ("x",), {})
    other = q.schedule(2.0, out.append, ("y",), {})
    call.reset(5.0)
    assert q.nextTime() == 2.0
    assert q.runDue(2.0) == 1
    assert out == ["y"]
    assert q.runDue(4.9) == 0
    assert q.runDue(5.0) == 1
    assert out == ["y", "x"]
    assert not other.active()


def test_delayMovesRelativeToScheduledTime() -> None:
    """delay(s) adds s to the call's time (negative moves it earlier)."""
    q, _ = makeQueue()
    call = q.schedule(2.0, lambda: None, (), {})
    call.delay(3.0)
    assert call.getTime() == 5.0
    call.delay(-4.0)
    assert call.getTime() == 1.0
    assert q.nextTime() == 1.0
    assert q.runDue(1.0) == 1


def test_resetNegativeMakesTheCallDueNow() -> None:
    """reset with a negative delay (Twisted allows it) makes the call due at once."""
    q, _ = makeQueue()
    call = q.schedule(2.0, lambda: None, (), {})
    call.reset(-1)
    assert call.active() and call.getTime() <= q.seconds()


def test_resetAndDelayToAnInfiniteTimeRaise() -> None:
    """reset(inf), reset(nan) and delay(+-inf) raise ValueError naming the argument; the call stays put."""
    q, _ = makeQueue()
    call = q.schedule(2.0, lambda: None, (), {})
    for bad in (float("inf"), float("nan")):
        with pytest.raises(ValueError, match="secondsFromNow must be a finite"):
            call.reset(bad)
    for bad in (float("inf"), float("-inf"), float("nan")):
        with pytest.raises(ValueError, match="secondsLater must be a finite"):
            call.delay(bad)
    assert call.getTime() == 2.0 and call.active()


def test_repeatedResetLaterKeepsHeapSmall() -> None:
    """Pushing a timeout back many times adds no heap entries."""
    q, t = makeQueue()
    call = q.schedule(1.0, lambda: None, (), {})
    for i in range(10_000):
        t.now = i * 0.001
        call.reset(1.0)
    assert q.heapSize() == 1


def test_callsScheduledWhileRunningWaitUnlessIncludeNew() -> None:
    """A call scheduled by a running call runs next time, or now with includeNew."""
    q, _ = makeQueue()
    out: list[str] = []

    def first() -> None:
        out.append("first")
        q.schedule(0.0, out.append, ("second",), {})

    q.schedule(0.0, first, (), {})
    assert q.runDue(0.0) == 1
    assert out == ["first"]
    assert q.runDue(0.0) == 1
    assert out == ["first", "second"]

    out.clear()
    q.schedule(0.0, first, (), {})
    assert q.runDue(0.0, includeNew=True) == 2
    assert out == ["first", "second"]


def test_exceptionPropagatesWithoutOnError() -> None:
    """Without onError an exception propagates and later calls stay queued."""
    q, _ = makeQueue()
    out: list[str] = []

    def boom() -> None:
        raise RuntimeError("boom")

    q.schedule(0.0, boom, (), {})
    q.schedule(0.0, out.append, ("after",), {})
    with pytest.raises(RuntimeError):
        q.runDue(0.0)
    assert out == []
    assert q.runDue(0.0) == 1
    assert out == ["after"]


def test_onErrorReceivesExceptionAndRunContinues() -> None:
    """With onError the failing call is reported and the others still run."""
    q, _ = makeQueue()
    out: list[str] = []
    errors: list[tuple[DelayedCall, Exception]] = []

    def boom() -> None:
        raise RuntimeError("boom")

    bad = q.schedule(0.0, boom, (), {})
    q.schedule(0.0, out.append, ("after",), {})
    assert q.runDue(0.0, onError=lambda c, e: errors.append((c, e))) == 2
    assert out == ["after"]
    assert errors[0][0] is bad and isinstance(errors[0][1], RuntimeError)


def test_cancelInsideRunningCallStopsLaterCall() -> None:
    """A running call can cancel another due call, even when that triggers compaction."""
    q, _ = makeQueue()
    out: list[int] = []
    victims = [q.schedule(1.0, out.append, (i,), {}) for i in range(500)]

    def killer() -> None:
        for v in victims:
            v.cancel()

    q.schedule(0.5, killer, (), {})
    assert q.runDue(2.0) == 1
    assert out == []
    assert q.heapSize() == 0


def test_getDelayedCallsListsPendingEarliestFirst() -> None:
    """getDelayedCalls returns only active calls, sorted by time."""
    q, _ = makeQueue()
    a = q.schedule(3.0, print, (), {})
    b = q.schedule(1.0, print, (), {})
    c = q.schedule(2.0, print, (), {})
    c.cancel()
    a.reset(0.5)
    assert q.getDelayedCalls() == [a, b]


def test_millionCancelledCallsKeepHeapBounded() -> None:
    """Scheduling and cancelling 1,000,000 calls, oldest first (no cheap leaf pops), keeps the heap small."""
    q, _ = makeQueue()
    keep = [q.schedule(1e9, print, (), {}) for _ in range(10)]
    maxHeap = 0
    window: list[DelayedCall] = []
    for i in range(1_000_000):
        window.append(q.schedule(float(i), print, (), {}))
        if len(window) == 100:
            for call in window:
                call.cancel()
            window.clear()
        if q.heapSize() > maxHeap:
            maxHeap = q.heapSize()
    assert len(q) == 10
    assert maxHeap <= 4 * (10 + 100) + 65 + 100
    assert all(k.active() for k in keep)


def test_cancelNewestLeafPopsAtOnce() -> None:
    """Cancelling the most recently scheduled call removes its heap entry immediately."""
    q, _ = makeQueue()
    q.schedule(1.0, print, (), {})
    for _ in range(1000):
        q.schedule(5.0, print, (), {}).cancel()
    assert q.heapSize() == 1


def test_cancelledCallsKeepMemoryFlat() -> None:
    """Memory after 200,000 schedule+cancel cycles is what it was after 20,000."""
    q, _ = makeQueue()

    def cycle(n: int) -> None:
        for i in range(0, n, 50):
            batch = [q.schedule(float(i + j), print, (j,), {}) for j in range(50)]
            for call in batch:
                call.cancel()

    cycle(1000)
    tracemalloc.start()
    try:
        cycle(20_000)
        small = tracemalloc.get_traced_memory()[0]
        cycle(200_000)
        large = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert large - small < 64 * 1024


def test_reprSaysState() -> None:
    """The repr names the function and the state."""
    q, _ = makeQueue()
    call = q.schedule(1.0, print, (), {})
    assert "print" in repr(call) and "pending" in repr(call)
    call.cancel()
    assert "cancelled" in repr(call)
    assert "pending=0" in repr(q)


def test_twistedAttributesOfADelayedCall() -> None:
    """seconds() is the clock's time; resetter files a directly assigned time; canceller unschedules."""
    from reactor.task import Clock

    clock = Clock()
    ran: list[str] = []
    moved = clock.callLater(5, ran.append, "moved")
    clock.callLater(5, ran.append, "stays")
    dropped = clock.callLater(2, ran.append, "dropped")
    assert (moved.debug, moved.creator, moved.delayed_time) == (False, None, 0.0)
    moved.time = 1.0
    moved.resetter(moved)
    dropped.canceller(dropped)
    dropped.canceller(dropped)  # a second time: nothing left to do
    clock.advance(1)
    assert ran == ["moved"] and moved.seconds() == 1.0
    clock.advance(4)
    assert ran == ["moved", "stays"] and dropped.cancelled
