"""The waker: a non-blocking pipe whose read end the loop watches, to be woken from other threads.

A pipe (rather than an eventfd) because its write end can also be given to
``signal.set_wakeup_fd``: the C-level signal handler then wakes the loop even when the
signal was delivered to another thread while the reactor thread sleeps in ``epoll``.
"""

from __future__ import annotations

import os

__all__: list[str] = []


class Waker:
    """Both ends of the wake-up pipe.

    :meth:`wakeUp` may be called from any thread (and from signal handlers); it is a
    single ``write`` that never blocks (a full pipe already means "wake up").
    :meth:`drain` is called by the reactor thread when the read end is readable.
    """

    # readFD/writeFD: immutable until close() (called by the owner when discarding the reactor).
    # writes: incremented by any thread without a lock; only a test hook (may under-count
    # under contention, never over-count).
    __slots__ = ("readFD", "writeFD", "writes")

    def __init__(self) -> None:
        self.readFD, self.writeFD = os.pipe()
        for fd in (self.readFD, self.writeFD):
            os.set_blocking(fd, False)
            os.set_inheritable(fd, False)
        self.writes = 0

    def fileno(self) -> int:
        """The read end, for the selector."""
        return self.readFD

    def wakeUp(self) -> None:
        """Make the read end readable. Any thread."""
        self.writes += 1
        try:
            os.write(self.writeFD, b"\0")
        except (BlockingIOError, InterruptedError):
            pass  # the pipe is full: the loop will wake anyway
        except OSError:
            pass  # closed while a late thread called in; nobody is listening any more

    def drain(self) -> None:
        """Read everything written so far. Reactor thread."""
        try:
            while len(os.read(self.readFD, 65536)) == 65536:
                pass
        except (BlockingIOError, InterruptedError):
            pass

    def doRead(self) -> None:
        """The loop's reader callback (the waker sits in the loop's table like any reader): drain."""
        self.drain()

    def connectionLost(self, reason: object) -> None:
        """Never lost while the reactor lives; present so the waker is a complete reader."""

    def __del__(self) -> None:
        if self.readFD >= 0:
            self.close()

    def close(self) -> None:
        """Close both ends."""
        for fd in (self.readFD, self.writeFD):
            try:
                os.close(fd)
            except OSError:
                pass
        self.readFD = self.writeFD = -1
