"""examples/resource_pool.py runs as a script: it prints its tour and exits 0."""

from __future__ import annotations

import pathlib
import subprocess
import sys

EXAMPLE = pathlib.Path(__file__).resolve().parent.parent / "examples" / "resource_pool.py"


def test_resourcePoolExampleRunsAndExitsZero() -> None:
    """The example runs XML-RPC calls on one proxy per worker, checks, cancels a slow call, and exits 0."""
    result = subprocess.run(
        [sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "add(2, 3) = 5 on proxy #1, opened in xmlrpc-worker-1" in out
    assert "9 calls at once: sums [0, 2, 4, 6, 8, 10, 12, 14, 16]; the pool grew to" in out
    assert "Fault: <class 'ValueError'>:the server refuses" in out
    assert "pings before the call after the idle pause: 1" in out
    assert "slow() cancelled after 0.2s: CancelledError" in out
    assert "next call: add(20, 22) = 42" in out
    assert "interrupted=1 broken=1" in out
    assert "Traceback" not in result.stderr
