"""Twisted compatibility of the core reactor, thread-pool and network APIs, scenario by scenario.

Each scenario was run against Twisted 26.10 (``EPollReactor``, ``twisted.python.threadpool``,
``twisted.internet.protocol``) and against ours; the tests assert what Twisted does. Where ours
differs (and the docs do not list the difference as deliberate) the test is a strict xfail whose
reason says what Twisted does instead.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from zope.interface import implementer

from deferthreads import ThreadPool, blockingCallFromThread, deferToThreadPool
from reactor import (
    AlreadyCalled,
    AlreadyCancelled,
    Deferred,
    Failure,
    Reactor,
    ReactorNotRunning,
    error,
)
from reactor.interfaces import IHalfCloseableProtocol
from reactor.protocol import (
    ClientCreator,
    ClientFactory,
    ConnectionAborted,
    ConnectionDone,
    DatagramProtocol,
    Factory,
    IPv4Address,
    Protocol,
    ReconnectingClientFactory,
)
from reactor.task import Clock
from tests.loopsupport import runBounded
from tests.netsupport import closeReactor, runUntil

WAIT = 5.0


@pytest.fixture
def r() -> Any:
    """A fresh epoll reactor, closed (with whatever it still watches) afterwards."""
    reactor = Reactor()
    yield reactor
    if not reactor.running:
        closeReactor(reactor)


# ---------------------------------------------------------------------------------- timed calls


def test_delayedCallErrorsMatchTwisted(r: Any) -> None:
    """cancel/reset/delay on a cancelled or called DelayedCall raise AlreadyCancelled/AlreadyCalled."""
    call = r.callLater(10, lambda: None)
    start = call.getTime()
    call.delay(5)
    assert call.getTime() - start == pytest.approx(5)
    call.delay(-3)
    assert call.getTime() - start == pytest.approx(2)
    call.cancel()
    assert not call.active()
    for method, arg in ((call.cancel, ()), (call.reset, (1,)), (call.delay, (1,))):
        with pytest.raises(AlreadyCancelled):
            method(*arg)
    ran = r.callLater(0, r.stop)
    runBounded(r)
    assert ran.called and not ran.active()
    for method, arg in ((ran.cancel, ()), (ran.reset, (1,)), (ran.delay, (1,))):
        with pytest.raises(AlreadyCalled):
            method(*arg)


def test_delayedCallResetAcceptsNegativeDelay(r: Any) -> None:
    """reset() with a negative delay moves the call into the past: it runs at the next iteration."""
    seen: list[str] = []
    call = r.callLater(60, seen.append, "ran")
    call.reset(-1)
    r.callLater(0.01, r.stop)
    runBounded(r)
    assert seen == ["ran"]


@pytest.mark.xfail(
    strict=True,
    reason="Twisted's reactor.seconds() is time.time(); ours is time.monotonic()",
)
def test_secondsIsWallClockTime(r: Any) -> None:
    """reactor.seconds() and DelayedCall.getTime() are on the wall clock (time.time())."""
    assert abs(r.seconds() - time.time()) < 5
    assert abs(r.callLater(1, lambda: None).getTime() - (time.time() + 1)) < 5


def test_startupShutdownAndCallOrderMatchTwisted(r: Any) -> None:
    """Startup/shutdown phases, callWhenRunning, callFromThread and callLater(0) run in Twisted's order."""
    order: list[object] = []

    def phase(name: str) -> None:
        order.append((name, r.running))

    r.callLater(0, order.append, "later0")
    r.callFromThread(order.append, "fromThread")
    r.callWhenRunning(order.append, "whenRunning")
    for when in ("before", "during", "after"):
        r.addSystemEventTrigger(when, "startup", phase, f"{when}-startup")
        r.addSystemEventTrigger(when, "shutdown", phase, f"{when}-shutdown")

    def inner() -> None:
        order.append("inner")
        r.callLater(0, order.append, "inner-later0")
        r.callFromThread(order.append, "inner-fromThread")

    r.callLater(0.001, inner)
    r.callLater(0.02, r.stop)
    assert r.callWhenRunning(lambda: None) is not None
    runBounded(r)
    assert order == [
        ("before-startup", False),
        ("during-startup", True),
        "whenRunning",
        ("after-startup", True),
        "fromThread",
        "later0",
        "inner",
        "inner-fromThread",
        "inner-later0",
        ("before-shutdown", True),
        ("during-shutdown", False),
        ("after-shutdown", False),
    ]
    with pytest.raises(ReactorNotRunning):
        r.stop()


@pytest.mark.xfail(
    strict=True,
    reason="Twisted never runs calls queued after stop() in that run; ours runs them after 'after shutdown'",
)
def test_callsQueuedAfterStopDoNotRunBeforeRunReturns(r: Any) -> None:
    """Calls queued after stop() (or by a shutdown trigger) have not run when run() returns."""
    order: list[str] = []

    def stopNow() -> None:
        r.stop()
        r.callLater(0, order.append, "later-after-stop")
        r.callFromThread(order.append, "fromThread-after-stop")

    r.addSystemEventTrigger("before", "shutdown", lambda: r.callLater(0, order.append, "later-from-trigger"))
    r.addSystemEventTrigger("after", "shutdown", order.append, "after-shutdown")
    r.callLater(0, stopNow)
    runBounded(r)
    assert order == ["after-shutdown"]


def test_stopWhenNotRunningRaisesReactorNotRunning(r: Any) -> None:
    """stop() on a reactor that never ran raises ReactorNotRunning; so does a second stop()."""
    with pytest.raises(ReactorNotRunning):
        r.stop()
    seen: list[object] = []

    def twice() -> None:
        r.stop()
        try:
            r.stop()
        except ReactorNotRunning:
            seen.append("refused")

    r.callWhenRunning(twice)
    runBounded(r)
    assert seen == ["refused"]


# ---------------------------------------------------------------------------------- system events


def test_systemEventTriggersMatchTwisted(r: Any) -> None:
    """Triggers added while firing run in that firing; a failing one is skipped; triggers are one-shot."""
    log: list[object] = []
    ids: dict[str, object] = {}

    def addMore() -> None:
        r.addSystemEventTrigger("before", "z", log.append, "added-before")
        r.addSystemEventTrigger("during", "z", log.append, "added-during")
        r.addSystemEventTrigger("after", "z", log.append, "added-after")

    def removeOther() -> None:
        r.removeSystemEventTrigger(ids["other"])

    def boom() -> None:
        raise ValueError("boom")

    r.addSystemEventTrigger("before", "z", removeOther)
    ids["other"] = r.addSystemEventTrigger("during", "z", log.append, "removed")
    r.addSystemEventTrigger("before", "z", addMore)
    r.addSystemEventTrigger("before", "z", boom)
    r.addSystemEventTrigger("after", "z", log.append, "after")
    r.addSystemEventTrigger("during", "z", log.append, "during")
    r.fireSystemEvent("z")
    r.fireSystemEvent("z")
    r.fireSystemEvent("never-registered")
    assert log == ["added-before", "during", "added-during", "after", "added-after"]
    fired = r.addSystemEventTrigger("after", "y", lambda: None)
    r.fireSystemEvent("y")
    with pytest.raises(ValueError):
        r.removeSystemEventTrigger(fired)


def test_beforeTriggerDeferredHoldsDuringPhase(r: Any) -> None:
    """A 'before' trigger's Deferred holds 'during' until it fires; a failed one lets the event go on."""
    log: list[str] = []
    held: Deferred[None] = Deferred()
    failing: Deferred[None] = Deferred()
    r.addSystemEventTrigger("before", "t", lambda: held)
    r.addSystemEventTrigger("before", "t", lambda: failing)
    r.addSystemEventTrigger("during", "t", log.append, "during")
    r.fireSystemEvent("t")
    log.append("returned")
    held.callback(None)
    log.append("held-fired")
    failing.errback(KeyError("k"))
    assert log == ["returned", "held-fired", "during"]


def test_beforeTriggerRemovingItselfWhileFiringDoesNotRaise(r: Any) -> None:
    """A 'before shutdown' trigger that calls a close() removing its own trigger ID does not raise."""
    closed: list[str] = []

    class Pool:
        def __init__(self) -> None:
            self.triggerID: object = r.addSystemEventTrigger("before", "shutdown", self.close)

        def close(self) -> None:
            if self.triggerID is not None:
                r.removeSystemEventTrigger(self.triggerID)
                self.triggerID = None
            closed.append("closed")

    Pool()
    r.callWhenRunning(r.stop)
    with pytest.warns(DeprecationWarning):
        runBounded(r)
    assert closed == ["closed"]


# ---------------------------------------------------------------------------------- thread pool


def test_threadPoolCallbackSemanticsMatchTwisted() -> None:
    """onResult runs in the worker with (True, value) or (False, Failure); stats have Twisted's shapes."""
    pool = ThreadPool(0, 3, "compat")
    ran: list[str] = []
    pool.callInThread(ran.append, "queued-before-start")
    state = (pool.min, pool.max, pool.name, pool.workers, pool.started, pool.joined)
    assert state == (0, 3, "compat", 0, False, False)
    assert pool.q.qsize() == 1 and pool.waiters == [] and pool.working == []
    pool.start()
    results: list[tuple[bool, object, bool]] = []
    done = threading.Event()

    def onResult(ok: bool, value: object) -> None:
        inWorker = threading.current_thread() is not threading.main_thread()
        results.append((ok, value.type if isinstance(value, Failure) else value, inWorker))
        done.set()

    def exits() -> None:
        raise SystemExit(3)

    try:
        for f in (lambda: 1 / 0, lambda: 7, exits):
            done.clear()
            pool.callInThreadWithCallback(onResult, f)
            assert done.wait(WAIT)
        pool.adjustPoolsize(2, 3)
        assert (pool.min, pool.max) == (2, 3) and pool.workers >= 2
    finally:
        pool.stop()
    assert results == [(False, ZeroDivisionError, True), (True, 7, True), (False, SystemExit, True)]
    assert ran == ["queued-before-start"]
    assert (pool.started, pool.joined, pool.workers) == (False, True, 0)


def test_threadPoolMinMaxAreAssignable() -> None:
    """pool.max = n (as Twisted code sometimes does) changes the pool's limit."""
    pool = ThreadPool(0, 3)
    pool.max = 4
    assert pool.max == 4


def test_threadPoolHasTwistedHooks() -> None:
    """A subclass's threadFactory makes the workers; dumpStats exists."""
    made: list[threading.Thread] = []

    class Tracked(threading.Thread):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    class Pool(ThreadPool):
        threadFactory = Tracked

    pool = Pool(1, 1)
    pool.start()
    try:
        assert made, "threadFactory was not used"
        assert all(t.daemon for t in made)
        pool.dumpStats()
    finally:
        pool.stop()


@pytest.mark.xfail(
    strict=True,
    reason="Twisted's ThreadPool has startAWorker/stopAWorker (grow/shrink by one); ours sizes itself "
    "from min, max and the queue",
)
def test_threadPoolHasStartAndStopAWorker() -> None:
    """startAWorker and stopAWorker exist."""
    pool = ThreadPool(0, 2)
    for name in ("startAWorker", "stopAWorker"):
        assert callable(getattr(pool, name, None)), name


def test_threadPoolAcceptsZeroMaxThreads() -> None:
    """ThreadPool(0, 0) can be created."""
    assert ThreadPool(0, 0).max == 0


def test_blockingCallFromThreadWithDeferredsAndFailures(r: Any) -> None:
    """blockingCallFromThread waits for a Deferred, re-raises its failure, and raises a returned Failure."""
    pool = ThreadPool(1, 1)

    def laterValue() -> Deferred[str]:
        d: Deferred[str] = Deferred()
        r.callLater(0.001, d.callback, "late")
        return d

    def laterFailure() -> Deferred[str]:
        d: Deferred[str] = Deferred()
        r.callLater(0.001, d.errback, KeyError("k"))
        return d

    def raising() -> None:
        raise IndexError("i")

    def worker() -> list[object]:
        out: list[object] = []
        for f in (laterValue, laterFailure, raising, lambda: Failure(LookupError("l")), lambda: 5):
            try:
                out.append(blockingCallFromThread(r, f))
            except Exception as e:
                out.append(type(e))
        return out

    got: list[object] = []
    r.callWhenRunning(pool.start)
    r.addSystemEventTrigger("during", "shutdown", pool.stop)
    r.callWhenRunning(
        lambda: deferToThreadPool(r, pool, worker).addBoth(got.append).addBoth(lambda _: r.stop())
    )
    runBounded(r)
    assert got == [["late", KeyError, IndexError, LookupError, 5]]


# ---------------------------------------------------------------------------------- network


def test_tcpFactoryAndProtocolCallbacksMatchTwisted(r: Any) -> None:
    """doStart/doStop counts, callback order, loseConnection flushing, ConnectionDone, refused connects."""
    events: list[object] = []

    class Server(Protocol):
        def connectionMade(self) -> None:
            peer, host = self.transport.getPeer(), self.transport.getHost()
            events.append(("srv.made", type(peer), type(host), peer.type))

        def dataReceived(self, data: bytes) -> None:
            if data.endswith(b"!"):
                self.transport.write(b"bye")
                self.transport.loseConnection()
                self.transport.write(b"more")  # accepted while disconnecting, as in Twisted

        def connectionLost(self, reason: Failure) -> None:
            events.append(("srv.lost", reason.type))

    class CountingFactory(Factory):
        protocol = Server

        def startFactory(self) -> None:
            events.append("startFactory")

        def stopFactory(self) -> None:
            events.append("stopFactory")

    class Client(Protocol):
        received = b""

        def connectionMade(self) -> None:
            self.transport.write(b"x" * 100_000 + b"!")

        def dataReceived(self, data: bytes) -> None:
            self.received += data

        def connectionLost(self, reason: Failure) -> None:
            events.append(("cli.lost", reason.type, self.received))

    class LoggingClientFactory(ClientFactory):
        protocol = Client

        def clientConnectionLost(self, connector: Any, reason: Failure) -> None:
            events.append(("cf.lost", reason.type))

        def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
            events.append(("cf.failed", reason.type))

    factory = CountingFactory()
    first = r.listenTCP(0, factory, interface="127.0.0.1")
    second = r.listenTCP(0, factory, interface="127.0.0.1")
    host = first.getHost()
    assert isinstance(host, IPv4Address) and host.type == "TCP" and host.port != 0
    assert factory.numPorts == 2 and events == ["startFactory"]
    r.connectTCP("127.0.0.1", host.port, LoggingClientFactory(), timeout=WAIT)
    runUntil(r, lambda: any(e[0] == "cf.lost" for e in events if isinstance(e, tuple)), WAIT)
    closedPort = second.getHost().port
    stopped: list[object] = []
    first.stopListening().addCallback(stopped.append)
    runUntil(r, lambda: bool(stopped), WAIT)
    assert factory.numPorts == 1 and "stopFactory" not in events
    second.stopListening().addCallback(stopped.append)
    runUntil(r, lambda: len(stopped) == 2, WAIT)
    r.connectTCP("127.0.0.1", closedPort, LoggingClientFactory(), timeout=WAIT)
    runUntil(r, lambda: any(e[0] == "cf.failed" for e in events if isinstance(e, tuple)), WAIT)
    assert events[0] == "startFactory"
    assert events[1] == ("srv.made", IPv4Address, IPv4Address, "TCP")
    assert ("srv.lost", ConnectionDone) in events
    assert ("cli.lost", ConnectionDone, b"byemore") in events
    assert ("cf.lost", ConnectionDone) in events
    assert events[-2:] == ["stopFactory", ("cf.failed", error.ConnectionRefusedError)]


def test_abortConnectionReasonMatchesTwisted(r: Any) -> None:
    """abortConnection with megabytes queued ends with ConnectionAborted; later calls are no-ops."""
    reasons: list[type] = []

    class Reader(Protocol):
        def connectionMade(self) -> None:
            self.transport.pauseProducing()

    class Aborter(Protocol):
        def connectionMade(self) -> None:
            self.transport.write(b"y" * 5_000_000)
            self.transport.abortConnection()
            self.transport.abortConnection()
            self.transport.loseConnection()
            self.transport.write(b"z")

        def connectionLost(self, reason: Failure) -> None:
            reasons.append(reason.type)

    port = r.listenTCP(0, Factory.forProtocol(Reader), interface="127.0.0.1")
    ClientCreator(r, Aborter).connectTCP("127.0.0.1", port.getHost().port)
    runUntil(r, lambda: bool(reasons), WAIT)
    assert reasons == [ConnectionAborted] and issubclass(ConnectionAborted, error.ConnectionLost)


def test_halfCloseableProtocolGetsReadConnectionLostAfterLoseWriteConnection(r: Any) -> None:
    """A half-closeable client that shut its write side hears readConnectionLost when the peer closes."""
    events: list[str] = []

    class Answer(Protocol):
        def dataReceived(self, data: bytes) -> None:
            self.transport.write(b"answer")
            self.transport.loseConnection()

    @implementer(IHalfCloseableProtocol)
    class Asker(Protocol):
        def connectionMade(self) -> None:
            self.transport.write(b"q")
            self.transport.loseWriteConnection()

        def readConnectionLost(self) -> None:
            events.append("readConnectionLost")
            self.transport.loseConnection()

        def writeConnectionLost(self) -> None:
            events.append("writeConnectionLost")

        def connectionLost(self, reason: Failure) -> None:
            events.append("connectionLost")

    port = r.listenTCP(0, Factory.forProtocol(Answer), interface="127.0.0.1")
    ClientCreator(r, Asker).connectTCP("127.0.0.1", port.getHost().port)
    runUntil(r, lambda: "connectionLost" in events, WAIT)
    assert events == ["writeConnectionLost", "readConnectionLost", "connectionLost"]


def test_reconnectingClientFactoryDelaysMatchTwisted() -> None:
    """With jitter 0 and an injected clock the retry delays grow by e up to maxDelay, as in Twisted."""

    class Connector:
        attempts = 0

        def connect(self) -> None:
            self.attempts += 1

        def stopConnecting(self) -> None:
            pass

    factory = ReconnectingClientFactory()
    factory.clock = Clock()
    factory.jitter = 0
    connector = Connector()
    delays = []
    for _ in range(11):
        factory.clientConnectionFailed(connector, Failure(error.ConnectionRefusedError()))
        (call,) = factory.clock.getDelayedCalls()
        delay = call.getTime() - factory.clock.seconds()
        delays.append(round(delay, 4))
        factory.clock.advance(delay)
    expected = [1.0, 2.7183, 7.3891, 20.0855, 54.5982, 148.4132, 403.4288, 1096.6332, 2980.958, 3600, 3600]
    assert delays == expected
    assert connector.attempts == 11 and factory.retries == 11
    factory.resetDelay()
    assert (factory.delay, factory.retries) == (1.0, 0)
    factory.maxRetries = 2
    for _ in range(3):
        factory.clientConnectionFailed(connector, Failure(error.ConnectionRefusedError()))
        factory.clock.advance(100)
    assert (connector.attempts, factory.clock.getDelayedCalls()) == (13, [])
    factory.stopTrying()
    assert not factory.continueTrying


def test_udpWriteConnectAndAddressesMatchTwisted(r: Any) -> None:
    """UDP getHost is an IPv4Address of type UDP; datagrams carry (host, port); connect() twice raises."""
    got: list[tuple[bytes, object]] = []

    class Sink(DatagramProtocol):
        def datagramReceived(self, datagram: bytes, addr: Any) -> None:
            got.append((datagram, addr))

    sink, source = Sink(), DatagramProtocol()
    sinkPort = r.listenUDP(0, sink, interface="127.0.0.1")
    r.listenUDP(0, source, interface="127.0.0.1")
    host = sinkPort.getHost()
    assert isinstance(host, IPv4Address) and host.type == "UDP"
    source.transport.write(b"hi", ("127.0.0.1", host.port))
    source.transport.connect("127.0.0.1", host.port)
    with pytest.raises(RuntimeError):
        source.transport.connect("127.0.0.1", host.port)
    source.transport.write(b"connected")
    runUntil(r, lambda: len(got) == 2, WAIT)
    assert [d for d, _ in got] == [b"hi", b"connected"] and all(isinstance(a, tuple) for _, a in got)


def test_udpWriteToHostNameRaisesInvalidAddressError(r: Any) -> None:
    """UDP write/connect with a host name instead of an IP literal raise error.InvalidAddressError."""
    proto = DatagramProtocol()
    r.listenUDP(0, proto, interface="127.0.0.1")
    invalid = getattr(error, "InvalidAddressError", None)
    assert invalid is not None
    with pytest.raises(invalid):
        proto.transport.write(b"x", ("localhost", 9))
    with pytest.raises(invalid):
        proto.transport.connect("localhost", 9)
