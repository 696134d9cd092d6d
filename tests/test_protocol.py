"""Protocols, factories, addresses and connection errors, without sockets."""

from __future__ import annotations

import builtins
from typing import Any

import pytest
from zope.interface.verify import verifyClass, verifyObject

from reactor import Failure
from reactor import TimeoutError as ReactorTimeoutError
from reactor.interfaces import IDatagramProtocol, IProtocol, IProtocolFactory, ITCPTransport
from reactor.protocol import (
    CannotListenError,
    ClientFactory,
    ConnectError,
    ConnectionAborted,
    ConnectionDone,
    ConnectionLost,
    ConnectionRefusedError,
    ConnectTimeoutError,
    DatagramProtocol,
    Factory,
    IPv4Address,
    IPv6Address,
    Protocol,
    ServerFactory,
    UNIXAddress,
    connectionDone,
)
from tests.netsupport import FakeTransport


class Hello(Protocol):
    def connectionMade(self) -> None:
        self.transport.write(b"hello\n")

    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data[::-1])


def test_protocolClassesProvideTheirInterfaces() -> None:
    """Protocol, the factories and DatagramProtocol implement their interfaces."""
    assert verifyClass(IProtocol, Protocol)
    assert verifyObject(IProtocol, Protocol())
    for factory in (Factory(), ServerFactory(), ClientFactory()):
        assert verifyObject(IProtocolFactory, factory)
    assert verifyObject(IDatagramProtocol, DatagramProtocol())
    assert verifyObject(ITCPTransport, FakeTransport())


def test_protocolDrivenWithBytesAlone() -> None:
    """A protocol needs no socket: a fake transport and bytes are enough."""
    p = Hello()
    t = FakeTransport()
    p.makeConnection(t)
    assert p.connected == 1 and p.transport is t
    p.dataReceived(b"abc")
    assert t.value() == b"hello\ncba"
    p.connectionLost(connectionDone)
    assert p.connected == 0


def test_factoryBuildsProtocolsAndCountsUsers() -> None:
    """buildProtocol sets ``factory``; startFactory/stopFactory run on the first start and the last stop."""
    events: list[str] = []

    class Counting(Factory):
        protocol = Hello

        def startFactory(self) -> None:
            events.append("start")

        def stopFactory(self) -> None:
            events.append("stop")

    f = Counting()
    p = f.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1))
    assert isinstance(p, Hello) and p.factory is f
    f.doStart()
    f.doStart()
    f.doStop()
    assert events == ["start"]
    f.doStop()
    f.doStop()  # an extra stop is harmless
    assert events == ["start", "stop"] and f.numPorts == 0


def test_forProtocolAndMissingProtocol() -> None:
    """forProtocol makes a factory for a class; a factory without one says so."""
    f = ClientFactory.forProtocol(Hello)
    assert isinstance(f, ClientFactory) and isinstance(f.buildProtocol(None), Hello)
    with pytest.raises(TypeError, match="protocol"):
        Factory().buildProtocol(None)


def test_datagramProtocolStartStop() -> None:
    """DatagramProtocol calls startProtocol when attached and stopProtocol when its last port stops."""
    events: list[str] = []

    class Dgram(DatagramProtocol):
        def startProtocol(self) -> None:
            events.append("start")

        def stopProtocol(self) -> None:
            events.append("stop")

    d = Dgram()
    port = object()
    d.makeConnection(port)
    assert d.transport is port and events == ["start"]
    d.doStop()
    assert d.transport is None and events == ["start", "stop"]


def test_connectionErrorsTellCleanFromUnclean() -> None:
    """ConnectionDone is clean; ConnectionLost and ConnectionAborted are not; Failure.check separates them."""
    clean = Failure(ConnectionDone())
    lost = Failure(ConnectionLost("reset by peer"))
    aborted = Failure(ConnectionAborted())
    assert clean.check(ConnectionDone) and not clean.check(ConnectionLost)
    assert lost.check(ConnectionLost) and not lost.check(ConnectionDone)
    assert aborted.check(ConnectionLost)
    assert "cleanly" in str(ConnectionDone())
    assert "reset by peer" in str(ConnectionLost("reset by peer"))


def test_connectErrorsAreSpecific() -> None:
    """Connect errors name their cause; the timeout is also the reactor's TimeoutError."""
    refused = ConnectionRefusedError(osError="111: Connection refused")
    assert isinstance(refused, ConnectError)
    assert not isinstance(refused, builtins.ConnectionRefusedError)
    assert "refused" in str(refused)
    timeout = ConnectTimeoutError("after 3 s")
    assert isinstance(timeout, ConnectError) and isinstance(timeout, ReactorTimeoutError)
    assert "timed out" in str(timeout) and "after 3 s" in str(timeout)
    cant = CannotListenError("127.0.0.1", 80, OSError(13, "Permission denied"))
    assert "127.0.0.1:80" in str(cant) and "Permission denied" in str(cant)


def test_addressesAreValues() -> None:
    """Addresses compare and hash by value and are immutable."""
    a = IPv4Address("TCP", "127.0.0.1", 80)
    assert a == IPv4Address("TCP", "127.0.0.1", 80) and hash(a) == hash(IPv4Address("TCP", "127.0.0.1", 80))
    assert a != IPv4Address("UDP", "127.0.0.1", 80)
    with pytest.raises(AttributeError):
        a.port = 81  # type: ignore[misc]
    assert IPv6Address("TCP", "::1", 80).host == "::1"
    assert UNIXAddress("/tmp/x") == UNIXAddress("/tmp/x") and UNIXAddress(None) != UNIXAddress("/tmp/x")


def test_errorModuleMatchesProtocolModule() -> None:
    """reactor.error exports the same classes as reactor.protocol (Twisted's twisted.internet.error)."""
    import reactor.error
    import reactor.protocol

    for name in reactor.error.__all__:
        assert getattr(reactor.error, name) is getattr(reactor.protocol, name)


def test_reactorNetworkMethodsCheckArguments() -> None:
    """listenUDP/listenUNIX reject wrong arguments at the call."""
    from tests.netsupport import newReactor

    r: Any = newReactor()
    with pytest.raises(TypeError, match="datagramReceived"):
        r.listenUDP(0, object())
    with pytest.raises(ValueError, match="maxPacketSize"):
        r.listenUDP(0, DatagramProtocol(), maxPacketSize=0)
    with pytest.raises(TypeError, match="address"):
        r.listenUNIX(12, Factory.forProtocol(Hello))
