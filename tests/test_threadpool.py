"""ThreadPool with real threads: every wait is bounded by an Event or a join timeout."""

from __future__ import annotations

import contextvars
import threading
from typing import Any

import pytest

from deferthreads import ThreadPool, ThreadPoolStopped
from reactor import CancelledError, Failure

WAIT = 10.0  # seconds; a bound for waits that normally take microseconds

requestId: contextvars.ContextVar[str] = contextvars.ContextVar("requestId", default="none")


def _poolThreads(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(f"{name}-worker-")]


@pytest.fixture
def pool() -> Any:
    p = ThreadPool(1, 3, "tp")
    p.start()
    yield p
    p.stop(timeout=WAIT)


def test_callInThreadRunsInANamedWorkerThread(pool: ThreadPool) -> None:
    """The call runs in a thread named {name}-worker-{n}."""
    seen: list[str] = []
    done = threading.Event()

    def record() -> None:
        seen.append(threading.current_thread().name)
        done.set()

    pool.callInThread(record)
    assert done.wait(WAIT)
    assert seen[0].startswith("tp-worker-")
    assert seen[0] != threading.current_thread().name


def test_callInThreadWithCallbackReportsInTheWorker(pool: ThreadPool) -> None:
    """onResult gets (True, value) or (False, Failure) in the worker thread that ran the call."""
    outcomes: list[tuple[bool, Any, str]] = []
    done = threading.Event()

    def onResult(ok: bool, result: Any) -> None:
        outcomes.append((ok, result, threading.current_thread().name))
        if len(outcomes) == 2:
            done.set()

    def broken() -> None:
        raise ZeroDivisionError("boom")

    pool.callInThreadWithCallback(onResult, lambda: 5)
    pool.callInThreadWithCallback(onResult, broken)
    assert done.wait(WAIT)
    byOk = {ok: (result, name) for ok, result, name in outcomes}
    assert byOk[True][0] == 5
    failure = byOk[False][0]
    assert isinstance(failure, Failure) and failure.check(ZeroDivisionError)
    assert "broken" in failure.getTraceback()
    assert all(name.startswith("tp-worker-") for _, _, name in outcomes)


def test_contextvarsAreCopiedIntoTheWorker(pool: ThreadPool) -> None:
    """The submitter's contextvars travel into the worker; the worker's changes do not leak back."""
    seen: list[str] = []
    done = threading.Event()

    def read() -> None:
        seen.append(requestId.get())
        requestId.set("changed-in-worker")
        done.set()

    token = requestId.set("req-42")
    try:
        pool.callInThread(read)
        assert done.wait(WAIT)
        assert seen == ["req-42"]
        assert requestId.get() == "req-42"
    finally:
        requestId.reset(token)


def test_stopFinishesRunningAndQueuedWorkAndJoinsEveryWorker() -> None:
    """stop(): the running call finishes, queued calls run, no worker thread is left."""
    p = ThreadPool(0, 2, "drain")
    p.start()
    release = threading.Event()
    started = threading.Event()
    ran: list[int] = []

    def blocker() -> None:
        started.set()
        release.wait(WAIT)
        ran.append(-1)

    p.callInThread(blocker)
    assert started.wait(WAIT)
    for i in range(50):
        p.callInThread(ran.append, i)
    stopper = threading.Thread(target=p.stop)
    stopper.start()
    release.set()
    stopper.join(WAIT)
    assert not stopper.is_alive()
    assert sorted(ran) == [-1, *range(50)]
    assert _poolThreads("drain") == []
    assert p.state == "stopped" and p.joined and not p.started
    with pytest.raises(ThreadPoolStopped):
        p.callInThread(ran.append, 99)


def test_stopTimeoutAbandonsCallsNotStarted() -> None:
    """stop(timeout): calls not started by then never run and are reported CancelledError."""
    p = ThreadPool(1, 1, "slow")
    p.start()
    release = threading.Event()
    started = threading.Event()
    outcomes: list[tuple[bool, Any]] = []

    def blocker() -> None:
        started.set()
        release.wait(WAIT)

    p.callInThread(blocker)
    assert started.wait(WAIT)
    p.callInThreadWithCallback(lambda ok, r: outcomes.append((ok, r)), lambda: "never")
    p.stop(timeout=0.05)
    [(ok, failure)] = outcomes
    assert ok is False and failure.check(CancelledError)
    release.set()
    for worker in p.liveWorkers():
        assert worker.join(WAIT)
    assert _poolThreads("slow") == []


def test_restartAfterStopRunsCallsAgain() -> None:
    """A stopped pool can be started again."""
    p = ThreadPool(1, 2, "again")
    for _ in range(2):
        p.start()
        done = threading.Event()
        p.callInThread(done.set)
        assert done.wait(WAIT)
        p.stop(timeout=WAIT)
        assert _poolThreads("again") == []


def test_workerHooksRunInsideEachWorkerThread() -> None:
    """workerInit and workerExit run in the worker's own thread, at start and at stop."""
    events: list[tuple[str, str]] = []
    lock = threading.Lock()

    def hook(kind: str) -> None:
        with lock:
            events.append((kind, threading.current_thread().name))

    p = ThreadPool(2, 2, "hooks", workerInit=lambda: hook("init"), workerExit=lambda: hook("exit"))
    p.start()
    p.stop(timeout=WAIT)
    inits = sorted(name for kind, name in events if kind == "init")
    exits = sorted(name for kind, name in events if kind == "exit")
    assert inits == exits == ["hooks-worker-1", "hooks-worker-2"]


def test_idleWorkerRetiresAndRunsExitHook() -> None:
    """A worker above minthreads retires after idleTimeout, running workerExit in its thread."""
    exited = threading.Event()
    names: list[str] = []

    def onExit() -> None:
        names.append(threading.current_thread().name)
        exited.set()

    p = ThreadPool(0, 1, "retire", idleTimeout=0.01, workerExit=onExit)
    p.start()
    done = threading.Event()
    p.callInThread(done.set)
    assert done.wait(WAIT)
    assert exited.wait(WAIT)
    assert names == ["retire-worker-1"]
    p.stop(timeout=WAIT)
    assert p.statistics().workers == 0


def test_manyCallsFromManyThreadsAllRun() -> None:
    """Concurrent submitters lose no call and the counters add up."""
    p = ThreadPool(0, 4, "many")
    p.start()
    count = 2000
    done = threading.Event()
    results: list[int] = []

    def work(i: int) -> None:
        results.append(i)
        if len(results) == 4 * count:
            done.set()

    def submitter(base: int) -> None:
        for i in range(count):
            p.callInThread(work, base + i)

    threads = [threading.Thread(target=submitter, args=(k * count,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
    assert done.wait(WAIT)
    p.stop(timeout=WAIT)
    assert sorted(results) == list(range(4 * count))
    stats = p.statistics()
    assert stats.completed == 4 * count and stats.failed == 0 and stats.queued == 0


def test_stopFromOneOfItsOwnWorkersRaisesInsteadOfDeadlocking() -> None:
    """stop() in a worker of the same pool raises RuntimeError (it would wait for itself)."""
    p = ThreadPool(1, 1, "selfstop")
    p.start()
    outcomes: list[tuple[bool, Any]] = []
    done = threading.Event()

    def onResult(ok: bool, result: Any) -> None:
        outcomes.append((ok, result))
        done.set()

    p.callInThreadWithCallback(onResult, p.stop)
    assert done.wait(WAIT)
    [(ok, failure)] = outcomes
    assert ok is False and failure.check(RuntimeError) and "beginStop" in failure.getErrorMessage()
    p.stop(timeout=WAIT)


def test_twistedLegacyAttributesThreadsWorkingWaitersQueue() -> None:
    """threads, working, waiters and q.qsize() report the pool's live threads, busy, idle and queued work."""
    p = ThreadPool(1, 1, "legacy")
    release = threading.Event()
    started = threading.Event()
    assert p.threads == [] and p.q.qsize() == 0

    def hold() -> None:
        started.set()
        release.wait(WAIT)

    p.start()
    try:
        p.callInThread(hold)
        assert started.wait(WAIT)
        p.callInThread(lambda: None)
        assert p.threads == _poolThreads("legacy")
        assert len(p.working) == 1 and p.waiters == [] and p.q.qsize() == 1
    finally:
        release.set()
        p.stop(timeout=WAIT)
    assert p.threads == [] and p.working == [] and p.q.qsize() == 0
