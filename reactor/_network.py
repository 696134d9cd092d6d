"""The networking methods of the reactor: TCP, Unix, UDP (+ multicast) and TLS.

``ReactorNetworkMixin`` is inherited by the reactor class (``reactor._loop.Reactor``); it only uses
the loop's ``addReader``/``addWriter``/``removeReader``/``removeWriter``/``callLater``/
``callFromThread``, so any reactor offering those gets networking. Call these methods in the reactor
thread (or before ``run()``); bad arguments raise at the call; a port that cannot bind raises
CannotListenError at the call; a connection that cannot be made is reported to the factory's
``clientConnectionFailed``.
"""

from __future__ import annotations

from typing import Any

from zope.interface import implementer

from reactor._netinterfaces import IReactorMulticast, IReactorSSL, IReactorTCP, IReactorUDP, IReactorUNIX
from reactor._tcp import Connector, Port
from reactor._udp import UDPPort
from reactor._unix import UNIXConnector, UNIXPort

__all__: list[str] = []


def _requireContextFactory(contextFactory: Any, server: bool) -> None:
    wanted = "serverConnectionForTLS" if server else "clientConnectionForTLS"
    if not (hasattr(contextFactory, wanted) or hasattr(contextFactory, "getContext")):
        raise TypeError(
            f"contextFactory must provide {wanted}() or getContext(), got {type(contextFactory).__name__}"
        )


@implementer(IReactorTCP, IReactorUNIX, IReactorUDP, IReactorMulticast, IReactorSSL)
class ReactorNetworkMixin:
    """Mixed into the reactor class: TCP, Unix, UDP and TLS listen/connect methods."""

    def listenTCP(
        self, port: int, factory: Any, backlog: int = 50, interface: str = "", *, reusePort: bool = False
    ) -> Port:
        """Listen on ``interface:port`` (an IPv4 or IPv6 literal; "" is every IPv4 address).

        Returns the listening Port (``getHost()``, ``stopListening()`` -> Deferred). Port 0 picks a
        free port. Raises CannotListenError if the address cannot be bound. ``reusePort=True`` sets
        SO_REUSEPORT: other sockets with it set, of the same user, may listen on the same port, and the
        kernel spreads new connections over them (one per worker process: ``reactor.prefork``).
        """
        p = Port(port, factory, backlog, interface, self, reusePort=reusePort)
        p.startListening()
        return p

    def connectTCP(
        self,
        host: str,
        port: int,
        factory: Any,
        timeout: float | None = 30,
        bindAddress: tuple[str, int] | None = None,
    ) -> Connector:
        """Connect to ``host:port`` (IPv4/IPv6 literal or a name, resolved off-thread) with ``factory``.

        Returns the Connector. Failures (refused, timed out after ``timeout`` s, unresolvable) reach
        ``factory.clientConnectionFailed(connector, reason)``.
        """
        c = Connector(host, port, factory, timeout, bindAddress, self)
        c.connect()
        return c

    def listenSSL(
        self,
        port: int,
        factory: Any,
        contextFactory: Any,
        backlog: int = 50,
        interface: str = "",
        *,
        reusePort: bool = False,
    ) -> Port:
        """As ``listenTCP``, with TLS on every accepted connection (``contextFactory``: server options)."""
        _requireContextFactory(contextFactory, server=True)
        p = Port(port, factory, backlog, interface, self, contextFactory=contextFactory, reusePort=reusePort)
        p.startListening()
        return p

    def connectSSL(
        self,
        host: str,
        port: int,
        factory: Any,
        contextFactory: Any = None,
        timeout: float | None = 30,
        bindAddress: tuple[str, int] | None = None,
    ) -> Connector:
        """As ``connectTCP``, with TLS. ``contextFactory`` None means ``optionsForClientTLS(host)``:
        the server's certificate is checked against the system trust store and must name ``host``.
        """
        if contextFactory is None:
            from reactor._tlsoptions import optionsForClientTLS

            contextFactory = optionsForClientTLS(host)
        _requireContextFactory(contextFactory, server=False)
        c = Connector(host, port, factory, timeout, bindAddress, self, contextFactory=contextFactory)
        c.connect()
        return c

    def listenUNIX(self, address: str, factory: Any, backlog: int = 50, mode: int = 0o666) -> UNIXPort:
        """Listen on the Unix socket path ``address`` (created with permissions ``mode``)."""
        p = UNIXPort(address, factory, backlog, mode, self)
        p.startListening()
        return p

    def connectUNIX(self, address: str, factory: Any, timeout: float | None = 30) -> UNIXConnector:
        """Connect to the Unix socket path ``address``; failures reach ``clientConnectionFailed``."""
        c = UNIXConnector(address, factory, timeout, self)
        c.connect()
        return c

    def listenUDP(self, port: int, protocol: Any, interface: str = "", maxPacketSize: int = 8192) -> UDPPort:
        """Bind a UDP port for ``protocol`` (a DatagramProtocol); the port is its transport.

        The port also offers the multicast methods (joinGroup, setTTL, ...).
        """
        p = UDPPort(port, protocol, interface, maxPacketSize, self)
        p.startListening()
        return p

    def listenMulticast(
        self,
        port: int,
        protocol: Any,
        interface: str = "",
        maxPacketSize: int = 8192,
        listenMultiple: bool = False,
    ) -> UDPPort:
        """As ``listenUDP``; ``listenMultiple`` lets several sockets bind the same port (SO_REUSEPORT)."""
        p = UDPPort(port, protocol, interface, maxPacketSize, self, listenMultiple=listenMultiple)
        p.startListening()
        return p
