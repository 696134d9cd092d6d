"""Bridges between Deferreds and asyncio Futures (``Deferred.asFuture`` / ``Deferred.fromFuture``).

Both directions follow Twisted: cancelling either side cancels the other.
They are meant for a reactor and an asyncio loop that run in the same thread
(for example a reactor hosted on asyncio); a Deferred is fired and a Future is
completed only in that thread.
"""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

from reactor._deferred import Deferred
from reactor._failure import Failure

__all__: list[str] = []

_T = TypeVar("_T")


def deferredAsFuture(d: Deferred[_T], loop: asyncio.AbstractEventLoop) -> asyncio.Future[_T]:
    """A Future on ``loop`` completing with ``d``'s outcome; cancelling it cancels ``d``.

    The callbacks added to ``d`` consume its result (``d`` then holds ``None``),
    so a failure handed to the Future is not also reported as unhandled.
    """
    if not isinstance(loop, asyncio.AbstractEventLoop):
        raise TypeError(f"loop must be an asyncio event loop, not {type(loop).__name__}")
    future: asyncio.Future[_T] = loop.create_future()

    def succeeded(result: _T) -> None:
        if not future.cancelled():
            future.set_result(result)

    def failed(failure: Failure) -> None:
        if not future.cancelled():
            error = failure.value
            if isinstance(error, StopIteration):
                # asyncio refuses StopIteration in a Future (it would end the
                # awaiting coroutine's frame); like an asyncio Task, wrap it.
                wrapped = RuntimeError(f"the Deferred failed with StopIteration: {error!r}")
                wrapped.__cause__ = error
                error = wrapped
            future.set_exception(error)

    def futureDone(f: asyncio.Future[_T]) -> None:
        if f.cancelled():
            d.cancel()

    d.addCallbacks(succeeded, failed)
    future.add_done_callback(futureDone)
    return future


def deferredFromFuture(cls: type[Deferred[Any]], future: asyncio.Future[_T]) -> Deferred[_T]:
    """A Deferred (of class ``cls``) firing with ``future``'s outcome; cancelling it cancels the Future.

    After a cancel the Deferred waits for the Future to finish and fires with
    that outcome (normally ``asyncio.CancelledError``), as Twisted's does.
    """
    if not asyncio.isfuture(future):
        raise TypeError(f"future must be an asyncio Future, not {type(future).__name__}")
    cancelMarker = object()
    # Whoever receives the Future's outcome: the Deferred itself, or after a
    # cancel a fresh one that the Deferred waits on.
    receiver: list[Deferred[Any]] = []

    def futureDone(f: asyncio.Future[_T]) -> None:
        try:
            outcome: Any = f.result()
        except BaseException:
            outcome = Failure()
        receiver[0].callback(outcome)

    def cancel(d: Deferred[Any]) -> None:
        future.cancel()
        d.callback(cancelMarker)

    def uncancel(result: Any) -> Any:
        if result is cancelMarker:
            waiter: Deferred[Any] = Deferred()
            receiver[0] = waiter
            return waiter
        return result

    d: Deferred[Any] = cls(cancel)
    receiver.append(d)
    d.addCallback(uncancel)
    future.add_done_callback(futureDone)
    return d
