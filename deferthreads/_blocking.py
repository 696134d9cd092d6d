"""``blockingCallFromThread``: from a non-reactor thread, run a function in the reactor and wait.

Twisted's version hangs forever if the reactor stops before the call runs (or
before a Deferred it returned fires) and deadlocks when called in the reactor
thread. Ours raises in both cases, and has an optional timeout that cannot
collide with the function's own keyword arguments (it is a separate function).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Coroutine
from contextvars import Context, copy_context
from typing import Any, ParamSpec, Protocol, TypeVar, overload

from deferthreads._bridge import ReactorFromThreads
from deferthreads._errors import ReactorThreadError
from deferthreads._threadpool import checkTimeout
from reactor import Deferred, Failure, ReactorNotRunning, fail, succeed

__all__ = ["blockingCallFromThread", "blockingCallFromThreadWithTimeout"]

_P = ParamSpec("_P")
_R = TypeVar("_R")

# How often a waiting thread checks that the reactor is still running. A call
# queued with callFromThread just as the reactor stops would otherwise wait for
# the next run; this bounds how late the waiter notices.
_POLL_INTERVAL = 0.05


class BlockingReactor(ReactorFromThreads, Protocol):
    """What ``blockingCallFromThread`` needs of a reactor."""

    @property
    def running(self) -> bool: ...

    @property
    def stopping(self) -> bool: ...

    def isReactorThread(self) -> bool: ...


class _Call:
    """One blocking call. ``abandoned`` is set by the waiting thread; the rest by the reactor thread
    before ``done`` is set (the Event publishes them)."""

    __slots__ = ("abandoned", "deferred", "done", "ok", "result")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.abandoned = False
        self.deferred: Deferred[Any] | None = None
        self.ok = False
        self.result: Any = None


def _start(call: _Call, context: Context, f: Callable[..., Any], args: Any, kwargs: Any) -> None:
    # Reactor thread. Not maybeDeferred(f, *args, **kwargs): a keyword argument named like its
    # parameters would be taken for it.
    if call.abandoned:
        return
    try:
        result = context.run(f, *args, **kwargs)
        if isinstance(result, Deferred):
            d: Deferred[Any] = result
        elif isinstance(result, Failure):
            d = fail(result)
        elif isinstance(result, Coroutine):
            d = context.run(Deferred.fromCoroutine, result)
        else:
            d = succeed(result)
    except BaseException:
        d = fail(Failure())
    call.deferred = d
    d.addBoth(_finish, call)


def _finish(result: Any, call: _Call) -> None:
    # Reactor thread; returning None also marks a failure as handled (the waiter re-raises it).
    call.ok = not isinstance(result, Failure)
    call.result = result
    call.done.set()


def _cancel(call: _Call) -> None:
    # Reactor thread: the waiter gave up.
    if call.deferred is not None and not call.deferred.called:
        call.deferred.cancel()


@overload
def blockingCallFromThread(
    reactor: BlockingReactor, f: Callable[_P, Deferred[_R]], /, *args: _P.args, **kwargs: _P.kwargs
) -> _R: ...


@overload
def blockingCallFromThread(
    reactor: BlockingReactor,
    f: Callable[_P, Coroutine[Any, Any, _R]],
    /,
    *args: _P.args,
    **kwargs: _P.kwargs,
) -> _R: ...


@overload
def blockingCallFromThread(
    reactor: BlockingReactor, f: Callable[_P, _R], /, *args: _P.args, **kwargs: _P.kwargs
) -> _R: ...


def blockingCallFromThread(
    reactor: BlockingReactor, f: Callable[..., Any], /, *args: Any, **kwargs: Any
) -> Any:
    """Run ``f(*args, **kwargs)`` in ``reactor``'s thread; block this (non-reactor) thread for the outcome.

    Returns ``f``'s result, waiting for it if ``f`` returns a Deferred or a
    coroutine, or raises its exception here (with its original traceback).
    The calling thread's ``contextvars`` context is copied into the call.
    Raises :class:`ReactorThreadError` at once in the reactor thread (it would
    deadlock), ``ReactorNotRunning`` at once if the reactor is not running or
    is stopping, and ``ReactorNotRunning`` as soon as ``reactor.stop()`` is
    called while this thread waits (within 50 ms; the call is then abandoned
    and a Deferred it returned is cancelled), so a worker blocked here never
    holds up the shutdown drain of its pool — never a hang.
    """
    return _blockingCall(reactor, None, f, args, kwargs)


@overload
def blockingCallFromThreadWithTimeout(
    reactor: BlockingReactor,
    timeout: float,
    f: Callable[_P, Deferred[_R]],
    /,
    *args: _P.args,
    **kwargs: _P.kwargs,
) -> _R: ...


@overload
def blockingCallFromThreadWithTimeout(
    reactor: BlockingReactor,
    timeout: float,
    f: Callable[_P, Coroutine[Any, Any, _R]],
    /,
    *args: _P.args,
    **kwargs: _P.kwargs,
) -> _R: ...


@overload
def blockingCallFromThreadWithTimeout(
    reactor: BlockingReactor, timeout: float, f: Callable[_P, _R], /, *args: _P.args, **kwargs: _P.kwargs
) -> _R: ...


def blockingCallFromThreadWithTimeout(
    reactor: BlockingReactor, timeout: float, f: Callable[..., Any], /, *args: Any, **kwargs: Any
) -> Any:
    """:func:`blockingCallFromThread` waiting at most ``timeout`` seconds.

    On expiry the Deferred ``f`` returned (if any) is cancelled in the reactor,
    a call that has not started yet never will, and the builtin
    ``TimeoutError`` is raised here. A separate function, so that ``timeout``
    never steals a keyword argument meant for ``f``.
    """
    checked = checkTimeout(timeout, "timeout")
    if checked is None:
        raise TypeError("timeout must be a number of seconds")
    return _blockingCall(reactor, checked, f, args, kwargs)


def _clamp(remaining: float) -> float:
    return max(0.0, min(_POLL_INTERVAL, remaining))


def _blockingCall(
    reactor: BlockingReactor, timeout: float | None, f: Callable[..., Any], args: Any, kwargs: Any
) -> Any:
    if not callable(f):
        raise TypeError(f"f must be callable, not {type(f).__name__}")
    if reactor.isReactorThread():
        raise ReactorThreadError(
            "blockingCallFromThread() was called in the reactor thread, where it would deadlock; "
            "call the function directly (or use maybeDeferred)"
        )
    if not reactor.running or reactor.stopping:
        raise ReactorNotRunning(
            f"blockingCallFromThread({getattr(f, '__qualname__', f)!r}): the reactor is "
            f"{'stopping' if reactor.running else 'not running'}, so the call would never complete"
        )
    call = _Call()
    reactor.callFromThread(_start, call, copy_context(), f, args, kwargs)
    deadline = None if timeout is None else time.monotonic() + timeout
    wait = call.done.wait
    while not wait(_POLL_INTERVAL if deadline is None else _clamp(deadline - time.monotonic())):
        # `stopping`, not only `running`: `running` stays true through 'before shutdown', whose
        # drain of the thread pools waits for this very thread, so it must give up as stop() begins.
        if reactor.stopping or not reactor.running:
            call.abandoned = True
            if wait(0):
                break
            reactor.callFromThread(_cancel, call)  # runs during the shutdown, or on the next run()
            raise ReactorNotRunning(
                f"blockingCallFromThread({getattr(f, '__qualname__', f)!r}): the reactor stopped "
                "before the call completed"
            )
        if deadline is not None and time.monotonic() >= deadline:
            call.abandoned = True
            if wait(0):
                break
            reactor.callFromThread(_cancel, call)
            raise TimeoutError(
                f"blockingCallFromThread({getattr(f, '__qualname__', f)!r}) did not complete "
                f"within {timeout} seconds"
            )
    if call.ok:
        return call.result
    failure: Failure = call.result
    failure.raiseException()
