"""The web backend example (examples/webapp.py on reactor.web), end to end over real sockets.

The HTTP server itself is tested in tests/test_web.py and tests/test_web_sockets.py.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
WEBAPP = ROOT / "examples" / "webapp.py"


# -- the real server, end to end ------------------------------------------------------------


class Server:
    """examples/webapp.py in a subprocess on a free loopback port."""

    dsn = ""  # on PostgreSQL: the DSN and the records table (the pgServer fixture sets them)
    table = ""

    def __init__(self, tmp: Path, *extra: str) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, str(WEBAPP), "--port", "0", "--db", str(tmp / "app.db"), *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=tmp,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # bounded: --serve-for ends the process
        match = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        if match is None:
            self.proc.kill()
            raise AssertionError(f"no address printed: {line!r} {self.proc.communicate(timeout=10)}")
        self.port = int(match.group(1))
        self.curlLine = self.proc.stdout.readline()

    def client(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)

    def stop(self, sendSignal: bool = True) -> tuple[int, str, str]:
        if sendSignal and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        out, err = self.proc.communicate(timeout=20)
        return self.proc.returncode, out, err


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    s = Server(tmp_path, "--serve-for", "60", "--max-body", "4096")
    try:
        yield s
    finally:
        if s.proc.poll() is None:
            s.proc.kill()
            s.proc.communicate(timeout=10)


def call(conn: http.client.HTTPConnection, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    raw = None if body is None else json.dumps(body).encode()
    conn.request(method, path, body=raw, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    return resp.status, json.loads(resp.read())


def rawExchange(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        chunks: list[bytes] = []
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


def test_webappEndToEnd(server: Server) -> None:
    """Create, list and fetch records, CPU work, stats, all over one keep-alive connection."""
    assert "curl" in server.curlLine and str(server.port) in server.curlLine
    conn = server.client()
    status, created = call(conn, "POST", "/records", {"name": "alpha", "value": {"n": 1}})
    assert status == 201 and created["name"] == "alpha" and created["value"] == {"n": 1}
    sock = conn.sock
    status, _ = call(conn, "POST", "/records", {"name": "beta; DROP TABLE webapp_records", "value": 2})
    assert status == 201
    status, listing = call(conn, "GET", "/records?limit=10")
    assert status == 200
    assert [r["name"] for r in listing["records"]] == ["beta; DROP TABLE webapp_records", "alpha"]
    status, fetched = call(conn, "GET", f"/records/{created['id']}")
    assert status == 200 and fetched == created
    assert call(conn, "GET", "/records/424242")[0] == 404
    assert call(conn, "GET", "/records?limit=abc")[0] == 400
    status, work = call(conn, "GET", "/pbkdf2?iterations=2000")
    assert status == 200 and len(work["digest"]) == 64
    status, stats = call(conn, "GET", "/stats")
    assert status == 200
    assert stats["threadPool"]["workers"] >= 1 and "completed" in stats["threadPool"]
    assert stats["connectionPool"]["calls"] >= 5
    assert stats["http"]["served"] >= 7
    assert call(conn, "DELETE", "/records")[0] == 405
    assert call(conn, "GET", "/nowhere")[0] == 404
    assert conn.sock is sock  # every request above went over the same keep-alive connection
    conn.close()
    code, out, _ = server.stop()
    assert code == 0 and "stopped" in out


def test_webappRejectsMalformedRequests(server: Server) -> None:
    """Garbage, bad JSON, oversized bodies and headers get 4xx answers; the server keeps serving."""
    assert rawExchange(server.port, b"NOT HTTP AT ALL\r\n\r\n").startswith(b"HTTP/1.1 400")
    assert rawExchange(server.port, b"GET / HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 400")  # no Host
    big = b"POST /records HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n" + b"x" * 5000
    assert rawExchange(server.port, big).startswith(b"HTTP/1.1 413")
    huge = b"GET / HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"p" * 70000 + b"\r\n\r\n"
    assert rawExchange(server.port, huge).startswith(b"HTTP/1.1 431")
    conn = server.client()
    conn.request("POST", "/records", body=b"{not json", headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 400 and "JSON" in json.loads(resp.read())["error"]
    assert call(conn, "POST", "/records", {"name": ""})[0] == 400
    assert call(conn, "POST", "/records", ["not", "an", "object"])[0] == 400
    assert call(conn, "GET", "/health") == (200, {"ok": True})
    conn.close()


def test_sigtermFinishesRequestsInFlight(server: Server) -> None:
    """SIGTERM during a slow request: the request completes, new connections are refused, exit code 0."""
    result: dict[str, Any] = {}
    conn = server.client()

    def slow() -> None:
        result["answer"] = call(conn, "GET", "/pbkdf2?iterations=1500000")

    worker = threading.Thread(target=slow)
    worker.start()
    # Wait until the server reports the request in flight (bounded polling over a second connection).
    probe = server.client()
    deadline = time.monotonic() + 15
    while call(probe, "GET", "/stats")[1]["http"]["inFlight"] < 2:  # the slow one + this probe
        if time.monotonic() > deadline:
            raise AssertionError("the slow request never started")
    probe.close()
    server.proc.send_signal(signal.SIGTERM)
    worker.join(timeout=30)
    assert not worker.is_alive()
    status, body = result["answer"]
    assert status == 200 and body["iterations"] == 1500000
    code, out, err = server.stop(sendSignal=False)  # a second SIGTERM could land during interpreter exit
    assert code == 0 and "stopped" in out
    assert "shutting down" in err and "pools drained" in err
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=5).close()


def test_selfTestMode(tmp_path: Path) -> None:
    """``--self-test`` (what a demo runs) exercises every endpoint and exits 0."""
    proc = subprocess.run(
        [sys.executable, str(WEBAPP), "--port", "0", "--db", str(tmp_path / "s.db"), "--self-test"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "self-test passed" in proc.stdout and "Serving on http://127.0.0.1:" in proc.stdout


def test_selfTestOnPostgres(tmp_path: Path, postgresDSN: str, uniqueTableName: str) -> None:
    """The same backend on PostgreSQL when given a DSN (the cache and the CSV import included)."""
    try:
        proc = subprocess.run(
            [sys.executable, str(WEBAPP), "--port", "0", "--dsn", postgresDSN, "--table", uniqueTableName,
             "--self-test"],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )
    finally:
        dropTable(postgresDSN, uniqueTableName)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "self-test passed" in proc.stdout and "PostgreSQL" in proc.stdout
    assert "POST   /import                      -> 200" in proc.stdout


def rawCall(port: int, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
    """One request with a raw body (bytes http.client would not send as is); (status, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(method, path, body=body or None, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    result = resp.status, resp.read()
    conn.close()
    return result


def test_webappRefusesInputItCannotStoreWith400(server: Server) -> None:
    """A lone surrogate, a NUL, NaN, 1e999, a 5,000-digit id get 400, not a logged 500; nothing is stored."""
    cases = [
        ("POST", "/records", b'{"name": "\\ud800"}'),
        ("POST", "/records", b'{"name": "a\\u0000b"}'),
        ("POST", "/records", b'{"name": "ok", "value": {"\\udfff": 1}}'),
        ("POST", "/records", b'{"name": "ok", "value": NaN}'),
        ("POST", "/records", b'{"name": "ok", "value": Infinity}'),
        ("POST", "/records", b'{"name": "ok", "value": 1e999}'),
        ("POST", "/records", b'{"name": "\xff\xfe"}'),
        ("GET", "/records/" + "9" * 5000, b""),
        ("GET", "/records/" + "9" * 20, b""),
        ("GET", "/records?limit=" + "1" * 5000, b""),
    ]
    for method, path, body in cases:
        status, answer = rawCall(server.port, method, path, body)
        assert status == 400, (path[:30], body[:40], status, answer)
        assert "error" in json.loads(answer)
    conn = server.client()
    status, listing = call(conn, "GET", "/records")
    assert status == 200 and listing["records"] == []
    conn.close()
    code, _, err = server.stop()
    assert code == 0 and "Traceback" not in err and " 500" not in err


def test_webappAnswersHeadWithoutBody(server: Server) -> None:
    """HEAD on a GET route: the GET's status and length, no body, and the connection stays usable."""
    conn = server.client()
    conn.request("HEAD", "/health")
    resp = conn.getresponse()
    assert resp.status == 200 and int(resp.headers["Content-Length"]) == len(b'{"ok":true}')
    assert resp.read() == b""
    assert call(conn, "GET", "/health") == (200, {"ok": True})
    conn.close()
    code, _, err = server.stop()
    assert code == 0 and "Traceback" not in err


# -- on PostgreSQL: the read cache invalidated by NOTIFY, and the CSV import through COPY ------------


def sql(dsn: str, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """One autocommitted statement on a connection of the test's own (a NOTIFY goes out at once)."""
    import psycopg2

    conn = psycopg2.connect(dsn, connect_timeout=5)
    try:
        conn.autocommit = True
        with conn.cursor() as cursor:
            cursor.execute(statement, params)
            return cursor.fetchall() if cursor.description else []
    finally:
        conn.close()


def dropTable(dsn: str, table: str) -> None:
    sql(dsn, f"DROP TABLE IF EXISTS {table}")


@pytest.fixture
def pgServer(tmp_path: Path, postgresDSN: str, uniqueTableName: str) -> Iterator[Server]:
    """The app on PostgreSQL, on a table of its own (dropped after)."""
    s = Server(tmp_path, "--serve-for", "60", "--dsn", postgresDSN, "--table", uniqueTableName)
    s.dsn, s.table = postgresDSN, uniqueTableName
    try:
        yield s
    finally:
        if s.proc.poll() is None:
            s.proc.kill()
            s.proc.communicate(timeout=10)
        dropTable(postgresDSN, uniqueTableName)


def cacheStats(conn: http.client.HTTPConnection) -> dict[str, Any]:
    status, stats = call(conn, "GET", "/stats")
    assert status == 200
    return stats["cache"]  # type: ignore[no-any-return]


def waitForCache(conn: http.client.HTTPConnection, what: str, predicate: Any,
                 seconds: float = 20.0) -> dict[str, Any]:
    """Poll the server's cache statistics until ``predicate`` holds for them (bounded by ``seconds``)."""
    deadline = time.monotonic() + seconds
    while True:
        stats = cacheStats(conn)
        if predicate(stats):
            return stats
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {seconds}s; cache statistics {stats}")


def changeBehindTheCache(server: Server, recordId: int, value: Any) -> None:
    """Change a record in the database directly, with no NOTIFY: a cached copy stays as it was."""
    sql(server.dsn, f"UPDATE {server.table} SET value = %s WHERE id = %s",
        (json.dumps(value), recordId))


def test_cachedReadIsServedFromTheCache(pgServer: Server) -> None:
    """A second GET of a record is a cache hit: a change made behind the cache's back is not seen."""
    conn = pgServer.client()
    status, created = call(conn, "POST", "/records", {"name": "cached", "value": 1})
    assert status == 201
    path = f"/records/{created['id']}"
    assert call(conn, "GET", path) == (200, created)
    changeBehindTheCache(pgServer, created["id"], 2)
    assert call(conn, "GET", path) == (200, created)  # the cached copy
    stats = cacheStats(conn)
    assert stats["enabled"] and stats["listening"]
    assert (stats["hits"], stats["misses"], stats["entries"]) == (1, 1, 1)
    assert stats["channel"] == f"{pgServer.table}_changed"
    conn.close()


def test_cacheIsInvalidatedByTheAppsOwnWrite(pgServer: Server) -> None:
    """PUT and DELETE drop the cached record at once, and their NOTIFY comes back through the listener."""
    conn = pgServer.client()
    _, created = call(conn, "POST", "/records", {"name": "mine", "value": "old"})
    path = f"/records/{created['id']}"
    call(conn, "GET", path)
    status, updated = call(conn, "PUT", path, {"name": "mine", "value": "new"})
    assert status == 200 and updated["value"] == "new" and updated["created"] == created["created"]
    assert call(conn, "GET", path) == (200, updated)  # read your own write, before any notification
    stats = waitForCache(conn, "the app's own NOTIFY", lambda c: c["invalidations"] >= 1)
    assert stats["notifications"] == 1 and stats["misses"] == 2
    call(conn, "GET", path)  # cached again
    assert call(conn, "DELETE", path) == (200, {"deleted": created["id"]})
    assert call(conn, "GET", path)[0] == 404
    waitForCache(conn, "the NOTIFY of the delete", lambda c: c["invalidations"] >= 2)
    assert call(conn, "PUT", "/records/987654321", {"name": "x"})[0] == 404
    assert call(conn, "PUT", path, {"nom": "x"})[0] == 400
    conn.close()


def test_cacheIsInvalidatedByAnotherSessionsNotify(pgServer: Server) -> None:
    """A NOTIFY of the record's id from another connection (as psql would send) drops the cached copy."""
    conn = pgServer.client()
    _, created = call(conn, "POST", "/records", {"name": "theirs", "value": "old"})
    path = f"/records/{created['id']}"
    call(conn, "GET", path)
    changeBehindTheCache(pgServer, created["id"], "new")
    assert call(conn, "GET", path)[1]["value"] == "old"
    sql(pgServer.dsn, f"NOTIFY {pgServer.table}_changed, '{created['id']}'")
    stats = waitForCache(conn, "the external NOTIFY", lambda c: c["invalidations"] >= 1)
    assert stats["entries"] == 0
    assert call(conn, "GET", path)[1]["value"] == "new"
    # A payload that is no record id is counted and ignored.
    sql(pgServer.dsn, f"NOTIFY {pgServer.table}_changed, 'not an id'")
    stats = waitForCache(conn, "the second NOTIFY", lambda c: c["notifications"] >= 2)
    assert stats["invalidations"] == 1 and stats["entries"] == 1
    conn.close()
    # A graceful stop ends cleanly with the listener open, and leaves no session listening.
    code, _, err = pgServer.stop()
    assert code == 0 and "Traceback" not in err
    deadline = time.monotonic() + 10
    while listeningBackends(pgServer):  # a backend's row goes when its process has exited
        assert time.monotonic() < deadline, "the listening session outlived the app"


def listeningBackends(server: Server) -> list[tuple[Any, ...]]:
    """The server sessions (other than ours) whose last statement LISTENed on the app's channel."""
    return sql(server.dsn, "SELECT pid FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND query LIKE %s",
               (f"%LISTEN \"{server.table}_changed\"%",))


def test_cacheIsDroppedWhenNotificationsWereMissed(pgServer: Server) -> None:
    """The listener's backend terminated: once it is listening again, the whole cache is dropped."""
    conn = pgServer.client()
    records = [call(conn, "POST", "/records", {"name": f"r{i}", "value": "old"})[1] for i in range(3)]
    for record in records:
        call(conn, "GET", f"/records/{record['id']}")
        changeBehindTheCache(pgServer, record["id"], "new")
    assert cacheStats(conn)["entries"] == 3
    channel = f"{pgServer.table}_changed"
    pids = listeningBackends(pgServer)
    assert len(pids) == 1, pids
    assert sql(pgServer.dsn, "SELECT pg_terminate_backend(%s)", pids[0]) == [(True,)]
    stats = waitForCache(conn, "the listener's reconnection", lambda c: c["resets"] >= 1)
    assert stats["listenerReconnects"] == 1 and stats["listening"] and stats["entries"] == 0
    for record in records:
        assert call(conn, "GET", f"/records/{record['id']}")[1]["value"] == "new"
    # Listening again: a NOTIFY after the reconnection still invalidates.
    sql(pgServer.dsn, f"NOTIFY {channel}, '{records[0]['id']}'")
    waitForCache(conn, "a NOTIFY after the reconnection", lambda c: c["invalidations"] >= 1)
    conn.close()


def postCSV(server: Server, body: bytes | list[bytes]) -> tuple[int, Any]:
    """POST /import with ``body`` (a list: sent chunked, a chunk at a time)."""
    conn = server.client()
    try:
        payload: Any = iter(body) if isinstance(body, list) else body
        conn.request("POST", "/import", body=payload, headers={"Content-Type": "text/csv"})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def storedRows(server: Server) -> list[tuple[Any, ...]]:
    return sql(server.dsn, f"SELECT name, value, created FROM {server.table} ORDER BY id")


def test_importLoadsACsvBodyThroughCopy(pgServer: Server) -> None:
    """POST /import: every row stored, quoted fields spanning chunks included, and the count answered."""
    chunks = [
        b"\xef\xbb\xbfname,value,created\n",  # a byte-order mark, as spreadsheets write
        b'plain,42,1700000000.5\n"with, comma","{""a"": [1, 2]}",\n"two',  # a quoted record cut mid-field
        b'\nlines",,1\r\n\n',  # CRLF and a blank line
        "caf\u00e9,\"\"\"\u00e9\"\"\",2\n".encode()[:4],  # a UTF-8 character cut between chunks
        "caf\u00e9,\"\"\"\u00e9\"\"\",2\n".encode()[4:],
    ]
    status, answer = postCSV(pgServer, chunks)
    assert (status, answer) == (200, {"imported": 4})
    rows = storedRows(pgServer)
    assert [(r[0], json.loads(r[1]), r[2]) for r in rows if r[0] != "with, comma"] == [
        ("plain", 42, 1700000000.5),
        ("two\nlines", None, 1.0),
        ("caf\u00e9", "\u00e9", 2.0),
    ]
    withComma = next(r for r in rows if r[0] == "with, comma")
    assert json.loads(withComma[1]) == {"a": [1, 2]} and withComma[2] > 1.7e9  # empty created: now
    conn = pgServer.client()
    listing = call(conn, "GET", "/records?limit=10")[1]["records"]
    assert [r["name"] for r in listing] == ["caf\u00e9", "two\nlines", "with, comma", "plain"]
    conn.close()


def test_importRefusesBadDataWith400AndKeepsNothing(pgServer: Server) -> None:
    """Data the server refuses, rows the app refuses, malformed CSV: 400 with the reason, no row kept."""
    many = b"name,created\n" + b"".join(b"row%d,%d\n" % (i, i) for i in range(2500))
    cases: list[tuple[bytes | list[bytes], str]] = [
        # the server's own message, for a row past the first COPY batches
        (many + b"late,yesterday\n", 'invalid input syntax for type double precision: "yesterday"'),
        (b"name,value\nok,1\nbad,{nope\n", "CSV record 3: value is not valid JSON"),
        (b"name,value\nok,NaN\n", "value is not valid JSON"),
        (b"name\n\"\"\n", "CSV record 2: name must be a non-empty string"),
        (b'name\n"unterminated\n', "is malformed"),
        (b"name,value\nok\n", "CSV record 2 has 1 fields, the header 2"),
        (b"nom,value\nx,1\n", "first line must name its columns"),
        (b"name\nbad\xff\n", "not UTF-8"),
        (b"name\na\x00b\n", "NUL"),
        (b"", "the CSV is empty"),
    ]
    for body, reason in cases:
        status, answer = postCSV(pgServer, body)
        assert status == 400 and reason in answer["error"], (reason, status, answer)
        assert "nothing imported" in answer["error"]
        assert storedRows(pgServer) == []
    tooBig = [b"name,value\n"] + [b"x," + b"7" * 997 + b"\n"] * 70  # chunked, past the 64 KiB body limit
    status, answer = postCSV(pgServer, tooBig)
    assert status == 413 and "nothing imported" in answer["error"]
    assert storedRows(pgServer) == []
    assert postCSV(pgServer, many) == (200, {"imported": 2500})  # the same rows, without the bad one
    code, _, err = pgServer.stop()
    assert code == 0 and "Traceback" not in err and " 500" not in err


def test_importAndCacheOnSqliteAnswer501(server: Server) -> None:
    """On SQLite, POST /import is a 501 saying why, and /stats says there is no cache; reads still work."""
    status, answer = postCSV(server, b"name\nx\n")
    assert status == 501 and "PostgreSQL" in answer["error"]
    conn = server.client()
    _, created = call(conn, "POST", "/records", {"name": "lite", "value": 1})
    path = f"/records/{created['id']}"
    assert call(conn, "GET", path) == (200, created)
    assert call(conn, "PUT", path, {"name": "lite", "value": 2})[1]["value"] == 2
    assert call(conn, "GET", path)[1]["value"] == 2
    cache = cacheStats(conn)
    assert cache["enabled"] is False and "PostgreSQL" in cache["reason"]
    conn.close()


# -- GET /metrics (--metrics): the pools' OpenTelemetry metrics through the Prometheus exporter --------


def test_metricsEndpointServesThePoolsMetricsInPrometheusText(tmp_path: Path) -> None:
    """With --metrics, GET /metrics is Prometheus text with the connection- and thread-pool metrics."""
    s = Server(tmp_path, "--serve-for", "60", "--metrics")
    try:
        conn = s.client()
        assert call(conn, "POST", "/records", {"name": "counted", "value": 1})[0] == 201
        assert call(conn, "GET", "/pbkdf2?iterations=1000")[0] == 200
        conn.request("GET", "/metrics")
        resp = conn.getresponse()
        text = resp.read().decode()
        assert resp.status == 200
        assert resp.getheader("content-type", "").startswith("text/plain")
        duration = r'^db_client_operation_duration_seconds_count\{[^}]*db_operation_name="runInteraction"'
        assert re.search(duration, text, re.M)  # the insert's runInteraction
        assert re.search(r'^db_client_connection_count\{[^}]*db_client_connection_state="idle"', text, re.M)
        assert re.search(r"^db_client_connection_max\{", text, re.M)
        assert re.search(r'^deferthreads_pool_workers\{[^}]*state="busy"', text, re.M)
        conn.close()
        code, out, _ = s.stop()
        assert code == 0 and "stopped" in out
    finally:
        if s.proc.poll() is None:
            s.proc.kill()
            s.proc.communicate(timeout=10)


def test_metricsEndpointWithoutTheFlagAnswers501(server: Server) -> None:
    """Without --metrics, GET /metrics is a 501 saying how to turn it on."""
    conn = server.client()
    status, answer = call(conn, "GET", "/metrics")
    assert status == 501 and "--metrics" in answer["error"]
    conn.close()
