"""The bridge: run a function in a thread pool, get its outcome as a Deferred in the reactor thread.

A worker never touches a Deferred (DESIGN.md, the thread model). It hands
``(deferred, success, resultOrFailure)`` to the reactor's :class:`ResultSink`,
a deque drained in the reactor thread by one ``callFromThread`` call scheduled
when the sink goes from empty to non-empty: many results, one wake-up.

Under a backlog (more calls queued than a pool has workers) the reactor is not
needed to keep the workers busy, so outcomes are *held*: the submitting side
(reactor thread) arms a short flush timer, and while it is armed workers
append without waking the reactor. Each wake-up then fires a batch of
Deferreds instead of one or two, which under load is most of the reactor's
cost of a call. No outcome waits longer than the timer (:data:`HOLD_FLUSH`).
"""

from __future__ import annotations

import logging
import weakref
from collections import deque
from collections.abc import Callable
from contextvars import Context, copy_context
from functools import partial
from typing import Any, ParamSpec, Protocol, TypeVar

from deferthreads._errors import QueueFull, ThreadPoolStopped
from deferthreads._team import Team
from deferthreads._threadpool import ThreadPool, checkTimeout
from deferthreads._workitem import WorkItem
from reactor import CancelledError, Deferred, Failure

__all__ = ["deferToThreadPool", "drainThreadPool"]

log = logging.getLogger("deferthreads")

_P = ParamSpec("_P")
_R = TypeVar("_R")


class ReactorFromThreads(Protocol):
    """What the bridge needs of a reactor: the one thread-safe door in."""

    def callFromThread(self, f: Callable[..., object], /, *args: Any, **kwargs: Any) -> None: ...


class ReactorWithTime(ReactorFromThreads, Protocol):
    """A reactor that can also schedule timed calls (for drain timeouts)."""

    def callLater(self, delay: float, f: Callable[..., object], /, *args: Any, **kwargs: Any) -> Any: ...


#: Seconds a held outcome may wait for the flush that delivers it (while its pool has a backlog).
HOLD_FLUSH = 0.002


class ResultSink:
    """Results on their way from worker threads to one reactor's thread.

    ``put`` is called from any thread; ``drain`` runs in the reactor thread.
    ``_scheduled`` may be set by two workers at once (then a second, empty
    drain runs: harmless); a drain clears it before emptying the deque, so a
    result appended after the clear schedules a drain of its own, and one
    appended before is seen by the loop: nothing is stranded.
    """

    __slots__ = ("__weakref__", "_holdCall", "_holding", "_reactorRef", "_results", "_scheduled")

    def __init__(self, reactor: ReactorFromThreads) -> None:
        # Weak: sinks live in a weak-keyed registry; a strong reference would keep the reactor alive.
        self._reactorRef = _makeRef(reactor)
        self._results: deque[tuple[Deferred[Any], bool, Any]] = deque()
        self._scheduled = False
        # True while a flush timer is armed (set in the reactor thread, cleared by a drain before it
        # takes anything): a worker that appended and then saw it True is taken by that drain; one that
        # saw it False wakes the reactor itself. So a held outcome is never stranded.
        self._holding = False
        self._holdCall: Any = None  # the armed flush timer (reactor thread)

    def putHeld(self, deferred: Deferred[Any], ok: bool, value: Any) -> None:
        """Queue an outcome whose pool has a backlog (worker thread): no wake-up while a flush is armed."""
        self._results.append((deferred, ok, value))
        if self._holding:
            return
        if not self._scheduled:
            self._wake()

    def hold(self) -> None:
        """Arm the flush timer, once (reactor thread, when a submit leaves its pool with a backlog)."""
        if self._holding:
            return
        reactor = self._reactorRef()
        callLater = getattr(reactor, "callLater", None)
        if callLater is None:
            return
        self._holding = True
        try:
            self._holdCall = callLater(HOLD_FLUSH, self._flushHeld)
        except BaseException:
            self._holding = False
            raise

    def _flushHeld(self) -> None:
        self._holdCall = None
        self.drain()

    def put(self, deferred: Deferred[Any], ok: bool, value: Any) -> None:
        """Queue an outcome for ``deferred`` (any thread); wake the reactor only if no drain is pending."""
        self._results.append((deferred, ok, value))
        if not self._scheduled:
            self._wake()

    def _wake(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            reactor = self._reactorRef()
            if reactor is None:
                return
            try:
                reactor.callFromThread(self.drain)
            except BaseException:
                self._scheduled = False  # so that the next result tries again
                log.exception("Could not hand thread results back to %r", reactor)

    def drain(self) -> None:
        """Fire the Deferreds of every queued outcome, in order (reactor thread).

        A Deferred already fired (cancelled while its call ran) is skipped: the
        late result is dropped.
        """
        self._scheduled = False
        if self._holding:
            # Disarmed before anything is taken (see __init__): the next backlogged submit re-arms it,
            # and no timer outlives the outcomes it was armed for.
            self._holding = False
            holdCall, self._holdCall = self._holdCall, None
            if holdCall is not None and holdCall.active():
                holdCall.cancel()
        popleft = self._results.popleft
        while True:
            try:
                d, ok, value = popleft()
            except IndexError:
                return
            if d.called:
                continue
            try:
                if ok:
                    d.callback(value)
                else:
                    d.errback(value)
            except Exception:
                # callback() refuses some values (a Deferred returned by the threaded function).
                if not d.called:
                    d.errback(Failure())
                else:
                    log.exception("Delivering a thread result to %r failed", d)


def _makeRef(reactor: ReactorFromThreads) -> Callable[[], ReactorFromThreads | None]:
    try:
        return weakref.ref(reactor)
    except TypeError:
        return lambda: reactor


_sinks: weakref.WeakKeyDictionary[Any, ResultSink] = weakref.WeakKeyDictionary()
_strongSinks: dict[int, tuple[Any, ResultSink]] = {}  # reactors that cannot be weakly referenced
_lastSink: tuple[Any, ResultSink | None] = (None, None)  # a one-entry cache: the last reactor used


def sinkFor(reactor: ReactorFromThreads) -> ResultSink:
    """The result sink of ``reactor`` (reactor thread; created on first use)."""
    global _lastSink
    last = _lastSink
    if last[0] is reactor and last[1] is not None:
        return last[1]
    try:
        sink = _sinks.get(reactor)
        if sink is None:
            sink = _sinks[reactor] = ResultSink(reactor)
    except TypeError:
        entry = _strongSinks.get(id(reactor))
        if entry is None or entry[0] is not reactor:
            entry = _strongSinks[id(reactor)] = (reactor, ResultSink(reactor))
        sink = entry[1]
    _lastSink = (reactor, sink)
    return sink


class DeferredWorkItem(WorkItem):
    """A call whose outcome fires a Deferred in the reactor thread (through a :class:`ResultSink`).

    The item is also the Deferred's canceller: cancelling before the call
    started removes it from the queue (it never runs); cancelling while it runs
    lets ``Deferred.cancel`` errback ``CancelledError`` at once, and the sink
    drops the late result.
    """

    __slots__ = ("deferred", "sink", "team")

    deferred: Deferred[Any]

    def __init__(
        self,
        f: Callable[..., object],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        context: Context,
        sink: ResultSink,
        team: Team,
    ) -> None:
        self.f = f
        self.args = args
        self.kwargs = kwargs
        self.context = context
        self.cancelled = False
        self.enqueuedAt = 0.0
        self.sink = sink
        self.team = team

    def execute(self, returned: Callable[[], object]) -> bool:
        """Run the call (worker thread) and hand its outcome to the sink."""
        try:
            result = self.context.run(self.f, *self.args, **self.kwargs)
        except BaseException:
            failure = Failure()
            returned()
            self.sink.put(self.deferred, False, failure)
            return False
        returned()
        if self.team.backlogged():
            self.sink.putHeld(self.deferred, True, result)
        else:
            self.sink.put(self.deferred, True, result)
        return True

    def abandon(self, reason: Failure) -> None:
        """The call will not run: errback its Deferred with ``reason`` (via the sink)."""
        self.sink.put(self.deferred, False, reason)

    def __call__(self, deferred: Deferred[Any]) -> None:
        """The canceller (reactor thread): keep the call from starting if it has not."""
        self.team.discard(self)


class CallbackPool(Protocol):
    """Any pool with Twisted's ``callInThreadWithCallback`` (Twisted's ThreadPool, a test double)."""

    def callInThreadWithCallback(
        self, onResult: Callable[[bool, Any], object], f: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> None: ...


def deferToThreadPool(
    reactor: ReactorFromThreads,
    threadpool: ThreadPool | CallbackPool,
    f: Callable[_P, _R],
    /,
    *args: _P.args,
    **kwargs: _P.kwargs,
) -> Deferred[_R]:
    """Run ``f(*args, **kwargs)`` in ``threadpool``; return a Deferred firing with its result.

    Call it in the reactor thread of ``reactor``. The Deferred fires in that
    thread with ``f``'s return value, or errbacks with a Failure carrying the
    exception and the worker's traceback. The caller's ``contextvars`` context
    is copied into the worker. Cancelling the Deferred before ``f`` started
    removes the call from the queue (``f`` never runs); cancelling it while
    ``f`` runs errbacks ``CancelledError`` at once and discards ``f``'s result
    (the thread itself runs on until ``f`` returns). When the pool cannot take
    the call (stopped, or its ``queueLimit`` reached) the Deferred has already
    failed with :class:`ThreadPoolStopped` / :class:`QueueFull` when returned.
    """
    if not callable(f):
        raise TypeError(f"f must be callable, not {type(f).__name__}")
    if not isinstance(threadpool, ThreadPool):
        return _deferToForeignPool(reactor, threadpool, f, args, kwargs)
    return deferCall(threadpool._team, sinkFor(reactor), f, args, kwargs)


def deferCall(
    team: Team, sink: ResultSink, f: Callable[..., _R], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Deferred[_R]:
    """The common path of ``deferToThreadPool`` and ``deferToThread`` (arguments already checked)."""
    item = DeferredWorkItem(f, args, kwargs, copy_context(), sink, team)
    d: Deferred[_R] = Deferred(item)
    item.deferred = d
    try:
        team.submit(item)
    except (QueueFull, ThreadPoolStopped) as e:
        d.errback(Failure(e))
        return d
    if team.backlogged():
        sink.hold()
    return d


def _deferToForeignPool(
    reactor: ReactorFromThreads, threadpool: Any, f: Callable[..., Any], args: Any, kwargs: Any
) -> Deferred[Any]:
    """Any object with ``callInThreadWithCallback`` (a Twisted ThreadPool, say) works, less efficiently."""
    submit = getattr(threadpool, "callInThreadWithCallback", None)
    if not callable(submit):
        raise TypeError(
            "threadpool must be a ThreadPool (or have callInThreadWithCallback), "
            f"not {type(threadpool).__name__}"
        )
    sink = sinkFor(reactor)
    d: Deferred[Any] = Deferred()
    context = copy_context()

    def onResult(ok: bool, value: Any) -> None:
        sink.put(d, ok, value)

    # partial: keyword arguments named like the pool's own parameters stay the function's.
    submit(onResult, context.run, partial(f, *args, **kwargs))
    return d


def drainThreadPool(
    reactor: ReactorWithTime, threadpool: ThreadPool, timeout: float | None = None
) -> Deferred[None]:
    """Stop ``threadpool`` without blocking the reactor; the Deferred fires once it has stopped.

    Call it in the reactor thread (a ``before shutdown`` trigger may return the
    Deferred). Running and queued calls finish and their Deferreds fire (in
    this reactor) before the returned Deferred does; workers run ``workerExit``
    and are joined. If ``timeout`` seconds pass first, calls not yet started
    errback ``CancelledError`` and never run, calls still running have their
    Deferreds cancelled (the threads run on, as daemons, until the calls
    return), and the returned Deferred fires then.
    """
    timeout = checkTimeout(timeout, "timeout")
    if not isinstance(threadpool, ThreadPool):
        raise TypeError(f"threadpool must be a ThreadPool, not {type(threadpool).__name__}")
    done: Deferred[None] = Deferred()
    sink = sinkFor(reactor)
    timer: list[Any] = []

    def finish() -> None:
        # Reactor thread. Results handed back before the last worker exited are delivered first.
        sink.drain()
        if timer and timer[0].active():
            timer[0].cancel()
        threadpool.joinStoppedWorkers(1.0)
        if not done.called:
            done.callback(None)

    def timedOut() -> None:
        team = threadpool._team
        message = f"{team.name}: shutdown timeout ({timeout}s) before the call started"
        reason = Failure(CancelledError(message))
        for item in team.cancelQueued():
            item.abandon(reason)
        for item in team.runningItems():
            # Only this reactor's Deferreds: another reactor's belong to another thread.
            if isinstance(item, DeferredWorkItem) and item.sink is sink and not item.deferred.called:
                item.deferred.cancel()
        sink.drain()
        if not done.called:
            done.callback(None)

    if timeout is not None:
        timer.append(reactor.callLater(timeout, timedOut))
    threadpool.beginStop(lambda: reactor.callFromThread(finish))
    return done
