"""Per-driver knowledge the DB-API does not standardise.

A :class:`DriverAdapter` says, for one DB-API module, how to cancel the statement
running on a connection, how to recognise a lost connection and a serialization
failure or deadlock, what the cheapest liveness check is, and how to run one
statement atomically in the fewest round trips. :func:`adapterFor` picks the
adapter by module name; unknown modules get the conservative generic adapter.

Threads: ``connect``, ``ping``, ``runSingle`` and ``discard`` run in the worker
thread that owns the connection. ``cancel`` runs in a short-lived side thread
(repeated until the statement ends) while the owner is blocked in the driver,
holding the worker's ``connLock`` so the owner cannot close the connection under
it; it only uses what each driver documents as callable from another thread:
psycopg2's ``connection.cancel()`` (libpq ``PQcancel``), psycopg 3's
``cancel_safe()``/``cancel()``, sqlite3's
``Connection.interrupt()``, and for MySQL a separate connection sending ``KILL QUERY``.
"""

from __future__ import annotations

import importlib
import select
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import Any

from zope.interface import implementer

from adbapi._interfaces import IDriverAdapter
from adbapi._statements import NO_ACTIVE_TRANSACTION, queryText, returnsRows

__all__ = [
    "DriverAdapter",
    "GenericAdapter",
    "MySQLAdapter",
    "Psycopg2Adapter",
    "Psycopg3Adapter",
    "SingleRunner",
    "Sqlite3Adapter",
    "adapterFor",
]


class SingleRunner:
    """Runs the single statements of ``runQuery``/``runOperation`` on one connection (its worker thread).

    One per open connection, made by :meth:`DriverAdapter.singleRunner`. This
    base runs :meth:`DriverAdapter.runSingle` for each statement. A driver's runner
    may keep state between statements (a cursor, a session mode); :meth:`leave`
    ends that state and hands the connection back as the DB-API default expects
    it (no transaction open, the driver's default commit mode), and the worker
    calls it before any other use of the connection.
    """

    __slots__ = ("adapter", "conn")

    def __init__(self, adapter: DriverAdapter, conn: Any) -> None:
        self.adapter = adapter
        self.conn = conn

    def run(self, args: tuple[Any, ...], kw: Mapping[str, Any], fetch: bool) -> Any:
        """Run one statement as its own transaction: ``fetchall()`` when ``fetch``, else None."""
        return self.adapter.runSingle(self.conn, args, kw, fetch)

    def leave(self, commit: bool = True) -> None:
        """Drop any state kept between statements (nothing here); ``commit`` says whether a transaction
        the last statement left open is committed or rolled back."""


@implementer(IDriverAdapter)
class DriverAdapter:
    """Driver-specific behaviour; the base class is what any DB-API 2.0 module gets."""

    #: a short name used in reprs and statistics
    name = "generic"
    #: True when :meth:`cancel` can stop a statement on the server
    canCancel = False
    #: True when :meth:`connectNonblocking` gives connections the pool's lanes can drive (``_lane.py``)
    supportsLanes = False

    def __init__(self, module: ModuleType) -> None:
        self.module = module

    # -- connections (worker thread) -------------------------------------------

    def connect(self, connargs: Sequence[Any], connkw: Mapping[str, Any]) -> Any:
        """Open a new DB-API connection."""
        return self.module.connect(*connargs, **connkw)

    def describeConnection(self, conn: Any) -> Any:
        """Whatever :meth:`cancel` needs later about ``conn`` (read right after connecting)."""
        return None

    def connectNonblocking(self, connargs: Sequence[Any], connkw: Mapping[str, Any]) -> Any:
        """Open a connection in the driver's nonblocking mode (any thread; blocks until it is ready).

        Only adapters with ``supportsLanes`` have one; the pool never calls it on the others.
        """
        raise RuntimeError(f"{self.name} has no nonblocking connections (supportsLanes is False)")

    def ping(self, conn: Any, goodSql: str | None) -> None:
        """Raise if ``conn`` is no longer usable; leaves no transaction open."""
        cursor = conn.cursor()
        try:
            cursor.execute(goodSql or "SELECT 1")
            cursor.fetchall()
        finally:
            cursor.close()
        conn.rollback()

    def rollback(self, conn: Any) -> None:
        """Roll back ``conn`` after an error or a cancel (the owner thread); raises what the driver raises."""
        conn.rollback()

    def discard(self, conn: Any) -> None:
        """Close ``conn`` (already known or suspected broken); never raises."""
        try:
            conn.close()
        except Exception:
            pass

    def singleRunner(self, conn: Any) -> SingleRunner:
        """The runner of single statements for a newly opened ``conn``."""
        return SingleRunner(self, conn)

    def isSettled(self, conn: Any) -> bool:
        """True when ``conn``, just rolled back after an error, runs no statement and holds no transaction.

        False makes the pool discard it. DB-API has no way to ask, so the base trusts the rollback.
        """
        return True

    def runSingle(self, conn: Any, args: tuple[Any, ...], kw: Mapping[str, Any], fetch: bool) -> Any:
        """Run one statement as its own transaction; the fast path of runQuery/runOperation.

        Observable semantics are those of Twisted's ``runInteraction(_runQuery)``:
        execute, ``fetchall()`` when ``fetch``, commit; on error the statement's
        effects are rolled back and the error propagates (the caller rolls back).
        """
        cursor = conn.cursor()
        try:
            cursor.execute(*args, **kw)
            result = cursor.fetchall() if fetch else None
        finally:
            cursor.close()
        conn.commit()
        return result

    # -- classification (any thread) -------------------------------------------

    def isDisconnect(self, exc: BaseException, conn: Any) -> bool:
        """True when ``exc`` (raised on ``conn``) means the connection is gone."""
        return False

    def isConflict(self, exc: BaseException) -> bool:
        """True for a serialization failure or deadlock: the server rolled back, re-running is safe."""
        return False

    def neverSent(self, exc: BaseException, conn: Any) -> bool:
        """True only when ``exc`` proves nothing reached the server: ``conn`` was already closed (by
        ``close()``, or by the driver after an earlier loss) when the call tried to use it.

        ``cp_reconnect`` then runs a ``runQuery``/``runOperation`` statement again
        on a new connection, so a wrong True would run the work twice: the base
        (any driver) says False.
        """
        return False

    # -- cancellation (not the owner thread) ------------------------------------

    def cancel(self, conn: Any, info: Any, connargs: Sequence[Any], connkw: Mapping[str, Any]) -> None:
        """Ask the server to stop the statement running on ``conn`` (no-op if unsupported)."""


class GenericAdapter(DriverAdapter):
    """Any DB-API 2.0 module: no server-side cancel, broken connections found by a failed rollback."""


class Sqlite3Adapter(DriverAdapter):
    """sqlite3: ``Connection.interrupt()`` is thread-safe and instant; busy/locked is a conflict."""

    name = "sqlite3"
    canCancel = True
    _conflictCodes = frozenset({5, 6})  # SQLITE_BUSY, SQLITE_LOCKED (and their extended codes' low byte)

    def ping(self, conn: Any, goodSql: str | None) -> None:
        # A file database has nothing to lose; only run what the user asked for.
        if goodSql is not None:
            super().ping(conn, goodSql)

    def isDisconnect(self, exc: BaseException, conn: Any) -> bool:
        return isinstance(exc, sqlite3.ProgrammingError) and "closed database" in str(exc)

    def neverSent(self, exc: BaseException, conn: Any) -> bool:
        # In-process: a statement on a closed database never started.
        return self.isDisconnect(exc, conn)

    def isConflict(self, exc: BaseException) -> bool:
        code = getattr(exc, "sqlite_errorcode", None)
        if isinstance(exc, sqlite3.OperationalError) and code is not None:
            return (code & 0xFF) in self._conflictCodes
        return isinstance(exc, sqlite3.OperationalError) and "database is locked" in str(exc)

    def cancel(self, conn: Any, info: Any, connargs: Sequence[Any], connkw: Mapping[str, Any]) -> None:
        try:
            conn.interrupt()
        except sqlite3.ProgrammingError:  # closed meanwhile: nothing left to stop
            pass


class Psycopg2Adapter(DriverAdapter):
    """psycopg2: ``connection.cancel()`` (PQcancel); SQLSTATEs for lost/conflict; an autocommit fast path."""

    name = "psycopg2"
    canCancel = True
    supportsLanes = True
    _conflictStates = frozenset({"40001", "40P01"})  # serialization_failure, deadlock_detected

    def ping(self, conn: Any, goodSql: str | None) -> None:
        # One round trip: run the check outside a transaction.
        conn.autocommit = True
        try:
            cursor = conn.cursor()
            cursor.execute(goodSql or "SELECT 1")
            cursor.close()
        finally:
            if not conn.closed:
                conn.autocommit = False

    def singleRunner(self, conn: Any) -> SingleRunner:
        return _Psycopg2Runner(self, conn)

    def isSettled(self, conn: Any) -> bool:
        # A COPY the driver refused to read (execute() of "COPY ... TO STDOUT") leaves libpq mid-statement
        # (ACTIVE), and psycopg2's rollback() does not end it: the next statement would start a transaction.
        return bool(_transactionStatusOf(conn)() == _PG_IDLE)

    def connectNonblocking(self, connargs: Sequence[Any], connkw: Mapping[str, Any]) -> Any:
        # libpq enforces connect_timeout only for blocking connects: bound the wait here the same way.
        extensions = importlib.import_module(self.module.__name__ + ".extensions")
        timeout = _connectTimeout(extensions, connargs, connkw)
        conn = self.module.connect(*connargs, async_=True, **connkw)
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while True:
                state = conn.poll()
                if state == extensions.POLL_OK:
                    return conn
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                if state == extensions.POLL_READ:
                    ready = select.select([conn.fileno()], [], [], left)[0]
                else:
                    ready = select.select([], [conn.fileno()], [], left)[1]
                if not ready:
                    raise self.module.OperationalError(f"timeout expired (connect_timeout={timeout:g})")
        except BaseException:
            self.discard(conn)
            raise

    def runSingle(self, conn: Any, args: tuple[Any, ...], kw: Mapping[str, Any], fetch: bool) -> Any:
        # One statement in autocommit mode, leaving the connection as it found it.
        runner = _Psycopg2Runner(self, conn)
        try:
            return runner.run(args, kw, fetch)
        finally:
            runner.leave()

    # Where the driver keeps an error's SQLSTATE, and the connection flags that mean "lost".
    _sqlstateAttribute = "pgcode"
    _lostFlags: tuple[str, ...] = ("closed",)

    def isDisconnect(self, exc: BaseException, conn: Any) -> bool:
        if conn is not None and any(getattr(conn, flag, False) for flag in self._lostFlags):
            return True
        if isinstance(exc, self.module.InterfaceError):
            return True
        if isinstance(exc, self.module.OperationalError):
            code = getattr(exc, self._sqlstateAttribute, None)
            return code is None or code.startswith("08") or code in ("57P01", "57P02", "57P03")
        return False

    def isConflict(self, exc: BaseException) -> bool:
        return getattr(exc, self._sqlstateAttribute, None) in self._conflictStates

    def neverSent(self, exc: BaseException, conn: Any) -> bool:
        # psycopg2 raises InterfaceError ("connection/cursor already closed") only when the connection
        # was closed before the call; a loss during a statement is an OperationalError.
        return isinstance(exc, self.module.InterfaceError) and bool(getattr(conn, "closed", False))

    def cancel(self, conn: Any, info: Any, connargs: Sequence[Any], connkw: Mapping[str, Any]) -> None:
        try:
            conn.cancel()
        except Exception:  # the connection died meanwhile: nothing left to stop
            pass


# A cursor whose last result had more rows than this is replaced rather than kept (its result
# stays in memory until the cursor's next execute).
_KEEP_RESULT_ROWS = 256


class _Psycopg2Runner(SingleRunner):
    """psycopg2's (and psycopg 3's) single statements: autocommit mode, one kept cursor.

    In autocommit mode the server runs the statement (or a multi-statement
    string) as one implicit transaction, committed on success and rolled back on
    error: Twisted's execute + commit without the BEGIN and COMMIT round trips.
    The connection stays in that mode, with one cursor, across consecutive
    single statements; :meth:`leave` (called before any other kind of call, and
    after an error) puts back the mode it found. Worker thread only.
    """

    __slots__ = ("cursor", "status", "wasAutocommit")

    def __init__(self, adapter: DriverAdapter, conn: Any) -> None:
        super().__init__(adapter, conn)
        # The connection's libpq transaction status (the same numbers in psycopg2 and psycopg 3).
        self.status: Callable[[], int] = _transactionStatusOf(conn)
        # Not None exactly while the runner holds the connection in single-statement mode.
        self.cursor: Any = None
        # The connection's own mode (a cp_openfun may have chosen autocommit), put back by leave().
        self.wasAutocommit = False

    def run(self, args: tuple[Any, ...], kw: Mapping[str, Any], fetch: bool) -> Any:
        conn = self.conn
        if fetch:
            text = queryText(args, kw, conn)
            if text is None or not returnsRows(text):
                # It may return no result set: then fetchall() fails, and Twisted rolls the statement
                # back, which needs it inside BEGIN ... COMMIT (the driver's default mode) to be undone.
                self.leave()
                return DriverAdapter.runSingle(self.adapter, conn, args, kw, fetch)
        cursor = self.cursor
        if cursor is None:
            if self.status() != _PG_IDLE or _hasSessionCharacteristics(conn):
                # A transaction is open (a driver-level call left one): the statement joins and commits it.
                # Or set_session() chose an isolation level, read-only or deferrable: the driver applies
                # those in its BEGIN, which autocommit mode would skip.
                return DriverAdapter.runSingle(self.adapter, conn, args, kw, fetch)
            self.wasAutocommit = conn.autocommit
            if not self.wasAutocommit:
                conn.autocommit = True
            cursor = self.cursor = conn.cursor()
        try:
            cursor.execute(*args, **kw)
            result = cursor.fetchall() if fetch else None
        except BaseException as e:
            wasAutocommit = self.wasAutocommit
            try:
                self.leave(commit=False)
            except Exception:  # the caller gets the statement's error; the pool's recovery judges the rest
                pass
            if not wasAutocommit and _sqlstate(e) == NO_ACTIVE_TRANSACTION and self.status() == _PG_IDLE:
                # LOCK, SAVEPOINT, DECLARE...: refused before doing anything, and the implicit
                # transaction was rolled back. Twisted's BEGIN would have opened the block they need.
                return DriverAdapter.runSingle(self.adapter, conn, args, kw, fetch)
            raise
        if self.status() != _PG_IDLE:
            # The statement itself opened a transaction ("BEGIN; ..."): end it as Twisted's commit would.
            self.leave()
        elif cursor.rowcount > _KEEP_RESULT_ROWS:
            self.cursor = conn.cursor()
            cursor.close()
        return result

    def leave(self, commit: bool = True) -> None:
        """Put the connection back in its own mode; a transaction the statement left open is committed
        (``commit``, after a statement that succeeded) or rolled back (after one that failed)."""
        cursor, self.cursor = self.cursor, None
        if cursor is None:
            return
        conn = self.conn
        try:
            if not conn.closed:
                status = self.status()
                if status == _PG_INTRANS or status == _PG_INERROR:
                    cursor.execute("COMMIT" if commit and status == _PG_INTRANS else "ROLLBACK")
        finally:
            try:
                cursor.close()
            except Exception:  # a broken connection: the caller deals with it
                pass
            if not self.wasAutocommit and not conn.closed:
                conn.autocommit = False


def _connectTimeout(
    extensions: ModuleType, connargs: Sequence[Any], connkw: Mapping[str, Any]
) -> float | None:
    """The ``connect_timeout`` (seconds) given in psycopg2's DSN or keywords, if any (None: wait forever)."""
    value = connkw.get("connect_timeout")
    if value is None:
        dsn = connargs[0] if connargs else connkw.get("dsn")
        if isinstance(dsn, str) and dsn:
            value = extensions.parse_dsn(dsn).get("connect_timeout")
    try:
        seconds = float(value) if value is not None else 0.0
    except (TypeError, ValueError):
        return None
    # libpq: zero or negative means wait forever; anything below 2 s counts as 2 s.
    return max(seconds, 2.0) if seconds > 0 else None


def _sqlstate(error: BaseException) -> str | None:
    """The SQLSTATE of a psycopg2 (``pgcode``) or psycopg 3 (``sqlstate``) error, else None."""
    code = getattr(error, "pgcode", None) or getattr(error, "sqlstate", None)
    return code if isinstance(code, str) else None


def _hasSessionCharacteristics(conn: Any) -> bool:
    """True when ``conn.set_session()`` (or its attributes) set an isolation level, read-only or deferrable.

    psycopg2 and psycopg 3 both report None for "the server's default".
    """
    return (
        getattr(conn, "isolation_level", None) is not None
        or getattr(conn, "readonly", getattr(conn, "read_only", None)) is not None
        or getattr(conn, "deferrable", None) is not None
    )


def _transactionStatusOf(conn: Any) -> Callable[[], int]:
    """A zero-argument reader of ``conn``'s libpq transaction status (psycopg2 or psycopg 3)."""
    reader = getattr(conn, "get_transaction_status", None)
    if reader is not None:
        return reader  # type: ignore[no-any-return]
    info = conn.info
    return lambda: int(info.transaction_status)


class Psycopg3Adapter(Psycopg2Adapter):
    """psycopg 3 (``psycopg``): the same libpq underneath, so psycopg2's strategy with psycopg 3's names.

    Cancel with ``cancel_safe()`` where it exists (psycopg >= 3.2; ``cancel()``
    before), both documented as callable from another thread while the owner
    runs a statement; SQLSTATEs come from ``exc.sqlstate``; a connection is lost
    when it is ``broken`` or ``closed``. The single-statement fast path is
    psycopg2's (autocommit mode, one kept cursor). psycopg 3 binds parameters
    on the server and prepares a statement run often on one connection
    (``prepare_threshold``, 5 by default): its own documented behaviour, which
    the pool leaves as it is.
    """

    name = "psycopg"
    supportsLanes = False  # psycopg 3's nonblocking API is its own (async connections), not psycopg2's
    _sqlstateAttribute = "sqlstate"
    _lostFlags = ("broken", "closed")

    def neverSent(self, exc: BaseException, conn: Any) -> bool:
        # psycopg 3 checks the connection before any I/O and raises this exact error when it is closed;
        # a loss during a statement has another message ("consuming input failed", "server closed...").
        return (isinstance(exc, self.module.OperationalError) and str(exc) == "the connection is closed"
                and bool(getattr(conn, "closed", False)))

    def cancel(self, conn: Any, info: Any, connargs: Sequence[Any], connkw: Mapping[str, Any]) -> None:
        try:
            cancelSafe = getattr(conn, "cancel_safe", None)
            if cancelSafe is not None:
                cancelSafe(timeout=10.0)
            else:
                conn.cancel()
        except Exception:  # the connection died meanwhile: nothing left to stop
            pass


class MySQLAdapter(DriverAdapter):
    """PyMySQL, MySQLdb (mysqlclient) and MySQL Connector/Python (``mysql.connector``).

    Cancellation is ``KILL QUERY <connection id>`` from a side connection; the
    health check is COM_PING. The three drivers agree on error numbers in
    ``args[0]`` and differ only in how a connection tells its id.
    """

    name = "mysql"
    canCancel = True
    _lostCodes = frozenset({2006, 2013, 2014, 2045, 2055, 1927, 4031})
    _conflictCodes = frozenset({1213, 1205})  # deadlock, lock wait timeout

    def __init__(self, module: ModuleType) -> None:
        super().__init__(module)
        self.name = module.__name__.split(".")[0].lower()

    def describeConnection(self, conn: Any) -> Any:
        threadID = getattr(conn, "thread_id", None)
        if callable(threadID):  # PyMySQL, MySQLdb
            return threadID()
        return conn.connection_id  # mysql.connector

    def ping(self, conn: Any, goodSql: str | None) -> None:
        if goodSql is not None:
            super().ping(conn, goodSql)
            return
        try:
            conn.ping(reconnect=False)
        except TypeError:  # MySQLdb's ping() takes no keyword
            conn.ping()

    def rollback(self, conn: Any) -> None:
        # mysql.connector's default cursors are unbuffered: a statement stopped by KILL QUERY (or any
        # result the caller never fetched) leaves rows, or the 1317 "interrupted" error, on the wire, and
        # its rollback() would read them and fail. They belong to the statement being rolled back.
        if getattr(conn, "unread_result", False):
            try:
                conn.consume_results()
            except self.module.Error:
                pass
        conn.rollback()

    def isDisconnect(self, exc: BaseException, conn: Any) -> bool:
        if isinstance(exc, self.module.InterfaceError):
            return True
        if getattr(exc, "errno", None) == -1 and isinstance(exc, self.module.OperationalError):
            # mysql.connector's own "MySQL Connection not available": raised without a server error
            # number once its ping (every cursor() pings) finds the socket gone.
            return True
        args: tuple[Any, ...] = getattr(exc, "args", ())
        if args and isinstance(args[0], int) and args[0] in self._lostCodes:
            return True
        return conn is not None and getattr(conn, "open", True) is False

    def isConflict(self, exc: BaseException) -> bool:
        args: tuple[Any, ...] = getattr(exc, "args", ())
        return bool(args) and isinstance(args[0], int) and args[0] in self._conflictCodes

    def neverSent(self, exc: BaseException, conn: Any) -> bool:
        args: tuple[Any, ...] = getattr(exc, "args", ())
        if self.module.__name__ == "pymysql":
            # PyMySQL's InterfaceError(0, '') means its socket was already gone (closed, or dropped after
            # an earlier loss): raised before it writes anything.
            return isinstance(exc, self.module.InterfaceError) and args == (0, "")
        if self.module.__name__ == "mysql.connector":
            # Raised (errno -1) by cursor()'s check, or when the socket is already None at the send.
            return (isinstance(exc, self.module.OperationalError) and getattr(exc, "errno", None) == -1
                    and "Connection not available" in str(exc))
        return False  # MySQLdb: its closed-connection error is not known to be raised before sending

    def cancel(self, conn: Any, info: Any, connargs: Sequence[Any], connkw: Mapping[str, Any]) -> None:
        if info is None:
            return
        side = self.module.connect(*connargs, **connkw)
        try:
            cursor = side.cursor()
            cursor.execute(f"KILL QUERY {int(info)}")
            cursor.close()
        finally:
            side.close()


# psycopg2.extensions.TRANSACTION_STATUS_IDLE / _INTRANS / _INERROR (libpq's PQTRANS_*).
_PG_IDLE = 0
_PG_INTRANS = 2
_PG_INERROR = 3

_BY_NAME: dict[str, type[DriverAdapter]] = {
    "sqlite3": Sqlite3Adapter,
    "psycopg2": Psycopg2Adapter,
    "psycopg": Psycopg3Adapter,
    "pymysql": MySQLAdapter,
    "MySQLdb": MySQLAdapter,
    "mysql": MySQLAdapter,  # mysql.connector
}


def adapterFor(module: ModuleType) -> DriverAdapter:
    """The adapter for a DB-API module (matched on its top-level package name)."""
    top = module.__name__.split(".")[0]
    cls = _BY_NAME.get(top, GenericAdapter)
    return cls(module)
