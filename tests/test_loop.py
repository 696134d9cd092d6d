"""Tests for reactor._loop.Reactor: lifecycle, timed calls on the real loop, error logging."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest

from reactor import Reactor, ReactorAlreadyRunning, ReactorNotRunning, getReactor
from tests.loopsupport import REACTOR_KINDS, makeReactor, recordThenStop, requireOwnLoop, runBounded


@pytest.fixture(params=REACTOR_KINDS)
def reactor(request: pytest.FixtureRequest) -> Iterator[Reactor]:
    r = makeReactor(request.param)
    yield r
    r.close()


def test_runStopFiresStartupAndShutdownInOrder(reactor: Reactor) -> None:
    """run() fires startup (before, during, after); stop() fires shutdown and run() returns."""
    out: list[str] = []
    for event in ("startup", "shutdown"):
        for phase in ("after", "during", "before"):
            reactor.addSystemEventTrigger(phase, event, out.append, f"{phase} {event}")
    reactor.callWhenRunning(reactor.stop)
    runBounded(reactor)
    assert out == [
        "before startup",
        "during startup",
        "after startup",
        "before shutdown",
        "during shutdown",
        "after shutdown",
    ]
    assert not reactor.running


def test_runningFlagFollowsTwistedPhases(reactor: Reactor) -> None:
    """running is False before startup 'during', True in 'before shutdown', False in 'during shutdown'."""
    seen: dict[str, bool] = {}

    def record(name: str) -> None:
        seen[name] = reactor.running

    reactor.addSystemEventTrigger("before", "startup", record, "beforeStartup")
    reactor.addSystemEventTrigger("after", "startup", record, "afterStartup")
    reactor.addSystemEventTrigger("before", "shutdown", record, "beforeShutdown")
    reactor.addSystemEventTrigger("during", "shutdown", record, "duringShutdown")
    reactor.addSystemEventTrigger("after", "shutdown", record, "afterShutdown")
    reactor.callWhenRunning(reactor.stop)
    runBounded(reactor)
    assert seen == {
        "beforeStartup": False,
        "afterStartup": True,
        "beforeShutdown": True,
        "duringShutdown": False,
        "afterShutdown": False,
    }


def test_stoppingIsTrueFromStopUntilRunReturns(reactor: Reactor) -> None:
    """stopping is False while running, True after stop() and in every shutdown phase, False after run()."""
    seen: list[bool] = []
    reactor.callWhenRunning(lambda: seen.append(reactor.stopping))
    reactor.callWhenRunning(reactor.stop)
    reactor.addSystemEventTrigger("before", "shutdown", lambda: seen.append(reactor.stopping))
    reactor.addSystemEventTrigger("after", "shutdown", lambda: seen.append(reactor.stopping))
    runBounded(reactor)
    assert seen == [False, True, True]
    assert not reactor.stopping


def test_reactorRunsAgainAfterStop(reactor: Reactor) -> None:
    """run() -> stop() -> run() works and fires a second startup."""
    starts: list[int] = []
    for i in range(3):
        reactor.addSystemEventTrigger("during", "startup", starts.append, i)
        reactor.callWhenRunning(reactor.stop)
        runBounded(reactor)
    assert starts == [0, 1, 2]


def test_stopWhenNotRunningRaises(reactor: Reactor) -> None:
    """stop() on a reactor that is not running raises ReactorNotRunning."""
    with pytest.raises(ReactorNotRunning):
        reactor.stop()


def test_secondStopRaises(reactor: Reactor) -> None:
    """A second stop() while stopping raises ReactorNotRunning."""
    errors: list[BaseException] = []

    def stopTwice() -> None:
        reactor.stop()
        try:
            reactor.stop()
        except ReactorNotRunning as e:
            errors.append(e)

    reactor.callWhenRunning(stopTwice)
    runBounded(reactor)
    assert len(errors) == 1


def test_runWhileRunningRaises(reactor: Reactor) -> None:
    """run() inside run() raises ReactorAlreadyRunning."""
    errors: list[BaseException] = []

    def nested() -> None:
        try:
            reactor.run()
        except ReactorAlreadyRunning as e:
            errors.append(e)
        reactor.stop()

    reactor.callWhenRunning(nested)
    runBounded(reactor)
    assert len(errors) == 1


def test_crashLeavesWithoutShutdown(reactor: Reactor) -> None:
    """crash() leaves run() without firing shutdown triggers; they fire at the next stop."""
    out: list[str] = []
    reactor.addSystemEventTrigger("before", "shutdown", out.append, "shutdown")
    reactor.callWhenRunning(reactor.crash)
    runBounded(reactor)
    assert out == []
    assert not reactor.running
    reactor.callWhenRunning(reactor.stop)
    runBounded(reactor)
    assert out == ["shutdown"]


def test_callWhenRunningRunsNowWhenRunning(reactor: Reactor) -> None:
    """callWhenRunning on a running reactor calls at once and returns None."""
    out: list[object] = []

    def inside() -> None:
        out.append(reactor.callWhenRunning(out.append, "now"))
        reactor.stop()

    trigger = reactor.callWhenRunning(inside)
    assert trigger is not None
    runBounded(reactor)
    assert out == ["now", None]


def test_callWhenRunningCanBeRemoved(reactor: Reactor) -> None:
    """The ID callWhenRunning returns removes the pending call."""
    out: list[str] = []
    trigger = reactor.callWhenRunning(out.append, "no")
    reactor.removeSystemEventTrigger(trigger)
    reactor.callWhenRunning(reactor.stop)
    runBounded(reactor)
    assert out == []


def test_callLaterRunsInOrderOnRealLoop(reactor: Reactor) -> None:
    """Timed calls run in time order, then FIFO, on the real loop."""
    out: list[int] = []
    reactor.callLater(0.02, out.append, 3)
    reactor.callLater(0.01, out.append, 1)
    reactor.callLater(0.01, out.append, 2)
    reactor.callLater(0.03, reactor.stop)
    runBounded(reactor)
    assert out == [1, 2, 3]


def test_callLaterWaitsAtLeastItsDelay(reactor: Reactor) -> None:
    """A timed call does not run before its time on the monotonic clock."""
    times: list[float] = []
    start = reactor.seconds()
    reactor.callLater(0.05, recordThenStop, reactor, times, reactor.seconds)
    runBounded(reactor)
    assert times[0] - start >= 0.05


def test_cancelResetDelayOnRealLoop(reactor: Reactor) -> None:
    """Cancelled calls do not run; reset/delay move calls on the real loop."""
    out: list[str] = []
    reactor.callLater(0.01, out.append, "cancelled").cancel()
    moved = reactor.callLater(0.001, out.append, "reset")
    moved.reset(0.03)
    delayed = reactor.callLater(0.001, out.append, "delayed")
    delayed.delay(0.01)
    reactor.callLater(0.02, out.append, "mid")
    reactor.callLater(0.04, reactor.stop)
    runBounded(reactor)
    assert out == ["delayed", "mid", "reset"]


def test_callLaterZeroFromCallRunsNextIteration(reactor: Reactor) -> None:
    """A callLater(0) chain yields to I/O each time instead of running forever in one pass."""
    count = [0]

    def again() -> None:
        count[0] += 1
        if count[0] < 1000:
            reactor.callLater(0, again)
        else:
            reactor.stop()

    reactor.callLater(0, again)
    runBounded(reactor)
    assert count[0] == 1000


def test_callLaterBadArguments(reactor: Reactor) -> None:
    """callLater rejects a negative, infinite or non-numeric delay and a non-callable, naming them."""
    with pytest.raises(ValueError, match="delay"):
        reactor.callLater(-1, print)
    with pytest.raises(ValueError, match="delay"):
        reactor.callLater(float("nan"), print)
    with pytest.raises(ValueError, match="delay must be a finite"):
        reactor.callLater(float("inf"), print)  # it could never run, and no poll timeout is infinite
    with pytest.raises(TypeError, match="delay"):
        reactor.callLater("1", print)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="callable"):
        reactor.callLater(1, "print")  # type: ignore[arg-type]


def test_getDelayedCalls(reactor: Reactor) -> None:
    """getDelayedCalls lists the pending calls."""
    a = reactor.callLater(10, print)
    b = reactor.callLater(5, print)
    assert reactor.getDelayedCalls() == [b, a]
    a.cancel()
    b.cancel()
    assert reactor.getDelayedCalls() == []


def test_secondsIsMonotonic(reactor: Reactor) -> None:
    """seconds() is the monotonic clock."""
    before = time.monotonic()
    now = reactor.seconds()
    assert before <= now <= time.monotonic()


def test_timedCallExceptionIsLoggedAndLoopContinues(
    reactor: Reactor, caplog: pytest.LogCaptureFixture
) -> None:
    """An exception in a timed call is logged with its traceback and later calls still run."""
    out: list[str] = []

    def boom() -> None:
        raise ZeroDivisionError("timed boom")

    reactor.callLater(0, boom)
    reactor.callLater(0.001, out.append, "after")
    reactor.callLater(0.002, reactor.stop)
    with caplog.at_level(logging.ERROR, logger="reactor"):
        runBounded(reactor)
    assert out == ["after"]
    records = [r for r in caplog.records if r.exc_info and r.exc_info[0] is ZeroDivisionError]
    assert len(records) == 1
    assert "timed boom" in caplog.text and "Traceback" in caplog.text


def test_iterateRunsDueCalls(reactor: Reactor) -> None:
    """iterate() runs due calls and thread calls without run()."""
    out: list[str] = []
    reactor.callLater(0, out.append, "timed")
    reactor.callFromThread(out.append, "thread")
    reactor.iterate()
    assert out == ["thread", "timed"]


def test_getReactorIsLazySingleton() -> None:
    """getReactor returns one Reactor, the same every time."""
    first = getReactor()
    assert isinstance(first, Reactor)
    assert getReactor() is first


def test_isReactorThread(reactor: Reactor) -> None:
    """isReactorThread is True only inside run(), in the running thread."""
    seen: list[bool] = []
    assert not reactor.isReactorThread()
    reactor.callWhenRunning(recordThenStop, reactor, seen, reactor.isReactorThread)
    runBounded(reactor)
    assert seen == [True]
    assert not reactor.isReactorThread()


def test_reprSaysState(reactor: Reactor) -> None:
    """The repr says whether the reactor runs and what it holds."""
    assert "idle" in repr(reactor)
    seen: list[str] = []
    reactor.callWhenRunning(recordThenStop, reactor, seen, lambda: repr(reactor))
    runBounded(reactor)
    assert "running" in seen[0]


class _FailingPoller:
    """A poller stand-in whose poll() raises the first ``failures`` times (forever if None)."""

    def __init__(self, real: Any, failures: int | None) -> None:
        self._real = real
        self.failures = failures
        self.calls = 0

    def poll(self, timeout: float) -> list[tuple[int, int]]:
        self.calls += 1
        if self.failures is None or self.calls <= self.failures:
            raise OSError("poller broken")
        result: list[tuple[int, int]] = self._real.poll(timeout)
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


@pytest.mark.timeout(30)
def test_persistentLoopFailureCrashesAndReraises(
    reactor: Reactor, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A loop failing every iteration crashes at maxLoopFailures: run() re-raises; logging is rate-limited."""
    requireOwnLoop(reactor, "poller failure handling")
    poller = _FailingPoller(reactor._poller, None)
    monkeypatch.setattr(reactor, "_poller", poller)
    monkeypatch.setattr(reactor, "maxLoopFailures", 20)
    shutdown: list[str] = []
    reactor.addSystemEventTrigger("before", "shutdown", shutdown.append, "shutdown")
    with caplog.at_level(logging.DEBUG, logger="reactor.loop"), pytest.raises(OSError, match="poller broken"):
        reactor.run(installSignalHandlers=False)
    assert poller.calls == 20
    assert not reactor.running
    assert shutdown == []
    records = [r for r in caplog.records if r.name == "reactor.loop"]
    withTraceback = [r for r in records if r.exc_info and r.levelno == logging.ERROR]
    critical = [r for r in records if r.levelno == logging.CRITICAL]
    assert len(withTraceback) == 3
    assert len(critical) == 1
    assert len(records) == 5  # 3 tracebacks, one "logging no more", one critical


@pytest.mark.timeout(30)
def test_transientLoopFailuresResetTheCount(
    reactor: Reactor, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Failures followed by a successful iteration do not crash the reactor; it keeps running."""
    requireOwnLoop(reactor, "poller failure handling")
    poller = _FailingPoller(reactor._poller, 5)
    monkeypatch.setattr(reactor, "_poller", poller)
    monkeypatch.setattr(reactor, "maxLoopFailures", 6)
    out: list[int] = []

    def stopOncePolledPast(limit: int) -> None:
        # Runs once per iteration; stops once a poll succeeded after the failures.
        if poller.calls > limit + 1:
            recordThenStop(reactor, out, lambda: poller.calls)
        else:
            reactor.callLater(0, stopOncePolledPast, limit)

    reactor.callWhenRunning(stopOncePolledPast, 5)
    with caplog.at_level(logging.DEBUG, logger="reactor.loop"):
        runBounded(reactor)
    assert out and out[0] > 6
    # The loop recovered: a later failure starts a new count and logs its traceback again.
    poller.failures = poller.calls + 5
    out.clear()
    reactor.callWhenRunning(stopOncePolledPast, poller.failures)
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="reactor.loop"):
        runBounded(reactor)
    assert out
    assert len([r for r in caplog.records if r.levelno == logging.CRITICAL]) == 0
    assert len([r for r in caplog.records if r.exc_info]) == 3
