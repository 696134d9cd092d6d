"""A FastAPI JSON API on adbapi and deferthreads, served by uvicorn.

The reactor is hosted on uvicorn's own loop for the life of the application (``hostedReactor()``
in the ``lifespan``), so endpoints ``await`` Deferreds directly: database calls through an
``adbapi.ConnectionPool`` (SQLite by default, in a file; PostgreSQL through psycopg2, whose
single statements run on lanes, when given a DSN), CPU-bound work through ``deferToThread``.
A client that disconnects mid-request cancels the endpoint's task, which cancels the
Deferred, which stops the statement on the server. Run it::

    uvicorn examples.fastapi_app:app                          # data in $TMPDIR/deferthreads-fastapi.sqlite
    FASTAPI_APP_DSN="host=127.0.0.1 dbname=test" uvicorn examples.fastapi_app:app --loop uvloop
    python examples/fastapi_app.py --dsn "host=127.0.0.1 dbname=test" --port 8000

Endpoints::

    GET  /health                 {"ok": true}
    POST /items                  {"name": "...", "price": 1.5} -> 201 and the stored item
    GET  /items?limit=           the items, newest first
    GET  /items/{id}             one item, or 404
    GET  /slow?seconds=          a statement that takes that long in the database (pg_sleep, or a
                                 long SQLite query); disconnect to cancel it there
    GET  /pbkdf2?iterations=     CPU-bound key derivation in a worker thread; also says which
                                 request id the worker saw (contextvars travel into the thread)
    GET  /stats                  connection-pool and thread-pool statistics

Configuration (environment, or the command line when run as a script): ``FASTAPI_APP_DSN``
(a libpq DSN; unset: SQLite), ``FASTAPI_APP_SQLITE`` (the SQLite file), ``FASTAPI_APP_TABLE``
(the table's name, default ``items``; created if missing).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import dataclasses
import hashlib
import itertools
import os
import re
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from fastapi import FastAPI, HTTPException, Request, Response
from pydantic import BaseModel, Field

import adbapi
import deferthreads
from reactor.asyncioreactor import hostedReactor

_T = TypeVar("_T")

#: The id of the request being served, set by the middleware; the worker threads see it too.
requestId: contextvars.ContextVar[str] = contextvars.ContextVar("requestId", default="-")
_requestNumbers = itertools.count(1)

#: The status nginx uses for "the client closed the request": the client is gone, no one reads it.
CLIENT_CLOSED = 499


class Settings:
    """Where the data is: read from the environment when the application starts."""

    def __init__(self) -> None:
        self.dsn = os.environ.get("FASTAPI_APP_DSN") or None
        self.sqlitePath = os.environ.get("FASTAPI_APP_SQLITE") or os.path.join(
            tempfile.gettempdir(), "deferthreads-fastapi.sqlite"
        )
        self.table = os.environ.get("FASTAPI_APP_TABLE", "items")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", self.table):
            raise ValueError(f"FASTAPI_APP_TABLE must be a plain SQL identifier, not {self.table!r}")

    @property
    def postgres(self) -> bool:
        return self.dsn is not None


class Database:
    """The statements of this application, on one ConnectionPool (created in the reactor thread)."""

    def __init__(self, settings: Settings, reactor: Any) -> None:
        self.settings = settings
        table = settings.table
        if settings.postgres:
            self.pool = adbapi.ConnectionPool(
                "psycopg2", settings.dsn, cp_min=1, cp_max=4, cp_name="fastapi", cp_reactor=reactor
            )
            p = "%s"
            self.createTable = (
                f"CREATE TABLE IF NOT EXISTS {table} "
                "(id SERIAL PRIMARY KEY, name TEXT NOT NULL, price DOUBLE PRECISION NOT NULL)"
            )
            self.insert = f"INSERT INTO {table} (name, price) VALUES ({p}, {p}) RETURNING id"
            self.slow = "SELECT pg_sleep(%s)"
        else:
            self.pool = adbapi.ConnectionPool(
                "sqlite3", settings.sqlitePath, timeout=10, cp_min=1, cp_max=4, cp_name="fastapi",
                cp_reactor=reactor,
            )
            p = "?"
            self.createTable = (
                f"CREATE TABLE IF NOT EXISTS {table} "
                "(id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, price REAL NOT NULL)"
            )
            self.insert = f"INSERT INTO {table} (name, price) VALUES ({p}, {p}) RETURNING id"
            # About a few million rows a second: long enough, and interruptible (Connection.interrupt).
            self.slow = (
                "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT ?) "
                "SELECT count(*) FROM c"
            )
        self.selectOne = f"SELECT id, name, price FROM {table} WHERE id = {p}"
        self.selectMany = f"SELECT id, name, price FROM {table} ORDER BY id DESC LIMIT {p}"

    def slowArgument(self, seconds: float) -> tuple[Any, ...]:
        return (seconds,) if self.settings.postgres else (int(seconds * 3_000_000),)


class NewItem(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    price: float = Field(ge=0)


def _row(row: Any) -> dict[str, Any]:
    return {"id": row[0], "name": row[1], "price": row[2]}


def _asDict(snapshot: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(snapshot) and not isinstance(snapshot, type):
        return dataclasses.asdict(snapshot)
    return dict(vars(snapshot))


async def cancelOnDisconnect(request: Request, work: Awaitable[_T]) -> _T:
    """Await ``work``; if the client disconnects first, cancel it and answer 499.

    ASGI servers tell an application about a disconnect only through ``receive()``
    (``http.disconnect``); they do not cancel the endpoint. So this watches ``receive()``
    beside the work: cancelling the work's task cancels the Deferred it awaits, and adbapi
    then stops the statement on the server. Only for requests whose body has been read.
    """
    task = asyncio.ensure_future(work)

    async def watch() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    watcher = asyncio.ensure_future(watch())
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        raise HTTPException(CLIENT_CLOSED, "client disconnected")
    return task.result()


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Host the reactor on uvicorn's loop; at shutdown the pools drain before the process exits."""
    async with hostedReactor() as reactor:
        db = Database(Settings(), reactor)
        await db.pool.runOperation(db.createTable)
        app.state.db = db
        yield


app = FastAPI(title="deferthreads on FastAPI", lifespan=lifespan)


@app.middleware("http")
async def tagRequest(request: Request, callNext: Callable[[Request], Awaitable[Response]]) -> Response:
    """Give every request an id in a context variable (seen by the worker threads it uses)."""
    requestId.set(request.headers.get("x-request-id") or f"r{next(_requestNumbers)}")
    response = await callNext(request)
    response.headers["x-request-id"] = requestId.get()
    return response


def _db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


@app.get("/health")
async def health() -> dict[str, bool]:
    return {"ok": True}


@app.post("/items", status_code=201)
async def createItem(item: NewItem, request: Request) -> dict[str, Any]:
    db = _db(request)
    rows = await db.pool.runQuery(db.insert, (item.name, item.price))
    return {"id": rows[0][0], "name": item.name, "price": item.price}


@app.get("/items")
async def listItems(request: Request, limit: int = 20) -> list[dict[str, Any]]:
    if not 1 <= limit <= 1000:
        raise HTTPException(400, "limit must be between 1 and 1000")
    db = _db(request)
    return [_row(r) for r in await db.pool.runQuery(db.selectMany, (limit,))]


@app.get("/items/{itemId}")
async def getItem(itemId: int, request: Request) -> dict[str, Any]:
    db = _db(request)
    rows = await db.pool.runQuery(db.selectOne, (itemId,))
    if not rows:
        raise HTTPException(404, f"no item {itemId}")
    return _row(rows[0])


@app.get("/slow")
async def slow(request: Request, seconds: float = 1.0) -> dict[str, Any]:
    if not 0 <= seconds <= 60:
        raise HTTPException(400, "seconds must be between 0 and 60")
    db = _db(request)
    await cancelOnDisconnect(request, db.pool.runQuery(db.slow, db.slowArgument(seconds)))
    return {"slept": seconds}


def _pbkdf2(iterations: int) -> dict[str, Any]:
    # Worker thread: hashlib releases the GIL, so the loop keeps serving meanwhile.
    key = hashlib.pbkdf2_hmac("sha256", b"password", b"salt", iterations)
    return {"iterations": iterations, "key": key.hex(), "requestIdSeenInWorker": requestId.get()}


@app.get("/pbkdf2")
async def pbkdf2(iterations: int = 100_000) -> dict[str, Any]:
    if not 1 <= iterations <= 10_000_000:
        raise HTTPException(400, "iterations must be between 1 and 10000000")
    return await deferthreads.deferToThread(_pbkdf2, iterations)


@app.get("/stats")
async def stats(request: Request) -> dict[str, Any]:
    db = _db(request)
    return {
        "connectionPool": _asDict(db.pool.statistics()),
        "threadPool": _asDict(deferthreads.getThreadPool().statistics()),
        "database": "postgresql" if db.settings.postgres else "sqlite",
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dsn", help="a libpq DSN (PostgreSQL through psycopg2); default: SQLite")
    parser.add_argument("--sqlite", help="the SQLite file")
    parser.add_argument("--table", help="the table's name (default items)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--loop", default="auto", choices=["auto", "asyncio", "uvloop"])
    args = parser.parse_args(argv)
    for name, value in (("FASTAPI_APP_DSN", args.dsn), ("FASTAPI_APP_SQLITE", args.sqlite),
                        ("FASTAPI_APP_TABLE", args.table)):
        if value is not None:
            os.environ[name] = value
    import uvicorn

    uvicorn.run(app, host=args.host, port=args.port, loop=args.loop)


if __name__ == "__main__":
    main()
