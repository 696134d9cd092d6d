"""A reactor.web worker for the prefork tests: ``python tests/prefork_app.py --port P [--crash]``.

``GET /`` answers the worker's pid; ``GET /slow`` sends its head at once and the rest of the body
``--slow-seconds`` later (a request in flight for the drain test). SIGTERM: stop accepting, finish the
requests in flight, exit 0. ``--crash``: exit 3 just after saying it is ready (a crash loop).
``--never-ready``: listen but never call notifyReady.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from reactor import Deferred, getReactor, prefork
from reactor.web import Request, Response, listenHTTP


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--slow-seconds", type=float, default=1.0)
    parser.add_argument("--crash", action="store_true")
    parser.add_argument("--never-ready", action="store_true")
    args = parser.parse_args()
    reactor = getReactor()
    pid = str(os.getpid()).encode()

    def handler(request: Request) -> Response | Deferred[None] | None:
        if request.path == "/slow":
            writer = request.respond(200, [("content-type", "text/plain")])
            writer.write(b"started ")
            d: Deferred[None] = Deferred()

            def finish() -> None:
                writer.write(pid)
                writer.finish()
                d.callback(None)

            reactor.callLater(args.slow_seconds, finish)
            return d
        return Response(200, [("content-type", "text/plain")], pid)

    port = listenHTTP(args.port, handler, interface="127.0.0.1", reactor=reactor,
                      reusePort=prefork.isWorker())

    async def drain() -> None:
        await port.stopListening()
        await port.factory.stopGracefully(10.0)

    reactor.addSystemEventTrigger("before", "shutdown", lambda: Deferred.fromCoroutine(drain()))
    if args.crash:
        prefork.notifyReady()
        reactor.callWhenRunning(os._exit, 3)
    elif not args.never_ready:
        reactor.callWhenRunning(prefork.notifyReady)
    reactor.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
