"""The dispatcher: which call runs when, in how many slots. Pure: no thread, no reactor, no database.

A *slot* is a place a call runs: a worker thread of the pool's
:class:`~deferthreads.ResourcePool` with its connection (a thread slot) or a
nonblocking connection the reactor drives (a lane slot, psycopg2). The
dispatcher does not know which: it counts the busy slots against ``cp_max``,
keeps the calls that found every slot busy in a FIFO waiting queue (bounded by
``cp_max_waiting``, each timed by ``cp_wait_timeout``), and hands a call to the
injected ``start(call)`` the moment it counted a free slot for it. So the
thread pool underneath never queues (its last-in first-out idle stack gives
the warmest connection) and the order of the calls is decided here only.

A call's life is :class:`CallState`, and every change goes through
:func:`advance`, which checks it against :data:`TRANSITIONS` (one table says
what may follow what). Retries wait in ``BACKOFF`` on a timer of the injected
clock, then queue again like a new call.

Thread: everything here runs in the reactor thread (or the test's thread);
``clock`` is a :class:`~reactor.interfaces.IReactorTime` (a
:class:`reactor.task.Clock` in the tests).

Status: :class:`CallKind`, :class:`CallState` and :data:`TRANSITIONS` are what
the pool's calls use; the :class:`Dispatcher` is a model, not wired in: the
pool's thread calls wait in its :class:`~deferthreads.ResourcePool`'s queue, so
that a worker that finishes a call takes the next without the reactor
(``docs/adbapi.md``, "Worker threads on deferthreads.ResourcePool").
"""

from __future__ import annotations

import collections
import enum
from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["TRANSITIONS", "CallKind", "CallState", "Dispatched", "Dispatcher", "InvalidTransition", "advance"]


class CallKind(enum.IntEnum):
    """What a call runs; the first two can run on a lane (one statement, no Python code in between)."""

    QUERY = 1  # runQuery on the fast path: the adapter runs one statement and fetches its rows
    OPERATION = 2  # runOperation on the fast path
    INTERACTION = 3  # pool._runInteraction(func, ...)
    WITH_CONNECTION = 4  # pool._runWithConnection(func, ...)
    RESERVED = 5  # func(holder) holds a worker for an async transaction

    @property
    def laneable(self) -> bool:
        """True when a lane (a reactor-driven connection) can run it."""
        return self <= CallKind.OPERATION


class CallState(enum.Enum):
    """Where a call is in its life (see :data:`TRANSITIONS`)."""

    QUEUED = "queued"  # waiting for a free slot
    ASSIGNED = "assigned"  # a slot was counted for it and it was handed over; it has not started
    RUNNING = "running"  # a slot runs it
    BACKOFF = "backoff"  # failed, waiting for its retry timer
    DONE = "done"  # its slot finished it (its Deferred fired, or its retry was scheduled)
    CANCELLED = "cancelled"  # dropped before it ran: cancelled, timed out waiting, refused, pool closed


#: The allowed changes of state. A call starts QUEUED (or straight to ASSIGNED when a slot is free).
TRANSITIONS: dict[CallState, frozenset[CallState]] = {
    CallState.QUEUED: frozenset({CallState.ASSIGNED, CallState.CANCELLED}),
    CallState.ASSIGNED: frozenset({CallState.RUNNING, CallState.CANCELLED, CallState.DONE}),
    CallState.RUNNING: frozenset({CallState.DONE, CallState.BACKOFF}),
    CallState.DONE: frozenset({CallState.BACKOFF}),
    CallState.BACKOFF: frozenset({CallState.QUEUED, CallState.CANCELLED}),
    CallState.CANCELLED: frozenset(),
}


class InvalidTransition(RuntimeError):
    """A call was moved to a state :data:`TRANSITIONS` does not allow (a bug in the pool)."""


class Dispatched(Protocol):
    """What the dispatcher needs of a call: its state and its timers."""

    state: CallState
    kind: CallKind
    enqueuedAt: float
    waited: float
    waitTimer: Any
    retryTimer: Any


def advance(call: Dispatched, new: CallState) -> None:
    """Move ``call`` to ``new``; raises :class:`InvalidTransition` if the table forbids it."""
    if new not in TRANSITIONS[call.state]:
        raise InvalidTransition(f"a call cannot go from {call.state.name} to {new.name}")
    call.state = new


class _Clock(Protocol):
    def seconds(self) -> float: ...

    def callLater(self, delay: float, f: Callable[..., object], /, *args: Any, **kwargs: Any) -> Any: ...


class Dispatcher:
    """Counts busy slots against ``maxSlots``; starts, queues, refuses, times out and retries calls.

    ``start(call)`` is called (the call ASSIGNED) whenever a slot was counted
    for it; the slot reports the end with :meth:`slotFreed` once, whatever
    the outcome. ``expired(call)`` is called when a queued call waited
    ``waitTimeout`` seconds (the call is CANCELLED and out of the queue; the
    pool errbacks it). ``maxWaiting`` bounds the queue: :meth:`submit`
    returns False for a call it refuses, and a retry refused when its timer
    fires goes to ``refused(call)``.
    """

    def __init__(
        self,
        maxSlots: int,
        *,
        clock: _Clock,
        start: Callable[[Any], object],
        expired: Callable[[Any], object],
        refused: Callable[[Any], object],
        maxWaiting: int | None = None,
        waitTimeout: float | None = None,
    ) -> None:
        self.maxSlots = maxSlots
        self.maxWaiting = maxWaiting
        self.waitTimeout = waitTimeout
        self._clock = clock
        self._start = start
        self._expired = expired
        self._refused = refused
        # Reactor thread only:
        self.busy = 0  # slots counted for ASSIGNED and RUNNING calls
        self.queue: collections.deque[Any] = collections.deque()
        self.backingOff: set[Any] = set()
        self.paused = False  # while True (the pool is closing down to nothing) no queued call starts

    def __repr__(self) -> str:
        return (f"<Dispatcher busy={self.busy}/{self.maxSlots} waiting={len(self.queue)} "
                f"backoff={len(self.backingOff)}>")

    @property
    def free(self) -> int:
        """Slots not counted for a call."""
        return self.maxSlots - self.busy

    def submit(self, call: Dispatched) -> bool:
        """Start ``call`` in a free slot, or queue it; False (and CANCELLED) if the queue is full."""
        if call.state is CallState.BACKOFF:
            advance(call, CallState.QUEUED)  # a retry comes back as a new call would
        if self.busy < self.maxSlots and not self.queue and not self.paused:
            self.busy += 1
            call.waited = 0.0
            advance(call, CallState.ASSIGNED)
            self._start(call)
            return True
        if self.maxWaiting is not None and len(self.queue) >= self.maxWaiting:
            advance(call, CallState.CANCELLED)
            return False
        call.enqueuedAt = self._clock.seconds()
        self.queue.append(call)
        if self.waitTimeout is not None:
            call.waitTimer = self._clock.callLater(self.waitTimeout, self._waitExpired, call)
        return True

    def slotFreed(self) -> None:
        """A slot finished its call (or gave up the one it was handed): start the next waiting call."""
        self.busy -= 1
        assert self.busy >= 0, "slotFreed() called more often than a slot was counted"
        self.pump()

    def pump(self) -> None:
        """Start waiting calls while slots are free (after :meth:`setMax` grew, or ``paused`` ended)."""
        queue = self.queue
        while queue and self.busy < self.maxSlots and not self.paused:
            call = queue.popleft()
            self._stopWaitTimer(call)
            call.waited = self._clock.seconds() - call.enqueuedAt
            self.busy += 1
            advance(call, CallState.ASSIGNED)
            self._start(call)

    def setMax(self, maxSlots: int) -> None:
        """Change the number of slots (calls running over a lower bound finish; none start meanwhile)."""
        self.maxSlots = maxSlots
        self.pump()

    def cancel(self, call: Dispatched) -> CallState:
        """Drop ``call`` if it has not been handed to a slot; returns the state it was in.

        QUEUED and BACKOFF calls become CANCELLED here. For ASSIGNED and
        RUNNING calls the caller asks the slot to stop it; the slot still
        reports :meth:`slotFreed`.
        """
        state = call.state
        if state is CallState.QUEUED:
            self.queue.remove(call)
            self._stopWaitTimer(call)
            advance(call, CallState.CANCELLED)
        elif state is CallState.BACKOFF:
            self.backingOff.discard(call)
            timer, call.retryTimer = call.retryTimer, None
            if timer is not None and timer.active():
                timer.cancel()
            advance(call, CallState.CANCELLED)
        return state

    def retryLater(self, call: Dispatched, delay: float) -> None:
        """Put a finished, failed call in BACKOFF; after ``delay`` seconds it is submitted again."""
        advance(call, CallState.BACKOFF)
        self.backingOff.add(call)
        call.retryTimer = self._clock.callLater(delay, self._retryNow, call)

    def _retryNow(self, call: Dispatched) -> None:
        call.retryTimer = None
        self.backingOff.discard(call)
        if call.state is CallState.BACKOFF:
            if not self.submit(call):
                self._refused(call)

    def takeWaiting(self) -> list[Any]:
        """Remove and return every queued call (CANCELLED), oldest first: the pool closed under them."""
        calls = list(self.queue)
        self.queue.clear()
        for call in calls:
            self._stopWaitTimer(call)
            advance(call, CallState.CANCELLED)
        return calls

    def takeBackingOff(self) -> list[Any]:
        """Remove and return every call waiting to be retried (CANCELLED), timers stopped."""
        calls = list(self.backingOff)
        self.backingOff.clear()
        for call in calls:
            timer, call.retryTimer = call.retryTimer, None
            if timer is not None and timer.active():
                timer.cancel()
            advance(call, CallState.CANCELLED)
        return calls

    def forgetBusy(self) -> None:
        """Stop counting the busy slots (their calls were abandoned at a shutdown timeout)."""
        self.busy = 0

    def _waitExpired(self, call: Dispatched) -> None:
        call.waitTimer = None
        if call.state is not CallState.QUEUED:
            return
        self.queue.remove(call)
        advance(call, CallState.CANCELLED)
        self._expired(call)

    @staticmethod
    def _stopWaitTimer(call: Dispatched) -> None:
        timer, call.waitTimer = call.waitTimer, None
        if timer is not None and timer.active():
            timer.cancel()
