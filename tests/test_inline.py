"""Tests for inlineCallbacks: generators that yield Deferreds."""

from __future__ import annotations

import contextvars
from collections.abc import Generator
from typing import Any

import pytest

from reactor import CancelledError, Deferred, Failure, fail, inlineCallbacks, succeed

tag: contextvars.ContextVar[str] = contextvars.ContextVar("tag", default="none")


class MyError(Exception):
    pass


def test_yieldFiredDeferredGivesItsResult() -> None:
    """Yielding a fired Deferred sends its result back at once."""

    @inlineCallbacks
    def f() -> Generator[Any, Any, int]:
        x: int = yield succeed(2)
        return x + 1

    assert f().result == 3


def test_yieldPlainValueSendsItBack() -> None:
    """Yielding a non-Deferred value sends the same value back."""

    @inlineCallbacks
    def f() -> Generator[Any, Any, list[Any]]:
        a = yield 1
        b = yield "two"
        return [a, b]

    assert f().result == [1, "two"]


def test_yieldUnfiredDeferredSuspends() -> None:
    """The generator waits for an unfired Deferred and resumes with its result."""
    inner: Deferred[str] = Deferred()

    @inlineCallbacks
    def f() -> Generator[Any, Any, str]:
        value: str = yield inner
        return value.upper()

    d = f()
    assert not d.called
    inner.callback("late")
    assert d.result == "LATE"


def test_failureIsThrownIntoGenerator() -> None:
    """A failed yielded Deferred raises its exception at the yield."""

    @inlineCallbacks
    def f() -> Generator[Any, Any, str]:
        try:
            yield fail(MyError("thrown"))
        except MyError as e:
            return f"caught {e}"
        return "not reached"

    assert f().result == "caught thrown"


def test_uncaughtExceptionFailsTheDeferred() -> None:
    """An exception escaping the generator fails the returned Deferred."""

    @inlineCallbacks
    def f() -> Generator[Any, Any, None]:
        yield succeed(None)
        raise MyError("out")

    d = f()
    assert isinstance(d.result, Failure) and d.result.type is MyError
    d.addErrback(lambda _: None)


def test_exceptionBeforeFirstYieldFailsTheDeferred() -> None:
    """An exception raised before the first yield also becomes a failed Deferred."""

    @inlineCallbacks
    def f() -> Generator[Any, Any, None]:
        raise MyError("early")
        yield

    d = f()
    assert d.result.type is MyError
    d.addErrback(lambda _: None)


def test_returnWithoutValueGivesNone() -> None:
    """A generator that just ends fires with None."""

    @inlineCallbacks
    def f() -> Generator[Any, Any, None]:
        yield 1

    assert f().result is None


def test_argumentsArePassedThrough() -> None:
    """The decorated function receives its positional and keyword arguments."""

    @inlineCallbacks
    def f(a: int, b: int = 0) -> Generator[Any, Any, int]:
        yield None
        return a + b

    assert f(1, b=2).result == 3


def test_decoratorKeepsName() -> None:
    """The decorated function keeps its name and docstring."""

    @inlineCallbacks
    def namedFunction() -> Generator[Any, Any, None]:
        """Doc."""
        yield None

    assert namedFunction.__name__ == "namedFunction"
    assert namedFunction.__doc__ == "Doc."


def test_nonGeneratorFunctionRaisesTypeError() -> None:
    """Decorating a function that does not return a generator raises TypeError when called."""

    @inlineCallbacks  # type: ignore[arg-type]
    def f() -> int:
        return 1

    with pytest.raises(TypeError, match="generator"):
        f()


def test_nonCallableRaisesTypeError() -> None:
    """inlineCallbacks on a non-callable raises TypeError at decoration."""
    with pytest.raises(TypeError):
        inlineCallbacks(3)  # type: ignore[arg-type]


def test_manyFiredYieldsHaveNoRecursion() -> None:
    """Yielding 10,000 fired Deferreds in a row needs no recursion."""

    @inlineCallbacks
    def f() -> Generator[Any, Any, int]:
        total = 0
        for i in range(10_000):
            total += yield succeed(i)
        return total

    assert f().result == sum(range(10_000))


def test_yieldCoroutineRunsIt() -> None:
    """Yielding a coroutine runs it and sends back its result."""

    async def co() -> int:
        return await succeed(5)

    @inlineCallbacks
    def f() -> Generator[Any, Any, int]:
        value: int = yield co()
        return value

    assert f().result == 5


def test_cancelReachesYieldedDeferred() -> None:
    """Cancelling the returned Deferred cancels the Deferred the generator waits on."""
    cancelled: list[Deferred[Any]] = []
    inner: Deferred[int] = Deferred(canceller=cancelled.append)

    @inlineCallbacks
    def f() -> Generator[Any, Any, int]:
        value: int = yield inner
        return value

    d = f()
    d.cancel()
    assert cancelled == [inner]
    assert d.result.type is CancelledError
    d.addErrback(lambda _: None)


def test_generatorMayRecoverFromCancel() -> None:
    """A generator that catches CancelledError and carries on delivers its own result."""
    inner: Deferred[int] = Deferred()

    @inlineCallbacks
    def f() -> Generator[Any, Any, str]:
        try:
            yield inner
        except CancelledError:
            return "recovered"
        return "not reached"

    d = f()
    d.cancel()
    assert d.result == "recovered"


def test_contextIsKeptAcrossYields() -> None:
    """Context variables set in the generator survive a suspension."""
    inner: Deferred[None] = Deferred()
    seen: list[str] = []

    @inlineCallbacks
    def f() -> Generator[Any, Any, None]:
        tag.set("mine")
        yield inner
        seen.append(tag.get())

    f()
    inner.callback(None)
    assert seen == ["mine"]
    assert tag.get() == "none"


def test_returnValueFiresWithItsArgument() -> None:
    """returnValue(v) in an inlineCallbacks generator fires its Deferred with v (Twisted's older style)."""
    from reactor import inlineCallbacks, returnValue, succeed

    @inlineCallbacks
    def legacy() -> Any:
        x = yield succeed(20)
        returnValue(x + 1)

    results: list[object] = []
    legacy().addCallback(results.append)
    assert results == [21]


def test_returnValueIsNotSwallowedByExceptException() -> None:
    """returnValue is a BaseException, so a broad ``except Exception`` in the generator lets it through."""
    from reactor import Deferred, inlineCallbacks, returnValue

    waiting: Deferred[int] = Deferred()

    @inlineCallbacks
    def legacy() -> Any:
        x = yield waiting
        try:
            returnValue(x * 2)
        except Exception:  # pragma: no cover - must not happen
            returnValue(-1)

    results: list[object] = []
    legacy().addCallback(results.append)
    waiting.callback(5)
    assert results == [10]
