"""The objects user code receives in a worker thread: :class:`Connection` and :class:`Transaction`.

Both are thin facades that forward every other attribute to the DB-API object
they wrap, as Twisted's do, so code written for ``twisted.enterprise.adbapi``
runs unchanged. They live in, and must only be used by, the worker thread that
runs the call they were made for.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from adbapi._errors import ConnectionLost

if TYPE_CHECKING:
    from adbapi._pool import ConnectionPool

__all__ = ["Connection", "Transaction"]

_log = logging.getLogger("adbapi")


class Connection:
    """The pool's connection for the current worker thread, as given to ``runWithConnection``.

    Forwards attribute access to the DB-API connection. ``close()`` does nothing
    (the pool owns the connection's lifetime); ``rollback()`` with
    ``cp_reconnect=True`` also checks the connection with ``cp_good_sql`` and,
    when that fails, discards it and raises :class:`ConnectionLost`.
    """

    #: True once rollback() found the connection dead and the pool discarded it.
    _lost = False

    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool
        self._connection: Any = None
        self.reconnect()

    def close(self) -> None:
        """Ignored: closing a pooled connection would strand its worker thread."""

    def rollback(self) -> None:
        """Roll back; with ``cp_reconnect`` verify the connection and raise ConnectionLost if it is dead."""
        if not self._pool.reconnect:
            self._pool.context.adapter.rollback(self._connection)
            return
        try:
            self._pool.context.adapter.rollback(self._connection)
            self._pool.context.adapter.ping(self._connection, self._pool.good_sql)
            return
        except Exception as e:
            original: BaseException = e
        _log.debug("adbapi: rollback or check failed on %s: %s", self._pool.context.label,
                   type(original).__name__)
        self._pool.disconnect(self._connection)
        # Kept, closed, as Twisted keeps it: code that swallows the ConnectionLost and goes on gets the
        # driver's own "connection closed" error from it.
        self._lost = True
        raise ConnectionLost("the database connection was lost") from original

    def reconnect(self) -> None:
        """Drop this thread's connection (if any) and take a fresh one."""
        if self._connection is not None and not self._lost:
            self._pool.disconnect(self._connection)
        self._lost = False
        self._connection = self._pool.connect()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)


class Transaction:
    """A cursor on the worker's connection, as given to ``runInteraction`` functions.

    Forwards attribute access (``execute``, ``fetchall``, ``rowcount``...) to a
    DB-API cursor. The pool commits when the interaction returns and rolls back
    when it raises.
    """

    _cursor: Any = None

    def __init__(self, pool: ConnectionPool, connection: Connection) -> None:
        self._pool = pool
        self._connection = connection
        self.reopen()

    def close(self) -> None:
        """Close the cursor."""
        cursor, self._cursor = self._cursor, None
        if cursor is not None:
            cursor.close()

    def reopen(self) -> None:
        """Open a new cursor (reconnecting first if ``cp_reconnect`` and the connection is dead)."""
        if self._cursor is not None:
            self.close()
        try:
            self._cursor = self._connection.cursor()
            return
        except Exception:
            if not self._pool.reconnect:
                raise
            _log.debug("adbapi: cursor creation failed on %s; reconnecting", self._pool.context.label)
        self.reconnect()
        self._cursor = self._connection.cursor()

    def reconnect(self) -> None:
        """Replace the underlying connection with a fresh one (the cursor must be reopened)."""
        self._connection.reconnect()
        self._cursor = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)
