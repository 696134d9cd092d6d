"""A Flask application with a blocking database driver, served by ``deferthreads.wsgi``.

Flask and the driver block, so they run in the container's worker threads; HTTP is the reactor's
(``reactor.web``). Each worker thread keeps its own connection (``sqlite3`` by default, in a file;
``psycopg2`` with ``--dsn``), opened by the thread that uses it. Run it::

    python examples/wsgi_flask.py                          # http://127.0.0.1:8000, data in ./notes.sqlite3
    python examples/wsgi_flask.py --dsn "host=127.0.0.1 dbname=test"
    python -m deferthreads.wsgi 'examples.wsgi_flask:createApp()' --port 8000 --threads 8

Endpoints::

    GET  /notes?limit=N      the notes, newest first (limit 1..100, default 20)
    POST /notes              {"text": "..."} -> 201 and the stored note
    GET  /notes/<id>         one note, or 404

Input the database cannot store (not a JSON object, a text that is not a non-empty string of at most 1000
characters, a NUL, a lone surrogate, an id past 2**63-1) is a 400 or a 404, never a 500.
"""

from __future__ import annotations

import argparse
import os
import threading
from typing import Any

from flask import Flask, abort, jsonify, request

MAX_TEXT = 1000
MAX_ID = 2**63 - 1


class Store:
    """Notes in SQLite (``path``) or PostgreSQL (``dsn``); one connection per thread that uses it."""

    def __init__(self, path: str | None = None, dsn: str | None = None, table: str = "notes") -> None:
        if (path is None) == (dsn is None):
            raise ValueError("give exactly one of path (SQLite) or dsn (PostgreSQL)")
        if not table.isidentifier():
            raise ValueError(f"table must be an identifier, got {table!r}")
        self.path = path
        self.dsn = dsn
        self.table = table
        self.param = "?" if dsn is None else "%s"
        self._local = threading.local()
        self._all: list[Any] = []
        self._lock = threading.Lock()
        serial = "INTEGER PRIMARY KEY AUTOINCREMENT" if dsn is None else "BIGSERIAL PRIMARY KEY"
        conn = self.connection()
        cur = conn.cursor()
        cur.execute(f"CREATE TABLE IF NOT EXISTS {table} (id {serial}, text TEXT NOT NULL)")
        conn.commit()

    def connection(self) -> Any:
        """This thread's connection (opened on first use)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if self.dsn is None:
                import sqlite3

                assert self.path is not None
                # Used by this thread only; closed by it too (closeThread), or by close() at the end.
                conn = sqlite3.connect(self.path, timeout=10, check_same_thread=False)
            else:
                import psycopg2

                conn = psycopg2.connect(self.dsn)
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def add(self, text: str) -> dict[str, Any]:
        conn = self.connection()
        cur = conn.cursor()
        p = self.param
        if self.dsn is None:
            cur.execute(f"INSERT INTO {self.table} (text) VALUES ({p})", (text,))
            noteId = cur.lastrowid
        else:
            cur.execute(f"INSERT INTO {self.table} (text) VALUES ({p}) RETURNING id", (text,))
            noteId = cur.fetchone()[0]
        conn.commit()
        return {"id": noteId, "text": text}

    def get(self, noteId: int) -> dict[str, Any] | None:
        conn = self.connection()
        cur = conn.cursor()
        cur.execute(f"SELECT id, text FROM {self.table} WHERE id = {self.param}", (noteId,))
        row = cur.fetchone()
        conn.commit()  # end the read transaction (psycopg2 opens one)
        return None if row is None else {"id": row[0], "text": row[1]}

    def latest(self, limit: int) -> list[dict[str, Any]]:
        conn = self.connection()
        cur = conn.cursor()
        cur.execute(f"SELECT id, text FROM {self.table} ORDER BY id DESC LIMIT {self.param}", (limit,))
        rows = cur.fetchall()
        conn.commit()
        return [{"id": r[0], "text": r[1]} for r in rows]

    def closeThread(self) -> None:
        """Close this thread's connection, if it has one (a worker's ``workerExit`` hook)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            self._local.conn = None
            with self._lock:
                self._all.remove(conn)
            conn.close()

    def close(self) -> None:
        """Close the connections left (call once the server has stopped)."""
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            conn.close()


def _checkedText(body: Any) -> str:
    if not isinstance(body, dict):
        abort(400, "the body must be a JSON object")
    text = body.get("text")
    if not isinstance(text, str) or not text or len(text) > MAX_TEXT:
        abort(400, f"text must be a non-empty string of at most {MAX_TEXT} characters")
    if "\x00" in text:
        abort(400, "text must not contain NUL")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        abort(400, "text must be valid Unicode (no lone surrogates)")
    return text


def createApp(store: Store | None = None) -> Flask:
    """The Flask application over ``store`` (default: SQLite in ./notes.sqlite3, or $NOTES_DSN)."""
    if store is None:
        dsn = os.environ.get("NOTES_DSN")
        store = Store(dsn=dsn) if dsn else Store(path="notes.sqlite3")
    app = Flask("notes")
    app.config["store"] = store

    @app.get("/notes")
    def listNotes() -> Any:
        limit = request.args.get("limit", "20")
        if not limit.isdigit() or not 1 <= int(limit) <= 100:
            abort(400, "limit must be 1..100")
        return jsonify(store.latest(int(limit)))

    @app.post("/notes")
    def addNote() -> Any:
        body = request.get_json(silent=True)
        return jsonify(store.add(_checkedText(body))), 201

    @app.get("/notes/<int:noteId>")
    def getNote(noteId: int) -> Any:
        note = store.get(noteId) if noteId <= MAX_ID else None
        if note is None:
            abort(404)
        return jsonify(note)

    @app.errorhandler(400)
    def badRequest(error: Any) -> Any:
        return jsonify(error=getattr(error, "description", "bad request")), 400

    return app


def main(argv: list[str] | None = None) -> int:
    from deferthreads import ThreadPool
    from deferthreads.wsgi import listenWSGI
    from reactor import getReactor

    parser = argparse.ArgumentParser(description="Flask notes on deferthreads.wsgi")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="TCP port (default 8000; 0 = any)")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--db", default="notes.sqlite3", help="SQLite file (default ./notes.sqlite3)")
    parser.add_argument("--dsn", default=os.environ.get("NOTES_DSN"), help="PostgreSQL DSN (or NOTES_DSN)")
    parser.add_argument("--table", default="notes")
    parser.add_argument("--serve-for", type=float, default=None, help="stop after SECONDS")
    args = parser.parse_args(argv)
    store = Store(dsn=args.dsn, table=args.table) if args.dsn else Store(path=args.db, table=args.table)
    reactor = getReactor()
    # Each worker closes its own connection as it exits (the server drains the pool at its stop).
    pool = ThreadPool(args.threads, args.threads, name="notes", workerExit=store.closeThread)
    server = listenWSGI(createApp(store), port=args.port, interface=args.host, threadpool=pool,
                        drainPool=True, reactor=reactor)
    host = server.port.getHost()
    print(f"notes on http://{host.host}:{host.port} ({'PostgreSQL' if args.dsn else 'SQLite ' + args.db})",
          flush=True)
    if args.serve_for is not None:
        reactor.callLater(args.serve_for, reactor.stop)
    reactor.run()
    store.close()
    print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
