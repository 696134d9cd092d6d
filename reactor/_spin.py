"""Spin-then-block waiting for threads that hand each other work, without holding the GIL while spinning.

Why spin at all: on the virtual machines our users deploy to, waking a thread that
blocked (a futex or an ``epoll_wait``) costs tens of microseconds, because the CPU it
slept on went idle and must be woken by the hypervisor. A request/response exchange
between the reactor thread and a worker pays that twice per call. A waiter that
stays on its CPU for a short while before blocking, looking for the next piece of
work, pays nothing when the work arrives within that window.

Why not an ordinary busy loop: a spinning Python thread holds the GIL, so the very
thread it waits for cannot run. Each pause here is a ``zlib.crc32`` of a zero buffer
(32 KiB, longer where crc32 is much faster, see :func:`calibratePause`), which CPython
computes with the GIL *released* (it does so for any buffer over 5 KiB): a few
microseconds of CPU during which the other thread owns the interpreter, between two
cheap looks at a queue. Shorter pauses (``os.sched_yield``
alone) were measured to be worse: the spinner takes the GIL back so often that the
thread it waits for keeps finding it held and blocks on it, which is the very
wake-up cost spinning was meant to avoid. Each pause ends with ``os.sched_yield``
all the same: when the machine is oversubscribed and the thread we wait for is
queued behind us on the same CPU, it runs now rather than after our time slice
(without it, one CPU-bound process beside the benchmark made sequential calls 3x
slower than not spinning at all; with it they stay ahead of Twisted).

:class:`SpinPolicy` keeps the spinning to where it pays: every spin that comes back
empty doubles the number of waits that block at once before the next try (up to
64), and a spin that finds work resets it. A pool that is idle, or runs long
calls, or answers a little too slowly for the window, spins about once in 64
waits instead of every time.
"""

from __future__ import annotations

import os
import time
import zlib
from collections.abc import Callable

__all__: list[str] = []

# A pause should last about 5-10 microseconds: long enough that the thread being waited for
# rarely finds the GIL taken, short enough to notice its work promptly. 32 KiB of crc32 takes
# that long with the zlib of a current x86-64 Linux; where crc32 runs much faster (zlib-ng,
# hardware crc32), the first pause measures it and lengthens the buffer to match.
_BASE_PAUSE_BYTES = 32 * 1024
_MAX_PAUSE_BYTES = 1024 * 1024
_SHORTEST_PAUSE = 4e-6  # seconds: below this the buffer is lengthened
_TARGET_PAUSE = 6e-6
_pauseBuffer: bytes | None = None

#: The default spin window, in seconds: a little over the Python cost of one reactor
#: round (firing a Deferred, resuming a coroutine, submitting its next call).
DEFAULT_SPIN = 0.0001

#: The most waits that block at once between two tries, after empty spins in a row.
MAX_BACKOFF = 64

perfCounter = time.perf_counter
_crc32 = zlib.crc32
_schedYield = os.sched_yield


def pause() -> None:
    """Spend a few microseconds of CPU with the GIL released, then offer the CPU to others (any thread)."""
    _crc32(_pauseBuffer or calibratePause())
    _schedYield()


def calibratePause(clock: Callable[[], float] = time.perf_counter) -> bytes:
    """Measure crc32 of the base buffer (best of three) and size the pause buffer from it (any thread).

    Only ever lengthens the buffer (a slow or busy machine keeps the base size),
    up to 1 MiB. Two threads calibrating at once both get a sound buffer.
    """
    global _pauseBuffer
    base = bytes(_BASE_PAUSE_BYTES)
    best = float("inf")
    for _ in range(3):
        started = clock()
        _crc32(base)
        best = min(best, clock() - started)
    size = _BASE_PAUSE_BYTES
    if best < _SHORTEST_PAUSE:
        size = min(_MAX_PAUSE_BYTES, int(_BASE_PAUSE_BYTES * _TARGET_PAUSE / max(best, 1e-9)))
        size -= size % 1024
    _pauseBuffer = base if size == _BASE_PAUSE_BYTES else bytes(size)
    return _pauseBuffer


def checkSpin(value: object, name: str) -> float:
    """Validate a spin window argument: a number of seconds >= 0 (0 turns spinning off)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, not {type(value).__name__}")
    seconds = float(value)
    if not seconds >= 0 or seconds == float("inf"):
        raise ValueError(f"{name} must be a finite number of seconds >= 0, not {value!r}")
    return seconds


class SpinPolicy:
    """Whether one waiter should spin before it blocks; used by that waiter's thread alone.

    ``window`` is the longest spin, in seconds (0: never spin). Call
    :meth:`shouldSpin` before each wait and :meth:`spun` after each spin.
    """

    __slots__ = ("_backoff", "_skip", "window")

    def __init__(self, window: float) -> None:
        self.window = window
        self._skip = 0  # waits left that block without trying to spin
        self._backoff = 0  # how many waits the next empty spin makes block

    def shouldSpin(self) -> bool:
        """True if this wait should spin first (counts down the waits left to skip)."""
        if self.window <= 0:
            return False
        if self._skip:
            self._skip -= 1
            return False
        return True

    def spun(self, found: bool) -> None:
        """A spin ended: with work (``found``) or empty-handed at the end of the window."""
        if found:
            self._backoff = 0
        else:
            self._backoff = min(MAX_BACKOFF, self._backoff * 2 or 1)
            self._skip = self._backoff
