"""Test doubles for code written on the reactor: a reactor that records, transports that remember.

Same names and meaning as ``twisted.internet.testing``:

- :class:`StringTransport` records what a protocol writes (:meth:`StringTransport.value`) and
  remembers a ``loseConnection``, ``abortConnection`` or producer pause instead of doing it;
  :class:`StringTransportWithDisconnection` also delivers ``connectionLost`` to its protocol.
- :class:`AccumulatingProtocol` collects the bytes it receives and says when it was connected
  and disconnected (with Deferreds to wait on either).
- :class:`MemoryReactor` records ``listenTCP``/``connectTCP`` (and the Unix, UDP and TLS calls)
  instead of opening sockets, and its lifecycle calls (``run``, ``stop``, system event triggers);
  :class:`MemoryReactorClock` is one with a :class:`~reactor.task.Clock` for its time.

And :func:`defaultReactorSetTo`, which makes a given reactor the one ``reactor.getReactor()``
returns for the length of a ``with`` block (the pytest plugin uses it for each test).

Everything here is single-threaded: use it from the test's thread, as a reactor thread.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, cast

from zope.interface import implementer

from reactor import _default as defaultstate
from reactor._address import IPv4Address, UNIXAddress
from reactor._coreinterfaces import IReactorCore, IReactorFDSet, IReactorTime
from reactor._deferred import Deferred
from reactor._errors import ReactorAlreadyRunning, ReactorNotRunning
from reactor._failure import Failure
from reactor._loop import Reactor
from reactor._neterrors import ConnectionAborted, ConnectionDone
from reactor._netinterfaces import (
    IConnector,
    IConsumer,
    IListeningPort,
    IPushProducer,
    IReactorSSL,
    IReactorTCP,
    IReactorUDP,
    IReactorUNIX,
    ITCPTransport,
)
from reactor.protocol import Protocol
from reactor.task import Clock

__all__ = [
    "AccumulatingProtocol",
    "MemoryReactor",
    "MemoryReactorClock",
    "StringTransport",
    "StringTransportWithDisconnection",
    "defaultReactorSetTo",
]


@contextmanager
def defaultReactorSetTo(reactor: Reactor | None) -> Iterator[None]:
    """Inside the block, ``reactor.getReactor()`` returns ``reactor``; afterwards the previous default.

    ``None`` makes the default lazy again: the first ``getReactor()`` in the block creates a fresh
    :class:`Reactor` (which the caller then owns: it is forgotten, not closed, when the block ends).
    Not thread-safe against another thread swapping the default at the same time; meant for tests.

    :raises TypeError: ``reactor`` is neither a :class:`Reactor` nor ``None``.
    """
    if reactor is not None and not isinstance(reactor, Reactor):
        raise TypeError(f"reactor must be a Reactor or None, not {type(reactor).__name__}")
    with defaultstate._lock:
        previous = defaultstate._default
        defaultstate._default = reactor
    try:
        yield
    finally:
        with defaultstate._lock:
            defaultstate._default = previous


# ---------------------------------------------------------------------------- transports


@implementer(ITCPTransport, IConsumer, IPushProducer)
class StringTransport:
    """A transport that keeps what is written in memory and does nothing else (Twisted's name).

    ``loseConnection`` only sets :attr:`disconnecting`; ``abortConnection`` also sets
    :attr:`aborted`; ``pauseProducing``/``resumeProducing``/``stopProducing`` set
    :attr:`producerState` to ``"paused"``, ``"producing"`` or ``"stopped"``. The protocol is
    never told anything: the test drives it (``protocol.dataReceived(...)``,
    ``protocol.connectionLost(...)``).
    """

    disconnecting = False

    def __init__(self, hostAddress: Any = None, peerAddress: Any = None) -> None:
        self._written: list[bytes] = []
        self.aborted = False
        self.writeClosed = False
        self.producer: Any = None
        self.streaming: bool | None = None
        self.producerState = "producing"
        self.noDelay = False
        self.keepAlive = False
        self.hostAddr = hostAddress if hostAddress is not None else IPv4Address("TCP", "10.0.0.1", 12345)
        self.peerAddr = peerAddress if peerAddress is not None else IPv4Address("TCP", "192.168.1.1", 54321)

    def value(self) -> bytes:
        """Everything written since creation or the last :meth:`clear`, as one bytes object."""
        return b"".join(self._written)

    def clear(self) -> None:
        """Forget what was written so far."""
        self._written.clear()

    def write(self, data: bytes) -> None:
        """Record ``data``. :raises TypeError: ``data`` is not bytes (as a real transport would)."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"data must be bytes, not {type(data).__name__}")
        self._written.append(bytes(data))

    def writeSequence(self, data: Any) -> None:
        """Record each item of ``data``, in order."""
        for item in data:
            self.write(item)

    def loseConnection(self) -> None:
        """Remember that the protocol asked to close (sets :attr:`disconnecting`)."""
        self.disconnecting = True

    def abortConnection(self) -> None:
        """Remember an abort (sets :attr:`aborted` and :attr:`disconnecting`)."""
        self.aborted = True
        self.disconnecting = True

    def loseWriteConnection(self) -> None:
        """Remember a half-close (sets :attr:`writeClosed`)."""
        self.writeClosed = True

    def getPeer(self) -> Any:
        """The peer address given at creation (a fixed IPv4 one by default)."""
        return self.peerAddr

    def getHost(self) -> Any:
        """The host address given at creation (a fixed IPv4 one by default)."""
        return self.hostAddr

    def getTcpNoDelay(self) -> bool:
        """The last value given to :meth:`setTcpNoDelay` (False at first)."""
        return self.noDelay

    def setTcpNoDelay(self, enabled: bool) -> None:
        """Remember ``enabled``."""
        self.noDelay = bool(enabled)

    def getTcpKeepAlive(self) -> bool:
        """The last value given to :meth:`setTcpKeepAlive` (False at first)."""
        return self.keepAlive

    def setTcpKeepAlive(self, enabled: bool) -> None:
        """Remember ``enabled``."""
        self.keepAlive = bool(enabled)

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        """Remember ``producer``. :raises RuntimeError: one is registered already (as Twisted)."""
        if self.producer is not None:
            raise RuntimeError(f"cannot register producer {producer!r}: {self.producer!r} is registered")
        self.producer = producer
        self.streaming = streaming

    def unregisterProducer(self) -> None:
        """Forget the producer. :raises RuntimeError: none is registered."""
        if self.producer is None:
            raise RuntimeError("cannot unregister a producer: none is registered")
        self.producer = None
        self.streaming = None

    def _checkState(self) -> None:
        if self.disconnecting:
            raise RuntimeError("cannot resume or pause a producer whose transport is disconnecting")
        if self.producerState == "stopped":
            raise RuntimeError("cannot resume or pause a stopped producer")

    def pauseProducing(self) -> None:
        """The transport was asked to stop reading: :attr:`producerState` becomes ``"paused"``."""
        self._checkState()
        self.producerState = "paused"

    def resumeProducing(self) -> None:
        """The transport was asked to read again: :attr:`producerState` becomes ``"producing"``."""
        self._checkState()
        self.producerState = "producing"

    def stopProducing(self) -> None:
        """The transport was asked to stop for good: :attr:`producerState` becomes ``"stopped"``."""
        self.producerState = "stopped"

    def __repr__(self) -> str:
        return f"<StringTransport {len(self.value())} bytes written, disconnecting={self.disconnecting}>"


class StringTransportWithDisconnection(StringTransport):
    """A :class:`StringTransport` whose ``loseConnection`` tells :attr:`protocol` at once (Twisted's name).

    Set :attr:`protocol` before the protocol closes. The first ``loseConnection`` (or
    ``abortConnection``) calls ``protocol.connectionLost`` with :class:`ConnectionDone`
    (:class:`ConnectionAborted`); later ones do nothing.
    """

    protocol: Any = None

    def loseConnection(self) -> None:
        """Mark the transport disconnecting and call ``protocol.connectionLost(ConnectionDone)`` once."""
        self._lose(Failure(ConnectionDone("Connection done")))

    def abortConnection(self) -> None:
        """As :meth:`loseConnection`, with :class:`ConnectionAborted`."""
        self.aborted = True
        self._lose(Failure(ConnectionAborted("Connection aborted")))

    def _lose(self, reason: Failure) -> None:
        if self.disconnecting:
            return
        self.disconnecting = True
        if self.protocol is not None:
            self.protocol.connectionLost(reason)


class AccumulatingProtocol(Protocol):
    """A protocol that collects what it receives (Twisted's name).

    :attr:`data` holds the bytes received; :attr:`made` and :attr:`closed` are 1 once
    connected and disconnected; :attr:`closedReason` is the Failure given to
    ``connectionLost``. Set :attr:`madeDeferred` or :attr:`closedDeferred` to a Deferred
    to have it fired once when that happens (with the protocol, or with None: the reason is
    in :attr:`closedReason`), as Twisted's does.
    """

    made = 0
    closed = 0
    closedReason: Failure | None = None
    madeDeferred: Deferred[Any] | None = None
    closedDeferred: Deferred[Any] | None = None

    def __init__(self) -> None:
        super().__init__()
        self.data = b""

    def connectionMade(self) -> None:
        """Count the connection; fire :attr:`madeDeferred` with this protocol."""
        self.made = 1
        d, self.madeDeferred = self.madeDeferred, None
        if d is not None:
            d.callback(self)

    def dataReceived(self, data: bytes) -> None:
        """Append ``data`` to :attr:`data`."""
        self.data += data

    def connectionLost(self, reason: Failure = Failure(ConnectionDone())) -> None:  # noqa: B008
        """Remember ``reason`` in :attr:`closedReason`; fire :attr:`closedDeferred` with None."""
        self.closed = 1
        self.closedReason = reason
        d, self.closedDeferred = self.closedDeferred, None
        if d is not None:
            d.callback(None)


# ---------------------------------------------------------------------------- the memory reactor


@implementer(IListeningPort)
class _FakePort:
    """What MemoryReactor's ``listen*`` methods return: a port that records being stopped."""

    def __init__(self, address: Any) -> None:
        self._address = address
        self.listening = False
        self.stopped = False

    def startListening(self) -> None:
        self.listening = True

    def stopListening(self) -> Deferred[None]:
        self.listening = False
        self.stopped = True
        d: Deferred[None] = Deferred()
        d.callback(None)
        return d

    def getHost(self) -> Any:
        return self._address

    def __repr__(self) -> str:
        return f"<MemoryReactor port {self._address!r} listening={self.listening}>"


@implementer(IConnector)
class _FakeConnector:
    """What MemoryReactor's ``connect*`` methods return: a connector that records its state."""

    def __init__(self, address: Any) -> None:
        self._address = address
        self.state = "connecting"
        self.stoppedConnecting = False

    def stopConnecting(self) -> None:
        if self.state != "connecting":
            raise RuntimeError(f"stopConnecting() on a connector that is {self.state}")
        self.stoppedConnecting = True
        self.state = "disconnected"

    def disconnect(self) -> None:
        self.state = "disconnected"

    def connect(self) -> None:
        self.state = "connecting"

    def getDestination(self) -> Any:
        return self._address

    def __repr__(self) -> str:
        return f"<MemoryReactor connector to {self._address!r} {self.state}>"


_Call = tuple[Callable[..., object], tuple[Any, ...], dict[str, Any]]


@implementer(IReactorCore, IReactorTCP, IReactorUNIX, IReactorUDP, IReactorSSL, IReactorFDSet)
class MemoryReactor:
    """A reactor that records what is asked of it and opens nothing (Twisted's name).

    ``listenTCP`` appends ``(port, factory, backlog, interface)`` to :attr:`tcpServers`;
    ``connectTCP`` appends ``(host, port, factory, timeout, bindAddress)`` to :attr:`tcpClients`
    (the returned connector is also in :attr:`connectors`); likewise :attr:`unixServers`,
    :attr:`unixClients`, :attr:`udpServers`, :attr:`sslServers`, :attr:`sslClients`. The test
    then builds the protocol from the recorded factory and drives it over a
    :class:`StringTransport`. ``run`` fires ``startup`` and returns (there is no loop);
    :attr:`hasRun`, :attr:`running`, :attr:`hasStopped` record the lifecycle; triggers and
    ``callWhenRunning`` calls are kept and fired as a real reactor would. Readers and writers
    are kept in :attr:`readers`/:attr:`writers` and never polled.
    """

    def __init__(self) -> None:
        self.hasInstalled = False
        self.running = False
        self.hasRun = False
        self.hasStopped = False
        self.hasCrashed = False
        # phase -> eventType -> [(f, args, kw)]
        self.triggers: dict[str, dict[str, list[_Call]]] = {}
        self.whenRunningHooks: list[_Call] = []
        self.tcpServers: list[tuple[Any, ...]] = []
        self.tcpClients: list[tuple[Any, ...]] = []
        self.unixServers: list[tuple[Any, ...]] = []
        self.unixClients: list[tuple[Any, ...]] = []
        self.udpServers: list[tuple[Any, ...]] = []
        self.sslServers: list[tuple[Any, ...]] = []
        self.sslClients: list[tuple[Any, ...]] = []
        self.connectors: list[_FakeConnector] = []
        self.readers: set[Any] = set()
        self.writers: set[Any] = set()
        self._triggerIDs = 0

    # -------------------------------------------------------------- lifecycle

    def run(self, installSignalHandlers: bool = True) -> None:
        """Fire ``startup`` (and the ``callWhenRunning`` calls), then return: nothing loops.

        :raises ReactorAlreadyRunning: it is running already.
        """
        if self.running:
            raise ReactorAlreadyRunning("the MemoryReactor is already running")
        self.hasRun = True
        self.running = True
        self.fireSystemEvent("startup")
        hooks, self.whenRunningHooks = self.whenRunningHooks, []
        for f, args, kw in hooks:
            f(*args, **kw)

    def stop(self) -> None:
        """Record the stop and fire ``shutdown``. :raises ReactorNotRunning: it is not running."""
        if not self.running:
            raise ReactorNotRunning("Can't stop a reactor that isn't running.")
        self.hasStopped = True
        self.running = False
        self.fireSystemEvent("shutdown")

    def crash(self) -> None:
        """Record the crash; ``running`` becomes False without ``shutdown``."""
        self.hasCrashed = True
        self.running = False

    def iterate(self, delay: float = 0) -> None:
        """Nothing to do: there is no loop."""

    def callWhenRunning(self, f: Callable[..., object], /, *args: Any, **kw: Any) -> object | None:
        """Call ``f`` now if running, else keep it for :meth:`run`."""
        if self.running:
            f(*args, **kw)
            return None
        self.whenRunningHooks.append((f, args, kw))
        return (f, args, kw)

    def addSystemEventTrigger(
        self, phase: str, eventType: str, f: Callable[..., object], /, *args: Any, **kw: Any
    ) -> object:
        """Keep the trigger in :attr:`triggers` and return an ID for :meth:`removeSystemEventTrigger`.

        :raises ValueError: ``phase`` is not 'before', 'during' or 'after'.
        """
        if phase not in ("before", "during", "after"):
            raise ValueError(f"phase must be 'before', 'during' or 'after', not {phase!r}")
        entry = (f, args, kw)
        self.triggers.setdefault(phase, {}).setdefault(eventType, []).append(entry)
        return (phase, eventType, entry)

    def removeSystemEventTrigger(self, triggerID: object) -> None:
        """Forget a trigger. :raises ValueError: unknown or already fired."""
        try:
            phase, eventType, entry = cast(tuple[str, str, _Call], triggerID)
            self.triggers[phase][eventType].remove(entry)
        except (TypeError, ValueError, KeyError):
            raise ValueError(f"unknown trigger ID {triggerID!r}") from None

    def fireSystemEvent(self, eventType: str) -> None:
        """Run ``eventType``'s triggers, before, during, after (without waiting on returned Deferreds)."""
        for phase in ("before", "during", "after"):
            entries = self.triggers.get(phase, {}).pop(eventType, [])
            for f, args, kw in entries:
                f(*args, **kw)

    # -------------------------------------------------------------- descriptors

    def addReader(self, reader: Any) -> None:
        """Add ``reader`` to :attr:`readers`."""
        self.readers.add(reader)

    def addWriter(self, writer: Any) -> None:
        """Add ``writer`` to :attr:`writers`."""
        self.writers.add(writer)

    def removeReader(self, reader: Any) -> None:
        """Remove ``reader`` from :attr:`readers` (no error if absent)."""
        self.readers.discard(reader)

    def removeWriter(self, writer: Any) -> None:
        """Remove ``writer`` from :attr:`writers` (no error if absent)."""
        self.writers.discard(writer)

    def removeAll(self) -> list[Any]:
        """Forget every reader and writer; return them."""
        everything = list(self.readers | self.writers)
        self.readers.clear()
        self.writers.clear()
        return everything

    def getReaders(self) -> list[Any]:
        """The readers added and not removed."""
        return list(self.readers)

    def getWriters(self) -> list[Any]:
        """The writers added and not removed."""
        return list(self.writers)

    # -------------------------------------------------------------- networking

    def listenTCP(self, port: int, factory: Any, backlog: int = 50, interface: str = "") -> _FakePort:
        """Record ``(port, factory, backlog, interface)`` in :attr:`tcpServers`; a port at that address."""
        self.tcpServers.append((port, factory, backlog, interface))
        listening = _FakePort(IPv4Address("TCP", interface or "0.0.0.0", port))
        listening.startListening()
        return listening

    def connectTCP(
        self, host: str, port: int, factory: Any, timeout: float | None = 30, bindAddress: Any = None
    ) -> _FakeConnector:
        """Record ``(host, port, factory, timeout, bindAddress)`` in :attr:`tcpClients`; a connector."""
        self.tcpClients.append((host, port, factory, timeout, bindAddress))
        connector = _FakeConnector(IPv4Address("TCP", host, port))
        self.connectors.append(connector)
        return connector

    def listenUNIX(self, address: str, factory: Any, backlog: int = 50, mode: int = 0o666) -> _FakePort:
        """Record ``(address, factory, backlog, mode)`` in :attr:`unixServers`; a port."""
        self.unixServers.append((address, factory, backlog, mode))
        listening = _FakePort(UNIXAddress(address))
        listening.startListening()
        return listening

    def connectUNIX(self, address: str, factory: Any, timeout: float | None = 30) -> _FakeConnector:
        """Record ``(address, factory, timeout)`` in :attr:`unixClients`; a connector."""
        self.unixClients.append((address, factory, timeout))
        connector = _FakeConnector(UNIXAddress(address))
        self.connectors.append(connector)
        return connector

    def listenUDP(
        self, port: int, protocol: Any, interface: str = "", maxPacketSize: int = 8192
    ) -> _FakePort:
        """Record ``(port, protocol, interface, maxPacketSize)`` in :attr:`udpServers`; a port."""
        self.udpServers.append((port, protocol, interface, maxPacketSize))
        listening = _FakePort(IPv4Address("UDP", interface or "0.0.0.0", port))
        listening.startListening()
        return listening

    def listenSSL(
        self, port: int, factory: Any, contextFactory: Any, backlog: int = 50, interface: str = ""
    ) -> _FakePort:
        """Record ``(port, factory, contextFactory, backlog, interface)`` in :attr:`sslServers`; a port."""
        self.sslServers.append((port, factory, contextFactory, backlog, interface))
        listening = _FakePort(IPv4Address("TCP", interface or "0.0.0.0", port))
        listening.startListening()
        return listening

    def connectSSL(
        self,
        host: str,
        port: int,
        factory: Any,
        contextFactory: Any = None,
        timeout: float | None = 30,
        bindAddress: Any = None,
    ) -> _FakeConnector:
        """Record ``(host, port, factory, contextFactory, timeout, bindAddress)`` in :attr:`sslClients`."""
        self.sslClients.append((host, port, factory, contextFactory, timeout, bindAddress))
        connector = _FakeConnector(IPv4Address("TCP", host, port))
        self.connectors.append(connector)
        return connector

    # -------------------------------------------------------------- threads

    def callFromThread(self, f: Callable[..., object], /, *args: Any, **kw: Any) -> None:
        """Call ``f`` at once, in the calling thread (there is no other thread to hand it to)."""
        f(*args, **kw)

    def wakeUp(self) -> None:
        """Nothing to wake."""

    def isReactorThread(self) -> bool:
        """Always True: a memory reactor has no thread of its own; the test's thread is its thread."""
        return True

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} running={self.running} tcpServers={len(self.tcpServers)} "
            f"tcpClients={len(self.tcpClients)}>"
        )


@implementer(IReactorTime)
class MemoryReactorClock(MemoryReactor, Clock):
    """A :class:`MemoryReactor` whose time is a :class:`~reactor.task.Clock` (Twisted's name).

    ``callLater`` schedules on the clock; ``advance`` moves time and runs what is due.
    """

    def __init__(self) -> None:
        MemoryReactor.__init__(self)
        Clock.__init__(self)
