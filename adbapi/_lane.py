"""Lanes: psycopg2's ``runQuery``/``runOperation`` driven by the reactor thread, with no thread in between.

Why: a statement handed to a worker thread and its result handed back cost two
thread hand-offs and, with four workers and the reactor sharing the GIL, most of
the client's time per primary-key lookup (measured with ``perf``: nine in ten of
the extra futex calls are GIL hand-offs). psycopg2 can instead run a
connection in nonblocking mode (libpq's ``PQsendQuery`` and ``PQconsumeInput``):
the reactor sends the statement, watches the socket like any other, and reads
the result when it is there. No call waits on the GIL of another thread.

A lane is one slot of the pool (it counts against ``cp_max`` like a worker) with
one nonblocking connection. Lanes run only single statements; interactions,
``runWithConnection``, async transactions and Twisted's ``connect()`` run on
worker threads as before. A statement runs exactly as on a worker's fast path:
in autocommit mode, so the server runs it (or a multi-statement string) as one
transaction; a statement that opened a transaction itself gets its ``COMMIT``
(or ``ROLLBACK`` after an error), as Twisted's commit would.

Nothing here blocks the reactor thread. What may block runs as side work on
the pool's side thread pool (a ``deferthreads.ThreadPool``, ``pool.context.side.call``):

- connections are opened there (DNS, TLS and authentication may block), then
  handed over;
- a result of more than ``_FETCH_IN_THREAD`` rows is converted to Python there;
- a cancel request (``PQcancel`` opens its own connection) is sent there, as a
  worker's is (``_cancel.sendCancel``);
- at an abandoning close, the connection is cancelled and closed there.

Threads and state: the reactor thread owns every field of a lane, except
``conn``/``connInfo``, which the cancel side work reads under ``connLock``
(the lane swaps them under the same lock, so a connection is never closed while a
cancel on it is being sent). While side work uses the connection, the lane does
nothing else with it: the side work's last act is a ``callFromThread`` back
into the lane (made even if the work never ran), and the lane is not released
(nor the pool closed) before that.
"""

from __future__ import annotations

import enum
import importlib
import logging
import threading
from typing import TYPE_CHECKING, Any, Protocol

from adbapi._call import _Call
from adbapi._cancel import sendCancel
from adbapi._dispatch import CallKind, CallState
from adbapi._drivers import _KEEP_RESULT_ROWS, _PG_IDLE, _PG_INERROR, _PG_INTRANS, _sqlstate
from adbapi._errors import ConnectionLost
from adbapi._health import Readiness
from adbapi._prepare import Prepared, PreparedStatements
from adbapi._recovery import classify
from adbapi._statements import NO_ACTIVE_TRANSACTION, queryText, returnsRows
from reactor import CancelledError, Failure

if TYPE_CHECKING:
    from adbapi._pool import ConnectionPool

__all__: list[str] = []

_log = logging.getLogger("adbapi")

class LaneHome(Protocol):
    """What a lane needs of the router that made it (reactor thread)."""

    def nextForLane(self, lane: _Lane, canIdle: bool) -> _Call | None:
        """The next call for ``lane``, which finished one; None once it idled or closed."""
        ...

    def settle(self, call: _Call, ok: bool, value: Any, flags: int) -> None:
        """Fire ``call``'s Deferred with its outcome (or retry it)."""
        ...

    def laneClosed(self, lane: _Lane) -> None:
        """``lane`` closed: forget it."""
        ...

    def laneEnded(self) -> None:
        """A lane that closed as it finished a call has fired that call's Deferred."""
        ...


class LaneState(enum.Enum):
    """A lane's life: OPENING -> BUSY <-> IDLE -> CLOSED."""

    OPENING = "opening"  # side work is opening the connection
    IDLE = "idle"  # on the pool's idle-lane stack
    BUSY = "busy"  # running a call
    CLOSED = "closed"


# What the lane waits for while busy
_NONE = 0
_PING = 1  # cp_ping_after's check before the statement
_STATEMENT = 2
_END = 3  # the COMMIT/ROLLBACK of a transaction the statement opened
_SIDE = 4  # side work (connect, fetch, cancel) has the connection
_BEGIN = 5  # the BEGIN of a statement run inside a transaction block, as Twisted runs every statement
_PREPARE = 6  # the PREPARE of a statement the lane runs prepared (cp_prepare_threshold, _prepare.py)
# psycopg2's error when an EXECUTE names a statement the session no longer has (DEALLOCATE, DISCARD ALL).
_UNKNOWN_STATEMENT = "26000"

# How long the reactor thread waits for a cancel's side work that was told to stop (it ends within one
# PQcancel round trip), when the reactor is dropping the lane and cannot hear from it later.
_CANCEL_JOIN = 5.0
# A statement at most this long leaves an idle connection's socket in one write (Linux's least send buffer).
_SURELY_SENT = 4096
# Results with more rows than this are converted as side work (the reactor must not stall on them).
_FETCH_IN_THREAD = 1000


class LaneSupport:
    """What a pool needs to run lanes for one psycopg2-like module: its poll states."""

    __slots__ = ("pollOk", "pollRead", "pollWrite", "prepareThreshold")

    def __init__(self, moduleName: str, prepareThreshold: int | None = None) -> None:
        extensions = importlib.import_module(moduleName + ".extensions")
        self.pollOk: int = extensions.POLL_OK
        self.pollRead: int = extensions.POLL_READ
        self.pollWrite: int = extensions.POLL_WRITE
        #: cp_prepare_threshold: None runs every statement as plain text (_prepare.py)
        self.prepareThreshold = prepareThreshold


class _Lane:
    """One pool slot whose nonblocking connection the reactor thread drives (reactor thread only)."""

    def __init__(self, pool: ConnectionPool, home: LaneHome, number: int, support: LaneSupport) -> None:
        self.pool = pool
        self.home = home
        self.context = pool.context
        self.reactor: Any = pool.context.reactor
        self.support = support
        self.name = f"{pool.context.threadPrefix}-lane-{number}"
        # Swapped under connLock, which a cancel's side work holds while it sends the cancel:
        self.connLock = threading.Lock()
        self.conn: Any = None
        self.connInfo: Any = None
        self.cursor: Any = None
        self.fd = -1
        self.state = LaneState.OPENING
        self.step = _NONE
        self.current: _Call | None = None
        self.watching = False
        self.writing = False
        # Set by a fetch's side work once it has finished with the connection (an abandoning close's
        # release waits for it before it closes the connection); None when no fetch was handed out.
        self.sideDone: threading.Event | None = None
        self.openedAt = 0.0
        self.lastUsed = 0.0
        self.idleSince = 0.0  # set by the pool (reactor thread) when the lane goes idle
        # A statement's outcome, kept while its transaction is ended or a cancel's side work stops.
        self.kept: tuple[bool, Any] | None = None
        # Outcomes waiting to be fired, and whether _done's release loop is on the stack (no recursion).
        self.finished: list[tuple[_Call, bool, Any, int]] = []
        self.releasing = False
        # Set when the reactor dropped the lane (connectionLost): it closes after its current call.
        self.abandoned = False
        # The call whose statement ended while its cancel's side work still ran (waits in cancelStopped).
        self.awaitingCancel: _Call | None = None
        # The current statement runs inside BEGIN ... COMMIT (see _statement).
        self.inBlock = False
        # Set (under handOff, by the reactor) when the pool's close gave up on the lane; a connect's side
        # work reads it under the same lock to know whether anyone will take its connection.
        self.handOff = threading.Lock()
        self.forsaken = False
        # The connection's prepared statements (None: cp_prepare_threshold is off, or no connection), and
        # the plan of the statement being sent (None: plain text).
        self.prepared: PreparedStatements | None = None
        self.plan: Prepared | None = None
        self.replanned = False  # the current call's EXECUTE found its statement gone once already

    def __repr__(self) -> str:
        return f"<adbapi lane {self.name} {self.state}>"

    # -- IReadDescriptor / IWriteDescriptor (the reactor calls these) ---------------------------

    def fileno(self) -> int:
        return self.fd

    def logPrefix(self) -> str:
        return self.name

    def doRead(self) -> None:
        step = self.step
        if step == _STATEMENT or step == _PING or step == _END or step == _BEGIN or step == _PREPARE:
            self._poll()
        else:
            self._idleRead()

    def _idleRead(self) -> None:
        # No statement out: a notice, or the server closing the connection. poll() takes it in.
        conn = self.conn
        if conn is None:
            return
        try:
            conn.poll()
        except Exception as e:
            _log.info("adbapi: %s: an idle connection was lost (%s)", self.context.label, type(e).__name__)
            if self.state is LaneState.IDLE:
                self._dropConnection(broken=True)
                self._close()

    def doWrite(self) -> None:
        if self.step == _NONE:  # abandoned by the pool's close in this same reactor turn
            return
        self._poll()

    def connectionLost(self, reason: Failure) -> None:
        # The reactor gave up on the descriptor (it shut down, or doRead raised): so does the lane, and
        # it takes no further call (one still waiting is errbacked when the pool's close ends).
        self.watching = self.writing = False
        self.abandoned = True
        call = self.current
        if call is not None and call.statementOver is not None:
            # A cancel is being sent: tell it the statement is over and let it end first, as nothing
            # will hear from it once the reactor has stopped.
            call.statementOver.set()
            if call.cancelDone is not None:
                call.cancelDone.wait(_CANCEL_JOIN)
        self._dropConnection(broken=True)
        if call is not None:
            error = ConnectionLost("the database connection was lost")
            error.__cause__ = reason.value
            self._done(False, error, 0)
        elif self.state is not LaneState.CLOSED:
            self._close()

    # -- running a call -----------------------------------------------------------------------

    def start(self, call: _Call) -> None:
        """Run ``call`` (CallState.RUNNING, ``call.worker is self``) on this lane."""
        self.current = call
        self.state = LaneState.BUSY
        self.inBlock = False
        self.replanned = False
        if self.conn is None:
            self._open()
            return
        pool = self.pool
        readiness = pool.context.health.beforeUse(self.openedAt, self.lastUsed)
        if readiness is Readiness.RECYCLE:
            self._dropConnection(broken=False, recycled=True)
            self._open()
            return
        if readiness is Readiness.PING:
            self._send(_PING, (pool.context.health.goodSql or "SELECT 1",), {})
            return
        self._statement()

    def _statement(self) -> None:
        call = self.current
        assert call is not None
        if call.deferred.called:  # cancelled while the connection was opened or checked
            error = CancelledError("cancelled before it reached the database")
            if self.inBlock:
                self._afterResult(False, error)  # rolls the block back first
            else:
                self._done(False, error, 0)
            return
        if call.kind == CallKind.QUERY and not self.inBlock:
            text = queryText(call.args, call.kw, self.conn)
            if text is None or not returnsRows(text):
                # It may return no result set: fetchall() then fails and Twisted rolls the statement
                # back, which needs it inside a block (_statements.py).
                self._begin()
                return
        prepared = self.prepared
        if prepared is not None and not self.inBlock:
            plan = self.plan = prepared.plan(call.args, call.kw)
            if plan is not None:
                if plan.prepareSql is not None:
                    self._send(_PREPARE, (plan.prepareSql,), {})
                else:
                    self._send(_STATEMENT, plan.executeArgs, {})
                return
        else:
            self.plan = None
        self._send(_STATEMENT, call.args, call.kw)

    def _prepareFailed(self, error: Exception) -> None:
        """The server refused the ``PREPARE`` (or it was cancelled, or the connection broke)."""
        call = self.current
        plan, self.plan = self.plan, None
        assert call is not None and plan is not None and self.prepared is not None
        if (call.deferred.called or call.cancelRequested
                or self.context.adapter.isDisconnect(error, self.conn)):
            self._statementOver(False, error)
            return
        # Several statements in one string, a parameter of no inferable type...: nothing ran (autocommit),
        # and the statement runs as plain text on this connection from now on.
        self.prepared.refused(plan)
        self._send(_STATEMENT, call.args, call.kw)

    def _begin(self) -> None:
        self.inBlock = True
        self._send(_BEGIN, ("BEGIN",), {})

    def _send(self, step: int, args: tuple[Any, ...], kw: dict[str, Any]) -> None:
        """Send a statement; its outcome always arrives later, from the reactor (never inside the caller).

        A call that ended inside ``runQuery`` would fire its Deferred there, and a
        caller issuing the next query from its callback would recurse without bound.
        """
        self.step = step
        cursor = self.cursor
        try:
            cursor.execute(*args, **kw)
        except Exception as e:
            self._sideBegins()
            self.reactor.callLater(0, self._sendFailed, step, e)
            return
        query = cursor.query
        if query is None or len(query) > _SURELY_SENT:
            # libpq may still hold part of it (the socket buffer was full): poll() sends the rest once
            # the socket is writable. A shorter statement on an idle socket leaves in one write.
            self.writing = True
            self.reactor.addWriter(self)

    def _sendFailed(self, step: int, error: Exception) -> None:
        if self.state is LaneState.CLOSED:  # abandoned by the pool's close meanwhile
            return
        self._sideEnds()
        self.step = step
        call = self.current
        pool = self.pool
        if (pool.reconnect and (step == _STATEMENT or step == _BEGIN or step == _PREPARE) and call is not None
                and not call.reconnected and pool.context.adapter.neverSent(error, self.conn)):
            # The connection was closed before the statement left (cp_reconnect): nothing reached the
            # server, so it runs on a new connection, once, as on a worker thread. A BEGIN already sent
            # on the closed connection ended with it: the statement starts over.
            _log.info("adbapi: %s: the connection was closed before the statement was sent (%s); "
                      "reconnecting", pool.context.label, type(error).__name__)
            call.reconnected = True
            self.inBlock = False
            self._dropConnection(broken=True)
            self._open()
            return
        self._stepFailed(error)

    def _poll(self) -> None:
        try:
            state = self.conn.poll()
        except Exception as e:
            self._unwrite()
            self._stepFailed(e)
            return
        if state == self.support.pollOk:
            self._unwrite()
            self._stepDone()
        else:
            self._pollState(state)

    def _pollState(self, state: int) -> None:
        """poll() said the statement is not over: watch for writability only while libpq has more to send."""
        if state == self.support.pollWrite:
            if not self.writing:
                self.writing = True
                self.reactor.addWriter(self)
        else:
            self._unwrite()

    def _unwrite(self) -> None:
        if self.writing:
            self.writing = False
            self.reactor.removeWriter(self)

    def _stepDone(self) -> None:
        step = self.step
        if step == _STATEMENT:
            self._statementOver(True, None)
        elif step == _PING:
            self.lastUsed = self.context.health.stamp()
            self._statement()
        elif step == _BEGIN:
            self._statement()
        elif step == _PREPARE:
            plan, self.plan = self.plan, None
            assert plan is not None and self.prepared is not None
            self.prepared.prepared(plan)
            self._statement()  # sends its EXECUTE (or ends a call cancelled meanwhile)
        else:  # _END: the statement's outcome stands
            kept, self.kept = self.kept, None
            assert kept is not None
            self._done(kept[0], kept[1], 0)

    def _stepFailed(self, error: Exception) -> None:
        step = self.step
        pool = self.pool
        if step == _STATEMENT:
            call = self.current
            assert call is not None
            if (not self.inBlock and call.statementOver is None and not call.deferred.called
                    and _sqlstate(error) == NO_ACTIVE_TRANSACTION and self._transactionStatus() == _PG_IDLE):
                # LOCK, SAVEPOINT, DECLARE...: refused before doing anything, outside the transaction
                # block Twisted's BEGIN would have opened. Run it again inside one.
                self._begin()
                return
            plan = self.plan
            if (plan is not None and not self.replanned and not call.deferred.called
                    and not call.cancelRequested and _sqlstate(error) == _UNKNOWN_STATEMENT
                    and self.prepared is not None):
                # The session lost the prepared statement (a DEALLOCATE or DISCARD run on this lane): the
                # EXECUTE ran nothing; prepare it again, once.
                self.replanned = True
                self.prepared.forget(plan)
                self._statement()
                return
            self._statementOver(False, error)
            return
        if step == _PREPARE:
            self._prepareFailed(error)
            return
        if step == _BEGIN:
            self._statementOver(False, error)
            return
        if step == _PING:
            _log.info("adbapi: %s: connection failed its check (%s); reconnecting", pool.context.label,
                      type(error).__name__)
            self._dropConnection(broken=True)
            self._open()
            return
        # _END: the COMMIT or ROLLBACK failed. A COMMIT refused by the server (a deferred constraint)
        # leaves the session idle and sound; anything else and the connection is not to be trusted.
        kept, self.kept = self.kept, None
        assert kept is not None
        disconnected = pool.context.adapter.isDisconnect(error, self.conn)
        if disconnected or self._transactionStatus() != _PG_IDLE:
            _log.warning("adbapi: %s: ending a transaction failed (%s); discarding the connection",
                         pool.context.label, pool.context.redactor.scrub(f"{type(error).__name__}: {error}"))
            self._dropConnection(broken=True)
        if kept[0]:
            # The statement's work was not committed: the caller gets the failure to commit.
            self._failed(error, disconnected)
        else:
            self._failed(kept[1], disconnected)

    def _statementOver(self, ok: bool, value: Any) -> None:
        call = self.current
        assert call is not None
        over, done = call.statementOver, call.cancelDone
        if over is not None and done is not None:
            # A cancel was sent: nothing more runs on this connection until its side work stopped.
            over.set()
            if not done.is_set():
                self.kept = (ok, value)
                self.awaitingCancel = call
                self._sideBegins()
                return
        self._conclude(ok, value)

    def cancelStopped(self, call: _Call) -> None:
        """``call``'s cancel side work finished (reactor thread, via callFromThread)."""
        if self.awaitingCancel is not call:
            return  # the statement had not ended yet, or it ended after the side work did
        self.awaitingCancel = None
        self._sideEnds()
        kept, self.kept = self.kept, None
        assert kept is not None
        self._conclude(*kept)

    def _conclude(self, ok: bool, value: Any) -> None:
        call = self.current
        assert call is not None
        if not ok:
            self._afterResult(False, value)
            return
        if call.kind != CallKind.QUERY or call.deferred.called:
            self._afterResult(True, None)
            return
        cursor = self.cursor
        if cursor.rowcount > _FETCH_IN_THREAD:
            self._fetchInThread(cursor)
            return
        try:
            rows = cursor.fetchall()
        except Exception as e:
            self._afterResult(False, e)
            return
        self._afterResult(True, rows)

    def _fetchInThread(self, cursor: Any) -> None:
        """Convert a big result as side work; ``_fetched`` gets the outcome in the reactor thread."""
        self._sideBegins()
        done = self.sideDone = threading.Event()

        def fetched(ok: bool, rows: Any) -> None:
            # Side thread (or, if the work was abandoned unrun, the thread that gave up on it).
            done.set()
            self.reactor.callFromThread(self._fetched, (True, rows) if ok else (False, rows.value))

        self.context.side.call(fetched, cursor.fetchall)

    def _fetched(self, outcome: tuple[bool, Any]) -> None:
        if self.state is LaneState.CLOSED:  # abandoned by the pool's close meanwhile
            return
        self.sideDone = None
        self._sideEnds()
        self._afterResult(*outcome)

    def _afterResult(self, ok: bool, value: Any) -> None:
        """The statement (and fetch) ended: end a transaction it left open, then finish the call."""
        if not ok and self.context.adapter.isDisconnect(value, self.conn):
            self._dropConnection(broken=True)
            self._failed(value, True)
            return
        status = self._transactionStatus()
        if status == _PG_INTRANS or status == _PG_INERROR:
            # The statement opened a transaction itself ("BEGIN; ..."): end it as Twisted's commit would.
            self.kept = (ok, value)
            self._send(_END, ("COMMIT" if ok and status == _PG_INTRANS else "ROLLBACK",), {})
            return
        if status != _PG_IDLE:
            # Still busy after the statement ended (a COPY, which a lane cannot feed or drain): the
            # connection cannot take another statement, so it goes.
            _log.info("adbapi: %s: a connection left busy by its statement is discarded", self.context.label)
            self._dropConnection(broken=False)
        if ok:
            self._done(True, value, 0)
        else:
            self._failed(value, False)

    def _transactionStatus(self) -> int:
        """libpq's PQTRANS_* for the connection (PQTRANS_UNKNOWN, 4, once it is unusable)."""
        try:
            return int(self.conn.get_transaction_status())
        except Exception:
            return 4

    def _failed(self, error: BaseException, disconnected: bool) -> None:
        pool = self.pool
        if disconnected and pool.reconnect:
            lost = ConnectionLost("the database connection was lost")
            lost.__cause__ = error
            lost.__suppress_context__ = True
            error = lost
        self._done(False, error, classify(pool, error, True))

    # -- finishing a call ---------------------------------------------------------------------------

    def _done(self, ok: bool, value: Any, flags: int) -> None:
        call = self.current
        assert call is not None
        self.current = None
        self.step = _NONE
        call.state = CallState.DONE  # RUNNING -> DONE (TRANSITIONS): a lane's current call is RUNNING
        home = self.home
        self.lastUsed = self.context.health.stamp()
        cursor = self.cursor
        if cursor is not None and cursor.rowcount > _KEEP_RESULT_ROWS and self.conn is not None:
            self.cursor = self.conn.cursor()
            cursor.close()
        if self.releasing:
            # The loop below is on the stack: it takes the next call, then fires this outcome.
            self.finished.append((call, ok, value, flags))
            return
        self.releasing = True
        try:
            # Start the next waiting call before firing this one's callbacks, so the server is kept
            # busy. Without a connection (lost, or it failed to end a transaction) the slot serves the
            # next waiting call with a new one, as a worker does, but does not sit idle. A call that
            # ends at once (cancelled while it waited for the connection) frees the lane again.
            while self.current is None and self.state is LaneState.BUSY:
                if self.abandoned:
                    self._close()
                    break
                nxt = home.nextForLane(self, self.conn is not None)
                if nxt is None:
                    break
                self.start(nxt)
        finally:
            self.releasing = False
        home.settle(call, ok, value, flags)
        if self.finished:
            finished, self.finished = self.finished, []
            for outcome in finished:
                home.settle(*outcome)
        if self.state is LaneState.CLOSED:
            home.laneEnded()  # deferred by laneClosed until the calls above had fired

    # -- side work ----------------------------------------------------------------------------------

    def _sideBegins(self) -> None:
        self.step = _SIDE
        # The socket is not read meanwhile; a notice arriving now would make the reactor spin on it.
        if self.watching:
            self.watching = False
            self.reactor.removeReader(self)

    def _sideEnds(self) -> None:
        self.step = _NONE
        conn = self.conn
        # A connection libpq has closed meanwhile (the server ended the session) has no socket to
        # watch, and its descriptor number may already belong to another: the outcome kept by the
        # side step, handled next, drops it.
        if conn is not None and not self.watching and not conn.closed:
            try:
                self.reactor.addReader(self)
            except OSError:  # the socket went away under psycopg2's feet: the next step finds it out
                return
            self.watching = True

    def cancel(self, call: _Call) -> None:
        """Stop ``call``'s statement on the server (reactor thread)."""
        if self.current is not call or self.step != _STATEMENT or call.statementOver is not None:
            return  # not on the server (yet): _statement checks the Deferred before it sends
        pool = self.pool
        call.statementOver = threading.Event()
        done = call.cancelDone = threading.Event()

        def stopped(ok: bool, ignored: Any) -> None:
            # Side thread; sendCancel set ``done`` already, unless the work was abandoned before it ran.
            done.set()
            self.reactor.callFromThread(self.cancelStopped, call)

        pool.context.side.call(stopped, sendCancel, pool, self, call)

    # -- the connection -----------------------------------------------------------------------------

    def _open(self) -> None:
        """Open a connection as side work; the current call runs once it is there."""
        pool = self.pool
        self.step = _SIDE
        if pool.noisy:
            _log.info("adbapi connecting: %s", pool.context.label)

        def connect() -> tuple[Any, Any]:
            # Side thread.
            try:
                conn = pool.context.adapter.connectNonblocking(pool.connargs, pool.connkw)
                try:
                    return conn, pool.context.adapter.describeConnection(conn)
                except BaseException:
                    pool.context.adapter.discard(conn)
                    raise
            except BaseException as e:
                pool.context.redactor.scrubException(e)
                raise

        def connected(ok: bool, value: Any) -> None:
            # Side thread (or, if the work was abandoned unrun, the thread that gave up on it).
            outcome: tuple[bool, Any, Any] = (True, *value) if ok else (False, value.value, None)
            with self.handOff:
                if not self.forsaken:
                    self.reactor.callFromThread(self._opened, *outcome)
                    return
            if ok:  # the pool's close gave up on this lane while the driver connected
                pool.context.adapter.discard(outcome[1])

        pool.context.side.call(connected, connect)

    def _opened(self, ok: bool, conn: Any, info: Any) -> None:
        if self.state is LaneState.CLOSED:  # the pool's close abandoned it after the hand-over
            if ok:
                self.context.adapter.discard(conn)
            return
        self.step = _NONE
        pool = self.pool
        if not ok:
            # The call that needed the connection gets the reason; the next waiting call tries again.
            self._done(False, conn, classify(pool, conn, False))
            return
        with self.connLock:
            self.conn = conn
            self.connInfo = info
        self.cursor = conn.cursor()
        self.fd = conn.fileno()
        self.watching = True
        self.reactor.addReader(self)
        self.openedAt = self.lastUsed = pool.context.health.stamp()
        threshold = self.support.prepareThreshold
        self.prepared = PreparedStatements(threshold) if threshold is not None else None
        pool.context.counters.opened()
        if self.current is not None:
            self._statement()

    def _dropConnection(self, broken: bool, recycled: bool = False) -> None:
        if self.watching:
            self.watching = False
            self.reactor.removeReader(self)
        self._unwrite()
        with self.connLock:  # waits for a cancel being sent on it
            conn, self.conn, self.connInfo = self.conn, None, None
        self.cursor = None
        self.fd = -1
        self.prepared = None
        self.plan = None
        if conn is None:
            return
        pool = self.pool
        if pool.noisy:
            _log.info("adbapi closing: %s", pool.context.label)
        if broken:
            pool.context.adapter.discard(conn)
        else:
            try:
                conn.close()
            except Exception as e:
                _log.warning("adbapi: %s: closing a connection failed: %s", pool.context.label,
                             pool.context.redactor.scrub(str(e)))
        if broken:
            pool.context.counters.reconnected()
        if recycled:
            pool.context.counters.recycled()

    def abandon(self) -> _Call | None:
        """The pool's close stopped waiting for this busy lane (reactor thread); returns its call, if any.

        The lane closes at once and drops its call (the pool fails it). Its
        connection goes to side work, which asks the server to stop the statement
        running there, waits for the lane's other side work (a fetch, a cancel) to
        finish with the connection, and closes it: both may block, the reactor
        must not. A connection still being opened is closed by its connect's side
        work when the driver returns it.
        """
        call, self.current = self.current, None
        with self.handOff:
            self.forsaken = True
        self.abandoned = True
        self.state = LaneState.CLOSED
        self.step = _NONE
        self.awaitingCancel = None
        self.kept = None
        if self.watching:
            self.watching = False
            self.reactor.removeReader(self)
        self._unwrite()
        # Not under connLock (a cancel being sent holds it): the daemon thread takes it before closing.
        conn, info = self.conn, self.connInfo
        self.conn = self.connInfo = self.cursor = None
        self.fd = -1
        if conn is None:
            return call
        pool = self.pool
        fetchDone = self.sideDone
        over = call.statementOver if call is not None else None
        cancelDone = call.cancelDone if call is not None else None

        def release() -> None:
            # Side thread. The fetch and cancel it waits for were handed out before it, and the side
            # pool's queue is first in, first out: they are running or done, never queued behind it.
            try:
                pool.context.adapter.cancel(conn, info, pool.connargs, pool.connkw)
            except Exception:  # the connection died meanwhile: nothing left to stop
                pass
            if over is not None:
                over.set()  # the lane's own cancel stops repeating
            for done in (fetchDone, cancelDone):
                if done is not None:
                    done.wait()
            with self.connLock:
                pool.context.adapter.discard(conn)

        pool.context.side.call(None, release)
        return call

    def retire(self, recycled: bool) -> None:
        """Close an idle lane (the pool took it off the idle stack)."""
        self._dropConnection(broken=False, recycled=recycled)
        self._close()

    def _close(self) -> None:
        if self.state is LaneState.CLOSED:
            return
        if self.conn is not None:
            self._dropConnection(broken=False)
        self.state = LaneState.CLOSED
        self.home.laneClosed(self)

