"""ResourcePool: workers that each own one resource, on the same Team as ThreadPool.

Most tests drive fake workers by hand through the worker protocol with a
``reactor.task.Clock`` (as tests/test_threadpool_team.py does for the Team), so
dispatch, cancellation, health rules and backpressure are checked step by
step in the test's thread. The tests with real threads (a real blocking call
interrupted, the drain at reactor shutdown, restarts) wait on Events and
Deferreds with bounded timeouts, never on fixed pauses.
"""

from __future__ import annotations

import contextvars
import logging
import random
import socket
import threading
from collections.abc import Callable
from typing import Any

import pytest
from zope.interface import implementer
from zope.interface.verify import verifyObject

import deferthreads
from deferthreads import (
    IResourcePool,
    IWorker,
    QueueFull,
    ResourcePool,
    ResourcePoolStatistics,
    ThreadPoolStopped,
    WaitTimeout,
)
from deferthreads._team import Team, Verdict
from reactor import CancelledError, Deferred, DeferredList, Failure, gatherResults
from reactor._loop import Reactor
from reactor.task import Clock
from tests.bridge_support import WAIT, runReactor, workerThreads

# -- fakes ------------------------------------------------------------------------------------------


@implementer(IWorker)
class FakeWorker:
    """An IWorker that does nothing by itself: the test steps it through the worker loop."""

    def __init__(self, team: Team, name: str) -> None:
        self.team = team
        self.name = name
        self.started = False
        self.wakes = 0
        self.ended = False
        self.verdict: Verdict | None = None

    def start(self) -> None:
        self.started = True

    def wake(self) -> None:
        self.wakes += 1

    def join(self, timeout: float | None) -> bool:
        return self.ended


class FakeReactor:
    """callFromThread only records (the test delivers with ``deliver``); timers come from a Clock."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.calls: list[tuple[Callable[..., object], tuple[Any, ...]]] = []

    def callFromThread(self, f: Callable[..., object], /, *args: Any, **kwargs: Any) -> None:
        self.calls.append((f, args))

    def callLater(self, delay: float, f: Callable[..., object], /, *args: Any, **kwargs: Any) -> Any:
        return self.clock.callLater(delay, f, *args, **kwargs)

    def deliver(self) -> int:
        count = 0
        while self.calls:
            calls, self.calls = self.calls, []
            for f, args in calls:
                f(*args)
                count += 1
        return count


class Resource:
    """A resource that records its life: which worker opened it, whether it is closed."""

    def __init__(self, serial: int, worker: str) -> None:
        self.serial = serial
        self.worker = worker
        self.closed = False
        self.uses = 0

    def __repr__(self) -> str:
        return f"<Resource {self.serial}{' closed' if self.closed else ''}>"


class Harness:
    """A ResourcePool over fake workers, a FakeReactor and a Clock, with one-step helpers."""

    def __init__(self, minthreads: int = 0, maxthreads: int = 2, **kw: Any) -> None:
        self.clock = Clock()
        self.reactor = FakeReactor(self.clock)
        self.workers: list[FakeWorker] = []
        self.resources: list[Resource] = []
        self.failCreate: BaseException | None = None
        self.log: list[str] = []
        kw.setdefault("spinTime", 0.0)
        self.pool: ResourcePool[Resource] = ResourcePool(
            self.create,
            kw.pop("close", self.close),
            minthreads=minthreads,
            maxthreads=maxthreads,
            name="fake",
            reactor=self.reactor,
            clock=self.clock,
            workerFactory=self._make,
            **kw,
        )
        self.team = self.pool._team

    def create(self) -> Resource:
        worker = self.team.currentWorker()
        assert worker is not None
        if self.failCreate is not None:
            self.log.append(f"create failed in {worker.name}")
            raise self.failCreate
        resource = Resource(len(self.resources) + 1, worker.name)
        self.resources.append(resource)
        self.log.append(f"create {resource.serial} in {worker.name}")
        return resource

    def close(self, resource: Resource) -> None:
        worker = self.team.currentWorker()
        assert worker is not None and worker.name == resource.worker, "closed outside its worker"
        resource.closed = True
        self.log.append(f"close {resource.serial}")

    def _make(self, team: Team, name: str) -> FakeWorker:
        worker = FakeWorker(team, name)
        self.workers.append(worker)
        return worker

    def _settle(self, worker: FakeWorker, verdict: Verdict) -> Verdict:
        while verdict is Verdict.WORK:
            self.team.runQueued(worker)
            verdict = self.team.park(worker)
        worker.verdict = verdict
        if verdict is Verdict.EXIT:
            self.team.workerExiting(worker)
            worker.ended = True
        return verdict

    def boot(self, worker: FakeWorker) -> Verdict:
        self.team.workerStarted(worker)
        return self._settle(worker, Verdict.WORK)

    def woken(self, worker: FakeWorker) -> Verdict:
        assert worker.wakes > 0
        worker.wakes -= 1
        return self._settle(worker, self.team.unpark(worker, True))

    def timedOut(self, worker: FakeWorker) -> Verdict:
        verdict = self.team.unpark(worker, False)
        if verdict is Verdict.WORK and worker.wakes:
            worker.wakes -= 1
        return self._settle(worker, verdict)

    def settle(self) -> None:
        """Boot every started worker and deliver every pending wake, until nothing moves; then deliver."""
        moved = True
        while moved:
            moved = False
            for worker in list(self.workers):
                if worker.verdict is None and worker.started:
                    self.boot(worker)
                    moved = True
                elif worker.wakes and worker.verdict is Verdict.PARKED:
                    self.woken(worker)
                    moved = True
        self.reactor.deliver()


def outcome(d: Deferred[Any]) -> list[Any]:
    """Collect d's result or Failure as it arrives."""
    box: list[Any] = []
    d.addBoth(box.append)
    return box


def useResource(resource: Resource, value: Any = None) -> tuple[int, Any]:
    resource.uses += 1
    return resource.serial, value


# -- the Team hook it rests on --------------------------------------------------------------------


def test_teamCurrentWorkerNamesTheWorkerSteppedInThisThread() -> None:
    """Team.currentWorker() is the worker whose protocol call runs here, even with fakes in one thread."""
    seen: list[tuple[str, str | None]] = []
    workers: list[FakeWorker] = []

    def make(team: Team, name: str) -> FakeWorker:
        workers.append(FakeWorker(team, name))
        return workers[-1]

    def hook(label: str) -> Callable[[], None]:
        def record() -> None:
            worker = team.currentWorker()
            seen.append((label, None if worker is None else worker.name))

        return record

    team = Team(make, "t", 2, 2, workerInit=hook("init"), workerExit=hook("exit"))
    assert team.currentWorker() is None
    team.start()
    first, second = workers
    team.workerStarted(first)
    team.workerStarted(second)
    team.runQueued(first)
    assert team.currentWorker() is first
    team.runQueued(second)
    assert team.currentWorker() is second
    team.beginStop()
    for worker in workers:
        assert team.park(worker) is Verdict.EXIT
    team.workerExiting(first)
    assert seen == [("init", "t-worker-1"), ("init", "t-worker-2"), ("exit", "t-worker-1")]


# -- dispatch ---------------------------------------------------------------------------------------


def test_runPassesTheWorkersOwnResource() -> None:
    """f gets the resource its worker opened in workerInit, with the run() arguments."""
    h = Harness(1, 2)
    h.pool.start()
    h.settle()
    assert h.log == ["create 1 in fake-worker-1"]
    got = outcome(h.pool.run(useResource, "x"))
    assert got == []  # nothing runs until the (fake) worker is woken
    h.settle()
    assert got == [(1, "x")]
    assert h.resources[0].uses == 1


def test_resultIsDeliveredOnlyInTheReactorStep() -> None:
    """The worker hands the outcome to the reactor; the Deferred fires when the reactor runs it."""
    h = Harness(1, 1)
    h.pool.start()
    h.settle()
    got = outcome(h.pool.run(useResource, 1))
    h.woken(h.workers[0])
    assert got == [] and h.reactor.calls
    h.reactor.deliver()
    assert got == [(1, 1)]


def test_warmestIdleWorkerTakesTheNextCall() -> None:
    """Idle workers are handed out last-in first-out: sequential calls keep using the same warm resource."""
    h = Harness(2, 2)
    h.pool.start()
    h.settle()  # worker 1 parks, then worker 2: worker 2 is the most recently parked
    served = []
    for i in range(4):
        got = outcome(h.pool.run(useResource, i))
        assert [w.wakes for w in h.workers] == [0, 1]
        h.settle()
        served.append(got[0][0])
    assert served == [2, 2, 2, 2]
    assert (h.resources[0].uses, h.resources[1].uses) == (0, 4)


def test_growsOnDemandUpToMaxthreadsEachWithItsResource() -> None:
    """Calls with no idle worker start workers up to maxthreads; each opens one resource."""
    h = Harness(0, 3)
    h.pool.start()
    results = [outcome(h.pool.run(useResource, i)) for i in range(5)]
    assert len(h.workers) == 3
    h.settle()
    assert all(len(r) == 1 for r in results)
    assert len(h.resources) == 3
    assert {res.worker for res in h.resources} == {"fake-worker-1", "fake-worker-2", "fake-worker-3"}


def test_contextVarsTravelIntoTheCall() -> None:
    """The caller's contextvars are visible to f in the worker."""
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    h = Harness(0, 1)
    h.pool.start()
    var.set("caller")
    got = outcome(h.pool.run(lambda resource: var.get()))
    h.settle()
    assert got == ["caller"]


def test_exceptionArrivesAsFailureWithWorkerTraceback() -> None:
    """f's exception errbacks the Deferred with the raising frame in the traceback."""
    h = Harness(0, 1)
    h.pool.start()

    def broken(resource: Resource) -> None:
        raise KeyError("nope")

    got = outcome(h.pool.run(broken))
    h.settle()
    (failure,) = got
    assert isinstance(failure, Failure) and failure.check(KeyError)
    assert "broken" in failure.getTraceback()
    assert h.resources[0].closed is False  # no isBroken: an ordinary exception keeps the resource


def test_callsQueuedBeforeStartRunOnceStarted() -> None:
    """run() before start() queues; start() runs the calls."""
    h = Harness(0, 1)
    got = outcome(h.pool.run(useResource, 7))
    assert h.workers == []
    h.pool.start()
    h.settle()
    assert got == [(1, 7)]


# -- create and close -----------------------------------------------------------------------------


def test_createFailureErrbacksTheCallAndThePoolStaysUsable(caplog: pytest.LogCaptureFixture) -> None:
    """create() raising: the call errbacks with create's error; the next call opens a resource and runs."""
    h = Harness(0, 1)
    h.pool.start()
    h.failCreate = ConnectionRefusedError("server down")
    with caplog.at_level(logging.ERROR, logger="deferthreads"):
        got = outcome(h.pool.run(useResource))
        h.settle()
    (failure,) = got
    assert isinstance(failure, Failure) and failure.check(ConnectionRefusedError)
    assert "server down" in str(failure.value)
    assert "create() failed" in caplog.text  # the attempt as the worker started is logged
    h.failCreate = None
    again = outcome(h.pool.run(useResource, "ok"))
    h.settle()
    assert again == [(1, "ok")]
    stats = h.pool.statistics()
    assert (stats.createFailed, stats.created, stats.open, stats.failed, stats.completed) == (2, 1, 1, 1, 1)


def test_closeRaisingIsLoggedAndTheWorkerStillExits(caplog: pytest.LogCaptureFixture) -> None:
    """close() raising is logged with the resource; the stop still completes."""
    h = Harness(1, 1)

    def badClose(resource: Resource) -> None:
        raise OSError("close failed badly")

    h = Harness(1, 1, close=badClose)
    h.pool.start()
    h.settle()
    stopped = outcome(h.pool.stop())
    with caplog.at_level(logging.ERROR, logger="deferthreads"):
        h.settle()
        h.reactor.deliver()
    assert stopped == [None]
    assert "close(<Resource 1>) failed" in caplog.text and "close failed badly" in caplog.text
    stats = h.pool.statistics()
    assert (stats.closed, stats.closeFailed, stats.open, stats.workers) == (1, 1, 0, 0)


# -- cancellation and interrupt -----------------------------------------------------------------------


def test_cancelQueuedCallRemovesItAndItNeverRuns() -> None:
    """Cancelling a call still queued errbacks CancelledError at once; f never runs."""
    h = Harness(0, 1)
    h.pool.start()
    ran: list[int] = []
    d = h.pool.run(lambda resource: ran.append(1))
    got = outcome(d)
    d.cancel()
    assert len(got) == 1 and got[0].check(CancelledError)
    assert h.pool.statistics().queued == 0
    h.settle()
    assert ran == []
    assert h.pool.statistics().cancelled == 1


def test_cancelRunningCallInterruptsAndFiresOnlyOnceTheCallStopped() -> None:
    """Cancelling a running call calls interrupt(resource, thread); CancelledError comes after the call."""
    interrupts: list[tuple[Resource, threading.Thread]] = []
    h = Harness(0, 1, interrupt=lambda r, t: interrupts.append((r, t)))
    h.pool.start()
    events: list[str] = []
    box: list[Deferred[Any]] = []

    def stuck(resource: Resource) -> None:
        box[0].cancel()  # the reactor cancels while the call runs (stepped in this one thread)
        events.append(f"cancel returned; interrupts={len(interrupts)}")
        raise OSError("interrupted")

    d = h.pool.run(stuck)
    box.append(d)
    d.addErrback(lambda f: events.append(f"deferred fired {type(f.value).__name__}"))
    h.settle()
    assert events == ["cancel returned; interrupts=1", "deferred fired CancelledError"]
    assert interrupts == [(h.resources[0], threading.current_thread())]
    stats = h.pool.statistics()
    assert (stats.interrupted, stats.broken) == (1, 1)
    assert h.resources[0].closed  # an interrupted call leaves its resource in an unknown state


def test_cancelRunningCallWithoutInterruptWaitsForItToReturn() -> None:
    """Without interrupt the Deferred errbacks CancelledError when the call returns; its result dropped."""
    h = Harness(0, 1)
    h.pool.start()
    box: list[Deferred[Any]] = []
    seen: list[Any] = []

    def slow(resource: Resource) -> int:
        box[0].cancel()
        seen.append(list(got))  # nothing delivered while the call runs
        return 42

    d = h.pool.run(slow)
    box.append(d)
    got = outcome(d)
    h.settle()
    assert seen == [[]]
    assert len(got) == 1 and got[0].check(CancelledError)
    assert h.resources[0].closed is False


def test_cancelAfterTheCallFinishedDoesNotInterruptTheNextCall() -> None:
    """A cancel arriving after the call returned (its outcome in flight) never interrupts another call."""
    interrupts: list[Resource] = []
    h = Harness(0, 1, interrupt=lambda r, t: interrupts.append(r))
    h.pool.start()
    d = h.pool.run(useResource)
    got = outcome(d)
    h.boot(h.workers[0])  # ran and handed back, not yet delivered
    nextOne = outcome(h.pool.run(useResource, 2))
    d.cancel()
    h.settle()
    assert interrupts == []
    assert got[0].check(CancelledError)
    assert nextOne == [(1, 2)]


def test_cancelBetweenClaimAndStartSkipsTheCall() -> None:
    """A cancel that lands while the worker prepares the resource stops the call before it starts."""
    h = Harness(0, 1, check=lambda r: box[0].cancel(), checkAfterIdle=0.0, interrupt=lambda r, t: None)
    h.pool.start()
    h.settle()
    box: list[Deferred[Any]] = []
    ran: list[int] = []
    d = h.pool.run(lambda r: ran.append(1))
    box.append(d)
    got = outcome(d)
    h.settle()
    assert ran == []
    assert got[0].check(CancelledError)
    assert h.pool.statistics().interrupted == 0


def test_interruptThatRaisesIsLoggedAndTheCallStillEnds(caplog: pytest.LogCaptureFixture) -> None:
    """An exception from interrupt() is logged; the Deferred still errbacks once the call returns."""

    def badInterrupt(resource: Resource, thread: threading.Thread) -> None:
        raise RuntimeError("cannot interrupt")

    h = Harness(0, 1, interrupt=badInterrupt)
    h.pool.start()
    box: list[Deferred[Any]] = []
    d = h.pool.run(lambda r: box[0].cancel())
    box.append(d)
    got = outcome(d)
    with caplog.at_level(logging.ERROR, logger="deferthreads"):
        h.settle()
    assert "interrupt() failed" in caplog.text
    assert got[0].check(CancelledError)


# -- health ------------------------------------------------------------------------------------------


def test_checkRunsAfterIdleAndAFailedCheckReplacesTheResource() -> None:
    """check() runs only after checkAfterIdle idle seconds; False closes and recreates before the call."""
    verdicts: list[bool] = []
    h = Harness(0, 1, check=lambda r: verdicts.pop(0), checkAfterIdle=10.0)
    h.pool.start()
    outcome(h.pool.run(useResource))
    h.settle()
    h.clock.advance(5)
    got = outcome(h.pool.run(useResource))
    h.settle()
    assert got == [(1, None)]  # idle 5 s < 10 s: no check
    h.clock.advance(10)
    verdicts.append(False)
    got = outcome(h.pool.run(useResource))
    h.settle()
    assert got == [(2, None)]
    assert h.resources[0].closed and not h.resources[1].closed
    assert verdicts == []
    assert h.pool.statistics().checksFailed == 1
    h.clock.advance(10)
    verdicts.append(True)
    got = outcome(h.pool.run(useResource))
    h.settle()
    assert got == [(2, None)]  # passed: kept


def test_checkRaisingCountsAsFailed() -> None:
    """A check() that raises fails: the resource is replaced and the call runs on the new one."""

    def check(resource: Resource) -> None:
        if resource.serial == 1:
            raise ConnectionResetError("gone")

    h = Harness(0, 1, check=check, checkAfterIdle=0.0)
    h.pool.start()
    got = outcome(h.pool.run(useResource))
    h.settle()
    assert got == [(2, None)]
    assert h.pool.statistics().checksFailed == 1


def test_maxLifetimeReplacesAnOldResourceBetweenCalls() -> None:
    """A resource older than maxLifetime is closed and a new one made before the next call."""
    h = Harness(0, 1, maxLifetime=60.0)
    h.pool.start()
    first = outcome(h.pool.run(useResource))
    h.settle()
    h.clock.advance(59)
    second = outcome(h.pool.run(useResource))
    h.settle()
    h.clock.advance(1)
    third = outcome(h.pool.run(useResource))
    h.settle()
    assert [first, second, third] == [[(1, None)], [(1, None)], [(2, None)]]
    assert h.resources[0].closed
    assert h.pool.statistics().expired == 1
    assert h.log == ["create 1 in fake-worker-1", "close 1", "create 2 in fake-worker-1"]


def test_maxIdleRetiresWorkersAboveTheMinimumClosingTheirResource() -> None:
    """Workers above minthreads idle for maxIdle exit and close their resource; the minimum stays."""
    h = Harness(1, 3, maxIdle=30.0)
    h.pool.start()
    for _ in range(3):
        outcome(h.pool.run(useResource))
    h.settle()
    assert h.pool.statistics().open == 3
    h.clock.advance(30)
    verdicts = [h.timedOut(w) for w in h.workers]
    assert verdicts.count(Verdict.EXIT) == 2
    stats = h.pool.statistics()
    assert (stats.workers, stats.open, stats.closed) == (1, 1, 2)
    assert [r.closed for r in h.resources].count(True) == 2


def test_isBrokenTrueReplacesTheResourceFalseKeepsIt() -> None:
    """After a call raised, isBroken(resource, exc) decides: True closes it, the next call gets a new one."""
    h = Harness(0, 1, isBroken=lambda r, e: isinstance(e, ConnectionError))

    def fail(resource: Resource, error: BaseException) -> None:
        raise error

    h.pool.start()
    outcome(h.pool.run(fail, ValueError("bad input")))
    h.settle()
    assert not h.resources[0].closed
    outcome(h.pool.run(fail, ConnectionResetError("dropped")))
    h.settle()
    assert h.resources[0].closed
    got = outcome(h.pool.run(useResource))
    h.settle()
    assert got == [(2, None)]
    assert h.pool.statistics().broken == 1


def test_isBrokenRaisingCountsAsBroken(caplog: pytest.LogCaptureFixture) -> None:
    """An isBroken hook that raises is logged and the resource is replaced."""
    h = Harness(0, 1, isBroken=lambda r, e: 1 / 0)
    h.pool.start()
    with caplog.at_level(logging.ERROR, logger="deferthreads"):
        got = outcome(h.pool.run(lambda r: r.__dict__["missing"]))
        h.settle()
    assert got[0].check(KeyError)  # the call's own error, not the hook's
    assert "isBroken" in caplog.text
    assert h.resources[0].closed


# -- backpressure ------------------------------------------------------------------------------------


def test_queueLimitRejectsWithQueueFullAtOnce() -> None:
    """Past queueLimit waiting calls run() has already failed with QueueFull."""
    h = Harness(0, 1, queueLimit=2)
    h.pool.start()
    outcome(h.pool.run(useResource))
    outcome(h.pool.run(useResource))
    got = outcome(h.pool.run(useResource))
    assert len(got) == 1 and got[0].check(QueueFull)
    assert "queueLimit=2" in str(got[0].value)
    assert h.pool.statistics().rejected == 1


def test_waitTimeoutFailsACallThatWaitedTooLong() -> None:
    """A call queued waitTimeout seconds without a free worker errbacks WaitTimeout and never runs."""
    h = Harness(1, 1, waitTimeout=5.0)
    h.pool.start()
    h.settle()
    ran: list[int] = []
    waiting: list[Any] = []

    def hold(resource: Resource) -> None:
        h.clock.advance(4.9)
        assert waiting == []
        h.clock.advance(0.1)  # the queued call's wait expires while this one holds the only worker
        ran.append(1)

    busy = outcome(h.pool.run(hold))
    h.pool.run(lambda r: ran.append(2)).addBoth(waiting.append)
    h.pool.run(lambda r: None).addBoth(waiting.append)
    h.settle()
    assert ran == [1] and busy == [None]
    assert len(waiting) == 2
    failure = waiting[0]
    assert failure.check(WaitTimeout) and failure.check(TimeoutError)
    message = str(failure.value)
    assert "waited 5.000s" in message and "waitTimeout=5.0s" in message
    assert "1 of 1 workers busy, 1 calls queued" in message
    assert h.pool.statistics().timedOut == 2


def test_waitTimeoutTimerIsCancelledOnceTheCallRan() -> None:
    """A call that ran in time leaves no timer behind, and a later advance does not fail it."""
    h = Harness(0, 1, waitTimeout=5.0)
    h.pool.start()
    got = outcome(h.pool.run(useResource))
    assert len(h.clock.getDelayedCalls()) == 1
    h.settle()
    assert got == [(1, None)]
    assert h.clock.getDelayedCalls() == []
    h.clock.advance(10)
    assert h.pool.statistics().timedOut == 0


def test_waitTimeoutIsCheckedWhenAWorkerTakesAStaleCall() -> None:
    """A worker that dequeues a call older than waitTimeout (its timer not run yet) fails it unrun."""
    h = Harness(0, 1, waitTimeout=5.0)
    h.pool.start()
    ran: list[int] = []
    got = outcome(h.pool.run(lambda r: ran.append(1)))
    h.clock.rightNow += 6  # time moves on, the reactor has not run the timer yet
    h.settle()
    assert ran == []
    assert got[0].check(WaitTimeout)
    assert h.clock.getDelayedCalls() == []
    assert h.pool.statistics().timedOut == 1


# -- lifecycle, statistics, repr, interface -------------------------------------------------------------


def test_stopDrainsClosesEveryResourceInItsWorkerAndRestarts() -> None:
    """stop() lets queued calls run, closes each resource in its worker, fires; start() works again."""
    h = Harness(1, 2)
    h.pool.start()
    h.settle()
    calls = [outcome(h.pool.run(useResource, i)) for i in range(3)]
    stopped = outcome(h.pool.stop())
    assert h.pool.state == "stopping"
    h.settle()
    h.reactor.deliver()
    assert all(len(c) == 1 and not isinstance(c[0], Failure) for c in calls)
    assert stopped == [None]
    assert h.pool.state == "stopped"
    assert all(r.closed for r in h.resources)
    late = outcome(h.pool.run(useResource))
    assert late[0].check(ThreadPoolStopped)
    h.pool.start()
    h.settle()
    again = outcome(h.pool.run(useResource, "again"))
    h.settle()
    assert again[0][1] == "again"
    assert h.pool.state == "running"


def test_stopTimeoutAbandonsQueuedCallsAndCancelsRunningOnes() -> None:
    """Past stop(timeout): queued calls errback CancelledError unrun, running ones are interrupted."""
    interrupts: list[Resource] = []
    h = Harness(0, 1, interrupt=lambda r, t: interrupts.append(r))
    h.pool.start()
    running: list[Any] = []
    queued: list[Any] = []
    stopped: list[list[Any]] = []
    checked: list[bool] = []

    def stuck(resource: Resource) -> None:
        stopped.append(outcome(h.pool.stop(timeout=2.0)))
        h.clock.advance(2.0)  # the reactor's timeout fires while the call is still stuck
        assert len(running) == 1 and running[0].check(CancelledError)
        assert len(queued) == 1 and queued[0].check(CancelledError)
        assert stopped[0] == [None]
        checked.append(True)  # (a failed assert above would only be this call's dropped outcome)

    d = h.pool.run(stuck)
    d.addBoth(running.append)
    h.pool.run(useResource).addBoth(queued.append)
    h.boot(h.workers[0])
    assert checked == [True]
    assert interrupts == [h.resources[0]]
    h.reactor.deliver()
    assert h.pool.state == "stopped"
    assert len(h.resources) == 1 and h.resources[0].closed


def test_stopOfANewPoolAbandonsItsQueuedCalls() -> None:
    """A pool never started: stop() errbacks its queued calls with ThreadPoolStopped and fires."""
    h = Harness(0, 1)
    got = outcome(h.pool.run(useResource))
    stopped = outcome(h.pool.stop())
    h.reactor.deliver()
    assert got[0].check(ThreadPoolStopped)
    assert stopped == [None]


def test_statisticsAndReprSayTheState() -> None:
    """statistics() is a frozen snapshot; the repr names the state, workers, open resources, bounds."""
    h = Harness(1, 3, queueLimit=10)
    assert repr(h.pool) == (
        "<ResourcePool 'fake' new workers=0 (busy=0 idle=0) open=0 queued=0 min=1 max=3 queueLimit=10>"
    )
    h.pool.start()
    h.settle()
    outcome(h.pool.run(useResource))
    h.settle()
    stats = h.pool.statistics()
    assert isinstance(stats, ResourcePoolStatistics)
    with pytest.raises(AttributeError):
        stats.open = 5  # type: ignore[misc]
    assert (stats.workers, stats.idle, stats.open, stats.created, stats.completed) == (1, 1, 1, 1, 1)
    assert repr(h.pool) == (
        "<ResourcePool 'fake' running workers=1 (busy=0 idle=1) open=1 queued=0 min=1 max=3 queueLimit=10>"
    )


def test_adjustPoolsizeGrowsToTheNewMinimum() -> None:
    """adjustPoolsize starts workers (each opening a resource) up to a raised minimum."""
    h = Harness(0, 2)
    h.pool.start()
    h.pool.adjustPoolsize(minthreads=2)
    h.settle()
    assert (h.pool.min, h.pool.max, h.pool.statistics().open) == (2, 2, 2)
    with pytest.raises(ValueError, match="minthreads"):
        h.pool.adjustPoolsize(minthreads=3)


def test_resourcePoolProvidesIResourcePool() -> None:
    """ResourcePool provides IResourcePool (verifyObject); the names are exported."""
    h = Harness()
    assert verifyObject(IResourcePool, h.pool)
    for name in ("ResourcePool", "IResourcePool", "ResourcePoolStatistics", "WaitTimeout"):
        assert name in deferthreads.__all__


def _create() -> object:
    return object()


def _close(resource: object) -> None:
    pass


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"create": 3}, TypeError, "create must be callable"),
        ({"close": None}, TypeError, "close must be callable"),
        ({"minthreads": -1}, ValueError, "minthreads"),
        ({"maxthreads": 0}, ValueError, "maxthreads"),
        ({"maxthreads": "4"}, TypeError, "maxthreads"),
        ({"minthreads": 3, "maxthreads": 2}, ValueError, "minthreads"),
        ({"check": "ping"}, TypeError, "check"),
        ({"checkAfterIdle": -1}, ValueError, "checkAfterIdle"),
        ({"maxLifetime": 0}, ValueError, "maxLifetime"),
        ({"maxIdle": "soon"}, TypeError, "maxIdle"),
        ({"interrupt": 1}, TypeError, "interrupt"),
        ({"isBroken": True}, TypeError, "isBroken"),
        ({"queueLimit": 0}, ValueError, "queueLimit"),
        ({"waitTimeout": float("inf")}, ValueError, "waitTimeout"),
        ({"shutdownTimeout": -5}, ValueError, "shutdownTimeout"),
        ({"name": 5}, TypeError, "name"),
        ({"reactor": object()}, TypeError, "reactor"),
        ({"clock": object()}, TypeError, "clock"),
        ({"manageLifecycle": "no"}, TypeError, "manageLifecycle"),
        ({"waitTimeoutError": 3}, TypeError, "waitTimeoutError"),
        ({"abandonedRunningError": None}, TypeError, "abandonedRunningError"),
        ({"abandonedQueuedError": "PoolClosedError"}, TypeError, "abandonedQueuedError"),
    ],
)
def test_badArgumentsRaiseNamingTheArgument(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    """Each bad argument raises TypeError/ValueError naming it, at the call."""
    clock = Clock()
    args: dict[str, Any] = {"create": _create, "close": _close, "reactor": FakeReactor(clock), "clock": clock}
    args.update(kwargs)
    create, close = args.pop("create"), args.pop("close")
    with pytest.raises(error, match=match):
        ResourcePool(create, close, **args)


def test_runWithANonCallableRaisesAtTheCall() -> None:
    """run(3) raises TypeError naming f; stop(timeout=-1) raises ValueError naming timeout."""
    h = Harness()
    with pytest.raises(TypeError, match="f must be callable"):
        h.pool.run(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout"):
        h.pool.stop(timeout=-1)


# -- real threads --------------------------------------------------------------------------------------


class SocketClient:
    """A blocking, not thread-safe client: a socket pair whose recv() blocks until data or shutdown."""

    def __init__(self) -> None:
        self.ours, self.peer = socket.socketpair()
        self.ours.settimeout(WAIT)  # a bound, should the interrupt never come
        self.openedIn = threading.current_thread().name
        self.closedIn: str | None = None

    def receive(self) -> bytes:
        data = self.ours.recv(16)
        if not data:
            raise ConnectionAbortedError("the socket was shut down under the call")
        return data

    def close(self) -> None:
        self.closedIn = threading.current_thread().name
        self.ours.close()
        self.peer.close()


def test_interruptUnblocksARealBlockingCall() -> None:
    """Cancelling a call blocked in recv() runs interrupt (a shutdown); CancelledError once it stopped."""
    reactor = Reactor()
    clients: list[SocketClient] = []
    interruptedIn: list[tuple[str, str]] = []
    events: list[str] = []
    entered = threading.Event()

    def create() -> SocketClient:
        client = SocketClient()
        clients.append(client)
        return client

    def interrupt(client: SocketClient, thread: threading.Thread) -> None:
        interruptedIn.append((threading.current_thread().name, thread.name))
        events.append("interrupt")
        client.ours.shutdown(socket.SHUT_RDWR)

    def cancelIt() -> None:
        box[0].cancel()
        events.append("cancel returned")

    def blocking(client: SocketClient) -> bytes:
        entered.set()
        reactor.callFromThread(cancelIt)  # the reactor cancels while (or just before) recv() blocks
        try:
            return client.receive()
        finally:
            events.append("call returned")

    pool: ResourcePool[SocketClient] = ResourcePool(
        create, SocketClient.close, minthreads=1, maxthreads=1, name="rp-interrupt", interrupt=interrupt,
        reactor=reactor,
    )
    results: list[Any] = []
    box: list[Deferred[Any]] = []

    def main() -> None:
        d = pool.run(blocking)
        box.append(d)

        def fired(result: Any) -> Deferred[Any]:
            events.append("deferred fired")
            results.append(result)
            return pool.run(lambda client: client.openedIn)

        d.addBoth(fired).addBoth(results.append).addBoth(lambda _: reactor.stop())

    runReactor(reactor, main)
    assert entered.is_set()
    assert results[0].check(CancelledError)
    assert events.index("interrupt") < events.index("call returned") < events.index("deferred fired")
    assert interruptedIn == [(threading.current_thread().name, "rp-interrupt-worker-1")]
    assert results[1] == "rp-interrupt-worker-1"  # a fresh client, opened in the worker
    assert len(clients) == 2 and clients[0].closedIn == "rp-interrupt-worker-1"
    assert all(c.closedIn == "rp-interrupt-worker-1" for c in clients)
    assert pool.state == "stopped" and workerThreads("rp-interrupt") == []


def test_drainAtReactorShutdownStrandsNothingAndLeavesNoThread() -> None:
    """reactor.stop() with calls running and queued: all Deferreds fire, resources close, no thread left."""
    reactor = Reactor()
    clients: list[SocketClient] = []
    lock = threading.Lock()

    def create() -> SocketClient:
        client = SocketClient()
        with lock:
            clients.append(client)
        return client

    pool: ResourcePool[SocketClient] = ResourcePool(
        create, SocketClient.close, minthreads=1, maxthreads=3, name="rp-drain", reactor=reactor
    )
    fired: list[Any] = []
    N = 300

    def main() -> None:
        for i in range(N):
            pool.run(lambda client, i: (i, threading.current_thread().name), i).addBoth(fired.append)
        reactor.stop()

    runReactor(reactor, main)
    assert len(fired) == N
    assert sorted(r[0] for r in fired) == list(range(N))
    assert clients and all(c.closedIn == c.openedIn for c in clients)
    stats = pool.statistics()
    assert (stats.open, stats.workers, stats.completed) == (0, 0, N)
    assert workerThreads("rp-drain") == []


def test_reactorRunAgainRestartsThePool() -> None:
    """A pool drained at shutdown starts again with the reactor's next run."""
    reactor = Reactor()
    pool: ResourcePool[SocketClient] = ResourcePool(
        SocketClient, SocketClient.close, minthreads=0, maxthreads=2, name="rp-rerun", reactor=reactor
    )
    results: list[Any] = []

    def main() -> None:
        pool.run(lambda client: client.openedIn).addBoth(results.append).addBoth(lambda _: reactor.stop())

    runReactor(reactor, main)
    assert pool.state == "stopped"
    runReactor(reactor, main)
    assert results == ["rp-rerun-worker-1", "rp-rerun-worker-2"]
    assert pool.state == "stopped" and workerThreads("rp-rerun") == []


def test_stopAndStartWithRealThreads() -> None:
    """stop() fires once every worker exited (resources closed); start() makes the pool usable again."""
    reactor = Reactor()
    pool: ResourcePool[SocketClient] = ResourcePool(
        SocketClient, SocketClient.close, minthreads=2, maxthreads=2, name="rp-restart", reactor=reactor
    )
    seen: list[Any] = []

    async def body() -> None:
        seen.append(await pool.run(lambda client: client.openedIn))
        await pool.stop()
        seen.append((pool.state, len(workerThreads("rp-restart")), pool.statistics().open))
        pool.start()
        seen.append(await pool.run(lambda client: client.openedIn.rsplit("-", 1)[0]))

    def main() -> None:
        Deferred.fromCoroutine(body()).addBoth(seen.append).addBoth(lambda _: reactor.stop())

    runReactor(reactor, main)
    assert seen[1] == ("stopped", 0, 0)
    assert seen[2] == "rp-restart-worker"
    assert seen[3] is None
    assert workerThreads("rp-restart") == []


def test_closeRaisingAtShutdownIsLoggedWithRealThreads(caplog: pytest.LogCaptureFixture) -> None:
    """A close() raising as workers exit at shutdown is logged; run() still returns, no thread left."""
    reactor = Reactor()

    def badClose(client: SocketClient) -> None:
        client.close()
        raise OSError("close exploded")

    pool: ResourcePool[SocketClient] = ResourcePool(
        SocketClient, badClose, minthreads=1, maxthreads=1, name="rp-badclose", reactor=reactor
    )
    with caplog.at_level(logging.ERROR, logger="deferthreads"):
        runReactor(reactor, lambda: pool.run(lambda c: None).addBoth(lambda _: reactor.stop()))
    assert "close exploded" in caplog.text
    assert pool.statistics().closeFailed == 1
    assert workerThreads("rp-badclose") == []


def test_cancelsRacingCompletionsFireEveryDeferredOnce() -> None:
    """Hundreds of calls cancelled at random points on real threads: each Deferred fires once, none hangs."""

    class Worklet:
        """A resource whose calls loop until done or until interrupt() raises their stop flag."""

        def __init__(self) -> None:
            self.stop = False

    def interrupt(worklet: Worklet, thread: threading.Thread) -> None:
        worklet.stop = True
        interrupts.append(1)

    reactor = Reactor()
    rng = random.Random(1234)
    interrupts: list[int] = []
    pool: ResourcePool[Worklet] = ResourcePool(
        Worklet, lambda worklet: None, minthreads=2, maxthreads=4, name="rp-race",
        interrupt=interrupt, reactor=reactor,
    )
    outcomes: list[str] = []
    insiders: list[Deferred[Any]] = []
    N = 400

    def spin(worklet: Worklet, n: int, cancelFromInside: list[Deferred[Any]]) -> int:
        if cancelFromInside:
            reactor.callFromThread(cancelFromInside[0].cancel)  # arrives while it runs, or just after
        total = 0
        for i in range(n):  # a Python loop: it lets the reactor thread run meanwhile
            if worklet.stop:
                raise InterruptedError("interrupted")
            total += i
        return total

    def main() -> None:
        ds = []
        for _ in range(N):
            when = rng.choice(["now", "soon", "later", "inside", "never"])
            inside: list[Deferred[Any]] = []
            if when == "inside":
                d = pool.run(spin, 10_000_000, inside)  # stops only when interrupted (bounded)
                inside.append(d)
                insiders.append(d)
            else:
                d = pool.run(spin, rng.choice([0, 1_000, 20_000]), inside)
            d.addCallbacks(lambda _: outcomes.append("ok"), lambda f: outcomes.append(f.type.__name__))
            ds.append(d)
            if when == "now":
                d.cancel()
            elif when == "soon":
                reactor.callLater(0, d.cancel)
            elif when == "later":
                reactor.callLater(0.005 * rng.random(), d.cancel)
        DeferredList(ds).addBoth(lambda _: reactor.stop())

    runReactor(reactor, main)
    assert len(outcomes) == N
    assert set(outcomes) <= {"ok", "CancelledError"}
    stats = pool.statistics()
    assert stats.interrupted == len(interrupts) == len(insiders) > 0  # each ends by its interrupt
    assert all(d.called and d.result is None for d in insiders)  # their CancelledErrors were consumed
    assert stats.open == 0 and stats.workers == 0
    assert workerThreads("rp-race") == []


# -- for owners: life cycle, idle retirement, restart after a stop that gave up, errors, own resource ---


class TriggerReactor(FakeReactor):
    """A FakeReactor that records the life-cycle hooks a pool registers with it."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(clock)
        self.registered: list[str] = []

    def callWhenRunning(self, f: Callable[..., object], /, *args: Any) -> str:
        self.registered.append("callWhenRunning")
        return "running"

    def addSystemEventTrigger(self, phase: str, event: str, f: Callable[..., object], /, *args: Any) -> str:
        self.registered.append(f"{phase} {event}")
        return f"{phase} {event}"

    def removeSystemEventTrigger(self, triggerID: object) -> None:
        self.registered.append(f"removed {triggerID}")


@pytest.mark.parametrize(
    ("manage", "expected"), [(True, ["callWhenRunning", "before shutdown"]), (False, [])]
)
def test_manageLifecycleFalseRegistersNothingWithTheReactor(manage: bool, expected: list[str]) -> None:
    """manageLifecycle=False: no start when the reactor runs, no drain in 'before shutdown': the owner's."""
    clock = Clock()
    reactor = TriggerReactor(clock)
    workers: list[FakeWorker] = []
    pool: ResourcePool[object] = ResourcePool(
        _create, _close, reactor=reactor, clock=clock, manageLifecycle=manage, spinTime=0.0,
        workerFactory=lambda team, name: workers.append(FakeWorker(team, name)) or workers[-1],
    )
    pool.start()
    assert reactor.registered == expected
    assert pool.state == "running"


def test_ownerManagedPoolOutlivesTheReactorRunUntilItsOwnerStopsIt() -> None:
    """With manageLifecycle=False the pool waits for start() and is still running after reactor.stop()."""
    reactor = Reactor()
    pool: ResourcePool[SocketClient] = ResourcePool(
        SocketClient, SocketClient.close, minthreads=1, maxthreads=1, name="rp-owned", reactor=reactor,
        manageLifecycle=False,
    )
    seen: list[Any] = []

    def main() -> None:
        seen.append(pool.state)  # the reactor runs: the pool did not start by itself
        pool.start()
        pool.run(lambda client: client.openedIn).addBoth(seen.append).addBoth(lambda _: reactor.stop())

    runReactor(reactor, main)
    assert seen == ["new", "rp-owned-worker-1"]
    assert pool.state == "running" and len(workerThreads("rp-owned")) == 1  # not drained at shutdown
    runReactor(reactor, lambda: pool.stop().addBoth(seen.append).addBoth(lambda _: reactor.stop()))
    assert seen[-1] is None
    assert pool.state == "stopped" and workerThreads("rp-owned") == []
    assert pool.statistics().open == 0


def _staggered(h: Harness, count: int, step: float) -> None:
    """Start ``count`` workers and park them ``step`` seconds apart on h's clock (worker 1 first)."""
    h.pool.start()
    h.pool.adjustPoolsize(minthreads=count)
    for i, worker in enumerate(h.workers):
        if i:
            h.clock.advance(step)
        h.boot(worker)
    h.pool.adjustPoolsize(minthreads=1)


def test_retireIdleRetiresTheLongestIdleOnTheClockAndNeverBelowMin() -> None:
    """retireIdle(n) retires workers idle >= n s on the pool's clock, longest idle first, down to min."""
    h = Harness(0, 4)
    _staggered(h, 4, 10.0)  # at t=30: worker 1 idle 30 s, 2: 20 s, 3: 10 s, 4: 0 s
    assert h.pool.retireIdle(15.0) == 2
    assert [w.wakes for w in h.workers] == [1, 1, 0, 0]
    assert h.pool.statistics().workers == 2  # no longer counted, though not gone yet
    late = outcome(h.pool.run(useResource, "late"))  # the warmest still counted worker takes it
    assert [w.wakes for w in h.workers] == [1, 1, 0, 1]
    h.settle()
    assert late == [(4, "late")]
    assert [w.verdict for w in h.workers] == [Verdict.EXIT, Verdict.EXIT, Verdict.PARKED, Verdict.PARKED]
    assert h.log[-2:] == ["close 1", "close 2"]  # each closed in its own worker (Harness.close checks)
    assert [r.uses for r in h.resources] == [0, 0, 0, 1]  # the retired workers took nothing
    h.clock.advance(4.9)
    assert h.pool.retireIdle(15.0) == 0  # worker 3 (parked at t=20) has been idle 14.9 s
    h.clock.advance(0.1)
    assert h.pool.retireIdle(15.0) == 1
    h.settle()
    assert h.workers[2].verdict is Verdict.EXIT and h.log[-1] == "close 3"
    h.clock.advance(1000.0)
    assert h.pool.retireIdle(0.0) == 0  # the last one is the minimum
    stats = h.pool.statistics()
    assert (stats.workers, stats.open, stats.closed) == (1, 1, 3)
    assert h.workers[3].verdict is Verdict.PARKED and not h.resources[3].closed


def test_retireIdleDoesNothingUnlessRunningAndChecksItsArgument() -> None:
    """retireIdle on a pool not running retires nobody; a bad idleFor raises naming it."""
    h = Harness(0, 2)
    assert h.pool.retireIdle(0.0) == 0
    with pytest.raises(ValueError, match="idleFor"):
        h.pool.retireIdle(-1.0)
    with pytest.raises(TypeError, match="idleFor"):
        h.pool.retireIdle("1")  # type: ignore[arg-type]


def test_retiredWorkerWakingOnItsOwnTimeoutStillExits() -> None:
    """A retired worker whose park timeout races the retirement's wake absorbs the wake, then exits."""
    h = Harness(0, 2)
    _staggered(h, 2, 10.0)
    assert h.pool.retireIdle(10.0) == 1
    first = h.workers[0]
    assert h.timedOut(first) is Verdict.EXIT  # its wait timed out as the wake was on its way
    assert first.wakes == 0 and h.log[-1] == "close 1"


def test_startRightAfterAStopThatGaveUpServesCallsWithANewWorker() -> None:
    """After stop(timeout) gave up on a stuck call, start() works at once; the stuck worker takes no more."""
    h = Harness(0, 1)
    h.pool.start()
    running: list[Any] = []
    stopped: list[list[Any]] = []
    fresh: list[list[Any]] = []

    def stuck(resource: Resource) -> str:
        stopped.append(outcome(h.pool.stop(timeout=2.0)))
        h.clock.advance(2.0)  # the reactor gives up while the call is still stuck
        assert stopped[0] == [None] and h.pool.state == "stopped"
        assert len(running) == 1 and running[0].check(CancelledError)
        assert "shutdown timeout 2.0s" in str(running[0].value)
        h.pool.start()  # at once: no RuntimeError, no wait for the stuck worker
        fresh.append(outcome(h.pool.run(useResource, "fresh")))
        fresh.append(outcome(h.pool.run(useResource, "queued")))
        assert len(h.workers) == 2 and h.pool.statistics().workers == 1  # the stuck one is not counted
        return "late"

    h.pool.run(stuck).addBoth(running.append)
    assert h.boot(h.workers[0]) is Verdict.EXIT  # its call returned: it exits, leaving the queue alone
    assert h.resources[0].closed and h.resources[0].uses == 0
    assert h.log == ["create 1 in fake-worker-1", "close 1"]
    h.settle()
    assert fresh == [[(2, "fresh")], [(2, "queued")]]
    assert len(running) == 1  # the late "late" was dropped
    stats = h.pool.statistics()
    assert (stats.workers, stats.open, stats.created, stats.closed) == (1, 1, 2, 1)
    again = outcome(h.pool.stop())  # a later stop waits only for the new generation
    h.settle()
    assert again == [None] and h.pool.state == "stopped"


class Abandoned(RuntimeError):
    """An owner's error for calls given up on while they ran."""


class NeverRan(RuntimeError):
    """An owner's error for calls dropped from the queue at a stop."""


def test_abandonedErrorHooksGiveTheOwnersExceptionsAtAStopTimeout() -> None:
    """abandonedRunningError/abandonedQueuedError make the failures of calls given up on at a stop timeout."""
    interrupts: list[Resource] = []
    h = Harness(
        0, 1, interrupt=lambda r, t: interrupts.append(r), abandonedRunningError=Abandoned,
        abandonedQueuedError=NeverRan,
    )
    h.pool.start()
    running: list[Any] = []
    queued: list[Any] = []

    def stuck(resource: Resource) -> None:
        h.pool.stop(timeout=3.0)
        h.clock.advance(3.0)

    h.pool.run(stuck).addBoth(running.append)
    h.pool.run(useResource).addBoth(queued.append)
    h.boot(h.workers[0])
    h.reactor.deliver()
    assert interrupts == [h.resources[0]]
    assert len(running) == 1 and running[0].check(Abandoned)
    assert "while the call ran" in str(running[0].value)
    assert len(queued) == 1 and queued[0].check(NeverRan)
    assert "before the call started" in str(queued[0].value)


def test_misbehavingErrorHooksAreLoggedAndTheDefaultIsUsed(caplog: pytest.LogCaptureFixture) -> None:
    """An error hook that raises or returns a non-exception is logged; the call fails with the default."""
    h = Harness(0, 1, abandonedRunningError=lambda m: 1 / 0, abandonedQueuedError=lambda m: "not one")
    h.pool.start()
    running: list[Any] = []
    queued: list[Any] = []
    h.pool.run(lambda r: (h.pool.stop(timeout=1.0), h.clock.advance(1.0))).addBoth(running.append)
    h.pool.run(useResource).addBoth(queued.append)
    with caplog.at_level(logging.ERROR, logger="deferthreads"):
        h.boot(h.workers[0])
        h.reactor.deliver()
    assert running[0].check(CancelledError) and queued[0].check(CancelledError)
    assert "raised; using" in caplog.text and "returned 'not one', not an exception" in caplog.text


class PoolTimeout(TimeoutError):
    """An owner's wait-timeout error."""


def test_waitTimeoutErrorHookGivesTheOwnersExceptionOnBothPaths() -> None:
    """A call failing its waitTimeout errbacks waitTimeoutError(message), by its timer or when dequeued."""
    h = Harness(1, 1, waitTimeout=5.0, waitTimeoutError=PoolTimeout)
    h.pool.start()
    h.settle()
    waiting: list[Any] = []

    def hold(resource: Resource) -> None:
        h.clock.advance(5.0)  # the queued call's timer fires while this one holds the only worker

    h.pool.run(hold)
    h.pool.run(useResource).addBoth(waiting.append)
    h.settle()
    assert waiting[0].check(PoolTimeout) and "waitTimeout=5.0s" in str(waiting[0].value)
    stale: list[Any] = []
    h.pool.run(useResource).addBoth(stale.append)
    h.clock.rightNow += 6  # the worker dequeues it before the reactor ran its timer
    h.settle()
    assert stale[0].check(PoolTimeout) and "waited 6.000s" in str(stale[0].value)
    assert h.pool.statistics().timedOut == 2


def test_currentResourceInsideACallIsTheResourceTheCallWasGiven() -> None:
    """pool.currentResource() in code a call runs is that worker's resource, the one f was handed."""
    h = Harness(0, 2)
    h.pool.start()
    got = outcome(h.pool.run(lambda resource: h.pool.currentResource() is resource))
    h.settle()
    assert got == [True]


def test_currentResourceOutsideTheWorkersRaisesReactorThreadError() -> None:
    """currentResource()/replaceResource() in a thread that is not one of the pool's workers raise clearly."""
    h = Harness(0, 1)
    with pytest.raises(deferthreads.ReactorThreadError, match=r"currentResource\(\) must be called from"):
        h.pool.currentResource()
    with pytest.raises(deferthreads.ReactorThreadError, match=r"replaceResource\(\)"):
        h.pool.replaceResource()
    other: Harness = Harness(0, 1)  # a worker of another pool is not one of ours
    other.pool.start()
    errors = outcome(other.pool.run(lambda resource: h.pool.currentResource()))
    other.settle()
    assert errors[0].check(deferthreads.ReactorThreadError)
    seen: list[BaseException] = []

    def elsewhere() -> None:
        try:
            h.pool.currentResource()
        except BaseException as e:
            seen.append(e)

    thread = threading.Thread(target=elsewhere)
    thread.start()
    thread.join(WAIT)
    assert len(seen) == 1 and isinstance(seen[0], deferthreads.ReactorThreadError)
    assert thread.name in str(seen[0])


def test_replaceResourceClosesItNowAndTheNextUseOpensAnother() -> None:
    """replaceResource() closes the worker's resource at once, in its thread; the next use opens a new one."""
    h = Harness(0, 1)
    h.pool.start()
    steps: list[Any] = []

    def reconnect(resource: Resource) -> int:
        h.pool.replaceResource()
        steps.append((resource.closed, list(h.log)))
        h.pool.replaceResource()  # nothing open: nothing to do
        fresh = h.pool.currentResource()  # opened now, in this worker
        return fresh.serial

    got = outcome(h.pool.run(reconnect))
    h.settle()
    assert steps == [(True, ["create 1 in fake-worker-1", "close 1"])]
    assert got == [2]
    following = outcome(h.pool.run(useResource))
    h.settle()
    assert following == [(2, None)]  # the worker kept the one opened inside the call
    outcome(h.pool.run(lambda resource: h.pool.replaceResource()))
    h.settle()
    last = outcome(h.pool.run(useResource))
    h.settle()
    assert last == [(3, None)]  # closed at the end of a call: the next call opened another
    stats = h.pool.statistics()
    assert (stats.replaced, stats.created, stats.closed, stats.open, stats.broken) == (2, 3, 2, 1, 0)


def test_cancelAfterTheCallClosedItsResourceInterruptsNothing() -> None:
    """A cancel while the call holds no resource (replaced, not reopened) interrupts no closed one."""
    interrupts: list[Resource] = []
    h = Harness(0, 1, interrupt=lambda r, t: interrupts.append(r))
    h.pool.start()
    box: list[Deferred[Any]] = []

    def call(resource: Resource) -> None:
        h.pool.replaceResource()
        box[0].cancel()

    d = h.pool.run(call)
    box.append(d)
    got = outcome(d)
    h.settle()
    assert interrupts == [] and got[0].check(CancelledError)
    assert h.pool.statistics().interrupted == 0  # counts interrupt() calls: there was nothing to interrupt


def test_currentResourceInsideCreateRaisesInsteadOfRecursing() -> None:
    """currentResource() from create() (which is opening it) raises RuntimeError; the call gets that error."""
    holder: list[ResourcePool[Resource]] = []

    def create() -> Resource:
        holder[0].currentResource()
        raise AssertionError("not reached")

    clock = Clock()
    workers: list[FakeWorker] = []
    pool: ResourcePool[Resource] = ResourcePool(
        create, _close, maxthreads=1, reactor=FakeReactor(clock), clock=clock, spinTime=0.0,
        workerFactory=lambda team, name: workers.append(FakeWorker(team, name)) or workers[-1],
    )
    holder.append(pool)
    pool.start()
    got = outcome(pool.run(useResource))
    team = pool._team
    team.workerStarted(workers[0])
    team.runQueued(workers[0])
    pool._reactor.deliver()
    assert got[0].check(RuntimeError) and "called from create()" in str(got[0].value)


def test_currentResourceAndReplaceWithRealThreads() -> None:
    """In a real worker currentResource() is the call's client; replaceResource() closes it in that thread."""
    reactor = Reactor()
    pool: ResourcePool[SocketClient] = ResourcePool(
        SocketClient, SocketClient.close, minthreads=1, maxthreads=1, name="rp-own", reactor=reactor
    )
    seen: list[Any] = []

    def inside(client: SocketClient) -> tuple[bool, str | None, str]:
        same = pool.currentResource() is client
        pool.replaceResource()
        return same, client.closedIn, pool.currentResource().openedIn

    async def body() -> None:
        try:
            pool.currentResource()
        except deferthreads.ReactorThreadError:
            seen.append("refused in the reactor thread")
        seen.append(await pool.run(inside))

    def main() -> None:
        Deferred.fromCoroutine(body()).addBoth(seen.append).addBoth(lambda _: reactor.stop())

    runReactor(reactor, main)
    assert seen == [
        "refused in the reactor thread", (True, "rp-own-worker-1", "rp-own-worker-1"), None
    ]
    assert pool.statistics().replaced == 1 and workerThreads("rp-own") == []


def test_restartAfterAStopThatGaveUpWithRealThreads() -> None:
    """A real worker stuck past stop(timeout): start() at once; the stuck one, released, takes no call."""
    reactor = Reactor()
    clock = Clock()  # the stop's timeout is advanced by hand, in the reactor thread
    release = threading.Event()
    gate = threading.Event()
    entered: Deferred[None] = Deferred()
    oldClosed: Deferred[None] = Deferred()

    def close(client: SocketClient) -> None:
        client.close()
        if client.closedIn == "rp-giveup-worker-1":
            reactor.callFromThread(oldClosed.callback, None)

    pool: ResourcePool[SocketClient] = ResourcePool(
        SocketClient, close, minthreads=1, maxthreads=1, name="rp-giveup", reactor=reactor, clock=clock,
        abandonedRunningError=Abandoned,
    )
    stuckOutcomes: list[Any] = []
    seen: list[Any] = []

    def blocked(client: SocketClient) -> str:
        reactor.callFromThread(entered.callback, None)
        release.wait(WAIT)
        return "late"

    def gated(client: SocketClient) -> str:
        gate.wait(WAIT)
        return threading.current_thread().name

    def name(client: SocketClient) -> str:
        return threading.current_thread().name

    async def body() -> None:
        pool.run(blocked).addBoth(stuckOutcomes.append)
        await entered
        queued = pool.run(name)
        stopped = pool.stop(timeout=5.0)
        clock.advance(5.0)
        assert stopped.called and pool.state == "stopped"
        try:
            await queued
        except CancelledError:
            seen.append("queued call dropped")
        pool.start()
        first = pool.run(gated)  # the new worker waits here until the stuck one has gone
        rest = [pool.run(name) for _ in range(5)]
        release.set()  # the stuck call returns now, with calls queued it must not take
        await oldClosed
        gate.set()
        seen.append(set(await gatherResults([first, *rest])))
        await pool.stop()

    def main() -> None:
        Deferred.fromCoroutine(body()).addBoth(seen.append).addBoth(lambda _: reactor.stop())

    runReactor(reactor, main)
    for thread in workerThreads("rp-giveup"):
        thread.join(WAIT)  # the stuck worker may still be leaving workerExiting when the stop fired
    assert seen == ["queued call dropped", {"rp-giveup-worker-2"}, None]
    assert len(stuckOutcomes) == 1 and stuckOutcomes[0].check(Abandoned)  # "late" was dropped
    stats = pool.statistics()
    assert (stats.open, stats.workers, stats.created, stats.closed) == (0, 0, 2, 2)
    assert workerThreads("rp-giveup") == []


def test_aTimeoutGivenWhileAStopIsUnderWayBoundsThatStop() -> None:
    """stop() then stop(timeout=1): after 1 s both Deferreds fire and the stuck call is given up on."""
    h = Harness(0, 1)
    h.pool.start()
    running: list[Any] = []
    stops: list[list[Any]] = []

    def stuck(resource: Resource) -> None:
        stops.append(outcome(h.pool.stop()))
        stops.append(outcome(h.pool.stop(timeout=1.0)))
        h.clock.advance(0.9)
        stops.append([len(running), *stops[0], *stops[1]])
        h.clock.advance(0.1)

    h.pool.run(stuck).addBoth(running.append)
    h.boot(h.workers[0])
    assert stops == [[None], [None], [0]]
    assert running[0].check(CancelledError) and "shutdown timeout 1.0s" in str(running[0].value)
    assert h.clock.getDelayedCalls() == []


def test_checkOrIsBrokenThatReplacedTheResourceItselfIsNotClosedTwice() -> None:
    """check()/isBroken() calling replaceResource(): the resource is closed once, the call gets a new one."""

    def check(resource: Resource) -> bool:
        h.pool.replaceResource()
        return True

    def isBroken(resource: Resource, error: BaseException) -> bool:
        h.pool.replaceResource()
        return True

    h = Harness(0, 1, check=check, checkAfterIdle=0.0, isBroken=isBroken)
    h.pool.start()
    got = outcome(h.pool.run(useResource))
    h.settle()
    assert got == [(2, None)]  # resource 1 replaced by the check, 2 opened for the call
    failed = outcome(h.pool.run(lambda r: 1 / 0))
    h.settle()
    assert failed[0].check(ZeroDivisionError)
    assert h.log == [
        "create 1 in fake-worker-1", "close 1", "create 2 in fake-worker-1", "close 2",
        "create 3 in fake-worker-1", "close 3",
    ]
    stats = h.pool.statistics()
    assert (stats.replaced, stats.checksFailed, stats.broken, stats.closed) == (3, 0, 0, 3)
