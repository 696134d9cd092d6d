"""The pool's side threads: a small ``deferthreads.ThreadPool`` for the work no slot may block on.

Side work is a cancel request (``_cancel.sendCancel``), a lane's connect or big
fetch, and the release of an abandoned lane's connection. It runs in threads
named ``PoolThread-<name>-side``; none exists until side work arrives, and an
idle one exits after ``_SIDE_IDLE`` seconds. The side pool starts with the pool
(``start``) and is drained (its threads joined) before a close fires
(``PoolLifecycle``); a close that gives up at its deadline leaves it to drain on
its own (``abandon``), and the next start makes a new one.

Threads: :meth:`call` is made by the reactor thread; the work and its
``onResult`` run in a side thread. The rest is reactor thread only.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from deferthreads import ThreadPool, ThreadPoolStopped, drainThreadPool
from reactor import Deferred, Failure

__all__ = ["SideWork", "setter"]

_log = logging.getLogger("adbapi")

# Seconds an idle side thread waits for more side work before it exits. Side work (a cancel, a lane's
# connect or big fetch) is rare and each piece costs far more than starting a thread, so an idle pool
# keeps no side thread for long.
_SIDE_IDLE = 1.0


def setter(event: threading.Event) -> Callable[[bool, Any], None]:
    """An ``onResult`` for side work that sets ``event`` however the work ended (ran, failed, abandoned)."""

    def onResult(ok: bool, value: Any) -> None:
        event.set()

    return onResult


class SideWork:
    """The side thread pool of one connection pool, renewed when a close left the old one draining.

    ``maxThreads`` never makes side work wait for a thread in practice: a slot
    has at most one piece of side work at a time (a lane's connect, fetch or
    cancel, a worker's cancel) plus, at an abandoning close, a lane's release,
    which only waits for side work queued before it (the queue is first in,
    first out). So it is ``2 * cp_max + 2``.
    """

    def __init__(self, label: str, threadPrefix: str, maxThreads: int) -> None:
        self.label = label
        self.name = f"{threadPrefix}-side"
        self.maxThreads = maxThreads
        self.threads = self._new()

    def _new(self) -> ThreadPool:
        return ThreadPool(0, self.maxThreads, name=self.name, idleTimeout=_SIDE_IDLE, spinTime=0.0)

    def start(self) -> None:
        """Start taking side work (reactor thread); a pool left stopping by a timed-out close is replaced."""
        if self.threads.state == "stopping":
            self.threads = self._new()
        self.threads.start()

    def call(self, onResult: Callable[[bool, Any], object] | None, f: Callable[..., object],
             *args: Any) -> None:
        """Run ``f(*args)`` in a side thread, then ``onResult(ok, result or Failure)`` in that thread.

        ``onResult`` is called exactly once even if the work never runs (the side
        pool was stopped): then with ``(False, Failure)``, in the thread that gave
        up on it, possibly this one. It brings results home with ``callFromThread``.
        """
        try:
            self.threads.callInThreadWithCallback(onResult, f, *args)
        except ThreadPoolStopped as e:
            _log.warning("adbapi: %s: side work %r could not run: %s", self.label, f, e)
            if onResult is not None:
                onResult(False, Failure(e))

    def drain(self, reactor: Any) -> Deferred[None]:
        """Stop taking side work; fires (reactor thread) once the work under way ended and the threads
        exited."""
        return drainThreadPool(reactor, self.threads)

    def stop(self, timeout: float | None) -> None:
        """Stop here and join the threads within ``timeout`` (the reactor is not running)."""
        self.threads.stop(timeout)

    def abandon(self) -> None:
        """A close gave up: the work handed out stays with the old threads, which exit as it ends."""
        abandoned, self.threads = self.threads, self._new()
        abandoned.beginStop()
