"""blockingCallFromThread: from a worker thread into the reactor and back; never a deadlock or a hang."""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
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
from reactor import Deferred, Failure, ReactorNotRunning, succeed
from reactor._loop import Reactor
from tests.bridge_support import WAIT, runReactor


def _inWorker(reactor: Reactor, work: Callable[[], Any], box: list[Any]) -> Callable[[], None]:
    """A reactor ``main`` that runs ``work`` in the shared pool, records its outcome and stops."""

    def main() -> None:
        d = deferToThreadPool(reactor, getThreadPool(reactor), work)
        d.addBoth(box.append).addBoth(lambda _: reactor.stop())

    return main


def test_returnsThePlainResultAndRunsInTheReactorThread() -> None:
    """The function runs in the reactor thread; its value is returned in the worker."""
    reactor = Reactor()
    box: list[Any] = []

    def inReactor(a: int, b: int) -> tuple[int, bool]:
        return a * b, reactor.isReactorThread()

    runReactor(reactor, _inWorker(reactor, lambda: blockingCallFromThread(reactor, inReactor, 6, b=7), box))
    assert box == [(42, True)]


def test_waitsForADeferredAndForACoroutine() -> None:
    """A returned Deferred or coroutine is waited for; its result comes back."""
    reactor = Reactor()
    box: list[Any] = []

    def later() -> Deferred[str]:
        d: Deferred[str] = Deferred()
        reactor.callLater(0.001, d.callback, "from a Deferred")
        return d

    async def coro() -> str:
        value = await succeed("from a coroutine")
        return value

    def work() -> tuple[str, str]:
        return blockingCallFromThread(reactor, later), blockingCallFromThread(reactor, coro)

    runReactor(reactor, _inWorker(reactor, work, box))
    assert box == [("from a Deferred", "from a coroutine")]


def test_raisesTheExceptionWithItsTraceback() -> None:
    """An exception (raised or as a failed Deferred) is re-raised in the calling thread."""
    reactor = Reactor()
    box: list[Any] = []

    def failsInReactor() -> None:
        raise KeyError("reactor side")

    def work() -> str:
        try:
            blockingCallFromThread(reactor, failsInReactor)
        except KeyError:
            return traceback.format_exc()
        return "no exception"

    runReactor(reactor, _inWorker(reactor, work, box))
    [text] = box
    assert "KeyError: 'reactor side'" in text and "failsInReactor" in text


def test_userKeywordsNamedTimeoutOrReactorReachTheFunction() -> None:
    """timeout=, reactor= and f= keywords are the function's, never ours."""
    reactor = Reactor()
    box: list[Any] = []

    def echo(**kw: Any) -> dict[str, Any]:
        return kw

    work = lambda: blockingCallFromThread(reactor, echo, timeout=1, reactor=2, f=3)  # noqa: E731
    runReactor(reactor, _inWorker(reactor, work, box))
    assert box == [{"timeout": 1, "reactor": 2, "f": 3}]


def test_calledInTheReactorThreadRaisesAtOnce() -> None:
    """In the reactor thread it raises ReactorThreadError instead of deadlocking."""
    reactor = Reactor()
    box: list[Any] = []

    def main() -> None:
        try:
            blockingCallFromThread(reactor, lambda: 1)
        except ReactorThreadError as e:
            box.append(e)
        reactor.stop()

    runReactor(reactor, main)
    assert len(box) == 1 and "deadlock" in str(box[0])


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


def test_timeoutRaisesAndCancelsTheDeferred() -> None:
    """With a timeout: TimeoutError in the thread, and the Deferred is cancelled in the reactor."""
    reactor = Reactor()
    box: list[Any] = []
    cancelled = threading.Event()

    def slow() -> Deferred[None]:
        return Deferred(lambda d: cancelled.set())

    def work() -> str:
        try:
            blockingCallFromThreadWithTimeout(reactor, 0.05, slow)
        except TimeoutError as e:
            return str(e)
        return "no timeout"

    runReactor(reactor, _inWorker(reactor, work, box))
    assert len(box) == 1 and "within 0.05 seconds" in box[0]
    assert cancelled.wait(WAIT)


def test_timeoutResultWithinBoundIsReturned() -> None:
    """Within its timeout the call returns normally."""
    reactor = Reactor()
    box: list[Any] = []
    work = lambda: blockingCallFromThreadWithTimeout(reactor, WAIT, len, "abc")  # noqa: E731
    runReactor(reactor, _inWorker(reactor, work, box))
    assert box == [3]


def test_argumentErrorsRaiseAtTheCall() -> None:
    """A non-callable or a bad timeout raises at once, naming the argument."""
    reactor = Reactor()
    with pytest.raises(TypeError, match="f must be callable"):
        blockingCallFromThread(reactor, 5)  # type: ignore[call-overload]
    with pytest.raises(ValueError, match="timeout"):
        blockingCallFromThreadWithTimeout(reactor, -1, len, "x")
    with pytest.raises(TypeError, match="timeout"):
        blockingCallFromThreadWithTimeout(reactor, None, len, "x")  # type: ignore[call-overload]
