"""Tests for SIGINT/SIGTERM handling of a running reactor (main thread, real signals, bounded)."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType

import pytest

from reactor import Reactor
from tests.loopsupport import REACTOR_KINDS, makeReactor, recordThenStop, runBounded

pytestmark = pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(), reason="signal handlers need the main thread"
)


@pytest.fixture(params=REACTOR_KINDS)
def reactor(request: pytest.FixtureRequest) -> Iterator[Reactor]:
    r = makeReactor(request.param)
    yield r
    r.close()


@pytest.fixture
def fallbackHandlers() -> Iterator[list[int]]:
    """Python handlers that record stray signals (so a failing test cannot kill pytest), then restored."""
    stray: list[int] = []

    def record(signum: int, frame: FrameType | None) -> None:
        stray.append(signum)

    saved = {s: signal.signal(s, record) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stray
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)


def runWithSignals(reactor: Reactor) -> None:
    net = reactor.callLater(5, reactor.stop)
    reactor.run(installSignalHandlers=True)
    assert net.active(), "the 5 s safety net stopped the reactor"
    net.cancel()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signalStopsReactorCleanly(reactor: Reactor, fallbackHandlers: list[int], signum: int) -> None:
    """SIGINT/SIGTERM stop the reactor through the full shutdown; the old handlers come back."""
    previous = signal.getsignal(signum)
    out: list[str] = []
    reactor.addSystemEventTrigger("before", "shutdown", out.append, "before shutdown")
    reactor.addSystemEventTrigger("after", "shutdown", out.append, "after shutdown")
    reactor.callWhenRunning(os.kill, os.getpid(), signum)
    runWithSignals(reactor)
    assert out == ["before shutdown", "after shutdown"]
    assert fallbackHandlers == []
    assert signal.getsignal(signum) is previous


def test_signalFromOtherThreadWakesSleepingLoop(reactor: Reactor, fallbackHandlers: list[int]) -> None:
    """A SIGTERM sent by another thread while the loop sleeps stops it promptly."""
    running = threading.Event()

    def sender() -> None:
        running.wait(5)
        os.kill(os.getpid(), signal.SIGTERM)

    t = threading.Thread(target=sender)
    t.start()
    reactor.callWhenRunning(running.set)
    try:
        runWithSignals(reactor)
    finally:
        running.set()
        t.join(5)
    assert fallbackHandlers == []


def test_noSignalHandlersWhenNotAsked(reactor: Reactor) -> None:
    """installSignalHandlers=False leaves the process's handlers alone."""
    before = signal.getsignal(signal.SIGINT)
    seen: list[object] = []
    reactor.callWhenRunning(recordThenStop, reactor, seen, lambda: signal.getsignal(signal.SIGINT))
    runBounded(reactor)
    assert seen == [before]


def test_noSignalHandlersOutsideMainThread(reactor: Reactor) -> None:
    """A reactor run in another thread installs no handlers and still stops normally."""
    before = signal.getsignal(signal.SIGINT)
    seen: list[object] = []
    reactor.callWhenRunning(recordThenStop, reactor, seen, lambda: signal.getsignal(signal.SIGINT))
    reactor.callLater(5, reactor.crash)  # safety net
    t = threading.Thread(target=reactor.run)
    t.start()
    t.join(5)
    assert not t.is_alive()
    assert seen == [before]
