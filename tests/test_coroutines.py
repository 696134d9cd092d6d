"""Tests for awaiting Deferreds: Deferred.fromCoroutine, ensureDeferred, contextvars, cancellation."""

from __future__ import annotations

import contextvars
import sys
import traceback
from collections.abc import Generator
from typing import Any

import pytest

from reactor import (
    CancelledError,
    Deferred,
    Failure,
    NotACoroutineError,
    ensureDeferred,
    fail,
    succeed,
)

requestId: contextvars.ContextVar[str] = contextvars.ContextVar("requestId", default="unset")


class MyError(Exception):
    pass


def test_awaitFiredDeferredReturnsWithoutSuspending() -> None:
    """Awaiting an already-fired Deferred completes the coroutine synchronously."""

    async def co() -> int:
        return await succeed(1) + await succeed(2)

    d = Deferred.fromCoroutine(co())
    assert d.result == 3


def test_awaitOfFiredDeferredDoesNotYield() -> None:
    """__await__ of a fired Deferred finishes on the first step without yielding."""
    with pytest.raises(StopIteration) as info:
        next(succeed("v").__await__())
    assert info.value.value == "v"


def test_awaitUnfiredDeferredSuspendsAndResumes() -> None:
    """A coroutine suspended on an unfired Deferred resumes when it fires."""
    inner: Deferred[str] = Deferred()

    async def co() -> str:
        value = await inner
        return value + "!"

    d = Deferred.fromCoroutine(co())
    assert not d.called
    inner.callback("done")
    assert d.result == "done!"


def test_awaitFailedDeferredRaisesItsException() -> None:
    """Awaiting a failed Deferred raises the failure's exception in the coroutine."""

    async def co() -> str:
        try:
            await fail(MyError("bad"))
        except MyError as e:
            return f"caught {e}"
        return "not reached"

    assert Deferred.fromCoroutine(co()).result == "caught bad"


def test_awaitLaterFailureRaisesItsException() -> None:
    """A Deferred that fails while awaited raises into the coroutine."""
    inner: Deferred[str] = Deferred()

    async def co() -> str:
        try:
            await inner
        except MyError:
            return "caught"
        return "not reached"

    d = Deferred.fromCoroutine(co())
    inner.errback(MyError())
    assert d.result == "caught"


def test_coroutineExceptionFailsTheDeferred() -> None:
    """An exception escaping the coroutine becomes the Deferred's Failure, with its traceback."""

    async def failingCoroutine() -> None:
        raise MyError("escaped")

    d = Deferred.fromCoroutine(failingCoroutine())
    assert isinstance(d.result, Failure)
    assert d.result.type is MyError
    assert "failingCoroutine" in d.result.getTraceback()
    d.addErrback(lambda f: None)


def test_awaitingConsumesFailureSoItIsNotReported() -> None:
    """A failure raised into a coroutine by await is no longer an unhandled failure."""
    failed = fail(MyError())

    async def co() -> None:
        try:
            await failed
        except MyError:
            pass

    Deferred.fromCoroutine(co())
    assert failed._failureReporter is not None
    assert failed._failureReporter.failResult is None


def test_awaitingPausedDeferredWaitsForUnpause() -> None:
    """A fired but paused Deferred makes the coroutine wait until it is unpaused."""
    paused = succeed(5)
    paused.pause()

    async def co() -> int:
        return await paused

    d = Deferred.fromCoroutine(co())
    assert not d.called
    paused.unpause()
    assert d.result == 5


def test_manyAwaitsOfUnfiredDeferredsInSequence() -> None:
    """A coroutine can suspend and resume many times."""
    pending: list[Deferred[int]] = []

    async def co() -> int:
        total = 0
        for _ in range(100):
            d: Deferred[int] = Deferred()
            pending.append(d)
            total += await d
        return total

    result = Deferred.fromCoroutine(co())
    for i in range(100):
        pending[i].callback(i)
    assert result.result == sum(range(100))


def test_longRunOfFiredAwaitsHasNoRecursion() -> None:
    """Awaiting 10,000 fired Deferreds in a row needs no recursion."""

    async def co() -> int:
        total = 0
        for i in range(10_000):
            total += await succeed(i)
        return total

    assert Deferred.fromCoroutine(co()).result == sum(range(10_000))


def test_awaitCoroutineInsideCoroutine() -> None:
    """A coroutine can await another coroutine that awaits Deferreds."""
    inner: Deferred[int] = Deferred()

    async def child() -> int:
        return await inner * 2

    async def parent() -> int:
        return await child() + 1

    d = Deferred.fromCoroutine(parent())
    inner.callback(10)
    assert d.result == 21


def test_ensureDeferredRunsCoroutine() -> None:
    """ensureDeferred runs a coroutine and returns a Deferred for its result."""

    async def co() -> str:
        return "ok"

    assert ensureDeferred(co()).result == "ok"


def test_ensureDeferredReturnsDeferredUnchanged() -> None:
    """ensureDeferred returns a Deferred as is."""
    d: Deferred[int] = Deferred()
    assert ensureDeferred(d) is d


def test_ensureDeferredRejectsOtherObjects() -> None:
    """ensureDeferred with neither coroutine nor Deferred raises NotACoroutineError (a TypeError)."""
    with pytest.raises(NotACoroutineError, match="not a coroutine or a Deferred"):
        ensureDeferred(3)  # type: ignore[arg-type]
    assert issubclass(NotACoroutineError, TypeError)


def test_fromCoroutineRejectsCoroutineFunction() -> None:
    """fromCoroutine given the function instead of the coroutine raises NotACoroutineError."""

    async def co() -> None:
        pass

    with pytest.raises(NotACoroutineError):
        Deferred.fromCoroutine(co)  # type: ignore[arg-type]


def test_fromCoroutineAcceptsGenerator() -> None:
    """A generator yielding Deferreds is accepted too, as in Twisted."""

    def gen() -> Generator[Any, Any, int]:
        x: int = yield succeed(2)
        return x * 3

    assert Deferred.fromCoroutine(gen()).result == 6


def test_contextVariablesSurviveAwaits() -> None:
    """A context variable set in a coroutine keeps its value after resuming from an await."""
    inner: Deferred[None] = Deferred()
    seen: list[str] = []

    async def co() -> None:
        requestId.set("req-1")
        await inner
        seen.append(requestId.get())

    Deferred.fromCoroutine(co())
    token = requestId.set("changed by the caller")
    try:
        inner.callback(None)
    finally:
        requestId.reset(token)
    assert seen == ["req-1"]


def test_coroutineSeesCallersContextAtStart() -> None:
    """The coroutine starts with a copy of the caller's context."""
    token = requestId.set("from caller")
    try:

        async def co() -> str:
            return requestId.get()

        assert Deferred.fromCoroutine(co()).result == "from caller"
    finally:
        requestId.reset(token)


def test_coroutineContextChangesDoNotLeakToCaller() -> None:
    """Setting a context variable inside the coroutine does not change the caller's context."""

    async def co() -> None:
        requestId.set("inside")

    before = requestId.get()
    Deferred.fromCoroutine(co())
    assert requestId.get() == before != "inside"


def test_cancelReachesAwaitedDeferred() -> None:
    """Cancelling the coroutine's Deferred cancels the Deferred it awaits."""
    cancelled: list[Deferred[Any]] = []
    inner: Deferred[int] = Deferred(canceller=cancelled.append)

    async def co() -> int:
        return await inner

    d = Deferred.fromCoroutine(co())
    d.cancel()
    assert cancelled == [inner]
    assert isinstance(d.result, Failure) and d.result.type is CancelledError
    d.addErrback(lambda f: None)


def test_cancelledErrorIsRaisedAtTheAwait() -> None:
    """The coroutine sees CancelledError at its await and may clean up."""
    inner: Deferred[int] = Deferred()
    steps: list[str] = []

    async def co() -> int:
        try:
            return await inner
        except CancelledError:
            steps.append("cleanup")
            raise

    d = Deferred.fromCoroutine(co())
    d.cancel()
    assert steps == ["cleanup"]
    d.addErrback(lambda f: None)


def test_coroutineThatSwallowsCancelDeliversLaterResult() -> None:
    """A coroutine that catches CancelledError and carries on still delivers its result."""
    first: Deferred[int] = Deferred()
    second: Deferred[int] = Deferred()

    async def co() -> str:
        try:
            await first
        except CancelledError:
            pass
        value = await second
        return f"finished with {value}"

    d = Deferred.fromCoroutine(co())
    d.cancel()
    assert not isinstance(getattr(d, "result", None), Failure)
    second.callback(7)
    assert d.result == "finished with 7"


def test_secondCancelReachesTheNextAwait() -> None:
    """After a swallowed cancel, cancelling again cancels what the coroutine now awaits."""
    first: Deferred[int] = Deferred()
    second: Deferred[int] = Deferred()

    async def co() -> int:
        try:
            await first
        except CancelledError:
            pass
        return await second

    d = Deferred.fromCoroutine(co())
    d.cancel()
    d.cancel()
    assert isinstance(second.result, Failure) is False  # handed to the coroutine
    assert isinstance(d.result, Failure) and d.result.type is CancelledError
    d.addErrback(lambda f: None)


def test_cancelAfterCompletionDoesNothing() -> None:
    """Cancelling the Deferred of a finished coroutine changes nothing."""

    async def co() -> int:
        return 1

    d = Deferred.fromCoroutine(co())
    d.cancel()
    assert d.result == 1


def test_awaitedDeferredResultIsConsumed() -> None:
    """As in Twisted, an awaited unfired Deferred is left holding None afterwards."""
    inner: Deferred[int] = Deferred()

    async def co() -> int:
        return await inner

    Deferred.fromCoroutine(co())
    inner.callback(3)
    assert inner.result is None


def test_awaitedDeferredTypeIsInferred() -> None:
    """await on Deferred[int] gives an int (checked by mypy; here at runtime)."""

    async def co() -> int:
        d: Deferred[int] = succeed(1)
        value: int = await d
        return value

    assert Deferred.fromCoroutine(co()).result == 1


def test_coroutineReturningFailureErrbacks() -> None:
    """A coroutine returning a Failure (without suspending) fails its Deferred, as callback(Failure) does."""

    async def co() -> Failure:
        return Failure(MyError("returned"))

    d = Deferred.fromCoroutine(co())
    assert isinstance(d.result, Failure) and d.result.check(MyError)
    d.addErrback(lambda f: None)


def test_suspendedCoroutineReturningFailureErrbacks() -> None:
    """A coroutine that returns a Failure after suspending fails its Deferred too."""
    waitFor: Deferred[None] = Deferred()

    async def co() -> Failure:
        await waitFor
        return Failure(MyError("returned"))

    d = Deferred.fromCoroutine(co())
    waitFor.callback(None)
    assert isinstance(d.result, Failure) and d.result.check(MyError)
    d.addErrback(lambda f: None)


def test_coroutineReturningDeferredFailsWithTypeError() -> None:
    """A coroutine that returns a Deferred instead of awaiting it fails with TypeError."""
    returned: Deferred[int] = succeed(1)

    async def co() -> Deferred[int]:
        return returned

    d = Deferred.fromCoroutine(co())
    assert isinstance(d.result, Failure) and d.result.check(TypeError)
    d.addErrback(lambda f: None)


def test_suspendedCoroutineReturningDeferredFailsWithTypeError() -> None:
    """After suspending, returning a Deferred still fails the coroutine's Deferred (it does not hang)."""
    waitFor: Deferred[None] = Deferred()

    async def co() -> Deferred[int]:
        await waitFor
        return succeed(1)

    d = Deferred.fromCoroutine(co())
    waitFor.callback(None)
    assert isinstance(d.result, Failure) and d.result.check(TypeError)
    d.addErrback(lambda f: None)


def test_callbacksOfFinishedCoroutineRunOutsideExceptBlock() -> None:
    """The coroutine's Deferred fires outside any except block (no stray StopIteration context)."""
    waitFor: Deferred[None] = Deferred()
    seen: list[Any] = []

    async def co() -> int:
        await waitFor
        return 5

    d = Deferred.fromCoroutine(co())
    d.addCallback(lambda r: seen.append((r, sys.exc_info()[1])))
    waitFor.callback(None)
    assert seen == [(5, None)]


def test_awaitingFailedDeferredTwiceRaisesBothTimes() -> None:
    """A failure consumed by one await is raised again by the next await of the same Deferred."""
    failed = fail(MyError("twice"))
    raised: list[str] = []

    async def co() -> None:
        for _ in range(2):
            try:
                await failed
            except MyError as e:
                raised.append(str(e))

    Deferred.fromCoroutine(co())
    assert raised == ["twice", "twice"]



def _raiseAtTheOrigin() -> None:
    raise ValueError("from the origin")


def test_laterFailureRaisedAtTheAwaitKeepsItsOriginalTraceback() -> None:
    """The exception raised at ``await`` of a Deferred that fails later still shows where it was raised.

    (Compiled by mypyc, ``Deferred.__await__`` raises it itself rather than having it thrown in,
    which would drop those frames.)
    """
    inner: Deferred[int] = Deferred()
    seen: list[list[str]] = []

    async def co() -> None:
        try:
            await inner
        except ValueError as e:
            seen.append([entry.name for entry in traceback.extract_tb(e.__traceback__)])

    Deferred.fromCoroutine(co())
    try:
        _raiseAtTheOrigin()
    except ValueError:
        inner.errback()
    assert seen and "_raiseAtTheOrigin" in seen[0] and "co" in seen[0]
