"""The TechEmpower test types on Starlette + asyncpg, served by uvicorn (uvloop, httptools): a reference.

An asyncpg pool of 4 (min = max = 4), made at startup. ``/queries`` and ``/updates`` hold one pooled
connection for the request and read row by row, as TechEmpower's own Starlette entry does (statements
prepared once per connection by asyncpg's statement cache); the fortunes page is a Jinja template with
autoescaping.
"""

from __future__ import annotations

import socket
from typing import Any

from benchmarks import _tfbcommon as tfb

WORLD_SQL = tfb.WORLD_SQL.replace("%s", "$1")


def makeApp(dsn: str) -> Any:
    """A Starlette application answering the six test types from the database at ``dsn``."""
    import contextlib

    import asyncpg
    import jinja2
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    template = jinja2.Environment(autoescape=True).from_string(tfb.FORTUNES_TEMPLATE)
    state: dict[str, Any] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> Any:
        state["pool"] = await asyncpg.create_pool(tfb.dsnToURL(dsn), min_size=tfb.POOL_SIZE,
                                                  max_size=tfb.POOL_SIZE)
        try:
            yield
        finally:
            await state["pool"].close()

    def jsonResponse(value: Any) -> Response:
        return Response(tfb.jsonBytes(value), media_type=tfb.JSON_TYPE)

    async def json_(request: Request) -> Response:
        return jsonResponse({"message": tfb.HELLO})

    async def plaintext(request: Request) -> Response:
        return Response(tfb.PLAINTEXT, media_type=tfb.TEXT_TYPE)

    async def db(request: Request) -> Response:
        async with state["pool"].acquire() as conn:
            row = await conn.fetchrow(WORLD_SQL, tfb.randomId())
        return jsonResponse(tfb.world(row))

    async def queries(request: Request) -> Response:
        n = tfb.queryCount(request.query_params.get("queries"))
        async with state["pool"].acquire() as conn:
            worlds = [tfb.world(await conn.fetchrow(WORLD_SQL, tfb.randomId())) for _ in range(n)]
        return jsonResponse(worlds)

    async def fortunes(request: Request) -> Response:
        async with state["pool"].acquire() as conn:
            rows = await conn.fetch(tfb.FORTUNE_SQL)
        page = template.render(fortunes=tfb.sortedFortunes(rows))
        return Response(page, media_type="text/html")

    async def updates(request: Request) -> Response:
        n = tfb.queryCount(request.query_params.get("queries"))
        async with state["pool"].acquire() as conn:
            worlds = []
            for _ in range(n):
                w = tfb.world(await conn.fetchrow(WORLD_SQL, tfb.randomId()))
                w["randomNumber"] = tfb.randomId()
                worlds.append(w)
            flat = tfb.updateParameters(worlds)
            await conn.execute(tfb.updateSQL(len(flat) // 2, "$"), *flat)
        return jsonResponse(worlds)

    routes = [Route("/json", json_), Route("/plaintext", plaintext), Route("/db", db),
              Route("/queries", queries), Route("/fortunes", fortunes), Route("/updates", updates)]
    return Starlette(routes=routes, lifespan=lifespan)


def serve(dsn: str, port: int) -> None:
    """Serve on 127.0.0.1:``port`` (0: a free one) with uvicorn, uvloop and httptools, until killed."""
    import uvicorn
    import uvloop

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(1024)
    config = uvicorn.Config(makeApp(dsn), loop="uvloop", http="httptools", lifespan="on",
                            log_level="warning", access_log=False, backlog=1024)
    server = uvicorn.Server(config)
    tfb.announce(sock.getsockname()[1])
    # Server.serve() skips Config's event-loop setup (only Server.run() does it): run it on uvloop here.
    uvloop.run(server.serve(sockets=[sock]))
