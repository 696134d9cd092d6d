"""Tests for reactor._poller: the loop on its selectors fallback, and epoll-style errors."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from reactor import Reactor, _loop
from reactor._poller import POLLIN, POLLOUT, SelectorsPoller
from tests.loopsupport import runBounded


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    yield a, b
    a.close()
    b.close()


def test_selectorsPollerReportsEpollBits(pair: tuple[socket.socket, socket.socket]) -> None:
    """The fallback reports readiness with epoll's bits and raises epoll's errors."""
    a, b = pair
    poller = SelectorsPoller()
    try:
        poller.register(a.fileno(), POLLIN | POLLOUT)
        with pytest.raises(FileExistsError):
            poller.register(a.fileno(), POLLIN)
        assert poller.poll(0) == [(a.fileno(), POLLOUT)]
        b.send(b"x")
        assert poller.poll(1) == [(a.fileno(), POLLIN | POLLOUT)]
        poller.modify(a.fileno(), POLLIN)
        assert poller.poll(0) == [(a.fileno(), POLLIN)]
        poller.unregister(a.fileno())
        assert poller.poll(0) == []
        with pytest.raises(FileNotFoundError):
            poller.modify(a.fileno(), POLLIN)
        with pytest.raises(FileNotFoundError):
            poller.unregister(a.fileno())
    finally:
        poller.close()


def test_loopRunsOnSelectorsFallback(
    monkeypatch: pytest.MonkeyPatch, pair: tuple[socket.socket, socket.socket]
) -> None:
    """A reactor built where epoll is missing serves readers, writers and thread calls."""
    monkeypatch.setattr(_loop, "makePoller", SelectorsPoller)
    r = Reactor()
    a, b = pair
    seen: list[str] = []

    class Reader:
        def fileno(self) -> int:
            return a.fileno()

        def doRead(self) -> None:
            seen.append(a.recv(10).decode())
            r.removeReader(self)
            r.callFromThread(r.stop)

        def connectionLost(self, reason: object) -> None:
            seen.append("lost")

    class Writer:
        def fileno(self) -> int:
            return b.fileno()

        def doWrite(self) -> None:
            b.send(b"hi")
            r.removeWriter(self)

        def connectionLost(self, reason: object) -> None:
            seen.append("lost")

    try:
        assert isinstance(r._poller, SelectorsPoller)
        r.addReader(Reader())
        r.addWriter(Writer())
        runBounded(r)
    finally:
        r.close()
    assert seen == ["hi"]
