"""The TechEmpower test types on twisted.web with Twisted's adbapi (psycopg2): the reference we must double.

One process, Twisted's epoll reactor, ``twisted.enterprise.adbapi.ConnectionPool("psycopg2", cp_min=4,
cp_max=4)``. The pool's connections are switched to autocommit (``cp_openfun``), so a read is one round trip
as on our lanes and the reference is not slowed by commits we do not do. ``/queries`` and ``/updates`` run in
one ``runInteraction`` each (one thread hop per request, the rows read one by one in it), the fastest way
Twisted's pool offers; ``/db`` and ``/fortunes`` are one ``runQuery``. No access log, as on every side.
"""

from __future__ import annotations

from typing import Any

from benchmarks import _tfbcommon as tfb


def serve(dsn: str, port: int) -> None:
    """Serve on 127.0.0.1:``port`` (0: a free one) until killed."""
    from twisted.internet import epollreactor

    epollreactor.install()
    from twisted.enterprise import adbapi
    from twisted.internet import reactor
    from twisted.web import resource, server

    def autocommit(conn: Any) -> None:
        conn.autocommit = True

    pool = adbapi.ConnectionPool("psycopg2", dsn, cp_min=tfb.POOL_SIZE, cp_max=tfb.POOL_SIZE,
                                 cp_openfun=autocommit)

    def readWorlds(txn: Any, n: int) -> list[dict[str, int]]:
        worlds = []
        for _ in range(n):
            txn.execute(tfb.WORLD_SQL, (tfb.randomId(),))
            worlds.append(tfb.world(txn.fetchone()))
        return worlds

    def updateWorlds(txn: Any, n: int) -> list[dict[str, int]]:
        worlds = readWorlds(txn, n)
        for w in worlds:
            w["randomNumber"] = tfb.randomId()
        flat = tfb.updateParameters(worlds)
        txn.execute(tfb.updateSQL(len(flat) // 2), flat)
        return worlds

    def queriesArgument(request: Any) -> int:
        raw = request.args.get(b"queries", [None])[0]
        return tfb.queryCount(raw.decode("latin-1") if raw is not None else None)

    class Leaf(resource.Resource):
        isLeaf = True

        def __init__(self, contentType: str, render: Any) -> None:
            super().__init__()
            self.contentType = contentType.encode()
            self.renderBody = render

        def render_GET(self, request: Any) -> Any:
            request.setHeader(b"content-type", self.contentType)
            result = self.renderBody(request)
            if isinstance(result, bytes):
                return result
            gone: list[bool] = []
            request.notifyFinish().addErrback(lambda _: gone.append(True))

            def write(body: bytes) -> None:
                if not gone:
                    # A length, as for the synchronous bodies, instead of a chunked response.
                    request.setHeader(b"content-length", b"%d" % len(body))
                    request.write(body)
                    request.finish()

            def failed(failure: Any) -> None:
                failure.printTraceback()
                if not gone:
                    request.setResponseCode(500)
                    request.finish()

            result.addCallback(write).addErrback(failed)
            return server.NOT_DONE_YET

    def db(request: Any) -> Any:
        return pool.runQuery(tfb.WORLD_SQL, (tfb.randomId(),)).addCallback(
            lambda rows: tfb.jsonBytes(tfb.world(rows[0])))

    def queries(request: Any) -> Any:
        return pool.runInteraction(readWorlds, queriesArgument(request)).addCallback(tfb.jsonBytes)

    def fortunes(request: Any) -> Any:
        return pool.runQuery(tfb.FORTUNE_SQL).addCallback(tfb.renderFortunes)

    def updates(request: Any) -> Any:
        return pool.runInteraction(updateWorlds, queriesArgument(request)).addCallback(tfb.jsonBytes)

    root = resource.Resource()
    root.putChild(b"json", Leaf(tfb.JSON_TYPE, lambda r: tfb.jsonBytes({"message": tfb.HELLO})))
    root.putChild(b"plaintext", Leaf(tfb.TEXT_TYPE, lambda r: tfb.PLAINTEXT))
    root.putChild(b"db", Leaf(tfb.JSON_TYPE, db))
    root.putChild(b"queries", Leaf(tfb.JSON_TYPE, queries))
    root.putChild(b"fortunes", Leaf(tfb.HTML_TYPE, fortunes))
    root.putChild(b"updates", Leaf(tfb.JSON_TYPE, updates))

    class QuietSite(server.Site):
        def log(self, request: Any) -> None:
            pass  # no access log on any side

    site = QuietSite(root)
    listening = reactor.listenTCP(port, site, backlog=1024, interface="127.0.0.1")
    tfb.announce(listening.getHost().port)
    reactor.run()
