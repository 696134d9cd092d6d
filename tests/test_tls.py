"""TLS (pyOpenSSL over memory BIOs) on loopback, with a CA and certificates generated at run time."""

from __future__ import annotations

from typing import Any

import pytest
from OpenSSL import SSL
from zope.interface import implementer
from zope.interface.verify import verifyObject

from reactor import Failure
from reactor.interfaces import IHalfCloseableProtocol, IReactorSSL, ISSLTransport
from reactor.protocol import ClientFactory, ConnectionDone, Factory, NotTLSTransportError, Protocol
from reactor.ssl import CertificateOptions, VerificationError, optionsForClientTLS
from tests.netsupport import pkiForTests, runUntil


def serverOptions(which: str = "server", **kw: Any) -> CertificateOptions:
    pair = getattr(pkiForTests(), which)
    return CertificateOptions(privateKey=pair.keyPEM, certificate=pair.certPEM, **kw)


class Recording(Protocol):
    """Records data and the end; sends ``greeting``; closes after ``expect`` bytes."""

    def __init__(self, greeting: bytes = b"", expect: int = -1) -> None:
        self.greeting = greeting
        self.expect = expect
        self.data = b""
        self.reason: Failure | None = None
        self.handshakes = 0
        self.certAtConnect: Any = "unset"

    def connectionMade(self) -> None:
        if hasattr(self.transport, "getPeerCertificate"):
            try:
                self.certAtConnect = self.transport.getPeerCertificate()
            except NotTLSTransportError:
                pass
        if self.greeting:
            self.transport.write(self.greeting)

    def handshakeCompleted(self) -> None:
        self.handshakes += 1

    def dataReceived(self, data: bytes) -> None:
        self.data += data
        if len(self.data) == self.expect:
            self.transport.loseConnection()

    def connectionLost(self, reason: Any = None) -> None:
        self.reason = reason


class Echo(Recording):
    def dataReceived(self, data: bytes) -> None:
        self.data += data
        self.transport.write(data)


class Builder(Factory):
    def __init__(self, make: Any) -> None:
        self.make = make
        self.built: list[Any] = []

    def buildProtocol(self, addr: Any) -> Any:
        p = self.make()
        p.factory = self
        self.built.append(p)
        return p


class Single(ClientFactory):
    def __init__(self, proto: Any) -> None:
        self.proto = proto
        self.failed: Failure | None = None

    def buildProtocol(self, addr: Any) -> Any:
        return self.proto

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        self.failed = reason


def connectPair(
    reactor: Any, client: Recording, clientHost: str = "localhost", serverMaker: Any = Echo, **serverKw: Any
) -> tuple[Any, Builder]:
    servers = Builder(serverMaker)
    port = reactor.listenSSL(0, servers, serverOptions(**serverKw), interface="127.0.0.1")
    options = optionsForClientTLS(clientHost, trustRoot=pkiForTests().caPEM)
    reactor.connectSSL("127.0.0.1", port.getHost().port, Single(client), options)
    return port, servers


def test_handshakeSucceedsAndPeerCertificateIsVisible(reactor: Any) -> None:
    """A trusted certificate naming the host: data flows, getPeerCertificate names the server."""
    assert verifyObject(IReactorSSL, reactor)
    client = Recording(b"secret", expect=6)
    port, servers = connectPair(reactor, client)
    runUntil(reactor, lambda: client.reason is not None and servers.built[0].reason is not None)
    assert client.data == b"secret"
    assert client.reason is not None and client.reason.check(ConnectionDone)
    assert servers.built[0].reason.check(ConnectionDone)
    assert client.certAtConnect is None  # connectionMade comes before the handshake
    assert client.handshakes == 1 and servers.built[0].handshakes == 1
    cert = client.transport.getPeerCertificate().to_cryptography()
    assert "localhost" in cert.subject.rfc4514_string()
    assert servers.built[0].transport.getPeerCertificate() is None  # no client certificate asked
    assert verifyObject(ISSLTransport, client.transport)
    port.stopListening()


def test_ipAddressHostIsVerified(reactor: Any) -> None:
    """A client connecting by IP checks the certificate's IP address entry."""
    client = Recording(b"ip", expect=2)
    port, _ = connectPair(reactor, client, clientHost="127.0.0.1")
    runUntil(reactor, lambda: client.reason is not None)
    assert client.data == b"ip" and client.reason is not None and client.reason.check(ConnectionDone)
    port.stopListening()


def test_largeTransferAndCleanClose(reactor: Any) -> None:
    """Megabytes through TLS arrive intact; the close is clean on both sides (close_notify)."""
    payload = bytes(range(256)) * 8192
    client = Recording(payload, expect=len(payload))
    port, servers = connectPair(reactor, client)
    runUntil(reactor, lambda: client.reason is not None and servers.built[0].reason is not None)
    assert client.data == payload
    assert client.reason is not None and client.reason.check(ConnectionDone)
    assert servers.built[0].reason.check(ConnectionDone)
    port.stopListening()


def test_untrustedCertificateFails(reactor: Any) -> None:
    """A certificate from a CA the client does not trust ends the connection with SSL.Error."""
    client = Recording(b"never", expect=5)
    port, servers = connectPair(reactor, client, which="untrustedServer")
    runUntil(reactor, lambda: client.reason is not None and bool(servers.built) and servers.built[0].reason)
    assert client.reason is not None and client.reason.check(SSL.Error)
    assert "certificate verify failed" in str(client.reason.value)
    assert not client.data
    assert not servers.built[0].reason.check(ConnectionDone)
    assert not servers.built[0].data  # the early write never went out in clear or otherwise
    port.stopListening()


def test_expiredCertificateFails(reactor: Any) -> None:
    """An expired certificate fails verification."""
    client = Recording(b"never")
    port, _ = connectPair(reactor, client, which="expiredServer")
    runUntil(reactor, lambda: client.reason is not None)
    assert client.reason is not None and client.reason.check(SSL.Error)
    assert "expired" in str(client.reason.value)
    port.stopListening()


def test_wrongHostNameFails(reactor: Any) -> None:
    """A valid certificate for another name fails with service_identity's VerificationError."""
    client = Recording(b"never")
    port, _ = connectPair(reactor, client, clientHost="wrong.example")
    runUntil(reactor, lambda: client.reason is not None)
    assert client.reason is not None and client.reason.check(VerificationError)
    assert "wrong.example" in str(client.reason.value)
    assert not client.data
    port.stopListening()


def test_plaintextServerPeerFails(reactor: Any) -> None:
    """A TLS client talking to a plaintext server gets an SSL.Error, not data."""
    port = reactor.listenTCP(0, Factory.forProtocol(Greeter), interface="127.0.0.1")
    client = Recording(b"hello?")
    options = optionsForClientTLS("localhost", trustRoot=pkiForTests().caPEM)
    reactor.connectSSL("127.0.0.1", port.getHost().port, Single(client), options)
    runUntil(reactor, lambda: client.reason is not None)
    assert client.reason is not None and client.reason.check(SSL.Error)
    assert not client.data
    port.stopListening()


class Greeter(Protocol):
    def connectionMade(self) -> None:
        self.transport.write(b"220 plain text service ready\r\n")


def test_plaintextClientToTLSServerFails(reactor: Any) -> None:
    """A plaintext client to a TLS server: the server protocol sees SSL.Error; the client gets no data."""
    servers = Builder(Echo)
    port = reactor.listenSSL(0, servers, serverOptions(), interface="127.0.0.1")
    client = Recording(b"GET / HTTP/1.0\r\n\r\n")
    reactor.connectTCP("127.0.0.1", port.getHost().port, Single(client))
    runUntil(reactor, lambda: client.reason is not None and bool(servers.built) and servers.built[0].reason)
    assert servers.built[0].reason.check(SSL.Error)
    assert not servers.built[0].data
    assert b"GET" not in client.data
    port.stopListening()


def test_defaultClientOptionsUseSystemTrust(reactor: Any) -> None:
    """connectSSL without a contextFactory verifies against the system store: our test CA is rejected."""
    servers = Builder(Echo)
    port = reactor.listenSSL(0, servers, serverOptions(), interface="127.0.0.1")
    client = Recording(b"x")
    reactor.connectSSL("127.0.0.1", port.getHost().port, Single(client))
    runUntil(reactor, lambda: client.reason is not None)
    assert client.reason is not None and client.reason.check(SSL.Error)
    port.stopListening()


def test_clientCertificateRequired(reactor: Any) -> None:
    """A server requiring client certificates rejects a client without one and accepts one with it."""
    pki = pkiForTests()
    servers = Builder(Echo)
    opts = serverOptions(trustRoot=pki.caPEM, requireCertificate=True)
    port = reactor.listenSSL(0, servers, opts, interface="127.0.0.1")
    anonymous = Recording(b"anon", expect=4)
    reactor.connectSSL(
        "127.0.0.1", port.getHost().port, Single(anonymous), optionsForClientTLS("localhost", pki.caPEM)
    )
    runUntil(reactor, lambda: bool(servers.built) and servers.built[0].reason is not None)
    assert servers.built[0].reason.check(SSL.Error)
    runUntil(reactor, lambda: anonymous.reason is not None)
    assert anonymous.data == b""

    named = Recording(b"me", expect=2)
    withCert = optionsForClientTLS(
        "localhost", pki.caPEM, clientCertificate=pki.client.certPEM, clientKey=pki.client.keyPEM
    )
    reactor.connectSSL("127.0.0.1", port.getHost().port, Single(named), withCert)
    runUntil(reactor, lambda: named.reason is not None)
    assert named.data == b"me"
    peer = servers.built[1].transport.getPeerCertificate().to_cryptography()
    assert "test client" in peer.subject.rfc4514_string()
    port.stopListening()


def test_startTLSOnOpenConnection(reactor: Any) -> None:
    """STARTTLS: plaintext first, then both sides call startTLS and the rest is encrypted and verified."""
    pki = pkiForTests()

    class Server(Protocol):
        tlsData = b""

        def dataReceived(self, data: bytes) -> None:
            if not self.transport.TLS:
                assert data == b"STARTTLS\n"
                self.transport.write(b"GO\n")  # still in clear: queued before startTLS
                self.transport.startTLS(serverOptions())
            else:
                self.tlsData += data
                self.transport.write(data.upper())

    class Client(Recording):
        def connectionMade(self) -> None:
            self.transport.write(b"STARTTLS\n")

        def dataReceived(self, data: bytes) -> None:
            if not self.transport.TLS:
                assert data == b"GO\n"
                with pytest.raises(NotTLSTransportError):
                    self.transport.getPeerCertificate()
                self.transport.startTLS(optionsForClientTLS("localhost", pki.caPEM))
                self.transport.write(b"now private")
            else:
                super().dataReceived(data)

    servers = Builder(Server)
    port = reactor.listenTCP(0, servers, interface="127.0.0.1")
    client = Client(expect=len(b"NOW PRIVATE"))
    reactor.connectTCP("127.0.0.1", port.getHost().port, Single(client))
    runUntil(reactor, lambda: client.reason is not None)
    assert client.data == b"NOW PRIVATE"
    assert servers.built[0].tlsData == b"now private"
    assert client.reason is not None and client.reason.check(ConnectionDone)
    assert client.transport.getPeerCertificate() is not None
    with pytest.raises(RuntimeError, match="already"):
        client.transport.startTLS(optionsForClientTLS("localhost", pki.caPEM))
    port.stopListening()


def test_badTLSArgumentsRaise(reactor: Any) -> None:
    """Wrong context factories, certificates and host names raise at the call."""
    with pytest.raises(TypeError, match="contextFactory"):
        reactor.listenSSL(0, Factory.forProtocol(Echo), object(), interface="127.0.0.1")
    with pytest.raises(TypeError, match="contextFactory"):
        reactor.connectSSL("127.0.0.1", 443, ClientFactory(), object())
    with pytest.raises(ValueError, match="certificate"):
        CertificateOptions(privateKey=pkiForTests().server.keyPEM, certificate=b"not a cert")
    with pytest.raises(ValueError, match="privateKey"):
        CertificateOptions(privateKey=b"junk", certificate=pkiForTests().server.certPEM)
    with pytest.raises(TypeError, match="hostname"):
        optionsForClientTLS("")
    with pytest.raises(ValueError, match="together"):
        optionsForClientTLS("localhost", clientCertificate=pkiForTests().client.certPEM)


@implementer(IHalfCloseableProtocol)
class HalfClosingClient(Recording):
    """Sends its greeting, then half-closes; closes when the server's side ends."""

    writeClosed = False
    readClosed = False

    def handshakeCompleted(self) -> None:
        super().handshakeCompleted()
        self.transport.loseWriteConnection()

    def readConnectionLost(self) -> None:
        self.readClosed = True
        self.transport.loseConnection()

    def writeConnectionLost(self) -> None:
        self.writeClosed = True


@implementer(IHalfCloseableProtocol)
class AnswerAtEOF(Recording):
    """Answers what it got once the client's side ends (half-closeable)."""

    readClosed = False

    def readConnectionLost(self) -> None:
        self.readClosed = True
        self.transport.write(b"reply to " + self.data)
        self.transport.loseConnection()

    def writeConnectionLost(self) -> None:
        pass


@pytest.mark.parametrize("version", ["TLS1_2_VERSION", "TLS1_3_VERSION"])
def test_loseWriteConnectionSendsCloseNotify(reactor: Any, version: str) -> None:
    """A TLS half-close sends close_notify: a half-closeable peer hears readConnectionLost, still answers;
    the client then hears readConnectionLost too, and the connection ends cleanly."""
    client = HalfClosingClient(b"question")
    servers = Builder(AnswerAtEOF)
    options = serverOptions()
    options.getContext().set_max_proto_version(getattr(SSL, version))
    port = reactor.listenSSL(0, servers, options, interface="127.0.0.1")
    clientOptions = optionsForClientTLS("localhost", trustRoot=pkiForTests().caPEM)
    reactor.connectSSL("127.0.0.1", port.getHost().port, Single(client), clientOptions)
    runUntil(
        reactor,
        lambda: client.reason is not None and bool(servers.built) and servers.built[0].reason is not None,
    )
    server = servers.built[0]
    expected = {"TLS1_2_VERSION": "TLSv1.2", "TLS1_3_VERSION": "TLSv1.3"}[version]
    assert client.transport._tls.connection.get_protocol_version_name() == expected
    assert server.data == b"question" and server.readClosed
    assert server.reason.check(ConnectionDone)
    # As in Twisted, the half-closed client hears readConnectionLost at the server's close_notify; with
    # both directions shut, the connection then ends.
    assert client.writeClosed and client.readClosed
    assert client.data == b"reply to question"
    assert client.reason is not None and client.reason.check(ConnectionDone)
    port.stopListening()


class EarlyHalfClosingClient(HalfClosingClient):
    """Half-closes in connectionMade, before the TLS handshake has completed."""

    def connectionMade(self) -> None:
        super().connectionMade()
        self.transport.loseWriteConnection()

    def handshakeCompleted(self) -> None:
        self.handshakes += 1


@pytest.mark.parametrize("clientClass", [HalfClosingClient, EarlyHalfClosingClient])
def test_loseWriteConnectionEndsPlainPeerCleanly(reactor: Any, clientClass: type[HalfClosingClient]) -> None:
    """A TLS half-close (even before the handshake) toward a plain protocol ends both with ConnectionDone."""
    client = clientClass(b"bye")
    port, servers = connectPair(reactor, client, serverMaker=Recording)
    runUntil(
        reactor,
        lambda: client.reason is not None and bool(servers.built) and servers.built[0].reason is not None,
    )
    assert servers.built[0].data == b"bye"
    assert servers.built[0].reason.check(ConnectionDone)
    assert client.writeClosed
    assert client.reason is not None and client.reason.check(ConnectionDone)
    port.stopListening()
