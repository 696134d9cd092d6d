"""Timed calls: :class:`DelayedCall` and the heap that orders them, :class:`TimerQueue`.

The same :class:`TimerQueue` drives the real event loop (``reactor.Reactor``) and the
deterministic ``reactor.task.Clock``; only the source of "now" differs. A queue is
owned by one thread (the reactor thread, or whoever drives a ``Clock``): nothing here
takes a lock.

How the heap stays small and cheap
----------------------------------
The heap holds small lists ``[time, seq, call]``; ``seq`` is unique and increasing,
so C list comparison orders them (earliest time first, FIFO among equal times) and
never looks at ``call``. Cancelling a call sets its entry's ``call`` slot to None:
the entry is *dead*, skipped when it reaches the top, and the call object is
released at once. When dead entries are more than three quarters of the heap it is
rebuilt without them (a C-level ``filter``), so scheduling and cancelling a million
calls keeps the heap bounded by about four times the number of live calls, loop
running or not; a dead entry is a 3-item list, the call itself is already freed.
Cancelling the most recently pushed leaf just pops it.
Moving a call *earlier* kills its entry and pushes a new one. Moving it *later*
pushes nothing: the old entry surfaces early and is then re-pushed at the call's
real time, so a timeout pushed back on every received byte costs O(1).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from operator import itemgetter
from typing import Any

from zope.interface import implementer

from reactor._coreinterfaces import IDelayedCall
from reactor._errors import AlreadyCalled, AlreadyCancelled

__all__ = ["DelayedCall", "TimerQueue"]

# Rebuild the heap when dead entries exceed three quarters of it and this many. (At one half,
# the rebuild's heapify cost more than the cancel itself; at 3/4 it adds ~1/3 of a visit per cancel.)
_COMPACT_MIN = 64

_heappush = heapq.heappush
_heappop = heapq.heappop
_heapreplace = heapq.heapreplace
_callOf = itemgetter(2)
_newObject = object.__new__

# A heap entry: [time, seq, call or None once dead].
_Entry = list[Any]

# DelayedCall._entry when the call is no longer pending.
_CALLED = 1
_CANCELLED = 2


@implementer(IDelayedCall)
class DelayedCall:
    """A call scheduled by ``callLater``: it runs ``func(*args, **kw)`` at :meth:`getTime`.

    Returned by ``Reactor.callLater`` and ``Clock.callLater`` (made by
    :meth:`TimerQueue.schedule`, not directly). Every method must be called in the
    thread that owns the queue (the reactor thread). ``called`` becomes true just
    before the function runs; ``cancelled`` after :meth:`cancel`. Cancelling,
    resetting or delaying a call that already ran raises :class:`AlreadyCalled`; one
    that was cancelled, :class:`AlreadyCancelled`.
    """

    # All fields are owned by the queue's thread (the reactor thread).
    # _entry: the live heap entry while pending, else _CALLED or _CANCELLED.
    __slots__ = ("_entry", "_queue", "args", "func", "kw", "time")

    def __init__(
        self,
        time: float,
        func: Callable[..., object],
        args: tuple[Any, ...],
        kw: dict[str, Any],
        queue: TimerQueue,
        entry: _Entry,
    ) -> None:
        self.time = time
        self.func = func
        self.args = args
        self.kw = kw
        self._queue = queue
        self._entry: _Entry | int = entry

    @property
    def called(self) -> bool:
        """True once the call has run (set just before the function is called)."""
        return self._entry is _CALLED

    @property
    def cancelled(self) -> bool:
        """True once :meth:`cancel` was called."""
        return self._entry is _CANCELLED

    def getTime(self) -> float:
        """The time (in the queue's clock, seconds) at which the call runs."""
        return self.time

    def active(self) -> bool:
        """True while the call has neither run nor been cancelled."""
        return self._entry.__class__ is list

    def _raiseInactive(self) -> None:
        if self._entry is _CANCELLED:
            raise AlreadyCancelled(f"{self!r} was already cancelled")
        raise AlreadyCalled(f"{self!r} has already been called")

    def cancel(self) -> None:
        """Unschedule the call; it will never run.

        :raises AlreadyCancelled: it was cancelled before.
        :raises AlreadyCalled: it already ran.
        """
        entry = self._entry
        if entry.__class__ is not list:
            self._raiseInactive()
        entry[2] = None  # type: ignore[index]
        self._entry = _CANCELLED
        queue = self._queue
        heap = queue._heap
        if heap[-1] is entry:
            # The newest leaf (a timeout cancelled soon after it was set): drop it, the heap stays valid.
            heap.pop()
            return
        dead = queue._dead = queue._dead + 1
        if dead > _COMPACT_MIN and dead * 4 > len(heap) * 3:
            queue._compact()

    def reset(self, secondsFromNow: float) -> None:
        """Reschedule the call to run ``secondsFromNow`` seconds from now (not from its old time).

        :raises ValueError: ``secondsFromNow`` is negative.
        :raises AlreadyCancelled: / :raises AlreadyCalled: the call is not active.
        """
        if self._entry.__class__ is not list:
            self._raiseInactive()
        if not secondsFromNow >= 0:
            raise ValueError(f"secondsFromNow must be >= 0, got {secondsFromNow!r}")
        self._queue._moveTo(self, self._queue.seconds() + secondsFromNow)

    def delay(self, secondsLater: float) -> None:
        """Move the call ``secondsLater`` seconds later (negative: earlier) than its current time.

        :raises AlreadyCancelled: / :raises AlreadyCalled: the call is not active.
        """
        if self._entry.__class__ is not list:
            self._raiseInactive()
        self._queue._moveTo(self, self.time + secondsLater)

    def __repr__(self) -> str:
        state = "called" if self.called else "cancelled" if self.cancelled else "pending"
        name = getattr(self.func, "__qualname__", None) or repr(self.func)
        return f"<DelayedCall {name} at {self.time:.6f} {state}>"

    # Twisted's DelayedCall orders by time; some callers sort getDelayedCalls() with it.
    def __lt__(self, other: DelayedCall) -> bool:
        return self.time < other.time

    def __le__(self, other: DelayedCall) -> bool:
        return self.time <= other.time


class TimerQueue:
    """The heap of pending :class:`DelayedCall` objects, for a reactor or a ``Clock``.

    ``seconds`` is the clock the queue reads for :meth:`DelayedCall.reset` (the
    reactor's monotonic clock, or a ``Clock``'s fake one). The owner schedules with
    :meth:`schedule`, asks :meth:`nextTime` how long it may sleep, and runs what is
    due with :meth:`runDue`. Single-threaded: everything runs in the owner's thread.
    """

    # All fields are owned by the queue's thread (the reactor thread).
    __slots__ = ("_dead", "_heap", "_seqs", "seconds")

    def __init__(self, seconds: Callable[[], float]) -> None:
        self.seconds = seconds
        self._heap: list[_Entry] = []
        self._seqs = itertools.count()
        # Number of dead entries (call slot None) in _heap.
        self._dead = 0

    def schedule(
        self, time: float, func: Callable[..., object], args: tuple[Any, ...], kw: dict[str, Any]
    ) -> DelayedCall:
        """Create and queue a :class:`DelayedCall` running ``func(*args, **kw)`` at ``time``.

        No argument checking (the public ``callLater`` does it); ``time`` is absolute,
        in this queue's clock.
        """
        call = _newObject(DelayedCall)  # __init__'s work, without its frame (hot path)
        call.time = time
        call.func = func
        call.args = args
        call.kw = kw
        call._queue = self
        call._entry = entry = [time, next(self._seqs), call]
        _heappush(self._heap, entry)
        return call

    def __len__(self) -> int:
        """The number of pending (active) calls."""
        return len(self._heap) - self._dead

    def heapSize(self) -> int:
        """The heap's length, dead entries included (what memory tracks; for tests)."""
        return len(self._heap)

    def nextTime(self) -> float | None:
        """The time of the earliest pending call, or None when nothing is pending."""
        heap = self._heap
        while heap:
            entry = heap[0]
            call = entry[2]
            if call is None:
                _heappop(heap)
                self._dead -= 1
            elif call.time > entry[0]:
                # Moved later since it was pushed: re-push at its real time.
                self._repush(entry, call)
            else:
                time: float = entry[0]
                return time
        return None

    def getDelayedCalls(self) -> list[DelayedCall]:
        """The pending calls, earliest first."""
        live = [entry[2] for entry in self._heap if entry[2] is not None]
        live.sort(key=_callSortKey)
        return live

    def runDue(
        self,
        now: float,
        *,
        includeNew: bool = False,
        onError: Callable[[DelayedCall, Exception], None] | None = None,
    ) -> int:
        """Run, in time order, every pending call whose time is ``<= now``; return how many ran.

        Calls scheduled by the calls being run are left for the next ``runDue``
        unless ``includeNew`` is true (``Clock.advance`` semantics: a ``callLater(0)``
        made while advancing runs in the same advance). If a call raises an
        ``Exception``, ``onError(call, exc)`` is called and the run goes on; with no
        ``onError`` the exception propagates (the calls after it stay queued).
        """
        heap = self._heap
        # Entries pushed from here on have seq >= limit.
        limit = -1 if includeNew else next(self._seqs)
        ran = 0
        while heap:
            entry = heap[0]
            if entry[0] > now:
                break
            call = entry[2]
            if call is None:
                _heappop(heap)
                self._dead -= 1
                continue
            if call.time > entry[0]:
                self._repush(entry, call)
                continue
            if entry[1] >= limit >= 0:
                break
            _heappop(heap)
            call._entry = _CALLED
            ran += 1
            if onError is None:
                call.func(*call.args, **call.kw)
            else:
                try:
                    call.func(*call.args, **call.kw)
                except Exception as e:
                    onError(call, e)
        return ran

    def _repush(self, entry: _Entry, call: DelayedCall) -> None:
        # `entry` is at the top and is the call's live one: replace it by one at call.time.
        fresh = [call.time, next(self._seqs), call]
        call._entry = fresh
        _heapreplace(self._heap, fresh)

    def _moveTo(self, call: DelayedCall, time: float) -> None:
        old = call.time
        call.time = time
        if time < old:
            # The live entry would surface too late: kill it and push an earlier one.
            entry = call._entry
            entry[2] = None  # type: ignore[index]
            fresh = [time, next(self._seqs), call]
            call._entry = fresh
            _heappush(self._heap, fresh)
            dead = self._dead = self._dead + 1
            if dead > _COMPACT_MIN and dead * 4 > len(self._heap) * 3:
                self._compact()
        # Later: the old entry surfaces first and is re-pushed then (see nextTime/runDue).

    def _compact(self) -> None:
        # In place: runDue may be iterating this very list when a call cancels others.
        heap = self._heap
        heap[:] = filter(_callOf, heap)
        heapq.heapify(heap)
        self._dead = 0

    def __repr__(self) -> str:
        return f"<TimerQueue pending={len(self)} heap={len(self._heap)}>"


def _callSortKey(call: DelayedCall) -> tuple[float, int]:
    entry = call._entry
    return (call.time, entry[1] if isinstance(entry, list) else -1)
