"""``inlineCallbacks``: write Deferred-using code as a generator that ``yield``\\ s Deferreds.

The generator is driven by the same engine as ``Deferred.fromCoroutine``
(:mod:`reactor._coroutines`): a yielded Deferred suspends the generator until
it fires, then its result is sent back (or its failure's exception is thrown
in); a yielded plain value is sent straight back; ``return value`` (or the
older ``returnValue(value)``) fires the Deferred the decorated function
returned. Cancelling that Deferred cancels the Deferred the generator is
waiting on. Everything runs in the reactor thread.
"""

from __future__ import annotations

import functools
import sys
import warnings
from collections.abc import Callable, Generator
from inspect import CO_COROUTINE, CO_GENERATOR, CO_ITERABLE_COROUTINE
from types import FrameType, GeneratorType
from typing import Any, NoReturn, ParamSpec, TypeVar

from reactor._coroutines import runCoroutine
from reactor._deferred import Deferred
from reactor._errors import ReturnValue

__all__ = ["inlineCallbacks", "returnValue"]

_T = TypeVar("_T")
_P = ParamSpec("_P")

# Code flags of the frames a generator or coroutine runs in.
_SUSPENDABLE = CO_GENERATOR | CO_COROUTINE | CO_ITERABLE_COROUTINE


def inlineCallbacks(f: Callable[_P, Generator[Any, Any, _T]]) -> Callable[_P, Deferred[_T]]:
    """Decorate generator function ``f`` so that calling it runs the generator and returns a Deferred.

    The Deferred fires with the generator's return value (or the value given
    to :func:`returnValue`), or fails with the exception it raises. Calling
    the decorated function raises ``TypeError`` when ``f`` does not produce a
    generator, including when ``f`` is a plain function that calls
    ``returnValue``.
    """
    if not callable(f):
        raise TypeError(f"inlineCallbacks needs a generator function, not {type(f).__name__}")

    @functools.wraps(f)
    def unwindGenerator(*args: _P.args, **kwargs: _P.kwargs) -> Deferred[_T]:
        try:
            gen = f(*args, **kwargs)
        except ReturnValue:
            # A plain function (say a lambda) called returnValue: there is no
            # generator to end, which is a mistake in the decoration.
            raise TypeError(
                f"inlineCallbacks requires {f!r} to produce a generator; instead caught returnValue "
                "being used in a non-generator"
            ) from None
        if not isinstance(gen, GeneratorType):
            raise TypeError(f"inlineCallbacks requires {f!r} to produce a generator; instead got {gen!r}")
        return runCoroutine(gen)

    return unwindGenerator


def _returning(value: Any) -> Generator[Any, Any, Any]:
    """A generator that returns ``value`` at once (its wrapper's code object identifies every wrapper)."""
    return value
    yield  # pragma: no cover - makes this a generator function


def returnValue(val: Any) -> NoReturn:
    """End the running ``inlineCallbacks`` generator; its Deferred fires with ``val``.

    For code written before generators could ``return`` a value: a plain
    ``return val`` does the same and is preferred. Called from a function that
    the generator calls (not from the generator itself) it still ends the
    generator with ``val``, and issues a ``DeprecationWarning`` saying so, as
    Twisted does.
    """
    caller = sys._getframe(1)
    exiting = _frameExitedBy(caller)
    if exiting is not None and exiting is not caller:
        warnings.warn(
            f"returnValue() in {caller.f_code.co_name!r} causing {exiting.f_code.co_name!r} to exit: "
            "returnValue should only be invoked by functions decorated with inlineCallbacks",
            DeprecationWarning,
            stacklevel=2,
        )
    raise ReturnValue(val)


def _frameExitedBy(caller: FrameType) -> FrameType | None:
    """The generator (or coroutine) frame that an exception raised in ``caller`` will end.

    That is the outermost of the generator frames running one inside the other
    (``yield from``, or a generator's own code calling into another) above the
    first such frame at or above ``caller``: the one the driving engine
    resumed. ``None`` if no generator is running above ``caller``, or the
    decorated function is still being called to make one.
    """
    frame: FrameType | None = caller
    while frame is not None and not frame.f_code.co_flags & _SUSPENDABLE:
        if frame.f_code is _unwindCode:
            # Called while making the generator: inlineCallbacks reports that itself.
            return None
        frame = frame.f_back
    if frame is None:
        return None
    while (outer := frame.f_back) is not None and outer.f_code.co_flags & _SUSPENDABLE:
        frame = outer
    return frame


# The code of every inlineCallbacks wrapper (they are closures of one function).
_unwindCode = inlineCallbacks(_returning).__code__
