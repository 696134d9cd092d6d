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

    GET    /                      what this is
    GET    /health                {"ok": true}
    POST   /records               {"name": "...", "value": <any JSON>} -> 201 and the stored record
    GET    /records?limit=&offset= the records, newest first
    GET    /records/<id>          one record, or 404 (on PostgreSQL from a cache invalidated by NOTIFY)
    PUT    /records/<id>          {"name": "...", "value": ...} -> the updated record, or 404
    DELETE /records/<id>          {"deleted": <id>}, or 404
    POST   /import                a CSV body (header: name[,value][,created]) loaded through COPY ->
                                  {"imported": <rows>}; all rows or none; PostgreSQL only (else 501)
    GET    /pbkdf2?iterations=N   CPU-bound key derivation, on a worker thread
    GET    /stats                 thread-pool, connection-pool, cache and HTTP statistics
    GET    /metrics               with --metrics: the pools' OpenTelemetry metrics in Prometheus text
                                  (needs deferthreads[prometheus]; else 501)

On PostgreSQL, ``GET /records/<id>`` is served from a read cache kept correct by ``LISTEN``/``NOTIFY``:
the app listens on ``<table>_changed`` (one listener, opened at startup and closed at shutdown before
the pool); each update or delete sends the record's id there from inside its transaction, so every
process serving the table (``--workers N``) drops that entry, as it does for a ``NOTIFY`` from anyone
else (``psql -c "NOTIFY webapp_records_changed, '42'"``). When notifications may have been missed
(the listening connection was lost and is back), the whole cache is dropped. ``POST /import`` streams
the CSV from the request into one ``COPY`` as it arrives (bounded by ``--max-body``); a row the app
cannot store or the server refuses is a 400 with the reason (the server's own message for the
latter), and nothing of the import is kept.

Malformed requests get 400 (oversized ones 413/431), and so does input the database cannot store
(a lone surrogate or a NUL in a string, a number out of range, ``NaN``/``1e999``); handler errors a
logged 500 with no traceback in the body. SIGINT/SIGTERM shut down gracefully: the port closes,
requests in flight finish, the connection pool and the thread pool drain, then the process exits.
"""

from __future__ import annotations

import argparse
import codecs
import csv
import dataclasses
import hashlib
import io
import json
import logging
import math
import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import parse_qs

from adbapi import ConnectionPool, Listener, Notification
from deferthreads import deferToThreadPool, getThreadPool
from reactor import Deferred, Failure, getReactor, inlineCallbacks, prefork, succeed
from reactor.web import HTTPError, HTTPFactory, Request, Response

log = logging.getLogger("webapp")

MAX_NAME = 200
MAX_ITERATIONS = 2_000_000
MAX_ID = 2**63 - 1  # a BIGINT / SQLite INTEGER
DEFAULT_PORT = 8080
DEFAULT_TABLE = "webapp_records"
_TABLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,39}")

Route = Callable[[Request, "re.Match[str]"], Any]


class Database:
    """The records table on an adbapi pool; hides the driver's parameter style. Reactor thread only.

    On PostgreSQL every change of a record is announced on ``channel`` (``<table>_changed``) with
    the record's id as the payload, sent from inside the writing transaction, so it goes out if and
    when the change commits: every process serving this table (``--workers N``, or other services)
    drops its cached copy. SQLite has no such thing, so there is no cache there.
    """

    def __init__(self, pool: ConnectionPool, postgres: bool, table: str = DEFAULT_TABLE) -> None:
        if not isinstance(table, str) or not _TABLE_NAME.fullmatch(table):
            raise ValueError(f"table must be a lower-case SQL name of at most 40 characters, got {table!r}")
        self.pool = pool
        self.postgres = postgres
        self.table = table
        self.channel = f"{table}_changed"
        self.mark = "%s" if postgres else "?"

    def createSchema(self) -> Deferred[None]:
        idColumn = "BIGSERIAL PRIMARY KEY" if self.postgres else "INTEGER PRIMARY KEY AUTOINCREMENT"
        return self.pool.runOperation(
            f"CREATE TABLE IF NOT EXISTS {self.table} (id {idColumn}, name TEXT NOT NULL, "
            "value TEXT NOT NULL, created DOUBLE PRECISION NOT NULL)"
        )

    def insert(self, name: str, value: Any) -> Deferred[dict[str, Any]]:
        m = self.mark
        encoded = json.dumps(value)
        created = time.time()

        def interaction(txn: Any) -> dict[str, Any]:
            txn.execute(
                f"INSERT INTO {self.table} (name, value, created) VALUES ({m}, {m}, {m}) RETURNING id",
                (name, encoded, created),
            )
            (recordId,) = txn.fetchone()
            return {"id": recordId, "name": name, "value": value, "created": created}

        return self.pool.runInteraction(interaction)

    def update(self, recordId: int, name: str, value: Any) -> Deferred[dict[str, Any] | None]:
        """Replace a record's name and value; fires with the record, or None if there is no such id."""
        m = self.mark
        encoded = json.dumps(value)

        def interaction(txn: Any) -> dict[str, Any] | None:
            txn.execute(
                f"UPDATE {self.table} SET name = {m}, value = {m} WHERE id = {m} RETURNING created",
                (name, encoded, recordId),
            )
            row = txn.fetchone()
            if row is None:
                return None
            self._announce(txn, recordId)
            return {"id": recordId, "name": name, "value": value, "created": row[0]}

        return self.pool.runInteraction(interaction)

    def delete(self, recordId: int) -> Deferred[bool]:
        """Delete a record; fires with True, or False if there was no such id."""

        def interaction(txn: Any) -> bool:
            txn.execute(f"DELETE FROM {self.table} WHERE id = {self.mark}", (recordId,))
            if txn.rowcount != 1:
                return False
            self._announce(txn, recordId)
            return True

        return self.pool.runInteraction(interaction)

    def _announce(self, txn: Any, recordId: int) -> None:
        # pg_notify inside the transaction (not pool.notify after it): the server queues it with the
        # COMMIT, so it is sent if and only if the change commits (a crash between the two cannot lose
        # it) and is never delivered before the change is visible to the reader it makes re-read.
        if self.postgres:
            txn.execute("SELECT pg_notify(%s, %s)", (self.channel, str(recordId)))

    def list(self, limit: int, offset: int) -> Deferred[list[dict[str, Any]]]:
        m = self.mark
        d = self.pool.runQuery(
            f"SELECT id, name, value, created FROM {self.table} ORDER BY id DESC LIMIT {m} OFFSET {m}",
            (limit, offset),
        )
        return d.addCallback(lambda rows: [_row(r) for r in rows])

    def fetch(self, recordId: int) -> Deferred[dict[str, Any] | None]:
        d = self.pool.runQuery(
            f"SELECT id, name, value, created FROM {self.table} WHERE id = {self.mark}", (recordId,)
        )
        return d.addCallback(lambda rows: _row(rows[0]) if rows else None)

    def importRows(self, rows: AsyncIterator[tuple[str, str, str]]) -> Deferred[int]:
        """``COPY`` of (name, value as JSON text, created as text) rows, one transaction; fires with the
        count. PostgreSQL only: the server parses ``created`` and refuses what is not a number."""
        return self.pool.copyIn(self.table, rows, columns=["name", "value", "created"])


class RecordCache:
    """Records by id, read through from the database and dropped when PostgreSQL says they changed.

    Reactor thread only. One ``Listener`` on the table's channel for the whole app (started by
    :meth:`start`, closed by :meth:`stop` before the pool closes): a ``Notification`` whose payload
    is an id drops that record, whoever sent it (this process, another worker, ``psql``); a
    ``NotificationsMissed`` (the listening connection was lost and is back, or this consumer fell
    behind) drops everything, since anything may have changed meanwhile. A read that was in flight
    when its record was invalidated is answered but not kept (it may be the old version). The
    number of entries is bounded: the oldest goes first.
    """

    def __init__(self, db: Database, maxEntries: int = 10_000) -> None:
        if not isinstance(maxEntries, int) or maxEntries < 1:
            raise ValueError(f"maxEntries must be a positive int, got {maxEntries!r}")
        self.db = db
        self.maxEntries = maxEntries
        self.entries: dict[int, dict[str, Any]] = {}
        # id -> the reads in flight for it, each a one-item list: [still valid]
        self.loading: dict[int, list[list[bool]]] = {}
        self.hits = self.misses = self.notifications = self.invalidations = self.resets = 0
        self.listener: Listener | None = None
        self.consumer: Deferred[None] | None = None

    def start(self) -> Deferred[None]:
        """LISTEN on the table's channel; fires once the server listens (fails if it cannot connect)."""
        d = self.db.pool.listen(self.db.channel)

        def listening(listener: Listener) -> None:
            self.listener = listener
            self.consumer = Deferred.fromCoroutine(self._consume(listener))
            self.consumer.addErrback(lambda f: log.error("cache listener failed:\n%s", f.getTraceback()))

        return d.addCallback(listening)

    async def _consume(self, listener: Listener) -> None:
        async for event in listener:  # ends when the listener is closed
            if isinstance(event, Notification):
                self.notifications += 1
                if event.payload.isascii() and event.payload.isdigit() and len(event.payload) <= 19:
                    self.invalidate(int(event.payload))
            else:
                log.info("cache dropped: notifications may have been missed (%s)", event.reason)
                self.clear()

    def stop(self) -> Deferred[None]:
        """Close the listener (``UNLISTEN``) and wait for the consumer to end."""
        listener, self.listener = self.listener, None
        if listener is None:
            return succeed(None)
        consumer = self.consumer
        d = listener.close()
        return d.addCallback(lambda _: consumer).addCallback(lambda _: None)

    def get(self, recordId: int) -> Deferred[dict[str, Any] | None]:
        """The record (a cached copy, or read from the database), or None if there is no such id."""
        record = self.entries.get(recordId)
        if record is not None:
            self.hits += 1
            return succeed(record)
        self.misses += 1
        token = [True]
        self.loading.setdefault(recordId, []).append(token)

        def loaded(record: dict[str, Any] | None) -> dict[str, Any] | None:
            if record is not None and token[0]:
                self.entries.pop(recordId, None)
                self.entries[recordId] = record
                while len(self.entries) > self.maxEntries:
                    del self.entries[next(iter(self.entries))]
            return record

        def done(result: Any) -> Any:
            tokens = self.loading[recordId]
            tokens.remove(token)
            if not tokens:
                del self.loading[recordId]
            return result

        return self.db.fetch(recordId).addCallback(loaded).addBoth(done)

    def invalidate(self, recordId: int) -> None:
        """A notification said ``recordId`` changed: forget it (counted in ``invalidations``)."""
        self.invalidations += 1
        self.forget(recordId)

    def forget(self, recordId: int) -> None:
        """Drop ``recordId``, and keep no read of it that is in flight (it may return the old version)."""
        self.entries.pop(recordId, None)
        for token in self.loading.get(recordId, ()):
            token[0] = False

    def clear(self) -> None:
        """Forget everything, reads in flight included."""
        self.resets += 1
        self.entries.clear()
        for tokens in self.loading.values():
            for token in tokens:
                token[0] = False

    def statistics(self) -> dict[str, Any]:
        listener = self.listener
        return {
            "enabled": True,
            "channel": self.db.channel,
            "entries": len(self.entries),
            "hits": self.hits,
            "misses": self.misses,
            "notifications": self.notifications,
            "invalidations": self.invalidations,
            "resets": self.resets,
            "listening": listener is not None and not listener.closed,
            "listenerReconnects": listener.reconnects if listener is not None else 0,
            "listenerDropped": listener.dropped if listener is not None else 0,
        }


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
        metrics: Callable[[], tuple[bytes, str]] | None = None,
    ) -> None:
        self.reactor = reactor
        # --metrics: renders the Prometheus exposition (body, content type); None answers /metrics with 501.
        self.renderMetrics = metrics
        self.shutdownTimeout = shutdownTimeout
        self.db = db
        self.host = host
        self.requestedPort = port
        self.threadPool = getThreadPool(reactor)
        self.http = HTTPFactory(self.handle, maxBodyBytes=maxBodySize, reactor=reactor)
        self.listeningPort: Any = None
        # PostgreSQL only: the read cache of GET /records/<id>, invalidated by NOTIFY (made in start()).
        self.cache: RecordCache | None = None
        self.stopping: Deferred[None] | None = None
        self.routes: list[tuple[str, re.Pattern[str], Route]] = [
            ("GET", re.compile(r"/"), self.index),
            ("GET", re.compile(r"/health"), self.health),
            ("POST", re.compile(r"/records"), self.createRecord),
            ("GET", re.compile(r"/records"), self.listRecords),
            ("GET", re.compile(r"/records/(\d+)"), self.fetchRecord),
            ("PUT", re.compile(r"/records/(\d+)"), self.updateRecord),
            ("DELETE", re.compile(r"/records/(\d+)"), self.deleteRecord),
            ("POST", re.compile(r"/import"), self.importCSV),
            ("GET", re.compile(r"/pbkdf2"), self.pbkdf2),
            ("GET", re.compile(r"/stats"), self.stats),
            ("GET", re.compile(r"/metrics"), self.metrics),
        ]

    # -- lifecycle ------------------------------------------------------------------------

    @inlineCallbacks
    def start(self) -> Any:
        """Create the schema, start the cache's listener (PostgreSQL), then listen. Fires with the port."""
        yield self.db.createSchema()
        if self.db.postgres:
            cache = RecordCache(self.db)
            yield cache.start()  # fails (and so does start) if the listening connection cannot be opened
            self.cache = cache
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
        if self.cache is not None:
            # The listening connection is not one of the pool's: close it first (UNLISTEN).
            yield self.cache.stop()
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
        name, value = _recordBody(parseJSON((yield request.body())))
        record = yield self.db.insert(name, value)
        return jsonResponse(record, 201)

    @inlineCallbacks
    def listRecords(self, request: Request, match: re.Match[str]) -> Any:
        limit = _intParam(request, "limit", 50, 1, 500)
        offset = _intParam(request, "offset", 0, 0, 10**9)
        records = yield self.db.list(limit, offset)
        return jsonResponse({"records": records, "limit": limit, "offset": offset})

    @inlineCallbacks
    def fetchRecord(self, request: Request, match: re.Match[str]) -> Any:
        recordId = _recordId(match)
        if self.cache is not None:
            record = yield self.cache.get(recordId)
        else:
            record = yield self.db.fetch(recordId)
        if record is None:
            raise HTTPError(404, f"no record {recordId}")
        return jsonResponse(record)

    @inlineCallbacks
    def updateRecord(self, request: Request, match: re.Match[str]) -> Any:
        recordId = _recordId(match)
        name, value = _recordBody(parseJSON((yield request.body())))
        record = yield self.db.update(recordId, name, value)
        if self.cache is not None:
            # At once, for this process's next read; other processes hear of it through NOTIFY.
            self.cache.forget(recordId)
        if record is None:
            raise HTTPError(404, f"no record {recordId}")
        return jsonResponse(record)

    @inlineCallbacks
    def deleteRecord(self, request: Request, match: re.Match[str]) -> Any:
        recordId = _recordId(match)
        deleted = yield self.db.delete(recordId)
        if self.cache is not None:
            self.cache.forget(recordId)
        if not deleted:
            raise HTTPError(404, f"no record {recordId}")
        return jsonResponse({"deleted": recordId})

    @inlineCallbacks
    def importCSV(self, request: Request, match: re.Match[str]) -> Any:
        """CSV rows into the table through one COPY, read from the request as the body arrives."""
        if not self.db.postgres:
            raise HTTPError(501, "POST /import needs PostgreSQL (it loads through COPY): start with --dsn")
        problems: list[HTTPError] = []
        try:
            count = yield self.db.importRows(_csvRows(request, problems))
        except Exception as e:
            if problems:  # our own check refused a row: the COPY was aborted because of it
                raise problems[0] from None
            dbapi = self.db.pool.dbapi
            if isinstance(e, (dbapi.DataError, dbapi.IntegrityError)):
                raise HTTPError(400, f"the data was refused, nothing imported: {str(e).strip()}") from None
            raise
        return jsonResponse({"imported": count})

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
                "cache": self.cache.statistics() if self.cache is not None
                else {"enabled": False, "reason": "the read cache needs PostgreSQL's NOTIFY (--dsn)"},
                "http": {
                    "inFlight": self.http.inFlight,
                    "served": self.http.requestsServed,
                    "connections": self.http.connections,
                },
            }
        )


    def metrics(self, request: Request, match: re.Match[str]) -> Response:
        if self.renderMetrics is None:
            return _errorResponse(501, "start the app with --metrics (needs 'deferthreads[prometheus]')")
        body, contentType = self.renderMetrics()
        return Response(200, [("content-type", contentType)], body)


def prometheusMetrics() -> Callable[[], tuple[bytes, str]]:
    """Install an OpenTelemetry SDK meter provider read by the Prometheus exporter; return the renderer of
    ``GET /metrics``. The pools instrument themselves (docs/observability.md): nothing else is needed."""
    from opentelemetry import metrics
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.sdk.metrics import MeterProvider
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

    metrics.set_meter_provider(MeterProvider(metric_readers=[PrometheusMetricReader()]))
    return lambda: (generate_latest(REGISTRY), CONTENT_TYPE_LATEST)


def _recordId(match: re.Match[str]) -> int:
    digits = match.group(1)
    # (int() of thousands of digits is refused by Python itself, and is no id anyway)
    if len(digits) > 19 or not 1 <= int(digits) <= MAX_ID:
        raise HTTPError(400, f"a record id is an integer from 1 to {MAX_ID}, got {digits[:30]}")
    return int(digits)


def _checkName(name: Any, where: str = "name") -> str:
    if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME:
        raise HTTPError(400, f"{where} must be a non-empty string of at most {MAX_NAME} characters")
    return name


def _recordBody(body: Any) -> tuple[str, Any]:
    """(name, value) from a request's JSON body; HTTPError(400) if it is not such an object."""
    if not isinstance(body, dict) or set(body) - {"name", "value"} or "name" not in body:
        raise HTTPError(400, 'body must be a JSON object {"name": str, "value": any}')
    return _checkName(body["name"]), body.get("value")


class _CsvRecords:
    """Cuts CSV text (the default dialect) into whole records as it arrives: a newline ends a record
    unless it is inside a quoted field (an odd number of quote characters since the record began)."""

    _CUT = re.compile(r'["\n]')

    def __init__(self) -> None:
        self.pending: list[str] = []
        self.inQuotes = False

    def feed(self, text: str) -> str:
        """The records completed by ``text`` (possibly ""); the rest is kept for the next feed."""
        cut = -1
        inQuotes = self.inQuotes
        for found in self._CUT.finditer(text):
            if found.group() == '"':
                inQuotes = not inQuotes
            elif not inQuotes:
                cut = found.end()
        self.inQuotes = inQuotes
        if cut < 0:
            self.pending.append(text)
            return ""
        complete = "".join(self.pending) + text[:cut]
        self.pending = [text[cut:]]
        return complete

    def rest(self) -> str:
        rest = "".join(self.pending)
        self.pending = []
        return rest


IMPORT_COLUMNS = ("name", "value", "created")
IMPORT_READ = 64 * 1024


def _importHeader(fields: list[str]) -> list[str]:
    if set(fields) - set(IMPORT_COLUMNS) or len(set(fields)) != len(fields) or "name" not in fields:
        raise HTTPError(400, f"the CSV's first line must name its columns, among {', '.join(IMPORT_COLUMNS)} "
                             f"(name required), got {','.join(fields)[:100]!r}")
    return fields


def _importRow(columns: list[str], fields: list[str], number: int, now: str) -> tuple[str, str, str]:
    """One CSV record as a (name, value as JSON text, created as text) row; HTTPError(400) naming it."""
    where = f"CSV record {number}"
    if len(fields) != len(columns):
        raise HTTPError(400, f"{where} has {len(fields)} fields, the header {len(columns)}")
    _checkStorable(fields, where)
    row = dict(zip(columns, fields, strict=True))
    name = _checkName(row["name"], f"{where}: name")
    raw = row.get("value", "")
    try:
        value = json.loads(raw, parse_constant=_refuseConstant, parse_float=_finiteFloat) if raw else None
    except (ValueError, RecursionError) as e:
        raise HTTPError(400, f"{where}: value is not valid JSON: {str(e)[:200]}") from None
    return name, json.dumps(value), row.get("created") or now


async def _csvRows(request: Request, problems: list[HTTPError]) -> AsyncIterator[tuple[str, str, str]]:
    """The rows of a CSV request body, parsed as its bytes arrive (reactor thread).

    UTF-8 (a byte-order mark is skipped); a header naming ``name`` and optionally ``value`` (JSON;
    empty is null) and ``created`` (seconds since the epoch, passed on as text for the server to
    parse; empty is now), then a record per row. A row this app refuses raises HTTPError(400), a
    body past ``maxBodyBytes`` the server's 413; either is also put in ``problems``, so the COPY's
    failure reports it, whatever the driver made of the exception.
    """
    decoder = codecs.getincrementaldecoder("utf-8-sig")()  # spreadsheets start their CSV with a BOM
    records = _CsvRecords()
    columns: list[str] | None = None
    number = 0  # CSV records read, the header included
    now = repr(time.time())
    ended = False
    try:
        while not ended:
            chunk = await request.read(IMPORT_READ)
            ended = not chunk
            try:
                text = records.feed(decoder.decode(chunk, final=ended))
            except UnicodeDecodeError as e:
                raise HTTPError(400, f"the CSV is not UTF-8 ({e.reason}, near record {number + 1})") from None
            if ended:
                text += records.rest()
            try:
                for fields in csv.reader(io.StringIO(text, newline=""), strict=True):
                    number += 1
                    if not fields:
                        continue  # a blank line
                    if columns is None:
                        columns = _importHeader(fields)
                    else:
                        yield _importRow(columns, fields, number, now)
            except csv.Error as e:
                raise HTTPError(400, f"CSV record {number + 1} is malformed: {e}") from None
        if columns is None:
            raise HTTPError(400, "the CSV is empty: its first line must name its columns")
    except HTTPError as e:  # ours, or the server's on the body (413 past --max-body, 408 too slow)
        problems.append(HTTPError(e.status, f"{e.message}; nothing imported"))
        raise problems[-1] from None


def _errorResponse(status: int, message: str) -> Response:
    return jsonResponse({"error": message}, status)


def _httpErrorAsJSON(failure: Failure) -> Response:
    failure.trap(HTTPError)
    err = failure.value
    assert isinstance(err, HTTPError)
    return _errorResponse(err.status, err.message)


def openDatabase(reactor: Any, dsn: str | None, sqlitePath: str, table: str = DEFAULT_TABLE) -> Database:
    """PostgreSQL (psycopg2) when ``dsn`` is given, else SQLite in ``sqlitePath`` (created if missing)."""
    if dsn:
        return Database(ConnectionPool("psycopg2", dsn, cp_min=1, cp_max=8, cp_reactor=reactor), True, table)

    def tune(conn: Any) -> None:
        # WAL lets readers run while a writer commits; busy_timeout waits instead of failing.
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA busy_timeout=5000")

    pool = ConnectionPool(
        "sqlite3", sqlitePath, timeout=5.0, cp_min=1, cp_max=4, cp_openfun=tune, cp_reactor=reactor
    )
    return Database(pool, False, table)


def _selfTest(app: WebApp) -> Deferred[bool]:
    """Call every endpoint with http.client (on a worker thread: it blocks) and check the answers."""
    import http.client

    port = app.listeningPort.getHost().port

    def run() -> list[str]:
        problems: list[str] = []
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

        def call(method: str, path: str, body: Any = None) -> tuple[int, Any]:
            raw: bytes | None
            if isinstance(body, bytes):
                raw, kind = body, "text/csv"
            else:
                raw, kind = (None if body is None else json.dumps(body).encode()), "application/json"
            conn.request(method, path, body=raw, headers={"Content-Type": kind})
            resp = conn.getresponse()
            return resp.status, json.loads(resp.read() or b"null")

        status, created = call("POST", "/records", {"name": "self-test", "value": [1, 2, 3]})
        if status != 201:
            return [f"POST /records: expected 201, got {status}"]
        path = f"/records/{created['id']}"
        checks: list[tuple[str, str, Any, int]] = [
            ("GET", "/health", None, 200),
            ("GET", "/records?limit=5", None, 200),
            ("GET", path, None, 200),
            ("GET", path, None, 200),  # from the cache on PostgreSQL
            ("PUT", path, {"name": "self-test", "value": "changed"}, 200),
            ("GET", "/records/999999999", None, 404),
            ("GET", "/pbkdf2?iterations=1000", None, 200),
            ("POST", "/records", {"nom": 1}, 400),
            ("POST", "/import", b"name,value\nimported,{\"n\": 1}\n", 200 if app.db.postgres else 501),
            ("DELETE", path, None, 200),
            ("GET", "/stats", None, 200),
        ]
        for method, path, body, expected in checks:
            status, payload = call(method, path, body)
            line = f"  {method:6} {path:28} -> {status} {json.dumps(payload)[:70]}"
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
               "--db", args.db, "--table", args.table, "--max-body", str(args.max_body), "--shutdown-timeout",
               str(args.shutdown_timeout)]
    if args.metrics:
        command.append("--metrics")  # each worker serves its own process's metrics
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
    parser.add_argument("--table", default=DEFAULT_TABLE, help=f"the records table (default {DEFAULT_TABLE})")
    parser.add_argument("--max-body", type=int, default=64 * 1024, help="request body limit in bytes")
    parser.add_argument("--serve-for", type=float, default=None, help="shut down after SECONDS")
    parser.add_argument(
        "--shutdown-timeout", type=float, default=30.0, help="abort requests still running after SECONDS"
    )
    parser.add_argument("--self-test", action="store_true", help="exercise every endpoint, then exit")
    parser.add_argument("--metrics", action="store_true",
                        help="serve the pools' metrics at /metrics in Prometheus text (needs [prometheus])")
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
    if not _TABLE_NAME.fullmatch(args.table):
        parser.error(f"--table must be a lower-case SQL name of at most 40 characters, got {args.table!r}")
    renderMetrics = None
    if args.metrics:
        try:
            renderMetrics = prometheusMetrics()
        except ImportError as e:
            parser.error(f"--metrics needs OpenTelemetry's SDK and Prometheus exporter "
                         f"(pip install 'deferthreads[prometheus]'): {e}")
    reactor = getReactor()
    db = openDatabase(reactor, args.dsn, args.db, args.table)
    app = WebApp(reactor, db, args.host, args.port, args.max_body, args.shutdown_timeout, renderMetrics)
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
