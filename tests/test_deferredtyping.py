"""``Deferred[T]`` is generic: mypy knows what ``await d``, ``succeed`` and the callbacks give."""

from __future__ import annotations

import pathlib

from tests.deferred_support import mypyErrors

SNIPPET = '''
from typing import Any, assert_type
from reactor import Deferred, DeferredList, ensureDeferred, gatherResults, maybeDeferred, succeed

async def usesAwait(d: Deferred[int]) -> str:
    value = await d
    assert_type(value, int)
    return str(value)

def half(x: int) -> float:
    return x / 2

assert_type(succeed(1), Deferred[int])
assert_type(succeed(1).addCallback(half), Deferred[float])
assert_type(succeed(1).addCallback(lambda x: succeed("s")), Deferred[str])
assert_type(Deferred.fromCoroutine(usesAwait(succeed(1))), Deferred[str])
assert_type(ensureDeferred(usesAwait(succeed(1))), Deferred[str])
assert_type(maybeDeferred(half, 3), Deferred[float])
assert_type(gatherResults([succeed(1), succeed(2)]), Deferred[list[int]])
d: Deferred[int] = Deferred()
d.callback("not an int")  # line 21: the one expected error
'''


def test_deferredIsGenericForMypy(tmp_path: pathlib.Path) -> None:
    """mypy --strict infers what await, succeed, addCallback, fromCoroutine give; a wrong result errors."""
    errors, output = mypyErrors(SNIPPET, tmp_path)
    assert len(errors) == 1, output
    assert ':21: error: Argument 1 to "callback" of "Deferred" has incompatible type' in errors[0], output
