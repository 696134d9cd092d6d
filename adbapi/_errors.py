"""Exceptions raised by the adbapi package (database errors themselves arrive unchanged)."""

from __future__ import annotations

from reactor import TimeoutError as _ReactorTimeoutError

__all__ = [
    "ConnectionLost",
    "PoolAbandonedError",
    "PoolClosedError",
    "PoolOverloadedError",
    "PoolTimeoutError",
]


class ConnectionLost(Exception):
    """The database connection died under a call (Twisted's name and meaning).

    Raised only when the pool was built with ``cp_reconnect=True``: a call whose
    error was the dead connection errbacks with this (the driver's error is its
    ``__cause__``), the connection is discarded, and the next call reconnects.
    (A call that failed for another reason keeps its own error even if the
    rollback then finds the connection dead.) Client code may try again.
    """


class PoolClosedError(RuntimeError):
    """A call was made on a :class:`ConnectionPool` that is closing or closed."""


class PoolAbandonedError(PoolClosedError):
    """The pool's close gave up on this call: ``cp_shutdown_timeout`` passed while it was still running.

    Unlike a plain :class:`PoolClosedError` (the call never ran), the call had
    started: its statement was asked to stop on the server, but whether its work
    was committed is unknown.
    """


class PoolOverloadedError(RuntimeError):
    """A call was refused because ``cp_max_waiting`` calls were already waiting."""


class PoolTimeoutError(_ReactorTimeoutError):
    """A call waited longer than ``cp_wait_timeout`` for a free connection.

    A subclass of ``reactor.TimeoutError``; the call never reached the database.
    """
