"""deferthreads.wsgi end to end: PEP 3333 applications (wrapped in wsgiref.validate) on a real reactor.web
server, reached over real sockets with http.client."""

from __future__ import annotations

import json
import logging
import socket
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from wsgiref.validate import validator

import pytest

from deferthreads import ThreadPool
from deferthreads.wsgi import ClientGone, WSGIContainer
from tests.test_wsgi_support import Served

pytestmark = pytest.mark.filterwarnings("error::wsgiref.validate.WSGIWarning")

Environ = dict[str, Any]
TEXT = [("Content-Type", "text/plain")]


def serve(app: Any, **kwargs: Any) -> Served:
    """``app`` wrapped in wsgiref's validator, served."""
    return Served(validator(app), **kwargs)


@pytest.fixture
def served() -> Iterator[list[Served]]:
    """Servers a test started; each is stopped afterwards."""
    servers: list[Served] = []
    yield servers
    for s in servers:
        s.stop()


def start(servers: list[Served], app: Any, validate: bool = True, **kwargs: Any) -> Served:
    s = serve(app, **kwargs) if validate else Served(app, **kwargs)
    servers.append(s)
    return s


ENV_KEYS = (
    "REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "CONTENT_TYPE", "CONTENT_LENGTH",
    "SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL", "REMOTE_ADDR", "wsgi.url_scheme", "HTTP_X_CUSTOM",
    "HTTP_COOKIE", "HTTP_ACCEPT",
)


def readAll(stream: Any) -> bytes:
    """The whole of wsgi.input (the validator allows only read(size))."""
    parts = []
    while True:
        part = stream.read(65536)
        if not part:
            return b"".join(parts)
        parts.append(part)


def environApp(environ: Environ, start_response: Any) -> Iterable[bytes]:
    body = readAll(environ["wsgi.input"])
    data = {k: environ.get(k) for k in ENV_KEYS}
    data["body"] = body.decode("latin-1")
    data["multithread"] = environ["wsgi.multithread"]
    data["headerKeys"] = sorted(k for k in environ if k.startswith("HTTP_"))
    out = json.dumps(data).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(out)))])
    return [out]


def test_environHoldsTheRequest(served: list[Served]) -> None:
    """Method, decoded path, query, Host-derived server name and port, headers and body reach the environ."""
    s = start(served, environApp)
    status, headers, body = s.get(
        "/caf%C3%A9/a%20b?x=1&y=%20",
        method="POST",
        body=b"hello",
        headers={"Host": "example.com:8080", "X-Custom": "yes", "Content-Type": "text/plain",
                 "Cookie": "a=1", "Accept": "*/*"},
    )
    assert status == 200 and headers["content-type"] == "application/json"
    env = json.loads(body)
    assert env["REQUEST_METHOD"] == "POST"
    assert env["PATH_INFO"] == "/caf\u00c3\u00a9/a b"
    assert env["SCRIPT_NAME"] == ""
    assert env["QUERY_STRING"] == "x=1&y=%20"
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("example.com", "8080")
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["wsgi.url_scheme"] == "http"
    assert env["HTTP_X_CUSTOM"] == "yes" and env["HTTP_COOKIE"] == "a=1"
    assert env["CONTENT_TYPE"] == "text/plain" and env["CONTENT_LENGTH"] == "5"
    assert env["body"] == "hello" and env["multithread"] is True
    assert "HTTP_CONTENT_TYPE" not in env["headerKeys"] and "HTTP_CONTENT_LENGTH" not in env["headerKeys"]


def test_repeatedHeadersJoinAndUnderscoreNamesAreDropped(served: list[Served]) -> None:
    """Two X-Custom lines arrive joined with a comma; a header named with '_' never reaches the environ."""
    s = start(served, environApp)
    raw = s.raw(b"GET / HTTP/1.1\r\nHost: h\r\nX-Custom: a\r\nX-Custom: b\r\nX_Custom: spoof\r\n"
                b"Connection: close\r\n\r\n")
    env = json.loads(raw.partition(b"\r\n\r\n")[2])
    assert env["HTTP_X_CUSTOM"] == "a,b"
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("h", "80")


def test_scriptNameMountsTheApplication(served: list[Served]) -> None:
    """With scriptName '/app', /app/x has SCRIPT_NAME '/app' and PATH_INFO '/x'; /other is a 404."""
    s = start(served, environApp)
    container = WSGIContainer(validator(environApp), reactor=s.reactor, threadpool=ThreadPool(1, 2),
                              scriptName="/app")
    from reactor.web import HTTPFactory

    def listen() -> Any:
        container.threadpool.start()
        return s.reactor.listenTCP(0, HTTPFactory(container, reactor=s.reactor), interface="127.0.0.1")

    port = s.call(listen)
    try:
        import http.client

        conn = http.client.HTTPConnection("127.0.0.1", port.getHost().port, timeout=10)
        conn.request("GET", "/app/x?q=1")
        env = json.loads(conn.getresponse().read())
        assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/app", "/x")
        conn.request("GET", "/other")
        response = conn.getresponse()
        response.read()
        assert response.status == 404
        conn.close()
    finally:
        s.call(port.stopListening)
        container.threadpool.stop(10)


def test_largeBodyStreamsThroughWsgiInput(served: list[Served]) -> None:
    """A body past prefetchBytes is read in pieces by read(n), readline and iteration, all of it."""
    lines = [b"line %d %s\n" % (i, b"x" * 50) for i in range(5000)]
    payload = b"".join(lines)

    def app(environ: Environ, start_response: Any) -> Iterable[bytes]:
        stream = environ["wsgi.input"]
        first = stream.readline()
        second = stream.read(10)
        rest = list(stream)
        got = first + second + b"".join(rest)
        out = json.dumps({"n": len(got), "same": got == payload, "first": first.decode()}).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [out]

    s = start(served, app, maxBodyBytes=1 << 24)
    status, _, body = s.get("/", method="PUT", body=payload)
    assert status == 200
    assert json.loads(body) == {"n": len(payload), "same": True, "first": lines[0].decode()}


def test_chunkedRequestBodyReachesTheApplication(served: list[Served]) -> None:
    """A chunked request body (no Content-Length) reads to its end; CONTENT_LENGTH is absent."""
    s = start(served, environApp)
    raw = s.raw(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    env = json.loads(raw.partition(b"\r\n\r\n")[2])
    assert env["body"] == "hello world" and env["CONTENT_LENGTH"] is None


def test_bodyPastTheServerLimitIs413(served: list[Served]) -> None:
    """A prefetched body past maxBodyBytes gets the server's 413, without running the application."""
    calls: list[int] = []

    def app(environ: Environ, start_response: Any) -> Iterable[bytes]:
        calls.append(1)
        start_response("200 OK", TEXT)
        return [b""]

    s = start(served, app, maxBodyBytes=100)
    status, _, _ = s.get("/", method="POST", body=b"x" * 1000)
    assert status == 413 and calls == []


def test_writeCallableAndIterableCombine(served: list[Served]) -> None:
    """Bytes given to write() come first, then the iterable's blocks, streamed (chunked)."""

    def app(environ: Environ, start_response: Any) -> Iterable[bytes]:
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"one ")
        write(b"two ")
        return iter([b"three ", b"", b"four"])

    s = start(served, app)
    status, headers, body = s.get("/")
    assert status == 200 and body == b"one two three four"
    assert headers.get("transfer-encoding") == "chunked"


class Closing:
    """An iterable recording that close() was called, optionally failing after ``failAfter`` blocks."""

    def __init__(self, blocks: list[bytes], failAfter: int | None = None) -> None:
        self.blocks = blocks
        self.failAfter = failAfter
        self.closed = threading.Event()

    def __iter__(self) -> Iterator[bytes]:
        for i, block in enumerate(self.blocks):
            if self.failAfter is not None and i == self.failAfter:
                raise RuntimeError("the application failed mid-body")
            yield block

    def close(self) -> None:
        self.closed.set()


def test_closeIsCalledAfterANormalResponse(served: list[Served]) -> None:
    """The iterable's close() runs once the body is taken."""
    body = Closing([b"a", b"b"])

    def app(environ: Environ, start_response: Any) -> Any:
        start_response("200 OK", TEXT)
        return body

    s = start(served, app)
    assert s.get("/")[2] == b"ab"
    assert body.closed.wait(10)


def test_errorBeforeAnyBodyIsA500AndCloses(served: list[Served], caplog: pytest.LogCaptureFixture) -> None:
    """An iterable failing before its first block gives a logged 500, and close() still runs."""
    body = Closing([b"a"], failAfter=0)

    def app(environ: Environ, start_response: Any) -> Any:
        start_response("200 OK", TEXT)
        return body

    s = start(served, app)
    with caplog.at_level(logging.ERROR, logger="deferthreads.wsgi"):
        status, _, _ = s.get("/")
    assert status == 500
    assert body.closed.wait(10)
    assert any("WSGI application failed" in r.getMessage() and r.exc_info for r in caplog.records)


def test_errorMidBodyDropsTheConnectionAndCloses(served: list[Served]) -> None:
    """An iterable failing after its first block was sent: the client sees the connection cut."""
    body = Closing([b"a" * 10, b"b"], failAfter=1)

    def app(environ: Environ, start_response: Any) -> Any:
        start_response("200 OK", TEXT)
        return body

    s = start(served, app)
    raw = s.raw(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 200") and not raw.endswith(b"0\r\n\r\n")
    assert body.closed.wait(10)


def test_applicationRaisingIsA500(served: list[Served]) -> None:
    """An application that raises before start_response gets a 500; the server goes on serving."""

    def app(environ: Environ, start_response: Any) -> Any:
        if environ["PATH_INFO"] == "/boom":
            raise ValueError("boom")
        start_response("200 OK", TEXT)
        return [b"fine"]

    s = start(served, app)
    assert s.get("/boom")[0] == 500
    assert s.get("/")[2] == b"fine"


def test_excInfoBeforeHeadersReplacesTheResponse(served: list[Served]) -> None:
    """start_response(..., exc_info) before anything was sent replaces status and headers."""

    def app(environ: Environ, start_response: Any) -> Any:
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            raise KeyError("missing")
        except KeyError:
            start_response("503 Busy", [("Content-Type", "text/plain"), ("Retry-After", "1")], sys.exc_info())
        return [b"try later"]

    s = start(served, app)
    status, headers, body = s.get("/")
    assert (status, headers["retry-after"], body) == (503, "1", b"try later")


def test_excInfoAfterHeadersReraises(served: list[Served]) -> None:
    """start_response with exc_info once headers went out re-raises the exception; the connection drops."""
    seen: list[BaseException] = []

    def app(environ: Environ, start_response: Any) -> Any:
        write = start_response("200 OK", TEXT)
        write(b"partial")
        try:
            raise KeyError("late")
        except KeyError:
            try:
                start_response("500 Oops", TEXT, sys.exc_info())
            except KeyError as e:
                seen.append(e)
                raise
        return [b""]

    s = start(served, app, validate=False)  # the validator itself rejects exc_info after headers
    raw = s.raw(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 200") and b"partial" in raw and not raw.endswith(b"0\r\n\r\n")
    assert len(seen) == 1


def test_secondStartResponseWithoutExcInfoIsAnError(served: list[Served]) -> None:
    """Calling start_response twice without exc_info raises in the application (a 500)."""
    errors: list[BaseException] = []

    def app(environ: Environ, start_response: Any) -> Any:
        start_response("200 OK", TEXT)
        try:
            start_response("201 Created", TEXT)
        except RuntimeError as e:
            errors.append(e)
            raise
        return [b""]

    s = start(served, app, validate=False)
    assert s.get("/")[0] == 500
    assert "second time" in str(errors[0])


def test_badHeadersFromTheApplicationAreA500(served: list[Served]) -> None:
    """A header value with CR LF (response splitting) never reaches the wire: the application gets a 500."""

    def app(environ: Environ, start_response: Any) -> Any:
        start_response("200 OK", [("X-A", "1\r\nSet-Cookie: evil=1")])
        return [b"x"]

    s = start(served, app, validate=False)
    status, headers, _ = s.get("/")
    assert status == 500 and "set-cookie" not in headers


def test_wsgiErrorsGoToLogging(served: list[Served], caplog: pytest.LogCaptureFixture) -> None:
    """Lines written to wsgi.errors are logged by deferthreads.wsgi, a partial line at the end."""

    def app(environ: Environ, start_response: Any) -> Any:
        environ["wsgi.errors"].write("something odd\nhalf")
        start_response("200 OK", TEXT)
        return [b"ok"]

    s = start(served, app)
    with caplog.at_level(logging.ERROR, logger="deferthreads.wsgi"):
        assert s.get("/")[2] == b"ok"
    messages = [r.getMessage() for r in caplog.records]
    assert "wsgi.errors: something odd" in messages and "wsgi.errors: half" in messages


def test_fileWrapperServesAFile(served: list[Served], tmp_path: Path) -> None:
    """wsgi.file_wrapper streams a file whole and closes it."""
    path = tmp_path / "data.bin"
    payload = bytes(range(256)) * 1000
    path.write_bytes(payload)
    opened: list[Any] = []

    def app(environ: Environ, start_response: Any) -> Any:
        f = path.open("rb")
        opened.append(f)
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(len(payload)))])
        return environ["wsgi.file_wrapper"](f, 8192)

    s = start(served, app)
    status, headers, body = s.get("/")
    assert status == 200 and body == payload and headers["content-length"] == str(len(payload))
    assert opened[0].closed


def test_headKeepsTheApplicationsContentLength(served: list[Served]) -> None:
    """HEAD answers with the length the application declared and no body; the connection stays usable."""

    def app(environ: Environ, start_response: Any) -> Any:
        start_response("200 OK", [*TEXT, ("Content-Length", "11")])
        return [] if environ["REQUEST_METHOD"] == "HEAD" else [b"hello world"]

    s = start(served, app)
    raw = s.raw(b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    head, _, rest = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"content-length: 11" in head.lower()
    assert rest.startswith(b"HTTP/1.1 200") and rest.endswith(b"hello world")


def test_headWithABodyKeepsTheDeclaredLengthAndSendsNoBody(served: list[Served]) -> None:
    """HEAD to an application that returns its GET body anyway: the declared length, no body."""

    def app(environ: Environ, start_response: Any) -> Any:
        start_response("200 OK", [*TEXT, ("Content-Length", "11")])
        return [b"hello world"]

    s = start(served, app)
    raw = s.raw(b"HEAD / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    head, _, rest = raw.partition(b"\r\n\r\n")
    assert b"content-length: 11" in head.lower() and rest == b""


def test_applicationsReasonPhraseReachesTheClient(served: list[Served]) -> None:
    """start_response's reason phrase is the status line's, for a whole and a streamed response."""

    def app(environ: Environ, start_response: Any) -> Any:
        if environ["PATH_INFO"] == "/streamed":
            write = start_response("299 Quite Fine", TEXT)
            write(b"streamed")
            return []
        start_response("418 Short and stout", [*TEXT, ("Content-Length", "3")])
        return [b"tea"]

    s = start(served, app)
    raw = s.raw(
        b"GET /tea HTTP/1.1\r\nHost: h\r\n\r\nGET /streamed HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
    )
    assert raw.startswith(b"HTTP/1.1 418 Short and stout\r\n")
    assert b"teaHTTP/1.1 299 Quite Fine\r\n" in raw and b"streamed" in raw


def test_contentLengthBeyondTheBodyIsClipped(served: list[Served]) -> None:
    """An iterable longer than its Content-Length sends only the declared bytes."""

    def app(environ: Environ, start_response: Any) -> Any:
        start_response("200 OK", [*TEXT, ("Content-Length", "3")])
        return iter([b"ab", b"cdef"])

    s = start(served, app, validate=False)
    status, _, body = s.get("/")
    assert (status, body) == (200, b"abc")


def test_pipelinedRequestsAreAnsweredInOrder(served: list[Served]) -> None:
    """Three pipelined requests on one connection get their answers in order."""

    def app(environ: Environ, start_response: Any) -> Any:
        start_response("200 OK", [*TEXT, ("Content-Length", "2")])
        return [environ["PATH_INFO"].encode()]

    s = start(served, app)
    raw = s.raw(b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n"
                b"GET /3 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    assert [part[-2:] for part in raw.split(b"HTTP/1.1 200")[1:]] == [b"/1", b"/2", b"/3"]


def _workerBlockedInWrite(deadline: float) -> bool:
    while time.monotonic() < deadline:
        for frame in sys._current_frames().values():
            f: Any = frame
            while f is not None:
                if f.f_code.co_name == "_waitForClient":
                    return True
                f = f.f_back
        threading.Event().wait(0.01)  # bounded polling for a state, not a pause
    return False


def test_slowClientBlocksTheWorkerInsteadOfBuffering(served: list[Served]) -> None:
    """A client that does not read: the worker blocks in its write with a bounded amount produced; once
    the client reads, the rest follows and the body arrives whole."""
    block = b"z" * 65536
    total = 1024  # 64 MiB if nothing held the worker back
    produced = [0]

    def app(environ: Environ, start_response: Any) -> Any:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])

        def body() -> Iterator[bytes]:
            for _ in range(total):
                produced[0] += 1
                yield block

        return body()

    s = start(served, app, validate=False)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    sock.settimeout(30)
    sock.connect(("127.0.0.1", s.port))
    try:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        assert _workerBlockedInWrite(time.monotonic() + 20), "the worker never blocked"
        assert produced[0] * len(block) < 16 * 1024 * 1024, f"{produced[0]} blocks produced"
        received = 0
        while True:
            chunk = sock.recv(1 << 20)
            if not chunk:
                break
            received += len(chunk)
        assert produced[0] == total
        assert received > total * len(block)
    finally:
        sock.close()


def test_clientGoingAwayStopsTheApplicationAndCloses(served: list[Served]) -> None:
    """A client that disconnects mid-stream: write() raises ClientGone in the application, close() runs."""
    raised: list[BaseException] = []
    closed = threading.Event()
    started = threading.Event()

    class Body:
        def __init__(self, write: Any) -> None:
            self.write = write

        def __iter__(self) -> Iterator[bytes]:
            started.set()
            try:
                while True:
                    self.write(b"y" * 65536)
            except ClientGone as e:
                raised.append(e)
            return iter(())

        def close(self) -> None:
            closed.set()

    def app(environ: Environ, start_response: Any) -> Any:
        return Body(start_response("200 OK", TEXT))

    s = start(served, app, validate=False)
    sock = socket.create_connection(("127.0.0.1", s.port), timeout=10)
    sock.sendall(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert started.wait(10)
    sock.recv(1000)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()  # a reset
    assert closed.wait(20)
    assert raised and isinstance(raised[0], ClientGone)


def test_gracefulStopFinishesARunningApplication(served: list[Served]) -> None:
    """Stopping the reactor while an application runs: its response is delivered before the stop ends."""
    entered = threading.Event()
    release = threading.Event()

    def app(environ: Environ, start_response: Any) -> Any:
        entered.set()
        release.wait(20)
        start_response("200 OK", TEXT)
        return [b"finished"]

    s = start(served, app)
    result: list[Any] = []
    client = threading.Thread(target=lambda: result.append(s.get("/")))
    client.start()
    assert entered.wait(10)
    s.reactor.callFromThread(s.reactor.stop)
    # The stop waits for the application, whose request is still open.
    release.set()
    client.join(20)
    assert result and result[0][0] == 200 and result[0][2] == b"finished"
    s.thread.join(30)
    assert not s.thread.is_alive()


def test_containerRefusesBadArguments() -> None:
    """Wrong arguments name themselves at construction."""
    from tests.netsupport import closeReactor, newReactor

    r = newReactor("epoll")
    try:
        pool = ThreadPool(1, 1)
        with pytest.raises(TypeError, match="application"):
            WSGIContainer(42, reactor=r, threadpool=pool)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="scriptName"):
            WSGIContainer(environApp, reactor=r, threadpool=pool, scriptName="app/")
        with pytest.raises(ValueError, match="maxPendingOutput"):
            WSGIContainer(environApp, reactor=r, threadpool=pool, maxPendingOutput=0)
        with pytest.raises(TypeError, match="threadpool"):
            WSGIContainer(environApp, reactor=r, threadpool=object())  # type: ignore[arg-type]
    finally:
        closeReactor(r)
