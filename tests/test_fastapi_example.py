"""examples/fastapi_app.py end to end: a real uvicorn process, a real HTTP client (httpx), a real
database (SQLite in a file; PostgreSQL at 127.0.0.1 when reachable).

The server listens on a socket the test binds (port 0, handed over with ``--fd``); readiness is
a ``GET /health`` that answers, tried until a deadline.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
DEADLINE = 20.0
#: The exit status of a uvicorn that shut down gracefully on SIGTERM (see Server.terminate).
CLEAN_EXIT = (0, -signal.SIGTERM)


def _until(condition: Callable[[], Any], what: str, deadline: float = DEADLINE) -> Any:
    """Poll ``condition()`` until it returns something true; fail naming ``what`` past ``deadline``."""
    end = time.monotonic() + deadline
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)  # polling interval of a bounded wait, not a pause for something to start


class Server:
    """``uvicorn examples.fastapi_app:app`` in a subprocess, on a socket bound here."""

    def __init__(self, env: dict[str, str], loop: str = "uvloop") -> None:
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        fd = self.listener.fileno()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "examples.fastapi_app:app", "--fd", str(fd), "--loop", loop,
             "--http", "httptools"],
            cwd=ROOT,
            env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
            pass_fds=(fd,),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.client = httpx.Client(base_url=self.url, timeout=DEADLINE)
        try:
            _until(self._ready, "the server to answer /health")
        except BaseException:
            self.close()
            raise

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"the server exited: {self.output()}")
        try:
            return self.client.get("/health").status_code == 200
        except httpx.TransportError:
            return False

    def output(self) -> str:
        if self.process.poll() is None:
            return "(still running)"
        assert self.process.stdout is not None
        return self.process.stdout.read()

    def terminate(self) -> int:
        """SIGTERM, then wait (bounded) for the exit status.

        uvicorn shuts down gracefully, then re-raises the signal for its default action: the
        status of a clean exit is 0 or -SIGTERM.
        """
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(DEADLINE)

    def close(self) -> None:
        self.client.close()
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(DEADLINE)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self.listener.close()


@pytest.fixture
def sqliteServer(tmp_path: Path) -> Iterator[Server]:
    server = Server({"FASTAPI_APP_SQLITE": str(tmp_path / "app.sqlite"), "FASTAPI_APP_DSN": ""})
    yield server
    server.close()


class Postgres:
    """The example's settings for the test database: a table of its own, an application_name to spot
    its sessions in pg_stat_activity."""

    def __init__(self, dsn: str) -> None:
        self.table = f"fastapi_{uuid.uuid4().hex[:12]}"
        self.application = f"fastapi-test-{uuid.uuid4().hex[:8]}"
        self.dsn = f"{dsn} application_name={self.application}"
        self.adminDSN = dsn

    def activeSleeps(self) -> int:
        import psycopg2

        conn = psycopg2.connect(self.adminDSN, connect_timeout=5)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND state = 'active' "
                    "AND query LIKE %s",
                    (self.application, "%pg_sleep%"),
                )
                row = cur.fetchone()
                assert row is not None
                count: int = row[0]
                return count
        finally:
            conn.close()

    def drop(self) -> None:
        import psycopg2

        conn = psycopg2.connect(self.adminDSN, connect_timeout=5)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(f"DROP TABLE IF EXISTS {self.table}")
        finally:
            conn.close()


@pytest.fixture
def postgres(postgresDSN: str) -> Iterator[Postgres]:
    pg = Postgres(postgresDSN)
    yield pg
    pg.drop()


@pytest.fixture
def postgresServer(postgres: Postgres) -> Iterator[Server]:
    server = Server({"FASTAPI_APP_DSN": postgres.dsn, "FASTAPI_APP_TABLE": postgres.table})
    yield server
    server.close()


def _exerciseItems(client: httpx.Client) -> None:
    created = client.post("/items", json={"name": "tea", "price": 2.5})
    assert created.status_code == 201, created.text
    item = created.json()
    assert item["name"] == "tea" and item["price"] == 2.5
    client.post("/items", json={"name": "cake", "price": 4.0})
    assert [i["name"] for i in client.get("/items").json()] == ["cake", "tea"]
    assert client.get(f"/items/{item['id']}").json() == item
    assert client.get("/items/999999").status_code == 404
    assert client.post("/items", json={"name": "", "price": -1}).status_code == 422


def test_sqliteAppServesItemsCpuWorkAndStats(sqliteServer: Server) -> None:
    """On SQLite: items are stored and read back, pbkdf2 runs in a worker that sees the request id,
    /stats reports both pools."""
    client = sqliteServer.client
    _exerciseItems(client)
    derived = client.get("/pbkdf2", params={"iterations": 1000}, headers={"x-request-id": "req-42"})
    assert derived.status_code == 200
    assert derived.json()["requestIdSeenInWorker"] == "req-42"
    assert derived.headers["x-request-id"] == "req-42"
    stats = client.get("/stats").json()
    assert stats["database"] == "sqlite"
    assert stats["connectionPool"]["calls"] >= 5
    assert stats["threadPool"]["completed"] >= 1


def test_badQueryArgumentsGetA400(sqliteServer: Server) -> None:
    """Out-of-range arguments are refused with 400 naming them, without touching the database."""
    response = sqliteServer.client.get("/slow", params={"seconds": 1000})
    assert response.status_code == 400
    assert "seconds" in response.json()["detail"]


def test_postgresAppServesItems(postgresServer: Server) -> None:
    """On PostgreSQL (psycopg2 lanes): the same item API works."""
    _exerciseItems(postgresServer.client)
    assert postgresServer.client.get("/stats").json()["database"] == "postgresql"


def test_clientDisconnectCancelsTheStatementOnPostgres(postgresServer: Server, postgres: Postgres) -> None:
    """A client that disconnects mid pg_sleep makes the server cancel the statement: it leaves
    pg_stat_activity well before it would have ended, and the pool counts a cancelled call."""
    with socket.create_connection(("127.0.0.1", postgresServer.port), timeout=DEADLINE) as raw:
        raw.sendall(b"GET /slow?seconds=60 HTTP/1.1\r\nHost: test\r\n\r\n")
        _until(lambda: postgres.activeSleeps() == 1, "the statement to run on the server")
    start = time.monotonic()
    _until(lambda: postgres.activeSleeps() == 0, "the statement to be cancelled", deadline=10.0)
    assert time.monotonic() - start < 10.0
    stats = postgresServer.client.get("/stats").json()["connectionPool"]
    assert stats["cancelled"] >= 1
    assert postgresServer.client.get("/health").status_code == 200


def test_shutdownFinishesRequestsInFlight(postgresServer: Server, postgres: Postgres) -> None:
    """SIGTERM while a request waits on the database: the request still gets its 200, then the
    lifespan drains the pools and the process exits cleanly."""
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as executor:
        inFlight = executor.submit(postgresServer.client.get, "/slow", params={"seconds": 0.5})
        _until(lambda: postgres.activeSleeps() == 1, "the request to reach the database")
        status = postgresServer.terminate()
        response = inFlight.result(DEADLINE)
    assert response.status_code == 200
    assert response.json() == {"slept": 0.5}
    assert status in CLEAN_EXIT
    output = postgresServer.output()
    assert "Application shutdown complete" in output, output


def test_sqliteShutdownWithoutRequestsExitsCleanly(sqliteServer: Server) -> None:
    """SIGTERM on an idle server: the lifespan stops the reactor and the process exits cleanly."""
    assert sqliteServer.client.get("/pbkdf2", params={"iterations": 10}).status_code == 200
    assert sqliteServer.terminate() in CLEAN_EXIT
    assert "Application shutdown complete" in sqliteServer.output()
