"""Locks between processes on a filesystem path: ``FilesystemLock`` and ``DeferredFilesystemLock``.

Twisted's ``twisted.python.lockfile.FilesystemLock`` and
``twisted.internet.defer.DeferredFilesystemLock``, for POSIX. The lock is a
symbolic link at the lock's path whose target is the holder's process id (a
target that need not exist). Creating a symbolic link either succeeds or fails
because the path exists, in one step, so two processes can never both create
it; removing it releases the lock. A link left behind by a process that has
died (it crashed before unlocking) is stale: the next ``lock()`` removes it and
takes the lock, and says so by setting ``clean`` to false.

``DeferredFilesystemLock.deferUntilLocked`` waits for the lock without
blocking: it tries once at once, then again every ``_interval`` seconds on its
scheduler (a reactor, or a ``reactor.task.Clock`` in tests), and gives up at
its timeout.
"""

from __future__ import annotations

import math
import os
from typing import Any

from reactor._deferred import Deferred, fail
from reactor._errors import CancelledError, TimeoutError
from reactor._failure import Failure

__all__ = ["AlreadyTryingToLockError", "DeferredFilesystemLock", "FilesystemLock", "isLocked"]


class FilesystemLock:
    """A lock between processes, held as a symbolic link at path ``name`` that names the holder's pid.

    ``locked`` is true while this object holds the lock. ``clean`` is ``None``
    until the first successful :meth:`lock`, then says whether that lock was
    taken without removing a stale one left by a dead process.

    A FilesystemLock has no thread of its own: its fields belong to the thread
    that calls :meth:`lock` and :meth:`unlock` (use one thread per object).
    Several objects, in this process or others, may name the same path; the
    filesystem decides between them.
    """

    #: Whether the last successful ``lock()`` found no stale lock to remove (``None`` before one).
    clean: bool | None = None
    #: Whether this object holds the lock.
    locked: bool = False

    def __init__(self, name: str | os.PathLike[str]) -> None:
        path = os.fspath(name) if isinstance(name, (str, os.PathLike)) else None
        if not isinstance(path, str):
            raise TypeError(f"name must be a str path, not {type(name).__name__}")
        #: The lock's path.
        self.name = path

    def lock(self) -> bool:
        """Try to take the lock now; return whether it was taken (never waits).

        Returns ``False`` if a live process holds it, this process included
        (the lock is not reentrant). A lock left by a process that no longer
        exists is removed and taken (``clean`` is then false). Raises
        ``OSError`` for anything else the filesystem refuses (a missing
        directory, no permission), and ``ValueError`` if the path is a link
        that does not name a pid.
        """
        clean = True
        while True:
            try:
                os.symlink(str(os.getpid()), self.name)
            except FileExistsError:
                pass
            else:
                self.locked = True
                self.clean = clean
                return True
            try:
                holder = int(os.readlink(self.name))
            except FileNotFoundError:
                # Released between our attempt and the look: try again.
                continue
            if _processExists(holder):
                return False
            try:
                os.remove(self.name)
            except FileNotFoundError:
                # Another process removed the stale lock first: race it for the lock.
                continue
            clean = False

    def unlock(self) -> None:
        """Release the lock.

        Raises ``ValueError`` if the lock is held by another process, and
        ``OSError`` (``FileNotFoundError``) if nobody holds it.
        """
        holder = int(os.readlink(self.name))
        if holder != os.getpid():
            raise ValueError(f"lock {self.name!r} is held by process {holder}, not by this process")
        os.remove(self.name)
        self.locked = False


def _processExists(pid: int) -> bool:
    """Whether a process with id ``pid`` is running (perhaps as another user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        # It exists; it is just not ours to signal.
        return True
    return True


def isLocked(name: str | os.PathLike[str]) -> bool:
    """Whether some live process (this one included) holds the lock at path ``name``.

    Finds out by trying to take it, so a stale lock is removed on the way.
    """
    probe = FilesystemLock(name)
    taken = probe.lock()
    if taken:
        probe.unlock()
    return not taken


class AlreadyTryingToLockError(Exception):
    """``deferUntilLocked`` was called while an earlier call on the same lock was still waiting."""


class DeferredFilesystemLock(FilesystemLock):
    """A :class:`FilesystemLock` that can wait for the lock: :meth:`deferUntilLocked`.

    ``scheduler`` is anything with ``callLater`` (a reactor, a
    ``reactor.task.Clock``); by default ``reactor.getReactor()``. The lock is
    retried every ``_interval`` seconds (1, as in Twisted; a subclass or a test
    may change it). Only the thread that runs the scheduler may use the object.
    """

    #: Seconds between two tries of a waiting ``deferUntilLocked``.
    _interval: float = 1
    #: The scheduled next try while ``deferUntilLocked`` waits, else ``None``.
    _tryLockCall: Any = None
    #: The scheduled give-up of a waiting ``deferUntilLocked`` with a timeout, else ``None``.
    _timeoutCall: Any = None

    def __init__(self, name: str | os.PathLike[str], scheduler: Any = None) -> None:
        super().__init__(name)
        if scheduler is None:
            from reactor._default import getReactor

            scheduler = getReactor()
        elif not callable(getattr(scheduler, "callLater", None)):
            raise TypeError(f"scheduler must have a callLater method, not {type(scheduler).__name__}")
        self._scheduler = scheduler

    def deferUntilLocked(self, timeout: float | None = None) -> Deferred[None]:
        """Return a Deferred that fires with ``None`` once this object holds the lock.

        The lock is tried now (an ``OSError`` from that first try is raised
        here), then every ``_interval`` seconds. With a ``timeout`` (seconds),
        the Deferred fails with ``TimeoutError`` if the lock is still held
        elsewhere then. Cancelling the Deferred stops the tries and fails it
        with ``CancelledError``. At the timeout and at a cancel the lock is
        tried one last time, and a lock taken then fires the Deferred with
        ``None`` instead. A later try that raises fails the Deferred with that
        error. While one call is waiting, another returns a Deferred that has
        failed with :class:`AlreadyTryingToLockError`.
        """
        if timeout is not None:
            if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
                raise TypeError(f"timeout must be a number of seconds or None, not {type(timeout).__name__}")
            if not timeout >= 0 or math.isinf(timeout):  # `not >=` also catches NaN
                raise ValueError(f"timeout must be a finite number >= 0, got {timeout!r}")
        if self._tryLockCall is not None:
            return fail(AlreadyTryingToLockError("deferUntilLocked is already waiting for this lock"))
        scheduler = self._scheduler

        def giveUp(reason: Exception) -> None:
            # The deadline passed, or the caller cancelled: stop, but first
            # try once more, so a lock freed at the last moment is not missed.
            self._stopWaiting()
            outcome: Failure | None
            try:
                outcome = None if self.lock() else Failure(reason)
            except Exception:
                outcome = Failure()
            # Fired outside the except block, so that the callbacks do not run
            # with the lock's error as the exception being handled.
            if outcome is None:
                d.callback(None)
            else:
                d.errback(outcome)

        def tryLock(first: bool) -> None:
            broken: Failure | None = None
            taken = False
            try:
                taken = self.lock()
            except Exception:
                if first:
                    raise
                broken = Failure()
            if broken is not None:
                self._stopWaiting()
                d.errback(broken)
                return
            if taken:
                self._stopWaiting()
                d.callback(None)
                return
            if timeout is not None and self._timeoutCall is None:
                reason = TimeoutError(f"Timed out acquiring lock: {self.name} after {timeout:f}s")
                self._timeoutCall = scheduler.callLater(timeout, giveUp, reason)
            self._tryLockCall = scheduler.callLater(self._interval, tryLock, False)

        d: Deferred[None] = Deferred(lambda _: giveUp(CancelledError()))
        tryLock(True)
        return d

    def _stopWaiting(self) -> None:
        """Cancel the scheduled next try and give-up, if any, and forget them."""
        for call in (self._tryLockCall, self._timeoutCall):
            if call is not None and call.active():
                call.cancel()
        self._tryLockCall = None
        self._timeoutCall = None
