"""TCP transports, ports and connectors on real loopback sockets (127.0.0.1 and ::1)."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from zope.interface import implementer
from zope.interface.verify import verifyObject

from reactor import Failure
from reactor.interfaces import (
    IConnector,
    IConsumer,
    IHalfCloseableProtocol,
    IListeningPort,
    IPushProducer,
    IReactorTCP,
    ITCPTransport,
)
from reactor.protocol import (
    CannotListenError,
    ClientFactory,
    ConnectionAborted,
    ConnectionDone,
    ConnectionLost,
    ConnectionRefusedError,
    ConnectTimeoutError,
    Factory,
    IPv4Address,
    IPv6Address,
    NotTLSTransportError,
    Protocol,
    UserError,
)
from tests.netsupport import Echo, runUntil


class Collect(Protocol):
    """Records everything; optionally sends ``greeting`` on connect and closes after ``expect`` bytes."""

    def __init__(self, greeting: bytes = b"", expect: int = -1) -> None:
        self.greeting = greeting
        self.expect = expect
        self.chunks: list[bytes] = []
        self.size = 0
        self.reason: Failure | None = None

    def connectionMade(self) -> None:
        if self.greeting:
            self.transport.write(self.greeting)

    def dataReceived(self, data: bytes) -> None:
        self.chunks.append(data)
        self.size += len(data)
        if self.size == self.expect:
            self.transport.loseConnection()

    def connectionLost(self, reason: Any = None) -> None:
        self.reason = reason

    @property
    def data(self) -> bytes:
        return b"".join(self.chunks)


class RecordingClientFactory(ClientFactory):
    def __init__(self, proto: Protocol | None = None) -> None:
        self.proto = proto
        self.failed: Failure | None = None
        self.lostReason: Failure | None = None

    def buildProtocol(self, addr: Any) -> Any:
        assert self.proto is not None
        self.proto.factory = self
        return self.proto

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        self.failed = reason

    def clientConnectionLost(self, connector: Any, reason: Failure) -> None:
        self.lostReason = reason


class OneProtocolFactory(Factory):
    def __init__(self, make: Any) -> None:
        self.make = make
        self.built: list[Any] = []

    def buildProtocol(self, addr: Any) -> Any:
        p = self.make()
        p.factory = self
        self.built.append(p)
        return p


def test_reactorProvidesIReactorTCP(reactor: Any) -> None:
    """The reactor declares and implements IReactorTCP."""
    assert verifyObject(IReactorTCP, reactor)


def test_echoRoundTripIPv4(reactor: Any) -> None:
    """A client's bytes come back from an echo server; addresses are IPv4Address on both ends."""
    port = reactor.listenTCP(0, Factory.forProtocol(Echo), interface="127.0.0.1")
    client = Collect(b"hello world", expect=11)
    factory = RecordingClientFactory(client)
    connector = reactor.connectTCP("127.0.0.1", port.getHost().port, factory)
    runUntil(reactor, lambda: client.reason is not None)
    assert client.data == b"hello world"
    assert client.reason is not None and client.reason.check(ConnectionDone)
    assert isinstance(client.transport.getPeer(), IPv4Address)
    assert client.transport.getPeer().port == port.getHost().port
    assert client.transport.getHost().host == "127.0.0.1"
    assert factory.lostReason is not None and factory.lostReason.check(ConnectionDone)
    assert verifyObject(IListeningPort, port)
    assert verifyObject(IConnector, connector)
    assert verifyObject(ITCPTransport, client.transport)
    assert verifyObject(IConsumer, client.transport)
    assert verifyObject(IPushProducer, client.transport)
    port.stopListening()


def test_echoRoundTripIPv6(reactor: Any) -> None:
    """listenTCP/connectTCP work over IPv6 loopback (::1)."""
    try:
        port = reactor.listenTCP(0, Factory.forProtocol(Echo), interface="::1")
    except CannotListenError as e:
        pytest.skip(f"no IPv6 loopback here: {e}")
    client = Collect(b"six", expect=3)
    reactor.connectTCP("::1", port.getHost().port, RecordingClientFactory(client))
    runUntil(reactor, lambda: client.reason is not None)
    assert client.data == b"six"
    assert isinstance(client.transport.getPeer(), IPv6Address)
    assert isinstance(port.getHost(), IPv6Address)
    port.stopListening()


def test_connectByHostName(reactor: Any) -> None:
    """connectTCP accepts the name localhost."""
    port = reactor.listenTCP(0, Factory.forProtocol(Echo), interface="127.0.0.1")
    client = Collect(b"x", expect=1)
    reactor.connectTCP("localhost", port.getHost().port, RecordingClientFactory(client))
    runUntil(reactor, lambda: client.reason is not None)
    assert client.data == b"x"
    port.stopListening()


def test_cleanCloseFlushesBufferedData(reactor: Any) -> None:
    """loseConnection right after a big write delivers every byte, then ConnectionDone on both sides."""
    payload = bytes(range(256)) * 16384  # 4 MiB: more than the kernel buffers take at once

    class Blast(Protocol):
        reason: Failure | None = None

        def connectionMade(self) -> None:
            self.transport.write(payload)
            self.transport.loseConnection()

        def connectionLost(self, reason: Any = None) -> None:
            self.reason = reason

    serverFactory = OneProtocolFactory(Blast)
    port = reactor.listenTCP(0, serverFactory, interface="127.0.0.1")
    client = Collect()
    reactor.connectTCP("127.0.0.1", port.getHost().port, RecordingClientFactory(client))
    runUntil(reactor, lambda: client.reason is not None and serverFactory.built[0].reason is not None)
    assert client.data == payload
    assert client.reason is not None and client.reason.check(ConnectionDone)
    assert serverFactory.built[0].reason.check(ConnectionDone)
    port.stopListening()


def test_abortConnectionIsUncleanForBothSides(reactor: Any) -> None:
    """abortConnection gives ConnectionAborted locally and a non-clean ConnectionLost to the peer."""

    class Aborter(Protocol):
        reason: Failure | None = None

        def dataReceived(self, data: bytes) -> None:
            self.transport.write(b"never sent" * 1000)
            self.transport.abortConnection()

        def connectionLost(self, reason: Any = None) -> None:
            self.reason = reason

    serverFactory = OneProtocolFactory(Aborter)
    port = reactor.listenTCP(0, serverFactory, interface="127.0.0.1")
    client = Collect(b"go")
    reactor.connectTCP("127.0.0.1", port.getHost().port, RecordingClientFactory(client))
    runUntil(reactor, lambda: client.reason is not None and serverFactory.built[0].reason is not None)
    assert serverFactory.built[0].reason.check(ConnectionAborted)
    assert client.reason is not None and client.reason.check(ConnectionLost)
    assert not client.reason.check(ConnectionDone)
    port.stopListening()


def test_connectionRefused(reactor: Any) -> None:
    """Connecting to a closed port reports ConnectionRefusedError to clientConnectionFailed."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    freePort = probe.getsockname()[1]
    probe.close()
    factory = RecordingClientFactory(Collect())
    reactor.connectTCP("127.0.0.1", freePort, factory)
    runUntil(reactor, lambda: factory.failed is not None)
    assert factory.failed is not None and factory.failed.check(ConnectionRefusedError)
    assert "refused" in factory.failed.getErrorMessage().lower()


def test_connectTimeoutAgainstFullBacklog(reactor: Any) -> None:
    """A connect the server never completes (full accept queue) fails with ConnectTimeoutError."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    addr = listener.getsockname()
    fillers = []
    try:
        for _ in range(4):  # fill the accept queue; later SYNs are dropped by Linux
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(addr)
            fillers.append(s)
        factory = RecordingClientFactory(Collect())
        reactor.connectTCP("127.0.0.1", addr[1], factory, timeout=0.3)
        runUntil(reactor, lambda: factory.failed is not None or factory.proto.transport is not None)  # type: ignore[union-attr]
        if factory.failed is None:
            pytest.skip("this kernel completed the connection despite the full backlog")
        assert factory.failed.check(ConnectTimeoutError)
        from reactor import TimeoutError as ReactorTimeoutError

        assert factory.failed.check(ReactorTimeoutError)
    finally:
        for s in fillers:
            s.close()
        listener.close()


def test_connectTimeoutWithClock() -> None:
    """The connect timeout is a reactor timer: with a Clock and no writability it fires on time."""
    from reactor._tcp import Connector
    from reactor.task import Clock

    class ClockReactor(Clock):
        writers: set[Any] = set()

        def addWriter(self, w: Any) -> None:
            self.writers.add(w)

        def removeWriter(self, w: Any) -> None:
            self.writers.discard(w)

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    try:
        clock = ClockReactor()
        factory = RecordingClientFactory(Collect())
        c = Connector("127.0.0.1", listener.getsockname()[1], factory, 5.0, None, clock)
        c.connect()
        clock.advance(4.9)
        assert factory.failed is None and c.state == "connecting"
        clock.advance(0.2)
        assert factory.failed is not None and factory.failed.check(ConnectTimeoutError)
        assert not clock.writers and c.state == "disconnected"
    finally:
        listener.close()


def test_stopConnectingReportsUserError(reactor: Any) -> None:
    """stopConnecting during the attempt reports UserError to clientConnectionFailed."""
    port = reactor.listenTCP(0, Factory.forProtocol(Echo), interface="127.0.0.1")
    factory = RecordingClientFactory(Collect())
    connector = reactor.connectTCP("127.0.0.1", port.getHost().port, factory)
    connector.stopConnecting()
    assert factory.failed is not None and factory.failed.check(UserError)
    port.stopListening()


def test_halfClose(reactor: Any) -> None:
    """loseWriteConnection sends EOF; a half-closeable server still answers after readConnectionLost."""

    @implementer(IHalfCloseableProtocol)
    class Server(Protocol):
        got = b""

        def dataReceived(self, data: bytes) -> None:
            self.got += data

        def readConnectionLost(self) -> None:
            self.transport.write(b"reply to " + self.got)
            self.transport.loseConnection()

        def writeConnectionLost(self) -> None:
            pass

    @implementer(IHalfCloseableProtocol)
    class Client(Collect):
        writeClosed = False

        def connectionMade(self) -> None:
            self.transport.write(b"question")
            self.transport.loseWriteConnection()

        def readConnectionLost(self) -> None:
            self.transport.loseConnection()

        def writeConnectionLost(self) -> None:
            self.writeClosed = True

    port = reactor.listenTCP(0, Factory.forProtocol(Server), interface="127.0.0.1")
    client = Client()
    reactor.connectTCP("127.0.0.1", port.getHost().port, RecordingClientFactory(client))
    runUntil(reactor, lambda: client.reason is not None)
    assert client.data == b"reply to question"
    assert client.writeClosed
    assert client.reason is not None and client.reason.check(ConnectionDone)
    port.stopListening()


@implementer(IPushProducer)
class Firehose:
    """A streaming producer writing ``chunk`` every loop turn until ``total`` bytes are out."""

    def __init__(self, reactor: Any, transport: Any, chunk: int, total: int) -> None:
        self.reactor = reactor
        self.transport = transport
        self.chunk = b"z" * chunk
        self.remaining = total
        self.paused = False
        self.pauses = 0
        self.stopped = False
        self.maxBuffered = 0
        self._call: Any = None

    def start(self) -> None:
        self.transport.registerProducer(self, True)
        self._schedule()

    def _schedule(self) -> None:
        if self._call is None and not self.paused and not self.stopped and self.remaining > 0:
            self._call = self.reactor.callLater(0, self._produce)

    def _produce(self) -> None:
        self._call = None
        if self.paused or self.stopped:
            return
        self.transport.write(self.chunk)
        self.remaining -= len(self.chunk)
        self.maxBuffered = max(self.maxBuffered, self.transport.bufferedBytes)
        if self.remaining <= 0:
            self.transport.unregisterProducer()
            self.transport.loseConnection()
        else:
            self._schedule()

    def pauseProducing(self) -> None:
        self.paused = True
        self.pauses += 1

    def resumeProducing(self) -> None:
        self.paused = False
        self._schedule()

    def stopProducing(self) -> None:
        self.stopped = True


def test_flowControlBoundsMemoryAgainstSlowReader(reactor: Any) -> None:
    """A fast push producer against a reader that paused reading is paused; its buffer stays bounded."""
    total = 32 * 1024 * 1024
    chunk = 64 * 1024
    hoses: list[Firehose] = []

    class Server(Protocol):
        def connectionMade(self) -> None:
            hose = Firehose(reactor, self.transport, chunk, total)
            hoses.append(hose)
            hose.start()

    class SlowReader(Collect):
        def connectionMade(self) -> None:
            self.transport.pauseProducing()  # stop reading: the kernel buffers fill up

    port = reactor.listenTCP(0, Factory.forProtocol(Server), interface="127.0.0.1")
    client = SlowReader()
    reactor.connectTCP("127.0.0.1", port.getHost().port, RecordingClientFactory(client))
    runUntil(reactor, lambda: bool(hoses) and hoses[0].paused)
    hose = hoses[0]
    assert client.size < total
    sentSoFar = total - hose.remaining
    # The producer stopped long before the whole payload: memory is bounded by the kernel buffers
    # plus the transport's high-water mark (plus one chunk written past it).
    assert sentSoFar < total // 2
    assert hose.maxBuffered <= hose.transport.highWater + chunk
    client.transport.resumeProducing()
    runUntil(reactor, lambda: client.reason is not None, timeout=30)
    assert client.size == total
    assert hose.pauses >= 1
    assert hose.maxBuffered <= hose.transport.highWater + chunk
    port.stopListening()


def test_pullProducerIsAskedWhenBufferDrains(reactor: Any) -> None:
    """A non-streaming producer gets resumeProducing each time the transport's buffer empties."""

    class Pull:
        def __init__(self, transport: Any) -> None:
            self.transport = transport
            self.calls = 0

        def resumeProducing(self) -> None:
            self.calls += 1
            if self.calls <= 10:
                self.transport.write(b"p" * 100_000)
            else:
                self.transport.unregisterProducer()
                self.transport.loseConnection()

        def stopProducing(self) -> None:
            pass

    class Server(Protocol):
        def connectionMade(self) -> None:
            self.transport.registerProducer(Pull(self.transport), False)

    port = reactor.listenTCP(0, Factory.forProtocol(Server), interface="127.0.0.1")
    client = Collect()
    reactor.connectTCP("127.0.0.1", port.getHost().port, RecordingClientFactory(client))
    runUntil(reactor, lambda: client.reason is not None)
    assert client.size == 1_000_000
    port.stopListening()


def test_registerSecondProducerRaises(reactor: Any) -> None:
    """A transport holds one producer at a time: registering another raises RuntimeError."""
    port = reactor.listenTCP(0, Factory.forProtocol(Echo), interface="127.0.0.1")
    client = Collect()
    reactor.connectTCP("127.0.0.1", port.getHost().port, RecordingClientFactory(client))
    runUntil(reactor, lambda: client.transport is not None)
    hose = Firehose(reactor, client.transport, 10, 10)
    client.transport.registerProducer(hose, True)
    with pytest.raises(RuntimeError):
        client.transport.registerProducer(hose, True)
    client.transport.unregisterProducer()
    client.transport.loseConnection()
    runUntil(reactor, lambda: client.reason is not None)
    port.stopListening()


def test_plainTransportHasNoPeerCertificate(reactor: Any) -> None:
    """getPeerCertificate on a plain TCP transport raises NotTLSTransportError, naming the fix."""
    port = reactor.listenTCP(0, Factory.forProtocol(Echo), interface="127.0.0.1")
    client = Collect()
    reactor.connectTCP("127.0.0.1", port.getHost().port, RecordingClientFactory(client))
    runUntil(reactor, lambda: client.transport is not None)
    with pytest.raises(NotTLSTransportError, match="startTLS"):
        client.transport.getPeerCertificate()
    client.transport.loseConnection()
    runUntil(reactor, lambda: client.reason is not None)
    port.stopListening()


def test_writeRejectsText(reactor: Any) -> None:
    """write(str) raises TypeError at the call; writeSequence sends items in order."""
    port = reactor.listenTCP(0, Factory.forProtocol(Echo), interface="127.0.0.1")
    client = Collect(expect=6)
    reactor.connectTCP("127.0.0.1", port.getHost().port, RecordingClientFactory(client))
    runUntil(reactor, lambda: client.transport is not None)
    with pytest.raises(TypeError, match="bytes"):
        client.transport.write("text")
    client.transport.writeSequence([b"ab", b"cd", bytearray(b"ef")])
    runUntil(reactor, lambda: client.reason is not None)
    assert client.data == b"abcdef"
    port.stopListening()


def test_dataReceivedErrorClosesConnection(reactor: Any) -> None:
    """An exception in dataReceived closes that connection (not the reactor) with the exception as reason."""

    class Broken(Protocol):
        reason: Failure | None = None

        def dataReceived(self, data: bytes) -> None:
            raise ZeroDivisionError("protocol bug")

        def connectionLost(self, reason: Any = None) -> None:
            self.reason = reason

    serverFactory = OneProtocolFactory(Broken)
    port = reactor.listenTCP(0, serverFactory, interface="127.0.0.1")
    client = Collect(b"boom")
    reactor.connectTCP("127.0.0.1", port.getHost().port, RecordingClientFactory(client))
    runUntil(reactor, lambda: client.reason is not None and serverFactory.built[0].reason is not None)
    assert serverFactory.built[0].reason.check(ZeroDivisionError)
    port.stopListening()


def test_stopListeningFiresAndRefusesNewConnections(reactor: Any) -> None:
    """stopListening returns a Deferred firing None; afterwards connections are refused."""
    factory = Factory.forProtocol(Echo)
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    portNumber = port.getHost().port
    assert factory.numPorts == 1
    results: list[Any] = []
    port.stopListening().addCallback(results.append)
    runUntil(reactor, lambda: bool(results))
    assert results == [None]
    assert factory.numPorts == 0
    clientFactory = RecordingClientFactory(Collect())
    reactor.connectTCP("127.0.0.1", portNumber, clientFactory)
    runUntil(reactor, lambda: clientFactory.failed is not None)
    assert clientFactory.failed is not None and clientFactory.failed.check(ConnectionRefusedError)


def test_listenOnBusyPortRaises(reactor: Any) -> None:
    """Binding a port already in use raises CannotListenError at the call."""
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    try:
        with pytest.raises(CannotListenError) as info:
            reactor.listenTCP(holder.getsockname()[1], Factory.forProtocol(Echo), interface="127.0.0.1")
        assert str(holder.getsockname()[1]) in str(info.value)
    finally:
        holder.close()


def test_badArgumentsRaiseAtTheCall(reactor: Any) -> None:
    """Wrong ports, hosts, interfaces, timeouts and factories raise TypeError/ValueError naming them."""
    f = Factory.forProtocol(Echo)
    with pytest.raises(ValueError, match="port"):
        reactor.listenTCP(70000, f)
    with pytest.raises(ValueError, match="interface"):
        reactor.listenTCP(0, f, interface="not an address")
    with pytest.raises(TypeError, match="factory"):
        reactor.listenTCP(0, object())
    with pytest.raises(ValueError, match="port"):
        reactor.connectTCP("127.0.0.1", "80", ClientFactory())
    with pytest.raises(ValueError, match="timeout"):
        reactor.connectTCP("127.0.0.1", 80, ClientFactory(), timeout=-1)
    with pytest.raises(TypeError, match="host"):
        reactor.connectTCP(None, 80, ClientFactory())


def test_manyConnectionsNoThreads(reactor: Any) -> None:
    """200 concurrent connections are served by the reactor thread alone."""
    import threading

    before = threading.active_count()
    port = reactor.listenTCP(0, Factory.forProtocol(Echo), interface="127.0.0.1")
    clients = [Collect(b"%d" % i, expect=len(b"%d" % i)) for i in range(200)]
    for c in clients:
        reactor.connectTCP("127.0.0.1", port.getHost().port, RecordingClientFactory(c))
    runUntil(reactor, lambda: all(c.reason is not None for c in clients))
    assert [c.data for c in clients] == [b"%d" % i for i in range(200)]
    assert threading.active_count() == before
    port.stopListening()


def test_clientConnectionMadeErrorClosesWithThatReason() -> None:
    """A client protocol raising in connectionMade is logged, and its connection closes with that error."""
    from reactor import Reactor
    from reactor.protocol import ClientFactory, Factory, Protocol

    class Boom(Exception):
        pass

    class Buggy(Protocol):
        def connectionMade(self) -> None:
            raise Boom("client bug")

    reactor = Reactor()
    port = reactor.listenTCP(0, Factory.forProtocol(Protocol), interface="127.0.0.1")
    seen: list[Failure] = []

    class Watch(ClientFactory):
        protocol = Buggy

        def clientConnectionLost(self, connector: object, reason: Failure) -> None:
            seen.append(reason)
            reactor.stop()

    reactor.connectTCP("127.0.0.1", port.getHost().port, Watch())
    reactor.callLater(5, reactor.stop)
    reactor.run(installSignalHandlers=False)
    port.stopListening()
    reactor.close()
    assert len(seen) == 1 and seen[0].check(Boom)
