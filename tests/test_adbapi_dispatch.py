"""Deterministic tests of adbapi's dispatcher: fake slots, a fake clock, one thread, no database.

The dispatcher decides when a call starts, waits, times out, is refused, is
cancelled and is retried; these tests drive it step by step the way the pool's
slots do (``start`` hands a call over, ``slotFreed`` reports the end).
"""

from __future__ import annotations

from typing import Any

import pytest

from adbapi._dispatch import TRANSITIONS, CallKind, CallState, Dispatcher, InvalidTransition, advance
from reactor.task import Clock


class FakeCall:
    """A call as the dispatcher sees it."""

    def __init__(self, name: str, kind: CallKind = CallKind.QUERY) -> None:
        self.name = name
        self.kind = kind
        self.state = CallState.QUEUED
        self.enqueuedAt = 0.0
        self.waited = 0.0
        self.waitTimer: Any = None
        self.retryTimer: Any = None

    def __repr__(self) -> str:
        return f"<FakeCall {self.name} {self.state.name}>"


class Slots:
    """Fake slots: record what the dispatcher started, expired and refused."""

    def __init__(self) -> None:
        self.started: list[FakeCall] = []
        self.expired: list[FakeCall] = []
        self.refused: list[FakeCall] = []

    def dispatcher(self, clock: Clock, maxSlots: int = 2, **kw: Any) -> Dispatcher:
        return Dispatcher(maxSlots, clock=clock, start=self.started.append, expired=self.expired.append,
                          refused=self.refused.append, **kw)


def test_callStartsAtOnceWhileASlotIsFree() -> None:
    """A call submitted with a free slot is ASSIGNED and handed to start() right away."""
    slots, clock = Slots(), Clock()
    d = slots.dispatcher(clock)
    a = FakeCall("a")
    assert d.submit(a)
    assert slots.started == [a] and a.state is CallState.ASSIGNED and d.busy == 1 and not d.queue


def test_callsBeyondTheSlotsWaitInOrder() -> None:
    """With every slot busy calls queue, and each freed slot starts the oldest waiting call."""
    slots, clock = Slots(), Clock()
    d = slots.dispatcher(clock, maxSlots=1)
    a, b, c = FakeCall("a"), FakeCall("b"), FakeCall("c")
    for call in (a, b, c):
        d.submit(call)
    assert slots.started == [a] and list(d.queue) == [b, c]
    clock.advance(2)
    d.slotFreed()
    assert slots.started == [a, b] and b.waited == 2 and b.state is CallState.ASSIGNED
    d.slotFreed()
    d.slotFreed()
    assert slots.started == [a, b, c] and d.busy == 0


def test_maxWaitingRefusesTheCallPastIt() -> None:
    """Past maxWaiting queued calls, submit() returns False and the call is CANCELLED."""
    slots, clock = Slots(), Clock()
    d = slots.dispatcher(clock, maxSlots=1, maxWaiting=1)
    a, b, c = FakeCall("a"), FakeCall("b"), FakeCall("c")
    assert d.submit(a) and d.submit(b)
    assert not d.submit(c)
    assert c.state is CallState.CANCELLED and list(d.queue) == [b]


def test_waitTimeoutExpiresAQueuedCall() -> None:
    """A call that waited waitTimeout seconds leaves the queue CANCELLED and goes to expired()."""
    slots, clock = Slots(), Clock()
    d = slots.dispatcher(clock, maxSlots=1, waitTimeout=5)
    a, b = FakeCall("a"), FakeCall("b")
    d.submit(a)
    d.submit(b)
    clock.advance(4.9)
    assert slots.expired == []
    clock.advance(0.1)
    assert slots.expired == [b] and b.state is CallState.CANCELLED and not d.queue


def test_waitTimerStopsWhenTheCallStarts() -> None:
    """A queued call that gets a slot in time is not expired later."""
    slots, clock = Slots(), Clock()
    d = slots.dispatcher(clock, maxSlots=1, waitTimeout=5)
    a, b = FakeCall("a"), FakeCall("b")
    d.submit(a)
    d.submit(b)
    clock.advance(1)
    d.slotFreed()
    clock.advance(10)
    assert slots.expired == [] and b.state is CallState.ASSIGNED and not clock.getDelayedCalls()


def test_cancelRemovesAQueuedCall() -> None:
    """cancel() of a QUEUED call removes it; it never starts."""
    slots, clock = Slots(), Clock()
    d = slots.dispatcher(clock, maxSlots=1, waitTimeout=5)
    a, b = FakeCall("a"), FakeCall("b")
    d.submit(a)
    d.submit(b)
    assert d.cancel(b) is CallState.QUEUED
    d.slotFreed()
    assert slots.started == [a] and b.state is CallState.CANCELLED and not clock.getDelayedCalls()


def test_cancelOfAnAssignedCallLeavesItToItsSlot() -> None:
    """cancel() of a call handed to a slot only reports the state: the slot stops it and frees itself."""
    slots, clock = Slots(), Clock()
    d = slots.dispatcher(clock)
    a = FakeCall("a")
    d.submit(a)
    assert d.cancel(a) is CallState.ASSIGNED and a.state is CallState.ASSIGNED and d.busy == 1


def test_retryWaitsItsBackoffThenQueues() -> None:
    """retryLater() puts a failed call in BACKOFF; on its timer it is submitted again."""
    slots, clock = Slots(), Clock()
    d = slots.dispatcher(clock, maxSlots=1)
    a = FakeCall("a")
    d.submit(a)
    advance(a, CallState.RUNNING)
    advance(a, CallState.DONE)
    d.slotFreed()
    d.retryLater(a, 0.5)
    assert a.state is CallState.BACKOFF and a in d.backingOff
    clock.advance(0.5)
    assert slots.started == [a, a] and a.state is CallState.ASSIGNED and not d.backingOff


def test_cancelDuringBackoffStopsTheRetry() -> None:
    """A call cancelled while it backs off is CANCELLED and its retry timer stopped."""
    slots, clock = Slots(), Clock()
    d = slots.dispatcher(clock)
    a = FakeCall("a")
    d.submit(a)
    advance(a, CallState.RUNNING)
    advance(a, CallState.DONE)
    d.slotFreed()
    d.retryLater(a, 1)
    assert d.cancel(a) is CallState.BACKOFF
    clock.advance(2)
    assert a.state is CallState.CANCELLED and slots.started == [a]


def test_retryRefusedByAFullQueueGoesToRefused() -> None:
    """A retry that finds the waiting queue full is handed to refused()."""
    slots, clock = Slots(), Clock()
    d = slots.dispatcher(clock, maxSlots=1, maxWaiting=1)
    a, b, c = FakeCall("a"), FakeCall("b"), FakeCall("c")
    d.submit(a)
    advance(a, CallState.RUNNING)
    advance(a, CallState.DONE)
    d.retryLater(a, 1)
    d.submit(b)  # a still holds its slot: b waits, filling the queue
    d.submit(c)
    clock.advance(1)
    assert slots.refused == [a] and a.state is CallState.CANCELLED


def test_setMaxStartsWaitingCallsWhenItGrows() -> None:
    """Raising the slot count starts waiting calls; lowering it starts none until calls finish."""
    slots, clock = Slots(), Clock()
    d = slots.dispatcher(clock, maxSlots=1)
    calls = [FakeCall(str(i)) for i in range(4)]
    for call in calls:
        d.submit(call)
    d.setMax(3)
    assert slots.started == calls[:3]
    d.setMax(1)
    d.slotFreed()
    assert slots.started == calls[:3] and d.busy == 2


def test_pausedDispatcherStartsNothing() -> None:
    """While paused, calls wait even with free slots; pump() after unpausing starts them."""
    slots, clock = Slots(), Clock()
    d = slots.dispatcher(clock)
    d.paused = True
    a = FakeCall("a")
    d.submit(a)
    assert slots.started == [] and list(d.queue) == [a]
    d.paused = False
    d.pump()
    assert slots.started == [a]


def test_takeWaitingAndBackingOffEmptyTheDispatcher() -> None:
    """At close, takeWaiting()/takeBackingOff() hand back every call not in a slot, CANCELLED."""
    slots, clock = Slots(), Clock()
    d = slots.dispatcher(clock, maxSlots=1, waitTimeout=9)
    a, b, c = FakeCall("a"), FakeCall("b"), FakeCall("c")
    d.submit(a)
    d.submit(b)
    d.submit(c)
    advance(a, CallState.RUNNING)
    advance(a, CallState.DONE)
    d.retryLater(a, 1)
    assert d.takeWaiting() == [b, c] and d.takeBackingOff() == [a]
    assert all(x.state is CallState.CANCELLED for x in (a, b, c)) and not clock.getDelayedCalls()


def test_transitionTableForbidsLeavingCancelled() -> None:
    """advance() enforces TRANSITIONS: a CANCELLED call never runs, a QUEUED one never jumps to RUNNING."""
    a = FakeCall("a")
    with pytest.raises(InvalidTransition):
        advance(a, CallState.RUNNING)
    advance(a, CallState.CANCELLED)
    for state in CallState:
        with pytest.raises(InvalidTransition):
            advance(a, state)
    assert TRANSITIONS[CallState.CANCELLED] == frozenset()


def test_onlyQueriesAndOperationsCanRunOnALane() -> None:
    """CallKind.laneable is true for the single-statement kinds only."""
    assert [k for k in CallKind if k.laneable] == [CallKind.QUERY, CallKind.OPERATION]
