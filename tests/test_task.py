"""Tests for reactor.task: Clock, LoopingCall, deferLater and react."""

from __future__ import annotations

from typing import Any

import pytest
from zope.interface.verify import verifyObject

from reactor import AlreadyCalled, AlreadyCancelled, CancelledError, Deferred, DelayedCall, succeed
from reactor.interfaces import IDelayedCall, IReactorTime
from reactor.task import Clock, LoopingCall, deferLater, react
from tests.deferred_support import failureOf, resultOf

# Clock


def test_clockProvidesIReactorTime() -> None:
    """Clock passes verifyObject(IReactorTime) and its calls pass verifyObject(IDelayedCall)."""
    clock = Clock()
    assert verifyObject(IReactorTime, clock)
    assert verifyObject(IDelayedCall, clock.callLater(1, lambda: None))


def test_clockStartsAtZero() -> None:
    """A new Clock reads 0.0 and has no calls."""
    clock = Clock()
    assert clock.seconds() == 0.0
    assert clock.getDelayedCalls() == []


def test_clockCallLaterReturnsReactorDelayedCall() -> None:
    """callLater returns the reactor's DelayedCall with the right time and arguments."""
    clock = Clock()
    clock.advance(2)
    dc = clock.callLater(3, print, 1, sep="-")
    assert isinstance(dc, DelayedCall)
    assert dc.getTime() == 5
    assert dc.func is print and dc.args == (1,) and dc.kw == {"sep": "-"}


def test_clockAdvanceRunsDueCallsInOrder() -> None:
    """advance runs the calls that are due, earliest first, and leaves the rest."""
    clock = Clock()
    ran: list[str] = []
    clock.callLater(2, ran.append, "b")
    clock.callLater(1, ran.append, "a")
    clock.callLater(5, ran.append, "c")
    clock.advance(2)
    assert ran == ["a", "b"]
    assert clock.seconds() == 2
    assert [c.getTime() for c in clock.getDelayedCalls()] == [5]


def test_clockEqualTimesRunFifo() -> None:
    """Calls due at the same time run in the order they were scheduled."""
    clock = Clock()
    ran: list[int] = []
    for i in range(5):
        clock.callLater(1, ran.append, i)
    clock.advance(1)
    assert ran == [0, 1, 2, 3, 4]


def test_clockCallScheduledDuringAdvanceRunsInSameAdvance() -> None:
    """A call scheduled during advance for a time <= now runs in that same advance."""
    clock = Clock()
    ran: list[str] = []

    def first() -> None:
        ran.append("first")
        clock.callLater(0, ran.append, "zero")
        clock.callLater(1, ran.append, "later")

    clock.callLater(1, first)
    clock.advance(1)
    assert ran == ["first", "zero"]
    clock.advance(1)
    assert ran == ["first", "zero", "later"]


def test_clockAdvanceZeroRunsCallLaterZero() -> None:
    """advance(0) runs calls scheduled with delay 0."""
    clock = Clock()
    ran: list[int] = []
    clock.callLater(0, ran.append, 1)
    clock.advance(0)
    assert ran == [1]


def test_clockCancelledCallDoesNotRun() -> None:
    """A cancelled call never runs and leaves getDelayedCalls; cancelling again raises."""
    clock = Clock()
    ran: list[int] = []
    dc = clock.callLater(1, ran.append, 1)
    dc.cancel()
    assert not dc.active()
    assert clock.getDelayedCalls() == []
    clock.advance(2)
    assert ran == []
    with pytest.raises(AlreadyCancelled):
        dc.cancel()


def test_clockCalledCallIsInactive() -> None:
    """A call that ran is inactive and cannot be cancelled or reset."""
    clock = Clock()
    dc = clock.callLater(1, lambda: None)
    clock.advance(1)
    assert dc.called and not dc.active()
    with pytest.raises(AlreadyCalled):
        dc.cancel()
    with pytest.raises(AlreadyCalled):
        dc.reset(1)


def test_clockResetAndDelay() -> None:
    """reset counts from the clock's now; delay moves the call relative to its time."""
    clock = Clock()
    ran: list[str] = []
    a = clock.callLater(5, ran.append, "a")
    b = clock.callLater(1, ran.append, "b")
    clock.advance(0.5)
    a.reset(1)
    assert a.getTime() == 1.5
    b.delay(2)
    assert b.getTime() == 3
    clock.advance(1)
    assert ran == ["a"]
    clock.advance(1.5)
    assert ran == ["a", "b"]


def test_clockExceptionPropagatesAndKeepsRest() -> None:
    """An exception from a call propagates out of advance; later calls run next time."""
    clock = Clock()
    ran: list[int] = []

    def boom() -> None:
        raise ZeroDivisionError()

    clock.callLater(1, boom)
    clock.callLater(1, ran.append, 2)
    with pytest.raises(ZeroDivisionError):
        clock.advance(1)
    assert ran == []
    clock.advance(0)
    assert ran == [2]


def test_clockPump() -> None:
    """pump advances by each amount in turn."""
    clock = Clock()
    seen: list[float] = []
    for t in (1, 2, 3):
        clock.callLater(t, lambda: seen.append(clock.seconds()))
    clock.pump([1, 1, 1])
    assert seen == [1, 2, 3]
    assert clock.seconds() == 3


def test_clockCallsAttributeMatchesGetDelayedCalls() -> None:
    """Twisted's `calls` attribute lists the pending calls."""
    clock = Clock()
    dc = clock.callLater(1, lambda: None)
    assert clock.calls == [dc]


def test_clockRejectsBadArguments() -> None:
    """Negative delay/amount and non-callables raise at the call, naming the argument."""
    clock = Clock()
    with pytest.raises(ValueError, match="delay"):
        clock.callLater(-1, lambda: None)
    with pytest.raises(TypeError, match="callable"):
        clock.callLater(1, "nope")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="delay"):
        clock.callLater("1", lambda: None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="amount"):
        clock.advance(-1)


# LoopingCall


def _loop(clock: Clock, f: Any, *a: Any, **kw: Any) -> LoopingCall:
    lc = LoopingCall(f, *a, **kw)
    lc.clock = clock
    return lc


def test_loopingCallRunsNowAndEveryInterval() -> None:
    """start(interval) calls at once, then once per interval, with the given arguments."""
    calls: list[tuple[Any, ...]] = []
    clock = Clock()
    lc = _loop(clock, lambda *a, **kw: calls.append((a, kw)), 1, x=2)
    lc.start(10)
    assert len(calls) == 1
    clock.advance(9.9)
    assert len(calls) == 1
    clock.pump([0.1, 10, 10])
    assert calls == [((1,), {"x": 2})] * 4


def test_loopingCallNowFalseWaitsOneInterval() -> None:
    """start(interval, now=False) makes the first call after one interval."""
    calls: list[float] = []
    clock = Clock()
    lc = _loop(clock, lambda: calls.append(clock.seconds()))
    lc.start(2, now=False)
    assert calls == []
    clock.pump([2, 2])
    assert calls == [2, 4]


def test_loopingCallStopFiresStartDeferred() -> None:
    """stop() cancels the next call and fires the start Deferred with the LoopingCall."""
    calls: list[int] = []
    clock = Clock()
    lc = _loop(clock, lambda: calls.append(1))
    d = lc.start(1)
    assert lc.running
    lc.stop()
    assert not lc.running
    assert resultOf(d) is lc
    clock.advance(5)
    assert calls == [1]
    assert clock.getDelayedCalls() == []


def test_loopingCallStopFromInsideF() -> None:
    """stop() called by f itself ends the loop and fires the start Deferred."""
    lc: LoopingCall
    count = 0

    def f() -> None:
        nonlocal count
        count += 1
        if count == 3:
            lc.stop()

    clock = Clock()

    lc = _loop(clock, f)
    d = lc.start(1)
    clock.pump([1] * 5)
    assert count == 3
    assert resultOf(d) is lc


def test_loopingCallStartTwiceRaises() -> None:
    """start() on a running LoopingCall raises RuntimeError."""
    lc = _loop(Clock(), lambda: None)
    lc.start(1)
    with pytest.raises(RuntimeError, match="already running"):
        lc.start(1)


def test_loopingCallStopWhenNotRunningRaises() -> None:
    """stop() on a LoopingCall that is not running raises RuntimeError."""
    lc = _loop(Clock(), lambda: None)
    with pytest.raises(RuntimeError, match="not running"):
        lc.stop()


def test_loopingCallNegativeIntervalRaises() -> None:
    """A negative interval raises ValueError naming interval, and nothing starts."""
    lc = _loop(Clock(), lambda: None)
    with pytest.raises(ValueError, match="interval"):
        lc.start(-1)
    assert not lc.running


def test_loopingCallRejectsNonCallable() -> None:
    """LoopingCall(non-callable) raises TypeError naming f."""
    with pytest.raises(TypeError, match="f must be callable"):
        LoopingCall(3)  # type: ignore[arg-type]


def test_loopingCallDefaultClockIsDefaultReactor(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without an injected clock, LoopingCall uses reactor.getReactor(), looked up on first use."""
    import reactor._default

    clock = Clock()
    lookups: list[int] = []

    def fakeGetReactor() -> Clock:
        lookups.append(1)
        return clock

    monkeypatch.setattr(reactor._default, "getReactor", fakeGetReactor)
    lc = LoopingCall(lambda: None)
    assert lookups == []
    lc.start(1)
    assert lc.clock is clock and lookups == [1]
    assert len(clock.getDelayedCalls()) == 1
    lc.stop()


def test_loopingCallRejectsBadClock() -> None:
    """Setting clock to something without callLater raises TypeError."""
    lc = LoopingCall(lambda: None)
    with pytest.raises(TypeError, match="clock"):
        lc.clock = object()


def test_loopingCallExceptionStopsAndErrbacks() -> None:
    """An exception from f stops the loop and errbacks the start Deferred."""
    count = 0

    def f() -> None:
        nonlocal count
        count += 1
        if count == 2:
            raise ValueError("second call fails")

    clock = Clock()

    lc = _loop(clock, f)
    d = lc.start(1)
    clock.advance(1)
    assert not lc.running
    assert failureOf(d).check(ValueError)
    clock.advance(5)
    assert count == 2


def test_loopingCallExceptionOnFirstCall() -> None:
    """An exception on the immediate first call returns an already-failed Deferred."""

    def f() -> None:
        raise KeyError("at once")

    lc = _loop(Clock(), f)
    d = lc.start(1)
    assert not lc.running
    assert failureOf(d).check(KeyError)


def test_loopingCallWaitsForDeferred() -> None:
    """If f returns a Deferred, the next call waits until it fires."""
    pending: list[Deferred[None]] = []
    clock = Clock()

    def f() -> Deferred[None]:
        pending.append(Deferred())
        return pending[-1]

    lc = _loop(clock, f)
    lc.start(1)
    clock.pump([1, 1, 1])
    assert len(pending) == 1
    pending[0].callback(None)
    assert len(pending) == 1
    clock.advance(1)
    assert len(pending) == 2


def test_loopingCallAsyncFunction() -> None:
    """An async f is run as a coroutine; the next call waits until it returns."""
    gate: Deferred[None] = Deferred()
    starts: list[float] = []

    async def f() -> None:
        starts.append(clock.seconds())
        if len(starts) == 1:
            await gate

    clock = Clock()
    lc = _loop(clock, f)
    lc.start(1)
    clock.advance(1.5)
    assert starts == [0]
    gate.callback(None)
    clock.advance(0.5)
    assert starts == [0, 2]
    lc.stop()


def test_loopingCallDeferredKeepsGrid() -> None:
    """After a slow Deferred, the next call is at the next grid point, not interval later."""
    times: list[float] = []
    slow: Deferred[None] = Deferred()

    def f() -> Deferred[None] | None:
        times.append(clock.seconds())
        return slow if len(times) == 1 else None

    clock = Clock()

    lc = _loop(clock, f)
    lc.start(2)
    clock.advance(3)
    slow.callback(None)
    clock.advance(1)
    assert times == [0, 4]


def test_loopingCallFailingDeferredErrbacks() -> None:
    """A Deferred from f that fails stops the loop and errbacks the start Deferred."""
    inner: Deferred[None] = Deferred()
    lc = _loop(Clock(), lambda: inner)
    d = lc.start(1)
    inner.errback(OSError("gone"))
    assert not lc.running
    assert failureOf(d).check(OSError)


def test_loopingCallStopWhileDeferredPending() -> None:
    """stop() while f's Deferred is pending fires the start Deferred once that fires."""
    inner: Deferred[None] = Deferred()
    lc = _loop(Clock(), lambda: inner)
    d = lc.start(1)
    lc.stop()
    assert not d.called
    inner.callback(None)
    assert resultOf(d) is lc


def test_loopingCallRestartAfterStop() -> None:
    """A stopped LoopingCall can be started again."""
    calls: list[float] = []
    clock = Clock()
    lc = _loop(clock, lambda: calls.append(clock.seconds()))
    lc.start(1)
    lc.stop()
    clock.advance(10)
    lc.start(1)
    clock.advance(1)
    assert calls == [0, 10, 11]


def test_loopingCallZeroInterval() -> None:
    """With interval 0 the call repeats on every advance(0) step."""
    calls: list[int] = []
    clock = Clock()
    lc = _loop(clock, lambda: calls.append(1))
    lc.start(0)
    assert len(calls) == 1
    assert [c.getTime() for c in clock.getDelayedCalls()] == [0]
    lc.stop()


def test_loopingCallMissedIntervalsSkipped() -> None:
    """When time jumps over several intervals, f runs once and keeps to the grid."""
    times: list[float] = []
    clock = Clock()
    lc = _loop(clock, lambda: times.append(clock.seconds()))
    lc.start(1)
    clock.advance(3.5)
    assert times == [0, 3.5]
    clock.advance(0.5)
    assert times == [0, 3.5, 4]


def test_loopingCallWithCountCountsMissedIntervals() -> None:
    """withCount passes how many intervals elapsed since the last call, skipping missed ones."""
    counts: list[int] = []
    clock = Clock()
    lc = LoopingCall.withCount(counts.append)
    lc.clock = clock
    lc.start(1)
    clock.pump([1, 1, 3.5, 0.5, 1])
    assert counts == [1, 1, 1, 3, 1, 1]


def test_loopingCallWithCountNowFalse() -> None:
    """withCount with now=False starts counting from the start time."""
    counts: list[int] = []
    clock = Clock()
    lc = LoopingCall.withCount(counts.append)
    lc.clock = clock
    lc.start(2, now=False)
    clock.advance(7)
    assert counts == [3]


def test_loopingCallWithCountZeroInterval() -> None:
    """withCount with interval 0 always passes 1."""
    counts: list[int] = []
    lc = LoopingCall.withCount(counts.append)
    lc.clock = Clock()
    lc.start(0)
    lc.stop()
    assert counts == [1]


def test_loopingCallWithCountAfterSlowDeferred() -> None:
    """A Deferred that fires late makes the next count include the missed intervals."""
    counts: list[int] = []
    slow: Deferred[None] = Deferred()

    def f(n: int) -> Deferred[None] | None:
        counts.append(n)
        return slow if len(counts) == 1 else None

    clock = Clock()
    lc = LoopingCall.withCount(f)
    lc.clock = clock
    lc.start(1)
    clock.advance(2.5)
    slow.callback(None)
    clock.advance(0.5)
    assert counts == [1, 3]


def test_loopingCallReset() -> None:
    """reset() skips the pending call and restarts the interval from now."""
    times: list[float] = []
    clock = Clock()
    lc = _loop(clock, lambda: times.append(clock.seconds()))
    lc.start(2)
    clock.advance(1.5)
    lc.reset()
    clock.advance(1.5)
    assert times == [0]
    clock.advance(0.5)
    assert times == [0, 3.5]


def test_loopingCallRepr() -> None:
    """The repr names the interval (as given to start()) and the function."""

    def tick() -> None:
        pass

    lc = _loop(Clock(), tick)
    lc.start(3)
    assert "LoopingCall<3>" in repr(lc) and "tick" in repr(lc)


# deferLater


def test_deferLaterFiresWithCallableResult() -> None:
    """deferLater fires with the callable's result after the delay."""
    clock = Clock()
    d = deferLater(clock, 2, lambda a, b: a * b, 6, b=7)
    clock.advance(1.9)
    assert not d.called
    clock.advance(0.1)
    assert resultOf(d) == 42


def test_deferLaterWithoutCallableFiresNone() -> None:
    """deferLater with no callable fires with None."""
    clock = Clock()
    d: Deferred[None] = deferLater(clock, 1)
    clock.advance(1)
    assert resultOf(d) is None


def test_deferLaterCallableException() -> None:
    """An exception from the callable errbacks the Deferred."""

    def boom() -> None:
        raise ValueError("late boom")

    clock = Clock()
    d = deferLater(clock, 1, boom)
    clock.advance(1)
    assert failureOf(d).check(ValueError)


def test_deferLaterCallableReturningDeferred() -> None:
    """A Deferred returned by the callable is waited for."""
    clock = Clock()
    d = deferLater(clock, 1, lambda: succeed("inner"))
    clock.advance(1)
    assert resultOf(d) == "inner"


def test_deferLaterCancelRemovesCall() -> None:
    """Cancelling removes the DelayedCall, errbacks CancelledError, and the callable never runs."""
    clock = Clock()
    ran: list[int] = []
    d = deferLater(clock, 1, ran.append, 1)
    assert len(clock.getDelayedCalls()) == 1
    d.cancel()
    assert clock.getDelayedCalls() == []
    assert failureOf(d).check(CancelledError)
    clock.advance(2)
    assert ran == []


def test_deferLaterRejectsBadArguments() -> None:
    """Bad clock, delay or callable raise at the call, naming the argument."""
    clock = Clock()
    with pytest.raises(TypeError, match="clock"):
        deferLater(object(), 1)
    with pytest.raises(ValueError, match="delay"):
        deferLater(clock, -1)
    with pytest.raises(TypeError, match="callable"):
        deferLater(clock, 1, 5)  # type: ignore[arg-type]


# react


class _FakeReactor:
    """Just enough of IReactorCore for react(): run() fires startup and shutdown triggers."""

    def __init__(self) -> None:
        self.running = False
        self.stopCount = 0
        self._whenRunning: list[tuple[Any, tuple[Any, ...]]] = []
        self._beforeShutdown: dict[int, Any] = {}
        self._stopRequested = False

    def callWhenRunning(self, f: Any, *a: Any) -> None:
        if self.running:
            f(*a)
        else:
            self._whenRunning.append((f, a))

    def addSystemEventTrigger(self, phase: str, event: str, f: Any) -> int:
        assert (phase, event) == ("before", "shutdown")
        self._beforeShutdown[len(self._beforeShutdown)] = f
        return len(self._beforeShutdown) - 1

    def removeSystemEventTrigger(self, triggerId: int) -> None:
        del self._beforeShutdown[triggerId]

    def stop(self) -> None:
        self.stopCount += 1
        self._stopRequested = True

    def run(self) -> None:
        self.running = True
        for f, a in self._whenRunning:
            f(*a)
        assert self._stopRequested, "react did not stop the reactor"
        for f in self._beforeShutdown.values():
            f()
        self.running = False


def test_reactSuccessExitsZero() -> None:
    """react exits with code 0 when main's Deferred succeeds, having stopped the reactor once."""
    fake = _FakeReactor()
    seen: list[Any] = []

    def main(reactor: Any, a: str, b: str) -> Deferred[None]:
        seen.append((reactor, a, b))
        return succeed(None)

    with pytest.raises(SystemExit) as info:
        react(main, ["x", "y"], _reactor=fake)
    assert info.value.code == 0
    assert seen == [(fake, "x", "y")]
    assert fake.stopCount == 1


def test_reactFailurePrintsTracebackExitsOne(capsys: pytest.CaptureFixture[str]) -> None:
    """A failing main prints the traceback to stderr and exits with code 1."""

    def main(reactor: Any) -> Deferred[None]:
        return Deferred.fromCoroutine(_raiser())

    with pytest.raises(SystemExit) as info:
        react(main, _reactor=_FakeReactor())
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "RuntimeError" in err and "_raiser" in err


async def _raiser() -> None:
    raise RuntimeError("main failed")


def test_reactSystemExitPassesCode() -> None:
    """A SystemExit raised by main exits with that code, printing nothing."""

    async def main(reactor: Any) -> None:
        raise SystemExit(7)

    with pytest.raises(SystemExit) as info:
        react(main, _reactor=_FakeReactor())
    assert info.value.code == 7


def test_reactSynchronousExceptionExitsOne(capsys: pytest.CaptureFixture[str]) -> None:
    """An exception raised by main before returning is treated as a failure (exit 1)."""

    def main(reactor: Any) -> Deferred[None]:
        raise KeyError("sync")

    with pytest.raises(SystemExit) as info:
        react(main, _reactor=_FakeReactor())
    assert info.value.code == 1
    assert "KeyError" in capsys.readouterr().err


def test_reactRejectsNonCallable() -> None:
    """react(non-callable) raises TypeError naming main."""
    with pytest.raises(TypeError, match="main"):
        react(3, _reactor=_FakeReactor())  # type: ignore[arg-type]


def test_reactWithRealReactor() -> None:
    """react runs main on a real Reactor, stops it when main's Deferred fires, exits 0."""
    from reactor import Reactor

    real = Reactor()
    seen: list[bool] = []
    timedOut: list[bool] = []

    def onTimeout() -> None:
        timedOut.append(True)
        real.stop()

    def main(reactor: Any) -> Deferred[str]:
        # A guard so a broken react cannot hang the test.
        guard = reactor.callLater(10, onTimeout)
        seen.append(reactor.running)
        d = deferLater(reactor, 0.01, lambda: "done")
        d.addCallback(lambda r: (guard.cancel(), r)[1])
        return d

    try:
        with pytest.raises(SystemExit) as info:
            react(main, _reactor=real)
    finally:
        real.close()
    assert info.value.code == 0
    assert seen == [False]
    assert not timedOut
    assert not real.running


def test_reactWithRealReactorFailure(capsys: pytest.CaptureFixture[str]) -> None:
    """react on a real Reactor exits 1 when main's coroutine fails."""
    from reactor import Reactor

    async def main(reactor: Any) -> None:
        await deferLater(reactor, 0.01)
        raise ValueError("async failure")

    real = Reactor()
    try:
        with pytest.raises(SystemExit) as info:
            react(main, _reactor=real)
    finally:
        real.close()
    assert info.value.code == 1
    assert "async failure" in capsys.readouterr().err


def test_reactStoppedBySomeoneElseExitsZero() -> None:
    """If the reactor is stopped before main finishes, react exits 0 (as Twisted does)."""
    from reactor import Reactor

    real = Reactor()

    def main(reactor: Any) -> Deferred[None]:
        reactor.callLater(0.01, reactor.stop)
        return Deferred()

    try:
        with pytest.raises(SystemExit) as info:
            react(main, _reactor=real)
    finally:
        real.close()
    assert info.value.code == 0


def test_reactUsesDefaultReactor(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without _reactor, react runs main on reactor.getReactor()."""
    import reactor._default

    fake = _FakeReactor()
    monkeypatch.setattr(reactor._default, "getReactor", lambda: fake)
    seen: list[Any] = []

    def main(r: Any) -> Deferred[None]:
        seen.append(r)
        return succeed(None)

    with pytest.raises(SystemExit) as info:
        react(main)
    assert info.value.code == 0
    assert seen == [fake]


def test_docSnippetsRun(capsys: pytest.CaptureFixture[str]) -> None:
    """Every Python snippet in docs/task-and-sync.md runs (react's is guarded by __main__)."""
    import pathlib
    import re

    doc = pathlib.Path(__file__).resolve().parent.parent / "docs" / "task-and-sync.md"
    snippets = re.findall(r"```python\n(.*?)```", doc.read_text(), re.S)
    assert len(snippets) >= 8
    for i, code in enumerate(snippets):
        exec(compile(code, f"{doc.name} snippet {i}", "exec"), {"__name__": "docsnippet"})
    out = capsys.readouterr().out
    assert "[1, 2]" in out and "(0, 'fast')" in out and "1024" in out and "full:" in out


def test_loopingCallDeferredAttributeIsStartsDeferredWhileRunning() -> None:
    """LoopingCall.deferred is what start() returned while running, None once it fired (as in Twisted)."""
    clock = Clock()
    loop = LoopingCall(lambda: None)
    loop.clock = clock
    assert loop.deferred is None
    d = loop.start(1)
    assert loop.deferred is d
    loop.stop()
    assert loop.deferred is None
    assert resultOf(d) is loop
