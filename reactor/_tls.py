"""The TLS layer of a stream connection: pyOpenSSL over memory BIOs, no socket of its own.

A :class:`TLSLayer` is sans-IO: ciphertext from the socket goes in through :meth:`receive`, which
returns the plaintext for the protocol and the ciphertext to send back (handshake records, alerts);
plaintext from the protocol goes in through :meth:`encrypt`, which returns ciphertext. The stream
transport (``reactor._stream.StreamConnection``) owns the socket and calls these, in the reactor
thread only. Writes made before the handshake completes are held and sent once it does.

The context factory (``contextFactory`` of ``connectSSL``/``listenSSL``/``startTLS``) may be one
of ours (``reactor.ssl.optionsForClientTLS``, ``reactor.ssl.CertificateOptions``), anything with
Twisted's ``clientConnectionForTLS``/``serverConnectionForTLS``, or an old-style object with
``getContext()``. A client-side factory with ``verifyConnection(connection)`` is asked to check the
peer (host name) as soon as the handshake completes; if it raises, the connection is lost with
that error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from OpenSSL import SSL

__all__: list[str] = []

_CHUNK = 16384


def _makeConnection(contextFactory: Any, isClient: bool, owner: object) -> SSL.Connection:
    if isClient and hasattr(contextFactory, "clientConnectionForTLS"):
        conn = contextFactory.clientConnectionForTLS(owner)
    elif not isClient and hasattr(contextFactory, "serverConnectionForTLS"):
        conn = contextFactory.serverConnectionForTLS(owner)
    elif hasattr(contextFactory, "getContext"):
        conn = SSL.Connection(contextFactory.getContext(), None)
    else:
        raise TypeError(
            "contextFactory must provide getContext() or "
            f"{'clientConnectionForTLS' if isClient else 'serverConnectionForTLS'}(), "
            f"got {type(contextFactory).__name__}"
        )
    if not isinstance(conn, SSL.Connection):
        raise TypeError(f"contextFactory made {type(conn).__name__}, not an OpenSSL.SSL.Connection")
    return conn


class TLSLayer:
    """One TLS session over memory BIOs; see the module docstring."""

    def __init__(self, contextFactory: Any, isClient: bool) -> None:
        self.isClient = isClient
        self._conn = _makeConnection(contextFactory, isClient, self)
        verify = getattr(contextFactory, "verifyConnection", None) if isClient else None
        self._verify: Callable[[SSL.Connection], None] | None = verify
        self.handshakeDone = False
        self.justCompletedHandshake = False
        self.closeNotifyReceived = False
        self.closeNotifySent = False
        self._held: list[bytes] = []
        self.verifyError: str | None = None
        self._conn.set_app_data(self)

    def recordVerifyError(self, message: str, depth: int) -> None:
        """Called by the verify callback: remember the first reason the peer's chain was rejected."""
        if self.verifyError is None:
            self.verifyError = f"{message} (at chain depth {depth})"

    @property
    def connection(self) -> SSL.Connection:
        """The pyOpenSSL connection (for inspection: cipher, protocol version, ...)."""
        return self._conn

    def start(self) -> bytes:
        """Begin the session; returns the first records to send (a client's ClientHello)."""
        if self.isClient:
            self._conn.set_connect_state()
            return self._handshake()
        self._conn.set_accept_state()
        return b""

    def _handshake(self) -> bytes:
        try:
            self._conn.do_handshake()
        except SSL.WantReadError:
            return self.pendingOutgoing()
        except SSL.Error as e:
            if self.verifyError is not None:
                # Same exception class, but saying why: "certificate has expired", not just "verify failed".
                raise SSL.Error([*e.args[0], ("certificate verification", "", self.verifyError)]) from e
            raise
        self.handshakeDone = True
        self.justCompletedHandshake = True
        if self._verify is not None:
            self._verify(self._conn)
        return self.pendingOutgoing()

    def receive(self, data: bytes) -> tuple[list[bytes], bytes]:
        """Feed ciphertext; returns (plaintext chunks, ciphertext to send). Raises SSL.Error on failure."""
        self._conn.bio_write(data)
        outgoing = b""
        if not self.handshakeDone:
            outgoing = self._handshake()
            if not self.handshakeDone:
                return [], outgoing
        plaintext: list[bytes] = []
        recv = self._conn.recv
        while True:
            try:
                chunk = recv(65536)
            except SSL.WantReadError:
                break
            except SSL.ZeroReturnError:
                self.closeNotifyReceived = True
                break
            if not chunk:
                break
            plaintext.append(chunk)
        return plaintext, outgoing + self.pendingOutgoing()

    def encrypt(self, data: bytes) -> bytes:
        """Plaintext in, ciphertext out; held (returns b"") until the handshake completes."""
        if not self.handshakeDone:
            self._held.append(data)
            return b""
        view = memoryview(data)
        send = self._conn.send
        while view:
            sent = send(view[:_CHUNK])
            view = view[sent:]
        return self.pendingOutgoing()

    def takeHeldWrites(self) -> list[bytes]:
        """The writes held during the handshake, in order (the caller encrypts and sends them)."""
        held, self._held = self._held, []
        return held

    def shutdown(self) -> bytes:
        """Send close_notify; returns the records to send."""
        self.closeNotifySent = True
        try:
            self._conn.shutdown()
        except SSL.Error:
            pass
        return self.pendingOutgoing()

    def pendingOutgoing(self) -> bytes:
        """Every ciphertext byte OpenSSL has ready to send."""
        chunks: list[bytes] = []
        while True:
            try:
                chunks.append(self._conn.bio_read(65536))
            except SSL.WantReadError:
                break
        return b"".join(chunks)

    def peerCertificate(self) -> Any:
        """The peer's ``OpenSSL.crypto.X509`` certificate, or None (handshake not done, or none sent)."""
        if not self.handshakeDone:
            return None
        return self._conn.get_peer_certificate()
