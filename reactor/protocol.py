"""Protocols and factories: the event-handling side of a connection (Twisted's ``twisted.internet.protocol``).

A :class:`Protocol` receives ``connectionMade``, ``dataReceived`` and ``connectionLost`` from its
transport and writes through ``self.transport``; it never touches a socket, so it can be driven by
a test with bytes alone. A :class:`Factory` builds one protocol per connection. All of it runs in
the reactor thread.

The connection-ending reasons (:class:`ConnectionDone`, :class:`ConnectionLost`, ...) are re-exported
here so that protocol code needs a single import.
"""

from __future__ import annotations

import inspect
import logging
import math
import random
from collections.abc import Callable
from typing import Any, ClassVar

from zope.interface import implementer

from reactor._address import IPv4Address, IPv6Address, UNIXAddress
from reactor._deferred import Deferred
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
    InvalidAddressError,
    MessageLengthError,
    NotConnectingError,
    NotTLSTransportError,
    UserError,
)
from reactor._netinterfaces import IDatagramProtocol, IProtocol, IProtocolFactory

__all__ = [
    "CannotListenError",
    "ClientCreator",
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
    "InvalidAddressError",
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


class _InstanceFactory(ClientFactory):
    """The one-shot factory behind :class:`ClientCreator`: hands out one prebuilt protocol.

    The outcome reaches ``deferred`` one reactor turn later (``callLater(0)``), as in Twisted,
    so the protocol's ``connectionMade`` has run before the Deferred's callbacks; ``pending``
    is that timed call until it runs, so a cancel can withdraw it. Reactor thread only.
    """

    noisy = False

    def __init__(self, reactor: Any, instance: Any, deferred: Deferred[Any]) -> None:
        self.reactor = reactor
        self.instance = instance
        # None once the outcome is scheduled: a connector retrying cannot fire it twice.
        self.deferred: Deferred[Any] | None = deferred
        self.pending: Any = None

    def buildProtocol(self, addr: Any) -> Any:
        """Return the prebuilt protocol and schedule the Deferred's success."""
        d, self.deferred = self.deferred, None
        if d is None:
            return None
        self.pending = self.reactor.callLater(0, self._fire, d.callback, self.instance)
        return self.instance

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        """Schedule the Deferred's failure with the connection error."""
        d, self.deferred = self.deferred, None
        if d is not None:
            self.pending = self.reactor.callLater(0, self._fire, d.errback, reason)

    def _fire(self, fire: Callable[[Any], None], value: Any) -> None:
        self.pending = None
        fire(value)

    def __repr__(self) -> str:
        return f"<ClientCreator factory: {self.instance!r}>"


class ClientCreator:
    """Connect one protocol instance without writing a factory (Twisted's ``ClientCreator``).

    Each ``connect*`` method builds ``protocolClass(*args, **kwargs)`` at once, starts the
    connection on ``reactor`` and returns a Deferred that fires with that protocol once it is
    connected (after its ``connectionMade``), or errbacks with the connection error
    (``ConnectionRefusedError``, ``ConnectTimeoutError``, ``DNSLookupError``, ...).
    Cancelling the Deferred abandons the attempt (or, if the connection came up but the
    Deferred has not fired yet, closes it) and errbacks ``CancelledError``. For shared state
    between connections or reconnection, use a :class:`ClientFactory`. Reactor thread only.
    """

    def __init__(self, reactor: Any, protocolClass: Callable[..., Any], /, *args: Any, **kwargs: Any) -> None:
        if not callable(getattr(reactor, "callLater", None)):
            raise TypeError(f"reactor must provide callLater(), not {type(reactor).__name__}")
        if not callable(protocolClass):
            raise TypeError(f"protocolClass must be callable, not {type(protocolClass).__name__}")
        self.reactor = reactor
        self.protocolClass = protocolClass
        self.args = args
        self.kwargs = kwargs

    def _connect(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Deferred[Any]:
        """Start ``method(*args, factory, **kwargs)`` and return the Deferred of its protocol."""

        def cancelConnect(_: Deferred[Any]) -> None:
            # Stops an attempt in progress (its failure is then withdrawn below) or closes a
            # connection whose success has not been delivered yet.
            connector.disconnect()
            if factory.pending is not None:
                factory.pending.cancel()
                factory.pending = None

        d: Deferred[Any] = Deferred(canceller=cancelConnect)
        factory = _InstanceFactory(self.reactor, self.protocolClass(*self.args, **self.kwargs), d)
        connector = method(*args, factory, **kwargs)
        return d

    def connectTCP(
        self, host: str, port: int, timeout: float | None = 30, bindAddress: tuple[str, int] | None = None
    ) -> Deferred[Any]:
        """As ``reactor.connectTCP`` without the factory; returns the Deferred of the protocol."""
        return self._connect(self.reactor.connectTCP, host, port, timeout=timeout, bindAddress=bindAddress)

    def connectUNIX(self, address: str, timeout: float | None = 30, checkPID: bool = False) -> Deferred[Any]:
        """As ``reactor.connectUNIX`` without the factory; returns the Deferred of the protocol.

        ``checkPID=True`` is passed on only to a reactor whose ``connectUNIX`` accepts it (a
        Twisted reactor); ``reactor.Reactor`` has no PID lock files and raises ``ValueError``.
        """
        if checkPID:
            if "checkPID" not in inspect.signature(self.reactor.connectUNIX).parameters:
                raise ValueError("checkPID=True needs a reactor whose connectUNIX supports PID lock files")
            return self._connect(self.reactor.connectUNIX, address, timeout=timeout, checkPID=checkPID)
        return self._connect(self.reactor.connectUNIX, address, timeout=timeout)

    def connectSSL(
        self,
        host: str,
        port: int,
        contextFactory: Any,
        timeout: float | None = 30,
        bindAddress: tuple[str, int] | None = None,
    ) -> Deferred[Any]:
        """As ``reactor.connectSSL`` without the factory; returns the Deferred of the protocol.

        The Deferred fires once the TCP connection is up (the TLS handshake may still be under
        way, as in Twisted); a failed handshake ends the connection afterwards.
        """
        return self._connect(
            self.reactor.connectSSL,
            host,
            port,
            contextFactory=contextFactory,
            timeout=timeout,
            bindAddress=bindAddress,
        )
