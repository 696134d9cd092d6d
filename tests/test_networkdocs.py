"""The runnable snippet of docs/network.md runs and prints what the text says."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "network.md"


def test_echoSnippetRuns() -> None:
    """The echo server and client example exchanges bytes and closes cleanly."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    snippet = blocks[0]
    assert "listenTCP" in snippet
    proc = subprocess.run(
        [sys.executable, "-c", snippet],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=DOC.parent.parent,
    )
    assert proc.returncode == 0, proc.stderr
    assert "echoed: b'hello'" in proc.stdout
    assert "closed cleanly? True" in proc.stdout
