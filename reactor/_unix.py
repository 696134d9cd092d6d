"""Unix-domain stream sockets: ``listenUNIX`` ports and ``connectUNIX`` connectors.

The TCP classes do the work (``reactor._tcp``); these change the socket family and the addresses,
and the port removes its socket file when it stops listening. Reactor thread only.
"""

from __future__ import annotations

import os
import socket
import stat
from typing import Any

from zope.interface import implementer

from reactor._address import UNIXAddress
from reactor._neterrors import CannotListenError
from reactor._netinterfaces import IUNIXTransport
from reactor._tcp import Connector, Port, TCPClientConnection, TCPServerConnection

__all__: list[str] = []


def _pathName(address: str | bytes | os.PathLike[str]) -> str:
    if isinstance(address, bytes):
        return address.decode("utf-8", "surrogateescape")
    if isinstance(address, str | os.PathLike):
        return os.fspath(address)
    raise TypeError(f"address must be a path (str), got {type(address).__name__}")


def _addr(sockaddr: Any) -> UNIXAddress:
    if isinstance(sockaddr, bytes):
        sockaddr = sockaddr.decode("utf-8", "surrogateescape")
    return UNIXAddress(sockaddr or None)


@implementer(IUNIXTransport)
class UNIXServerConnection(TCPServerConnection):
    """An accepted Unix-domain connection."""

    def getPeer(self) -> UNIXAddress:  # type: ignore[override]
        """The peer's socket path (None for an unnamed client socket)."""
        if self._peer is None:
            self._peer = _addr(self.socket.getpeername())
        return self._peer  # type: ignore[no-any-return]

    def getHost(self) -> UNIXAddress:  # type: ignore[override]
        """Our socket path."""
        if self._host is None:
            self._host = _addr(self.socket.getsockname())
        return self._host  # type: ignore[no-any-return]

    def setTcpNoDelay(self, enabled: bool) -> None:
        """No-op: Unix sockets have no Nagle algorithm."""

    def getTcpNoDelay(self) -> bool:
        """Always False on Unix sockets."""
        return False

    def setTcpKeepAlive(self, enabled: bool) -> None:
        """No-op on Unix sockets."""

    def getTcpKeepAlive(self) -> bool:
        """Always False on Unix sockets."""
        return False


@implementer(IUNIXTransport)
class UNIXClientConnection(TCPClientConnection, UNIXServerConnection):
    """A Unix-domain connection made by ``connectUNIX``."""


class UNIXPort(Port):
    """A listening Unix socket; removes its file when it stops listening.

    Out of descriptors or memory, it refuses or pauses accepts and recovers as a TCP port does.
    """

    family = socket.AF_UNIX
    connectionClass = UNIXServerConnection

    def __init__(self, address: str, factory: Any, backlog: int, mode: int, reactor: Any) -> None:
        super().__init__(0, factory, backlog, "", reactor)
        self.family = socket.AF_UNIX
        self.path = _pathName(address)
        if not isinstance(mode, int):
            raise TypeError(f"mode must be an int (such as 0o666), got {type(mode).__name__}")
        self.mode = mode

    def _bindTarget(self) -> Any:
        return self.path

    def _makeSocket(self) -> socket.socket:
        return socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)

    def startListening(self) -> None:
        """Bind and listen on the path; a stale socket file left by a dead process is replaced."""
        try:
            if stat.S_ISSOCK(os.stat(self.path).st_mode):
                probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    if probe.connect_ex(self.path) != 0:
                        os.unlink(self.path)
                finally:
                    probe.close()
        except FileNotFoundError:
            pass
        except OSError as e:
            raise CannotListenError(self.path, self.path, e) from e
        super().startListening()
        try:
            os.chmod(self.path, self.mode)
        except OSError:
            pass

    def _buildConnection(self, sock: socket.socket, protocol: Any, addr: Any) -> TCPServerConnection:
        return self.connectionClass(sock, protocol, self.reactor, addr)

    def _peerAddress(self, sockaddr: Any) -> Any:
        return _addr(sockaddr)

    def _cleanup(self, sock: socket.socket) -> None:
        try:
            os.unlink(self.path)
        except OSError:
            pass

    def getHost(self) -> Any:
        """The socket path."""
        return UNIXAddress(self.path)

    def __repr__(self) -> str:
        return f"<UNIXPort {self.logPrefix()} on {self.path}{self._acceptState()}>"


class UNIXConnector(Connector):
    """One ``connectUNIX``."""

    connectionClass = UNIXClientConnection

    def __init__(self, address: str, factory: Any, timeout: float | None, reactor: Any) -> None:
        self._checkCommon(factory, timeout)
        self.path = _pathName(address)
        self.host = self.path
        self.port = 0
        self.factory = factory
        self.timeout = timeout
        self.bindAddress = None
        self.reactor = reactor
        self.contextFactory = None
        self.state = "disconnected"
        self.transport = None
        self._attempt = None
        self._timer = None
        self._factoryStarted = False

    def getDestination(self) -> Any:
        """The socket path."""
        return UNIXAddress(self.path)

    def _resolveThenConnect(self) -> None:
        self._startSocket(socket.AF_UNIX, self.path)

    def __repr__(self) -> str:
        return f"<UNIXConnector {self.path} {self.state}>"
