"""Serve the TechEmpower test types with one implementation, so anyone can load it with their own tools.

Usage::

    python benchmarks/tfb_app.py native|wsgi|twisted|waitress|starlette --port N [--dsn DSN] [--setup]

- ``native``: ``reactor.web`` + ``adbapi`` (psycopg2, statements prepared per connection, one
  ``runInteraction`` per multi-query request), our stack (``benchmarks/_tfbnative.py``);
- ``wsgi``: the Flask application (``benchmarks/_tfbflask.py``) on ``deferthreads.wsgi``, 4 threads;
- ``twisted``: twisted.web + Twisted's adbapi (``benchmarks/_tfbtwisted.py``);
- ``waitress``: the same Flask application on waitress, 4 threads;
- ``starlette``: Starlette + asyncpg on uvicorn with uvloop and httptools (``benchmarks/_tfbstarlette.py``).

Each listens on 127.0.0.1 (``--port 0``: a free port), prints ``listening on http://127.0.0.1:<port>`` once
the socket accepts connections, and serves until killed. The endpoints: ``/json``, ``/plaintext``, ``/db``,
``/queries?queries=N``, ``/fortunes``, ``/updates?queries=N``. The database is ``--dsn`` (a libpq keyword DSN,
default ``host=127.0.0.1 port=5432 dbname=tfb``); ``--setup`` first creates it if missing and fills ``world``
(10,000 rows) and ``fortune`` (the 12 standard fortunes).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import _tfbcommon as tfb

THREADS = 4


def serveNative(dsn: str, port: int) -> None:
    from benchmarks import _tfbnative

    _tfbnative.serve(dsn, port)


def serveWSGI(dsn: str, port: int) -> None:
    from benchmarks import _tfbflask, _tfbwsgi

    _tfbwsgi.serve(_tfbflask.makeApp(dsn), port, THREADS)


def serveTwisted(dsn: str, port: int) -> None:
    from benchmarks import _tfbtwisted

    _tfbtwisted.serve(dsn, port)


def serveWaitress(dsn: str, port: int) -> None:
    import waitress

    from benchmarks import _tfbflask

    server = waitress.create_server(_tfbflask.makeApp(dsn), host="127.0.0.1", port=port, threads=THREADS,
                                    backlog=1024, connection_limit=1000, ident="waitress")
    tfb.announce(server.effective_port)  # type: ignore[union-attr]
    server.run()


def serveStarlette(dsn: str, port: int) -> None:
    from benchmarks import _tfbstarlette

    _tfbstarlette.serve(dsn, port)


IMPLEMENTATIONS: dict[str, Callable[[str, int], None]] = {
    "native": serveNative,
    "wsgi": serveWSGI,
    "twisted": serveTwisted,
    "waitress": serveWaitress,
    "starlette": serveStarlette,
}

# What each implementation needs importable; a missing one is reported before anything starts.
REQUIREMENTS: dict[str, tuple[str, ...]] = {
    "native": ("reactor.web", "adbapi", "psycopg2"),
    "wsgi": ("reactor.web", "deferthreads.wsgi", "flask", "psycopg2"),
    "twisted": ("twisted.web", "psycopg2"),
    "waitress": ("waitress", "flask", "psycopg2"),
    "starlette": ("starlette", "uvicorn", "uvloop", "httptools", "asyncpg"),
}


def missingModules(name: str) -> list[str]:
    """The modules implementation ``name`` needs that cannot be imported here (empty: it can run).

    Each is imported (none installs a reactor or opens a socket on import), so a module that exists but
    fails to import counts as missing too, with the error.
    """
    import importlib

    missing = []
    for module in REQUIREMENTS[name]:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError:
            missing.append(module)
        except Exception as e:  # present but broken (e.g. being written): not usable either
            missing.append(f"{module} ({type(e).__name__}: {e})")
    return missing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("implementation", choices=sorted(IMPLEMENTATIONS))
    parser.add_argument("--port", type=int, default=8080, help="TCP port on 127.0.0.1 (0: a free one)")
    parser.add_argument("--dsn", default=tfb.DEFAULT_DSN, help=f"libpq DSN (default {tfb.DEFAULT_DSN!r})")
    parser.add_argument("--setup", action="store_true",
                        help="create the database if missing and fill world and fortune first")
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be in 0..65535, got {args.port}")
    missing = missingModules(args.implementation)
    if missing:
        parser.error(f"implementation {args.implementation!r} is not available: module(s) not installed "
                     f"or not written yet: {', '.join(missing)}")
    if args.setup:
        tfb.setup(args.dsn)
    try:
        IMPLEMENTATIONS[args.implementation](args.dsn, args.port)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
