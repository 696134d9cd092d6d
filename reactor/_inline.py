"""``inlineCallbacks``: write Deferred-using code as a generator that ``yield``\\ s Deferreds.

The generator is driven by the same engine as ``Deferred.fromCoroutine``
(:mod:`reactor._coroutines`): a yielded Deferred suspends the generator until
it fires, then its result is sent back (or its failure's exception is thrown
in); a yielded plain value is sent straight back; ``return value`` fires the
Deferred the decorated function returned. Cancelling that Deferred cancels the
Deferred the generator is waiting on. Everything runs in the reactor thread.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Generator
from types import GeneratorType
from typing import Any, NoReturn, ParamSpec, TypeVar

from reactor._coroutines import ReturnValue, runCoroutine
from reactor._deferred import Deferred

__all__ = ["inlineCallbacks", "returnValue"]

_T = TypeVar("_T")
_P = ParamSpec("_P")


def inlineCallbacks(f: Callable[_P, Generator[Any, Any, _T]]) -> Callable[_P, Deferred[_T]]:
    """Decorate generator function ``f`` so that calling it runs the generator and returns a Deferred.

    The Deferred fires with the generator's return value, or fails with the
    exception it raises. Calling the decorated function with ``f`` not
    producing a generator raises ``TypeError``.
    """
    if not callable(f):
        raise TypeError(f"inlineCallbacks needs a generator function, not {type(f).__name__}")

    @functools.wraps(f)
    def unwindGenerator(*args: _P.args, **kwargs: _P.kwargs) -> Deferred[_T]:
        gen = f(*args, **kwargs)
        if not isinstance(gen, GeneratorType):
            raise TypeError(f"inlineCallbacks requires {f!r} to produce a generator; instead got {gen!r}")
        return runCoroutine(gen)

    return unwindGenerator


def returnValue(val: Any) -> NoReturn:
    """End the running ``inlineCallbacks`` generator; its Deferred fires with ``val``.

    For code written before generators could ``return`` a value (Twisted still
    accepts it, deprecated): a plain ``return val`` does the same and is
    preferred. Call it only in the generator itself, not in a function it calls.
    """
    raise ReturnValue(val)
