"""The quickstart tour (what `make demo` runs first) keeps working."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_quickstartTourRunsToTheEnd() -> None:
    """examples/quickstart.py exits 0 and reaches its last line."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py")],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Tour finished." in done.stdout
    assert "a cancelled queued call never ran: ran=[]" in done.stdout
