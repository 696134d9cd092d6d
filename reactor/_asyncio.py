"""Bridges between Deferreds and asyncio Futures (``Deferred.asFuture`` / ``Deferred.fromFuture``).

Both directions follow Twisted: cancelling either side cancels the other.
They are meant for a reactor and an asyncio loop that run in the same thread
(for example a reactor hosted on asyncio); a Deferred is fired and a Future is
completed only in that thread.

Also the bridge behind ``await deferred`` in an asyncio Task (:func:`taskFuture`,
installed into ``reactor._deferred`` when this module is imported): the unfired
Deferred is waited on through a Future of the running loop, so asyncio's own
cancellation (``task.cancel()``, ``asyncio.timeout``, ``wait_for``) cancels it.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from inspect import CO_ASYNC_GENERATOR, CO_COROUTINE, CO_GENERATOR, CO_ITERABLE_COROUTINE
from types import FrameType
from typing import Any, TypeVar

from reactor import _deferred
from reactor._coroutines import _CoroutineRunner
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
            future.set_exception(_futureError(failure))

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


def _futureError(failure: Failure) -> BaseException:
    """The exception a Future is given for ``failure`` (with the failure's traceback)."""
    error = failure.value.with_traceback(failure.tb)
    if isinstance(error, StopIteration):
        # asyncio refuses StopIteration in a Future (it would end the awaiting
        # coroutine's frame); like an asyncio Task, wrap it.
        wrapped = RuntimeError(f"the Deferred failed with StopIteration: {error!r}")
        wrapped.__cause__ = error
        error = wrapped
    return error


# The frames of Deferred.fromCoroutine's driver: the first step runs in fromCoroutine, the later ones
# in _CoroutineRunner._send (inlineCallbacks and ensureDeferred use the same two). Compiled by mypyc,
# fromCoroutine has no code object (nor frame): it lists the coroutines it steps in _firstSteps.
_driverCodes = frozenset(
    code
    for code in (
        getattr(getattr(Deferred.__dict__["fromCoroutine"], "__func__", None), "__code__", None),
        _CoroutineRunner._send.__code__,
    )
    if code is not None
)
_firstSteps = _deferred._firstSteps
# A frame with one of these flags is a suspendable one (a coroutine, a generator, an async generator):
# the frame below it is whatever drives it.
_suspendable = CO_COROUTINE | CO_GENERATOR | CO_ITERABLE_COROUTINE | CO_ASYNC_GENERATOR
_getRunningLoop = asyncio._get_running_loop
_currentTask = asyncio.current_task
_getFrame = sys._getframe
_getIdent = threading.get_ident


def _inFirstStep(frame: FrameType) -> bool:
    """Whether ``frame`` is that of a coroutine whose first step a compiled fromCoroutine runs."""
    for coro in _firstSteps:
        if getattr(coro, "cr_frame", None) is frame or getattr(coro, "gi_frame", None) is frame:
            return True
    return False


def taskFuture(d: Deferred[_T]) -> asyncio.Future[_T] | None:
    """For ``await d`` on unfired ``d``: a Future of the running loop if an asyncio Task drives the
    await, else None (the driver is ``Deferred.fromCoroutine``'s, or none at all: yield ``d`` itself).

    Called by ``Deferred.__await__`` in the awaiting thread. An asyncio Task drives the await when
    the thread runs a loop, that loop has a current Task, and the chain of coroutine frames that
    awaits ``d`` does not rest on ``fromCoroutine``'s driver: a coroutine started by
    ``Deferred.fromCoroutine`` from inside a Task keeps Twisted's semantics.
    """
    loop = _getRunningLoop()
    if loop is None or _currentTask(loop) is None:
        return None
    # Frame 0 is this function, 1 is Deferred.__await__'s generator (none when compiled by mypyc),
    # then the coroutine (or generator) awaiting d, and the ones awaiting that.
    frame: FrameType | None = _getFrame(1)
    while frame is not None and frame.f_code.co_flags & _suspendable:
        if _firstSteps and _inFirstStep(frame):
            return None
        frame = frame.f_back
    if frame is not None and frame.f_code in _driverCodes:
        return None
    return _awaitedFuture(d, loop)


class _WrongThread:
    """Sets the awaiting Future's error from the loop's thread (through ``call_soon_threadsafe``)."""

    __slots__ = ("future", "message")

    def __init__(self, future: asyncio.Future[Any], message: str) -> None:
        self.future = future
        self.message = message

    def __call__(self) -> None:
        if not self.future.done():
            self.future.set_exception(RuntimeError(self.message))


def _awaitedFuture(d: Deferred[_T], loop: asyncio.AbstractEventLoop) -> asyncio.Future[_T]:
    """A Future on ``loop`` (running in this thread) for an asyncio Task's ``await d``.

    As :func:`deferredAsFuture`, and: a ``d`` that fires in another thread than this one (it belongs
    to a reactor running elsewhere) is refused: the Future fails with ``RuntimeError`` (set from the
    loop's thread), and nothing is set from the wrong thread.
    """
    future: asyncio.Future[_T] = loop.create_future()
    thread = _getIdent()

    def refuse() -> None:
        message = (
            f"{d!r} was awaited in an asyncio task on {loop!r} (thread {thread}) but fired in thread "
            f"{_getIdent()}: it belongs to a reactor running in another thread. Await only Deferreds of "
            "a reactor hosted on this loop (reactor.asyncioreactor.hostedReactor()), or ask the other "
            "reactor's thread with blockingCallFromThread in loop.run_in_executor"
        )
        try:
            loop.call_soon_threadsafe(_WrongThread(future, message))
        except RuntimeError:  # the loop is closed: no one is waiting any more
            pass

    def succeeded(result: _T) -> None:
        if _getIdent() != thread:
            refuse()
        elif not future.cancelled():
            future.set_result(result)

    def failed(failure: Failure) -> None:
        if _getIdent() != thread:
            refuse()
        elif not future.cancelled():
            future.set_exception(_futureError(failure))

    def futureDone(f: asyncio.Future[_T]) -> None:
        if f.cancelled() and not d.called:
            d.cancel()

    d.addCallbacks(succeeded, failed)
    if not future.done():
        future.add_done_callback(futureDone)
    return future


_deferred._taskBridge = taskFuture
_deferred._getRunningLoop = _getRunningLoop
