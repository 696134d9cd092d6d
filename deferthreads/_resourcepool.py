"""``ResourcePool``: worker threads that each own one resource (a client that is not thread-safe).

It is a facade over the same :class:`~deferthreads._team.Team` as
:class:`~deferthreads.ThreadPool`: the team dispatches, parks, spins and
retires the workers, and hands idle workers out last-in first-out (the
warmest resource does the work; the coldest retire). The resource side (open
in the worker's thread, check, expire, replace when broken, interrupt, close)
is :mod:`deferthreads._resourcework`.

Thread ownership: ``run``, ``start``, ``stop``, ``retireIdle`` and the
cancellers run in the reactor thread; ``create``, ``check``, ``close``,
``isBroken`` and the calls run in the worker that owns the resource, as do
``currentResource`` and ``replaceResource`` (called from inside a call);
``interrupt`` runs in the reactor thread (it is how another thread stops a
call stuck in the resource). ``statistics`` and ``repr`` may be read from any
thread.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from contextvars import copy_context
from dataclasses import dataclass
from typing import Any, Concatenate, Generic, ParamSpec, Protocol, TypeVar

from zope.interface import Attribute, Interface, implementer

from deferthreads._bridge import ResultSink, sinkFor
from deferthreads._errors import QueueFull, ReactorThreadError, ThreadPoolStopped
from deferthreads._resourcework import (
    ErrorFactory,
    ResourceKeeper,
    ResourceSlot,
    ResourceWorkItem,
    WaitTimeout,
)
from deferthreads._team import Team, WorkerFactory
from deferthreads._telemetry import LeakWatch, registerPool
from deferthreads._threadpool import checkCallable, checkCount, checkHook, checkTimeout
from deferthreads._threadworker import ThreadWorker
from reactor import CancelledError, Deferred, Failure, getReactor
from reactor.spin import DEFAULT_SPIN, checkSpin

__all__ = ["IResourcePool", "ResourcePool", "ResourcePoolStatistics"]

_Res = TypeVar("_Res")
_T = TypeVar("_T")
_P = ParamSpec("_P")

_poolSerial = itertools.count(1)

#: Seconds the ``before shutdown`` drain waits for queued and running calls before giving up on them.
DEFAULT_SHUTDOWN_TIMEOUT = 30.0


class _Clock(Protocol):
    def seconds(self) -> float: ...

    def callLater(self, delay: float, f: Callable[..., object], /, *args: Any, **kwargs: Any) -> Any: ...


class IResourcePool(Interface):
    """Workers that each own one resource for their life, running calls on it and reporting to the reactor."""

    name = Attribute("The pool's name; its threads are ``{name}-worker-{n}``.")
    state = Attribute('``"new"``, ``"running"``, ``"stopping"`` or ``"stopped"``.')

    def run(f: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Deferred[Any]:  # noqa: N805
        """Run ``f(resource, *args, **kwargs)`` on a worker's resource; a Deferred of its result."""

    def start() -> None:
        """Start the workers (``minthreads`` of them, each opening its resource); a stopped pool restarts."""

    def stop(timeout: float | None = None) -> Deferred[None]:  # noqa: N805
        """Let running and queued calls finish, close every resource in its thread; fires when all exited."""

    def adjustPoolsize(minthreads: int | None = None, maxthreads: int | None = None) -> None:  # noqa: N805
        """Change the bounds on the number of workers (and so of open resources)."""

    def retireIdle(idleFor: float) -> int:  # noqa: N805
        """Retire workers idle ``idleFor`` seconds or more (on the pool's clock), down to the minimum."""

    def currentResource() -> object:
        """Inside a call: the calling worker's resource (opened now if it has none)."""

    def replaceResource() -> None:
        """Inside a call: close the calling worker's resource now; its next use opens a new one."""

    def statistics() -> object:
        """A frozen snapshot of the pool's counters."""


@dataclass(frozen=True, slots=True)
class ResourcePoolStatistics:
    """A snapshot of a resource pool.

    ``workers``/``busy``/``idle``/``queued`` as for a thread pool; ``open``
    counts resources open now; ``created``/``closed`` count resources opened
    and closed since the pool was made; ``createFailed``/``closeFailed`` count
    hooks that raised; ``checksFailed`` resources replaced after failing
    ``check``; ``expired`` those replaced for ``maxLifetime``; ``broken`` those
    replaced after a failed call (``isBroken``, or an interrupted call);
    ``interrupted`` calls ``interrupt`` was applied to; ``replaced`` those
    closed by ``replaceResource()``; ``timedOut`` calls failed for
    ``waitTimeout``; ``completed``/``failed`` calls that
    returned or raised (a call that could not get a resource counts as
    failed); ``cancelled`` calls that never ran (cancelled, timed out, or
    abandoned at a stop); ``rejected`` calls refused (queue full, pool
    stopped); ``longestQueueWait`` the longest wait, in seconds, of a call
    that a worker took.
    """

    workers: int
    busy: int
    idle: int
    queued: int
    open: int
    created: int
    closed: int
    createFailed: int
    closeFailed: int
    checksFailed: int
    expired: int
    broken: int
    interrupted: int
    replaced: int
    timedOut: int
    completed: int
    failed: int
    cancelled: int
    rejected: int
    longestQueueWait: float


def _checkSeconds(value: object, argName: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{argName} must be a number of seconds, not {type(value).__name__}")
    if not 0 <= value < float("inf"):
        raise ValueError(f"{argName} must be a finite number of seconds >= 0, got {value!r}")
    return float(value)


@implementer(IResourcePool)
class ResourcePool(Generic[_Res]):
    """Between ``minthreads`` and ``maxthreads`` worker threads, each owning one resource for its life.

    For a blocking client that is not thread-safe (LDAP, SOAP, SMTP,
    XML-RPC, a vendor SDK, a DB-API connection): one instance per worker,
    opened, used and closed in that worker's thread. ``run(f, *args, **kw)``
    returns a Deferred, fired in the reactor thread, of ``f(resource, *args,
    **kw)``.

    Hooks (all but ``interrupt`` run in the worker that owns the resource):

    * ``create()`` opens a resource: as a worker starts, and again before a
      call whenever the worker has none (it failed to open, or was closed for
      one of the reasons below). If it raises before a call, the call errbacks
      with that exception and the worker stays, without a resource, for the
      next call to try again.
    * ``close(resource)``: as the worker exits (idle retirement, stop) and
      when a resource is replaced. An exception from it is logged.
    * ``check(resource)``: before a call, if the resource has been idle for
      ``checkAfterIdle`` seconds or more (0: before every call). Raising or
      returning ``False`` fails the check: the resource is closed and a new
      one made before the call runs.
    * ``maxLifetime``: a resource this many seconds old is closed and
      replaced before the next call it would run.
    * ``maxIdle``: workers above ``minthreads`` idle this many seconds exit,
      closing their resource (``None``: they never do).
    * ``isBroken(resource, exception)``: after a call raised; True closes the
      resource (a new one is made for the next call). Without it, only an
      interrupted call's resource is replaced.
    * ``interrupt(resource, thread)``: called from the reactor thread when a
      running call's Deferred is cancelled, to unblock the call (close a
      socket, ``sqlite3``'s ``interrupt()``, ``pg_cancel_backend``). It must
      not wait for the call to end; while it runs the worker cannot start
      another call on that resource, so it never hits the wrong call.

    Cancelling a Deferred of ``run``: a queued call is removed and never runs
    (``CancelledError`` at once); a running one gets ``interrupt`` and the
    Deferred errbacks ``CancelledError`` once the call has stopped (its
    callbacks never run while the call still uses the resource; without
    ``interrupt`` that is when the call returns by itself).

    Backpressure: past ``queueLimit`` waiting calls, ``run`` fails at once
    with :class:`~deferthreads.QueueFull`; a call that waited ``waitTimeout``
    seconds without a worker fails with ``waitTimeoutError(message)``
    (default :class:`~deferthreads.WaitTimeout`) and never runs.

    Leaks: with ``leakThreshold`` (seconds on ``clock``, default None: off), a call
    that holds its resource longer is logged once at WARNING on the
    ``deferthreads.leaks`` logger with the stack where ``run()`` was called
    (HikariCP's ``leakDetectionThreshold``; docs/observability.md).

    Life cycle: the pool starts when its reactor runs (at once if it runs
    already; ``start()`` starts it by hand) and is drained in the reactor's
    ``before shutdown`` phase: running and queued calls finish and their
    Deferreds fire, every resource is closed in its thread, every worker
    exits. After ``shutdownTimeout`` seconds, queued calls errback
    ``abandonedQueuedError(message)`` and running calls are interrupted and
    errback ``abandonedRunningError(message)`` at once (both default to
    ``CancelledError``). ``stop()`` does the same on demand; ``start()`` after
    it makes the pool usable again, as does the reactor's next run after a
    shutdown: at once, even when the stop gave up on workers stuck in a call
    (each closes its resource and exits when its call returns, taking no
    other call; a new generation of workers serves the pool). With
    ``manageLifecycle=False`` the pool neither starts with the reactor nor
    drains at its shutdown: its owner calls ``start()`` and ``stop()`` (an
    owner with calls of its own to finish first).

    Idle workers above ``minthreads`` retire after ``maxIdle`` seconds (timed
    by the worker's own wait, on the wall clock), or when the owner calls
    ``retireIdle(idleFor)``, which measures idle time on ``clock``.

    Inside a call, ``currentResource()`` is the calling worker's resource and
    ``replaceResource()`` closes it at once (the next use opens a new one):
    for code that cannot be handed the resource, or must reconnect midway.

    The error hooks (``waitTimeoutError``, ``abandonedRunningError``,
    ``abandonedQueuedError``) are called with a message and return the
    exception to fail the call with (an exception class will do); one that
    raises or returns a non-exception is logged and the default is used.

    Make it, and call its methods, in the reactor thread (or before the
    reactor runs); the hooks and ``f`` run where the list above says.
    ``clock`` (default: the reactor) gives the time and the timers (its
    ``seconds`` and ``callLater``); ``workerFactory`` makes workers (default:
    threads). Both are for tests.
    """

    def __init__(
        self,
        create: Callable[[], _Res],
        close: Callable[[_Res], object],
        *,
        minthreads: int = 1,
        maxthreads: int = 4,
        check: Callable[[_Res], object] | None = None,
        checkAfterIdle: float = 1.0,
        maxLifetime: float | None = None,
        maxIdle: float | None = None,
        interrupt: Callable[[_Res, threading.Thread], object] | None = None,
        isBroken: Callable[[_Res, BaseException], bool] | None = None,
        queueLimit: int | None = None,
        waitTimeout: float | None = None,
        shutdownTimeout: float | None = DEFAULT_SHUTDOWN_TIMEOUT,
        name: str | None = None,
        reactor: Any = None,
        clock: _Clock | None = None,
        workerFactory: WorkerFactory | None = None,
        spinTime: float = DEFAULT_SPIN,
        manageLifecycle: bool = True,
        waitTimeoutError: ErrorFactory = WaitTimeout,
        abandonedRunningError: ErrorFactory = CancelledError,
        abandonedQueuedError: ErrorFactory = CancelledError,
        leakThreshold: float | None = None,
    ) -> None:
        checkCallable(create, "create")
        checkCallable(close, "close")
        checkCount(minthreads, "minthreads", 0)
        checkCount(maxthreads, "maxthreads", 1)
        if minthreads > maxthreads:
            raise ValueError(f"minthreads ({minthreads}) must be <= maxthreads ({maxthreads})")
        checkHook(check, "check")
        checkAfterIdle = _checkSeconds(checkAfterIdle, "checkAfterIdle")
        maxLifetime = checkTimeout(maxLifetime, "maxLifetime")
        maxIdle = checkTimeout(maxIdle, "maxIdle")
        checkHook(interrupt, "interrupt")
        checkHook(isBroken, "isBroken")
        if queueLimit is not None:
            checkCount(queueLimit, "queueLimit", 1)
        waitTimeout = checkTimeout(waitTimeout, "waitTimeout")
        self._leakThreshold = checkTimeout(leakThreshold, "leakThreshold")
        self.shutdownTimeout = checkTimeout(shutdownTimeout, "shutdownTimeout")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a str or None, not {type(name).__name__}")
        checkHook(workerFactory, "workerFactory")
        if not isinstance(manageLifecycle, bool):
            raise TypeError(f"manageLifecycle must be a bool, not {type(manageLifecycle).__name__}")
        checkCallable(waitTimeoutError, "waitTimeoutError")
        checkCallable(abandonedRunningError, "abandonedRunningError")
        checkCallable(abandonedQueuedError, "abandonedQueuedError")
        if reactor is None:
            reactor = getReactor()
        elif not callable(getattr(reactor, "callFromThread", None)):
            raise TypeError(f"reactor must have a callFromThread() method, not {type(reactor).__name__}")
        if clock is None:
            clock = reactor
        for method in ("seconds", "callLater"):
            if not callable(getattr(clock, method, None)):
                raise TypeError(f"clock must have {method}() (an IReactorTime), not {type(clock).__name__}")
        assert clock is not None
        self.name = name if name is not None else f"resourcepool-{next(_poolSerial)}"
        self._reactor = reactor
        self._clock = clock
        self._sink: ResultSink = sinkFor(reactor)
        now = clock.seconds
        self._keeper: ResourceKeeper[_Res] = ResourceKeeper(
            self.name,
            create,
            close,
            check=check,
            checkAfterIdle=checkAfterIdle,
            maxLifetime=maxLifetime,
            interrupt=interrupt,
            isBroken=isBroken,
            waitTimeout=waitTimeout,
            now=now,
            waitTimeoutError=waitTimeoutError,
            abandonedRunningError=abandonedRunningError,
            abandonedQueuedError=abandonedQueuedError,
        )
        self._team = Team(
            workerFactory if workerFactory is not None else self._makeWorker,
            self.name,
            minthreads,
            maxthreads,
            queueLimit=queueLimit,
            idleTimeout=maxIdle,
            now=now,
            workerInit=self._keeper.workerInit,
            workerExit=self._keeper.workerExit,
            spinTime=checkSpin(spinTime, "spinTime"),
        )
        self._keeper.team = self._team
        self._keeper.currentWorker = self._team.currentWorker
        self._waitTimeout = waitTimeout
        self._manageLifecycle = manageLifecycle
        # Reactor thread only:
        self._stopWaiters: list[Deferred[None]] = []  # the Deferreds of the stop under way, if any
        self._armStopTimeout: Callable[[float], object] | None = None  # bounds the stop under way
        self._shutdownID: Any = None
        self._restartID: Any = None
        self._startID: Any = None
        callWhenRunning = getattr(reactor, "callWhenRunning", None)
        if manageLifecycle and callable(callWhenRunning):
            self._startID = callWhenRunning(self._autoStart)
        # its OpenTelemetry metrics (nothing without the API)
        self._team.waitRecorder = registerPool(self, "resourcepool", self.name)

    @staticmethod
    def _makeWorker(team: Team, name: str) -> ThreadWorker:
        return ThreadWorker(team, name)

    # -- life cycle (reactor thread) -------------------------------------------------------------

    def _autoStart(self) -> None:
        self._startID = None
        if self._team.state == "new":
            self.start()

    def start(self) -> None:
        """Start ``minthreads`` workers (each opens its resource in its thread); a stopped pool restarts.

        Calls made before ``start`` wait for it. Raises ``RuntimeError`` while a ``stop`` is under way
        (once its Deferred fired, a restart works, even if workers stuck in a call were given up on:
        a new generation of workers serves the calls, and those exit once their call returns).
        """
        if self._team.state == "stopping":
            raise RuntimeError(f"{self.name} is still stopping; start() it again once stop() has fired")
        self._team.start()
        add = getattr(self._reactor, "addSystemEventTrigger", None)
        if self._manageLifecycle and self._shutdownID is None and callable(add):
            self._shutdownID = add("before", "shutdown", self._beforeShutdown)

    def stop(self, timeout: float | None = None) -> Deferred[None]:
        """Stop the pool; a Deferred that fires once every worker has closed its resource and exited.

        Never blocks. Running calls finish and queued calls still run (their
        Deferreds fire first). With a ``timeout`` (seconds, on the pool's
        clock), calls not started by then errback ``abandonedQueuedError``
        and never run, running calls are interrupted and errback
        ``abandonedRunningError`` at once (both ``CancelledError`` by
        default), and the Deferred fires then (a ``timeout`` given while a
        stop is under way bounds that stop too). The workers still in a call
        are given up on: each closes its resource and exits, in its thread,
        when its call returns, without taking another call; their late
        outcomes are dropped; ``start()`` works again at once.
        """
        timeout = checkTimeout(timeout, "timeout")
        self._forget("_shutdownID")
        self._forget("_restartID")
        self._forget("_startID")
        return self._drain(timeout)

    def _forget(self, attribute: str) -> None:
        triggerID = getattr(self, attribute)
        setattr(self, attribute, None)
        remove = getattr(self._reactor, "removeSystemEventTrigger", None)
        if triggerID is not None and callable(remove):
            try:
                remove(triggerID)
            except (ValueError, KeyError):
                pass

    def _drain(self, timeout: float | None) -> Deferred[None]:
        done: Deferred[None] = Deferred()
        if self._team.state == "stopped":
            done.callback(None)
            return done
        self._stopWaiters.append(done)
        if len(self._stopWaiters) > 1:
            # A stop is under way already: fire with it. A timeout given now bounds it too.
            if timeout is not None and self._armStopTimeout is not None:
                self._armStopTimeout(timeout)
            return done
        # This stop's waiters: finish() and timedOut() fire these, never those of a later stop (a
        # restart may follow a timed-out stop while the team's own finish is still on its way).
        waiters = self._stopWaiters
        timers: list[Any] = []
        reactor = self._reactor

        def fire() -> None:
            for timer in timers:
                if timer.active():
                    timer.cancel()
            timers.clear()
            if self._stopWaiters is waiters:
                self._stopWaiters = []
                self._armStopTimeout = None
            for d in waiters:
                if not d.called:
                    d.callback(None)
            waiters.clear()

        def finish() -> None:
            # Reactor thread. Outcomes handed back before the last worker exited are delivered first.
            self._sink.drain()
            for worker in self._team.takeExited():
                worker.join(1.0)
            fire()

        def timedOut(seconds: float) -> None:
            keeper = self._keeper
            queuedMessage = f"{self.name}: stopped (shutdown timeout {seconds}s) before the call started"
            runningMessage = f"{self.name}: stopped (shutdown timeout {seconds}s) while the call ran"
            for item in self._team.cancelQueued():
                error = keeper.makeError(keeper.abandonedQueuedError, CancelledError, queuedMessage)
                item.abandon(Failure(error))
            # The team stops now; the workers still in a call are given up on (they exit when it returns).
            for item in self._team.abandonWorkers():
                if isinstance(item, ResourceWorkItem) and item.keeper is keeper:
                    reason = None
                    if not item.deferred.called:  # (not one given up on by an earlier stop)
                        error = keeper.makeError(keeper.abandonedRunningError, CancelledError, runningMessage)
                        reason = Failure(error)
                    item.forceCancel(reason)
            self._sink.drain()
            fire()

        def arm(seconds: float) -> None:
            timers.append(self._clock.callLater(seconds, timedOut, seconds))

        self._armStopTimeout = arm
        if timeout is not None:
            arm(timeout)
        self._team.beginStop(lambda: reactor.callFromThread(finish))
        return done

    def _beforeShutdown(self) -> Deferred[None]:
        self._shutdownID = None
        if self._team.state == "running":
            add = getattr(self._reactor, "addSystemEventTrigger")
            self._restartID = add("after", "startup", self._restart)
        # Other 'before shutdown' triggers of this same pass may still use the pool: stop a turn later.
        stopped: Deferred[None] = Deferred()
        self._reactor.callLater(0, lambda: self._drain(self.shutdownTimeout).chainDeferred(stopped))
        return stopped

    def _restart(self) -> None:
        self._restartID = None
        if self._team.state == "stopped":
            self.start()

    # -- calls (reactor thread) --------------------------------------------------------------------

    def run(
        self, f: Callable[Concatenate[_Res, _P], _T], /, *args: _P.args, **kwargs: _P.kwargs
    ) -> Deferred[_T]:
        """Run ``f(resource, *args, **kwargs)`` in a worker, on the resource that worker owns.

        Call it in the reactor thread. The Deferred fires there with ``f``'s
        result, or errbacks with its exception (the worker's traceback kept),
        with ``create``'s exception if no resource could be opened, with
        :class:`QueueFull` / :class:`ThreadPoolStopped` at once when the pool
        cannot take the call, or with :class:`WaitTimeout`. The caller's
        ``contextvars`` context is copied into the worker.
        """
        if not callable(f):
            raise TypeError(f"f must be callable, not {type(f).__name__}")
        watch = None
        if self._leakThreshold is not None:
            watch = LeakWatch(self._clock, self._leakThreshold, f"{self.name}: run({f!r})")
            f = watch.wrap(f)
        item: ResourceWorkItem[_Res] = ResourceWorkItem(
            self._keeper, self._sink, f, args, kwargs, copy_context()
        )
        d: Deferred[_T] = Deferred(item)
        item.deferred = d
        if watch is not None:
            d.addBoth(watch.done)
        try:
            self._team.submit(item)
        except (QueueFull, ThreadPoolStopped) as e:
            item.claim.clear()
            d.errback(Failure(e))
            return d
        if self._waitTimeout is not None and item.claim:
            item.timer = self._clock.callLater(self._waitTimeout, item.expire)
        if self._team.backlogged():
            self._sink.hold()
        return d

    def retireIdle(self, idleFor: float) -> int:
        """Retire the workers idle ``idleFor`` seconds or more, longest idle first, down to ``minthreads``.

        Idle time is measured on the pool's ``clock`` (from when the worker
        last parked), so an owner times retirement on its own clock (a
        ``LoopingCall`` of its own; pass ``maxIdle=None`` so the workers' own
        wall-clock timeout does not retire them too). Each retired worker
        closes its resource and exits in its own thread. Returns how many
        were retired (0 unless the pool is running). Reactor thread.
        """
        return self._team.retireIdle(_checkSeconds(idleFor, "idleFor"))

    def currentResource(self) -> _Res:
        """The resource of the worker running the calling code; opened now if it has none.

        Call it from code running in one of this pool's workers (a call, or
        ``check``/``isBroken``; not ``close``, whose resource is already let
        go: it would open another): for code that cannot be handed the
        resource as ``f``'s argument. If the worker has no resource (it was
        just closed by :meth:`replaceResource`), ``create()`` runs now, in
        this thread, and its exception propagates. Raises
        :class:`~deferthreads.ReactorThreadError` in any other thread.
        """
        return self._keeper.current(self._ownSlot("currentResource"))

    def replaceResource(self) -> None:
        """Close the calling worker's resource now, in its thread; its next use opens a new one.

        Call it from inside a call (a reconnect, or a resource the call found
        broken): ``close()`` runs at once, and ``currentResource()`` or the
        worker's next call opens a new one. Counted as ``replaced`` in
        :meth:`statistics`. Does nothing if the worker has no resource.
        Raises :class:`~deferthreads.ReactorThreadError` outside this pool's
        workers.
        """
        self._keeper.replace(self._ownSlot("replaceResource"))

    def _ownSlot(self, method: str) -> ResourceSlot[_Res]:
        worker = self._team.currentWorker()
        slot = self._keeper.slots.get(worker) if worker is not None else None
        if slot is None:
            raise ReactorThreadError(
                f"{self.name}: {method}() must be called from code running in one of this pool's workers "
                f"(inside a call made with run()), not from {threading.current_thread().name!r}"
            )
        return slot

    def adjustPoolsize(self, minthreads: int | None = None, maxthreads: int | None = None) -> None:
        """Change the bounds (``None`` keeps one); workers start, or exit closing their resource, to suit."""
        newMin = self._team.minWorkers if minthreads is None else checkCount(minthreads, "minthreads", 0)
        newMax = self._team.maxWorkers if maxthreads is None else checkCount(maxthreads, "maxthreads", 1)
        if newMin > newMax:
            raise ValueError(f"minthreads ({newMin}) must be <= maxthreads ({newMax})")
        self._team.adjust(newMin, newMax)

    # -- reading (any thread) ------------------------------------------------------------------------

    @property
    def state(self) -> str:
        """``"new"``, ``"running"``, ``"stopping"`` or ``"stopped"``."""
        return self._team.state

    @property
    def min(self) -> int:
        """The minimum number of workers (each with its resource)."""
        return self._team.minWorkers

    @property
    def max(self) -> int:
        """The maximum number of workers, and so of open resources."""
        return self._team.maxWorkers

    def statistics(self) -> ResourcePoolStatistics:
        """A frozen snapshot of the pool's counters (cheap: two short locks, no worker disturbed)."""
        team = self._team.statistics()
        c = self._keeper.counters()
        return ResourcePoolStatistics(
            workers=team.workers,
            busy=team.busy,
            idle=team.idle,
            queued=team.queued,
            open=c["created"] - c["closed"],
            created=c["created"],
            closed=c["closed"],
            createFailed=c["createFailed"],
            closeFailed=c["closeFailed"],
            checksFailed=c["checksFailed"],
            expired=c["expired"],
            broken=c["broken"],
            interrupted=c["interrupted"],
            replaced=c["replaced"],
            timedOut=c["timedOut"],
            completed=team.completed,
            failed=team.failed,
            cancelled=team.cancelled,
            rejected=team.rejected,
            longestQueueWait=team.longestQueueWait,
        )

    def __repr__(self) -> str:
        s = self.statistics()
        return (
            f"<ResourcePool {self.name!r} {self.state} workers={s.workers} (busy={s.busy} idle={s.idle}) "
            f"open={s.open} queued={s.queued} min={self.min} max={self.max}"
            f"{'' if self._team.queueLimit is None else f' queueLimit={self._team.queueLimit}'}>"
        )
