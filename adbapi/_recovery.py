"""What a worker does after a call failed: roll back or discard the connection, and judge a retry.

All of it runs in the worker thread that owns the connection (lanes use only
:func:`classify`, in the reactor thread). The caller always re-raises the
original error afterwards: whatever goes wrong while recovering is logged and
costs the connection, never the caller's view of what failed first.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from adbapi._cancel import waitForCancel
from adbapi._errors import ConnectionLost
from adbapi._here import currentHolder

if TYPE_CHECKING:
    from adbapi._holder import ConnectionHolder
    from adbapi._pool import ConnectionPool
    from adbapi._wrappers import Connection

__all__ = ["FLAG_CONFLICT", "FLAG_LOST_BEFORE_COMMIT", "classify", "recover", "recoverRaw"]

_log = logging.getLogger("adbapi")

#: Retry-policy flags of a failed call: the server rolled it back (serialization failure, deadlock) ...
FLAG_CONFLICT = 1
#: ... or the connection was lost before the commit was sent.
FLAG_LOST_BEFORE_COMMIT = 2


def _waitForCancelOf(worker: ConnectionHolder | None) -> None:
    """Before rolling back a failed call: let a cancel in flight finish, so it cannot hit the rollback."""
    if worker is None:
        return
    call = worker.runningCall()
    if call is not None:
        waitForCancel(call)


def recover(pool: ConnectionPool, conn: Connection, error: BaseException) -> None:
    """After ``error`` in a call: roll back, or discard a broken connection.

    Raises ConnectionLost (with ``cp_reconnect``) only when ``error`` itself is the
    lost connection. When the rollback fails the connection is discarded and the
    caller's ``raise`` re-raises ``error``: the caller always learns what went
    wrong first, as in Twisted.
    """
    worker = currentHolder(pool)
    _waitForCancelOf(worker)
    raw = getattr(conn, "_connection", None)
    if raw is None or getattr(conn, "_lost", False):  # already discarded (cp_reconnect's rollback did it)
        return
    if worker is not None and _droppedAsLost(pool, worker, raw, error):
        return
    rollbackError: Exception | None = None
    try:
        conn.rollback()
    except ConnectionLost:
        # cp_reconnect's rollback found the connection dead and discarded it (and logged why).
        return
    except Exception as e:
        rollbackError = e
    if worker is not None and raw is worker.conn:
        _keepOrDiscard(pool, worker, raw, rollbackError)


def recoverRaw(pool: ConnectionPool, raw: Any, error: BaseException) -> None:
    """:func:`recover` for the fast path, which works on the raw connection."""
    worker = currentHolder(pool)
    _waitForCancelOf(worker)
    if worker is None or _droppedAsLost(pool, worker, raw, error):
        return
    rollbackError: Exception | None = None
    try:
        pool.context.adapter.rollback(raw)
        if pool.reconnect:
            pool.context.adapter.ping(raw, pool.good_sql)
    except Exception as e:
        rollbackError = e  # the caller re-raises ``error``, as after recover()
    _keepOrDiscard(pool, worker, raw, rollbackError)


def _droppedAsLost(pool: ConnectionPool, worker: ConnectionHolder, raw: Any, error: BaseException) -> bool:
    """When ``error`` means the connection is gone: discard it and say so (with ``cp_reconnect``, raise
    ConnectionLost from ``error``, as Twisted does)."""
    if not pool.context.adapter.isDisconnect(error, raw):
        return False
    worker.discardConnection(broken=True)
    if pool.reconnect:
        raise ConnectionLost("the database connection was lost") from error
    return True


def _keepOrDiscard(
    pool: ConnectionPool, worker: ConnectionHolder, raw: Any, rollbackError: Exception | None
) -> None:
    """After the rollback: discard the worker's connection if it failed, or left the session mid-statement."""
    if rollbackError is not None:
        what = pool.context.redactor.scrub(f"{type(rollbackError).__name__}: {rollbackError}")
        reason = f"rollback failed ({what})"
    elif not pool.context.adapter.isSettled(raw):
        reason = "the connection is still busy after a rollback"
    else:
        return
    _log.warning("adbapi: %s: %s; discarding the connection", pool.context.label, reason)
    worker.discardConnection(broken=True)


def classify(pool: ConnectionPool, error: BaseException, committing: bool) -> int:
    """Flags for the retry policy (worker thread, right after the error)."""
    if pool.context.retry is None:
        return 0
    cause = error.__cause__ if isinstance(error, ConnectionLost) and error.__cause__ else error
    flags = 0
    if pool.context.adapter.isConflict(cause):
        flags |= FLAG_CONFLICT
    adapter = pool.context.adapter
    if not committing and (isinstance(error, ConnectionLost) or adapter.isDisconnect(cause, None)):
        flags |= FLAG_LOST_BEFORE_COMMIT
    return flags
