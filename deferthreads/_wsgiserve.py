"""Serving a WSGI application as a program: ``python -m deferthreads.wsgi package.module:app``.

:func:`listenWSGI` puts a :class:`WSGIContainer` on a port (TCP, TLS or a Unix socket) and arranges the
graceful stop; :func:`run` does that and runs the reactor until SIGINT or SIGTERM; :func:`main` is the
command line.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

from deferthreads import ThreadPool, drainThreadPool
from deferthreads._wsgicontainer import WSGIApplication, WSGIContainer
from reactor import Deferred, prefork
from reactor.web import HTTPFactory, Request

__all__ = ["WSGIServer", "listenWSGI", "loadApplication", "main", "run"]

_log = logging.getLogger("deferthreads.wsgi")
_accessLog = logging.getLogger("deferthreads.wsgi.access")

#: Seconds the graceful stop gives requests in flight (then the connections are dropped).
DEFAULT_STOP_TIMEOUT = 30.0


def loadApplication(spec: str) -> WSGIApplication:
    """The application named by ``spec``: ``"package.module:name"`` (``name`` may be dotted, or end in
    ``()`` to call a factory); ``"package.module"`` means ``package.module:application``.

    Raises ``ValueError`` naming ``spec`` when the module or the name is not there or not callable.
    """
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"application must be 'package.module:name', got {spec!r}")
    moduleName, _, attribute = spec.partition(":")
    attribute = attribute or "application"
    call = attribute.endswith("()")
    if call:
        attribute = attribute[:-2]
    try:
        target: Any = importlib.import_module(moduleName)
    except ImportError as e:
        raise ValueError(f"application {spec!r}: cannot import module {moduleName!r}: {e}") from e
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ValueError(f"application {spec!r}: module {moduleName!r} has no {attribute!r}") from None
    if call:
        target = target()
    if not callable(target):
        raise ValueError(f"application {spec!r} is a {type(target).__name__}, not a WSGI callable")
    return target  # type: ignore[no-any-return]


def commonLogLine(request: Request, status: int, size: int) -> str:
    """One access-log line in the Common Log Format (``size`` -1: streamed, written as ``-``)."""
    client = request.client
    host = getattr(client, "host", None) or "-"
    when = time.strftime("%d/%b/%Y:%H:%M:%S %z")
    return (f'{host} - - [{when}] "{request.method} {request.target} HTTP/{request.httpVersion}" '
            f"{status} {size if size >= 0 else '-'}")


def _logAccess(request: Request, status: int, size: int) -> None:
    _accessLog.info("%s", commonLogLine(request, status, size))


class WSGIServer:
    """An application being served: its container, HTTP factory, listening port and thread pool.

    Built by :func:`listenWSGI`. :meth:`stopGracefully` (reactor thread) stops accepting, lets requests
    in flight finish (up to ``timeout`` seconds, then drops their connections) and drains the pool if
    the server owns it; it is also registered as a ``before shutdown`` trigger, so ``reactor.stop()``
    does all that before the reactor stops.
    """

    def __init__(self, reactor: Any, container: WSGIContainer, factory: HTTPFactory, port: Any,
                 ownsPool: bool, stopTimeout: float) -> None:
        self.reactor = reactor
        self.container = container
        self.factory = factory
        self.port = port
        self.ownsPool = ownsPool
        self.stopTimeout = stopTimeout
        self._stopping: Deferred[None] | None = None

    def __repr__(self) -> str:
        return f"<WSGIServer {self.container.application!r} on {self.port.getHost()!r}>"

    async def _stop(self, timeout: float) -> None:
        await self.port.stopListening()
        await self.factory.stopGracefully(timeout)
        if self.ownsPool:
            await drainThreadPool(self.reactor, self.container.threadpool, timeout)

    def stopGracefully(self, timeout: float | None = None) -> Deferred[None]:
        """Stop serving (reactor thread); the Deferred fires once every request has ended. Idempotent."""
        if self._stopping is None:
            seconds = self.stopTimeout if timeout is None else timeout
            self._stopping = Deferred.fromCoroutine(self._stop(seconds))
        return self._stopping


def listenWSGI(
    application: WSGIApplication,
    *,
    port: int = 8000,
    interface: str = "127.0.0.1",
    unix: str | None = None,
    tlsCert: str | None = None,
    tlsKey: str | None = None,
    threads: int = 16,
    threadpool: ThreadPool | None = None,
    drainPool: bool | None = None,
    accessLog: bool = False,
    stopTimeout: float = DEFAULT_STOP_TIMEOUT,
    reactor: Any = None,
    reusePort: bool = False,
    **limits: Any,
) -> WSGIServer:
    """Serve ``application`` on ``interface:port`` (or the Unix socket path ``unix``), TLS with ``tlsCert``
    and ``tlsKey`` (PEM file paths); call in the reactor thread, before or while it runs.

    The application runs in ``threadpool`` (started here if it is not), or in a new pool of ``threads``
    workers. The server drains the pool at its stop when ``drainPool`` is true (default: only a pool it
    made), after the requests in flight ended. ``accessLog`` logs a line per request to the logger
    ``deferthreads.wsgi.access``. ``limits`` go to ``HTTPFactory`` (``maxBodyBytes``, timeouts, ...).
    ``reusePort``: listen with SO_REUSEPORT (TCP and TLS), one socket per worker process on one port.
    Raises ``ValueError``/``TypeError`` naming a bad argument; ``CannotListenError`` if the address is taken.
    """
    if reactor is None:
        from reactor import getReactor

        reactor = getReactor()
    if (tlsCert is None) != (tlsKey is None):
        raise ValueError("tlsCert and tlsKey go together: give both PEM files or neither")
    if unix is not None and tlsCert is not None:
        raise ValueError("TLS on a Unix socket is not supported: give unix or tlsCert/tlsKey, not both")
    ownsPool = threadpool is None if drainPool is None else bool(drainPool)
    if threadpool is None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads must be an int >= 1, got {threads!r}")
        threadpool = ThreadPool(threads, threads, name="wsgi")
    container = WSGIContainer(application, reactor=reactor, threadpool=threadpool,
                              accessLog=_logAccess if accessLog else None)
    factory = HTTPFactory(container, reactor=reactor, **limits)
    if unix is not None:
        listening = reactor.listenUNIX(unix, factory)
    elif tlsCert is not None and tlsKey is not None:
        from reactor.ssl import CertificateOptions

        with open(tlsCert, "rb") as f:
            certPEM = f.read()
        with open(tlsKey, "rb") as f:
            keyPEM = f.read()
        options = CertificateOptions(privateKey=keyPEM, certificate=certPEM)
        listening = reactor.listenSSL(port, factory, options, interface=interface,
                                      **({"reusePort": True} if reusePort else {}))
    else:
        listening = reactor.listenTCP(port, factory, interface=interface,
                                      **({"reusePort": True} if reusePort else {}))
    if not threadpool.started:
        threadpool.start()
    server = WSGIServer(reactor, container, factory, listening, ownsPool, stopTimeout)
    reactor.addSystemEventTrigger("before", "shutdown", server.stopGracefully)
    return server


def run(application: WSGIApplication, **kwargs: Any) -> None:
    """:func:`listenWSGI` on the default reactor and run it until SIGINT/SIGTERM (a graceful stop)."""
    from reactor import getReactor

    reactor = kwargs.pop("reactor", None) or getReactor()
    worker = prefork.isWorker() and kwargs.get("unix") is None
    if worker:
        # A worker of ``--workers N``: one SO_REUSEPORT socket per process; ready once the reactor runs.
        kwargs.setdefault("reusePort", True)
        reactor.callWhenRunning(prefork.notifyReady)
    server = listenWSGI(application, reactor=reactor, **kwargs)
    host = server.port.getHost()
    if kwargs.get("unix") is not None:
        where = f"unix:{kwargs['unix']}"
    else:
        scheme = "https" if kwargs.get("tlsCert") else "http"
        name = f"[{host.host}]" if ":" in host.host else host.host
        where = f"{scheme}://{name}:{host.port}"
    print(f"deferthreads.wsgi: serving {application!r} on {where} (pid {os.getpid()})", file=sys.stderr,
          flush=True)
    reactor.run()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m deferthreads.wsgi",
        description="Serve a WSGI application with deferthreads: HTTP/1.1 on the reactor, the application "
                    "in a thread pool.",
    )
    parser.add_argument("application", help="the application, as package.module:name")
    parser.add_argument("--host", default="127.0.0.1", help="the address to listen on (default 127.0.0.1; "
                        "'0.0.0.0' or '::' for every interface)")
    parser.add_argument("--port", type=int, default=8000, help="the TCP port (default 8000; 0 picks one)")
    parser.add_argument("--unix", metavar="PATH", help="listen on this Unix socket path instead of TCP")
    parser.add_argument("--threads", type=int, default=16, help="worker threads running the application "
                        "(default 16)")
    parser.add_argument("--tls-cert", metavar="PEM", help="serve HTTPS with this certificate (and --tls-key)")
    parser.add_argument("--tls-key", metavar="PEM", help="the private key of --tls-cert")
    parser.add_argument("--access-log", metavar="FILE", help="log each request to FILE ('-': stdout)")
    parser.add_argument("--stop-timeout", type=float, default=DEFAULT_STOP_TIMEOUT,
                        help="seconds requests in flight get at SIGINT/SIGTERM (default 30)")
    parser.add_argument("--log-level", default="WARNING", help="the root logging level (default WARNING)")
    parser.add_argument("--workers", type=int, default=1,
                        help="worker processes on the one port (default 1: this process serves); more: a "
                             "supervisor (reactor.prefork) runs them, SIGHUP restarts them one by one")
    return parser


def _superviseWorkers(args: argparse.Namespace) -> int:
    """``--workers N``: run N copies of this command line (without ``--workers``) under a supervisor."""
    command = [sys.executable, "-m", "deferthreads.wsgi", args.application, "--host", args.host,
               "--port", "{port}", "--threads", str(args.threads), "--stop-timeout", str(args.stop_timeout),
               "--log-level", args.log_level]
    if args.tls_cert is not None:
        command += ["--tls-cert", args.tls_cert, "--tls-key", args.tls_key]
    if args.access_log is not None:
        command += ["--access-log", args.access_log]
    # The workers find the application's package where this process would have (the current directory).
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (os.getcwd(), env.get("PYTHONPATH")) if p)
    supervisor = prefork.Supervisor(command, args.workers, bind=(args.host, args.port), env=env,
                                    stopTimeout=args.stop_timeout + 5)
    try:
        return supervisor.run()
    except OSError as e:
        print(f"python -m deferthreads.wsgi: {e}", file=sys.stderr)
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit status (2 for a bad argument, with the reason on stderr)."""
    parser = _parser()
    args = parser.parse_args(argv)
    level = logging.getLevelName(args.log_level.upper())
    if not isinstance(level, int):
        parser.error(f"--log-level: unknown level {args.log_level!r}")
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be 0..65535, got {args.port}")
    if (args.tls_cert is None) != (args.tls_key is None):
        parser.error("--tls-cert and --tls-key go together")
    if args.unix is not None and args.tls_cert is not None:
        parser.error("--unix cannot be combined with --tls-cert/--tls-key")
    if args.workers < 1:
        parser.error(f"--workers must be >= 1, got {args.workers}")
    if args.workers > 1 and args.unix is not None:
        parser.error("--workers needs a TCP port (SO_REUSEPORT), not --unix")
    if args.access_log is not None:
        handler: logging.Handler = (logging.StreamHandler(sys.stdout) if args.access_log == "-"
                                    else logging.FileHandler(args.access_log))
        handler.setFormatter(logging.Formatter("%(message)s"))
        _accessLog.addHandler(handler)
        _accessLog.setLevel(logging.INFO)
        _accessLog.propagate = False
    if args.workers > 1:
        return _superviseWorkers(args)
    # As gunicorn and uvicorn do: the application's package may live in the current directory.
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        application = loadApplication(args.application)
    except ValueError as e:
        parser.error(str(e))
    try:
        run(application, port=args.port, interface=args.host, unix=args.unix, tlsCert=args.tls_cert,
            tlsKey=args.tls_key, threads=args.threads, accessLog=args.access_log is not None,
            stopTimeout=args.stop_timeout)
    except OSError as e:
        print(f"python -m deferthreads.wsgi: {e}", file=sys.stderr)
        return 1
    return 0
