"""The TechEmpower test types on our native stack: ``reactor.web`` and ``adbapi`` (psycopg2 lanes).

One process, one reactor thread. ``adbapi.ConnectionPool("psycopg2", cp_min=4, cp_max=4)``: its single
statements (``runQuery``/``runOperation``) run on lanes, nonblocking connections the reactor drives, with no
thread hop (docs/adbapi.md, "Lanes"), the pool's fastest psycopg2 mode. Every row of ``/queries`` and
``/updates`` is its own ``runQuery``; a request issues them together and the pool's four lanes serve them
as they free up; the writes of ``/updates`` are one ``runOperation`` once every read has answered.
Handlers return a ``Response`` or a Deferred of one (plain callbacks: no coroutine per request).
"""

from __future__ import annotations

from typing import Any

from benchmarks import _tfbcommon as tfb


def makeHandler(pool: Any) -> Any:
    """The request handler: routes the six test types, answers 404 for anything else."""
    from reactor import gatherResults
    from reactor.web import Request, Response

    jsonHeaders = [("Content-Type", tfb.JSON_TYPE)]
    textHeaders = [("Content-Type", tfb.TEXT_TYPE)]
    htmlHeaders = [("Content-Type", tfb.HTML_TYPE)]
    worldSQL = tfb.WORLD_SQL
    randomId = tfb.randomId
    world = tfb.world
    jsonBytes = tfb.jsonBytes

    def jsonResponse(value: Any) -> Response:
        return Response(200, jsonHeaders, jsonBytes(value))

    def readWorlds(n: int) -> Any:
        # One query per row, all issued now: the pool queues what its four lanes cannot take yet.
        return gatherResults([pool.runQuery(worldSQL, (randomId(),)) for _ in range(n)])

    def dbRow(rows: list[Any]) -> Response:
        return jsonResponse(world(rows[0]))

    def worldsResponse(results: list[list[Any]]) -> Response:
        return jsonResponse([world(rows[0]) for rows in results])

    def fortunesResponse(rows: list[Any]) -> Response:
        return Response(200, htmlHeaders, tfb.renderFortunes(rows))

    def writeWorlds(results: list[list[Any]]) -> Any:
        worlds = [world(rows[0]) for rows in results]
        for w in worlds:
            w["randomNumber"] = randomId()
        flat = tfb.updateParameters(worlds)
        return pool.runOperation(tfb.updateSQL(len(flat) // 2), flat).addCallback(
            lambda _: jsonResponse(worlds))

    def handler(request: Request) -> Any:
        path = request.path
        if path == "/json":
            return jsonResponse({"message": tfb.HELLO})
        if path == "/plaintext":
            return Response(200, textHeaders, tfb.PLAINTEXT)
        if path == "/db":
            return pool.runQuery(worldSQL, (randomId(),)).addCallback(dbRow)
        if path == "/queries":
            n = tfb.queryCount(tfb.queryParameter(request.query))
            return readWorlds(n).addCallback(worldsResponse)
        if path == "/fortunes":
            return pool.runQuery(tfb.FORTUNE_SQL).addCallback(fortunesResponse)
        if path == "/updates":
            n = tfb.queryCount(tfb.queryParameter(request.query))
            return readWorlds(n).addCallback(writeWorlds)
        return Response(404, textHeaders, b"not found")

    return handler


def serve(dsn: str, port: int) -> None:
    """Serve on 127.0.0.1:``port`` (0: a free one) until killed."""
    from adbapi import ConnectionPool
    from reactor import Reactor
    from reactor.web import listenHTTP

    r = Reactor()
    pool = ConnectionPool("psycopg2", dsn, cp_min=tfb.POOL_SIZE, cp_max=tfb.POOL_SIZE, cp_reactor=r,
                          cp_name="tfb")
    listening = listenHTTP(port, makeHandler(pool), interface="127.0.0.1", reactor=r, backlog=1024)
    tfb.announce(listening.getHost().port)
    r.run()
