"""A small HTTP/1.1 server protocol: h11 (sans-IO) parsing over a reactor stream transport.

:class:`HTTPServerProtocol` turns bytes into :class:`Request` objects, calls the handler (which
returns a :class:`Response`, a Deferred of one, or a coroutine), and writes the response. It keeps
connections alive between requests (HTTP/1.1 default), answers pipelined requests in order, caps
the header block and the body size (431 / 413), answers malformed requests with 400, and turns a
handler exception into a logged 500 whose body carries no traceback. The factory counts requests in
flight so a server can shut down gracefully (:meth:`HTTPFactory.shutdown`).

Everything runs in the reactor thread. The handler is called there too: it must not block (run
blocking work with ``deferToThread`` or a database pool).
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import h11

from reactor import Deferred, Failure, succeed
from reactor.protocol import Factory, Protocol, connectionDone

__all__ = ["HTTPError", "HTTPFactory", "HTTPServerProtocol", "Request", "Response"]

log = logging.getLogger("examples.http")

_REASONS = {
    200: b"OK",
    201: b"Created",
    204: b"No Content",
    400: b"Bad Request",
    404: b"Not Found",
    405: b"Method Not Allowed",
    408: b"Request Timeout",
    413: b"Content Too Large",
    415: b"Unsupported Media Type",
    431: b"Request Header Fields Too Large",
    500: b"Internal Server Error",
    503: b"Service Unavailable",
}


class Request:
    """One parsed request: method and target as text, the whole body; headers and query decoded lazily."""

    def __init__(self, method: str, target: str, rawHeaders: Any, body: bytes = b"") -> None:
        self.method = method
        self.target = target
        self.body = body
        self._rawHeaders = rawHeaders  # h11's (lower-cased name, value) byte pairs
        if target.startswith("/"):
            path, _, self._rawQuery = target.partition("?")
            self.path = path
        else:  # absolute-form ("http://host/path?q") or asterisk-form
            parts = urlsplit(target)
            self.path = parts.path or "/"
            self._rawQuery = parts.query

    @functools.cached_property
    def headers(self) -> list[tuple[str, str]]:
        """The headers as (lower-cased name, value) text pairs, in order."""
        return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in self._rawHeaders]

    @functools.cached_property
    def query(self) -> dict[str, list[str]]:
        """The query string parsed with ``urllib.parse.parse_qs``."""
        return parse_qs(self._rawQuery) if self._rawQuery else {}

    def header(self, name: str, default: str | None = None) -> str | None:
        """The first value of header ``name`` (case-insensitive)."""
        name = name.lower()
        return next((v for k, v in self.headers if k == name), default)

    def json(self) -> Any:
        """The body parsed as JSON; raises HTTPError(400) if it is not valid JSON."""
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as e:
            raise HTTPError(400, f"request body is not valid JSON: {e}") from None

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.target} body={len(self.body)}B>"


@dataclass
class Response:
    """A complete response: status, headers (str pairs) and body bytes."""

    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def fromJSON(cls, obj: Any, status: int = 200) -> Response:
        """A JSON response (``Content-Type: application/json``)."""
        body = json.dumps(obj, separators=(",", ":")).encode("utf-8")
        return cls(status, body, [("content-type", "application/json")])


class HTTPError(Exception):
    """Raise from a handler to answer with ``status`` and a JSON ``{"error": message}`` body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(status, message)
        self.status = status
        self.message = message


Handler = Callable[[Request], Any]


def _errorResponse(status: int, message: str) -> Response:
    return Response.fromJSON({"error": message}, status)


class HTTPServerProtocol(Protocol):
    """One HTTP/1.1 connection (see the module docstring). Reactor thread only."""

    factory: HTTPFactory

    lingerSeconds = 2.0

    def __init__(
        self,
        handler: Handler,
        maxBodySize: int,
        maxHeaderSize: int,
        clock: Any = None,
        idleTimeout: float = 60.0,
    ) -> None:
        self.handler = handler
        self.clock = clock
        self.idleTimeout = idleTimeout
        # Armed while we wait for a (complete) request: an idle keep-alive connection is closed, a
        # request that trickles in too slowly (slowloris) gets 408. Needs a clock.
        self._idleTimer: Any = None
        self._lingering: Any = None  # the timer of a lingering close, once an error answer is sent
        self.maxBodySize = maxBodySize
        self.maxHeaderSize = maxHeaderSize
        self._conn = h11.Connection(h11.SERVER, max_incomplete_event_size=maxHeaderSize)
        self._request: h11.Request | None = None
        self._body: list[bytes] = []
        self._bodySize = 0
        self._busy = False  # a handler is running (its response not written yet)
        self._closeAfterResponse = False
        self._lost = False

    def connectionMade(self) -> None:
        self.factory._connections.add(self)
        self._armIdleTimer()

    def _armIdleTimer(self) -> None:
        if self.clock is None:
            return
        self._cancelIdleTimer()
        self._idleTimer = self.clock.callLater(self.idleTimeout, self._idleTimedOut)

    def _cancelIdleTimer(self) -> None:
        timer, self._idleTimer = self._idleTimer, None
        if timer is not None and timer.active():
            timer.cancel()

    def _idleTimedOut(self) -> None:
        self._idleTimer = None
        if self._busy or self._lost:
            return
        if self.idle and not self._conn.trailing_data[0]:
            self.transport.loseConnection()  # an idle keep-alive connection: just close it
        else:
            self._sendError(408, f"request not received within {self.idleTimeout:g} s")

    def dataReceived(self, data: bytes) -> None:
        if self._lingering is not None or not data:
            # (the rest of a request we refused: read and drop it until the client hangs up; and an
            # empty chunk would mean end-of-input to h11, which transports say with connectionLost)
            return
        self._conn.receive_data(data)
        self._processEvents()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._lost = True
        self._cancelIdleTimer()
        if self._lingering is not None and self._lingering.active():
            self._lingering.cancel()
        self.factory._connections.discard(self)
        super().connectionLost(reason)

    @property
    def idle(self) -> bool:
        """True between requests (nothing received of the next one, no handler running)."""
        return not self._busy and self._request is None and self._conn.their_state is h11.IDLE

    def closeWhenIdle(self) -> None:
        """Close now if idle, else right after the current response (graceful shutdown)."""
        self._closeAfterResponse = True
        if self.idle:
            self.transport.loseConnection()

    def _processEvents(self) -> None:
        while not self._busy and not self._lost:
            try:
                event = self._conn.next_event()
            except h11.RemoteProtocolError as e:
                status = e.error_status_hint
                if status == 400 and "exceeded" in str(e):
                    status = 431
                self._sendError(status, f"malformed request: {e}")
                return
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.Request):
                if not self._startRequest(event):
                    return
            elif isinstance(event, h11.Data):
                self._bodySize += len(event.data)
                if self._bodySize > self.maxBodySize:
                    self._sendError(413, f"request body exceeds {self.maxBodySize} bytes")
                    return
                self._body.append(event.data)
            elif isinstance(event, h11.EndOfMessage):
                self._dispatch()
            elif isinstance(event, h11.ConnectionClosed):
                self.transport.loseConnection()
                return

    def _startRequest(self, event: h11.Request) -> bool:
        self._request = event
        self._body = []
        self._bodySize = 0
        # h11 bounds only an *incomplete* head; a complete one that arrived in one read is checked here.
        headSize = len(event.target) + sum(len(k) + len(v) + 4 for k, v in event.headers)
        if headSize > self.maxHeaderSize:
            self._sendError(431, f"request head exceeds {self.maxHeaderSize} bytes")
            return False
        for name, value in event.headers:
            if name == b"content-length" and int(value) > self.maxBodySize:
                self._sendError(413, f"request body exceeds {self.maxBodySize} bytes")
                return False
        return True

    def _dispatch(self) -> None:
        event = self._request
        assert event is not None
        try:
            request = Request(
                event.method.decode("ascii"),
                event.target.decode("ascii"),
                event.headers,
                b"".join(self._body) if self._body else b"",
            )
        except UnicodeDecodeError:
            self._sendError(400, "request target is not ASCII")
            return
        self._busy = True
        self._cancelIdleTimer()
        self.factory.inFlight += 1

        try:
            result = self.handler(request)
        except Exception:
            self._handlerFailed(Failure(), request)
            self._requestFinished(None)
            return
        if isinstance(result, Response):
            # The common synchronous case: answer now, without a Deferred round trip.
            self._handlerDone(result)
            self._requestFinished(None)
            return
        if inspect.iscoroutine(result):
            result = Deferred.fromCoroutine(result)
        d = result if isinstance(result, Deferred) else succeed(result)
        d.addCallbacks(self._handlerDone, self._handlerFailed, errbackArgs=(request,))
        d.addBoth(self._requestFinished)

    def _handlerDone(self, response: Any) -> None:
        if not isinstance(response, Response):
            log.error("handler returned %r, not a Response", type(response).__name__)
            response = _errorResponse(500, "internal server error")
        self._writeResponse(response)

    def _handlerFailed(self, failure: Failure, request: Request) -> None:
        if failure.check(HTTPError):
            err = failure.value
            assert isinstance(err, HTTPError)
            self._writeResponse(_errorResponse(err.status, err.message))
            return
        log.error("handler error for %s %s:\n%s", request.method, request.target, failure.getTraceback())
        self._writeResponse(_errorResponse(500, "internal server error"))

    def _requestFinished(self, _: object) -> None:
        self.factory._requestDone()

    def _writeResponse(self, response: Response) -> None:
        self._request = None
        if self._lost:
            return
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
        headers.append((b"content-length", str(len(response.body)).encode("ascii")))
        if self._closeAfterResponse:
            headers.append((b"connection", b"close"))
        reason = _REASONS.get(response.status, b"")
        try:
            out = self._conn.send(h11.Response(status_code=response.status, headers=headers, reason=reason))
            out += self._conn.send(h11.Data(data=response.body)) if response.body else b""
            out += self._conn.send(h11.EndOfMessage())
        except h11.LocalProtocolError:
            log.exception("cannot send the response")
            self.transport.abortConnection()
            return
        self.transport.write(out)
        self._busy = False
        if self._conn.our_state is h11.MUST_CLOSE or self._closeAfterResponse:
            self.transport.loseConnection()
            return
        try:
            self._conn.start_next_cycle()
        except h11.LocalProtocolError:
            self.transport.loseConnection()
            return
        self._armIdleTimer()
        self._processEvents()  # a pipelined request may already be buffered

    def _sendError(self, status: int, message: str) -> None:
        """Answer a request we could not parse or accept, then close (h11 cannot resync)."""
        self._closeAfterResponse = True
        self._request = None
        if self._conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            # Written by hand, not through h11: the connection closes right after, and h11 refuses a
            # response while it has not seen a complete request (the 408 of a trickling one).
            body = json.dumps({"error": message}).encode("utf-8")
            head = (
                f"HTTP/1.1 {status} {_REASONS.get(status, b'').decode()}\r\n"
                f"content-type: application/json\r\ncontent-length: {len(body)}\r\n"
                "connection: close\r\n\r\n"
            )
            self.transport.write(head.encode("ascii") + body)
        if self.clock is None:
            self.transport.loseConnection()
            return
        # Lingering close: closing a socket with unread input makes the kernel send a reset, which
        # can destroy our error answer before the client reads it. So stop writing (the client sees
        # EOF after the answer), drop whatever still arrives, and close when it hangs up or later.
        self.transport.loseWriteConnection()
        self._lingering = self.clock.callLater(self.lingerSeconds, self.transport.loseConnection)


class HTTPFactory(Factory):
    """Builds an :class:`HTTPServerProtocol` per connection; tracks connections and requests in flight."""

    def __init__(
        self,
        handler: Handler,
        maxBodySize: int = 1024 * 1024,
        maxHeaderSize: int = 16 * 1024,
        clock: Any = None,
        idleTimeout: float = 60.0,
    ) -> None:
        self.handler = handler
        # The clock drives idle/slow-request timeouts and lingering closes (None: no timers).
        self.clock = clock
        self.idleTimeout = idleTimeout
        self.maxBodySize = maxBodySize
        self.maxHeaderSize = maxHeaderSize
        self.inFlight = 0
        self.requestsServed = 0
        self._connections: set[HTTPServerProtocol] = set()
        self._idleWaiters: list[Deferred[None]] = []
        self._shuttingDown = False

    def buildProtocol(self, addr: Any) -> HTTPServerProtocol | None:
        if self._shuttingDown:
            return None
        p = HTTPServerProtocol(
            self.handler, self.maxBodySize, self.maxHeaderSize, self.clock, self.idleTimeout
        )
        p.factory = self
        return p

    def _requestDone(self) -> None:
        self.inFlight -= 1
        self.requestsServed += 1
        if self.inFlight == 0:
            waiters, self._idleWaiters = self._idleWaiters, []
            for d in waiters:
                d.callback(None)

    def shutdown(self) -> Deferred[None]:
        """Close idle keep-alive connections, let busy ones finish their response and close.

        Fires (with None) once no request is in flight.
        """
        self._shuttingDown = True
        for conn in list(self._connections):
            conn.closeWhenIdle()

        def forget(d: Deferred[None]) -> None:
            if d in self._idleWaiters:
                self._idleWaiters.remove(d)

        d: Deferred[None] = Deferred(forget)
        if self.inFlight == 0:
            d.callback(None)
        else:
            self._idleWaiters.append(d)
        return d

    def abortAll(self) -> int:
        """Abort every open connection (the end of a shutdown that waited too long); returns how many."""
        connections = list(self._connections)
        for conn in connections:
            conn.transport.abortConnection()
        return len(connections)
