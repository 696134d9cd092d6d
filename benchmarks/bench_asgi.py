"""An ASGI application under load: Starlette on uvicorn (uvloop, httptools, one process) under ``wrk``.

The same application and endpoints (``benchmarks/_asgiapp.py``, TechEmpower's rules, a pool of 4)
with our adbapi (psycopg2, the reactor hosted on uvicorn's loop, Deferreds awaited directly)
against asyncpg's pool: the single-row lookup, fortunes, 20 lookups, 20 read-then-update; and the
single lookup against psycopg 3's ``AsyncConnectionPool``, SQLAlchemy's asyncio engine (asyncpg)
and ``asyncio.to_thread`` around a psycopg2 connection per thread. Requests per second, the median
of the rounds; each variant runs in its own uvicorn process, all started at once; an endpoint's
variants are measured one after the other in each round (every other round in reverse order).

Environment: ``ASGI_BENCH_ENDPOINTS`` (comma-separated paths without the slash or query, e.g.
``db,fortunes``) and ``ASGI_BENCH_VARIANTS`` (e.g. ``deferthreads,asyncpg``) run a part only;
``ASGI_BENCH_SECONDS`` and ``ASGI_BENCH_ROUNDS`` change the length of a measurement and their number.

The World (10,000 rows) and Fortune tables are made in the ``test`` database of the local
PostgreSQL (``ASGI_BENCH_DSN``, default ``host=127.0.0.1 port=5432 dbname=test``) under unique
names and dropped at the end. Skipped, with the reason, when ``wrk`` or PostgreSQL is missing.
"""

from __future__ import annotations

import math
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from benchmarks._harness import Comparison, Target

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DSN = "host=127.0.0.1 port=5432 dbname=test"
CONNECTIONS = 64
FORTUNES = [
    "fortune: No such file or directory",
    "A computer scientist is someone who fixes things that aren't broken.",
    "After enough decimal places, nobody gives a damn.",
    "A bad random number generator: 1, 1, 1, 1, 1, 4.33e+67, 1, 1, 1",
    "A computer program does what you tell it to do, not what you want it to do.",
    "Emacs is a nice operating system, but I prefer UNIX. \u2014 Tom Christaensen",
    "Any program that runs right is obsolete.",
    "A list is only as strong as its weakest link. \u2014 Donald Knuth",
    "Feature: A bug with seniority.",
    "Computers make very fast, very accurate mistakes.",
    '<script>alert("This should not be displayed in a browser alert box.");</script>',
    "\u30d5\u30ec\u30fc\u30e0\u30ef\u30fc\u30af\u306e\u30d9\u30f3\u30c1\u30de\u30fc\u30af",
]

#: (endpoint label, path, the variants that serve it, targets against them)
ENDPOINTS: list[tuple[str, str, list[str], list[Target]]] = [
    (
        "single-row lookup",
        "/db",
        ["deferthreads", "asyncpg", "psycopg3", "sqlalchemy", "to_thread"],
        [
            Target("asyncpg", 1.5),
            Target("psycopg3", 1.3),
            Target("sqlalchemy", 2.0),
            Target("to_thread", 1.5),
        ],
    ),
    ("fortunes", "/fortunes", ["deferthreads", "asyncpg"], [Target("asyncpg", 1.5)]),
    ("20 lookups", "/queries?queries=20", ["deferthreads", "asyncpg"], [Target("asyncpg", 1.0)]),
    ("20 read-then-update", "/updates?queries=20", ["deferthreads", "asyncpg"], [Target("asyncpg", 1.0)]),
]


def _admin(dsn: str, statements: list[tuple[str, Any]]) -> None:
    import psycopg2

    conn = psycopg2.connect(dsn, connect_timeout=5)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            for statement, params in statements:
                if isinstance(params, list):
                    cur.executemany(statement, params)
                else:
                    cur.execute(statement, params)
    finally:
        conn.close()


def makeTables(dsn: str) -> tuple[str, str]:
    suffix = uuid.uuid4().hex[:10]
    world, fortune = f"asgi_world_{suffix}", f"asgi_fortune_{suffix}"
    rows = ", ".join(f"({i}, {random.randint(1, 10_000)})" for i in range(1, 10_001))
    _admin(dsn, [
        (f"CREATE TABLE {world} (id INTEGER PRIMARY KEY, randomnumber INTEGER NOT NULL)", None),
        (f"INSERT INTO {world} (id, randomnumber) VALUES {rows}", None),
        (f"CREATE TABLE {fortune} (id INTEGER PRIMARY KEY, message VARCHAR(2048) NOT NULL)", None),
        (f"INSERT INTO {fortune} (id, message) VALUES (%s, %s)", list(enumerate(FORTUNES, 1))),
        (f"ANALYZE {world}", None),
    ])
    return world, fortune


class Server:
    """One uvicorn process serving one variant, on a socket bound here (``--fd``)."""

    def __init__(self, variant: str, dsn: str, world: str, fortune: str) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        fd = self.listener.fileno()
        env = {**os.environ, "PYTHONPATH": str(ROOT), "ASGI_BENCH_VARIANT": variant, "ASGI_BENCH_DSN": dsn,
               "ASGI_BENCH_WORLD": world, "ASGI_BENCH_FORTUNE": fortune}
        # Not ``uvicorn --fd``: it takes the socket for AF_UNIX, so no TCP_NODELAY (see _asgiserve).
        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks._asgiserve", str(fd)], cwd=ROOT, env=env, pass_fds=(fd,),
        )
        deadline = time.monotonic() + 30
        while not self._answers("/db"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"the {variant} server did not start")
            time.sleep(0.05)  # polling a bounded readiness wait

    def _answers(self, path: str) -> bool:
        import http.client

        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            conn.request("GET", path)
            ok = conn.getresponse().status == 200
            conn.close()
            return ok
        except OSError:
            return False

    def check(self, path: str) -> None:
        if not self._answers(path):
            raise RuntimeError(f"{path} does not answer 200")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.listener.close()


def cpuSeconds(pid: int) -> float | None:
    """The process's user + system CPU seconds, all threads (Linux ``/proc``; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu(server: int, backends: list[int]) -> tuple[float, float]:
    """CPU seconds so far of the server process and of its PostgreSQL backends (NaN where unknown).

    A backend that has exited makes the second NaN: asyncpg's pool replaces a connection after
    50,000 queries, so a measurement can outlive one of the backends it started with.
    """
    server_ = cpuSeconds(server)
    ofBackends = [cpuSeconds(b) for b in backends]
    return (
        math.nan if server_ is None else server_,
        math.nan if None in ofBackends or not backends else sum(c for c in ofBackends if c is not None),
    )


def postgresBackends(pid: int) -> list[int]:
    """The PostgreSQL server processes at the other end of process ``pid``'s connections to port 5432.

    Found with ``ss`` (local TCP connections, both ends on this machine); [] when ``ss`` is missing or
    cannot tell. Their CPU is the database's share of a request, which a variant sending fewer
    statements per request saves the machine.
    """
    try:
        mine = subprocess.run(["ss", "-tnpH", "state", "established", "( dport = :5432 )"],
                              capture_output=True, text=True, timeout=10).stdout
        theirs = subprocess.run(["ss", "-tnpH", "state", "established", "( sport = :5432 )"],
                                capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    ports = {m.group(1) for m in re.finditer(rf":(\d+)\s+\S+:5432\s+users:\(\(\"[^\"]*\",pid={pid},", mine)}
    backends = []
    for line in theirs.splitlines():
        found = re.search(r":5432\s+\S+:(\d+)\s+users:\(\(\"postgres\",pid=(\d+),", line)
        if found and found.group(1) in ports:
            backends.append(int(found.group(2)))
    return backends


def wrk(port: int, path: str, seconds: float) -> tuple[float, int]:
    """Requests per second and the request count of one wrk run (non-2xx answers are an error)."""
    out = subprocess.run(
        # --timeout: wrk's default 2 s counts a slow answer as a socket error; at 20 updates per request
        # with 64 connections queued on a pool of 4 the slowest answers take over 1.5 s (not an error).
        ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
         f"http://127.0.0.1:{port}{path}"],
        capture_output=True, text=True, timeout=seconds + 60, check=True,
    ).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk saw errors on {path}:\n{out}")
    rate = re.search(r"Requests/sec:\s*([\d.]+)", out)
    count = re.search(r"(\d+) requests in", out)
    if rate is None or count is None:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    return float(rate.group(1)), int(count.group(1))


def _selected(name: str, chosen: list[str]) -> list[str]:
    """The names of ``ASGI_BENCH_<name>`` (comma-separated) among ``chosen``; all of them when unset."""
    raw = os.environ.get(f"ASGI_BENCH_{name}", "").strip()
    if not raw:
        return chosen
    wanted = [w.strip() for w in raw.split(",") if w.strip()]
    unknown = [w for w in wanted if w not in chosen]
    if unknown:
        raise SystemExit(f"ASGI_BENCH_{name}: unknown {unknown}; known: {chosen}")
    return wanted


def _endpointName(path: str) -> str:
    return path.lstrip("/").split("?")[0]


def _median(values: Iterable[float]) -> float:
    """The median of the known values (NaN ones left out), NaN when none is known."""
    known = [v for v in values if not math.isnan(v)]
    return statistics.median(known) if known else math.nan


def run(quick: bool) -> list[Comparison]:
    if shutil.which("wrk") is None:
        print("skipped: wrk is not installed")
        return []
    dsn = os.environ.get("ASGI_BENCH_DSN", DEFAULT_DSN)
    try:
        world, fortune = makeTables(dsn)
    except Exception as e:
        print(f"skipped: PostgreSQL unreachable at {dsn!r}: {type(e).__name__}: {e}")
        return []
    names = _selected("ENDPOINTS", [_endpointName(path) for _label, path, _served, _targets in ENDPOINTS])
    endpoints = [e for e in ENDPOINTS if _endpointName(e[1]) in names]
    variants = _selected("VARIANTS", ENDPOINTS[0][2])
    seconds = float(os.environ.get("ASGI_BENCH_SECONDS", 2.0 if quick else 3.0))
    # Short measurements, many rounds, the variants of one endpoint one after the other within a round:
    # the machine's two cores are shared (other processes come and go), so the sides of a ratio are
    # measured seconds apart; the median of five rounds (as the harness reports) is what a burst of
    # load on one side does not move. The best round is printed too.
    rounds = int(os.environ.get("ASGI_BENCH_ROUNDS", 1 if quick else 5))
    rates: dict[tuple[str, str], list[float]] = {}
    # CPU per request of each round, of the server process (all its threads) and of the PostgreSQL
    # backends serving it: with two cores shared by wrk, PostgreSQL and the server, the variant that
    # costs the machine less per request leaves more for the rest.
    cpus: dict[tuple[str, str], list[tuple[float, float]]] = {}
    counts: dict[str, int] = {}
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    if load is not None:
        print(f"  load average {load:.1f} at the start (other processes share the cores)", flush=True)
    servers: dict[str, Server] = {}
    try:
        # Every variant's server up at once (an idle one costs nothing), each in its own process.
        for variant in variants:
            if any(variant in served for _label, _path, served, _targets in endpoints):
                servers[variant] = Server(variant, dsn, world, fortune)
        for label, path, served, _targets in endpoints:
            sides = [v for v in served if v in servers]
            for variant in sides:
                servers[variant].check(path)
                wrk(servers[variant].port, path, 1.0)  # warm-up: connections, statement caches
            for round in range(rounds):
                # Every other round in reverse order, so a drift in the machine's load favours no one.
                for variant in sides if round % 2 == 0 else sides[::-1]:
                    server = servers[variant]
                    backends = postgresBackends(server.process.pid)
                    before = _cpu(server.process.pid, backends)
                    rate, count = wrk(server.port, path, seconds)
                    after = _cpu(server.process.pid, backends)
                    cpu = (after[0] - before[0]) / count * 1e6, (after[1] - before[1]) / count * 1e6
                    rates.setdefault((label, variant), []).append(rate)
                    cpus.setdefault((label, variant), []).append(cpu)
                    counts[label] = max(counts.get(label, 0), count)
                    print(f"  {label:<22} {variant:<14} {rate:>10,.0f} req/s; CPU per request: server "
                          f"{cpu[0]:,.0f} us, PostgreSQL {cpu[1]:,.0f} us ({len(backends)} backends)",
                          flush=True)
    finally:
        for server in servers.values():
            server.close()
        _admin(dsn, [(f"DROP TABLE IF EXISTS {world}", None), (f"DROP TABLE IF EXISTS {fortune}", None)])
    results = []
    for label, _path, served, targets in endpoints:
        measured = [v for v in served if (label, v) in rates]
        if "deferthreads" not in measured or len(measured) < 2:
            continue
        ours = rates[(label, "deferthreads")]
        best = ", ".join(f"{v} {max(ours) / max(rates[(label, v)]):.2f}x" for v in measured[1:])
        cpuText = ", ".join(
            f"{v} {_median(server for server, _ in cpus[(label, v)]):,.0f} + "
            f"{_median(database for _, database in cpus[(label, v)]):,.0f}"
            for v in measured
        )
        comparison = Comparison(
            name=f"ASGI (Starlette, uvicorn+uvloop, wrk -c{CONNECTIONS}): {label}",
            ops=counts.get(label, 0),
            opsPerSecond={v: statistics.median(rates[(label, v)]) for v in measured},
            targets=[t for t in targets if t.reference in measured],
            note=f"medians of {rounds} rounds; best round against best round: {best}; "
            f"CPU per request (medians), server (all threads) + PostgreSQL, us: {cpuText}",
        )
        print("\n".join(comparison.lines()))
        results.append(comparison)
    return results
