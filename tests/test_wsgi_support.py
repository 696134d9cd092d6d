"""Support for the deferthreads.wsgi tests (no tests here): a reactor in a thread serving an application."""

from __future__ import annotations

import http.client
import socket
import threading
from collections.abc import Callable
from typing import Any

from deferthreads.wsgi import WSGIServer, listenWSGI


class Served:
    """``application`` served by :func:`listenWSGI` on 127.0.0.1, its reactor running in a thread.

    ``stop()`` stops the reactor (a graceful stop of the server, the pool drained) and closes it.
    """

    def __init__(self, application: Callable[..., Any], kind: str = "epoll", **kwargs: Any) -> None:
        from tests.netsupport import newReactor

        self.reactor = newReactor(kind)
        ready = threading.Event()
        self.error: BaseException | None = None
        self.server: WSGIServer | None = None

        def start() -> None:
            try:
                kwargs.setdefault("port", 0)
                kwargs.setdefault("threads", 4)
                self.server = listenWSGI(application, reactor=self.reactor, **kwargs)
            except BaseException as e:
                self.error = e
            finally:
                ready.set()

        self.reactor.callWhenRunning(start)
        self.thread = threading.Thread(
            target=self.reactor.run, kwargs={"installSignalHandlers": False}, name="wsgi-test-reactor"
        )
        self.thread.start()
        if not ready.wait(10):
            raise AssertionError("the reactor did not start within 10 s")
        if self.error is not None:
            self.stop()
            raise self.error
        assert self.server is not None
        host = self.server.port.getHost()
        self.port: int = getattr(host, "port", 0)
        self.stopped = False

    def client(self, timeout: float = 10) -> http.client.HTTPConnection:
        """A new HTTP client connection to the server."""
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def get(self, path: str, method: str = "GET", body: bytes | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        """One request on a new connection: (status, headers with lower-cased names, body)."""
        conn = self.client()
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            data = response.read()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, data
        finally:
            conn.close()

    def raw(self, data: bytes, timeout: float = 10) -> bytes:
        """Send raw bytes and return everything the server sends back until it closes (so the last
        request should say ``Connection: close``)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
            s.sendall(data)
            chunks = []
            while True:
                try:
                    chunk = s.recv(65536)
                except ConnectionResetError:
                    chunk = b""
                if not chunk:
                    return b"".join(chunks)
                chunks.append(chunk)

    def call(self, f: Callable[..., Any], *args: Any) -> Any:
        """Run ``f(*args)`` in the reactor thread and return its result (waits up to 10 s)."""
        done = threading.Event()
        box: list[Any] = []

        def run() -> None:
            try:
                box.append(f(*args))
            finally:
                done.set()

        self.reactor.callFromThread(run)
        if not done.wait(10):
            raise AssertionError("the reactor did not run the call within 10 s")
        return box[0] if box else None

    def stop(self) -> None:
        """Stop the reactor (graceful stop of the server), wait for its thread, close it."""
        if getattr(self, "stopped", False):
            return
        self.stopped = True
        from tests.netsupport import closeReactor

        if self.thread.is_alive():
            self.reactor.callFromThread(self.reactor.stop)
            self.thread.join(60)
            assert not self.thread.is_alive(), "the reactor did not stop within 60 s"
        closeReactor(self.reactor)
