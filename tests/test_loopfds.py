"""Tests for the reactor's file-descriptor set: readers, writers, and the connectionLost protocol."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from reactor import Failure, Reactor
from reactor._loop import FileDescriptorGone
from reactor._neterrors import ConnectionDone, ConnectionLost
from tests.loopsupport import REACTOR_KINDS, makeReactor, runBounded


@pytest.fixture(params=REACTOR_KINDS)
def reactor(request: pytest.FixtureRequest) -> Iterator[Reactor]:
    r = makeReactor(request.param)
    yield r
    r.close()


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    yield a, b
    a.close()
    b.close()


class Selectable:
    """A reader/writer over one socket that records what the reactor did to it."""

    def __init__(self, sock: socket.socket, reactor: Reactor) -> None:
        self.sock = sock
        self.reactor = reactor
        self.data = b""
        self.writes = 0
        self.lost: list[Failure] = []
        self.readResult: object = None
        self.readError: Exception | None = None
        self.stopAfterRead = True
        self.stopAfterWrite = True

    def fileno(self) -> int:
        return self.sock.fileno()

    def doRead(self) -> object:
        if self.readError is not None:
            raise self.readError
        chunk = self.sock.recv(4096)
        if not chunk:
            return ConnectionDone()
        self.data += chunk
        if self.stopAfterRead:
            self.reactor.stop()
        return self.readResult

    def doWrite(self) -> object:
        self.writes += 1
        self.sock.send(b"w")
        self.reactor.removeWriter(self)
        if self.stopAfterWrite:
            self.reactor.stop()
        return None

    def connectionLost(self, reason: Failure) -> None:
        self.lost.append(reason)
        if not self.reactor.stopping:
            self.reactor.stop()


def test_readerGetsDoReadWhenDataArrives(reactor: Reactor, pair: tuple[socket.socket, socket.socket]) -> None:
    """A reader's doRead runs when its socket is readable."""
    a, b = pair
    reader = Selectable(a, reactor)
    reactor.addReader(reader)
    assert reactor.getReaders() == [reader]
    b.send(b"hello")
    runBounded(reactor)
    assert reader.data == b"hello"


def test_writerGetsDoWrite(reactor: Reactor, pair: tuple[socket.socket, socket.socket]) -> None:
    """A writer's doWrite runs when its socket is writable; removeWriter stops it."""
    a, b = pair
    writer = Selectable(a, reactor)
    reactor.addWriter(writer)
    assert reactor.getWriters() == [writer]
    runBounded(reactor)
    assert writer.writes == 1
    assert reactor.getWriters() == []
    assert b.recv(10) == b"w"


def test_sameObjectReaderAndWriter(reactor: Reactor, pair: tuple[socket.socket, socket.socket]) -> None:
    """One object can be reader and writer of the same fd; removing one keeps the other."""
    a, b = pair
    obj = Selectable(a, reactor)
    obj.stopAfterWrite = False
    reactor.addReader(obj)
    reactor.addWriter(obj)
    reactor.addWriter(obj)  # idempotent
    b.send(b"x")
    runBounded(reactor)
    assert obj.writes == 1 and obj.data == b"x"
    reactor.addReader(obj)
    reactor.addWriter(obj)
    reactor.removeWriter(obj)
    assert reactor.getReaders() == [obj] and reactor.getWriters() == []
    reactor.removeReader(obj)
    assert reactor.getReaders() == []


def test_removeReaderStopsCalls(reactor: Reactor, pair: tuple[socket.socket, socket.socket]) -> None:
    """A removed reader gets no doRead even with data waiting."""
    a, b = pair
    reader = Selectable(a, reactor)
    reactor.addReader(reader)
    reactor.removeReader(reader)
    reactor.removeReader(reader)  # no error when not watched
    b.send(b"ignored")
    reactor.callLater(0.01, reactor.stop)
    runBounded(reactor)
    assert reader.data == b""


def test_doReadExceptionLosesConnection(
    reactor: Reactor, pair: tuple[socket.socket, socket.socket], caplog: pytest.LogCaptureFixture
) -> None:
    """doRead raising removes the object from both sets and calls connectionLost with that exception."""
    a, b = pair
    obj = Selectable(a, reactor)
    obj.readError = ValueError("bad bytes")
    reactor.addReader(obj)
    reactor.addWriter(obj)
    obj.writes = -(10**9)  # doWrite would run too; make sure it is not what stops us
    reactor.removeWriter(obj)
    reactor.addWriter(obj)
    b.send(b"x")

    def writeNothing() -> object:
        return None

    obj.doWrite = writeNothing  # type: ignore[method-assign]
    with caplog.at_level(logging.ERROR, logger="reactor"):
        runBounded(reactor)
    assert len(obj.lost) == 1
    assert obj.lost[0].check(ValueError)
    assert reactor.getReaders() == [] and reactor.getWriters() == []
    assert "bad bytes" in caplog.text


def test_doReadReturningReasonLosesConnection(
    reactor: Reactor, pair: tuple[socket.socket, socket.socket]
) -> None:
    """doRead returning an exception means done: connectionLost gets a Failure of it."""
    a, b = pair
    obj = Selectable(a, reactor)
    obj.stopAfterRead = False
    reactor.addReader(obj)
    b.close()
    runBounded(reactor)
    assert len(obj.lost) == 1
    assert obj.lost[0].check(ConnectionDone)
    assert reactor.getReaders() == []


def test_doReadReturningFailurePassesItThrough(
    reactor: Reactor, pair: tuple[socket.socket, socket.socket]
) -> None:
    """A Failure returned by doRead reaches connectionLost as is."""
    a, b = pair
    obj = Selectable(a, reactor)
    obj.stopAfterRead = False
    failure = Failure(ConnectionLost("custom"))
    obj.readResult = failure
    reactor.addReader(obj)
    b.send(b"x")
    runBounded(reactor)
    assert obj.lost == [failure]


def test_closedDescriptorIsDroppedGracefully(
    reactor: Reactor, pair: tuple[socket.socket, socket.socket]
) -> None:
    """An object whose fileno() became -1 is dropped with FileDescriptorGone; removeReader still works."""
    a, b = pair
    obj = Selectable(a, reactor)
    reactor.addReader(obj)
    other = Selectable(b, reactor)
    reactor.addReader(other)
    a.close()  # fileno() is now -1; the kernel forgot the registration
    reactor.removeReader(obj)  # uses the recorded fd
    assert reactor.getReaders() == [other]

    obj2 = Selectable(b, reactor)
    reactor.removeReader(other)
    reactor.addWriter(obj2)
    minusOne = [-1]
    obj2.fileno = lambda: minusOne[0]  # type: ignore[method-assign]
    runBounded(reactor)
    assert len(obj2.lost) == 1 and obj2.lost[0].check(FileDescriptorGone)
    assert reactor.getWriters() == []


def test_reusedDescriptorNumberReplacesStaleObject(reactor: Reactor) -> None:
    """A new socket reusing a closed fd number can be added although the old object never removed itself."""
    a, b = socket.socketpair()
    stale = Selectable(a, reactor)
    reactor.addReader(stale)
    fd = a.detach()  # the stale object now reports -1, as a closed socket does
    b.close()
    c, peer = socket.socketpair()
    # Put the new socket on the old number atomically (closing the old one), so no other
    # descriptor opened meanwhile can take that number first.
    os.dup2(c.fileno(), fd)
    c.close()
    fresh = Selectable(socket.socket(fileno=fd), reactor)
    try:
        assert fresh.fileno() == fd
        reactor.addReader(fresh)
        assert reactor.getReaders() == [fresh]
        peer.send(b"new")
        runBounded(reactor)
        assert fresh.data == b"new"
    finally:
        fresh.sock.close()
        peer.close()


def test_addReaderBadObjects(reactor: Reactor) -> None:
    """Objects without fileno, or with a negative one, are refused at the call."""
    with pytest.raises(TypeError, match="fileno"):
        reactor.addReader(object())

    class Closed:
        def fileno(self) -> int:
            return -1

    with pytest.raises(ValueError, match="-1"):
        reactor.addWriter(Closed())


def test_removeAllReturnsEverythingButTheWaker(
    reactor: Reactor, pair: tuple[socket.socket, socket.socket]
) -> None:
    """removeAll drops every reader and writer and returns them, once each."""
    a, b = pair
    x, y = Selectable(a, reactor), Selectable(b, reactor)
    reactor.addReader(x)
    reactor.addWriter(x)
    reactor.addReader(y)
    removed = reactor.removeAll()
    assert sorted(map(id, removed)) == sorted([id(x), id(y)])
    assert reactor.getReaders() == [] and reactor.getWriters() == []
    # The waker still works.
    reactor.callFromThread(reactor.stop)
    runBounded(reactor)


def test_shutdownDisconnectsRemainingSelectables(
    reactor: Reactor, pair: tuple[socket.socket, socket.socket]
) -> None:
    """Selectables still watched at 'during shutdown' get connectionLost(ConnectionLost)."""
    a, _ = pair
    obj: Any = Selectable(a, reactor)
    reactor.addReader(obj)
    reactor.callWhenRunning(reactor.stop)
    runBounded(reactor)
    assert len(obj.lost) == 1 and obj.lost[0].check(ConnectionLost)
    assert reactor.getReaders() == []
