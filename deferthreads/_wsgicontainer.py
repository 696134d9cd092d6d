"""``WSGIContainer``: a ``reactor.web`` handler that runs a PEP 3333 application in a thread pool.

The path of one request, and the threads it crosses:

1. Reactor thread, :meth:`WSGIContainer.__call__`: a small body (``Content-Length`` up to
   ``prefetchBytes``) is read first, without holding a thread; then the request is queued for the pool.
2. Worker thread, :meth:`_Exchange.run`: builds the environ, calls the application, iterates its result.
   A response known whole once its first block is in (a list or tuple, or a first block as long as the
   ``Content-Length`` the application gave) goes back in one ``callFromThread`` as a ``Response``: one
   hand-off to the worker and one back. Anything else is streamed: the headers and each block go to the
   reactor as they come, and the worker blocks once more than ``maxPendingOutput`` bytes are on their way
   to a client that has not taken them (the ``Deferred`` of ``ResponseWriter.write``): backpressure.
3. A streamed ``wsgi.input`` asks the reactor for the next piece of the body and blocks until it comes.

Every call from the worker into the reactor is ``callFromThread``, in order, so the reactor sees the
request's events in the order the worker made them. The application's iterable is always closed, in the
worker, whatever happened (an error, a client gone, a ``Content-Length`` reached).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any

from deferthreads import QueueFull, ThreadPool, ThreadPoolStopped
from deferthreads._wsgienviron import (
    EnvironBuilder,
    ErrorStream,
    FileWrapper,
    checkHeaders,
    parseStatus,
    pathInfo,
)
from deferthreads._wsgiinput import InputStream
from reactor import Deferred, Failure
from reactor.protocol import ConnectionLost
from reactor.web import Request, Response, ResponseWriter

__all__ = ["WSGIContainer"]

_log = logging.getLogger("deferthreads.wsgi")

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
StartResponse = Callable[..., Callable[[bytes], None]]
WSGIApplication = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

_EMPTY_INPUT = InputStream()  # every request without a body shares it: read() is always b""
_ERROR_BODY = b"Internal Server Error\n"
_UNAVAILABLE_BODY = b"Service Unavailable\n"
_TEXT = [("Content-Type", "text/plain; charset=utf-8")]
# How often a blocked worker checks that the reactor still runs (its only way out if it stopped).
_WAIT_SLICE = 1.0


class ClientGone(ConnectionLost):
    """Raised in the application (by ``write`` or ``wsgi.input``) once its client has gone."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "the client went away"


class WSGIContainer:
    """A ``reactor.web`` handler that serves ``application`` from the worker threads of ``threadpool``.

    ``WSGIContainer(application, reactor=r, threadpool=p)`` is Twisted's ``WSGIResource(r, p, application)``
    for ``reactor.web``: pass it to ``HTTPFactory`` or ``listenHTTP``. Call it in the reactor thread (the
    server does); the application runs in ``threadpool`` (default: the reactor's shared pool, started and
    drained with the reactor), never in the reactor thread.

    * ``scriptName``: where the application is mounted (SCRIPT_NAME, e.g. ``"/app"``); requests outside it
      get 404 without reaching the application.
    * ``prefetchBytes``: a body with a ``Content-Length`` up to this is read before the application runs
      (no thread waits on a slow client); longer and chunked bodies stream through ``wsgi.input``.
    * ``maxInputChunk``: the most body bytes ``wsgi.input`` asks of the reactor at a time.
    * ``maxPendingOutput``: the most response bytes a worker may have on their way to the client beyond
      what the connection's buffer holds; past it ``write``/iteration blocks until the client reads.
    * ``accessLog``: called in the reactor thread as ``accessLog(request, status, bytesSent)`` when a
      response is handed to the server.
    """

    def __init__(
        self,
        application: WSGIApplication,
        *,
        reactor: Any = None,
        threadpool: ThreadPool | None = None,
        scriptName: str = "",
        prefetchBytes: int = 65536,
        maxInputChunk: int = 65536,
        maxPendingOutput: int = 65536,
        accessLog: Callable[[Request, int, int], object] | None = None,
    ) -> None:
        if not callable(application):
            raise TypeError(f"application must be callable, not {type(application).__name__}")
        if threadpool is not None and not isinstance(threadpool, ThreadPool):
            raise TypeError(f"threadpool must be a ThreadPool or None, not {type(threadpool).__name__}")
        if not isinstance(scriptName, str) or (
            scriptName and (not scriptName.startswith("/") or scriptName.endswith("/"))
        ):
            raise ValueError(f"scriptName must be '' or '/path' (no trailing '/'), got {scriptName!r}")
        for name, value, minimum in (
            ("prefetchBytes", prefetchBytes, 0),
            ("maxInputChunk", maxInputChunk, 1),
            ("maxPendingOutput", maxPendingOutput, 1),
        ):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int, not {type(value).__name__}")
            if value < minimum:
                raise ValueError(f"{name} must be >= {minimum}, got {value}")
        if accessLog is not None and not callable(accessLog):
            raise TypeError(f"accessLog must be callable or None, not {type(accessLog).__name__}")
        if reactor is None:
            from reactor import getReactor

            reactor = getReactor()
        if threadpool is None:
            from deferthreads import getThreadPool

            threadpool = getThreadPool(reactor)
        self.application = application
        self.reactor = reactor
        self.threadpool = threadpool
        self.scriptName = scriptName
        self.prefetchBytes = prefetchBytes
        self.maxInputChunk = maxInputChunk
        self.maxPendingOutput = maxPendingOutput
        self.accessLog = accessLog
        self._environ = EnvironBuilder(scriptName, FileWrapper)

    def __repr__(self) -> str:
        return f"<WSGIContainer {self.application!r} on {self.threadpool!r}>"

    def __call__(self, request: Request) -> Deferred[Response | None] | Response:
        """Serve ``request`` (reactor thread): a Deferred that fires with the whole ``Response``, or with
        None once the response has started streaming through ``request.respond``."""
        path = request.path
        if self.scriptName:
            prefix = self.scriptName
            if not (path == prefix or path.startswith(prefix + "/")):
                return Response(404, _TEXT, b"Not Found\n")
            path = path[len(prefix) :]
        headers = request.headers
        exchange = _Exchange(self, request, path)
        if headers.get("transfer-encoding") is None:
            length = headers.get("content-length")
            if length is None or length == "0":
                return self._dispatch(exchange, _EMPTY_INPUT)
            if length.isdigit() and int(length) <= self.prefetchBytes:
                request.body().addCallbacks(self._prefetched, exchange.prefetchFailed, (exchange,))
                return exchange.deferred
        return self._dispatch(exchange, InputStream(b"", exchange.read, self.maxInputChunk))

    def _prefetched(self, body: bytes, exchange: _Exchange) -> None:
        self._dispatch(exchange, InputStream(body))

    def _dispatch(self, exchange: _Exchange, stream: InputStream) -> Deferred[Response | None]:
        exchange.stream = stream
        try:
            self.threadpool.callInThreadWithCallback(exchange.ranOut, exchange.run)
        except (QueueFull, ThreadPoolStopped) as e:
            request = exchange.request
            _log.warning("WSGI request %s %s refused: %s", request.method, request.target, e)
            exchange.complete(Response(503, _TEXT, _UNAVAILABLE_BODY))
        return exchange.deferred


class _Exchange:
    """One request crossing between the reactor thread and the worker running the application.

    Fields by owner: ``request``, ``deferred``, ``writer``, ``watching``, ``status`` and ``sent`` are the
    reactor thread's (``client``, ``host`` and ``secure`` too, set before the worker starts, read-only
    after); ``startStatus``, ``code``, ``headers``, ``streaming``, ``body`` and ``remaining`` are the
    worker's; ``unacked``, ``waiting``, ``readValue``, ``readDone`` and ``gone`` are shared, under
    ``cond`` (``gone`` is also read without it, as a hint: it only ever goes from None to an exception).
    """

    __slots__ = (
        "body",
        "client",
        "code",
        "cond",
        "container",
        "deferred",
        "gone",
        "headers",
        "host",
        "path",
        "readDone",
        "readValue",
        "reason",
        "remaining",
        "request",
        "secure",
        "sent",
        "startStatus",
        "status",
        "stream",
        "streaming",
        "unacked",
        "waiting",
        "watching",
        "writer",
    )

    def __init__(self, container: WSGIContainer, request: Request, path: str) -> None:
        self.container = container
        self.request = request
        self.path = path
        # The transport is the reactor thread's: read its addresses here, for the worker's environ.
        self.client = request.client
        self.host = request.host
        self.secure = request.isSecure
        self.sent = 0
        self.status = 0
        self.stream: InputStream = _EMPTY_INPUT
        self.deferred: Deferred[Response | None] = Deferred()
        self.writer: ResponseWriter | None = None
        self.watching = False
        self.cond = threading.Condition(threading.Lock())
        self.unacked = 0
        self.waiting = False
        self.readValue: bytes | None = None
        self.readDone = False
        self.gone: BaseException | None = None
        # Worker side: what start_response set and how far the response got.
        self.startStatus: str | None = None
        self.code = 0
        self.reason = ""  # the application's reason phrase, sent as it gave it
        self.headers: list[tuple[str, str]] = []
        self.streaming = False
        self.body = b""
        self.remaining: int | None = None  # bytes still due by the application's Content-Length

    # -- worker thread: the application --------------------------------------------------------------

    def run(self) -> None:
        """Run the application for this request and hand its response to the reactor (worker thread)."""
        container = self.container
        errors = ErrorStream()
        path = pathInfo(self.path)
        environ = container._environ.build(self.request, path, self.stream, errors, self.client, self.host,
                                           self.secure)
        result: Any = None
        failed: BaseException | None = None
        try:
            result = container.application(environ, self.startResponse)
            self._consume(result)
        except Exception as e:
            failed = e
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                try:
                    close()
                except Exception as e:
                    failed = failed or e
            errors.flush()
        if failed is not None:
            self._failed(failed)
        else:
            self._end()

    def ranOut(self, ok: bool, result: object) -> None:
        """The pool's report (a worker, or whichever thread abandoned the call at a pool's stop)."""
        if not ok:
            self.container.reactor.callFromThread(self._abandoned, result)

    def startResponse(
        self, status: str, response_headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
    ) -> Callable[[bytes], None]:
        """PEP 3333's ``start_response``: remember the status and headers; return the ``write`` callable.

        With ``exc_info`` after the headers went out, re-raises that exception (the application must let it
        propagate); before, replaces status and headers. A second call without ``exc_info`` raises
        ``RuntimeError``.
        """
        if exc_info is not None:
            try:
                if self.streaming:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None  # no cycle through this frame (PEP 3333)
        elif self.startStatus is not None:
            raise RuntimeError("start_response() called a second time without exc_info")
        code = parseStatus(status)
        headers = checkHeaders(response_headers)
        remaining = None
        for name, value in headers:
            if len(name) == 14 and name.lower() == "content-length":
                value = value.strip()
                if not value.isdigit():
                    raise ValueError(f"start_response: Content-Length must be a byte count, got {value!r}")
                remaining = int(value)
        self.startStatus = status
        self.code = code
        self.reason = status[4:]
        self.headers = headers
        self.remaining = remaining
        return self.write

    def write(self, data: bytes) -> None:
        """PEP 3333's ``write`` callable: send ``data`` now (headers first); block while the client lags."""
        if type(data) is not bytes:
            raise TypeError(f"write() takes bytes, not {type(data).__name__}")
        if self.startStatus is None:
            raise RuntimeError("write() called before start_response()")
        if self.gone is not None:
            raise ClientGone(f"the client went away: {self.gone}")
        if not self.streaming:
            self._startStream(data)
        elif data:
            self._send(data)

    def _consume(self, result: Iterable[bytes]) -> None:
        if not self.streaming and type(result) in (list, tuple):
            # Every block is already made: nothing is delayed by sending them together.
            for block in result:
                if type(block) is not bytes:
                    raise TypeError(f"the application's iterable yielded {type(block).__name__}, not bytes")
            body = b"".join(result)
            if body and self.startStatus is None:
                raise RuntimeError("the application returned a body before calling start_response()")
            self.body = body
            return
        for block in result:
            if type(block) is not bytes:
                raise TypeError(f"the application's iterable yielded {type(block).__name__}, not bytes")
            if not block:
                continue  # PEP 3333: headers wait for a non-empty block
            if self.streaming:
                self._send(block)
            elif self.startStatus is None:
                raise RuntimeError("the application yielded a body block before calling start_response()")
            elif self.remaining is not None and len(block) >= self.remaining:
                self.body = block  # the whole declared body: no need to look for more
                return
            else:
                self._startStream(block)
            if self.gone is not None:
                _log.debug("client of %s %s went away; closing the application's iterable",
                           self.request.method, self.request.target)
                return

    def _clip(self, data: bytes) -> bytes:
        remaining = self.remaining
        if remaining is None:
            return data
        if len(data) > remaining:
            _log.warning("WSGI application sent more than its Content-Length for %s %s; extra bytes dropped",
                         self.request.method, self.request.target)
            data = data[:remaining]
        self.remaining = remaining - len(data)
        return data

    def _startStream(self, data: bytes) -> None:
        self.streaming = True
        data = self._clip(data)
        with self.cond:
            self.unacked += len(data)
        self.container.reactor.callFromThread(
            self._beginInReactor, self.code, self.reason, self.headers, data
        )
        self._waitForClient()

    def _send(self, data: bytes) -> None:
        if self.gone is not None:
            raise ClientGone(f"the client went away: {self.gone}")
        data = self._clip(data)
        if not data:
            return
        with self.cond:
            self.unacked += len(data)
        self.container.reactor.callFromThread(self._writeInReactor, data)
        self._waitForClient()

    def _waitForClient(self) -> None:
        # Block while more than maxPendingOutput bytes have not been taken by the connection.
        limit = self.container.maxPendingOutput
        if self.unacked <= limit:
            return
        with self.cond:
            while self.unacked > limit and self.gone is None:
                self.waiting = True
                try:
                    if not self.cond.wait(_WAIT_SLICE):
                        self._checkReactor()
                finally:
                    self.waiting = False
        if self.gone is not None:
            raise ClientGone(f"the client went away: {self.gone}")

    def _checkReactor(self) -> None:
        if not self.container.reactor.running:
            self.gone = ClientGone("the reactor stopped")

    def read(self, size: int) -> bytes:
        """``wsgi.input``'s fetch: the next body bytes from the reactor (worker thread; blocks)."""
        if self.gone is not None:
            raise ClientGone(f"the client went away while the application read the body: {self.gone}")
        with self.cond:
            self.readDone = False
            self.readValue = None
        self.container.reactor.callFromThread(self._readInReactor, size)
        with self.cond:
            while not self.readDone and self.gone is None:
                self.waiting = True
                try:
                    if not self.cond.wait(_WAIT_SLICE):
                        self._checkReactor()
                finally:
                    self.waiting = False
            if self.readDone and self.readValue is not None:
                return self.readValue
        raise ClientGone(f"the client went away while the application read the body: {self.gone}")

    def _end(self) -> None:
        if self.streaming:
            if self.remaining:
                _log.warning("WSGI application sent %d bytes less than its Content-Length for %s %s; "
                             "connection dropped", self.remaining, self.request.method, self.request.target)
                self.container.reactor.callFromThread(self._abortInReactor)
            else:
                self.container.reactor.callFromThread(self._finishInReactor)
            return
        if self.startStatus is None:
            self._failed(RuntimeError("the application returned without calling start_response()"))
            return
        body = self.body
        headers = self.headers
        if self.remaining is not None and self.request.method != "HEAD":
            # The server sets Content-Length from the body it is given (for HEAD it keeps the
            # application's: the length the GET would have, RFC 9110 9.3.2).
            headers = [h for h in headers if h[0].lower() != "content-length"]
            if len(body) > self.remaining:
                body = self._clip(body)
            elif len(body) < self.remaining:
                _log.warning("WSGI application sent %d bytes less than its Content-Length for %s %s",
                             self.remaining - len(body), self.request.method, self.request.target)
        try:
            response = Response(self.code, headers, body, reason=self.reason)
        except (TypeError, ValueError) as e:
            self._failed(e)
            return
        self.container.reactor.callFromThread(self.complete, response)

    def _failed(self, error: BaseException) -> None:
        if isinstance(error, ClientGone):
            _log.debug("WSGI request %s %s: %s", self.request.method, self.request.target, error)
        else:
            _log.error("WSGI application failed on %s %s", self.request.method, self.request.target,
                       exc_info=(type(error), error, error.__traceback__))
        if self.streaming:
            self.container.reactor.callFromThread(self._abortInReactor)
        else:
            self.container.reactor.callFromThread(self.complete, Response(500, _TEXT, _ERROR_BODY))

    # -- reactor thread ---------------------------------------------------------------------------

    def complete(self, response: Response) -> None:
        """Hand the whole ``response`` to the server (reactor thread)."""
        if not self.deferred.called:
            log = self.container.accessLog
            if log is not None:
                log(self.request, response.status, len(response.body))
            self.deferred.callback(response)

    def prefetchFailed(self, failure: Failure) -> None:
        """The body could not be read before dispatch (too large, client gone): the server answers."""
        self.deferred.errback(failure)

    def _abandoned(self, failure: object) -> None:
        # The pool dropped the call before it ran (stopped past its timeout).
        _log.warning("WSGI request %s %s abandoned by the thread pool: %s",
                     self.request.method, self.request.target, failure)
        if self.writer is not None:
            self.writer.abort()
        else:
            self.complete(Response(503, _TEXT, _UNAVAILABLE_BODY))

    def _watch(self) -> None:
        if not self.watching:
            self.watching = True
            self.request.whenDone.addErrback(self._lost)

    def _lost(self, failure: Failure) -> None:
        with self.cond:
            self.gone = failure.value
            self.cond.notify_all()

    def _ack(self, ignored: object, count: int) -> None:
        with self.cond:
            self.unacked -= count
            if self.waiting:
                self.cond.notify_all()

    def _beginInReactor(self, code: int, reason: str, headers: list[tuple[str, str]], data: bytes) -> None:
        self._watch()
        if self.gone is not None:
            if not self.deferred.called:
                self.deferred.callback(None)  # the server ignores it: the connection is gone
            return
        try:
            self.writer = self.request.respond(code, headers, reason=reason)
        except (TypeError, ValueError) as e:
            _log.error("WSGI response to %s %s refused by the server: %s", self.request.method,
                       self.request.target, e)
            self._lost(Failure(ClientGone(f"the response was refused: {e}")))
            self.complete(Response(500, _TEXT, _ERROR_BODY))
            return
        self.status = code
        if not self.deferred.called:
            self.deferred.callback(None)
        if data:
            self._writeInReactor(data)

    def _writeInReactor(self, data: bytes) -> None:
        writer = self.writer
        if writer is None or self.gone is not None:
            return
        self.sent += len(data)
        writer.write(data).addCallbacks(self._ack, self._lost, (len(data),))

    def _logStreamed(self) -> None:
        log = self.container.accessLog
        if log is not None:
            log(self.request, self.status, self.sent)

    def _finishInReactor(self) -> None:
        if self.writer is not None and self.gone is None:
            self.writer.finish()
            self._logStreamed()

    def _abortInReactor(self) -> None:
        if self.writer is not None:
            self.writer.abort()
            self._logStreamed()
        elif not self.deferred.called:
            self.complete(Response(500, _TEXT, _ERROR_BODY))

    def _readInReactor(self, size: int) -> None:
        self._watch()
        if self.gone is not None:
            return
        self.request.read(size).addCallbacks(self._gotBody, self._lost)

    def _gotBody(self, data: bytes) -> None:
        with self.cond:
            self.readValue = data
            self.readDone = True
            self.cond.notify_all()
