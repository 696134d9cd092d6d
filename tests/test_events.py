"""Tests for system event triggers (reactor._events via Reactor): phases, Deferreds, removal."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import pytest

from reactor import Deferred, Reactor
from tests.loopsupport import recordThenStop, runBounded


@pytest.fixture
def reactor() -> Iterator[Reactor]:
    r = Reactor()
    yield r
    r.close()


def test_customEventFiresPhasesInOrder(reactor: Reactor) -> None:
    """fireSystemEvent runs before, during, after triggers of a custom event, with their arguments."""
    out: list[object] = []
    reactor.addSystemEventTrigger("after", "custom", out.append, "after")
    reactor.addSystemEventTrigger("during", "custom", lambda x, y=0: out.append((x, y)), 1, y=2)
    reactor.addSystemEventTrigger("before", "custom", out.append, "before")
    reactor.fireSystemEvent("custom")
    assert out == ["before", (1, 2), "after"]


def test_triggersAreConsumedByAFiring(reactor: Reactor) -> None:
    """A firing consumes its triggers: firing again runs nothing."""
    out: list[str] = []
    reactor.addSystemEventTrigger("during", "custom", out.append, "x")
    reactor.fireSystemEvent("custom")
    reactor.fireSystemEvent("custom")
    assert out == ["x"]


def test_triggerAddedDuringItsPhaseRunsInSameFiring(reactor: Reactor) -> None:
    """A trigger added to the phase being fired runs in that same firing."""
    out: list[str] = []

    def addMore() -> None:
        out.append("first")
        reactor.addSystemEventTrigger("during", "custom", out.append, "added")

    reactor.addSystemEventTrigger("during", "custom", addMore)
    reactor.fireSystemEvent("custom")
    assert out == ["first", "added"]


def test_removeSystemEventTrigger(reactor: Reactor) -> None:
    """A removed trigger does not run; removing it again raises ValueError."""
    out: list[str] = []
    tid = reactor.addSystemEventTrigger("before", "custom", out.append, "removed")
    reactor.addSystemEventTrigger("before", "custom", out.append, "kept")
    reactor.removeSystemEventTrigger(tid)
    with pytest.raises(ValueError):
        reactor.removeSystemEventTrigger(tid)
    reactor.fireSystemEvent("custom")
    assert out == ["kept"]


def test_removeFiredTriggerRaises(reactor: Reactor) -> None:
    """Removing a trigger that already fired raises ValueError; so does a bogus ID."""
    tid = reactor.addSystemEventTrigger("during", "custom", lambda: None)
    reactor.fireSystemEvent("custom")
    with pytest.raises(ValueError):
        reactor.removeSystemEventTrigger(tid)
    with pytest.raises(ValueError):
        reactor.removeSystemEventTrigger(("during", "custom"))


def test_badPhaseRaisesValueErrorNamingIt(reactor: Reactor) -> None:
    """An unknown phase raises ValueError whose message names the bad phase."""
    with pytest.raises(ValueError, match="'sometime'"):
        reactor.addSystemEventTrigger("sometime", "startup", print)


def test_badTriggerArgumentsRaiseTypeError(reactor: Reactor) -> None:
    """A non-str event type or a non-callable raise TypeError at the call."""
    with pytest.raises(TypeError, match="eventType"):
        reactor.addSystemEventTrigger("before", 3, print)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="callable"):
        reactor.addSystemEventTrigger("before", "custom", None)  # type: ignore[arg-type]


def test_triggerExceptionIsLoggedAndFiringContinues(
    reactor: Reactor, caplog: pytest.LogCaptureFixture
) -> None:
    """An exception in a trigger is logged with its traceback; the other triggers still run."""
    out: list[str] = []

    def boom() -> None:
        raise KeyError("trigger boom")

    reactor.addSystemEventTrigger("before", "custom", boom)
    reactor.addSystemEventTrigger("during", "custom", out.append, "during")
    with caplog.at_level(logging.ERROR, logger="reactor"):
        reactor.fireSystemEvent("custom")
    assert out == ["during"]
    assert "trigger boom" in caplog.text and "Traceback" in caplog.text


def test_deferredBeforeTriggerHoldsCustomEvent(reactor: Reactor) -> None:
    """A 'before' trigger returning a Deferred holds 'during' until it fires."""
    out: list[str] = []
    d: Deferred[None] = Deferred()
    reactor.addSystemEventTrigger("before", "custom", lambda: d)
    reactor.addSystemEventTrigger("before", "custom", out.append, "before2")
    reactor.addSystemEventTrigger("during", "custom", out.append, "during")
    reactor.fireSystemEvent("custom")
    assert out == ["before2"]
    d.callback(None)
    assert out == ["before2", "during"]


def test_alreadyFiredDeferredDoesNotHold(reactor: Reactor) -> None:
    """A Deferred that has already fired lets the event go on at once."""
    out: list[str] = []
    done: Deferred[None] = Deferred()
    done.callback(None)
    reactor.addSystemEventTrigger("before", "custom", lambda: done)
    reactor.addSystemEventTrigger("after", "custom", out.append, "after")
    reactor.fireSystemEvent("custom")
    assert out == ["after"]


def test_failedBeforeDeferredIsLoggedAndEventContinues(
    reactor: Reactor, caplog: pytest.LogCaptureFixture
) -> None:
    """A failing 'before' Deferred is logged and the event still proceeds."""
    out: list[str] = []
    d: Deferred[None] = Deferred()
    reactor.addSystemEventTrigger("before", "custom", lambda: d)
    reactor.addSystemEventTrigger("during", "custom", out.append, "during")
    reactor.fireSystemEvent("custom")
    with caplog.at_level(logging.ERROR, logger="reactor"):
        d.errback(OSError("drain failed"))
    assert out == ["during"]
    assert "drain failed" in caplog.text


def test_shutdownWaitsForDeferredWhileLoopServesTimersAndThreads(reactor: Reactor) -> None:
    """A Deferred 'before shutdown' trigger holds shutdown while timers and thread calls keep running."""
    out: list[str] = []
    d: Deferred[None] = Deferred()
    started = threading.Event()

    def worker() -> None:
        started.wait(5)
        reactor.callFromThread(out.append, "thread call during drain")
        reactor.callFromThread(d.callback, None)

    t = threading.Thread(target=worker)

    def beforeShutdown() -> Deferred[None]:
        out.append(f"before shutdown running={reactor.running}")
        reactor.callLater(0.001, out.append, "timer during drain")
        reactor.callLater(0.002, started.set)
        return d

    reactor.addSystemEventTrigger("before", "shutdown", beforeShutdown)
    reactor.addSystemEventTrigger("during", "shutdown", out.append, "during shutdown")
    reactor.callWhenRunning(reactor.stop)
    t.start()
    try:
        runBounded(reactor)
    finally:
        started.set()
        t.join(5)
    assert out == [
        "before shutdown running=True",
        "timer during drain",
        "thread call during drain",
        "during shutdown",
    ]


def test_deferredBeforeStartupHoldsRunning(reactor: Reactor) -> None:
    """A Deferred 'before startup' trigger holds 'running' (and callWhenRunning) until it fires."""
    out: list[object] = []
    d: Deferred[None] = Deferred()
    reactor.addSystemEventTrigger("before", "startup", lambda: d)
    reactor.callWhenRunning(recordThenStop, reactor, out, lambda: "running")

    def release() -> None:
        out.append(reactor.running)
        d.callback(None)

    reactor.callLater(0.005, release)
    runBounded(reactor)
    assert out == [False, "running"]


def test_startupTriggersFireAgainOnEachRunWhenReRegistered(reactor: Reactor) -> None:
    """Shutdown triggers are consumed; registering again makes them fire on the next run."""
    out: list[int] = []
    reactor.addSystemEventTrigger("after", "shutdown", out.append, 1)
    reactor.callWhenRunning(reactor.stop)
    runBounded(reactor)
    reactor.callWhenRunning(reactor.stop)
    runBounded(reactor)
    assert out == [1]
    reactor.addSystemEventTrigger("after", "shutdown", out.append, 2)
    reactor.callWhenRunning(reactor.stop)
    runBounded(reactor)
    assert out == [1, 2]
