"""Network benchmarks: TCP echo against our reactor, Twisted's epoll reactor and asyncio; HTTP via wrk.

Every server runs in its own subprocess (``benchmarks/_netservers.py``); the load comes from one
client program identical for every server (``benchmarks/_echoclient.py``: 100 connections, each
sending a 1 KiB message and waiting for its echo, for a fixed duration). HTTP: ``wrk`` against a
minimal JSON endpoint on our server (``examples/_http.py``, h11) and on ``twisted.web``; skipped
with a note when wrk is not installed. Each round of a side measures messages (or requests) per
second; the harness reports the median over rounds. The side returns ``ops / rate`` as its elapsed
time, so the harness's ops/s is exactly the measured rate.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks._harness import Comparison, Target, compare

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable
NOMINAL_OPS = 100_000  # only scales the harness's arithmetic; the rate is what is measured

# Seconds per side per round; the spec is 10 s on a quiet machine.
DURATION = float(os.environ.get("BENCH_NETWORK_SECONDS", "3"))


@dataclass
class ServerHandle:
    """A running benchmark server: its port, its pid, and the server CPU time per message measured."""

    port: int
    pid: int
    cpuPerMessage: list[float] = field(default_factory=list)

    def cpuSeconds(self) -> float:
        """User + system CPU time the server process has used so far (Linux /proc)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks


@contextmanager
def serverProcess(kind: str) -> Iterator[ServerHandle]:
    proc = subprocess.Popen(
        [PYTHON, str(HERE / "_netservers.py"), kind],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.match(r"PORT (\d+)", line)
        if match is None:
            raise RuntimeError(f"{kind} server did not start: {line!r}")
        yield ServerHandle(int(match.group(1)), proc.pid)
    finally:
        proc.kill()
        proc.wait(timeout=10)


def echoSide(server: ServerHandle, connections: int, size: int, seconds: float) -> Callable[[], float]:
    def side() -> float:
        cpuBefore = server.cpuSeconds()
        out = subprocess.run(
            [
                PYTHON,
                str(HERE / "_echoclient.py"),
                str(server.port),
                str(connections),
                str(size),
                str(seconds),
            ],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
            check=True,
        )
        result = json.loads(out.stdout)
        # Includes the client's warm-up and connection setup, the same for every server.
        server.cpuPerMessage.append((server.cpuSeconds() - cpuBefore) / max(1, result["messages"]))
        rate = float(result["messages"]) / float(result["seconds"])
        return NOMINAL_OPS / rate

    return side


def wrkSide(server: ServerHandle, seconds: float, connections: int) -> Callable[[], float]:
    def side() -> float:
        url = f"http://127.0.0.1:{server.port}/"
        cpuBefore = server.cpuSeconds()
        out = subprocess.run(
            ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", url],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
            check=True,
        )
        match = re.search(r"Requests/sec:\s*([\d.]+)", out.stdout)
        total = re.search(r"(\d+) requests in", out.stdout)
        if match is None or total is None:
            raise RuntimeError(f"cannot read wrk's output: {out.stdout!r}")
        errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out.stdout)
        if errors:
            raise RuntimeError(f"wrk saw {errors.group(1)} error responses")
        server.cpuPerMessage.append((server.cpuSeconds() - cpuBefore) / max(1, int(total.group(1))))
        return NOMINAL_OPS / float(match.group(1))

    return side


def cpuLine(handles: dict[str, ServerHandle], unit: str) -> str:
    """The median server CPU time per message/request of each side, as one line."""
    cpu = {name: statistics.median(h.cpuPerMessage) * 1e6 for name, h in handles.items()}
    line = ", ".join(f"{name} {value:.1f} us" for name, value in cpu.items())
    print(f"    server CPU per {unit} (median): {line}", flush=True)
    return f"server CPU per {unit}: {line}"


def run(quick: bool) -> list[Comparison]:
    seconds = 1.0 if quick else DURATION
    rounds = 2 if quick else 5
    results: list[Comparison] = []
    with (
        serverProcess("ours-echo") as ours,
        serverProcess("twisted-echo") as twisted,
        serverProcess("asyncio-echo") as aio,
    ):
        echo = compare(
            "TCP echo, 100 connections x 1 KiB messages (messages/s)",
            {
                "deferthreads": echoSide(ours, 100, 1024, seconds),
                "twisted-epoll": echoSide(twisted, 100, 1024, seconds),
                "asyncio": echoSide(aio, 100, 1024, seconds),
            },
            ops=NOMINAL_OPS,
            rounds=rounds,
            warmup=1,
            targets=[Target("twisted-epoll", 1.5), Target("asyncio", 1.0)],
            note=f"{seconds:g} s per side per round; servers in subprocesses, one selectors client",
        )
        # Server CPU per message is far less sensitive to a busy machine than throughput.
        echo.note += "; " + cpuLine(
            {"deferthreads": ours, "twisted-epoll": twisted, "asyncio": aio}, "message"
        )
        results.append(echo)
    if shutil.which("wrk") is None:
        print("HTTP benchmark skipped: wrk is not installed (apt-get install wrk)", flush=True)
        return results
    with serverProcess("ours-http") as ours, serverProcess("twisted-http") as twisted:
        web = compare(
            "HTTP/1.1 keep-alive GET of a small JSON body, wrk -c50 (requests/s)",
            {"deferthreads": wrkSide(ours, seconds, 50), "twisted.web": wrkSide(twisted, seconds, 50)},
            ops=NOMINAL_OPS,
            rounds=rounds,
            warmup=1,
            note=f"{max(1, round(seconds))} s per side per round; ours: examples/_http.py (h11)",
        )
        web.note += "; " + cpuLine({"deferthreads": ours, "twisted.web": twisted}, "request")
        results.append(web)
    return results
