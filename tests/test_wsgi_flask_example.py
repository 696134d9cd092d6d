"""examples/wsgi_flask.py: the Flask notes application on deferthreads.wsgi, with SQLite and PostgreSQL, and
the example run as a program."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.test_wsgi_support import Served

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples"))

import wsgi_flask  # noqa: E402


def call(s: Served, method: str, path: str, body: Any = None, raw: bytes | None = None) -> tuple[int, Any]:
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    status, _, out = s.get(path, method=method, body=data, headers={"Content-Type": "application/json"})
    return status, json.loads(out) if out.startswith((b"{", b"[")) else out


def exercise(s: Served) -> None:
    status, note = call(s, "POST", "/notes", {"text": "first"})
    assert status == 201 and note["text"] == "first"
    assert call(s, "POST", "/notes", {"text": "second"})[0] == 201
    assert call(s, "GET", f"/notes/{note['id']}") == (200, note)
    status, notes = call(s, "GET", "/notes?limit=2")
    assert status == 200 and [n["text"] for n in notes] == ["second", "first"]
    assert call(s, "GET", "/notes/999999")[0] == 404
    assert call(s, "GET", "/notes/" + "9" * 5000)[0] == 404
    assert call(s, "GET", "/notes?limit=1000")[0] == 400
    assert call(s, "POST", "/notes", {"text": "nul\x00byte"})[0] == 400
    assert call(s, "POST", "/notes", raw=b'{"text": "\\ud800"}')[0] == 400
    assert call(s, "POST", "/notes", raw=b"not json")[0] == 400
    assert call(s, "POST", "/notes", {"text": ""})[0] == 400


@pytest.fixture
def sqliteServed(tmp_path: Path) -> Iterator[Served]:
    store = wsgi_flask.Store(path=str(tmp_path / "notes.sqlite3"))
    s = Served(wsgi_flask.createApp(store).wsgi_app)
    yield s
    s.stop()
    store.close()


def test_notesOnSqlite(sqliteServed: Served) -> None:
    """The notes API on SQLite: create, read, list, and every bad input a 400 or 404."""
    exercise(sqliteServed)


def test_notesOnPostgres(postgresDSN: str, uniqueTableName: str) -> None:
    """The same API on PostgreSQL through psycopg2, in a table of its own, dropped after."""
    store = wsgi_flask.Store(dsn=postgresDSN, table=uniqueTableName)
    s = Served(wsgi_flask.createApp(store).wsgi_app)
    try:
        exercise(s)
    finally:
        s.stop()
        store.close()
        import psycopg2

        conn = psycopg2.connect(postgresDSN)
        with conn, conn.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS {uniqueTableName}")
        conn.close()


def test_exampleRunsAsAProgram(tmp_path: Path) -> None:
    """``python examples/wsgi_flask.py --port 0`` serves on the port it prints and stops on SIGTERM."""
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "wsgi_flask.py"), "--port", "0", "--db",
         str(tmp_path / "n.sqlite3"), "--serve-for", "60"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
        env=dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=str(ROOT)),
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # bounded: --serve-for ends the process
        match = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        assert match, (line, proc.stderr.read() if proc.stderr else "")
        conn = http.client.HTTPConnection("127.0.0.1", int(match.group(1)), timeout=10)
        conn.request("POST", "/notes", body=b'{"text": "hi"}', headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        assert response.status == 201 and json.loads(response.read())["text"] == "hi"
        conn.close()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert "stopped" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
