"""Network benchmarks: TCP echo against our reactor, Twisted's epoll reactor and asyncio; HTTP via wrk.

Every server runs in its own subprocess (``benchmarks/_netservers.py``); the load comes from one
client program identical for every server (100 connections, each sending a 1 KiB message and
waiting for its echo, for a fixed duration): ``benchmarks/_echoclient.c``, built with the system C
compiler, or ``benchmarks/_echoclient.py`` when there is none (or ``BENCH_NETWORK_CLIENT=python``).
The Python client spends about as much CPU per message as the servers it measures, so on a 2-core
machine it sets the pace for any server faster than it and the ratios drift towards 1.0.

HTTP: ``wrk`` against a minimal JSON endpoint on our server (``reactor.web``, llhttp) and on
``twisted.web``; skipped with a note when wrk is not installed. Each round of a side measures
messages (or requests) per second; the harness reports the median over rounds. The side returns
``ops / rate`` as its elapsed time, so the harness's ops/s is exactly the measured rate.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
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


def echoClientCommand() -> tuple[list[str], str]:
    """The command line of the echo client (without its arguments) and a word saying which one it is."""
    source = HERE / "_echoclient.c"
    cc = shutil.which("cc") or shutil.which("gcc")
    if os.environ.get("BENCH_NETWORK_CLIENT") != "python" and cc is not None:
        digest = hashlib.sha256(source.read_bytes()).hexdigest()[:12]
        binary = Path(tempfile.gettempdir()) / f"deferthreads-echoclient-{digest}"
        if not binary.exists():
            partial = binary.with_suffix(f".{os.getpid()}")
            command = [cc, "-O2", "-o", str(partial), str(source)]
            if subprocess.run(command, capture_output=True).returncode == 0:
                partial.replace(binary)
        if binary.exists():
            return [str(binary)], "C client"
    return [PYTHON, str(HERE / "_echoclient.py")], "Python client"


@dataclass
class ServerHandle:
    """A running benchmark server: its port, its pid, and the server CPU time per message measured."""

    port: int
    pid: int
    cpuPerMessage: list[float] = field(default_factory=list)
    # Messages (or requests) per second of each run, warm-up included, in run order.
    rates: list[float] = field(default_factory=list)

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


def echoSide(
    server: ServerHandle, client: list[str], connections: int, size: int, seconds: float
) -> Callable[[], float]:
    def side() -> float:
        cpuBefore = server.cpuSeconds()
        out = subprocess.run(
            [
                *client,
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
        server.rates.append(rate)
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


def pairedLine(ours: ServerHandle, reference: ServerHandle, name: str, warmup: int) -> str:
    """The ratio of ours to ``reference`` round by round (the two ran seconds apart, under the same load)."""
    ratios = sorted(o / r for o, r in zip(ours.rates[warmup:], reference.rates[warmup:], strict=True))
    line = (
        f"per-round ratio vs {name}: median {statistics.median(ratios):.2f}x, "
        f"range {ratios[0]:.2f}-{ratios[-1]:.2f}x over {len(ratios)} rounds"
    )
    print(f"    {line}", flush=True)
    return line


def run(quick: bool) -> list[Comparison]:
    seconds = 1.0 if quick else DURATION
    rounds = 2 if quick else 7
    results: list[Comparison] = []
    client, clientName = echoClientCommand()
    with (
        serverProcess("ours-echo") as ours,
        serverProcess("twisted-echo") as twisted,
        serverProcess("asyncio-echo") as aio,
    ):
        echo = compare(
            "TCP echo, 100 connections x 1 KiB messages (messages/s)",
            {
                "deferthreads": echoSide(ours, client, 100, 1024, seconds),
                "twisted-epoll": echoSide(twisted, client, 100, 1024, seconds),
                "asyncio": echoSide(aio, client, 100, 1024, seconds),
            },
            ops=NOMINAL_OPS,
            rounds=rounds,
            warmup=1,
            targets=[Target("twisted-epoll", 1.5), Target("asyncio", 1.0)],
            note=f"{seconds:g} s per side per round; servers in subprocesses, one epoll {clientName}",
        )
        # Server CPU per message is far less sensitive to a busy machine than throughput.
        echo.note += "; " + cpuLine(
            {"deferthreads": ours, "twisted-epoll": twisted, "asyncio": aio}, "message"
        )
        # Load from other processes drifts over a run; a round's sides run back to back, so the
        # ratio within each round is steadier than the ratio of the medians.
        echo.note += "; " + pairedLine(ours, aio, "asyncio", warmup=1)
        echo.note += "; " + pairedLine(ours, twisted, "twisted-epoll", warmup=1)
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
            note=f"{max(1, round(seconds))} s per side per round; ours: reactor.web (llhttp)",
        )
        web.note += "; " + cpuLine({"deferthreads": ours, "twisted.web": twisted}, "request")
        results.append(web)
    return results
