"""blockingCallFromThread: from a worker thread into the reactor and back; never a deadlock or a hang.

The ``async def`` tests run on a fresh default reactor through the project's pytest plugin: a worker of
its shared pool (``deferToThread``) calls back into it. Those about stopping run their own reactor."""

from __future__ import annotations

import threading
import traceback
from typing import Any

import pytest

import deferthreads._sharedpool
from deferthreads import (
    ReactorThreadError,
    blockingCallFromThread,
    blockingCallFromThreadWithTimeout,
    deferToThread,
    deferToThreadPool,
    getThreadPool,
    setShutdownTimeout,
)
from reactor import Deferred, Failure, ReactorNotRunning, getReactor, succeed
from reactor._loop import Reactor
from tests.bridge_support import WAIT, runReactor


async def test_returnsThePlainResultAndRunsInTheReactorThread() -> None:
    """The function runs in the reactor thread; its value is returned in the worker."""
    reactor = getReactor()

    def inReactor(a: int, b: int) -> tuple[int, bool]:
        return a * b, reactor.isReactorThread()

    assert await deferToThread(blockingCallFromThread, reactor, inReactor, 6, b=7) == (42, True)


async def test_waitsForADeferredAndForACoroutine() -> None:
    """A returned Deferred or coroutine is waited for; its result comes back."""
    reactor = getReactor()

    def later() -> Deferred[str]:
        d: Deferred[str] = Deferred()
        reactor.callLater(0.001, d.callback, "from a Deferred")
        return d

    async def coro() -> str:
        value = await succeed("from a coroutine")
        return value

    def work() -> tuple[str, str]:
        return blockingCallFromThread(reactor, later), blockingCallFromThread(reactor, coro)

    assert await deferToThread(work) == ("from a Deferred", "from a coroutine")


async def test_raisesTheExceptionWithItsTraceback() -> None:
    """An exception (raised or as a failed Deferred) is re-raised in the calling thread."""
    reactor = getReactor()

    def failsInReactor() -> None:
        raise KeyError("reactor side")

    def work() -> str:
        try:
            blockingCallFromThread(reactor, failsInReactor)
        except KeyError:
            return traceback.format_exc()
        return "no exception"

    text = await deferToThread(work)
    assert "KeyError: 'reactor side'" in text and "failsInReactor" in text


async def test_userKeywordsNamedTimeoutOrReactorReachTheFunction() -> None:
    """timeout=, reactor= and f= keywords are the function's, never ours."""
    reactor = getReactor()

    def echo(**kw: Any) -> dict[str, Any]:
        return kw

    work = lambda: blockingCallFromThread(reactor, echo, timeout=1, reactor=2, f=3)  # noqa: E731
    assert await deferToThread(work) == {"timeout": 1, "reactor": 2, "f": 3}


async def test_calledInTheReactorThreadRaisesAtOnce() -> None:
    """In the reactor thread it raises ReactorThreadError instead of deadlocking."""
    with pytest.raises(ReactorThreadError, match="deadlock"):
        blockingCallFromThread(getReactor(), lambda: 1)


def test_reactorNotRunningRaisesAtOnce() -> None:
    """A reactor that is not running: ReactorNotRunning at once, the function never runs."""
    reactor = Reactor()
    ran: list[int] = []
    with pytest.raises(ReactorNotRunning, match="not running"):
        blockingCallFromThread(reactor, ran.append, 1)
    assert ran == []


def test_reactorStoppingRaisesAtOnce() -> None:
    """While the reactor is stopping (work drained in 'before shutdown'), it raises at once."""
    reactor = Reactor()
    box: list[Any] = []

    def work() -> str:
        try:
            blockingCallFromThread(reactor, lambda: 1)
        except ReactorNotRunning as e:
            return str(e)
        return "no exception"

    def main() -> None:
        release = threading.Event()
        d = deferToThreadPool(reactor, getThreadPool(reactor), lambda: (release.wait(WAIT), work())[1])
        d.addBoth(box.append)
        reactor.stop()
        reactor.callLater(0, release.set)  # runs during the drain, with stopping already true

    runReactor(reactor, main)
    [message] = box
    assert "stopping" in message


def test_reactorStoppingWhileWaitingRaisesInsteadOfHanging() -> None:
    """The reactor stops before the returned Deferred fires: the waiting thread gets ReactorNotRunning."""
    reactor = Reactor()
    outcome: list[Any] = []
    entered = threading.Event()

    def never() -> Deferred[None]:
        entered.set()
        return Deferred()

    def waiter() -> None:
        try:
            blockingCallFromThread(reactor, never)
        except ReactorNotRunning as e:
            outcome.append(e)

    thread = threading.Thread(target=waiter)

    def main() -> None:
        thread.start()
        threading.Thread(target=lambda: (entered.wait(WAIT), reactor.callFromThread(reactor.stop))).start()

    runReactor(reactor, main)
    thread.join(WAIT)
    assert not thread.is_alive()
    assert len(outcome) == 1 and "stopped" in str(outcome[0])


def test_stopWhileAWorkerWaitsOnADeferredDoesNotStallTheDrain(monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker blocked on a Deferred gets ReactorNotRunning as stop() begins; the drain never times out."""
    reactor = Reactor()
    monkeypatch.setattr(deferthreads._sharedpool, "_defaultReactor", lambda: reactor)
    # Without the fix the drain ends only by this timeout, cancelling the call (CancelledError).
    setShutdownTimeout(reactor, WAIT / 2)
    box: list[Any] = []

    def never() -> Deferred[None]:
        reactor.callLater(0, reactor.stop)  # the worker is waiting by now: f runs in the reactor
        return Deferred()

    def main() -> None:
        deferToThread(blockingCallFromThread, reactor, never).addBoth(box.append)

    runReactor(reactor, main)
    [outcome] = box
    assert isinstance(outcome, Failure) and outcome.check(ReactorNotRunning), outcome


async def test_timeoutRaisesAndCancelsTheDeferred() -> None:
    """With a timeout: TimeoutError in the thread, and the Deferred is cancelled in the reactor."""
    reactor = getReactor()
    cancelled: Deferred[None] = Deferred()

    def slow() -> Deferred[None]:
        return Deferred(lambda d: cancelled.callback(None))

    def work() -> str:
        try:
            blockingCallFromThreadWithTimeout(reactor, 0.05, slow)
        except TimeoutError as e:
            return str(e)
        return "no timeout"

    assert "within 0.05 seconds" in await deferToThread(work)
    await cancelled  # the canceller ran, in the reactor thread


async def test_timeoutResultWithinBoundIsReturned() -> None:
    """Within its timeout the call returns normally."""
    assert await deferToThread(blockingCallFromThreadWithTimeout, getReactor(), WAIT, len, "abc") == 3


def test_argumentErrorsRaiseAtTheCall() -> None:
    """A non-callable or a bad timeout raises at once, naming the argument."""
    reactor = Reactor()
    with pytest.raises(TypeError, match="f must be callable"):
        blockingCallFromThread(reactor, 5)  # type: ignore[call-overload]
    with pytest.raises(ValueError, match="timeout"):
        blockingCallFromThreadWithTimeout(reactor, -1, len, "x")
    with pytest.raises(TypeError, match="timeout"):
        blockingCallFromThreadWithTimeout(reactor, None, len, "x")  # type: ignore[call-overload]
