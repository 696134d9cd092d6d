"""The HTTP/1.1 server connection: llhttp (through httptools) parses, this module keeps the state.

One :class:`HTTPChannel` per connection. The parser runs over whatever bytes arrive and only records
what it saw (a request head complete, body bytes, the end of a message, an error); after each feed the
channel acts on it, so no handler code runs inside a parser callback.

Request flow. A request whose head is complete joins ``_queue`` (pipelining); the first in line is
``_active``: its handler is called as soon as its head is complete, so it may stream the body with
``Request.read`` while it arrives. Responses go out strictly in request order because only the active
request may respond; when its response is finished and its body fully received, the next one becomes
active. A request refused by the server (limits, malformed input, smuggling attempts) is queued as a
refusal at its place in line, answered in turn, and the connection closes after it (the parser cannot
resynchronise with a byte stream it did not understand).

Flow control, both ways. Reading: the transport is paused while unread body bytes exceed
``readBufferBytes`` (``maxBodyBytes`` while a handler waits for the whole body) or ``maxPipelined``
requests wait in line. Writing: the channel is the transport's streaming producer; while the
transport's outgoing buffer is above its high-water mark, ``ResponseWriter.write`` returns an unfired
Deferred and a producer registered on the writer is paused.

Timeouts are one timer per connection whose deadline moves without rescheduling (the timer re-arms
itself when it fires early), so the keep-alive hot path costs one clock read: ``idleTimeout`` between
requests (close quietly), ``headerTimeout`` for a head that has started arriving (408, then close: a
slowloris client is dropped), ``bodyTimeout`` for a body that stops arriving while it is wanted.

Everything runs in the reactor thread, handlers included: a handler must not block.
"""

from __future__ import annotations

import inspect
import logging
from collections import deque
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

import httptools
from zope.interface import implementer

from reactor._deferred import Deferred, fail, succeed
from reactor._failure import Failure
from reactor._httpmessage import (
    DateCache,
    Headers,
    HTTPError,
    Response,
    _statusLines,
    checkReason,
    statusLine,
)
from reactor._neterrors import ConnectionLost
from reactor._netinterfaces import IConsumer, IHalfCloseableProtocol, IPushProducer
from reactor.protocol import Factory, Protocol, connectionDone

__all__ = ["HTTPChannel", "HTTPFactory", "Handler", "Request", "ResponseWriter"]

log = logging.getLogger("reactor.web")

_NO_BODY_STATUSES = frozenset({204, 304})
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_METHODS = {m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")}
# Response header names the server writes itself (or must not be doubled by the application).
_FRAMING = frozenset({"content-length", "transfer-encoding"})
_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


class _Refused(Exception):
    """Raised inside a parser callback: the request is refused with ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(status, message)
        self.status = status
        self.message = message


def _checkedHeaderBlock(headers: Iterable[tuple[str, str]]) -> tuple[bytes, dict[str, str]]:
    """Validate application headers; returns their ``name: value\\r\\n`` lines as latin-1 bytes
    (framing fields left out) and a map of each lower-cased name to its last value.

    TypeError/ValueError naming the header for a bad pair, name or value (CR, LF, NUL, not latin-1).
    The result for a list of pairs is cached by its content (most handlers answer with the same few
    header lists), so the map is shared: read it, never change it.
    """
    items = tuple(headers)
    try:
        cached = _headerBlocks.get(items)
        hashable = True
    except TypeError:  # an unhashable item: validate it (and say what is wrong with it) uncached
        cached = None
        hashable = False
    if cached is not None:
        return cached
    lines = []
    names: dict[str, str] = {}
    for item in items:
        try:
            name, value = item
        except (TypeError, ValueError):
            raise TypeError(f"headers must be (name, value) pairs, got {item!r}") from None
        if type(name) is not str or not name or not _TOKEN.issuperset(name):
            raise ValueError(f"header name {name!r} is not an HTTP token")
        if type(value) is not str:
            raise TypeError(f"header {name!r}: value must be str, not {type(value).__name__}")
        if "\r" in value or "\n" in value or "\0" in value:
            raise ValueError(f"header {name!r}: value contains CR, LF or NUL: {value!r}")
        lname = name.lower()
        names[lname] = value
        if lname not in _FRAMING:
            lines.append(f"{name}: {value}\r\n")
    try:
        block = "".join(lines).encode("latin-1")
    except UnicodeEncodeError as e:
        raise ValueError(f"response headers must be latin-1 text: {e}") from None
    result = (block, names)
    if hashable:
        if len(_headerBlocks) >= 512:
            _headerBlocks.clear()  # many distinct lists (per-response values): start over, stay bounded
        _headerBlocks[items] = result
    return result


_headerBlocks: dict[tuple[tuple[str, str], ...], tuple[bytes, dict[str, str]]] = {}
_NO_NAMES: dict[str, str] = {}
_ERROR_TYPE = b"content-type: text/plain; charset=utf-8\r\n"


def _checkedLength(value: str) -> int:
    """An application's Content-Length value as an int; ValueError naming the header if it is not one."""
    stripped = value.strip()
    if not stripped.isdigit() or not stripped.isascii():
        raise ValueError(f"header 'Content-Length': not a length: {value!r}")
    return int(stripped)


class Request:
    """One request, as the handler sees it (see ``reactor.web``). Reactor thread only."""

    __slots__ = (
        "_bodyDone",
        "_bodyError",
        "_bodyReceived",
        "_channel",
        "_chunks",
        "_contentLength",
        "_continueSent",
        "_discard",
        "_expectContinue",
        "_hasHost",
        "_hasTE",
        "_headComplete",
        "_headers",
        "_keepAlive",
        "_rawHeaders",
        "_readers",
        "_refusal",
        "_target",
        "_unread",
        "_whenDone",
        "_whole",
        "_wholeTaken",
        "_writer",
        "httpVersion",
        "method",
        "path",
        "query",
        "target",
    )

    method: str
    target: str
    path: str
    query: str
    httpVersion: str

    def __init__(self, channel: HTTPChannel, target: bytes) -> None:
        self._channel = channel
        self._target = target
        self._rawHeaders: list[tuple[bytes, bytes]] = []
        self._headers: Headers | None = None  # made on first use: many handlers never look
        self._contentLength: bytes | None = None
        self._hasTE = False
        self._hasHost = 0
        self._expectContinue = False
        self._continueSent = False
        self._headComplete = False
        self._keepAlive = True
        # The body: chunks received and not yet read; _unread counts their bytes.
        self._chunks: deque[bytes] = deque()
        self._unread = 0
        self._bodyReceived = 0
        self._bodyDone = False
        self._bodyError: HTTPError | ConnectionLost | None = None
        self._readers: deque[tuple[Deferred[bytes], int]] = deque()
        self._whole: Deferred[bytes] | None = None
        self._wholeTaken = False  # body() was called: read() may not interleave
        self._discard = False  # the response is finished: further body bytes are dropped
        self._refusal: _Refused | None = None
        self._writer: ResponseWriter | None = None
        self._whenDone: Deferred[None] | None = None

    # -- addresses and state ------------------------------------------------------------------

    @property
    def headers(self) -> Headers:
        """The request's header fields (a case-insensitive multi-map, names lower-cased)."""
        headers = self._headers
        if headers is None:
            headers = self._headers = Headers(self._rawHeaders)
        return headers

    @property
    def client(self) -> Any:
        """The peer's address (IPv4Address, IPv6Address or UNIXAddress)."""
        return self._channel.transport.getPeer()

    @property
    def host(self) -> Any:
        """Our address on this connection."""
        return self._channel.transport.getHost()

    @property
    def isSecure(self) -> bool:
        """True when the connection carries TLS."""
        return bool(getattr(self._channel.transport, "TLS", False))

    @property
    def reactor(self) -> Any:
        """The reactor serving this request (the factory's)."""
        return self._channel.factory.reactor

    @property
    def whenDone(self) -> Deferred[None]:
        """Fires (None) once the response is finished; errbacks ConnectionLost if the connection ends
        first."""
        if self._whenDone is None:
            self._whenDone = Deferred()
            if self._channel._lost and (self._writer is None or not self._writer._finished):
                self._whenDone.errback(ConnectionLost("the connection was lost before the response ended"))
            elif self._writer is not None and self._writer._finished:
                self._whenDone.callback(None)
        return self._whenDone

    # -- the body -----------------------------------------------------------------------------

    def read(self, size: int = -1) -> Deferred[bytes]:
        """The next body bytes (at most ``size`` if it is positive); fires b"" at the end of the body.

        Fires at once when bytes are buffered, else when more arrive. Errbacks HTTPError (413 past
        ``maxBodyBytes``, 400 malformed, 408 too slow) or ConnectionLost. Reading releases flow
        control: the transport is paused while too many bytes wait unread.
        """
        if type(size) is not int:
            raise TypeError(f"size must be an int, not {type(size).__name__}")
        if self._wholeTaken:
            raise RuntimeError("read() after body(): the body is collected whole")
        if size == 0:
            return succeed(b"")
        if self._discard:
            raise RuntimeError("read() after the response ended: the rest of the body was skipped")
        if self._chunks and not self._readers:
            return succeed(self._take(size))
        if self._bodyError is not None:
            return fail(self._bodyError)
        if self._bodyDone and not self._readers:
            return succeed(b"")
        d: Deferred[bytes] = Deferred()
        self._readers.append((d, size))
        self._channel._wantBody(self)
        return d

    def body(self) -> Deferred[bytes]:
        """The whole body (what ``read`` has not taken yet); errbacks as ``read`` does."""
        if self._wholeTaken:
            raise RuntimeError("body() was already called")
        if self._readers:
            raise RuntimeError("body() while a read() is pending")
        if self._discard:
            raise RuntimeError("body() after the response ended: the rest of the body was skipped")
        self._wholeTaken = True
        if self._bodyError is not None:
            return fail(self._bodyError)
        if self._bodyDone:
            return succeed(self._take(-1) if self._chunks else b"")
        d: Deferred[bytes] = Deferred()
        self._whole = d
        self._channel._wantBody(self)
        return d

    def _take(self, size: int) -> bytes:
        chunks = self._chunks
        if size < 0 or size >= self._unread:
            data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            chunks.clear()
        else:
            parts = []
            need = size
            while need:
                chunk = chunks[0]
                if len(chunk) <= need:
                    parts.append(chunks.popleft())
                    need -= len(chunk)
                else:
                    parts.append(chunk[:need])
                    chunks[0] = chunk[need:]
                    need = 0
            data = b"".join(parts)
        self._unread -= len(data)
        self._channel._consumed(len(data))
        return data

    def _deliver(self) -> None:
        """Fire the waiting readers with what has arrived (after a parser feed; never inside one)."""
        if self._whole is not None:
            if self._bodyError is not None:
                d, self._whole = self._whole, None
                d.errback(self._bodyError)
            elif self._bodyDone:
                d, self._whole = self._whole, None
                d.callback(self._take(-1) if self._chunks else b"")
            return
        readers = self._readers
        while readers:
            if self._chunks:
                d, size = readers.popleft()
                d.callback(self._take(size))
            elif self._bodyError is not None:
                d, _ = readers.popleft()
                d.errback(self._bodyError)
            elif self._bodyDone:
                d, _ = readers.popleft()
                d.callback(b"")
            else:
                return

    # -- the response -------------------------------------------------------------------------

    def respond(
        self, status: int, headers: Iterable[tuple[str, str]] = (), *, reason: str | None = None
    ) -> ResponseWriter:
        """Start a streamed response; returns its writer. RuntimeError if a response was started.

        Without a Content-Length header the body is chunked (HTTP/1.1) or ends with the connection
        (HTTP/1.0). With one, exactly that many bytes must be written before ``finish``. ``reason``
        replaces the standard reason phrase (a latin-1 str without CR, LF or NUL, else
        TypeError/ValueError); bad headers are a ValueError naming the header.
        """
        if self._writer is not None:
            raise RuntimeError(f"{self.method} {self.target}: a response was already started")
        if self._channel._active is not self:
            raise RuntimeError(f"{self.method} {self.target}: the response was already sent")
        if type(status) is not int or not 200 <= status <= 999:
            raise ValueError(f"status must be an int from 200 to 999, got {status!r}")
        if reason is not None:
            checkReason(reason)
        block, names = _checkedHeaderBlock(headers)
        writer = ResponseWriter(self, status, block, names, reason)
        self._writer = writer
        return writer

    def __repr__(self) -> str:
        return f"<Request {getattr(self, 'method', '?')} {getattr(self, 'target', '?')}>"


@implementer(IConsumer)
class ResponseWriter:
    """The body of a streamed response (``Request.respond``). Reactor thread only.

    The head goes out with the first ``write`` (or ``finish``), so a handler that fails before
    writing still gets a clean 500 instead of a cut connection.
    """

    __slots__ = (
        "_channel",
        "_chunked",
        "_declared",
        "_finished",
        "_head",
        "_headSent",
        "_noBody",
        "_request",
        "_sent",
        "producer",
        "streamingProducer",
    )

    def __init__(
        self,
        request: Request,
        status: int,
        block: bytes,
        names: dict[str, str],
        reason: str | None = None,
    ) -> None:
        self._request = request
        channel = self._channel = request._channel
        self._finished = False
        self._headSent = False
        self._sent = 0
        self._noBody = request.method == "HEAD" or status in _NO_BODY_STATUSES
        self._declared: int | None = None
        self.producer: Any = None
        self.streamingProducer = False
        declared = names.get("content-length")
        if declared is not None:
            # The application's own length: kept, and held to.
            self._declared = _checkedLength(declared)
        framing = b""
        if self._declared is not None:
            framing = b"content-length: %d\r\n" % self._declared
            self._chunked = False
        elif status in _NO_BODY_STATUSES:
            self._chunked = False
        elif request.httpVersion == "1.1":
            self._chunked = True
            framing = b"transfer-encoding: chunked\r\n"
        else:
            self._chunked = False
            request._keepAlive = False  # HTTP/1.0 without a length: the body ends with the connection
        if self._chunked and self._noBody and request.method == "HEAD":
            # A HEAD answer announces the GET framing but sends no body, so no terminating chunk.
            self._chunked = False
        self._head = channel._head(request, status, block, framing, names, reason)

    # IConsumer.write returns None; ours returns a Deferred as well (producers may ignore it).
    def write(self, data: bytes) -> Deferred[None]:  # type: ignore[override]
        """Queue ``data``; fires when the output buffer is below its high-water mark.

        Already fired while it is; errbacks ConnectionLost if the client is gone. RuntimeError after
        ``finish``; ValueError past a declared Content-Length.
        """
        if type(data) is not bytes:
            if isinstance(data, bytearray | memoryview):
                data = bytes(data)
            else:
                raise TypeError(f"data must be bytes, not {type(data).__name__}")
        if self._finished:
            raise RuntimeError("write() after finish()")
        channel = self._channel
        if channel._lost:
            return fail(ConnectionLost("the client is gone"))
        if self._declared is not None:
            self._sent += len(data)
            if self._sent > self._declared:
                raise ValueError(f"write() past the declared Content-Length of {self._declared}")
        if self._noBody or not data:
            out = b""
        elif self._chunked:
            out = b"%x\r\n%b\r\n" % (len(data), data)
        else:
            out = data
        if not self._headSent:
            self._headSent = True
            out = self._head + out
        if out:
            channel.transport.write(out)
        if channel._writePaused:
            return channel._writeWaiter()
        return succeed(None)

    def finish(self) -> None:
        """End the response. If a Content-Length was declared and not reached, the connection is dropped."""
        if self._finished:
            raise RuntimeError("finish() called twice")
        if self.producer is not None:
            raise RuntimeError("finish() with a producer registered; unregisterProducer() first")
        self._finished = True
        channel = self._channel
        if channel._lost:
            return
        out = b"0\r\n\r\n" if self._chunked else b""
        if not self._headSent:
            self._headSent = True
            out = self._head + out
        if out:
            channel.transport.write(out)
        if self._declared is not None and self._sent < self._declared and not self._noBody:
            log.error(
                "%s %s: response finished after %d of its %d declared bytes; dropping the connection",
                self._request.method,
                self._request.target,
                self._sent,
                self._declared,
            )
            channel.transport.abortConnection()
            channel._responseDone(self._request, abort=True)
            return
        channel._responseDone(self._request)

    def abort(self) -> None:
        """Drop the connection now (the application failed mid-body); the client sees it cut."""
        if self._finished:
            return
        self._finished = True
        self.producer = None
        channel = self._channel
        if not channel._lost:
            channel.transport.abortConnection()
        channel._responseDone(self._request, abort=True)

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        """Attach a producer of the body: paused while the client reads too slowly, resumed after.

        A pull producer (``streaming`` false) is asked for a chunk each loop turn the output has room.
        """
        if self.producer is not None:
            raise RuntimeError(f"cannot register {producer!r}: {self.producer!r} is registered")
        if self._finished:
            raise RuntimeError("registerProducer() after finish()")
        self.producer = producer
        self.streamingProducer = bool(streaming)
        channel = self._channel
        if channel._lost:
            producer.stopProducing()
            return
        channel._producerRegistered(self)

    def unregisterProducer(self) -> None:
        """Detach the producer (no-op if none)."""
        self.producer = None

    def __repr__(self) -> str:
        return f"<ResponseWriter for {self._request!r}{' finished' if self._finished else ''}>"


Handler = Callable[
    [Request], Response | Deferred[Response | None] | Coroutine[Any, Any, Response | None] | None
]
"""What ``HTTPFactory`` calls per request: a Response, a Deferred or coroutine of one, or None once it
called ``request.respond`` (and streams)."""


@implementer(IPushProducer, IHalfCloseableProtocol)
class HTTPChannel(Protocol):
    """One HTTP/1.1 server connection (see the module docstring). Reactor thread only.

    It is the transport's streaming producer (``pauseProducing``/``resumeProducing`` say whether
    the client keeps up with our output), and half-closeable: a client that shuts its sending side
    after its requests (``shutdown(SHUT_WR)``) still gets their answers (``readConnectionLost``).
    """

    factory: HTTPFactory

    def __init__(self, factory: HTTPFactory) -> None:
        self.factory = factory
        self._clock = factory.reactor
        self._handler = factory.handler
        self._parser: Any = httptools.HttpRequestParser(self)
        self._parsing: Request | None = None  # the message the parser is in (head or body)
        self._headBytes = 0  # header field bytes of the head being parsed (exact, from the parser)
        self._rawHead = 0  # bytes received while a head was incomplete (a bound on the parser's buffer)
        self._queue: deque[Request] = deque()  # heads complete, waiting their turn (active first)
        self._active: Request | None = None
        self._advancing = False
        self._lost = False
        self._closing = False  # answer what is in line, then close (refusal, shutdown, parse error)
        self._dead = False  # the parser is done with this connection: input is dropped
        self._inputEnded = False  # the client shut its sending side (readConnectionLost)
        self._readPaused = False
        self._writePaused = False
        self._writeWaiters: list[Deferred[None]] = []
        self._pumpCall: Any = None
        self._unread = 0  # body bytes received and not read, on this connection
        self._lingerCall: Any = None
        # The timeout: one timer, a deadline that moves (see the module docstring).
        self._timer: Any = None
        self._timerAt = 0.0
        self._deadline: float | None = None
        self._deadlineKind = ""

    # -- connection events --------------------------------------------------------------------

    def connectionMade(self) -> None:
        self.factory._channels.add(self)
        register = getattr(self.transport, "registerProducer", None)
        if register is not None:
            register(self, True)
        # A connection that sends nothing gets no longer than a trickling head would: it holds a
        # descriptor all the same.
        factory = self.factory
        self._setDeadline(min(factory.idleTimeout, factory.headerTimeout), "idle")

    def dataReceived(self, data: bytes) -> None:
        if self._dead:
            return  # after a refusal (lingering close) or while closing: drop the rest
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # No protocol switch here: answer the request as plain HTTP, then close.
            self._dead = True
            self._closing = True
        except httptools.HttpParserError as e:
            self._parseFailed(e)
        parsing = self._parsing
        if parsing is not None and not self._dead:
            if not parsing._headComplete:
                # A head arriving in pieces: bound what the parser may be holding, start its clock.
                self._rawHead += len(data)
                limit = self.factory.maxRequestLine + self.factory.maxHeaderBytes
                if self._rawHead > limit:
                    self._refuse(_Refused(431, f"request head over {limit} bytes"))
                elif self._active is None and self._deadlineKind != "head":
                    self._setDeadline(self.factory.headerTimeout, "head")
            elif not self._readPaused:
                self._setDeadline(self.factory.bodyTimeout, "body")  # the body is still coming
        active = self._active
        if active is not None and (active._readers or active._whole is not None):
            active._deliver()
        if self._active is None:
            if self._queue:
                self._advance()
            elif parsing is None and not self._dead and self._deadlineKind != "idle":
                self._setDeadline(self.factory.idleTimeout, "idle")  # a skipped body ended
        if len(self._queue) > self.factory.maxPipelined:
            self._pauseReading()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._lost = True
        self._dead = True
        self._cancelTimers()
        lost = ConnectionLost("the connection was lost")
        for request in [self._active, *self._queue]:
            if request is None:
                continue
            if request._bodyError is None and not request._bodyDone:
                request._bodyError = lost
                request._deliver()
            writer = request._writer
            if writer is not None and writer.producer is not None:
                producer, writer.producer = writer.producer, None
                try:
                    producer.stopProducing()
                except Exception:
                    log.exception("Unhandled error in %r.stopProducing", producer)
            if request._whenDone is not None and not request._whenDone.called:
                request._whenDone.errback(ConnectionLost("the connection was lost before the response ended"))
            if request._refusal is None:
                self.factory._inFlight -= 1
        self._active = None
        self._queue.clear()
        waiters, self._writeWaiters = self._writeWaiters, []
        for d in waiters:
            d.errback(ConnectionLost("the client is gone"))
        self.factory._channelGone(self)
        super().connectionLost(reason)

    def readConnectionLost(self) -> None:
        """The client shut its sending side: answer the requests received, in order, then close.

        A head cut off by the end of input is dropped (it can never complete, and nobody is left to
        read a 400 for it that a request line did not ask for); a body cut off fails the request's
        ``read``/``body`` with ``HTTPError(400)``. The last answer says ``Connection: close``.
        """
        self._inputEnded = True
        if self._lost:
            return
        self._closing = True
        parsing = self._parsing
        if parsing is not None and not self._dead:
            self._parsing = None
            if parsing._headComplete and not parsing._bodyDone and not parsing._discard:
                if parsing._bodyError is None:
                    parsing._bodyError = HTTPError(400, "the client ended its input before the request body")
                if parsing is self._active:
                    parsing._deliver()
        self._dead = True
        # Waiting on the handler now, not on the client: no head, body or idle clock applies.
        self._deadline = None
        self._deadlineKind = ""
        if self._active is None:
            if self._queue:
                self._advance()
            else:
                self.transport.loseConnection()

    def writeConnectionLost(self) -> None:
        """Our sending side is shut (a lingering close): the rest of the input is still dropped."""

    # -- IPushProducer: the transport says whether our output keeps up -----------------------

    def pauseProducing(self) -> None:
        self._writePaused = True
        writer = self._active._writer if self._active is not None else None
        if writer is not None and writer.producer is not None and writer.streamingProducer:
            writer.producer.pauseProducing()

    def resumeProducing(self) -> None:
        self._writePaused = False
        writer = self._active._writer if self._active is not None else None
        if writer is not None and writer.producer is not None:
            if writer.streamingProducer:
                writer.producer.resumeProducing()
            else:
                self._schedulePump()
        waiters, self._writeWaiters = self._writeWaiters, []
        for d in waiters:
            d.callback(None)

    def stopProducing(self) -> None:
        """The transport is going away; connectionLost follows and does the cleanup."""

    def _writeWaiter(self) -> Deferred[None]:
        d: Deferred[None] = Deferred()
        self._writeWaiters.append(d)
        return d

    def _producerRegistered(self, writer: ResponseWriter) -> None:
        if writer.streamingProducer:
            if self._writePaused:
                writer.producer.pauseProducing()
        else:
            self._schedulePump()

    def _schedulePump(self) -> None:
        if self._pumpCall is None:
            self._pumpCall = self._clock.callLater(0, self._pump)

    def _pump(self) -> None:
        # Ask a pull producer for one chunk per loop turn while the output has room.
        self._pumpCall = None
        if self._lost or self._writePaused or self._active is None:
            return
        writer = self._active._writer
        if writer is None or writer.producer is None or writer.streamingProducer:
            return
        writer.producer.resumeProducing()
        if writer.producer is not None and not self._writePaused:
            self._schedulePump()

    # -- parser callbacks (httptools calls only the ones defined) -----------------------------

    def on_url(self, url: bytes) -> None:
        request = self._parsing
        if request is None:
            request = self._parsing = Request(self, url)
        else:
            request._target += url  # the request line arrived in pieces
        if len(request._target) > self.factory.maxRequestLine:
            raise _Refused(414, f"request target over {self.factory.maxRequestLine} bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        request = self._parsing
        assert request is not None
        self._headBytes += len(name) + len(value) + 4
        if self._headBytes > self.factory.maxHeaderBytes:
            raise _Refused(431, f"request header fields over {self.factory.maxHeaderBytes} bytes")
        if request._headComplete:
            return  # a trailer field of a chunked body: counted, not kept
        name = name.lower()
        request._rawHeaders.append((name, value))
        if name in _WATCHED:
            if name == b"content-length":
                if request._contentLength is not None and request._contentLength != value:
                    raise _Refused(400, "conflicting Content-Length fields")
                request._contentLength = value
            elif name == b"transfer-encoding":
                request._hasTE = True
                # RFC 9112 6.1: chunked must be the final coding of a request; anything else is
                # a length we cannot know.
                if not value.lower().rstrip().endswith(b"chunked"):
                    raise _Refused(400, "the final transfer coding of a request must be chunked")
            elif name == b"host":
                request._hasHost += 1
            elif name == b"expect":
                if value.lower() == b"100-continue":
                    request._expectContinue = True
                else:
                    raise _Refused(417, f"unsupported expectation {value.decode('latin-1')!r}")

    def on_headers_complete(self) -> None:
        request = self._parsing
        assert request is not None
        parser = self._parser
        version = parser.get_http_version()
        if version != "1.1" and version != "1.0":
            raise _Refused(505, f"HTTP/{version} is not supported")
        request.httpVersion = version
        rawMethod = parser.get_method()
        request.method = _METHODS.get(rawMethod) or rawMethod.decode("ascii")
        split = _targets.get(request._target)
        if split is None:
            split = _splitTarget(request._target)
        request.target, request.path, request.query = split
        if request._hasTE and request._contentLength is not None:
            raise _Refused(400, "both Content-Length and Transfer-Encoding (RFC 9112 6.1)")
        if request._hasHost != 1 and (version == "1.1" or request._hasHost):
            raise _Refused(400, "a request must carry exactly one Host field")
        length = request._contentLength
        if length is not None and int(length) > self.factory.maxBodyBytes:
            raise _Refused(413, f"request body over {self.factory.maxBodyBytes} bytes")
        request._keepAlive = parser.should_keep_alive()
        request._headComplete = True
        if length is None and not request._hasTE:
            request._bodyDone = True  # on_message_complete follows in this feed
        self._headBytes = 0
        self._rawHead = 0
        self._queue.append(request)
        self.factory._inFlight += 1

    def on_body(self, body: bytes) -> None:
        request = self._parsing
        assert request is not None
        request._bodyReceived += len(body)
        if request._bodyReceived > self.factory.maxBodyBytes:
            raise _Refused(413, f"request body over {self.factory.maxBodyBytes} bytes")
        if request._discard:
            return
        request._chunks.append(body)
        request._unread += len(body)
        self._unread += len(body)
        if self._unread > self.factory.readBufferBytes and not self._readPaused:
            if self._active is not request or request._whole is None:
                self._pauseReading()

    def on_message_complete(self) -> None:
        request = self._parsing
        assert request is not None
        self._parsing = None
        self._headBytes = 0
        request._bodyDone = True

    # -- errors -------------------------------------------------------------------------------

    def _parseFailed(self, error: httptools.HttpParserError) -> None:
        cause = error.__context__
        if isinstance(cause, _Refused):
            self._refuse(cause)
        elif isinstance(cause, BaseException):
            log.error("error in the HTTP parser callbacks", exc_info=cause)
            self._refuse(_Refused(500, "internal server error"))
        else:
            text = str(error)
            status = 505 if "HTTP version" in text else 400
            self._refuse(_Refused(status, f"malformed request: {text}"))

    def _refuse(self, refusal: _Refused) -> None:
        """The parser met something it cannot accept: stop reading, answer it in turn, then close."""
        self._dead = True
        self._closing = True
        request = self._parsing
        self._parsing = None
        if request is not None and request._headComplete and request is not self._active:
            if self._queue and self._queue[-1] is request:
                # Its handler has not run yet: refuse it instead (one answer for one request).
                self._queue.pop()
                self.factory._inFlight -= 1
                request = None
        if request is not None and request._discard:
            self._lingeringClose()  # the skipped body of an answered request went wrong: just close
            return
        if request is not None and request._headComplete:
            # The body of a request already in line went wrong: its handler hears it from read/body,
            # and the connection closes after its response (no second answer for one request).
            request._bodyError = HTTPError(refusal.status, refusal.message)
            if request is self._active:
                request._deliver()
            return
        self._queue.append(_refusalRequest(self, refusal.status, refusal.message))

    # -- dispatching, in order ----------------------------------------------------------------

    def _advance(self) -> None:
        """Start the next request in line while none is active (a loop, so sync handlers do not recurse)."""
        if self._advancing:
            return
        self._advancing = True
        try:
            while self._active is None and self._queue and not self._lost:
                request = self._active = self._queue.popleft()
                if request._refusal is not None:
                    self._sendRefusal(request._refusal)
                    return
                self._dispatch(request)
            if self._active is None and not self._lost:
                self._becameIdle()
        finally:
            self._advancing = False

    def _dispatch(self, request: Request) -> None:
        if self._readPaused and len(self._queue) <= self.factory.maxPipelined:
            self._maybeResumeReading()
        if request._bodyDone:
            self._deadline = None  # the handler's time is its own
            self._deadlineKind = ""
        elif self._deadlineKind != "body":
            self._setDeadline(self.factory.bodyTimeout, "body")
        try:
            result = self._handler(request)
        except Exception:
            self._handlerFailed(Failure(), request)
            return
        if type(result) is Response:
            self._sendWhole(request, result)
            return
        if inspect.iscoroutine(result):
            result = Deferred.fromCoroutine(result)
        if isinstance(result, Deferred):
            result.addCallbacks(self._handlerDone, self._handlerFailed, (request,), None, (request,))
        else:
            self._handlerDone(result, request)

    def _handlerDone(self, result: object, request: Request) -> None:
        if self._lost or request is not self._active:
            return
        if type(result) is Response or isinstance(result, Response):
            if request._writer is not None:
                log.error(
                    "%s %s: handler returned a Response after calling respond()",
                    request.method,
                    request.target,
                )
                request._writer.abort()
                return
            self._sendWhole(request, result)
        elif result is None:
            if request._writer is None:
                log.error(
                    "%s %s: handler returned None without calling request.respond()",
                    request.method,
                    request.target,
                )
                self._sendError(request, 500, "internal server error")
        else:
            log.error(
                "%s %s: handler returned %r, not a Response or None",
                request.method,
                request.target,
                type(result).__name__,
            )
            self._sendError(request, 500, "internal server error")

    def _handlerFailed(self, failure: Failure, request: Request) -> None:
        if self._lost or request is not self._active:
            if failure.check(ConnectionLost):
                return  # the client left; nothing to say
            log.error(
                "%s %s: handler failed after its response ended or its client left:\n%s",
                request.method,
                request.target,
                failure.getTraceback(),
            )
            return
        writer = request._writer
        if writer is not None and writer._headSent:
            log.error(
                "%s %s: handler failed mid-response; dropping the connection:\n%s",
                request.method,
                request.target,
                failure.getTraceback(),
            )
            if not writer._finished:
                writer.abort()
            return
        if writer is not None:
            writer._finished = True  # unusable now: the error answer replaces it
        if failure.check(HTTPError):
            err = failure.value
            assert isinstance(err, HTTPError)
            self._sendError(request, err.status, err.message)
            return
        log.error("%s %s: handler failed:\n%s", request.method, request.target, failure.getTraceback())
        self._sendError(request, 500, "internal server error")

    # -- writing ------------------------------------------------------------------------------

    def _head(
        self,
        request: Request,
        status: int,
        block: bytes,
        framing: bytes,
        names: dict[str, str],
        reason: str | None = None,
    ) -> bytes:
        """The response head: status line, the application's header ``block``, the ``framing`` line,
        then Connection, Server and Date unless the application gave them."""
        # Closing after the answers in line: only the last one says so.
        keep = request._keepAlive and not (self._closing and not self._queue)
        if keep and request._expectContinue and not request._continueSent and not request._bodyDone:
            keep = False  # the client may never send the body we did not ask for: close after
        if names:
            connection = names.get("connection")
            if connection is not None and "close" in connection.lower():
                keep = False
            server = b"" if "server" in names else self.factory._serverLine
            date = b"" if "date" in names else self.factory._date.line()
        else:
            server = self.factory._serverLine
            date = self.factory._date.line()
        if not keep:
            request._keepAlive = False
            if "connection" not in names:
                framing += b"connection: close\r\n"
        elif request.httpVersion == "1.0":
            framing += b"connection: keep-alive\r\n"
        line = _statusLines.get(status if reason is None else (status, reason)) or statusLine(status, reason)
        return b"".join((line, block, framing, server, date, b"\r\n"))

    def _sendWhole(self, request: Request, response: Response) -> None:
        status = response.status
        try:
            block, names = _checkedHeaderBlock(response.headers)
            if status in _NO_BODY_STATUSES:
                body = b""
                framing = b""
            else:
                body = response.body
                declared = names.get("content-length") if request.method == "HEAD" else None
                if declared is None:
                    framing = b"content-length: %d\r\n" % len(body)
                else:
                    # HEAD: the length the GET would have, as the handler said (RFC 9110 9.3.2).
                    framing = b"content-length: %d\r\n" % _checkedLength(declared)
            head = self._head(request, status, block, framing, names, response.reason)
        except (TypeError, ValueError) as e:
            log.error("%s %s: bad response from the handler: %s", request.method, request.target, e)
            self._sendError(request, 500, "internal server error")
            return
        if request.method == "HEAD" or not body:
            self.transport.write(head)
        elif len(body) < 65536:
            self.transport.write(head + body)  # one send for the common small answer
        else:
            self.transport.write(head)  # no copy of a large body
            self.transport.write(body)
        self._responseDone(request)

    def _sendError(self, request: Request, status: int, message: str) -> None:
        body = f"{status} {message}\n".encode("utf-8", "replace")
        head = self._head(request, status, _ERROR_TYPE, b"content-length: %d\r\n" % len(body), _NO_NAMES)
        self.transport.write(head if request.method == "HEAD" else head + body)
        self._responseDone(request)

    def _sendRefusal(self, refusal: _Refused) -> None:
        """Answer a request the server refused, then close with a lingering close."""
        body = f"{refusal.status} {refusal.message}\n".encode("utf-8", "replace")
        head = b"".join(
            (
                statusLine(refusal.status),
                _ERROR_TYPE,
                b"content-length: %d\r\nconnection: close\r\n" % len(body),
                self.factory._serverLine,
                self.factory._date.line(),
                b"\r\n",
            )
        )
        self.transport.write(head + body)
        self._active = None
        self._lingeringClose()

    def _lingeringClose(self) -> None:
        # Closing a socket with unread input makes the kernel send a reset, which can destroy the
        # answer before the client reads it. So shut our sending side (the client sees the answer,
        # then EOF), drop what still arrives, and close for good when the client hangs up or later.
        self._dead = True
        self._deadline = None
        self._deadlineKind = ""
        self._maybeResumeReading(force=True)
        loseWrite = getattr(self.transport, "loseWriteConnection", None)
        if loseWrite is None or self.factory.lingerTimeout <= 0 or self._inputEnded:
            self.transport.loseConnection()
            return
        loseWrite()
        self._lingerCall = self._clock.callLater(self.factory.lingerTimeout, self.transport.loseConnection)

    def _responseDone(self, request: Request, abort: bool = False) -> None:
        """The active request's response is finished (or aborted): move on to the next one."""
        if request is not self._active:
            return
        factory = self.factory
        factory._inFlight -= 1
        factory._served += 1
        self._active = None
        if request._writer is not None:
            request._writer._finished = True
        if request._whenDone is not None and not request._whenDone.called:
            request._whenDone.callback(None)
        if self._lost or abort:
            return
        if request._unread:
            self._consumed(request._unread)
            request._unread = 0
            request._chunks.clear()
        if not request._keepAlive or (self._closing and not self._queue):
            self._closing = True
            self._dead = True
            if request._bodyDone and not self._queue and self._parsing is None:
                self.transport.loseConnection()
            else:
                self._lingeringClose()
            return
        if not request._bodyDone:
            request._discard = True  # skip the rest of its body, then serve the next request
        if not self._advancing:  # else the loop in _advance that called the handler goes on
            self._advance()

    def _becameIdle(self) -> None:
        """No request active: wait for the next one (idle), or for the rest of a head (head)."""
        factory = self.factory
        if factory._stopping and self._parsing is None:
            self._closing = True
            self.transport.loseConnection()
            return
        self._maybeResumeReading()
        parsing = self._parsing
        if parsing is None:
            self._setDeadline(factory.idleTimeout, "idle")
        elif parsing._headComplete:
            self._setDeadline(factory.bodyTimeout, "body")  # the rest of a body being skipped
        else:
            self._setDeadline(factory.headerTimeout, "head")

    # -- flow control of the input ------------------------------------------------------------

    def _wantBody(self, request: Request) -> None:
        """A handler waits for body bytes: ask for them (100 Continue) and make sure we read."""
        if (
            request._expectContinue
            and not request._continueSent
            and request is self._active
            and request.httpVersion == "1.1"
            and not request._bodyDone
        ):
            request._continueSent = True
            if request._writer is None or not request._writer._headSent:
                self.transport.write(_CONTINUE)
        if self._readPaused:
            self._maybeResumeReading()
        if request._chunks or request._bodyDone or request._bodyError is not None:
            if request is self._active:
                request._deliver()

    def _consumed(self, count: int) -> None:
        self._unread -= count
        if self._readPaused and self._unread <= self.factory.readBufferBytes:
            self._maybeResumeReading()

    def _pauseReading(self) -> None:
        if not self._readPaused:
            self._readPaused = True
            if self._deadlineKind == "body":
                self._deadline = None  # waiting on the application, not the client
                self._deadlineKind = ""
            self.transport.pauseProducing()

    def _maybeResumeReading(self, force: bool = False) -> None:
        if not self._readPaused or self._lost:
            return
        if not force:
            active = self._active
            limit = self.factory.readBufferBytes
            if active is not None and active._whole is not None:
                limit = self.factory.maxBodyBytes
            if self._unread > limit or len(self._queue) > self.factory.maxPipelined:
                return
        self._readPaused = False
        self.transport.resumeProducing()
        if self._parsing is not None and self._parsing._headComplete and not self._dead:
            self._setDeadline(self.factory.bodyTimeout, "body")

    # -- the timer ----------------------------------------------------------------------------

    def _setDeadline(self, delay: float, kind: str) -> None:
        clock = self._clock
        at = clock.seconds() + delay
        self._deadline = at
        self._deadlineKind = kind
        timer = self._timer
        if timer is None:
            self._timer = clock.callLater(delay, self._onTimer)
            self._timerAt = at
        elif at < self._timerAt:
            timer.reset(delay)
            self._timerAt = at

    def _onTimer(self) -> None:
        self._timer = None
        deadline = self._deadline
        if deadline is None or self._lost:
            return
        now = self._clock.seconds()
        if now < deadline:
            self._timer = self._clock.callLater(deadline - now, self._onTimer)
            self._timerAt = deadline
            return
        kind = self._deadlineKind
        self._deadline = None
        self._deadlineKind = ""
        factory = self.factory
        if kind == "idle":
            self._closing = True
            self._dead = True
            self.transport.loseConnection()
        elif kind == "head":
            self._parsing = None
            self._queue.append(
                _refusalRequest(self, 408, f"request head not received within {factory.headerTimeout:g} s")
            )
            self._dead = True
            self._closing = True
            self._advance()
        elif kind == "body":
            request = self._parsing
            self._dead = True
            self._closing = True
            if request is not None:
                request._bodyError = HTTPError(408, f"request body stalled for {factory.bodyTimeout:g} s")
                if request is self._active:
                    request._deliver()  # the handler decides; the connection closes after its response
                elif self._active is None:
                    self.transport.loseConnection()  # a skipped body stopped arriving

    def _cancelTimers(self) -> None:
        for call in (self._timer, self._lingerCall, self._pumpCall):
            if call is not None and call.active():
                call.cancel()
        self._timer = self._lingerCall = self._pumpCall = None
        self._deadline = None

    def closeWhenIdle(self) -> None:
        """Close now if no request is in line, else after the responses in line (graceful shutdown)."""
        self._closing = True
        if self._active is None and not self._queue and not self._lost:
            self._dead = True
            self.transport.loseConnection()

    def __repr__(self) -> str:
        state = "lost" if self._lost else ("active" if self._active is not None else "idle")
        return f"<HTTPChannel {state} queued={len(self._queue)}>"


_WATCHED = frozenset({b"content-length", b"transfer-encoding", b"host", b"expect"})


def _splitTarget(raw: bytes) -> tuple[str, str, str]:
    """A request target as (target, path, query); remembered, as clients ask for the same few again."""
    try:
        target = raw.decode("ascii")
    except UnicodeDecodeError:
        raise _Refused(400, "the request target is not ASCII") from None
    if target[0] == "/":
        path, _, query = target.partition("?")
    elif target == "*":
        path, query = "*", ""
    else:  # absolute-form: keep the path and query of the URI
        rest = target.partition("://")[2]
        pathAndQuery = rest[rest.find("/") :] if "/" in rest else "/"
        path, _, query = pathAndQuery.partition("?")
    split = (target, path, query)
    if len(raw) <= 256:
        if len(_targets) >= 1024:
            _targets.clear()  # many distinct targets: start over, stay bounded
        _targets[raw] = split
    return split


_targets: dict[bytes, tuple[str, str, str]] = {}


def _refusalRequest(channel: HTTPChannel, status: int, message: str) -> Request:
    placeholder = Request(channel, b"")
    placeholder._refusal = _Refused(status, message)
    placeholder.method = "?"
    placeholder.target = ""
    placeholder.httpVersion = "1.1"
    placeholder._bodyDone = True
    return placeholder


class HTTPFactory(Factory):
    """Builds an :class:`HTTPChannel` per connection; holds the handler, the limits and the statistics.

    For ``reactor.listenTCP``/``listenSSL``/``listenUNIX`` (or ``listenHTTP``). ``reactor`` (default:
    ``getReactor()``) schedules the timeouts; a ``reactor.task.Clock`` drives them in tests.
    """

    def __init__(
        self,
        handler: Handler,
        *,
        serverName: str = "deferthreads",
        maxRequestLine: int = 8192,
        maxHeaderBytes: int = 65536,
        maxBodyBytes: int = 1 << 20,
        headerTimeout: float = 20.0,
        bodyTimeout: float = 60.0,
        idleTimeout: float = 60.0,
        lingerTimeout: float = 2.0,
        maxPipelined: int = 16,
        readBufferBytes: int = 65536,
        reactor: Any = None,
    ) -> None:
        if not callable(handler):
            raise TypeError(f"handler must be callable, got {handler!r}")
        for name, value in (
            ("maxRequestLine", maxRequestLine),
            ("maxHeaderBytes", maxHeaderBytes),
            ("maxBodyBytes", maxBodyBytes),
            ("maxPipelined", maxPipelined),
            ("readBufferBytes", readBufferBytes),
        ):
            if type(value) is not int or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        for name, seconds in (
            ("headerTimeout", headerTimeout),
            ("bodyTimeout", bodyTimeout),
            ("idleTimeout", idleTimeout),
            ("lingerTimeout", lingerTimeout),
        ):
            if not isinstance(seconds, int | float) or seconds != seconds or seconds < 0:
                raise ValueError(f"{name} must be a number of seconds >= 0, got {seconds!r}")
        if not isinstance(serverName, str) or any(c in serverName for c in "\r\n\0"):
            raise ValueError(f"serverName must be a str without CR, LF or NUL, got {serverName!r}")
        try:
            serverLine = f"server: {serverName}\r\n".encode("latin-1")
        except UnicodeEncodeError:
            raise ValueError(f"serverName must be latin-1 text, got {serverName!r}") from None
        if reactor is None:
            from reactor._default import getReactor

            reactor = getReactor()
        self.handler = handler
        self.reactor = reactor
        self.serverName = serverName
        self.maxRequestLine = maxRequestLine
        self.maxHeaderBytes = maxHeaderBytes
        self.maxBodyBytes = maxBodyBytes
        self.headerTimeout = float(headerTimeout)
        self.bodyTimeout = float(bodyTimeout)
        self.idleTimeout = float(idleTimeout)
        self.lingerTimeout = float(lingerTimeout)
        self.maxPipelined = maxPipelined
        self.readBufferBytes = readBufferBytes
        self._serverLine = serverLine
        self._date = DateCache()
        self._channels: set[HTTPChannel] = set()
        self._inFlight = 0
        self._served = 0
        self._stopping = False
        self._drainWaiters: list[Deferred[None]] = []
        self._drainDeadline: Any = None

    def buildProtocol(self, addr: Any) -> HTTPChannel | None:
        """A channel for a new connection; None (refused) once ``stopGracefully`` was called."""
        if self._stopping:
            return None
        return HTTPChannel(self)

    @property
    def inFlight(self) -> int:
        """Requests whose head was received and whose response is not finished."""
        return self._inFlight

    @property
    def requestsServed(self) -> int:
        """Responses finished (or aborted) since the factory was made."""
        return self._served

    @property
    def connections(self) -> int:
        """Open connections."""
        return len(self._channels)

    def stopGracefully(self, timeout: float) -> Deferred[None]:
        """Finish the requests in flight, close idle connections; drop what is left after ``timeout`` s.

        Fires (None) once every connection is closed. New connections are refused from now on
        (closing the listening port is the caller's job).
        """
        if not isinstance(timeout, int | float) or timeout != timeout or timeout < 0:
            raise ValueError(f"timeout must be a number of seconds >= 0, got {timeout!r}")
        self._stopping = True
        for channel in list(self._channels):
            channel.closeWhenIdle()
        d: Deferred[None] = Deferred()
        if not self._channels:
            d.callback(None)
            return d
        self._drainWaiters.append(d)
        if self._drainDeadline is None:
            self._drainDeadline = self.reactor.callLater(timeout, self._dropRemaining)
        return d

    def _dropRemaining(self) -> None:
        self._drainDeadline = None
        remaining = list(self._channels)
        if remaining:
            log.warning("graceful stop: dropping %d connection(s) still open at the deadline", len(remaining))
        for channel in remaining:
            channel.transport.abortConnection()
        self._fireDrained()

    def _channelGone(self, channel: HTTPChannel) -> None:
        self._channels.discard(channel)
        if self._stopping and not self._channels:
            if self._drainDeadline is not None and self._drainDeadline.active():
                self._drainDeadline.cancel()
            self._drainDeadline = None
            self._fireDrained()

    def _fireDrained(self) -> None:
        waiters, self._drainWaiters = self._drainWaiters, []
        for d in waiters:
            d.callback(None)

    def __repr__(self) -> str:
        return (
            f"<HTTPFactory connections={len(self._channels)} inFlight={self._inFlight} "
            f"served={self._served}{' stopping' if self._stopping else ''}>"
        )
