"""ConnectionPool: Twisted's ``adbapi.ConnectionPool``, correct under failure and cancellable.

This module is the Twisted-facing facade: the constructor and its ``cp_*``
options, the public methods (``runQuery``, ``runOperation``,
``runInteraction``, ``runWithConnection``, ``start``, ``close``,
``finalClose``, ``connect``, ``disconnect``, ``threadID``, ``connections``...)
and the hooks subclasses override as in Twisted (``connect``, ``_close``,
``_runInteraction``, ``_runWithConnection``, ``_runQuery``, ``_runOperation``).
The work is done by parts with one job each, which share a
:class:`~adbapi._context.PoolContext` (``self.context``) and never touch each
other's private attributes:

- ``_router.CallRouter``: where each call goes and how its outcome comes back
  (queues, held calls, the idle lane stack, retries, wait timeouts, cancels,
  idle checks, the call counters), following the pure rules of ``_dispatch.py``;
- the slots it talks to through ``_slots.Slot``: ``_slots.ThreadSlots`` (the
  worker threads: a ``deferthreads.ResourcePool`` of ``_holder.ConnectionHolder``)
  and ``_lane._Lane`` (psycopg2 connections the reactor drives);
- ``_health.HealthPolicy``: lifetime, ping and idle rules for both kinds of slot;
- ``_lifecycle.PoolLifecycle``: new -> running -> closing -> closed, the close
  and its deadline;
- ``_side.SideWork``: the side threads (cancels, lane connects and fetches).

Threads: the **reactor thread** calls the public methods and owns every
Deferred; **worker threads** (``PoolThread-<name>-worker-<n>``) run the calls
and Twisted's per-thread hooks; **side threads** (``PoolThread-<name>-side``)
run side work. adbapi makes no thread of its own beyond those pools.

Lifecycle: ``new`` -> ``running`` (on reactor start or first call) ->
``closing`` (``close()`` or ``before shutdown``: no new calls, accepted calls
finish, connections close in their threads) -> ``closed`` (calls errback at once;
``start()`` may reopen it; Twisted's cannot be restarted).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from types import ModuleType
from typing import Any, Concatenate, ParamSpec, TypeVar

from adbapi._async import AsyncTransaction
from adbapi._call import _Call
from adbapi._context import PoolContext
from adbapi._dispatch import CallKind
from adbapi._drivers import DriverAdapter, adapterFor
from adbapi._errors import PoolClosedError
from adbapi._health import HealthPolicy
from adbapi._here import currentHolder
from adbapi._holder import ConnectionHolder
from adbapi._lane import LaneSupport, _Lane
from adbapi._lifecycle import PoolLifecycle
from adbapi._options import (
    TWISTED_ARGS,
    checkTimeout,
    checkTwistedOptions,
    loadModule,
    poolOptions,
    popOptions,
)
from adbapi._recovery import recover
from adbapi._redact import Redactor
from adbapi._router import CallRouter
from adbapi._side import SideWork
from adbapi._stats import ConnectionCounters, PoolState, PoolStatistics
from adbapi._telemetry import PoolTelemetry, observe, traced, tracedTransaction
from adbapi._wrappers import Connection, Transaction
from reactor import Deferred, fail

__all__ = ["ConnectionPool"]

_P = ParamSpec("_P")
_T = TypeVar("_T")

_log = logging.getLogger("adbapi")

_poolCounter = 0


def _defaultReactor() -> Any:
    from reactor import getReactor

    return getReactor()


class _ConnectionsView(Mapping[int, Any]):
    """``ConnectionPool.connections``: thread id -> that worker's open connection (a live view)."""

    __slots__ = ("_snapshot",)

    def __init__(self, snapshot: Callable[[], dict[int, Any]]) -> None:
        self._snapshot = snapshot

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
        self._timeout = extra.timeout
        clock = extra.clock

        _poolCounter += 1
        self._number = _poolCounter
        threadPrefix = f"PoolThread-{self.name or f'ConnectionPool-{self._number}'}"
        label = f"{self.name or f'ConnectionPool-{self._number}'} ({self.dbapiName})"
        # Subclasses that override Twisted's hooks keep them on every call.
        cls = type(self)
        self._ownRunInteraction = cls.runInteraction is ConnectionPool.runInteraction
        ownConnect = cls.connect is ConnectionPool.connect
        ownClose = cls._close is ConnectionPool._close
        self._fastPath = (
            self._ownRunInteraction
            and cls._runInteraction is ConnectionPool._runInteraction
            and cls._runQuery is ConnectionPool._runQuery
            and cls._runOperation is ConnectionPool._runOperation
            and ownConnect
            and self.connectionFactory is Connection
            and self.transactionFactory is Transaction
        )
        #: What the pool's parts share (``_context.py``): they read it, not the pool's private attributes.
        self.context = PoolContext(
            label=label,
            threadPrefix=threadPrefix,
            adapter=adapterFor(self.dbapi),
            # One health policy (lifetime, ping, idle) for worker and lane connections alike.
            health=HealthPolicy(
                clock.seconds,
                maxLifetime=extra.maxLifetime,
                pingAfter=extra.pingAfter,
                idleTimeout=extra.idleTimeout,
                goodSql=self.good_sql if self._goodSqlGiven else None,
            ),
            counters=ConnectionCounters(),
            redactor=Redactor(connargs, connkw),
            reactor=reactor,
            clock=clock,
            retry=extra.retry,
            side=SideWork(label, threadPrefix, 2 * self.max + 2),
            telemetry=PoolTelemetry(self, clock, extra.slowThreshold, extra.leakThreshold),
            ownConnect=ownConnect,
            ownClose=ownClose,
        )
        # Lanes (``_lane.py``): runQuery/runOperation on nonblocking connections the reactor drives.
        laneSupport: LaneSupport | None = None
        whyNot = self._whyNoLanes(extra.nonblocking)
        if extra.nonblocking is True and whyNot is not None:
            raise ValueError(f"cp_nonblocking=True is not possible here: {whyNot}")
        if extra.nonblocking is not False and whyNot is None:
            laneSupport = LaneSupport(self.dbapi.__name__, extra.prepareThreshold)
        elif extra.prepareThreshold is not None:
            raise ValueError(
                "cp_prepare_threshold applies to psycopg2's lanes, and this pool has none: "
                f"{whyNot or 'cp_nonblocking=False'} (psycopg 3 prepares by itself: its prepare_threshold "
                "connection keyword)"
            )
        self._router = CallRouter(
            self, self.context,
            minSlots=self.min,
            maxSlots=self.max,
            laneSupport=laneSupport,
            maxWaiting=extra.maxWaiting,
            waitTimeout=extra.waitTimeout,
            slotsGone=lambda: self._life.endCloseIfLast(),
        )
        self._life = PoolLifecycle(self.context, self._router, self.start, extra.shutdownTimeout)
        self.shutdownID: Any = None
        self.startID: Any = reactor.callWhenRunning(self._start)

    # -- what tests and subclasses read of the parts (reactor thread) ------------------------------

    @property
    def _adapter(self) -> DriverAdapter:
        """The driver adapter (``context.adapter``); a test may swap it before the pool runs."""
        return self.context.adapter

    @_adapter.setter
    def _adapter(self, adapter: DriverAdapter) -> None:
        self.context.adapter = adapter

    @property
    def _lanes(self) -> set[_Lane]:
        """The open lanes (the router's)."""
        return self._router.lanes

    @property
    def _shutdownTimeout(self) -> float | None:
        """The shutdown timeout a close starts with (:meth:`setShutdownTimeout`)."""
        return self._life.shutdownTimeout

    # -- lifecycle (reactor thread) ----------------------------------------------------

    def __repr__(self) -> str:
        s = self.statistics()
        laneText = f" lanes={s.lanes}" if self._router.laneSupport is not None else ""
        return (
            f"<ConnectionPool {self.context.label} [{self.context.redactor.describe()}] {self._life.state} "
            f"workers={s.workers}{laneText} busy={s.busy} waiting={s.waiting}>"
        )

    def _whyNoLanes(self, nonblocking: bool | None) -> str | None:
        """None when runQuery/runOperation can run on lanes, else why not (``__init__``)."""
        if not self.context.adapter.supportsLanes:
            return f"{self.dbapiName} has no nonblocking connections the pool can drive (psycopg2 has)"
        if not self._fastPath or not self.context.ownClose:
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
        state = self._life.state
        if state == PoolState.RUNNING:
            return
        if state == PoolState.CLOSING:
            raise PoolClosedError(
                f"{self.context.label} is closing; start() it again once close() has finished")
        self._life.open()
        self.running = True
        self.shutdownID = self._reactor.addSystemEventTrigger("before", "shutdown", self._shutdown)

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
        if not d.called and self._reactor.running:
            # Twisted's idiom is ``pool.close(); reactor.stop()`` with close's result ignored: the
            # shutdown then waits for this close, so the calls it is letting finish still fire.
            # Held apart from Twisted's ``shutdownID``, which is None once close() has returned.
            self._life.waitAtShutdown(self._shutdown)
        return d

    def setShutdownTimeout(self, timeout: float | None) -> None:
        """Bound how long :meth:`close` and the reactor's shutdown wait for running calls (reactor thread).

        ``timeout`` is in seconds (> 0), or None to wait as long as they take
        (Twisted's behaviour). The default is ``cp_shutdown_timeout`` (30 s). A
        close already under way keeps the deadline it started with.
        """
        self._life.shutdownTimeout = checkTimeout("timeout", timeout)


    def finalClose(self) -> Deferred[None]:
        """Twisted's name for the shutdown-time close."""
        self.shutdownID = None
        return self._stopWorkers()

    def _shutdown(self) -> Deferred[None]:
        self.shutdownID = None
        self._life.shutdownBegan()
        if self._life.state != PoolState.RUNNING:
            return self._stopWorkers()
        # The other 'before shutdown' triggers fire in this same pass, and one may still use the pool
        # (a last flush; Twisted's pool closes only 'during' shutdown): the close begins a turn later,
        # whichever order the triggers were added in, and lets what they asked for finish.
        closed: Deferred[None] = Deferred()
        self._reactor.callLater(0, lambda: self._stopWorkers().chainDeferred(closed))
        return closed


    def _stopWorkers(self) -> Deferred[None]:
        self.running = False
        return self._life.stop()

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
        return self._submit(CallKind.INTERACTION, interaction, args, kw,
                            "runInteraction", (interaction,), None)

    def runWithConnection(
        self, func: Callable[Concatenate[Connection, _P], _T], *args: _P.args, **kw: _P.kwargs
    ) -> Deferred[_T]:
        """Run ``func(Connection, *args, **kw)`` in a worker; commit if it returns, roll back if it raises."""
        if not callable(func):
            raise TypeError(f"func must be callable, not {type(func).__name__}")
        return self._submit(CallKind.WITH_CONNECTION, func, args, kw, "runWithConnection", (func,), None)

    def runQuery(self, *args: Any, **kw: Any) -> Deferred[list[Any]]:
        """Execute one statement (``cursor.execute(*args, **kw)``) and fire with ``fetchall()``."""
        if not args and "operation" not in kw and "sql" not in kw:
            raise TypeError("runQuery() needs the SQL statement as its first argument")
        if self._fastPath:
            return self._submit(CallKind.QUERY, None, args, kw, "runQuery", args, kw)
        if self._ownRunInteraction:
            return self._submit(CallKind.INTERACTION, self._runQuery, args, kw, "runQuery", args, kw)
        # As in Twisted: a subclass's runInteraction sees runQuery too.
        return self.runInteraction(self._runQuery, *args, **kw)

    def runOperation(self, *args: Any, **kw: Any) -> Deferred[None]:
        """Execute one statement (``cursor.execute(*args, **kw)``) and fire with None."""
        if not args and "operation" not in kw and "sql" not in kw:
            raise TypeError("runOperation() needs the SQL statement as its first argument")
        if self._fastPath:
            return self._submit(CallKind.OPERATION, None, args, kw, "runOperation", args, kw)
        if self._ownRunInteraction:
            return self._submit(CallKind.INTERACTION, self._runOperation, args, kw, "runOperation", args, kw)
        return self.runInteraction(self._runOperation, *args, **kw)

    def transaction(self) -> AsyncTransaction:
        """An async context manager holding one connection for a transaction (reactor thread).

        ``async with pool.transaction() as txn: await txn.execute(...)`` commits when
        the block ends normally and rolls back when it raises.
        """
        return tracedTransaction(self, AsyncTransaction(self, self._life, self._router))


    def statistics(self) -> PoolStatistics:
        """A snapshot of the pool (any thread may call it; no database work)."""
        router = self._router
        threads = router.threads.statistics()
        holders = router.threads.holders.snapshot()
        lanes = router.lanesNow()
        idleLanes = len(router.idleLanes)
        # A worker is busy from the moment its call starts until its outcome is on its way home.
        busyThreads = min(threads.workers, sum(h.current is not None for h in holders))
        opened, reconnects, recycled = self.context.counters.snapshot()
        return PoolStatistics(
            name=self.name or f"ConnectionPool-{self._number}",
            state=self._life.state.value,
            workers=threads.workers,
            connectionsOpen=sum(h.conn is not None for h in holders) + sum(x.conn is not None for x in lanes),
            busy=busyThreads + len(lanes) - idleLanes,
            idle=threads.workers - busyThreads + idleLanes,
            waiting=len(router.pending) + len(router.held) + threads.queued,
            longestWait=max(router.longestWait, threads.longestQueueWait),
            calls=router.calls,
            errors=router.errors,
            cancelled=router.cancelled,
            rejected=router.rejected,
            retries=router.retries,
            connectionsOpened=opened,
            reconnects=reconnects,
            recycled=recycled,
            lanes=len(lanes),
        )

    # -- Twisted's per-thread connection API (worker threads) ----------------------------

    def _holderHere(self) -> ConnectionHolder:
        holder = currentHolder(self)
        if holder is None:
            raise RuntimeError(
                f"{self.context.label}: connect()/disconnect() must be called in one of the pool's worker "
                "threads "
                "(from a runInteraction/runWithConnection function)"
            )
        return holder

    def _connectionsByThread(self) -> dict[int, Any]:
        """{thread id: open connection} of the current workers (any thread)."""
        return {h.thread.ident: conn for h, conn in self._router.threads.connections()
                if h.thread.ident is not None}

    def threadID(self) -> int:
        """The calling thread's id, the key of :attr:`connections` (Twisted's name; any thread)."""
        return threading.get_ident()

    @property
    def connections(self) -> Mapping[int, Any]:
        """Twisted's ``{thread id: connection}``: a live, read-only view of the workers' open connections.

        Twisted code reads it from a worker, as in ``self.connections.get(self.threadID())``
        before ``self.disconnect(conn)``; lanes (reactor-driven) are not in it.
        """
        return _ConnectionsView(self._connectionsByThread)

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
            _log.info("adbapi closing: %s", self.context.label)
        try:
            conn.close()
        except Exception as e:
            _log.warning("adbapi: %s: closing a connection failed: %s", self.context.label,
                         self.context.redactor.scrub(str(e)))

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

    def _submit(self, kind: CallKind, func: Any, args: tuple[Any, ...], kw: dict[str, Any],
                operation: str, shown: tuple[Any, ...], shownKw: dict[str, Any] | None) -> Deferred[Any]:
        """Make and dispatch the call of the public method ``operation``; a Deferred of its result.

        Telemetry sees ``shown``/``shownKw`` (the statement, or the function).
        """
        state = self._life.state
        if state is not PoolState.RUNNING:
            if state == PoolState.NEW:
                self.start()
            else:
                closed = fail(PoolClosedError(f"{self.context.label} is {state}; no new calls are accepted"))
                return traced(self, operation, shown, closed, shownKw)
        router = self._router
        call = _Call(router, kind, func, args, kw)
        # Observed before its dispatch, so it is timed from its submission (None: nothing watches).
        record = observe(self, operation, shown, shownKw, call)
        if router.dispatch(call) and self._timeout is not None:
            call.deferred.addTimeout(self._timeout, self.context.clock)
        if record is not None:
            record.watch(call.deferred)  # after the timeout's callback: it sees TimeoutError, not the cancel
        return call.deferred

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

