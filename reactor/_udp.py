"""UDP ports (``listenUDP``/``listenMulticast``): a bound datagram socket that is its protocol's transport.

The loop calls ``doRead`` when datagrams wait; the port reads a bounded batch and hands each to
``protocol.datagramReceived(data, (host, port))``. ``write`` sends at once (UDP has no send queue:
a datagram the kernel cannot take right now is dropped, as the network may drop it; an oversized
one raises MessageLengthError). Multicast: ``joinGroup``/``leaveGroup``, TTL, loopback mode and
outgoing interface (IPv4). Reactor thread only.
"""

from __future__ import annotations

import errno
import socket
import struct
from typing import Any

from zope.interface import implementer

from reactor._address import IPv4Address, IPv6Address, addressFromSockaddr
from reactor._deferred import Deferred
from reactor._failure import Failure
from reactor._neterrors import CannotListenError, InvalidAddressError, MessageLengthError
from reactor._netinterfaces import IListeningPort, IMulticastTransport, IUDPTransport
from reactor._stoplistening import PortStopper
from reactor._tcp import checkListenAddress, isIPLiteral, isIPv6Literal

__all__: list[str] = []

_READ_BATCH = 64


@implementer(IUDPTransport, IMulticastTransport, IListeningPort)
class UDPPort(PortStopper):
    """A UDP socket bound to ``interface:port``; ``listenMultiple`` allows sharing the port (multicast)."""

    def __init__(
        self,
        port: int,
        protocol: Any,
        interface: str,
        maxPacketSize: int,
        reactor: Any,
        listenMultiple: bool = False,
    ) -> None:
        checkListenAddress(port, interface)
        if not isinstance(maxPacketSize, int) or maxPacketSize <= 0:
            raise ValueError(f"maxPacketSize must be a positive int, got {maxPacketSize!r}")
        if not hasattr(protocol, "datagramReceived"):
            raise TypeError(f"protocol must provide datagramReceived, got {type(protocol).__name__}")
        self.port = port
        self.protocol = protocol
        self.interface = interface
        self.maxPacketSize = maxPacketSize
        self.reactor = reactor
        self.listenMultiple = listenMultiple
        self.family = socket.AF_INET6 if interface and isIPv6Literal(interface) else socket.AF_INET
        self.socket: socket.socket | None = None
        self._fileno = -1
        self._connectedAddr: tuple[str, int] | None = None

    def fileno(self) -> int:
        """The socket's descriptor (-1 when closed)."""
        return self._fileno

    def logPrefix(self) -> str:
        """The protocol's class name."""
        return type(self.protocol).__name__

    def startListening(self) -> None:
        """Bind and register with the loop; raises CannotListenError. Calls the protocol's makeConnection."""
        try:
            sock = socket.socket(self.family, socket.SOCK_DGRAM)
        except OSError as e:
            raise CannotListenError(self.interface, self.port, e) from e
        try:
            if self.listenMultiple:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if hasattr(socket, "SO_REUSEPORT"):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            host = self.interface or ("::" if self.family == socket.AF_INET6 else "0.0.0.0")
            sock.bind((host, self.port))
        except OSError as e:
            sock.close()
            raise CannotListenError(self.interface, self.port, e) from e
        sock.setblocking(False)
        self.socket = sock
        self._fileno = sock.fileno()
        self.protocol.makeConnection(self)
        self.reactor.addReader(self)

    def _sock(self) -> socket.socket:
        if self.socket is None:
            raise RuntimeError("the UDP port is not listening")
        return self.socket

    def doRead(self) -> None:
        """Deliver a bounded batch of waiting datagrams."""
        sock = self.socket
        if sock is None:
            return
        recvfrom = sock.recvfrom
        size = self.maxPacketSize
        for _ in range(_READ_BATCH):
            try:
                data, addr = recvfrom(size)
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionRefusedError:
                if self._connectedAddr is not None:
                    self.protocol.connectionRefused()
                continue
            except OSError as e:
                if e.errno in (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EMSGSIZE):
                    continue
                raise
            self.protocol.datagramReceived(data, addr[:2] if self.family == socket.AF_INET6 else addr)
            if self.socket is None:
                return

    def doWrite(self) -> None:
        """Never registered for writing."""

    def write(self, datagram: bytes, addr: Any = None) -> None:
        """Send ``datagram`` to ``addr`` ((host, port) with an IP literal host) or the connected address.

        Raises MessageLengthError if too long; a datagram the kernel refuses for lack of buffer space
        is dropped (UDP is lossy anyway).
        """
        if not isinstance(datagram, bytes | bytearray | memoryview):
            raise TypeError(f"datagram must be bytes, not {type(datagram).__name__}")
        sock = self._sock()
        try:
            if self._connectedAddr is not None:
                if addr is not None and tuple(addr) != self._connectedAddr:
                    raise ValueError(f"this port is connected to {self._connectedAddr}; addr must be None")
                sock.send(datagram)
            else:
                if addr is None:
                    raise ValueError("addr is required on an unconnected UDP port")
                host, port = addr
                if not isIPLiteral(host):
                    raise InvalidAddressError(f"addr host must be an IP address literal, got {host!r}")
                sock.sendto(datagram, (host, port))
        except (BlockingIOError, InterruptedError):
            return
        except ConnectionRefusedError:
            if self._connectedAddr is not None:
                self.protocol.connectionRefused()
        except OSError as e:
            if e.errno == errno.EMSGSIZE:
                raise MessageLengthError(f"datagram of {len(datagram)} bytes is too long") from e
            if e.errno in (errno.ENOBUFS, errno.EAGAIN):
                return
            raise

    def writeSequence(self, seq: Any, addr: Any = None) -> None:
        """Send the concatenation of ``seq`` as one datagram."""
        self.write(b"".join(seq), addr)

    def connect(self, host: str, port: int) -> None:
        """Exchange datagrams only with ``host:port`` (an IP literal); refusals reach connectionRefused."""
        if self._connectedAddr is not None:
            raise RuntimeError("the UDP port is already connected")
        if not isIPLiteral(host):
            raise InvalidAddressError(f"host must be an IP address literal, got {host!r}")
        self._sock().connect((host, port))
        self._connectedAddr = (host, port)

    def getHost(self) -> IPv4Address | IPv6Address:
        """The bound address."""
        addr = addressFromSockaddr(self.family, self._sock().getsockname(), "UDP")
        assert isinstance(addr, IPv4Address | IPv6Address)
        return addr

    def setBroadcastAllowed(self, enabled: bool) -> None:
        """Allow (True) sending to broadcast addresses."""
        self._sock().setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, int(bool(enabled)))

    def getBroadcastAllowed(self) -> bool:
        """Whether broadcast is allowed."""
        return bool(self._sock().getsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST))

    def connectionLost(self, reason: Failure | None = None) -> None:
        """Close the socket and stop the protocol; called by stopListening or by the loop."""
        if self.socket is None:
            return
        self.reactor.removeReader(self)
        sock, self.socket = self.socket, None
        self._fileno = -1
        sock.close()
        try:
            self.protocol.doStop()
        finally:
            self._stopped()

    # -- multicast (IPv4) ----------------------------------------------------------------------

    def getTTL(self) -> int:
        """The time-to-live of outgoing multicast datagrams."""
        return self._sock().getsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL)

    def setTTL(self, ttl: int) -> None:
        """Set it (0..255)."""
        if not isinstance(ttl, int) or not 0 <= ttl <= 255:
            raise ValueError(f"ttl must be an int in 0..255, got {ttl!r}")
        self._sock().setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, struct.pack("B", ttl))

    def getLoopbackMode(self) -> bool:
        """Whether our own multicast datagrams come back to us."""
        return bool(self._sock().getsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP))

    def setLoopbackMode(self, mode: bool) -> None:
        """Loop our own multicast datagrams back (True) or not."""
        self._sock().setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, struct.pack("B", bool(mode)))

    def getOutgoingInterface(self) -> str:
        """The IPv4 address multicast datagrams leave from ("0.0.0.0": the kernel chooses)."""
        raw = self._sock().getsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, 4)
        return socket.inet_ntoa(raw)

    def setOutgoingInterface(self, addr: str) -> Deferred[None]:
        """Send multicast datagrams from the interface whose address is ``addr``."""
        return self._deferredSockopt(socket.IP_MULTICAST_IF, socket.inet_aton(addr))

    def joinGroup(self, addr: str, interface: str = "") -> Deferred[None]:
        """Join group ``addr`` on ``interface`` (an IPv4 address; "" lets the kernel choose).

        The Deferred fires with None, or errbacks with the OSError if the kernel refuses.
        """
        return self._membership(socket.IP_ADD_MEMBERSHIP, addr, interface)

    def leaveGroup(self, addr: str, interface: str = "") -> Deferred[None]:
        """Leave group ``addr``; the Deferred fires with None or errbacks with the OSError."""
        return self._membership(socket.IP_DROP_MEMBERSHIP, addr, interface)

    def _membership(self, option: int, addr: str, interface: str) -> Deferred[None]:
        try:
            mreq = socket.inet_aton(addr) + socket.inet_aton(interface or "0.0.0.0")
        except OSError:
            raise ValueError(
                f"addr and interface must be IPv4 literals, got {addr!r}, {interface!r}"
            ) from None
        return self._deferredSockopt(option, mreq)

    def _deferredSockopt(self, option: int, value: bytes) -> Deferred[None]:
        d: Deferred[None] = Deferred()
        try:
            self._sock().setsockopt(socket.IPPROTO_IP, option, value)
        except OSError:
            d.errback(Failure())
        else:
            d.callback(None)
        return d

    def __repr__(self) -> str:
        where = self.getHost() if self.socket is not None else "not listening"
        return f"<UDPPort {self.logPrefix()} on {where}>"
