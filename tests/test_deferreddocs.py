"""The Python snippets in docs/deferred.md run as written."""

from __future__ import annotations

import pathlib
import re

import pytest

DOC = pathlib.Path(__file__).resolve().parent.parent / "docs" / "deferred.md"
SNIPPETS = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)


@pytest.mark.parametrize("index", range(len(SNIPPETS)))
def test_docSnippetRuns(index: int, capsys: pytest.CaptureFixture[str]) -> None:
    """Each python block of docs/deferred.md executes without error."""
    exec(compile(SNIPPETS[index], f"{DOC.name}[{index}]", "exec"), {})
    assert capsys.readouterr().out
