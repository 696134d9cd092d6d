"""Stopping a running statement on the server: the cancel sender and the hand-off with the call's slot.

A cancel of a running call is sent from one of the pool's side threads (a
``deferthreads.ThreadPool`` the pool owns; ``sendCancel`` is the work it runs),
which repeats it until the slot says the call's statements are over; the slot,
before it runs anything else on the connection (a rollback, the next
statement), waits for the sender to stop (``waitForCancel``), so a late cancel
request can never land on other work. Two ``threading.Event`` of the call are
the hand-off: ``statementOver`` (set by the slot) and ``cancelDone`` (set by the
sender as its last act; also set if the side work is abandoned before it ran, so
no slot waits for a cancel that will never come).

The slot's connection (``conn``, ``connInfo``) is read under the slot's
``connLock``, which the slot holds while it installs or removes its
connection: a connection is never closed under a cancel being sent on it.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from adbapi._pool import ConnectionPool

__all__ = ["CancellableCall", "ConnectionOwner", "sendCancel", "waitForCancel"]

_log = logging.getLogger("adbapi")

# How long a worker waits for a cancel request to reach the server before it
# rolls back (a cancel arriving during the rollback would only cost the connection).
_CANCEL_SEND_WAIT = 10.0


class CancellableCall(Protocol):
    """The cancel hand-off fields of a call (see the module docstring)."""

    statementOver: threading.Event | None
    cancelDone: threading.Event | None


class ConnectionOwner(Protocol):
    """A slot (worker or lane) whose connection a cancel is sent on."""

    connLock: threading.Lock
    conn: Any
    connInfo: Any


def waitForCancel(call: CancellableCall) -> None:
    """In the worker: say the call's statements are over, then wait for its canceller to stop.

    The side thread that sent the cancel goes back to the pool's side thread pool,
    which the pool's close drains and joins, so no thread is left after a close.
    """
    over, done = call.statementOver, call.cancelDone
    if over is not None and done is not None:
        over.set()
        done.wait(_CANCEL_SEND_WAIT * 2)


def sendCancel(pool: ConnectionPool, worker: ConnectionOwner, call: CancellableCall) -> None:
    """Side work (a side thread of the pool): keep asking the server to stop ``worker``'s statement until
    the call's statements are over.

    A single request can arrive just before the statement reaches the server (and
    be ignored there), so it is repeated with a growing pause until the worker says
    the statement ended, for at most ``_CANCEL_SEND_WAIT`` seconds.
    """
    over, done = call.statementOver, call.cancelDone
    assert over is not None and done is not None
    pause = 0.02
    waited = 0.0
    try:
        while not over.is_set() and waited < _CANCEL_SEND_WAIT:
            # Held while sending: the worker cannot close or replace the connection meanwhile.
            with worker.connLock:
                conn = worker.conn
                if conn is not None:
                    try:
                        pool.context.adapter.cancel(conn, worker.connInfo, pool.connargs, pool.connkw)
                    except Exception as e:
                        _log.warning("adbapi: %s: cancelling a statement failed: %s", pool.context.label,
                                     pool.context.redactor.scrub(f"{type(e).__name__}: {e}"))
            over.wait(pause)
            waited += pause
            pause = min(pause * 2, 0.5)
    finally:
        done.set()
