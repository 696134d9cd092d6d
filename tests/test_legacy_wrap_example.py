"""examples/legacy_wrap.py runs as a script: it prints its tour and exits 0."""

from __future__ import annotations

import pathlib
import subprocess
import sys

EXAMPLE = pathlib.Path(__file__).resolve().parent.parent / "examples" / "legacy_wrap.py"


def test_legacyWrapExampleRunsAndExitsZero() -> None:
    """The example wraps pbkdf2 and urllib, limits concurrency, shows a timeout, and exits 0."""
    result = subprocess.run(
        [sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "peak concurrency: 2 (semaphore limit 2)" in out
    assert "verify right password: True, wrong password: False" in out
    assert "statuses [200]" in out
    assert "timed out after 0.2s" in out
    assert "Pool statistics" in out
