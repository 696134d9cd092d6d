"""The Python snippets of docs/loop.md run as written (so the documentation cannot rot)."""

from __future__ import annotations

import pathlib
import re

import pytest

DOC = pathlib.Path(__file__).resolve().parent.parent / "docs" / "loop.md"
SNIPPETS = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)


@pytest.mark.parametrize("index", range(len(SNIPPETS)))
def test_loopDocSnippetRuns(index: int) -> None:
    """Each snippet of docs/loop.md executes without error (their asserts included)."""
    exec(compile(SNIPPETS[index], f"docs/loop.md snippet {index}", "exec"), {})
