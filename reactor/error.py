"""Networking errors under Twisted's module name (``twisted.internet.error``).

The same classes are re-exported by :mod:`reactor.protocol`; see ``reactor._neterrors`` for their
meaning.
"""

from __future__ import annotations

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
    MessageLengthError,
    NotTLSTransportError,
    UserError,
)

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
    "MessageLengthError",
    "NotTLSTransportError",
    "UserError",
]
