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
        chunks = []
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


def test_selfTestOnPostgres(tmp_path: Path, postgresDSN: str) -> None:
    """The same backend on PostgreSQL when given a DSN."""
    proc = subprocess.run(
        [sys.executable, str(WEBAPP), "--port", "0", "--dsn", postgresDSN, "--self-test"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "self-test passed" in proc.stdout and "PostgreSQL" in proc.stdout


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
