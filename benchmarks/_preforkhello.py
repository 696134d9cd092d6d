"""A reactor.web hello worker for bench_scale: ``python benchmarks/_preforkhello.py PORT``.

Run under ``reactor.prefork`` (``--bind 127.0.0.1:0 -- ... {port}``): it listens with SO_REUSEPORT,
says it is ready once the reactor runs, and drains on SIGTERM.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from reactor import Deferred, getReactor, prefork
from reactor.web import Request, Response, listenHTTP

BODY = b"Hello, World!"
HEADERS = [("content-type", "text/plain")]


def hello(request: Request) -> Response:
    return Response(200, HEADERS, BODY)


def main() -> int:
    reactor = getReactor()
    port = listenHTTP(int(sys.argv[1]), hello, interface="127.0.0.1", reactor=reactor,
                      reusePort=prefork.isWorker())

    async def drain() -> None:
        await port.stopListening()
        await port.factory.stopGracefully(5.0)

    reactor.addSystemEventTrigger("before", "shutdown", lambda: Deferred.fromCoroutine(drain()))
    reactor.callWhenRunning(prefork.notifyReady)
    reactor.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
