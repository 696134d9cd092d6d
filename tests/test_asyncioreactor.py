"""Tests for the reactor hosted on asyncio (``reactor.asyncioreactor``).

The loop and network test modules already run every test on an AsyncioReactor too
(their ``reactor`` fixtures are parametrized); these tests cover what is particular
to hosting: asyncio tasks beside reactor code, a loop someone else runs
(``startRunning``/``whenStopped``), thread pools and adbapi pools on such a loop,
``install``, and argument errors.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import adbapi
import deferthreads
from reactor import Deferred, ReactorAlreadyInstalledError, getReactor
from reactor.asyncioreactor import AsyncioReactor, AsyncioSelectorReactor, install
from tests.loopsupport import SAFETY_SECONDS, runBounded


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def runHosted(loop: asyncio.AbstractEventLoop, main: Any) -> Any:
    """Run coroutine ``main`` on ``loop`` with a safety timeout (the loop is left open)."""
    return loop.run_until_complete(asyncio.wait_for(main, SAFETY_SECONDS))


def test_asyncioTasksAndReactorCallsInterleaveInTheLoopThread(loop: asyncio.AbstractEventLoop) -> None:
    """run() drives the asyncio loop: a task and timed calls run in order of time, in one thread."""
    r = AsyncioReactor(loop)
    out: list[tuple[str, int]] = []

    def late() -> None:
        out.append(("late", threading.get_ident()))
        r.stop()

    async def task() -> None:
        # The three times are set in one step, so their order does not depend on when the task started.
        r.callLater(0.01, lambda: out.append(("early", threading.get_ident())))
        r.callLater(0.04, late)
        await asyncio.sleep(0.02)  # the task's own timed wake-up, ordered against the reactor's two
        out.append(("task", threading.get_ident()))

    loop.create_task(task())
    runBounded(r)
    assert [name for name, _ in out] == ["early", "task", "late"]
    assert {ident for _, ident in out} == {threading.get_ident()}
    r.close()
    assert not loop.is_closed()  # a loop it was given stays the caller's


def test_runRefusesALoopThatIsAlreadyRunning(loop: asyncio.AbstractEventLoop) -> None:
    """run() inside a running loop raises at once and points to startRunning()."""
    r = AsyncioReactor(loop)

    async def main() -> None:
        with pytest.raises(RuntimeError, match="startRunning"):
            r.run(installSignalHandlers=False)

    runHosted(loop, main())
    assert not r.running
    r.close()


def test_startRunningFiresStartupAndStopLeavesTheLoopRunning(loop: asyncio.AbstractEventLoop) -> None:
    """On a loop someone else runs: startup fires at startRunning(), shutdown at stop(), the loop goes on."""
    events: list[str] = []

    async def main() -> list[str]:
        r = AsyncioReactor()  # the running loop
        assert r.eventloop is asyncio.get_running_loop()
        r.addSystemEventTrigger("after", "startup", events.append, "startup")
        r.addSystemEventTrigger("during", "shutdown", events.append, "shutdown")
        r.startRunning()
        assert r.running and r.isReactorThread()
        r.stop()
        await r.whenStopped()
        assert not r.running and not r.isReactorThread()
        await asyncio.sleep(0)  # the loop still runs
        events.append("loop still running")
        r.close()
        return events

    assert runHosted(loop, main()) == ["startup", "shutdown", "loop still running"]


def test_threadPoolResultsReachAHostedReactor(loop: asyncio.AbstractEventLoop) -> None:
    """deferToThreadPool on a hosted reactor: the result comes back to the loop thread, as an awaitable."""

    async def main() -> tuple[str, bool, bool]:
        r = AsyncioReactor()
        pool = deferthreads.ThreadPool(1, 2, "hosted")
        r.callWhenRunning(pool.start)
        r.addSystemEventTrigger("before", "shutdown", pool.stop)
        r.startRunning()
        where: list[bool] = []

        def inWorker() -> str:
            return threading.current_thread().name

        d = deferthreads.deferToThreadPool(r, pool, inWorker)
        d.addCallback(lambda name: (where.append(r.isReactorThread()), name)[1])
        name: str = await d.asFuture(asyncio.get_running_loop())
        r.stop()
        await r.whenStopped()
        r.close()
        return name, where[0], pool.joined

    name, inReactorThread, joined = runHosted(loop, main())
    assert name.startswith("hosted") and inReactorThread
    assert joined  # the pool stopped in 'before shutdown' and its threads were joined


def test_callFromThreadWakesAnIdleHostedReactor(loop: asyncio.AbstractEventLoop) -> None:
    """A thread calling in while the asyncio loop sleeps wakes it; the call runs in the loop thread."""

    async def main() -> int:
        r = AsyncioReactor()
        r.startRunning()
        ran: Deferred[int] = Deferred()
        threading.Thread(target=r.callFromThread, args=(lambda: ran.callback(threading.get_ident()),)).start()
        ident: int = await ran.asFuture(asyncio.get_running_loop())
        r.stop()
        await r.whenStopped()
        r.close()
        return ident

    assert runHosted(loop, main()) == threading.get_ident()


def test_adbapiPoolOnAHostedReactorClosesAtStop(loop: asyncio.AbstractEventLoop, tmp_path: Path) -> None:
    """An adbapi pool on a hosted reactor serves awaited queries and is closed by the reactor's shutdown."""

    async def main() -> tuple[list[Any], str]:
        r = AsyncioReactor()
        r.startRunning()
        pool = adbapi.ConnectionPool("sqlite3", str(tmp_path / "h.sqlite"), cp_min=1, cp_max=2, cp_reactor=r)
        aloop = asyncio.get_running_loop()
        await pool.runOperation("CREATE TABLE t (x INTEGER)").asFuture(aloop)
        insert = pool.runInteraction(lambda txn: txn.executemany("INSERT INTO t VALUES (?)", [(1,), (2,)]))
        await insert.asFuture(aloop)
        rows = await pool.runQuery("SELECT x FROM t ORDER BY x").asFuture(aloop)
        r.stop()
        await r.whenStopped()
        late = pool.runQuery("SELECT 1")
        failure: list[Any] = []
        late.addErrback(failure.append)
        r.close()
        return rows, failure[0].type.__name__

    rows, lateError = runHosted(loop, main())
    assert rows == [(1,), (2,)]
    assert lateError == "PoolClosedError"


def test_delayedCallMovedEarlierFiresAtItsNewTime(loop: asyncio.AbstractEventLoop) -> None:
    """reset() to an earlier time brings the asyncio timer forward (no wait for the old time)."""
    r = AsyncioReactor(loop)
    out: list[str] = []

    def moved() -> None:
        out.append("moved")
        r.stop()

    later = r.callLater(SAFETY_SECONDS * 10, moved)
    r.callLater(0.01, later.reset, 0.01)
    r.callLater(0.01, later.delay, -0.005)  # delay() with a negative shift also moves it earlier
    runBounded(r)  # fails the test after its safety time if the call still waits for its old time
    assert out == ["moved"]
    r.close()


def test_crashEndsRunWithoutShutdown(loop: asyncio.AbstractEventLoop) -> None:
    """crash() leaves run() without firing shutdown, and the reactor can run again."""
    r = AsyncioReactor(loop)
    out: list[str] = []
    r.addSystemEventTrigger("before", "shutdown", out.append, "shutdown")
    r.callWhenRunning(r.crash)
    r.run(installSignalHandlers=False)
    assert out == [] and not r.running
    r.callWhenRunning(r.stop)
    runBounded(r)
    assert out == ["shutdown"]
    r.close()


def test_iterateRefusesARunningLoop(loop: asyncio.AbstractEventLoop) -> None:
    """iterate() cannot nest inside the running asyncio loop: a clear RuntimeError."""
    r = AsyncioReactor(loop)

    async def main() -> None:
        with pytest.raises(RuntimeError, match="iterate"):
            r.iterate(0)

    runHosted(loop, main())
    r.close()


def inFreshThread(f: Any) -> Any:
    """Run ``f()`` in a new thread (which has no current asyncio loop) and return its result."""
    box: list[Any] = []

    def target() -> None:
        try:
            box.append(("ok", f()))
        except BaseException as e:
            box.append(("error", e))

    t = threading.Thread(target=target)
    t.start()
    t.join(SAFETY_SECONDS)
    assert box, "the thread did not finish"
    kind, value = box[0]
    if kind == "error":
        raise value
    return value


def test_withoutAnyLoopItMakesOneCurrentAndCloseClosesIt() -> None:
    """No loop running or set in the thread: the reactor makes one, sets it current (so asyncio's
    own get_event_loop/ensure_future reach it, Twisted's idiom), and close() closes and unsets it."""

    def scenario() -> tuple[bool, list[str], bool, bool]:
        r = AsyncioReactor()
        own = r.eventloop
        current = asyncio.get_event_loop() is own
        out: list[str] = []

        async def task() -> str:
            return "from an ensure_future task"

        d = Deferred.fromFuture(asyncio.ensure_future(task()))
        d.addCallback(out.append)
        d.addBoth(lambda _: r.stop())
        runBounded(r)
        r.close()
        with pytest.raises(RuntimeError):
            asyncio.get_event_loop_policy().get_event_loop()  # no closed loop left as current
        return current, out, own.is_closed(), r.eventloop is own

    current, out, closed, same = inFreshThread(scenario)
    assert current and out == ["from an ensure_future task"] and closed and same


def test_theThreadsCurrentLoopIsUsedAndLeftOpen() -> None:
    """A loop set as current (not running) is the one the reactor uses, as Twisted's get_event_loop() does."""

    def scenario() -> tuple[bool, bool]:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            r = AsyncioReactor()
            r.close()
            return r.eventloop is loop, loop.is_closed()
        finally:
            asyncio.set_event_loop(None)
            loop.close()

    assert inFreshThread(scenario) == (True, False)


def test_startRunningRefusesAReactorOfAnotherLoop(loop: asyncio.AbstractEventLoop) -> None:
    """startRunning() under a different running loop (install() at import, then asyncio.run) raises
    instead of leaving every Deferred waiting forever."""
    r = AsyncioReactor(loop)

    async def main() -> None:
        with pytest.raises(RuntimeError, match="running here"):
            r.startRunning()

    asyncio.run(main())
    assert not r.running
    r.close()


def test_eventloopMustBeAnAsyncioLoop() -> None:
    """A wrong eventloop argument is refused at the call, naming the argument."""
    with pytest.raises(TypeError, match="eventloop must be an asyncio event loop"):
        AsyncioReactor(object())  # type: ignore[arg-type]


def test_installMakesTheProcessDefaultOnce(monkeypatch: pytest.MonkeyPatch,
                                           loop: asyncio.AbstractEventLoop) -> None:
    """install() makes an AsyncioReactor the default getReactor() returns; a second install is refused."""
    import reactor._default

    monkeypatch.setattr(reactor._default, "_default", None)
    installed = install(loop)
    assert getReactor() is installed and installed.eventloop is loop
    assert AsyncioSelectorReactor is AsyncioReactor
    with pytest.raises(ReactorAlreadyInstalledError):
        install(loop)
    installed.close()


def test_declaresAndProvidesTheReactorInterfaces(loop: asyncio.AbstractEventLoop) -> None:
    """An AsyncioReactor provides every interface the epoll Reactor declares (verifyObject)."""
    from zope.interface import providedBy
    from zope.interface.verify import verifyObject

    r = AsyncioReactor(loop)
    interfaces = list(providedBy(r))
    assert len(interfaces) >= 5
    for iface in interfaces:
        assert verifyObject(iface, r)
    r.close()


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(),
                    reason="signals need the main thread")
def test_asyncioSignalHandlersStillFireWhileTheReactorHandlesSigterm(loop: asyncio.AbstractEventLoop) -> None:
    """run(installSignalHandlers=True) leaves asyncio's wake-up fd alone: loop.add_signal_handler keeps
    working, and SIGTERM still stops the reactor through shutdown."""
    import os
    import signal

    r = AsyncioReactor(loop)
    got: list[str] = []

    def usr1() -> None:
        got.append("usr1")
        os.kill(os.getpid(), signal.SIGTERM)  # asyncio's handler ran: now the reactor's

    loop.add_signal_handler(signal.SIGUSR1, usr1)
    previousTerm = signal.getsignal(signal.SIGTERM)
    try:
        r.addSystemEventTrigger("before", "shutdown", got.append, "shutdown")
        r.callWhenRunning(os.kill, os.getpid(), signal.SIGUSR1)
        net = r.callLater(SAFETY_SECONDS, r.stop)
        r.run(installSignalHandlers=True)
        assert net.active(), "the safety net stopped the reactor"
        net.cancel()
    finally:
        loop.remove_signal_handler(signal.SIGUSR1)
        signal.signal(signal.SIGTERM, previousTerm)
    assert got == ["usr1", "shutdown"]
    assert signal.getsignal(signal.SIGTERM) is previousTerm
    r.close()


def test_startupTriggersRunInsideTheRunningLoop(loop: asyncio.AbstractEventLoop) -> None:
    """run() fires startup from inside the running asyncio loop: a trigger may create tasks there."""
    r = AsyncioReactor(loop)
    seen: list[object] = []
    tasks: list[asyncio.Task[None]] = []

    async def task() -> None:
        seen.append("task ran")
        r.stop()

    def start() -> None:
        running = asyncio.get_running_loop()
        seen.append(running is loop)
        tasks.append(running.create_task(task()))

    r.callWhenRunning(start)
    runBounded(r)
    assert seen == [True, "task ran"]
    r.close()


def test_reactRunsAnAsyncioCoroutineThroughFromFuture() -> None:
    """Twisted's idiom works as it does there: on a reactor made without a loop, react() whose main returns
    Deferred.fromFuture(asyncio.ensure_future(coroutine)) (main runs before the loop does)."""
    from reactor.task import react

    def scenario() -> tuple[object, list[str]]:
        r = AsyncioReactor()  # no loop in this thread: it makes one and sets it current
        out: list[str] = []

        async def main() -> None:
            await asyncio.sleep(0)  # suspends: only the running loop finishes it
            out.append("coroutine finished")

        try:
            react(lambda reactor: Deferred.fromFuture(asyncio.ensure_future(main())), _reactor=r)
        except SystemExit as e:
            return e.code, out
        finally:
            r.close()
        return "no exit", out

    assert inFreshThread(scenario) == (0, ["coroutine finished"])
