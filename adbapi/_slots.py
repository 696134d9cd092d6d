"""The slots calls run in, as the router sees them: the :class:`Slot` interface and the thread slots.

Two kinds of slot implement :class:`Slot`:

- :class:`ThreadSlots`, the pool's worker threads as one: a
  :class:`deferthreads.ResourcePool` whose resource is a
  :class:`~adbapi._holder.ConnectionHolder` (one connection per worker). It
  starts a worker when a call needs one (within its maximum), queues calls when
  every worker is busy (its workers take the next one themselves, with no
  reactor round trip), retires idle workers and stops them. Outcomes come home
  through its Deferreds, to the router's ``onDone``/``onFailed``; a worker
  taking a call the router asked to hear about (``call.announce``) tells
  ``onStarted``.
- ``_lane._Lane``, one nonblocking psycopg2 connection the reactor drives.

The router (``_router.py``) hands a call over with :meth:`Slot.start` and
asks for it to stop with :meth:`Slot.cancel`; the health policy both kinds
follow is ``_health.HealthPolicy`` (``PoolContext.health``).

Threads: everything here runs in the reactor thread, except what the resource
pool runs in its workers (``_holder.serve``) and the cancel sent as side work.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from adbapi._cancel import sendCancel
from adbapi._errors import PoolAbandonedError, PoolClosedError, PoolTimeoutError
from adbapi._holder import ConnectionHolder, HolderRegistry, serve
from adbapi._side import setter
from deferthreads import ResourcePool
from reactor import Failure

if TYPE_CHECKING:
    from adbapi._call import _Call
    from adbapi._context import PoolContext
    from adbapi._pool import ConnectionPool
    from deferthreads import ResourcePoolStatistics

__all__ = ["Slot", "ThreadSlots"]


class Slot(Protocol):
    """A place calls run (reactor thread): the thread slots as one, or a lane."""

    def start(self, call: _Call) -> Failure | None:
        """Run ``call`` here (it is QUEUED; the slot marks it RUNNING when it starts).

        Returns None once the slot took it, or the Failure it was refused with
        (the call did not run; the router fails it).
        """
        ...

    def cancel(self, call: _Call) -> None:
        """Stop ``call``, which this slot took: drop it if it has not started, else stop it on the server."""
        ...


class ThreadSlots:
    """The pool's worker threads, one ResourcePool generation at a time (reactor thread).

    ``onDone(outcome, call)`` gets ``serve``'s ``(ok, value, flags)`` of every
    call that ran; ``onFailed(failure, call)`` the Failure of one the resource
    pool gave back without running it to its end (a wait past
    ``cp_wait_timeout``, a cancel, a close that gave up). A close that gives up
    on workers stuck in a call leaves that generation stopping: :meth:`renew`
    makes the next, whose threads are told apart by name
    (``PoolThread-<name>-g<k>-worker-<n>``).
    """

    def __init__(
        self,
        pool: ConnectionPool,
        context: PoolContext,
        *,
        minthreads: int,
        maxthreads: int,
        maxWaiting: int | None,
        waitTimeout: float | None,
        onDone: Callable[[tuple[bool, Any, int], _Call], object],
        onFailed: Callable[[Failure, _Call], object],
        onStarted: Callable[[_Call], object],
    ) -> None:
        self.owner = pool
        self.context = context
        self.minthreads = minthreads
        self.maxWaiting = maxWaiting
        self.waitTimeout = waitTimeout
        self.onDone = onDone
        self.onFailed = onFailed
        self.onStarted = onStarted
        self.generation = 0
        self.interrupting: _Call | None = None  # the call a cancel is interrupting (see _interrupt)
        self.holders = HolderRegistry()
        self.pool: ResourcePool[ConnectionHolder] = self._newPool(maxthreads)

    def _newPool(self, maxthreads: int) -> ResourcePool[ConnectionHolder]:
        """A new generation of workers: a ResourcePool whose resource is a ConnectionHolder.

        Its life cycle is the pool's (``manageLifecycle=False``): it starts with
        the pool and is stopped once the calls it may still be handed are in it.
        Its idle workers retire on the pool's clock (the router's idle check).
        """
        registry = self.holders = HolderRegistry()
        owner = self.owner
        onStarted = self.onStarted
        context = self.context
        self.generation += 1
        prefix = context.threadPrefix
        name = prefix if self.generation == 1 else f"{prefix}-g{self.generation}"

        def create() -> ConnectionHolder:
            return ConnectionHolder.make(owner, registry, onStarted)

        label = context.label
        waitTimeout = self.waitTimeout

        def waitTimeoutError(message: str) -> BaseException:
            return PoolTimeoutError(f"{label}: no connection became free within {waitTimeout} s")

        return ResourcePool(
            create,
            ConnectionHolder.close,
            minthreads=self.minthreads,
            maxthreads=maxthreads,
            interrupt=self._interrupt,
            queueLimit=self.maxWaiting,
            waitTimeout=waitTimeout,
            shutdownTimeout=None,
            name=name,
            reactor=context.reactor,
            clock=context.clock,
            spinTime=0.0,
            manageLifecycle=False,
            waitTimeoutError=waitTimeoutError,
            abandonedRunningError=PoolAbandonedError,
            abandonedQueuedError=PoolClosedError,
        )

    # -- Slot ---------------------------------------------------------------------------------------

    def start(self, call: _Call) -> Failure | None:
        """Hand ``call`` to a worker (the resource pool queues it if every worker is busy)."""
        call.outcome = None
        d = self.pool.run(serve, call)
        if d.called:
            refused: list[Failure] = []
            d.addErrback(refused.append)
            if refused:
                return refused[0]
            return Failure(PoolClosedError(f"{self.context.label} refused the call"))
        call.threadDeferred = d
        d.addCallbacks(self.onDone, self.onFailed, callbackArgs=(call,), errbackArgs=(call,))
        return None

    def cancel(self, call: _Call) -> None:
        """Queued: the resource pool drops it. Running: it calls :meth:`_interrupt` (a cancel sent on the
        server) and holds its own Deferred until the call has stopped."""
        threadDeferred = call.threadDeferred
        if threadDeferred is None:
            return
        self.interrupting = call
        try:
            threadDeferred.cancel()
        finally:
            self.interrupting = None

    def _interrupt(self, holder: ConnectionHolder, thread: threading.Thread) -> None:
        """The resource pool's ``interrupt`` hook (reactor thread, in :meth:`cancel`): cancel on the server.

        The cancel goes out as side work, repeated until the call's statements
        are over; the worker waits for it to stop before it rolls back or runs
        anything else on the connection (``_cancel.py``).
        """
        call = self.interrupting
        context = self.context
        if call is None or not context.adapter.canCancel or not holder.startCancel(call):
            return
        done = call.cancelDone
        assert done is not None
        # The worker waits for cancelDone before it touches the connection again: it is set by
        # sendCancel's last act, and by the report even if the side work never ran.
        context.side.call(setter(done), sendCancel, self.owner, holder, call)

    # -- size, load and life --------------------------------------------------------------------------

    def load(self, calls: int, maxthreads: int) -> tuple[int, int]:
        """(workers, calls on them), cheaply: ``calls`` handed over and not yet settled.

        The workers are those with a holder, and at least as many as those calls
        can keep busy: the resource pool starts one for each, up to its maximum.
        So an idle worker is never counted busy for long, and a worker still
        starting is counted.
        """
        return max(len(self.holders), min(calls, maxthreads)), calls

    def fit(self, maxthreads: int) -> None:
        """Set the most workers (``cp_max`` minus the open lanes)."""
        self.pool.adjustPoolsize(maxthreads=maxthreads)

    def retireIdle(self, idleFor: float, floor: int) -> int:
        """Retire workers idle ``idleFor`` seconds, down to ``floor`` workers; returns how many retired."""
        pool = self.pool
        usual = pool.min
        if floor != usual:
            pool.adjustPoolsize(minthreads=floor)
        retired = pool.retireIdle(idleFor)
        if floor != usual:
            pool.adjustPoolsize(minthreads=usual)
        return retired

    def statistics(self) -> ResourcePoolStatistics:
        return self.pool.statistics()

    def startWorkers(self, maxthreads: int) -> None:
        """Start the workers for a run of the pool; a generation a close gave up on is replaced first."""
        if self.pool.state == "stopping":
            # Left behind by a close that gave up on workers stuck in a call: they exit when their call
            # returns, and never serve this run of the pool.
            self.renew(maxthreads)
        self.pool.start()

    def renew(self, maxthreads: int) -> None:
        """Make the next generation of workers (the current one is stopping, or was given up on)."""
        self.pool = self._newPool(maxthreads)

    def connections(self) -> list[tuple[ConnectionHolder, Any]]:
        """(holder, open connection) of the current workers (any thread)."""
        return [(h, h.conn) for h in self.holders.snapshot() if h.conn is not None]
