"""The small interfaces the thread pool is built from.

A :class:`~deferthreads._team.Team` owns the work queue and the bookkeeping
(how many workers, which are idle, when one retires); an :class:`IWorker` is
one thread of execution that runs the team's worker loop. The team never makes
a thread itself: it asks an injected worker factory, so tests drive the team
with fake workers and a fake clock, deterministically, without threads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from zope.interface import Attribute, Interface

__all__ = ["IThreadPool", "IWorker"]


class IWorker(Interface):
    """One worker of a team: a thread (or, in tests, a fake) running the team's loop.

    The loop a worker runs, in its own thread of execution, is::

        team.workerStarted(worker)
        while True:
            team.runQueued(worker)               # run queued calls until the queue is empty
            verdict = team.park(worker)
            while verdict is PARKED:             # wait for wake() or the idle timeout
                woke = <wait up to team.idleTimeout for wake()>
                verdict = team.unpark(worker, woke)
                # unpark returning WORK after a timed-out wait means a wake() is
                # in flight: absorb it before waiting again.
            if verdict is EXIT:
                break
        team.workerExiting(worker)
    """

    name = Attribute("The worker's name, ``{pool name}-worker-{n}``; a real worker names its thread so.")

    def start() -> None:
        """Begin running the team's worker loop in the worker's own thread of execution.

        Called once, by the team, with the team's lock held: it must not block.
        """

    def wake() -> None:
        """End the worker's current wait for work.

        Called by the team, with the team's lock held, at most once per wait and
        only after the team has taken the worker off its idle list.
        """

    def join(timeout: float | None) -> bool:
        """Wait up to ``timeout`` seconds (``None``: no bound) for the worker to end.

        Returns True if it has ended. Never called by the team with its lock held.
        """


class IThreadPool(Interface):
    """A pool of worker threads running calls handed to it from any thread (Twisted's ``IThreadPool``)."""

    def start() -> None:
        """Start the workers; calls queued before ``start`` begin to run."""

    def stop(timeout: float | None = None) -> None:
        """Stop the pool: running and queued calls finish, then every worker is joined (blocks)."""

    def callInThread(f: Callable[..., object], /, *args: Any, **kwargs: Any) -> None:
        """Queue ``f(*args, **kwargs)`` to run in a worker thread; its outcome is not reported."""

    def callInThreadWithCallback(
        onResult: Callable[[bool, Any], object] | None, f: Callable[..., object], /, *args: Any, **kwargs: Any
    ) -> None:
        """Queue ``f(*args, **kwargs)``; then call ``onResult(success, result)`` in the same worker thread."""

    def adjustPoolsize(minthreads: int | None = None, maxthreads: int | None = None) -> None:
        """Change the minimum and/or maximum number of worker threads."""

    def statistics() -> object:
        """A frozen snapshot of the pool's counters."""
