"""The adbapi call router (``adbapi/_router.py``) driven step by step, from the test's thread.

A :class:`~adbapi._router.CallRouter` is built with fake slots: :class:`FakeThreads`
(the thread slots: a fixed number of fake workers and a queue, each call's outcome
reported when the test says so) and :class:`FakeLane` (a lane that runs a call
until the test finishes it), both speaking the real classes' interfaces
(:class:`~adbapi._slots.Slot` and what the router calls on a lane), and a
:class:`reactor.task.Clock` in its :class:`~adbapi._context.PoolContext`. No
thread, no database, no real reactor: every step of dispatch, waiting, cancel,
retry, timeouts and the idle check is taken by the test and checked at once.
The pure rules the router follows are tested in ``test_adbapi_dispatch.py``;
the whole pool in the behaviour tests.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, cast

import pytest

from adbapi._call import _Call
from adbapi._context import PoolContext
from adbapi._dispatch import CallKind, CallState
from adbapi._errors import PoolOverloadedError, PoolTimeoutError
from adbapi._health import HealthPolicy
from adbapi._holder import HolderRegistry
from adbapi._lane import LaneState, _Lane
from adbapi._recovery import FLAG_CONFLICT
from adbapi._retry import RetryPolicy
from adbapi._router import CallRouter
from adbapi._slots import ThreadSlots
from adbapi._stats import ConnectionCounters
from deferthreads import QueueFull
from deferthreads._resourcepool import ResourcePoolStatistics
from reactor import CancelledError, Deferred, Failure
from reactor.task import Clock


class FakeThreads(ThreadSlots):
    """The thread slots as the router sees them: ``maxthreads`` fake workers taking calls in order.

    A call handed over (:meth:`start`) runs at once on a free worker, or waits in
    :attr:`queued` (refused with QueueFull past ``maxWaiting``, as the resource
    pool does). The test ends a running call with :meth:`finish`; a cancelled
    running call is interrupted (:attr:`interrupted`) and its Deferred held paused
    until :meth:`finish` reports it stopped, as the resource pool holds it.

    :attr:`workers` counts the workers started: a worker stays once it took a
    call (idle when it has none), until the idle check retires it
    (:meth:`retireIdle`, recorded in :attr:`retireAsked`); the test may set it to
    model idle workers. With :attr:`slowWake` set, a worker that takes a call
    leaves it QUEUED (still waking up) until the test calls :meth:`begin`.
    """

    def __init__(
        self,
        pool: Any,
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
        self.context = context
        self.minthreads = minthreads
        self.maxthreads = maxthreads
        self.maxWaiting = maxWaiting
        self.waitTimeout = waitTimeout
        self.onDone = onDone
        self.onFailed = onFailed
        self.onStarted = onStarted
        self.holders = HolderRegistry()
        self.running: list[_Call] = []
        self.queued: list[_Call] = []
        self.interrupted: list[_Call] = []
        self.workers = 0
        self.slowWake = False
        self.retireAsked: list[tuple[float, int]] = []

    def start(self, call: _Call) -> Failure | None:
        if len(self.running) >= self.maxthreads and self.maxWaiting is not None \
                and len(self.queued) >= self.maxWaiting:
            return Failure(QueueFull(f"{self.maxWaiting} calls queued"))
        d: Deferred[Any] = Deferred(lambda d: self._cancelled(d, call))
        call.threadDeferred = d
        d.addCallbacks(self.onDone, self.onFailed, callbackArgs=(call,), errbackArgs=(call,))
        self.queued.append(call)
        self._take()
        return None

    def _take(self) -> None:
        while self.queued and len(self.running) < self.maxthreads:
            call = self.queued.pop(0)
            if not self.slowWake:
                call.state = CallState.RUNNING  # what serve() does in the worker
            self.running.append(call)
            self.workers = max(self.workers, len(self.running))

    def begin(self, call: _Call) -> None:
        """A waking worker (``slowWake``) starts ``call``: serve() marks it RUNNING and, if the router
        asked to hear about it (``announce``), tells it (as serve() does, through callFromThread)."""
        assert call in self.running and call.state is CallState.QUEUED
        call.state = CallState.RUNNING
        if call.announce:
            self.onStarted(call)

    def load(self, calls: int, maxthreads: int) -> tuple[int, int]:
        # As ThreadSlots.load, with the started workers standing for the holders.
        return max(self.workers, min(calls, maxthreads)), calls

    def retireIdle(self, idleFor: float, floor: int) -> int:
        """Retire the idle workers down to ``floor`` (the fake's idle workers are always idle long enough)."""
        self.retireAsked.append((idleFor, floor))
        retired = max(0, min(self.workers - len(self.running), self.workers - floor))
        self.workers -= retired
        return retired

    def _cancelled(self, d: Deferred[Any], call: _Call) -> None:
        if call in self.queued:
            self.queued.remove(call)  # dropped: Deferred.cancel errbacks CancelledError now
            return
        self.interrupted.append(call)
        d.pause()  # held until the call has stopped (finish())

    def finish(self, call: _Call, ok: bool = True, value: Any = "rows", flags: int = 0) -> None:
        """The worker running ``call`` returned ``(ok, value, flags)`` (or stopped, if it was cancelled)."""
        self.running.remove(call)
        d = call.threadDeferred
        assert d is not None
        if call in self.interrupted:
            d.unpause()  # its CancelledError goes to the router now
        else:
            call.outcome = (ok, value, flags)
            d.callback(call.outcome)
        self._take()

    def fit(self, maxthreads: int) -> None:
        self.maxthreads = maxthreads
        self._take()

    def statistics(self) -> ResourcePoolStatistics:
        return cast(ResourcePoolStatistics, SimpleNamespace(workers=self.workers))


class FakeLane(_Lane):
    """A lane as the router sees it: runs one call until the test calls :meth:`finish`."""

    def __init__(self, router: CallRouter, number: int) -> None:
        self.home = router
        self.number = number
        self.name = f"fake-{number}"  # for _Lane's repr in assertion messages
        self.state = LaneState.BUSY
        self.current: _Call | None = None
        self.idleSince = 0.0
        self.releasing = False
        self.started: list[_Call] = []
        self.cancelAsked: list[_Call] = []
        self.retiredAs: bool | None = None

    def start(self, call: _Call) -> None:
        self.current = call
        self.state = LaneState.BUSY
        self.started.append(call)

    def cancel(self, call: _Call) -> None:
        self.cancelAsked.append(call)

    def finish(self, ok: bool = True, value: Any = "rows", flags: int = 0) -> None:
        """The statement ended: take the next waiting call (or idle), then fire this one, as _Lane does."""
        call = self.current
        assert call is not None
        self.current = None
        call.state = CallState.DONE
        nxt = self.home.nextForLane(self, True)
        if nxt is not None:
            self.start(nxt)
        self.home.settle(call, ok, value, flags)

    def retire(self, recycled: bool) -> None:
        self.retiredAs = recycled
        self.state = LaneState.CLOSED
        self.home.laneClosed(self)


class Harness:
    """A router with fake slots, its Clock and what the test looks at."""

    def __init__(
        self,
        *,
        maxSlots: int = 2,
        minSlots: int = 0,
        lanes: bool = False,
        maxWaiting: int | None = None,
        waitTimeout: float | None = None,
        retry: RetryPolicy | None = None,
        idleTimeout: float | None = None,
    ) -> None:
        self.clock = Clock()
        self.lanes: list[FakeLane] = []
        self.slotsGone = 0
        context = PoolContext(
            label="test-pool (fake)",
            threadPrefix="PoolThread-test-pool",
            adapter=cast(Any, None),
            health=HealthPolicy(self.clock.seconds, maxLifetime=None, pingAfter=None,
                                idleTimeout=idleTimeout, goodSql=None),
            counters=ConnectionCounters(),
            redactor=cast(Any, None),
            reactor=SimpleNamespace(running=True),
            clock=self.clock,
            retry=retry,
            side=cast(Any, None),
            telemetry=cast(Any, None),
            ownConnect=True,
            ownClose=True,
        )
        self.router = CallRouter(
            cast(Any, None), context,
            minSlots=minSlots,
            maxSlots=maxSlots,
            laneSupport=cast(Any, object()) if lanes else None,
            maxWaiting=maxWaiting,
            waitTimeout=waitTimeout,
            slotsGone=self._slotsGone,
            threadSlots=FakeThreads,
            laneFactory=self._newLane,
        )
        self.router.opened()

    def _slotsGone(self) -> None:
        self.slotsGone += 1

    def _newLane(self, number: int) -> _Lane:
        lane = FakeLane(self.router, number)
        self.lanes.append(lane)
        return lane

    @property
    def threads(self) -> FakeThreads:
        assert isinstance(self.router.threads, FakeThreads)
        return self.router.threads

    def submit(self, kind: CallKind = CallKind.QUERY) -> _Call:
        """A call made and dispatched, as ConnectionPool._submit does."""
        call = _Call(self.router, kind, None, ("SELECT 1",), {})
        self.router.dispatch(call)
        return call


def results(call: _Call) -> list[Any]:
    """What ``call``'s Deferred fired with so far (a Failure for an errback)."""
    out: list[Any] = []
    call.deferred.addBoth(out.append)
    return out


# -- where calls go --


def test_aQueryOpensALaneRatherThanGoingToTheThreads() -> None:
    h = Harness(lanes=True)
    call = h.submit(CallKind.QUERY)
    assert len(h.lanes) == 1 and h.lanes[0].started == [call]
    assert call.state is CallState.RUNNING and call.worker is h.lanes[0]
    assert h.threads.running == [] and h.router.threadCalls == set()


def test_anInteractionGoesToTheThreadsEvenWithLanes() -> None:
    h = Harness(lanes=True)
    call = h.submit(CallKind.INTERACTION)
    assert h.lanes == []
    assert h.threads.running == [call] and h.router.threadCalls == {call}


def test_aQueryTakesTheIdleLaneInsteadOfOpeningAnother() -> None:
    h = Harness(lanes=True)
    first = h.submit()
    h.lanes[0].finish()
    assert results(first) == ["rows"]
    assert h.router.idleLanes == [h.lanes[0]]
    second = h.submit()
    assert len(h.lanes) == 1 and h.lanes[0].started == [first, second]


# -- waiting for a slot --


def test_callsBeyondTheLaneSlotsWaitInOrderAndStartAsLanesFree() -> None:
    h = Harness(lanes=True, maxSlots=2)
    running = [h.submit(), h.submit()]
    waiting = [h.submit(), h.submit(), h.submit()]
    assert len(h.lanes) == 2
    assert list(h.router.pending) == waiting
    assert all(c.state is CallState.QUEUED for c in waiting)
    h.lanes[1].finish()
    assert h.lanes[1].current is waiting[0] and waiting[0].state is CallState.RUNNING
    h.lanes[0].finish()
    assert h.lanes[0].current is waiting[1]
    assert list(h.router.pending) == [waiting[2]]
    assert [results(c) for c in running] == [["rows"], ["rows"]]


def test_callsBeyondTheWorkersWaitInOrderAndStartAsWorkersFree() -> None:
    h = Harness(maxSlots=2)
    calls = [h.submit(CallKind.INTERACTION) for _ in range(4)]
    assert h.threads.running == calls[:2] and h.threads.queued == calls[2:]
    h.threads.finish(calls[1])
    assert h.threads.running == [calls[0], calls[2]]
    h.threads.finish(calls[0])
    assert h.threads.running == [calls[2], calls[3]]
    assert results(calls[1]) == ["rows"] and calls[1].state is CallState.DONE


def test_maxWaitingRefusesTheLaneQueueOverflowNamingTheLimit() -> None:
    h = Harness(lanes=True, maxSlots=1, maxWaiting=2)
    h.submit()
    waiting = [h.submit(), h.submit()]
    refused = h.submit()
    out = results(refused)
    assert len(out) == 1 and isinstance(out[0], Failure)
    assert out[0].check(PoolOverloadedError)
    assert "2 calls are already waiting" in str(out[0].value)
    assert refused.state is CallState.CANCELLED
    assert list(h.router.pending) == waiting
    assert h.router.rejected == 1


def test_maxWaitingRefusesTheThreadQueueOverflowNamingTheLimit() -> None:
    h = Harness(maxSlots=1, maxWaiting=1)
    h.submit(CallKind.INTERACTION)
    h.submit(CallKind.INTERACTION)
    refused = h.submit(CallKind.INTERACTION)
    out = results(refused)
    assert isinstance(out[0], Failure) and out[0].check(PoolOverloadedError)
    assert "1 calls are already waiting" in str(out[0].value)
    assert refused not in h.router.threadCalls and h.router.rejected == 1


def test_waitTimeoutFailsAWaitingCallExactlyAfterTheTimeout() -> None:
    h = Harness(lanes=True, maxSlots=1, waitTimeout=5.0)
    h.submit()
    waiting = h.submit()
    out = results(waiting)
    h.clock.advance(4.999)
    assert out == [] and list(h.router.pending) == [waiting]
    h.clock.advance(0.001)
    assert len(out) == 1 and isinstance(out[0], Failure) and out[0].check(PoolTimeoutError)
    assert "within 5.0 s" in str(out[0].value)
    assert list(h.router.pending) == [] and waiting.state is CallState.CANCELLED
    assert h.router.rejected == 1


def test_aCallThatGetsALaneInTimeIsNotTimedOut() -> None:
    h = Harness(lanes=True, maxSlots=1, waitTimeout=5.0)
    h.submit()
    waiting = h.submit()
    h.clock.advance(2.0)
    h.lanes[0].finish()
    assert waiting.waited == 2.0
    h.clock.advance(10.0)
    h.lanes[0].finish()
    assert results(waiting) == ["rows"] and h.router.rejected == 0


# -- cancel --


def test_cancellingAWaitingCallRemovesItAndTheNextGetsTheSlot() -> None:
    h = Harness(lanes=True, maxSlots=1)
    h.submit()
    cancelled, following = h.submit(), h.submit()
    out = results(cancelled)
    cancelled.deferred.cancel()
    assert isinstance(out[0], Failure) and out[0].check(CancelledError)
    assert list(h.router.pending) == [following] and cancelled.state is CallState.CANCELLED
    h.lanes[0].finish()
    assert h.lanes[0].current is following


def test_cancellingAQueuedThreadCallDropsItFromTheWorkersQueue() -> None:
    h = Harness(maxSlots=1)
    h.submit(CallKind.INTERACTION)
    cancelled, following = h.submit(CallKind.INTERACTION), h.submit(CallKind.INTERACTION)
    cancelled.deferred.cancel()
    assert h.threads.queued == [following] and cancelled not in h.router.threadCalls


def test_cancellingARunningLaneCallAsksTheLaneAndFreesItOnlyWhenTheLaneReports() -> None:
    h = Harness(lanes=True, maxSlots=1)
    running = h.submit()
    following = h.submit()
    out = results(running)
    running.deferred.cancel()
    assert h.lanes[0].cancelAsked == [running]
    assert isinstance(out[0], Failure) and out[0].check(CancelledError)  # the caller is told at once
    assert h.lanes[0].current is running and list(h.router.pending) == [following]
    h.lanes[0].finish(ok=False, value=RuntimeError("canceling statement due to user request"))
    assert h.lanes[0].current is following
    assert len(out) == 1  # the late outcome has nobody to go to


def test_cancellingARunningThreadCallInterruptsItAndFreesTheWorkerOnlyWhenItStops() -> None:
    h = Harness(maxSlots=1)
    running = h.submit(CallKind.INTERACTION)
    following = h.submit(CallKind.INTERACTION)
    out = results(running)
    running.deferred.cancel()
    assert h.threads.interrupted == [running]
    assert isinstance(out[0], Failure) and out[0].check(CancelledError)
    assert running in h.router.threadCalls and h.threads.queued == [following]
    h.threads.finish(running)
    assert running not in h.router.threadCalls and running.state is CallState.DONE
    assert h.threads.running == [following]
    assert len(out) == 1 and h.router.errors == 0


# -- retries --


def conflict() -> RuntimeError:
    return RuntimeError("could not serialize access due to concurrent update")


def test_aRetriedCallWaitsItsBackoffOnTheClockThenRunsAgain() -> None:
    h = Harness(lanes=True, retry=RetryPolicy(attempts=3, backoff=1.0, jitter=0.0))
    call = h.submit()
    out = results(call)
    h.lanes[0].finish(ok=False, value=conflict(), flags=FLAG_CONFLICT)
    assert call.state is CallState.BACKOFF and call in h.router.backingOff and out == []
    h.clock.advance(0.999)
    assert h.lanes[0].started == [call]
    h.clock.advance(0.001)
    assert h.lanes[0].started == [call, call] and call.attempt == 2
    h.lanes[0].finish()
    assert out == ["rows"] and h.router.retries == 1


def test_aCloseDuringBackoffFailsTheCallWithItsOriginalError() -> None:
    h = Harness(lanes=True, retry=RetryPolicy(attempts=3, backoff=1.0, jitter=0.0))
    call = h.submit()
    out = results(call)
    error = conflict()
    h.lanes[0].finish(ok=False, value=error, flags=FLAG_CONFLICT)
    h.router.closing()
    assert len(out) == 1 and isinstance(out[0], Failure) and out[0].value is error
    assert call.state is CallState.CANCELLED and not h.router.backingOff
    h.clock.advance(5.0)
    assert h.lanes[0].started == [call]  # never ran again


def test_aFailureWithoutRetryFlagsIsNotRetried() -> None:
    h = Harness(lanes=True, retry=RetryPolicy(attempts=3, backoff=1.0, jitter=0.0))
    call = h.submit()
    out = results(call)
    h.lanes[0].finish(ok=False, value=ValueError("bad"), flags=0)
    assert isinstance(out[0], Failure) and out[0].check(ValueError)
    assert h.router.retries == 0 and h.router.errors == 1


# -- idle lanes --


def test_idleLanesRetireAfterTheIdleTimeoutDownToMin() -> None:
    h = Harness(lanes=True, maxSlots=3, minSlots=1, idleTimeout=10.0)
    for _ in range(3):
        h.submit()
    for lane in h.lanes:
        lane.finish()
    assert h.router.idleLanes == h.lanes
    h.clock.advance(5.0)  # the first check: idle 5 s, not yet
    assert all(lane.retiredAs is None for lane in h.lanes)
    h.clock.advance(5.0)
    assert [lane.retiredAs for lane in h.lanes] == [True, True, None]  # the longest idle go first
    assert h.router.idleLanes == [h.lanes[2]] and h.router.lanes == {h.lanes[2]}
    h.clock.advance(100.0)
    assert h.router.lanes == {h.lanes[2]}  # cp_min stays


def test_aLaneUsedAgainIsNotRetiredForItsEarlierIdleTime() -> None:
    h = Harness(lanes=True, maxSlots=2, minSlots=0, idleTimeout=10.0)
    h.submit()
    h.lanes[0].finish()
    h.clock.advance(9.0)
    h.submit()
    h.lanes[0].finish()  # idle again since 9.0
    h.clock.advance(6.0)  # the check at 15: idle 6 s
    assert h.lanes[0].retiredAs is None
    h.clock.advance(5.0)  # the check at 20: idle 11 s
    assert h.lanes[0].retiredAs is True and h.slotsGone == 1


# -- statistics --


def test_statisticsCountCallsAndErrors() -> None:
    h = Harness(maxSlots=2)
    ok, bad = h.submit(CallKind.INTERACTION), h.submit(CallKind.INTERACTION)
    results(bad)
    h.threads.finish(ok)
    h.threads.finish(bad, ok=False, value=ValueError("bad"))
    assert (h.router.calls, h.router.errors) == (2, 1)


def test_statisticsCountCancelledRejectedAndRetries() -> None:
    h = Harness(lanes=True, maxSlots=1, maxWaiting=1, retry=RetryPolicy(attempts=2, backoff=1.0, jitter=0.0))
    first = h.submit()
    waiting = h.submit()
    results(h.submit())  # refused: one is already waiting
    waiting.deferred.cancel()
    results(waiting)
    h.lanes[0].finish(ok=False, value=conflict(), flags=FLAG_CONFLICT)
    h.clock.advance(1.0)
    h.lanes[0].finish()
    assert results(first) == ["rows"]
    assert (h.router.cancelled, h.router.rejected, h.router.retries) == (1, 1, 1)
    assert (h.router.calls, h.router.errors) == (2, 0)


@pytest.mark.parametrize("kind", [CallKind.QUERY, CallKind.OPERATION])
def test_statementsWaitForALaneWhenEverySlotIsABusyLane(kind: CallKind) -> None:
    h = Harness(lanes=True, maxSlots=1)
    h.submit()
    waiting = h.submit(kind)
    assert list(h.router.pending) == [waiting] and h.threads.running == []


# -- the start stamp telemetry's wait/use times read (calls marked timed only) --


def test_anUntimedCallIsNeverStamped() -> None:
    h = Harness(lanes=True)
    call = h.submit()
    assert call.startedAt is None


def timedCall(h: Harness) -> _Call:
    call = _Call(h.router, CallKind.QUERY, None, ("SELECT 1",), {})
    call.timed = True  # as telemetry's observe() marks it before the dispatch
    h.router.dispatch(call)
    return call


def test_aTimedCallIsStampedWhenALaneStartsIt() -> None:
    h = Harness(lanes=True)
    h.clock.advance(7.0)
    call = timedCall(h)
    assert call.startedAt == 7.0


def test_aTimedCallWaitingForALaneIsStampedWhenOneTakesIt() -> None:
    h = Harness(lanes=True, maxSlots=1)
    h.submit()
    call = timedCall(h)
    h.clock.advance(4.0)
    assert call.startedAt is None
    h.lanes[0].finish()
    assert call.startedAt == 4.0


def test_aRetriedTimedCallIsStampedAgainAtTheAttemptThatRuns() -> None:
    h = Harness(lanes=True, retry=RetryPolicy(attempts=3, backoff=1.0, jitter=0.0))
    call = timedCall(h)
    h.clock.advance(2.0)
    h.lanes[0].finish(ok=False, value=conflict(), flags=FLAG_CONFLICT)
    assert call.startedAt is None  # no connection held during the backoff
    h.clock.advance(1.0)
    assert call.startedAt == 3.0


# -- holding calls while a woken worker is on its way --


def wakingHarness(maxSlots: int, idleWorkers: int) -> Harness:
    """Workers only, ``idleWorkers`` of them started and idle, each slow to take a call."""
    h = Harness(maxSlots=maxSlots)
    h.threads.workers = idleWorkers
    h.threads.slowWake = True
    return h


def test_aCallMadeWhileAnIdleWorkerIsWakingIsHeldUntilItStarts() -> None:
    h = wakingHarness(maxSlots=3, idleWorkers=3)
    first = h.submit(CallKind.INTERACTION)
    second = h.submit(CallKind.INTERACTION)
    assert h.threads.running == [first] and list(h.router.held) == [second]
    assert first.announce and h.router.waking is first
    h.threads.begin(first)
    assert h.threads.running == [first, second] and not h.router.held


def test_heldCallsGoOnInOrderEachAfterThePreviousStarted() -> None:
    h = wakingHarness(maxSlots=3, idleWorkers=3)
    first, second, third = (h.submit(CallKind.INTERACTION) for _ in range(3))
    assert list(h.router.held) == [second, third]
    h.threads.begin(first)
    assert h.threads.running == [first, second] and list(h.router.held) == [third]
    h.threads.begin(second)
    assert h.threads.running == [first, second, third] and not h.router.held


def test_aCallGoesStraightToTheWorkersWhenNoOtherWorkerIsIdle() -> None:
    h = wakingHarness(maxSlots=2, idleWorkers=2)
    busy = h.submit(CallKind.INTERACTION)
    h.threads.begin(busy)
    waking = h.submit(CallKind.INTERACTION)  # the last idle worker wakes for it
    following = h.submit(CallKind.INTERACTION)
    assert not h.router.held
    assert h.threads.running == [busy, waking] and h.threads.queued == [following]


def test_moreCallsThanIdleWorkersGoStraightThroughInOrder() -> None:
    h = wakingHarness(maxSlots=3, idleWorkers=3)
    calls = [h.submit(CallKind.INTERACTION) for _ in range(4)]
    assert not h.router.held  # the fourth call: every worker gets one anyway
    assert h.threads.running == calls[:3] and h.threads.queued == calls[3:]


def test_aCallCancelledWhileHeldIsDroppedAndTheNextGoesOn() -> None:
    h = wakingHarness(maxSlots=3, idleWorkers=3)
    first, cancelled, following = (h.submit(CallKind.INTERACTION) for _ in range(3))
    out = results(cancelled)
    cancelled.deferred.cancel()
    assert isinstance(out[0], Failure) and out[0].check(CancelledError)
    assert list(h.router.held) == [following] and cancelled.state is CallState.CANCELLED
    h.threads.begin(first)
    assert h.threads.running == [first, following]


# -- idle workers retired by the idle check --


def test_idleWorkersAboveMinAreRetiredAndCountedRecycled() -> None:
    h = Harness(maxSlots=4, minSlots=2, idleTimeout=10.0)
    calls = [h.submit(CallKind.INTERACTION) for _ in range(4)]
    for call in calls:
        h.threads.finish(call)
    assert h.threads.workers == 4
    h.clock.advance(5.0)
    assert h.threads.retireAsked == [(10.0, 2)] and h.threads.workers == 2
    assert h.router.context.counters.snapshot()[2] == 2


def test_noWorkerIsRetiredOnceTheSlotsAreDownToMin() -> None:
    h = Harness(maxSlots=4, minSlots=2, idleTimeout=10.0)
    h.threads.workers = 2
    h.clock.advance(50.0)
    assert h.threads.retireAsked == [] and h.threads.workers == 2


def test_openLanesCountInMinWhenIdleWorkersAreRetired() -> None:
    h = Harness(lanes=True, maxSlots=4, minSlots=2, idleTimeout=10.0)
    h.submit()  # a lane, kept busy
    calls = [h.submit(CallKind.INTERACTION) for _ in range(3)]
    assert len(h.lanes) == 1 and h.threads.running == calls
    for call in calls:
        h.threads.finish(call)
    h.clock.advance(5.0)
    assert h.threads.retireAsked == [(10.0, 1)]  # 3 workers + 1 lane, cp_min 2: down to 1 worker
    assert h.threads.workers == 1 and h.lanes[0].retiredAs is None


def test_theIdleCheckRetiresIdleWorkersBeforeAnIdleLaneDownToMin() -> None:
    h = Harness(lanes=True, maxSlots=3, minSlots=1, idleTimeout=10.0)
    h.submit()
    h.lanes[0].finish()  # idle since 0
    h.clock.advance(9.0)
    calls = [h.submit(CallKind.INTERACTION) for _ in range(2)]
    for call in calls:
        h.threads.finish(call)
    h.clock.advance(5.0)  # the check at 14 (the one at 5 found nothing to do): the lane idle 14 s
    assert h.threads.retireAsked == [(10.0, 0)] and h.threads.workers == 0
    assert h.lanes[0].retiredAs is None and h.router.idleLanes == [h.lanes[0]]  # the cp_min slot


# -- close paths --


def test_closingStopsTheIdleChecks() -> None:
    h = Harness(lanes=True, maxSlots=2, idleTimeout=10.0)
    h.submit()
    h.lanes[0].finish()
    assert h.router.idleCheck is not None and h.router.idleCheck.active()
    h.router.closing()
    assert h.router.idleCheck is None and h.clock.getDelayedCalls() == []
    h.clock.advance(100.0)
    assert h.lanes[0].retiredAs is None


def test_theLastLaneClosingHandsItsWaitingCallsToTheWorkersInOrder() -> None:
    h = Harness(lanes=True, maxSlots=2)
    h.submit(), h.submit()
    waiting = [h.submit(), h.submit()]
    assert list(h.router.pending) == waiting
    h.lanes[0].retire(recycled=False)  # lost its connection
    assert list(h.router.pending) == waiting and h.threads.running == []  # a lane is left
    h.lanes[1].retire(recycled=False)
    assert not h.router.pending and h.threads.running == waiting
    assert h.router.threadCalls == set(waiting) and h.slotsGone == 2


def test_aCallHandedFromTheLaneQueueToTheWorkersCountsItsWaitInLongestWait() -> None:
    h = Harness(lanes=True, maxSlots=1)
    h.submit()
    waiting = h.submit()
    h.clock.advance(3.0)
    h.lanes[0].retire(recycled=False)
    h.threads.finish(waiting)
    assert results(waiting) == ["rows"]
    assert h.router.longestWait == 3.0


def test_pendingToThreadsSkipsACallAlreadyFired() -> None:
    h = Harness(lanes=True, maxSlots=1)
    h.submit()
    fired, following = h.submit(), h.submit()
    fired.deferred.callback("elsewhere")  # as a close that settled it would
    h.router.pendingToThreads()
    assert not h.router.pending and h.threads.running == [following]


def test_feedsThreadsWhileALaneIsOpenOrACallWaitsForOne() -> None:
    h = Harness(lanes=True, maxSlots=1)
    assert not h.router.feedsThreads()
    h.submit()
    waiting = h.submit()
    assert h.router.feedsThreads()  # a lane is open
    h.router.closing()
    h.lanes[0].retire(recycled=False)  # closing: the waiting call is not handed on
    assert not h.router.lanes and list(h.router.pending) == [waiting]
    assert h.router.feedsThreads()  # the waiting call alone
    results(waiting)
    h.router.dropWaiting()
    assert not h.router.feedsThreads()


def test_feedsThreadsWhileACallIsHeld() -> None:
    h = wakingHarness(maxSlots=3, idleWorkers=3)
    first = h.submit(CallKind.INTERACTION)
    assert not h.router.feedsThreads()  # on the workers: no longer fed from here
    h.submit(CallKind.INTERACTION)
    assert h.router.feedsThreads()
    h.threads.begin(first)
    assert not h.router.feedsThreads()


# -- a lane's slot handed to the workers --


def test_anInteractionWhenEverySlotIsAnIdleLaneRetiresTheLongestIdleLane() -> None:
    h = Harness(lanes=True, maxSlots=2)
    h.submit(), h.submit()
    h.lanes[0].finish()
    h.lanes[1].finish()  # idle stack: lanes[0] longest idle
    call = h.submit(CallKind.INTERACTION)
    assert h.lanes[0].retiredAs is False and h.lanes[1].retiredAs is None
    assert h.router.idleLanes == [h.lanes[1]] and h.router.lanes == {h.lanes[1]}
    assert h.threads.running == [call] and h.threads.maxthreads == 1


def test_anInteractionWhenEverySlotIsABusyLaneWaitsForTheFirstLaneToFinish() -> None:
    h = Harness(lanes=True, maxSlots=2)
    running = [h.submit(), h.submit()]
    call = h.submit(CallKind.INTERACTION)
    assert list(h.router.pending) == [call] and h.threads.running == []
    h.clock.advance(3.0)
    h.lanes[1].finish()
    assert h.lanes[1].retiredAs is False and h.router.lanes == {h.lanes[0]}
    assert h.threads.running == [call] and call.waited == 3.0
    assert results(running[1]) == ["rows"] and h.lanes[0].current is running[0]
