"""Helpers for tests that run a real Reactor: every run is bounded by a safety-net stop."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from reactor import Reactor

SAFETY_SECONDS = 5.0

#: The reactor kinds the loop and network tests run on: our own epoll loop, and ones hosted on asyncio and Qt.
REACTOR_KINDS = ["epoll", "asyncio", "qt"]


def makeReactor(kind: str) -> Reactor:
    """A fresh reactor of ``kind`` (one of :data:`REACTOR_KINDS`); the asyncio one on a new loop it owns."""
    if kind == "asyncio":
        from reactor.asyncioreactor import AsyncioReactor

        return AsyncioReactor()
    if kind == "qt":
        import pytest

        pytest.importorskip("PySide6.QtCore", reason="PySide6 (the test extra installs it) is missing")
        from reactor.qtreactor import QtReactor

        return QtReactor()
    return Reactor()


def requireOwnLoop(reactor: Reactor, why: str) -> None:
    """Skip the calling test on an asyncio-hosted reactor: it tests our own loop's ``why``."""
    import pytest

    from reactor._hosted import HostedReactor

    if isinstance(reactor, HostedReactor):
        pytest.skip(f"tests the epoll loop's own {why}; a hosted reactor's host loop does this waiting")


def runBounded(reactor: Reactor, seconds: float = SAFETY_SECONDS) -> None:
    """Run ``reactor`` (no signal handlers) but stop it after ``seconds`` if the test did not.

    Raises AssertionError when the safety net had to fire (the test hung).
    """
    fired: list[bool] = []

    def safetyNet() -> None:
        fired.append(True)
        if not reactor.stopping:
            reactor.stop()
        else:
            reactor.crash()

    net = reactor.callLater(seconds, safetyNet)
    reactor.run(installSignalHandlers=False)
    if net.active():
        net.cancel()
    assert not fired, f"the reactor had to be stopped by the {seconds}s safety net"


def recordThenStop(reactor: Reactor, out: list[Any], get: Callable[[], object]) -> None:
    """Append ``get()`` to ``out``, then stop ``reactor`` (a one-line test callback)."""
    out.append(get())
    reactor.stop()
