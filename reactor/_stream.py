"""The transport of a connected stream socket (TCP or Unix), shared by both.

A :class:`StreamConnection` is the selectable the reactor loop polls: the loop calls ``doRead``
when the socket is readable and ``doWrite`` when it is writable; when either returns an exception
(meaning "this connection is over") the loop unregisters it and calls ``connectionLost``.

Writes go straight to the kernel when nothing is queued (one ``send`` per ``write``, no wait for the
next loop turn); what the kernel does not take is queued and flushed by ``doWrite``. The queue is
bounded by flow control: a registered streaming producer is paused once the queue passes
``highWater`` bytes and resumed when it drains below ``lowWater``; the transport is itself a push
producer of what it reads (``pauseProducing`` stops reading), so a slow reader pushes back through
the kernel buffers to the peer.

Every field is owned by the reactor thread: nothing here may be called from another thread.
"""

from __future__ import annotations

import errno
import logging
import socket
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

from zope.interface import implementer

from reactor._failure import Failure
from reactor._neterrors import ConnectionAborted, ConnectionDone, ConnectionLost, NotTLSTransportError
from reactor._netinterfaces import (
    IConsumer,
    IHalfCloseableProtocol,
    IPushProducer,
)

if TYPE_CHECKING:
    from reactor._tls import TLSLayer

__all__: list[str] = []

log = logging.getLogger("reactor.network")

# 64 KiB, not more: a larger recv() buffer crosses glibc malloc's mmap threshold and costs an
# mmap/munmap pair per read (measured: ~30 us per 256 KiB recv() against ~2.5 us per 64 KiB one).
_READ_SIZE = 64 * 1024
_DISCONNECT_ERRNOS = frozenset(
    {errno.ECONNRESET, errno.EPIPE, errno.ENOTCONN, errno.ESHUTDOWN, errno.ECONNABORTED, errno.ETIMEDOUT}
)


class SelectReactor(Protocol):
    """What a transport needs from its reactor (the loop's selectable registry and timers)."""

    def addReader(self, reader: Any) -> None: ...
    def addWriter(self, writer: Any) -> None: ...
    def removeReader(self, reader: Any) -> None: ...
    def removeWriter(self, writer: Any) -> None: ...
    def callLater(self, delay: float, f: Callable[..., Any], /, *args: Any, **kw: Any) -> Any: ...


def _lostFromOSError(err: OSError) -> ConnectionLost:
    return ConnectionLost(f"[Errno {err.errno}] {err.strerror}" if err.errno else str(err))


@implementer(IConsumer, IPushProducer)
class StreamConnection:
    """A connected, non-blocking stream socket carrying one protocol (the protocol's ``transport``).

    ``highWater``/``lowWater`` (bytes) set the flow-control marks of the outgoing queue.
    """

    highWater = 64 * 1024
    lowWater = 16 * 1024

    def __init__(self, sock: socket.socket, protocol: Any, reactor: SelectReactor) -> None:
        sock.setblocking(False)
        self.socket = sock
        self.protocol = protocol
        self.reactor = reactor
        self._fileno = sock.fileno()
        self._send = sock.send
        self._recv = sock.recv
        # Outgoing queue: _pending is a view of bytes already joined and partly sent; _queue
        # holds later writes. _queued counts the bytes of both.
        self._pending: memoryview | None = None
        self._queue: list[bytes] = []
        self._queued = 0
        self._writeError: OSError | None = None
        self._writing = False
        self._reading = False
        self.connected = True
        self.disconnecting = False
        self.disconnected = False
        self._aborting = False
        # _writeClosed: disconnected, aborting or write-half-closed (one test on the write path).
        self._writeClosed = False
        self._writeDisconnecting = False
        self._writeDisconnected = False
        self._readDisconnected = False
        self.producer: Any = None
        self.streamingProducer = False
        self._producerPaused = False
        self._readPaused = False
        self._tls: TLSLayer | None = None

    # -- the loop's side -----------------------------------------------------------------------

    def fileno(self) -> int:
        """The socket's descriptor (-1 once closed)."""
        return self._fileno

    def logPrefix(self) -> str:
        """The protocol's class name, for log lines."""
        return type(self.protocol).__name__

    def startReading(self) -> None:
        """Register with the loop for reading (idempotent)."""
        if not self._reading and not self.disconnected:
            self._reading = True
            self.reactor.addReader(self)

    def stopReading(self) -> None:
        """Unregister from reading (idempotent)."""
        if self._reading:
            self._reading = False
            self.reactor.removeReader(self)

    def _startWriting(self) -> None:
        if not self._writing and not self.disconnected:
            self._writing = True
            self.reactor.addWriter(self)

    def _stopWriting(self) -> None:
        if self._writing:
            self._writing = False
            self.reactor.removeWriter(self)

    def doRead(self) -> BaseException | None:
        """Read what the kernel has and hand it to the protocol; an exception return ends the connection."""
        try:
            data = self._recv(_READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError as e:
            return _lostFromOSError(e)
        if not data:
            return self._readEOF()
        if self._tls is not None:
            return self._tlsDataReceived(data)
        try:
            self.protocol.dataReceived(data)
        except Exception as e:
            log.exception("Unhandled error in %s.dataReceived; closing the connection", self.logPrefix())
            return e
        return None

    def _readEOF(self) -> BaseException | None:
        if self._tls is not None and not self._tls.closeNotifyReceived:
            return ConnectionLost("the TLS peer closed the connection without sending close_notify")
        if self.disconnecting or not IHalfCloseableProtocol.providedBy(self.protocol):
            return ConnectionDone()
        self.stopReading()
        self._readDisconnected = True
        try:
            self.protocol.readConnectionLost()
        except Exception as e:
            log.exception("Unhandled error in %s.readConnectionLost", self.logPrefix())
            return e
        if self._writeDisconnected:
            # Both directions are shut (the protocol had called loseWriteConnection): it heard
            # readConnectionLost, as in Twisted, and the connection ends here rather than linger.
            return ConnectionDone()
        return None

    def doWrite(self) -> BaseException | None:
        """Flush the outgoing queue; close (cleanly) or half-close once it is empty if asked to."""
        if self.disconnected:
            return None
        if self._writeError is not None:
            return _lostFromOSError(self._writeError)
        if self._queued:
            err = self._flush()
            if err is not None:
                return _lostFromOSError(err)
            if self._queued:
                self._maybeResumeProducer()
                return None
        self._stopWriting()
        producer = self.producer
        if producer is not None and not self.disconnecting:
            if not self.streamingProducer:
                producer.resumeProducing()
                if self.producer is producer:
                    # Ask again when the socket can take more, even if this chunk went straight out.
                    self._startWriting()
            elif self._producerPaused:
                self._producerPaused = False
                producer.resumeProducing()
            if self._queued:
                return None
        if self.disconnecting:
            return self._finishLoseConnection()
        if self._writeDisconnecting and not self._writeDisconnected:
            return self._finishWriteHalfClose()
        return None

    def _flush(self) -> OSError | None:
        """Send as much queued data as the kernel takes; returns a fatal socket error if any."""
        while self._queued:
            if self._pending is None:
                chunks = self._queue
                self._pending = memoryview(chunks[0] if len(chunks) == 1 else b"".join(chunks))
                self._queue = []
            try:
                sent = self._send(self._pending)
            except (BlockingIOError, InterruptedError):
                return None
            except OSError as e:
                return e
            self._queued -= sent
            if sent == len(self._pending):
                self._pending = None
            else:
                self._pending = self._pending[sent:]
                return None
        return None

    def _maybeResumeProducer(self) -> None:
        if self._producerPaused and self._queued <= self.lowWater and self.producer is not None:
            self._producerPaused = False
            self.producer.resumeProducing()

    def _finishLoseConnection(self) -> BaseException | None:
        if self._tls is not None and not self._tls.handshakeDone:
            self._stopWriting()  # resumed by _tlsDataReceived when the handshake completes
            return None
        if self._tls is not None and not self._tls.closeNotifySent:
            outgoing = self._tls.shutdown()
            if outgoing:
                self._rawWrite(outgoing)
                if self._queued:
                    return None  # doWrite comes back here once close_notify is flushed
        return ConnectionDone()

    def _finishWriteHalfClose(self) -> BaseException | None:
        tls = self._tls
        if tls is not None:
            # A TLS half-close is close_notify, then the socket's write side: the peer then
            # sees a clean TLS end of its input, not a truncation.
            if not tls.handshakeDone:
                self._stopWriting()  # resumed by _tlsDataReceived when the handshake completes
                return None
            if not tls.closeNotifySent:
                self._writeClosed = True  # nothing may be encrypted after close_notify
                outgoing = tls.shutdown()
                if outgoing:
                    self._rawWrite(outgoing)
                    if self._queued:
                        return None  # doWrite comes back here once close_notify is flushed
        self._writeDisconnected = True
        self._writeClosed = True
        try:
            self.socket.shutdown(socket.SHUT_WR)
        except OSError as e:
            return _lostFromOSError(e)
        if self._readDisconnected:
            return ConnectionDone()
        if IHalfCloseableProtocol.providedBy(self.protocol):
            try:
                self.protocol.writeConnectionLost()
            except Exception as e:
                log.exception("Unhandled error in %s.writeConnectionLost", self.logPrefix())
                return e
        return None

    def connectionLost(self, reason: Failure) -> None:
        """Close the socket and tell the producer and the protocol; called once (by the loop or by us)."""
        if self.disconnected:
            return
        self.disconnected = True
        self._writeClosed = True
        self.connected = False
        self._stopWriting()
        self.stopReading()
        self._pending = None
        self._queue = []
        self._queued = 0
        try:
            self.socket.close()
        except OSError:
            pass
        self._fileno = -1
        producer, self.producer = self.producer, None
        if producer is not None:
            try:
                producer.stopProducing()
            except Exception:
                log.exception("Unhandled error in %r.stopProducing", producer)
        protocol = self.protocol
        try:
            protocol.connectionLost(reason)
        except Exception:
            log.exception("Unhandled error in %s.connectionLost", type(protocol).__name__)
        self._connectionLostHook(reason)

    def _connectionLostHook(self, reason: Failure) -> None:
        """Subclasses (client connections) tell their connector here."""

    # -- the protocol's side -------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Queue ``data`` for sending (bytes-like only); sent immediately when the queue is empty."""
        if type(data) is not bytes:
            if isinstance(data, bytearray | memoryview):
                data = bytes(data)
            else:
                raise TypeError(f"data must be bytes, not {type(data).__name__}")
        if self._writeClosed or not data:
            return
        if self._tls is not None:
            data = self._tls.encrypt(data)
            if not data:
                return
        # The hot path of _rawWrite, inlined: nothing queued, so hand it straight to the kernel.
        if not self._queued and self._writeError is None:
            try:
                sent = self._send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError as e:
                self._writeError = e
                self._startWriting()
                return
            if sent == len(data):
                return
            data = data[sent:]
        self._rawWrite(data)

    def _rawWrite(self, data: bytes) -> None:
        if not self._queued and self._writeError is None:
            try:
                sent = self._send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError as e:
                # Report it from doWrite: connectionLost must not run inside the caller's write().
                self._writeError = e
                self._startWriting()
                return
            if sent == len(data):
                return
            data = data[sent:]
        self._queue.append(data)
        self._queued += len(data)
        self._startWriting()
        if (
            self._queued > self.highWater
            and self.producer is not None
            and self.streamingProducer
            and not self._producerPaused
        ):
            self._producerPaused = True
            self.producer.pauseProducing()

    def writeSequence(self, data: Iterable[bytes]) -> None:
        """Queue each bytes object of ``data`` in order (one ``send`` for all when possible)."""
        items = list(data)
        for item in items:
            if not isinstance(item, bytes | bytearray | memoryview):
                raise TypeError(f"writeSequence items must be bytes, not {type(item).__name__}")
        if items:
            self.write(b"".join(items))

    def loseConnection(self) -> None:
        """Stop reading and close once queued data is sent; the protocol gets ConnectionDone."""
        if self.disconnected or self.disconnecting:
            return
        self.disconnecting = True
        if self._tls is None or self._tls.handshakeDone:
            self.stopReading()
        # else keep reading: the TLS handshake must finish before queued data and close_notify go out
        self._startWriting()

    def abortConnection(self) -> None:
        """Close now, dropping queued data (the peer sees a reset); the protocol gets ConnectionAborted."""
        if self.disconnected or self._aborting:
            return
        self._aborting = True
        self._writeClosed = True
        self.stopReading()
        self._stopWriting()
        self._pending = None
        self._queue = []
        self._queued = 0
        try:
            # A zero linger makes close() send RST: the peer learns this was not a clean close.
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        except OSError:
            pass
        self.reactor.callLater(0, self.connectionLost, Failure(ConnectionAborted()))

    def loseWriteConnection(self) -> None:
        """Half-close: shut down our sending side once queued data is sent; reading continues."""
        if self.disconnected or self._writeDisconnecting:
            return
        self._writeDisconnecting = True
        self._startWriting()

    def pauseProducing(self) -> None:
        """Stop reading from the socket (flow control toward the peer) until ``resumeProducing``."""
        self._readPaused = True
        self.stopReading()

    def resumeProducing(self) -> None:
        """Resume reading after ``pauseProducing``."""
        self._readPaused = False
        if not self.disconnecting and not self._readDisconnected and not self._aborting:
            self.startReading()

    def stopProducing(self) -> None:
        """Close the connection (as ``loseConnection``)."""
        self.loseConnection()

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        """Attach a producer; RuntimeError if one is registered. A pull producer is asked when writable."""
        if self.producer is not None:
            raise RuntimeError(f"cannot register producer {producer!r}: {self.producer!r} is registered")
        if self.disconnected:
            producer.stopProducing()
            return
        self.producer = producer
        self.streamingProducer = bool(streaming)
        self._producerPaused = False
        if not streaming:
            self._startWriting()  # doWrite asks the pull producer for its first chunk
        elif self._queued > self.highWater:
            self._producerPaused = True
            producer.pauseProducing()

    def unregisterProducer(self) -> None:
        """Detach the producer (no-op if none)."""
        self.producer = None
        self._producerPaused = False

    @property
    def bufferedBytes(self) -> int:
        """Bytes queued for sending that the kernel has not taken yet."""
        return self._queued

    # -- TLS -----------------------------------------------------------------------------------

    def _tlsDataReceived(self, data: bytes) -> BaseException | None:
        assert self._tls is not None
        tls = self._tls
        try:
            plaintext, outgoing = tls.receive(data)
        except Exception as e:
            outgoing = tls.pendingOutgoing()
            if outgoing:
                # Best effort: let the peer see the TLS alert that says why we hang up.
                try:
                    self._send(outgoing)
                except OSError:
                    pass
            return e
        if outgoing:
            self._rawWrite(outgoing)
        if tls.justCompletedHandshake:
            tls.justCompletedHandshake = False
            listener = getattr(self.protocol, "handshakeCompleted", None)
            if listener is not None:
                listener()
            for chunk in tls.takeHeldWrites():
                self.write(chunk)
            if self.disconnecting:
                self.stopReading()
                self._startWriting()
            elif self._writeDisconnecting:
                self._startWriting()
        for chunk in plaintext:
            if self.disconnected:
                break
            try:
                self.protocol.dataReceived(chunk)
            except Exception as e:
                log.exception("Unhandled error in %s.dataReceived; closing the connection", self.logPrefix())
                return e
        if tls.closeNotifyReceived and not self.disconnecting and not self._readDisconnected:
            return self._tlsReadEOF()
        return None

    def _tlsReadEOF(self) -> BaseException | None:
        # The peer's close_notify: the TLS form of _readEOF. A half-closeable protocol (whose
        # write side is still open) hears readConnectionLost and may go on writing; any other
        # closes cleanly, answering with its own close_notify, and hears ConnectionDone.
        if not IHalfCloseableProtocol.providedBy(self.protocol):
            self.loseConnection()
            return None
        self.stopReading()
        self._readDisconnected = True
        try:
            self.protocol.readConnectionLost()
        except Exception as e:
            log.exception("Unhandled error in %s.readConnectionLost", self.logPrefix())
            return e
        if self._writeDisconnected:
            self.loseConnection()  # both directions are shut: end it, as _readEOF does
        return None

    def getPeerCertificate(self) -> Any:
        """The peer's X509 certificate once the TLS handshake is done (None before, or if it sent none).

        Raises NotTLSTransportError on a connection that is not using TLS.
        """
        if self._tls is None:
            raise NotTLSTransportError(
                f"{type(self).__name__} is not using TLS: getPeerCertificate() needs connectSSL, "
                "listenSSL or startTLS"
            )
        return self._tls.peerCertificate()

    @property
    def TLS(self) -> bool:
        """Whether this connection carries TLS."""
        return self._tls is not None

    def startTLS(self, contextFactory: Any, normal: bool = True) -> None:
        """Switch this connection to TLS: later writes are encrypted, later reads decrypted.

        ``normal`` True keeps the TCP roles (a client connection is the TLS client); False swaps them.
        """
        from reactor._tls import TLSLayer

        if self._tls is not None:
            raise RuntimeError("TLS is already started on this connection")
        isClient = self._isClient() if normal else not self._isClient()
        self._tls = TLSLayer(contextFactory, isClient=isClient)
        outgoing = self._tls.start()
        if outgoing:
            self._rawWrite(outgoing)

    def _isClient(self) -> bool:
        return False

    def __repr__(self) -> str:
        state = "closed" if self.disconnected else ("closing" if self.disconnecting else "open")
        return f"<{type(self).__name__} fd={self._fileno} {state} protocol={self.logPrefix()}>"
