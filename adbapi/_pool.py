"""ConnectionPool: Twisted's ``adbapi.ConnectionPool``, correct under failure and cancellable.

Threads and state
-----------------
- The **reactor thread** calls the public methods, owns every Deferred, the
  pool's lifecycle state and the counters that only it updates.
- **Worker threads** (``_worker._Worker``) each own at most one connection and
  run one call at a time.
- **Lanes** (``_lane._Lane``, psycopg2 only) are slots whose nonblocking
  connection the reactor thread drives for runQuery/runOperation; they count
  against ``cp_max`` with the workers (``_lane.py`` explains them).
- **Side threads** (``self._side``, a ``deferthreads.ThreadPool`` named
  ``PoolThread-<name>-side``) run side work: cancel requests, lanes' connects
  and big fetches, the release of abandoned lanes' connections (``_sideCall``).
  It starts with the pool and is drained (its threads joined) before a close
  fires; a close that gives up at its deadline leaves it to drain on its own.
- ``self._lock`` (a plain ``threading.Lock``) guards what both sides touch: the
  waiting queue ``_pending``, the idle stack ``_idle``, the worker set
  ``_workers``, ``_stopping``, every dispatched call's ``state`` and the counters
  workers bump. It is held only for a few list operations, never across DB work.
- Results travel back through ``_results`` (a deque) and one coalesced
  ``callFromThread(self._flushResults)`` per burst: workers never fire Deferreds.

Lifecycle: ``new`` -> ``running`` (on reactor start or first call) ->
``closing`` (``close()`` or ``before shutdown``: no new calls, accepted calls
finish, connections close in their threads) -> ``closed`` (calls errback at once;
``start()`` may reopen it; Twisted's cannot be restarted).

The module is longer than most here on purpose: dispatch, the hand-off of
results, the lifecycle and the failure handling all read and write the state
under ``_lock`` described above, and keeping them in one class keeps every
access to that state in one place. The checking of the ``cp_*`` keywords lives in
``_options.py``, the threads in ``_worker.py``, the lanes in ``_lane.py``.
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
from adbapi._cancel import sendCancel
from adbapi._dispatch import CallKind, CallState
from adbapi._drivers import DriverAdapter, adapterFor
from adbapi._errors import PoolAbandonedError, PoolClosedError, PoolOverloadedError, PoolTimeoutError
from adbapi._health import HealthPolicy
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
from adbapi._stats import PoolState, PoolStatistics
from adbapi._telemetry import PoolTelemetry, traced, tracedTransaction
from adbapi._worker import (
    _Call,
    _Worker,
)
from adbapi._wrappers import Connection, Transaction
from deferthreads import ThreadPool, ThreadPoolStopped, drainThreadPool
from reactor import Deferred, Failure, fail, succeed

__all__ = ["ConnectionPool"]

_P = ParamSpec("_P")
_T = TypeVar("_T")

_log = logging.getLogger("adbapi")



# Longest time a finished call's outcome may wait for the reactor while calls are queued.
_BACKLOG_FLUSH = 0.002
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
    """``ConnectionPool.connections``: thread id -> that worker's open connection, read under the lock."""

    __slots__ = ("_pool",)

    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool

    def _snapshot(self) -> dict[int, Any]:
        pool = self._pool
        with pool._lock:
            workers = list(pool._workers)
        return {w.thread.ident: w.conn for w in workers if w.conn is not None and w.thread.ident is not None}

    def __getitem__(self, threadID: int) -> Any:
        return self._snapshot()[threadID]

    def __iter__(self) -> Iterator[int]:
        return iter(self._snapshot())

    def __len__(self) -> int:
        return len(self._snapshot())


class ConnectionPool:
    """A pool of DB-API connections, each owned by one worker thread; Twisted-compatible.

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

        # Shared with workers, under _lock:
        self._lock = threading.Lock()
        self._pending: collections.deque[_Call] = collections.deque()
        self._idle: list[_Worker] = []
        self._workers: set[_Worker] = set()
        # Lanes are created, used and closed in the reactor thread; the lock guards these two because
        # workers and statistics() count them:
        self._lanes: set[_Lane] = set()
        self._idleLanes: list[_Lane] = []
        self._stopping = False
        self._connectionsOpened = 0
        self._reconnects = 0
        self._recycled = 0
        self._workerCount = 0
        self._laneCount = 0
        # Worker -> reactor hand-off (no lock: deque appends/pops are atomic; _flushScheduled is set by
        # workers and cleared by the reactor before it drains, so a race costs an empty flush, never a
        # stranded outcome):
        self._results: collections.deque[Any] = collections.deque()
        self._flushScheduled = False
        # Wake the reactor for each outcome only when fewer calls than this are waiting.
        self._lowWater = max(2, self.max)
        self._backlogTimer: Any = None
        self._local = threading.local()
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
        with self._lock:
            workers, idle, waiting = len(self._workers), len(self._idle), len(self._pending)
            lanes, idleLanes = len(self._lanes), len(self._idleLanes)
        laneText = f" lanes={lanes}" if self._laneSupport is not None else ""
        return (
            f"<ConnectionPool {self._label} [{self._redactor.describe()}] {self._state} "
            f"workers={workers}{laneText} busy={workers - idle + lanes - idleLanes} waiting={waiting}>"
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
        with self._lock:
            self._stopping = False
            # With lanes, slots open on demand: a worker only when a call needs a thread.
            wanted = 0 if self._laneSupport is not None else self.min
            fresh = [self._newWorkerLocked() for _ in range(max(0, wanted - len(self._workers)))]
            now = self._health.stamp()
            for worker in fresh:
                worker.idleSince = worker.lastUsed = now
            self._idle.extend(fresh)
        for worker in fresh:
            worker.thread.start()
        self.shutdownID = self._reactor.addSystemEventTrigger("before", "shutdown", self._shutdown)
        if self._health.idleTimeout is not None:
            self._scheduleIdleCheck()

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
        with self._lock:
            self._stopping = True
            idle, self._idle[:] = self._idle[:], []
            workers = list(self._workers)
            idleLanes, self._idleLanes[:] = self._idleLanes[:], []
        for worker in idle:
            worker.inbox.put(None)
        for lane in idleLanes:
            lane.retire(recycled=False)
        with self._lock:
            slots = len(self._workers) + len(self._lanes)
        timeout = self._shutdownTimeout
        if not slots:
            if self._state == PoolState.CLOSING:
                self._stopSideThenClose()
        elif not self._reactor.running:
            # Nothing will deliver the exit notices until the reactor runs: wait here, within the deadline.
            deadline = None if timeout is None else time.monotonic() + timeout
            for worker in workers:
                if worker.thread.is_alive() and worker.thread is not threading.current_thread():
                    worker.thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            self._flushResults()
            if self._state == PoolState.CLOSING and timeout is not None:
                self._closeExpired(timeout)
        elif timeout is not None:
            self._closeDeadline = self._clock.callLater(timeout, self._closeExpired, timeout)
        return d

    def _closeExpired(self, timeout: float | None) -> None:
        """The shutdown timeout passed with slots still busy (reactor thread): stop waiting for them.

        Running statements are asked to stop on the server; the workers and lanes
        still busy are forgotten (a worker finishes its call, whose outcome is
        dropped, then closes its connection and exits; so does a connect stuck in
        the driver, whenever it returns), every Deferred they held errbacks, and
        the close ends. The pool gets a new waiting queue and idle stack, so a
        forgotten worker never serves a later run of the pool.
        """
        self._closeDeadline = None
        if self._results:
            self._flushResults()  # outcomes that came home before the deadline are delivered as such
        if self._state != PoolState.CLOSING:
            return
        with self._lock:
            workers = list(self._workers)
            self._workers.clear()
            lanes = list(self._lanes)
            self._lanes.clear()
            self._idleLanes.clear()
            current = (w.current for w in workers)
            running = [c for c in current if c is not None and c.state is CallState.RUNNING]
            oldPending, oldIdle = self._pending, self._idle
            stranded = list(oldPending)
            oldPending.clear()
            oldIdle.clear()
            self._pending = collections.deque(stranded)
            self._idle = []
        _log.warning("adbapi: %s: close gave up after %s s: %d worker(s) and %d lane(s) were still busy",
                     self._label, timeout, len(workers), len(lanes))
        for worker in workers:
            worker.inbox.put(None)  # one that goes idle (in the old stack) exits at once
        why = (f"{self._label} closed while this call was running: the shutdown timeout ({timeout} s) "
               "passed; the statement was asked to stop, and whether its work committed is unknown")
        for txn in list(self._transactions):
            txn._abandonByPool(PoolAbandonedError(why))  # the operations it issued, first
        for call in running:
            self._stopCall(call)  # stops the statement on the server; the worker skips what is left
            if not call.deferred.called:
                self._errors += 1
                call.deferred.errback(PoolAbandonedError(why))
        for lane in lanes:
            laneCall = lane.abandon()
            if laneCall is not None and not laneCall.deferred.called:
                self._errors += 1
                laneCall.deferred.errback(PoolAbandonedError(why))
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
        if self._backlogTimer is not None and self._backlogTimer.active():
            self._backlogTimer.cancel()
        self._backlogTimer = None
        # Calls still waiting with no slot left to run them (the reactor stopped before they could
        # start) are not dropped silently.
        with self._lock:
            stranded = list(self._pending)
            self._pending.clear()
            for call in stranded:
                call.state = CallState.CANCELLED
        for call in stranded:
            if call.waitTimer is not None and call.waitTimer.active():
                call.waitTimer.cancel()
            if not call.deferred.called:
                call.deferred.errback(PoolClosedError(f"{self._label} closed before this call could run"))
        waiters, self._closeWaiters = self._closeWaiters, []
        for d in waiters:
            d.callback(None)

    def _newLaneLocked(self) -> _Lane:
        assert self._laneSupport is not None
        self._laneCount += 1
        lane = _Lane(self, self._laneCount, self._laneSupport)
        self._lanes.add(lane)
        return lane

    def _laneClosed(self, lane: _Lane) -> None:
        """A lane closed (reactor thread): forget it; the last slot to go ends a close.

        A lane that closes while it finishes a call (``_Lane._done``) fires that
        call first and then calls :meth:`_endCloseIfLast` itself, so a close never
        fires before the Deferreds of the calls it waited for.
        """
        with self._lock:
            self._lanes.discard(lane)
            if lane in self._idleLanes:
                self._idleLanes.remove(lane)
        if not lane.releasing:
            self._endCloseIfLast()

    def _endCloseIfLast(self, queued: bool = False) -> None:
        with self._lock:
            remaining = len(self._workers) + len(self._lanes)
        # Outcomes still waiting in _results are fired first: a worker queues its exit notice after its
        # last outcome, so the flush that fires them comes back here once they are all out.
        if remaining != 0 or self._state != PoolState.CLOSING or self._results:
            return
        if queued or not self._reactor.running:
            self._stopSideThenClose()
        else:
            # Async-transaction operations hand their outcomes back with callFromThread, outside
            # _results: a worker queued those before its exit notice, so behind them, the close fires
            # after their Deferreds.
            self._reactor.callFromThread(self._endCloseIfLast, True)

    def _nextForLane(self, lane: _Lane, canIdle: bool) -> _Call | None:
        """The next waiting call for a lane that finished one; None once it idled or closed (reactor thread).

        A waiting call only a worker thread can run (an interaction) turns the lane
        into a worker: the lane closes and a new worker takes the call, so the
        slot count stays within ``cp_max`` and the queue stays in order.
        """
        convert: tuple[_Worker, _Call] | None = None
        with self._lock:
            pending = self._pending
            if pending:
                head = pending.popleft()
                head.waited = self._now() - head.enqueuedAt
                if head.kind <= CallKind.OPERATION:
                    head.state = CallState.RUNNING
                    head.worker = lane
                    return head
                self._lanes.discard(lane)
                worker = self._newWorkerLocked()
                head.state = CallState.ASSIGNED
                convert = (worker, head)
            elif canIdle and not self._stopping:
                lane.state = LaneState.IDLE
                lane.idleSince = self._health.stamp()
                self._idleLanes.append(lane)
                return None
        if convert is not None:
            worker, head = convert
            worker.thread.start()
            worker.inbox.put(head)
            lane.retire(recycled=False)
        else:
            lane.retire(recycled=False)
        return None

    def _newWorkerLocked(self) -> _Worker:
        self._workerCount += 1
        worker = _Worker(self, self._workerCount)
        self._workers.add(worker)
        return worker

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

    def statistics(self) -> PoolStatistics:
        """A snapshot of the pool (any thread may call it; no database work)."""
        with self._lock:
            workers = list(self._workers)
            idle = len(self._idle)
            lanes = list(self._lanes)
            idleLanes = len(self._idleLanes)
            waiting = len(self._pending)
            opened, reconnects, recycled = self._connectionsOpened, self._reconnects, self._recycled
        return PoolStatistics(
            name=self.name or f"ConnectionPool-{self._number}",
            state=self._state.value,
            workers=len(workers),
            connectionsOpen=sum(w.conn is not None for w in workers) + sum(x.conn is not None for x in lanes),
            busy=len(workers) - idle + len(lanes) - idleLanes,
            idle=idle + idleLanes,
            waiting=waiting,
            longestWait=self._longestWait,
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

    # -- Twisted's per-thread connection API (worker threads) ----------------------------

    def _currentWorker(self) -> _Worker:
        worker: _Worker | None = getattr(self._local, "worker", None)
        if worker is None:
            raise RuntimeError(
                f"{self._label}: connect()/disconnect() must be called in one of the pool's worker threads "
                "(from a runInteraction/runWithConnection function)"
            )
        return worker

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
        worker = self._currentWorker()
        if worker.conn is None:
            return worker._open()
        return worker.conn

    def disconnect(self, conn: Any) -> None:
        """Close this worker thread's connection ``conn``; the next ``connect()`` opens a new one."""
        worker = self._currentWorker()
        if conn is not worker.conn:
            raise ValueError("disconnect(): wrong connection for this thread")
        worker.discardConnection(broken=True)

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
        worker = getattr(self._local, "worker", None)
        if worker is not None:
            worker.committing = True

    # -- dispatch (reactor thread) ---------------------------------------------------------

    def _submit(self, kind: int, func: Any, args: tuple[Any, ...], kw: dict[str, Any]) -> Deferred[Any]:
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
        """Hand ``call`` to an idle lane or worker, a new one, or the waiting queue; False if refused."""
        fresh = False
        lane: _Lane | None = None
        worker: _Worker | None = None
        retired: _Lane | None = None
        queued: bool | None = None
        with self._lock:
            if call.kind <= CallKind.OPERATION and self._laneSupport is not None and self._reactor.running:
                # A lane first (no thread hand-off), then an idle worker, then a new lane.
                if self._idleLanes:
                    lane = self._idleLanes.pop()
                elif self._idle:
                    worker = self._idle.pop()
                elif len(self._workers) + len(self._lanes) < self.max:
                    lane = self._newLaneLocked()
                else:
                    queued = self._queueLocked(call)
                if lane is not None:
                    call.state = CallState.RUNNING
                    call.worker = lane
            elif self._idle:
                worker = self._idle.pop()
            elif len(self._workers) + len(self._lanes) < self.max:
                worker = self._newWorkerLocked()
                fresh = True
            elif self._idleLanes:
                # Only a worker thread can run it (an interaction, or any call while the reactor is not
                # running, when a lane cannot make progress): the longest idle lane's slot becomes one.
                retired = self._idleLanes.pop(0)
                self._lanes.discard(retired)
                worker = self._newWorkerLocked()
                fresh = True
            else:
                queued = self._queueLocked(call)
            if worker is not None:
                call.state = CallState.ASSIGNED
        if lane is not None:
            lane.start(call)
            return True
        if worker is not None:
            if retired is not None:
                retired.retire(recycled=False)
            if fresh:
                worker.thread.start()
            worker.inbox.put(call)
            return True
        if queued:
            return True
        self._rejected += 1
        call.state = CallState.CANCELLED
        call.deferred.errback(
            PoolOverloadedError(f"{self._label}: {self._maxWaiting} calls are already waiting")
        )
        return False

    def _queueLocked(self, call: _Call) -> bool:
        """Put ``call`` in the waiting queue (pool lock held); False when ``cp_max_waiting`` refuses it."""
        if self._maxWaiting is not None and len(self._pending) >= self._maxWaiting:
            return False
        # The common case under load: a worker or lane takes it from the queue when it finishes a call.
        call.state = CallState.QUEUED
        call.enqueuedAt = self._now()
        self._pending.append(call)
        if self._backlogTimer is None:
            self._backlogTimer = self._reactor.callLater(_BACKLOG_FLUSH, self._backlogFlush)
        if self._waitTimeout is not None:
            call.waitTimer = self._clock.callLater(self._waitTimeout, self._waitExpired, call)
        return True

    def _waitExpired(self, call: _Call) -> None:
        call.waitTimer = None
        with self._lock:
            if call.state is not CallState.QUEUED:
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
        side: threading.Event | None = None
        cancelOn: _Worker | None = None
        laneToCancel: _Lane | None = None
        with self._lock:
            state = call.state
            if state is CallState.QUEUED:
                self._pending.remove(call)
                call.state = CallState.CANCELLED
            elif state is CallState.ASSIGNED:
                call.state = CallState.CANCELLED
            elif state is CallState.RUNNING and not call.cancelRequested:
                call.cancelRequested = True
                worker = call.worker
                if isinstance(worker, _Lane):
                    laneToCancel = worker
                elif worker is not None and self._adapter.canCancel:
                    call.statementOver = threading.Event()
                    side = call.cancelDone = threading.Event()
                    cancelOn = worker
        if side is not None:
            # The worker waits for cancelDone before it touches the connection again: it is set by
            # sendCancel's last act, and by the report even if the side work never ran.
            self._sideCall(_setter(side), sendCancel, self, cancelOn, call)
        if laneToCancel is not None:
            laneToCancel.cancel(call)
        if state is CallState.BACKOFF:
            self._backingOff.discard(call)
            call.state = CallState.CANCELLED
            if call.retryTimer is not None and call.retryTimer.active():
                call.retryTimer.cancel()
        if call.waitTimer is not None and call.waitTimer.active():
            call.waitTimer.cancel()

    # -- results (worker -> reactor) ---------------------------------------------------------

    def _deliver(self, item: Any) -> None:
        """Queue a worker's outcome for the reactor thread (worker threads; coalesces wake-ups).

        Waking the reactor costs a pipe write and a GIL hand-off per wake-up, so
        while enough calls are waiting (the workers have work without the reactor)
        outcomes accumulate and go home in one batch: when the waiting queue runs
        low, when a worker goes idle, or at the latest on the reactor's backlog
        timer (``_BACKLOG_FLUSH`` seconds), whichever comes first.
        """
        self._results.append(item)
        if not self._flushScheduled and len(self._pending) < self._lowWater:
            self._flushScheduled = True
            self._reactor.callFromThread(self._flushResults)

    def _backlogFlush(self) -> None:
        """The backlog timer (reactor thread): bound how long a batched outcome can wait."""
        self._backlogTimer = None
        if self._results:
            self._flushResults()
        if self._pending and self._backlogTimer is None and self._state != PoolState.CLOSED:
            self._backlogTimer = self._reactor.callLater(_BACKLOG_FLUSH, self._backlogFlush)

    def _flushResults(self) -> None:
        """Fire the Deferreds of finished calls, in completion order (reactor thread)."""
        self._flushScheduled = False
        results = self._results
        settle = self._settle
        while results:
            call, ok, value, flags = results.popleft()
            if call is None:  # a worker exited: its last act was to queue this
                exited: _Worker = ok
                exited.thread.join(1.0)
                self._workerExited()
                continue
            settle(call, ok, value, flags)

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

    def _workerExited(self) -> None:
        if self._state == PoolState.CLOSING:
            self._endCloseIfLast()

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
        """Retire workers idle for ``cp_idle_timeout`` (closing their connections), down to ``cp_min``."""
        self._idleCheck = None
        health = self._health
        if self._state != PoolState.RUNNING or health.idleTimeout is None:
            return
        now = self._clock.seconds()
        retired: list[_Worker] = []
        retiredLanes: list[_Lane] = []
        with self._lock:
            surplus = len(self._workers) + len(self._lanes) - self.min
            # The idle stacks are LIFO: the longest idle sit at the bottom.
            while surplus > 0 and self._idle and health.idleExpired(self._idle[0].idleSince, now):
                retired.append(self._idle.pop(0))
                surplus -= 1
            while surplus > 0 and self._idleLanes and health.idleExpired(self._idleLanes[0].idleSince, now):
                retiredLanes.append(self._idleLanes.pop(0))
                surplus -= 1
        for lane in retiredLanes:
            lane.retire(recycled=True)
        for worker in retired:
            if worker.conn is not None:
                with self._lock:
                    self._recycled += 1
            worker.inbox.put(None)
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
