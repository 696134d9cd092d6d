"""Endpoint addresses returned by ``transport.getPeer()``/``getHost()`` and given to datagram protocols.

Immutable value objects (frozen dataclasses): compare and hash by value, safe to share across threads.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

from zope.interface import implementer

from reactor._netinterfaces import IAddress

__all__ = ["IPv4Address", "IPv6Address", "UNIXAddress"]


@implementer(IAddress)
@dataclass(frozen=True)
class IPv4Address:
    """An IPv4 socket address; ``type`` is ``"TCP"`` or ``"UDP"``."""

    type: Literal["TCP", "UDP"]
    host: str
    port: int


@implementer(IAddress)
@dataclass(frozen=True)
class IPv6Address:
    """An IPv6 socket address; ``flowInfo`` and ``scopeID`` as in ``socket.getaddrinfo``."""

    type: Literal["TCP", "UDP"]
    host: str
    port: int
    flowInfo: int = 0
    scopeID: int | str = 0


@implementer(IAddress)
@dataclass(frozen=True)
class UNIXAddress:
    """A Unix socket path (``None`` for an unnamed socket, such as a connecting client's)."""

    name: str | None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, UNIXAddress):
            return NotImplemented
        if self.name == other.name:
            return True
        if self.name is None or other.name is None:
            return False
        try:
            return os.path.samefile(self.name, other.name)
        except OSError:
            return False

    def __hash__(self) -> int:
        return hash(self.name)


def addressFromSockaddr(
    family: int, sockaddr: object, kind: Literal["TCP", "UDP"]
) -> IPv4Address | IPv6Address | UNIXAddress:
    """The address object for a ``sockaddr`` from ``getsockname``/``getpeername``/``recvfrom``."""
    import socket

    if family == socket.AF_INET6:
        assert isinstance(sockaddr, tuple)
        host, port, flowInfo, scopeID = sockaddr
        return IPv6Address(kind, host, port, flowInfo, scopeID)
    if family == socket.AF_UNIX:
        if isinstance(sockaddr, bytes):
            sockaddr = sockaddr.decode("utf-8", "surrogateescape")
        return UNIXAddress(sockaddr or None)  # type: ignore[arg-type]
    assert isinstance(sockaddr, tuple)
    return IPv4Address(kind, sockaddr[0], sockaddr[1])
