"""Wrapping a blocking client that is not thread-safe with ``deferthreads.ResourcePool``.

``xmlrpc.client.ServerProxy`` keeps one HTTP connection and must not be shared
between threads. A :class:`~deferthreads.ResourcePool` gives each of its worker
threads a proxy of its own, opened and closed in that thread:

* calls run through ``pool.run(f, ...)`` as ``f(proxy, ...)`` and come back as
  Deferreds in the reactor thread;
* a proxy idle for a moment is pinged before its next call (``check``);
* a proxy whose call failed at the connection level is replaced (``isBroken``);
  a server-side ``Fault`` keeps it;
* cancelling a slow call closes the proxy's socket from the reactor thread
  (``interrupt``, through a transport that remembers its connection), so the
  worker is free at once and the proxy is replaced.

The server is a local ``SimpleXMLRPCServer`` on 127.0.0.1 (port 0: any free
port), served by a daemon thread. Run it: ``python examples/resource_pool.py``
(prints a short tour, exits 0).
"""

from __future__ import annotations

import http.client
import itertools
import os
import socket
import sys
import threading
import xmlrpc.client
from socketserver import ThreadingMixIn
from typing import Any
from xmlrpc.server import SimpleXMLRPCServer

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from deferthreads import ResourcePool
from reactor import CancelledError, Deferred, gatherResults
from reactor.task import deferLater, react


class ThreadingXMLRPCServer(ThreadingMixIn, SimpleXMLRPCServer):
    daemon_threads = True


def startServer() -> tuple[ThreadingXMLRPCServer, str, dict[str, int], threading.Event]:
    """An XML-RPC server on 127.0.0.1: ``add``, ``ping``, ``fail``, and ``slow`` (held on an event)."""
    releaseSlow = threading.Event()
    counts = {"ping": 0}

    def add(a: int, b: int) -> int:
        return a + b

    def ping() -> bool:
        counts["ping"] += 1
        return True

    def fail() -> None:
        raise ValueError("the server refuses")

    def slow() -> str:
        releaseSlow.wait(10)  # bounded: the tour releases it before it stops
        return "finally"

    server = ThreadingXMLRPCServer(("127.0.0.1", 0), logRequests=False, allow_none=True)
    for function in (add, ping, fail, slow):
        server.register_function(function)
    threading.Thread(target=server.serve_forever, name="xmlrpc-server", daemon=True).start()
    host, port = server.server_address[:2]
    return server, f"http://{host!s}:{port}/", counts, releaseSlow


class InterruptibleTransport(xmlrpc.client.Transport):
    """An XML-RPC transport that remembers its HTTP connection, so another thread can cut its socket."""

    def make_connection(self, host: Any) -> http.client.HTTPConnection:
        connection = super().make_connection(host)
        self.connection = connection
        return connection

    def request(self, host: Any, handler: str, request_body: bytes, verbose: bool = False) -> Any:
        # The stock transport sends a request again on a fresh connection when the first one drops;
        # here a dropped connection must reach the pool (isBroken replaces the proxy), so: one try.
        return self.single_request(host, handler, request_body, verbose)

    def abort(self) -> None:
        # Reactor thread: shutting the socket down makes the worker's blocked read return at once.
        sock = getattr(getattr(self, "connection", None), "sock", None)
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)


class Client:
    """One ServerProxy, its transport, and a serial number to show which proxy served a call."""

    serials = itertools.count(1)

    def __init__(self, url: str) -> None:
        self.transport = InterruptibleTransport()
        self.proxy = xmlrpc.client.ServerProxy(url, transport=self.transport, allow_none=True)
        self.serial = next(self.serials)
        self.thread = threading.current_thread().name


def makePool(url: str, reactor: Any) -> ResourcePool[Client]:
    def create() -> Client:  # in the worker's thread
        return Client(url)

    def close(client: Client) -> None:  # in the same thread
        client.proxy("close")()

    def check(client: Client) -> bool:  # before a call, after checkAfterIdle seconds idle
        return client.proxy.ping() is True

    def interrupt(client: Client, thread: threading.Thread) -> None:  # in the reactor thread
        client.transport.abort()

    def isBroken(client: Client, error: BaseException) -> bool:  # after a call raised
        return not isinstance(error, xmlrpc.client.Fault)

    return ResourcePool(
        create,
        close,
        minthreads=1,
        maxthreads=3,
        check=check,
        checkAfterIdle=0.2,
        interrupt=interrupt,
        isBroken=isBroken,
        name="xmlrpc",
        reactor=reactor,
    )


def add(client: Client, a: int, b: int) -> tuple[int, int, str]:
    # Worker thread: the proxy is this worker's own.
    return client.proxy.add(a, b), client.serial, client.thread


async def tour(reactor: Any) -> None:
    server, url, counts, releaseSlow = startServer()
    pool = makePool(url, reactor)
    try:
        print(f"1. One ServerProxy per worker thread, against {url}")
        total, serial, thread = await pool.run(add, 2, 3)
        print(f"   add(2, 3) = {total} on proxy #{serial}, opened in {thread}")

        results = await gatherResults([pool.run(add, i, i) for i in range(9)])
        workers = pool.statistics().workers
        print(f"   9 calls at once: sums {[r[0] for r in results]}; the pool grew to {workers} workers")
        print("   (maxthreads=3), each with a proxy of its own")

        print("2. A server-side Fault keeps the proxy; a health check runs after 0.2s idle")
        try:
            await pool.run(lambda client: client.proxy.fail())
        except xmlrpc.client.Fault as fault:
            print(f"   Fault: {fault.faultString}")
        before = counts["ping"]
        await deferLater(reactor, 0.3, lambda: None)
        await pool.run(add, 1, 1)
        print(f"   pings before the call after the idle pause: {counts['ping'] - before}")

        print("3. Cancelling a slow call: interrupt closes its socket, the proxy is replaced")
        slow = pool.run(lambda client: client.proxy.slow())
        reactor.callLater(0.2, slow.cancel)
        try:
            await slow
        except CancelledError:
            print("   slow() cancelled after 0.2s: CancelledError, once the worker had left the call")
        releaseSlow.set()
        total, serial, _ = await pool.run(add, 20, 22)
        print(f"   next call: add(20, 22) = {total} on proxy #{serial}")

        stats = pool.statistics()
        print(
            f"4. Pool statistics: proxies created={stats.created} closed={stats.closed} open={stats.open} "
            f"interrupted={stats.interrupted} broken={stats.broken} checksFailed={stats.checksFailed}"
        )
        print(f"   {pool!r}")
        print("   (the reactor's shutdown drains the pool: each proxy is closed in its own thread)")
    finally:
        releaseSlow.set()
        server.shutdown()
        server.server_close()


def main(reactor: Any) -> Deferred[None]:
    return Deferred.fromCoroutine(tour(reactor))


if __name__ == "__main__":
    react(main)
