"""Timed calls: :class:`DelayedCall` and the heap that orders them, :class:`TimerQueue`.

The same :class:`TimerQueue` drives the real event loop (``reactor.Reactor``) and the
deterministic ``reactor.task.Clock``; only the source of "now" differs. A queue is
owned by one thread (the reactor thread, or whoever drives a ``Clock``): nothing here
takes a lock.

How the heap stays small and cheap
----------------------------------
The heap holds bare times (floats), and a dict maps each time to the call due then.
Comparing two floats is one C comparison on two small objects, where comparing
``[time, seq, call]`` entries meant two comparisons and three more objects to fetch per
heap level: on a heap of 100,000 calls a pop costs a fifth of what it did, and a call is
one garbage-collected object instead of two. Calls due at the very same time (common
with a ``Clock``) share one key: the dict holds a :class:`_Bucket` of them, in
scheduling order, so equal times still run first-in first-out.

Cancelling a call deletes it from the dict (so it is released at once); its time stays
in the heap as a *dead* key, skipped when it reaches the top. When dead keys are more
than three quarters of the heap it is rebuilt from the dict's keys (C-level ``list`` +
``heapify``), so scheduling and cancelling a million calls keeps the heap bounded by
about four times the number of live calls, loop running or not. Cancelling the most
recently pushed leaf just pops it. Moving a call *earlier* files it again under its new
time (its old key goes dead). Moving it *later* touches nothing: the old key surfaces
early and the call is filed again at its real time then, so a timeout pushed back on
every received byte costs O(1).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from typing import Any

from zope.interface import implementer

from reactor._coreinterfaces import IDelayedCall
from reactor._errors import AlreadyCalled, AlreadyCancelled

__all__ = ["DelayedCall", "TimerQueue"]

# Rebuild the heap when dead keys exceed three quarters of it and this many. (At one half,
# the rebuild's heapify cost more than the cancel itself; at 3/4 it adds ~1/3 of a visit per cancel.)
_COMPACT_MIN = 64

_heappush = heapq.heappush
_heappop = heapq.heappop
_newObject = object.__new__
_INFINITY = float("inf")


class _State:
    """A finished call's ``_entry``: :data:`_CALLED` or :data:`_CANCELLED` (never a time or a tuple)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


_CALLED = _State("called")
_CANCELLED = _State("cancelled")


class _Bucket:
    """The calls due at one time, in scheduling order; a cancelled or moved one leaves None behind."""

    # Owned by the queue's thread. head: index of the first slot not yet run or skipped;
    # live: calls still in `calls` (neither run, cancelled nor moved away).
    __slots__ = ("calls", "head", "key", "live")

    def __init__(self, key: float, calls: list[DelayedCall | None]) -> None:
        self.key = key
        self.calls = calls
        self.head = 0
        self.live = len(calls)


# DelayedCall._entry: the call's key (a time) while it is alone at that time; (bucket, index)
# while it shares it; _CALLED or _CANCELLED once it is no longer pending.
_Entry = float | tuple[_Bucket, int] | _State

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
    # _entry: see _Entry; _seq: scheduling order (FIFO among equal times, and which calls a
    # runDue must leave for the next one).
    __slots__ = ("_entry", "_queue", "_seq", "args", "func", "kw", "time")

    def __init__(
        self,
        time: float,
        func: Callable[..., object],
        args: tuple[Any, ...],
        kw: dict[str, Any],
        queue: TimerQueue,
        entry: _Entry,
        seq: int = 0,
    ) -> None:
        self.time = time
        self.func = func
        self.args = args
        self.kw = kw
        self._queue = queue
        self._entry: _Entry = entry
        self._seq = seq

    # Twisted's DelayedCall attributes, for ported code that reads them. Debug stacks are not
    # recorded for timed calls, and a delay() takes effect at once, so nothing is ever pending.
    debug = False
    creator: list[str] | None = None
    delayed_time = 0.0

    @property
    def seconds(self) -> Callable[[], float]:
        """The clock this call is scheduled on: ``dc.seconds()`` is the current time."""
        return self._queue.seconds

    @property
    def resetter(self) -> Callable[[DelayedCall], None]:
        """Twisted's hook that files a call again at its ``time``; ``dc.resetter(dc)`` does that."""
        return _refile

    @property
    def canceller(self) -> Callable[[DelayedCall], None]:
        """Twisted's hook that unschedules a call; ``dc.canceller(dc)`` cancels it if still active."""
        return _unschedule

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
        return self._entry.__class__ is not _State

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
        if entry.__class__ is _State:
            self._raiseInactive()
        self._entry = _CANCELLED
        queue = self._queue
        if entry.__class__ is tuple:
            queue._unbucket(entry)  # type: ignore[arg-type]
            return
        # Alone at its time (the common case), inlined: forget the key, pop it if it is the newest leaf.
        calls = queue._calls
        del calls[entry]  # type: ignore[arg-type]
        heap = queue._heap
        if heap[-1] is entry:
            heap.pop()
            return
        dead = len(heap) - len(calls)
        if dead > _COMPACT_MIN and dead * 4 > len(heap) * 3:
            queue._compact()

    def reset(self, secondsFromNow: float) -> None:
        """Reschedule the call to run ``secondsFromNow`` seconds from now (not from its old time).

        A negative value makes the call due at once, as in Twisted.

        :raises ValueError: ``secondsFromNow`` is infinite or NaN.
        :raises AlreadyCancelled: / :raises AlreadyCalled: the call is not active.
        """
        if self._entry.__class__ is _State:
            self._raiseInactive()
        if not -_INFINITY < secondsFromNow < _INFINITY:
            raise ValueError(f"secondsFromNow must be a finite number, got {secondsFromNow!r}")
        self._queue._moveTo(self, self._queue.seconds() + secondsFromNow)

    def delay(self, secondsLater: float) -> None:
        """Move the call ``secondsLater`` seconds later (negative: earlier) than its current time.

        :raises AlreadyCancelled: / :raises AlreadyCalled: the call is not active.
        """
        if self._entry.__class__ is _State:
            self._raiseInactive()
        if not -_INFINITY < secondsLater < _INFINITY:
            raise ValueError(f"secondsLater must be a finite number, got {secondsLater!r}")
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
    # _heap: times, a heap; every key of _calls is in it at least once, and the surplus are
    # dead keys (so the dead count is len(_heap) - len(_calls)).
    # _calls: time -> the DelayedCall alone at that time, or the _Bucket of those sharing it.
    __slots__ = ("_calls", "_heap", "_seqs", "seconds")

    def __init__(self, seconds: Callable[[], float]) -> None:
        self.seconds = seconds
        self._heap: list[float] = []
        self._calls: dict[float, DelayedCall | _Bucket] = {}
        self._seqs = itertools.count()

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
        call._seq = next(self._seqs)
        if self._calls.setdefault(time, call) is call:
            call._entry = time
            _heappush(self._heap, time)
        else:
            self._share(call, time)
        return call

    def _file(self, call: DelayedCall, time: float) -> None:
        # (Re)queue an existing call at `time` (after a move), keeping its seq.
        if self._calls.setdefault(time, call) is call:
            call._entry = time
            _heappush(self._heap, time)
        else:
            self._share(call, time)

    def _share(self, call: DelayedCall, time: float) -> None:
        # `time` is taken: join (or start) the bucket of calls due then.
        other = self._calls[time]
        if other.__class__ is _Bucket:
            bucket: _Bucket = other  # type: ignore[assignment]
            call._entry = (bucket, len(bucket.calls))
            bucket.calls.append(call)
            bucket.live += 1
        else:
            first: DelayedCall = other  # type: ignore[assignment]
            bucket = _Bucket(time, [first, call])
            first._entry = (bucket, 0)
            call._entry = (bucket, 1)
            self._calls[time] = bucket

    def _unbucket(self, entry: tuple[_Bucket, int]) -> None:
        # Take a call out of its bucket (cancelled, or moved); drop the bucket once it is empty.
        bucket, index = entry
        bucket.calls[index] = None
        bucket.live -= 1
        if not bucket.live and self._calls.get(bucket.key) is bucket:
            self._dropKey(bucket.key)

    def _dropKey(self, key: float) -> None:
        # Forget `key`'s dict entry; its heap copy goes dead (or is popped, if it is the last leaf).
        calls = self._calls
        del calls[key]
        heap = self._heap
        if heap and heap[-1] == key:
            heap.pop()
            return
        dead = len(heap) - len(calls)
        if dead > _COMPACT_MIN and dead * 4 > len(heap) * 3:
            self._compact()

    def __len__(self) -> int:
        """The number of pending (active) calls."""
        extra = 0
        for v in self._calls.values():
            if v.__class__ is _Bucket:
                extra += v.live - 1  # type: ignore[union-attr]
        return len(self._calls) + extra

    def heapSize(self) -> int:
        """The heap's length, dead keys included (what memory tracks; for tests)."""
        return len(self._heap)

    def nextTime(self) -> float | None:
        """The time of the earliest pending call, or None when nothing is pending."""
        heap = self._heap
        calls = self._calls
        while heap:
            key = heap[0]
            v = calls.get(key)
            if v is None:
                _heappop(heap)  # dead
            elif v.__class__ is DelayedCall:
                if v.time > key:  # type: ignore[union-attr]
                    # Moved later since it was filed: file it at its real time.
                    _heappop(heap)
                    del calls[key]
                    self._file(v, v.time)  # type: ignore[arg-type, union-attr]
                else:
                    return key
            elif self._settleBucket(v, key):  # type: ignore[arg-type]
                return key
        return None

    def _settleBucket(self, bucket: _Bucket, key: float) -> bool:
        # Bucket `bucket` is at the top: refile its moved calls; True if a call is still due at `key`.
        items = bucket.calls
        while bucket.head < len(items):
            call = items[bucket.head]
            if call is not None:
                if call.time <= key:
                    return True
                items[bucket.head] = None
                bucket.live -= 1
                self._file(call, call.time)
            bucket.head += 1
        if self._calls.get(key) is bucket:
            del self._calls[key]
            if self._heap and self._heap[0] is key:
                _heappop(self._heap)
        return False

    def getDelayedCalls(self) -> list[DelayedCall]:
        """The pending calls, earliest first."""
        live: list[DelayedCall] = []
        for v in self._calls.values():
            if v.__class__ is _Bucket:
                live.extend(c for c in v.calls if c is not None)  # type: ignore[union-attr]
            else:
                live.append(v)  # type: ignore[arg-type]
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
        calls = self._calls
        take = calls.pop
        # Calls scheduled from here on have _seq >= limit.
        limit = next(self._seqs) if not includeNew else -1
        ran = 0
        while heap:
            key = heap[0]
            if key > now:
                break
            # Taken out at once (one dict lookup, not two), put back in the rare cases that keep it.
            call = take(key, None)
            if call is None:
                _heappop(heap)  # dead
                continue
            if call.__class__ is not DelayedCall:
                calls[key] = call  # a bucket runs while filed
                done, stop = self._runBucket(call, key, limit, onError)  # type: ignore[arg-type]
                ran += done
                if stop:
                    break
                continue
            if call.time > key:  # type: ignore[union-attr]
                _heappop(heap)
                self._file(call, call.time)  # type: ignore[arg-type, union-attr]
                continue
            if call._seq >= limit >= 0:  # type: ignore[union-attr]
                calls[key] = call
                break
            _heappop(heap)
            call._entry = _CALLED  # type: ignore[union-attr]
            ran += 1
            if onError is None:
                call.func(*call.args, **call.kw)  # type: ignore[union-attr]
            else:
                try:
                    call.func(*call.args, **call.kw)  # type: ignore[union-attr]
                except Exception as e:
                    onError(call, e)  # type: ignore[arg-type]
        return ran

    def _runBucket(
        self,
        bucket: _Bucket,
        key: float,
        limit: int,
        onError: Callable[[DelayedCall, Exception], None] | None,
    ) -> tuple[int, bool]:
        # Run the due calls of the bucket at the top, in order; (how many ran, whether to stop).
        # The bucket stays filed while it runs, so calls scheduled for `key` meanwhile join it.
        items = bucket.calls
        ran = 0
        while bucket.head < len(items):
            call = items[bucket.head]
            if call is None:
                bucket.head += 1
                continue
            if call._seq >= limit >= 0:
                return ran, True
            items[bucket.head] = None
            bucket.head += 1
            bucket.live -= 1
            if call.time > key:
                self._file(call, call.time)
                continue
            call._entry = _CALLED
            ran += 1
            if onError is None:
                try:
                    call.func(*call.args, **call.kw)
                finally:
                    if not bucket.live:
                        self._retireBucket(bucket, key)
            else:
                try:
                    call.func(*call.args, **call.kw)
                except Exception as e:
                    onError(call, e)
        self._retireBucket(bucket, key)
        return ran, False

    def _retireBucket(self, bucket: _Bucket, key: float) -> None:
        if self._calls.get(key) is bucket:
            del self._calls[key]
            heap = self._heap
            if heap and heap[0] is key:
                _heappop(heap)

    def _moveTo(self, call: DelayedCall, time: float) -> None:
        old = call.time
        call.time = time
        if time < old:
            # Its key would surface too late: take it out and file it at the earlier time.
            entry = call._entry
            if entry.__class__ is tuple:
                self._unbucket(entry)  # type: ignore[arg-type]
            else:
                self._dropKey(entry)  # type: ignore[arg-type]
            self._file(call, time)
        # Later: the old key surfaces first and the call is filed again then (see nextTime/runDue).

    def _compact(self) -> None:
        # In place: runDue may be iterating this very list when a call cancels others.
        heap = self._heap
        heap[:] = self._calls
        heapq.heapify(heap)

    def __repr__(self) -> str:
        return f"<TimerQueue pending={len(self)} heap={len(self._heap)}>"


def _refile(call: DelayedCall) -> None:
    """File an active ``call`` again at its ``time`` (after code assigned ``call.time`` directly)."""
    if not call.active():
        return
    queue = call._queue
    entry = call._entry
    # Wherever it is filed now (its old time, or an earlier one a lazy move left), take it out.
    if entry.__class__ is tuple:
        queue._unbucket(entry)  # type: ignore[arg-type]
    else:
        queue._dropKey(entry)  # type: ignore[arg-type]
    queue._file(call, call.time)


def _unschedule(call: DelayedCall) -> None:
    """Cancel ``call`` if it has neither run nor been cancelled."""
    if call.active():
        call.cancel()


def _callSortKey(call: DelayedCall) -> tuple[float, int]:
    return (call.time, call._seq)
