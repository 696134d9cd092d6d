"""Connection workers: one thread, one connection, one call at a time.

A :class:`_Worker` owns a thread and at most one DB-API connection, which is
opened, used and closed only in that thread (so sqlite3's ``check_same_thread``
holds). The pool hands a worker a :class:`_Call` through the worker's inbox;
when the call ends the worker takes the next waiting call itself (no round trip
through the reactor while calls are queued) or puts itself on the pool's idle
stack, then reports the outcome to the reactor thread.

Locking: the pool's ``_lock`` guards the call states, the waiting queue, the idle
stack and the worker set (see ``_pool.py``). A worker's connection fields
(``conn``, ``connInfo``) are written only by its thread. Statistics read ``conn``
without a lock (a single attribute read). The side thread sending a cancel
(one of the pool's side thread pool, ``_cancel.py``) is the one other thread
that *uses* the connection: it holds the worker's ``connLock``
while it reads ``conn``/``connInfo`` and sends the cancel, and the worker holds
the same lock while it installs or removes its connection, so a connection is
never closed (freeing, in psycopg2, the cancel key ``PQcancel`` is reading) while
a cancel request on it is being sent, and the cancel never pairs one
connection with another's server id.
"""

from __future__ import annotations

import logging
import threading
from queue import SimpleQueue
from typing import TYPE_CHECKING, Any

from adbapi import _recovery
from adbapi._cancel import waitForCancel
from adbapi._dispatch import CallKind, CallState
from adbapi._health import Readiness
from reactor import CancelledError, Deferred

if TYPE_CHECKING:
    from adbapi._drivers import SingleRunner
    from adbapi._lane import _Lane
    from adbapi._pool import ConnectionPool

__all__: list[str] = []

_log = logging.getLogger("adbapi")

# Call kinds

# Call states (transitions under the pool lock)


class _Call:
    """One unit of work and its Deferred; ``state`` and the cancel fields are guarded by the pool lock.

    Rarely used fields are class-level defaults, so creating a call (once per
    query, in the reactor thread) sets only what every call needs.
    """

    # Under the pool lock (``state`` too): set by the worker that takes the call / by the canceller.
    worker: _Worker | _Lane | None = None
    cancelRequested = False  # the worker also reads it unlocked (a stale False only delays the check)
    # Created by the canceller (under the pool lock) when it hands a cancel to the pool's side threads;
    # the Events themselves are the hand-off between the worker and the side thread (``_cancel.py``):
    statementOver: threading.Event | None = None
    cancelDone: threading.Event | None = None
    # enqueuedAt: reactor thread, before the call is visible to workers; waited: the worker that takes
    # it, under the pool lock, read by the reactor after the outcome is handed back.
    enqueuedAt = 0.0
    waited = 0.0
    # Reactor thread only:
    attempt = 1
    reconnected = False  # a lane ran it again on a new connection (cp_reconnect; at most once)
    waitTimer: Any = None
    retryTimer: Any = None
    lastFailure: BaseException | None = None

    def __init__(
        self, pool: ConnectionPool, kind: int, func: Any, args: tuple[Any, ...], kw: dict[str, Any]
    ) -> None:
        self.pool = pool
        self.kind = kind
        self.func = func
        self.args = args
        self.kw = kw
        self.deferred: Deferred[Any] = Deferred(self.cancel)
        self.state = CallState.QUEUED

    def cancel(self, deferred: Deferred[Any]) -> None:
        """The Deferred's canceller (reactor thread): unqueue, or stop the statement on the server."""
        self.pool._cancelCall(self)


class _Worker:
    """A thread that owns one connection slot of a pool."""

    def __init__(self, pool: ConnectionPool, number: int) -> None:
        self.pool = pool
        self.inbox: SimpleQueue[Any] = SimpleQueue()
        self.thread = threading.Thread(target=self._main, name=f"{pool._threadPrefix}-{number}", daemon=True)
        # The pool's waiting queue and idle stack as they were when this worker was made (under the pool
        # lock). A close that gives up on its workers (cp_shutdown_timeout) gives the pool new ones, so
        # a worker it abandoned can neither take a later call nor offer itself for one.
        self.pending = pool._pending
        self.idleStack = pool._idle
        # Written by the worker thread only, under connLock (held by the cancel side thread while it
        # sends a cancel, so the connection cannot be closed under it):
        self.connLock = threading.Lock()
        self.conn: Any = None
        self.connInfo: Any = None
        # Worker thread only: runs runQuery/runOperation statements on ``conn`` (None with no connection).
        self.single: SingleRunner | None = None
        # Owned by the worker thread (others only read them):
        self.openedAt = 0.0
        self.lastUsed = 0.0
        self.current: _Call | None = None
        self.committing = False
        # True while a subclass's connect() runs for this worker (its super().connect() opens normally).
        self.inOwnConnect = False
        # Written under the pool lock by the worker when it goes idle:
        self.idleSince = 0.0

    def __repr__(self) -> str:
        return f"<adbapi worker {self.thread.name} conn={'open' if self.conn is not None else 'none'}>"

    # -- the thread ----------------------------------------------------------------

    def _main(self) -> None:
        pool = self.pool
        pool._local.worker = self
        lock = pool._lock
        pending = self.pending
        popleft = pending.popleft
        idleStack = self.idleStack
        now = pool._clock.seconds
        results = pool._results
        lowWater = pool._lowWater
        # The hot path below runs a runQuery/runOperation statement without the general _execute.
        timed = pool._health.timed
        call = self.inbox.get()
        started = False
        while call is not None:
            if not started:
                with lock:
                    started = call.state is CallState.ASSIGNED
                    if started:
                        call.state = CallState.RUNNING
                        call.worker = self
                        self.current = call
            if started:
                single = self.single
                if (call.kind <= CallKind.OPERATION and single is not None
                        and not (timed or call.cancelRequested)):
                    try:
                        result = single.run(call.args, call.kw, call.kind == CallKind.QUERY)
                        ok = True
                        flags = 0
                    except BaseException as e:
                        ok, result, flags = self._singleFailed(call, single.conn, e)
                else:
                    ok, result, flags = self._execute(call)
            nxt: _Call | None = None
            goIdle = False
            # One lock round per call under load: this call ends and the next one starts here.
            with lock:
                if started:
                    call.state = CallState.DONE
                    self.current = None
                if pending:
                    nxt = popleft()
                    nxt.state = CallState.RUNNING
                    nxt.worker = self
                    self.current = nxt
                    nxt.waited = now() - nxt.enqueuedAt
                elif not pool._stopping:
                    goIdle = True
                    self.idleSince = self.lastUsed = now() if timed else 0.0
                    idleStack.append(self)
            if started:
                if call.statementOver is not None:
                    # Never run another statement while a cancel for this call is in flight.
                    waitForCancel(call)
                # pool._deliver, inlined (it is the per-call hand-back):
                results.append((call, ok, result, flags))
                if not pool._flushScheduled and len(pending) < lowWater:
                    pool._flushScheduled = True
                    pool._reactor.callFromThread(pool._flushResults)
            if goIdle:
                call = self.inbox.get()
                started = False
            else:
                call = nxt
                started = nxt is not None
        self._closeConnection(recycled=False)
        with lock:
            pool._workers.discard(self)
        pool._deliver((None, self, None, 0))  # the pool joins this thread on receipt

    def _singleFailed(self, call: _Call, conn: Any, error: BaseException) -> tuple[bool, Any, int]:
        """After a runQuery/runOperation statement on ``conn`` failed: (ok, result or error, retry flags).

        With ``cp_reconnect``, a statement that cannot have reached the server
        (``conn`` was already closed: ``adapter.neverSent``) runs once more on a new
        connection, as Twisted's cursor-reopening does; anything else is recovered
        from and fails, so work that may have run is never run twice.
        """
        pool = self.pool
        if pool.reconnect and pool._adapter.neverSent(error, conn):
            _log.info("adbapi: %s: the connection was closed before the statement was sent (%s); "
                      "reconnecting", pool._label, type(error).__name__)
            self.discardConnection(broken=True)
            try:
                self._open()
                if call.cancelRequested:
                    return False, CancelledError("cancelled before it reached the database"), 0
                single = self.single
                assert single is not None  # set by _open
                conn = single.conn
                return True, single.run(call.args, call.kw, call.kind == CallKind.QUERY), 0
            except BaseException as e:
                error = e
            if self.conn is None:  # the new connection could not be opened: nothing was sent
                return False, error, _recovery.classify(pool, error, False)
        # The statement is its own transaction: a loss during it is a loss during commit.
        self.committing = True
        try:
            _recovery.recoverRaw(pool, conn, error)
        except BaseException as e:  # ConnectionLost with cp_reconnect
            error = e
        return False, error, _recovery.classify(pool, error, True)

    def _execute(self, call: _Call) -> tuple[bool, Any, int]:
        """Run a RUNNING call on this worker's connection: (ok, result or exception, retry flags)."""
        pool = self.pool
        self.committing = False
        try:
            conn = self.conn
            if conn is None or pool._health.timed:
                conn = self._prepare()
            if call.cancelRequested:
                raise CancelledError("cancelled before it reached the database")
            kind = call.kind
            single = self.single
            assert single is not None  # set whenever conn is
            if kind <= CallKind.OPERATION:
                try:
                    return True, single.run(call.args, call.kw, kind == CallKind.QUERY), 0
                except BaseException as e:
                    return self._singleFailed(call, conn, e)
            try:
                # Anything else gets the connection as the DB-API default leaves it.
                single.leave()
            except Exception as e:
                _log.info("adbapi: %s: resetting a connection failed (%s); reconnecting", pool._label,
                          type(e).__name__)
                self.discardConnection(broken=True)
                self._open()
            if kind == CallKind.INTERACTION:
                return True, pool._runInteraction(call.func, *call.args, **call.kw), 0
            if kind == CallKind.WITH_CONNECTION:
                return True, pool._runWithConnection(call.func, *call.args, **call.kw), 0
            return True, call.func(self), 0
        except BaseException as e:
            if call.kind == CallKind.RESERVED:
                # An async transaction's operations came from its coroutine and are gone: it cannot
                # be re-run, so the retry policy never applies (the error reaches the block's exit).
                return False, e, 0
            return False, e, _recovery.classify(pool, e, self.committing)

    # -- the connection (worker thread only) -----------------------------------------

    def _prepare(self) -> Any:
        """This worker's connection, opened, recycled or replaced as the health settings say."""
        pool = self.pool
        conn = self.conn
        if conn is None:
            return self._open()
        readiness = pool._health.beforeUse(self.openedAt, self.lastUsed)
        if readiness is Readiness.RECYCLE:
            self._closeConnection(recycled=True)
            return self._open()
        if readiness is Readiness.PING:
            try:
                if self.single is not None:
                    self.single.leave()
                pool._adapter.ping(conn, pool._health.goodSql)
            except Exception as e:
                _log.info("adbapi: %s: connection failed its check (%s); reconnecting", pool._label,
                          type(e).__name__)
                self.discardConnection(broken=True)
                return self._open()
        return conn

    def _open(self) -> Any:
        pool = self.pool
        if not pool._ownConnect and not self.inOwnConnect:
            # A subclass's connect() decides what the connection is, as in Twisted; its
            # super().connect() comes back here and opens one the usual way.
            self.inOwnConnect = True
            try:
                conn = pool.connect()
            finally:
                self.inOwnConnect = False
            if conn is not self.conn:
                self._took(conn, pool._adapter.describeConnection(conn))
            return conn
        if pool.noisy:
            _log.info("adbapi connecting: %s", pool._label)
        try:
            conn = pool._adapter.connect(pool.connargs, pool.connkw)
        except BaseException as e:
            pool._redactor.scrubException(e)
            raise
        try:
            if pool.openfun is not None:
                pool.openfun(conn)
            info = pool._adapter.describeConnection(conn)
        except BaseException:
            pool._adapter.discard(conn)
            raise
        self._took(conn, info)
        return conn

    def _took(self, conn: Any, info: Any) -> None:
        """Make ``conn`` this worker's connection (worker thread)."""
        pool = self.pool
        with self.connLock:
            self.connInfo = info
            self.conn = conn
        self.single = pool._adapter.singleRunner(conn)
        if pool._health.timed:
            self.openedAt = self.lastUsed = pool._health.now()
        with pool._lock:
            pool._connectionsOpened += 1

    def discardConnection(self, broken: bool) -> None:
        """Close this worker's connection because it is (or may be) broken (worker thread)."""
        self.single = None
        with self.connLock:  # waits for a cancel being sent on it
            conn, self.conn, self.connInfo = self.conn, None, None
        if conn is None:
            return
        pool = self.pool
        if pool._ownClose:
            if pool.noisy:
                _log.info("adbapi closing: %s", pool._label)
            pool._adapter.discard(conn)
        else:
            try:
                pool._close(conn)  # a subclass's, as Twisted's disconnect() calls it
            except Exception:
                pool._adapter.discard(conn)
        if broken:
            with self.pool._lock:
                self.pool._reconnects += 1

    def _closeConnection(self, recycled: bool) -> None:
        self.single = None
        with self.connLock:  # waits for a cancel being sent on it
            conn, self.conn, self.connInfo = self.conn, None, None
        if conn is None:
            return
        self.pool._close(conn)
        if recycled:
            with self.pool._lock:
                self.pool._recycled += 1
