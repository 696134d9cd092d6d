"""Test doubles for code that hands work to thread pools.

:class:`SynchronousThreadPool` implements :class:`~deferthreads.IThreadPool` but runs every call
at once, in the calling thread: a unit test of code built on ``deferToThreadPool`` or
``callInThread`` then needs no worker thread and no waiting. With
``deferToThreadPool(reactor, pool, f)`` the result still reaches the Deferred through
``reactor.callFromThread``, as from a real pool: on a
:class:`reactor.testing.MemoryReactor` (whose ``callFromThread`` calls at once) the Deferred
has fired when ``deferToThreadPool`` returns; on a real reactor it fires in the next loop turn.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from zope.interface import implementer

from deferthreads._errors import ThreadPoolStopped
from deferthreads._interfaces import IThreadPool
from deferthreads._team import ThreadPoolStatistics
from reactor import Failure

__all__ = ["SynchronousThreadPool"]


@implementer(IThreadPool)
class SynchronousThreadPool:
    """A thread pool without threads: each call runs immediately in the caller's thread.

    ``callInThreadWithCallback(onResult, f, *args, **kwargs)`` calls ``f`` and then
    ``onResult(True, result)`` or ``onResult(False, Failure)``, before returning; an exception
    from ``onResult`` itself propagates to the caller (the test sees it). ``callInThread``
    lets an exception from ``f`` propagate too: there is no worker to log it. The pool accepts
    calls before ``start`` (as a real pool queues them, but they run now) and refuses them
    with :class:`~deferthreads.ThreadPoolStopped` after ``stop``. :attr:`calls` records every
    ``(f, args, kwargs)`` run, and :meth:`statistics` counts them as a real pool would.
    Single-threaded: use it from one thread (the test's).
    """

    def __init__(self, minthreads: int = 0, maxthreads: int = 1, name: str | None = None) -> None:
        """The sizes are only checked and recorded (``adjustPoolsize`` too): no thread is made.

        :raises ValueError: ``minthreads`` < 0 or ``maxthreads`` < ``minthreads``.
        """
        self._checkSizes(minthreads, maxthreads)
        self.min = minthreads
        self.max = maxthreads
        self.name = name
        self.started = False
        self.joined = False
        self.calls: list[tuple[Callable[..., object], tuple[Any, ...], dict[str, Any]]] = []
        self._completed = 0
        self._failed = 0
        self._rejected = 0

    @staticmethod
    def _checkSizes(minthreads: int, maxthreads: int) -> None:
        for label, value in (("minthreads", minthreads), ("maxthreads", maxthreads)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{label} must be an int, not {type(value).__name__}")
        if minthreads < 0:
            raise ValueError(f"minthreads must be >= 0, got {minthreads}")
        if maxthreads < minthreads:
            raise ValueError(f"maxthreads ({maxthreads}) must be >= minthreads ({minthreads})")

    @property
    def state(self) -> str:
        """``"idle"`` before :meth:`start`, ``"running"``, then ``"stopped"`` (a real pool's names)."""
        return "stopped" if self.joined else "running" if self.started else "idle"

    def start(self) -> None:
        """Mark the pool started (there is nothing to start)."""
        self.started = True

    def stop(self, timeout: float | None = None) -> None:
        """Mark the pool stopped: every call so far has finished already; later calls are refused."""
        self.joined = True
        self.started = False

    def _admit(self, f: Callable[..., object]) -> None:
        if not callable(f):
            raise TypeError(f"f must be callable, not {type(f).__name__}")
        if self.joined:
            self._rejected += 1
            raise ThreadPoolStopped(f"{self!r} is stopped")

    def callInThread(self, f: Callable[..., object], /, *args: Any, **kwargs: Any) -> None:
        """Run ``f(*args, **kwargs)`` now, in this thread. Its exception propagates.

        :raises ThreadPoolStopped: the pool was stopped. :raises TypeError: ``f`` is not callable.
        """
        self._admit(f)
        self.calls.append((f, args, kwargs))
        try:
            f(*args, **kwargs)
        except BaseException:
            self._failed += 1
            raise
        self._completed += 1

    def callInThreadWithCallback(
        self,
        onResult: Callable[[bool, Any], object] | None,
        f: Callable[..., object],
        /,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        """Run ``f(*args, **kwargs)`` now; then ``onResult(True, value)`` or ``onResult(False, Failure)``.

        :raises ThreadPoolStopped: the pool was stopped. :raises TypeError: ``f`` or ``onResult``
            is not callable.
        """
        if onResult is not None and not callable(onResult):
            raise TypeError(f"onResult must be callable or None, not {type(onResult).__name__}")
        self._admit(f)
        self.calls.append((f, args, kwargs))
        try:
            value: Any = f(*args, **kwargs)
            ok = True
            self._completed += 1
        except Exception:
            value = Failure()
            ok = False
            self._failed += 1
        if onResult is not None:
            onResult(ok, value)

    def adjustPoolsize(self, minthreads: int | None = None, maxthreads: int | None = None) -> None:
        """Record new sizes (checked as a real pool checks them)."""
        newMin = self.min if minthreads is None else minthreads
        newMax = self.max if maxthreads is None else maxthreads
        self._checkSizes(newMin, newMax)
        self.min, self.max = newMin, newMax

    def statistics(self) -> ThreadPoolStatistics:
        """A snapshot: no worker, nothing queued or busy; the calls completed, failed and refused."""
        return ThreadPoolStatistics(
            workers=0,
            busy=0,
            idle=0,
            queued=0,
            completed=self._completed,
            failed=self._failed,
            cancelled=0,
            rejected=self._rejected,
            longestQueueWait=0.0,
        )

    def __repr__(self) -> str:
        return f"<SynchronousThreadPool {self.name!r} {self.state} calls={len(self.calls)}>"
