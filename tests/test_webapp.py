"""The web backend example: its h11 protocol with bytes in/out, and the real server end to end."""

from __future__ import annotations

import http.client
import json
import logging
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
from hypothesis import given, settings
from hypothesis import strategies as st
from zope.interface.verify import verifyObject

from examples._http import HTTPError, HTTPFactory, HTTPServerProtocol, Request, Response
from reactor import Deferred, succeed
from reactor.interfaces import ITCPTransport
from tests.netsupport import FakeTransport

ROOT = Path(__file__).resolve().parent.parent
WEBAPP = ROOT / "examples" / "webapp.py"


# -- the protocol, sans IO ------------------------------------------------------------------


def echoHandler(request: Request) -> Response:
    return Response.fromJSON({"method": request.method, "path": request.path, "size": len(request.body)})


def connect(handler: Any = echoHandler, **kw: Any) -> tuple[Any, FakeTransport, HTTPFactory]:
    factory = HTTPFactory(handler, **kw)
    proto = factory.buildProtocol(None)
    transport = FakeTransport()
    assert verifyObject(ITCPTransport, transport)
    proto.makeConnection(transport)
    return proto, transport, factory


def responses(raw: bytes) -> list[tuple[int, bytes]]:
    """Split raw HTTP/1.1 responses (with Content-Length) into (status, body) pairs."""
    out = []
    while raw:
        head, _, rest = raw.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
        out.append((status, rest[:length]))
        raw = rest[length:]
    return out


def test_keepAliveAndPipelining() -> None:
    """Two pipelined requests on one connection get two responses, in order; the connection stays open."""
    proto, transport, _ = connect()
    proto.dataReceived(
        b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
    )
    got = responses(transport.value())
    assert [s for s, _ in got] == [200, 200]
    assert json.loads(got[0][1])["path"] == "/a"
    assert json.loads(got[1][1]) == {"method": "POST", "path": "/b", "size": 3}
    assert not transport.disconnecting


@settings(max_examples=60, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=8))
def test_pipelinedRequestsSurviveAnyChunking(cuts: list[int]) -> None:
    """However the bytes of three pipelined requests are split, the three answers are the same."""
    raw = (
        b"GET /one HTTP/1.1\r\nHost: x\r\n\r\n"
        b"POST /two HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
        b"POST /three HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    )
    proto, transport, _ = connect()
    last = 0
    for cut in sorted({min(c, len(raw)) for c in cuts}):
        proto.dataReceived(raw[last:cut])
        last = cut
    proto.dataReceived(raw[last:])
    got = [(s, json.loads(b)) for s, b in responses(transport.value())]
    assert got == [
        (200, {"method": "GET", "path": "/one", "size": 0}),
        (200, {"method": "POST", "path": "/two", "size": 5}),
        (200, {"method": "POST", "path": "/three", "size": 3}),
    ]
    assert not transport.disconnecting


def test_malformedRequestGets400AndClose() -> None:
    """Garbage instead of a request line gets a 400 JSON answer, then the connection closes."""
    proto, transport, _ = connect()
    proto.dataReceived(b"THIS IS NOT HTTP\r\n\r\n")
    [(status, body)] = responses(transport.value())
    assert status == 400 and "malformed" in json.loads(body)["error"]
    assert transport.disconnecting


def test_oversizedHeadersGet431() -> None:
    """A header block beyond maxHeaderSize is refused with 431."""
    proto, transport, _ = connect(maxHeaderSize=1024)
    proto.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 4096)
    [(status, _)] = responses(transport.value())
    assert status == 431 and transport.disconnecting
    proto, transport, _ = connect(maxHeaderSize=1024)  # the whole head at once: h11 alone would accept it
    proto.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 4096 + b"\r\n\r\n")
    [(status, _)] = responses(transport.value())
    assert status == 431 and transport.disconnecting


def test_oversizedBodyGets413() -> None:
    """A Content-Length beyond maxBodySize is refused with 413 before the body is read."""
    proto, transport, _ = connect(maxBodySize=10)
    proto.dataReceived(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n")
    [(status, _)] = responses(transport.value())
    assert status == 413 and transport.disconnecting


def test_chunkedBodyOverLimitGets413() -> None:
    """A chunked body growing past maxBodySize is refused with 413."""
    proto, transport, _ = connect(maxBodySize=10)
    proto.dataReceived(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n" + b"x" * 16)
    [(status, _)] = responses(transport.value())
    assert status == 413


def test_handlerErrorGets500WithoutTraceback(caplog: pytest.LogCaptureFixture) -> None:
    """An exception in the handler is logged with its traceback; the client sees a bare 500."""

    def broken(request: Request) -> Response:
        raise RuntimeError("secret internal detail")

    proto, transport, factory = connect(broken)
    with caplog.at_level(logging.ERROR, logger="examples.http"):
        proto.dataReceived(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
    [(status, body)] = responses(transport.value())
    assert status == 500
    assert b"secret" not in body and b"Traceback" not in body
    assert "secret internal detail" in caplog.text and "Traceback" in caplog.text
    assert factory.inFlight == 0 and not transport.disconnecting


def test_deferredHandlerAndHTTPError() -> None:
    """A handler may answer later through a Deferred, or raise HTTPError for a chosen status."""
    pending: Deferred[Response] = Deferred()

    def handler(request: Request) -> Any:
        if request.path == "/later":
            return pending
        raise HTTPError(404, "nothing here")

    proto, transport, factory = connect(handler)
    proto.dataReceived(b"GET /later HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\n")
    assert transport.value() == b"" and factory.inFlight == 1
    stopped: list[Any] = []
    factory.shutdown().addCallback(stopped.append)
    assert not stopped
    pending.callback(Response.fromJSON({"done": True}))
    got = responses(transport.value())
    assert got[0] == (200, b'{"done":true}')
    assert stopped == [None]  # shutdown waited for the request in flight
    assert transport.disconnecting  # and closed the connection after it


def test_coroutineHandler() -> None:
    """A coroutine handler works too."""

    async def handler(request: Request) -> Response:
        value = await succeed(7)
        return Response.fromJSON({"value": value})

    proto, transport, _ = connect(handler)
    proto.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert responses(transport.value()) == [(200, b'{"value":7}')]


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


def test_shutdownTimeoutAbortsStragglers() -> None:
    """A shutdown that waits too long can be cancelled (addTimeout) and the stragglers aborted."""
    pending: Deferred[Response] = Deferred()
    proto, transport, factory = connect(lambda request: pending)
    proto.dataReceived(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
    d = factory.shutdown()
    errors: list[Any] = []
    d.addErrback(errors.append)
    d.cancel()
    assert errors and not factory._idleWaiters
    assert factory.abortAll() == 1 and transport.aborted
    assert factory.buildProtocol(None) is None  # no new connections once shutting down


def test_idleAndSlowConnectionsTimeOut() -> None:
    """With a clock: an idle keep-alive connection closes, a request trickling in too slowly gets 408."""
    from reactor.task import Clock

    clock = Clock()
    factory = HTTPFactory(echoHandler, clock=clock, idleTimeout=10)
    idle, slow = factory.buildProtocol(None), factory.buildProtocol(None)
    idleTransport, slowTransport = FakeTransport(), FakeTransport()
    assert idle is not None and slow is not None
    idle.makeConnection(idleTransport)
    slow.makeConnection(slowTransport)
    idle.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # answered; the timer starts again
    slow.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow")  # never finished
    clock.advance(9)
    assert not idleTransport.disconnecting and not slowTransport.writeClosed
    clock.advance(2)
    assert idleTransport.disconnecting
    assert [s for s, _ in responses(idleTransport.value())] == [200]
    [(status, body)] = responses(slowTransport.value())
    assert status == 408 and b"10 s" in body
    assert slowTransport.writeClosed  # lingering close: EOF first, the full close later
    clock.advance(HTTPServerProtocol.lingerSeconds)
    assert slowTransport.disconnecting
    assert not clock.getDelayedCalls() or all(not c.active() for c in clock.getDelayedCalls())
