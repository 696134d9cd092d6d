"""The shared pool follows its reactor: started by run(), drained before run() returns, usable again
after a restart, and never a hang or a silent drop when it cannot run a call."""

from __future__ import annotations

import threading
from typing import Any

import pytest

import deferthreads
from deferthreads import (
    ThreadPoolStopped,
    callMultipleInThread,
    deferToThread,
    deferToThreadPool,
    getThreadPool,
    setShutdownTimeout,
    suggestThreadPoolSize,
)
from reactor import CancelledError, Failure, getReactor
from reactor._loop import Reactor
from tests.bridge_support import WAIT, runReactor, workerThreads


def test_sharedPoolStartsWhenTheReactorRuns() -> None:
    """Created before run(): new; running once the reactor runs; stopped when run() returns."""
    reactor = Reactor()
    pool = getThreadPool(reactor)
    assert pool.state == "new" and pool is getThreadPool(reactor)
    states: list[str] = []

    def main() -> None:
        states.append(pool.state)
        reactor.stop()

    runReactor(reactor, main)
    assert states == ["running"]
    assert pool.state == "stopped"
    assert workerThreads("reactor") == []


def test_firstUseWhileRunningStartsThePool() -> None:
    """A shared pool first asked for while the reactor runs starts at once."""
    reactor = Reactor()
    box: list[Any] = []

    def main() -> None:
        pool = getThreadPool(reactor)
        box.append(pool.state)
        d = deferToThreadPool(reactor, pool, lambda: 21 * 2)
        d.addCallback(box.append).addBoth(lambda _: reactor.stop())

    runReactor(reactor, main)
    assert box == ["running", 42]


def test_thousandQueuedCallsAllFireBeforeRunReturns() -> None:
    """1,000 calls queued, then stop(): every Deferred has fired when run() returns; no thread left."""
    reactor = Reactor()
    ds: list[Any] = []
    fired: list[int] = []

    def main() -> None:
        pool = getThreadPool(reactor)
        for i in range(1000):
            d = deferToThreadPool(reactor, pool, lambda i=i: i)
            d.addCallback(fired.append)
            ds.append(d)
        reactor.stop()

    runReactor(reactor, main)
    assert len(ds) == 1000 and all(d.called for d in ds)
    assert sorted(fired) == list(range(1000))
    assert workerThreads("reactor") == []


def test_shutdownTimeoutCancelsWorkThatHasNotStarted() -> None:
    """Past the shutdown timeout, queued calls errback CancelledError (never run) and run() returns."""
    reactor = Reactor()
    setShutdownTimeout(reactor, 0.05)
    suggestThreadPoolSize(reactor, 1)
    release = threading.Event()
    started = threading.Event()
    ran: list[int] = []
    outcomes: list[Any] = []

    def blocker() -> None:
        started.set()
        release.wait(WAIT)

    def main() -> None:
        pool = getThreadPool(reactor)
        stuck = deferToThreadPool(reactor, pool, blocker)
        assert started.wait(WAIT)
        for d in [stuck, *(deferToThreadPool(reactor, pool, ran.append, i) for i in range(5))]:
            d.addBoth(outcomes.append)
        reactor.stop()

    try:
        runReactor(reactor, main)
    finally:
        release.set()
    assert len(outcomes) == 6
    assert all(isinstance(o, Failure) and o.check(CancelledError) for o in outcomes)
    assert ran == []
    for worker in getThreadPool(reactor).liveWorkers():
        assert worker.join(WAIT)


def test_callAfterTheReactorStoppedErrbacksAtOnce() -> None:
    """Once the reactor has stopped, its pool refuses calls at once with a clear error."""
    reactor = Reactor()

    def main() -> None:
        getThreadPool(reactor)
        reactor.stop()

    runReactor(reactor, main)
    ran: list[int] = []
    d = deferToThreadPool(reactor, getThreadPool(reactor), ran.append, 1)
    box: list[Any] = []
    d.addErrback(box.append)
    [failure] = box
    assert failure.check(ThreadPoolStopped)
    assert "runs again" in failure.getErrorMessage()
    assert ran == []


def test_firstUseDuringShutdownRefusesAtOnce() -> None:
    """A pool first asked for during shutdown would never be drained: calls fail at once."""
    reactor = Reactor()
    box: list[Any] = []

    def duringShutdown() -> None:
        d = deferToThreadPool(reactor, getThreadPool(reactor), lambda: 1)
        d.addErrback(box.append)

    def main() -> None:
        reactor.addSystemEventTrigger("before", "shutdown", duringShutdown)
        reactor.stop()

    runReactor(reactor, main)
    [failure] = box
    assert failure.check(ThreadPoolStopped)


def test_deferToThreadAfterARunThatNeverUsedItErrbacksAtOnce(monkeypatch: pytest.MonkeyPatch) -> None:
    """A reactor ran and stopped without a shared pool: deferToThread then fails at once, as documented."""
    reactor = Reactor()
    monkeypatch.setattr(deferthreads._sharedpool, "_defaultReactor", lambda: reactor)
    runReactor(reactor, reactor.stop)
    ran: list[int] = []
    box: list[Any] = []
    deferToThread(ran.append, 1).addErrback(box.append)
    [failure] = box
    assert failure.check(ThreadPoolStopped)
    assert ran == [] and getThreadPool(reactor).state == "stopped"
    # The next run starts the pool again.
    result: list[Any] = []

    def main() -> None:
        deferToThread(lambda: "again").addCallback(result.append).addBoth(lambda _: reactor.stop())

    runReactor(reactor, main)
    assert result == ["again"]


def test_firstUseBeforeStartupOfALaterRunIsNotRefused() -> None:
    """A pool first asked for in a 'before startup' trigger of a second run waits for that run."""
    reactor = Reactor()
    runReactor(reactor, reactor.stop)
    box: list[Any] = []

    def beforeStartup() -> None:
        d = deferToThreadPool(reactor, getThreadPool(reactor), lambda: "second run")
        d.addBoth(box.append).addBoth(lambda _: reactor.stop())

    reactor.addSystemEventTrigger("before", "startup", beforeStartup)
    runReactor(reactor, lambda: None)
    assert box == ["second run"]


def test_suggestThreadPoolSizeZeroHoldsCallsUntilRaised() -> None:
    """With the shared pool's maximum at 0 a call waits; raising the maximum runs it."""
    reactor = Reactor()
    box: list[Any] = []

    def main() -> None:
        suggestThreadPoolSize(reactor, 0)
        d = deferToThreadPool(reactor, getThreadPool(reactor), lambda: "ran")
        d.addBoth(box.append).addBoth(lambda _: reactor.stop())
        stats = getThreadPool(reactor).statistics()
        box.append((stats.workers, stats.queued))
        suggestThreadPoolSize(reactor, 2)

    runReactor(reactor, main)
    assert box == [(0, 1), "ran"]


def test_callsQueuedBeforeTheFirstRunRunAtStartup() -> None:
    """Calls made before the reactor first runs wait for it, then run (as in Twisted)."""
    reactor = Reactor()
    box: list[Any] = []
    d = deferToThreadPool(reactor, getThreadPool(reactor), lambda: "queued early")
    d.addCallback(box.append).addBoth(lambda _: reactor.stop())
    runReactor(reactor, lambda: None)
    assert box == ["queued early"]


def test_aReactorRunAgainGetsAWorkingPoolAgain() -> None:
    """After stop() and run() again, the shared pool works again; each run drains it."""
    reactor = Reactor()
    for run in range(3):
        box: list[Any] = []

        def main(run: int = run, box: list[Any] = box) -> None:
            d = deferToThreadPool(reactor, getThreadPool(reactor), lambda: run)
            d.addCallback(box.append).addBoth(lambda _: reactor.stop())

        runReactor(reactor, main)
        assert box == [run]
        assert getThreadPool(reactor).state == "stopped"
        assert workerThreads("reactor") == []


def test_deferToThreadUsesTheDefaultReactor() -> None:
    """deferToThread runs on getReactor()'s shared pool; user kwargs named f are passed through."""
    reactor = getReactor()
    box: list[Any] = []

    def work(**kw: Any) -> dict[str, Any]:
        return {**kw, "thread": threading.current_thread().name}

    def main() -> None:
        d = deferToThread(work, f=1)
        d.addCallback(box.append).addBoth(lambda _: reactor.stop())

    runReactor(reactor, main)
    [result] = box
    assert result["f"] == 1 and result["thread"].startswith("reactor-worker-")
    assert getThreadPool() is getThreadPool(reactor)
    with pytest.raises(TypeError, match="f must be callable"):
        deferToThread(None)  # type: ignore[arg-type]


def test_suggestThreadPoolSizeSetsTheMaximum() -> None:
    """suggestThreadPoolSize(reactor, n) is the shared pool's maxthreads."""
    reactor = Reactor()
    suggestThreadPoolSize(reactor, 3)
    assert getThreadPool(reactor).max == 3
    suggestThreadPoolSize(reactor, 0)
    assert getThreadPool(reactor).max == 0
    with pytest.raises(ValueError, match="maxthreads"):
        suggestThreadPoolSize(reactor, -1)
    with pytest.raises(ValueError, match="timeout"):
        setShutdownTimeout(reactor, 0)


def test_callMultipleInThreadRunsInOrderInOneThread() -> None:
    """callMultipleInThread runs every (f, args, kwargs) in order, in one worker thread."""
    reactor = getReactor()
    seen: list[tuple[str, str]] = []
    done = threading.Event()

    def note(label: str, *, end: bool = False) -> None:
        seen.append((label, threading.current_thread().name))
        if end:
            done.set()

    def main() -> None:
        callMultipleInThread([(note, ("a",), {}), (note, ["b"], {}), (note, ("c",), {"end": True})])
        threading.Thread(target=lambda: (done.wait(WAIT), reactor.callFromThread(reactor.stop))).start()

    runReactor(reactor, main)
    assert [label for label, _ in seen] == ["a", "b", "c"]
    assert len({name for _, name in seen}) == 1


@pytest.mark.parametrize(
    ("tuples", "match"),
    [
        ([print], r"tuples\[0\] must be an \(f, args, kwargs\)"),
        ([(1, (), {})], r"tuples\[0\]\[0\] must be callable"),
        ([(print, 1, {})], r"tuples\[0\]\[1\] \(args\)"),
        ([(print, (), [])], r"tuples\[0\]\[2\] \(kwargs\)"),
    ],
)
def test_callMultipleInThreadChecksTuplesAtTheCall(tuples: Any, match: str) -> None:
    """A malformed tuple raises TypeError at the call, naming its position."""
    with pytest.raises(TypeError, match=match):
        callMultipleInThread(tuples)


def test_publicNamesAreExported() -> None:
    """The package re-exports its public API with an explicit __all__."""
    for name in deferthreads.__all__:
        assert hasattr(deferthreads, name), name
    assert {"ThreadPool", "deferToThread", "deferToThreadPool", "blockingCallFromThread"} <= set(
        deferthreads.__all__
    )


def test_callsChainedDuringTheDrainStillFireBeforeRunReturns() -> None:
    """A callback of a drained result that starts another call gets an outcome before run() returns."""
    reactor = Reactor()
    outcomes: list[Any] = []

    def chain(value: int) -> None:
        if value < 50:
            d = deferToThreadPool(reactor, getThreadPool(reactor), lambda: value + 1)
            d.addCallback(chain)
            d.addErrback(lambda f: outcomes.append(f.trap(ThreadPoolStopped)))
        else:
            outcomes.append(value)

    def main() -> None:
        for _ in range(5):
            d = deferToThreadPool(reactor, getThreadPool(reactor), lambda: 0)
            d.addCallback(chain)
        reactor.stop()

    runReactor(reactor, main)
    # Each chain either ran to the end or was refused once the pool had stopped: never left pending.
    assert len(outcomes) == 5
    assert all(o == 50 or o is ThreadPoolStopped for o in outcomes)
    assert workerThreads("reactor") == []


def test_deferToThreadOutsideTheReactorThreadRaises() -> None:
    """deferToThread from another thread while the reactor runs raises ReactorThreadError."""
    reactor = getReactor()
    box: list[Any] = []

    def fromWorker() -> None:
        try:
            deferToThread(len, "x")
        except deferthreads.ReactorThreadError as e:
            box.append(e)

    def main() -> None:
        d = deferToThreadPool(reactor, getThreadPool(reactor), fromWorker)
        d.addBoth(lambda _: reactor.stop())

    runReactor(reactor, main)
    assert len(box) == 1 and "blockingCallFromThread" in str(box[0])
