"""FilesystemLock, isLocked and DeferredFilesystemLock, run against Twisted 26.10 and ours.

Each dual-target test takes ``flavour``: Twisted's ``twisted.python.lockfile`` and
``twisted.internet.defer`` with ``twisted.internet.task.Clock``, or our ``reactor.lockfile`` and
``reactor`` with ``reactor.task.Clock``. Another process holding a lock is a child process we
start (alive) or one we started and waited for (certainly dead: its pid stays unused while
nothing reuses it, which in the test's short span nothing does).
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

import reactor
import reactor._default
import reactor.lockfile
import reactor.task


@dataclass(frozen=True)
class Flavour:
    """One implementation's lock classes, errors and fake clock."""

    FilesystemLock: Any
    isLocked: Any
    DeferredFilesystemLock: Any
    AlreadyTryingToLockError: type[Exception]
    TimeoutError: type[Exception]
    CancelledError: type[Exception]
    Clock: Any


@pytest.fixture(params=["twisted", "ours"])
def flavour(request: pytest.FixtureRequest) -> Flavour:
    """Twisted's implementation or ours."""
    if request.param == "twisted":
        from twisted.internet import defer, task
        from twisted.python import lockfile

        return Flavour(
            lockfile.FilesystemLock,
            lockfile.isLocked,
            defer.DeferredFilesystemLock,
            defer.AlreadyTryingToLockError,
            defer.TimeoutError,
            defer.CancelledError,
            task.Clock,
        )
    return Flavour(
        reactor.lockfile.FilesystemLock,
        reactor.lockfile.isLocked,
        reactor.DeferredFilesystemLock,
        reactor.AlreadyTryingToLockError,
        reactor.TimeoutError,
        reactor.CancelledError,
        reactor.task.Clock,
    )


@pytest.fixture
def name(tmp_path: pathlib.Path) -> str:
    """A lock path in a fresh directory."""
    return str(tmp_path / "the.lock")


@pytest.fixture
def livePid() -> Iterator[int]:
    """The pid of a child process that stays alive until the test ends."""
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        yield child.pid
    finally:
        child.kill()
        child.wait(timeout=30)


@pytest.fixture
def deadPid() -> int:
    """The pid of a child process that has exited and been waited for."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=30)
    return child.pid


def outcome(d: Any) -> Any:
    """The fired Deferred ``d``'s result; a failure becomes its exception (and is handled)."""
    results: list[Any] = []
    d.addCallbacks(results.append, lambda f: results.append(f.value))
    assert results, "the Deferred has not fired"
    return results[0]


# --- FilesystemLock ---------------------------------------------------------------------------


def test_lockTakesAFreeLockAsALinkToOurPid(flavour: Flavour, name: str) -> None:
    """lock() on a free path returns True, sets locked and clean, and links the path to our pid."""
    lock = flavour.FilesystemLock(name)
    assert (lock.locked, lock.clean) == (False, None)
    assert lock.lock() is True
    assert (lock.locked, lock.clean) == (True, True)
    assert os.readlink(name) == str(os.getpid())
    assert flavour.isLocked(name)


def test_unlockReleasesTheLock(flavour: Flavour, name: str) -> None:
    """unlock() removes the link and clears locked; the path can be locked again."""
    lock = flavour.FilesystemLock(name)
    lock.lock()
    lock.unlock()
    assert lock.locked is False
    assert not os.path.lexists(name)
    assert not flavour.isLocked(name)
    assert flavour.FilesystemLock(name).lock() is True


def test_lockIsNotReentrant(flavour: Flavour, name: str) -> None:
    """A held lock is refused to its holder and to another object in the same process."""
    lock = flavour.FilesystemLock(name)
    assert lock.lock()
    assert lock.lock() is False
    other = flavour.FilesystemLock(name)
    assert other.lock() is False
    assert (other.locked, other.clean) == (False, None)


def test_lockHeldByALiveOtherProcessIsRefused(flavour: Flavour, name: str, livePid: int) -> None:
    """A lock whose link names a running process is not taken and stays that process's."""
    os.symlink(str(livePid), name)
    lock = flavour.FilesystemLock(name)
    assert lock.lock() is False
    assert lock.locked is False
    assert os.readlink(name) == str(livePid)
    assert flavour.isLocked(name)


def test_staleLockOfADeadProcessIsBroken(flavour: Flavour, name: str, deadPid: int) -> None:
    """A lock left by a process that has exited is taken over, and clean says it was not clean."""
    os.symlink(str(deadPid), name)
    lock = flavour.FilesystemLock(name)
    assert lock.lock() is True
    assert (lock.locked, lock.clean) == (True, False)
    assert os.readlink(name) == str(os.getpid())


def test_isLockedOfAStaleLockIsFalseAndRemovesIt(flavour: Flavour, name: str, deadPid: int) -> None:
    """isLocked() of a lock left by a dead process is False, and the stale link is gone."""
    os.symlink(str(deadPid), name)
    assert flavour.isLocked(name) is False
    assert not os.path.lexists(name)


def test_unlockOfALockHeldByAnotherProcessRaisesValueError(flavour: Flavour, name: str, livePid: int) -> None:
    """unlock() refuses (ValueError) to release a lock another process holds, and leaves it."""
    os.symlink(str(livePid), name)
    with pytest.raises(ValueError):
        flavour.FilesystemLock(name).unlock()
    assert os.readlink(name) == str(livePid)


def test_unlockOfAFreeLockRaisesOSError(flavour: Flavour, name: str) -> None:
    """unlock() when nobody holds the lock raises FileNotFoundError."""
    with pytest.raises(FileNotFoundError):
        flavour.FilesystemLock(name).unlock()


def test_lockInAMissingDirectoryRaisesOSError(flavour: Flavour, tmp_path: pathlib.Path) -> None:
    """lock() raises the filesystem's error when the link cannot be made (a missing directory)."""
    with pytest.raises(FileNotFoundError):
        flavour.FilesystemLock(str(tmp_path / "missing" / "the.lock")).lock()


def test_lockHeldByAProcessWeMayNotSignalIsRefused(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A lock held by another user's live process (kill gives EPERM) counts as held (ours; Twisted raises)."""
    os.symlink("4242", name)

    def notYours(pid: int, signal: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "kill", notYours)
    assert reactor.FilesystemLock(name).lock() is False


def test_filesystemLockRejectsANonPathName() -> None:
    """FilesystemLock(name) with a name that is not a str path raises TypeError naming it (ours)."""
    with pytest.raises(TypeError, match="name must be a str path"):
        reactor.FilesystemLock(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="name must be a str path"):
        reactor.FilesystemLock(b"/tmp/x.lock")  # type: ignore[arg-type]


def test_filesystemLockAcceptsAPathLike(tmp_path: pathlib.Path) -> None:
    """FilesystemLock(pathlib.Path) works and keeps the name as a str (ours)."""
    lock = reactor.FilesystemLock(tmp_path / "p.lock")
    assert lock.name == str(tmp_path / "p.lock")
    assert lock.lock()
    lock.unlock()


# --- DeferredFilesystemLock -------------------------------------------------------------------


def test_deferUntilLockedFiresAtOnceWhenTheLockIsFree(flavour: Flavour, name: str) -> None:
    """deferUntilLocked() of a free lock fires with None at once and schedules nothing."""
    clock = flavour.Clock()
    lock = flavour.DeferredFilesystemLock(name, clock)
    assert outcome(lock.deferUntilLocked()) is None
    assert lock.locked
    assert clock.getDelayedCalls() == []


def test_deferUntilLockedRetriesEveryIntervalUntilFree(flavour: Flavour, name: str, livePid: int) -> None:
    """A held lock is tried again every _interval seconds; the Deferred fires once it is taken."""
    os.symlink(str(livePid), name)
    clock = flavour.Clock()
    lock = flavour.DeferredFilesystemLock(name, clock)
    assert lock._interval == 1
    d = lock.deferUntilLocked()
    assert not d.called
    assert [c.getTime() for c in clock.getDelayedCalls()] == [1]
    clock.advance(1)
    assert not d.called
    assert [c.getTime() for c in clock.getDelayedCalls()] == [2]
    os.remove(name)  # the other process lets go
    clock.advance(0.5)
    assert not d.called
    clock.advance(0.5)
    assert outcome(d) is None
    assert lock.locked
    assert clock.getDelayedCalls() == []


def test_deferUntilLockedUsesAChangedInterval(flavour: Flavour, name: str, livePid: int) -> None:
    """Setting _interval changes how often the lock is tried."""
    os.symlink(str(livePid), name)
    clock = flavour.Clock()
    lock = flavour.DeferredFilesystemLock(name, clock)
    lock._interval = 0.25
    d = lock.deferUntilLocked()
    assert [c.getTime() for c in clock.getDelayedCalls()] == [0.25]
    d.cancel()
    outcome(d)


def test_deferUntilLockedTimesOut(flavour: Flavour, name: str, livePid: int) -> None:
    """With a timeout the Deferred fails with TimeoutError naming the lock, and the retries stop."""
    os.symlink(str(livePid), name)
    clock = flavour.Clock()
    lock = flavour.DeferredFilesystemLock(name, clock)
    d = lock.deferUntilLocked(timeout=2)
    clock.advance(1)
    assert not d.called
    clock.advance(1)
    error = outcome(d)
    assert type(error) is flavour.TimeoutError
    assert str(error) == f"Timed out acquiring lock: {name} after 2.000000s"
    assert clock.getDelayedCalls() == []
    assert lock._tryLockCall is None
    assert not lock.locked


def test_deferUntilLockedTakesALockFreedBeforeTheDeadline(flavour: Flavour, name: str, livePid: int) -> None:
    """A lock freed between two tries is taken at the deadline instead of timing out."""
    os.symlink(str(livePid), name)
    clock = flavour.Clock()
    lock = flavour.DeferredFilesystemLock(name, clock)
    d = lock.deferUntilLocked(timeout=1.5)
    clock.advance(1)
    os.remove(name)
    clock.advance(0.5)
    assert outcome(d) is None
    assert lock.locked
    assert clock.getDelayedCalls() == []


def test_deferUntilLockedWhileWaitingFailsWithAlreadyTryingToLock(
    flavour: Flavour, name: str, livePid: int
) -> None:
    """A second deferUntilLocked() while one waits returns a failed Deferred; the first keeps waiting."""
    os.symlink(str(livePid), name)
    clock = flavour.Clock()
    lock = flavour.DeferredFilesystemLock(name, clock)
    first = lock.deferUntilLocked()
    second = lock.deferUntilLocked()
    assert isinstance(outcome(second), flavour.AlreadyTryingToLockError)
    assert not first.called
    os.remove(name)
    clock.advance(1)
    assert outcome(first) is None


def test_cancelStopsRetryingAndFailsWithCancelledError(flavour: Flavour, name: str, livePid: int) -> None:
    """Cancelling the Deferred stops the retries and the timeout and fails it with CancelledError."""
    os.symlink(str(livePid), name)
    clock = flavour.Clock()
    lock = flavour.DeferredFilesystemLock(name, clock)
    d = lock.deferUntilLocked(timeout=10)
    clock.advance(1)
    d.cancel()
    assert isinstance(outcome(d), flavour.CancelledError)
    assert clock.getDelayedCalls() == []
    assert lock._tryLockCall is None
    assert not lock.locked


def test_cancelTakesTheLockIfItIsFreeByThen(flavour: Flavour, name: str, livePid: int) -> None:
    """A cancel tries the lock once more; if it is free by then the Deferred fires with None."""
    os.symlink(str(livePid), name)
    clock = flavour.Clock()
    lock = flavour.DeferredFilesystemLock(name, clock)
    d = lock.deferUntilLocked()
    os.remove(name)
    d.cancel()
    assert outcome(d) is None
    assert lock.locked
    assert clock.getDelayedCalls() == []


def test_deferUntilLockedAfterACancelCanWaitAgain(flavour: Flavour, name: str, livePid: int) -> None:
    """After a cancel, deferUntilLocked() may be called again and waits afresh."""
    os.symlink(str(livePid), name)
    clock = flavour.Clock()
    lock = flavour.DeferredFilesystemLock(name, clock)
    first = lock.deferUntilLocked()
    first.cancel()
    outcome(first)
    second = lock.deferUntilLocked()
    os.remove(name)
    clock.advance(1)
    assert outcome(second) is None


def test_deferUntilLockedTimesOutAgainAfterATimeout(name: str, livePid: int) -> None:
    """A second wait with a timeout, after one timed out, times out too (ours; Twisted's never does)."""
    os.symlink(str(livePid), name)
    clock = reactor.task.Clock()
    lock = reactor.DeferredFilesystemLock(name, clock)
    first = lock.deferUntilLocked(timeout=1)
    clock.advance(1)
    assert isinstance(outcome(first), reactor.TimeoutError)
    second = lock.deferUntilLocked(timeout=1)
    clock.advance(1)
    assert isinstance(outcome(second), reactor.TimeoutError)
    assert clock.getDelayedCalls() == []


def test_aLaterTryThatRaisesFailsTheDeferred(name: str, livePid: int) -> None:
    """An error from a later try fails the Deferred and stops the retries (ours; Twisted keeps it unfired)."""
    os.symlink(str(livePid), name)
    clock = reactor.task.Clock()
    lock = reactor.DeferredFilesystemLock(name, clock)
    d = lock.deferUntilLocked(timeout=10)
    broken = PermissionError(13, "Permission denied")

    def refuse() -> bool:
        raise broken

    lock.lock = refuse  # type: ignore[method-assign]
    clock.advance(1)
    assert outcome(d) is broken
    assert clock.getDelayedCalls() == []
    assert lock._tryLockCall is None


def test_anErrorFromTheFirstTryIsRaised(flavour: Flavour, tmp_path: pathlib.Path) -> None:
    """An error from the first try (made inside deferUntilLocked) is raised there."""
    clock = flavour.Clock()
    lock = flavour.DeferredFilesystemLock(str(tmp_path / "missing" / "the.lock"), clock)
    with pytest.raises(FileNotFoundError):
        lock.deferUntilLocked()
    assert clock.getDelayedCalls() == []


def test_defaultSchedulerIsTheDefaultReactor(
    name: str, livePid: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a scheduler, the retries go to reactor.getReactor(), asked at construction (ours)."""
    standIn = reactor.task.Clock()
    monkeypatch.setattr(reactor._default, "getReactor", lambda: standIn)
    os.symlink(str(livePid), name)
    lock = reactor.DeferredFilesystemLock(name)
    d = lock.deferUntilLocked()
    assert len(standIn.getDelayedCalls()) == 1
    d.cancel()
    outcome(d)


def test_deferredFilesystemLockRejectsBadArguments(name: str) -> None:
    """A scheduler without callLater and a bad timeout raise at the call, naming the argument (ours)."""
    with pytest.raises(TypeError, match="scheduler must have a callLater method"):
        reactor.DeferredFilesystemLock(name, object())
    lock = reactor.DeferredFilesystemLock(name, reactor.task.Clock())
    with pytest.raises(TypeError, match="timeout must be a number"):
        lock.deferUntilLocked(timeout="5")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout must be a finite number >= 0"):
        lock.deferUntilLocked(timeout=-1)
    assert not os.path.lexists(name)


def test_deferredFilesystemLockIsAFilesystemLock() -> None:
    """DeferredFilesystemLock subclasses FilesystemLock; reactor.lockfile holds Twisted's lockfile names."""
    assert issubclass(reactor.DeferredFilesystemLock, reactor.FilesystemLock)
    assert reactor.lockfile.FilesystemLock is reactor.FilesystemLock
    assert reactor.lockfile.__all__ == ["FilesystemLock", "isLocked"]
