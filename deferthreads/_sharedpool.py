"""Each reactor's shared thread pool, and the functions that use the default reactor's.

The shared pool follows its reactor's runs: it starts when the reactor starts
(or at once if first used while the reactor runs) and is drained in the
reactor's ``before shutdown`` phase, so every call queued before ``stop()``
still runs and every Deferred fires before ``run()`` returns. Triggers are
one-shot per firing, so each run registers the next one's.
"""

from __future__ import annotations

import sys
import weakref
from collections.abc import Callable, Iterable
from typing import Any, ParamSpec, Protocol, TypeVar

from deferthreads._bridge import ReactorWithTime, ResultSink, deferCall, drainThreadPool, sinkFor
from deferthreads._errors import ReactorThreadError
from deferthreads._threadpool import ThreadPool, checkTimeout
from reactor import Deferred, getReactor

__all__ = [
    "callMultipleInThread",
    "deferToThread",
    "getThreadPool",
    "setShutdownTimeout",
    "suggestThreadPoolSize",
]

_P = ParamSpec("_P")
_R = TypeVar("_R")

#: The shared pool's size, as Twisted's reactor pool: no idle thread kept, at most 10.
DEFAULT_MIN_THREADS = 0
DEFAULT_MAX_THREADS = 10
#: Seconds the ``before shutdown`` drain waits before cancelling calls that have not started.
DEFAULT_SHUTDOWN_TIMEOUT = 30.0


class ManagedReactor(ReactorWithTime, Protocol):
    """What a reactor must offer to own a shared pool."""

    @property
    def running(self) -> bool: ...

    @property
    def stopping(self) -> bool: ...

    def addSystemEventTrigger(
        self, phase: str, eventType: str, f: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> Any: ...

    def isReactorThread(self) -> bool: ...


class SharedPool:
    """The thread pool one reactor lends to ``deferToThread``; all methods run in the reactor thread."""

    def __init__(self, reactor: ManagedReactor) -> None:
        self._reactorRef = weakref.ref(reactor)
        self.pool = self._newPool(DEFAULT_MIN_THREADS, DEFAULT_MAX_THREADS)
        self.sink: ResultSink = sinkFor(reactor)
        self.shutdownTimeout: float | None = DEFAULT_SHUTDOWN_TIMEOUT
        self._shutdownTrigger: Any = None
        if reactor.running and not reactor.stopping:
            self._startup()
        else:
            if reactor.stopping or _betweenRuns(reactor):
                # First used during shutdown (nothing would ever drain this pool) or after a run
                # (the pool of a run that used it would be stopped too): refuse work at once
                # (ThreadPoolStopped) until the next run starts it.
                self.pool.beginStop()
            reactor.addSystemEventTrigger("after", "startup", self._startup)

    def _reactor(self) -> ManagedReactor:
        reactor = self._reactorRef()
        assert reactor is not None, "the reactor of a shared pool was collected"
        return reactor

    @staticmethod
    def _newPool(minthreads: int, maxthreads: int) -> ThreadPool:
        return ThreadPool(minthreads, maxthreads, name="reactor")

    def _startup(self) -> None:
        reactor = self._reactor()
        if self.pool.state == "stopping":
            # The last drain timed out with calls still running: leave those threads to finish
            # on their own and start afresh.
            self.pool = self._newPool(self.pool.min, self.pool.max)
        self.pool.start()
        if self._shutdownTrigger is None:
            self._shutdownTrigger = reactor.addSystemEventTrigger("before", "shutdown", self._beforeShutdown)

    def _beforeShutdown(self) -> Deferred[None]:
        reactor = self._reactor()
        self._shutdownTrigger = None
        # Registered now, for the next run: this run's startup has fired already.
        reactor.addSystemEventTrigger("after", "startup", self._startup)
        return drainThreadPool(reactor, self.pool, self.shutdownTimeout)


def _betweenRuns(reactor: ManagedReactor) -> bool:
    """True if ``reactor`` has run and stopped, and is not inside ``run()`` now.

    ``_startedBefore`` is the flag Twisted's reactors and ours set as ``run()``
    begins; a reactor without it counts as never run. Inside ``run()`` but
    before 'during startup' (a 'before startup' trigger), ``running`` is still
    false, so the reactor thread is checked too.
    """
    return (
        bool(getattr(reactor, "_startedBefore", False))
        and not reactor.running
        and not reactor.isReactorThread()
    )


_shared: weakref.WeakKeyDictionary[Any, SharedPool] = weakref.WeakKeyDictionary()
_lastShared: tuple[Any, SharedPool | None] = (None, None)


def sharedPoolFor(reactor: ManagedReactor) -> SharedPool:
    """``reactor``'s shared pool manager, created (and started if the reactor runs) on first use."""
    global _lastShared
    last = _lastShared
    if last[0] is reactor and last[1] is not None:
        return last[1]
    shared = _shared.get(reactor)
    if shared is None:
        shared = _shared[reactor] = SharedPool(reactor)
    _lastShared = (reactor, shared)
    return shared


def _defaultReactor() -> ManagedReactor:
    reactor: ManagedReactor = getReactor()
    return reactor


def getThreadPool(reactor: ManagedReactor | None = None) -> ThreadPool:
    """The shared :class:`ThreadPool` of ``reactor`` (default: ``reactor.getReactor()``).

    Call it in the reactor thread. Created on first use; it starts when the
    reactor runs and is drained when it stops.
    """
    return sharedPoolFor(reactor if reactor is not None else _defaultReactor()).pool


def suggestThreadPoolSize(reactor: ManagedReactor | None, size: int) -> None:
    """Set the maximum size of ``reactor``'s shared pool (Twisted's ``reactor.suggestThreadPoolSize``).

    0 is allowed, as in Twisted: calls then wait until the maximum is raised again.
    """
    getThreadPool(reactor).adjustPoolsize(maxthreads=size)


def setShutdownTimeout(reactor: ManagedReactor | None, timeout: float | None) -> None:
    """Bound the shutdown drain of ``reactor``'s shared pool to ``timeout`` seconds (``None``: wait).

    When it expires, calls that have not started errback ``CancelledError``
    and never run; calls still running have their Deferreds cancelled.
    """
    timeout = checkTimeout(timeout, "timeout")
    sharedPoolFor(reactor if reactor is not None else _defaultReactor()).shutdownTimeout = timeout


def deferToThread(f: Callable[_P, _R], /, *args: _P.args, **kwargs: _P.kwargs) -> Deferred[_R]:
    """Run ``f(*args, **kwargs)`` in the default reactor's shared pool; a Deferred of its result.

    The same promises as :func:`deferToThreadPool` (callbacks in the reactor
    thread, worker traceback on failure, ``contextvars`` copied, cancellation).
    Before the reactor's first run the call waits for it; while the reactor
    shuts down the pool still takes calls as long as its workers drain; once it
    has stopped, the Deferred fails at once with :class:`ThreadPoolStopped`.
    Called outside the reactor thread while the reactor runs, it raises
    :class:`ReactorThreadError`; so it does inside a running asyncio loop that
    the (not running) default reactor is not hosted on, where it would wait
    forever.
    """
    if not callable(f):
        raise TypeError(f"f must be callable, not {type(f).__name__}")
    reactor = _defaultReactor()
    if reactor.running:
        if not reactor.isReactorThread():
            raise ReactorThreadError(
                "deferToThread() was called outside the reactor thread; from another thread use "
                "blockingCallFromThread(reactor, deferToThread, f, ...) or reactor.callFromThread"
            )
    elif _strandedInAsyncio(reactor):
        raise ReactorThreadError(
            "deferToThread() was called inside a running asyncio loop, but the default reactor is not "
            "running there, so its result would never arrive; host the reactor on the loop first: "
            "`async with reactor.asyncioreactor.hostedReactor(): ...` (or AsyncioReactor().startRunning())"
        )
    shared = sharedPoolFor(reactor)
    return deferCall(shared.pool._team, shared.sink, f, args, kwargs)


def _strandedInAsyncio(reactor: ManagedReactor) -> bool:
    """True if this thread runs an asyncio loop that ``reactor`` (not running) is not hosted on.

    Before a reactor's first run, ``deferToThread`` queues the call for that run (Twisted's
    semantics). Inside a running asyncio loop no such run is coming unless the reactor is
    hosted on that loop (its ``eventloop``): the call would wait forever.
    """
    asyncio = sys.modules.get("asyncio")
    if asyncio is None:
        return False  # nothing imported asyncio, so no loop runs
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return False
    return getattr(reactor, "eventloop", None) is not loop


def _runMultiple(calls: list[tuple[Callable[..., object], tuple[Any, ...], dict[str, Any]]]) -> None:
    for f, args, kwargs in calls:
        f(*args, **kwargs)


def callMultipleInThread(
    tuples: Iterable[tuple[Callable[..., object], tuple[Any, ...] | list[Any], dict[str, Any]]],
) -> None:
    """Run each ``(f, args, kwargs)`` of ``tuples``, in order, in one thread of the default shared pool.

    As in Twisted, an exception stops the sequence and is logged. The tuples
    are checked here: a malformed one raises ``TypeError`` at the call.
    """
    calls: list[tuple[Callable[..., object], tuple[Any, ...], dict[str, Any]]] = []
    for index, entry in enumerate(tuples):
        if not isinstance(entry, tuple | list) or len(entry) != 3:
            raise TypeError(f"tuples[{index}] must be an (f, args, kwargs) tuple, not {entry!r}")
        f, args, kwargs = entry
        if not callable(f):
            raise TypeError(f"tuples[{index}][0] must be callable, not {type(f).__name__}")
        if not isinstance(args, tuple | list):
            raise TypeError(f"tuples[{index}][1] (args) must be a tuple, not {type(args).__name__}")
        if not isinstance(kwargs, dict):
            raise TypeError(f"tuples[{index}][2] (kwargs) must be a dict, not {type(kwargs).__name__}")
        calls.append((f, tuple(args), kwargs))
    getThreadPool().callInThread(_runMultiple, calls)
