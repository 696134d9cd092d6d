"""The TechEmpower implementations of ``benchmarks/tfb_app.py`` answer every test type by the rules.

Each implementation whose modules import here (native, wsgi, twisted, waitress, starlette) runs as a real
subprocess (``tfb_app.py <impl> --port 0``) against a throwaway PostgreSQL database this module creates,
fills with ``--setup`` and drops; a real HTTP client (http.client) checks the answers: ids in 1..10000,
the ``queries`` count clamped to 1..500 (``foo``, 0 and 501 included), rows as stored, the fortunes sorted
with the request-time one and HTML-escaped, ``Content-Type``, ``Server`` and ``Date`` on every response,
the updates persisted, concurrent updates of overlapping rows all answered.
"""

from __future__ import annotations

import html
import http.client
import json
import os
import re
import selectors
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmarks import _tfbcommon as tfb
from benchmarks.tfb_app import IMPLEMENTATIONS, missingModules

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "benchmarks" / "tfb_app.py"
START_SECONDS = 30.0


# -- the shared rules, without a server


def test_queryCountClampsTo1Through500() -> None:
    """A missing, non-integer, zero or negative count reads as 1; above 500 as 500."""
    cases = {None: 1, "": 1, "foo": 1, "0": 1, "-3": 1, "1": 1, "20": 20, "500": 500, "501": 500,
             "1e3": 1}
    assert {raw: tfb.queryCount(raw) for raw in cases} == cases


def test_queryParameterFindsQueriesAmongOthers() -> None:
    """``queries`` is found anywhere in the query string; absent gives None."""
    assert tfb.queryParameter("a=1&queries=7&b=2") == "7"
    assert tfb.queryParameter("queries=") == ""
    assert tfb.queryParameter("a=1") is None
    assert tfb.queryParameter("") is None


def test_renderFortunesEscapesAndSortsWithTheAddedFortune() -> None:
    """The page escapes markup and lists the rows and the request-time fortune sorted by message."""
    page = tfb.renderFortunes([(2, "b <i>"), (1, "a & z")]).decode()
    assert page == (tfb.FORTUNES_HEAD
                    + "<tr><td>0</td><td>Additional fortune added at request time.</td></tr>"
                    "<tr><td>1</td><td>a &amp; z</td></tr><tr><td>2</td><td>b &lt;i&gt;</td></tr>"
                    + tfb.FORTUNES_TAIL)


def test_updateParametersKeepTheLastValueOfARepeatedIdInIdOrder() -> None:
    """A repeated id is written once, with its last number; pairs are sorted by id (the lock order)."""
    worlds = [{"id": 9, "randomNumber": 1}, {"id": 3, "randomNumber": 2}, {"id": 9, "randomNumber": 5}]
    assert tfb.updateParameters(worlds) == [3, 2, 9, 5]


# -- the servers


@pytest.fixture(scope="module")
def tfbDSN(postgresDSN: str) -> Iterator[str]:
    """A throwaway database on the test server, made and filled as ``--setup`` does; dropped after."""
    params = dict(part.split("=", 1) for part in postgresDSN.split())
    params["dbname"] = f"tfb_test_{uuid.uuid4().hex[:10]}"
    dsn = " ".join(f"{k}={v}" for k, v in params.items())
    tfb.setup(dsn)
    yield dsn
    tfb.dropDatabase(dsn)


class Server:
    """A ``tfb_app.py`` subprocess and a way to call it."""

    def __init__(self, name: str, process: subprocess.Popen[bytes], port: int) -> None:
        self.name = name
        self.process = process
        self.port = port

    def get(self, target: str) -> tuple[int, http.client.HTTPMessage, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
        try:
            conn.request("GET", target)
            response = conn.getresponse()
            return response.status, response.headers, response.read()
        finally:
            conn.close()

    def getJSON(self, target: str, contentType: str = tfb.JSON_TYPE) -> Any:
        status, headers, body = self.get(target)
        assert status == 200, (target, status, body[:500])
        assert (headers.get("Content-Type") or "").startswith(contentType), (target, headers)
        return json.loads(body)


def readAnnouncement(process: subprocess.Popen[bytes], seconds: float) -> int:
    """The port from the server's ``listening on http://127.0.0.1:<port>`` line, waited for with a bound."""
    assert process.stdout is not None
    deadline = time.monotonic() + seconds
    buffer = b""
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while b"\n" not in buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(left):
                raise AssertionError(f"no 'listening' line within {seconds:g} s")
            chunk = os.read(process.stdout.fileno(), 4096)
            if not chunk:
                raise AssertionError(f"the server exited ({process.wait(5)}) before listening")
            buffer += chunk
    match = re.match(rb"listening on http://127\.0\.0\.1:(\d+)", buffer)
    assert match is not None, buffer
    return int(match.group(1))


@pytest.fixture(scope="module", params=sorted(IMPLEMENTATIONS))
def server(request: pytest.FixtureRequest, tfbDSN: str) -> Iterator[Server]:
    """One implementation serving on a free port (skipped with the reason if its modules are missing)."""
    name = request.param
    missing = missingModules(name)
    if missing:
        pytest.skip(f"{name}: module not available: {', '.join(missing)}")
    process = subprocess.Popen([sys.executable, str(APP), name, "--port", "0", "--dsn", tfbDSN],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        try:
            port = readAnnouncement(process, START_SECONDS)
        except AssertionError:
            process.kill()
            _, err = process.communicate(timeout=10)
            raise AssertionError(f"{name} did not start: {err.decode(errors='replace')[-3000:]}") from None
        yield Server(name, process, port)
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()


def storedWorlds(dsn: str, ids: list[int]) -> dict[int, int]:
    import psycopg2

    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT id, randomnumber FROM world WHERE id = ANY(%s)", (ids,))
            return dict(cursor.fetchall())
    finally:
        conn.close()


def assertWorld(w: Any) -> None:
    assert set(w) == {"id", "randomNumber"}, w
    assert isinstance(w["id"], int) and 1 <= w["id"] <= tfb.WORLD_ROWS, w
    assert isinstance(w["randomNumber"], int) and 1 <= w["randomNumber"] <= tfb.WORLD_ROWS, w


@pytest.mark.parametrize("target", ["/json", "/plaintext", "/db", "/queries?queries=2", "/fortunes",
                                    "/updates?queries=2"])
def test_everyResponseCarriesServerAndDate(server: Server, target: str) -> None:
    """Each test type answers 200 with a Server header and an HTTP date."""
    status, headers, _ = server.get(target)
    assert status == 200
    assert headers.get("Server"), headers
    assert re.fullmatch(r"[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT",
                        headers.get("Date") or ""), headers


def test_jsonAnswersTheHelloWorldObject(server: Server) -> None:
    """/json is {"message": "Hello, World!"} as application/json."""
    assert server.getJSON("/json") == {"message": "Hello, World!"}


def test_plaintextAnswersHelloWorld(server: Server) -> None:
    """/plaintext is the bytes Hello, World! as text/plain."""
    status, headers, body = server.get("/plaintext")
    assert (status, body) == (200, b"Hello, World!")
    assert (headers.get("Content-Type") or "").startswith("text/plain")


def test_dbAnswersOneStoredWorld(server: Server, tfbDSN: str) -> None:
    """/db is one world object, with an id in range and the number stored for it."""
    w = server.getJSON("/db")
    assertWorld(w)
    assert storedWorlds(tfbDSN, [w["id"]]) == {w["id"]: w["randomNumber"]}


@pytest.mark.parametrize(("raw", "count"), [("", 1), ("foo", 1), ("0", 1), ("1", 1), ("20", 20),
                                            ("500", 500), ("501", 500)])
def test_queriesClampsTheCount(server: Server, raw: str, count: int) -> None:
    """/queries answers 1 world for a missing, bad or zero count and at most 500."""
    target = "/queries" if raw == "" else f"/queries?queries={raw}"
    worlds = server.getJSON(target)
    assert isinstance(worlds, list) and len(worlds) == count
    for w in worlds:
        assertWorld(w)


def test_queriesAnswersStoredRows(server: Server, tfbDSN: str) -> None:
    """Every world /queries answers has the number stored for its id."""
    worlds = server.getJSON("/queries?queries=20")
    stored = storedWorlds(tfbDSN, [w["id"] for w in worlds])
    assert [(w["id"], w["randomNumber"]) for w in worlds] == [(w["id"], stored[w["id"]]) for w in worlds]


def test_fortunesAreSortedEscapedAndIncludeTheAddedOne(server: Server) -> None:
    """/fortunes lists the 12 rows and the request-time fortune sorted by message, escaped, as UTF-8 HTML."""
    status, headers, body = server.get("/fortunes")
    assert status == 200
    contentType = (headers.get("Content-Type") or "").replace(" ", "").lower()
    assert contentType == "text/html;charset=utf-8", contentType
    page = body.decode("utf-8")
    assert page.startswith("<!DOCTYPE html><html><head><title>Fortunes</title></head><body><table>")
    assert page.endswith("</table></body></html>")
    assert "<script>" not in page and "&lt;script&gt;" in page
    rows = re.findall(r"<tr><td>(\d+)</td><td>(.*?)</td></tr>", page)
    expected = sorted([*tfb.FORTUNES, (0, tfb.ADDED_FORTUNE)], key=lambda f: f[1])
    assert [(int(i), html.unescape(m)) for i, m in rows] == expected


@pytest.mark.parametrize(("raw", "count"), [("foo", 1), ("0", 1), ("20", 20), ("501", 500)])
def test_updatesClampsTheCountAndPersists(server: Server, tfbDSN: str, raw: str, count: int) -> None:
    """/updates answers the clamped number of worlds and the database holds each one's new number."""
    worlds = server.getJSON(f"/updates?queries={raw}")
    assert len(worlds) == count
    last: dict[int, int] = {}
    for w in worlds:
        assertWorld(w)
        last[w["id"]] = w["randomNumber"]  # a repeated id keeps its last number
    assert storedWorlds(tfbDSN, list(last)) == last


def test_concurrentUpdatesOfOverlappingRowsAllSucceed(server: Server) -> None:
    """Eight clients updating 100 rows each at once (rows overlap) all get 200: no deadlock."""
    results: list[int] = []
    lock = threading.Lock()

    def client() -> None:
        for _ in range(3):
            status, _, _ = server.get("/updates?queries=100")
            with lock:
                results.append(status)

    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    assert results == [200] * 24


# -- the command line


def test_setupCreatesAndFillsAMissingDatabaseBeforeServing(postgresDSN: str) -> None:
    """``--setup`` on a database that does not exist creates it with 10,000 worlds and the 12 fortunes."""
    if missingModules("native"):
        pytest.skip(f"native: module not available: {', '.join(missingModules('native'))}")
    params = dict(part.split("=", 1) for part in postgresDSN.split())
    params["dbname"] = f"tfb_setup_{uuid.uuid4().hex[:10]}"
    dsn = " ".join(f"{k}={v}" for k, v in params.items())
    process = subprocess.Popen([sys.executable, str(APP), "native", "--port", "0", "--dsn", dsn, "--setup"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        served = Server("native", process, readAnnouncement(process, START_SECONDS))
        assert served.getJSON("/json") == {"message": "Hello, World!"}
        import psycopg2

        conn = psycopg2.connect(dsn)
        try:
            with conn.cursor() as cursor:
                cursor.execute("SELECT count(*), min(id), max(id), min(randomnumber), max(randomnumber) "
                               "FROM world")
                count, low, high, smallest, largest = cursor.fetchone()
                cursor.execute("SELECT id, message FROM fortune ORDER BY id")
                fortunes = cursor.fetchall()
        finally:
            conn.close()
        assert (count, low, high) == (tfb.WORLD_ROWS, 1, tfb.WORLD_ROWS)
        assert 1 <= smallest <= largest <= tfb.WORLD_ROWS
        assert fortunes == list(tfb.FORTUNES)
    finally:
        process.terminate()
        process.wait(15)
        assert process.stdout is not None
        process.stdout.close()
        tfb.dropDatabase(dsn)


@pytest.mark.parametrize(("args", "message"), [
    (["native", "--port", "70000"], "--port must be in 0..65535"),
    (["nginx", "--port", "0"], "invalid choice: 'nginx'"),
])
def test_badArgumentsExitWithTheArgumentNamed(args: list[str], message: str) -> None:
    """A bad port or an unknown implementation exits with status 2 and says which argument is wrong."""
    done = subprocess.run([sys.executable, str(APP), *args], capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 2
    assert message in done.stderr
