"""TLS settings objects: what ``connectSSL``/``listenSSL``/``startTLS`` take as ``contextFactory``.

:func:`optionsForClientTLS` is the safe client default: it verifies the server's certificate chain
(against ``trustRoot``, or the system's trust store) and, once the handshake completes, that the
certificate is for the host name (or IP address) we meant to reach, with service_identity. A
failure ends the connection with the ``OpenSSL.SSL.Error`` or ``service_identity.VerificationError``
as the ``connectionLost`` reason. :class:`CertificateOptions` holds a server's certificate and key.

Both build one ``SSL.Context`` up front and share it between connections (contexts are immutable
once built here); they are used in the reactor thread.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL, crypto
from service_identity import VerificationError
from service_identity.cryptography import verify_certificate_hostname, verify_certificate_ip_address

__all__ = ["CertificateOptions", "ClientTLSOptions", "VerificationError", "optionsForClientTLS"]

CertificateLike = bytes | str | x509.Certificate | crypto.X509
KeyLike = bytes | str | Any


def _toCertificate(cert: CertificateLike, argName: str) -> x509.Certificate:
    if isinstance(cert, x509.Certificate):
        return cert
    if isinstance(cert, crypto.X509):
        return cert.to_cryptography()
    if isinstance(cert, str):
        cert = cert.encode("ascii")
    if isinstance(cert, bytes):
        try:
            return x509.load_pem_x509_certificate(cert)
        except ValueError as e:
            raise ValueError(f"{argName} is not a PEM certificate: {e}") from None
    raise TypeError(f"{argName} must be PEM bytes or a certificate object, not {type(cert).__name__}")


def _toPrivateKey(key: KeyLike, argName: str) -> Any:
    if isinstance(key, crypto.PKey):
        return key.to_cryptography_key()
    if isinstance(key, str):
        key = key.encode("ascii")
    if isinstance(key, bytes):
        try:
            return serialization.load_pem_private_key(key, password=None)
        except (ValueError, TypeError) as e:
            raise ValueError(f"{argName} is not an unencrypted PEM private key: {e}") from None
    if not hasattr(key, "public_key"):
        raise TypeError(f"{argName} must be PEM bytes or a private key object, not {type(key)}")
    return key


# OpenSSL's X509_V_ERR_* codes most worth naming when a handshake fails verification.
_VERIFY_ERRORS = {
    2: "unable to get issuer certificate",
    9: "certificate is not yet valid",
    10: "certificate has expired",
    18: "self-signed certificate",
    19: "self-signed certificate in certificate chain",
    20: "unable to get local issuer certificate (untrusted issuer)",
    21: "unable to verify the first certificate",
    24: "invalid CA certificate",
    26: "unsupported certificate purpose",
}


def _recordVerifyError(conn: SSL.Connection, cert: Any, errorNumber: int, depth: int, ok: int) -> bool:
    """Keep OpenSSL's verdict, but remember why it failed so the error says more than 'verify failed'."""
    if not ok:
        owner = conn.get_app_data()
        record = getattr(owner, "recordVerifyError", None)
        if record is not None:
            record(_VERIFY_ERRORS.get(errorNumber, f"X509 verify error {errorNumber}"), depth)
    return bool(ok)


def _newContext() -> SSL.Context:
    ctx = SSL.Context(SSL.TLS_METHOD)
    ctx.set_min_proto_version(SSL.TLS1_2_VERSION)
    ctx.set_options(SSL.OP_NO_COMPRESSION)
    return ctx


def _trust(ctx: SSL.Context, trustRoot: CertificateLike | Sequence[CertificateLike] | None) -> None:
    if trustRoot is None:
        ctx.set_default_verify_paths()
        return
    roots: Sequence[CertificateLike] = (
        trustRoot if isinstance(trustRoot, list | tuple) else [trustRoot]  # type: ignore[list-item]
    )
    store = ctx.get_cert_store()
    assert store is not None
    for root in roots:
        store.add_cert(crypto.X509.from_cryptography(_toCertificate(root, "trustRoot")))


class ClientTLSOptions:
    """Client-side TLS settings for one host: certificate and host-name verification are always on."""

    def __init__(self, hostname: str, context: SSL.Context) -> None:
        self.hostname = hostname
        self._context = context
        try:
            self._ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(hostname)
        except ValueError:
            self._ip = None
        self._sni = None if self._ip is not None else hostname.encode("idna")

    def getContext(self) -> SSL.Context:
        """The shared ``SSL.Context``."""
        return self._context

    def clientConnectionForTLS(self, tlsOwner: object) -> SSL.Connection:
        """A new client ``SSL.Connection`` (memory BIO) with SNI set to the host name."""
        conn = SSL.Connection(self._context, None)
        if self._sni is not None:
            conn.set_tlsext_host_name(self._sni)
        return conn

    def verifyConnection(self, connection: SSL.Connection) -> None:
        """Check that the peer certificate names our host; raises service_identity.VerificationError."""
        # (the pyOpenSSL stubs predate as_cryptography)
        cert: x509.Certificate | None = connection.get_peer_certificate(as_cryptography=True)  # type: ignore[call-arg,assignment]
        if cert is None:
            raise VerificationError(errors=["the server sent no certificate"])  # type: ignore[list-item]
        if self._ip is not None:
            verify_certificate_ip_address(cert, str(self._ip))
        else:
            verify_certificate_hostname(cert, self.hostname)

    def __repr__(self) -> str:
        return f"<ClientTLSOptions for {self.hostname!r}>"


def optionsForClientTLS(
    hostname: str,
    trustRoot: CertificateLike | Sequence[CertificateLike] | None = None,
    clientCertificate: CertificateLike | None = None,
    clientKey: KeyLike | None = None,
) -> ClientTLSOptions:
    """Client TLS settings that verify ``hostname`` (a DNS name or an IP literal).

    ``trustRoot``: the CA certificate(s) to trust (PEM bytes or certificate objects); None means the
    system trust store. ``clientCertificate``/``clientKey``: present a certificate to the server.
    """
    if not isinstance(hostname, str) or not hostname:
        raise TypeError(f"hostname must be a non-empty str, got {hostname!r}")
    if (clientCertificate is None) != (clientKey is None):
        raise ValueError("clientCertificate and clientKey must be given together")
    ctx = _newContext()
    ctx.set_verify(SSL.VERIFY_PEER, _recordVerifyError)
    _trust(ctx, trustRoot)
    if clientCertificate is not None and clientKey is not None:
        ctx.use_certificate(_toCertificate(clientCertificate, "clientCertificate"))  # type: ignore[arg-type]
        ctx.use_privatekey(_toPrivateKey(clientKey, "clientKey"))
        ctx.check_privatekey()
    return ClientTLSOptions(hostname, ctx)


class CertificateOptions:
    """Server-side TLS settings: our certificate (+ chain) and key; optionally require client certificates.

    ``certificate``/``privateKey``: PEM bytes or objects. ``extraCertChain``: intermediates to send.
    ``trustRoot`` + ``requireCertificate=True``: verify client certificates against these CAs.
    """

    def __init__(
        self,
        privateKey: KeyLike,
        certificate: CertificateLike,
        extraCertChain: Sequence[CertificateLike] = (),
        trustRoot: CertificateLike | Sequence[CertificateLike] | None = None,
        requireCertificate: bool = False,
    ) -> None:
        ctx = _newContext()
        # pyOpenSSL takes cryptography objects (the stubs predate it)
        ctx.use_certificate(_toCertificate(certificate, "certificate"))  # type: ignore[arg-type]
        for extra in extraCertChain:
            ctx.add_extra_chain_cert(_toCertificate(extra, "extraCertChain"))  # type: ignore[arg-type]
        ctx.use_privatekey(_toPrivateKey(privateKey, "privateKey"))
        ctx.check_privatekey()
        if requireCertificate:
            if trustRoot is None:
                raise ValueError("requireCertificate=True needs trustRoot (the CAs of client certificates)")
            _trust(ctx, trustRoot)
            ctx.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, _recordVerifyError)
        self._context = ctx

    def getContext(self) -> SSL.Context:
        """The shared ``SSL.Context``."""
        return self._context

    def serverConnectionForTLS(self, tlsOwner: object) -> SSL.Connection:
        """A new server ``SSL.Connection`` (memory BIO)."""
        return SSL.Connection(self._context, None)
