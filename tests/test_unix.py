"""Unix-domain stream sockets: listenUNIX/connectUNIX on a temporary path."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from zope.interface.verify import verifyObject

from reactor import Failure
from reactor.interfaces import IListeningPort, IReactorUNIX, IUNIXTransport
from reactor.protocol import ClientFactory, ConnectError, ConnectionDone, Factory, Protocol, UNIXAddress
from tests.netsupport import closeReactor, newReactor, runUntil


@pytest.fixture
def reactor() -> Iterator[Any]:
    r = newReactor()
    yield r
    closeReactor(r)


@pytest.fixture
def sockPath(tmp_path: Path) -> str:
    return str(tmp_path / "s.sock")


class Echo(Protocol):
    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)


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
