"""What every TechEmpower-style implementation shares: the data, the rules, the SQL, the rendering.

The six test types (https://github.com/TechEmpower/FrameworkBenchmarks/wiki, "Test types"):

- ``/json``: ``{"message":"Hello, World!"}``, serialized per request, ``application/json``;
- ``/plaintext``: ``Hello, World!``, ``text/plain``;
- ``/db``: one random row of ``world`` (ids 1..10000) as ``{"id":..,"randomNumber":..}``;
- ``/queries?queries=N``: N such rows, one query each (no batching of the reads), N clamped to 1..500 and
  1 when it is not an integer;
- ``/fortunes``: every ``fortune`` row plus "Additional fortune added at request time." (id 0), sorted by
  message, rendered as an HTML table with escaping, ``text/html; charset=utf-8``;
- ``/updates?queries=N``: N rows read one by one, each given a new random number, written back (the
  writes may be one statement), the updated rows returned.

Every response carries ``Server`` and ``Date``. Nothing is cached. The database: ``world(id, randomnumber)``
with 10,000 rows and ``fortune(id, message)`` with the 12 standard fortunes, both made by :func:`setup`.
"""

from __future__ import annotations

import html
import json
import random
from typing import Any

DEFAULT_DSN = "host=127.0.0.1 port=5432 dbname=tfb"
WORLD_ROWS = 10_000
MAX_QUERIES = 500
POOL_SIZE = 4
ADDED_FORTUNE = "Additional fortune added at request time."
HELLO = "Hello, World!"
PLAINTEXT = HELLO.encode()

# The standard fortunes (TechEmpower's create-postgres.sql), with the script one and the Japanese one.
FORTUNES: tuple[tuple[int, str], ...] = (
    (1, "fortune: No such file or directory"),
    (2, "A computer scientist is someone who fixes things that aren't broken."),
    (3, "After enough decimal places, nobody gives a damn."),
    (4, "A bad random number generator: 1, 1, 1, 1, 1, 4.33e+67, 1, 1, 1"),
    (5, "A computer program does what you tell it to do, not what you want it to do."),
    (6, "Emacs is a nice operating system, but I prefer UNIX. \u2014 Tom Christaensen"),
    (7, "Any program that runs right is obsolete."),
    (8, "A list is only as strong as its weakest link. \u2014 Donald Knuth"),
    (9, "Feature: A bug with seniority."),
    (10, "Computers make very fast, very accurate mistakes."),
    (11, '<script>alert("This should not be displayed in a browser alert box.");</script>'),
    (12, "\u30d5\u30ec\u30fc\u30e0\u30ef\u30fc\u30af\u306e\u30d9\u30f3\u30c1\u30de\u30fc\u30af"),
)

# Content types as the TechEmpower verifier expects them.
JSON_TYPE = "application/json"
TEXT_TYPE = "text/plain"
HTML_TYPE = "text/html; charset=utf-8"

# psycopg2 style (%s); the asyncpg side rewrites the marks to $n.
WORLD_SQL = "SELECT id, randomnumber FROM world WHERE id = %s"
FORTUNE_SQL = "SELECT id, message FROM fortune"

FORTUNES_HEAD = (
    "<!DOCTYPE html><html><head><title>Fortunes</title></head><body><table>"
    "<tr><th>id</th><th>message</th></tr>"
)
FORTUNES_TAIL = "</table></body></html>"
# The Jinja template the Flask and Starlette applications render: the same page, escaped by autoescape.
FORTUNES_TEMPLATE = (
    FORTUNES_HEAD
    + "{% for id, message in fortunes %}<tr><td>{{ id }}</td><td>{{ message }}</td></tr>{% endfor %}"
    + FORTUNES_TAIL
)


def randomId() -> int:
    """A world id, uniform in 1..10000 (also used for the new random numbers of /updates)."""
    return random.randint(1, WORLD_ROWS)


def queryCount(raw: str | None) -> int:
    """The ``queries`` parameter as the rules read it: 1 if missing or not an integer, else clamped 1..500."""
    if raw is None:
        return 1
    try:
        n = int(raw)
    except ValueError:
        return 1
    return min(max(n, 1), MAX_QUERIES)


def queryParameter(query: str) -> str | None:
    """The raw value of ``queries`` in a query string (``a=1&queries=20``), or None; no decoding needed."""
    for part in query.split("&"):
        name, _, value = part.partition("=")
        if name == "queries":
            return value
    return None


def jsonBytes(value: Any) -> bytes:
    """Compact JSON (no spaces), as every implementation serves it."""
    return json.dumps(value, separators=(",", ":")).encode()


def world(row: tuple[int, int] | Any) -> dict[str, int]:
    """A ``(id, randomnumber)`` row as the response object."""
    return {"id": row[0], "randomNumber": row[1]}


def sortedFortunes(rows: list[tuple[int, str]] | list[Any]) -> list[tuple[int, str]]:
    """The rows plus the request-time fortune, sorted by message."""
    fortunes = [(r[0], r[1]) for r in rows]
    fortunes.append((0, ADDED_FORTUNE))
    fortunes.sort(key=lambda f: f[1])
    return fortunes


def renderFortunes(rows: list[tuple[int, str]] | list[Any]) -> bytes:
    """The fortunes page without a template engine (the native and twisted.web sides), HTML-escaped."""
    escape = html.escape
    body = "".join(f"<tr><td>{i}</td><td>{escape(m)}</td></tr>" for i, m in sortedFortunes(rows))
    return (FORTUNES_HEAD + body + FORTUNES_TAIL).encode()


def updateSQL(count: int, mark: str = "%s") -> str:
    """One statement writing ``count`` (id, randomnumber) pairs, passed flat as id1, n1, id2, n2, ...

    It first locks the rows in id order (``FOR UPDATE`` under ``ORDER BY``), so two concurrent requests
    touching the same ids wait on each other instead of deadlocking; then it writes them all at once.
    ``mark`` is ``%s`` (psycopg2) or ``$`` (asyncpg, numbered marks).
    """
    if mark == "$":
        pairs = ",".join(f"(${2 * i + 1}::int,${2 * i + 2}::int)" for i in range(count))
    else:
        pairs = ",".join(["(%s::int,%s::int)"] * count)
    return (
        f"WITH v(id, r) AS (VALUES {pairs}), "
        "l AS (SELECT w.id FROM world w JOIN v USING (id) ORDER BY w.id FOR UPDATE OF w) "
        "UPDATE world SET randomnumber = v.r FROM v WHERE world.id = v.id AND world.id IN (SELECT id FROM l)"
    )


def updateParameters(worlds: list[dict[str, int]]) -> list[int]:
    """The flat parameters of :func:`updateSQL` for the updated worlds: one pair per id, the last one wins."""
    last: dict[int, int] = {}
    for w in worlds:
        last[w["id"]] = w["randomNumber"]
    flat: list[int] = []
    for i in sorted(last):
        flat.extend((i, last[i]))
    return flat


def setup(dsn: str = DEFAULT_DSN) -> None:
    """Create the database named in ``dsn`` if missing, then ``world`` and ``fortune`` if missing or wrong.

    Connects to the ``postgres`` database of the same server to create it. Idempotent: tables with the
    right contents are left as they are, then vacuumed, so a run does not inherit the dead rows of the
    previous run's ``/updates``.
    """
    import psycopg2
    from psycopg2 import sql

    params = dict(part.split("=", 1) for part in dsn.split())
    dbname = params.get("dbname", "tfb")
    admin = psycopg2.connect(" ".join(f"{k}={v}" for k, v in {**params, "dbname": "postgres"}.items()))
    try:
        admin.autocommit = True
        with admin.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,))
            if cursor.fetchone() is None:
                cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    finally:
        admin.close()
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cursor:
            cursor.execute("CREATE TABLE IF NOT EXISTS world (id integer PRIMARY KEY, "
                           "randomnumber integer NOT NULL DEFAULT 0)")
            cursor.execute("CREATE TABLE IF NOT EXISTS fortune (id integer PRIMARY KEY, "
                           "message varchar(2048) NOT NULL)")
            cursor.execute("SELECT count(*), coalesce(min(id), 0), coalesce(max(id), 0) FROM world")
            if cursor.fetchone() != (WORLD_ROWS, 1, WORLD_ROWS):
                cursor.execute("TRUNCATE world")
                cursor.execute("INSERT INTO world (id, randomnumber) SELECT g, 1 + floor(random() * %s)::int "
                               "FROM generate_series(1, %s) g", (WORLD_ROWS, WORLD_ROWS))
            cursor.execute("SELECT id, message FROM fortune ORDER BY id")
            if [tuple(r) for r in cursor.fetchall()] != list(FORTUNES):
                cursor.execute("TRUNCATE fortune")
                cursor.executemany("INSERT INTO fortune (id, message) VALUES (%s, %s)", FORTUNES)
        conn.autocommit = True
        with conn.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE world")
            cursor.execute("VACUUM ANALYZE fortune")
    finally:
        conn.close()


def dropDatabase(dsn: str) -> None:
    """Drop the database named in ``dsn`` (the tests' throwaway one), ending its sessions first."""
    import psycopg2
    from psycopg2 import sql

    params = dict(part.split("=", 1) for part in dsn.split())
    admin = psycopg2.connect(" ".join(f"{k}={v}" for k, v in {**params, "dbname": "postgres"}.items()))
    try:
        admin.autocommit = True
        with admin.cursor() as cursor:
            cursor.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(params["dbname"])))
    finally:
        admin.close()


def dsnToURL(dsn: str) -> str:
    """A libpq keyword DSN as the postgresql:// URL asyncpg takes."""
    parts = dict(p.split("=", 1) for p in dsn.split())
    user = parts.get("user", "")
    password = parts.get("password", "")
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host, port = parts.get("host", "127.0.0.1"), parts.get("port", "5432")
    return f"postgresql://{auth}{host}:{port}/{parts.get('dbname', '')}"


def announce(port: int) -> None:
    """Tell the parent process (the benchmark, the tests) the port we listen on: one line on stdout."""
    print(f"listening on http://127.0.0.1:{port}", flush=True)
