"""Tests for reactor.Deferred: the callback chain, firing rules, pausing and chaining."""

from __future__ import annotations

import gc
import logging
import sys
from typing import Any

import pytest

from reactor import (
    AlreadyCalledError,
    Deferred,
    Failure,
    NoCurrentExceptionError,
    fail,
    maybeDeferred,
    succeed,
)


class MyError(Exception):
    pass


def returnSecond(_: object, second: Deferred[Any]) -> Deferred[Any]:
    return second


def test_callbacksRunInOrderEachGettingThePreviousResult() -> None:
    """Each callback receives the previous one's result."""
    d: Deferred[int] = Deferred()
    seen: list[int] = []
    d.addCallback(lambda x: x + 1).addCallback(lambda x: x * 10).addCallback(seen.append)
    d.callback(1)
    assert seen == [20]


def test_callbacksAddedAfterFiringRunImmediately() -> None:
    """addCallback on a fired Deferred runs the callback at once."""
    seen: list[int] = []
    succeed(5).addCallback(seen.append)
    assert seen == [5]


def test_addMethodsReturnSelf() -> None:
    """addCallback/addErrback/addBoth/addCallbacks return the same Deferred."""
    d: Deferred[int] = Deferred()
    assert d.addCallback(lambda x: x) is d
    assert d.addErrback(lambda f: f) is d
    assert d.addBoth(lambda r: r) is d
    assert d.addCallbacks(lambda x: x, lambda f: f) is d


def test_addCallbackForwardsArgsAndKwargs() -> None:
    """Extra positional and keyword arguments reach the callback after the result."""
    seen: list[Any] = []
    d: Deferred[int] = Deferred()

    def both(r: Any, a: int, b: int = 0) -> None:
        seen.append((r, a, b))

    def positional(r: Any, a: str) -> None:
        seen.append((r, a))

    def keyword(r: Any, *, k: str) -> None:
        seen.append((r, k))

    d.addCallback(both, 2, b=3).addCallback(positional, "pos").addCallback(keyword, k="kw")
    d.callback(1)
    assert seen == [(1, 2, 3), (None, "pos"), (None, "kw")]


def test_addErrbackForwardsArgsAndKwargs() -> None:
    """Extra arguments reach the errback after the failure."""
    seen: list[Any] = []

    def errback(f: Failure, a: int, b: int = 0) -> None:
        seen.append((f.type, a, b))

    fail(MyError()).addErrback(errback, 1, b=2)
    assert seen == [(MyError, 1, 2)]


def test_addCallbacksForwardsSeparateArguments() -> None:
    """addCallbacks passes callbackArgs/Keywords and errbackArgs/Keywords to the right one."""
    seen: list[Any] = []
    succeed(1).addCallbacks(
        lambda r, a, k=None: seen.append(("cb", r, a, k)),
        lambda f, a: seen.append(("eb", a)),
        callbackArgs=(2,),
        callbackKeywords={"k": 3},
        errbackArgs=(9,),
    )
    fail(MyError()).addCallbacks(
        lambda r: seen.append("no"), lambda f, a, k=None: seen.append(("eb", a, k)),
        errbackArgs=(4,), errbackKeywords={"k": 5},
    )
    assert seen == [("cb", 1, 2, 3), ("eb", 4, 5)]


def test_addCallbacksTakesArgumentListsAsTwistedDoes() -> None:
    """callbackArgs/errbackArgs given as lists work (Twisted only unpacks them), compiled or not."""
    seen: list[Any] = []
    succeed(1).addCallbacks(lambda r, a: seen.append((r, a)), callbackArgs=[2])
    fail(MyError()).addCallbacks(lambda r: None, lambda f, a: seen.append(a), errbackArgs=[3])
    assert seen == [(1, 2), 3]


def test_addCallbacksWithoutErrbackPassesFailureOn() -> None:
    """addCallbacks(cb) with no errback lets a failure through to the next errback."""
    seen: list[Any] = []
    fail(MyError()).addCallbacks(seen.append).addErrback(lambda f: seen.append(f.type))
    assert seen == [MyError]


def test_nonCallableCallbackRaisesTypeError() -> None:
    """Adding a non-callable raises TypeError at the call."""
    d: Deferred[int] = Deferred()
    with pytest.raises(TypeError, match="callback"):
        d.addCallback(3)  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="errback"):
        d.addErrback(None)  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="callback"):
        d.addBoth("x")  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="errback"):
        d.addCallbacks(lambda x: x, 5)  # type: ignore[arg-type]


def test_nonCallableCancellerRaisesTypeError() -> None:
    """A canceller that is not callable is rejected at construction."""
    with pytest.raises(TypeError, match="canceller"):
        Deferred(canceller=1)  # type: ignore[arg-type]


def test_exceptionInCallbackBecomesFailure() -> None:
    """A callback that raises switches the chain to errbacks with a Failure of that exception."""
    seen: list[Any] = []

    def broken(_: object) -> None:
        raise MyError("in callback")

    succeed(1).addCallback(broken).addCallback(lambda r: seen.append("skipped")).addErrback(seen.append)
    assert len(seen) == 1
    assert isinstance(seen[0], Failure)
    assert seen[0].type is MyError
    assert "in broken" in seen[0].getTraceback()


def test_errbackReturningValueResumesCallbacks() -> None:
    """An errback that returns a value switches the chain back to callbacks."""
    seen: list[Any] = []
    fail(MyError()).addErrback(lambda f: "recovered").addCallback(seen.append)
    assert seen == ["recovered"]


def test_callbackReturningFailureSwitchesToErrbacks() -> None:
    """A callback returning a Failure is treated as a failure."""
    seen: list[Any] = []
    succeed(1).addCallback(lambda _: Failure(MyError())).addErrback(lambda f: seen.append(f.type))
    assert seen == [MyError]


def test_unmatchedTrapPassesTheSameFailureOn() -> None:
    """An errback whose trap() does not match passes the very same Failure to the next errback."""
    original = Failure(MyError("x"))
    seen: list[Failure] = []
    fail(original).addErrback(lambda f: f.trap(KeyError)).addErrback(seen.append)
    assert seen[0] is original


def test_matchedTrapHandlesFailure() -> None:
    """An errback whose trap() matches handles the failure."""
    seen: list[Any] = []
    fail(MyError()).addErrback(lambda f: f.trap(MyError)).addCallback(seen.append)
    assert seen == [MyError]


def test_raisedFailureIsPassedOn() -> None:
    """A callback that raises a Failure object passes that Failure on."""
    failure = Failure(MyError())
    seen: list[Failure] = []

    def raiser(_: object) -> None:
        raise failure

    succeed(1).addCallback(raiser).addErrback(seen.append)
    assert seen == [failure]


def test_addBothGetsValueOrFailure() -> None:
    """addBoth's function receives a value on success and a Failure on error."""
    seen: list[Any] = []
    succeed(1).addBoth(seen.append)
    fail(MyError()).addBoth(lambda r: seen.append(type(r)))
    assert seen == [1, Failure]


def test_callbackTwiceRaisesAlreadyCalledError() -> None:
    """A second callback() raises AlreadyCalledError."""
    d: Deferred[int] = Deferred()
    d.callback(1)
    with pytest.raises(AlreadyCalledError):
        d.callback(2)


def test_errbackAfterCallbackRaisesAlreadyCalledError() -> None:
    """errback() after callback() raises AlreadyCalledError."""
    d: Deferred[int] = Deferred()
    d.callback(1)
    with pytest.raises(AlreadyCalledError):
        d.errback(MyError())


def test_callbackWithDeferredRaisesTypeError() -> None:
    """Passing a Deferred to callback() is an error."""
    d: Deferred[Any] = Deferred()
    with pytest.raises(TypeError, match="Deferred"):
        d.callback(Deferred())
    assert not d.called


def test_errbackWithoutArgumentInsideExceptCaptures() -> None:
    """errback() with no argument inside except captures the current exception."""
    d: Deferred[int] = Deferred()
    seen: list[Failure] = []
    d.addErrback(seen.append)
    try:
        raise MyError("current")
    except MyError:
        d.errback()
    assert seen[0].type is MyError
    assert seen[0].tb is not None


def test_errbackWithoutArgumentOutsideExceptRaises() -> None:
    """errback() with no argument outside except raises NoCurrentExceptionError."""
    d: Deferred[int] = Deferred()
    with pytest.raises(NoCurrentExceptionError):
        d.errback()
    assert not d.called


def test_errbackWrapsExceptionInstance() -> None:
    """errback(exc) wraps a plain exception in a Failure."""
    seen: list[Failure] = []
    d: Deferred[int] = Deferred()
    d.addErrback(seen.append)
    d.errback(MyError("e"))
    assert seen[0].getErrorMessage() == "e"


def test_errbackWithNonExceptionRaisesTypeError() -> None:
    """errback() with something that is neither Failure nor exception raises TypeError."""
    with pytest.raises(TypeError, match="fail"):
        Deferred().errback("oops")  # type: ignore[arg-type]


def test_calledAndResultAttributes() -> None:
    """called flips on firing and result holds the current result."""
    d: Deferred[int] = Deferred()
    assert d.called is False
    assert not hasattr(d, "result")
    d.addCallback(lambda x: x * 2)
    d.callback(21)
    assert d.called is True
    assert d.result == 42


def test_pausePreventsCallbacksUntilUnpause() -> None:
    """Callbacks do not run while paused; unpause runs them."""
    seen: list[int] = []
    d: Deferred[int] = Deferred()
    d.pause()
    d.addCallback(seen.append)
    d.callback(1)
    assert seen == []
    assert d.paused == 1
    d.unpause()
    assert seen == [1]
    assert d.paused == 0


def test_pauseInsideCallbackHoldsLaterCallbacks() -> None:
    """A callback pausing its own Deferred lets the current run finish (as Twisted) and holds later ones."""
    seen: list[Any] = []
    d: Deferred[int] = Deferred()

    def pauseHere(result: int) -> int:
        d.pause()
        seen.append(("paused", result))
        return result + 1

    d.addCallback(pauseHere).addCallback(seen.append)
    d.callback(1)
    assert seen == [("paused", 1), 2]
    d.addCallback(seen.append)
    assert seen == [("paused", 1), 2]
    d.unpause()
    assert seen == [("paused", 1), 2, None]


def test_unpauseInsideCallbackDoesNotReenterTheChain() -> None:
    """pause() then unpause() inside a callback lets the same run go on, each callback once."""
    seen: list[Any] = []
    d: Deferred[int] = Deferred()

    def pauseAndUnpause(result: int) -> int:
        d.pause()
        d.unpause()
        seen.append("first")
        return result

    d.addCallback(pauseAndUnpause).addCallback(seen.append)
    d.callback(7)
    assert seen == ["first", 7]


def test_nestedPausesNeedMatchingUnpauses() -> None:
    """Two pauses need two unpauses before callbacks run."""
    seen: list[int] = []
    d = succeed(1)
    d.pause()
    d.pause()
    d.addCallback(seen.append)
    d.unpause()
    assert seen == []
    d.unpause()
    assert seen == [1]


def test_callbackReturningUnfiredDeferredPausesChain() -> None:
    """A callback that returns an unfired Deferred pauses the outer chain until it fires."""
    inner: Deferred[str] = Deferred()
    seen: list[Any] = []
    outer = succeed(1).addCallback(lambda _: inner).addCallback(seen.append)
    assert seen == []
    assert outer.paused == 1
    inner.callback("inner result")
    assert seen == ["inner result"]
    assert outer.paused == 0
    assert inner.result is None


def test_callbackReturningFiredDeferredContinuesAtOnce() -> None:
    """A callback returning an already-fired Deferred continues with its result immediately."""
    inner = succeed("ready")
    seen: list[Any] = []
    succeed(1).addCallback(lambda _: inner).addCallback(seen.append)
    assert seen == ["ready"]
    assert inner.result is None


def test_innerFailurePropagatesToOuterErrbacks() -> None:
    """A failure of the waited-on Deferred continues the outer chain as a failure."""
    inner: Deferred[Any] = Deferred()
    seen: list[Any] = []
    succeed(1).addCallback(lambda _: inner).addErrback(lambda f: seen.append(f.type))
    inner.errback(MyError())
    assert seen == [MyError]


def test_callbacksAddedToInnerAfterHandOverGetNone() -> None:
    """Callbacks added to the inner Deferred after it handed its result on see None."""
    inner: Deferred[int] = Deferred()
    seen: list[Any] = []
    inner.addCallback(lambda r: r + 1)
    outer = succeed(0).addCallback(lambda _: inner)
    inner.addCallback(seen.append)
    inner.callback(1)
    assert outer.result == 2
    assert seen == [None]


def test_waiterCallbacksRunBeforeLaterInnerCallbacks() -> None:
    """After the hand-over, the waiting Deferred's callbacks run before the inner's later ones."""
    order: list[str] = []
    inner: Deferred[int] = Deferred()
    outer = succeed(0).addCallback(lambda _: inner)
    outer.addCallback(lambda r: order.append("outer"))
    inner.addCallback(lambda r: r)
    inner.callback(1)
    assert order == ["outer"]


def _waitingChain(count: int) -> tuple[list[Deferred[Any]], list[Any]]:
    """``count`` Deferreds, each callback returning the next, and a list that gets the first's result."""
    deferreds: list[Deferred[Any]] = [Deferred() for _ in range(count)]
    for i in range(count - 1):
        deferreds[i].addCallback(returnSecond, deferreds[i + 1])
    seen: list[Any] = []
    deferreds[0].addCallback(seen.append)
    return deferreds, seen


def test_innerCallbacksAddedAfterHandOverRunOnceTheWaitersAreDone() -> None:
    """Each link's later callbacks run after the waiters above it (getting None), innermost last."""
    order: list[Any] = []
    top: Deferred[Any] = Deferred()
    middle: Deferred[Any] = Deferred()
    bottom: Deferred[Any] = Deferred()
    top.addCallback(returnSecond, middle).addCallback(lambda r: order.append(("top", r)))
    middle.addCallback(returnSecond, bottom)
    top.callback(None)
    middle.callback(None)
    middle.addCallback(lambda r: order.append(("middle", r)))
    bottom.addCallback(lambda r: order.append(("bottom", r)))
    bottom.callback("x")
    assert order == [("top", "x"), ("middle", None), ("bottom", None)]


def test_longChainOfWaitingDeferredsHasNoRecursionError() -> None:
    """100,000 Deferreds each waiting on the next fire without hitting the recursion limit."""
    count = 100_000
    deferreds, seen = _waitingChain(count)
    for d in deferreds[:-1]:
        d.callback(None)
    assert count > sys.getrecursionlimit()
    deferreds[-1].callback("bottom")
    assert seen == ["bottom"]


def test_longChainFiredInReverseOrder() -> None:
    """A long chain built from the inside out (inner Deferreds fired first) also works."""
    deferreds, seen = _waitingChain(100_000)
    deferreds[-1].callback("bottom")
    for d in reversed(deferreds[:-1]):
        d.callback(None)
    assert seen == ["bottom"]


def test_callbackReturningItsOwnDeferredFails() -> None:
    """A callback returning the Deferred it belongs to fails the chain with TypeError."""
    d: Deferred[Any] = Deferred()
    seen: list[Any] = []
    d.addCallback(lambda _: d).addErrback(lambda f: seen.append(f.type))
    d.callback(1)
    assert seen == [TypeError]


def test_callbackAddedDuringCallbackRunsInOrder() -> None:
    """A callback added while the chain runs is run after the current ones, without recursion."""
    d: Deferred[int] = Deferred()
    order: list[str] = []

    def first(r: int) -> int:
        d.addCallback(lambda r: order.append("added"))
        order.append("first")
        return r

    def second(r: int) -> int:
        order.append("second")
        return r

    d.addCallback(first).addCallback(second)
    d.callback(1)
    assert order == ["first", "second", "added"]


def test_chainDeferredFiresTheOther() -> None:
    """chainDeferred makes the other Deferred fire with this one's result."""
    a: Deferred[int] = Deferred()
    b: Deferred[int] = Deferred()
    seen: list[Any] = []
    b.addCallback(seen.append)
    a.chainDeferred(b)
    a.callback(3)
    assert seen == [3]
    assert a.result is None


def test_chainDeferredPassesFailures() -> None:
    """chainDeferred passes a failure to the other's errbacks."""
    a: Deferred[int] = Deferred()
    b: Deferred[int] = Deferred()
    seen: list[Any] = []
    b.addErrback(lambda f: seen.append(f.type))
    a.chainDeferred(b)
    a.errback(MyError())
    assert seen == [MyError]


def test_chainDeferredRejectsNonDeferred() -> None:
    """chainDeferred with something else raises TypeError."""
    with pytest.raises(TypeError, match="Deferred"):
        Deferred().chainDeferred(3)  # type: ignore[arg-type]


def test_succeedIsFired() -> None:
    """succeed(v) is a fired Deferred holding v."""
    d = succeed("v")
    assert d.called and d.result == "v"


def test_failWithExceptionAndFailure() -> None:
    """fail() accepts an exception or a Failure and holds a Failure."""
    f = Failure(MyError())
    d1 = fail(f)
    d2 = fail(MyError("e"))
    assert d1.result is f
    assert isinstance(d2.result, Failure) and d2.result.type is MyError
    d1.addErrback(lambda _: None)
    d2.addErrback(lambda _: None)


def test_failWithoutArgumentCapturesCurrentException() -> None:
    """fail() inside except captures the current exception."""
    try:
        raise MyError()
    except MyError:
        d = fail()
    assert d.result.type is MyError
    d.addErrback(lambda _: None)


def test_maybeDeferredWrapsValue() -> None:
    """maybeDeferred wraps a plain return value in a fired Deferred."""

    def add(a: int, b: int = 0) -> int:
        return a + b

    assert maybeDeferred(add, 1, b=2).result == 3


def test_maybeDeferredReturnsDeferredAsIs() -> None:
    """maybeDeferred returns a returned Deferred unchanged."""
    d: Deferred[int] = Deferred()
    assert maybeDeferred(lambda: d) is d


def test_maybeDeferredCatchesException() -> None:
    """maybeDeferred turns a raised exception into a failed Deferred."""

    def broken() -> None:
        raise MyError("m")

    d = maybeDeferred(broken)
    assert isinstance(d.result, Failure) and d.result.type is MyError
    d.addErrback(lambda _: None)


def test_maybeDeferredWrapsReturnedFailure() -> None:
    """maybeDeferred turns a returned Failure into a failed Deferred."""
    f = Failure(MyError())
    d = maybeDeferred(lambda: f)
    assert d.result is f
    d.addErrback(lambda _: None)


def test_maybeDeferredRunsCoroutine() -> None:
    """maybeDeferred runs a returned coroutine as Deferred.fromCoroutine does."""

    async def co() -> int:
        return await succeed(4)

    assert maybeDeferred(co).result == 4


def test_maybeDeferredRejectsNonCallable() -> None:
    """maybeDeferred with a non-callable raises TypeError at the call."""
    with pytest.raises(TypeError, match="callable"):
        maybeDeferred(3)  # type: ignore[call-overload]


def test_reprShowsState() -> None:
    """repr shows the id and either the current result or what it waits on."""
    d: Deferred[int] = Deferred()
    assert repr(d) == f"<Deferred at {id(d):#x}>"
    d.callback(7)
    assert repr(d) == f"<Deferred at {id(d):#x} current result: 7>"
    inner: Deferred[int] = Deferred()
    waiting = succeed(0).addCallback(lambda _: inner)
    assert repr(waiting) == f"<Deferred at {id(waiting):#x} waiting on Deferred at {id(inner):#x}>"
    inner.callback(1)


def test_subclassIsTreatedAsDeferred() -> None:
    """A Deferred subclass returned from a callback is waited on like a Deferred."""

    class MyDeferred(Deferred[int]):
        pass

    inner = MyDeferred()
    seen: list[Any] = []
    succeed(0).addCallback(lambda _: inner).addCallback(seen.append)
    inner.callback(9)
    assert seen == [9]


def test_garbageCollectedUnhandledFailureIsLogged(caplog: pytest.LogCaptureFixture) -> None:
    """A Deferred collected with an unhandled Failure logs it with the original traceback."""

    def raiser() -> None:
        raise MyError("never handled")

    caplog.set_level(logging.ERROR, logger="reactor.deferred")
    d: Deferred[Any] = Deferred()
    try:
        raiser()
    except MyError:
        d.errback()
    del d
    gc.collect()
    records = [r for r in caplog.records if r.name == "reactor.deferred"]
    assert len(records) == 1
    message = records[0].getMessage()
    assert "Unhandled error in Deferred" in message
    assert "in raiser" in message
    assert "MyError: never handled" in message


def test_handledFailureIsNotLogged(caplog: pytest.LogCaptureFixture) -> None:
    """A failure that an errback handled is not logged when the Deferred is collected."""
    caplog.set_level(logging.ERROR, logger="reactor.deferred")
    d = fail(MyError())
    d.addErrback(lambda _: None)
    del d
    gc.collect()
    assert not [r for r in caplog.records if r.name == "reactor.deferred"]


def test_failureHandedToWaiterIsNotLoggedTwice(caplog: pytest.LogCaptureFixture) -> None:
    """A failure passed from an inner Deferred to its waiter is reported once, by the waiter."""
    caplog.set_level(logging.ERROR, logger="reactor.deferred")
    inner: Deferred[Any] = Deferred()
    outer = succeed(0).addCallback(returnSecond, inner)
    inner.errback(MyError("once"))
    del inner, outer
    gc.collect()
    records = [r for r in caplog.records if r.name == "reactor.deferred"]
    assert len(records) == 1


def test_successfulDeferredHasNoFailureReporter() -> None:
    """A Deferred that never failed carries no unhandled-failure bookkeeping object."""
    d = succeed(1).addCallback(lambda x: x)
    assert d._failureReporter is None


def test_maybeDeferredPassesAKeywordNamedF() -> None:
    """maybeDeferred's own parameter is positional-only, so a keyword called ``f`` reaches the function."""
    from reactor import maybeDeferred

    results: list[object] = []
    maybeDeferred(lambda f: f * 2, f=21).addCallback(results.append)
    assert results == [42]


def test_failedDeferredFromFailIsLoggedWhenCollectedUnhandled(caplog: pytest.LogCaptureFixture) -> None:
    """fail(exc) (built without __init__) still reports its failure if nothing ever handles it."""
    caplog.set_level(logging.ERROR, logger="reactor.deferred")
    d = fail(MyError("dropped"))
    del d
    gc.collect()
    records = [r for r in caplog.records if r.name == "reactor.deferred"]
    assert len(records) == 1 and "MyError: dropped" in records[0].getMessage()


def test_failRejectsANonException() -> None:
    """fail() with something that is neither a Failure nor an exception raises TypeError naming it."""
    with pytest.raises(TypeError, match="result must be a Failure, an exception or None, not int"):
        fail(3)  # type: ignore[arg-type]


def test_succeedWithAFailureOrADeferredBehavesAsCallback() -> None:
    """succeed(aFailure) fails the Deferred (as callback does); succeed(aDeferred) raises TypeError."""
    d = succeed(Failure(MyError()))
    seen: list[Any] = []
    d.addErrback(lambda f: seen.append(f.type))
    assert seen == [MyError]
    with pytest.raises(TypeError):
        succeed(Deferred())


def test_pausedFiredDeferredReturnedFromACallbackIsWaitedOn() -> None:
    """A paused succeed() Deferred (no callbacks list yet) returned from a callback holds the outer one."""
    inner = succeed("inner")
    inner.pause()
    outer: Deferred[Any] = Deferred()
    seen: list[Any] = []
    outer.addCallback(lambda _: inner).addCallback(seen.append)
    outer.callback(None)
    assert seen == [] and outer.paused
    inner.unpause()
    assert seen == ["inner"] and not outer.paused


def test_callbacksAddedToAFiredDeferredRunInOrderAndCanBeCancelledAfter() -> None:
    """succeed() and fail() Deferreds take callbacks, pause/unpause and a (no-op) cancel like any other."""
    seen: list[Any] = []
    d = succeed(1)
    d.cancel()
    d.pause()
    d.addCallback(lambda x: x + 1).addCallback(seen.append)
    assert seen == []
    d.unpause()
    e = fail(MyError())
    e.cancel()
    e.addErrback(lambda f: seen.append(f.type))
    assert seen == [2, MyError]
