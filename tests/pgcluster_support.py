"""A throwaway PostgreSQL primary and a streaming hot standby, for the replica and failover tests.

``PgCluster.create()`` runs ``initdb`` (the server binaries under ``/usr/lib/postgresql/*/bin``) in a
temporary directory with ``wal_level = replica``, starts it on a free loopback port, clones it with
``pg_basebackup -R`` into a second directory and starts that as a hot standby on another free port, then
waits (bounded) until the standby streams. ``close()`` stops both (``pg_ctl stop -m immediate``) and
removes the directories. As root, every server program runs as the ``postgres`` user (PostgreSQL refuses
to run as root), as tests/pgbouncer_support.py does for PgBouncer. The machine's own cluster (port 5432)
is never touched: each server listens on 127.0.0.1 only, on a port bound free just before, with its
socket directory inside its own temporary directory.

``initdb`` runs once per test session into a template directory; each cluster's primary is a copy of it.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

BOUND = 60.0  # seconds: the bound on any one start, stop, backup or wait for streaming

_templateLock = threading.Lock()
_template: dict[str, str] = {}


def serverBinaries() -> str | None:
    """The directory of the newest PostgreSQL server binaries (initdb, pg_ctl, ...), or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(p.split("/")[-3]) if p.split("/")[-3].isdigit() else 0)
    return os.path.dirname(found[-1]) if found else None


def freePort() -> int:
    """A loopback TCP port nothing listens on right now (bound to port 0, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _asPostgres() -> dict[str, Any]:
    """Popen keywords that run a server program as ``postgres`` when we are root."""
    if os.geteuid() != 0:
        return {}
    entry = pwd.getpwnam("postgres")
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _chownToPostgres(path: str) -> None:
    if os.geteuid() != 0:
        return
    entry = pwd.getpwnam("postgres")
    for root, _dirs, files in os.walk(path):
        os.chown(root, entry.pw_uid, entry.pw_gid)
        for name in files:
            os.chown(os.path.join(root, name), entry.pw_uid, entry.pw_gid)


def _run(command: list[str], what: str) -> str:
    """Run a server program (as postgres when root) to completion within BOUND; its output, or raise."""
    result = subprocess.run(command, capture_output=True, text=True, timeout=BOUND, cwd="/",
                            **_asPostgres())
    if result.returncode != 0:
        raise RuntimeError(f"{what} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return str(result.stdout)


def _templateDirectory(binaries: str) -> str:
    """A freshly initdb'ed data directory, made once per session and copied for each primary."""
    with _templateLock:
        if binaries not in _template:
            base = tempfile.mkdtemp(prefix="pgcluster-template-")
            os.chmod(base, 0o755)
            _chownToPostgres(base)
            data = os.path.join(base, "data")
            _run([os.path.join(binaries, "initdb"), "-D", data, "-U", "postgres", "--auth=trust",
                  "--no-sync", "--no-instructions", "-E", "UTF8", "--locale=C"], "initdb")
            _template[binaries] = data
        return _template[binaries]


def removeTemplates() -> None:
    """Remove the session's template directories (the session fixture's teardown)."""
    with _templateLock:
        for data in _template.values():
            shutil.rmtree(os.path.dirname(data), ignore_errors=True)
        _template.clear()


class Server:
    """One PostgreSQL server: its data directory, port, log, and pg_ctl to start, stop and promote it."""

    def __init__(self, binaries: str, directory: str, port: int) -> None:
        self.binaries = binaries
        self.directory = directory
        self.data = os.path.join(directory, "data")
        self.port = port
        self.logPath = os.path.join(directory, "server.log")
        self.running = False

    @property
    def dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} dbname=postgres user=postgres connect_timeout=5"

    def pgCtl(self, *args: str) -> str:
        return _run([os.path.join(self.binaries, "pg_ctl"), "-D", self.data, *args], f"pg_ctl {args[0]}")

    def start(self) -> None:
        """Start the server and return once it accepts connections (``pg_ctl -w``, bounded)."""
        self.pgCtl("start", "-w", "-t", str(int(BOUND)), "-l", self.logPath)
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``immediate``: as a crash, no shutdown checkpoint, clients cut off)."""
        if not self.running:
            return
        self.running = False
        self.pgCtl("stop", "-w", "-t", str(int(BOUND)), "-m", mode)

    def promote(self) -> None:
        """Promote a standby to a primary; returns once it accepts writes (``pg_ctl promote -w``)."""
        self.pgCtl("promote", "-w", "-t", str(int(BOUND)))

    def configure(self, settings: dict[str, str]) -> None:
        """Append settings to postgresql.conf (later lines win over earlier ones)."""
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            for key, value in settings.items():
                f.write(f"{key} = {value}\n")

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Run ``sql`` on this server in its own autocommit connection (blocking; test threads only)."""
        import psycopg2

        with contextlib.closing(psycopg2.connect(self.dsn)) as conn:
            conn.autocommit = True
            with conn.cursor() as cursor:
                cursor.execute(sql, params or None)
                return list(cursor.fetchall()) if cursor.description else []

    def log(self) -> str:
        with contextlib.suppress(OSError), open(self.logPath, errors="replace") as f:
            return f.read()[-4000:]
        return ""


class PgCluster:
    """A primary and one streaming hot standby, each in its own temporary directory on a free port.

    ``synchronous=True`` makes the standby synchronous (``synchronous_standby_names = '*'``): a commit is
    acknowledged once the standby has flushed it, so a promoted standby holds every acknowledged write.
    Asynchronous (the default) lets the standby lag, as read replicas usually do.
    """

    def __init__(self, binaries: str, synchronous: bool = False) -> None:
        self.binaries = binaries
        self.synchronous = synchronous
        self.directory = tempfile.mkdtemp(prefix="pgcluster-")
        os.chmod(self.directory, 0o755)
        for name in ("primary", "standby"):
            os.mkdir(os.path.join(self.directory, name), 0o700)
        _chownToPostgres(self.directory)
        self.primary = Server(binaries, os.path.join(self.directory, "primary"), freePort())
        self.standby = Server(binaries, os.path.join(self.directory, "standby"), freePort())

    @classmethod
    def create(cls, binaries: str, synchronous: bool = False) -> PgCluster:
        cluster = cls(binaries, synchronous)
        try:
            cluster._build()
        except BaseException:
            cluster.close()
            raise
        return cluster

    def _build(self) -> None:
        template = _templateDirectory(self.binaries)
        _run(["cp", "-a", template, self.primary.data], "copying the template data directory")
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.primary.port),
            "unix_socket_directories": f"'{self.primary.directory}'",
            "wal_level": "replica",
            "max_wal_senders": "4",
            "hot_standby": "on",
            "hot_standby_feedback": "on",
            "wal_receiver_status_interval": "1s",
            "fsync": "off",  # a server killed (not the machine) keeps what the OS has: enough for tests
            "max_connections": "50",
            "shared_buffers": "16MB",
            "log_min_messages": "warning",
        }
        if self.synchronous:
            settings["synchronous_standby_names"] = "'*'"
        self.primary.configure(settings)
        self.primary.start()
        _run([os.path.join(self.binaries, "pg_basebackup"), "-D", self.standby.data, "-R", "-X", "stream",
              "-c", "fast", "--no-sync", "-h", "127.0.0.1", "-p", str(self.primary.port), "-U", "postgres"],
             "pg_basebackup")
        # The standby's copy of the configuration names the standby itself as synchronous: once promoted,
        # with no standby of its own, every commit would wait for ever. It is promoted alone here.
        self.standby.configure({"port": str(self.standby.port),
                                "unix_socket_directories": f"'{self.standby.directory}'",
                                "synchronous_standby_names": "''"})
        self.standby.start()
        self.waitForStreaming()

    def waitForStreaming(self) -> None:
        """Return once the primary reports the standby streaming (bounded by BOUND)."""
        deadline = time.monotonic() + BOUND
        pause = threading.Event()
        while True:
            rows = self.primary.query("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")
            if rows[0][0] >= 1:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the standby did not stream within {BOUND} s:\n{self.standby.log()}")
            pause.wait(0.02)

    def waitForReplay(self) -> None:
        """Return once the standby has replayed everything the primary has written so far (bounded)."""
        target = self.primary.query("SELECT pg_current_wal_lsn()::text")[0][0]
        deadline = time.monotonic() + BOUND
        pause = threading.Event()
        while True:
            rows = self.standby.query("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", target)
            if rows[0][0]:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the standby did not replay up to {target} within {BOUND} s")
            pause.wait(0.01)

    @property
    def failoverDSN(self) -> str:
        """libpq's multi-host DSN over both servers that connects to whichever accepts writes."""
        return (f"host=127.0.0.1,127.0.0.1 port={self.primary.port},{self.standby.port} dbname=postgres "
                "user=postgres target_session_attrs=read-write connect_timeout=2")

    def close(self) -> None:
        """Stop both servers (as a crash: nothing to keep) and remove their directories."""
        for server in (self.standby, self.primary):
            with contextlib.suppress(Exception):
                server.stop("immediate")
        shutil.rmtree(self.directory, ignore_errors=True)


def clusterOrSkip(synchronous: bool = False) -> Iterator[PgCluster]:
    """Yield a new cluster, closed afterwards; skip (or fail under REQUIRE_POSTGRES=1) without binaries."""
    binaries = serverBinaries()
    if binaries is None or (os.geteuid() == 0 and not _hasPostgresUser()):
        reason = "PostgreSQL server binaries (/usr/lib/postgresql/*/bin) or the postgres user are missing"
        if os.environ.get("REQUIRE_POSTGRES") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    cluster = PgCluster.create(binaries, synchronous=synchronous)
    try:
        yield cluster
    finally:
        cluster.close()


def _hasPostgresUser() -> bool:
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return False
    return True


@pytest.fixture(scope="session", autouse=False)
def pgclusterTemplates() -> Iterator[None]:
    """Removes the session's initdb template at the end (request it from a module-scoped fixture)."""
    yield
    removeTemplates()


@pytest.fixture(scope="module")
def pgcluster(pgclusterTemplates: None) -> Iterator[PgCluster]:
    """One asynchronous primary + standby shared by a test module."""
    yield from clusterOrSkip()
