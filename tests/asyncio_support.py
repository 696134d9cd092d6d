"""Shared helpers for the tests of Deferreds inside asyncio applications: a loop of each kind.

Every test that uses the ``loop`` fixture below runs twice, on asyncio's own loop and
on uvloop's; :func:`runBounded` runs a coroutine on it with a deadline, so a bridge
that never completes fails the test instead of hanging it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import pytest

from reactor import Reactor, _default

_T = TypeVar("_T")

#: Seconds any one scenario may take before it counts as hung.
DEADLINE = 10.0

LOOP_KINDS = ["asyncio", "uvloop"]


def newLoop(kind: str) -> asyncio.AbstractEventLoop:
    """A new event loop of ``kind`` ("asyncio" or "uvloop")."""
    if kind == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
        return loop
    return asyncio.new_event_loop()


@pytest.fixture(params=LOOP_KINDS)
def loop(request: pytest.FixtureRequest) -> Iterator[asyncio.AbstractEventLoop]:
    """A fresh loop of each kind, closed afterwards."""
    loop = newLoop(request.param)
    try:
        yield loop
    finally:
        loop.close()


def runBounded(loop: asyncio.AbstractEventLoop, main: Coroutine[Any, Any, _T]) -> _T:
    """Run ``main`` on ``loop`` as a Task, failing it with ``TimeoutError`` after :data:`DEADLINE`."""

    async def bounded() -> _T:
        async with asyncio.timeout(DEADLINE):
            return await main

    return loop.run_until_complete(bounded())


@pytest.fixture
def noDefaultReactor() -> Iterator[None]:
    """No process-wide default reactor during the test (what an application process starts with);
    whatever default existed before is put back afterwards."""
    with _default._lock:
        saved = _default._default
        _default._default = None
    try:
        yield
    finally:
        with _default._lock:
            _default._default = saved


class ReactorThread:
    """A plain :class:`Reactor` running in a thread of its own (a reactor "on another thread")."""

    def __init__(self) -> None:
        self.reactor = Reactor()
        started = threading.Event()
        self.reactor.callWhenRunning(started.set)
        self.thread = threading.Thread(
            target=self.reactor.run, kwargs={"installSignalHandlers": False}, name="other-reactor"
        )
        self.thread.start()
        if not started.wait(DEADLINE):
            raise AssertionError("the other reactor did not start")

    def stop(self) -> None:
        self.reactor.callFromThread(self.reactor.stop)
        self.thread.join(DEADLINE)
        assert not self.thread.is_alive(), "the other reactor did not stop"
        self.reactor.close()
