"""A throwaway PgBouncer (Debian's ``pgbouncer``) in transaction pooling mode in front of the test PostgreSQL.

Started in a temporary directory on a free loopback port, with ``auth_type = any`` (every client logs in
to the server as the test server's user, who has trust auth there) and a small server pool, so that client
connections share server connections as they do in production. Stopped (and its directory removed) at
the end; :meth:`PgBouncer.restart` stops it and starts it again on the same port.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import pytest

BOUND = 15.0  # seconds: the bound on starting or stopping PgBouncer

CONFIG = """\
[databases]
{database} = host={host} port={port} dbname={database} user={user}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {listenPort}
unix_socket_dir =
auth_type = any
pool_mode = transaction
default_pool_size = {poolSize}
max_client_conn = 200
server_reset_query =
ignore_startup_parameters = extra_float_digits,options
admin_users = {user}
"""


def pgbouncerBinary() -> str | None:
    """The pgbouncer executable, or None (the tests then skip)."""
    return shutil.which("pgbouncer") or next(
        (p for p in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if os.access(p, os.X_OK)), None)


def _freePort() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgBouncer:
    """One PgBouncer process and its directory; ``dsn`` reaches the upstream database through it."""

    def __init__(self, binary: str, upstreamDSN: str, poolSize: int = 2) -> None:
        import psycopg2
        from psycopg2.extensions import parse_dsn

        upstream = parse_dsn(upstreamDSN)
        with contextlib.closing(psycopg2.connect(upstreamDSN, connect_timeout=5)) as conn:
            with conn.cursor() as cursor:
                cursor.execute("SELECT current_user")
                user = cursor.fetchone()[0]
        self.binary = binary
        self.database = upstream.get("dbname", "test")
        self.port = _freePort()
        # PgBouncer refuses to run as root; as root it is started as the postgres user, who must be able
        # to read the configuration.
        self.directory = tempfile.mkdtemp(prefix="pgbouncer-")
        os.chmod(self.directory, 0o755)
        self.config = os.path.join(self.directory, "pgbouncer.ini")
        with open(self.config, "w") as f:
            f.write(CONFIG.format(database=self.database, host=upstream.get("host", "127.0.0.1"),
                                  port=upstream.get("port", "5432"), user=user, listenPort=self.port,
                                  poolSize=poolSize))
        os.chmod(self.config, 0o644)
        self.logPath = os.path.join(self.directory, "pgbouncer.log")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} dbname={self.database} connect_timeout=5"

    def start(self) -> None:
        """Start PgBouncer and return once it accepts a PostgreSQL login (bounded)."""
        import psycopg2

        command = [self.binary]
        if os.geteuid() == 0:
            command += ["-u", "postgres"]
        command.append(self.config)
        log = open(self.logPath, "ab")  # the child keeps its own copy; ours is closed below
        try:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        finally:
            log.close()
        deadline = time.monotonic() + BOUND
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"pgbouncer exited with {self.process.returncode}:\n{self.log()}")
            try:
                psycopg2.connect(self.dsn).close()
                return
            except psycopg2.OperationalError:
                if time.monotonic() > deadline:
                    raise
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.process.wait(0.05)

    def stop(self) -> None:
        """SIGTERM (PgBouncer's immediate shutdown: client connections are dropped), then wait."""
        if self.process is None:
            return
        process, self.process = self.process, None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(BOUND)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(BOUND)

    def restart(self) -> None:
        """Stop and start again on the same port (its clients see their connections dropped)."""
        self.stop()
        self.start()

    def log(self) -> str:
        with open(self.logPath, errors="replace") as f:
            return f.read()[-4000:]

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


@pytest.fixture
def pgbouncer(postgresDSN: str) -> Iterator[PgBouncer]:
    """A running PgBouncer in transaction mode in front of the test server (skips if not installed)."""
    binary = pgbouncerBinary()
    if binary is None:
        if os.environ.get("REQUIRE_POSTGRES") == "1":
            pytest.fail("pgbouncer is not installed (apt-get install pgbouncer; .ci/run does)")
        pytest.skip("pgbouncer is not installed (apt-get install pgbouncer)")
    bouncer = PgBouncer(binary, postgresDSN)
    try:
        bouncer.start()
        yield bouncer
    finally:
        bouncer.close()


def serverRows(upstreamDSN: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Run ``sql`` on the upstream server directly (not through PgBouncer), in the calling thread."""
    import psycopg2

    with contextlib.closing(psycopg2.connect(upstreamDSN, connect_timeout=5)) as conn:
        conn.autocommit = True
        with conn.cursor() as cursor:
            cursor.execute(sql, params or None)  # no params: a % in the SQL is literal
            return list(cursor.fetchall())
