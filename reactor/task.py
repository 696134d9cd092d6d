"""Scheduling helpers: a fake clock for tests, repeating calls, delays, and a ``main`` runner.

``Clock`` is a deterministic :class:`~reactor.interfaces.IReactorTime`: time only
moves when the test says so (:meth:`Clock.advance`), and it schedules the same
:class:`~reactor.DelayedCall` objects as the real reactor, so code under test
cannot tell the difference. ``LoopingCall`` runs a function every N seconds,
``deferLater`` gives a Deferred that fires after a delay, and ``react`` runs an
application's ``main`` on a reactor and exits with its outcome. ``Cooperator``,
``cooperate`` and ``coiterate`` (from ``reactor._cooperator``) run long jobs as
iterators, a slice at a time.

Everything here runs in the thread that drives the clock or reactor given (the
reactor thread): like Deferreds, none of it is thread-safe. Same names and
meaning as ``twisted.internet.task``.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterable
from typing import Any, NoReturn, Protocol, TypeVar, cast

from zope.interface import implementer

from reactor._cooperator import (
    CooperativeTask,
    Cooperator,
    NotPaused,
    SchedulerError,
    SchedulerStopped,
    TaskDone,
    TaskFailed,
    TaskFinished,
    TaskStopped,
    coiterate,
    cooperate,
)
from reactor._coreinterfaces import IDelayedCall, IReactorTime
from reactor._deferred import Deferred, maybeDeferred
from reactor._delayed import DelayedCall, TimerQueue
from reactor._errors import ReactorNotRunning
from reactor._failure import Failure

__all__ = [
    "Clock",
    "CooperativeTask",
    "Cooperator",
    "LoopingCall",
    "NotPaused",
    "SchedulerError",
    "SchedulerStopped",
    "TaskDone",
    "TaskFailed",
    "TaskFinished",
    "TaskStopped",
    "coiterate",
    "cooperate",
    "deferLater",
    "react",
]

_T = TypeVar("_T")


class _Time(Protocol):
    """What LoopingCall and deferLater need from a clock (a reactor or a Clock)."""

    def seconds(self) -> float: ...

    def callLater(self, delay: float, callable: Callable[..., object], /, *args: Any, **kw: Any) -> Any: ...


def _checkSeconds(value: object, argName: str) -> float:
    """Return ``value`` as a float if it is a finite number >= 0, else raise naming ``argName``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{argName} must be a number of seconds, not {type(value).__name__}")
    if not value >= 0 or math.isinf(value):  # `not >=` also catches NaN
        raise ValueError(f"{argName} must be a finite number >= 0, got {value!r}")
    return float(value)


@implementer(IReactorTime)
class Clock:
    """A fake :class:`IReactorTime` whose time moves only when :meth:`advance` is called.

    Time starts at 0.0. ``callLater`` returns the reactor's own
    :class:`~reactor.DelayedCall`, so ``cancel``, ``reset``, ``delay`` and
    ``active`` behave exactly as on a real reactor. :meth:`advance` runs the
    due calls in the caller's thread, earliest first (FIFO for equal times).
    An exception from a call propagates out of ``advance`` (the test sees it);
    the calls after it stay scheduled for the next ``advance``.
    """

    # Owned by the thread driving the clock (the test).
    rightNow: float

    def __init__(self) -> None:
        self.rightNow = 0.0
        self._queue = TimerQueue(self.seconds)

    def seconds(self) -> float:
        """The clock's current time, in seconds since it was created (starts at 0.0)."""
        return self.rightNow

    def callLater(
        self, delay: float, callable: Callable[..., object], *args: Any, **kwargs: Any
    ) -> DelayedCall:
        """Schedule ``callable(*args, **kwargs)`` to run once time reaches ``seconds() + delay``.

        Raises ``ValueError``/``TypeError`` (naming ``delay`` or ``callable``) for
        a negative or non-numeric delay or a non-callable.
        """
        if isinstance(delay, bool) or not isinstance(delay, (int, float)):
            raise TypeError(f"delay must be a number of seconds, not {type(delay).__name__}")
        if not delay >= 0:
            raise ValueError(f"delay must be >= 0, got {delay!r}")
        if not _isCallable(callable):
            raise TypeError(f"callable must be callable, not {type(callable).__name__}")
        return self._queue.schedule(self.rightNow + delay, callable, args, kwargs)

    def getDelayedCalls(self) -> list[IDelayedCall]:
        """The calls still pending (neither run nor cancelled), earliest first (a fresh list)."""
        return cast(list[IDelayedCall], self._queue.getDelayedCalls())

    @property
    def calls(self) -> list[IDelayedCall]:
        """Twisted's ``Clock.calls``: the pending calls, earliest first (a fresh list)."""
        return self.getDelayedCalls()

    def advance(self, amount: float) -> None:
        """Move time forward by ``amount`` seconds and run every call that is now due.

        A call scheduled while advancing for a time ``<=`` the new time (for
        example ``callLater(0, ...)`` from a running call) runs in this same
        advance, as in Twisted. Raises ``ValueError`` for a negative ``amount``.
        """
        amount = _checkSeconds(amount, "amount")
        self.rightNow += amount
        self._queue.runDue(self.rightNow, includeNew=True)

    def pump(self, timings: Iterable[float]) -> None:
        """Call :meth:`advance` with each amount of ``timings`` in turn."""
        for amount in timings:
            self.advance(amount)

    def __repr__(self) -> str:
        return f"<Clock at {self.rightNow!r}, {len(self._queue)} pending>"


def _isCallable(obj: object) -> bool:
    # `callable` is shadowed by Twisted's parameter name in the methods above.
    return callable(obj)


class LoopingCall:
    """Call ``f(*a, **kw)`` every ``interval`` seconds until stopped.

    :meth:`start` returns a Deferred that fires with this LoopingCall when
    :meth:`stop` is called, or errbacks with the failure when ``f`` raises (or
    returns a Deferred that fails); either way the loop stops. If ``f`` returns
    a Deferred, the next call is scheduled only after it fires. Calls keep to
    the grid ``start time + k * interval``: a call that runs late does not shift
    the ones after it, and intervals missed entirely are skipped (see
    :meth:`withCount` to learn how many).

    ``clock`` is the reactor (or :class:`Clock`) used for time; it defaults to
    ``reactor.getReactor()``, looked up on first use, so set it before
    :meth:`start`. Reactor thread only.
    """

    # All fields are owned by the clock's thread (the reactor thread).
    call: DelayedCall | None
    running: bool
    interval: float | None
    starttime: float | None

    def __init__(self, f: Callable[..., object], /, *a: Any, **kw: Any) -> None:
        if not callable(f):
            raise TypeError(f"f must be callable, not {type(f).__name__}")
        self.f = f
        self.a = a
        self.kw = kw
        self.call = None
        self.running = False
        self.interval = None
        self.starttime = None
        self._clock: _Time | None = None
        self._deferred: Deferred[LoopingCall] | None = None
        self._runAtStart = False
        # Used by withCount: when the count callable last actually ran.
        self._realLastTime: float | None = None

    @property
    def deferred(self) -> Deferred[LoopingCall] | None:
        """The Deferred :meth:`start` returned, while the loop runs; ``None`` once it has fired."""
        return self._deferred

    @property
    def clock(self) -> Any:
        """The IReactorTime provider used for scheduling (default: ``reactor.getReactor()``)."""
        if self._clock is None:
            from reactor._default import getReactor

            self._clock = getReactor()
        return self._clock

    @clock.setter
    def clock(self, value: Any) -> None:
        if not (callable(getattr(value, "callLater", None)) and callable(getattr(value, "seconds", None))):
            raise TypeError(f"clock must provide callLater() and seconds(), not {type(value).__name__}")
        self._clock = value

    @classmethod
    def withCount(cls, countCallable: Callable[[int], object]) -> LoopingCall:
        """Make a LoopingCall that calls ``countCallable(n)``, ``n`` being the intervals elapsed.

        ``n`` is normally 1; it is larger when calls were missed (the reactor was
        busy, or a Deferred returned by the previous call fired late), so an
        animation can skip frames instead of falling behind. With an interval of
        0, ``n`` is always 1.
        """
        if not callable(countCallable):
            raise TypeError(f"countCallable must be callable, not {type(countCallable).__name__}")

        def counter() -> object:
            now = loop.clock.seconds()
            interval = loop.interval
            assert interval is not None and loop.starttime is not None
            if interval == 0:
                loop._realLastTime = now
                return countCallable(1)
            last = loop._realLastTime
            if last is None:
                # Before the first call: count from the start, and count the
                # start itself as a call's worth when now=True ran us there.
                last = loop.starttime - interval if loop._runAtStart else loop.starttime
            count = loop._intervalsAt(now) - loop._intervalsAt(last)
            if count <= 0:
                # Woken a hair early (float rounding): nothing is due yet.
                return None
            loop._realLastTime = now
            return countCallable(count)

        loop = cls(counter)
        return loop

    def _intervalsAt(self, t: float) -> int:
        """How many whole intervals separate ``t`` from the start time."""
        assert self.starttime is not None and self.interval
        return math.floor((t - self.starttime) / self.interval)

    def start(self, interval: float, now: bool = True) -> Deferred[LoopingCall]:
        """Start calling ``f`` every ``interval`` seconds; first call at once if ``now``.

        Returns a Deferred firing with this LoopingCall when :meth:`stop` is
        called, or errbacking when ``f`` fails. Raises ``RuntimeError`` if already
        running, ``ValueError`` for a negative interval, ``TypeError`` for a
        non-number.
        """
        if self.running:
            raise RuntimeError(f"{self!r} is already running")
        # Checked, then kept as given (int or float), as Twisted keeps it.
        _checkSeconds(interval, "interval")
        clock = self.clock
        self.running = True
        # start() may fail and clear self._deferred before returning (when f
        # raises on the first call), hence the local.
        deferred: Deferred[LoopingCall] = Deferred()
        self._deferred = deferred
        self.starttime = clock.seconds()
        self.interval = interval
        self._runAtStart = bool(now)
        self._realLastTime = None
        if now:
            self()
        else:
            self._scheduleFrom(self.starttime)
        return deferred

    def stop(self) -> None:
        """Stop the loop; the Deferred from :meth:`start` fires with this LoopingCall.

        If a Deferred returned by ``f`` is still pending, the start Deferred
        fires when it does. Raises ``RuntimeError`` if not running.
        """
        if not self.running:
            raise RuntimeError(f"{self!r} is not running")
        self.running = False
        if self.call is not None:
            self.call.cancel()
            self.call = None
            self._fire(self)
        # Otherwise f is running now (stop() called from inside it) or its
        # Deferred is pending: _afterCall fires the start Deferred.

    def reset(self) -> None:
        """Skip the next scheduled call and restart the interval grid from now.

        Raises ``RuntimeError`` if not running.
        """
        if not self.running:
            raise RuntimeError(f"{self!r} is not running")
        if self.call is not None:
            self.call.cancel()
            self.call = None
            self.starttime = self.clock.seconds()
            self._scheduleFrom(self.starttime)

    def __call__(self) -> None:
        """Run one iteration now (this is what the scheduled DelayedCall calls)."""
        self.call = None
        d = maybeDeferred(self.f, *self.a, **self.kw)
        d.addCallbacks(self._afterCall, self._failed)

    def _afterCall(self, _: object) -> None:
        if self.running:
            self._scheduleFrom(self.clock.seconds())
        else:
            self._fire(self)

    def _failed(self, failure: Failure) -> None:
        self.running = False
        self._fire(failure)

    def _fire(self, result: LoopingCall | Failure) -> None:
        d, self._deferred = self._deferred, None
        assert d is not None
        if isinstance(result, Failure):
            d.errback(result)
        else:
            d.callback(result)

    def _scheduleFrom(self, when: float) -> None:
        """Schedule the next call at the next grid point strictly after ``when``."""
        interval = self.interval
        assert interval is not None and self.starttime is not None
        if interval == 0:
            delay = 0.0
        else:
            delay = interval - (when - self.starttime) % interval
            # A delay too small to move `when` (float rounding at large times)
            # would run us again at the same instant; wait a whole interval.
            if when + delay == when:
                delay = interval
        self.call = self.clock.callLater(delay, self)

    def __repr__(self) -> str:
        name = getattr(self.f, "__qualname__", None) or getattr(self.f, "__name__", None) or repr(self.f)
        return f"LoopingCall<{self.interval!r}>({name}, *{self.a!r}, **{self.kw!r})"


def deferLater(
    clock: Any, delay: float, callable: Callable[..., _T] | None = None, /, *args: Any, **kw: Any
) -> Deferred[_T]:
    """Return a Deferred that fires with ``callable(*args, **kw)`` after ``delay`` seconds.

    With no callable it fires with ``None``. An exception from the callable
    errbacks the Deferred; a Deferred it returns is waited for. Cancelling the
    Deferred before the delay is over cancels the scheduled call (the callable
    never runs) and errbacks ``CancelledError``. ``clock`` is a reactor or a
    :class:`Clock`. Bad arguments raise ``TypeError``/``ValueError`` naming them.
    """
    if not _isCallable(getattr(clock, "callLater", None)):
        raise TypeError(f"clock must provide callLater(), not {type(clock).__name__}")
    _checkSeconds(delay, "delay")
    f = callable
    if f is not None and not _isCallable(f):
        raise TypeError(f"callable must be callable or None, not {type(f).__name__}")

    def cancelCall(_: Deferred[_T]) -> None:
        delayedCall.cancel()

    def runCallable(_: object) -> Any:
        if f is None:
            return None
        return f(*args, **kw)

    d: Deferred[_T] = Deferred(canceller=cancelCall)
    d.addCallback(runCallable)
    delayedCall = clock.callLater(delay, d.callback, None)
    return d


def react(main: Callable[..., Any], argv: Iterable[object] = (), _reactor: Any = None) -> NoReturn:
    """Run ``main(reactor, *argv)`` on a reactor until what it returns finishes, then exit.

    ``main`` returns a Deferred or a coroutine (a plain value counts as success).
    The reactor (``_reactor``, or ``reactor.getReactor()``) runs until that
    completes, then is stopped once. Exits with ``SystemExit(0)`` on success;
    on failure prints the traceback to stderr and exits with ``SystemExit(1)``,
    except that a ``SystemExit`` raised by ``main`` exits with its own code. If
    something else stops the reactor first, exits 0, as Twisted does.
    Runs in the thread that calls it, which becomes the reactor thread.
    """
    if not _isCallable(main):
        raise TypeError(f"main must be callable, not {type(main).__name__}")
    if isinstance(argv, (str, bytes)):
        raise TypeError("argv must be a sequence of arguments, not a string")
    args = tuple(argv)
    if _reactor is None:
        from reactor._default import getReactor

        _reactor = getReactor()
    theReactor = _reactor
    exitCode: object = 0
    stopping = False

    def onShutdown() -> None:
        nonlocal stopping
        stopping = True

    def finish(result: object, stopReactor: bool) -> None:
        nonlocal exitCode
        if stopReactor:
            try:
                theReactor.stop()
            except ReactorNotRunning:
                pass
        if isinstance(result, Failure):
            if isinstance(result.value, SystemExit):
                exitCode = result.value.code
            else:
                stream = sys.stderr
                stream.write("main function encountered error\n")
                result.printTraceback(file=stream)
                stream.flush()
                exitCode = 1

    def onFinished(result: object) -> None:
        if stopping:
            # Shutdown already under way (someone else stopped the reactor).
            finish(result, False)
        else:
            # Stop from inside the running reactor: if main finished before
            # run(), this waits until startup is done.
            theReactor.callWhenRunning(finish, result, True)

    finished = maybeDeferred(main, theReactor, *args)
    triggerId = theReactor.addSystemEventTrigger("before", "shutdown", onShutdown)
    finished.addBoth(onFinished)
    try:
        theReactor.run()
    finally:
        if not stopping:
            # The trigger never ran (crash()); do not leave it on a reused reactor.
            try:
                theReactor.removeSystemEventTrigger(triggerId)
            except (KeyError, ValueError):
                pass
    raise SystemExit(exitCode)
