"""Deterministic tests of the thread pool's bookkeeping: fake workers, a fake clock, no threads.

Each fake worker is driven by hand through the worker protocol (``workerStarted``,
``runQueued``, ``park``, ``unpark``, ``workerExiting``), in the test's thread, so
growth, retirement, the queue bound, stopping and the statistics are checked
step by step.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from zope.interface import implementer
from zope.interface.verify import verifyObject

from deferthreads import IThreadPool, IWorker, QueueFull, ThreadPool, ThreadPoolStopped
from deferthreads._team import Team, Verdict
from deferthreads._threadworker import ThreadWorker
from reactor import CancelledError, Failure
from reactor.task import Clock


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


class Harness:
    """A ThreadPool over fake workers and a Clock, with helpers that run one worker step."""

    def __init__(self, minthreads: int = 0, maxthreads: int = 3, **kw: Any) -> None:
        self.clock = Clock()
        self.workers: list[FakeWorker] = []
        kw.setdefault("spinTime", 0.0)  # a fake worker spinning in the test's own thread finds nothing
        self.pool = ThreadPool(
            minthreads, maxthreads, "fake", workerFactory=self._make, clock=self.clock, **kw
        )
        self.team = self.pool._team

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
        """The worker's thread begins: init hook, run the queue, park."""
        self.team.workerStarted(worker)
        return self._settle(worker, Verdict.WORK)

    def bootAll(self) -> None:
        for worker in list(self.workers):
            if worker.verdict is None:
                self.boot(worker)

    def woken(self, worker: FakeWorker) -> Verdict:
        """Deliver the wake() the team sent."""
        assert worker.wakes > 0
        worker.wakes -= 1
        return self._settle(worker, self.team.unpark(worker, True))

    def timedOut(self, worker: FakeWorker) -> Verdict:
        """The worker's idle wait timed out (absorbing a wake() that raced it, as ThreadWorker does)."""
        verdict = self.team.unpark(worker, False)
        if verdict is Verdict.WORK and worker.wakes:
            worker.wakes -= 1
        return self._settle(worker, verdict)

    def settle(self) -> None:
        """Boot every started worker and deliver every pending wake, until nothing moves."""
        moved = True
        while moved:
            moved = False
            for worker in list(self.workers):
                if worker.verdict is None:
                    self.boot(worker)
                    moved = True
                elif worker.wakes and worker.verdict is Verdict.PARKED:
                    self.woken(worker)
                    moved = True


def test_startRunsMinimumWorkersWithNames() -> None:
    """start() starts minthreads workers named {name}-worker-{n}."""
    h = Harness(2, 5)
    assert h.workers == []
    h.pool.start()
    assert [w.name for w in h.workers] == ["fake-worker-1", "fake-worker-2"]
    assert all(w.started for w in h.workers)
    h.bootAll()
    stats = h.pool.statistics()
    assert (stats.workers, stats.idle, stats.busy) == (2, 2, 0)


def test_growsOnDemandUpToMaxthreads() -> None:
    """With no idle worker each new call starts a worker, up to maxthreads."""
    h = Harness(0, 3)
    h.pool.start()
    for _ in range(5):
        h.pool.callInThread(lambda: None)
    assert len(h.workers) == 3
    stats = h.pool.statistics()
    assert (stats.workers, stats.busy, stats.queued) == (3, 3, 5)


def test_idleWorkerIsWokenInsteadOfGrowing() -> None:
    """A call arriving while a worker is parked wakes it; no new worker starts."""
    h = Harness(1, 3)
    h.pool.start()
    h.bootAll()
    ran: list[int] = []
    h.pool.callInThread(ran.append, 1)
    assert len(h.workers) == 1
    assert h.workers[0].wakes == 1
    assert h.woken(h.workers[0]) is Verdict.PARKED
    assert ran == [1]


def test_idleWorkersAboveMinimumRetireAfterIdleTimeout() -> None:
    """Workers above minthreads exit once idle for idleTimeout; the minimum stays."""
    exits: list[str] = []
    h = Harness(1, 3, idleTimeout=60.0, workerExit=lambda: exits.append("x"))
    h.pool.start()
    for _ in range(3):
        h.pool.callInThread(lambda: None)
    h.bootAll()
    assert h.pool.statistics().workers == 3
    h.clock.advance(59)
    assert [h.timedOut(w) for w in h.workers] == [Verdict.PARKED] * 3
    h.clock.advance(1)
    verdicts = [h.timedOut(w) for w in h.workers]
    assert verdicts.count(Verdict.EXIT) == 2
    assert verdicts.count(Verdict.PARKED) == 1
    assert exits == ["x", "x"]
    assert h.pool.statistics().workers == 1


def test_noRetirementWithoutIdleTimeout() -> None:
    """idleTimeout=None keeps every worker."""
    h = Harness(0, 2, idleTimeout=None)
    h.pool.start()
    h.pool.callInThread(lambda: None)
    h.bootAll()
    h.clock.advance(10_000)
    assert h.timedOut(h.workers[0]) is Verdict.PARKED


def test_wakeRacingTheTimeoutIsNotLost() -> None:
    """A wake() sent as the wait times out still gets the worker back to work."""
    h = Harness(0, 1, idleTimeout=1.0)
    h.pool.start()
    h.pool.callInThread(lambda: None)
    worker = h.workers[0]
    h.boot(worker)
    h.clock.advance(5)
    ran: list[int] = []
    h.pool.callInThread(ran.append, 1)  # claims and wakes the parked worker
    assert worker.wakes == 1
    assert h.team.unpark(worker, False) is Verdict.WORK  # the timeout lost the race
    h._settle(worker, Verdict.WORK)
    assert ran == [1]
    assert h.pool.statistics().workers == 1


def test_queueLimitRejectsAtOnce() -> None:
    """Past queueLimit waiting calls, callInThread raises QueueFull and counts a rejection."""
    h = Harness(0, 1, queueLimit=2)
    h.pool.start()
    h.pool.callInThread(lambda: None)
    h.pool.callInThread(lambda: None)
    with pytest.raises(QueueFull, match="queueLimit=2"):
        h.pool.callInThread(lambda: None)
    stats = h.pool.statistics()
    assert (stats.queued, stats.rejected) == (2, 1)
    h.bootAll()
    h.pool.callInThread(lambda: None)  # room again


def test_statisticsCountOutcomesAndLongestQueueWait() -> None:
    """completed, failed and longestQueueWait follow what the workers did."""
    h = Harness(0, 1)
    h.pool.start()
    h.pool.callInThread(lambda: None)
    h.clock.advance(1.5)
    h.pool.callInThread(lambda: None)
    h.pool.callInThread(lambda: 1 / 0)
    h.clock.advance(1.0)
    with QuietLog():
        h.bootAll()
    stats = h.pool.statistics()
    assert (stats.completed, stats.failed, stats.queued) == (2, 1, 0)
    assert stats.longestQueueWait == pytest.approx(2.5)
    assert (stats.workers, stats.idle, stats.busy) == (1, 1, 0)


def test_callbackGetsFailureWithWorkerTraceback() -> None:
    """callInThreadWithCallback reports (False, Failure) with the raising frame, and (True, value)."""
    h = Harness(0, 1)
    h.pool.start()
    outcomes: list[tuple[bool, Any]] = []

    def broken() -> None:
        raise KeyError("nope")

    h.pool.callInThreadWithCallback(lambda ok, r: outcomes.append((ok, r)), broken)
    h.pool.callInThreadWithCallback(lambda ok, r: outcomes.append((ok, r)), lambda: 42)
    h.bootAll()
    (ok1, failure), (ok2, value) = outcomes
    assert ok1 is False and isinstance(failure, Failure) and failure.check(KeyError)
    assert "broken" in failure.getTraceback()
    assert (ok2, value) == (True, 42)


def test_discardedItemNeverRuns() -> None:
    """A queued call discarded before a worker reaches it never runs and counts as cancelled."""
    h = Harness(0, 1)
    h.pool.start()
    ran: list[int] = []
    h.pool.callInThread(ran.append, 1)
    h.pool.callInThread(ran.append, 2)
    second = h.team._queue[1]
    h.team.discard(second)
    assert h.pool.statistics().queued == 1
    h.bootAll()
    assert ran == [1]
    assert h.pool.statistics().cancelled == 1


def test_flaggedItemInLongQueueIsSkipped() -> None:
    """Past the scan limit a cancelled call stays queued but the worker skips it."""
    h = Harness(0, 1)
    h.pool.start()
    ran: list[int] = []
    for i in range(5000):
        h.pool.callInThread(ran.append, i)
    target = h.team._queue[10]
    h.team.discard(target)
    assert h.pool.statistics().queued == 5000
    h.bootAll()
    assert len(ran) == 4999 and 10 not in ran
    assert h.pool.statistics().cancelled == 1


def test_callsQueuedBeforeStartRunAfterStart() -> None:
    """A new pool queues calls; start() starts enough workers for them."""
    h = Harness(0, 3)
    ran: list[int] = []
    for i in range(2):
        h.pool.callInThread(ran.append, i)
    assert h.workers == [] and h.pool.state == "new"
    h.pool.start()
    assert len(h.workers) == 2
    h.bootAll()
    assert sorted(ran) == [0, 1]


def test_stopDrainsQueueThenWorkersExit() -> None:
    """beginStop: idle workers are woken, the queue is drained, every worker exits, then onStopped."""
    exits: list[str] = []
    h = Harness(2, 2, workerExit=lambda: exits.append("exit"))
    h.pool.start()
    h.bootAll()
    ran: list[int] = []
    h.pool.callInThread(ran.append, 1)  # wakes worker 2 (LIFO)
    h.pool.callInThread(ran.append, 2)  # wakes worker 1
    stopped: list[bool] = []
    h.pool.beginStop(lambda: stopped.append(True))
    assert h.pool.state == "stopping"
    with pytest.raises(RuntimeError, match="still stopping"):
        h.pool.start()
    first, second = h.workers
    assert h.woken(second) is Verdict.EXIT
    assert stopped == [] and exits == ["exit"]
    assert h.woken(first) is Verdict.EXIT
    assert ran == [1, 2]
    assert stopped == [True] and exits == ["exit", "exit"]
    assert h.pool.state == "stopped"
    assert h.team.takeExited() == [second, first]


def test_submitWhileStoppingWithLiveWorkerRuns() -> None:
    """During the drain a call still queues as long as a worker has not exited."""
    h = Harness(1, 1)
    h.pool.start()
    ran: list[int] = []
    h.pool.callInThread(ran.append, 1)
    h.pool.beginStop()
    h.pool.callInThread(ran.append, 2)
    h.bootAll()
    assert ran == [1, 2]
    assert h.pool.state == "stopped"
    with pytest.raises(ThreadPoolStopped):
        h.pool.callInThread(ran.append, 3)
    assert h.pool.statistics().rejected == 1


def test_restartAfterStop() -> None:
    """start() after a completed stop gives a working pool again."""
    h = Harness(1, 1)
    h.pool.start()
    h.bootAll()
    h.pool.beginStop()
    h.woken(h.workers[0])
    assert h.pool.state == "stopped"
    h.pool.start()
    assert h.pool.state == "running" and len(h.workers) == 2
    ran: list[int] = []
    h.pool.callInThread(ran.append, 7)
    h.bootAll()
    assert ran == [7]


def test_stoppingNewPoolAbandonsQueuedCalls() -> None:
    """Stopping a pool that never started reports its queued calls as not run."""
    h = Harness(0, 1)
    outcomes: list[tuple[bool, Any]] = []
    h.pool.callInThreadWithCallback(lambda ok, r: outcomes.append((ok, r)), lambda: 1)
    stopped: list[bool] = []
    h.pool.beginStop(lambda: stopped.append(True))
    assert stopped == [True]
    [(ok, failure)] = outcomes
    assert ok is False and failure.check(ThreadPoolStopped)


def test_cancelQueuedAbandonsWithCancelledError() -> None:
    """cancelQueued reports every waiting call with a CancelledError failure."""
    h = Harness(0, 1)
    h.pool.start()
    outcomes: list[tuple[bool, Any]] = []
    for _ in range(3):
        h.pool.callInThreadWithCallback(lambda ok, r: outcomes.append((ok, r)), lambda: 1)
    assert h.pool.cancelQueued() == 3
    assert [ok for ok, _ in outcomes] == [False] * 3
    assert all(f.check(CancelledError) for _, f in outcomes)
    assert h.pool.statistics().cancelled == 3


def test_adjustPoolsizeGrowsAndShrinks() -> None:
    """Raising minthreads starts workers; lowering maxthreads wakes idle ones so they exit."""
    h = Harness(0, 4)
    h.pool.start()
    h.pool.adjustPoolsize(minthreads=3)
    assert len(h.workers) == 3
    h.bootAll()
    h.pool.adjustPoolsize(minthreads=1, maxthreads=1)
    assert (h.pool.min, h.pool.max) == (1, 1)
    woken = [w for w in h.workers if w.wakes]
    assert len(woken) == 2
    assert [h.woken(w) for w in woken] == [Verdict.EXIT, Verdict.EXIT]
    assert h.pool.statistics().workers == 1


def test_zeroMaxthreadsQueuesWorkUntilAdjustPoolsizeRaisesIt() -> None:
    """With maxthreads=0 calls wait (no worker starts); raising the maximum runs them at once."""
    h = Harness(0, 0)
    h.pool.start()
    outcomes: list[object] = []
    h.pool.callInThreadWithCallback(lambda ok, r: outcomes.append(r), lambda: "ran")
    h.settle()
    assert h.workers == [] and h.pool.statistics().queued == 1 and outcomes == []
    h.pool.adjustPoolsize(maxthreads=1)
    assert len(h.workers) == 1
    h.settle()
    assert outcomes == ["ran"]
    h.pool.adjustPoolsize(maxthreads=0)
    h.settle()
    assert h.pool.statistics().workers == 0


def test_zeroMaxthreadsStopAbandonsQueuedWork() -> None:
    """Stopping a pool of maxthreads=0 fails its queued calls with ThreadPoolStopped; none is lost."""
    h = Harness(0, 0)
    h.pool.start()
    outcomes: list[Any] = []
    h.pool.callInThreadWithCallback(lambda ok, r: outcomes.append((ok, r)), lambda: "never")
    h.pool.beginStop()
    [(ok, failure)] = outcomes
    assert not ok and failure.check(ThreadPoolStopped)
    assert h.pool.state == "stopped"


def test_workerHooksRunAndFailuresAreLogged(caplog: pytest.LogCaptureFixture) -> None:
    """workerInit/workerExit run per worker; an exception in one is logged, not raised."""

    def init() -> None:
        raise RuntimeError("init broke")

    h = Harness(1, 1, idleTimeout=None, workerInit=init, workerExit=lambda: 1 / 0)
    h.pool.start()
    with caplog.at_level(logging.ERROR, logger="deferthreads"):
        h.bootAll()
        h.pool.beginStop()
        h.woken(h.workers[0])
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "workerInit" in messages and "workerExit" in messages
    assert h.pool.state == "stopped"


def test_exceptionInCallInThreadIsLogged(caplog: pytest.LogCaptureFixture) -> None:
    """An exception from a callInThread call is logged with its traceback."""
    h = Harness(0, 1)
    h.pool.start()

    def broken() -> None:
        raise ValueError("logged")

    h.pool.callInThread(broken)
    with caplog.at_level(logging.ERROR, logger="deferthreads"):
        h.bootAll()
    [record] = caplog.records
    assert record.exc_info is not None and record.exc_info[0] is ValueError


@pytest.mark.parametrize(
    ("args", "kw", "error", "argName"),
    [
        ((-1, 5), {}, ValueError, "minthreads"),
        ((0, -1), {}, ValueError, "maxthreads"),
        ((6, 5), {}, ValueError, "minthreads"),
        (("1", 5), {}, TypeError, "minthreads"),
        ((True, 5), {}, TypeError, "minthreads"),
        ((1, 5.0), {}, TypeError, "maxthreads"),
        ((1, 5, 3), {}, TypeError, "name"),
        ((1, 5), {"queueLimit": 0}, ValueError, "queueLimit"),
        ((1, 5), {"idleTimeout": -1}, ValueError, "idleTimeout"),
        ((1, 5), {"idleTimeout": float("nan")}, ValueError, "idleTimeout"),
        ((1, 5), {"workerInit": 3}, TypeError, "workerInit"),
        ((1, 5), {"workerExit": "x"}, TypeError, "workerExit"),
        ((1, 5), {"clock": object()}, TypeError, "clock"),
    ],
)
def test_constructorArgumentErrorsNameTheArgument(
    args: tuple[Any, ...], kw: dict[str, Any], error: type[Exception], argName: str
) -> None:
    """A bad constructor argument raises at once, naming it."""
    with pytest.raises(error, match=argName):
        ThreadPool(*args, **kw)


def test_methodArgumentErrorsNameTheArgument() -> None:
    """Bad arguments to the methods raise at the call, naming the argument."""
    pool = ThreadPool(0, 2, workerFactory=FakeWorker)
    with pytest.raises(TypeError, match="f must be callable"):
        pool.callInThread(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="onResult"):
        pool.callInThreadWithCallback(3, print)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="f must be callable"):
        pool.callInThreadWithCallback(None, None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="minthreads"):
        pool.adjustPoolsize(minthreads=3)
    with pytest.raises(ValueError, match="maxthreads"):
        pool.adjustPoolsize(maxthreads=-1)
    with pytest.raises(ValueError, match="timeout"):
        pool.stop(timeout=-1)
    assert pool.statistics().queued == 0


def test_reprSaysStateAtAGlance() -> None:
    """The repr names the pool, its state, its workers and its queue."""
    h = Harness(0, 2, queueLimit=10)
    h.pool.callInThread(lambda: None)
    text = repr(h.pool)
    assert "'fake'" in text and "new" in text and "queued=1" in text and "queueLimit=10" in text
    h.pool.start()
    assert "running workers=1" in repr(h.pool)


def test_statisticsIsFrozen() -> None:
    """statistics() returns an immutable snapshot."""
    stats = ThreadPool(workerFactory=FakeWorker).statistics()
    with pytest.raises(AttributeError):
        stats.queued = 3  # type: ignore[misc]


def test_workersAndPoolProvideTheirInterfaces() -> None:
    """FakeWorker and ThreadWorker provide IWorker; ThreadPool provides IThreadPool."""
    team = Team(FakeWorker, "t", 0, 1)
    assert verifyObject(IWorker, FakeWorker(team, "t-worker-1"))
    assert verifyObject(IWorker, ThreadWorker(team, "t-worker-2"))
    assert verifyObject(IThreadPool, ThreadPool(workerFactory=FakeWorker))


def test_defaultNameIsUnique() -> None:
    """Pools without a name get distinct default names."""
    first = ThreadPool(workerFactory=FakeWorker)._team.name
    second = ThreadPool(workerFactory=FakeWorker)._team.name
    assert first != second and first.startswith("threadpool-")


class QuietLog:
    def __enter__(self) -> None:
        self._level = logging.getLogger("deferthreads").level
        logging.getLogger("deferthreads").setLevel(logging.CRITICAL)

    def __exit__(self, *exc: object) -> None:
        logging.getLogger("deferthreads").setLevel(self._level)


_OPS = ["submit", "submit", "submit", "cancel", "advance", "wake", "timeout", "boot", "adjust", "handback"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(_OPS), st.integers(0, 7)), max_size=60))
def test_anyScheduleRunsEveryCallExactlyOnce(ops: list[tuple[str, int]]) -> None:
    """Any interleaving of submits, cancels, wakes, timeouts and resizes runs each call exactly once."""
    h = Harness(1, 3, idleTimeout=5.0)
    h.pool.start()
    ran: list[int] = []
    cancelled: set[int] = set()
    submitted = 0

    def submitOne() -> None:
        nonlocal submitted
        h.pool.callInThread(ran.append, submitted)
        submitted += 1

    for op, n in ops:
        parked = [w for w in h.workers if w.verdict is Verdict.PARKED]
        if op == "submit":
            submitOne()
        elif op == "handback":
            # A call whose result hand-back submits the next call (the call/await/call pattern).
            h.pool.callInThreadWithCallback(lambda ok, r: submitOne(), lambda: None)
        elif op == "cancel" and h.team._queue:
            item = h.team._queue[n % len(h.team._queue)]
            if item.args and not item.cancelled:
                h.team.discard(item)
                cancelled.add(item.args[0])
        elif op == "advance":
            h.clock.advance(n)
        elif op == "wake" and any(w.wakes for w in parked):
            h.woken([w for w in parked if w.wakes][n % len([w for w in parked if w.wakes])])
        elif op == "timeout" and parked:
            h.timedOut(parked[n % len(parked)])
        elif op == "boot":
            for worker in h.workers:
                if worker.verdict is None:
                    h.boot(worker)
                    break
        elif op == "adjust":
            low = n % 3
            h.pool.adjustPoolsize(minthreads=low, maxthreads=max(low, 1 + n % 4))
        stats = h.pool.statistics()
        assert stats.idle + stats.busy == stats.workers
        assert stats.idle == len([w for w in h.workers if w.verdict is Verdict.PARKED and not w.wakes])
    h.settle()
    assert not h.team._queue
    assert sorted(ran) == sorted(set(range(submitted)) - cancelled)
