"""Protocols and factories: the event-handling side of a connection (Twisted's ``twisted.internet.protocol``).

A :class:`Protocol` receives ``connectionMade``, ``dataReceived`` and ``connectionLost`` from its
transport and writes through ``self.transport``; it never touches a socket, so it can be driven by
a test with bytes alone. A :class:`Factory` builds one protocol per connection. All of it runs in
the reactor thread.

The connection-ending reasons (:class:`ConnectionDone`, :class:`ConnectionLost`, ...) are re-exported
here so that protocol code needs a single import.
"""

from __future__ import annotations

import logging
import math
import random
from typing import Any, ClassVar

from zope.interface import implementer

from reactor._address import IPv4Address, IPv6Address, UNIXAddress
from reactor._failure import Failure
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
    NotConnectingError,
    NotTLSTransportError,
    UserError,
)
from reactor._netinterfaces import IDatagramProtocol, IProtocol, IProtocolFactory

__all__ = [
    "CannotListenError",
    "ClientFactory",
    "ConnectError",
    "ConnectTimeoutError",
    "ConnectingCancelledError",
    "ConnectionAborted",
    "ConnectionClosed",
    "ConnectionDone",
    "ConnectionLost",
    "ConnectionRefusedError",
    "DNSLookupError",
    "DatagramProtocol",
    "Factory",
    "IPv4Address",
    "IPv6Address",
    "MessageLengthError",
    "NotConnectingError",
    "NotTLSTransportError",
    "Protocol",
    "ReconnectingClientFactory",
    "ServerFactory",
    "UNIXAddress",
    "UserError",
    "connectionDone",
]

log = logging.getLogger("reactor.protocol")

connectionDone: Failure = Failure(ConnectionDone())
"""The default ``reason`` of ``connectionLost``: a clean close."""


@implementer(IProtocol)
class Protocol:
    """Base class of stream protocols; override the event methods you need.

    ``transport`` is None until ``makeConnection``; ``factory`` is set by ``Factory.buildProtocol``.
    ``connected`` is 1 between ``makeConnection`` and ``connectionLost`` (Twisted's int flag).
    """

    transport: Any = None
    factory: Any = None
    connected: int = 0

    def logPrefix(self) -> str:
        """A short name for log lines (the class name)."""
        return type(self).__name__

    def makeConnection(self, transport: Any) -> None:
        """Attach ``transport`` and call ``connectionMade``; called once by the transport."""
        self.connected = 1
        self.transport = transport
        self.connectionMade()

    def connectionMade(self) -> None:
        """The connection is up. Override to greet the peer or start a producer."""

    def dataReceived(self, data: bytes) -> None:
        """Bytes arrived. Override; chunk boundaries carry no meaning."""

    def connectionLost(self, reason: Any = connectionDone) -> None:
        """The connection ended; ``reason.check(ConnectionDone)`` tells a clean close from an error."""
        self.connected = 0


@implementer(IProtocolFactory)
class Factory:
    """Builds a ``protocol`` instance per connection and sets its ``factory`` attribute.

    ``doStart``/``doStop`` count how many ports or connectors use the factory and call
    ``startFactory``/``stopFactory`` on the first start and the last stop.
    """

    protocol: ClassVar[type[Any] | None] = None
    numPorts: int = 0
    noisy: bool = False

    @classmethod
    def forProtocol(cls, protocol: type[Any], *args: Any, **kwargs: Any) -> Factory:
        """A factory of this class (built with ``*args, **kwargs``) whose ``protocol`` is ``protocol``."""
        factory = cls(*args, **kwargs)
        factory.protocol = protocol  # type: ignore[misc]
        return factory

    def logPrefix(self) -> str:
        """A short name for log lines."""
        return type(self).__name__

    def doStart(self) -> None:
        """Count one more user; call ``startFactory`` for the first."""
        if not self.numPorts:
            if self.noisy:
                log.info("Starting factory %r", self)
            self.startFactory()
        self.numPorts += 1

    def doStop(self) -> None:
        """Count one user less; call ``stopFactory`` for the last."""
        if self.numPorts == 0:
            return
        self.numPorts -= 1
        if not self.numPorts:
            if self.noisy:
                log.info("Stopping factory %r", self)
            self.stopFactory()

    def startFactory(self) -> None:
        """Override to acquire resources shared by the protocols."""

    def stopFactory(self) -> None:
        """Override to release them."""

    def buildProtocol(self, addr: Any) -> Any:
        """Return ``self.protocol()`` with ``factory`` set; override to refuse (return None) or customise."""
        if self.protocol is None:
            raise TypeError(f"{type(self).__name__}.protocol is not set; set it or override buildProtocol")
        p = self.protocol()
        p.factory = self
        return p


class ServerFactory(Factory):
    """A factory for listening ports."""


class ClientFactory(Factory):
    """A factory for outgoing connections: adds the connector callbacks."""

    def startedConnecting(self, connector: Any) -> None:
        """A connection attempt started."""

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        """The attempt failed; ``reason`` wraps a ConnectError subclass. ``connector.connect()`` retries."""

    def clientConnectionLost(self, connector: Any, reason: Failure) -> None:
        """An established connection ended (after its protocol's ``connectionLost``)."""


class ReconnectingClientFactory(ClientFactory):
    """A client factory that connects again, after a growing delay, whenever a connection fails or ends.

    Each retry waits ``delay`` seconds, first blurred by ``jitter`` (a normal spread of that
    fraction of the delay, so many clients of one server do not retry in lockstep); then the
    delay is multiplied by ``factor``, capped at ``maxDelay``. Call :meth:`resetDelay` once a
    connection is good (typically in ``buildProtocol``) so the next outage starts from
    ``initialDelay`` again, and :meth:`stopTrying` to give up (it also abandons an attempt in
    progress).
    ``maxRetries`` (``None``: no limit) bounds the retries since the last reset.

    ``clock`` is what schedules the retries (anything with ``callLater``); when it is
    ``None`` the connector's reactor is used. Reactor thread only.
    """

    maxDelay: float = 3600.0
    initialDelay: float = 1.0
    factor: float = math.e
    jitter: float = 0.11962656472
    delay: float = initialDelay
    retries: int = 0
    maxRetries: int | None = None
    continueTrying: int = 1
    connector: Any = None
    clock: Any = None
    _callID: Any = None

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        """Schedule another attempt, unless :meth:`stopTrying` was called."""
        if self.continueTrying:
            self.connector = connector
            self.retry()

    def clientConnectionLost(self, connector: Any, reason: Failure) -> None:
        """Schedule a reconnection, unless :meth:`stopTrying` was called."""
        if self.continueTrying:
            self.connector = connector
            self.retry()

    def retry(self, connector: Any = None) -> None:
        """Schedule ``connector.connect()`` (default: the last connector) after ``delay``, then grow it."""
        if not self.continueTrying:
            if self.noisy:
                log.info("Abandoning %r on explicit request", connector)
            return
        if connector is None:
            connector = self.connector
            if connector is None:
                raise ValueError("retry() needs a connector: none was given and none has failed yet")
        self.retries += 1
        if self.maxRetries is not None and self.retries > self.maxRetries:
            if self.noisy:
                log.info("Abandoning %r after %d retries", connector, self.maxRetries)
            return
        if self.jitter:
            # A normal spread can come out negative in theory; never schedule in the past.
            self.delay = max(0.0, random.normalvariate(self.delay, self.delay * self.jitter))
        if self.noisy:
            log.info("%r will retry in %d seconds", connector, self.delay)

        def reconnect() -> None:
            self._callID = None
            connector.connect()

        clock = self.clock if self.clock is not None else connector.reactor
        self._callID = clock.callLater(self.delay, reconnect)
        # This retry waits the current delay; the next one waits longer.
        self.delay = min(self.delay * self.factor, self.maxDelay)

    def stopTrying(self) -> None:
        """Give up: cancel a scheduled retry and abandon an attempt in progress."""
        if self._callID is not None:
            self._callID.cancel()
            self._callID = None
        self.continueTrying = 0
        if self.connector is not None:
            try:
                self.connector.stopConnecting()
            except RuntimeError:
                # NotConnectingError (a RuntimeError): nothing was in progress.
                pass

    def resetDelay(self) -> None:
        """Start over: the next failure waits ``initialDelay``-ish again, with a fresh retry count."""
        self.delay = self.initialDelay
        self.retries = 0
        self._callID = None
        self.continueTrying = 1

    def __getstate__(self) -> dict[str, Any]:
        # A pickled factory must not drag its live connector or timer along.
        state = self.__dict__.copy()
        state.pop("connector", None)
        state.pop("_callID", None)
        return state


@implementer(IDatagramProtocol)
class DatagramProtocol:
    """Base class of UDP protocols; ``transport`` is the port once ``makeConnection`` ran."""

    transport: Any = None
    numPorts: int = 0
    noisy: bool = False

    def logPrefix(self) -> str:
        """A short name for log lines."""
        return type(self).__name__

    def makeConnection(self, transport: Any) -> None:
        """Attach the port and call ``doStart``; called by the port when it starts listening."""
        self.transport = transport
        self.doStart()

    def doStart(self) -> None:
        """Call ``startProtocol`` when the first port starts."""
        if not self.numPorts:
            self.startProtocol()
        self.numPorts += 1

    def doStop(self) -> None:
        """Call ``stopProtocol`` when the last port stops, and detach the transport."""
        if self.numPorts == 0:
            return
        self.numPorts -= 1
        self.transport = None
        if not self.numPorts:
            self.stopProtocol()

    def startProtocol(self) -> None:
        """Override: the port is listening."""

    def stopProtocol(self) -> None:
        """Override: the port stopped listening."""

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        """Override: a datagram arrived from ``addr`` (a (host, port) tuple)."""

    def connectionRefused(self) -> None:
        """Override: on a connected port, the peer refused a datagram (ICMP port unreachable)."""
