"""Blocking work on any ``concurrent.futures.Executor``: processes, or a Dask cluster of many machines.

:func:`deferToExecutor` submits a call to an executor and returns a Deferred that fires in the reactor
thread. The future's completion callback runs wherever the executor completes futures (a pool's worker
thread, a process pool's management thread, Dask's client event loop thread): it never touches the
Deferred, it hands the outcome to the reactor's result sink (``callFromThread``), as the thread pools do.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from deferthreads._bridge import ReactorFromThreads, sinkFor
from reactor import CancelledError, Deferred, Failure

__all__ = ["deferToExecutor"]

_P = ParamSpec("_P")
_R = TypeVar("_R")


def deferToExecutor(
    reactor: ReactorFromThreads,
    executor: concurrent.futures.Executor,
    f: Callable[_P, _R],
    /,
    *args: _P.args,
    **kwargs: _P.kwargs,
) -> Deferred[_R]:
    """Run ``f(*args, **kwargs)`` on ``executor``; return a Deferred firing with its result.

    Call it in the reactor thread of ``reactor``. ``executor`` is any ``concurrent.futures.Executor``:
    a ``ThreadPoolExecutor``, a ``ProcessPoolExecutor`` (CPU-bound work past the GIL; ``f`` and its
    arguments must pickle), a Dask ``distributed.Client(...).get_executor()`` (work spread over a
    cluster), ... The Deferred fires in the reactor thread with ``f``'s return value, or errbacks with
    a Failure of the exception ``f`` raised (a process pool or Dask carries the remote traceback in the
    exception). The caller's ``contextvars`` do not travel: the call may run in another process.

    Cancellation both ways: cancelling the Deferred cancels the future, so a call that has not started
    never runs (one already running runs on, its result is dropped, and the Deferred errbacks
    ``CancelledError`` at once); a future cancelled by someone else (``future.cancel()``, Dask's
    ``client.cancel``) errbacks the Deferred with ``reactor.CancelledError``.

    Raises ``TypeError`` naming ``f`` or ``executor`` when they are not what is asked. When the executor
    refuses the call (shut down, a broken process pool) the Deferred has already failed with its error
    when returned.
    """
    if not callable(f):
        raise TypeError(f"f must be callable, not {type(f).__name__}")
    submit = getattr(executor, "submit", None)
    if not callable(submit):
        raise TypeError(f"executor must be a concurrent.futures.Executor, not {type(executor).__name__}")
    d: Deferred[_R]
    try:
        future: concurrent.futures.Future[_R] = submit(f, *args, **kwargs)
    except Exception:
        d = Deferred()
        d.errback(Failure())
        return d

    def cancel(deferred: Deferred[_R]) -> None:
        # Reactor thread. A future still queued is withdrawn (it never runs); a running one cannot be
        # stopped, and Deferred.cancel errbacks CancelledError itself since we did not fire it.
        future.cancel()

    d = Deferred(cancel)
    sink = sinkFor(reactor)

    def done(completed: concurrent.futures.Future[_R]) -> None:
        # Any thread (or this one, at once, if the future is already done): only hand the outcome over.
        if completed.cancelled():
            sink.put(d, False, Failure(CancelledError(f"the executor's future for {f!r} was cancelled")))
            return
        error = completed.exception()
        if error is None:
            sink.put(d, True, completed.result())
        else:
            sink.put(d, False, Failure(error, type(error), error.__traceback__))

    future.add_done_callback(done)
    return d
