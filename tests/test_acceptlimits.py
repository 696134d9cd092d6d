"""A listening port out of descriptors or memory neither spins nor floods the log, and recovers.

Unit tests drive a real listening socket whose ``accept()`` fails on cue, on a ``Clock`` that also
records which selectables are watched. The end-to-end tests run a server in a child process whose
descriptor limit is lowered with ``setrlimit``, open more connections than it has descriptors, and
check its CPU time, its log and that it serves again once the clients have gone.
"""

from __future__ import annotations

import errno
import logging
import os
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reactor._acceptlimits import FIRST_PAUSE, MAX_PAUSE
from reactor._tcp import Port
from reactor._unix import UNIXPort
from reactor.protocol import Factory, Protocol
from reactor.task import Clock

REPO = Path(__file__).resolve().parent.parent


class WatchingClock(Clock):
    """A Clock that is also enough of a reactor for a port: it records the watched readers."""

    def __init__(self) -> None:
        super().__init__()
        self.readers: set[Any] = set()

    def addReader(self, reader: Any) -> None:
        self.readers.add(reader)

    def removeReader(self, reader: Any) -> None:
        self.readers.discard(reader)

    def addWriter(self, writer: Any) -> None:
        pass

    def removeWriter(self, writer: Any) -> None:
        pass


class FailingListener:
    """A listening socket whose accept() raises the queued errno values before accepting for real."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.errors: list[int] = []
        self.calls = 0

    def accept(self) -> tuple[socket.socket, Any]:
        self.calls += 1
        if self.errors:
            code = self.errors.pop(0)
            raise OSError(code, os.strerror(code))
        return self._sock.accept()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class Served(Protocol):
    """Counts itself into its factory's ``served`` list."""

    def connectionMade(self) -> None:
        self.factory.served.append(self)


class ServedFactory(Factory):
    protocol = Served

    def __init__(self) -> None:
        self.served: list[Served] = []


class NoSparePort(Port):
    """A TCP port without the spare descriptor: out of descriptors, it can only pause."""

    _keepSpareDescriptor = False


class NoSpareUNIXPort(UNIXPort):
    """A Unix port without the spare descriptor."""

    _keepSpareDescriptor = False


class Rig:
    """A port on a WatchingClock with an injectable accept failure, and its clients."""

    def __init__(self, kind: str, tmp: Path, spare: bool = True) -> None:
        self.clock = WatchingClock()
        self.factory = ServedFactory()
        self.kind = kind
        self.port: Port
        if kind == "tcp":
            tcpClass = Port if spare else NoSparePort
            self.port = tcpClass(0, self.factory, 50, "127.0.0.1", self.clock)
        else:
            unixClass = UNIXPort if spare else NoSpareUNIXPort
            self.port = unixClass(str(tmp / "s.sock"), self.factory, 50, 0o666, self.clock)
        self.port.startListening()
        assert self.port.socket is not None
        self.listener = FailingListener(self.port.socket)
        self.port.socket = self.listener  # type: ignore[assignment]
        self.clients: list[socket.socket] = []

    def connect(self) -> socket.socket:
        """A blocking client, connected (sitting in the listen queue until accepted)."""
        if self.kind == "tcp":
            sock = socket.create_connection(("127.0.0.1", self.port.getHost().port), timeout=5)
        else:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(5)
            sock.connect(self.port.path)  # type: ignore[attr-defined]
        self.clients.append(sock)
        return sock

    @property
    def watched(self) -> bool:
        return self.port in self.clock.readers

    def pendingDelays(self) -> list[float]:
        return [call.getTime() - self.clock.seconds() for call in self.clock.getDelayedCalls()]

    def close(self) -> None:
        for sock in self.clients:
            sock.close()
        for proto in self.factory.served:
            proto.transport.socket.close()
        if self.port.socket is not None:
            self.port.connectionLost(None)  # type: ignore[arg-type]


@pytest.fixture(params=["tcp", "unix"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def rig(kind: str, tmp_path: Path) -> Iterator[Rig]:
    r = Rig(kind, tmp_path)
    yield r
    r.close()


@pytest.fixture
def pausingRig(kind: str, tmp_path: Path) -> Iterator[Rig]:
    r = Rig(kind, tmp_path, spare=False)
    yield r
    r.close()


def netWarnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "reactor.network"]


def isRefused(sock: socket.socket) -> bool:
    """Whether the server closed ``sock`` without a word (EOF or reset), waiting at most 5 s."""
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


@pytest.mark.parametrize("code", [errno.ENFILE, errno.ENOBUFS, errno.ENOMEM, errno.EMFILE])
def test_resourceErrorPausesThenResumesAndAccepts(
    pausingRig: Rig, code: int, caplog: pytest.LogCaptureFixture
) -> None:
    """A resource error unwatches the socket, logs once, watches again after a growing delay, accepts."""
    caplog.set_level(logging.INFO, logger="reactor.network")
    rig = pausingRig
    rig.connect()
    rig.listener.errors = [code, code]
    rig.port.doRead()
    assert not rig.watched
    assert rig.pendingDelays() == [pytest.approx(FIRST_PAUSE)]
    assert "accepts paused" in repr(rig.port)
    assert len(netWarnings(caplog)) == 1
    assert os.strerror(code) in netWarnings(caplog)[0]
    rig.clock.advance(FIRST_PAUSE)
    assert rig.watched
    rig.port.doRead()
    assert not rig.watched
    assert rig.pendingDelays() == [pytest.approx(2 * FIRST_PAUSE)]
    rig.clock.advance(2 * FIRST_PAUSE * 0.99)
    assert not rig.watched
    rig.clock.advance(2 * FIRST_PAUSE * 0.01)
    assert rig.watched
    assert len(netWarnings(caplog)) == 1
    rig.port.doRead()
    assert len(rig.factory.served) == 1
    assert rig.watched and rig.pendingDelays() == []
    logged = netWarnings(caplog)
    assert len(logged) == 2
    assert "accepting connections again" in logged[1] and "2 accept() call(s) failed" in logged[1]
    assert "accepts paused" not in repr(rig.port)


def test_backOffIsCappedAndLogsOnlyOnce(pausingRig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    """Accepts failing for a long time: the delay doubles up to its cap, and the log holds one line."""
    caplog.set_level(logging.INFO, logger="reactor.network")
    rig = pausingRig
    rig.listener.errors = [errno.ENOMEM] * 20
    delays = []
    for _ in range(20):
        rig.port.doRead()
        (delay,) = rig.pendingDelays()
        delays.append(delay)
        rig.clock.advance(delay)
    expected = [min(FIRST_PAUSE * 2**i, MAX_PAUSE) for i in range(20)]
    assert delays == pytest.approx(expected)
    assert rig.listener.calls == 20
    assert len(netWarnings(caplog)) == 1


def test_emfileRefusesWaitingClientsAtOnce(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    """EMFILE with the spare descriptor: waiting clients are accepted and closed, the socket stays watched."""
    caplog.set_level(logging.INFO, logger="reactor.network")
    clients = [rig.connect() for _ in range(3)]
    rig.listener.errors = [errno.EMFILE]
    rig.port.doRead()
    assert all(isRefused(c) for c in clients)
    assert rig.watched and rig.pendingDelays() == []
    assert rig.factory.served == []
    assert rig.port._acceptLimiter._spare is not None and rig.port._acceptLimiter._spare.held
    assert "refusing connections: 3 refused" in repr(rig.port)
    assert len(netWarnings(caplog)) == 1
    rig.connect()
    rig.port.doRead()
    assert len(rig.factory.served) == 1
    logged = netWarnings(caplog)
    assert len(logged) == 2 and "3 connection(s) refused, 1 accept() call(s) failed" in logged[1]


def test_emfileWhenTheFreedSlotIsTakenPauses(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    """EMFILE again after giving up the spare (another thread took the slot): the port pauses instead."""
    caplog.set_level(logging.INFO, logger="reactor.network")
    rig.connect()
    rig.listener.errors = [errno.EMFILE, errno.EMFILE]
    rig.port.doRead()
    assert not rig.watched
    assert rig.pendingDelays() == [pytest.approx(FIRST_PAUSE)]
    assert rig.port._acceptLimiter.failed == 2
    rig.clock.advance(FIRST_PAUSE)
    rig.port.doRead()
    assert len(rig.factory.served) == 1
    assert len(netWarnings(caplog)) == 2


def test_stopListeningWhilePausedCancelsTheResume(pausingRig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    """Stopping a paused port fires its Deferred, cancels the resume and never watches the socket again."""
    caplog.set_level(logging.INFO, logger="reactor.network")
    rig = pausingRig
    rig.listener.errors = [errno.ENFILE]
    rig.port.doRead()
    assert not rig.watched
    stopped: list[object] = []
    rig.port.stopListening().addCallback(stopped.append)
    rig.clock.advance(0)
    assert stopped == [None]
    assert rig.clock.getDelayedCalls() == []
    rig.clock.advance(10 * MAX_PAUSE)
    assert not rig.watched and rig.port.socket is None
    logged = netWarnings(caplog)
    assert len(logged) == 2 and "stopped listening" in logged[1]


def test_stopListeningReleasesTheSpare(rig: Rig) -> None:
    """The spare descriptor lives exactly as long as the port listens."""
    spare = rig.port._acceptLimiter._spare
    assert spare is not None and spare.held
    rig.port.stopListening()
    rig.clock.advance(0)
    assert not spare.held


def test_permissionErrorSkipsOnlyThatConnection(rig: Rig) -> None:
    """EPERM from accept (a firewall rule refused that client) skips it; the port keeps accepting."""
    rig.connect()
    rig.listener.errors = [errno.EPERM]
    rig.port.doRead()
    assert len(rig.factory.served) == 1
    assert rig.port.socket is not None and rig.watched


# The child: a server that greets each connection, its descriptor limit lowered to leave ROOM free
# ones. It reads commands from stdin: "measure" (print CPU and wall time and the log count after
# WINDOW seconds), "quit". Its log goes to a counter, never to a pipe it could block on.
CHILD = r"""
import logging, os, resource, sys, time
from reactor.protocol import Factory, Protocol
from tests.loopsupport import makeReactor
import reactor._tcp

kind, family, spare, path = sys.argv[1], sys.argv[2], sys.argv[3] == "1", sys.argv[4]
ROOM, WINDOW = 24, 0.5
reactor._tcp.Port._keepSpareDescriptor = spare

class Count(logging.Handler):
    def __init__(self):
        super().__init__()
        self.count = 0
        self.first = []
    def emit(self, record):
        self.count += 1
        if len(self.first) < 4:
            self.first.append(record.getMessage())

counter = Count()
root = logging.getLogger()
root.handlers[:] = [counter]
root.setLevel(logging.INFO)

class Hello(Protocol):
    def connectionMade(self):
        self.transport.write(b"hello\n")

r = makeReactor(kind)
if family == "tcp":
    port = r.listenTCP(0, Factory.forProtocol(Hello), backlog=256, interface="127.0.0.1")
    where = str(port.getHost().port)
else:
    port = r.listenUNIX(path, Factory.forProtocol(Hello), backlog=256)
    where = path

def cpu():
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime

def say(*words):
    os.write(1, (" ".join(map(str, words)) + "\n").encode())

class Commands:
    def __init__(self):
        self.buf = b""
    def fileno(self):
        return 0
    def logPrefix(self):
        return "stdin"
    def doRead(self):
        chunk = os.read(0, 1024)
        if not chunk:
            r.stop()
            return
        self.buf += chunk
        while b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            if line == b"measure":
                t0, c0 = time.monotonic(), cpu()
                r.callLater(WINDOW, lambda: say("measured", cpu() - c0, time.monotonic() - t0, counter.count))
            elif line == b"quit":
                r.stop()
    def doWrite(self):
        pass
    def connectionLost(self, reason):
        pass

r.addReader(Commands())
highest = max(int(fd) for fd in os.listdir("/proc/self/fd"))
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (highest + 1 + ROOM, hard))
say("listening", where)
r.run(installSignalHandlers=False)
say("logs", counter.count, repr(counter.first))
"""

CLIENTS = 64


class Child:
    """The child server process and a bounded reader of its stdout lines."""

    def __init__(self, reactorKind: str, family: str, spare: bool, path: str) -> None:
        env = dict(os.environ, PYTHONPATH=str(REPO))
        args = [sys.executable, "-c", CHILD, reactorKind, family, "1" if spare else "0", path]
        self.proc = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO, env=env
        )
        self._buf = b""

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command.encode() + b"\n")
        self.proc.stdin.flush()

    def readLine(self, timeout: float = 15.0) -> list[str]:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise AssertionError(f"no line from the child within {timeout} s")
            chunk = os.read(fd, 4096)
            if not chunk:
                stderr = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise AssertionError(f"the child exited: {stderr}")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line.decode().split(" ", 2)

    def finish(self) -> list[str]:
        self.send("quit")
        words = self.readLine()
        assert self.proc.wait(timeout=15) == 0
        return words

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=15)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def outcomes(clients: list[socket.socket], timeout: float) -> tuple[int, int]:
    """(greeted, refused) counts of ``clients`` once each has an answer, or when ``timeout`` is up."""
    greeted = refused = 0
    waiting = list(clients)
    deadline = time.monotonic() + timeout
    while waiting:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        ready, _, _ = select.select(waiting, [], [], left)
        for sock in ready:
            waiting.remove(sock)
            if isRefused(sock):
                refused += 1
            else:
                greeted += 1
    return greeted, refused


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts descriptors in /proc/self/fd")
@pytest.mark.parametrize(
    ("reactorKind", "family", "spare"),
    [
        ("epoll", "tcp", True),
        ("epoll", "tcp", False),
        ("epoll", "unix", True),
        ("epoll", "unix", False),
        ("asyncio", "tcp", True),
    ],
)
def test_serverOutOfDescriptorsStaysIdleAndRecovers(
    reactorKind: str, family: str, spare: bool, tmp_path: Path
) -> None:
    """More clients than descriptors: the server idles, logs a few lines, and serves again once they go."""
    path = str(tmp_path / "s.sock")
    child = Child(reactorKind, family, spare, path)
    clients: list[socket.socket] = []

    def connect() -> socket.socket:
        if family == "tcp":
            sock = socket.create_connection(("127.0.0.1", int(where)), timeout=5)
        else:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(5)
            sock.connect(path)
        clients.append(sock)
        return sock

    try:
        _, where = child.readLine()
        for _ in range(CLIENTS):
            connect()
        # With the spare, every client hears at once: greeted, or closed unserved.
        greeted, refused = outcomes(clients, timeout=10 if spare else 0)
        if spare:
            assert greeted + refused == CLIENTS and greeted > 0 and refused > 0
        child.send("measure")
        word, cpu, rest = child.readLine()
        wall, logs = (float(x) for x in rest.split())
        assert word == "measured"
        assert float(cpu) < 0.1 * wall, f"the child used {cpu} s of CPU in {wall} s"
        assert logs <= 2
        for sock in clients:
            sock.close()
        clients.clear()
        fresh = connect()
        assert fresh.recv(6) == b"hello\n"
        word, logs, first = child.finish()
        # Two lines an episode; the queued clients the parent closed can take another one or two.
        assert word == "logs" and int(logs) <= 6, first
        assert "accepting connections again" in first
    finally:
        for sock in clients:
            sock.close()
        child.kill()
