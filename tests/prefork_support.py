"""Helpers for the prefork tests: a supervisor process whose report lines can be awaited, and a load of
keep-alive HTTP clients that retry idempotent requests, counting what went wrong."""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
APP = os.path.join(ROOT, "tests", "prefork_app.py")
BOUND = 30.0  # seconds: the bound on any wait in these tests


class SupervisorProcess:
    """A running supervisor (a child process); its stderr lines are collected by a reader thread."""

    def __init__(self, argv: Sequence[str], cwd: str = ROOT) -> None:
        env = dict(os.environ, PYTHONPATH=ROOT)
        self.process = subprocess.Popen(list(argv), stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                        cwd=cwd, env=env)
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, name="supervisor-stderr", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for raw in self.process.stderr:
            with self._changed:
                self.lines.append(raw.decode(errors="replace").rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self.lines.append("<eof>")
            self._changed.notify_all()

    def waitFor(self, pattern: str, after: int = 0, seconds: float = BOUND) -> re.Match[str]:
        """The first line from index ``after`` on matching ``pattern``; AssertionError after ``seconds``."""
        deadline = time.monotonic() + seconds
        compiled = re.compile(pattern)
        with self._changed:
            while True:
                for line in self.lines[after:]:
                    match = compiled.search(line)
                    if match:
                        return match
                left = deadline - time.monotonic()
                if left <= 0 or (self.lines and self.lines[-1] == "<eof>"):
                    raise AssertionError(f"no line matching {pattern!r}; got:\n" + "\n".join(self.lines))
                self._changed.wait(left)

    def mark(self) -> int:
        """The number of lines so far (to wait for what comes after)."""
        with self._changed:
            return len(self.lines)

    def workerPids(self) -> set[int]:
        """Every worker pid the supervisor reported starting."""
        with self._changed:
            return {int(m.group(1)) for line in self.lines if (m := re.search(r"started: pid (\d+)", line))}

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self, seconds: float = BOUND) -> int:
        return self.process.wait(seconds)

    def cleanUp(self) -> None:
        """Kill the supervisor and every worker it started that is still there (workers have their own
        process groups, so they are not taken down with it)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(BOUND)
        for pid in self.workerPids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self._reader.join(BOUND)


def startSupervisor(workers: int, *options: str, app: Sequence[str] = ()) -> tuple[SupervisorProcess, int]:
    """A supervisor of ``workers`` prefork_app workers on a free port; returns it and the port, once every
    worker is ready."""
    argv = [sys.executable, "-m", "reactor.prefork", "--workers", str(workers), "--bind", "127.0.0.1:0",
            *options, "--", sys.executable, APP, "--port", "{port}", *app]
    supervisor = SupervisorProcess(argv)
    try:
        port = int(supervisor.waitFor(r"port (\d+) reserved").group(1))
        supervisor.waitFor(r"worker\(s\) ready")
    except BaseException:
        supervisor.cleanUp()
        raise
    return supervisor, port


def fetchPid(port: int) -> int:
    """GET / on a new connection: the pid of the worker that answered."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=BOUND)
    try:
        connection.request("GET", "/")
        return int(connection.getresponse().read())
    finally:
        connection.close()


class Load:
    """``clients`` threads sending GET / on keep-alive connections until stopped.

    A request that fails (reset, refused, cut off) is retried on a new connection, as a client may do
    for an idempotent request, up to ``attempts`` times; ``errors`` counts each kind of error seen,
    ``failed`` the requests that failed every attempt.
    """

    def __init__(self, port: int, clients: int = 4, attempts: int = 50) -> None:
        self.port = port
        self.attempts = attempts
        self.ok = 0
        self.failed = 0
        self.errors: Counter[str] = Counter()
        self.pids: Counter[int] = Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._progress = threading.Condition(self._lock)
        self._threads = [threading.Thread(target=self._client, name=f"load-{i}", daemon=True)
                         for i in range(clients)]
        for t in self._threads:
            t.start()

    def _client(self) -> None:
        connection: http.client.HTTPConnection | None = None
        while not self._stop.is_set():
            for attempt in range(self.attempts):
                if connection is None:
                    connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=BOUND)
                try:
                    connection.request("GET", "/")
                    pid = int(connection.getresponse().read())
                except (OSError, http.client.HTTPException) as e:
                    connection.close()
                    connection = None
                    with self._lock:
                        self.errors[type(e).__name__] += 1
                    if isinstance(e, ConnectionRefusedError):
                        # No listener at all: pace the retries (a client's back-off), bounded by attempts.
                        self._stop.wait(0.02 * (attempt + 1))
                    continue
                with self._progress:
                    self.ok += 1
                    self.pids[pid] += 1
                    self._progress.notify_all()
                break
            else:
                with self._lock:
                    self.failed += 1
        if connection is not None:
            connection.close()

    def waitForMore(self, count: int, seconds: float = BOUND) -> None:
        """Block until ``count`` more requests succeeded; AssertionError after ``seconds``."""
        deadline = time.monotonic() + seconds
        with self._progress:
            target = self.ok + count
            while self.ok < target:
                left = deadline - time.monotonic()
                assert left > 0, f"only {self.ok} of {target} requests succeeded; errors {dict(self.errors)}"
                self._progress.wait(left)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(BOUND)
            assert not t.is_alive(), f"{t.name} did not stop"
