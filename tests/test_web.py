"""reactor.web's HTTP/1.1 server, sans IO: a channel driven with bytes on a fake transport, time from a Clock.

The end-to-end cases over real sockets (TLS, slow clients, shutdown with requests in flight) are in
tests/test_web_sockets.py.
"""

from __future__ import annotations

import logging
from typing import Any

import httptools
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from zope.interface import implementer
from zope.interface.verify import verifyObject

from reactor import Deferred, Failure, succeed
from reactor.interfaces import IConsumer, IHalfCloseableProtocol, IPushProducer, ITCPTransport
from reactor.protocol import ConnectionDone, ConnectionLost, IPv4Address
from reactor.task import Clock
from reactor.web import (
    Headers,
    HTTPChannel,
    HTTPError,
    HTTPFactory,
    Request,
    Response,
    ResponseWriter,
)

# -- the harness --------------------------------------------------------------------------------


@implementer(ITCPTransport)
class Transport:
    """An in-memory stream transport with flow control (pause/resume, a registered producer)."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.disconnecting = False
        self.aborted = False
        self.writeClosed = False
        self.readingPaused = False
        self.producer: Any = None
        self.streaming = False
        self.TLS = False

    def value(self) -> bytes:
        return b"".join(self.written)

    def clear(self) -> None:
        self.written.clear()

    def write(self, data: bytes) -> None:
        assert isinstance(data, bytes)
        assert not self.writeClosed and not self.aborted, "write after close"
        self.written.append(data)

    def writeSequence(self, data: Any) -> None:
        for chunk in data:
            self.write(chunk)

    def loseConnection(self) -> None:
        self.disconnecting = True

    def abortConnection(self) -> None:
        self.aborted = True
        self.disconnecting = True

    def loseWriteConnection(self) -> None:
        self.writeClosed = True

    def pauseProducing(self) -> None:
        self.readingPaused = True

    def resumeProducing(self) -> None:
        self.readingPaused = False

    def stopProducing(self) -> None:
        self.loseConnection()

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        self.producer = producer
        self.streaming = streaming

    def unregisterProducer(self) -> None:
        self.producer = None

    def getPeer(self) -> IPv4Address:
        return IPv4Address("TCP", "127.0.0.1", 54321)

    def getHost(self) -> IPv4Address:
        return IPv4Address("TCP", "127.0.0.1", 8080)

    def getTcpNoDelay(self) -> bool:
        return True

    def setTcpNoDelay(self, enabled: bool) -> None:
        pass

    def getTcpKeepAlive(self) -> bool:
        return False

    def setTcpKeepAlive(self, enabled: bool) -> None:
        pass


def textHandler(request: Request) -> Response:
    return Response(200, [("content-type", "text/plain")], f"{request.method} {request.target}".encode())


class Conn:
    """A factory, one channel on a fake transport, and the Clock that drives its timeouts."""

    def __init__(self, handler: Any = textHandler, **limits: Any) -> None:
        self.clock = Clock()
        self.factory = HTTPFactory(handler, reactor=self.clock, **limits)
        channel = self.factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 54321))
        assert channel is not None
        self.channel: HTTPChannel = channel
        self.transport = Transport()
        self.channel.makeConnection(self.transport)

    def send(self, data: bytes) -> None:
        self.channel.dataReceived(data)

    def lose(self) -> None:
        self.channel.connectionLost(Failure(ConnectionDone()))

    def responses(self) -> list[Parsed]:
        return parseResponses(self.transport.value())


class Parsed:
    """One response as a client parsed it."""

    def __init__(self) -> None:
        self.status = 0
        self.headers: list[tuple[str, str]] = []
        self.body = b""
        self.complete = False

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k == name.lower()), None)


def parseResponses(raw: bytes, head: bool = False) -> list[Parsed]:
    """Parse concatenated responses with llhttp's response parser (chunked and lengths understood)."""
    out: list[Parsed] = []

    class Sink:
        def on_message_begin(self) -> None:
            out.append(Parsed())

        def on_header(self, name: bytes, value: bytes) -> None:
            out[-1].headers.append((name.decode().lower(), value.decode()))

        def on_headers_complete(self) -> None:
            out[-1].status = parser.get_status_code()

        def on_body(self, body: bytes) -> None:
            out[-1].body += body

        def on_message_complete(self) -> None:
            out[-1].complete = True

    parser = httptools.HttpResponseParser(Sink())
    parser.feed_data(raw)
    return out


def statuses(raw: bytes) -> list[int]:
    return [p.status for p in parseResponses(raw)]


GET = b"GET /%s HTTP/1.1\r\nHost: x\r\n\r\n"


# -- interfaces ---------------------------------------------------------------------------------


def test_transportFakeAndWriterProvideTheirInterfaces() -> None:
    """The fake transport is an ITCPTransport; the channel a push producer; the writer a consumer."""
    writers: list[ResponseWriter] = []

    def handler(request: Request) -> None:
        writers.append(request.respond(200))

    c = Conn(handler)
    assert verifyObject(ITCPTransport, c.transport)
    assert verifyObject(IPushProducer, c.channel)
    c.send(GET % b"a")
    assert verifyObject(IConsumer, writers[0])
    assert c.transport.producer is c.channel and c.transport.streaming


# -- keep-alive, pipelining, framing ------------------------------------------------------------


def test_pipelinedRequestsAreAnsweredInOrderOnOneConnection() -> None:
    """Three pipelined requests, the first answered later, get their answers in request order."""
    later: Deferred[Response] = Deferred()

    def handler(request: Request) -> Any:
        if request.path == "/slow":
            return later
        return textHandler(request)

    c = Conn(handler)
    c.send(GET % b"slow" + GET % b"b" + b"POST /c HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
    assert c.transport.value() == b""
    later.callback(Response(200, body=b"slow"))
    got = c.responses()
    assert [(p.status, p.body) for p in got] == [(200, b"slow"), (200, b"GET /b"), (200, b"POST /c")]
    assert not c.transport.disconnecting
    assert c.factory.inFlight == 0 and c.factory.requestsServed == 3


@settings(max_examples=80, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=12))
def test_pipelinedRequestsSplitAtAnyByteBoundaryGetTheSameAnswers(cuts: list[int]) -> None:
    """However pipelined requests (chunked and sized bodies) are cut into pieces, the answers are the same."""

    def handler(request: Request) -> Any:
        return request.body().addCallback(
            lambda body: Response(200, body=request.path.encode() + b":" + body)
        )

    raw = (
        GET % b"one"
        + b"POST /two HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
        + b"POST /three HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
        + GET % b"four"
    )
    c = Conn(handler)
    last = 0
    for cut in sorted({min(x, len(raw)) for x in cuts}):
        c.send(raw[last:cut])
        last = cut
    c.send(raw[last:])
    assert [p.body for p in c.responses()] == [b"/one:", b"/two:hello", b"/three:abcde", b"/four:"]
    assert not c.transport.disconnecting


def test_responseCarriesDateServerAndLength() -> None:
    """The server adds Date, Server and Content-Length; an application's Server wins."""
    c = Conn()
    c.send(GET % b"")
    [p] = c.responses()
    assert p.header("server") == "deferthreads" and str(p.header("date")).endswith(" GMT")
    assert p.header("content-length") == "5"
    c2 = Conn(lambda r: Response(200, [("Server", "mine")], b""), serverName="other")
    c2.send(GET % b"")
    assert c2.transport.value().count(b"erver:") == 1 and c2.responses()[0].header("server") == "mine"


def test_headAnswersTheGetHeadWithoutBody() -> None:
    """HEAD gets the Content-Length a GET would, no body, and the connection stays usable."""
    c = Conn(lambda r: Response(200, [("content-type", "text/plain")], b"twelve bytes"))
    c.send(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
    raw = c.transport.value()
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n") and b"content-length: 12\r\n" in raw
    assert raw.endswith(b"\r\n\r\n")
    c.transport.clear()
    c.send(GET % b"")
    assert c.responses()[0].body == b"twelve bytes"
    assert not c.transport.disconnecting


def test_headKeepsTheContentLengthTheHandlerGave() -> None:
    """A whole Response to HEAD keeps the handler's Content-Length (empty body or not), sends no body."""

    def handler(request: Request) -> Response:
        if request.path == "/declared":
            return Response(200, [("Content-Length", "1234")])
        if request.path == "/both":
            return Response(200, [("content-length", " 20 ")], b"ignored body")
        return Response(200, [("Content-Length", "12x")])

    c = Conn(handler)
    c.send(b"HEAD /declared HTTP/1.1\r\nHost: x\r\n\r\nHEAD /both HTTP/1.1\r\nHost: x\r\n\r\n")
    heads = c.transport.value().split(b"\r\n\r\n")
    assert heads[-1] == b"" and len(heads) == 3
    assert b"content-length: 1234\r\n" in heads[0] and heads[0].count(b"ength:") == 1
    assert b"content-length: 20\r\n" in heads[1] and b"ignored" not in c.transport.value()
    c.transport.clear()
    c.send(b"HEAD /bad HTTP/1.1\r\nHost: x\r\n\r\n")
    assert c.transport.value().startswith(b"HTTP/1.1 500 ")
    c.transport.clear()
    c.send(GET % b"declared")  # a GET is framed by its body, whatever the header says
    [p] = c.responses()
    assert p.header("content-length") == "0" and p.body == b"" and p.complete
    assert c.transport.value().count(b"ength:") == 1 and not c.transport.disconnecting


def test_reasonPhraseGivenByTheHandlerIsTheStatusLines() -> None:
    """Response(reason=) and respond(reason=) set the status line's phrase; without one it is the standard."""

    def handler(request: Request) -> Response | None:
        if request.path == "/teapot":
            return Response(418, [("content-type", "text/plain")], b"tea", reason="Short and stout")
        if request.path == "/streamed":
            request.respond(299, reason="Caf\xe9 \tfine").finish()
            return None
        if request.path == "/empty":
            return Response(200, reason="")
        return Response(404)

    c = Conn(handler)
    c.send(GET % b"teapot" + GET % b"streamed" + GET % b"empty" + GET % b"other")
    lines = [part.partition(b"\r\n")[0] for part in c.transport.value().split(b"HTTP/1.1 ")[1:]]
    assert lines == [b"418 Short and stout", b"299 Caf\xe9 \tfine", b"200 ", b"404 Not Found"]
    assert [p.status for p in c.responses()] == [418, 299, 200, 404]
    assert repr(Response(418, reason="Short and stout")) == "<Response 418 'Short and stout' 0B>"


@pytest.mark.parametrize(
    ("reason", "error", "match"),
    [
        ("OK\r\nSet-Cookie: evil=1", ValueError, "reason must not contain CR, LF or NUL"),
        ("a\0b", ValueError, "reason must not contain CR, LF or NUL"),
        ("\u20ac uro", ValueError, "reason must be latin-1"),
        (b"OK", TypeError, "reason must be a str"),
    ],
)
def test_badReasonIsRefusedNamingIt(reason: Any, error: type[Exception], match: str) -> None:
    """A reason phrase that could split the status line, is not latin-1 or not a str raises, naming it."""
    with pytest.raises(error, match=match):
        Response(200, reason=reason)
    raised: list[Exception] = []

    def handler(request: Request) -> Response:
        try:
            request.respond(200, reason=reason)
        except Exception as e:
            raised.append(e)
        return Response(204)

    c = Conn(handler)
    c.send(GET % b"")
    assert type(raised[0]) is error and match in str(raised[0])
    assert statuses(c.transport.value()) == [204]


def test_headOfAStreamedResponseSendsNoChunks() -> None:
    """A streamed answer to HEAD writes its head only, whatever the handler writes."""

    def handler(request: Request) -> None:
        w = request.respond(200, [("content-type", "text/plain")])
        w.write(b"ignored")
        w.finish()

    c = Conn(handler)
    c.send(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n" + GET % b"")
    raw = c.transport.value()
    first, _, rest = raw.partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in first and rest.startswith(b"HTTP/1.1 200")
    assert parseResponses(rest)[0].body == b"ignored"


def test_connectionCloseRequestIsAnsweredThenClosed() -> None:
    """``Connection: close`` from the client: the answer says close, then the connection closes."""
    c = Conn()
    c.send(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert c.responses()[0].header("connection") == "close"
    assert c.transport.disconnecting


def test_http10ClosesUnlessKeepAliveIsAsked() -> None:
    """HTTP/1.0 closes after the answer; with Connection: keep-alive it stays open and says so."""
    c = Conn()
    c.send(b"GET / HTTP/1.0\r\n\r\n")
    assert c.responses()[0].status == 200 and c.transport.disconnecting
    c = Conn()
    c.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    assert c.responses()[0].header("connection") == "keep-alive" and not c.transport.disconnecting


def test_halfClosedClientGetsItsPipelinedAnswersInOrderThenTheClose() -> None:
    """End of input after two requests: both are answered in order, the last says close, then it closes."""
    later: Deferred[Response] = Deferred()

    def handler(request: Request) -> Any:
        return later if request.path == "/slow" else textHandler(request)

    c = Conn(handler)
    assert verifyObject(IHalfCloseableProtocol, c.channel)
    c.send(GET % b"slow" + GET % b"b")
    c.channel.readConnectionLost()
    assert c.transport.value() == b"" and not c.transport.disconnecting
    later.callback(Response(200, body=b"slow"))
    got = c.responses()
    assert [(p.status, p.body) for p in got] == [(200, b"slow"), (200, b"GET /b")]
    assert got[0].header("connection") is None and got[1].header("connection") == "close"
    assert c.transport.disconnecting and not c.transport.aborted and not c.transport.writeClosed
    assert c.factory.inFlight == 0 and c.factory.requestsServed == 2


def test_halfClosedHttp10ClientIsAnsweredThenClosed() -> None:
    """An HTTP/1.0 request without keep-alive, then end of input: answered (later), then closed."""
    later: Deferred[Response] = Deferred()
    c = Conn(lambda request: later)
    c.send(b"GET /old HTTP/1.0\r\n\r\n")
    c.channel.readConnectionLost()
    later.callback(Response(200, body=b"old"))
    [p] = c.responses()
    assert p.status == 200 and p.body == b"old" and p.header("connection") == "close"
    assert c.transport.disconnecting


def test_halfCloseWhileIdleClosesAtOnceAndDropsAPartialHead() -> None:
    """End of input with nothing in line closes; a head cut off by it is dropped without an answer."""
    c = Conn()
    c.send(GET % b"a")
    c.transport.clear()
    c.channel.readConnectionLost()
    assert c.transport.disconnecting and c.transport.value() == b""
    c = Conn()
    c.send(b"GET /half HTTP/1.1\r\nHo")
    c.channel.readConnectionLost()
    assert c.transport.disconnecting and c.transport.value() == b"" and c.factory.inFlight == 0


def test_halfCloseMidBodyFailsTheReadWith400() -> None:
    """A body cut off by the end of input fails body() with HTTPError(400), answered, then closed."""
    c = Conn(lambda request: request.body().addCallback(lambda body: Response(200, body=body)))
    c.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
    c.channel.readConnectionLost()
    [p] = c.responses()
    assert p.status == 400 and p.header("connection") == "close" and c.transport.disconnecting


def test_halfCloseDuringALingeringCloseEndsIt() -> None:
    """After a refusal the server lingers for the client's end of input; it arrives: closed at once."""
    c = Conn()
    c.send(b"GET / HTTP/9.9\r\nHost: x\r\n\r\n")
    assert statuses(c.transport.value()) == [505] and c.transport.writeClosed
    assert not c.transport.disconnecting
    c.channel.readConnectionLost()
    assert c.transport.disconnecting


def test_streamedResponseIsChunkedOnHttp11AndCloseDelimitedOn10() -> None:
    """Without a Content-Length a streamed body is chunked (1.1), or ends with the connection (1.0)."""

    def handler(request: Request) -> None:
        w = request.respond(200, [("content-type", "text/plain")])
        w.write(b"hello ")
        w.write(b"world")
        w.finish()

    c = Conn(handler)
    c.send(GET % b"")
    [p] = c.responses()
    assert p.header("transfer-encoding") == "chunked" and p.body == b"hello world" and p.complete
    assert not c.transport.disconnecting
    c = Conn(handler)
    c.send(b"GET / HTTP/1.0\r\n\r\n")
    raw = c.transport.value()
    assert b"transfer-encoding" not in raw and raw.endswith(b"\r\n\r\nhello world")
    assert c.transport.disconnecting


def test_streamedResponseWithContentLengthIsHeldToIt() -> None:
    """A declared Content-Length is sent as is; writing past it raises, finishing short aborts."""
    results: list[Any] = []

    def handler(request: Request) -> None:
        w = request.respond(200, [("Content-Length", "4")])
        w.write(b"ab")
        if request.path == "/over":
            with pytest.raises(ValueError, match="Content-Length"):
                w.write(b"cde")
            w.abort()
            return
        if request.path == "/short":
            w.finish()
            return
        w.write(b"cd")
        w.finish()
        results.append("ok")

    c = Conn(handler)
    c.send(GET % b"exact")
    assert c.responses()[0].body == b"abcd" and results == ["ok"]
    c = Conn(handler)
    c.send(GET % b"over")
    assert c.transport.aborted
    c = Conn(handler)
    c.send(GET % b"short")
    assert c.transport.aborted


def test_chunkedRequestBodyIsDecodedAndStreamed() -> None:
    """A chunked request body reaches read() decoded, piece by piece, then b"" at its end."""
    pieces: list[bytes] = []

    def handler(request: Request) -> Deferred[Response]:
        done: Deferred[Response] = Deferred()

        def got(data: bytes) -> None:
            pieces.append(data)
            if data:
                request.read().addCallback(got)
            else:
                done.callback(Response(200, body=b"|".join(pieces)))

        request.read().addCallback(got)
        return done

    c = Conn(handler)
    c.send(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n")
    assert pieces == [b"abcd"]
    c.send(b"2\r\nef\r\n")
    c.send(b"0\r\n\r\n")
    assert c.responses()[0].body == b"abcd|ef|"


def test_readHonoursItsSizeArgument() -> None:
    """read(n) returns at most n bytes; the rest stays for the next read."""
    got: list[bytes] = []

    def handler(request: Request) -> Response:
        request.read(3).addCallback(got.append)
        request.read(100).addCallback(got.append)
        request.read().addCallback(got.append)
        return Response(204)

    c = Conn(handler)
    c.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\n\r\nabcdefg")
    assert got == [b"abc", b"defg", b""]
    assert c.responses()[0].status == 204


def test_requestAttributes() -> None:
    """Method, target, path, query, version, headers, addresses and reactor are as received."""
    seen: list[Request] = []

    def handler(request: Request) -> Response:
        seen.append(request)
        return Response()

    c = Conn(handler)
    c.send(b"GET /a%20b?x=1&y=2 HTTP/1.1\r\nHost: h\r\nX-Multi: 1\r\nx-multi: 2\r\n\r\n")
    r = seen[0]
    assert (r.method, r.target, r.path, r.query, r.httpVersion) == (
        "GET",
        "/a%20b?x=1&y=2",
        "/a%20b",
        "x=1&y=2",
        "1.1",
    )
    assert r.headers.get("HOST") == "h" and r.headers.getAll("X-MULTI") == ["1", "2"]
    assert "x-multi" in r.headers and "nope" not in r.headers and r.headers.get("nope", "d") == "d"
    assert r.headers.items() == [("host", "h"), ("x-multi", "1"), ("x-multi", "2")]
    assert r.client.port == 54321 and r.host.port == 8080 and not r.isSecure and r.reactor is c.clock
    c.send(b"GET http://h/p?q HTTP/1.1\r\nHost: h\r\n\r\n")
    assert (seen[1].path, seen[1].query) == ("/p", "q")


def test_headersIsACaseInsensitiveMultiMap() -> None:
    """Headers over a raw list: first value, all values, membership, lower-cased items."""
    h = Headers([(b"a", b"1"), (b"b", b"\xe9"), (b"a", b"2")])
    assert h.get("A") == "1" and h.getAll("a") == ["1", "2"] and h.get("b") == "\xe9" and len(h) == 3
    assert "B" in h and 3 not in h


# -- handlers ----------------------------------------------------------------------------------


def test_coroutineAndDeferredHandlersAnswer() -> None:
    """A coroutine handler and a Deferred handler both answer."""

    async def coro(request: Request) -> Response:
        value = await succeed(b"7")
        return Response(200, body=value)

    c = Conn(coro)
    c.send(GET % b"")
    assert c.responses()[0].body == b"7"
    c = Conn(lambda r: succeed(Response(201)))
    c.send(GET % b"")
    assert c.responses()[0].status == 201


def test_handlerExceptionIsALogged500WithoutTraceback(caplog: pytest.LogCaptureFixture) -> None:
    """An exception in a handler: the client gets a bare 500, the log the traceback; keep-alive holds."""

    def broken(request: Request) -> Response:
        raise RuntimeError("secret detail")

    c = Conn(broken)
    with caplog.at_level(logging.ERROR, logger="reactor.web"):
        c.send(GET % b"x")
    [p] = c.responses()
    assert p.status == 500 and b"secret" not in p.body and b"Traceback" not in p.body
    assert "secret detail" in caplog.text and "Traceback" in caplog.text
    assert not c.transport.disconnecting and c.factory.inFlight == 0


def test_httpErrorFromAHandlerAnswersItsStatus() -> None:
    """HTTPError(status, message) raised (or errbacked) answers that status with the message."""

    def handler(request: Request) -> Any:
        if request.path == "/sync":
            raise HTTPError(404, "no such thing")
        return Deferred.fromCoroutine(_raise409())

    async def _raise409() -> Response:
        raise HTTPError(409, "conflict here")

    c = Conn(handler)
    c.send(GET % b"sync" + GET % b"async")
    got = c.responses()
    assert [(p.status, p.body) for p in got] == [(404, b"404 no such thing\n"), (409, b"409 conflict here\n")]


def test_failureAfterTheHeadWasSentAbortsTheConnection(caplog: pytest.LogCaptureFixture) -> None:
    """A handler that fails after its response started cannot send a 500: the connection is aborted."""
    later: Deferred[None] = Deferred()

    def handler(request: Request) -> Deferred[None]:
        request.respond(200).write(b"partial")
        return later

    c = Conn(handler)
    c.send(GET % b"")
    with caplog.at_level(logging.ERROR, logger="reactor.web"):
        later.errback(RuntimeError("mid-body"))
    assert c.transport.aborted and "mid-body" in caplog.text


def test_failureBeforeTheFirstWriteStillGets500() -> None:
    """A handler that called respond() but wrote nothing yet still gets a clean 500 on failure."""

    def handler(request: Request) -> None:
        request.respond(200, [("content-type", "text/plain")])
        raise RuntimeError("before writing")

    c = Conn(handler)
    c.send(GET % b"")
    assert c.responses()[0].status == 500 and not c.transport.aborted


def test_handlerReturningNoneWithoutRespondingIsA500(caplog: pytest.LogCaptureFixture) -> None:
    """None means "I called respond()": without it, the server logs the mistake and answers 500."""
    c = Conn(lambda r: None)
    with caplog.at_level(logging.ERROR, logger="reactor.web"):
        c.send(GET % b"")
    assert c.responses()[0].status == 500 and "without calling request.respond" in caplog.text


def test_headerInjectionIsRefusedNamingTheHeader() -> None:
    """CR/LF in a header value or a bad name is a ValueError naming the header; a Response of them a 500."""
    errors: list[str] = []

    def handler(request: Request) -> Response:
        for headers in ([("X-A", "v\r\nSet-Cookie: evil=1")], [("Bad Name", "v")]):
            try:
                request.respond(200, headers)
            except ValueError as e:
                errors.append(str(e))
        return Response(200, [("X-A", "v\nX-Evil: 1")])

    c = Conn(handler)
    c.send(GET % b"")
    assert "'X-A'" in errors[0] and "'Bad Name'" in errors[1]
    assert c.responses()[0].status == 500 and b"X-Evil" not in c.transport.value()


def test_headerListChangedBetweenResponsesIsCheckedAgain() -> None:
    """A header list reused and changed between answers: each answer carries and checks its content."""
    shared = [("X-A", "1")]
    values = iter(["1", "2", "v\r\nX-Evil: 1", "\u20ac", "1"])

    def handler(request: Request) -> Response:
        shared[0] = ("X-A", next(values))
        return Response(200, shared, b"ok")

    c = Conn(handler)
    c.send(GET % b"a" + GET % b"b" + GET % b"c" + GET % b"d" + GET % b"e")
    got = c.responses()
    assert [p.status for p in got] == [200, 200, 500, 500, 200]
    assert [p.header("x-a") for p in got] == ["1", "2", None, None, "1"]
    assert b"X-Evil" not in c.transport.value()
    with pytest.raises(ValueError, match="serverName"):
        HTTPFactory(textHandler, serverName="\u20ac", reactor=Clock())


def test_responseArgumentsAreChecked() -> None:
    """Response and respond() refuse a bad status or body type, naming the argument."""
    with pytest.raises(ValueError, match="status"):
        Response(99)
    with pytest.raises(TypeError, match="body"):
        Response(200, body="text")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="handler"):
        HTTPFactory(42, reactor=Clock())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="maxBodyBytes"):
        HTTPFactory(textHandler, reactor=Clock(), maxBodyBytes=0)
    with pytest.raises(ValueError, match="idleTimeout"):
        HTTPFactory(textHandler, reactor=Clock(), idleTimeout=-1)


def test_whenDoneFiresAtFinishAndErrbacksOnLoss() -> None:
    """whenDone fires when the response ends; if the connection drops first it errbacks ConnectionLost."""
    requests: list[Request] = []

    def handler(request: Request) -> None:
        requests.append(request)
        request.respond(200)

    c = Conn(handler)
    c.send(GET % b"a")
    done: list[Any] = []
    requests[0].whenDone.addBoth(done.append)
    assert done == []
    assert requests[0]._writer is not None
    requests[0]._writer.finish()
    assert done == [None]
    c.send(GET % b"b")
    requests[1].whenDone.addBoth(done.append)
    c.lose()
    assert isinstance(done[1], Failure) and done[1].check(ConnectionLost)
    assert c.factory.inFlight == 0 and c.factory.connections == 0


# -- hostile input -----------------------------------------------------------------------------


def test_contentLengthWithTransferEncodingIsRefusedAndNothingSmuggled() -> None:
    """CL + TE (RFC 9112 6.1): one 400, the connection closed, the request hidden in the body never served."""
    calls: list[str] = []

    def handler(request: Request) -> Response:
        calls.append(request.path)
        return Response()

    c = Conn(handler)
    smuggled = GET % b"admin"
    c.send(
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n%s"
        % (5 + len(smuggled), smuggled)
    )
    assert statuses(c.transport.value()) == [400] and calls == []
    assert c.transport.writeClosed  # lingering close: EOF now, the full close later
    c.clock.advance(c.factory.lingerTimeout)
    assert c.transport.disconnecting


def test_conflictingContentLengthsAreRefused() -> None:
    """Two different Content-Length fields are a 400, not a guess."""
    c = Conn()
    c.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd")
    assert statuses(c.transport.value()) == [400]


def test_malformedRequestAfterAGoodOneGetsOneAnswerThenClose() -> None:
    """A good request then garbage, pipelined: 200 for the first, exactly one 400, then the close."""
    c = Conn()
    c.send(GET % b"good" + b"NOT/HTTP garbage\r\n\r\n")
    got = c.responses()
    assert [p.status for p in got] == [200, 400]
    assert got[0].header("connection") is None and got[1].header("connection") == "close"
    assert c.transport.writeClosed
    c.send(GET % b"after")  # dropped: the parser cannot resynchronise
    assert len(c.responses()) == 2


def test_unsupportedVersionsGet505() -> None:
    """HTTP/9.9 and HTTP/2.0 request lines are answered 505."""
    for version in (b"9.9", b"2.0"):
        c = Conn()
        c.send(b"GET / HTTP/" + version + b"\r\nHost: x\r\n\r\n")
        assert statuses(c.transport.value()) == [505], version


@pytest.mark.parametrize(
    "raw",
    [
        b"THIS IS NOT HTTP\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",  # no Host
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",  # two Hosts
        b"GET / HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n",  # NUL in a value
        b"GET / HTTP/1.1\r\nHo st: x\r\n\r\n",
        b"GET /\xff HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nabc",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    ],
)
def test_badInputGets400AndClose(raw: bytes) -> None:
    """Malformed requests get one 400 and the connection closes."""
    c = Conn()
    c.send(raw)
    assert statuses(c.transport.value()) == [400]
    assert c.transport.writeClosed or c.transport.disconnecting


def test_unknownExpectationGets417() -> None:
    """An Expect other than 100-continue is refused with 417."""
    c = Conn()
    c.send(b"GET / HTTP/1.1\r\nHost: x\r\nExpect: teapot\r\n\r\n")
    assert statuses(c.transport.value()) == [417]


def test_longRequestLineGets414() -> None:
    """A request target over maxRequestLine gets 414, whole or trickled."""
    c = Conn(maxRequestLine=100)
    c.send(b"GET /" + b"a" * 200 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert statuses(c.transport.value()) == [414]
    c = Conn(maxRequestLine=100)
    for _ in range(30):
        c.send(b"GET /aaaaaaaaa"[:5] if not c.transport.value() and _ == 0 else b"aaaaaaaa")
    assert statuses(c.transport.value()) == [414]


def test_largeHeadersGet431() -> None:
    """Header fields over maxHeaderBytes get 431, in one piece or trickled without an end."""
    c = Conn(maxHeaderBytes=1024)
    c.send(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 4096 + b"\r\n\r\n")
    assert statuses(c.transport.value()) == [431]
    c = Conn(maxHeaderBytes=1024, maxRequestLine=1024)
    c.send(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ")
    for _ in range(40):
        c.send(b"a" * 100)
    assert statuses(c.transport.value()) == [431]


def test_declaredBodyOverTheLimitGets413BeforeItIsRead() -> None:
    """A Content-Length over maxBodyBytes is answered 413 without calling the handler."""
    calls: list[Request] = []
    c = Conn(lambda r: calls.append(r), maxBodyBytes=10)
    c.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n")
    assert statuses(c.transport.value()) == [413] and calls == []


def test_chunkedBodyOverTheLimitFailsTheReadWith413() -> None:
    """A chunked body growing past maxBodyBytes fails body() with HTTPError(413); the handler's 413 closes."""
    c = Conn(lambda r: r.body().addCallback(lambda b: Response(200)), maxBodyBytes=10)
    c.send(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n" + b"x" * 16 + b"\r\n")
    [p] = c.responses()
    assert p.status == 413 and p.header("connection") == "close"


# -- Expect: 100-continue ----------------------------------------------------------------------


def test_continueIsSentWhenTheHandlerReadsTheBody() -> None:
    """Expect: 100-continue: the 100 goes out when the handler asks for the body, then the answer."""
    c = Conn(lambda r: r.body().addCallback(lambda b: Response(200, body=b)))
    c.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
    assert c.transport.value() == b"HTTP/1.1 100 Continue\r\n\r\n"
    c.send(b"abc")
    raw = c.transport.value()[len(b"HTTP/1.1 100 Continue\r\n\r\n") :]
    assert parseResponses(raw)[0].body == b"abc" and not c.transport.disconnecting


def test_answerWithoutReadingAnExpectedBodySkipsTheContinueAndCloses() -> None:
    """A handler that answers without reading: no 100, the answer says close (the body never comes)."""
    c = Conn(lambda r: Response(401))
    c.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
    [p] = c.responses()
    assert p.status == 401 and p.header("connection") == "close"
    assert b"100 Continue" not in c.transport.value()


def test_unreadBodyIsSkippedAndTheNextRequestServed() -> None:
    """A handler that ignores a body: the body is skipped as it arrives, and the next request served."""
    c = Conn()
    c.send(b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
    c.send(b"defghij" + GET % b"b")
    assert [p.body for p in c.responses()] == [b"POST /a", b"GET /b"]
    assert not c.transport.disconnecting


# -- flow control ------------------------------------------------------------------------------


def test_unreadBodyBytesPauseTheTransportUntilRead() -> None:
    """Past readBufferBytes of unread body the transport is paused; reading resumes it."""
    requests: list[Request] = []

    def handler(request: Request) -> None:
        requests.append(request)
        request.respond(200)

    c = Conn(handler, readBufferBytes=100)
    c.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + b"x" * 150)
    assert c.transport.readingPaused
    got: list[bytes] = []
    requests[0].read().addCallback(got.append)
    assert got == [b"x" * 150] and not c.transport.readingPaused


def test_manyPipelinedRequestsPauseTheTransport() -> None:
    """Past maxPipelined requests waiting behind a slow one, reading pauses until they drain."""
    later: Deferred[Response] = Deferred()
    c = Conn(lambda r: later if r.path == "/slow" else Response(), maxPipelined=2)
    c.send(GET % b"slow" + (GET % b"x") * 3)
    assert c.transport.readingPaused
    later.callback(Response())
    assert statuses(c.transport.value()) == [200] * 4 and not c.transport.readingPaused


def test_writeDeferredWaitsWhileTheClientIsSlow() -> None:
    """While the transport says our output is over its high-water mark, write() gives an unfired Deferred."""
    writers: list[ResponseWriter] = []

    def handler(request: Request) -> None:
        writers.append(request.respond(200))

    c = Conn(handler)
    c.send(GET % b"")
    w = writers[0]
    first: list[Any] = []
    w.write(b"a").addCallback(first.append)
    assert first == [None]
    c.channel.pauseProducing()
    second: list[Any] = []
    w.write(b"b").addCallback(second.append)
    assert second == []
    c.channel.resumeProducing()
    assert second == [None]
    c.channel.pauseProducing()
    third: list[Any] = []
    w.write(b"c").addBoth(third.append)
    c.lose()
    assert isinstance(third[0], Failure) and third[0].check(ConnectionLost)
    assert w.write(b"d").addErrback(lambda f: f.check(ConnectionLost)).result is ConnectionLost


@implementer(IPushProducer)
class Producer:
    def __init__(self) -> None:
        self.events: list[str] = []

    def pauseProducing(self) -> None:
        self.events.append("pause")

    def resumeProducing(self) -> None:
        self.events.append("resume")

    def stopProducing(self) -> None:
        self.events.append("stop")


def test_registeredProducerFollowsTheClientsPace() -> None:
    """A streaming producer on the writer is paused and resumed with the transport; stopped on loss."""
    writers: list[ResponseWriter] = []
    c = Conn(lambda r: writers.append(r.respond(200)))
    c.send(GET % b"")
    producer = Producer()
    writers[0].registerProducer(producer, True)
    c.channel.pauseProducing()
    c.channel.resumeProducing()
    c.lose()
    assert producer.events == ["pause", "resume", "stop"]


def test_pullProducerIsAskedOnceALoopTurn() -> None:
    """A pull producer is asked for a chunk per loop turn until it unregisters."""
    writers: list[ResponseWriter] = []
    c = Conn(lambda r: writers.append(r.respond(200)))
    c.send(GET % b"")
    w = writers[0]
    chunks = [b"one", b"two"]

    class Pull:
        def resumeProducing(self) -> None:
            if chunks:
                w.write(chunks.pop(0))
            else:
                w.unregisterProducer()
                w.finish()

        def stopProducing(self) -> None:
            pass

    w.registerProducer(Pull(), False)
    for _ in range(3):
        c.clock.advance(0)
    [p] = c.responses()
    assert p.body == b"onetwo" and p.complete


# -- timeouts ----------------------------------------------------------------------------------


def test_idleKeepAliveConnectionCloses() -> None:
    """No request for idleTimeout seconds after the last answer: the connection closes quietly."""
    c = Conn(idleTimeout=10)
    c.clock.advance(5)
    c.send(GET % b"")
    c.clock.advance(9)
    assert not c.transport.disconnecting
    c.clock.advance(2)
    assert c.transport.disconnecting and statuses(c.transport.value()) == [200]


def test_slowHeadGets408AndClose() -> None:
    """A head that trickles in (slowloris) gets 408 after headerTimeout, whatever keeps arriving."""
    c = Conn(headerTimeout=5, idleTimeout=60)
    c.send(b"GET / HTTP/1.1\r\n")
    for _ in range(4):
        c.clock.advance(1)
        c.send(b"X-A: b\r\n")
    assert c.transport.value() == b""
    c.clock.advance(1.5)
    [p] = c.responses()
    assert p.status == 408 and c.transport.writeClosed
    c.clock.advance(c.factory.lingerTimeout)
    assert c.transport.disconnecting
    assert all(not call.active() for call in c.clock.getDelayedCalls())


def test_stalledBodyFailsTheReadWith408() -> None:
    """A body that stops arriving for bodyTimeout fails the read with HTTPError(408); the answer closes."""
    c = Conn(lambda r: r.body().addCallback(lambda b: Response(200)), bodyTimeout=3)
    c.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab")
    c.clock.advance(2)
    c.send(b"cd")  # progress moves the deadline
    c.clock.advance(2.5)
    assert c.transport.value() == b""
    c.clock.advance(1)
    [p] = c.responses()
    assert p.status == 408 and p.header("connection") == "close"
    assert c.transport.writeClosed  # a lingering close: the rest of the body may still come


def test_noTimerFiresWhileAHandlerWorks() -> None:
    """The time a handler takes is not limited by the connection's timeouts."""
    later: Deferred[Response] = Deferred()
    c = Conn(lambda r: later, idleTimeout=1, headerTimeout=1, bodyTimeout=1)
    c.send(GET % b"")
    c.clock.advance(100)
    later.callback(Response())
    assert statuses(c.transport.value()) == [200] and not c.transport.disconnecting


# -- graceful stop -----------------------------------------------------------------------------


def test_stopGracefullyFinishesInFlightAndClosesIdle() -> None:
    """stopGracefully: idle connections close now, busy ones after their answer; new ones are refused."""
    later: Deferred[Response] = Deferred()
    factory = HTTPFactory(lambda r: later if r.path == "/slow" else Response(), reactor=Clock())
    idle, busy = factory.buildProtocol(None), factory.buildProtocol(None)
    assert idle is not None and busy is not None
    idleT, busyT = Transport(), Transport()
    idle.makeConnection(idleT)
    busy.makeConnection(busyT)
    busy.dataReceived(GET % b"slow")
    stopped: list[Any] = []
    factory.stopGracefully(30).addCallback(stopped.append)
    assert idleT.disconnecting and not busyT.disconnecting
    assert factory.buildProtocol(None) is None
    idle.connectionLost(Failure(ConnectionDone()))
    later.callback(Response(200, body=b"done"))
    [p] = parseResponses(busyT.value())
    assert p.body == b"done" and p.header("connection") == "close" and busyT.disconnecting
    assert stopped == []
    busy.connectionLost(Failure(ConnectionDone()))
    assert stopped == [None]


def test_stopGracefullyDropsWhatIsLeftAtTheDeadline() -> None:
    """Requests still running at the deadline: their connections are aborted and the stop fires."""
    clock = Clock()
    factory = HTTPFactory(lambda r: Deferred(), reactor=clock)
    channel = factory.buildProtocol(None)
    assert channel is not None
    t = Transport()
    channel.makeConnection(t)
    channel.dataReceived(GET % b"")
    stopped: list[Any] = []
    factory.stopGracefully(5).addCallback(stopped.append)
    clock.advance(4.9)
    assert stopped == [] and not t.aborted
    clock.advance(0.2)
    assert stopped == [None] and t.aborted


def test_stopGracefullyWithNoConnectionsFiresAtOnce() -> None:
    """Nothing open: stopGracefully has already fired."""
    factory = HTTPFactory(textHandler, reactor=Clock())
    assert factory.stopGracefully(1).result is None
    with pytest.raises(ValueError, match="timeout"):
        factory.stopGracefully(-1)


def test_bodyThatNeverContinuesAfterTheHeadTimesOut() -> None:
    """A body that stalls in the very packet of its head still times out (no later data to arm it)."""
    c = Conn(lambda r: r.body().addCallback(lambda b: Response(200)), bodyTimeout=3)
    c.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab")
    c.clock.advance(3.1)
    assert [p.status for p in c.responses()] == [408]


def test_silentConnectionClosesAfterTheHeaderTimeout() -> None:
    """A connection that never sends a byte is closed after headerTimeout when that is shorter than idle."""
    c = Conn(headerTimeout=2, idleTimeout=60)
    c.clock.advance(1.9)
    assert not c.transport.disconnecting
    c.clock.advance(0.2)
    assert c.transport.disconnecting and c.transport.value() == b""


def test_largeWholeResponseIsSentIntact() -> None:
    """A Response body of several MiB goes out whole, with its length."""
    body = bytes(range(256)) * 16384
    c = Conn(lambda r: Response(200, body=body))
    c.send(GET % b"")
    [p] = c.responses()
    assert p.body == body and p.header("content-length") == str(len(body))


def test_bodyAfterTheResponseEndedIsRefused() -> None:
    """read()/body() once the response is finished raise RuntimeError (the rest of the body is skipped)."""
    kept: list[Request] = []

    def handler(request: Request) -> Response:
        kept.append(request)
        return Response()

    c = Conn(handler)
    c.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab")
    with pytest.raises(RuntimeError, match="skipped"):
        kept[0].body()
    with pytest.raises(RuntimeError, match="already sent"):
        kept[0].respond(200)
    with pytest.raises(ValueError, match="status"):
        HTTPError(100, "continue?")
