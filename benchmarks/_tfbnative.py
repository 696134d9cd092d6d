"""The TechEmpower test types on our native stack: ``reactor.web`` and ``adbapi`` (psycopg2).

One process, one reactor thread, ``adbapi.ConnectionPool("psycopg2", cp_min=4, cp_max=4)``. Each connection
is set up once by ``cp_openfun`` (:func:`openConnection`): autocommit, as Twisted's reference sets it, and
three server-side prepared statements (the world lookup, the fortunes, the bulk update), which the
TechEmpower rules allow and asyncpg uses on the uvicorn side. The database is the bottleneck of the
multi-query types on this machine, and a prepared statement saves PostgreSQL the parse and plan of each
of a request's 20 statements.

- ``/db`` and ``/fortunes``: one ``runQuery`` each.
- ``/queries`` and ``/updates``: one ``runInteraction`` per request, reading the rows one query each on that
  one connection, in a worker thread (one thread hop per request instead of one reactor round per row);
  ``/updates`` then writes them with one statement that locks the rows in id order first.

``cp_openfun`` takes the pool off lanes (docs/adbapi.md, "Lanes"), every call runs on the four worker
threads; measured, that costs less CPU per request than lanes once the statements are prepared, and the
multi-query types gain most (docs/tfb.md, "The native implementation"). Handlers return a ``Response`` or
a Deferred of one (plain callbacks: no coroutine per request).
"""

from __future__ import annotations

from typing import Any

from benchmarks import _tfbcommon as tfb

# The prepared statements' names and texts, made on every connection by openConnection().
WORLD_STATEMENT = "tfb_world"
FORTUNE_STATEMENT = "tfb_fortune"
UPDATE_STATEMENT = "tfb_update"
PREPARE_SQL = (
    f"PREPARE {WORLD_STATEMENT}(int) AS " + tfb.WORLD_SQL.replace("%s", "$1"),
    f"PREPARE {FORTUNE_STATEMENT} AS " + tfb.FORTUNE_SQL,
    # The rows to write as two arrays (ids, numbers), so one statement serves every count: the rows are
    # first locked in id order (FOR UPDATE under ORDER BY), so concurrent requests wait, never deadlock.
    f"PREPARE {UPDATE_STATEMENT}(int[], int[]) AS "
    "WITH v(id, r) AS (SELECT * FROM unnest($1::int[], $2::int[])), "
    "l AS (SELECT w.id FROM world w JOIN v USING (id) ORDER BY w.id FOR UPDATE OF w) "
    "UPDATE world SET randomnumber = v.r FROM v WHERE world.id = v.id AND world.id IN (SELECT id FROM l)",
)
WORLD_SQL = f"EXECUTE {WORLD_STATEMENT}(%s)"
FORTUNE_SQL = f"EXECUTE {FORTUNE_STATEMENT}"
UPDATE_SQL = f"EXECUTE {UPDATE_STATEMENT}(%s, %s)"


def openConnection(conn: Any) -> None:
    """``cp_openfun``: autocommit (a read is one round trip) and the prepared statements (worker thread)."""
    conn.autocommit = True
    with conn.cursor() as cursor:
        for sql in PREPARE_SQL:
            cursor.execute(sql)


def readWorlds(txn: Any, n: int) -> list[dict[str, int]]:
    """``n`` random worlds, one query each, on the interaction's connection (worker thread)."""
    execute, fetchone, randomId, world = txn.execute, txn.fetchone, tfb.randomId, tfb.world
    worlds = []
    for _ in range(n):
        execute(WORLD_SQL, (randomId(),))
        worlds.append(world(fetchone()))
    return worlds


def updateWorlds(txn: Any, n: int) -> list[dict[str, int]]:
    """``n`` random worlds read one by one, given new numbers and written in one statement (worker thread)."""
    worlds = readWorlds(txn, n)
    for w in worlds:
        w["randomNumber"] = tfb.randomId()
    flat = tfb.updateParameters(worlds)
    txn.execute(UPDATE_SQL, (flat[0::2], flat[1::2]))
    return worlds


def makeHandler(pool: Any) -> Any:
    """The request handler: routes the six test types, answers 404 for anything else.

    ``pool``'s connections must have been set up by :func:`openConnection`.
    """
    from reactor.web import Request, Response

    jsonHeaders = [("Content-Type", tfb.JSON_TYPE)]
    textHeaders = [("Content-Type", tfb.TEXT_TYPE)]
    htmlHeaders = [("Content-Type", tfb.HTML_TYPE)]
    randomId = tfb.randomId
    world = tfb.world
    jsonBytes = tfb.jsonBytes
    queryCount = tfb.queryCount
    queryParameter = tfb.queryParameter

    def jsonResponse(value: Any) -> Response:
        return Response(200, jsonHeaders, jsonBytes(value))

    def dbRow(rows: list[Any]) -> Response:
        return jsonResponse(world(rows[0]))

    def fortunesResponse(rows: list[Any]) -> Response:
        return Response(200, htmlHeaders, tfb.renderFortunes(rows))

    def handler(request: Request) -> Any:
        path = request.path
        if path == "/json":
            return jsonResponse({"message": tfb.HELLO})
        if path == "/plaintext":
            return Response(200, textHeaders, tfb.PLAINTEXT)
        if path == "/db":
            return pool.runQuery(WORLD_SQL, (randomId(),)).addCallback(dbRow)
        if path == "/queries":
            n = queryCount(queryParameter(request.query))
            return pool.runInteraction(readWorlds, n).addCallback(jsonResponse)
        if path == "/fortunes":
            return pool.runQuery(FORTUNE_SQL).addCallback(fortunesResponse)
        if path == "/updates":
            n = queryCount(queryParameter(request.query))
            return pool.runInteraction(updateWorlds, n).addCallback(jsonResponse)
        return Response(404, textHeaders, b"not found")

    return handler


def serve(dsn: str, port: int) -> None:
    """Serve on 127.0.0.1:``port`` (0: a free one) until killed."""
    from adbapi import ConnectionPool
    from reactor import Reactor
    from reactor.web import listenHTTP

    r = Reactor()
    pool = ConnectionPool("psycopg2", dsn, cp_min=tfb.POOL_SIZE, cp_max=tfb.POOL_SIZE, cp_reactor=r,
                          cp_name="tfb", cp_openfun=openConnection)
    listening = listenHTTP(port, makeHandler(pool), interface="127.0.0.1", reactor=r, backlog=1024)
    tfb.announce(listening.getHost().port)
    r.run()
