"""The echo load generator, one process, identical for every server (plain ``selectors``/epoll).

``python benchmarks/_echoclient.py PORT CONNECTIONS SIZE SECONDS`` opens CONNECTIONS connections to
127.0.0.1:PORT; each sends a SIZE-byte message, waits for all of it to come back, and repeats.
After a short warm-up it counts completed round trips for SECONDS and prints
``{"messages": n, "seconds": s}`` as JSON.
"""

from __future__ import annotations

import json
import selectors
import socket
import sys
import time


def main() -> None:
    port, connections, size, seconds = (
        int(sys.argv[1]),
        int(sys.argv[2]),
        int(sys.argv[3]),
        float(sys.argv[4]),
    )
    message = b"m" * size
    sel = selectors.EpollSelector()
    pending: dict[int, int] = {}
    socks: dict[int, socket.socket] = {}
    for _ in range(connections):
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        fd = s.fileno()
        socks[fd] = s
        pending[fd] = size
        sel.register(fd, selectors.EVENT_READ)
        s.send(message)
    warmUntil = time.perf_counter() + min(0.5, seconds / 4)
    counting = False
    count = 0
    start = end = 0.0
    poll = sel._selector.poll  # type: ignore[attr-defined]
    while True:
        now = time.perf_counter()
        if not counting and now >= warmUntil:
            counting, count, start, end = True, 0, now, now + seconds
        if counting and now >= end:
            break
        for fd, _ in poll(0.1):
            s = socks[fd]
            try:
                data = s.recv(65536)
            except BlockingIOError:
                continue
            if not data:
                raise SystemExit("server closed a connection")
            left = pending[fd] - len(data)
            if left <= 0:
                count += 1
                pending[fd] = size
                s.send(message)
            else:
                pending[fd] = left
    elapsed = time.perf_counter() - start
    for s in socks.values():
        s.close()
    print(json.dumps({"messages": count, "seconds": elapsed}), flush=True)


if __name__ == "__main__":
    main()
