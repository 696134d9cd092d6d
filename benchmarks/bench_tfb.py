"""The TechEmpower test types over HTTP with ``wrk``: our stacks against twisted.web, uvicorn and waitress.

Five servers (``benchmarks/tfb_app.py``), each a subprocess on a free 127.0.0.1 port, one process, a
database pool of 4, the same PostgreSQL (the ``tfb`` database, created and filled first; ``TFB_DSN``
overrides it):

- ``native``: ``reactor.web`` + ``adbapi`` (psycopg2, statements prepared per connection, one
  ``runInteraction`` per multi-query request), ours;
- ``wsgi-flask``: a Flask application on ``deferthreads.wsgi`` (4 threads, psycopg2), ours;
- ``twisted``: twisted.web + Twisted's adbapi (psycopg2), reference;
- ``uvicorn``: Starlette + asyncpg on uvicorn (uvloop, httptools), reference;
- ``waitress-flask``: the same Flask application on waitress (4 threads), reference.

All five start first; then for each test type every server in turn (the order rotates from one test type
to the next) gets a warm-up and ``wrk -t1 -c32 -d<N>s``, so the sides of one ratio are measured minutes
apart at most. Ratios: native / twisted (goal >= 2x), native / uvicorn (>= 1x), wsgi-flask /
waitress-flask (>= 1.5x on /json, /db, /fortunes). The table is printed and written to
``benchmarks/results/tfb.md``; a bar plot of requests/s per test type goes to ``docs/tfb.png``.

Two measurements say what limits a ratio, since the machine (2 cores) runs wrk, the server and PostgreSQL
at once: the server's CPU time per request (from ``/proc``, robust to the noise of other processes), and
the database's ceiling: ``pgbench`` (C, 4 connections) running each test type's statements with no HTTP and
no Python, with the simple query protocol psycopg2 uses and with the prepared statements asyncpg uses.

Run alone: ``python benchmarks/run.py tfb`` (``--quick``: 1 s per measurement). A server whose modules
are missing is left out with the reason; so is the whole benchmark without ``wrk`` or PostgreSQL.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from benchmarks import _tfbcommon as tfb
from benchmarks._harness import Comparison, Target
from benchmarks.tfb_app import missingModules

HERE = Path(__file__).resolve().parent
APP = HERE / "tfb_app.py"
PLOT = HERE.parent / "docs" / "tfb.png"
TABLE = HERE / "results" / "tfb.md"

# (label, tfb_app implementation); ours first.
SERVERS: tuple[tuple[str, str], ...] = (
    ("native", "native"),
    ("wsgi-flask", "wsgi"),
    ("twisted", "twisted"),
    ("uvicorn", "starlette"),
    ("waitress-flask", "waitress"),
)
# (test type, request target)
TESTS: tuple[tuple[str, str], ...] = (
    ("json", "/json"),
    ("plaintext", "/plaintext"),
    ("db", "/db"),
    ("queries", "/queries?queries=20"),
    ("fortunes", "/fortunes"),
    ("updates", "/updates?queries=20"),
)
NATIVE_TARGETS = [Target("twisted", 2.0), Target("uvicorn", 1.0)]
WSGI_TARGET_TESTS = {"json", "db", "fortunes"}
CONNECTIONS = 32
READY_SECONDS = 30.0


@dataclass
class WrkResult:
    """One wrk run: requests/s, and what went wrong (non-2xx answers, socket errors)."""

    requestsPerSecond: float
    requests: int
    problems: list[str] = field(default_factory=list)


def parseWrk(output: str) -> WrkResult:
    """Read requests/s, the request count and any errors from wrk's report (raises ValueError if none)."""
    rate = re.search(r"Requests/sec:\s*([\d.]+)", output)
    count = re.search(r"(\d+) requests in", output)
    if rate is None or count is None:
        raise ValueError(f"no 'Requests/sec' in wrk's output:\n{output}")
    problems = []
    non2xx = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", output)
    if non2xx:
        problems.append(f"{non2xx.group(1)} non-2xx")
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    if errors and any(int(n) for n in errors.groups()):
        problems.append("socket errors: connect {}, read {}, write {}, timeout {}".format(*errors.groups()))
    return WrkResult(float(rate.group(1)), int(count.group(1)), problems)


def runWrk(wrk: str, url: str, seconds: float) -> WrkResult:
    """``wrk -t1 -c32 -d<seconds>s url``, bounded in time."""
    duration = max(1, round(seconds))
    done = subprocess.run([wrk, "-t1", f"-c{CONNECTIONS}", f"-d{duration}s", "--timeout", "5s", url],
                          capture_output=True, text=True, timeout=duration + 30, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}) on {url}: {done.stderr.strip()}")
    return parseWrk(done.stdout)


def freePort() -> int:
    """A port nothing listens on now (the server binds it a moment later)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpuSeconds(pid: int) -> float | None:
    """User + system CPU seconds the process has used (Linux ``/proc``; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pgbenchScript(test: str) -> str:
    """The statements of one request of ``test`` as a pgbench script (random ids drawn by pgbench)."""
    n = 20 if test in ("queries", "updates") else 1
    if test == "fortunes":
        return tfb.FORTUNE_SQL + ";\n"
    lines = [f"\\set id{i} random(1, {tfb.WORLD_ROWS})" for i in range(n)]
    lines += [tfb.WORLD_SQL.replace("%s", f":id{i}") + ";" for i in range(n)]
    if test == "updates":
        lines += [f"\\set r{i} random(1, {tfb.WORLD_ROWS})" for i in range(n)]
        update = tfb.updateSQL(n)
        for i in range(n):
            update = update.replace("(%s::int,%s::int)", f"(:id{i}::int,:r{i}::int)", 1)
        lines.append(update + ";")
    return "\n".join(lines) + "\n"


def databaseCeilings(dsn: str, seconds: float) -> dict[str, tuple[float, float]]:
    """Requests/s PostgreSQL alone allows per database test type: (simple protocol, prepared), by pgbench.

    Empty when pgbench is not installed. ``-c 4`` (the pool size), one pgbench thread.
    """
    pgbench = shutil.which("pgbench")
    if pgbench is None:
        print("note: no pgbench: the database ceilings are left out", flush=True)
        return {}
    ceilings: dict[str, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for test in ("db", "queries", "fortunes", "updates"):
            script = Path(tmp) / f"{test}.sql"
            script.write_text(pgbenchScript(test))
            rates = []
            for mode in ("simple", "prepared"):
                done = subprocess.run([pgbench, "-n", "-c", str(tfb.POOL_SIZE), "-j", "1", "-M", mode,
                                       "-T", str(max(1, round(seconds))), "-f", str(script), dsn],
                                      capture_output=True, text=True, timeout=seconds + 60, check=False)
                match = re.search(r"tps = ([\d.]+)", done.stdout)
                if done.returncode != 0 or match is None:
                    raise RuntimeError(f"pgbench failed on {test}: {done.stderr.strip()}")
                rates.append(float(match.group(1)))
            ceilings[test] = (rates[0], rates[1])
    return ceilings


@dataclass
class Server:
    """A running ``tfb_app.py`` subprocess."""

    label: str
    port: int
    process: subprocess.Popen[bytes]
    log: IO[bytes]

    def url(self, target: str) -> str:
        return f"http://127.0.0.1:{self.port}{target}"

    def errorOutput(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-3000:]


def waitReady(server: Server, deadline: float) -> None:
    """Connect until the server accepts, or raise once it exits or the deadline passes."""
    while True:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.label} exited ({server.process.returncode}):\n"
                               f"{server.errorOutput()}")
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=1.0):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{server.label} did not accept connections within {READY_SECONDS:g} s:\n"
                                   f"{server.errorOutput()}") from None
            time.sleep(0.05)  # the server is starting: poll its port, bounded by the deadline


def checkEndpoints(server: Server) -> None:
    """One request per test type, each must answer 200: a broken side is reported, not measured."""
    for _, target in TESTS:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        try:
            conn.request("GET", target)
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"{server.label} answered {response.status} to {target}")
        finally:
            conn.close()


@contextlib.contextmanager
def startServers(dsn: str, labels: list[tuple[str, str]]) -> Iterator[dict[str, Server]]:
    """Start every server, wait until all accept and answer; stop them all on exit."""
    servers: dict[str, Server] = {}
    try:
        for label, implementation in labels:
            port = freePort()
            log = tempfile.TemporaryFile()
            process = subprocess.Popen([sys.executable, str(APP), implementation, "--port", str(port),
                                        "--dsn", dsn], stdout=subprocess.DEVNULL, stderr=log)
            servers[label] = Server(label, port, process, log)
        deadline = time.monotonic() + READY_SECONDS
        for server in servers.values():
            waitReady(server, deadline)
            checkEndpoints(server)
        yield servers
    finally:
        for server in servers.values():
            if server.process.poll() is None:
                server.process.send_signal(signal.SIGTERM)
        for server in servers.values():
            try:
                server.process.wait(10)
            except subprocess.TimeoutExpired:
                server.process.kill()
                server.process.wait(10)
            server.log.close()


def plot(rates: dict[str, dict[str, float]], labels: list[str], path: Path) -> None:
    """A grouped bar chart: requests/s per test type (log scale), one bar per server."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tests = [t for t, _ in TESTS]
    width = 0.8 / max(1, len(labels))
    fig, ax = plt.subplots(figsize=(10, 5))
    for i, label in enumerate(labels):
        xs = [j + (i - (len(labels) - 1) / 2) * width for j in range(len(tests))]
        ax.bar(xs, [rates[t].get(label, 0.0) for t in tests], width, label=label)
    ax.set_xticks(range(len(tests)), [target for _, target in TESTS], fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("requests/s (log scale)")
    ax.set_title(f"TechEmpower test types, wrk -t1 -c{CONNECTIONS}, one process, pool of {tfb.POOL_SIZE}")
    ax.legend(fontsize=8)
    ax.grid(axis="y", which="both", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def table(rates: dict[str, dict[str, float]], problems: dict[str, dict[str, list[str]]],
          labels: list[str], cpu: dict[str, dict[str, float]],
          ceilings: dict[str, tuple[float, float]]) -> str:
    """The markdown tables: requests/s and the goal ratios; CPU per request and the database ceiling."""

    def ratio(test: str, ours: str, ref: str) -> str:
        a, b = rates[test].get(ours), rates[test].get(ref)
        return f"{a / b:.2f}x" if a and b else "n/a"

    head = ["test type", *labels, "native/twisted", "native/uvicorn", "wsgi/waitress"]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for test, target in TESTS:
        cells = [f"`{target}`"]
        for label in labels:
            value = rates[test].get(label)
            mark = " (!)" if problems[test].get(label) else ""
            cells.append(f"{value:,.0f}{mark}" if value is not None else "n/a")
        cells += [ratio(test, "native", "twisted"), ratio(test, "native", "uvicorn"),
                  ratio(test, "wsgi-flask", "waitress-flask")]
        lines.append("| " + " | ".join(cells) + " |")
    notes = [f"- {label} on {test}: {', '.join(p)}" for test, _ in TESTS
             for label, p in problems[test].items() if p]
    if notes:
        lines += ["", "(!) errors during the run:", *notes]
    head = ["test type", *labels, "PostgreSQL alone: simple / prepared"]
    lines += ["", "Server CPU per request (microseconds) and what PostgreSQL alone allows (pgbench, "
              f"{tfb.POOL_SIZE} connections, requests/s):", "",
              "| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for test, target in TESTS:
        cells = [f"`{target}`"]
        cells += [f"{cpu[test][label] * 1e6:,.0f}" if label in cpu[test] else "n/a" for label in labels]
        ceiling = ceilings.get(test)
        cells.append(f"{ceiling[0]:,.0f} / {ceiling[1]:,.0f}" if ceiling else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def run(quick: bool) -> list[Comparison]:
    seconds = 1.0 if quick else 5.0
    warmup = 1.0 if quick else 2.0
    wrk = shutil.which("wrk")
    if wrk is None:
        print("skipped: wrk is not installed (make bench installs it: apt-get install wrk)")
        return []
    dsn = os.environ.get("TFB_DSN", tfb.DEFAULT_DSN)
    try:
        tfb.setup(dsn)
    except Exception as e:
        print(f"skipped: PostgreSQL for {dsn!r} is not usable: {type(e).__name__}: {e}")
        return []
    available: list[tuple[str, str]] = []
    for label, implementation in SERVERS:
        missing = missingModules(implementation)
        if missing:
            print(f"left out: {label} (module not available: {', '.join(missing)})", flush=True)
        else:
            available.append((label, implementation))
    labels = [label for label, _ in available]
    # Other processes share the 2 cores with wrk, the servers and PostgreSQL: say how busy the machine was.
    load = f"load average {os.getloadavg()[0]:.1f} at the start" if hasattr(os, "getloadavg") else ""
    rates: dict[str, dict[str, float]] = {test: {} for test, _ in TESTS}
    problems: dict[str, dict[str, list[str]]] = {test: {} for test, _ in TESTS}
    cpu: dict[str, dict[str, float]] = {test: {} for test, _ in TESTS}
    with startServers(dsn, available) as servers:
        for n, (test, target) in enumerate(TESTS):
            order = labels[n % len(labels):] + labels[: n % len(labels)] if labels else []
            for label in order:
                url = servers[label].url(target)
                runWrk(wrk, url, warmup)
                pid = servers[label].process.pid
                before = cpuSeconds(pid)
                result = runWrk(wrk, url, seconds)
                after = cpuSeconds(pid)
                rates[test][label] = result.requestsPerSecond
                problems[test][label] = result.problems
                if before is not None and after is not None and result.requests:
                    cpu[test][label] = (after - before) / result.requests
                print(f"    {target:<22} {label:<15} {result.requestsPerSecond:>10,.0f} req/s"
                      + (f"  ({'; '.join(result.problems)})" if result.problems else ""), flush=True)
    ceilings = databaseCeilings(dsn, seconds)
    text = table(rates, problems, labels, cpu, ceilings)
    heading = f"requests/s, wrk -t1 -c{CONNECTIONS} -d{seconds:g}s after a {warmup:g} s warm-up; {load}"
    print(f"\n{heading}:\n\n{text}")
    TABLE.parent.mkdir(exist_ok=True)
    TABLE.write_text(f"# TechEmpower test types ({time.strftime('%Y-%m-%d %H:%M')})\n\n{heading}.\n\n{text}")
    if labels:
        plot(rates, labels, PLOT)
        print(f"plot: {PLOT}")
    return comparisons(rates, seconds)


def comparisons(rates: dict[str, dict[str, float]], seconds: float) -> list[Comparison]:
    """The goal ratios as the harness's Comparisons (for run.py's summary)."""
    results: list[Comparison] = []
    for test, target in TESTS:
        got = rates[test]
        note = f"wrk -t1 -c{CONNECTIONS} -d{seconds:g}s; requests/s"
        native: dict[str, float] = {k: got[k] for k in ("native", "twisted", "uvicorn") if k in got}
        if "native" in native and len(native) > 1:
            results.append(Comparison(f"TFB {target} native", 0, native, ours="native",
                                      targets=list(NATIVE_TARGETS), note=note))
        wsgi: dict[str, float] = {k: got[k] for k in ("wsgi-flask", "waitress-flask") if k in got}
        if len(wsgi) == 2:
            targets = [Target("waitress-flask", 1.5)] if test in WSGI_TARGET_TESTS else []
            results.append(Comparison(f"TFB {target} wsgi-flask", 0, wsgi, ours="wsgi-flask",
                                      targets=targets, note=note))
    return results
