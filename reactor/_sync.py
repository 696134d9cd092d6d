"""Coordination between callbacks: ``DeferredLock``, ``DeferredSemaphore``, ``DeferredQueue``.

These are the event-driven counterparts of ``threading.Lock``, ``Semaphore``
and ``queue.Queue``: nothing blocks, a caller gets a Deferred that fires when
the lock, the token or the item is theirs. Waiters are served first come,
first served. Cancelling a Deferred that is still waiting removes it from the
line. Same API and meaning as Twisted's; every object here belongs to the
reactor thread (no locking inside, like Deferred itself).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from types import CoroutineType, TracebackType
from typing import Any, Generic, Literal, Self, TypeVar

from reactor._deferred import Deferred, succeed

__all__ = [
    "DeferredLock",
    "DeferredQueue",
    "DeferredSemaphore",
    "QueueOverflow",
    "QueueUnderflow",
]

_T = TypeVar("_T")


class _Primitive(ABC):
    """What a lock and a semaphore share: the line of waiters, ``run`` and ``async with``.

    ``waiting`` holds the Deferreds of pending ``acquire`` calls, oldest first.
    Reactor thread only.
    """

    waiting: deque[Deferred[Self]]

    def __init__(self) -> None:
        self.waiting = deque()

    def _cancelAcquire(self, d: Deferred[Self]) -> None:
        # A canceller only runs while `d` is unfired, and release() takes a
        # waiter out of the line before firing it, so `d` is still in it.
        self.waiting.remove(d)

    @abstractmethod
    def acquire(self) -> Deferred[Self]:
        """A Deferred that fires with this primitive once it is held."""

    @abstractmethod
    def release(self) -> None:
        """Give back what ``acquire`` took, passing it to the oldest waiter."""

    def _releaseAndPass(self, result: _T) -> _T:
        self.release()
        return result

    def run(self, f: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Deferred[Any]:
        """Acquire, call ``f(*args, **kwargs)``, release; fire with what ``f`` gave.

        If ``f`` returns a Deferred or a coroutine, the release waits until it
        finishes. An exception in ``f`` errbacks the returned Deferred (the
        release happens either way). Cancelling the returned Deferred while it
        waits to acquire removes it from the line and ``f`` is never called.
        """
        if not callable(f):
            raise TypeError(f"f must be callable, not {type(f).__name__}")

        def execute(_: object) -> Any:
            # maybeDeferred's work, inline: the common plain-value case then
            # needs no extra Deferred.
            try:
                result = f(*args, **kwargs)
            except BaseException:
                self.release()
                raise
            if type(result) is CoroutineType:
                result = Deferred.fromCoroutine(result)
            if isinstance(result, Deferred):
                return result.addBoth(self._releaseAndPass)
            self.release()
            return result

        return self.acquire().addCallback(execute)

    def __aenter__(self) -> Deferred[Self]:
        """``async with lock:`` acquires (the Deferred is awaited by the ``async with``)."""
        return self.acquire()

    def __aexit__(
        self,
        excType: type[BaseException] | None,
        excValue: BaseException | None,
        traceback: TracebackType | None,
    ) -> Deferred[Literal[False]]:
        """Release on leaving the block; the exception, if any, propagates."""
        self.release()
        return succeed(False)


class DeferredLock(_Primitive):
    """A lock for callbacks: ``acquire()`` returns a Deferred firing with the lock once it is free.

    ``locked`` is True while someone holds it. Waiters get it in the order they
    asked (FIFO). ``release()`` hands it to the oldest waiter at once (the
    waiter's callbacks run inside ``release``). Reactor thread only.
    """

    locked: bool

    def __init__(self) -> None:
        super().__init__()
        self.locked = False

    def acquire(self: Self) -> Deferred[Self]:
        """Return a Deferred that fires with this lock when it is this caller's.

        It has already fired if the lock was free. Cancelling it while it waits
        removes the caller from the line (it errbacks ``CancelledError``).
        """
        if not self.locked:
            self.locked = True
            return succeed(self)
        d: Deferred[Self] = Deferred(canceller=self._cancelAcquire)
        self.waiting.append(d)
        return d

    def release(self: Self) -> None:
        """Release the lock, handing it to the oldest waiter if there is one.

        Raises ``RuntimeError`` if the lock is not held (Twisted asserts).
        """
        if not self.locked:
            raise RuntimeError("Tried to release an unlocked DeferredLock")
        if self.waiting:
            # Stays locked: ownership passes straight to the next in line, so
            # no acquire() can jump the queue between release and hand-over.
            self.waiting.popleft().callback(self)
        else:
            self.locked = False

    def __repr__(self) -> str:
        state = "locked" if self.locked else "unlocked"
        return f"<DeferredLock {state}, {len(self.waiting)} waiting>"


class DeferredSemaphore(_Primitive):
    """A semaphore for callbacks: at most ``limit`` holders at once.

    ``tokens`` is how many more may acquire right now (``limit`` minus the
    current holders). ``acquire()`` returns a Deferred firing with the
    semaphore once a token is this caller's; waiters are served FIFO.
    ``DeferredSemaphore(tokens)`` raises ``ValueError`` if ``tokens < 1``.
    Reactor thread only.
    """

    tokens: int
    limit: int

    def __init__(self, tokens: int) -> None:
        if not isinstance(tokens, int) or isinstance(tokens, bool):
            raise TypeError(f"tokens must be an int, not {type(tokens).__name__}")
        if tokens < 1:
            raise ValueError(f"tokens must be >= 1, got {tokens}")
        super().__init__()
        self.tokens = tokens
        self.limit = tokens

    def acquire(self: Self) -> Deferred[Self]:
        """Return a Deferred that fires with this semaphore once a token is the caller's.

        Cancelling it while it waits removes the caller from the line.
        """
        if self.tokens:
            self.tokens -= 1
            return succeed(self)
        d: Deferred[Self] = Deferred(canceller=self._cancelAcquire)
        self.waiting.append(d)
        return d

    def release(self: Self) -> None:
        """Give a token back, handing it to the oldest waiter if there is one.

        Raises ``RuntimeError`` if every token is already free (Twisted asserts).
        """
        if self.tokens >= self.limit:
            raise RuntimeError("DeferredSemaphore released more times than it was acquired")
        if self.waiting:
            self.waiting.popleft().callback(self)
        else:
            self.tokens += 1

    def __repr__(self) -> str:
        return f"<DeferredSemaphore {self.tokens}/{self.limit} free, {len(self.waiting)} waiting>"


class QueueOverflow(Exception):
    """``DeferredQueue.put`` would hold more than ``size`` items."""


class QueueUnderflow(Exception):
    """``DeferredQueue.get`` would leave more than ``backlog`` gets waiting."""


def _checkLimit(value: int | None, argName: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{argName} must be an int or None, not {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{argName} must be >= 0 or None, got {value}")
    return value


class DeferredQueue(Generic[_T]):
    """A queue whose ``get()`` returns a Deferred that fires when an item is there.

    ``pending`` holds the items nobody has asked for yet; ``waiting`` holds the
    Deferreds of gets that no item has reached yet (at most one of the two is
    non-empty). ``size`` bounds ``pending`` (``put`` raises
    :class:`QueueOverflow` beyond it) and ``backlog`` bounds ``waiting``
    (``get`` raises :class:`QueueUnderflow` beyond it); ``None`` means no
    bound. Items are delivered in order, to gets in order. Reactor thread only.
    """

    def __init__(self, size: int | None = None, backlog: int | None = None) -> None:
        self.size = _checkLimit(size, "size")
        self.backlog = _checkLimit(backlog, "backlog")
        self.pending: deque[_T] = deque()
        self.waiting: deque[Deferred[_T]] = deque()

    def _cancelGet(self, d: Deferred[_T]) -> None:
        # As for locks: a waiting get is removed from the line before it fires.
        self.waiting.remove(d)

    def put(self, obj: _T) -> None:
        """Add ``obj``: hand it to the oldest waiting get, else keep it in ``pending``.

        Raises :class:`QueueOverflow` if ``pending`` already holds ``size`` items.
        """
        if self.waiting:
            self.waiting.popleft().callback(obj)
        elif self.size is None or len(self.pending) < self.size:
            self.pending.append(obj)
        else:
            raise QueueOverflow(f"DeferredQueue is full ({self.size} items pending)")

    def get(self) -> Deferred[_T]:
        """Return a Deferred firing with the next item (already fired if one is pending).

        Raises :class:`QueueUnderflow` if ``backlog`` gets are already waiting.
        Cancelling a waiting get removes it, so the next item goes to the next get.
        """
        if self.pending:
            return succeed(self.pending.popleft())
        if self.backlog is not None and len(self.waiting) >= self.backlog:
            raise QueueUnderflow(f"DeferredQueue has {self.backlog} gets waiting already")
        d: Deferred[_T] = Deferred(canceller=self._cancelGet)
        self.waiting.append(d)
        return d

    def __repr__(self) -> str:
        return (
            f"<DeferredQueue {len(self.pending)} pending, {len(self.waiting)} waiting, "
            f"size={self.size}, backlog={self.backlog}>"
        )
