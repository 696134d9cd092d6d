"""Tests for DeferredLock, DeferredSemaphore and DeferredQueue (reactor/_sync.py)."""

from __future__ import annotations

from typing import Any

import pytest

from reactor import (
    CancelledError,
    Deferred,
    DeferredLock,
    DeferredQueue,
    DeferredSemaphore,
    QueueOverflow,
    QueueUnderflow,
    succeed,
)
from tests.deferred_support import failureOf, resultOf


def _appendTo(seen: list[int], i: int) -> Any:
    """A callback that ignores its result and appends ``i`` to ``seen``."""

    def append(_: object) -> None:
        seen.append(i)

    return append


# DeferredLock


def test_lockAcquireWhenFreeFiresAtOnce() -> None:
    """acquire() on a free lock fires at once with the lock and marks it locked."""
    lock = DeferredLock()
    assert not lock.locked
    assert resultOf(lock.acquire()) is lock
    assert lock.locked


def test_lockAcquireWhenHeldWaits() -> None:
    """acquire() on a held lock waits until release()."""
    lock = DeferredLock()
    lock.acquire()
    d = lock.acquire()
    assert not d.called
    lock.release()
    assert resultOf(d) is lock
    assert lock.locked


def test_lockReleaseUnlocks() -> None:
    """release() with nobody waiting unlocks."""
    lock = DeferredLock()
    lock.acquire()
    lock.release()
    assert not lock.locked


def test_lockWaitersServedFifo() -> None:
    """Waiters get the lock in the order they asked."""
    lock = DeferredLock()
    lock.acquire()
    order: list[int] = []
    for i in range(5):
        lock.acquire().addCallback(_appendTo(order, i))
    for _ in range(5):
        lock.release()
    assert order == [0, 1, 2, 3, 4]
    assert lock.locked


def test_lockReleaseDoesNotLetNewcomerJumpTheLine() -> None:
    """An acquire() made inside a release()'s hand-over queues behind earlier waiters."""
    lock = DeferredLock()
    lock.acquire()
    order: list[str] = []
    late: list[Deferred[Any]] = []

    def first(_: object) -> None:
        order.append("first")
        late.append(lock.acquire().addCallback(lambda _: order.append("late")))

    lock.acquire().addCallback(first)
    lock.acquire().addCallback(lambda _: order.append("second"))
    lock.release()
    lock.release()
    lock.release()
    assert order == ["first", "second", "late"]


def test_lockCancelWaitingAcquireRemovesIt() -> None:
    """Cancelling a waiting acquire errbacks it and takes it out of the line."""
    lock = DeferredLock()
    lock.acquire()
    d1 = lock.acquire()
    d2 = lock.acquire()
    d1.cancel()
    assert failureOf(d1).check(CancelledError)
    assert list(lock.waiting) == [d2]
    lock.release()
    assert resultOf(d2) is lock


def test_lockCancelAcquiredIsNoop() -> None:
    """Cancelling an acquire that already fired changes nothing."""
    lock = DeferredLock()
    d = lock.acquire()
    d.cancel()
    assert resultOf(d) is lock
    assert lock.locked


def test_lockReleaseUnlockedRaises() -> None:
    """release() of a free lock raises RuntimeError."""
    with pytest.raises(RuntimeError):
        DeferredLock().release()


def test_lockRunCallsAndReleases() -> None:
    """run() acquires, calls f with the arguments, releases, and fires with f's result."""
    lock = DeferredLock()
    d = lock.run(lambda a, b=0: a + b, 1, b=2)
    assert resultOf(d) == 3
    assert not lock.locked


def test_lockRunWaitsForDeferredResult() -> None:
    """run() keeps the lock until a Deferred returned by f fires."""
    lock = DeferredLock()
    inner: Deferred[str] = Deferred()
    d = lock.run(lambda: inner)
    fired: list[str] = []
    d.addCallback(fired.append)
    assert lock.locked and not fired
    inner.callback("done")
    assert fired == ["done"]
    assert not lock.locked


def test_lockRunWithCoroutineFunction() -> None:
    """run() accepts an async function and releases once it returns."""
    lock = DeferredLock()
    inner: Deferred[int] = Deferred()

    async def work(x: int) -> int:
        return x + await inner

    d = lock.run(work, 1)
    assert lock.locked
    inner.callback(41)
    assert resultOf(d) == 42
    assert not lock.locked


def test_lockRunReleasesOnException() -> None:
    """An exception in f errbacks run()'s Deferred and still releases."""
    lock = DeferredLock()

    def boom() -> None:
        raise ValueError("boom")

    assert failureOf(lock.run(boom)).check(ValueError)
    assert not lock.locked


def test_lockRunSerialises() -> None:
    """Two run() calls on one lock do not overlap."""
    lock = DeferredLock()
    first: Deferred[None] = Deferred()
    calls: list[str] = []

    def a() -> Deferred[None]:
        calls.append("a")
        return first

    lock.run(a)
    lock.run(lambda: calls.append("b"))
    assert calls == ["a"]
    first.callback(None)
    assert calls == ["a", "b"]


def test_lockRunRejectsNonCallable() -> None:
    """run() with a non-callable raises TypeError naming f."""
    with pytest.raises(TypeError, match="f must be callable"):
        DeferredLock().run(42)  # type: ignore[arg-type]


def test_lockAsyncWith() -> None:
    """`async with lock:` holds the lock inside the block and releases after it."""
    lock = DeferredLock()
    seen: list[bool] = []

    async def body() -> str:
        async with lock:
            seen.append(lock.locked)
        return "out"

    assert resultOf(Deferred.fromCoroutine(body())) == "out"
    assert seen == [True]
    assert not lock.locked


def test_lockAsyncWithWaitsAndReleasesOnError() -> None:
    """`async with` waits for a held lock and releases when the block raises."""
    lock = DeferredLock()
    lock.acquire()

    async def body() -> None:
        async with lock:
            raise KeyError("inside")

    d = Deferred.fromCoroutine(body())
    assert not d.called
    lock.release()
    assert failureOf(d).check(KeyError)
    assert not lock.locked


def test_lockAsyncWithCancelledWhileWaiting() -> None:
    """Cancelling a coroutine waiting in `async with lock` removes its waiter and releases nothing."""
    lock = DeferredLock()
    lock.acquire()
    entered: list[bool] = []

    async def body() -> None:
        async with lock:
            entered.append(True)

    d = Deferred.fromCoroutine(body())
    assert len(lock.waiting) == 1
    d.cancel()
    assert failureOf(d).check(CancelledError)
    assert not lock.waiting and lock.locked
    lock.release()
    assert not lock.locked and entered == []


# DeferredSemaphore


def test_semaphoreAllowsLimitHolders() -> None:
    """Up to `limit` acquires fire at once; the next one waits."""
    sem = DeferredSemaphore(2)
    assert sem.limit == 2 and sem.tokens == 2
    assert resultOf(sem.acquire()) is sem
    assert resultOf(sem.acquire()) is sem
    assert sem.tokens == 0
    d = sem.acquire()
    assert not d.called
    sem.release()
    assert resultOf(d) is sem
    assert sem.tokens == 0


def test_semaphoreReleaseReturnsToken() -> None:
    """release() with nobody waiting gives the token back."""
    sem = DeferredSemaphore(1)
    sem.acquire()
    sem.release()
    assert sem.tokens == 1


def test_semaphoreWaitersServedFifo() -> None:
    """Semaphore waiters are served in the order they asked."""
    sem = DeferredSemaphore(1)
    sem.acquire()
    order: list[int] = []
    for i in range(4):
        sem.acquire().addCallback(_appendTo(order, i))
    for _ in range(4):
        sem.release()
    assert order == [0, 1, 2, 3]


def test_semaphoreCancelWaitingAcquire() -> None:
    """Cancelling a waiting semaphore acquire removes it from the line."""
    sem = DeferredSemaphore(1)
    sem.acquire()
    d = sem.acquire()
    d.cancel()
    assert failureOf(d).check(CancelledError)
    assert not sem.waiting
    sem.release()
    assert sem.tokens == 1


def test_semaphoreRejectsTokensBelowOne() -> None:
    """tokens < 1 raises ValueError naming tokens."""
    with pytest.raises(ValueError, match="tokens"):
        DeferredSemaphore(0)


def test_semaphoreRejectsNonIntTokens() -> None:
    """A non-int tokens raises TypeError naming tokens."""
    with pytest.raises(TypeError, match="tokens"):
        DeferredSemaphore(1.5)  # type: ignore[arg-type]


def test_semaphoreOverReleaseRaises() -> None:
    """Releasing more than acquired raises RuntimeError."""
    with pytest.raises(RuntimeError):
        DeferredSemaphore(2).release()


def test_semaphoreRunLimitsConcurrency() -> None:
    """run() never has more than `limit` calls in progress."""
    sem = DeferredSemaphore(2)
    gates: list[Deferred[None]] = [Deferred() for _ in range(4)]
    active: list[int] = []
    peak = 0

    def work(i: int) -> Deferred[None]:
        nonlocal peak
        active.append(i)
        peak = max(peak, len(active))
        return gates[i].addCallback(lambda _: active.remove(i))

    results = [sem.run(work, i) for i in range(4)]
    assert active == [0, 1]
    for g in gates:
        g.callback(None)
    assert peak == 2
    assert all(r.called for r in results)
    assert sem.tokens == 2


def test_semaphoreAsyncWith() -> None:
    """`async with sem:` takes a token for the block."""
    sem = DeferredSemaphore(3)
    seen: list[int] = []

    async def body() -> None:
        async with sem:
            seen.append(sem.tokens)

    resultOf(Deferred.fromCoroutine(body()))
    assert seen == [2]
    assert sem.tokens == 3


# DeferredQueue


def test_queueGetAfterPut() -> None:
    """get() after put() fires at once with the item."""
    q: DeferredQueue[int] = DeferredQueue()
    q.put(1)
    assert list(q.pending) == [1]
    assert resultOf(q.get()) == 1
    assert not q.pending


def test_queueGetBeforePut() -> None:
    """get() on an empty queue waits; put() hands the item over."""
    q: DeferredQueue[str] = DeferredQueue()
    d = q.get()
    assert not d.called and list(q.waiting) == [d]
    q.put("x")
    assert resultOf(d) == "x"
    assert not q.waiting and not q.pending


def test_queueItemsAndGetsInOrder() -> None:
    """Items go out in the order they came in, to gets in the order they asked."""
    q: DeferredQueue[int] = DeferredQueue()
    gets = [q.get() for _ in range(3)]
    for i in range(3):
        q.put(i)
    assert [resultOf(g) for g in gets] == [0, 1, 2]
    for i in range(3):
        q.put(i + 10)
    assert [resultOf(q.get()) for _ in range(3)] == [10, 11, 12]


def test_queueOverflowPastSize() -> None:
    """put() past `size` pending items raises QueueOverflow."""
    q: DeferredQueue[int] = DeferredQueue(size=2)
    q.put(1)
    q.put(2)
    with pytest.raises(QueueOverflow):
        q.put(3)
    assert list(q.pending) == [1, 2]


def test_queueSizeDoesNotCountWaitingGets() -> None:
    """A put that goes straight to a waiting get is allowed even at size 0."""
    q: DeferredQueue[int] = DeferredQueue(size=0)
    d = q.get()
    q.put(5)
    assert resultOf(d) == 5
    with pytest.raises(QueueOverflow):
        q.put(6)


def test_queueUnderflowPastBacklog() -> None:
    """get() past `backlog` waiting gets raises QueueUnderflow."""
    q: DeferredQueue[int] = DeferredQueue(backlog=1)
    q.get()
    with pytest.raises(QueueUnderflow):
        q.get()


def test_queueBacklogZeroRefusesToWait() -> None:
    """backlog=0 allows a get only when an item is pending."""
    q: DeferredQueue[int] = DeferredQueue(backlog=0)
    with pytest.raises(QueueUnderflow):
        q.get()
    q.put(1)
    assert resultOf(q.get()) == 1


def test_queueCancelPendingGetRemovesIt() -> None:
    """Cancelling a waiting get removes it so the next item goes to the next get."""
    q: DeferredQueue[int] = DeferredQueue()
    d1 = q.get()
    d2 = q.get()
    d1.cancel()
    assert failureOf(d1).check(CancelledError)
    q.put(7)
    assert resultOf(d2) == 7


def test_queueCancelFreesBacklogSlot() -> None:
    """A cancelled get no longer counts against backlog."""
    q: DeferredQueue[int] = DeferredQueue(backlog=1)
    d = q.get()
    d.cancel()
    failureOf(d)
    q.get()


def test_queueRejectsBadLimits() -> None:
    """Negative or non-int size/backlog raise at the call, naming the argument."""
    with pytest.raises(ValueError, match="size"):
        DeferredQueue(size=-1)
    with pytest.raises(ValueError, match="backlog"):
        DeferredQueue(backlog=-1)
    with pytest.raises(TypeError, match="size"):
        DeferredQueue(size="3")  # type: ignore[arg-type]


def test_reprsSayState() -> None:
    """The reprs of lock, semaphore and queue show their state."""
    lock = DeferredLock()
    lock.acquire()
    assert "locked" in repr(lock)
    assert "1/2" in repr(DeferredSemaphore(2).acquire().result)
    q: DeferredQueue[int] = DeferredQueue(size=3)
    q.put(1)
    assert "1 pending" in repr(q)


def test_acquireFiresWithSubclassInstance() -> None:
    """acquire() fires with the object itself, so subclasses get their own type back."""

    class MyLock(DeferredLock):
        pass

    lock = MyLock()
    assert resultOf(succeed(None).addCallback(lambda _: lock.acquire())) is lock
