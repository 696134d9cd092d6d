"""The result sink's held hand-back under a backlog (deferthreads._bridge.ResultSink), from one thread."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from deferthreads._bridge import HOLD_FLUSH, ResultSink
from reactor import Deferred
from reactor.task import Clock


class FakeReactor(Clock):
    """A Clock that records callFromThread calls instead of running them."""

    def __init__(self) -> None:
        super().__init__()
        self.fromThread: list[Callable[[], object]] = []

    def callFromThread(self, f: Callable[..., object], *args: Any, **kwargs: Any) -> None:
        self.fromThread.append(lambda: f(*args, **kwargs))


def test_aHeldOutcomeWakesNobodyAndIsDeliveredByTheFlushTimer() -> None:
    reactor = FakeReactor()
    sink = ResultSink(reactor)
    d: Deferred[int] = Deferred()
    sink.hold()
    sink.putHeld(d, True, 7)
    assert reactor.fromThread == [] and not d.called
    reactor.advance(HOLD_FLUSH)
    assert d.result == 7


def test_aHeldOutcomeWithNoTimerArmedWakesTheReactor() -> None:
    reactor = FakeReactor()
    sink = ResultSink(reactor)
    d: Deferred[int] = Deferred()
    sink.putHeld(d, True, 7)
    assert len(reactor.fromThread) == 1
    reactor.fromThread.pop()()
    assert d.result == 7


def test_aDrainDisarmsTheFlushTimer() -> None:
    reactor = FakeReactor()
    sink = ResultSink(reactor)
    sink.hold()
    d: Deferred[int] = Deferred()
    sink.put(d, True, 1)  # an outcome that wakes the reactor as usual
    reactor.fromThread.pop()()
    assert d.result == 1
    assert reactor.getDelayedCalls() == []  # no timer left behind
    late: Deferred[int] = Deferred()
    sink.putHeld(late, True, 2)  # after the drain nothing is armed: this one wakes the reactor
    assert len(reactor.fromThread) == 1


def test_holdArmsOneTimerAtATime() -> None:
    reactor = FakeReactor()
    sink = ResultSink(reactor)
    sink.hold()
    sink.hold()
    assert len(reactor.getDelayedCalls()) == 1
