"""reactor.web end to end: a real reactor, loopback sockets, real clients (http.client, ssl, raw sockets).

Each client runs in a thread; the test thread turns the reactor until the client is done (bounded).
"""

from __future__ import annotations

import http.client
import random
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from reactor import Deferred
from reactor.ssl import CertificateOptions
from reactor.web import HTTPFactory, Request, Response, listenHTTP
from tests.netsupport import closeReactor, newReactor, pkiForTests, runUntil


class Server:
    """A reactor.web server on a fresh reactor and a free loopback port."""

    def __init__(self, handler: Any, contextFactory: Any = None, **limits: Any) -> None:
        self.reactor = newReactor()
        self.port = listenHTTP(
            0, handler, interface="127.0.0.1", reactor=self.reactor, contextFactory=contextFactory, **limits
        )
        self.factory: HTTPFactory = self.port.factory
        self.portNumber: int = self.port.getHost().port

    def inThread(self, f: Callable[[], Any], timeout: float = 20.0) -> Any:
        """Run the blocking client ``f`` in a thread while the reactor turns; its result or exception."""
        box: dict[str, Any] = {}

        def run() -> None:
            try:
                box["result"] = f()
            except BaseException as e:
                box["error"] = e

        t = threading.Thread(target=run, daemon=True)
        t.start()
        runUntil(self.reactor, lambda: not t.is_alive(), timeout)
        if "error" in box:
            raise box["error"]
        return box["result"]

    def turnUntil(self, condition: Callable[[], bool], timeout: float = 10.0) -> None:
        runUntil(self.reactor, condition, timeout)

    def raw(self, timeout: float = 10.0) -> socket.socket:
        s = socket.create_connection(("127.0.0.1", self.portNumber), timeout=timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s

    def close(self) -> None:
        closeReactor(self.reactor)


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    made: list[Server] = []
    yield made
    for s in made:
        s.close()


def readAll(s: socket.socket) -> bytes:
    chunks = []
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def echo(request: Request) -> Deferred[Response]:
    def answer(body: bytes) -> Response:
        text = f"{request.method} {request.path} {len(body)} secure={request.isSecure}".encode()
        return Response(200, [("content-type", "text/plain")], text)

    return request.body().addCallback(answer)


def test_keepAliveGetAndPostOverOneRealConnection(servers: list[Server]) -> None:
    """http.client: GET, POST, a chunked upload, all on one keep-alive connection."""
    server = Server(echo)
    servers.append(server)

    def client() -> list[bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", server.portNumber, timeout=10)
        out = []
        conn.request("GET", "/a")
        out.append(conn.getresponse().read())
        sock = conn.sock
        conn.request("POST", "/b", body=b"x" * 5000)
        out.append(conn.getresponse().read())
        conn.request("POST", "/c", body=iter([b"ab", b"cde"]), encode_chunked=True)
        out.append(conn.getresponse().read())
        assert conn.sock is sock
        conn.close()
        return out

    assert server.inThread(client) == [
        b"GET /a 0 secure=False",
        b"POST /b 5000 secure=False",
        b"POST /c 5 secure=False",
    ]
    assert server.factory.requestsServed == 3


def test_tlsThroughListenSSL(servers: list[Server]) -> None:
    """contextFactory makes the port HTTPS; the request says isSecure."""
    pki = pkiForTests()
    options = CertificateOptions(privateKey=pki.server.keyPEM, certificate=pki.server.certPEM)
    server = Server(echo, contextFactory=options)
    servers.append(server)

    def client() -> tuple[bytes, bytes]:
        context = ssl.create_default_context(cadata=pki.caPEM.decode())
        conn = http.client.HTTPSConnection("localhost", server.portNumber, timeout=10, context=context)
        conn.request("GET", "/tls")
        first = conn.getresponse().read()
        conn.request("POST", "/tls2", body=b"123")
        second = conn.getresponse().read()
        conn.close()
        return first, second

    assert server.inThread(client) == (b"GET /tls 0 secure=True", b"POST /tls2 3 secure=True")


def test_pipelinedBytesSentInRandomPiecesGetOrderedAnswers(servers: list[Server]) -> None:
    """Pipelined requests written in random small pieces over a real socket get their answers in order."""
    later: list[Deferred[Response]] = []

    def handler(request: Request) -> Any:
        if request.path == "/slow":
            d: Deferred[Response] = Deferred()
            server.reactor.callLater(0.01, d.callback, Response(200, body=b"slow"))
            later.append(d)
            return d
        return echo(request)

    server = Server(handler)
    servers.append(server)
    raw = (
        b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"
        + b"POST /two HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
        + b"POST /three HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
        + b"GET /four HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    rng = random.Random(1515)

    def client() -> bytes:
        with server.raw() as s:
            i = 0
            while i < len(raw):
                step = rng.randint(1, 17)
                s.sendall(raw[i : i + step])
                i += step
            return readAll(s)

    answer = server.inThread(client)
    bodies = [b"slow", b"POST /two 5", b"POST /three 3", b"GET /four 0"]
    positions = [answer.find(b) for b in bodies]
    assert -1 not in positions and positions == sorted(positions), answer
    assert answer.count(b"HTTP/1.1 200 OK") == 4


def test_smugglingAttemptIsRefusedOverARealSocket(servers: list[Server]) -> None:
    """CL + TE over a real socket: one 400, the connection ends, the hidden request is not served."""
    served: list[str] = []

    def handler(request: Request) -> Response:
        served.append(request.path)
        return Response()

    server = Server(handler)
    servers.append(server)
    hidden = b"GET /admin HTTP/1.1\r\nHost: x\r\n\r\n"
    attack = (
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n%s"
        % (5 + len(hidden), hidden)
    )

    def client() -> bytes:
        with server.raw() as s:
            s.sendall(attack)
            return readAll(s)

    answer = server.inThread(client)
    assert answer.startswith(b"HTTP/1.1 400 ") and answer.count(b"HTTP/1.1") == 1 and served == []


@pytest.mark.parametrize(
    "requests",
    [b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n", b"GET /a HTTP/1.0\r\n\r\n"],
    ids=["http11-pipelined", "http10"],
)
def test_clientThatHalfClosesAfterItsRequestsGetsTheAnswers(servers: list[Server], requests: bytes) -> None:
    """shutdown(SHUT_WR) after the requests: answered in order once the handler is done, then closed."""
    pending: list[tuple[Request, Deferred[Response]]] = []

    def handler(request: Request) -> Deferred[Response]:
        d: Deferred[Response] = Deferred()
        pending.append((request, d))
        return d

    server = Server(handler)
    servers.append(server)
    s = server.raw()
    try:
        s.sendall(requests)
        s.shutdown(socket.SHUT_WR)
        # Answer only once the server has read the end of input (or, without half-close, lost the client).
        def endSeen() -> bool:
            if not pending:
                return False
            return server.factory.connections == 0 or getattr(pending[0][0]._channel, "_inputEnded", False)

        server.turnUntil(endSeen)
        for answered in range(requests.count(b" HTTP/")):
            server.turnUntil(lambda n=answered: len(pending) > n)
            request, d = pending[answered]
            d.callback(Response(200, body=request.path.encode()))
        answer = server.inThread(lambda: readAll(s))
    finally:
        s.close()
    expected = [b"/a", b"/b"][: requests.count(b" HTTP/")]
    assert answer.count(b"HTTP/1.1 200 OK") == len(expected)
    assert [part.rpartition(b"\r\n\r\n")[2] for part in answer.split(b"HTTP/1.1 ")[1:]] == expected
    server.turnUntil(lambda: server.factory.connections == 0)


def test_expectContinueWithARealClient(servers: list[Server]) -> None:
    """The client waits for 100 Continue before sending the body; then gets the answer."""
    server = Server(echo)
    servers.append(server)

    def client() -> tuple[bytes, bytes]:
        with server.raw() as s:
            s.sendall(b"PUT /up HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
            interim = s.recv(100)
            s.sendall(b"data")
            s.shutdown(socket.SHUT_WR)
            return interim, readAll(s)

    interim, final = server.inThread(client)
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert final.startswith(b"HTTP/1.1 200 ") and final.endswith(b"PUT /up 4 secure=False")


def test_slowlorisClientsAreDroppedAndDescriptorsFreed(servers: list[Server]) -> None:
    """Clients that never finish their head get 408 and are closed after headerTimeout; none stays open."""
    server = Server(echo, headerTimeout=0.3, lingerTimeout=0.2)
    servers.append(server)

    def client() -> list[bytes]:
        sockets = [server.raw() for _ in range(20)]
        for s in sockets:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        answers = [readAll(s) for s in sockets]  # bounded: the server closes them
        for s in sockets:
            s.close()
        return answers

    answers = server.inThread(client)
    assert all(a.startswith(b"HTTP/1.1 408 ") for a in answers)
    server.turnUntil(lambda: server.factory.connections == 0)


def test_slowReaderKeepsServerMemoryBounded(servers: list[Server]) -> None:
    """A streamed 16 MiB body to a client that does not read: the writer waits, the buffer stays small."""
    chunk = b"z" * 65536
    total = 256
    state = {"written": 0, "maxBuffered": 0}
    clientReading = threading.Event()

    def handler(request: Request) -> None:
        writer = request.respond(200, [("content-length", str(total * len(chunk)))])
        transport = request._channel.transport

        def more(_: object = None) -> None:
            while state["written"] < total:
                state["written"] += 1
                state["maxBuffered"] = max(state["maxBuffered"], transport.bufferedBytes)
                d = writer.write(chunk)
                if not d.called:
                    d.addCallback(more)
                    return
            writer.finish()

        more()

    server = Server(handler)
    servers.append(server)
    s = server.raw(timeout=20)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    s.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
    server.turnUntil(lambda: state["written"] > 0)
    for _ in range(50):  # turn the loop a while: with nobody reading, the writes must stop early
        server.reactor.iterate(0.01)
    assert state["written"] < total // 2
    assert state["maxBuffered"] <= 2 * 65536 + len(chunk)

    def client() -> int:
        clientReading.set()
        with s:
            data = readUntilLength(s, total * len(chunk))
        return data

    assert server.inThread(client, timeout=60) == total * len(chunk)
    assert state["written"] == total


def readUntilLength(s: socket.socket, bodyLength: int) -> int:
    buffered = b""
    while b"\r\n\r\n" not in buffered:
        buffered += s.recv(65536)
    _, _, rest = buffered.partition(b"\r\n\r\n")
    got = len(rest)
    while got < bodyLength:
        chunk = s.recv(1 << 20)
        if not chunk:
            break
        got += len(chunk)
    return got


def test_gracefulStopWithRequestsInFlight(servers: list[Server]) -> None:
    """stopGracefully over real sockets: the idle client sees EOF, the busy one its full answer, then EOF."""
    release: list[Deferred[Response]] = []

    def handler(request: Request) -> Any:
        if request.path == "/slow":
            d: Deferred[Response] = Deferred()
            release.append(d)
            return d
        return Response(200, body=b"quick")

    server = Server(handler)
    servers.append(server)
    idle = server.raw()
    busy = server.raw()
    idle.sendall(b"GET /quick HTTP/1.1\r\nHost: x\r\n\r\n")
    busy.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
    server.turnUntil(lambda: bool(release) and server.factory.requestsServed == 1)
    stopped: list[Any] = []
    server.port.stopListening()
    server.factory.stopGracefully(10).addCallback(stopped.append)
    idleAnswer = server.inThread(lambda: readAll(idle))
    assert idleAnswer.startswith(b"HTTP/1.1 200 ") and idleAnswer.endswith(b"quick")  # then EOF
    assert stopped == []
    release[0].callback(Response(200, body=b"finished"))
    busyAnswer = server.inThread(lambda: readAll(busy))
    assert b"connection: close\r\n" in busyAnswer and busyAnswer.endswith(b"finished")
    server.turnUntil(lambda: stopped == [None])
    idle.close()
    busy.close()


def test_gracefulStopDeadlineDropsStragglers(servers: list[Server]) -> None:
    """A request still running at the deadline: its connection is dropped and the stop fires."""
    server = Server(lambda r: Deferred())
    servers.append(server)
    s = server.raw()
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    server.turnUntil(lambda: server.factory.inFlight == 1)
    stopped: list[Any] = []
    server.factory.stopGracefully(0.2).addCallback(stopped.append)
    server.turnUntil(lambda: stopped == [None] and server.factory.connections == 0)
    with pytest.raises(ConnectionResetError):
        server.inThread(lambda: readAll(s) or s.recv(1))
    s.close()


def test_oversizedChunkedUploadGets413(servers: list[Server]) -> None:
    """A chunked upload past maxBodyBytes gets 413 from a handler that reads it whole."""
    server = Server(echo, maxBodyBytes=1000)
    servers.append(server)

    def client() -> bytes:
        with server.raw() as s:
            s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
            for _ in range(5):
                s.sendall(b"200\r\n" + b"a" * 512 + b"\r\n")
            return readAll(s)

    assert server.inThread(client).startswith(b"HTTP/1.1 413 ")


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"GET /" + b"a" * 300 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"p" * 600 + b"\r\n\r\n", 431),
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n" + b"x" * 5000, 413),
        (b"GET / HTTP/9.9\r\nHost: x\r\n\r\n", 505),
        (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40, 400),  # TLS to a plain port
    ],
)
def test_limitsOverARealSocket(servers: list[Server], raw: bytes, status: int) -> None:
    """Each limit answers its status over a real socket, and the connection ends after it."""
    server = Server(echo, maxRequestLine=256, maxHeaderBytes=512, maxBodyBytes=1000)
    servers.append(server)

    def client() -> bytes:
        with server.raw() as s:
            s.sendall(raw)
            return readAll(s)

    answer = server.inThread(client)
    assert answer.startswith(b"HTTP/1.1 %d " % status) and answer.count(b"HTTP/1.1 ") == 1


def test_idleAndStalledBodyTimeoutsOverARealSocket(servers: list[Server]) -> None:
    """An idle keep-alive connection is closed; a body that stalls gets 408; both within bounded time."""
    server = Server(echo, idleTimeout=0.3, bodyTimeout=0.3, lingerTimeout=0.2)
    servers.append(server)

    def client() -> tuple[bytes, bytes]:
        with server.raw() as idle, server.raw() as stalled:
            idle.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            stalled.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab")
            return readAll(idle), readAll(stalled)

    idleAnswer, stalledAnswer = server.inThread(client)
    assert idleAnswer.startswith(b"HTTP/1.1 200 ") and idleAnswer.count(b"HTTP/1.1") == 1
    assert stalledAnswer.startswith(b"HTTP/1.1 408 ")
    server.turnUntil(lambda: server.factory.connections == 0)


def test_servesOverAUnixSocket(servers: list[Server], tmp_path: Any) -> None:
    """The factory works on listenUNIX too; the client address is the Unix one."""
    reactor = newReactor()
    path = str(tmp_path / "web.sock")
    seen: list[Any] = []

    def handler(request: Request) -> Response:
        seen.append(request.client)
        return Response(200, body=b"unix")

    reactor.listenUNIX(path, HTTPFactory(handler, reactor=reactor))
    box: dict[str, bytes] = {}

    def client() -> None:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(10)
            s.connect(path)
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            box["answer"] = readAll(s)

    t = threading.Thread(target=client, daemon=True)
    t.start()
    try:
        runUntil(reactor, lambda: not t.is_alive(), 10)
    finally:
        closeReactor(reactor)
    assert box["answer"].endswith(b"unix") and type(seen[0]).__name__ == "UNIXAddress"
