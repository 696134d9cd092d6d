"""The Starlette application of ``bench_asgi``: one app, one database client per variant.

Made by :func:`makeAppFromEnv` (``uvicorn --factory``) from ``ASGI_BENCH_VARIANT``,
``ASGI_BENCH_DSN``, ``ASGI_BENCH_WORLD`` and ``ASGI_BENCH_FORTUNE`` (table names). Every
variant answers the same endpoints with the same JSON/HTML, TechEmpower's rules: ``/db`` one
random World row; ``/fortunes`` every fortune plus one added at request time, sorted, as an
escaped HTML table; ``/queries?queries=N`` N random rows, one statement each; ``/updates?queries=N``
N rows read one statement each, then given new random numbers (one batched UPDATE allowed).
A pool of 4 connections in every variant.

Variants: ``deferthreads`` (an adbapi ConnectionPool of psycopg2 on a reactor hosted on the
loop; ``/db`` and ``/fortunes`` are single statements on lanes, prepared on each connection once
they ran there 5 times (``cp_prepare_threshold=5``), ``/queries`` and ``/updates``
one ``runInteraction`` each, i.e. one connection and one worker thread for the request, the lookup
and the UPDATE prepared once per connection); ``asyncpg`` (its pool; one acquired connection per
request; its statement cache prepares every statement); and, for ``/db`` only,
``psycopg3`` (``psycopg_pool.AsyncConnectionPool``), ``sqlalchemy`` (an asyncio engine on
asyncpg, Core statement) and ``to_thread`` (``asyncio.to_thread`` around a psycopg2 connection
per thread of the default executor, 4 threads).
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import os
import random
import threading
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

POOL_SIZE = 4
WORLD_ROWS = 10_000
MAX_QUERIES = 500
ADDED_FORTUNE = "Additional fortune added at request time."

Handler = Callable[[Any], Awaitable[Any]]


def randomId() -> int:
    return random.randint(1, WORLD_ROWS)


def queryCount(raw: str | None) -> int:
    """TechEmpower's rule: missing or not a number -> 1; clamped to 1..500."""
    try:
        n = int(raw) if raw is not None else 1
    except ValueError:
        return 1
    return min(max(n, 1), MAX_QUERIES)


def renderFortunes(rows: list[Any]) -> str:
    fortunes = [(row[0], row[1]) for row in rows]
    fortunes.append((0, ADDED_FORTUNE))
    fortunes.sort(key=lambda f: f[1])
    cells = "".join(f"<tr><td>{i}</td><td>{html.escape(m)}</td></tr>" for i, m in fortunes)
    return (
        "<!DOCTYPE html><html><head><title>Fortunes</title></head><body><table>"
        f"<tr><th>id</th><th>message</th></tr>{cells}</table></body></html>"
    )


def updateStatement(world: str, count: int, mark: Callable[[int], str]) -> str:
    """One UPDATE for ``count`` rows: ``UPDATE world SET randomnumber = v.r FROM (VALUES ...)``."""
    values = ", ".join(f"({mark(2 * i)}::int, {mark(2 * i + 1)}::int)" for i in range(count))
    return f"UPDATE {world} AS w SET randomnumber = v.r FROM (VALUES {values}) AS v(id, r) WHERE w.id = v.id"


class Backend:
    """What a variant supplies: the four queries, and its start and stop."""

    def __init__(self, dsn: str, world: str, fortune: str) -> None: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def single(self) -> dict[str, int]:
        raise NotImplementedError

    async def fortunes(self) -> list[Any]:
        raise NotImplementedError

    async def queries(self, n: int) -> list[dict[str, int]]:
        raise NotImplementedError

    async def updates(self, n: int) -> list[dict[str, int]]:
        raise NotImplementedError


class Deferthreads(Backend):
    def __init__(self, dsn: str, world: str, fortune: str) -> None:
        self.dsn, self.world, self.fortune = dsn, world, fortune
        self.worldSQL = f"SELECT id, randomnumber FROM {world} WHERE id = %s"
        self.fortuneSQL = f"SELECT id, message FROM {fortune}"
        self._stack = contextlib.AsyncExitStack()
        # /queries and /updates read through a server-side prepared statement, made once per connection,
        # as the asyncpg variant does (conn.prepare): the server then skips parsing and planning each
        # lookup. ASGI_BENCH_PREPARE=0 sends the plain statement instead (to measure the difference).
        self.prepare = os.environ.get("ASGI_BENCH_PREPARE", "") != "0"
        # The statements prepared on each psycopg2 connection (worker threads read and add).
        self.preparedOn: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()
        self.preparedLock = threading.Lock()

    async def start(self) -> None:
        import adbapi
        from reactor.asyncioreactor import hostedReactor

        reactor = await self._stack.enter_async_context(hostedReactor(installDefault=False))
        # ASGI_BENCH_NONBLOCKING=0 runs the single statements on worker threads instead of lanes (to
        # measure what the lanes cost or gain); unset, the pool chooses (lanes for psycopg2).
        nonblocking = None if os.environ.get("ASGI_BENCH_NONBLOCKING", "") != "0" else False
        # Lanes prepare a statement on a connection once it ran there 5 times (cp_prepare_threshold, as
        # psycopg 3's prepare_threshold): the single lookup and fortunes then skip parse and plan, as
        # asyncpg's statement cache and psycopg 3 do. ASGI_BENCH_PREPARE=0 turns it off.
        self.pool = adbapi.ConnectionPool(
            "psycopg2", self.dsn, cp_min=POOL_SIZE, cp_max=POOL_SIZE, cp_reactor=reactor,
            cp_nonblocking=nonblocking,
            cp_prepare_threshold=5 if self.prepare and nonblocking is None else None,
        )

    async def stop(self) -> None:
        await self._stack.aclose()

    async def single(self) -> dict[str, int]:
        rows = await self.pool.runQuery(self.worldSQL, (randomId(),))
        return {"id": rows[0][0], "randomNumber": rows[0][1]}

    async def fortunes(self) -> list[Any]:
        rows: list[Any] = await self.pool.runQuery(self.fortuneSQL)
        return rows

    def _prepared(self, cursor: Any, name: str, statement: str) -> str:
        """Worker thread: ``name`` prepared as ``statement`` on the cursor's connection, made if new."""
        connection = cursor.connection  # the psycopg2 connection under adbapi's Transaction
        with self.preparedLock:  # a connection is one thread's at a time; the map is every worker's
            new = name not in self.preparedOn.get(connection, ())
        if new:
            # A session's prepared statement outlives a rolled-back transaction: made once.
            cursor.execute(f"PREPARE {name} AS {statement}")
            with self.preparedLock:
                self.preparedOn.setdefault(connection, set()).add(name)
        return name

    def _read(self, cursor: Any, n: int) -> list[dict[str, int]]:
        # Worker thread: one statement per row, all on this request's connection.
        statement = self.worldSQL
        if self.prepare:
            name = self._prepared(
                cursor, "world_by_id", f"SELECT id, randomnumber FROM {self.world} WHERE id = $1::int"
            )
            statement = f"EXECUTE {name} (%s)"
        worlds = []
        for _ in range(n):
            cursor.execute(statement, (randomId(),))
            row = cursor.fetchone()
            worlds.append({"id": row[0], "randomNumber": row[1]})
        return worlds

    async def queries(self, n: int) -> list[dict[str, int]]:
        worlds: list[dict[str, int]] = await self.pool.runInteraction(self._read, n)
        return worlds

    def _update(self, cursor: Any, n: int) -> list[dict[str, int]]:
        worlds = self._read(cursor, n)
        for w in worlds:
            w["randomNumber"] = randomId()
        worlds.sort(key=lambda w: w["id"])  # a fixed lock order: concurrent updates cannot deadlock
        params = [v for w in worlds for v in (w["id"], w["randomNumber"])]
        if self.prepare:
            update = updateStatement(self.world, n, lambda i: f"${i + 1}")
            name = self._prepared(cursor, f"world_update_{n}", update)
            cursor.execute(f"EXECUTE {name} ({', '.join(['%s'] * len(params))})", params)
        else:
            cursor.execute(updateStatement(self.world, n, lambda i: "%s"), params)
        return worlds

    async def updates(self, n: int) -> list[dict[str, int]]:
        worlds: list[dict[str, int]] = await self.pool.runInteraction(self._update, n)
        return worlds


def asyncpgURL(dsn: str) -> str:
    parts = dict(p.split("=", 1) for p in dsn.split())
    user = parts.get("user", os.environ.get("USER", "postgres"))
    return (
        f"postgresql://{user}@{parts.get('host', '127.0.0.1')}:{parts.get('port', '5432')}/"
        f"{parts.get('dbname', 'test')}"
    )


class Asyncpg(Backend):
    def __init__(self, dsn: str, world: str, fortune: str) -> None:
        self.url, self.world = asyncpgURL(dsn), world
        self.worldSQL = f"SELECT id, randomnumber FROM {world} WHERE id = $1"
        self.fortuneSQL = f"SELECT id, message FROM {fortune}"

    async def start(self) -> None:
        import asyncpg

        self.pool = await asyncpg.create_pool(self.url, min_size=POOL_SIZE, max_size=POOL_SIZE)

    async def stop(self) -> None:
        await self.pool.close()

    async def single(self) -> dict[str, int]:
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(self.worldSQL, randomId())
        return {"id": row[0], "randomNumber": row[1]}

    async def fortunes(self) -> list[Any]:
        async with self.pool.acquire() as conn:
            rows: list[Any] = await conn.fetch(self.fortuneSQL)
        return rows

    async def queries(self, n: int) -> list[dict[str, int]]:
        async with self.pool.acquire() as conn:
            statement = await conn.prepare(self.worldSQL)
            worlds = []
            for _ in range(n):
                row = await statement.fetchrow(randomId())
                worlds.append({"id": row[0], "randomNumber": row[1]})
        return worlds

    async def updates(self, n: int) -> list[dict[str, int]]:
        async with self.pool.acquire() as conn:
            statement = await conn.prepare(self.worldSQL)
            worlds = []
            for _ in range(n):
                row = await statement.fetchrow(randomId())
                worlds.append({"id": row[0], "randomNumber": randomId()})
            worlds.sort(key=lambda w: w["id"])
            params = [v for w in worlds for v in (w["id"], w["randomNumber"])]
            await conn.execute(updateStatement(self.world, n, lambda i: f"${i + 1}"), *params)
        return worlds


class Psycopg3(Backend):
    def __init__(self, dsn: str, world: str, fortune: str) -> None:
        self.dsn = dsn
        self.worldSQL = f"SELECT id, randomnumber FROM {world} WHERE id = %s"

    async def start(self) -> None:
        from psycopg_pool import AsyncConnectionPool

        self.pool = AsyncConnectionPool(self.dsn, min_size=POOL_SIZE, max_size=POOL_SIZE, open=False)
        await self.pool.open(wait=True)

    async def stop(self) -> None:
        await self.pool.close()

    async def single(self) -> dict[str, int]:
        async with self.pool.connection() as conn:
            cursor = await conn.execute(self.worldSQL, (randomId(),), prepare=True)
            row = await cursor.fetchone()
        assert row is not None
        return {"id": row[0], "randomNumber": row[1]}


class SQLAlchemy(Backend):
    def __init__(self, dsn: str, world: str, fortune: str) -> None:
        self.url = asyncpgURL(dsn).replace("postgresql://", "postgresql+asyncpg://")
        self.world = world

    async def start(self) -> None:
        from sqlalchemy import Integer, bindparam, text
        from sqlalchemy.ext.asyncio import create_async_engine

        self.engine = create_async_engine(self.url, pool_size=POOL_SIZE, max_overflow=0)
        self.statement = text(f"SELECT id, randomnumber FROM {self.world} WHERE id = :id").bindparams(
            bindparam("id", type_=Integer)
        )

    async def stop(self) -> None:
        await self.engine.dispose()

    async def single(self) -> dict[str, int]:
        async with self.engine.connect() as conn:
            row = (await conn.execute(self.statement, {"id": randomId()})).one()
        return {"id": row[0], "randomNumber": row[1]}


class ToThread(Backend):
    def __init__(self, dsn: str, world: str, fortune: str) -> None:
        self.dsn = dsn
        self.worldSQL = f"SELECT id, randomnumber FROM {world} WHERE id = %s"
        self.local = threading.local()
        self.connections: list[Any] = []

    async def start(self) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.executor = ThreadPoolExecutor(POOL_SIZE)
        asyncio.get_running_loop().set_default_executor(self.executor)

    async def stop(self) -> None:
        self.executor.shutdown(wait=True)
        for conn in self.connections:
            conn.close()

    def _lookup(self) -> tuple[int, int]:
        import psycopg2

        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = self.local.conn = psycopg2.connect(self.dsn)
            conn.autocommit = True
            self.connections.append(conn)
        with conn.cursor() as cursor:
            cursor.execute(self.worldSQL, (randomId(),))
            row = cursor.fetchone()
        assert row is not None
        return (row[0], row[1])

    async def single(self) -> dict[str, int]:
        row = await asyncio.to_thread(self._lookup)
        return {"id": row[0], "randomNumber": row[1]}


VARIANTS: dict[str, type[Backend]] = {
    "deferthreads": Deferthreads,
    "asyncpg": Asyncpg,
    "psycopg3": Psycopg3,
    "sqlalchemy": SQLAlchemy,
    "to_thread": ToThread,
}


def makeApp(variant: str, dsn: str, world: str, fortune: str) -> Any:
    """The Starlette application on ``variant``'s database client."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, Response
    from starlette.routing import Route

    backend = VARIANTS[variant](dsn, world, fortune)

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        await backend.start()
        try:
            yield
        finally:
            await backend.stop()

    def jsonResponse(value: Any) -> Response:
        return Response(json.dumps(value, separators=(",", ":")), media_type="application/json")

    async def single(request: Request) -> Response:
        return jsonResponse(await backend.single())

    async def fortunes(request: Request) -> Response:
        return HTMLResponse(renderFortunes(await backend.fortunes()))

    async def queries(request: Request) -> Response:
        return jsonResponse(await backend.queries(queryCount(request.query_params.get("queries"))))

    async def updates(request: Request) -> Response:
        return jsonResponse(await backend.updates(queryCount(request.query_params.get("queries"))))

    routes = [
        Route("/db", single),
        Route("/fortunes", fortunes),
        Route("/queries", queries),
        Route("/updates", updates),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def makeAppFromEnv() -> Any:
    """``uvicorn --factory benchmarks._asgiapp:makeAppFromEnv``: the app the environment names."""
    env = os.environ
    return makeApp(env["ASGI_BENCH_VARIANT"], env["ASGI_BENCH_DSN"], env["ASGI_BENCH_WORLD"],
                   env["ASGI_BENCH_FORTUNE"])
