"""A pool's life: ``new`` -> ``running`` -> ``closing`` -> ``closed`` (and ``start()`` again).

``running`` begins on the reactor's start or the first call. ``closing``
(``close()``, or the reactor's ``before shutdown``) accepts no new call and
lets the accepted ones finish; the lanes close as they finish, the workers are
stopped once no call can reach them any more (each closes its connection in its
own thread), then the side threads are drained, and the close fires. The close
waits at most the shutdown timeout (``cp_shutdown_timeout``): then running
statements are cancelled on the server, the calls still running errback
:class:`PoolAbandonedError` and the rest :class:`PoolClosedError`, threads stuck
in the driver are left behind, and the close fires (:meth:`PoolLifecycle.closeExpired`).
``closed`` errbacks new calls at once; ``start()`` may reopen it.

:class:`PoolLifecycle` holds that state and the close under way, and the open
``async with pool.transaction()`` blocks a close must end. The Twisted-facing
parts (``start()``, ``close()``, ``finalClose()``, the system event triggers
and ``running``) stay on ``ConnectionPool``, which calls in here.

Threads: reactor thread only (``statistics()`` reads ``state`` from any thread).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from adbapi._errors import PoolAbandonedError, PoolClosedError
from adbapi._stats import PoolState
from reactor import Deferred, succeed

if TYPE_CHECKING:
    from adbapi._async import AsyncTransaction
    from adbapi._context import PoolContext
    from adbapi._router import CallRouter
    from deferthreads import ResourcePool, ThreadPool

__all__ = ["PoolLifecycle"]

_log = logging.getLogger("adbapi")


class PoolLifecycle:
    """The state of one pool and the close under way (see the module docstring; reactor thread).

    ``startPool`` is the pool's ``start()`` (a subclass's, if it has one), which
    an async transaction entered on a new pool calls, as a call does.
    """

    def __init__(self, context: PoolContext, router: CallRouter, startPool: Callable[[], None],
                 shutdownTimeout: float | None) -> None:
        self.context = context
        self.router = router
        self.startPool = startPool
        self.shutdownTimeout = shutdownTimeout
        self.state = PoolState.NEW
        self.closeWaiters: list[Deferred[None]] = []
        self.closeDeadline: Any = None  # the cp_shutdown_timeout timer of a close under way
        self.closeTrigger: Any = None  # the 'before shutdown' trigger close() left (see waitAtShutdown)
        self.transactions: set[AsyncTransaction] = set()  # open ``async with pool.transaction()`` blocks
        self.threadsStopping = False  # the close under way asked the workers to stop
        self.threadsDown = False  # ... and they have
        self.sideDraining: ThreadPool | None = None  # the side threads a close is draining

    # -- starting ----------------------------------------------------------------------------------

    def open(self) -> None:
        """Run (from ``new`` or ``closed``): start the side threads, the workers and the router."""
        self.state = PoolState.RUNNING
        self.context.side.start()
        self.router.opened()
        self.threadsStopping = self.threadsDown = False
        self.router.startWorkers()

    def admitTransaction(self, txn: AsyncTransaction) -> None:
        """An ``async with pool.transaction()`` block begins: a close must end it (see ``_async.py``)."""
        state = self.state
        if state is not PoolState.NEW and state is not PoolState.RUNNING:
            raise PoolClosedError(f"{self.context.label} is {state}; no new transactions are accepted")
        if state is PoolState.NEW:
            self.startPool()
        self.transactions.add(txn)

    def transactionEnded(self, txn: AsyncTransaction) -> None:
        self.transactions.discard(txn)

    # -- closing -----------------------------------------------------------------------------------

    def stop(self) -> Deferred[None]:
        """Close: a Deferred that fires once every slot and side thread is gone (or the deadline passed)."""
        if self.state in (PoolState.NEW, PoolState.CLOSED):
            self.state = PoolState.CLOSED
            return succeed(None)
        d: Deferred[None] = Deferred()
        self.closeWaiters.append(d)
        if self.state == PoolState.CLOSING:
            return d
        self.state = PoolState.CLOSING
        router = self.router
        router.closing()
        # A transaction's block may never be left (its coroutine stuck): end it rather than wait forever.
        for txn in list(self.transactions):
            txn.closeByPool()
        router.retireIdleLanes()
        timeout = self.shutdownTimeout
        self.endCloseIfLast()
        if self.state != PoolState.CLOSING:
            return d
        if not self.context.reactor.running:
            self.closeNotRunning(timeout)
        elif timeout is not None:
            self.closeDeadline = self.context.clock.callLater(timeout, self.closeExpired, timeout)
        return d

    def waitAtShutdown(self, shutdown: Callable[[], object]) -> None:
        """Make the reactor's shutdown wait for this close (``pool.close(); reactor.stop()``)."""
        if self.closeTrigger is None:
            self.closeTrigger = self.context.reactor.addSystemEventTrigger("before", "shutdown", shutdown)

    def shutdownBegan(self) -> None:
        """The reactor's shutdown began: the trigger :meth:`waitAtShutdown` left has fired."""
        self.closeTrigger = None

    def closeNotRunning(self, timeout: float | None) -> None:
        """A close while the reactor is not running: wait for the workers here, within the deadline.

        Nothing can deliver the workers' outcomes until the reactor runs, so the
        outcomes they recorded (``_Call.outcome``) are settled here.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        me = threading.current_thread()
        router = self.router
        for holder in router.threads.holders.snapshot():
            thread = holder.thread
            if thread.is_alive() and thread is not me:
                thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        router.settleRecorded()
        if self.state != PoolState.CLOSING:
            return
        if router.threadCalls or router.feedsThreads():
            self.closeExpired(timeout)
        else:
            self.threadsDown = True
            self.stopSideThenClose()

    def closeExpired(self, timeout: float | None) -> None:
        """The shutdown timeout passed with slots still busy (reactor thread): stop waiting for them.

        Running statements are asked to stop on the server; the workers and lanes
        still busy are forgotten (a worker finishes its call, whose outcome is
        dropped, then closes its connection and exits; so does a connect stuck in
        the driver, whenever it returns), every Deferred they held errbacks, and
        the close ends. The resource pool is told to give its workers up; a
        restart gets a new one if it has not, so a forgotten worker never serves
        a later run of the pool.
        """
        self.closeDeadline = None
        if self.state != PoolState.CLOSING:
            return
        router = self.router
        label = self.context.label
        threadCalls, lanes = router.takeBusy()
        _log.warning("adbapi: %s: close gave up after %s s: %d call(s) on worker threads and %d lane(s) "
                     "were still busy", label, timeout, len(threadCalls), len(lanes))
        why = (f"{label} closed while this call was running: the shutdown timeout ({timeout} s) "
               "passed; the statement was asked to stop, and whether its work committed is unknown")
        for txn in list(self.transactions):
            txn.abandonByPool(PoolAbandonedError(why))  # the operations it issued, first
        router.abandon(threadCalls, lanes, why)
        router.giveUpWorkers()
        # The side work handed out above (cancels, the release of abandoned lanes' connections) and any
        # still running (a lane's connect stuck in the driver) is left to the old side threads, which
        # drain on their own, exiting as their work ends; a restart gets new ones.
        self.sideDraining = None
        self.context.side.abandon()
        self.closed()

    def endCloseIfLast(self) -> None:
        """Closing: the last slot to go (a lane, or the workers as one) ends the close."""
        router = self.router
        if self.state != PoolState.CLOSING or router.lanes:
            return
        if router.pending:
            router.pendingToThreads()
        self._maybeStopThreads()
        if self.threadsDown:
            self.stopSideThenClose()

    def _maybeStopThreads(self) -> None:
        """Closing: once no call can reach the workers any more (no lane, none waiting), stop them."""
        if self.threadsStopping or self.router.feedsThreads():
            return
        self.threadsStopping = True
        threads = self.router.threads.pool
        threads.stop().addCallback(self._threadsStopped, threads)

    def _threadsStopped(self, ignored: None, threads: ResourcePool[Any]) -> None:
        # Every worker has closed its connection and exited; their outcomes were delivered first.
        current = self.router.threads.pool
        if threads is not current or self.state != PoolState.CLOSING or not self.threadsStopping:
            return
        self.threadsDown = True
        self.endCloseIfLast()

    def stopSideThenClose(self) -> None:
        """Every slot has gone (reactor thread): stop the side threads, then end the close.

        While the reactor runs the side pool drains without blocking it (its work
        finishes, its threads are joined) and the close ends then, or at the close's
        deadline (:meth:`closeExpired`), whichever is first. Otherwise it is stopped
        here, within the shutdown timeout.
        """
        side = self.context.side
        reactor = self.context.reactor
        if not reactor.running:
            side.stop(self.shutdownTimeout)
            self.closed()
            return
        threads = side.threads
        if self.sideDraining is threads:
            return  # already draining; its end closes the pool
        self.sideDraining = threads
        side.drain(reactor).addCallback(self._sideDrained, threads)

    def _sideDrained(self, ignored: None, threads: ThreadPool) -> None:
        if self.sideDraining is not threads or self.state != PoolState.CLOSING:
            return  # the close's deadline passed first and ended it
        self.sideDraining = None
        self.closed()

    def closed(self) -> None:
        """The close ends: calls still waiting errback, and the close's Deferreds fire."""
        self.state = PoolState.CLOSED
        if self.closeDeadline is not None:
            if self.closeDeadline.active():
                self.closeDeadline.cancel()
            self.closeDeadline = None
        if self.closeTrigger is not None:  # the trigger close() left for a shutdown that did not come
            try:
                self.context.reactor.removeSystemEventTrigger(self.closeTrigger)
            except (ValueError, KeyError):
                pass
            self.closeTrigger = None
        # Calls still waiting with no slot left to run them (the reactor stopped before they could
        # start) are not dropped silently.
        self.router.dropWaiting()
        waiters, self.closeWaiters = self.closeWaiters, []
        for d in waiters:
            d.callback(None)
