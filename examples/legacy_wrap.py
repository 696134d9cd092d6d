"""Wrapping blocking libraries behind a Deferred/async API with deferthreads.

Two blocking libraries get a non-blocking face:

* ``hashlib.pbkdf2_hmac``: CPU-bound password hashing (it releases the GIL),
* ``urllib.request.urlopen``: a blocking HTTP client, here against a loopback
  ``http.server`` this script starts on 127.0.0.1 (port 0: any free port).

Each wrapper runs the blocking call with ``deferToThreadPool`` on the reactor's
shared thread pool, limits how many run at once with a ``DeferredSemaphore``
and bounds each call with ``Deferred.addTimeout``. The reactor thread never
blocks; callbacks and ``await`` resume in it.

Run it: ``python examples/legacy_wrap.py`` (prints a short tour, exits 0).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from deferthreads import ThreadPool, deferToThreadPool, getThreadPool
from reactor import Deferred, DeferredSemaphore, TimeoutError, gatherResults
from reactor.task import react

ITERATIONS = 100_000


class ConcurrencyMeter:
    """Counts how many wrapped calls run at once (updated from worker threads, hence the lock)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.current = 0
        self.peak = 0

    def __enter__(self) -> None:
        with self._lock:
            self.current += 1
            self.peak = max(self.peak, self.current)

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self.current -= 1


class PasswordHasher:
    """``hash(password, salt)`` -> ``Deferred[bytes]``; at most ``concurrency`` hashes at once."""

    def __init__(self, reactor: Any, pool: ThreadPool, concurrency: int = 2, timeout: float = 10.0) -> None:
        self._reactor = reactor
        self._pool = pool
        self._semaphore = DeferredSemaphore(concurrency)
        self._timeout = timeout
        self.meter = ConcurrencyMeter()

    def _hashBlocking(self, password: bytes, salt: bytes) -> bytes:
        # Worker thread.
        with self.meter:
            return hashlib.pbkdf2_hmac("sha256", password, salt, ITERATIONS)

    def hash(self, password: bytes, salt: bytes) -> Deferred[bytes]:
        d = self._semaphore.run(
            deferToThreadPool, self._reactor, self._pool, self._hashBlocking, password, salt
        )
        return d.addTimeout(self._timeout, self._reactor)

    async def verify(self, password: bytes, salt: bytes, expected: bytes) -> bool:
        return hmac.compare_digest(await self.hash(password, salt), expected)


class HTTPClient:
    """``get(url, timeout)`` -> ``Deferred[(status, body)]`` over blocking ``urllib``."""

    def __init__(self, reactor: Any, pool: ThreadPool, concurrency: int = 3) -> None:
        self._reactor = reactor
        self._pool = pool
        self._semaphore = DeferredSemaphore(concurrency)
        self.meter = ConcurrencyMeter()

    def _getBlocking(self, url: str, socketTimeout: float) -> tuple[int, bytes]:
        # Worker thread. The socket timeout bounds the thread; addTimeout bounds the caller.
        with self.meter, urllib.request.urlopen(url, timeout=socketTimeout) as response:
            return response.status, response.read()

    def get(self, url: str, timeout: float = 5.0) -> Deferred[tuple[int, bytes]]:
        d = self._semaphore.run(
            deferToThreadPool, self._reactor, self._pool, self._getBlocking, url, timeout + 5
        )
        return d.addTimeout(timeout, self._reactor)


def startLoopbackServer() -> tuple[ThreadingHTTPServer, str, threading.Event]:
    """An HTTP server on 127.0.0.1 (any free port), served by a daemon thread.

    ``/hello/<n>`` answers at once; ``/slow`` answers only once the returned
    event is set (or after 5 seconds), to show a timeout.
    """
    releaseSlow = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/slow":
                releaseSlow.wait(5)
            body = f"hello from {self.path}".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep the tour's output short

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="loopback-http", daemon=True).start()
    host, port = server.server_address[:2]
    return server, f"http://{host!s}:{port}", releaseSlow


async def tour(reactor: Any) -> None:
    pool = getThreadPool(reactor)  # the reactor's shared pool: drained when the reactor stops
    server, baseURL, releaseSlow = startLoopbackServer()
    try:
        print("1. Password hashing (hashlib.pbkdf2_hmac) in threads, at most 2 at a time")
        hasher = PasswordHasher(reactor, pool, concurrency=2)
        salts = [os.urandom(16) for _ in range(6)]
        started = time.perf_counter()
        digests = await gatherResults([hasher.hash(b"secret-%d" % i, salt) for i, salt in enumerate(salts)])
        elapsed = time.perf_counter() - started
        print(f"   {len(digests)} digests in {elapsed:.2f}s, e.g. {digests[0].hex()[:16]}...")
        print(f"   peak concurrency: {hasher.meter.peak} (semaphore limit 2)")
        assert hasher.meter.peak <= 2
        ok = await hasher.verify(b"secret-0", salts[0], digests[0])
        bad = await hasher.verify(b"wrong", salts[0], digests[0])
        print(f"   verify right password: {ok}, wrong password: {bad}")
        assert ok and not bad

        print(f"2. Blocking HTTP GETs (urllib) against {baseURL}, at most 3 at a time")
        client = HTTPClient(reactor, pool, concurrency=3)
        responses = await gatherResults([client.get(f"{baseURL}/hello/{i}") for i in range(8)])
        statuses = sorted({status for status, _ in responses})
        print(f"   {len(responses)} responses, statuses {statuses}, first body {responses[0][1]!r}")
        print(f"   peak concurrency: {client.meter.peak} (semaphore limit 3)")
        assert statuses == [200] and client.meter.peak <= 3

        print("3. A slow endpoint with addTimeout(0.2)")
        try:
            await client.get(f"{baseURL}/slow", timeout=0.2)
        except TimeoutError:
            print("   timed out after 0.2s; the caller moved on (the worker thread finishes on its own)")
        else:
            raise AssertionError("expected a timeout")
        releaseSlow.set()  # let the abandoned blocking GET finish, so shutdown is quick

        stats = pool.statistics()
        print(f"4. Pool statistics: completed={stats.completed} failed={stats.failed} busy={stats.busy}")
    finally:
        releaseSlow.set()
        server.shutdown()
        server.server_close()


def main(reactor: Any) -> Deferred[None]:
    return Deferred.fromCoroutine(tour(reactor))


if __name__ == "__main__":
    react(main)
