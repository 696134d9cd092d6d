"""Helpers for the deferthreads bridge tests: run a reactor with a bound, count its thread calls."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from reactor._loop import Reactor

WAIT = 10.0  # seconds: the bound on waits that normally take milliseconds


def runReactor(reactor: Reactor, main: Callable[[], object], bound: float = WAIT) -> None:
    """Run ``reactor`` with ``main`` scheduled at startup; fail if it has not stopped within ``bound``."""
    timedOut: list[bool] = []

    def failsafe() -> None:
        timedOut.append(True)
        if not reactor.stopping:
            reactor.stop()

    guard = reactor.callLater(bound, failsafe)
    reactor.callWhenRunning(main)
    reactor.run(installSignalHandlers=False)
    if guard.active():
        guard.cancel()
    assert not timedOut, f"the reactor did not stop within {bound} seconds"


def workerThreads(poolName: str) -> list[threading.Thread]:
    """The live threads of the pool named ``poolName``."""
    return [t for t in threading.enumerate() if t.name.startswith(f"{poolName}-worker-")]


class RecordingReactor:
    """A reactor stand-in whose callFromThread only records the calls (the test runs them)."""

    def __init__(self) -> None:
        self.calls: list[tuple[Callable[..., object], tuple[Any, ...], dict[str, Any]]] = []
        self._lock = threading.Lock()

    def callFromThread(self, f: Callable[..., object], /, *args: Any, **kwargs: Any) -> None:
        with self._lock:
            self.calls.append((f, args, kwargs))

    def runCalls(self) -> int:
        with self._lock:
            calls, self.calls = self.calls, []
        for f, args, kwargs in calls:
            f(*args, **kwargs)
        return len(calls)
