"""deferToExecutor: any concurrent.futures.Executor (threads, processes, a Dask cluster) behind a Deferred."""

from __future__ import annotations

import hashlib
import multiprocessing
import threading
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

import pytest

from deferthreads import deferToExecutor
from reactor import CancelledError, Deferred, Failure
from reactor._loop import Reactor
from tests.adbapi_support import waitUntil
from tests.bridge_support import WAIT, runReactor

SALT = b"deferthreads"


def pbkdf2(password: bytes, iterations: int = 20_000) -> bytes:
    """CPU-bound work for the process pool and Dask (module level: it pickles by reference)."""
    return hashlib.pbkdf2_hmac("sha256", password, SALT, iterations)


def failing(message: str) -> None:
    """Raises in the worker process, to see the exception come home."""
    raise ValueError(message)


def runBody(body: Callable[[Reactor], Coroutine[Any, Any, Any]], bound: float = WAIT) -> Any:
    """Run ``body(reactor)`` on a fresh reactor, bounded; return its result or raise its error."""
    reactor = Reactor()
    outcome: list[Any] = []

    def main() -> None:
        d = Deferred.fromCoroutine(body(reactor))
        d.addBoth(outcome.append)
        d.addBoth(lambda _: reactor.stop())

    runReactor(reactor, main, bound)
    assert outcome, "the body did not finish"
    if isinstance(outcome[0], Failure):
        outcome[0].raiseException()
    return outcome[0]


async def failureOf(d: Deferred[Any]) -> Failure:
    """The Failure ``d`` errbacks with (the test fails if it succeeds). A coroutine returning a Failure
    errbacks, so the bodies hand it back in a tuple."""
    try:
        result = await d
    except Exception:
        return Failure()
    raise AssertionError(f"expected a failure, got {result!r}")


@pytest.fixture
def threads() -> Iterator[ThreadPoolExecutor]:
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="executor-test")
    yield executor
    executor.shutdown(wait=True, cancel_futures=True)


def test_resultFiresInTheReactorThread(threads: ThreadPoolExecutor) -> None:
    """The Deferred fires with the function's result, in the reactor thread, not the executor's."""
    ran: list[str] = []

    def work(a: int, b: int) -> int:
        ran.append(threading.current_thread().name)
        return a + b

    async def body(reactor: Reactor) -> tuple[int, int]:
        return await deferToExecutor(reactor, threads, work, 2, b=3), threading.get_ident()

    result, ident = runBody(body)
    assert result == 5
    assert ident == threading.get_ident()
    assert ran[0].startswith("executor-test")


def test_exceptionArrivesAsFailureWithTraceback(threads: ThreadPoolExecutor) -> None:
    """An exception raised by the function errbacks a Failure of it, with the worker's frames."""

    async def body(reactor: Reactor) -> tuple[Failure]:
        return (await failureOf(deferToExecutor(reactor, threads, failing, "boom")),)

    (failure,) = runBody(body)
    assert failure.check(ValueError)
    assert "boom" in failure.getErrorMessage()
    assert "failing" in failure.getTraceback()


def test_cancellingAQueuedCallCancelsTheFutureAndItNeverRuns(threads: ThreadPoolExecutor) -> None:
    """Cancelling the Deferred of a call still queued in the executor withdraws it: it never runs."""
    gate = threading.Event()
    ran: list[str] = []

    async def body(reactor: Reactor) -> None:
        blocker = deferToExecutor(reactor, threads, gate.wait, WAIT)
        queued = deferToExecutor(reactor, threads, ran.append, "queued")
        queued.cancel()
        failure = await failureOf(queued)
        assert failure.check(CancelledError)
        gate.set()
        assert await blocker is True
        # The single worker is free again: a call after the cancelled one runs, the cancelled one did not.
        await deferToExecutor(reactor, threads, ran.append, "after")

    runBody(body)
    assert ran == ["after"]


def test_cancellingARunningCallErrbacksAtOnceAndDropsItsResult(threads: ThreadPoolExecutor) -> None:
    """A running call cannot be withdrawn: the Deferred errbacks CancelledError, the result is dropped."""
    started = threading.Event()
    gate = threading.Event()

    def work() -> str:
        started.set()
        gate.wait(WAIT)
        return "late"

    async def body(reactor: Reactor) -> None:
        d = deferToExecutor(reactor, threads, work)
        with ThreadPoolExecutor(1) as waiter:
            assert await deferToExecutor(reactor, waiter, started.wait, WAIT)
        d.cancel()
        assert (await failureOf(d)).check(CancelledError)
        gate.set()
        # The next call on the one worker runs after the late result was delivered (and dropped).
        assert await deferToExecutor(reactor, threads, lambda: "next") == "next"

    runBody(body)


def test_aFutureCancelledElsewhereErrbacksCancelledError() -> None:
    """A future the executor cancels (shutdown with cancel_futures) errbacks reactor's CancelledError."""
    executor = ThreadPoolExecutor(max_workers=1)
    gate = threading.Event()

    async def body(reactor: Reactor) -> None:
        blocker = deferToExecutor(reactor, executor, gate.wait, WAIT)
        queued = deferToExecutor(reactor, executor, lambda: "never")
        executor.shutdown(wait=False, cancel_futures=True)
        failure = await failureOf(queued)
        assert failure.check(CancelledError)
        assert "cancelled" in failure.getErrorMessage()
        gate.set()
        assert await blocker is True

    try:
        runBody(body)
    finally:
        gate.set()
        executor.shutdown(wait=True)


def test_anExecutorThatRefusesTheCallGivesAFailedDeferred() -> None:
    """Submitting to an executor that was shut down returns a Deferred already failed with its error."""
    executor = ThreadPoolExecutor(max_workers=1)
    executor.shutdown()

    async def body(reactor: Reactor) -> tuple[Failure]:
        d = deferToExecutor(reactor, executor, print)
        assert d.called
        return (await failureOf(d),)

    assert runBody(body)[0].check(RuntimeError)


def test_badArgumentsRaiseAtTheCallNamingThem(threads: ThreadPoolExecutor) -> None:
    """A non-callable f or an object that is not an executor raises TypeError naming it."""
    reactor = Reactor()
    with pytest.raises(TypeError, match="f must be callable"):
        deferToExecutor(reactor, threads, 42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"executor must be a concurrent\.futures\.Executor"):
        deferToExecutor(reactor, object(), print)  # type: ignore[arg-type]


def test_userKeywordsNamedLikeOurParametersReachTheFunction(threads: ThreadPoolExecutor) -> None:
    """Keywords called reactor, executor or f are the function's own."""

    def work(**kwargs: Any) -> list[str]:
        return sorted(kwargs)

    async def body(reactor: Reactor) -> list[str]:
        return await deferToExecutor(reactor, threads, work, reactor=1, executor=2, f=3)

    assert runBody(body) == ["executor", "f", "reactor"]


@pytest.fixture(scope="module")
def processes() -> Iterator[ProcessPoolExecutor]:
    # spawn: a fresh interpreter per worker, never a fork of this multi-threaded test process.
    executor = ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn"))
    yield executor
    executor.shutdown(wait=True, cancel_futures=True)


def test_processPoolRunsCPUBoundWorkAndBringsTheResultHome(processes: ProcessPoolExecutor) -> None:
    """pbkdf2 runs in worker processes, each result fires its Deferred in the reactor thread."""
    passwords = [b"a", b"b", b"c", b"d"]

    async def body(reactor: Reactor) -> list[bytes]:
        ds = [deferToExecutor(reactor, processes, pbkdf2, p) for p in passwords]
        return [await d for d in ds]

    assert runBody(body, bound=60) == [pbkdf2(p) for p in passwords]


def test_processPoolExceptionCarriesTheRemoteTraceback(processes: ProcessPoolExecutor) -> None:
    """An exception raised in a worker process errbacks with its type, and the remote traceback is kept."""

    async def body(reactor: Reactor) -> tuple[Failure]:
        return (await failureOf(deferToExecutor(reactor, processes, failing, "remote")),)

    (failure,) = runBody(body, bound=60)
    assert failure.check(ValueError)
    assert "remote" in failure.getErrorMessage()
    assert "failing" in str(failure.value.__cause__)


# Dask: a LocalCluster of two worker processes, the "many machines" path, on this one.


@pytest.fixture(scope="module")
def dask() -> Iterator[Any]:
    distributed = pytest.importorskip(
        "distributed", reason="distributed is not installed (pip install 'deferthreads[dask]')")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                       dashboard_address=None)
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


def test_daskClusterRunsTheCallsAndBringsTheResultsHome(dask: Any) -> None:
    """Calls through Client.get_executor() run on the cluster's worker processes; results fire here."""
    executor: Executor = dask.get_executor(pure=False)
    passwords = [b"w", b"x", b"y", b"z"]

    async def body(reactor: Reactor) -> tuple[list[bytes], int]:
        ds = [deferToExecutor(reactor, executor, pbkdf2, p) for p in passwords]
        return [await d for d in ds], threading.get_ident()

    results, ident = runBody(body, bound=60)
    assert results == [pbkdf2(p) for p in passwords]
    assert ident == threading.get_ident()


def test_daskExceptionArrivesWithItsType(dask: Any) -> None:
    """An exception raised on a Dask worker errbacks with its own type and message."""

    async def body(reactor: Reactor) -> tuple[Failure]:
        return (await failureOf(deferToExecutor(reactor, dask.get_executor(), failing, "on the cluster")),)

    (failure,) = runBody(body, bound=60)
    assert failure.check(ValueError)
    assert "on the cluster" in failure.getErrorMessage()


def waitOnClusterEvent(name: str) -> bool:
    """Blocks a Dask worker until the cluster-wide event ``name`` is set (bounded)."""
    import distributed

    return bool(distributed.Event(name).wait(timeout=WAIT))


def test_cancellingTheDeferredCancelsTheDaskTask(dask: Any) -> None:
    """Cancelling the Deferred errbacks CancelledError at once and releases the task on the cluster."""
    executor = dask.get_executor(pure=False)
    name = f"gate-{id(executor)}"

    def tasksOnScheduler() -> int:
        # Only this test's task (Dask keys start with the function's name): others may still be held.
        return int(dask.run_on_scheduler(
            lambda dask_scheduler: sum(str(k).startswith("waitOnClusterEvent") for k in dask_scheduler.tasks)
        ))

    async def body(reactor: Reactor) -> bool:
        d = deferToExecutor(reactor, executor, waitOnClusterEvent, name)
        d.cancel()
        assert (await failureOf(d)).check(CancelledError)
        # The cancel reaches the scheduler through the client's event loop: wait (bounded, off the
        # reactor thread) until the scheduler has released the task.
        with ThreadPoolExecutor(1) as waiter:
            released = deferToExecutor(reactor, waiter, waitUntil, lambda: tasksOnScheduler() == 0, WAIT)
            return bool(await released)

    try:
        assert runBody(body, bound=60), "the cancelled task is still on the scheduler"
    finally:
        import distributed

        distributed.Event(name, client=dask).set()
