"""Tests for Deferred.asFuture and Deferred.fromFuture (bridging to asyncio)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from reactor import CancelledError, Deferred, Failure, succeed


class MyError(Exception):
    pass


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """A fresh asyncio loop, closed afterwards."""
    loop = asyncio.new_event_loop()
    try:
        yield loop
    finally:
        loop.close()


def test_asFutureGetsResult(loop: asyncio.AbstractEventLoop) -> None:
    """The Future completes with the Deferred's result."""
    d: Deferred[int] = Deferred()
    future = d.asFuture(loop)
    assert not future.done()
    d.callback(4)
    assert loop.run_until_complete(future) == 4


def test_asFutureGetsException(loop: asyncio.AbstractEventLoop) -> None:
    """The Future gets the failure's exception, which is then no longer unhandled."""
    d: Deferred[int] = Deferred()
    future = d.asFuture(loop)
    d.errback(MyError("f"))
    with pytest.raises(MyError):
        loop.run_until_complete(future)
    assert d.result is None


def test_awaitDeferredInsideAsyncioViaAsFuture(loop: asyncio.AbstractEventLoop) -> None:
    """An asyncio coroutine can await a Deferred wrapped with asFuture."""
    d: Deferred[str] = Deferred()

    async def main() -> str:
        loop.call_soon(d.callback, "from deferred")
        return await d.asFuture(loop)

    assert loop.run_until_complete(main()) == "from deferred"


def test_cancelFutureCancelsDeferred(loop: asyncio.AbstractEventLoop) -> None:
    """Cancelling the Future cancels the Deferred."""
    cancelled: list[Deferred[Any]] = []
    d: Deferred[int] = Deferred(canceller=cancelled.append)
    future = d.asFuture(loop)
    future.cancel()
    loop.run_until_complete(asyncio.sleep(0))
    assert cancelled == [d]
    assert d.result is None  # the CancelledError went to the (cancelled) Future's errback


def test_asFutureRejectsNonLoop() -> None:
    """asFuture with something that is not an event loop raises TypeError."""
    with pytest.raises(TypeError, match="loop"):
        succeed(1).asFuture(object())  # type: ignore[arg-type]


def test_fromFutureGetsResult(loop: asyncio.AbstractEventLoop) -> None:
    """The Deferred fires with the Future's result once the loop runs its callbacks."""
    future: asyncio.Future[int] = loop.create_future()
    d = Deferred.fromFuture(future)
    future.set_result(9)
    loop.run_until_complete(asyncio.sleep(0))
    assert d.result == 9


def test_fromFutureGetsException(loop: asyncio.AbstractEventLoop) -> None:
    """The Deferred fails with the Future's exception."""
    future: asyncio.Future[int] = loop.create_future()
    d = Deferred.fromFuture(future)
    future.set_exception(MyError("x"))
    loop.run_until_complete(asyncio.sleep(0))
    assert isinstance(d.result, Failure) and d.result.type is MyError
    d.addErrback(lambda _: None)


def test_cancelDeferredCancelsFuture(loop: asyncio.AbstractEventLoop) -> None:
    """Cancelling the Deferred cancels the Future; the Deferred then fails with its outcome."""
    future: asyncio.Future[int] = loop.create_future()
    d = Deferred.fromFuture(future)
    d.cancel()
    assert future.cancelled()
    loop.run_until_complete(asyncio.sleep(0))
    assert isinstance(d.result, Failure)
    assert d.result.type is asyncio.CancelledError
    assert not issubclass(d.result.type, CancelledError)
    d.addErrback(lambda _: None)


def test_fromFutureRejectsNonFuture() -> None:
    """fromFuture with something that is not a Future raises TypeError."""
    with pytest.raises(TypeError, match="future"):
        Deferred.fromFuture(3)  # type: ignore[arg-type]


def test_fromFutureOfTask(loop: asyncio.AbstractEventLoop) -> None:
    """A Task (a Future) running an asyncio coroutine can be adapted."""

    async def work() -> str:
        await asyncio.sleep(0)
        return "task done"

    task = loop.create_task(work())
    d = Deferred.fromFuture(task)
    loop.run_until_complete(task)
    loop.run_until_complete(asyncio.sleep(0))
    assert d.result == "task done"


def test_asFutureWrapsStopIterationInRuntimeError(loop: asyncio.AbstractEventLoop) -> None:
    """A StopIteration failure reaches the Future as RuntimeError (asyncio refuses StopIteration)."""
    d: Deferred[int] = Deferred()
    future = d.asFuture(loop)
    d.errback(StopIteration(3))
    with pytest.raises(RuntimeError) as info:
        loop.run_until_complete(future)
    assert isinstance(info.value.__cause__, StopIteration)

