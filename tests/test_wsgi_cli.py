"""``python -m deferthreads.wsgi``: the command line in a subprocess, over TCP, TLS and a Unix socket."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.netsupport import pkiForTests

ROOT = Path(__file__).resolve().parent.parent

APP = textwrap.dedent(
    """
    import json, sys

    def app(environ, start_response):
        path = environ["PATH_INFO"]
        if path == "/slow":
            stream = environ["wsgi.input"]
            first = stream.read(1)
            print("entered", flush=True)  # the test now stops the server, then sends the rest
            rest = stream.read(int(environ["CONTENT_LENGTH"]) - 1)
            body = json.dumps({"read": len(first) + len(rest)}).encode()
        else:
            body = json.dumps({"path": path, "scheme": environ["wsgi.url_scheme"],
                               "server": environ["SERVER_NAME"]}).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]
    """
)


def freePort() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class CLI:
    """``python -m deferthreads.wsgi myapp:app ...`` running in ``tmp`` (where myapp.py is)."""

    def __init__(self, tmp: Path, *args: str) -> None:
        (tmp / "myapp.py").write_text(APP)
        env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=str(ROOT))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "deferthreads.wsgi", "myapp:app", "--threads", "2", *args],
            cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )

    def waitUntilAccepting(self, connect: object, timeout: float = 30) -> None:
        """Connect until the server accepts (bounded by ``timeout`` and by the process exiting)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                connect()  # type: ignore[operator]
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError("the server did not accept connections in time") from None
                try:
                    self.proc.wait(0.02)
                except subprocess.TimeoutExpired:
                    continue
                raise AssertionError(f"the server exited: {self.proc.communicate(timeout=10)}") from None

    def stop(self) -> tuple[int, str, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        out, err = self.proc.communicate(timeout=30)
        return self.proc.returncode, out, err


@pytest.fixture
def clis() -> Iterator[list[CLI]]:
    started: list[CLI] = []
    yield started
    for cli in started:
        if cli.proc.poll() is None:
            cli.proc.kill()
            cli.proc.communicate(timeout=10)


def tcpCLI(clis: list[CLI], tmp: Path, *args: str) -> tuple[CLI, int]:
    port = freePort()
    cli = CLI(tmp, "--port", str(port), *args)
    clis.append(cli)
    cli.waitUntilAccepting(lambda: socket.create_connection(("127.0.0.1", port), timeout=5).close())
    return cli, port


def test_cliServesAndWritesTheAccessLog(clis: list[CLI], tmp_path: Path) -> None:
    """The CLI serves the application on --port; --access-log gets one Common Log Format line per request."""
    log = tmp_path / "access.log"
    cli, port = tcpCLI(clis, tmp_path, "--access-log", str(log))
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/hi?x=1")
    response = conn.getresponse()
    assert response.status == 200
    assert json.loads(response.read()) == {"path": "/hi", "scheme": "http", "server": "127.0.0.1"}
    conn.close()
    code, _, err = cli.stop()
    assert code == 0, err
    lines = log.read_text().splitlines()
    assert len(lines) == 1 and '"GET /hi?x=1 HTTP/1.1" 200' in lines[0] and lines[0].startswith("127.0.0.1 ")


def test_sigtermLetsARequestInFlightFinish(clis: list[CLI], tmp_path: Path) -> None:
    """SIGTERM while the application reads a request body: the request completes, then the process exits 0
    and the port is closed."""
    cli, port = tcpCLI(clis, tmp_path)
    size = 200_000
    sock = socket.create_connection(("127.0.0.1", port), timeout=20)
    try:
        sock.sendall(b"POST /slow HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n" % size + b"a" * 1000)
        assert cli.proc.stdout is not None
        assert cli.proc.stdout.readline().strip() == "entered"
        cli.proc.send_signal(signal.SIGTERM)
        sock.sendall(b"a" * (size - 1000))
        data = b""
        while b"}" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        sock.close()
    assert data.startswith(b"HTTP/1.1 200") and data.endswith(b'{"read": %d}' % size)
    code, _, err = cli.stop()
    assert code == 0, err
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_cliServesHttpsWithTlsCertAndKey(clis: list[CLI], tmp_path: Path) -> None:
    """--tls-cert/--tls-key serve HTTPS; the application sees wsgi.url_scheme 'https'."""
    pki = pkiForTests()
    (tmp_path / "cert.pem").write_bytes(pki.server.certPEM)
    (tmp_path / "key.pem").write_bytes(pki.server.keyPEM)
    context = ssl.create_default_context(cadata=pki.caPEM.decode())
    cli, port = tcpCLI(clis, tmp_path, "--tls-cert", "cert.pem", "--tls-key", "key.pem")
    conn = http.client.HTTPSConnection("localhost", port, timeout=10, context=context)
    conn.request("GET", "/secure")
    response = conn.getresponse()
    assert response.status == 200
    assert json.loads(response.read()) == {"path": "/secure", "scheme": "https", "server": "localhost"}
    conn.close()
    assert cli.stop()[0] == 0


def test_cliServesOnAUnixSocket(clis: list[CLI], tmp_path: Path) -> None:
    """--unix PATH serves on a Unix socket."""
    path = str(tmp_path / "wsgi.sock")
    cli = CLI(tmp_path, "--unix", path)
    clis.append(cli)

    def connect() -> socket.socket:
        s = socket.socket(socket.AF_UNIX)
        try:
            s.settimeout(10)
            s.connect(path)
        except OSError:
            s.close()
            raise
        return s

    cli.waitUntilAccepting(lambda: connect().close())
    with connect() as s:
        s.sendall(b"GET /u HTTP/1.1\r\nHost: local\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200")
    assert json.loads(data.partition(b"\r\n\r\n")[2]) == {"path": "/u", "scheme": "http", "server": "local"}
    assert cli.stop()[0] == 0


@pytest.mark.parametrize(
    "args,message",
    [
        (["nosuchmodule:app"], "cannot import module 'nosuchmodule'"),
        (["myapp:nothing"], "has no 'nothing'"),
        (["myapp:app", "--threads", "0"], "--threads"),
        (["myapp:app", "--tls-cert", "x.pem"], "--tls-key"),
    ],
)
def test_cliRejectsBadArguments(tmp_path: Path, args: list[str], message: str) -> None:
    """A bad application name or option exits 2 with a message naming it."""
    (tmp_path / "myapp.py").write_text(APP)
    proc = subprocess.run(
        [sys.executable, "-m", "deferthreads.wsgi", *args], cwd=tmp_path, capture_output=True, text=True,
        timeout=60, env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    assert proc.returncode == 2 and message in proc.stderr
