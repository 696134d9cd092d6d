"""The real worker: one daemon thread running the team's worker loop."""

from __future__ import annotations

import threading
from collections.abc import Callable

from zope.interface import implementer

from deferthreads._interfaces import IWorker
from deferthreads._team import Team, Verdict

__all__: list[str] = []


@implementer(IWorker)
class ThreadWorker:
    """An :class:`IWorker` backed by a ``threading.Thread`` named after the worker.

    ``_wakeLock`` is held (locked) while nobody has called ``wake()``: a parked
    worker waits by acquiring it, ``wake()`` releases it. The team calls
    ``wake()`` at most once per park, so the lock is never released twice.
    The thread is a daemon so that a call that never returns cannot keep the
    process alive; orderly shutdown joins the workers (``ThreadPool.stop``).
    """

    def __init__(
        self, team: Team, name: str, threadFactory: Callable[..., threading.Thread] = threading.Thread
    ) -> None:
        self.name = name
        self._team = team
        self._wakeLock = threading.Lock()
        self._wakeLock.acquire()
        # threadFactory is Twisted's ThreadPool.threadFactory hook: called as Thread(target=, name=).
        self._thread = threadFactory(target=self._main, name=name)
        self._thread.daemon = True

    @property
    def thread(self) -> threading.Thread:
        """The ``threading.Thread`` this worker runs in (for ``ThreadPool.threads``)."""
        return self._thread

    def start(self) -> None:
        """Start the thread (called by the team)."""
        self._thread.start()

    def wake(self) -> None:
        """End the current wait (called by the team, with its lock held)."""
        self._wakeLock.release()

    def isCurrentThread(self) -> bool:
        """True when called in this worker's own thread."""
        return self._thread is threading.current_thread()

    def join(self, timeout: float | None) -> bool:
        """Wait for the thread to end; False if it is still running (or is the calling thread)."""
        if self._thread is threading.current_thread():
            return False
        if self._thread.ident is None:
            return True  # never started
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _main(self) -> None:
        team = self._team
        acquire = self._wakeLock.acquire
        team.workerStarted(self)
        try:
            while True:
                team.runQueued(self)
                verdict = team.park(self)
                while verdict is Verdict.PARKED:
                    timeout = team.idleTimeout
                    if acquire(True, -1 if timeout is None else timeout):
                        break  # woken: the team took us off its idle list; back to the queue
                    verdict = team.unpark(self, False)
                    if verdict is Verdict.WORK:
                        acquire()  # a wake() raced our timeout; it has released the lock already
                if verdict is Verdict.EXIT:
                    break
        finally:
            team.workerExiting(self)

    def __repr__(self) -> str:
        return f"<ThreadWorker {self.name} alive={self._thread.is_alive()}>"
