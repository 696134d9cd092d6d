"""reactor.prefork and reusePort: worker processes on one port, killed, rolled and drained under load."""

from __future__ import annotations

import http.client
import json
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys

import pytest

from reactor import prefork
from reactor._loop import Reactor
from reactor.error import CannotListenError
from reactor.protocol import Factory, Protocol
from tests.prefork_support import APP, BOUND, ROOT, Load, SupervisorProcess, fetchPid, startSupervisor

pytestmark = pytest.mark.skipif(not hasattr(socket, "SO_REUSEPORT"), reason="needs SO_REUSEPORT")


def test_reusePortLetsTwoPortsListenOnOnePort() -> None:
    """Two listenTCP(reusePort=True) bind the same port; without it the second is refused."""
    reactor = Reactor()
    factory = Factory.forProtocol(Protocol)
    first = reactor.listenTCP(0, factory, interface="127.0.0.1", reusePort=True)
    try:
        number = first.getHost().port
        second = reactor.listenTCP(number, factory, interface="127.0.0.1", reusePort=True)
        assert second.getHost().port == number
        second.connectionLost(None)  # type: ignore[arg-type]
        with pytest.raises(CannotListenError):
            reactor.listenTCP(number, factory, interface="127.0.0.1")
    finally:
        first.connectionLost(None)  # type: ignore[arg-type]


def test_reusePortMustBeABool() -> None:
    """A reusePort that is not a bool raises TypeError naming it."""
    with pytest.raises(TypeError, match="reusePort"):
        Reactor().listenTCP(0, Factory.forProtocol(Protocol), reusePort="yes")  # type: ignore[arg-type]


def test_supervisorArgumentsAreChecked() -> None:
    """Bad workers, command or timeouts raise ValueError naming them."""
    with pytest.raises(ValueError, match="workers"):
        prefork.Supervisor(["x"], 0)
    with pytest.raises(ValueError, match="command"):
        prefork.Supervisor("python server.py", 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="stopTimeout"):
        prefork.Supervisor(["x"], 1, stopTimeout=-1)
    with pytest.raises(ValueError, match="maxBackoff"):
        prefork.Supervisor(["x"], 1, minBackoff=2, maxBackoff=1)


def test_notifyReadyOutsideASupervisorDoesNothing() -> None:
    """notifyReady and isWorker in a process no supervisor started: a no-op and False."""
    assert not prefork.isWorker()
    assert prefork.workerPort() is None
    prefork.notifyReady()


def test_twoWorkersServeTheSamePort() -> None:
    """Both workers answer on the one reserved port (the kernel spreads new connections)."""
    supervisor, port = startSupervisor(2)
    try:
        workers = set(map(int, re.findall(r"pids ([\d ]+)", "\n".join(supervisor.lines))[0].split()))
        seen: set[int] = set()
        for _ in range(500):
            seen.add(fetchPid(port))
            if seen == workers:
                break
        assert seen == workers
        supervisor.signal(signal.SIGTERM)
        assert supervisor.wait() == 0
    finally:
        supervisor.cleanUp()


def test_aKilledWorkerIsReplacedAndNoRequestFails() -> None:
    """SIGKILL a worker under keep-alive load: it is replaced, no request fails, no connection is refused."""
    supervisor, port = startSupervisor(2)
    load = Load(port)
    try:
        load.waitForMore(100)
        victim = int(supervisor.waitFor(r"worker 0 ready: pid (\d+)").group(1))
        mark = supervisor.mark()
        os.kill(victim, signal.SIGKILL)
        supervisor.waitFor(rf"worker 0 died: pid {victim}", after=mark)
        replacement = int(supervisor.waitFor(r"worker 0 ready: pid (\d+)", after=mark).group(1))
        load.waitForMore(100)
        load.stop()
        assert load.failed == 0, f"errors seen: {dict(load.errors)}"
        assert load.errors["ConnectionRefusedError"] == 0
        # The replacement takes new connections.
        for _ in range(500):
            if fetchPid(port) == replacement:
                break
        else:
            raise AssertionError("the replacement worker never answered")
    finally:
        load.stop()
        supervisor.cleanUp()


def test_sighupRestartsEveryWorkerUnderLoadWithoutAFailure() -> None:
    """SIGHUP under load: each worker is replaced in turn, no request fails, no connection is refused."""
    supervisor, port = startSupervisor(2)
    load = Load(port)
    try:
        old = supervisor.workerPids()
        load.waitForMore(100)
        mark = supervisor.mark()
        supervisor.signal(signal.SIGHUP)
        for pid in old:
            supervisor.waitFor(rf"stopped: pid {pid}, status 0", after=mark)
        new = supervisor.workerPids() - old
        assert len(new) == 2
        for pid in new:
            supervisor.waitFor(rf"ready: pid {pid}", after=mark)
        load.waitForMore(100)
        load.stop()
        assert load.failed == 0, f"errors seen: {dict(load.errors)}"
        assert load.errors["ConnectionRefusedError"] == 0
        assert not any("died" in line for line in supervisor.lines), supervisor.lines
        assert {fetchPid(port) for _ in range(20)} <= new
    finally:
        load.stop()
        supervisor.cleanUp()


def test_sigtermDrainsTheRequestsInFlightThenExits() -> None:
    """SIGTERM: a request already being answered completes; then every worker and the supervisor exit 0."""
    supervisor, port = startSupervisor(2, app=["--slow-seconds", "1.0"])
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=BOUND)
        connection.request("GET", "/slow")
        response = connection.getresponse()  # the head is out: the request is in its handler
        assert response.status == 200
        mark = supervisor.mark()
        supervisor.signal(signal.SIGTERM)
        body = response.read()
        assert body.startswith(b"started ")
        assert int(body.split()[1]) in supervisor.workerPids()
        assert supervisor.wait() == 0
        stopped = [line for line in supervisor.lines[mark:] if "stopped: pid" in line]
        assert len(stopped) == 2 and all(line.endswith("status 0") for line in stopped), stopped
        with pytest.raises(ConnectionRefusedError):
            fetchPid(port)
    finally:
        supervisor.cleanUp()


def test_aCrashLoopIsRestartedWithDoublingDelays() -> None:
    """A worker that keeps dying young is restarted after 0.05, 0.1, 0.2 s, then at most 0.2 s."""
    supervisor, _ = startSupervisor(1, "--min-backoff", "0.05", "--max-backoff", "0.2", app=["--crash"])
    try:
        delays = []
        after = 0
        for _ in range(4):
            match = supervisor.waitFor(r"died: .* restarting in ([\d.]+) s", after=after)
            delays.append(float(match.group(1)))
            after = supervisor.lines.index(match.string) + 1
        assert delays == [0.05, 0.1, 0.2, 0.2]
        supervisor.signal(signal.SIGTERM)
        assert supervisor.wait() == 0
    finally:
        supervisor.cleanUp()


def test_aWorkerThatCannotStartStopsTheSupervisorWithStatus1() -> None:
    """A worker command that exits before it is ready (a bad argument) ends the supervisor: status 1."""
    argv = [sys.executable, "-m", "reactor.prefork", "--workers", "2", "--", sys.executable, APP,
            "--port", "not-a-number"]
    supervisor = SupervisorProcess(argv)
    try:
        assert supervisor.wait() == 1
        supervisor.waitFor("failed to start")
    finally:
        supervisor.cleanUp()


def test_aWorkerNeverReadyIsKilledAtTheReadyTimeout() -> None:
    """A worker that never says it is ready is killed after --ready-timeout, and the start fails."""
    argv = [sys.executable, "-m", "reactor.prefork", "--workers", "1", "--ready-timeout", "0.5",
            "--bind", "127.0.0.1:0", "--", sys.executable, APP, "--port", "{port}", "--never-ready"]
    supervisor = SupervisorProcess(argv)
    try:
        assert supervisor.wait() == 1
        supervisor.waitFor("not ready after 0.5 s: killing")
    finally:
        supervisor.cleanUp()


WSGI_APP = '''
import os

def app(environ, start_response):
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
'''


def test_wsgiWorkersServeOnePortAndStopOnSigterm(tmp_path: pathlib.Path) -> None:
    """``deferthreads.wsgi app --workers 2``: two processes answer on one port; SIGTERM ends them."""
    (tmp_path / "pidapp.py").write_text(WSGI_APP)
    argv = [sys.executable, "-m", "deferthreads.wsgi", "pidapp:app", "--port", "0", "--workers", "2",
            "--threads", "2"]
    supervisor = SupervisorProcess(argv, cwd=str(tmp_path))
    try:
        port = int(supervisor.waitFor(r"port (\d+) reserved").group(1))
        pids = set(map(int, supervisor.waitFor(r"2 worker\(s\) ready: pids ([\d ]+)").group(1).split()))
        seen: set[int] = set()
        for _ in range(500):
            seen.add(fetchPid(port))
            if seen == pids:
                break
        assert seen == pids
        supervisor.signal(signal.SIGTERM)
        assert supervisor.wait() == 0
        assert sum("status 0" in line for line in supervisor.lines) == 2, supervisor.lines
    finally:
        supervisor.cleanUp()


def test_wsgiWorkersRefuseAUnixSocket() -> None:
    """--workers with --unix is a usage error (exit 2) naming both."""
    done = subprocess.run([sys.executable, "-m", "deferthreads.wsgi", "x:app", "--unix", "/tmp/x.sock",
                           "--workers", "2"], capture_output=True, text=True, timeout=BOUND, cwd=ROOT)
    assert done.returncode == 2
    assert "--workers needs a TCP port" in done.stderr


def test_webappExampleRunsTwoWorkersOnOnePort(tmp_path: pathlib.Path) -> None:
    """examples/webapp.py --workers 2: two processes share the port and the SQLite file; SIGTERM ends both."""
    argv = [sys.executable, os.path.join(ROOT, "examples", "webapp.py"), "--port", "0", "--workers", "2",
            "--db", str(tmp_path / "webapp.sqlite3"), "--shutdown-timeout", "5"]
    supervisor = SupervisorProcess(argv, cwd=str(tmp_path))
    try:
        port = int(supervisor.waitFor(r"port (\d+) reserved").group(1))
        supervisor.waitFor(r"2 worker\(s\) ready")
        for _ in range(10):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=BOUND)
            connection.request("GET", "/health")
            assert json.loads(connection.getresponse().read()) == {"ok": True}
            connection.close()
        supervisor.signal(signal.SIGTERM)
        assert supervisor.wait() == 0
        assert sum("status 0" in line for line in supervisor.lines) == 2, supervisor.lines
    finally:
        supervisor.cleanUp()
