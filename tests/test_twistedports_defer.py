"""Twisted 26.10 compatibility of Deferred, Failure and reactor.task: what porting code observes.

Each expected value below is what ``twisted.internet.defer`` / ``twisted.python.failure`` /
``twisted.internet.task`` give for the same scenario. Differences that are not documented
as deliberate are pinned with ``xfail(strict=True)``.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Generator
from typing import Any

import pytest

from reactor import (
    AlreadyCalledError,
    CancelledError,
    Deferred,
    DeferredList,
    DeferredLock,
    DeferredQueue,
    DeferredSemaphore,
    Failure,
    FirstError,
    NoCurrentExceptionError,
    QueueOverflow,
    QueueUnderflow,
    TimeoutError,
    ensureDeferred,
    fail,
    gatherResults,
    inlineCallbacks,
    maybeDeferred,
    race,
    succeed,
)
from reactor.task import Clock, LoopingCall, deferLater


def capturedFailure() -> Failure:
    try:
        raise ValueError("bad value")
    except ValueError:
        return Failure()


# --- behaviours verified identical to Twisted -----------------------------------------------


def test_addCallbacksPassesArgsAndKeywords() -> None:
    """addCallbacks hands callbackArgs/Keywords and errbackArgs/Keywords to the right half."""
    seen: list[Any] = []
    d: Deferred[str] = Deferred()
    d.addCallbacks(
        lambda r, *a, **k: seen.append(("cb", r, a, k)),
        lambda f, *a, **k: seen.append(("eb", a, k)),
        callbackArgs=(1,),
        callbackKeywords={"x": 2},
        errbackArgs=(3,),
        errbackKeywords={"y": 4},
    )
    d.callback("v")
    e: Deferred[str] = Deferred()
    e.addCallbacks(
        lambda r, *a, **k: None,
        lambda f, *a, **k: seen.append(("eb", a, k)),
        errbackArgs=(3,),
        errbackKeywords={"y": 4},
    )
    e.errback(ValueError())
    assert seen == [("cb", "v", (1,), {"x": 2}), ("eb", (3,), {"y": 4})]


def test_cancelWithoutCancellerSuppressesOneLaterCallback() -> None:
    """After cancel() without canceller the first late callback is ignored, the second raises."""
    d: Deferred[int] = Deferred()
    d.cancel()
    d.callback(1)
    with pytest.raises(AlreadyCalledError):
        d.callback(2)
    d.addErrback(lambda f: f.trap(CancelledError))


def test_cancelForwardsToChainedDeferred() -> None:
    """Cancelling a Deferred waiting on another cancels the inner one; the outer gets CancelledError."""
    log: list[str] = []
    inner: Deferred[int] = Deferred(lambda _: log.append("inner"))
    outer: Deferred[int] = Deferred(lambda _: log.append("outer"))
    outer.addCallback(lambda _: inner)
    outer.callback(1)
    outer.addErrback(lambda f: log.append(f.type.__name__))
    outer.cancel()
    assert log == ["inner", "CancelledError"]


def test_cancelPausedDeferredRunsCallbacksOnUnpause() -> None:
    """A paused Deferred's cancel fires it, but its callbacks wait for unpause()."""
    log: list[str] = []
    d: Deferred[int] = Deferred(lambda _: log.append("canceller"))
    d.pause()
    d.addBoth(lambda r: log.append(type(r).__name__))
    d.cancel()
    assert (d.called, log) == (True, ["canceller"])
    d.unpause()
    assert log == ["canceller", "Failure"]


def test_extraUnpauseGoesNegative() -> None:
    """unpause() more often than pause() is tolerated and leaves paused at -1, as in Twisted."""
    d: Deferred[int] = Deferred()
    d.unpause()
    assert d.paused == -1


def test_addTimeoutWithOnTimeoutCancel() -> None:
    """addTimeout turns the cancel into TimeoutError(timeout, 'Deferred') or onTimeoutCancel's value."""
    clock = Clock()
    d: Deferred[Any] = Deferred()
    d.addTimeout(5, clock)
    clock.advance(5)
    assert d.result.check(TimeoutError) and d.result.value.args == (5, "Deferred")
    d.addErrback(lambda _: None)
    e: Deferred[Any] = Deferred()
    e.addTimeout(5, clock, onTimeoutCancel=lambda r, t: ("replaced", type(r).__name__, t))
    clock.advance(5)
    assert e.result == ("replaced", "Failure", 5)


def test_twoCoroutinesAwaitingOneDeferred() -> None:
    """The first awaiter gets the value, the second None, and the Deferred's result becomes None."""
    d: Deferred[str] = Deferred()
    got: list[Any] = []

    async def waiter() -> None:
        got.append(await d)

    ensureDeferred(waiter())
    ensureDeferred(waiter())
    d.callback("x")
    assert (got, d.result) == (["x", None], None)


def test_maybeDeferredCases() -> None:
    """maybeDeferred wraps raises, values, coroutine functions and returned Failures; passes Deferreds on."""

    def boom() -> None:
        raise ValueError("x")

    async def coro() -> int:
        return 7

    raised = maybeDeferred(boom)
    assert raised.result.getErrorMessage() == "x"
    raised.addErrback(lambda _: None)
    assert maybeDeferred(coro).result == 7
    same = succeed(1)
    assert maybeDeferred(lambda: same) is same


def test_inlineCallbacksCancelCaughtInGenerator() -> None:
    """A generator catching CancelledError at its yield delivers its own result."""
    inner: Deferred[int] = Deferred()

    @inlineCallbacks
    def gen() -> Generator[Any, Any, str]:
        try:
            yield inner
        except CancelledError:
            return "recovered"
        return "not cancelled"

    d = gen()
    d.cancel()
    assert d.result == "recovered"


def test_failureBasicsMatchTwisted() -> None:
    """check/trap/getErrorMessage/raiseException/str behave as Twisted's Failure."""
    f = capturedFailure()
    assert f.check(KeyError, ValueError) is ValueError
    assert f.check("builtins.ValueError") == "builtins.ValueError"
    assert f.trap(KeyError, ValueError) is ValueError
    with pytest.raises(ValueError) as info:
        f.trap(KeyError)
    assert info.value is f.value
    assert Failure(KeyError("k")).getErrorMessage() == "'k'"
    assert str(Failure(ValueError("x"))) == (
        "[Failure instance: Traceback (failure with no frames): <class 'ValueError'>: x\n]"
    )


def test_failurePickleKeepsTextDropsTb() -> None:
    """A pickled Failure keeps type, message and frames; tb is None."""
    g = pickle.loads(pickle.dumps(capturedFailure()))
    assert (g.type, g.getErrorMessage(), g.tb) == (ValueError, "bad value", None)
    assert len(g.frames) == 1 and "capturedFailure" in g.getTraceback()


def test_dlFireOnOneErrbackAndConsume() -> None:
    """fireOnOneErrback gives FirstError(index); consumeErrors leaves None on the input."""
    a: Deferred[int] = Deferred()
    b: Deferred[int] = Deferred()
    dl = DeferredList([a, b], fireOnOneErrback=True, consumeErrors=True)
    b.errback(ValueError("e"))
    assert dl.result.check(FirstError) and dl.result.value.index == 1
    assert b.result is None
    dl.addErrback(lambda _: None)


def test_gatherResultsCancelGivesFirstErrorOfCancelled() -> None:
    """Cancelling gatherResults cancels its inputs and fails with FirstError(CancelledError)."""
    a: Deferred[int] = Deferred()
    g = gatherResults([a])
    g.cancel()
    assert a.called
    assert g.result.value.subFailure.check(CancelledError)
    g.addErrback(lambda _: None)
    a.addErrback(lambda _: None)


def test_raceCancelsLosers() -> None:
    """race fires with (index, result) and cancels the others."""
    log: list[str] = []
    a: Deferred[str] = Deferred(lambda _: log.append("a cancelled"))
    b: Deferred[str] = Deferred()
    r = race([a, b])
    b.callback("B")
    assert (r.result, log) == ((1, "B"), ["a cancelled"])


def test_lockSemaphoreQueueBasics() -> None:
    """Waiting acquire/get can be cancelled; size/backlog bound the queue; tokens track the semaphore."""
    lock = DeferredLock()
    lock.acquire()
    waiting = lock.acquire()
    waiting.cancel()
    assert len(lock.waiting) == 0
    waiting.addErrback(lambda f: f.trap(CancelledError))
    sem = DeferredSemaphore(2)
    sem.acquire()
    sem.acquire()
    assert (sem.tokens, sem.limit, sem.acquire().called) == (0, 2, False)
    q: DeferredQueue[int] = DeferredQueue(size=1, backlog=1)
    q.put(1)
    with pytest.raises(QueueOverflow):
        q.put(2)
    q.get()
    q.get()
    with pytest.raises(QueueUnderflow):
        q.get()


def test_clockOrderAndNestedZeroDelay() -> None:
    """Clock runs in time order, FIFO at equal times, and runs callLater(0) made during advance."""
    clock = Clock()
    log: list[Any] = []
    clock.callLater(1.0, log.append, 1)
    clock.callLater(0.5, log.append, 2)
    clock.callLater(1.0, lambda: clock.callLater(0, log.append, 3))
    clock.pump([0.25] * 4)
    assert (log, clock.seconds()) == ([2, 1, 3], 1.0)


def test_loopingCallSkipsMissedIntervalsWithCount() -> None:
    """withCount reports the intervals elapsed since the last call."""
    clock = Clock()
    counts: list[int] = []
    lc = LoopingCall.withCount(counts.append)
    lc.clock = clock
    lc.start(1)
    clock.advance(3.5)
    clock.advance(0.5)
    clock.advance(1)
    assert counts == [1, 3, 1, 1]
    lc.stop()


def test_loopingCallWaitsForReturnedDeferred() -> None:
    """The next call is scheduled on the grid only after the returned Deferred fires."""
    clock = Clock()
    ds: list[Deferred[None]] = []

    def f() -> Deferred[None]:
        ds.append(Deferred())
        return ds[-1]

    lc = LoopingCall(f)
    lc.clock = clock
    done = lc.start(1)
    clock.advance(2)
    ds[0].callback(None)
    clock.advance(0.5)
    assert len(ds) == 1
    clock.advance(0.5)
    assert len(ds) == 2
    lc.stop()
    assert not done.called
    ds[-1].callback(None)
    assert done.result is lc


def test_deferLaterCancelStopsCallable() -> None:
    """Cancelling deferLater removes the timer and errbacks CancelledError."""
    clock = Clock()
    ran: list[int] = []
    d = deferLater(clock, 1, ran.append, 1)
    d.cancel()
    clock.advance(1)
    assert (ran, clock.getDelayedCalls()) == ([], [])
    d.addErrback(lambda f: f.trap(CancelledError))


def test_failNoArgOutsideExceptRaises() -> None:
    """fail() with no argument outside except raises NoCurrentExceptionError, as Twisted does."""
    with pytest.raises(NoCurrentExceptionError):
        fail()


# --- differences from Twisted ---------------------------------------------------------------


def test_firstErrorComparesEqualByIndexAndFailure() -> None:
    """Two FirstErrors with the same index and sub-failure compare equal, as in Twisted."""
    f = Failure(ValueError("x"))
    assert FirstError(f, 1) == FirstError(f, 1)


def test_firstErrorReprShowsExceptionRepr() -> None:
    """repr(FirstError) is 'FirstError[#index, repr(subFailure.value)]'."""
    assert repr(FirstError(Failure(ValueError("e")), 1)) == "FirstError[#1, ValueError('e')]"


@pytest.mark.xfail(strict=True, reason="inlineCallbacks returning a Deferred fails with TypeError here")
def test_inlineCallbacksReturningDeferredGivesTheDeferred() -> None:
    """A generator that returns a Deferred fires its Deferred with that Deferred object (Twisted)."""
    inner = succeed(5)

    @inlineCallbacks
    def gen() -> Generator[Any, Any, Deferred[int]]:
        yield None
        return inner

    d = gen()
    result = d.result
    d.addErrback(lambda _: None)  # here it failed: keep the unhandled-error log out of the test run
    assert result is inner


def test_verboseTracebackHasFailureBanner() -> None:
    """getTraceback(detail='verbose') starts '*--- Failure #N ---' and ends '*--- End of Failure #N ---'."""
    lines = capturedFailure().getTraceback(detail="verbose").splitlines()
    assert re.fullmatch(r"\*--- Failure #\d+ ---", lines[0])
    assert re.fullmatch(r"\*--- End of Failure #\d+ ---", lines[-1])


def test_failureHasCountCaptureVarsPickled() -> None:
    """Twisted's Failure carries count, captureVars, and pickled (1 after unpickling)."""
    f = capturedFailure()
    assert isinstance(f.count, int) and f.captureVars is False
    assert pickle.loads(pickle.dumps(f)).pickled == 1


def test_deferredDebugAttributeSettable() -> None:
    """d.debug exists (False) and may be set per instance, as in Twisted."""
    from reactor import _debugging, setDebugging

    d: Deferred[int] = Deferred()
    assert d.debug is False
    try:
        d.debug = True
        assert d.debug is True
    finally:  # put the plain Deferred methods back for the rest of the run
        _debugging._perInstance = False
        setDebugging(False)


def test_delayedCallTwistedAttributes() -> None:
    """A DelayedCall has seconds(), delayed_time, resetter, canceller, debug and creator."""
    clock = Clock()
    dc = clock.callLater(2, max, 1, 2)
    assert dc.seconds() == 0.0  # type: ignore[attr-defined]
    assert dc.delayed_time == 0.0  # type: ignore[attr-defined]
    assert callable(dc.resetter) and callable(dc.canceller)  # type: ignore[attr-defined]
    assert (dc.debug, dc.creator) == (False, None)  # type: ignore[attr-defined]


@pytest.mark.xfail(strict=True, reason="DelayedCall repr differs from Twisted's")
def test_delayedCallReprLikeTwisted() -> None:
    """repr(DelayedCall) is '<DelayedCall 0x.. [1.5s] called=0 cancelled=0 len('x')>'."""
    dc = Clock().callLater(1.5, len, "x")
    assert re.fullmatch(r"<DelayedCall 0x[0-9a-f]+ \[1\.5s\] called=0 cancelled=0 len\('x'\)>", repr(dc))


def test_loopingCallKeepsIntervalAsGiven() -> None:
    """lc.interval keeps the int given to start(), so repr reads 'LoopingCall<3>(...)'."""
    lc = LoopingCall(len, "x")
    lc.clock = Clock()
    lc.start(3)
    assert repr(lc).startswith("LoopingCall<3>(")
    lc.stop()
