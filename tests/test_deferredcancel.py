"""Tests for Deferred.cancel and Deferred.addTimeout (Twisted's cancellation semantics)."""

from __future__ import annotations

from typing import Any

import pytest

from reactor import AlreadyCalledError, CancelledError, Deferred, Failure, TimeoutError, succeed
from reactor.task import Clock


def test_cancelWithoutCancellerErrbacksCancelledError() -> None:
    """cancel() with no canceller errbacks with CancelledError."""
    d: Deferred[int] = Deferred()
    seen: list[Any] = []
    d.addErrback(lambda f: seen.append(f.type))
    d.cancel()
    assert seen == [CancelledError]


def test_cancelWithoutCancellerIgnoresOneLaterCallback() -> None:
    """After a cancel without canceller, one later callback is silently ignored."""
    d: Deferred[int] = Deferred()
    d.addErrback(lambda f: None)
    d.cancel()
    d.callback(1)
    assert d.result is None


def test_cancelWithoutCancellerIgnoresOneLaterErrback() -> None:
    """After a cancel without canceller, one later errback is silently ignored."""
    d: Deferred[int] = Deferred()
    d.addErrback(lambda f: None)
    d.cancel()
    d.errback(ValueError())


def test_cancelWithoutCancellerSecondLateCallbackRaises() -> None:
    """Only one late callback is ignored; a second raises AlreadyCalledError."""
    d: Deferred[int] = Deferred()
    d.addErrback(lambda f: None)
    d.cancel()
    d.callback(1)
    with pytest.raises(AlreadyCalledError):
        d.callback(2)


def test_cancellerIsCalledWithTheDeferred() -> None:
    """The canceller receives the Deferred being cancelled."""
    calls: list[Deferred[Any]] = []
    d: Deferred[int] = Deferred(canceller=calls.append)
    d.addErrback(lambda f: None)
    d.cancel()
    assert calls == [d]


def test_cancellerThatFiresDecidesTheResult() -> None:
    """A canceller that fires the Deferred itself decides the result; no CancelledError."""
    d: Deferred[str] = Deferred(canceller=lambda d: d.callback("cancelled nicely"))
    d.cancel()
    assert d.result == "cancelled nicely"


def test_cancellerThatDoesNotFireLeadsToCancelledError() -> None:
    """A canceller that does not fire the Deferred leads to CancelledError."""
    d: Deferred[int] = Deferred(canceller=lambda d: None)
    seen: list[Any] = []
    d.addErrback(lambda f: seen.append(f.type))
    d.cancel()
    assert seen == [CancelledError]


def test_cancelWithCancellerDoesNotSuppressLaterCallback() -> None:
    """With a canceller, a late callback after cancel raises AlreadyCalledError (as Twisted)."""
    d: Deferred[int] = Deferred(canceller=lambda d: None)
    d.addErrback(lambda f: None)
    d.cancel()
    with pytest.raises(AlreadyCalledError):
        d.callback(1)


def test_cancelFiredDeferredDoesNothing() -> None:
    """cancel() on a fired Deferred is a no-op."""
    d = succeed(1)
    d.cancel()
    assert d.result == 1


def test_cancelWaitingDeferredCancelsInner() -> None:
    """Cancelling a Deferred waiting on another (returned by a callback) cancels the inner one."""
    cancelled: list[Deferred[Any]] = []
    inner: Deferred[int] = Deferred(canceller=cancelled.append)
    outer = succeed(0).addCallback(lambda _: inner)
    seen: list[Any] = []
    outer.addErrback(lambda f: seen.append(f.type))
    outer.cancel()
    assert cancelled == [inner]
    assert seen == [CancelledError]


def test_cancelReachesTheInnermostOfANestedChain() -> None:
    """Cancelling the outermost of a chain of waiting Deferreds cancels the innermost."""
    cancelled: list[Deferred[Any]] = []
    innermost: Deferred[int] = Deferred(canceller=cancelled.append)
    middle = succeed(0).addCallback(lambda _: innermost)
    outer = succeed(0).addCallback(lambda _: middle)
    outer.cancel()
    assert cancelled == [innermost]
    # The CancelledError was handed from innermost to middle to outer.
    assert innermost.result is None
    assert middle.result is None
    assert isinstance(outer.result, Failure) and outer.result.type is CancelledError
    outer.addErrback(lambda f: None)


def test_addTimeoutFiresTimeoutError() -> None:
    """A Deferred that does not fire in time fails with TimeoutError."""
    clock = Clock()
    d: Deferred[int] = Deferred()
    d.addTimeout(5, clock)
    seen: list[Any] = []
    d.addErrback(lambda f: seen.append(f.type))
    clock.advance(4.9)
    assert seen == []
    clock.advance(0.2)
    assert seen == [TimeoutError]


def test_addTimeoutCancelsTheTimerOnResult() -> None:
    """Firing before the deadline removes the pending timeout call."""
    clock = Clock()
    d: Deferred[int] = Deferred()
    d.addTimeout(5, clock)
    d.callback(1)
    assert clock.getDelayedCalls() == []
    assert d.result == 1


def test_addTimeoutReturnsSelf() -> None:
    """addTimeout returns the Deferred itself."""
    d: Deferred[int] = Deferred()
    assert d.addTimeout(1, Clock()) is d
    d.callback(0)


def test_addTimeoutUsesCanceller() -> None:
    """The timeout cancels through the canceller, which may decide the result."""
    clock = Clock()
    d: Deferred[str] = Deferred(canceller=lambda d: d.callback("stopped"))
    d.addTimeout(1, clock)
    clock.advance(1)
    assert d.result == "stopped"


def test_addTimeoutOnTimeoutCancelTranslates() -> None:
    """onTimeoutCancel(result, timeout) decides what a timed-out Deferred holds."""
    clock = Clock()
    d: Deferred[Any] = Deferred()
    d.addTimeout(2, clock, onTimeoutCancel=lambda result, timeout: ("timed out", timeout))
    clock.advance(2)
    assert d.result == ("timed out", 2)


def test_addTimeoutLeavesOtherCancelAlone() -> None:
    """An explicit cancel before the deadline stays a CancelledError, not TimeoutError."""
    clock = Clock()
    d: Deferred[int] = Deferred()
    d.addTimeout(2, clock)
    seen: list[Any] = []
    d.addErrback(lambda f: seen.append(f.type))
    d.cancel()
    assert seen == [CancelledError]
    assert clock.getDelayedCalls() == []


def test_addTimeoutWorksWithAnyCallLater() -> None:
    """The clock can be any object with callLater."""

    class Call:
        def __init__(self, f: Any) -> None:
            self.f = f
            self.live = True

        def active(self) -> bool:
            return self.live

        def cancel(self) -> None:
            self.live = False

    class MinimalClock:
        def __init__(self) -> None:
            self.calls: list[Call] = []

        def callLater(self, delay: float, f: Any) -> Call:
            call = Call(f)
            self.calls.append(call)
            return call

    clock = MinimalClock()
    d: Deferred[int] = Deferred()
    d.addTimeout(1, clock)
    d.addErrback(lambda f: f.type)
    clock.calls[0].f()
    assert d.result is TimeoutError


def test_addTimeoutRejectsBadArguments() -> None:
    """Bad timeout, clock or onTimeoutCancel raise TypeError at the call."""
    d: Deferred[int] = Deferred()
    with pytest.raises(TypeError, match="timeout"):
        d.addTimeout("5", Clock())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="clock"):
        d.addTimeout(5, object())
    with pytest.raises(TypeError, match="onTimeoutCancel"):
        d.addTimeout(5, Clock(), onTimeoutCancel=3)  # type: ignore[arg-type]
