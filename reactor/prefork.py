"""Many processes on one port: a pre-fork supervisor for ``reactor.web`` and ``deferthreads.wsgi`` servers.

One Python process serves on one core. To use them all, run N worker processes, each with its own
reactor, thread pools and connection pools, each listening on the same port with ``SO_REUSEPORT``
(``listenTCP(..., reusePort=True)``, ``listenHTTP(..., reusePort=True)``): the kernel spreads new
connections over the listening sockets. :class:`Supervisor` starts and watches the workers::

    python -m reactor.prefork --workers 2 --bind 127.0.0.1:8080 -- python myserver.py --port {port}
    python -m deferthreads.wsgi package.module:app --port 8080 --workers 2

What the supervisor does:

* starts ``workers`` workers and waits until each said it is listening (:func:`notifyReady`);
* SIGTERM or SIGINT: sends SIGTERM to every worker (which stops accepting, finishes its requests in
  flight and drains its pools), waits up to ``stopTimeout`` seconds, SIGKILLs what is left, exits 0;
* SIGHUP: a rolling restart (new code, new configuration), one worker at a time: the replacement
  starts and is listening *before* the old worker gets SIGTERM, so a listener is always there and no
  connection is refused;
* a worker that dies without being asked is replaced, at once after a healthy run; a worker that
  keeps dying young is restarted after a doubling delay (``minBackoff`` .. ``maxBackoff``), so a crash
  loop does not eat the machine; a worker that fails during the first start makes the supervisor stop
  and exit 1 (a wrong command or configuration, which restarting does not cure).

Each worker runs in a process group of its own, so a terminal's Ctrl-C reaches the supervisor alone,
which stops the workers in order. Killing the supervisor with SIGKILL leaves its workers running.

Workers are *spawned*, never forked: each is a fresh interpreter running ``command``. A fork of a
process that already has threads (a reactor's thread pool, a database driver's, a logging handler's)
copies their locks in whatever state they were, and the child can deadlock on one; a fresh
interpreter has nothing to inherit, imports the application itself, and works the same when the
supervisor is embedded in a program that already runs threads. The cost, an interpreter start per
worker (a fraction of a second), is paid at start and restart only. The supervisor process runs no
reactor and no threads: a loop on a self-pipe that signals and readiness pipes wake.

What a worker gets, in its environment: ``DEFERTHREADS_PREFORK_WORKER`` (its slot number; see
:func:`isWorker`), ``DEFERTHREADS_PREFORK_READY_FD`` (the pipe :func:`notifyReady` writes to) and, when the
supervisor reserved the port, ``DEFERTHREADS_PREFORK_PORT`` (:func:`workerPort`; ``{port}`` in the
command is replaced by it too).

A known limit of ``SO_REUSEPORT`` on Linux: connections the kernel already queued on a worker's
socket but which that worker had not yet accepted are reset when the socket closes (the worker died, or
is being stopped), unless ``net.ipv4.tcp_migrate_req`` is 1, which moves them to another listener.
Keep-alive clients that retry idempotent requests on a reset see no failure (the tests check that).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence

__all__ = [
    "PORT_ENV",
    "READY_FD_ENV",
    "WORKER_ENV",
    "Supervisor",
    "isWorker",
    "main",
    "notifyReady",
    "reservePort",
    "workerPort",
]

WORKER_ENV = "DEFERTHREADS_PREFORK_WORKER"
READY_FD_ENV = "DEFERTHREADS_PREFORK_READY_FD"
PORT_ENV = "DEFERTHREADS_PREFORK_PORT"

_READY = b"ready\n"


def isWorker() -> bool:
    """Whether this process is a worker started by a :class:`Supervisor` (it should listen with reusePort)."""
    return WORKER_ENV in os.environ


def workerPort() -> int | None:
    """The port the supervisor reserved for its workers, or None (not a worker, or no port reserved)."""
    value = os.environ.get(PORT_ENV)
    return int(value) if value else None


def notifyReady() -> None:
    """Tell the supervisor this worker is listening (any thread; once; a no-op outside a supervisor).

    Call it once the ports are listening and the reactor runs (``reactor.callWhenRunning(notifyReady)``):
    during a rolling restart the old worker is stopped only once its replacement said so, and a SIGTERM
    then finds the reactor's handler (a graceful stop) rather than the default (death).
    """
    fd = os.environ.pop(READY_FD_ENV, None)
    if fd is None:
        return
    with contextlib.suppress(OSError):
        os.write(int(fd), _READY)
    with contextlib.suppress(OSError):
        os.close(int(fd))


def reservePort(interface: str, port: int) -> socket.socket:
    """A bound, not listening, SO_REUSEPORT socket on ``interface:port`` (0: a free port).

    It receives no connection, but holds the port for the workers' listening sockets (only sockets
    of the same user with SO_REUSEPORT can join), and makes a port 0 concrete before they start.
    Close it when the workers are gone. Raises OSError if the port cannot be bound.
    """
    family = socket.AF_INET6 if ":" in interface else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((interface or "0.0.0.0", port))
    except BaseException:
        sock.close()
        raise
    return sock


class _Worker:
    """One worker process as the supervisor sees it (supervisor's main thread only)."""

    def __init__(self, slot: int, generation: int, process: subprocess.Popen[bytes], readyFd: int) -> None:
        self.slot = slot
        self.generation = generation
        self.process = process
        self.readyFd: int | None = readyFd
        self.startedAt = time.monotonic()
        self.ready = False
        # Asked to stop (SIGTERM sent): its exit is expected, not a crash.
        self.retiring = False
        # When a retiring worker is killed if it has not drained by then (None: not retiring, or killed).
        self.retireDeadline: float | None = None
        self.exited = False

    @property
    def pid(self) -> int:
        return self.process.pid


class Supervisor:
    """Runs ``workers`` copies of ``command`` and keeps them running (see the module docstring).

    ``command``: the worker's argv (``{port}`` in an argument is replaced by the reserved port).
    ``bind``: ``(interface, port)`` to reserve with :func:`reservePort` before the workers start (port
    0: a free one, see :attr:`port`). ``readyTimeout``: seconds a worker has to call
    :func:`notifyReady` (else it is killed, and treated as crashed). ``stopTimeout``: seconds the
    workers get to drain at SIGTERM or a restart before SIGKILL. ``minBackoff``/``maxBackoff``: the
    restart delay of a worker that died within ``healthyAfter`` seconds of its start, doubling per
    such crash in a row. ``log``: where the supervisor's one-line reports go (default: stderr).
    Raises ValueError naming a bad argument.
    """

    def __init__(
        self,
        command: Sequence[str],
        workers: int,
        *,
        bind: tuple[str, int] | None = None,
        env: Mapping[str, str] | None = None,
        readyTimeout: float = 30.0,
        stopTimeout: float = 30.0,
        minBackoff: float = 0.1,
        maxBackoff: float = 10.0,
        healthyAfter: float = 5.0,
        log: Callable[[str], None] | None = None,
    ) -> None:
        if isinstance(command, str) or not command or not all(isinstance(a, str) for a in command):
            raise ValueError(f"command must be a non-empty list of strings, got {command!r}")
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be an int >= 1, got {workers!r}")
        for name, value in (("readyTimeout", readyTimeout), ("stopTimeout", stopTimeout),
                            ("minBackoff", minBackoff), ("maxBackoff", maxBackoff),
                            ("healthyAfter", healthyAfter)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
                raise ValueError(f"{name} must be a number of seconds >= 0, got {value!r}")
        if maxBackoff < minBackoff:
            raise ValueError(f"maxBackoff ({maxBackoff}) must be >= minBackoff ({minBackoff})")
        self.command = list(command)
        self.workers = workers
        self.env = dict(os.environ if env is None else env)
        self.readyTimeout = float(readyTimeout)
        self.stopTimeout = float(stopTimeout)
        self.minBackoff = float(minBackoff)
        self.maxBackoff = float(maxBackoff)
        self.healthyAfter = float(healthyAfter)
        self._log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        self._reserved: socket.socket | None = None
        #: The reserved port (after :meth:`run` started, when ``bind`` was given), else None.
        self.port: int | None = None
        self._bind = bind
        # Everything below: the supervisor's main thread only.
        self._live: list[_Worker] = []
        self._generation = 0
        self._fastCrashes = [0] * workers
        self._restartAt: dict[int, float] = {}
        self._selector: selectors.BaseSelector | None = None
        self._signals: list[int] = []
        self._stopping = False
        # Slots whose worker was ready at least once, and the slot of a worker that died before it was
        # ready during the first start (which then fails).
        self._readySlots: set[int] = set()
        self._diedUnready: int | None = None

    def __repr__(self) -> str:
        state = "stopping" if self._stopping else f"{len(self._live)} live"
        return f"<Supervisor {self.workers} x {self.command[:3]!r} ({state})>"

    def say(self, message: str) -> None:
        """Report one line (prefixed with the supervisor's pid)."""
        self._log(f"prefork[{os.getpid()}]: {message}")

    # -- running ----------------------------------------------------------------------------------

    def run(self) -> int:
        """Start the workers and supervise them until SIGTERM/SIGINT (main thread); the exit status.

        0 after a stop on a signal, 1 if the first start failed. Raises OSError if ``bind`` cannot be
        reserved.
        """
        if self._bind is not None:
            self._reserved = reservePort(*self._bind)
            self.port = self._reserved.getsockname()[1]
            self.env[PORT_ENV] = str(self.port)
            self.command = [a.replace("{port}", str(self.port)) for a in self.command]
            self.say(f"port {self.port} reserved on {self._bind[0] or '*'}")
        self._selector = selectors.DefaultSelector()
        wakeRead, wakeWrite = os.pipe()
        os.set_blocking(wakeRead, False)
        os.set_blocking(wakeWrite, False)
        self._selector.register(wakeRead, selectors.EVENT_READ, None)
        watched = [signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD]
        previous = {s: signal.signal(s, lambda *_: None) for s in watched}
        oldWakeup = signal.set_wakeup_fd(wakeWrite)
        try:
            return self._supervise(wakeRead)
        finally:
            signal.set_wakeup_fd(oldWakeup)
            for s, handler in previous.items():
                signal.signal(s, handler)
            self._selector.close()
            os.close(wakeRead)
            os.close(wakeWrite)
            if self._reserved is not None:
                self._reserved.close()

    def _supervise(self, wakeRead: int) -> int:
        for slot in range(self.workers):
            self._spawn(slot)
        # The first start: every worker must come up once, else the command is wrong; stop and say so.
        # (One that was ready and died since is a crash, restarted by the loop below.)
        while len(self._readySlots) < self.workers:
            self._turn(wakeRead)
            if self._stopping:
                return self._stopAll()
            if self._diedUnready is not None:
                self.say(f"worker {self._diedUnready} failed to start; stopping")
                self._stopAll()
                return 1
        self.say(f"{self.workers} worker(s) ready: pids {' '.join(str(w.pid) for w in self._live)}")
        rolling: _Worker | None = None  # the replacement being started in a rolling restart
        while not self._stopping:
            self._turn(wakeRead)
            now = time.monotonic()
            for slot, when in list(self._restartAt.items()):
                if when <= now and not self._stopping:
                    del self._restartAt[slot]
                    self._spawn(slot)
            rolling = self._roll(rolling)
        return self._stopAll()

    def _roll(self, replacement: _Worker | None) -> _Worker | None:
        """One step of a rolling restart: replace the old workers one at a time, new one ready first."""
        if replacement is not None:
            if replacement.exited:
                replacement = None  # it crashed: the crash path restarts the slot; pick again below
            elif not replacement.ready:
                return replacement
            else:
                for old in self._live:
                    if old.slot == replacement.slot and old is not replacement and not old.retiring:
                        self._retire(old)
                replacement = None
        # Wait for the retired one to be gone, so at most workers + 1 processes run.
        if any(w.retiring for w in self._live):
            return None
        stale = [w for w in self._live if w.generation < self._generation and not w.retiring]
        if not stale:
            return None
        return self._spawn(stale[0].slot)

    def _turn(self, wakeRead: int) -> None:
        """Wait for a signal, a readiness note or the next deadline, and handle what happened."""
        assert self._selector is not None
        timeout = self._nextDeadline() - time.monotonic()
        events = self._selector.select(max(0.0, min(timeout, 1.0)))
        for key, _ in events:
            if key.fd == wakeRead:
                with contextlib.suppress(BlockingIOError):
                    self._signals.extend(os.read(wakeRead, 512))
            else:
                self._readReady(key.data)
        signals, self._signals = self._signals, []
        for signum in signals:
            if signum in (signal.SIGTERM, signal.SIGINT) and not self._stopping:
                self.say(f"{signal.Signals(signum).name}: stopping the workers")
                self._stopping = True
            elif signum == signal.SIGHUP and not self._stopping:
                self._generation += 1
                self.say(f"SIGHUP: rolling restart of {len(self._live)} worker(s), "
                         f"generation {self._generation}")
        self._reap()
        self._enforceDeadlines()

    def _nextDeadline(self) -> float:
        now = time.monotonic()
        deadlines = [now + 1.0, *self._restartAt.values()]
        deadlines += [w.startedAt + self.readyTimeout for w in self._live if not w.ready]
        return min(deadlines)

    def _spawn(self, slot: int) -> _Worker:
        readRead, readyWrite = os.pipe()
        os.set_blocking(readRead, False)
        env = dict(self.env)
        env[WORKER_ENV] = str(slot)
        env[READY_FD_ENV] = str(readyWrite)
        try:
            # A process group of its own: a terminal's Ctrl-C or hang-up, or a signal to the supervisor's
            # group, reaches the supervisor alone, which then stops or restarts the workers in order.
            process = subprocess.Popen(self.command, env=env, pass_fds=(readyWrite,), process_group=0)
        except OSError:
            os.close(readRead)
            raise
        finally:
            os.close(readyWrite)
        worker = _Worker(slot, self._generation, process, readRead)
        assert self._selector is not None
        self._selector.register(readRead, selectors.EVENT_READ, worker)
        self._live.append(worker)
        self.say(f"worker {slot} started: pid {worker.pid}")
        return worker

    def _closeReady(self, worker: _Worker) -> None:
        if worker.readyFd is not None:
            assert self._selector is not None
            self._selector.unregister(worker.readyFd)
            os.close(worker.readyFd)
            worker.readyFd = None

    def _readReady(self, worker: _Worker) -> None:
        assert worker.readyFd is not None
        try:
            data = os.read(worker.readyFd, 64)
        except BlockingIOError:
            return
        if data.startswith(_READY[:5]) and not worker.ready:
            worker.ready = True
            self._readySlots.add(worker.slot)
            self.say(f"worker {worker.slot} ready: pid {worker.pid}")
        self._closeReady(worker)

    def _retire(self, worker: _Worker) -> None:
        worker.retiring = True
        worker.retireDeadline = time.monotonic() + self.stopTimeout
        with contextlib.suppress(ProcessLookupError):
            worker.process.send_signal(signal.SIGTERM)
        self.say(f"worker {worker.slot} stopping: pid {worker.pid}")

    def _reap(self) -> None:
        for worker in list(self._live):
            status = worker.process.poll()
            if status is None:
                continue
            worker.exited = True
            self._live.remove(worker)
            if worker.readyFd is not None:
                self._readReady(worker)  # it may have said it was ready just before it died
            self._closeReady(worker)
            if worker.retiring or self._stopping:
                self.say(f"worker {worker.slot} stopped: pid {worker.pid}, status {status}")
                continue
            lived = time.monotonic() - worker.startedAt
            if not worker.ready and len(self._readySlots) < self.workers:
                self._diedUnready = worker.slot
            if lived >= self.healthyAfter and worker.ready:
                self._fastCrashes[worker.slot] = 0
                delay = 0.0
            else:
                self._fastCrashes[worker.slot] += 1
                delay = min(self.maxBackoff, self.minBackoff * 2 ** (self._fastCrashes[worker.slot] - 1))
            self._restartAt[worker.slot] = time.monotonic() + delay
            self.say(f"worker {worker.slot} died: pid {worker.pid}, status {status}, after {lived:.2f} s; "
                     f"restarting in {delay:.2f} s")

    def _enforceDeadlines(self) -> None:
        now = time.monotonic()
        for worker in self._live:
            if not worker.ready and not worker.retiring and now >= worker.startedAt + self.readyTimeout:
                self.say(f"worker {worker.slot} not ready after {self.readyTimeout} s: "
                         f"killing pid {worker.pid}")
                with contextlib.suppress(ProcessLookupError):
                    worker.process.kill()
            deadline = worker.retireDeadline
            if worker.retiring and deadline is not None and now >= deadline:
                self.say(f"worker {worker.slot} still draining after {self.stopTimeout} s: "
                         f"killing pid {worker.pid}")
                with contextlib.suppress(ProcessLookupError):
                    worker.process.kill()
                worker.retireDeadline = None

    def _stopAll(self) -> int:
        """SIGTERM every worker, wait for them (SIGKILL after ``stopTimeout``); exit status 0."""
        self._stopping = True
        self._restartAt.clear()
        for worker in self._live:
            if not worker.retiring:
                self._retire(worker)
        while self._live:
            self._turnStopping()
        self.say("all workers stopped")
        return 0

    def _turnStopping(self) -> None:
        assert self._selector is not None
        for key, _ in self._selector.select(0.05):
            if key.data is None:
                with contextlib.suppress(BlockingIOError):
                    os.read(key.fd, 512)
            else:
                self._readReady(key.data)
        self._reap()
        self._enforceDeadlines()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m reactor.prefork",
        description="Run N copies of a server command on one port (SO_REUSEPORT) and keep them running: "
                    "SIGTERM drains them, SIGHUP restarts them one by one, a crashed one is replaced.",
    )
    parser.add_argument("--workers", "-w", type=int, default=os.cpu_count() or 1,
                        help="worker processes (default: the number of CPUs)")
    parser.add_argument("--bind", metavar="HOST:PORT",
                        help="reserve this port first (0: a free one); {port} in the command becomes it")
    parser.add_argument("--stop-timeout", type=float, default=30.0, help="seconds to drain (default 30)")
    parser.add_argument("--ready-timeout", type=float, default=30.0,
                        help="seconds a worker has to become ready (default 30)")
    parser.add_argument("--min-backoff", type=float, default=0.1, help="first restart delay of a crash loop")
    parser.add_argument("--max-backoff", type=float, default=10.0, help="longest restart delay")
    parser.add_argument("--healthy-after", type=float, default=5.0,
                        help="seconds after which a worker's death is not a crash loop (default 5)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- the worker command")
    return parser


def parseBind(value: str) -> tuple[str, int]:
    """``"host:port"`` or ``"[v6]:port"`` as ``(host, port)``; raises ValueError naming the value."""
    host, sep, portText = value.rpartition(":")
    if not sep or not portText.isdigit() or not 0 <= int(portText) <= 65535:
        raise ValueError(f"bind must be HOST:PORT with a port 0..65535, got {value!r}")
    return host.strip("[]"), int(portText)


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; the exit status (2 for a bad argument)."""
    parser = _parser()
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the worker command after --")
    try:
        bind = parseBind(args.bind) if args.bind else None
        supervisor = Supervisor(command, args.workers, bind=bind, readyTimeout=args.ready_timeout,
                                stopTimeout=args.stop_timeout, minBackoff=args.min_backoff,
                                maxBackoff=args.max_backoff, healthyAfter=args.healthy_after)
    except ValueError as e:
        parser.error(str(e))
    try:
        return supervisor.run()
    except OSError as e:
        print(f"python -m reactor.prefork: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
