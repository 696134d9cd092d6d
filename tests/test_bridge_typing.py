"""The bridge is typed with ParamSpec: mypy checks the arguments and infers Deferred[R]."""

from __future__ import annotations

import pathlib

from tests.deferred_support import mypyErrors

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
    errors, output = mypyErrors(SNIPPET, tmp_path)
    assert len(errors) == 1, output
    assert ':12: error: Argument 2 to "deferToThread" has incompatible type "str"' in errors[0]
