"""Exceptions of the networking layer (Twisted keeps these in ``twisted.internet.error``).

A protocol's ``connectionLost`` receives a Failure wrapping one of these: :class:`ConnectionDone`
when the connection closed cleanly (either side called ``loseConnection`` or the peer shut down its
sending side in order) and :class:`ConnectionLost` when it ended by an error (a reset, an abort, a
broken pipe). A client factory's ``clientConnectionFailed`` receives a :class:`ConnectError`
subclass.
"""

from __future__ import annotations

import builtins
import errno
import socket

from reactor._errors import TimeoutError as _DeferredTimeoutError

__all__ = [
    "CannotListenError",
    "ConnectError",
    "ConnectTimeoutError",
    "ConnectingCancelledError",
    "ConnectionAborted",
    "ConnectionClosed",
    "ConnectionDone",
    "ConnectionLost",
    "ConnectionRefusedError",
    "DNSLookupError",
    "InvalidAddressError",
    "MessageLengthError",
    "NotConnectingError",
    "NotTLSTransportError",
    "UserError",
]


class ConnectionClosed(Exception):
    """Base of the reasons a connection ended (clean or not)."""


class ConnectionDone(ConnectionClosed):
    """The connection was closed cleanly: all written data was handed to the kernel."""

    def __str__(self) -> str:
        return "Connection was closed cleanly." + (f" {self.args[0]}" if self.args else "")


class ConnectionLost(ConnectionClosed):
    """The connection ended by an error (reset, broken pipe, ...); buffered data may be lost."""

    def __str__(self) -> str:
        return "Connection to the other side was lost in a non-clean fashion." + (
            f" {self.args[0]}" if self.args else ""
        )


class ConnectionAborted(ConnectionLost):
    """The connection was ended by ``abortConnection()``: buffered data was discarded."""


class ConnectError(Exception):
    """An outgoing connection attempt failed; ``osError`` holds the socket error if any."""

    def __init__(self, message: str = "", osError: str | None = None) -> None:
        super().__init__(message, osError)
        self.message = message
        self.osError = osError

    def __str__(self) -> str:
        doc = type(self).__doc__
        text = doc.splitlines()[0] if doc else "Connection failed"
        if self.osError:
            text = f"{text}: {self.osError}"
        if self.message:
            text = f"{text}: {self.message}"
        return text


class ConnectionRefusedError(ConnectError):
    """Connection was refused by the other side."""


class ConnectTimeoutError(ConnectError, _DeferredTimeoutError):
    """The connection attempt timed out.

    Also a :class:`reactor.TimeoutError`, so code catching the reactor's timeout catches it.
    """


class ConnectingCancelledError(ConnectError):
    """The connection attempt was cancelled (``stopConnecting()`` or Deferred cancellation)."""


class DNSLookupError(ConnectError):
    """The host name could not be resolved."""


class UserError(ConnectError):
    """The connection attempt was stopped by the user."""


class NotConnectingError(RuntimeError):
    """``stopConnecting()`` was called on a connector that is not connecting (Twisted's name)."""


class CannotListenError(OSError):
    """A port could not be bound/listened on; ``interface``, ``port`` and ``socketError`` say why."""

    def __init__(self, interface: str, port: int | str, socketError: BaseException) -> None:
        super().__init__(interface, port, socketError)
        self.interface = interface
        self.port = port
        self.socketError = socketError

    def __str__(self) -> str:
        where = self.interface or "any"
        return f"Couldn't listen on {where}:{self.port}: {self.socketError}."


class InvalidAddressError(ValueError):
    """An address the call cannot use as given (a UDP port takes IP literals, not host names)."""


class MessageLengthError(ValueError):
    """A datagram was too long for the port's ``maxPacketSize`` or the kernel."""


class NotTLSTransportError(TypeError):
    """A TLS-only method (``getPeerCertificate``) was called on a transport that is not using TLS."""


def connectErrorFromOSError(err: OSError) -> ConnectError:
    """Map a connect-time ``OSError`` to the matching :class:`ConnectError` subclass."""
    text = f"{err.errno}: {err.strerror}" if err.errno else str(err)
    if isinstance(err, socket.gaierror):
        return DNSLookupError(osError=text)
    if isinstance(err, builtins.ConnectionRefusedError) or err.errno == errno.ECONNREFUSED:
        return ConnectionRefusedError(osError=text)
    if isinstance(err, builtins.TimeoutError) or err.errno == errno.ETIMEDOUT:
        return ConnectTimeoutError(osError=text)
    return ConnectError(osError=text)
