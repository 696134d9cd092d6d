"""deferToThreadPool: results come home to the reactor thread, failures keep their traceback,
cancellation keeps queued calls from running, results are handed back in batches.

The ``async def`` tests run on a fresh reactor (the default, ``getReactor()``) that the project's
pytest plugin (pytest_deferthreads) runs until the test's coroutine is done."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from deferthreads import QueueFull, ThreadPool, ThreadPoolStopped, deferToThreadPool, drainThreadPool
from reactor import CancelledError, Deferred, Failure, gatherResults, getReactor
from reactor._loop import Reactor
from tests.bridge_support import WAIT, RecordingReactor, workerThreads

requestId: contextvars.ContextVar[str] = contextvars.ContextVar("bridgeRequestId", default="none")


@pytest.fixture
def pool() -> Iterator[ThreadPool]:
    p = ThreadPool(1, 1, "bridge")
    p.start()
    yield p
    p.stop(timeout=WAIT)


def _outcome(d: Deferred[Any]) -> list[Any]:
    box: list[Any] = []
    d.addBoth(box.append)
    return box


async def test_resultFiresInReactorThread(pool: ThreadPool) -> None:
    """The call runs in a worker; its Deferred fires in the reactor thread with the return value."""
    reactor = getReactor()

    def work(a: int, b: int) -> tuple[int, str]:
        return a + b, threading.current_thread().name

    d = deferToThreadPool(reactor, pool, work, 2, b=3)
    inReactor: list[bool] = []
    d.addCallback(lambda result: (inReactor.append(reactor.isReactorThread()), result)[1])
    assert await d == (5, "bridge-worker-1")
    assert inReactor == [True]


async def test_failureCarriesTheWorkersTraceback(pool: ThreadPool) -> None:
    """An exception in the worker arrives as a Failure whose traceback shows the worker's frames."""

    def deepInTheWorker() -> None:
        raise LookupError("not found in the thread")

    box: list[Failure] = []
    await deferToThreadPool(getReactor(), pool, deepInTheWorker).addErrback(box.append)
    [failure] = box
    assert isinstance(failure, Failure) and failure.check(LookupError)
    assert "deepInTheWorker" in failure.getTraceback()
    assert failure.getErrorMessage() == "not found in the thread"


async def test_contextvarsTravelIntoTheWorker(pool: ThreadPool) -> None:
    """The caller's contextvars are visible in the worker."""
    requestId.set("r-7")
    assert await deferToThreadPool(getReactor(), pool, requestId.get) == "r-7"


async def test_userKeywordsNamedLikeOurParametersReachTheFunction(pool: ThreadPool) -> None:
    """reactor=, threadpool= and f= keywords go to the function, not to us."""

    def work(**kw: Any) -> dict[str, Any]:
        return kw

    result = await deferToThreadPool(getReactor(), pool, work, reactor=1, threadpool=2, f=3)
    assert result == {"reactor": 1, "threadpool": 2, "f": 3}


def test_cancellingAQueuedCallRemovesItAndItNeverRuns(pool: ThreadPool) -> None:
    """With the one worker blocked, a cancelled queued call leaves the queue and never runs."""
    reactor = RecordingReactor()
    release = threading.Event()
    started = threading.Event()
    ran: list[str] = []

    def blocker() -> str:
        started.set()
        release.wait(WAIT)
        return "blocker"

    first = deferToThreadPool(reactor, pool, blocker)
    assert started.wait(WAIT)
    second = deferToThreadPool(reactor, pool, ran.append, "second")
    third = deferToThreadPool(reactor, pool, ran.append, "third")
    assert pool.statistics().queued == 2
    secondOutcome = _outcome(second)
    second.cancel()
    assert isinstance(secondOutcome[0], Failure) and secondOutcome[0].check(CancelledError)
    assert pool.statistics().queued == 1
    done = threading.Event()
    pool.callInThread(done.set)
    release.set()
    assert done.wait(WAIT)
    reactor.runCalls()
    assert ran == ["third"]
    assert _outcome(first) == ["blocker"] and third.called
    assert pool.statistics().cancelled == 1


def test_cancellingARunningCallErrbacksAtOnceAndDropsTheLateResult(pool: ThreadPool) -> None:
    """Cancel while running: CancelledError now; the thread runs on and its result is discarded."""
    reactor = RecordingReactor()
    release = threading.Event()
    started = threading.Event()
    finished = threading.Event()

    def slow() -> str:
        started.set()
        release.wait(WAIT)
        finished.set()
        return "late"

    d = deferToThreadPool(reactor, pool, slow)
    assert started.wait(WAIT)
    outcome = _outcome(d)
    d.cancel()
    assert len(outcome) == 1 and outcome[0].check(CancelledError)
    release.set()
    assert finished.wait(WAIT)
    done = threading.Event()
    pool.callInThread(done.set)
    assert done.wait(WAIT)
    reactor.runCalls()  # delivers "late": dropped, no AlreadyCalledError
    assert len(outcome) == 1


def test_manyResultsOneWakeUp(pool: ThreadPool) -> None:
    """Results finished while the reactor is busy come home through one callFromThread."""
    reactor = RecordingReactor()
    release = threading.Event()
    pool.callInThread(release.wait, WAIT)
    ds = [deferToThreadPool(reactor, pool, lambda i=i: i) for i in range(200)]
    done = threading.Event()
    pool.callInThread(done.set)
    release.set()
    assert done.wait(WAIT)
    assert len(reactor.calls) == 1
    assert reactor.runCalls() == 1
    assert [d.result for d in ds] == list(range(200))
    for d in ds:
        d.addErrback(lambda f: None)


def test_queueLimitErrbacksAtOnce() -> None:
    """Past the queue bound the Deferred has already failed with QueueFull."""
    p = ThreadPool(1, 1, "bounded", queueLimit=1)
    p.start()
    release = threading.Event()
    started = threading.Event()
    reactor = RecordingReactor()
    p.callInThread(lambda: (started.set(), release.wait(WAIT)))
    assert started.wait(WAIT)
    queued = deferToThreadPool(reactor, p, lambda: 1)
    refused = deferToThreadPool(reactor, p, lambda: 2)
    [failure] = _outcome(refused)
    assert failure.check(QueueFull) and "queueLimit=1" in failure.getErrorMessage()
    release.set()
    p.stop(timeout=WAIT)
    reactor.runCalls()
    assert _outcome(queued) == [1]


def test_stoppedPoolErrbacksAtOnce() -> None:
    """A stopped pool makes the Deferred fail at once with ThreadPoolStopped; the call never runs."""
    p = ThreadPool(1, 1, "gone")
    p.start()
    p.stop(timeout=WAIT)
    ran: list[int] = []
    [failure] = _outcome(deferToThreadPool(RecordingReactor(), p, ran.append, 1))
    assert failure.check(ThreadPoolStopped)
    assert ran == []


def test_aDeferredReturnedByTheThreadedFunctionIsAnError(pool: ThreadPool) -> None:
    """A function returning a Deferred gives an errback (a thread cannot hand one over), no crash."""
    reactor = RecordingReactor()
    d = deferToThreadPool(reactor, pool, Deferred)
    done = threading.Event()
    pool.callInThread(done.set)
    assert done.wait(WAIT)
    reactor.runCalls()
    [failure] = _outcome(d)
    assert failure.check(TypeError)


def test_argumentErrorsRaiseAtTheCall(pool: ThreadPool) -> None:
    """A non-callable f or a non-pool raises TypeError at once, naming it."""
    reactor = RecordingReactor()
    with pytest.raises(TypeError, match="f must be callable"):
        deferToThreadPool(reactor, pool, 42)  # type: ignore[call-overload, arg-type]
    with pytest.raises(TypeError, match="threadpool"):
        deferToThreadPool(reactor, object(), print)  # type: ignore[arg-type]


def test_anyPoolWithCallInThreadWithCallbackWorks() -> None:
    """A foreign pool (Twisted's API) is used through callInThreadWithCallback."""

    class InlinePool:
        def callInThreadWithCallback(self, onResult: Any, f: Any, *a: Any, **kw: Any) -> None:
            try:
                onResult(True, f(*a, **kw))
            except Exception:
                onResult(False, Failure())

    reactor = RecordingReactor()
    ok = deferToThreadPool(reactor, InlinePool(), lambda: "fine")  # type: ignore[arg-type]
    bad = deferToThreadPool(reactor, InlinePool(), lambda: 1 / 0)  # type: ignore[arg-type]
    reactor.runCalls()
    assert _outcome(ok) == ["fine"]
    assert _outcome(bad)[0].check(ZeroDivisionError)


async def test_drainThreadPoolFiresAfterEveryResult() -> None:
    """drainThreadPool: queued calls run, their Deferreds fire first, then the drain's; no thread left."""
    reactor = getReactor()
    p = ThreadPool(0, 3, "drained")
    p.start()
    order: list[str] = []
    ds = [deferToThreadPool(reactor, p, lambda: None) for _ in range(300)]
    gatherResults(ds).addCallback(lambda _: order.append("results"))
    await drainThreadPool(reactor, p, timeout=WAIT).addCallback(lambda _: order.append("drained"))
    assert order == ["results", "drained"]
    assert p.state == "stopped" and workerThreads("drained") == []


async def test_drainThreadPoolTimeoutCancelsWhatIsLeft() -> None:
    """After the drain timeout, calls not started errback CancelledError and the running one's too."""
    reactor = getReactor()
    p = ThreadPool(1, 1, "stuck")
    p.start()
    release = threading.Event()
    started = threading.Event()
    outcomes: list[Any] = []
    ran: list[int] = []

    def blocker() -> None:
        started.set()
        release.wait(WAIT)

    running = deferToThreadPool(reactor, p, blocker)
    assert started.wait(WAIT)
    queued = [deferToThreadPool(reactor, p, ran.append, i) for i in range(3)]
    for d in (running, *queued):
        d.addBoth(outcomes.append)
    await drainThreadPool(reactor, p, timeout=0.05)
    assert len(outcomes) == 4
    assert all(isinstance(o, Failure) and o.check(CancelledError) for o in outcomes)
    release.set()
    for worker in p.liveWorkers():
        assert worker.join(WAIT)
    assert ran == []


def test_drainThreadPoolArgumentErrors() -> None:
    """drainThreadPool checks its arguments at the call."""
    with pytest.raises(TypeError, match="threadpool"):
        drainThreadPool(Reactor(), object(), 1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout"):
        drainThreadPool(Reactor(), ThreadPool(), -1.0)
