"""A ``contextvars`` variable set in an asyncio Task (a request id, a tenant) is seen by the
function run in the worker thread, and after the ``await`` (asyncio's loop and uvloop).

Every deferthreads submit point copies the submitter's context (``copy_context()`` as the
call is queued) and runs the call in it (``ctx.run`` in the worker).
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from pathlib import Path
from typing import Any

import adbapi
import deferthreads
from reactor import Deferred
from reactor.asyncioreactor import AsyncioReactor, hostedReactor
from tests.asyncio_support import DEADLINE, loop, noDefaultReactor, runBounded

__all__ = ["loop", "noDefaultReactor"]  # fixtures

requestId: contextvars.ContextVar[str] = contextvars.ContextVar("requestId", default="unset")


def _seen() -> tuple[str, bool]:
    """The variable's value where this runs, and whether that is a thread other than the loop's."""
    return requestId.get(), threading.current_thread() is not threading.main_thread()


def _pool(reactor: AsyncioReactor, name: str) -> deferthreads.ThreadPool:
    pool = deferthreads.ThreadPool(1, 2, name)
    pool.start()
    reactor.addSystemEventTrigger("before", "shutdown", pool.stop)
    return pool


def test_deferToThreadSeesTheTasksVariable(
    loop: asyncio.AbstractEventLoop, noDefaultReactor: None
) -> None:
    """deferToThread's worker sees the value set in the Task."""

    async def main() -> tuple[str, bool]:
        async with hostedReactor():
            requestId.set("req-1")
            return await deferthreads.deferToThread(_seen)

    assert runBounded(loop, main()) == ("req-1", True)


def test_deferToThreadPoolSeesTheTasksVariable(loop: asyncio.AbstractEventLoop) -> None:
    """deferToThreadPool's worker sees the value set in the Task."""

    async def main() -> tuple[str, bool]:
        async with hostedReactor(installDefault=False) as reactor:
            requestId.set("req-2")
            return await deferthreads.deferToThreadPool(reactor, _pool(reactor, "ctx"), _seen)

    assert runBounded(loop, main()) == ("req-2", True)


def test_callInThreadAndItsCallbackSeeTheTasksVariable(loop: asyncio.AbstractEventLoop) -> None:
    """ThreadPool.callInThread and callInThreadWithCallback (the call and its onResult) see the value."""
    seen: list[Any] = []
    done = threading.Event()

    def onResult(ok: bool, value: Any) -> None:
        seen.append(("onResult", ok, value, requestId.get()))
        done.set()

    async def main() -> None:
        async with hostedReactor(installDefault=False) as reactor:
            pool = _pool(reactor, "ctx-call")
            requestId.set("req-3")
            pool.callInThread(lambda: seen.append(("callInThread", requestId.get())))
            pool.callInThreadWithCallback(onResult, _seen)
            ready = asyncio.get_running_loop().run_in_executor(None, done.wait, DEADLINE)
            assert await ready

    runBounded(loop, main())
    assert ("callInThread", "req-3") in seen
    assert ("onResult", True, ("req-3", True), "req-3") in seen


def test_resourcePoolRunSeesTheTasksVariable(loop: asyncio.AbstractEventLoop) -> None:
    """ResourcePool.run's call sees the value set in the Task, beside its resource."""

    async def main() -> tuple[str, tuple[str, bool]]:
        async with hostedReactor(installDefault=False) as reactor:
            pool: deferthreads.ResourcePool[str] = deferthreads.ResourcePool(
                lambda: "client", lambda r: None, minthreads=1, maxthreads=1, reactor=reactor
            )
            pool.start()
            reactor.addSystemEventTrigger("before", "shutdown", pool.stop)
            requestId.set("req-4")
            return await pool.run(lambda resource: (resource, _seen()))

    assert runBounded(loop, main()) == ("client", ("req-4", True))


def test_concurrentTasksEachSeeTheirOwnValue(loop: asyncio.AbstractEventLoop) -> None:
    """Two Tasks with different values, their calls in the same pool at once: each sees its own."""
    barrier = threading.Barrier(2, timeout=DEADLINE)

    def bothAtOnce() -> str:
        barrier.wait()  # both calls are in worker threads at the same time
        return requestId.get()

    async def main() -> list[str]:
        async with hostedReactor(installDefault=False) as reactor:
            pool = _pool(reactor, "ctx-both")

            async def request(name: str) -> str:
                requestId.set(name)
                value: str = await deferthreads.deferToThreadPool(reactor, pool, bothAtOnce)
                return value

            return list(await asyncio.gather(request("alice"), request("bob")))

    assert runBounded(loop, main()) == ["alice", "bob"]


def test_theTaskKeepsItsValueAfterTheAwait(loop: asyncio.AbstractEventLoop) -> None:
    """The coroutine's continuation after an awaited thread call runs in the Task's own context,
    even though the worker changed the variable in its copy."""

    def changeIt() -> None:
        requestId.set("changed in the worker")

    async def main() -> str:
        async with hostedReactor(installDefault=False) as reactor:
            requestId.set("req-5")
            await deferthreads.deferToThreadPool(reactor, _pool(reactor, "ctx-after"), changeIt)
            return requestId.get()

    assert runBounded(loop, main()) == "req-5"


def test_fromCoroutineStartedInTaskSeesTheValueAfterItsAwaits(loop: asyncio.AbstractEventLoop) -> None:
    """A coroutine run by Deferred.fromCoroutine from the Task sees the value in every step."""

    async def inner(d: Deferred[None]) -> str:
        await d
        return requestId.get()

    async def main() -> str:
        requestId.set("req-6")
        d: Deferred[None] = Deferred()
        outer = Deferred.fromCoroutine(inner(d))
        asyncio.get_running_loop().call_soon(d.callback, None)
        return await outer

    assert runBounded(loop, main()) == "req-6"


def test_adbapiInteractionSeesTheTasksVariable(loop: asyncio.AbstractEventLoop, tmp_path: Path) -> None:
    """adbapi's runInteraction runs in a worker that sees the value set in the Task."""

    async def main() -> tuple[str, bool]:
        async with hostedReactor(installDefault=False) as reactor:
            pool = adbapi.ConnectionPool(
                "sqlite3", str(tmp_path / "ctx.sqlite"), cp_min=1, cp_max=1, cp_reactor=reactor
            )
            requestId.set("req-7")
            return await pool.runInteraction(lambda txn: _seen())

    assert runBounded(loop, main()) == ("req-7", True)
