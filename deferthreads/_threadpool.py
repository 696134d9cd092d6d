"""``ThreadPool``: the Twisted-compatible facade over a :class:`~deferthreads._team.Team`."""

from __future__ import annotations

import itertools
import logging
import math
import threading
import time
from collections.abc import Callable
from contextvars import copy_context
from typing import Any, Protocol

from zope.interface import implementer

from deferthreads._interfaces import IThreadPool, IWorker
from deferthreads._team import Team, ThreadPoolStatistics, WorkerFactory, abandonAll
from deferthreads._telemetry import registerPool
from deferthreads._threadworker import ThreadWorker
from deferthreads._workitem import CallbackWorkItem, OnResult, WorkItem
from reactor.spin import DEFAULT_SPIN, checkSpin

_log = logging.getLogger("deferthreads")

__all__ = ["ThreadPool"]

_poolSerial = itertools.count(1)


class _HasSeconds(Protocol):
    def seconds(self) -> float: ...


def checkCount(value: object, argName: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{argName} must be an int, not {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{argName} must be >= {minimum}, got {value}")
    return value


def checkHook(value: object, argName: str) -> None:
    if value is not None and not callable(value):
        raise TypeError(f"{argName} must be callable or None, not {type(value).__name__}")


def checkCallable(value: object, argName: str) -> None:
    """Raise ``TypeError`` naming ``argName`` unless ``value`` is callable."""
    if not callable(value):
        raise TypeError(f"{argName} must be callable, not {type(value).__name__}")


def checkTimeout(value: object, argName: str) -> float | None:
    """Accept ``None`` or a finite number > 0 (seconds); raise naming ``argName`` otherwise."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{argName} must be a number of seconds or None, not {type(value).__name__}")
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{argName} must be a finite number of seconds > 0, got {value!r}")
    return float(value)


class _QueueSize:
    """Twisted's ``ThreadPool.q`` stand-in: only ``qsize()``, read from the team's statistics."""

    def __init__(self, team: Team) -> None:
        self._team = team

    def qsize(self) -> int:
        """The number of calls queued and not yet started."""
        return self._team.statistics().queued


@implementer(IThreadPool)
class ThreadPool:
    """A pool of between ``minthreads`` and ``maxthreads`` worker threads running queued calls.

    Twisted's ``twisted.python.threadpool.ThreadPool`` API (``start``, ``stop``,
    ``callInThread``, ``callInThreadWithCallback``, ``adjustPoolsize``, ``min``,
    ``max``, ``name``, ``started``, ``joined``, ``workers``, ``threads``, ``working``,
    ``waiters``, ``q``), plus:

    * ``queueLimit``: past this many waiting calls, submitting raises
      :class:`~deferthreads.QueueFull` at once instead of growing memory.
    * ``idleTimeout``: workers above ``minthreads`` that waited this many seconds
      for work exit (``None``: never).
    * ``workerInit`` / ``workerExit``: called with no arguments inside each
      worker thread as it starts and just before it exits (idle retirement or
      ``stop``), e.g. to open and close one DB connection per thread. Their
      exceptions are logged and otherwise ignored.
    * ``spinTime``: how long, in seconds, a worker whose queue ran dry keeps
      looking for the next call (with the GIL released between looks) before it
      parks; it does so only while calls have been following each other that
      closely, so a request/response caller pays no thread wake-up. 0: never spin.
    * ``workerFactory`` / ``clock``: inject fake workers and time (tests).
    * ``statistics()``: a frozen :class:`ThreadPoolStatistics` snapshot.
    * The submitter's ``contextvars`` context is copied into the worker.

    Threads are named ``{name}-worker-{n}``. Calls may be submitted before
    ``start``; they run once it is called. ``maxthreads`` may be 0, as in
    Twisted: calls then wait in the queue until ``adjustPoolsize`` raises the
    maximum (a stop abandons them with ``ThreadPoolStopped``). Every method may
    be called from any thread (``stop`` must not be called from one of the
    pool's own workers).

    A pool pickles as its configuration (``min``, ``max``, ``name``,
    ``queueLimit``, ``idleTimeout``, ``spinTime``, ``workerInit``,
    ``workerExit``): the copy is a new pool, not started, with no worker and
    no queued call. Injected ``workerFactory`` and ``clock`` are not kept.
    """

    def __init__(
        self,
        minthreads: int = 5,
        maxthreads: int = 20,
        name: str | None = None,
        *,
        queueLimit: int | None = None,
        idleTimeout: float | None = 60.0,
        workerInit: Callable[[], object] | None = None,
        workerExit: Callable[[], object] | None = None,
        workerFactory: WorkerFactory | None = None,
        clock: _HasSeconds | None = None,
        spinTime: float = DEFAULT_SPIN,
    ) -> None:
        checkCount(minthreads, "minthreads", 0)
        checkCount(maxthreads, "maxthreads", 0)
        if minthreads > maxthreads:
            raise ValueError(f"minthreads ({minthreads}) must be <= maxthreads ({maxthreads})")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a str or None, not {type(name).__name__}")
        if queueLimit is not None:
            checkCount(queueLimit, "queueLimit", 1)
        idleTimeout = checkTimeout(idleTimeout, "idleTimeout")
        checkHook(workerInit, "workerInit")
        checkHook(workerExit, "workerExit")
        checkHook(workerFactory, "workerFactory")
        if clock is not None and not callable(getattr(clock, "seconds", None)):
            raise TypeError(f"clock must have a seconds() method, not {type(clock).__name__}")
        self.name = name
        self._team = Team(
            workerFactory if workerFactory is not None else self._makeWorker,
            name if name is not None else f"threadpool-{next(_poolSerial)}",
            minthreads,
            maxthreads,
            queueLimit=queueLimit,
            idleTimeout=idleTimeout,
            now=clock.seconds if clock is not None else time.monotonic,
            spinTime=checkSpin(spinTime, "spinTime"),
            workerInit=workerInit,
            workerExit=workerExit,
        )
        self._stopLock = threading.Lock()  # serialises stop() callers
        self._hooks = (workerInit, workerExit)  # immutable; kept for pickling
        # OpenTelemetry metrics (nothing without the API)
        self._team.waitRecorder = registerPool(self, "threadpool", self._team.name)

    #: Twisted's hook: what makes each worker's thread, called as ``threadFactory(target=..., name=...)``
    #: (a subclass or an instance may replace it; the thread is made a daemon before it starts).
    threadFactory: Callable[..., threading.Thread] = threading.Thread

    def _makeWorker(self, team: Team, name: str) -> ThreadWorker:
        return ThreadWorker(team, name, self.threadFactory)

    # -- Twisted's attributes ------------------------------------------------------------------

    @property
    def min(self) -> int:
        """The minimum number of worker threads (assigning it is ``adjustPoolsize(minthreads=...)``)."""
        return self._team.minWorkers

    @min.setter
    def min(self, value: int) -> None:
        self.adjustPoolsize(minthreads=value)

    @property
    def max(self) -> int:
        """The maximum number of worker threads (assigning it is ``adjustPoolsize(maxthreads=...)``)."""
        return self._team.maxWorkers

    @max.setter
    def max(self, value: int) -> None:
        self.adjustPoolsize(maxthreads=value)

    def dumpStats(self) -> None:
        """Log the pool's waiters, busy workers and threads (Twisted's name; logger ``deferthreads``)."""
        stats = self.statistics()
        _log.info("%s: %r", self.name or self._team.name, stats)

    @property
    def started(self) -> bool:
        """True between ``start()`` and ``stop()``."""
        return self._team.state == "running"

    @property
    def joined(self) -> bool:
        """True once ``stop()`` has been called (until the next ``start()``)."""
        return self._team.state in ("stopping", "stopped")

    @property
    def workers(self) -> int:
        """The number of live worker threads."""
        return self._team.statistics().workers

    @property
    def threads(self) -> list[threading.Thread]:
        """The live worker threads (Twisted's list also keeps threads that have exited)."""
        return [w.thread for w in self._team.liveWorkers() if isinstance(w, ThreadWorker)]

    @property
    def working(self) -> list[None]:
        """One ``None`` per busy worker: Twisted's legacy shape for "how many are working"."""
        return [None] * self._team.statistics().busy

    @property
    def waiters(self) -> list[None]:
        """One ``None`` per idle worker: Twisted's legacy shape for "how many are waiting"."""
        return [None] * self._team.statistics().idle

    @property
    def q(self) -> _QueueSize:
        """An object whose ``qsize()`` is the number of calls not yet started (Twisted's ``q``)."""
        return _QueueSize(self._team)

    @property
    def state(self) -> str:
        """``"new"``, ``"running"``, ``"stopping"`` or ``"stopped"``."""
        return self._team.state

    @property
    def queueLimit(self) -> int | None:
        """The bound on waiting calls (``None``: unbounded)."""
        return self._team.queueLimit

    # -- life cycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start ``minthreads`` workers (more if calls are already queued); a stopped pool restarts.

        Raises ``RuntimeError`` if the pool is still stopping (a ``beginStop``
        whose workers have not all exited).
        """
        self._team.start()

    def stop(self, timeout: float | None = None) -> None:
        """Stop the pool and wait for it (blocks the calling thread; never call it in the reactor).

        Calls already running finish; calls still queued run too (the workers
        drain the queue before exiting); then every worker runs ``workerExit``
        and is joined, so no thread of the pool is left. With a ``timeout`` (in
        seconds), calls that have not started when it expires never run: they
        are abandoned (``onResult(False, Failure(CancelledError))`` for
        ``callInThreadWithCallback``, an errback for ``deferToThreadPool``), and
        ``stop`` returns without waiting for calls still running; their threads
        exit when those calls return. Submitting to a stopped pool raises
        :class:`~deferthreads.ThreadPoolStopped`; ``start()`` makes it usable again.
        """
        timeout = checkTimeout(timeout, "timeout")
        for worker in self._team.liveWorkers():
            isCurrent = getattr(worker, "isCurrentThread", None)
            if isCurrent is not None and isCurrent():
                raise RuntimeError(
                    f"stop() was called in {worker.name}, a worker of this pool: it would wait for "
                    "itself; use beginStop() there"
                )
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._stopLock:
            done = threading.Event()
            self._team.beginStop(done.set)
            if not done.wait(timeout):
                abandonAll(self._team.cancelQueued(), f"{self._team.name} stopped before the call could run")
            for worker in self._team.takeExited():
                remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
                worker.join(remaining)

    def beginStop(self, onStopped: Callable[[], object] | None = None) -> None:
        """Begin stopping without blocking: workers drain the queue, run ``workerExit`` and exit.

        ``onStopped()`` is then called in the last exiting worker's thread (or at
        once in this thread if no worker is alive). Use :func:`drainThreadPool`
        from the reactor thread to get a Deferred instead.
        """
        checkHook(onStopped, "onStopped")
        self._team.beginStop(onStopped)

    def cancelQueued(self) -> int:
        """Abandon every call that has not started (with ``CancelledError``); return how many."""
        items = self._team.cancelQueued()
        abandonAll(items, f"{self._team.name}: queued call cancelled")
        return len(items)

    def joinStoppedWorkers(self, timeout: float | None = None) -> bool:
        """Join the workers that exited while stopping; True if all of them have ended."""
        allEnded = True
        for worker in self._team.takeExited():
            allEnded = worker.join(timeout) and allEnded
        return allEnded

    # -- submitting work -----------------------------------------------------------------------

    def callInThread(self, f: Callable[..., object], /, *args: Any, **kwargs: Any) -> None:
        """Queue ``f(*args, **kwargs)`` for a worker thread; an exception it raises is logged.

        Raises :class:`~deferthreads.QueueFull` / :class:`~deferthreads.ThreadPoolStopped`
        at once when the call cannot be queued, ``TypeError`` if ``f`` is not callable.
        """
        if not callable(f):
            raise TypeError(f"f must be callable, not {type(f).__name__}")
        self._team.submit(WorkItem(f, args, kwargs, copy_context()))

    def callInThreadWithCallback(
        self, onResult: OnResult | None, f: Callable[..., object], /, *args: Any, **kwargs: Any
    ) -> None:
        """Queue ``f(*args, **kwargs)``; then call ``onResult(True, result)`` or
        ``onResult(False, failure)`` in the same worker thread.

        ``onResult`` may be ``None`` (then this is :meth:`callInThread`). If the
        call is abandoned before it starts (``stop`` timeout, ``cancelQueued``),
        ``onResult(False, Failure(CancelledError))`` is called in the thread that
        abandoned it. An exception raised by ``onResult`` is logged.
        """
        if onResult is not None and not callable(onResult):
            raise TypeError(f"onResult must be callable or None, not {type(onResult).__name__}")
        if not callable(f):
            raise TypeError(f"f must be callable, not {type(f).__name__}")
        if onResult is None:
            self._team.submit(WorkItem(f, args, kwargs, copy_context()))
        else:
            self._team.submit(CallbackWorkItem(onResult, f, args, kwargs, copy_context()))

    def adjustPoolsize(self, minthreads: int | None = None, maxthreads: int | None = None) -> None:
        """Change the bounds (``None`` keeps one); workers start or exit to honour them."""
        newMin = self._team.minWorkers if minthreads is None else checkCount(minthreads, "minthreads", 0)
        newMax = self._team.maxWorkers if maxthreads is None else checkCount(maxthreads, "maxthreads", 0)
        if newMin > newMax:
            raise ValueError(f"minthreads ({newMin}) must be <= maxthreads ({newMax})")
        self._team.adjust(newMin, newMax)

    # -- pickling (Twisted's ThreadPool pickles its sizes and unpickles not started) -----------

    def __getstate__(self) -> dict[str, Any]:
        team = self._team
        return {
            "min": team.minWorkers,
            "max": team.maxWorkers,
            "name": self.name,
            "queueLimit": team.queueLimit,
            "idleTimeout": team.idleTimeout,
            "spinTime": team.spinTime,
            "workerInit": self._hooks[0],
            "workerExit": self._hooks[1],
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Only "min" and "max" are required, so a state with Twisted's two keys is accepted too.
        ThreadPool.__init__(
            self,
            state["min"],
            state["max"],
            state.get("name"),
            queueLimit=state.get("queueLimit"),
            idleTimeout=state.get("idleTimeout", 60.0),
            spinTime=state.get("spinTime", DEFAULT_SPIN),
            workerInit=state.get("workerInit"),
            workerExit=state.get("workerExit"),
        )

    # -- reading -------------------------------------------------------------------------------

    def statistics(self) -> ThreadPoolStatistics:
        """A frozen snapshot of the pool's counters (cheap: one short lock)."""
        return self._team.statistics()

    def liveWorkers(self) -> list[IWorker]:
        """The pool's workers that have not exited yet."""
        return self._team.liveWorkers()

    def __repr__(self) -> str:
        s = self._team.statistics()
        return (
            f"<ThreadPool {self._team.name!r} {self._team.state} workers={s.workers} "
            f"(busy={s.busy} idle={s.idle}) queued={s.queued} min={self.min} max={self.max}"
            f"{'' if self.queueLimit is None else f' queueLimit={self.queueLimit}'}>"
        )
