"""``reactor.asyncioreactor.hostedReactor()``: one ``async with`` hosts, stops, drains and closes
a reactor on the running loop (asyncio's loop and uvloop)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

import deferthreads
from reactor import Deferred, ReactorAlreadyInstalledError, getReactor
from reactor.asyncioreactor import AsyncioReactor, hostedReactor
from tests.asyncio_support import DEADLINE, loop, noDefaultReactor, runBounded

__all__ = ["loop", "noDefaultReactor"]  # fixtures


def test_hostedReactorRunsOnTheRunningLoop(loop: asyncio.AbstractEventLoop) -> None:
    """Inside the block the reactor is an AsyncioReactor on the running loop, running."""

    async def main() -> tuple[bool, bool, bool]:
        async with hostedReactor(installDefault=False) as reactor:
            return (
                isinstance(reactor, AsyncioReactor),
                reactor.eventloop is asyncio.get_running_loop(),
                reactor.running,
            )

    assert runBounded(loop, main()) == (True, True, True)


def test_exitStopsDrainsAndClosesTheReactor(loop: asyncio.AbstractEventLoop) -> None:
    """On exit a pool stopped in 'before shutdown' finishes its queued call (its Deferred fires)
    before the block ends; the reactor is then stopped and closed, the loop still running."""
    release = threading.Event()
    outcome: list[Any] = []

    async def main() -> AsyncioReactor:
        async with hostedReactor(installDefault=False) as reactor:
            pool = deferthreads.ThreadPool(1, 1, "lifespan")
            pool.start()
            reactor.addSystemEventTrigger(
                "before", "shutdown", lambda: deferthreads.drainThreadPool(reactor, pool, DEADLINE)
            )
            deferthreads.deferToThreadPool(reactor, pool, release.wait, DEADLINE)
            queued = deferthreads.deferToThreadPool(reactor, pool, lambda: "queued ran")
            queued.addBoth(outcome.append)
            asyncio.get_running_loop().call_soon(release.set)
        assert asyncio.get_running_loop().is_running()
        return reactor

    reactor = runBounded(loop, main())
    assert outcome == ["queued ran"]
    assert not reactor.running
    assert reactor._closed


def test_exitAfterTheBodyRaisedStillStopsTheReactor(loop: asyncio.AbstractEventLoop) -> None:
    """An exception from the body propagates, and the reactor is stopped and closed first."""
    seen: list[AsyncioReactor] = []

    async def main() -> None:
        async with hostedReactor(installDefault=False) as reactor:
            seen.append(reactor)
            raise LookupError("body failed")

    with pytest.raises(LookupError, match="body failed"):
        runBounded(loop, main())
    assert not seen[0].running
    assert seen[0]._closed


def test_bodyThatStopsTheReactorItselfEndsCleanly(loop: asyncio.AbstractEventLoop) -> None:
    """A body that called reactor.stop() already is waited for, not stopped twice."""

    async def main() -> bool:
        async with hostedReactor(installDefault=False) as reactor:
            reactor.stop()
        return reactor.running

    assert runBounded(loop, main()) is False


def test_shutdownTriggersRunInsideTheLoop(loop: asyncio.AbstractEventLoop) -> None:
    """A 'before shutdown' trigger returning a Deferred holds the exit until it fires."""
    order: list[str] = []

    async def main() -> None:
        async with hostedReactor(installDefault=False) as reactor:

            def slowTrigger() -> Deferred[None]:
                d: Deferred[None] = Deferred()

                def done() -> None:
                    order.append("trigger done")
                    d.callback(None)

                reactor.callLater(0.01, done)
                return d

            reactor.addSystemEventTrigger("before", "shutdown", slowTrigger)
        order.append("block exited")

    runBounded(loop, main())
    assert order == ["trigger done", "block exited"]


def test_hostedReactorIsTheDefaultWhileItRuns(
    loop: asyncio.AbstractEventLoop, noDefaultReactor: None
) -> None:
    """With installDefault (the default), getReactor() and deferToThread reach the hosted reactor;
    after the block no default is left behind."""

    async def main() -> tuple[bool, int]:
        async with hostedReactor() as reactor:
            isDefault = getReactor() is reactor
            value = await deferthreads.deferToThread(sum, [1, 2, 3])
        return isDefault, value

    assert runBounded(loop, main()) == (True, 6)
    from reactor import _default

    assert _default._default is None


def test_installDefaultRefusedWhenADefaultExists(
    loop: asyncio.AbstractEventLoop, noDefaultReactor: None
) -> None:
    """An existing default reactor makes hostedReactor() raise ReactorAlreadyInstalledError naming
    the way out, and leaves nothing running."""
    existing = getReactor()

    async def main() -> None:
        async with hostedReactor():
            raise AssertionError("not reached")

    with pytest.raises(ReactorAlreadyInstalledError, match="installDefault=False"):
        runBounded(loop, main())
    assert getReactor() is existing
    existing.close()


def test_starletteStyleLifespanIsThreeLines(loop: asyncio.AbstractEventLoop) -> None:
    """The lifespan shape an ASGI framework calls: enter, serve (here: one awaited thread call), exit."""

    @contextlib.asynccontextmanager
    async def lifespan(app: object) -> AsyncIterator[dict[str, Any]]:
        async with hostedReactor(installDefault=False) as reactor:
            yield {"reactor": reactor}

    async def main() -> str:
        async with lifespan(object()) as state:
            reactor = state["reactor"]
            pool = deferthreads.ThreadPool(1, 1, "lifespan-app")
            pool.start()
            reactor.addSystemEventTrigger("before", "shutdown", pool.stop)
            result: str = await deferthreads.deferToThreadPool(reactor, pool, str.upper, "served")
            return result

    assert runBounded(loop, main()) == "SERVED"


def test_deferToThreadInALoopWithoutAHostedReactorRaisesInsteadOfHanging(
    loop: asyncio.AbstractEventLoop, noDefaultReactor: None
) -> None:
    """deferToThread in an asyncio task, with a default reactor that nobody runs on this loop, would
    wait forever: it raises ReactorThreadError naming hostedReactor instead."""

    async def main() -> None:
        deferthreads.deferToThread(sum, [1, 2, 3])

    with pytest.raises(deferthreads.ReactorThreadError, match="hostedReactor"):
        runBounded(loop, main())
    getReactor().close()


def test_deferToThreadBeforeAHostedReactorStartsWaitsForIt(loop: asyncio.AbstractEventLoop) -> None:
    """A default reactor hosted on the running loop but not started yet queues the call for its run
    (Twisted's semantics before run()), as outside asyncio."""

    async def main() -> int:
        reactor = AsyncioReactor()
        with _installed(reactor):
            d = deferthreads.deferToThread(sum, [1, 2, 3])
            reactor.startRunning()
            try:
                return int(await d)
            finally:
                reactor.stop()
                await reactor.whenStopped()
                reactor.close()

    assert runBounded(loop, main()) == 6


@contextlib.contextmanager
def _installed(reactor: AsyncioReactor) -> Iterator[None]:
    from reactor import _default

    with _default._lock:
        saved = _default._default
        _default._default = reactor
    try:
        yield
    finally:
        with _default._lock:
            _default._default = saved
