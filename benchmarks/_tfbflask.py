"""The TechEmpower test types as one Flask application, for waitress and for ``deferthreads.wsgi``.

Blocking psycopg2: each server thread opens its own connection (autocommit, so a read is one round trip)
on first use and keeps it; with 4 server threads that is a pool of 4. ``/fortunes`` renders a Jinja
template (Flask's own engine, autoescaping on). The same application object is served by both containers,
so the comparison measures the container.
"""

from __future__ import annotations

import threading
from typing import Any

from benchmarks import _tfbcommon as tfb


def makeApp(dsn: str) -> Any:
    """A Flask application answering the six test types from the database at ``dsn``."""
    import psycopg2
    from flask import Flask, Response, request

    app = Flask("tfb")
    local = threading.local()
    template = app.jinja_env.from_string(tfb.FORTUNES_TEMPLATE)

    def cursor() -> Any:
        # A connection per server thread, opened by the thread that uses it (psycopg2 connections are
        # thread-safe, but one per thread keeps every request's round trips on its own socket).
        conn = getattr(local, "conn", None)
        if conn is None or conn.closed:
            conn = psycopg2.connect(dsn)
            conn.autocommit = True
            local.conn = conn
        return conn.cursor()

    def jsonResponse(value: Any) -> Response:
        return Response(tfb.jsonBytes(value), content_type=tfb.JSON_TYPE)

    @app.route("/json")
    def json_() -> Response:
        return jsonResponse({"message": tfb.HELLO})

    @app.route("/plaintext")
    def plaintext() -> Response:
        return Response(tfb.PLAINTEXT, content_type=tfb.TEXT_TYPE)

    @app.route("/db")
    def db() -> Response:
        with cursor() as c:
            c.execute(tfb.WORLD_SQL, (tfb.randomId(),))
            return jsonResponse(tfb.world(c.fetchone()))

    @app.route("/queries")
    def queries() -> Response:
        n = tfb.queryCount(request.args.get("queries"))
        with cursor() as c:
            worlds = []
            for _ in range(n):
                c.execute(tfb.WORLD_SQL, (tfb.randomId(),))
                worlds.append(tfb.world(c.fetchone()))
        return jsonResponse(worlds)

    @app.route("/fortunes")
    def fortunes() -> Response:
        with cursor() as c:
            c.execute(tfb.FORTUNE_SQL)
            rows = c.fetchall()
        return Response(template.render(fortunes=tfb.sortedFortunes(rows)), content_type=tfb.HTML_TYPE)

    @app.route("/updates")
    def updates() -> Response:
        n = tfb.queryCount(request.args.get("queries"))
        with cursor() as c:
            worlds = []
            for _ in range(n):
                c.execute(tfb.WORLD_SQL, (tfb.randomId(),))
                w = tfb.world(c.fetchone())
                w["randomNumber"] = tfb.randomId()
                worlds.append(w)
            flat = tfb.updateParameters(worlds)
            c.execute(tfb.updateSQL(len(flat) // 2), flat)
        return jsonResponse(worlds)

    return app
