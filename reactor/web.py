"""An HTTP/1.1 server on the reactor's transports (Twisted's ``twisted.web.server``, smaller and faster).

A handler is called, in the reactor thread, with each :class:`Request` and answers with a
:class:`Response`, a Deferred or coroutine of one, or None once it started a streamed response with
``request.respond(status, headers)``::

    from reactor import getReactor
    from reactor.web import Response, listenHTTP

    def hello(request):
        return Response(200, [("content-type", "text/plain")], b"hello\\n")

    listenHTTP(8080, hello, interface="127.0.0.1")
    getReactor().run()

What the server does for the handler: keep-alive and pipelining (answers in request order);
chunked request and response bodies; ``Expect: 100-continue`` (the 100 goes out when the handler
first reads the body); ``HEAD`` (the GET head, no body); ``Date`` and ``Server``; ``Connection:
close``; a graceful stop with a deadline (:meth:`HTTPFactory.stopGracefully`); TLS through
``listenSSL`` or ``listenHTTP(..., contextFactory=...)``. Parsing is llhttp's, through ``httptools``.

Refused with a status and the connection closed after it: a request line over ``maxRequestLine``
(414), header fields over ``maxHeaderBytes`` (431), a body over ``maxBodyBytes`` (413), malformed
input (400), both ``Content-Length`` and ``Transfer-Encoding`` or conflicting lengths (400: no request
smuggling), a missing or doubled ``Host`` on HTTP/1.1 (400), an HTTP version other than 1.0/1.1 (505),
an ``Expect`` other than 100-continue (417), a head not complete within ``headerTimeout`` (408).
An idle keep-alive connection closes after ``idleTimeout``; a body that stops arriving for
``bodyTimeout`` fails ``read``/``body`` with ``HTTPError(408)``. A handler exception is a logged 500
(or the connection aborted if the response had started); ``HTTPError(status, message)`` raised by a
handler answers that status with the message as a text body.

Threads: everything, handlers included, runs in the reactor thread. A handler must not block: run
blocking work with ``deferthreads.deferToThread`` or an ``adbapi`` pool and return the Deferred.

Differences from the agreed contract, decided while building it: ``maxBodyBytes`` defaults to 1 MiB;
``HTTPFactory`` also takes ``lingerTimeout``, ``maxPipelined`` and ``readBufferBytes``; ``listenHTTP``
also takes ``contextFactory`` (TLS); a handler that returns None must have called ``request.respond``
before returning (or before its Deferred/coroutine fires) - otherwise it is a logged 500.
"""

from __future__ import annotations

from typing import Any

from reactor._httpmessage import Headers, HTTPError, Response
from reactor._httpserver import Handler, HTTPChannel, HTTPFactory, Request, ResponseWriter

__all__ = [
    "HTTPChannel",
    "HTTPError",
    "HTTPFactory",
    "Handler",
    "Headers",
    "Request",
    "Response",
    "ResponseWriter",
    "listenHTTP",
]


def listenHTTP(
    port: int,
    handler: Handler,
    *,
    interface: str = "",
    reactor: Any = None,
    backlog: int = 511,
    contextFactory: Any = None,
    reusePort: bool = False,
    **limits: Any,
) -> Any:
    """Serve ``handler`` on TCP ``port`` (0: any free port); returns the listening port.

    ``limits`` go to :class:`HTTPFactory` (``maxBodyBytes``, ``idleTimeout``, ...); the factory is
    the port's ``factory`` attribute (for ``stopGracefully``). With ``contextFactory`` (server TLS
    options, e.g. ``reactor.ssl.CertificateOptions``) the port speaks HTTPS through ``listenSSL``.
    ``reusePort=True``: SO_REUSEPORT, so worker processes can each listen on the same port
    (``reactor.prefork``). Raises CannotListenError if the address cannot be bound, TypeError/ValueError
    for a bad limit.
    """
    if reactor is None:
        from reactor._default import getReactor

        reactor = getReactor()
    factory = HTTPFactory(handler, reactor=reactor, **limits)
    # reusePort is passed only when asked, so a reactor whose listenTCP lacks it (Twisted's) still serves.
    if contextFactory is not None:
        return reactor.listenSSL(port, factory, contextFactory, backlog=backlog, interface=interface,
                                 **({"reusePort": True} if reusePort else {}))
    return reactor.listenTCP(port, factory, backlog=backlog, interface=interface,
                             **({"reusePort": True} if reusePort else {}))
