"""zope.interface interfaces of protocols, transports, producers/consumers and the networking reactor.

The roles follow Twisted's: a *protocol* turns bytes into events and never touches a socket; a
*transport* moves bytes and is handed to the protocol by ``makeConnection``. Every method here is
called in the reactor thread unless its docstring says otherwise.
"""

from __future__ import annotations

from typing import Any

from zope.interface import Interface

__all__ = [
    "IAddress",
    "IConnector",
    "IConsumer",
    "IDatagramProtocol",
    "IHalfCloseableProtocol",
    "IHandshakeListener",
    "IListeningPort",
    "IMulticastTransport",
    "IProducer",
    "IProtocol",
    "IProtocolFactory",
    "IPullProducer",
    "IPushProducer",
    "IReactorMulticast",
    "IReactorSSL",
    "IReactorTCP",
    "IReactorUDP",
    "IReactorUNIX",
    "ISSLTransport",
    "ITCPTransport",
    "ITLSTransport",
    "ITransport",
    "IUDPTransport",
    "IUNIXTransport",
]


class IAddress(Interface):
    """An endpoint address (an immutable value)."""


class IProtocol(Interface):
    """Handles the events of one stream connection."""

    def makeConnection(transport: Any) -> None:
        """Attach ``transport`` (sets ``self.transport``) and call ``connectionMade``."""

    def connectionMade() -> None:
        """The connection is up; the protocol may write now."""

    def dataReceived(data: bytes) -> None:
        """Some bytes arrived; message boundaries are not preserved."""

    def connectionLost(reason: Any) -> None:
        """The connection ended; ``reason``: a Failure of ConnectionDone (clean) or ConnectionLost (not)."""


class IHalfCloseableProtocol(Interface):
    """A protocol that wants to keep writing after the peer stopped sending, or vice versa."""

    def readConnectionLost() -> None:
        """The peer shut down its sending side (EOF); the protocol can still write."""

    def writeConnectionLost() -> None:
        """Our sending side was shut down (``loseWriteConnection`` completed)."""


class IHandshakeListener(Interface):
    """A protocol that wants to know when its connection's TLS handshake completed."""

    def handshakeCompleted() -> None:
        """The handshake succeeded (and the peer was verified); ``getPeerCertificate()`` now answers."""


class IProtocolFactory(Interface):
    """Builds protocols for new connections."""

    def buildProtocol(addr: Any) -> Any:
        """Return a protocol for a connection with ``addr`` (or None to refuse it)."""

    def doStart() -> None:
        """Called when the factory starts being used by a port or connector."""

    def doStop() -> None:
        """Called when the factory stops being used."""


class IDatagramProtocol(Interface):
    """Handles datagrams of a UDP port."""

    def makeConnection(transport: Any) -> None:
        """Attach the port (sets ``self.transport``) and call ``startProtocol``."""

    def datagramReceived(datagram: bytes, addr: Any) -> None:
        """A datagram arrived from ``addr`` (a (host, port) tuple)."""

    def connectionRefused() -> None:
        """A connected UDP port's previous datagram was refused (ICMP port unreachable)."""

    def doStop() -> None:
        """The port stopped listening; calls ``stopProtocol``."""


class IProducer(Interface):
    """Something that produces data for a consumer."""

    def stopProducing() -> None:
        """Stop producing for good (the consumer is going away)."""


class IPushProducer(IProducer):
    """Produces data on its own until paused (a *streaming* producer)."""

    def pauseProducing() -> None:
        """Stop producing until ``resumeProducing``; the consumer's buffer is full."""

    def resumeProducing() -> None:
        """Start producing again."""


class IPullProducer(IProducer):
    """Produces one chunk each time it is asked (a non-streaming producer)."""

    def resumeProducing() -> None:
        """Write one chunk to the consumer now."""


class IConsumer(Interface):
    """Consumes data from a producer, with flow control."""

    def registerProducer(producer: Any, streaming: bool) -> None:
        """Attach ``producer``; ``streaming`` True for an IPushProducer. Raises RuntimeError if one is set."""

    def unregisterProducer() -> None:
        """Detach the current producer."""

    def write(data: bytes) -> None:
        """Consume ``data``."""


class ITransport(Interface):
    """The byte-moving side of a stream connection."""

    def write(data: bytes) -> None:
        """Queue ``data`` (bytes) to be sent in order; never blocks. TypeError for str."""

    def writeSequence(data: Any) -> None:
        """Queue every bytes object of the iterable ``data``, as ``write`` would."""

    def loseConnection() -> None:
        """Close after all queued data is sent; the protocol then gets ``connectionLost(ConnectionDone)``."""

    def getPeer() -> Any:
        """The remote address."""

    def getHost() -> Any:
        """The local address."""


class ITCPTransport(ITransport):
    """A TCP (or Unix stream) connection's transport."""

    def abortConnection() -> None:
        """Close now, discarding queued data; the protocol gets ``connectionLost(ConnectionAborted)``."""

    def loseWriteConnection() -> None:
        """Shut down the sending side after queued data is sent (half-close); reading goes on."""

    def getTcpNoDelay() -> bool:
        """Whether Nagle's algorithm is disabled."""

    def setTcpNoDelay(enabled: bool) -> None:
        """Disable (True) or enable Nagle's algorithm."""

    def getTcpKeepAlive() -> bool:
        """Whether SO_KEEPALIVE is on."""

    def setTcpKeepAlive(enabled: bool) -> None:
        """Turn SO_KEEPALIVE on or off."""


class IUNIXTransport(ITransport):
    """A Unix-domain stream connection's transport."""


class ITLSTransport(ITCPTransport):
    """A TCP transport that can switch to TLS on an open connection."""

    def startTLS(contextFactory: Any, normal: bool = True) -> None:
        """Start TLS now: bytes written before this go out in plain text, later ones encrypted."""


class ISSLTransport(ITCPTransport):
    """A transport carrying TLS."""

    def getPeerCertificate() -> Any:
        """The peer's certificate (an ``OpenSSL.crypto.X509``), or None before the handshake finishes."""


class IListeningPort(Interface):
    """A bound, listening socket."""

    def startListening() -> None:
        """Bind and listen; raises CannotListenError."""

    def stopListening() -> Any:
        """Stop accepting; returns a Deferred that fires (with None) once the socket is closed."""

    def getHost() -> Any:
        """The bound address (with the real port when 0 was asked)."""


class IConnector(Interface):
    """An outgoing connection attempt and, once made, its connection."""

    def stopConnecting() -> None:
        """Abandon the attempt (the factory gets ``clientConnectionFailed(UserError)``)."""

    def disconnect() -> None:
        """Stop connecting, or close the connection if it is up."""

    def connect() -> None:
        """Try again (after a failure or loss)."""

    def getDestination() -> Any:
        """The address being connected to."""


class IUDPTransport(Interface):
    """A UDP port as its protocol's transport."""

    def write(packet: bytes, addr: Any = None) -> None:
        """Send one datagram to ``addr`` (a (host, port) tuple) or to the connected address."""

    def connect(host: str, port: int) -> None:
        """Only exchange datagrams with ``host:port`` (an IP literal)."""

    def getHost() -> Any:
        """The bound address."""

    def stopListening() -> Any:
        """Close the port; returns a Deferred that fires with None."""


class IMulticastTransport(Interface):
    """Multicast controls of a UDP port."""

    def getTTL() -> int:
        """The time-to-live of outgoing multicast datagrams."""

    def setTTL(ttl: int) -> None:
        """Set the time-to-live of outgoing multicast datagrams."""

    def getLoopbackMode() -> bool:
        """Whether our own multicast datagrams are looped back to us."""

    def setLoopbackMode(mode: bool) -> None:
        """Loop our own multicast datagrams back (True) or not."""

    def getOutgoingInterface() -> str:
        """The IPv4 address of the interface multicast datagrams leave from."""

    def setOutgoingInterface(addr: str) -> Any:
        """Send multicast datagrams from the interface with address ``addr``; returns a Deferred."""

    def joinGroup(addr: str, interface: str = "") -> Any:
        """Join multicast group ``addr``; returns a Deferred (errback with the OSError if refused)."""

    def leaveGroup(addr: str, interface: str = "") -> Any:
        """Leave multicast group ``addr``; returns a Deferred."""


class IReactorTCP(Interface):
    """TCP for the reactor."""

    def listenTCP(port: int, factory: Any, backlog: int = 50, interface: str = "") -> Any:
        """Listen on ``interface:port`` (IPv6 for an IPv6 literal); returns an IListeningPort."""

    def connectTCP(
        host: str, port: int, factory: Any, timeout: float | None = 30, bindAddress: Any = None
    ) -> Any:
        """Connect to ``host:port`` with ``factory`` (a ClientFactory); returns an IConnector."""


class IReactorUNIX(Interface):
    """Unix-domain stream sockets for the reactor."""

    def listenUNIX(address: str, factory: Any, backlog: int = 50, mode: int = 0o666) -> Any:
        """Listen on the socket path ``address``; returns an IListeningPort."""

    def connectUNIX(address: str, factory: Any, timeout: float | None = 30) -> Any:
        """Connect to the socket path ``address``; returns an IConnector."""


class IReactorUDP(Interface):
    """UDP for the reactor."""

    def listenUDP(port: int, protocol: Any, interface: str = "", maxPacketSize: int = 8192) -> Any:
        """Bind a UDP port for ``protocol`` (an IDatagramProtocol); returns the port (its transport)."""


class IReactorMulticast(Interface):
    """Multicast UDP for the reactor."""

    def listenMulticast(
        port: int,
        protocol: Any,
        interface: str = "",
        maxPacketSize: int = 8192,
        listenMultiple: bool = False,
    ) -> Any:
        """Bind a UDP port able to join groups; ``listenMultiple`` lets several sockets share the port."""


class IReactorSSL(Interface):
    """TLS over TCP for the reactor."""

    def listenSSL(
        port: int, factory: Any, contextFactory: Any, backlog: int = 50, interface: str = ""
    ) -> Any:
        """Listen for TLS connections; ``contextFactory`` makes the server side TLS connection."""

    def connectSSL(
        host: str,
        port: int,
        factory: Any,
        contextFactory: Any = None,
        timeout: float | None = 30,
        bindAddress: Any = None,
    ) -> Any:
        """Connect with TLS; ``contextFactory`` (e.g. ``optionsForClientTLS(host)``) verifies the server."""
