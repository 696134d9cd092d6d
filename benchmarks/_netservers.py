"""Benchmark servers, one per process: ``python benchmarks/_netservers.py KIND``.

KIND is ``ours-echo``, ``twisted-echo``, ``asyncio-echo``, ``ours-http`` or ``twisted-http``. Each
listens on a free 127.0.0.1 port, prints ``PORT <n>`` and serves until killed. The echo servers
write back what they read; the HTTP servers answer every request with a small JSON body.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

JSON_BODY = b'{"hello":"world","n":42}'


def announce(port: int) -> None:
    print(f"PORT {port}", flush=True)


def oursEcho() -> None:
    from reactor import Reactor  # type: ignore[attr-defined]
    from reactor.protocol import Factory, Protocol

    class Echo(Protocol):
        def dataReceived(self, data: bytes) -> None:
            self.transport.write(data)

    r = Reactor()
    port = r.listenTCP(0, Factory.forProtocol(Echo), backlog=512, interface="127.0.0.1")
    announce(port.getHost().port)
    r.run()


def twistedEcho() -> None:
    from twisted.internet import epollreactor

    epollreactor.install()
    from twisted.internet import protocol, reactor

    class Echo(protocol.Protocol):
        def dataReceived(self, data: bytes) -> None:
            self.transport.write(data)

    port = reactor.listenTCP(0, protocol.Factory.forProtocol(Echo), backlog=512, interface="127.0.0.1")
    announce(port.getHost().port)
    reactor.run()


def asyncioEcho() -> None:
    import asyncio

    class Echo(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport

        def data_received(self, data: bytes) -> None:
            self.transport.write(data)  # type: ignore[attr-defined]

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Echo, "127.0.0.1", 0, backlog=512)
        announce(server.sockets[0].getsockname()[1])
        await server.serve_forever()

    asyncio.run(main())


def oursHTTP() -> None:
    from reactor import Reactor  # type: ignore[attr-defined]
    from reactor.web import HTTPFactory, Request, Response

    def handler(request: Request) -> Response:
        return Response(200, [("content-type", "application/json")], JSON_BODY)

    r = Reactor()
    port = r.listenTCP(0, HTTPFactory(handler, reactor=r), backlog=512, interface="127.0.0.1")
    announce(port.getHost().port)
    r.run()


def twistedHTTP() -> None:
    from twisted.internet import epollreactor

    epollreactor.install()
    from twisted.internet import reactor
    from twisted.web import resource, server

    class Hello(resource.Resource):
        isLeaf = True

        def render_GET(self, request: object) -> bytes:
            request.setHeader(b"content-type", b"application/json")  # type: ignore[attr-defined]
            return JSON_BODY

    site = server.Site(Hello())
    site.logRequest = False  # type: ignore[attr-defined]
    site.log = lambda request: None  # type: ignore[method-assign]
    port = reactor.listenTCP(0, site, backlog=512, interface="127.0.0.1")
    announce(port.getHost().port)
    reactor.run()


KINDS = {
    "ours-echo": oursEcho,
    "twisted-echo": twistedEcho,
    "asyncio-echo": asyncioEcho,
    "ours-http": oursHTTP,
    "twisted-http": twistedHTTP,
}

if __name__ == "__main__":
    KINDS[sys.argv[1]]()
