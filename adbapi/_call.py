"""One call made through a pool (``runQuery``, ``runInteraction``...): its Deferred and its fate.

A :class:`_Call` is made in the reactor thread for every ``run*`` call. It runs
either on a lane (``_lane.py``, in the reactor thread) or on a worker of the
pool's :class:`~deferthreads.ResourcePool` (``_holder.py``, in that worker's
thread), perhaps more than once (the retry policy).

Threads: ``state`` (see :class:`~adbapi._dispatch.CallState`), ``worker`` and
the cancel hand-off fields are written by the slot that runs the call (a worker
thread: under its holder's ``callLock``) or by the reactor thread (the
canceller, under the same lock); everything else belongs to the reactor thread.
"""

from __future__ import annotations

import threading
from typing import Any, Protocol

from adbapi._dispatch import CallKind, CallState
from reactor import Deferred

__all__: list[str] = []


class CallOwner(Protocol):
    """Who routes a call: it unqueues it, or stops it on the server, when its Deferred is cancelled."""

    def cancelCall(self, call: _Call) -> None: ...


class _Call:
    """One unit of work and its Deferred.

    Rarely used fields are class-level defaults, so creating a call (once per
    query, in the reactor thread) sets only what every call needs.
    """

    # The slot running it (a ConnectionHolder or a _Lane); set by that slot.
    worker: Any = None
    cancelRequested = False  # set by the canceller; the slot reads it (a stale False only delays the check)
    # Created by the canceller when it hands a cancel to the pool's side threads; the Events themselves
    # are the hand-off between the slot and the side thread (``_cancel.py``):
    statementOver: threading.Event | None = None
    cancelDone: threading.Event | None = None
    # enqueuedAt: reactor thread, as the call joins the lanes' waiting queue; waited: set as a lane takes it.
    enqueuedAt = 0.0
    waited = 0.0
    # The Deferred of the ResourcePool run() carrying it (reactor thread); None when not on a worker.
    threadDeferred: Deferred[Any] | None = None
    # Set by the reactor when it holds later calls until this one starts: serve() then says so.
    announce = False
    # Set (reactor thread, before dispatch) by telemetry when it records the connection wait/use times;
    # then the slot starting the call stamps startedAt on the pool's clock (a worker thread or the
    # reactor; each attempt overwrites it, a retry's backoff clears it). Unobserved calls pay one read.
    timed = False
    startedAt: float | None = None
    # (ok, value, retry flags), recorded by the worker as the call ends (read by a close that cannot wait
    # for the reactor to deliver it).
    outcome: tuple[bool, Any, int] | None = None
    # Reactor thread only:
    attempt = 1
    reconnected = False  # a lane ran it again on a new connection (cp_reconnect; at most once)
    waitTimer: Any = None
    retryTimer: Any = None
    lastFailure: BaseException | None = None

    def __init__(
        self, owner: CallOwner, kind: CallKind, func: Any, args: tuple[Any, ...], kw: dict[str, Any]
    ) -> None:
        self.owner = owner
        self.kind = kind
        self.func = func
        self.args = args
        self.kw = kw
        self.deferred: Deferred[Any] = Deferred(self.cancel)
        self.state = CallState.QUEUED

    def cancel(self, deferred: Deferred[Any]) -> None:
        """The Deferred's canceller (reactor thread): unqueue, or stop the statement on the server."""
        self.owner.cancelCall(self)
