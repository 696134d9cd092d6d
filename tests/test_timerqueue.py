"""Tests for the TimerQueue's float heap and time buckets: equal times, moves and cancels inside buckets."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reactor._delayed import DelayedCall, TimerQueue


class FakeTime:
    """A settable clock for the queue."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_equalTimesShareOneHeapKey() -> None:
    """Calls due at the same time take one heap slot and run first-in first-out."""
    q = TimerQueue(FakeTime())
    out: list[int] = []
    for i in range(5):
        q.schedule(1.0, out.append, (i,), {})
    assert q.heapSize() == 1 and len(q) == 5
    assert q.runDue(1.0) == 5
    assert out == [0, 1, 2, 3, 4]
    assert q.heapSize() == 0 and len(q) == 0


def test_cancelInsideBucketSkipsOnlyThatCall() -> None:
    """Cancelling one of several equal-time calls leaves the others, in order."""
    q = TimerQueue(FakeTime())
    out: list[int] = []
    calls = [q.schedule(1.0, out.append, (i,), {}) for i in range(4)]
    calls[1].cancel()
    calls[3].cancel()
    assert len(q) == 2
    assert q.getDelayedCalls() == [calls[0], calls[2]]
    q.runDue(2.0)
    assert out == [0, 2]


def test_cancellingAWholeBucketDropsItsKey() -> None:
    """Once every call of a bucket is cancelled the heap forgets its time."""
    q = TimerQueue(FakeTime())
    q.schedule(0.5, print, (), {})
    calls = [q.schedule(1.0, print, (), {}) for _ in range(3)]
    for c in calls:
        c.cancel()
    assert q.heapSize() == 1 and q.nextTime() == 0.5


def test_moveOutOfBucketEarlierAndLater() -> None:
    """A call moved out of its bucket runs at its new time; the rest keep their order."""
    t = FakeTime()
    q = TimerQueue(t)
    out: list[str] = []
    a = q.schedule(1.0, out.append, ("a",), {})
    q.schedule(1.0, out.append, ("b",), {})
    c = q.schedule(1.0, out.append, ("c",), {})
    a.reset(2.0)  # later (lazy: stays filed until its old time surfaces)
    c.reset(0.5)  # earlier (filed again at once)
    assert q.nextTime() == 0.5
    q.runDue(1.0)
    assert out == ["c", "b"]
    assert q.nextTime() == 2.0
    q.runDue(2.0)
    assert out == ["c", "b", "a"]
    assert len(q) == 0


def test_callJoiningRunningBucketWaitsUnlessIncludeNew() -> None:
    """A call scheduled for the time being run joins its bucket: next runDue, or now with includeNew."""
    q = TimerQueue(FakeTime())
    out: list[str] = []

    def first() -> None:
        out.append("first")
        q.schedule(1.0, out.append, ("joined",), {})

    q.schedule(1.0, first, (), {})
    q.schedule(1.0, out.append, ("second",), {})
    assert q.runDue(1.0) == 2
    assert out == ["first", "second"]
    assert q.runDue(1.0) == 1
    assert out == ["first", "second", "joined"]

    out.clear()
    q.schedule(1.0, first, (), {})
    q.schedule(1.0, out.append, ("second",), {})
    assert q.runDue(1.0, includeNew=True) == 3
    assert out == ["first", "second", "joined"]


def test_exceptionInBucketKeepsTheRest() -> None:
    """Without onError a failing call in a bucket propagates and the calls after it stay queued."""
    q = TimerQueue(FakeTime())
    out: list[int] = []

    def boom() -> None:
        raise RuntimeError("boom")

    q.schedule(1.0, out.append, (0,), {})
    q.schedule(1.0, boom, (), {})
    q.schedule(1.0, out.append, (2,), {})
    with pytest.raises(RuntimeError):
        q.runDue(1.0)
    assert out == [0] and len(q) == 1
    assert q.runDue(1.0) == 1
    assert out == [0, 2] and q.heapSize() == 0


def test_runningCallCancelsLaterBucketMember() -> None:
    """A call can cancel a later call of its own bucket while the bucket runs."""
    q = TimerQueue(FakeTime())
    out: list[str] = []
    victim: list[DelayedCall] = []

    def killer() -> None:
        out.append("killer")
        victim[0].cancel()

    q.schedule(1.0, killer, (), {})
    victim.append(q.schedule(1.0, out.append, ("victim",), {}))
    q.schedule(1.0, out.append, ("last",), {})
    assert q.runDue(1.0) == 2
    assert out == ["killer", "last"]
    assert q.heapSize() == 0 and len(q) == 0


_ops = st.lists(
    st.one_of(
        st.tuples(st.just("schedule"), st.integers(0, 6)),
        st.tuples(st.just("cancel"), st.integers(0, 50)),
        st.tuples(st.just("reset"), st.integers(0, 50), st.integers(0, 6)),
        st.tuples(st.just("delay"), st.integers(0, 50), st.integers(-3, 3)),
        st.tuples(st.just("run"), st.integers(0, 3)),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(_ops)
def test_queueMatchesASortedListModel(ops: list[tuple[Any, ...]]) -> None:
    """Random schedules, cancels and moves run exactly the due calls, in time order, FIFO when never moved."""
    t = FakeTime()
    q = TimerQueue(t)
    calls: list[DelayedCall] = []
    moved: set[int] = set()
    ran: list[int] = []
    for op in ops:
        kind = op[0]
        if kind == "schedule":
            calls.append(q.schedule(t.now + op[1], ran.append, (len(calls),), {}))
        elif kind in ("cancel", "reset", "delay") and calls:
            i = op[1] % len(calls)
            call = calls[i]
            if not call.active():
                continue
            if kind == "cancel":
                call.cancel()
            elif kind == "reset":
                call.reset(op[2])
                moved.add(i)
            elif call.time + op[2] >= t.now:
                call.delay(op[2])
                moved.add(i)
        elif kind == "run":
            t.now += op[1]
            due = {i for i, c in enumerate(calls) if c.active() and c.time <= t.now}
            before = len(ran)
            q.runDue(t.now)
            batch = ran[before:]
            assert sorted(batch) == sorted(due)
            times = [calls[i].time for i in batch]
            assert times == sorted(times)
            for a, b in pairwise(batch):
                if calls[a].time == calls[b].time and a not in moved and b not in moved:
                    assert a < b
        pending = [c for c in calls if c.active()]
        assert len(q) == len(pending)
        assert q.getDelayedCalls() == sorted(pending, key=lambda c: (c.time, c._seq))
        assert q.nextTime() == (min(c.time for c in pending) if pending else None)
