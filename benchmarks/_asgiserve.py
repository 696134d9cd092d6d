"""Serve ``bench_asgi``'s application with uvicorn (uvloop, httptools) on a listening socket it inherits.

``python -m benchmarks._asgiserve FD``: FD is a bound TCP socket the parent made (so the parent knows
the port before the server starts). Not ``uvicorn --fd``: that wraps the descriptor as an ``AF_UNIX``
socket whatever it is, so the event loop takes the accepted TCP connections for Unix ones and never
sets ``TCP_NODELAY`` on them. Starlette sends the response head and body as two writes; without
``TCP_NODELAY`` Nagle's algorithm holds the body until the client's delayed ACK of the head, about
40 ms, which capped every variant at about 64 connections / 44 ms = 1,450 requests/s whatever the
database layer. ``socket.socket(fileno=FD)`` reads the real family from the descriptor.

The application is ``benchmarks._asgiapp:makeAppFromEnv`` (the variant and tables from the
environment). Runs until SIGINT or SIGTERM, then shuts uvicorn down (the lifespan's ``stop`` closes
the variant's pool) and exits 0.
"""

from __future__ import annotations

import socket
import sys

#: TechEmpower's servers listen with a deep backlog: wrk opens all its connections at once.
BACKLOG = 1024


def main(argv: list[str]) -> int:
    import uvicorn

    if len(argv) != 1:
        print("usage: python -m benchmarks._asgiserve FD", file=sys.stderr)
        return 2
    sock = socket.socket(fileno=int(argv[0]))
    sock.listen(BACKLOG)
    config = uvicorn.Config(
        "benchmarks._asgiapp:makeAppFromEnv", factory=True, loop="uvloop", http="httptools",
        lifespan="on", access_log=False, log_level="warning", backlog=BACKLOG,
    )
    try:
        # Server.run() sets up uvloop (Config.loop); serve() alone would not.
        uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:
        # uvicorn re-raises the SIGINT it handled once it has shut down: that is the normal end here.
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
