"""Networking and reactor errors under Twisted's module name (``twisted.internet.error``).

The networking classes are re-exported by :mod:`reactor.protocol`; see ``reactor._neterrors`` for
their meaning. The timed-call and reactor-state errors (``AlreadyCalled``, ``ReactorNotRunning``, ...)
are the same classes as in :mod:`reactor`, so ported ``except error.AlreadyCalled`` clauses keep
working. ``TimeoutError`` and ``TCPTimedOutError`` are Twisted's names for a connection attempt that
timed out; both are :class:`ConnectTimeoutError` here (a ``ConnectError`` and a ``reactor.TimeoutError``).
"""

from __future__ import annotations

from reactor._errors import (
    AlreadyCalled,
    AlreadyCancelled,
    ReactorAlreadyInstalledError,
    ReactorAlreadyRunning,
    ReactorNotRestartable,
    ReactorNotRunning,
)
from reactor._neterrors import (
    CannotListenError,
    ConnectError,
    ConnectingCancelledError,
    ConnectionAborted,
    ConnectionClosed,
    ConnectionDone,
    ConnectionLost,
    ConnectionRefusedError,
    ConnectTimeoutError,
    DNSLookupError,
    InvalidAddressError,
    MessageLengthError,
    NotConnectingError,
    NotTLSTransportError,
    UserError,
)

# Twisted's names for a timed-out connection attempt; one class here (see the module docstring).
TimeoutError = ConnectTimeoutError
TCPTimedOutError = ConnectTimeoutError

__all__ = [
    "AlreadyCalled",
    "AlreadyCancelled",
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
    "ReactorAlreadyInstalledError",
    "ReactorAlreadyRunning",
    "ReactorNotRestartable",
    "ReactorNotRunning",
    "TCPTimedOutError",
    "TimeoutError",
    "UserError",
]
