"""Test helpers of the networking tests: run-time certificates and a bounded reactor run.

Certificates are generated with cryptography when first asked for (a CA, a server certificate for
``localhost`` and ``127.0.0.1``, and an unrelated CA for the "untrusted" cases), cached per process.
"""

from __future__ import annotations

import datetime
import functools
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from zope.interface import implementer

from reactor import Failure
from reactor.interfaces import ITCPTransport
from reactor.protocol import ConnectionDone, IPv4Address, Protocol


@dataclass(frozen=True)
class CertAndKey:
    """A PEM certificate and its PEM private key."""

    certPEM: bytes
    keyPEM: bytes


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pemKey(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _makeCA(name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _issue(
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    names: list[str],
    ips: list[str],
    expired: bool = False,
) -> CertAndKey:
    caCert, caKey = ca
    key = _key()
    now = datetime.datetime.now(datetime.UTC)
    if expired:
        start, end = now - datetime.timedelta(days=10), now - datetime.timedelta(days=5)
    else:
        start, end = now - datetime.timedelta(days=1), now + datetime.timedelta(days=30)
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
    sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0] if names else ips[0])]))
        .issuer_name(caCert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .sign(caKey, hashes.SHA256())
    )
    return CertAndKey(cert.public_bytes(serialization.Encoding.PEM), _pemKey(key))


@dataclass(frozen=True)
class PKI:
    """A CA, certificates it issued, and an unrelated CA's certificate."""

    caPEM: bytes
    server: CertAndKey
    expiredServer: CertAndKey
    client: CertAndKey
    untrustedServer: CertAndKey
    otherCaPEM: bytes


@functools.cache
def pkiForTests() -> PKI:
    """The process-wide test PKI (generated once, in well under a second)."""
    ca = _makeCA("deferthreads test CA")
    other = _makeCA("some other CA")
    return PKI(
        caPEM=ca[0].public_bytes(serialization.Encoding.PEM),
        server=_issue(ca, ["localhost"], ["127.0.0.1", "::1"]),
        expiredServer=_issue(ca, ["localhost"], ["127.0.0.1"], expired=True),
        client=_issue(ca, ["test client"], []),
        untrustedServer=_issue(other, ["localhost"], ["127.0.0.1"]),
        otherCaPEM=other[0].public_bytes(serialization.Encoding.PEM),
    )


def runUntil(reactor: Any, done: Callable[[], bool], timeout: float = 10.0) -> None:
    """Turn the reactor's loop (``iterate``) until ``done()`` is true; AssertionError after ``timeout`` s.

    ``iterate`` rather than ``run``/``stop``: stopping a reactor disconnects every connection (as
    Twisted's does), and a test often waits for several conditions on the same connections.
    """
    import time

    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached within {timeout} s")
        reactor.iterate(0.01)


def newReactor(kind: str = "epoll") -> Any:
    """A fresh reactor for one test (a real loop, ``kind`` as in ``loopsupport.makeReactor``; never the
    process-wide default)."""
    from tests.loopsupport import makeReactor

    return makeReactor(kind)


def closeReactor(reactor: Any) -> None:
    """Drop every connection and port the test left behind, then release the reactor's descriptors."""
    for selectable in reactor.removeAll():
        close = getattr(selectable, "connectionLost", None)
        if close is not None:
            try:
                close(Failure(ConnectionDone("test finished")))
            except Exception:
                pass
    reactor.close()


class Echo(Protocol):
    """A server protocol that writes back whatever it receives."""

    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)


@implementer(ITCPTransport)
class FakeTransport:
    """An in-memory transport for driving a protocol with bytes alone (Twisted's StringTransport)."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.disconnecting = False
        self.aborted = False
        self.writeClosed = False
        self.noDelay = True
        self.keepAlive = False

    def value(self) -> bytes:
        """Everything written so far."""
        return b"".join(self.written)

    def clear(self) -> None:
        self.written.clear()

    def write(self, data: bytes) -> None:
        if not isinstance(data, bytes):
            raise TypeError("data must be bytes")
        self.written.append(data)

    def writeSequence(self, data: Any) -> None:
        for chunk in data:
            self.write(chunk)

    def loseConnection(self) -> None:
        self.disconnecting = True

    def abortConnection(self) -> None:
        self.aborted = True
        self.disconnecting = True

    def loseWriteConnection(self) -> None:
        self.writeClosed = True

    def getPeer(self) -> IPv4Address:
        return IPv4Address("TCP", "127.0.0.1", 54321)

    def getHost(self) -> IPv4Address:
        return IPv4Address("TCP", "127.0.0.1", 8080)

    def getTcpNoDelay(self) -> bool:
        return self.noDelay

    def setTcpNoDelay(self, enabled: bool) -> None:
        self.noDelay = enabled

    def getTcpKeepAlive(self) -> bool:
        return self.keepAlive

    def setTcpKeepAlive(self, enabled: bool) -> None:
        self.keepAlive = enabled
