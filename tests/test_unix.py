"""Unix-domain stream sockets: listenUNIX/connectUNIX on a temporary path."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import pytest
from zope.interface.verify import verifyObject

from reactor import Failure
from reactor.interfaces import IListeningPort, IReactorUNIX, IUNIXTransport
from reactor.protocol import (
    ClientFactory,
    ConnectError,
    ConnectionDone,
    ConnectTimeoutError,
    Factory,
    Protocol,
    UNIXAddress,
)
from tests.netsupport import Echo, runUntil


@pytest.fixture
def sockPath(tmp_path: Path) -> str:
    return str(tmp_path / "s.sock")


class Client(Protocol):
    def __init__(self, greeting: bytes) -> None:
        self.greeting = greeting
        self.data = b""
        self.reason: Failure | None = None

    def connectionMade(self) -> None:
        self.transport.write(self.greeting)

    def dataReceived(self, data: bytes) -> None:
        self.data += data
        if len(self.data) == len(self.greeting):
            self.transport.loseConnection()

    def connectionLost(self, reason: Any = None) -> None:
        self.reason = reason


class Single(ClientFactory):
    def __init__(self, proto: Any) -> None:
        self.proto = proto
        self.failed: Failure | None = None

    def buildProtocol(self, addr: Any) -> Any:
        return self.proto

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        self.failed = reason


def test_unixEchoRoundTrip(reactor: Any, sockPath: str) -> None:
    """Bytes round-trip over a Unix socket; addresses are UNIXAddress; the file goes away on stop."""
    assert verifyObject(IReactorUNIX, reactor)
    port = reactor.listenUNIX(sockPath, Factory.forProtocol(Echo))
    assert verifyObject(IListeningPort, port)
    assert port.getHost() == UNIXAddress(sockPath)
    client = Client(b"over unix" * 1000)
    reactor.connectUNIX(sockPath, Single(client))
    runUntil(reactor, lambda: client.reason is not None)
    assert client.data == b"over unix" * 1000
    assert client.reason is not None and client.reason.check(ConnectionDone)
    assert verifyObject(IUNIXTransport, client.transport)
    assert client.transport.getPeer() == UNIXAddress(sockPath)
    done: list[Any] = []
    port.stopListening().addCallback(done.append)
    runUntil(reactor, lambda: bool(done))
    assert not os.path.exists(sockPath)


def test_staleSocketFileIsReplaced(reactor: Any, sockPath: str) -> None:
    """A socket file left by a dead listener does not stop a new listenUNIX."""
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(sockPath)
    stale.close()
    assert os.path.exists(sockPath)
    port = reactor.listenUNIX(sockPath, Factory.forProtocol(Echo))
    client = Client(b"fresh")
    reactor.connectUNIX(sockPath, Single(client))
    runUntil(reactor, lambda: client.reason is not None)
    assert client.data == b"fresh"
    port.stopListening()


def test_connectToMissingPathFails(reactor: Any, sockPath: str) -> None:
    """connectUNIX to a path nobody listens on reports a ConnectError."""
    factory = Single(Client(b"x"))
    reactor.connectUNIX(sockPath, factory)
    runUntil(reactor, lambda: factory.failed is not None)
    assert factory.failed is not None and factory.failed.check(ConnectError)


def test_modeIsApplied(reactor: Any, sockPath: str) -> None:
    """listenUNIX sets the socket file's permissions to ``mode``."""
    port = reactor.listenUNIX(sockPath, Factory.forProtocol(Echo), mode=0o600)
    assert os.stat(sockPath).st_mode & 0o777 == 0o600
    port.stopListening()
    with pytest.raises(TypeError, match="mode"):
        reactor.listenUNIX(sockPath + "2", Factory.forProtocol(Echo), mode="rw")


def _fillBacklog(listener: socket.socket, path: str, fillers: list[socket.socket]) -> None:
    """Listen with backlog 0 on ``path`` and queue connections until the kernel refuses with EAGAIN."""
    listener.bind(path)
    listener.listen(0)
    while True:
        filler = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        filler.setblocking(False)
        fillers.append(filler)
        if filler.connect_ex(path) != 0:
            fillers.pop().close()
            return
        assert len(fillers) < 100, "the accept queue never filled"


@pytest.mark.timeout(30)
def test_connectWaitsWhileListenerBacklogIsFull(reactor: Any, sockPath: str) -> None:
    """connectUNIX to a listener whose backlog is full (EAGAIN) waits and connects once there is room."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    fillers: list[socket.socket] = []
    try:
        _fillBacklog(listener, sockPath, fillers)
        client = Client(b"through")
        factory = Single(client)
        connector = reactor.connectUNIX(sockPath, factory, timeout=20)
        # The attempt is waiting on its retry timer, not failed, and has retried at least once.
        runUntil(reactor, lambda: connector._attempt is not None and connector._attempt.retryDelay > 0.002)
        assert factory.failed is None and connector.state == "connecting"
        accepted, _ = listener.accept()  # room for one more: the retry gets in
        accepted.close()
        runUntil(reactor, lambda: connector.state == "connected" or factory.failed is not None)
        assert factory.failed is None
        server, _ = listener.accept()
        try:
            server.settimeout(10)
            data = b""
            while len(data) < len(b"through"):
                chunk = server.recv(100)
                assert chunk
                data += chunk
            assert data == b"through"
        finally:
            server.close()
        client.transport.loseConnection()
        runUntil(reactor, lambda: client.reason is not None)
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


@pytest.mark.timeout(30)
def test_connectToFullBacklogTimesOut(reactor: Any, sockPath: str) -> None:
    """A connectUNIX that keeps meeting a full backlog fails with a timeout, not at once."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    fillers: list[socket.socket] = []
    try:
        _fillBacklog(listener, sockPath, fillers)
        factory = Single(Client(b"never"))
        reactor.connectUNIX(sockPath, factory, timeout=0.05)
        runUntil(reactor, lambda: factory.failed is not None)
        assert factory.failed is not None and factory.failed.check(ConnectTimeoutError)
    finally:
        for filler in fillers:
            filler.close()
        listener.close()
