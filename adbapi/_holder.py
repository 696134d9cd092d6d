"""Thread slots: the connection a worker of the pool's ``ResourcePool`` owns, and how a call runs on it.

The pool's worker threads are a :class:`deferthreads.ResourcePool`'s: it makes
them, queues the calls that wait for one (its workers take the next call
themselves, with no reactor round trip in between), parks, retires and stops
them, and hands outcomes back to the reactor. A worker's resource is a
:class:`ConnectionHolder`: made by the pool's ``create`` hook in the worker's
thread, closed by its ``close`` hook in the same thread. It holds at most one
DB-API connection at a time, opened lazily (at the first call that needs it,
through Twisted's ``connect()`` override and ``cp_openfun``), replaced when the
health policy or a failure says so, so a call can reconnect inside itself
(Twisted's ``connect()``/``disconnect()``) without the worker changing.

:func:`serve` is what the pool hands to ``ResourcePool.run``: it runs one
:class:`~adbapi._call._Call` on the worker's holder and returns ``(ok, result
or exception, retry flags)``; it never raises, so the resource pool never
judges the holder (adbapi replaces the connection inside it).

Locking: a holder's connection fields (``conn``, ``connInfo``) are written only
by its thread, under ``connLock``; the side thread sending a cancel
(``_cancel.py``) holds ``connLock`` while it reads them and sends the cancel,
so a connection is never closed (freeing, in psycopg2, the cancel key
``PQcancel`` is reading) while a cancel request on it is being sent, and the
cancel never pairs one connection with another's server id. ``current`` (the
call running) and a call's cancel hand-off fields change under ``callLock``:
the worker sets ``current`` as the call starts and clears it as it ends, and
the pool's ``interrupt`` hook (reactor thread) starts a cancel only while
``current`` is that call, so a cancel never lands on the next call, and the
worker waits for a cancel in flight (``waitForCancel``) before it rolls back or
runs anything else.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from adbapi import _recovery
from adbapi._cancel import waitForCancel
from adbapi._dispatch import CallKind, CallState
from adbapi._health import Readiness
from adbapi._here import currentHolder, setCurrentHolder
from reactor import CancelledError

if TYPE_CHECKING:
    from adbapi._call import _Call
    from adbapi._drivers import SingleRunner
    from adbapi._pool import ConnectionPool

__all__ = ["ConnectionHolder", "HolderRegistry", "serve"]

_log = logging.getLogger("adbapi")

class HolderRegistry:
    """The holders of one generation of the pool's workers (any thread; a short lock)."""

    __slots__ = ("_holders", "_lock")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holders: set[ConnectionHolder] = set()

    def add(self, holder: ConnectionHolder) -> None:
        with self._lock:
            self._holders.add(holder)

    def discard(self, holder: ConnectionHolder) -> None:
        with self._lock:
            self._holders.discard(holder)

    def __len__(self) -> int:
        """How many workers have a holder now (no lock: a set's length is read atomically)."""
        return len(self._holders)

    def snapshot(self) -> list[ConnectionHolder]:
        with self._lock:
            return list(self._holders)


class ConnectionHolder:
    """One worker's connection slot: the raw connection and what goes with it (see the module docstring)."""

    def __init__(self, pool: ConnectionPool, registry: HolderRegistry,
                 onStarted: Callable[[_Call], object]) -> None:
        self.pool = pool
        self.context = pool.context
        self.registry = registry
        self.onStarted = onStarted  # the router's, told (reactor thread) when an announced call starts
        self.thread = threading.current_thread()
        # Written by the worker thread only, under connLock (held by the cancel side thread while it
        # sends a cancel, so the connection cannot be closed under it):
        self.connLock = threading.Lock()
        self.conn: Any = None
        self.connInfo: Any = None
        # Worker thread only: runs runQuery/runOperation statements on ``conn`` (None with no connection).
        self.single: SingleRunner | None = None
        self.openedAt = 0.0
        self.lastUsed = 0.0
        self.committing = False
        # True while a subclass's connect() runs for this holder (its super().connect() opens normally).
        self.inOwnConnect = False
        # Under callLock: the call running on this holder now.
        self.callLock = threading.Lock()
        self.current: _Call | None = None

    def __repr__(self) -> str:
        return f"<adbapi worker {self.thread.name} conn={'open' if self.conn is not None else 'none'}>"

    # -- made and closed by the pool's ResourcePool hooks (worker thread) ------------------------

    @classmethod
    def make(cls, pool: ConnectionPool, registry: HolderRegistry,
             onStarted: Callable[[_Call], object]) -> ConnectionHolder:
        """The ``create`` hook: a holder for the calling worker thread (its connection opens at first use)."""
        holder = cls(pool, registry, onStarted)
        setCurrentHolder(holder)
        registry.add(holder)
        return holder

    def close(self) -> None:
        """The ``close`` hook: the worker exits (idle retirement, stop); close the connection here."""
        self._closeConnection(recycled=False)
        self.registry.discard(self)
        if currentHolder(self.pool) is self:
            setCurrentHolder(None)

    # -- running a call (worker thread) ----------------------------------------------------------

    def execute(self, call: _Call) -> tuple[bool, Any, int]:
        """Run ``call`` on this holder's connection: (ok, result or exception, retry flags)."""
        pool = self.pool
        single = self.single
        if (call.kind <= CallKind.OPERATION and single is not None
                and not (self.context.health.timed or call.cancelRequested)):
            # The hot path: a runQuery/runOperation statement on an open connection.
            try:
                return True, single.run(call.args, call.kw, call.kind == CallKind.QUERY), 0
            except BaseException as e:
                return self._singleFailed(call, single.conn, e)
        self.committing = False
        try:
            conn = self.conn
            if conn is None or self.context.health.timed:
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
                _log.info("adbapi: %s: resetting a connection failed (%s); reconnecting", self.context.label,
                          type(e).__name__)
                self.discardConnection(broken=True)
                self.open()
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

    def _singleFailed(self, call: _Call, conn: Any, error: BaseException) -> tuple[bool, Any, int]:
        """After a runQuery/runOperation statement on ``conn`` failed: (ok, result or error, retry flags).

        With ``cp_reconnect``, a statement that cannot have reached the server
        (``conn`` was already closed: ``adapter.neverSent``) runs once more on a new
        connection, as Twisted's cursor-reopening does; anything else is recovered
        from and fails, so work that may have run is never run twice.
        """
        pool = self.pool
        if pool.reconnect and self.context.adapter.neverSent(error, conn):
            _log.info("adbapi: %s: the connection was closed before the statement was sent (%s); "
                      "reconnecting", self.context.label, type(error).__name__)
            self.discardConnection(broken=True)
            try:
                self.open()
                if call.cancelRequested:
                    return False, CancelledError("cancelled before it reached the database"), 0
                single = self.single
                assert single is not None  # set by open()
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

    # -- the connection (worker thread only) -----------------------------------------------------

    def _prepare(self) -> Any:
        """This holder's connection, opened, recycled or replaced as the health settings say."""
        conn = self.conn
        if conn is None:
            return self.open()
        readiness = self.context.health.beforeUse(self.openedAt, self.lastUsed)
        if readiness is Readiness.RECYCLE:
            self._closeConnection(recycled=True)
            return self.open()
        if readiness is Readiness.PING:
            try:
                if self.single is not None:
                    self.single.leave()
                self.context.adapter.ping(conn, self.context.health.goodSql)
            except Exception as e:
                _log.info("adbapi: %s: connection failed its check (%s); reconnecting", self.context.label,
                          type(e).__name__)
                self.discardConnection(broken=True)
                return self.open()
        return conn

    def open(self) -> Any:
        """Open a connection for this holder (through a subclass's ``connect()`` if it has one)."""
        pool = self.pool
        if not self.context.ownConnect and not self.inOwnConnect:
            # A subclass's connect() decides what the connection is, as in Twisted; its
            # super().connect() comes back here and opens one the usual way.
            self.inOwnConnect = True
            try:
                conn = pool.connect()
            finally:
                self.inOwnConnect = False
            if conn is not self.conn:
                self._took(conn, self.context.adapter.describeConnection(conn))
            return conn
        if pool.noisy:
            _log.info("adbapi connecting: %s", self.context.label)
        try:
            conn = self.context.adapter.connect(pool.connargs, pool.connkw)
        except BaseException as e:
            self.context.redactor.scrubException(e)
            raise
        try:
            if pool.openfun is not None:
                pool.openfun(conn)
            info = self.context.adapter.describeConnection(conn)
        except BaseException:
            self.context.adapter.discard(conn)
            raise
        self._took(conn, info)
        return conn

    def _took(self, conn: Any, info: Any) -> None:
        """Make ``conn`` this holder's connection (worker thread)."""
        with self.connLock:
            self.connInfo = info
            self.conn = conn
        self.single = self.context.adapter.singleRunner(conn)
        if self.context.health.timed:
            self.openedAt = self.lastUsed = self.context.health.now()
        self.context.counters.opened()

    def discardConnection(self, broken: bool) -> None:
        """Close this holder's connection because it is (or may be) broken (worker thread)."""
        self.single = None
        with self.connLock:  # waits for a cancel being sent on it
            conn, self.conn, self.connInfo = self.conn, None, None
        if conn is None:
            return
        pool = self.pool
        if self.context.ownClose:
            if pool.noisy:
                _log.info("adbapi closing: %s", self.context.label)
            self.context.adapter.discard(conn)
        else:
            try:
                pool._close(conn)  # a subclass's, as Twisted's disconnect() calls it
            except Exception:
                self.context.adapter.discard(conn)
        if broken:
            self.context.counters.reconnected()

    def _closeConnection(self, recycled: bool) -> None:
        self.single = None
        with self.connLock:  # waits for a cancel being sent on it
            conn, self.conn, self.connInfo = self.conn, None, None
        if conn is None:
            return
        self.pool._close(conn)
        if recycled:
            self.context.counters.recycled()

    # -- the cancel hand-off ---------------------------------------------------------------------

    def startCancel(self, call: _Call) -> bool:
        """Reactor thread (the pool's ``interrupt`` hook): prepare a cancel of ``call`` if it runs here now.

        True when the caller must send it (``sendCancel`` as side work, then set
        ``call.cancelDone``); False when ``call`` is not (or no longer) running
        on this holder, or a cancel is already on its way.
        """
        with self.callLock:
            if self.current is not call or call.statementOver is not None:
                return False
            call.statementOver = threading.Event()
            call.cancelDone = threading.Event()
            return True

    def runningCall(self) -> _Call | None:
        """The call running on this holder now (any thread)."""
        with self.callLock:
            return self.current


def serve(holder: ConnectionHolder, call: _Call) -> tuple[bool, Any, int]:
    """``ResourcePool.run``'s function (worker thread): run ``call`` on ``holder``; never raises."""
    with holder.callLock:
        if call.cancelRequested:
            call.outcome = (False, CancelledError("cancelled before it reached the database"), 0)
            return call.outcome
        holder.current = call
        call.worker = holder
        call.state = CallState.RUNNING
    if call.timed:  # telemetry records its connection wait and use times
        call.startedAt = holder.context.clock.seconds()
    if call.announce:  # read after the state is written: see CallRouter._mustHold
        holder.context.reactor.callFromThread(holder.onStarted, call)
    try:
        outcome = holder.execute(call)
    finally:
        with holder.callLock:
            holder.current = None
            cancelling = call.statementOver is not None
        if cancelling:
            # Never run another statement while a cancel for this call is in flight.
            waitForCancel(call)
        health = holder.context.health
        if health.timed:
            holder.lastUsed = health.now()
    call.outcome = outcome
    return outcome
