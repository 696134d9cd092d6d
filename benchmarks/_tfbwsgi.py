"""The Flask application of ``_tfbflask`` on ``deferthreads.wsgi``: 4 worker threads, one reactor.

``listenWSGI`` makes the container, its pool of 4 workers (each worker opens its own psycopg2 connection on
first use, so the database pool is 4 too) and the HTTP port; the reactor runs in the main thread.
"""

from __future__ import annotations

from typing import Any

from benchmarks import _tfbcommon as tfb


def serve(application: Any, port: int, threads: int) -> None:
    """Serve ``application`` on 127.0.0.1:``port`` (0: a free one) until killed."""
    from deferthreads.wsgi import listenWSGI
    from reactor import Reactor

    r = Reactor()
    server = listenWSGI(application, port=port, interface="127.0.0.1", threads=threads, reactor=r)
    tfb.announce(server.port.getHost().port)
    r.run()
