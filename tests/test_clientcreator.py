"""Tests of reactor.protocol.ClientCreator over loopback TCP and a Unix socket, with a real Reactor.

The ``async def`` tests run on the ``reactor`` fixture (tests/conftest.py: our epoll loop, asyncio- and
Qt-hosted) through the project's pytest plugin, which runs the reactor until the test is done and fails
the test if it leaves a port, a connection or a timed call behind."""

from __future__ import annotations

import os
import socket
import tempfile
from typing import Any

import pytest

from reactor import CancelledError, Deferred, Failure, maybeDeferred
from reactor.protocol import (
    ClientCreator,
    ConnectError,
    ConnectionRefusedError,
    ConnectTimeoutError,
    Factory,
    Protocol,
)
from reactor.task import Clock, deferLater
from tests.netsupport import Echo, runUntil
from tests.test_twistedports import FLAVOURS, checkProgram


class Greeter(Protocol):
    """A client protocol built by ClientCreator with arguments; records what happens to it.

    ``madeDeferred``/``lostDeferred`` fire (with None) on connectionMade/connectionLost;
    ``whenReceived(n)`` fires with the bytes once ``n`` have arrived.
    """

    def __init__(self, greeting: bytes, *, tag: str) -> None:
        self.greeting = greeting
        self.tag = tag
        self.made = False
        self.received = b""
        self.lost: Failure | None = None
        self.madeDeferred: Deferred[None] = Deferred()
        self.lostDeferred: Deferred[None] = Deferred()
        self._waiting: tuple[int, Deferred[bytes]] | None = None

    def connectionMade(self) -> None:
        self.made = True
        self.transport.write(self.greeting)
        self.madeDeferred.callback(None)

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        self._deliver()

    def whenReceived(self, count: int) -> Deferred[bytes]:
        d: Deferred[bytes] = Deferred()
        self._waiting = (count, d)
        self._deliver()
        return d

    def _deliver(self) -> None:
        if self._waiting is not None and len(self.received) >= self._waiting[0]:
            d = self._waiting[1]
            self._waiting = None
            d.callback(self.received)

    def connectionLost(self, reason: Any = None) -> None:
        self.lost = reason
        self.lostDeferred.callback(None)


class EchoServer(Factory):
    """Serves Echo; ``closed`` fires once the first connection it served is closed on the server side."""

    def __init__(self) -> None:
        super().__init__()
        self.closed: Deferred[None] = Deferred()

    def buildProtocol(self, addr: Any) -> Any:
        factory = self

        class TrackedEcho(Echo):
            def connectionLost(self, reason: Any = None) -> None:
                if not factory.closed.called:
                    factory.closed.callback(None)

        return TrackedEcho()


def outcome(d: Deferred[Any]) -> list[Any]:
    """Collect what ``d`` fires with (a value or a Failure) into a list."""
    results: list[Any] = []
    d.addBoth(results.append)
    return results


def freeTCPPort() -> int:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port: int = probe.getsockname()[1]
    probe.close()
    return port


async def test_connectTCPFiresWithConnectedProtocol(reactor: Any) -> None:
    """connectTCP fires with the protocol built from the arguments, after its connectionMade."""
    server = EchoServer()
    port = reactor.listenTCP(0, server, interface="127.0.0.1")
    creator = ClientCreator(reactor, Greeter, b"hello", tag="t1")
    proto = await creator.connectTCP("127.0.0.1", port.getHost().port, timeout=5)
    assert isinstance(proto, Greeter) and proto.tag == "t1" and proto.made
    assert await proto.whenReceived(5) == b"hello"
    proto.transport.loseConnection()
    await proto.lostDeferred
    await server.closed
    await maybeDeferred(port.stopListening)


async def test_connectTCPRefusedFails(reactor: Any) -> None:
    """A refused connection errbacks with ConnectionRefusedError."""
    creator = ClientCreator(reactor, Greeter, b"", tag="x")
    with pytest.raises(ConnectionRefusedError):
        await creator.connectTCP("127.0.0.1", freeTCPPort(), timeout=5)


async def test_cancelTCPAttemptInProgress(reactor: Any) -> None:
    """Cancelling while connecting stops the attempt and errbacks CancelledError (no refusal later)."""
    creator = ClientCreator(reactor, Greeter, b"", tag="x")
    d = creator.connectTCP("127.0.0.1", freeTCPPort(), timeout=5)
    results = outcome(d)
    d.cancel()  # before the loop turns: the attempt is still in progress
    assert isinstance(results[0], Failure) and results[0].check(CancelledError)
    # A refusal would arrive within a few loop turns: give it 50 ms to (not) show up.
    await deferLater(reactor, 0.05, lambda: None)
    assert len(results) == 1


def test_cancelStopsAnAttemptStillInProgress(reactor: Any) -> None:
    """Cancelling an attempt the server never completes (full backlog) abandons it at once."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    addr = listener.getsockname()
    fillers = []
    try:
        for _ in range(4):  # fill the accept queue; later SYNs are dropped by Linux
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(addr)
            fillers.append(s)
        d = ClientCreator(reactor, Greeter, b"", tag="x").connectTCP("127.0.0.1", addr[1], timeout=5)
        results = outcome(d)
        waited: list[bool] = []
        reactor.callLater(0.1, waited.append, True)
        runUntil(reactor, lambda: bool(waited) or bool(results))
        if results:
            pytest.skip("this kernel completed the connection despite the full backlog")
        assert reactor.getWriters() != []  # the attempt waits for writability
        d.cancel()
        assert isinstance(results[0], Failure) and results[0].check(CancelledError)
        assert reactor.getWriters() == []
        assert reactor.getDelayedCalls() == []  # neither its timeout nor a late outcome is left
    finally:
        for s in fillers:
            s.close()
        listener.close()


async def test_cancelAfterConnectBeforeFiringClosesConnection(reactor: Any) -> None:
    """Cancelling once connected but before the Deferred fired closes the connection, as Twisted does."""
    server = EchoServer()
    port = reactor.listenTCP(0, server, interface="127.0.0.1")
    built: list[Greeter] = []
    made: Deferred[None] = Deferred()

    def makeGreeter() -> Greeter:
        g = Greeter(b"hi", tag="c")
        g.madeDeferred.chainDeferred(made)
        built.append(g)
        return g

    creator = ClientCreator(reactor, makeGreeter)
    d = creator.connectTCP("127.0.0.1", port.getHost().port, timeout=5)
    results = outcome(d)
    await made  # resumes inside connectionMade, in the same loop turn
    assert results == []  # the success is delivered on the next turn: withdraw it
    d.cancel()
    assert isinstance(results[0], Failure) and results[0].check(CancelledError)
    await built[0].lostDeferred
    await server.closed
    await maybeDeferred(port.stopListening)


def test_failureIsDeliveredOnTheNextTurn(clock: Clock) -> None:
    """Arguments reach connectTCP; a connect failure errbacks the Deferred one reactor turn later."""
    calls: list[tuple[Any, ...]] = []

    class FakeConnector:
        def disconnect(self) -> None:
            calls.append(("disconnect",))

    class FakeReactor:
        """Records connectTCP; time from a Clock."""

        def callLater(self, delay: float, f: Any, *a: Any, **kw: Any) -> Any:
            return clock.callLater(delay, f, *a, **kw)

        def connectTCP(self, host: str, port: int, factory: Any, timeout: float, bindAddress: Any) -> Any:
            calls.append((host, port, factory, timeout, bindAddress))
            return FakeConnector()

    d = ClientCreator(FakeReactor(), Protocol).connectTCP(
        "10.0.0.1", 9, timeout=3, bindAddress=("0.0.0.0", 0)
    )
    results = outcome(d)
    host, port, factory, timeout, bindAddress = calls[0]
    assert (host, port, timeout, bindAddress) == ("10.0.0.1", 9, 3, ("0.0.0.0", 0))
    factory.clientConnectionFailed(None, Failure(ConnectTimeoutError("after 3 s")))
    assert results == []
    clock.advance(0)
    assert isinstance(results[0], Failure) and results[0].check(ConnectTimeoutError)
    d.cancel()  # already fired: nothing happens
    assert calls[1:] == []


async def test_connectUNIXSuccessAndRefusal(reactor: Any) -> None:
    """connectUNIX fires with the protocol; a path with no listener errbacks with a connect error."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "cc.sock")
        server = EchoServer()
        port = reactor.listenUNIX(path, server)
        creator = ClientCreator(reactor, Greeter, b"unix", tag="u")
        proto = await creator.connectUNIX(path, timeout=5)
        assert isinstance(proto, Greeter)
        assert await proto.whenReceived(4) == b"unix"
        proto.transport.loseConnection()
        await proto.lostDeferred
        await server.closed
        await maybeDeferred(port.stopListening)
        with pytest.raises(ConnectError):
            await creator.connectUNIX(os.path.join(tmp, "nobody.sock"), timeout=5)


async def test_cancelUNIXAttempt(reactor: Any) -> None:
    """Cancelling a connectUNIX attempt before its outcome is delivered errbacks CancelledError, once."""
    with tempfile.TemporaryDirectory() as tmp:
        d = ClientCreator(reactor, Greeter, b"", tag="u").connectUNIX(os.path.join(tmp, "none.sock"))
        results = outcome(d)
        assert results == []
        d.cancel()
        # The attempt's own outcome would arrive within a turn or two: give it 50 ms to (not) show up.
        await deferLater(reactor, 0.05, lambda: None)
        assert len(results) == 1 and isinstance(results[0], Failure) and results[0].check(CancelledError)


def test_badArgumentsRaiseAtTheCall(reactor: Any) -> None:
    """A non-callable protocolClass, a reactor without callLater, or an unsupported checkPID raise."""
    with pytest.raises(TypeError, match="protocolClass"):
        ClientCreator(reactor, 3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="reactor"):
        ClientCreator(object(), Protocol)
    with pytest.raises(ValueError, match="checkPID"):
        ClientCreator(reactor, Protocol).connectUNIX("/nonexistent.sock", checkPID=True)


CLIENT_CREATOR_AND_COOPERATE = """
from twisted.internet import defer
from twisted.internet import error
from twisted.internet import protocol
from twisted.internet import task

class Echo(protocol.Protocol):
    def dataReceived(self, data):
        self.transport.write(data)

class Client(protocol.Protocol):
    def __init__(self, tag):
        self.tag = tag
        self.received = b""
        self.waiting = None

    def expect(self, lines):
        self.lines = lines
        self.waiting = defer.Deferred()
        return self.waiting

    def dataReceived(self, data):
        self.received += data
        if self.waiting is not None and self.received.count(b"\\n") == self.lines:
            d, self.waiting = self.waiting, None
            d.callback(self.received)

def send(proto, log):
    for i in range(3):
        log.append(proto.tag + str(i))
        proto.transport.write(b"%s%d\\n" % (proto.tag.encode(), i))
        yield None

@defer.inlineCallbacks
def main(reactor):
    port = reactor.listenTCP(0, protocol.Factory.forProtocol(Echo), interface="127.0.0.1")
    number = port.getHost().port
    a = yield protocol.ClientCreator(reactor, Client, "a").connectTCP("127.0.0.1", number, timeout=5)
    b = yield protocol.ClientCreator(reactor, Client, tag="b").connectTCP("127.0.0.1", number)
    print("connected", a.tag, b.tag, a.transport is not None)
    log = []
    echoes = defer.gatherResults([a.expect(3), b.expect(3)])
    yield defer.gatherResults([task.coiterate(send(a, log)), task.coiterate(send(b, log))])
    print("turns", " ".join(log))
    print("echoed", (yield echoes))
    coop = task.Cooperator()
    endless = coop.cooperate(iter(range(10**9)))
    endless.pause()
    done = endless.whenDone()
    endless.resume()
    coop.stop()
    try:
        yield done
    except task.SchedulerStopped:
        print("scheduler stopped")
    yield port.stopListening()
    try:
        yield protocol.ClientCreator(reactor, Client, "c").connectTCP("127.0.0.1", number, timeout=5)
    except error.ConnectionRefusedError:
        print("refused")
    attempt = protocol.ClientCreator(reactor, Client, "d").connectTCP("127.0.0.1", number, timeout=5)
    attempt.cancel()
    try:
        yield attempt
    except defer.CancelledError:
        print("cancelled")
    a.transport.loseConnection()
    b.transport.loseConnection()

task.react(main)
"""


@FLAVOURS
def test_portedClientCreatorAndCooperate(flavour: str) -> None:
    """A Twisted program using ClientCreator, coiterate and Cooperator.stop ports by its imports."""
    checkProgram(
        CLIENT_CREATOR_AND_COOPERATE,
        """
connected a b True
turns a0 b0 a1 b1 a2 b2
echoed [b'a0\\na1\\na2\\n', b'b0\\nb1\\nb2\\n']
scheduler stopped
refused
cancelled
""",
        flavour,
    )
