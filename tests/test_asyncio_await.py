"""``await deferred`` in a coroutine that an asyncio Task drives (asyncio's loop and uvloop).

The Deferred is bridged to a Future of the running loop: results and failures arrive,
the Task's cancellation (``task.cancel()``, ``asyncio.timeout``, ``wait_for``) cancels
the Deferred, a Deferred fired in another thread is refused. Inside
``Deferred.fromCoroutine`` (started from a Task or not) Twisted's semantics stay.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

import deferthreads
from reactor import CancelledError, Deferred, ensureDeferred, inlineCallbacks, succeed
from reactor.asyncioreactor import hostedReactor
from tests.asyncio_support import DEADLINE, ReactorThread, loop, runBounded

__all__ = ["loop"]  # the fixture, parametrized over asyncio and uvloop


class MyError(Exception):
    pass


def test_awaitUnfiredDeferredInTaskGetsItsResult(loop: asyncio.AbstractEventLoop) -> None:
    """A Task awaiting an unfired Deferred resumes with the result it fires with later."""

    async def main() -> int:
        d: Deferred[int] = Deferred()
        asyncio.get_running_loop().call_soon(d.callback, 42)
        return await d

    assert runBounded(loop, main()) == 42


def test_awaitUnfiredDeferredInTaskRaisesItsFailure(loop: asyncio.AbstractEventLoop) -> None:
    """An errback reaches the Task as the original exception, and the Deferred no longer holds it."""
    d: Deferred[int] = Deferred()

    async def main() -> None:
        asyncio.get_running_loop().call_soon(d.errback, MyError("boom"))
        await d

    with pytest.raises(MyError, match="boom"):
        runBounded(loop, main())
    assert d.result is None  # consumed by the await: not reported as unhandled


def test_awaitFiredDeferredInTaskReturnsWithoutSuspending(loop: asyncio.AbstractEventLoop) -> None:
    """An already fired Deferred is returned at once, with no Future made."""

    async def main() -> tuple[int, bool]:
        before = asyncio.all_tasks()
        value = await succeed(7)
        return value, asyncio.all_tasks() == before

    assert runBounded(loop, main()) == (7, True)


def test_taskCancelCancelsTheDeferred(loop: asyncio.AbstractEventLoop) -> None:
    """task.cancel() while awaiting calls the Deferred's canceller; the Task ends cancelled."""
    cancelled: list[Deferred[Any]] = []
    d: Deferred[int] = Deferred(cancelled.append)

    async def waiter() -> int:
        return await d

    async def main() -> None:
        task = asyncio.get_running_loop().create_task(waiter())
        await asyncio.sleep(0)  # the task is now suspended on the Deferred
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    runBounded(loop, main())
    assert cancelled == [d]
    assert d.called


def test_asyncioTimeoutCancelsTheDeferred(loop: asyncio.AbstractEventLoop) -> None:
    """asyncio.timeout() expiring cancels the Deferred and raises TimeoutError in the Task."""
    cancelled: list[Deferred[Any]] = []
    d: Deferred[int] = Deferred(cancelled.append)

    async def main() -> None:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.01):
                await d

    runBounded(loop, main())
    assert cancelled == [d]


def test_waitForCancelsTheDeferred(loop: asyncio.AbstractEventLoop) -> None:
    """asyncio.wait_for on a Deferred (wrapped in a Task) cancels it at the timeout."""
    cancelled: list[Deferred[Any]] = []
    d: Deferred[int] = Deferred(cancelled.append)

    async def main() -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(d, 0.01)

    runBounded(loop, main())
    assert cancelled == [d]


def test_deferredCancelledElsewhereRaisesCancelledErrorInTask(loop: asyncio.AbstractEventLoop) -> None:
    """A Deferred cancelled by someone else raises the reactor's CancelledError at the await; the
    Task itself is not cancelled."""
    d: Deferred[int] = Deferred()

    async def main() -> str:
        asyncio.get_running_loop().call_soon(d.cancel)
        try:
            await d
        except CancelledError:
            return "reactor CancelledError"
        return "no error"

    assert runBounded(loop, main()) == "reactor CancelledError"


def test_gatherAwaitsSeveralDeferreds(loop: asyncio.AbstractEventLoop) -> None:
    """asyncio.gather accepts Deferreds (each wrapped in a Task) and collects their results."""

    async def main() -> list[int]:
        first: Deferred[int] = Deferred()
        second: Deferred[int] = Deferred()
        running = asyncio.get_running_loop()
        running.call_soon(second.callback, 2)
        running.call_soon(first.callback, 1)
        return list(await asyncio.gather(first, second))

    assert runBounded(loop, main()) == [1, 2]


def test_fromCoroutineStartedInTaskKeepsTwistedSemantics(loop: asyncio.AbstractEventLoop) -> None:
    """A coroutine run by Deferred.fromCoroutine inside a Task waits on the Deferred itself: its
    result arrives synchronously when the Deferred fires, with no loop turn."""

    async def inner(d: Deferred[int]) -> int:
        return await d + 1

    async def main() -> tuple[bool, Any]:
        d: Deferred[int] = Deferred()
        outer = Deferred.fromCoroutine(inner(d))
        firedBefore = outer.called
        d.callback(1)
        return firedBefore, outer.result

    assert runBounded(loop, main()) == (False, 2)


def test_fromCoroutineResumedInTaskKeepsTwistedSemantics(loop: asyncio.AbstractEventLoop) -> None:
    """A fromCoroutine coroutine resumed from inside a Task (its Deferred fired there) still waits on
    its next Deferred the Twisted way."""

    async def inner(first: Deferred[int], second: Deferred[int]) -> int:
        return await first + await second

    async def main() -> tuple[bool, Any]:
        first: Deferred[int] = Deferred()
        second: Deferred[int] = Deferred()
        outer = Deferred.fromCoroutine(inner(first, second))
        first.callback(1)  # resumes inner here, in the Task's step; it then awaits second
        waiting = not outer.called
        second.callback(2)
        return waiting, outer.result

    assert runBounded(loop, main()) == (True, 3)


def test_inlineCallbacksInTaskKeepsTwistedSemantics(loop: asyncio.AbstractEventLoop) -> None:
    """An inlineCallbacks generator doing ``yield from`` a Deferred keeps Twisted's semantics in a Task."""

    @inlineCallbacks
    def gen(d: Deferred[int]) -> Any:
        value = yield from d
        return value * 2

    async def main() -> Any:
        d: Deferred[int] = Deferred()
        result = gen(d)
        d.callback(21)
        return result.result

    assert runBounded(loop, main()) == 42


def test_ensureDeferredOfATaskCoroutineCanBeAwaitedInTheTask(loop: asyncio.AbstractEventLoop) -> None:
    """A Deferred from ensureDeferred, awaited by the Task that made it, delivers the coroutine's value."""

    async def inner(d: Deferred[int]) -> int:
        return await d

    async def main() -> int:
        d: Deferred[int] = Deferred()
        wrapped = ensureDeferred(inner(d))
        asyncio.get_running_loop().call_soon(d.callback, 5)
        return await wrapped

    assert runBounded(loop, main()) == 5


def test_deferredFiredInAnotherThreadIsRefused(loop: asyncio.AbstractEventLoop) -> None:
    """A Deferred fired by a reactor running in another thread raises RuntimeError at the await, set
    from the loop's own thread."""
    other = ReactorThread()
    try:
        d: Deferred[int] = Deferred()

        async def main() -> None:
            asyncio.get_running_loop().call_soon(other.reactor.callFromThread, d.callback, 1)
            await d

        with pytest.raises(RuntimeError, match=r"fired in thread .* another thread"):
            runBounded(loop, main())
    finally:
        other.stop()


def test_awaitThreadPoolCallInHostedReactor(loop: asyncio.AbstractEventLoop) -> None:
    """deferToThreadPool on a reactor hosted on the loop is awaited directly; the result is the worker's."""

    async def main() -> tuple[int, bool]:
        async with hostedReactor(installDefault=False) as reactor:
            pool = deferthreads.ThreadPool(1, 2, "await-test")
            pool.start()
            reactor.addSystemEventTrigger("before", "shutdown", pool.stop)
            here = threading.get_ident()
            value, thread = await deferthreads.deferToThreadPool(
                reactor, pool, lambda: (sum(range(10)), threading.get_ident())
            )
            return value, thread != here

    assert runBounded(loop, main()) == (45, True)


def test_taskCancelRemovesAQueuedThreadCall(loop: asyncio.AbstractEventLoop) -> None:
    """Cancelling a Task that awaits a queued thread call removes the call: it never runs."""
    release = threading.Event()
    ran: list[str] = []

    async def main() -> None:
        async with hostedReactor(installDefault=False) as reactor:
            pool = deferthreads.ThreadPool(1, 1, "cancel-test")
            pool.start()
            reactor.addSystemEventTrigger("before", "shutdown", pool.stop)
            busy = deferthreads.deferToThreadPool(reactor, pool, release.wait, DEADLINE)
            queued = asyncio.get_running_loop().create_task(
                _awaitIt(deferthreads.deferToThreadPool(reactor, pool, ran.append, "queued"))
            )
            await asyncio.sleep(0)
            queued.cancel()
            with pytest.raises(asyncio.CancelledError):
                await queued
            release.set()
            assert await busy is True

    runBounded(loop, main())
    assert ran == []


async def _awaitIt(d: Deferred[Any]) -> Any:
    return await d
