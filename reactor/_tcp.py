"""TCP: listening ports, server- and client-side connections, and the connector of ``connectTCP``.

A :class:`Port` accepts connections (a batch per readable event), builds a protocol with its factory
and wraps each socket in a :class:`TCPServerConnection`. A :class:`Connector` makes a non-blocking
``connect``: it waits for writability, enforces ``timeout`` with a reactor timer and tells the
factory (``clientConnectionFailed``/``clientConnectionLost``). Unix sockets reuse these classes
(``reactor._unix``). With a ``contextFactory`` every connection starts TLS at once (listenSSL and
connectSSL). Everything runs in the reactor thread; no thread per connection.

Beyond Twisted: TCP_NODELAY is on by default on TCP connections (as asyncio does), since this
reactor's transports send each ``write`` at once; ``setTcpNoDelay(False)`` restores Nagle.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
import socket
import threading
from typing import Any

from zope.interface import implementer

from reactor._acceptlimits import RESOURCE_ERRNOS, SKIP_ERRNOS, AcceptLimiter
from reactor._address import IPv4Address, IPv6Address, UNIXAddress, addressFromSockaddr
from reactor._failure import Failure
from reactor._neterrors import (
    CannotListenError,
    ConnectError,
    ConnectTimeoutError,
    DNSLookupError,
    NotConnectingError,
    UserError,
    connectErrorFromOSError,
)
from reactor._netinterfaces import IConnector, IListeningPort, ISSLTransport, ITCPTransport, ITLSTransport
from reactor._stoplistening import PortStopper
from reactor._stream import SelectReactor, StreamConnection

__all__: list[str] = []

log = logging.getLogger("reactor.network")

_ACCEPT_BATCH = 64


def isIPv6Literal(host: str) -> bool:
    """Whether ``host`` is an IPv6 address literal (``::1``, ``fe80::1%lo``)."""
    try:
        return isinstance(ipaddress.ip_address(host.split("%", 1)[0]), ipaddress.IPv6Address)
    except ValueError:
        return False


def isIPLiteral(host: str) -> bool:
    """Whether ``host`` is an IPv4 or IPv6 address literal."""
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


def checkListenAddress(port: object, interface: object) -> None:
    """Raise at the call if ``port``/``interface`` cannot name a local IP address to bind.

    :raises ValueError: ``port`` not an int in 0..65535, or ``interface`` not an IP literal.
    :raises TypeError: ``interface`` not a str.
    """
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        raise ValueError(f"port must be an int in 0..65535, got {port!r}")
    if not isinstance(interface, str):
        raise TypeError(f"interface must be a str, got {type(interface).__name__}")
    if interface and not isIPLiteral(interface):
        raise ValueError(f"interface must be an IP address literal, got {interface!r}")


@implementer(ITCPTransport, ITLSTransport, ISSLTransport)
class TCPServerConnection(StreamConnection):
    """The transport of an accepted TCP connection."""

    addressKind = "TCP"

    def __init__(self, sock: socket.socket, protocol: Any, reactor: SelectReactor, peer: Any = None) -> None:
        super().__init__(sock, protocol, reactor)
        self._family = sock.family
        self._peer = peer
        self._host: Any = None

    def getPeer(self) -> IPv4Address | IPv6Address | UNIXAddress:
        """The remote address (cached: still available after the connection closed)."""
        if self._peer is None:
            self._peer = addressFromSockaddr(self._family, self.socket.getpeername(), "TCP")
        return self._peer  # type: ignore[no-any-return]

    def getHost(self) -> IPv4Address | IPv6Address | UNIXAddress:
        """The local address (cached: still available after the connection closed)."""
        if self._host is None:
            self._host = addressFromSockaddr(self._family, self.socket.getsockname(), "TCP")
        return self._host  # type: ignore[no-any-return]

    def connectionLost(self, reason: Failure) -> None:
        """Remember both addresses (the socket is about to close), then close as usual."""
        if not self.disconnected:
            try:
                self.getPeer()
                self.getHost()
            except OSError:
                pass
        super().connectionLost(reason)

    def getHandle(self) -> socket.socket:
        """The socket (for options this class does not wrap)."""
        return self.socket

    def setTcpNoDelay(self, enabled: bool) -> None:
        """Disable (True) or enable Nagle's algorithm."""
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, int(bool(enabled)))

    def getTcpNoDelay(self) -> bool:
        """Whether Nagle's algorithm is disabled."""
        return bool(self.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    def setTcpKeepAlive(self, enabled: bool) -> None:
        """Turn SO_KEEPALIVE on or off."""
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, int(bool(enabled)))

    def getTcpKeepAlive(self) -> bool:
        """Whether SO_KEEPALIVE is on."""
        return bool(self.socket.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE))


class TCPClientConnection(TCPServerConnection):
    """The transport of a connection made by a :class:`Connector`; reports its end to the connector."""

    def __init__(
        self, sock: socket.socket, protocol: Any, reactor: SelectReactor, connector: Connector
    ) -> None:
        super().__init__(sock, protocol, reactor)
        self.connector = connector

    def _isClient(self) -> bool:
        return True

    def _connectionLostHook(self, reason: Failure) -> None:
        self.connector._connectionLost(reason)


@implementer(IListeningPort)
class Port(PortStopper):
    """A listening TCP socket (the object ``listenTCP``/``listenSSL`` return).

    When ``accept()`` fails for want of descriptors or memory the port neither spins nor floods
    the log: it refuses waiting clients at once through a spare descriptor, or stops accepting for
    a while, and recovers by itself (``reactor._acceptlimits``).
    """

    family = socket.AF_INET
    connectionClass: type[TCPServerConnection] = TCPServerConnection
    # Whether the port holds a spare descriptor to refuse clients with when out of descriptors.
    _keepSpareDescriptor = True

    def __init__(
        self,
        port: int,
        factory: Any,
        backlog: int,
        interface: str,
        reactor: Any,
        contextFactory: Any = None,
        reusePort: bool = False,
    ) -> None:
        checkListenAddress(port, interface)
        if not isinstance(reusePort, bool):
            raise TypeError(f"reusePort must be a bool, got {reusePort!r}")
        if reusePort and not hasattr(socket, "SO_REUSEPORT"):
            raise ValueError("reusePort=True needs SO_REUSEPORT, which this platform does not have")
        # SO_REUSEPORT: several sockets (other processes') listen on one port; the kernel spreads connections.
        self.reusePort = reusePort
        if not isinstance(backlog, int) or backlog < 0:
            raise ValueError(f"backlog must be a non-negative int, got {backlog!r}")
        if not hasattr(factory, "buildProtocol"):
            raise TypeError(f"factory must provide buildProtocol, got {type(factory).__name__}")
        self.port = port
        self.factory = factory
        self.backlog = backlog
        self.interface = interface
        self.reactor = reactor
        self.contextFactory = contextFactory
        if interface and isIPv6Literal(interface):
            self.family = socket.AF_INET6
        self.socket: socket.socket | None = None
        self._fileno = -1
        self.connected = False
        self._acceptLimiter = AcceptLimiter(self, keepSpare=self._keepSpareDescriptor)

    def fileno(self) -> int:
        """The listening socket's descriptor (-1 when not listening)."""
        return self._fileno

    def logPrefix(self) -> str:
        """The factory's log prefix."""
        prefix = getattr(self.factory, "logPrefix", None)
        return prefix() if callable(prefix) else type(self.factory).__name__

    def _bindTarget(self) -> Any:
        return (self.interface or ("::" if self.family == socket.AF_INET6 else "0.0.0.0"), self.port)

    def _makeSocket(self) -> socket.socket:
        sock = socket.socket(self.family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if self.reusePort:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        return sock

    def startListening(self) -> None:
        """Bind, listen and register with the loop; raises CannotListenError."""
        try:
            sock = self._makeSocket()
        except OSError as e:
            raise CannotListenError(self.interface, self.port, e) from e
        try:
            sock.bind(self._bindTarget())
            sock.listen(self.backlog)
        except OSError as e:
            sock.close()
            raise CannotListenError(self.interface, self.port, e) from e
        sock.setblocking(False)
        self.socket = sock
        self._fileno = sock.fileno()
        self.connected = True
        self._acceptLimiter.started()
        self.factory.doStart()
        self.reactor.addReader(self)

    def _buildConnection(self, sock: socket.socket, protocol: Any, addr: Any) -> TCPServerConnection:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self.connectionClass(sock, protocol, self.reactor, addr)

    def _peerAddress(self, sockaddr: Any) -> Any:
        return addressFromSockaddr(self.family, sockaddr, "TCP")

    def doRead(self) -> None:
        """Accept the waiting connections (a bounded batch, so other sockets get their turn)."""
        if self.socket is None:
            return
        listener = self.socket
        limiter = self._acceptLimiter
        for _ in range(_ACCEPT_BATCH):
            try:
                sock, sockaddr = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                if e.errno in RESOURCE_ERRNOS:
                    # The connection stays queued and the socket readable: returning alone would
                    # bring us straight back here, so the limiter sheds or pauses.
                    limiter.acceptFailed(e, listener)
                    return
                if e.errno in SKIP_ERRNOS:
                    continue
                raise
            if limiter.failing:
                limiter.acceptSucceeded()
            addr = self._peerAddress(sockaddr)
            try:
                protocol = self.factory.buildProtocol(addr)
            except Exception:
                log.exception("%s.buildProtocol failed; dropping the connection", self.logPrefix())
                protocol = None
            if protocol is None:
                sock.close()
                continue
            transport = self._buildConnection(sock, protocol, addr)
            if self.contextFactory is not None:
                transport.startTLS(self.contextFactory, normal=True)
            try:
                protocol.makeConnection(transport)
            except Exception:
                # One protocol's bug must not stop the port accepting (as in Twisted): log it and
                # keep the connection, which the protocol may still use or close.
                name = type(protocol).__name__
                log.exception("%s: unhandled error in %s.connectionMade", self.logPrefix(), name)
            if not transport.disconnecting and not transport.disconnected and not transport._readPaused:
                transport.startReading()

    def doWrite(self) -> None:
        """Never registered for writing."""

    def connectionLost(self, reason: Failure) -> None:
        """Close the socket; called by stopListening, or by the loop if accept failed fatally."""
        if self.socket is None:
            return
        self.reactor.removeReader(self)
        sock, self.socket = self.socket, None
        self._fileno = -1
        self.connected = False
        try:
            self._acceptLimiter.stopped()
            self._cleanup(sock)
        finally:
            sock.close()
            try:
                self.factory.doStop()
            finally:
                self._stopped()

    def _cleanup(self, sock: socket.socket) -> None:
        """Subclasses remove what they created (a Unix socket file)."""

    def _stopReason(self) -> Failure:
        return Failure(ConnectError("port stopped listening"))

    def getHost(self) -> Any:
        """The bound address (with the real port number when 0 was asked)."""
        if self.socket is None:
            raise RuntimeError("the port is not listening")
        return addressFromSockaddr(self.family, self.socket.getsockname(), "TCP")

    def __repr__(self) -> str:
        where = self.getHost() if self.socket is not None else "not listening"
        return f"<{type(self).__name__} {self.logPrefix()} on {where}{self._acceptState()}>"

    def _acceptState(self) -> str:
        limiter = self._acceptLimiter
        if not limiter.failing:
            return ""
        state = "accepts paused" if limiter.paused else "refusing connections"
        return f" ({state}: {limiter.refused} refused, {limiter.failed} failed accepts)"


# Back-off of a Unix connect that the listener's full backlog refused with EAGAIN (seconds).
_UNIX_RETRY_FIRST_DELAY = 0.001
_UNIX_RETRY_MAX_DELAY = 0.1


class _ConnectAttempt:
    """The selectable of one in-progress non-blocking connect (registered for writing)."""

    def __init__(self, connector: Connector, sock: socket.socket) -> None:
        self.connector = connector
        self.socket = sock
        self._fileno = sock.fileno()
        # A Unix connect refused with EAGAIN (backlog full) is retried on this timer.
        self.retry: Any = None
        self.retryDelay = _UNIX_RETRY_FIRST_DELAY

    def fileno(self) -> int:
        return self._fileno

    def logPrefix(self) -> str:
        return "connecting"

    def doRead(self) -> None:
        return None

    def doWrite(self) -> None:
        self.connector._connectAttemptWritable(self)

    def connectionLost(self, reason: Failure) -> None:
        self.connector._attemptFailed(self, reason)


@implementer(IConnector)
class Connector:
    """One ``connectTCP``/``connectSSL``: the attempt, and then the connection it made."""

    family = socket.AF_INET
    connectionClass: type[TCPClientConnection] = TCPClientConnection

    def __init__(
        self,
        host: str,
        port: int,
        factory: Any,
        timeout: float | None,
        bindAddress: Any,
        reactor: Any,
        contextFactory: Any = None,
    ) -> None:
        if not isinstance(host, str) or not host:
            raise TypeError(f"host must be a non-empty str, got {host!r}")
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port <= 65535:
            raise ValueError(f"port must be an int in 1..65535, got {port!r}")
        self._checkCommon(factory, timeout)
        self.host = host
        self.port = port
        self.factory = factory
        self.timeout = timeout
        self.bindAddress = bindAddress
        self.reactor = reactor
        self.contextFactory = contextFactory
        self.state = "disconnected"
        self.transport: TCPClientConnection | None = None
        self._attempt: _ConnectAttempt | None = None
        self._timer: Any = None
        self._factoryStarted = False

    @staticmethod
    def _checkCommon(factory: Any, timeout: float | None) -> None:
        if not hasattr(factory, "buildProtocol"):
            raise TypeError(f"factory must provide buildProtocol, got {type(factory).__name__}")
        if timeout is not None and (not isinstance(timeout, int | float) or timeout <= 0):
            raise ValueError(f"timeout must be a positive number or None, got {timeout!r}")

    def getDestination(self) -> Any:
        """The address we connect to (the host as given, before resolution)."""
        if isIPv6Literal(self.host):
            return IPv6Address("TCP", self.host, self.port)
        return IPv4Address("TCP", self.host, self.port)

    def connect(self) -> None:
        """Start an attempt (again, after a failure or a lost connection)."""
        if self.state != "disconnected":
            raise RuntimeError(f"cannot connect in state {self.state!r}")
        self.state = "connecting"
        if not self._factoryStarted:
            self._factoryStarted = True
            self.factory.doStart()
        startedConnecting = getattr(self.factory, "startedConnecting", None)
        if startedConnecting is not None:
            startedConnecting(self)
        if self.state != "connecting":  # startedConnecting may stop us
            return
        if self.timeout is not None:
            self._timer = self.reactor.callLater(self.timeout, self._timedOut)
        self._resolveThenConnect()

    def _resolveThenConnect(self) -> None:
        host = self.host
        if host == "localhost":
            self._startSocket(socket.AF_INET, ("127.0.0.1", self.port))
        elif isIPLiteral(host):
            family = socket.AF_INET6 if isIPv6Literal(host) else socket.AF_INET
            self._startSocket(family, (host, self.port))
        else:
            # getaddrinfo blocks; run it on a short-lived thread and come back with callFromThread.
            def resolve() -> None:
                try:
                    infos = socket.getaddrinfo(host, self.port, type=socket.SOCK_STREAM)
                    family, _, _, _, sockaddr = infos[0]
                    self.reactor.callFromThread(self._resolved, family, sockaddr)
                except OSError as e:
                    self.reactor.callFromThread(self._failed, Failure(DNSLookupError(osError=str(e))))

            threading.Thread(target=resolve, name=f"resolve {host}", daemon=True).start()

    def _resolved(self, family: int, sockaddr: Any) -> None:
        if self.state == "connecting" and self._attempt is None:
            self._startSocket(family, sockaddr)

    def _makeSocket(self, family: int) -> socket.socket:
        return socket.socket(family, socket.SOCK_STREAM)

    def _startSocket(self, family: int, sockaddr: Any) -> None:
        try:
            sock = self._makeSocket(family)
        except OSError as e:
            self._failed(Failure(connectErrorFromOSError(e)))
            return
        sock.setblocking(False)
        try:
            if self.bindAddress is not None:
                sock.bind(self.bindAddress)
        except OSError as e:
            sock.close()
            self._failed(Failure(connectErrorFromOSError(e)))
            return
        attempt = _ConnectAttempt(self, sock)
        self._attempt = attempt
        self._connectOnce(attempt, sockaddr)

    def _connectOnce(self, attempt: _ConnectAttempt, sockaddr: Any) -> None:
        if attempt is not self._attempt:
            return
        attempt.retry = None
        sock = attempt.socket
        try:
            err = sock.connect_ex(sockaddr)
        except OSError as e:
            self._attemptFailed(attempt, Failure(connectErrorFromOSError(e)))
            return
        if err == errno.EAGAIN and sock.family == socket.AF_UNIX:
            # Linux: the Unix listener's backlog is full. A TCP connect would wait; this one
            # says EAGAIN at once. Twisted takes that as "in progress" and waits for
            # writability, but an unconnected Unix socket is always writable (that would
            # spin), so ask again on a timer, backing off, until it succeeds or times out.
            delay = attempt.retryDelay
            attempt.retryDelay = min(delay * 2, _UNIX_RETRY_MAX_DELAY)
            attempt.retry = self.reactor.callLater(delay, self._connectOnce, attempt, sockaddr)
            return
        if err in (0, errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN):
            self.reactor.addWriter(attempt)
        else:
            error = OSError(err, os.strerror(err))
            self._attemptFailed(attempt, Failure(connectErrorFromOSError(error)))

    def _connectAttemptWritable(self, attempt: _ConnectAttempt) -> None:
        if attempt is not self._attempt:
            return
        self.reactor.removeWriter(attempt)
        sock = attempt.socket
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self._attemptFailed(attempt, Failure(connectErrorFromOSError(OSError(err, os.strerror(err)))))
            return
        self._attempt = None
        self._cancelTimer()
        try:
            protocol = self.factory.buildProtocol(self.getDestination())
        except Exception:
            sock.close()
            self._failed(Failure())
            return
        if protocol is None:
            sock.close()
            self._failed(Failure(ConnectError("the factory's buildProtocol returned None")))
            return
        self.state = "connected"
        transport = self._buildConnection(sock, protocol)
        self.transport = transport
        if self.contextFactory is not None:
            transport.startTLS(self.contextFactory, normal=True)
        try:
            protocol.makeConnection(transport)
        except Exception:
            # As Twisted's loop does for an error in a client's connectionMade: log it and close
            # the connection with that error as the reason (the factory hears clientConnectionLost).
            log.exception("unhandled error in %s.connectionMade", type(protocol).__name__)
            transport.connectionLost(Failure())
            return
        if not transport.disconnecting and not transport.disconnected and not transport._readPaused:
            transport.startReading()

    def _buildConnection(self, sock: socket.socket, protocol: Any) -> TCPClientConnection:
        if sock.family != socket.AF_UNIX:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self.connectionClass(sock, protocol, self.reactor, self)

    def _attemptFailed(self, attempt: _ConnectAttempt, reason: Failure) -> None:
        if attempt is not self._attempt:
            return
        self._attempt = None
        retry, attempt.retry = attempt.retry, None
        if retry is not None and retry.active():
            retry.cancel()
        self.reactor.removeWriter(attempt)
        attempt.socket.close()
        self._failed(reason)

    def _timedOut(self) -> None:
        self._timer = None
        self._abandon(ConnectTimeoutError(f"after {self.timeout} s"))

    def _abandon(self, error: ConnectError) -> None:
        if self.state != "connecting":
            return
        attempt = self._attempt
        if attempt is not None:
            self._attemptFailed(attempt, Failure(error))
        else:
            self._failed(Failure(error))

    def _cancelTimer(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None and timer.active():
            timer.cancel()

    def _failed(self, reason: Failure) -> None:
        if self.state != "connecting":
            return
        self._cancelTimer()
        self.state = "disconnected"
        self.factory.clientConnectionFailed(self, reason)
        if self.state == "disconnected":
            self._stopFactory()

    def _connectionLost(self, reason: Failure) -> None:
        self.state = "disconnected"
        self.transport = None
        lost = getattr(self.factory, "clientConnectionLost", None)
        if lost is not None:
            lost(self, reason)
        if self.state == "disconnected":
            self._stopFactory()

    def _stopFactory(self) -> None:
        if self._factoryStarted:
            self._factoryStarted = False
            self.factory.doStop()

    def stopConnecting(self) -> None:
        """Abandon the attempt; the factory gets ``clientConnectionFailed(UserError)``."""
        if self.state != "connecting":
            raise NotConnectingError(f"stopConnecting() in state {self.state!r}: not connecting")
        self._abandon(UserError("stopConnecting() was called"))

    def disconnect(self) -> None:
        """Stop connecting, or close the connection cleanly."""
        if self.state == "connecting":
            self.stopConnecting()
        elif self.state == "connected" and self.transport is not None:
            self.transport.loseConnection()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.host}:{self.port} {self.state}>"
