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
    NotConnectingError,
    Protocol,
    ReconnectingClientFactory,
    ServerFactory,
    UNIXAddress,
    connectionDone,
)
from reactor.task import Clock
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

    reactorErrors = {"AlreadyCalled", "AlreadyCancelled", "ReactorAlreadyRunning", "ReactorNotRestartable"}
    reactorErrors |= {"ReactorNotRunning", "ReactorAlreadyInstalledError"}
    for name in reactor.error.__all__:
        if name in reactorErrors:
            assert getattr(reactor.error, name) is getattr(reactor, name)
        elif name in ("TimeoutError", "TCPTimedOutError"):
            assert getattr(reactor.error, name) is ConnectTimeoutError
        else:
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


class _Connector:
    """A connector double: counts connect() calls; stopConnecting() raises unless connecting."""

    def __init__(self, reactor: Any = None) -> None:
        self.reactor = reactor
        self.connects = 0
        self.connecting = False
        self.stopped = 0

    def connect(self) -> None:
        self.connects += 1

    def stopConnecting(self) -> None:
        if not self.connecting:
            raise NotConnectingError("not connecting")
        self.stopped += 1


def _reconnecting(clock: Clock) -> ReconnectingClientFactory:
    factory = ReconnectingClientFactory()
    factory.clock = clock
    factory.jitter = 0
    factory.initialDelay = factory.delay = 1.0
    factory.factor = 2.0
    return factory


def test_reconnectingClientFactoryRetriesWithGrowingDelay() -> None:
    """Each failure schedules connect() after the current delay, then multiplies the delay by factor."""
    clock = Clock()
    factory = _reconnecting(clock)
    connector = _Connector()
    reason = Failure(ConnectionRefusedError())
    for expected in (1.0, 2.0, 4.0):
        factory.clientConnectionFailed(connector, reason)
        assert [c.getTime() - clock.seconds() for c in clock.getDelayedCalls()] == [expected]
        clock.advance(expected)
    assert connector.connects == 3 and factory.retries == 3 and factory.delay == 8.0
    factory.maxDelay = 5.0
    factory.clientConnectionLost(connector, Failure(ConnectionLost()))
    assert factory.delay == 5.0 and factory.connector is connector


def test_reconnectingClientFactoryMaxRetriesAndReset() -> None:
    """Past maxRetries nothing is scheduled; resetDelay() restores initialDelay and the retry budget."""
    clock = Clock()
    factory = _reconnecting(clock)
    factory.maxRetries = 1
    connector = _Connector()
    factory.clientConnectionFailed(connector, Failure(ConnectionRefusedError()))
    clock.advance(1)
    factory.clientConnectionFailed(connector, Failure(ConnectionRefusedError()))
    assert clock.getDelayedCalls() == [] and connector.connects == 1
    factory.resetDelay()
    assert (factory.delay, factory.retries, factory.continueTrying) == (1.0, 0, 1)
    factory.retry()
    assert len(clock.getDelayedCalls()) == 1


def test_reconnectingClientFactoryStopTrying() -> None:
    """stopTrying() cancels the pending retry, stops an attempt in progress and ends retrying."""
    clock = Clock()
    factory = _reconnecting(clock)
    connector = _Connector()
    factory.clientConnectionFailed(connector, Failure(ConnectionRefusedError()))
    factory.stopTrying()
    assert clock.getDelayedCalls() == [] and factory.continueTrying == 0 and connector.stopped == 0
    factory.clientConnectionLost(connector, Failure(ConnectionDone()))
    clock.advance(100)
    assert connector.connects == 0
    factory.resetDelay()
    connector.connecting = True
    factory.stopTrying()
    assert connector.stopped == 1


def test_reconnectingClientFactoryUsesConnectorsReactorAndNeedsAConnector() -> None:
    """Without a clock the connector's reactor schedules; retry() with no connector ever raises ValueError."""
    clock = Clock()
    factory = ReconnectingClientFactory()
    factory.clientConnectionFailed(_Connector(clock), Failure(ConnectionRefusedError()))
    assert len(clock.getDelayedCalls()) == 1
    with pytest.raises(ValueError, match="connector"):
        ReconnectingClientFactory().retry()
    state = factory.__getstate__()
    assert "connector" not in state and "_callID" not in state
