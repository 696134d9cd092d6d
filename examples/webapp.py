"""A small but real web backend on the reactor: an HTTP/1.1 JSON API over our TCP transport.

HTTP is the library's server (``reactor.web``, llhttp parsing); records live in a database reached through
``adbapi`` (SQLite by default, in a file it creates; PostgreSQL when given a DSN); CPU-bound work
runs in the reactor's shared thread pool with ``deferToThreadPool``. Run it::

    python examples/webapp.py                     # http://127.0.0.1:8080, data in ./webapp.sqlite3
    python examples/webapp.py --port 0 --serve-for 10
    python examples/webapp.py --dsn "host=127.0.0.1 dbname=test"    # or WEBAPP_DSN=...
    python examples/webapp.py --self-test        # start, call every endpoint, stop; exit 0 if all good
    python examples/webapp.py --workers 2        # 2 processes on one port (reactor.prefork; SIGHUP: restart)

Endpoints::

    GET  /                      what this is
    GET  /health                {"ok": true}
    POST /records               {"name": "...", "value": <any JSON>} -> 201 and the stored record
    GET  /records?limit=&offset= the records, newest first
    GET  /records/<id>          one record, or 404
    GET  /pbkdf2?iterations=N   CPU-bound key derivation, on a worker thread
    GET  /stats                 thread-pool, connection-pool and HTTP statistics

Malformed requests get 400 (oversized ones 413/431), and so does input the database cannot store
(a lone surrogate or a NUL in a string, a number out of range, ``NaN``/``1e999``); handler errors a
logged 500 with no traceback in the body. SIGINT/SIGTERM shut down gracefully: the port closes,
requests in flight finish, the connection pool and the thread pool drain, then the process exits.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import math
import os
import re
import signal
import sys
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from adbapi import ConnectionPool
from deferthreads import deferToThreadPool, getThreadPool
from reactor import Deferred, Failure, getReactor, inlineCallbacks, prefork
from reactor.web import HTTPError, HTTPFactory, Request, Response

log = logging.getLogger("webapp")

MAX_NAME = 200
MAX_ITERATIONS = 2_000_000
MAX_ID = 2**63 - 1  # a BIGINT / SQLite INTEGER
DEFAULT_PORT = 8080

Route = Callable[[Request, "re.Match[str]"], Any]


class Database:
    """The records table on an adbapi pool; hides the driver's parameter style."""

    def __init__(self, pool: ConnectionPool, postgres: bool) -> None:
        self.pool = pool
        self.postgres = postgres
        self.mark = "%s" if postgres else "?"

    def createSchema(self) -> Deferred[None]:
        idColumn = "BIGSERIAL PRIMARY KEY" if self.postgres else "INTEGER PRIMARY KEY AUTOINCREMENT"
        return self.pool.runOperation(
            f"CREATE TABLE IF NOT EXISTS webapp_records (id {idColumn}, name TEXT NOT NULL, "
            "value TEXT NOT NULL, created DOUBLE PRECISION NOT NULL)"
        )

    def insert(self, name: str, value: Any) -> Deferred[dict[str, Any]]:
        m = self.mark
        encoded = json.dumps(value)
        created = time.time()

        def interaction(txn: Any) -> dict[str, Any]:
            txn.execute(
                f"INSERT INTO webapp_records (name, value, created) VALUES ({m}, {m}, {m}) RETURNING id",
                (name, encoded, created),
            )
            (recordId,) = txn.fetchone()
            return {"id": recordId, "name": name, "value": value, "created": created}

        return self.pool.runInteraction(interaction)

    def list(self, limit: int, offset: int) -> Deferred[list[dict[str, Any]]]:
        m = self.mark
        d = self.pool.runQuery(
            f"SELECT id, name, value, created FROM webapp_records ORDER BY id DESC LIMIT {m} OFFSET {m}",
            (limit, offset),
        )
        return d.addCallback(lambda rows: [_row(r) for r in rows])

    def fetch(self, recordId: int) -> Deferred[dict[str, Any] | None]:
        d = self.pool.runQuery(
            f"SELECT id, name, value, created FROM webapp_records WHERE id = {self.mark}", (recordId,)
        )
        return d.addCallback(lambda rows: _row(rows[0]) if rows else None)


def _row(row: Any) -> dict[str, Any]:
    return {"id": row[0], "name": row[1], "value": json.loads(row[2]), "created": row[3]}


def jsonResponse(obj: Any, status: int = 200) -> Response:
    """A JSON response (``Content-Type: application/json``); never NaN or Infinity, which JSON lacks."""
    body = json.dumps(obj, separators=(",", ":"), allow_nan=False).encode("utf-8")
    return Response(status, [("content-type", "application/json")], body)


def _refuseConstant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finiteFloat(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:20]} is out of range for a JSON number")
    return value


def _checkStorable(obj: Any, where: str = "body") -> None:
    """Refuse what a database cannot store or JSON cannot carry: lone surrogates and NUL in strings."""
    if isinstance(obj, str):
        if "\0" in obj:
            raise HTTPError(400, f"{where}: a string contains a NUL character")
        try:
            obj.encode("utf-8")
        except UnicodeEncodeError:
            raise HTTPError(400, f"{where}: a string contains a lone surrogate") from None
    elif isinstance(obj, dict):
        for key, value in obj.items():
            _checkStorable(key, where)
            _checkStorable(value, where)
    elif isinstance(obj, list):
        for item in obj:
            _checkStorable(item, where)


def parseJSON(body: bytes) -> Any:
    """The request body as JSON; HTTPError(400) if it is not JSON, or holds NaN, Infinity or 1e999."""
    try:
        value = json.loads(body, parse_constant=_refuseConstant, parse_float=_finiteFloat)
        _checkStorable(value)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise HTTPError(400, f"request body is not valid JSON: {str(e)[:200]}") from None
    return value


def _intParam(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = parse_qs(request.query).get(name, [str(default)])[-1]
    if not (raw.isascii() and raw.lstrip("-").isdigit() and len(raw) <= 20):
        raise HTTPError(400, f"{name} must be an integer, got {raw[:40]!r}")
    value = int(raw)
    if not low <= value <= high:
        raise HTTPError(400, f"{name} must be between {low} and {high}, got {value}")
    return value


def _derive(iterations: int) -> str:
    """CPU-bound work (runs on a worker thread; hashlib releases the GIL while it hashes)."""
    return hashlib.pbkdf2_hmac("sha256", b"correct horse", b"battery staple", iterations).hex()


class WebApp:
    """The application: routes, the HTTP factory, and graceful start/stop. Reactor thread only."""

    def __init__(
        self,
        reactor: Any,
        db: Database,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        maxBodySize: int = 64 * 1024,
        shutdownTimeout: float = 30.0,
    ) -> None:
        self.reactor = reactor
        self.shutdownTimeout = shutdownTimeout
        self.db = db
        self.host = host
        self.requestedPort = port
        self.threadPool = getThreadPool(reactor)
        self.http = HTTPFactory(self.handle, maxBodyBytes=maxBodySize, reactor=reactor)
        self.listeningPort: Any = None
        self.stopping: Deferred[None] | None = None
        self.routes: list[tuple[str, re.Pattern[str], Route]] = [
            ("GET", re.compile(r"/"), self.index),
            ("GET", re.compile(r"/health"), self.health),
            ("POST", re.compile(r"/records"), self.createRecord),
            ("GET", re.compile(r"/records"), self.listRecords),
            ("GET", re.compile(r"/records/(\d+)"), self.fetchRecord),
            ("GET", re.compile(r"/pbkdf2"), self.pbkdf2),
            ("GET", re.compile(r"/stats"), self.stats),
        ]

    # -- lifecycle ------------------------------------------------------------------------

    @inlineCallbacks
    def start(self) -> Any:
        """Create the schema, then listen. Fires with the listening port."""
        yield self.db.createSchema()
        # Under --workers N every worker process listens on the one port (SO_REUSEPORT).
        self.listeningPort = self.reactor.listenTCP(self.requestedPort, self.http, interface=self.host,
                                                    reusePort=prefork.isWorker())
        self.reactor.addSystemEventTrigger("before", "shutdown", self._drainOnShutdown)
        return self.listeningPort

    @property
    def url(self) -> str:
        address = self.listeningPort.getHost()
        host = f"[{address.host}]" if ":" in address.host else address.host
        return f"http://{host}:{address.port}"

    def gracefulStop(self) -> Deferred[None]:
        """Close the port, let requests in flight finish, close the DB pool, then stop the reactor."""
        if self.stopping is None:
            log.info("shutting down: closing the port, finishing %d request(s) in flight", self.http.inFlight)
            self.stopping = self._drain()
            self.stopping.addBoth(self._stopReactor)
        return self.stopping

    @inlineCallbacks
    def _drain(self) -> Any:
        if self.listeningPort is not None:
            yield self.listeningPort.stopListening()
        # Finishes requests in flight, closes idle keep-alive connections, drops the rest at the deadline.
        yield self.http.stopGracefully(self.shutdownTimeout)
        yield self.db.pool.close()

    def _stopReactor(self, result: object) -> None:
        if isinstance(result, Failure):
            log.error("graceful shutdown failed:\n%s", result.getTraceback())
        log.info("requests finished and pools drained (%d served); stopping", self.http.requestsServed)
        if self.reactor.running and not self.reactor.stopping:
            self.reactor.stop()

    def _drainOnShutdown(self) -> Deferred[None]:
        # Someone called reactor.stop() directly: still close the port and finish requests in flight.
        if self.stopping is not None:
            return self.stopping
        self.stopping = self._drain()
        return self.stopping

    # -- routing --------------------------------------------------------------------------

    def handle(self, request: Request) -> Any:
        """The reactor.web handler: route, and turn HTTPError into a JSON error answer."""
        try:
            result = self.route(request)
        except HTTPError as e:
            return _errorResponse(e.status, e.message)
        if isinstance(result, Deferred):
            return result.addErrback(_httpErrorAsJSON)
        return result

    def route(self, request: Request) -> Any:
        allowed = []
        for method, pattern, route in self.routes:
            match = pattern.fullmatch(request.path)
            if match is None:
                continue
            if method == request.method or (method == "GET" and request.method == "HEAD"):
                return route(request, match)
            allowed.append(method)
        if allowed:
            raise HTTPError(405, f"{request.method} is not allowed on {request.path}")
        raise HTTPError(404, f"no such resource: {request.path}")

    def index(self, request: Request, match: re.Match[str]) -> Response:
        return jsonResponse(
            {
                "service": "deferthreads web backend example",
                "endpoints": [f"{m} {p.pattern}" for m, p, _ in self.routes],
            }
        )

    def health(self, request: Request, match: re.Match[str]) -> Response:
        return jsonResponse({"ok": True})

    @inlineCallbacks
    def createRecord(self, request: Request, match: re.Match[str]) -> Any:
        body = parseJSON((yield request.body()))
        if not isinstance(body, dict) or set(body) - {"name", "value"} or "name" not in body:
            raise HTTPError(400, 'body must be a JSON object {"name": str, "value": any}')
        name = body["name"]
        if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME:
            raise HTTPError(400, f"name must be a non-empty string of at most {MAX_NAME} characters")
        record = yield self.db.insert(name, body.get("value"))
        return jsonResponse(record, 201)

    @inlineCallbacks
    def listRecords(self, request: Request, match: re.Match[str]) -> Any:
        limit = _intParam(request, "limit", 50, 1, 500)
        offset = _intParam(request, "offset", 0, 0, 10**9)
        records = yield self.db.list(limit, offset)
        return jsonResponse({"records": records, "limit": limit, "offset": offset})

    @inlineCallbacks
    def fetchRecord(self, request: Request, match: re.Match[str]) -> Any:
        digits = match.group(1)
        # (int() of thousands of digits is refused by Python itself, and is no id anyway)
        if len(digits) > 19 or not 1 <= int(digits) <= MAX_ID:
            raise HTTPError(400, f"a record id is an integer from 1 to {MAX_ID}, got {digits[:30]}")
        recordId = int(digits)
        record = yield self.db.fetch(recordId)
        if record is None:
            raise HTTPError(404, f"no record {recordId}")
        return jsonResponse(record)

    @inlineCallbacks
    def pbkdf2(self, request: Request, match: re.Match[str]) -> Any:
        iterations = _intParam(request, "iterations", 100_000, 1, MAX_ITERATIONS)
        started = self.reactor.seconds()
        digest = yield deferToThreadPool(self.reactor, self.threadPool, _derive, iterations)
        elapsed = self.reactor.seconds() - started
        return jsonResponse({"iterations": iterations, "digest": digest, "seconds": round(elapsed, 4)})

    def stats(self, request: Request, match: re.Match[str]) -> Response:
        return jsonResponse(
            {
                "threadPool": dataclasses.asdict(self.threadPool.statistics()),
                "connectionPool": dataclasses.asdict(self.db.pool.statistics()),
                "http": {
                    "inFlight": self.http.inFlight,
                    "served": self.http.requestsServed,
                    "connections": self.http.connections,
                },
            }
        )


def _errorResponse(status: int, message: str) -> Response:
    return jsonResponse({"error": message}, status)


def _httpErrorAsJSON(failure: Failure) -> Response:
    failure.trap(HTTPError)
    err = failure.value
    assert isinstance(err, HTTPError)
    return _errorResponse(err.status, err.message)


def openDatabase(reactor: Any, dsn: str | None, sqlitePath: str) -> Database:
    """PostgreSQL (psycopg2) when ``dsn`` is given, else SQLite in ``sqlitePath`` (created if missing)."""
    if dsn:
        return Database(ConnectionPool("psycopg2", dsn, cp_min=1, cp_max=8, cp_reactor=reactor), True)

    def tune(conn: Any) -> None:
        # WAL lets readers run while a writer commits; busy_timeout waits instead of failing.
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA busy_timeout=5000")

    pool = ConnectionPool(
        "sqlite3", sqlitePath, timeout=5.0, cp_min=1, cp_max=4, cp_openfun=tune, cp_reactor=reactor
    )
    return Database(pool, False)


def _selfTest(app: WebApp) -> Deferred[bool]:
    """Call every endpoint with http.client (on a worker thread: it blocks) and check the answers."""
    import http.client

    port = app.listeningPort.getHost().port

    def run() -> list[str]:
        problems: list[str] = []
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

        def call(method: str, path: str, body: Any = None) -> tuple[int, Any]:
            raw = None if body is None else json.dumps(body).encode()
            conn.request(method, path, body=raw, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            return resp.status, json.loads(resp.read() or b"null")

        checks: list[tuple[str, str, Any, int]] = [
            ("GET", "/health", None, 200),
            ("POST", "/records", {"name": "self-test", "value": [1, 2, 3]}, 201),
            ("GET", "/records?limit=5", None, 200),
            ("GET", "/records/999999999", None, 404),
            ("GET", "/pbkdf2?iterations=1000", None, 200),
            ("POST", "/records", {"nom": 1}, 400),
            ("GET", "/stats", None, 200),
        ]
        for method, path, body, expected in checks:
            status, payload = call(method, path, body)
            line = f"  {method:4} {path:28} -> {status} {json.dumps(payload)[:70]}"
            print(line, flush=True)
            if status != expected:
                problems.append(f"{method} {path}: expected {expected}, got {status}")
        conn.close()
        return problems

    d = deferToThreadPool(app.reactor, app.threadPool, run)

    def report(problems: list[str]) -> bool:
        for p in problems:
            print(f"SELF-TEST FAILURE: {p}", flush=True)
        print("self-test " + ("passed" if not problems else "FAILED"), flush=True)
        return not problems

    return d.addCallback(report)


def _superviseWorkers(args: argparse.Namespace) -> int:
    """``--workers N``: N copies of this program on one port, supervised (SIGHUP: a rolling restart)."""
    command = [sys.executable, os.path.abspath(__file__), "--host", args.host, "--port", "{port}",
               "--db", args.db, "--max-body", str(args.max_body), "--shutdown-timeout",
               str(args.shutdown_timeout)]
    env = dict(os.environ)
    if args.dsn:
        env["WEBAPP_DSN"] = args.dsn  # in the environment, not on the workers' command lines
    return prefork.Supervisor(command, args.workers, bind=(args.host, args.port), env=env,
                              stopTimeout=args.shutdown_timeout + 5).run()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="deferthreads example web backend (HTTP/1.1 JSON API)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="TCP port (default 8080; 0 = any)")
    parser.add_argument("--db", default="webapp.sqlite3", help="SQLite file (default ./webapp.sqlite3)")
    parser.add_argument("--dsn", default=os.environ.get("WEBAPP_DSN"), help="PostgreSQL DSN (or WEBAPP_DSN)")
    parser.add_argument("--max-body", type=int, default=64 * 1024, help="request body limit in bytes")
    parser.add_argument("--serve-for", type=float, default=None, help="shut down after SECONDS")
    parser.add_argument(
        "--shutdown-timeout", type=float, default=30.0, help="abort requests still running after SECONDS"
    )
    parser.add_argument("--self-test", action="store_true", help="exercise every endpoint, then exit")
    parser.add_argument("--workers", type=int, default=1,
                        help="worker processes on the one port under reactor.prefork (default 1)")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error(f"--workers must be >= 1, got {args.workers}")
    if args.workers > 1:
        if args.self_test or args.serve_for is not None:
            parser.error("--workers cannot be combined with --self-test or --serve-for")
        return _superviseWorkers(args)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    reactor = getReactor()
    db = openDatabase(reactor, args.dsn, args.db)
    app = WebApp(reactor, db, args.host, args.port, args.max_body, args.shutdown_timeout)
    outcome = {"ok": True}

    def started(port: Any) -> None:
        prefork.notifyReady()  # a no-op unless a --workers supervisor started this process
        where = f"PostgreSQL ({app.db.pool!r})" if args.dsn else f"SQLite file {os.path.abspath(args.db)}"
        print(f"Serving on {app.url} (data in {where})", flush=True)
        print(
            f"Try: curl -s -X POST -H 'Content-Type: application/json' "
            f'-d \'{{"name": "hello", "value": 42}}\' {app.url}/records',
            flush=True,
        )
        if args.self_test:
            _selfTest(app).addCallback(finishSelfTest)
        elif args.serve_for is not None:
            reactor.callLater(args.serve_for, app.gracefulStop)

    def finishSelfTest(ok: bool) -> None:
        outcome["ok"] = ok
        app.gracefulStop()

    def failedToStart(failure: Any) -> None:
        log.error("could not start: %s", failure.getErrorMessage())
        outcome["ok"] = False
        reactor.stop()

    def onSignal(signum: int, frame: object) -> None:
        # Signal handlers run between bytecodes of the main thread: hand over through the one door in.
        reactor.callFromThread(app.gracefulStop)

    signal.signal(signal.SIGINT, onSignal)
    signal.signal(signal.SIGTERM, onSignal)
    reactor.callWhenRunning(lambda: app.start().addCallbacks(started, failedToStart))
    reactor.run(installSignalHandlers=False)
    print("stopped", flush=True)
    return 0 if outcome["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
