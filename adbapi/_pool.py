"""ConnectionPool: Twisted's ``adbapi.ConnectionPool``, correct under failure and cancellable.

Threads and state
-----------------
- The **reactor thread** calls the public methods, owns every Deferred, the
  pool's lifecycle state, the lanes' waiting queue and the counters.
- **Worker threads** are those of the pool's :class:`deferthreads.ResourcePool`
  (``self._threads``, named ``PoolThread-<name>-worker-<n>``): each owns one
  :class:`~adbapi._holder.ConnectionHolder` (at most one connection) and runs
  one call at a time. The resource pool queues the calls that wait for a
  worker, and its workers take the next one themselves; outcomes come home
  through its Deferreds (``_threadDone``). adbapi makes no thread of its own.
- **Lanes** (``_lane._Lane``, psycopg2 only) are slots whose nonblocking
  connection the reactor thread drives for runQuery/runOperation; they count
  against ``cp_max`` with the workers: the resource pool's maximum is ``cp_max``
  minus the open lanes (``_lane.py`` explains them). Calls that find every slot
  a busy lane wait in ``_pending``, which the lanes serve.
- **Side threads** (``self._side``, a ``deferthreads.ThreadPool`` named
  ``PoolThread-<name>-side``) run side work: cancel requests, lanes' connects
  and big fetches, the release of abandoned lanes' connections (``_sideCall``).
  It starts with the pool and is drained (its threads joined) before a close
  fires; a close that gives up at its deadline leaves it to drain on its own.

Lifecycle: ``new`` -> ``running`` (on reactor start or first call) ->
``closing`` (``close()`` or ``before shutdown``: no new calls, accepted calls
finish, connections close in their threads) -> ``closed`` (calls errback at once;
``start()`` may reopen it; Twisted's cannot be restarted).

The checking of the ``cp_*`` keywords lives in ``_options.py``, a worker's
connection in ``_holder.py``, the lanes in ``_lane.py``.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from types import ModuleType
from typing import Any, Concatenate, ParamSpec, TypeVar

from adbapi._async import AsyncTransaction
from adbapi._call import _Call
from adbapi._cancel import sendCancel
from adbapi._dispatch import CallKind, CallState
from adbapi._drivers import DriverAdapter, adapterFor
from adbapi._errors import PoolAbandonedError, PoolClosedError, PoolOverloadedError, PoolTimeoutError
from adbapi._health import HealthPolicy
from adbapi._here import currentHolder
from adbapi._holder import ConnectionHolder, HolderRegistry, serve
from adbapi._lane import LaneState, LaneSupport, _Lane
from adbapi._options import (
    TWISTED_ARGS,
    checkTimeout,
    checkTwistedOptions,
    loadModule,
    poolOptions,
    popOptions,
)
from adbapi._recovery import FLAG_CONFLICT, FLAG_LOST_BEFORE_COMMIT, recover
from adbapi._redact import Redactor
from adbapi._retry import RetryPolicy
from adbapi._stats import ConnectionCounters, PoolState, PoolStatistics
from adbapi._telemetry import PoolTelemetry, traced, tracedTransaction
from adbapi._wrappers import Connection, Transaction
from deferthreads import QueueFull, ResourcePool, ThreadPool, ThreadPoolStopped, drainThreadPool
from reactor import CancelledError, Deferred, Failure, fail, succeed

__all__ = ["ConnectionPool"]

_P = ParamSpec("_P")
_T = TypeVar("_T")

_log = logging.getLogger("adbapi")

# Seconds an idle side thread waits for more side work before it exits. Side work (a cancel, a lane's
# connect or big fetch) is rare and each piece costs far more than starting a thread, so an idle pool
# keeps no side thread for long.
_SIDE_IDLE = 1.0

_poolCounter = 0


def _setter(event: threading.Event) -> Callable[[bool, Any], None]:
    """An ``onResult`` for side work that sets ``event`` however the work ended (ran, failed, abandoned)."""

    def onResult(ok: bool, value: Any) -> None:
        event.set()

    return onResult


def _defaultReactor() -> Any:
    from reactor import getReactor

    return getReactor()


class _ConnectionsView(Mapping[int, Any]):
    """``ConnectionPool.connections``: thread id -> that worker's open connection (a live view)."""

    __slots__ = ("_pool",)

    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool

    def _snapshot(self) -> dict[int, Any]:
        return self._pool._connectionsByThread()

    def __getitem__(self, threadID: int) -> Any:
        return self._snapshot()[threadID]

    def __iter__(self) -> Iterator[int]:
        return iter(self._snapshot())

    def __len__(self) -> int:
        return len(self._snapshot())


class ConnectionPool:
    """A pool of DB-API connections, each owned by one worker thread (or lane); Twisted-compatible.

    ``ConnectionPool(dbapiName, *connargs, cp_min=3, cp_max=5, cp_name=None,
    cp_noisy=False, cp_openfun=None, cp_reconnect=False, cp_good_sql=None,
    cp_reactor=None, **connkw)``: ``dbapiName`` is a module name or module;
    ``connargs``/``connkw`` go to its ``connect()``. Beyond Twisted (all optional):
    ``cp_ping_after`` (check a connection idle at least this long before use),
    ``cp_max_lifetime``, ``cp_idle_timeout``, ``cp_max_waiting`` (fail fast past
    this many waiting calls), ``cp_wait_timeout``, ``cp_timeout`` (default
    per-call timeout, cancelling on the server), ``cp_retry`` (a
    :class:`RetryPolicy`), ``cp_clock`` (time source, default the reactor),
    ``cp_nonblocking`` (psycopg2: run runQuery/runOperation on lanes, nonblocking
    connections the reactor drives; None, the default, chooses them where
    possible, False turns them off, True insists), ``cp_shutdown_timeout``
    (seconds a close or the reactor's shutdown waits for running calls before it
    abandons them, default 30; None waits as long as they take; see
    :meth:`setShutdownTimeout`), ``cp_slow_threshold`` / ``cp_leak_threshold``
    (log slow calls / connections held too long; docs/observability.md).

    Every ``run*`` method must be called in the reactor thread and returns a
    Deferred that fires there. Cancelling it removes a waiting call, or stops
    the running statement on the server (psycopg2, sqlite3, PyMySQL/MySQLdb).
    """

    CP_ARGS = list(TWISTED_ARGS)

    noisy = False
    min = 3
    max = 5
    name: str | None = None
    openfun: Callable[[Any], object] | None = None
    reconnect = False
    good_sql: str = "select 1"
    running = False

    connectionFactory: Callable[[ConnectionPool], Connection] = Connection
    transactionFactory: Callable[[ConnectionPool, Connection], Transaction] = Transaction

    def __init__(self, dbapiName: str | ModuleType, *connargs: Any, **connkw: Any) -> None:
        global _poolCounter
        options = popOptions(connkw, self.CP_ARGS)
        self.dbapi, self.dbapiName = loadModule(dbapiName)
        self.connargs = connargs
        self.connkw = connkw
        self._goodSqlGiven = "good_sql" in options and options["good_sql"] is not None
        for arg in self.CP_ARGS:
            if arg in options and not (arg == "good_sql" and options[arg] is None):
                setattr(self, arg, options[arg])
        checkTwistedOptions(self)
        extra = poolOptions(options, _defaultReactor)
        reactor = extra.reactor
        self._reactor: Any = reactor
        self._clock: Any = extra.clock
        self._now: Callable[[], float] = self._clock.seconds
        self._waitTimeout = extra.waitTimeout
        self._timeout = extra.timeout
        self._maxWaiting: int | None = extra.maxWaiting
        self._retry: RetryPolicy | None = extra.retry
        self._shutdownTimeout: float | None = extra.shutdownTimeout
        nonblocking = extra.nonblocking
        self._telemetry = PoolTelemetry(self, extra.slowThreshold, extra.leakThreshold)

        _poolCounter += 1
        self._number = _poolCounter
        self._threadPrefix = f"PoolThread-{self.name or f'ConnectionPool-{self._number}'}"
        self._label = f"{self.name or f'ConnectionPool-{self._number}'} ({self.dbapiName})"
        self._redactor = Redactor(connargs, connkw)
        self._adapter: DriverAdapter = adapterFor(self.dbapi)
        # One health policy (lifetime, ping, idle) for worker and lane connections alike.
        self._health = HealthPolicy(
            self._clock.seconds,
            maxLifetime=extra.maxLifetime,
            pingAfter=extra.pingAfter,
            idleTimeout=extra.idleTimeout,
            goodSql=self.good_sql if self._goodSqlGiven else None,
        )
        # Subclasses that override Twisted's hooks keep them on every call.
        cls = type(self)
        self._ownRunInteraction = cls.runInteraction is ConnectionPool.runInteraction
        self._ownConnect = cls.connect is ConnectionPool.connect
        self._ownClose = cls._close is ConnectionPool._close
        self._fastPath = (
            self._ownRunInteraction
            and cls._runInteraction is ConnectionPool._runInteraction
            and cls._runQuery is ConnectionPool._runQuery
            and cls._runOperation is ConnectionPool._runOperation
            and cls.connect is ConnectionPool.connect
            and self.connectionFactory is Connection
            and self.transactionFactory is Transaction
        )
        # Lanes (``_lane.py``): runQuery/runOperation on nonblocking connections the reactor drives.
        self._laneSupport: LaneSupport | None = None
        whyNot = self._whyNoLanes(nonblocking)
        if nonblocking is True and whyNot is not None:
            raise ValueError(f"cp_nonblocking=True is not possible here: {whyNot}")
        if nonblocking is not False and whyNot is None:
            self._laneSupport = LaneSupport(self.dbapi.__name__)

        # Reactor thread only (statistics() reads their lengths from any thread):
        self._pending: collections.deque[_Call] = collections.deque()  # calls waiting for a lane
        self._lanes: set[_Lane] = set()
        self._idleLanes: list[_Lane] = []
        self._stopping = False
        self._laneCount = 0
        self._counters = ConnectionCounters()
        # The worker threads: a ResourcePool whose resource is a ConnectionHolder (``_holder.py``). A
        # close that gives up on workers stuck in a call leaves that pool stopping: start() makes another.
        self._holders = HolderRegistry()
        self._generation = 0
        self._threads: ResourcePool[ConnectionHolder] = self._newThreadPool()
        self._threadCalls: set[_Call] = set()  # on the resource pool, outcome not yet settled
        self._threadsStopping = False  # the close under way asked the resource pool to stop
        self._threadsDown = False  # ... and it has
        self._held: collections.deque[_Call] = collections.deque()  # see _toThreads
        self._waking: _Call | None = None  # the last call handed to the workers (see _mustHold)
        self._interrupting: _Call | None = None  # the call a cancel is interrupting (see _interrupt)
        # Side work (cancel requests, lane connects and big fetches) runs on the pool's own small thread
        # pool, started with the pool and drained at its close (``_sideCall``). Reactor thread only:
        self._side = self._newSidePool()
        self._sideDraining: ThreadPool | None = None  # the side pool a close is draining
        # Reactor thread only:
        self._state = PoolState.NEW
        self._closeWaiters: list[Deferred[None]] = []
        self._closeDeadline: Any = None  # the cp_shutdown_timeout timer of a close under way
        self._backingOff: set[_Call] = set()
        self._transactions: set[AsyncTransaction] = set()  # open ``async with pool.transaction()`` blocks
        self._idleCheck: Any = None
        self._calls = 0
        self._errors = 0
        self._cancelled = 0
        self._rejected = 0
        self._retries = 0
        self._longestWait = 0.0
        self.shutdownID: Any = None
        self._closeTrigger: Any = None
        self.startID: Any = reactor.callWhenRunning(self._start)


    # -- lifecycle (reactor thread) ----------------------------------------------------

    def __repr__(self) -> str:
        s = self.statistics()
        laneText = f" lanes={s.lanes}" if self._laneSupport is not None else ""
        return (
            f"<ConnectionPool {self._label} [{self._redactor.describe()}] {self._state} "
            f"workers={s.workers}{laneText} busy={s.busy} waiting={s.waiting}>"
        )

    def _whyNoLanes(self, nonblocking: bool | None) -> str | None:
        """None when runQuery/runOperation can run on lanes, else why not (``__init__``)."""
        if not self._adapter.supportsLanes:
            return f"{self.dbapiName} has no nonblocking connections the pool can drive (psycopg2 has)"
        if not self._fastPath or not self._ownClose:
            return "the pool's class overrides how calls run (_runQuery, _runOperation, connect, _close...)"
        if self.openfun is not None:
            return "cp_openfun expects a blocking connection"
        if self.max == 1 and nonblocking is None:
            # One connection: every call shares it, as in Twisted (a lane would be a second session).
            return "cp_max is 1"
        for key in ("async", "async_", "connection_factory"):
            if key in self.connkw:
                return f"the connection keyword {key!r} is given"
        needed = ("addReader", "addWriter", "removeReader", "removeWriter", "callFromThread")
        if not all(callable(getattr(self._reactor, m, None)) for m in needed):
            return "cp_reactor cannot watch file descriptors"
        return None

    def _start(self) -> None:
        self.startID = None
        self.start()

    def start(self) -> None:
        """Start the workers (the reactor does this when it runs; so does the first call)."""
        if self._state == PoolState.RUNNING:
            return
        if self._state == PoolState.CLOSING:
            raise PoolClosedError(f"{self._label} is closing; start() it again once close() has finished")
        self._state = PoolState.RUNNING
        self.running = True
        if self._side.state == "stopping":  # left behind by a close that timed out (not running)
            self._side = self._newSidePool()
        self._side.start()
        self._stopping = False
        if self._threads.state == "stopping":
            # Left behind by a close that gave up on workers stuck in a call: they exit when their call
            # returns, and never serve this run of the pool.
            self._threads = self._newThreadPool()
        self._threadsStopping = self._threadsDown = False
        self._threads.start()
        self.shutdownID = self._reactor.addSystemEventTrigger("before", "shutdown", self._shutdown)
        if self._health.idleTimeout is not None:
            self._scheduleIdleCheck()

    def _newThreadPool(self) -> ResourcePool[ConnectionHolder]:
        """The pool's worker threads: a ResourcePool whose resource is a ConnectionHolder.

        Its life cycle is the pool's (``manageLifecycle=False``): it starts with
        the pool and is stopped once the calls it may still be handed are in it.
        Its idle workers retire on the pool's clock (``_checkIdle``). With lanes
        its workers start on demand (a worker only when a call needs a thread),
        and its maximum is ``cp_max`` minus the open lanes.
        """
        registry = self._holders = HolderRegistry()
        pool = self
        # Threads are PoolThread-<name>-worker-<n>; a later generation (after a close gave up on workers
        # still running, which keep their names) is told apart: PoolThread-<name>-g<k>-worker-<n>.
        self._generation += 1
        name = self._threadPrefix if self._generation == 1 else f"{self._threadPrefix}-g{self._generation}"

        def create() -> ConnectionHolder:
            return ConnectionHolder.make(pool, registry)

        label = self._label
        waitTimeout = self._waitTimeout

        def waitTimeoutError(message: str) -> BaseException:
            return PoolTimeoutError(f"{label}: no connection became free within {waitTimeout} s")

        return ResourcePool(
            create,
            ConnectionHolder.close,
            minthreads=0 if self._laneSupport is not None else min(self.min, self.max),
            maxthreads=max(1, self.max - len(self._lanes)),
            interrupt=self._interrupt,
            queueLimit=self._maxWaiting,
            waitTimeout=waitTimeout,
            shutdownTimeout=None,
            name=name,
            reactor=self._reactor,
            clock=self._clock,
            spinTime=0.0,
            manageLifecycle=False,
            waitTimeoutError=waitTimeoutError,
            abandonedRunningError=PoolAbandonedError,
            abandonedQueuedError=PoolClosedError,
        )

    def close(self) -> Deferred[None]:
        """Stop accepting calls, let accepted calls finish, close every connection in its own thread.

        Returns a Deferred that fires once every worker has exited (Twisted's
        returns None; ignoring the result keeps the same behaviour). Called
        while the reactor is not running, it waits for the workers right away.
        Either way it waits at most the shutdown timeout (``cp_shutdown_timeout``,
        :meth:`setShutdownTimeout`): then running statements are cancelled on
        the server, the calls still running errback :class:`PoolAbandonedError`
        and the rest :class:`PoolClosedError`, threads stuck in the driver are
        left behind as daemon threads (each closes its connection when the driver
        returns), and the Deferred fires.
        """
        if self.shutdownID is not None:
            try:
                self._reactor.removeSystemEventTrigger(self.shutdownID)
            except (ValueError, KeyError):
                pass
            self.shutdownID = None
        if self.startID is not None:
            try:
                self._reactor.removeSystemEventTrigger(self.startID)
            except (ValueError, KeyError, TypeError):
                pass
            self.startID = None
        d = self._stopWorkers()
        if not d.called and self._reactor.running and self._closeTrigger is None:
            # Twisted's idiom is ``pool.close(); reactor.stop()`` with close's result ignored: the
            # shutdown then waits for this close, so the calls it is letting finish still fire.
            # Held apart from Twisted's ``shutdownID``, which is None once close() has returned.
            self._closeTrigger = self._reactor.addSystemEventTrigger("before", "shutdown", self._shutdown)
        return d

    def setShutdownTimeout(self, timeout: float | None) -> None:
        """Bound how long :meth:`close` and the reactor's shutdown wait for running calls (reactor thread).

        ``timeout`` is in seconds (> 0), or None to wait as long as they take
        (Twisted's behaviour). The default is ``cp_shutdown_timeout`` (30 s). A
        close already under way keeps the deadline it started with.
        """
        self._shutdownTimeout = checkTimeout("timeout", timeout)

    def finalClose(self) -> Deferred[None]:
        """Twisted's name for the shutdown-time close."""
        self.shutdownID = None
        return self._stopWorkers()

    def _shutdown(self) -> Deferred[None]:
        self.shutdownID = self._closeTrigger = None
        if self._state != PoolState.RUNNING:
            return self._stopWorkers()
        # The other 'before shutdown' triggers fire in this same pass, and one may still use the pool
        # (a last flush; Twisted's pool closes only 'during' shutdown): the close begins a turn later,
        # whichever order the triggers were added in, and lets what they asked for finish.
        closed: Deferred[None] = Deferred()
        self._reactor.callLater(0, lambda: self._stopWorkers().chainDeferred(closed))
        return closed

    def _stopWorkers(self) -> Deferred[None]:
        if self._state in (PoolState.NEW, PoolState.CLOSED):
            self._state = PoolState.CLOSED
            self.running = False
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._closeWaiters.append(d)
        if self._state == PoolState.CLOSING:
            return d
        self._state = PoolState.CLOSING
        self.running = False
        if self._idleCheck is not None and self._idleCheck.active():
            self._idleCheck.cancel()
        self._idleCheck = None
        for call in list(self._backingOff):
            self._finishBackoffOnClose(call)
        # A transaction's block may never be left (its coroutine stuck): end it rather than wait forever.
        for txn in list(self._transactions):
            txn._closeByPool()
        self._stopping = True
        idleLanes, self._idleLanes[:] = self._idleLanes[:], []
        for lane in idleLanes:
            lane.retire(recycled=False)
        timeout = self._shutdownTimeout
        self._endCloseIfLast()
        if self._state != PoolState.CLOSING:
            return d
        if not self._reactor.running:
            self._closeNotRunning(timeout)
        elif timeout is not None:
            self._closeDeadline = self._clock.callLater(timeout, self._closeExpired, timeout)
        return d

    def _closeNotRunning(self, timeout: float | None) -> None:
        """A close while the reactor is not running: wait for the workers here, within the deadline.

        Nothing can deliver the workers' outcomes until the reactor runs, so the
        outcomes they recorded (``_Call.outcome``) are settled here.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        me = threading.current_thread()
        for holder in self._holders.snapshot():
            thread = holder.thread
            if thread.is_alive() and thread is not me:
                thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        for call in list(self._threadCalls):
            if call.outcome is not None:
                self._threadCalls.discard(call)
                self._settle(call, *call.outcome)
        if self._state != PoolState.CLOSING:
            return
        if self._threadCalls or self._lanes or self._pending or self._held:
            self._closeExpired(timeout)
        else:
            self._threadsDown = True
            self._stopSideThenClose()

    def _closeExpired(self, timeout: float | None) -> None:
        """The shutdown timeout passed with slots still busy (reactor thread): stop waiting for them.

        Running statements are asked to stop on the server; the workers and lanes
        still busy are forgotten (a worker finishes its call, whose outcome is
        dropped, then closes its connection and exits; so does a connect stuck in
        the driver, whenever it returns), every Deferred they held errbacks, and
        the close ends. The resource pool is told to give its workers up; a
        restart gets a new one if it has not, so a forgotten worker never serves
        a later run of the pool.
        """
        self._closeDeadline = None
        if self._state != PoolState.CLOSING:
            return
        lanes = list(self._lanes)
        self._lanes.clear()
        self._idleLanes.clear()
        threadCalls = list(self._threadCalls)
        self._threadCalls.clear()
        _log.warning("adbapi: %s: close gave up after %s s: %d call(s) on worker threads and %d lane(s) "
                     "were still busy", self._label, timeout, len(threadCalls), len(lanes))
        why = (f"{self._label} closed while this call was running: the shutdown timeout ({timeout} s) "
               "passed; the statement was asked to stop, and whether its work committed is unknown")
        for txn in list(self._transactions):
            txn._abandonByPool(PoolAbandonedError(why))  # the operations it issued, first
        for call in threadCalls:
            running = call.state is CallState.RUNNING
            self._stopCall(call)  # stops the statement on the server; a queued call is dropped
            if not call.deferred.called:
                self._errors += 1
                if running or call.state is CallState.RUNNING:
                    call.deferred.errback(PoolAbandonedError(why))
                else:
                    call.deferred.errback(PoolClosedError(f"{self._label} closed before this call could run"))
        for lane in lanes:
            laneCall = lane.abandon()
            if laneCall is not None and not laneCall.deferred.called:
                self._errors += 1
                laneCall.deferred.errback(PoolAbandonedError(why))
        # The workers still in a call are given up on: each exits when its call returns, and is no part
        # of the pool any more (a new resource pool serves its next run).
        self._threads.stop(1e-9)  # (a stop timeout must be > 0): at the next turn
        self._threads = self._newThreadPool()
        # The side work handed out above (cancels, the release of abandoned lanes' connections) and any
        # still running (a lane's connect stuck in the driver) is left to the old side pool, which
        # drains on its own, its threads exiting as their work ends; a restart gets a new one.
        self._sideDraining = None
        abandoned, self._side = self._side, self._newSidePool()
        abandoned.beginStop()
        self._closed()

    # -- side work (reactor thread submits; the work runs in the side pool's threads) ---------------

    def _newSidePool(self) -> ThreadPool:
        """The pool's side thread pool: none of its threads exists until side work arrives.

        Its bound never makes side work wait for a thread in practice: a slot has at
        most one piece of side work at a time (a lane's connect, fetch or cancel, a
        worker's cancel) plus, at an abandoning close, a lane's release, which only
        waits for side work queued before it (the queue is first in, first out).
        """
        return ThreadPool(0, 2 * self.max + 2, name=f"{self._threadPrefix}-side",
                          idleTimeout=_SIDE_IDLE, spinTime=0.0)

    def _sideCall(self, onResult: Callable[[bool, Any], object] | None, f: Callable[..., object],
                  *args: Any) -> None:
        """Run ``f(*args)`` in a side thread, then ``onResult(ok, result or Failure)`` in that thread.

        ``onResult`` is called exactly once even if the work never runs (the side
        pool was stopped): then with ``(False, Failure)``, in the thread that gave
        up on it, possibly this one. It brings results home with ``callFromThread``.
        """
        try:
            self._side.callInThreadWithCallback(onResult, f, *args)
        except ThreadPoolStopped as e:
            _log.warning("adbapi: %s: side work %r could not run: %s", self._label, f, e)
            if onResult is not None:
                onResult(False, Failure(e))

    def _stopSideThenClose(self) -> None:
        """Every slot has gone (reactor thread): stop the side threads, then end the close.

        While the reactor runs the side pool drains without blocking it (its work
        finishes, its threads are joined) and the close ends then, or at the close's
        deadline (``_closeExpired``), whichever is first. Otherwise it is stopped
        here, within the shutdown timeout.
        """
        side = self._side
        if not self._reactor.running:
            side.stop(self._shutdownTimeout)
            self._closed()
            return
        if self._sideDraining is side:
            return  # already draining; its end closes the pool
        self._sideDraining = side
        drainThreadPool(self._reactor, side).addCallback(self._sideDrained, side)

    def _sideDrained(self, ignored: None, side: ThreadPool) -> None:
        if self._sideDraining is not side or self._state != PoolState.CLOSING:
            return  # the close's deadline passed first and ended it
        self._sideDraining = None
        self._closed()

    def _closed(self) -> None:
        self._state = PoolState.CLOSED
        if self._closeDeadline is not None:
            if self._closeDeadline.active():
                self._closeDeadline.cancel()
            self._closeDeadline = None
        if self._closeTrigger is not None:  # the trigger close() left for a shutdown that did not come
            try:
                self._reactor.removeSystemEventTrigger(self._closeTrigger)
            except (ValueError, KeyError):
                pass
            self._closeTrigger = None
        # Calls still waiting with no slot left to run them (the reactor stopped before they could
        # start) are not dropped silently.
        stranded = list(self._pending) + list(self._held)
        self._pending.clear()
        self._held.clear()
        for call in stranded:
            call.state = CallState.CANCELLED
            if call.waitTimer is not None and call.waitTimer.active():
                call.waitTimer.cancel()
            if not call.deferred.called:
                call.deferred.errback(PoolClosedError(f"{self._label} closed before this call could run"))
        waiters, self._closeWaiters = self._closeWaiters, []
        for d in waiters:
            d.callback(None)

    def _maybeStopThreads(self) -> None:
        """Closing: once no call can reach the workers any more (no lane, none waiting), stop them."""
        if self._threadsStopping or self._lanes or self._pending or self._held:
            return
        self._threadsStopping = True
        threads = self._threads
        threads.stop().addCallback(self._threadsStopped, threads)

    def _threadsStopped(self, ignored: None, threads: ResourcePool[ConnectionHolder]) -> None:
        # Every worker has closed its connection and exited; their outcomes were delivered first.
        if threads is not self._threads or self._state != PoolState.CLOSING or not self._threadsStopping:
            return
        self._threadsDown = True
        self._endCloseIfLast()

    def _endCloseIfLast(self) -> None:
        """Closing: the last slot to go (a lane, or the workers as one) ends the close."""
        if self._state != PoolState.CLOSING or self._lanes:
            return
        if self._pending:
            self._pendingToThreads()
        self._maybeStopThreads()
        if self._threadsDown:
            self._stopSideThenClose()

    def _pendingToThreads(self) -> None:
        """No lane is left to serve the calls waiting for one: the workers take them (reactor thread)."""
        pending = list(self._pending)
        self._pending.clear()
        for call in pending:
            if not call.deferred.called:
                self._toThreads(call)

    # -- lanes (reactor thread) -----------------------------------------------------------------

    def _newLane(self) -> _Lane:
        assert self._laneSupport is not None
        self._laneCount += 1
        lane = _Lane(self, self._laneCount, self._laneSupport)
        self._lanes.add(lane)
        self._fitThreads()
        return lane

    def _fitThreads(self) -> None:
        """Keep workers and lanes within ``cp_max``: the workers may have what the lanes leave."""
        self._threads.adjustPoolsize(maxthreads=max(1, self.max - len(self._lanes)))

    def _laneClosed(self, lane: _Lane) -> None:
        """A lane closed (reactor thread): forget it; the last slot to go ends a close.

        A lane that closes while it finishes a call (``_Lane._done``) fires that
        call first and then calls :meth:`_endCloseIfLast` itself, so a close never
        fires before the Deferreds of the calls it waited for.
        """
        self._lanes.discard(lane)
        if lane in self._idleLanes:
            self._idleLanes.remove(lane)
        self._fitThreads()
        if self._pending and not self._lanes and self._state == PoolState.RUNNING:
            self._pendingToThreads()
        if not lane.releasing:
            self._endCloseIfLast()

    def _nextForLane(self, lane: _Lane, canIdle: bool) -> _Call | None:
        """The next waiting call for a lane that finished one; None once it idled or closed (reactor thread).

        A waiting call only a worker thread can run (an interaction) turns the lane
        into a worker: the lane closes and the resource pool, whose maximum grows
        by one, takes the call, so the slot count stays within ``cp_max``.
        """
        pending = self._pending
        if pending:
            head = pending.popleft()
            head.waited = self._now() - head.enqueuedAt
            if head.kind <= CallKind.OPERATION:
                head.state = CallState.RUNNING
                head.worker = lane
                return head
            self._lanes.discard(lane)
            lane.retire(recycled=False)
            self._toThreads(head)
            return None
        if canIdle and not self._stopping:
            lane.state = LaneState.IDLE
            lane.idleSince = self._health.stamp()
            self._idleLanes.append(lane)
            return None
        lane.retire(recycled=False)
        return None

    # -- the public calls (reactor thread) -------------------------------------------------

    def runInteraction(
        self, interaction: Callable[Concatenate[Transaction, _P], _T], *args: _P.args, **kw: _P.kwargs
    ) -> Deferred[_T]:
        """Run ``interaction(Transaction, *args, **kw)`` in a worker; commit on return, roll back on raise.

        Fires with its return value or the exception it raised (the driver's own
        class for database errors).
        """
        if not callable(interaction):
            raise TypeError(f"interaction must be callable, not {type(interaction).__name__}")
        d = self._submit(CallKind.INTERACTION, interaction, args, kw)
        return traced(self, "runInteraction", (interaction,), d)

    def runWithConnection(
        self, func: Callable[Concatenate[Connection, _P], _T], *args: _P.args, **kw: _P.kwargs
    ) -> Deferred[_T]:
        """Run ``func(Connection, *args, **kw)`` in a worker; commit if it returns, roll back if it raises."""
        if not callable(func):
            raise TypeError(f"func must be callable, not {type(func).__name__}")
        d = self._submit(CallKind.WITH_CONNECTION, func, args, kw)
        return traced(self, "runWithConnection", (func,), d)

    def runQuery(self, *args: Any, **kw: Any) -> Deferred[list[Any]]:
        """Execute one statement (``cursor.execute(*args, **kw)``) and fire with ``fetchall()``."""
        if not args and "operation" not in kw and "sql" not in kw:
            raise TypeError("runQuery() needs the SQL statement as its first argument")
        if self._fastPath:
            return traced(self, "runQuery", args, self._submit(CallKind.QUERY, None, args, kw), kw)
        if self._ownRunInteraction:
            d = self._submit(CallKind.INTERACTION, self._runQuery, args, kw)
            return traced(self, "runQuery", args, d, kw)
        # As in Twisted: a subclass's runInteraction sees runQuery too.
        return self.runInteraction(self._runQuery, *args, **kw)

    def runOperation(self, *args: Any, **kw: Any) -> Deferred[None]:
        """Execute one statement (``cursor.execute(*args, **kw)``) and fire with None."""
        if not args and "operation" not in kw and "sql" not in kw:
            raise TypeError("runOperation() needs the SQL statement as its first argument")
        if self._fastPath:
            return traced(self, "runOperation", args, self._submit(CallKind.OPERATION, None, args, kw), kw)
        if self._ownRunInteraction:
            d = self._submit(CallKind.INTERACTION, self._runOperation, args, kw)
            return traced(self, "runOperation", args, d, kw)
        return self.runInteraction(self._runOperation, *args, **kw)

    def transaction(self) -> AsyncTransaction:
        """An async context manager holding one connection for a transaction (reactor thread).

        ``async with pool.transaction() as txn: await txn.execute(...)`` commits when
        the block ends normally and rolls back when it raises.
        """
        return tracedTransaction(self, AsyncTransaction(self))

    def _transactionOpened(self, txn: AsyncTransaction) -> None:
        """An ``async with pool.transaction()`` block began (reactor thread): a close must end it."""
        self._transactions.add(txn)

    def _transactionEnded(self, txn: AsyncTransaction) -> None:
        self._transactions.discard(txn)

    def statistics(self) -> PoolStatistics:
        """A snapshot of the pool (any thread may call it; no database work)."""
        threads = self._threads.statistics()
        holders = self._holders.snapshot()
        lanes = self._lanesNow()
        idleLanes = len(self._idleLanes)
        # A worker is busy from the moment its call starts until its outcome is on its way home.
        busyThreads = min(threads.workers, sum(h.current is not None for h in holders))
        opened, reconnects, recycled = self._counters.snapshot()
        return PoolStatistics(
            name=self.name or f"ConnectionPool-{self._number}",
            state=self._state.value,
            workers=threads.workers,
            connectionsOpen=sum(h.conn is not None for h in holders) + sum(x.conn is not None for x in lanes),
            busy=busyThreads + len(lanes) - idleLanes,
            idle=threads.workers - busyThreads + idleLanes,
            waiting=len(self._pending) + len(self._held) + threads.queued,
            longestWait=max(self._longestWait, threads.longestQueueWait),
            calls=self._calls,
            errors=self._errors,
            cancelled=self._cancelled,
            rejected=self._rejected,
            retries=self._retries,
            connectionsOpened=opened,
            reconnects=reconnects,
            recycled=recycled,
            lanes=len(lanes),
        )

    def _lanesNow(self) -> list[_Lane]:
        """A copy of the lane set, from any thread (the reactor may change it while it is copied)."""
        for _ in range(100):
            try:
                return list(self._lanes)
            except RuntimeError:  # "set changed size during iteration": copy it again
                continue
        return []

    # -- Twisted's per-thread connection API (worker threads) ----------------------------

    def _holderHere(self) -> ConnectionHolder:
        holder = currentHolder(self)
        if holder is None:
            raise RuntimeError(
                f"{self._label}: connect()/disconnect() must be called in one of the pool's worker threads "
                "(from a runInteraction/runWithConnection function)"
            )
        return holder

    def _connectionsByThread(self) -> dict[int, Any]:
        """{thread id: open connection} of the current workers (any thread)."""
        return {h.thread.ident: h.conn for h in self._holders.snapshot()
                if h.conn is not None and h.thread.ident is not None}

    def threadID(self) -> int:
        """The calling thread's id, the key of :attr:`connections` (Twisted's name; any thread)."""
        return threading.get_ident()

    @property
    def connections(self) -> Mapping[int, Any]:
        """Twisted's ``{thread id: connection}``: a live, read-only view of the workers' open connections.

        Twisted code reads it from a worker, as in ``self.connections.get(self.threadID())``
        before ``self.disconnect(conn)``; lanes (reactor-driven) are not in it.
        """
        return _ConnectionsView(self)

    def connect(self) -> Any:
        """This worker thread's DB-API connection, opened on first use (worker threads only)."""
        holder = self._holderHere()
        if holder.conn is None:
            return holder.open()
        return holder.conn

    def disconnect(self, conn: Any) -> None:
        """Close this worker thread's connection ``conn``; the next ``connect()`` opens a new one."""
        holder = self._holderHere()
        if conn is not holder.conn:
            raise ValueError("disconnect(): wrong connection for this thread")
        holder.discardConnection(broken=True)

    # -- Twisted's overridable bodies (worker threads) ------------------------------------

    def _close(self, conn: Any) -> None:
        """Close one of the pool's connections (its worker thread): at close, recycling, ``disconnect()``."""
        if self.noisy:
            _log.info("adbapi closing: %s", self._label)
        try:
            conn.close()
        except Exception as e:
            _log.warning("adbapi: %s: closing a connection failed: %s", self._label,
                         self._redactor.scrub(str(e)))

    def _runInteraction(self, interaction: Callable[..., _T], *args: Any, **kw: Any) -> _T:
        conn = self.connectionFactory(self)
        try:
            # Inside the try: a driver whose cursor() talks to the server (mysql.connector pings) fails
            # here on a dead connection, which must then be replaced like any other lost connection.
            trans = self.transactionFactory(self, conn)
            result = interaction(trans, *args, **kw)
            trans.close()
            self._markCommitting()
            conn.commit()
            return result
        except BaseException as e:
            recover(self, conn, e)
            raise

    def _runWithConnection(self, func: Callable[..., _T], *args: Any, **kw: Any) -> _T:
        conn = self.connectionFactory(self)
        try:
            result = func(conn, *args, **kw)
            self._markCommitting()
            conn.commit()
            return result
        except BaseException as e:
            recover(self, conn, e)
            raise

    def _runQuery(self, trans: Transaction, *args: Any, **kw: Any) -> list[Any]:
        trans.execute(*args, **kw)
        return trans.fetchall()  # type: ignore[no-any-return]

    def _runOperation(self, trans: Transaction, *args: Any, **kw: Any) -> None:
        trans.execute(*args, **kw)

    def _markCommitting(self) -> None:
        holder = currentHolder(self)
        if holder is not None:
            holder.committing = True

    # -- dispatch (reactor thread) ---------------------------------------------------------

    def _submit(self, kind: CallKind, func: Any, args: tuple[Any, ...], kw: dict[str, Any]) -> Deferred[Any]:
        if self._state is not PoolState.RUNNING:
            state = self._state
            if state == PoolState.NEW:
                self.start()
            else:
                return fail(PoolClosedError(f"{self._label} is {state}; no new calls are accepted"))
        call = _Call(self, kind, func, args, kw)
        if self._dispatch(call) and self._timeout is not None:
            call.deferred.addTimeout(self._timeout, self._clock)
        return call.deferred

    def _dispatch(self, call: _Call) -> bool:
        """Hand ``call`` to an idle lane, the workers, a new lane, or the lanes' queue; False if refused.

        Worker threads are the resource pool's: it starts one when a call needs
        it (within ``cp_max`` minus the lanes) and queues the call when all are
        busy; its workers take queued calls themselves.
        """
        if call.kind <= CallKind.OPERATION and self._laneSupport is not None and self._reactor.running:
            # A lane first (no thread hand-off), then an idle worker, then a new lane.
            if self._idleLanes:
                return self._startOnLane(call, self._idleLanes.pop())
            workers, busy = self._threadLoad()
            if workers > busy:
                return self._toThreads(call)
            if len(self._lanes) + workers < self.max:
                return self._startOnLane(call, self._newLane())
            if workers:
                return self._toThreads(call)
            return self._queueForLane(call, busy - workers)
        if self._laneSupport is None:
            return self._toThreads(call)  # the resource pool's maximum is cp_max: it starts or queues
        workers, busy = self._threadLoad()
        if workers > busy or workers + len(self._lanes) < self.max:
            return self._toThreads(call)
        if self._idleLanes:
            # Only a worker thread can run it (an interaction, or any call while the reactor is not
            # running, when a lane cannot make progress): the longest idle lane's slot becomes one.
            self._idleLanes.pop(0).retire(recycled=False)
            return self._toThreads(call)
        if workers or not self._lanes:
            return self._toThreads(call)
        # Every slot is a busy lane: the first to finish gives its slot to a worker for this call.
        return self._queueForLane(call, busy - workers)

    def _threadLoad(self) -> tuple[int, int]:
        """(workers, calls on them) as the reactor thread counts them, cheaply (reactor thread).

        The calls are those handed to the resource pool and not yet settled
        (running, queued, or finished with the outcome on its way). The workers
        are those with a holder, and at least as many as those calls can keep
        busy: the resource pool starts one for each, up to its maximum. So an
        idle worker is never counted busy for long, and a worker still starting
        is counted.
        """
        busy = len(self._threadCalls)
        return max(len(self._holders), min(busy, max(1, self.max - len(self._lanes)))), busy

    def _startOnLane(self, call: _Call, lane: _Lane) -> bool:
        call.state = CallState.RUNNING
        call.worker = lane
        lane.start(call)
        return True

    def _toThreads(self, call: _Call) -> bool:
        """Hand ``call`` to the worker threads, or hold it while an idle worker is still waking up.

        The resource pool wakes its most recently used idle worker for a call,
        but a second call made before that worker took the first could be taken
        by it, and the first by a colder one. So, while a call handed to an idle
        worker has not started and another worker is idle, later calls wait here
        (``_held``) and go on, in order, once it has started (``_started``): the
        first call gets the warmest connection, as the calls made one after the
        other expect. Under load (no idle worker) calls go straight to the
        resource pool's queue.
        """
        if self._held or (self._reactor.running and self._mustHold(1)):
            call.state = CallState.QUEUED
            self._held.append(call)
            self._pumpHeld()
            return True
        return self._submitThread(call)

    def _mustHold(self, waiting: int) -> bool:
        """True while the last call handed to the workers has not started and, with the ``waiting`` calls
        to go (held ones and the one at hand), some worker would still be idle."""
        waking = self._waking
        if waking is None:
            return False
        if waking.state is not CallState.QUEUED or waking.threadDeferred is None:
            self._waking = None
            return False
        workers, busy = self._threadLoad()
        if workers <= busy or busy + waiting > workers:
            # No idle worker, or more calls than workers: every worker gets one anyway, and the rest queue
            # behind them, first in, first out. (Holding them would make a burst start one call per turn.)
            return False
        # Ask its worker to say when it starts (serve() reads this after it marks the call RUNNING; one
        # of the two sees the other's write, and _started may come twice: it is idempotent).
        waking.announce = True
        if waking.state is not CallState.QUEUED:
            self._waking = None
            return False
        return True

    def _started(self, call: _Call) -> None:
        """A held-for call started on its worker (reactor thread, from serve() via callFromThread)."""
        if self._waking is call:
            self._waking = None
        self._pumpHeld()

    def _pumpHeld(self) -> None:
        """Hand the held calls to the workers, in order, while no woken worker is still on its way."""
        held = self._held
        while held:
            if self._mustHold(len(held)):
                return
            call = held.popleft()
            if call.deferred.called or call.state is not CallState.QUEUED:
                continue  # cancelled while held
            self._submitThread(call)

    def _submitThread(self, call: _Call) -> bool:
        """Run ``call`` on a worker thread (the resource pool queues it if every worker is busy)."""
        call.state = CallState.QUEUED
        call.outcome = None
        d = self._threads.run(serve, call)
        if d.called:
            refused: list[Failure] = []
            d.addErrback(refused.append)
            self._rejected += 1
            call.state = CallState.CANCELLED
            if refused and refused[0].check(QueueFull):
                call.deferred.errback(
                    PoolOverloadedError(f"{self._label}: {self._maxWaiting} calls are already waiting")
                )
            else:
                call.deferred.errback(PoolClosedError(f"{self._label} cannot take the call: {refused}"))
            return False
        call.threadDeferred = d
        self._threadCalls.add(call)
        self._waking = call
        d.addCallbacks(self._threadDone, self._threadFailed, callbackArgs=(call,), errbackArgs=(call,))
        return True

    def _threadDone(self, outcome: tuple[bool, Any, int], call: _Call) -> None:
        """A worker finished ``call`` (reactor thread, from the resource pool's Deferred)."""
        call.threadDeferred = None
        if call not in self._threadCalls:
            return  # settled already (a close that could not wait for the reactor), or given up on
        self._threadCalls.discard(call)
        call.state = CallState.DONE
        if self._held:
            self._pumpHeld()
        self._settle(call, *outcome)

    def _threadFailed(self, failure: Failure, call: _Call) -> None:
        """The resource pool failed ``call`` without running it to the end (reactor thread).

        A wait past ``cp_wait_timeout`` (:class:`PoolTimeoutError`), a close that
        gave up (:class:`PoolAbandonedError`, :class:`PoolClosedError`), or a
        cancel (held by the resource pool until the call stopped).
        """
        call.threadDeferred = None
        if call not in self._threadCalls:
            return
        self._threadCalls.discard(call)
        call.state = CallState.DONE
        if self._held:
            self._pumpHeld()
        d = call.deferred
        if d.called:
            return  # cancelled: the caller has had its CancelledError
        if failure.check(CancelledError):
            if call.kind != CallKind.RESERVED and call.cancelRequested:
                return  # its Deferred.cancel() errbacks it as soon as the canceller returns
        elif failure.check(PoolTimeoutError):
            self._rejected += 1
        else:
            self._errors += 1
        d.errback(failure)

    def _queueForLane(self, call: _Call, threadsQueued: int) -> bool:
        """Put ``call`` in the lanes' waiting queue; False (and the call failed) when ``cp_max_waiting``
        refuses it."""
        if self._maxWaiting is not None and len(self._pending) + threadsQueued >= self._maxWaiting:
            self._rejected += 1
            call.state = CallState.CANCELLED
            call.deferred.errback(
                PoolOverloadedError(f"{self._label}: {self._maxWaiting} calls are already waiting")
            )
            return False
        call.state = CallState.QUEUED
        call.enqueuedAt = self._now()
        self._pending.append(call)
        if self._waitTimeout is not None:
            call.waitTimer = self._clock.callLater(self._waitTimeout, self._waitExpired, call)
        return True

    def _waitExpired(self, call: _Call) -> None:
        call.waitTimer = None
        if call.state is not CallState.QUEUED or call not in self._pending:
            return
        self._pending.remove(call)
        call.state = CallState.CANCELLED
        self._rejected += 1
        if not call.deferred.called:
            call.deferred.errback(
                PoolTimeoutError(f"{self._label}: no connection became free within {self._waitTimeout} s")
            )

    def _cancelCall(self, call: _Call) -> None:
        """The canceller of every call's Deferred (reactor thread)."""
        self._cancelled += 1
        self._stopCall(call)

    def _stopCall(self, call: _Call) -> None:
        """Unqueue ``call``, or stop its statement on the server (reactor thread)."""
        state = call.state
        threadDeferred = call.threadDeferred
        if threadDeferred is not None:
            if not call.cancelRequested:
                call.cancelRequested = True
                # Queued: the resource pool drops it. Running: it calls _interrupt (a cancel sent on the
                # server) and holds its own Deferred until the call has stopped.
                self._interrupting = call
                try:
                    threadDeferred.cancel()
                finally:
                    self._interrupting = None
        elif state is CallState.QUEUED and call in self._pending:
            self._pending.remove(call)
            call.state = CallState.CANCELLED
        elif state is CallState.QUEUED and call in self._held:
            self._held.remove(call)
            call.state = CallState.CANCELLED
        elif state is CallState.RUNNING and isinstance(call.worker, _Lane) and not call.cancelRequested:
            call.cancelRequested = True
            call.worker.cancel(call)
        if state is CallState.BACKOFF:
            self._backingOff.discard(call)
            call.state = CallState.CANCELLED
            if call.retryTimer is not None and call.retryTimer.active():
                call.retryTimer.cancel()
        if call.waitTimer is not None and call.waitTimer.active():
            call.waitTimer.cancel()

    def _interrupt(self, holder: ConnectionHolder, thread: threading.Thread) -> None:
        """The resource pool's ``interrupt`` hook (reactor thread, in ``_stopCall``): cancel on the server.

        The cancel goes out as side work, repeated until the call's statements
        are over; the worker waits for it to stop before it rolls back or runs
        anything else on the connection (``_cancel.py``).
        """
        call = self._interrupting
        if call is None or not self._adapter.canCancel or not holder.startCancel(call):
            return
        done = call.cancelDone
        assert done is not None
        # The worker waits for cancelDone before it touches the connection again: it is set by
        # sendCancel's last act, and by the report even if the side work never ran.
        self._sideCall(_setter(done), sendCancel, self, holder, call)

    # -- results (reactor thread) --------------------------------------------------------------

    def _settle(self, call: _Call, ok: bool, value: Any, flags: int) -> None:
        """Fire one finished call's Deferred, or schedule its retry (reactor thread)."""
        if call.waitTimer is not None:
            if call.waitTimer.active():
                call.waitTimer.cancel()
            call.waitTimer = None
        if call.waited > self._longestWait:
            self._longestWait = call.waited
        d = call.deferred
        if d.called:  # cancelled while it ran: the outcome has nobody to go to
            return
        self._calls += 1
        if ok:
            d.callback(value)
            return
        retry = self._retry
        if (
            retry is not None
            and flags
            and self._state == PoolState.RUNNING
            and retry.shouldRetry(call.attempt, bool(flags & FLAG_CONFLICT),
                                  bool(flags & FLAG_LOST_BEFORE_COMMIT))
        ):
            self._scheduleRetry(call, value, retry)
            return
        self._errors += 1
        d.errback(Failure(value))


    # -- retries (reactor thread) --------------------------------------------------------------

    def _scheduleRetry(self, call: _Call, error: BaseException, retry: RetryPolicy) -> None:
        delay = retry.delay(call.attempt)
        _log.info("adbapi: %s: attempt %d failed with %s; retrying in %.3f s", self._label, call.attempt,
                  type(error).__name__, delay)
        call.attempt += 1
        call.state = CallState.BACKOFF
        call.lastFailure = error
        call.worker = None
        call.cancelRequested = False
        call.statementOver = call.cancelDone = None
        self._retries += 1
        self._backingOff.add(call)
        call.retryTimer = self._clock.callLater(delay, self._retryNow, call)

    def _retryNow(self, call: _Call) -> None:
        call.retryTimer = None
        self._backingOff.discard(call)
        if call.state is not CallState.BACKOFF or call.deferred.called:
            return
        if self._state != PoolState.RUNNING:
            self._finishBackoffOnClose(call)
            return
        call.waited = 0.0
        self._dispatch(call)

    def _finishBackoffOnClose(self, call: _Call) -> None:
        self._backingOff.discard(call)
        if call.retryTimer is not None and call.retryTimer.active():
            call.retryTimer.cancel()
        call.state = CallState.CANCELLED
        if not call.deferred.called and call.lastFailure is not None:
            self._errors += 1
            call.deferred.errback(Failure(call.lastFailure))

    # -- idle timeout (reactor thread) -----------------------------------------------------------

    def _scheduleIdleCheck(self) -> None:
        idleTimeout = self._health.idleTimeout
        assert idleTimeout is not None
        self._idleCheck = self._clock.callLater(idleTimeout / 2, self._checkIdle)

    def _checkIdle(self) -> None:
        """Retire workers and lanes idle ``cp_idle_timeout`` (closing their connections), to ``cp_min``."""
        self._idleCheck = None
        health = self._health
        idleTimeout = health.idleTimeout
        if self._state != PoolState.RUNNING or idleTimeout is None:
            return
        now = self._clock.seconds()
        threads = self._threads
        workers = threads.statistics().workers
        surplus = workers + len(self._lanes) - self.min
        if surplus > 0 and workers:
            # The resource pool retires its longest idle workers down to its minimum: for this round, the
            # minimum that keeps cp_min slots (lanes included).
            floor = max(0, workers - surplus)
            usual = threads.min
            if floor != usual:
                threads.adjustPoolsize(minthreads=floor)
            retired = threads.retireIdle(idleTimeout)
            if floor != usual:
                threads.adjustPoolsize(minthreads=usual)
            if retired:
                self._counters.recycled(retired)
            surplus -= retired
        retiredLanes: list[_Lane] = []
        # The idle stack is LIFO: the longest idle sit at the bottom.
        while surplus > 0 and self._idleLanes and health.idleExpired(self._idleLanes[0].idleSince, now):
            retiredLanes.append(self._idleLanes.pop(0))
            surplus -= 1
        for lane in retiredLanes:
            lane.retire(recycled=True)
        self._scheduleIdleCheck()

    # -- PostgreSQL beyond request and response (``_listen.py``, ``_copy.py``; reactor thread) --------

    def listen(self, channel: str, *, maxQueue: int = 10_000) -> Deferred[Any]:
        """``adbapi.listen(self, channel)``: a Deferred firing with a ``Listener`` once the server listens."""
        from adbapi._listen import listen
        return listen(self, channel, maxQueue=maxQueue)

    def notify(self, channel: str, payload: str = "") -> Deferred[None]:
        """``adbapi.notify(self, channel, payload)``: ``pg_notify`` through the pool."""
        from adbapi._listen import notify
        return notify(self, channel, payload)

    def copyIn(self, table: str, rows: Any, *, columns: Any = None, schema: Any = None,
               binary: bool = False) -> Deferred[int]:
        """``adbapi.copyIn(self, table, rows)``: ``COPY ... FROM STDIN``, fires with the row count."""
        from adbapi._copy import copyIn
        return copyIn(self, table, rows, columns=columns, schema=schema, binary=binary)

    def copyOut(self, query: str, params: Any = None, *, raw: bool = False, maxBatches: int = 4) -> Any:
        """``adbapi.copyOut(self, query)``: a ``CopyOut`` streaming ``COPY (query) TO STDOUT``."""
        from adbapi._copy import copyOut
        return copyOut(self, query, params, raw=raw, maxBatches=maxBatches)

