"""returnValue's edges and the deprecated ``timeout`` helper, run against Twisted 26.10 and ours.

Each test takes ``defer``: ``twisted.internet.defer`` or our ``reactor`` package, so the same
assertions prove the behaviour matches. Twisted 26.10 also deprecates ``returnValue`` itself (a
second ``DeprecationWarning`` on every call, which ours does not issue; docs/deferred.md lists
that difference), so warnings are picked out by their message.
"""

from __future__ import annotations

import warnings
from collections.abc import Generator, Iterator
from types import ModuleType
from typing import Any

import pytest

import reactor

HELPER_WARNING = "returnValue should only be invoked by functions decorated with inlineCallbacks"


@pytest.fixture(params=["twisted", "ours"])
def defer(request: pytest.FixtureRequest) -> ModuleType:
    """Twisted's ``twisted.internet.defer`` or our ``reactor`` package."""
    if request.param == "twisted":
        import twisted.internet.defer

        return twisted.internet.defer
    return reactor


def helperWarnings(caught: list[warnings.WarningMessage]) -> list[warnings.WarningMessage]:
    """The warnings that say returnValue ended a generator from a function it called."""
    return [w for w in caught if HELPER_WARNING in str(w.message)]


def outcome(d: Any) -> Any:
    """The fired Deferred ``d``'s result; a failure becomes its exception (and is handled)."""
    results: list[Any] = []
    d.addCallbacks(results.append, lambda f: results.append(f.value))
    assert results, "the Deferred has not fired"
    return results[0]


@pytest.fixture
def caught() -> Iterator[list[warnings.WarningMessage]]:
    """Every warning issued during the test, recorded rather than shown."""
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        yield records


# --- returnValue called from a helper ---------------------------------------------------------


@pytest.mark.parametrize("where", ["beforeFirstYield", "afterYield"])
def test_returnValueInHelperDeliversValue(
    defer: ModuleType, caught: list[warnings.WarningMessage], where: str
) -> None:
    """returnValue() in a function the generator calls ends the generator with its value."""

    def helper(value: int) -> None:
        defer.returnValue(value)

    @defer.inlineCallbacks
    def gen() -> Generator[Any, Any, None]:
        if where == "afterYield":
            yield defer.succeed(None)
        helper(5)
        yield None  # never reached
        raise AssertionError("returnValue did not end the generator")

    assert outcome(gen()) == 5


@pytest.mark.parametrize("where", ["beforeFirstYield", "afterYield", "afterThrownFailure"])
def test_returnValueInHelperWarnsNamingBothFunctions(
    defer: ModuleType, caught: list[warnings.WarningMessage], where: str
) -> None:
    """The helper's returnValue warns (DeprecationWarning) at the helper, naming it and the generator."""

    def helper(value: int) -> None:
        defer.returnValue(value)  # the warning points at this line

    helperLine = helper.__code__.co_firstlineno + 1

    @defer.inlineCallbacks
    def theGenerator() -> Generator[Any, Any, None]:
        if where == "afterYield":
            yield defer.succeed(None)
        elif where == "afterThrownFailure":
            try:
                yield defer.fail(ValueError("thrown in"))
            except ValueError:
                helper(7)
        helper(7)
        yield None

    assert outcome(theGenerator()) == 7
    found = helperWarnings(caught)
    assert [w.category for w in found] == [DeprecationWarning]
    assert str(found[0].message).startswith("returnValue() in 'helper' causing 'theGenerator' to exit:")
    assert (found[0].filename, found[0].lineno) == (__file__, helperLine)


def test_returnValueInYieldFromSubgeneratorWarns(
    defer: ModuleType, caught: list[warnings.WarningMessage]
) -> None:
    """returnValue() in a sub-generator run with ``yield from`` ends the outer generator, with the warning."""

    def inner() -> Generator[Any, Any, None]:
        yield defer.succeed(1)
        defer.returnValue("from inner")

    @defer.inlineCallbacks
    def outer() -> Generator[Any, Any, None]:
        yield from inner()
        raise AssertionError("returnValue did not end the generator")

    assert outcome(outer()) == "from inner"
    found = helperWarnings(caught)
    assert len(found) == 1
    assert "returnValue() in 'inner' causing 'outer' to exit" in str(found[0].message)


@pytest.mark.parametrize("where", ["beforeFirstYield", "afterYield"])
def test_returnValueInTheGeneratorItselfDoesNotWarnAboutHelpers(
    defer: ModuleType, caught: list[warnings.WarningMessage], where: str
) -> None:
    """returnValue() in the decorated generator delivers its value with no helper warning."""

    @defer.inlineCallbacks
    def gen() -> Generator[Any, Any, None]:
        if where == "afterYield":
            yield defer.succeed(None)
        defer.returnValue(3)
        yield None

    assert outcome(gen()) == 3
    assert helperWarnings(caught) == []


def test_returnValueBeforeFirstYieldOfADeferredFailsLikeReturningIt(
    defer: ModuleType, caught: list[warnings.WarningMessage]
) -> None:
    """returnValue(aFailure) before the first yield fails the Deferred, as ``return aFailure`` does."""
    failure = defer.Failure(KeyError("k"))

    @defer.inlineCallbacks
    def gen() -> Generator[Any, Any, None]:
        defer.returnValue(failure)
        yield None

    assert isinstance(outcome(gen()), KeyError)


# --- inlineCallbacks on a function that is not a generator ------------------------------------


def test_inlineCallbacksOfPlainFunctionCallingReturnValueRaisesTypeError(
    defer: ModuleType, caught: list[warnings.WarningMessage]
) -> None:
    """inlineCallbacks(lambda: returnValue(5))() raises TypeError at the call, naming the lambda."""
    notAGenerator = lambda: defer.returnValue(5)  # noqa: E731 - the case under test is a lambda
    with pytest.raises(TypeError) as info:
        defer.inlineCallbacks(notAGenerator)()
    message = str(info.value)
    assert message.startswith(f"inlineCallbacks requires {notAGenerator!r} to produce a generator; instead")
    assert "caught returnValue being used in a non-generator" in message
    assert helperWarnings(caught) == []


def test_inlineCallbacksOfPlainFunctionRaisesTypeErrorWithItsResult(defer: ModuleType) -> None:
    """A decorated plain function that returns a value raises TypeError naming the function and the value."""

    def plain() -> int:
        return 3

    with pytest.raises(TypeError, match=r"inlineCallbacks requires <function .*plain at .* instead got 3$"):
        defer.inlineCallbacks(plain)()


def test_returnValueInPlainFunctionInsideAGeneratorRaisesTypeErrorWithoutHelperWarning(
    defer: ModuleType, caught: list[warnings.WarningMessage]
) -> None:
    """Decorating a returnValue-calling plain function inside a running generator gives the TypeError only."""

    @defer.inlineCallbacks
    def outer() -> Generator[Any, Any, str]:
        yield defer.succeed(None)
        try:
            defer.inlineCallbacks(lambda: defer.returnValue(5))()
        except TypeError:
            return "TypeError"
        return "no error"

    assert outcome(outer()) == "TypeError"
    assert helperWarnings(caught) == []


# --- the deprecated timeout() helper ----------------------------------------------------------


def test_timeoutFailsTheDeferredWithTimeoutError(
    defer: ModuleType, caught: list[warnings.WarningMessage]
) -> None:
    """timeout(d) errbacks d at once with TimeoutError('Callback timed out') and returns None."""
    d = defer.Deferred()
    assert defer.timeout(d) is None
    error = outcome(d)
    assert type(error) is defer.TimeoutError
    assert error.args == ("Callback timed out",)


def test_timeoutWarnsThatItIsDeprecatedForAddTimeout(defer: ModuleType) -> None:
    """timeout() issues a DeprecationWarning pointing at the caller and naming addTimeout."""
    d = defer.Deferred()
    with pytest.warns(DeprecationWarning, match="addTimeout") as records:
        defer.timeout(d)
    d.addErrback(lambda f: None)
    assert [r.filename for r in records] == [__file__]


def test_timeoutOfAFiredDeferredRaisesAlreadyCalledError(
    defer: ModuleType, caught: list[warnings.WarningMessage]
) -> None:
    """timeout() on a Deferred that already fired raises AlreadyCalledError and leaves its result."""
    d = defer.succeed("done")
    with pytest.raises(defer.AlreadyCalledError):
        defer.timeout(d)
    assert outcome(d) == "done"


def test_timeoutRejectsANonDeferred(caught: list[warnings.WarningMessage]) -> None:
    """timeout() of something that is not a Deferred raises TypeError naming the argument (ours)."""
    with pytest.raises(TypeError, match="deferred must be a Deferred"):
        reactor.timeout("not a Deferred")  # type: ignore[arg-type]


# --- returnValue in the first step of a coroutine or a nested generator -----------------------------


def test_ensureDeferredOfCoroutineCallingReturnValueFirstGivesValue(
    defer: ModuleType, caught: list[warnings.WarningMessage]
) -> None:
    """A coroutine that calls returnValue before its first await fires ensureDeferred's Deferred with it."""

    async def early() -> int:
        defer.returnValue(7)
        return 0  # pragma: no cover - not reached

    assert outcome(defer.ensureDeferred(early())) == 7


def test_nestedGeneratorCallingReturnValueFirstGivesItsValueToTheYield(
    defer: ModuleType, caught: list[warnings.WarningMessage]
) -> None:
    """A generator yielded in inlineCallbacks that calls returnValue at once gives the yield its value."""

    def inner() -> Generator[Any, Any, int]:
        defer.returnValue(3)
        yield None  # pragma: no cover - not reached

    @defer.inlineCallbacks
    def outer() -> Generator[Any, Any, int]:
        got = yield inner()
        return got * 10

    assert outcome(outer()) == 30
