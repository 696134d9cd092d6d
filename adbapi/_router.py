"""The call router: takes every call of a pool to a slot, and every outcome back to its Deferred.

It owns what calls wait in and where they are: the lanes' waiting queue
(``pending``: calls that found every slot a busy lane), the calls held while a
woken worker is on its way (``held``), the idle lane stack, the open lanes, the
calls handed to the worker threads (``threadCalls``), the calls waiting for a
retry (``backingOff``), the wait timers, cancels, the idle check and the call
counters. Where a call goes is decided by the pure functions of
``_dispatch.py`` (:func:`~adbapi._dispatch.route`,
:func:`~adbapi._dispatch.laneNext`, :func:`~adbapi._dispatch.holdForWaking`);
this class does what they say, through the :class:`~adbapi._slots.Slot`
interface of the thread slots (:class:`~adbapi._slots.ThreadSlots`) and the
lanes (``_lane._Lane``). Every change of a call's state follows
:data:`~adbapi._dispatch.TRANSITIONS`: through :func:`~adbapi._dispatch.advance`,
which checks it, except on the steps every call takes (a lane starts it, takes
it from the queue, finishes it; the workers' outcome comes home), written
directly where the state before is known.

Lanes (psycopg2) count against ``cp_max`` with the workers: the resource pool's
maximum is ``cp_max`` minus the open lanes.

The pool's lifecycle (``_lifecycle.py``) tells the router when calls are
accepted (:meth:`opened`, :meth:`closing`) and is told when the last lane went
(``slotsGone``).

Threads: reactor thread only, except :meth:`started` (called there through
``callFromThread`` by a worker) and the lengths :meth:`waitingCount` and the
pool's ``statistics()`` read from any thread.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from adbapi._dispatch import CallKind, CallState, LaneNext, Route, advance, holdForWaking, laneNext, route
from adbapi._errors import PoolAbandonedError, PoolClosedError, PoolOverloadedError, PoolTimeoutError
from adbapi._lane import LaneState, LaneSupport, _Lane
from adbapi._recovery import FLAG_CONFLICT, FLAG_LOST_BEFORE_COMMIT
from adbapi._slots import Slot, ThreadSlots
from deferthreads import QueueFull
from reactor import CancelledError, Failure

if TYPE_CHECKING:
    from adbapi._call import _Call
    from adbapi._context import PoolContext
    from adbapi._pool import ConnectionPool
    from adbapi._retry import RetryPolicy

__all__ = ["CallRouter"]

_log = logging.getLogger("adbapi")


class CallRouter:
    """Routes one pool's calls to its slots and settles their outcomes (see the module docstring)."""

    def __init__(
        self,
        pool: ConnectionPool,
        context: PoolContext,
        *,
        minSlots: int,
        maxSlots: int,
        laneSupport: LaneSupport | None,
        maxWaiting: int | None,
        waitTimeout: float | None,
        slotsGone: Callable[[], object],
        threadSlots: Callable[..., ThreadSlots] = ThreadSlots,
        laneFactory: Callable[[int], _Lane] | None = None,
    ) -> None:
        """``threadSlots`` makes the thread slots (called with ThreadSlots' keywords) and ``laneFactory``
        a lane from its number: the real ones unless a test injects fakes (``tests/test_adbapi_router.py``
        drives the router with fake slots and a Clock, from one thread)."""
        self.pool = pool
        self.context = context
        self.minSlots = minSlots
        self.maxSlots = maxSlots
        self.laneSupport = laneSupport
        self.maxWaiting = maxWaiting
        self.waitTimeout = waitTimeout
        self.slotsGone = slotsGone
        self.laneFactory = laneFactory
        self.now: Callable[[], float] = context.clock.seconds
        self.running = False  # calls are accepted (the pool is running); reactor thread
        # Reactor thread only (statistics() reads their lengths from any thread):
        self.pending: collections.deque[_Call] = collections.deque()  # calls waiting for a lane
        self.lanes: set[_Lane] = set()
        self.idleLanes: list[_Lane] = []  # a stack: the most recently idle last
        self.laneCount = 0
        self.held: collections.deque[_Call] = collections.deque()  # see _toThreads
        self.waking: _Call | None = None  # the last call handed to the workers (see _mustHold)
        self.threadCalls: set[_Call] = set()  # on the thread slots, outcome not yet settled
        self.backingOff: set[_Call] = set()
        self.idleCheck: Any = None
        self.calls = 0
        self.errors = 0
        self.cancelled = 0
        self.rejected = 0
        self.retries = 0
        self.longestWait = 0.0
        self.threads = threadSlots(
            pool, context,
            minthreads=0 if laneSupport is not None else min(minSlots, maxSlots),
            maxthreads=max(1, maxSlots),
            maxWaiting=maxWaiting,
            waitTimeout=waitTimeout,
            onDone=self._threadDone,
            onFailed=self._threadFailed,
            onStarted=self.started,
        )

    # -- told by the lifecycle (reactor thread) ---------------------------------------------------------

    def opened(self) -> None:
        """The pool runs: accept calls, retry failures, keep idle lanes, check for idle slots."""
        self.running = True
        if self.context.health.idleTimeout is not None:
            self._scheduleIdleCheck()

    def closing(self) -> None:
        """The pool's close began: no retries, no idle lanes (the idle ones close now), no idle checks."""
        self.running = False
        if self.idleCheck is not None and self.idleCheck.active():
            self.idleCheck.cancel()
        self.idleCheck = None
        for call in list(self.backingOff):
            self._finishBackoffOnClose(call)

    def retireIdleLanes(self) -> None:
        idleLanes, self.idleLanes[:] = self.idleLanes[:], []
        for lane in idleLanes:
            lane.retire(recycled=False)

    def feedsThreads(self) -> bool:
        """True while a call may still reach the workers: a lane is open, or a call waits here."""
        return bool(self.lanes or self.pending or self.held)

    def pendingToThreads(self) -> None:
        """No lane is left to serve the calls waiting for one: the workers take them."""
        pending = list(self.pending)
        self.pending.clear()
        now = self.now()
        for call in pending:
            if not call.deferred.called:
                call.waited = now - call.enqueuedAt  # its wait for a lane counts, as nextForLane's does
                self._toThreads(call)

    def settleRecorded(self) -> None:
        """Settle the outcomes the workers recorded (a close while the reactor is not running)."""
        for call in list(self.threadCalls):
            if call.outcome is not None:
                self.threadCalls.discard(call)
                self.settle(call, *call.outcome)

    def takeBusy(self) -> tuple[list[_Call], list[_Lane]]:
        """A close gave up: forget the calls on the workers and the lanes (see :meth:`abandon`)."""
        lanes = list(self.lanes)
        self.lanes.clear()
        self.idleLanes.clear()
        threadCalls = list(self.threadCalls)
        self.threadCalls.clear()
        return threadCalls, lanes

    def abandon(self, threadCalls: list[_Call], lanes: list[_Lane], why: str) -> None:
        """Fail the calls :meth:`takeBusy` took: running ones with PoolAbandonedError (``why``)."""
        label = self.context.label
        for call in threadCalls:
            running = call.state is CallState.RUNNING
            self.stopCall(call)  # stops the statement on the server; a queued call is dropped
            if not call.deferred.called:
                self.errors += 1
                if running or call.state is CallState.RUNNING:
                    call.deferred.errback(PoolAbandonedError(why))
                else:
                    call.deferred.errback(PoolClosedError(f"{label} closed before this call could run"))
        for lane in lanes:
            laneCall = lane.abandon()
            if laneCall is not None and not laneCall.deferred.called:
                self.errors += 1
                laneCall.deferred.errback(PoolAbandonedError(why))

    def dropWaiting(self) -> None:
        """The pool closed: calls still waiting with no slot left to run them errback (not dropped)."""
        stranded = list(self.pending) + list(self.held)
        self.pending.clear()
        self.held.clear()
        label = self.context.label
        for call in stranded:
            advance(call, CallState.CANCELLED)
            if call.waitTimer is not None and call.waitTimer.active():
                call.waitTimer.cancel()
            if not call.deferred.called:
                call.deferred.errback(PoolClosedError(f"{label} closed before this call could run"))

    # -- dispatch ----------------------------------------------------------------------------------

    def dispatch(self, call: _Call) -> bool:
        """Hand ``call`` to an idle lane, the workers, a new lane, or the lanes' queue; False if refused.

        Worker threads are the resource pool's: it starts one when a call needs
        it (within ``cp_max`` minus the lanes) and queues the call when all are
        busy; its workers take queued calls themselves.
        """
        # route()'s answers for nearly every call are taken here first, from the fewest counts (this runs
        # for every call); tests/test_adbapi_dispatch.py checks route() gives the same in those cases.
        if self.laneSupport is None:
            return self._toThreads(call)  # no lanes: the threads
        reactorRunning = self.context.reactor.running
        lanes = self.lanes
        if call.kind <= CallKind.OPERATION and reactorRunning:
            if self.idleLanes:
                return self._startOnLane(call, self.idleLanes.pop())  # a statement: the idle lane
            if len(lanes) >= self.maxSlots and not self.threadCalls and not len(self.threads.holders):
                return self._queueForLane(call, 0)  # every slot a busy lane, no worker: wait for one

        workers, busy = self.threads.load(len(self.threadCalls), max(1, self.maxSlots - len(lanes)))
        # route(kind, lanes, reactorRunning, idleLanes, openLanes, workers, busy, maxSlots)
        where = route(call.kind, True, reactorRunning, len(self.idleLanes), len(lanes),
                      workers, busy, self.maxSlots)
        if where is Route.THREADS:
            return self._toThreads(call)
        if where is Route.IDLE_LANE:
            return self._startOnLane(call, self.idleLanes.pop())
        if where is Route.NEW_LANE:
            return self._startOnLane(call, self._newLane())
        if where is Route.LANE_TO_THREADS:
            # Only a worker thread can run it (an interaction, or any call while the reactor is not
            # running, when a lane cannot make progress): the longest idle lane's slot becomes one.
            self.idleLanes.pop(0).retire(recycled=False)
            return self._toThreads(call)
        # Every slot is a busy lane: the first to finish gives its slot to a worker for this call.
        return self._queueForLane(call, busy - workers)

    def _startOnLane(self, call: _Call, lane: Slot) -> bool:
        # QUEUED (or BACKOFF, a retry) -> RUNNING, as TRANSITIONS allows; written without advance() on
        # this per-call path (dispatch and laneNext only hand over calls in those two states).
        call.state = CallState.RUNNING
        call.worker = lane
        if call.timed:
            call.startedAt = self.now()
        lane.start(call)
        return True

    def _toThreads(self, call: _Call) -> bool:
        """Hand ``call`` to the worker threads, or hold it while an idle worker is still waking up.

        The resource pool wakes its most recently used idle worker for a call,
        but a second call made before that worker took the first could be taken
        by it, and the first by a colder one. So, while a call handed to an idle
        worker has not started and another worker is idle, later calls wait here
        (``held``) and go on, in order, once it has started (:meth:`started`): the
        first call gets the warmest connection, as the calls made one after the
        other expect. Under load (no idle worker) calls go straight to the
        resource pool's queue.
        """
        if call.state is not CallState.QUEUED:
            advance(call, CallState.QUEUED)  # a retry
        if self.held or (self.context.reactor.running and self._mustHold(1)):
            self.held.append(call)
            self._pumpHeld()
            return True
        return self._submitThread(call)

    def _mustHold(self, waiting: int) -> bool:
        """True while the last call handed to the workers has not started and, with the ``waiting`` calls
        to go (held ones and the one at hand), some worker would still be idle."""
        waking = self.waking
        if waking is None:
            return False
        if waking.state is not CallState.QUEUED or waking.threadDeferred is None:
            self.waking = None
            return False
        workers, busy = self.threads.load(len(self.threadCalls), max(1, self.maxSlots - len(self.lanes)))
        if not holdForWaking(workers, busy, waiting):
            return False
        # Ask its worker to say when it starts (serve() reads this after it marks the call RUNNING; one
        # of the two sees the other's write, and started() may come twice: it is idempotent).
        waking.announce = True
        if waking.state is not CallState.QUEUED:
            self.waking = None
            return False
        return True

    def started(self, call: _Call) -> None:
        """A held-for call started on its worker (reactor thread, from serve() via callFromThread)."""
        if self.waking is call:
            self.waking = None
        self._pumpHeld()

    def _pumpHeld(self) -> None:
        """Hand the held calls to the workers, in order, while no woken worker is still on its way."""
        held = self.held
        while held:
            if self._mustHold(len(held)):
                return
            call = held.popleft()
            if call.deferred.called or call.state is not CallState.QUEUED:
                continue  # cancelled while held
            self._submitThread(call)

    def _submitThread(self, call: _Call) -> bool:
        """Run ``call`` on a worker thread (the resource pool queues it if every worker is busy)."""
        slot: Slot = self.threads
        refused = slot.start(call)
        if refused is not None:
            self.rejected += 1
            advance(call, CallState.CANCELLED)
            if refused.check(QueueFull):
                call.deferred.errback(
                    PoolOverloadedError(f"{self.context.label}: {self.maxWaiting} calls are already waiting")
                )
            else:
                call.deferred.errback(
                    PoolClosedError(f"{self.context.label} cannot take the call: {[refused]}"))
            return False
        self.threadCalls.add(call)
        self.waking = call
        return True

    def _threadDone(self, outcome: tuple[bool, Any, int], call: _Call) -> None:
        """A worker finished ``call`` (reactor thread, from the resource pool's Deferred)."""
        call.threadDeferred = None
        if call not in self.threadCalls:
            return  # settled already (a close that could not wait for the reactor), or given up on
        self.threadCalls.discard(call)
        # QUEUED (a cancel reached it first) or RUNNING -> DONE, as TRANSITIONS allows; written without
        # advance() on this per-call path.
        call.state = CallState.DONE
        if self.held:
            self._pumpHeld()
        self.settle(call, *outcome)

    def _threadFailed(self, failure: Failure, call: _Call) -> None:
        """The resource pool failed ``call`` without running it to the end (reactor thread).

        A wait past ``cp_wait_timeout`` (:class:`PoolTimeoutError`), a close that
        gave up (:class:`PoolAbandonedError`, :class:`PoolClosedError`), or a
        cancel (held by the resource pool until the call stopped).
        """
        call.threadDeferred = None
        if call not in self.threadCalls:
            return
        self.threadCalls.discard(call)
        advance(call, CallState.DONE)
        if self.held:
            self._pumpHeld()
        d = call.deferred
        if d.called:
            return  # cancelled: the caller has had its CancelledError
        if failure.check(CancelledError):
            if call.kind != CallKind.RESERVED and call.cancelRequested:
                return  # its Deferred.cancel() errbacks it as soon as the canceller returns
        elif failure.check(PoolTimeoutError):
            self.rejected += 1
        else:
            self.errors += 1
        d.errback(failure)

    def _queueForLane(self, call: _Call, threadsQueued: int) -> bool:
        """Put ``call`` in the lanes' waiting queue; False (and the call failed) when ``cp_max_waiting``
        refuses it."""
        if self.maxWaiting is not None and len(self.pending) + threadsQueued >= self.maxWaiting:
            self.rejected += 1
            advance(call, CallState.CANCELLED)
            call.deferred.errback(
                PoolOverloadedError(f"{self.context.label}: {self.maxWaiting} calls are already waiting")
            )
            return False
        if call.state is not CallState.QUEUED:
            advance(call, CallState.QUEUED)  # a retry
        call.enqueuedAt = self.now()
        self.pending.append(call)
        if self.waitTimeout is not None:
            call.waitTimer = self.context.clock.callLater(self.waitTimeout, self._waitExpired, call)
        return True

    def _waitExpired(self, call: _Call) -> None:
        call.waitTimer = None
        if call.state is not CallState.QUEUED or call not in self.pending:
            return
        self.pending.remove(call)
        advance(call, CallState.CANCELLED)
        self.rejected += 1
        if not call.deferred.called:
            call.deferred.errback(
                PoolTimeoutError(
                    f"{self.context.label}: no connection became free within {self.waitTimeout} s")
            )

    # -- cancel --------------------------------------------------------------------------------------

    def cancelCall(self, call: _Call) -> None:
        """The canceller of every call's Deferred (reactor thread)."""
        self.cancelled += 1
        self.stopCall(call)

    def stopCall(self, call: _Call) -> None:
        """Unqueue ``call``, or stop its statement on the server (reactor thread)."""
        state = call.state
        if call.threadDeferred is not None:
            if not call.cancelRequested:
                call.cancelRequested = True
                self.threads.cancel(call)
        elif state is CallState.QUEUED and call in self.pending:
            self.pending.remove(call)
            advance(call, CallState.CANCELLED)
        elif state is CallState.QUEUED and call in self.held:
            self.held.remove(call)
            advance(call, CallState.CANCELLED)
        elif state is CallState.RUNNING and isinstance(call.worker, _Lane) and not call.cancelRequested:
            call.cancelRequested = True
            call.worker.cancel(call)
        if state is CallState.BACKOFF:
            self.backingOff.discard(call)
            advance(call, CallState.CANCELLED)
            if call.retryTimer is not None and call.retryTimer.active():
                call.retryTimer.cancel()
        if call.waitTimer is not None and call.waitTimer.active():
            call.waitTimer.cancel()

    # -- lanes ---------------------------------------------------------------------------------------

    def _newLane(self) -> _Lane:
        assert self.laneSupport is not None
        self.laneCount += 1
        if self.laneFactory is not None:
            lane = self.laneFactory(self.laneCount)
        else:
            lane = _Lane(self.pool, self, self.laneCount, self.laneSupport)
        self.lanes.add(lane)
        self.fitThreads()
        return lane

    def fitThreads(self) -> None:
        """Keep workers and lanes within ``cp_max``: the workers may have what the lanes leave."""
        self.threads.fit(max(1, self.maxSlots - len(self.lanes)))

    def laneClosed(self, lane: _Lane) -> None:
        """A lane closed (reactor thread): forget it; the last slot to go ends a close.

        A lane that closes while it finishes a call (``_Lane._done``) fires that
        call first and then calls :meth:`laneEnded` itself, so a close never
        fires before the Deferreds of the calls it waited for.
        """
        self.lanes.discard(lane)
        if lane in self.idleLanes:
            self.idleLanes.remove(lane)
        self.fitThreads()
        if self.pending and not self.lanes and self.running:
            self.pendingToThreads()
        if not lane.releasing:
            self.slotsGone()

    def laneEnded(self) -> None:
        """A lane that closed as it finished a call has fired that call (reactor thread)."""
        self.slotsGone()

    def nextForLane(self, lane: _Lane, canIdle: bool) -> _Call | None:
        """The next waiting call for a lane that finished one; None once it idled or closed (reactor thread).

        A waiting call only a worker thread can run (an interaction) turns the lane
        into a worker: the lane closes and the resource pool, whose maximum grows
        by one, takes the call, so the slot count stays within ``cp_max``.
        """
        pending = self.pending
        # laneNext()'s two commonest answers are taken here without asking (this runs for every call).
        if pending:
            if pending[0].kind <= CallKind.OPERATION:
                # RUN, the answer for nearly every call of a busy pool: the oldest waiting statement.
                head = pending.popleft()
                head.waited = self.now() - head.enqueuedAt
                head.state = CallState.RUNNING  # QUEUED -> RUNNING: pending holds QUEUED calls only
                head.worker = lane
                if head.timed:
                    head.startedAt = self.now()
                return head
            step = laneNext(pending[0].kind, canIdle, not self.running)
        elif canIdle and self.running:
            step = LaneNext.IDLE  # nothing waits, and the lane may idle
        else:
            step = laneNext(None, canIdle, not self.running)
        if step is LaneNext.HAND_TO_THREADS:
            head = pending.popleft()
            head.waited = self.now() - head.enqueuedAt
            self.lanes.discard(lane)
            lane.retire(recycled=False)
            self._toThreads(head)
            return None
        if step is LaneNext.IDLE:
            lane.state = LaneState.IDLE
            lane.idleSince = self.context.health.stamp()
            self.idleLanes.append(lane)
            return None
        lane.retire(recycled=False)  # LaneNext.RETIRE
        return None

    def lanesNow(self) -> list[_Lane]:
        """A copy of the lane set, from any thread (the reactor may change it while it is copied)."""
        for _ in range(100):
            try:
                return list(self.lanes)
            except RuntimeError:  # "set changed size during iteration": copy it again
                continue
        return []

    # -- results and retries -----------------------------------------------------------------------

    def settle(self, call: _Call, ok: bool, value: Any, flags: int) -> None:
        """Fire one finished call's Deferred, or schedule its retry (reactor thread)."""
        if call.waitTimer is not None:
            if call.waitTimer.active():
                call.waitTimer.cancel()
            call.waitTimer = None
        if call.waited > self.longestWait:
            self.longestWait = call.waited
        d = call.deferred
        if d.called:  # cancelled while it ran: the outcome has nobody to go to
            return
        self.calls += 1
        if ok:
            d.callback(value)
            return
        retry = self.context.retry
        if (
            retry is not None
            and flags
            and self.running
            and retry.shouldRetry(call.attempt, bool(flags & FLAG_CONFLICT),
                                  bool(flags & FLAG_LOST_BEFORE_COMMIT))
        ):
            self._scheduleRetry(call, value, retry)
            return
        self.errors += 1
        d.errback(Failure(value))

    def _scheduleRetry(self, call: _Call, error: BaseException, retry: RetryPolicy) -> None:
        delay = retry.delay(call.attempt)
        _log.info("adbapi: %s: attempt %d failed with %s; retrying in %.3f s", self.context.label,
                  call.attempt, type(error).__name__, delay)
        call.attempt += 1
        advance(call, CallState.BACKOFF)
        call.lastFailure = error
        call.worker = None
        call.cancelRequested = False
        call.statementOver = call.cancelDone = None
        call.startedAt = None  # it holds no connection during its backoff; the next attempt stamps again
        self.retries += 1
        self.backingOff.add(call)
        call.retryTimer = self.context.clock.callLater(delay, self._retryNow, call)

    def _retryNow(self, call: _Call) -> None:
        call.retryTimer = None
        self.backingOff.discard(call)
        if call.state is not CallState.BACKOFF or call.deferred.called:
            return
        if not self.running:
            self._finishBackoffOnClose(call)
            return
        call.waited = 0.0
        self.dispatch(call)

    def _finishBackoffOnClose(self, call: _Call) -> None:
        self.backingOff.discard(call)
        if call.retryTimer is not None and call.retryTimer.active():
            call.retryTimer.cancel()
        advance(call, CallState.CANCELLED)
        if not call.deferred.called and call.lastFailure is not None:
            self.errors += 1
            call.deferred.errback(Failure(call.lastFailure))

    # -- idle timeout --------------------------------------------------------------------------------

    def _scheduleIdleCheck(self) -> None:
        idleTimeout = self.context.health.idleTimeout
        assert idleTimeout is not None
        self.idleCheck = self.context.clock.callLater(idleTimeout / 2, self._checkIdle)

    def _checkIdle(self) -> None:
        """Retire workers and lanes idle ``cp_idle_timeout`` (closing their connections), to ``cp_min``."""
        self.idleCheck = None
        health = self.context.health
        idleTimeout = health.idleTimeout
        if not self.running or idleTimeout is None:
            return
        now = self.context.clock.seconds()
        threads = self.threads
        workers = threads.statistics().workers
        surplus = workers + len(self.lanes) - self.minSlots
        if surplus > 0 and workers:
            # The resource pool retires its longest idle workers down to its minimum: for this round, the
            # minimum that keeps cp_min slots (lanes included).
            retired = threads.retireIdle(idleTimeout, floor=max(0, workers - surplus))
            if retired:
                self.context.counters.recycled(retired)
            surplus -= retired
        retiredLanes: list[_Lane] = []
        # The idle stack is LIFO: the longest idle sit at the bottom.
        while surplus > 0 and self.idleLanes and health.idleExpired(self.idleLanes[0].idleSince, now):
            retiredLanes.append(self.idleLanes.pop(0))
            surplus -= 1
        for lane in retiredLanes:
            lane.retire(recycled=True)
        self._scheduleIdleCheck()

    # -- the workers' generations (reactor thread) -----------------------------------------------------

    def startWorkers(self) -> None:
        """Start the workers for a run of the pool (a generation a close gave up on is replaced)."""
        self.threads.startWorkers(max(1, self.maxSlots - len(self.lanes)))

    def giveUpWorkers(self) -> None:
        """A close gave up on the workers still in a call: each exits when its call returns, and is no
        part of the pool any more (a new generation serves its next run)."""
        self.threads.pool.stop(1e-9)  # (a stop timeout must be > 0): at the next turn
        self.threads.renew(max(1, self.maxSlots - len(self.lanes)))
