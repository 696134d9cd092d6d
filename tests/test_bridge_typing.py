"""The bridge is typed with ParamSpec: mypy checks the arguments and infers Deferred[R]."""

from __future__ import annotations

import pathlib
import subprocess
import sys

SNIPPET = '''
from typing import assert_type
from deferthreads import ThreadPool, blockingCallFromThread, deferToThread, deferToThreadPool
from reactor import Deferred, getReactor

def add(a: int, b: int) -> int:
    return a + b

assert_type(deferToThread(add, 1, 2), Deferred[int])
assert_type(deferToThreadPool(getReactor(), ThreadPool(), add, 1, b=2), Deferred[int])
assert_type(blockingCallFromThread(getReactor(), add, 1, 2), int)
deferToThread(add, "one", 2)  # line 12: the one expected error
'''


def test_deferToThreadIsTypedWithParamSpec(tmp_path: pathlib.Path) -> None:
    """deferToThread(f, 1, 2) is Deferred[R] for f: Callable[P, R]; a wrong argument type is an error."""
    snippet = tmp_path / "snippet.py"
    snippet.write_text(SNIPPET)
    root = pathlib.Path(__file__).resolve().parent.parent
    command = [sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent", "--no-incremental"]
    result = subprocess.run(
        [*command, str(snippet)],
        capture_output=True,
        text=True,
        cwd=root,
        timeout=110,
        check=False,
    )
    lines = result.stdout.splitlines()
    errors = [line for line in lines if line.startswith(str(snippet)) and ": error:" in line]
    assert len(errors) == 1, result.stdout
    assert ":12: error: Argument 2 to \"deferToThread\" has incompatible type \"str\"" in errors[0]
