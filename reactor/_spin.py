"""Spin-then-block waiting for threads that hand each other work, without holding the GIL while spinning.

Why spin at all: on the virtual machines our users deploy to, waking a thread that
blocked (a futex or an ``epoll_wait``) costs tens of microseconds, because the CPU it
slept on went idle and must be woken by the hypervisor. A request/response exchange
between the reactor thread and a worker pays that twice per call. A waiter that
stays on its CPU for a short while before blocking, looking for the next piece of
work, pays nothing when the work arrives within that window.

Why not an ordinary busy loop: a spinning Python thread holds the GIL, so the very
thread it waits for cannot run. Each pause here is a ``zlib.crc32`` of a 32 KiB zero
buffer, which CPython computes with the GIL *released* (it does so for any buffer
over 5 KiB): a few microseconds of CPU during which the other thread owns the
interpreter, between two cheap looks at a queue. Shorter pauses (``os.sched_yield``)
were measured to be worse: the spinner takes the GIL back so often that the thread
it waits for keeps finding it held and blocks on it, which is the very wake-up cost
spinning was meant to avoid.

:class:`SpinPolicy` keeps the spinning to where it pays: a waiter spins only while
its recent waits ended within the spin window; once one spin comes back empty it
blocks at once until a wait shows the work arriving quickly again. A pool that is
idle or runs long calls therefore spins about once per burst, not once per call.
"""

from __future__ import annotations

import time
import zlib

__all__: list[str] = []

# 32 KiB: about 5-10 microseconds of crc32 on current x86-64, long enough that the thread
# being waited for rarely finds the GIL taken, short enough to notice its work promptly.
_PAUSE_BUFFER = bytes(32 * 1024)

#: The default spin window, in seconds: a little over the Python cost of one reactor
#: round (firing a Deferred, resuming a coroutine, submitting its next call).
DEFAULT_SPIN = 0.0001

perfCounter = time.perf_counter


def pause() -> None:
    """Spend a few microseconds of CPU with the GIL released (any thread)."""
    zlib.crc32(_PAUSE_BUFFER)


def checkSpin(value: object, name: str) -> float:
    """Validate a spin window argument: a number of seconds >= 0 (0 turns spinning off)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, not {type(value).__name__}")
    seconds = float(value)
    if not seconds >= 0 or seconds == float("inf"):
        raise ValueError(f"{name} must be a finite number of seconds >= 0, not {value!r}")
    return seconds


class SpinPolicy:
    """Whether one waiter should spin before it blocks; owned by that waiter's thread alone.

    ``window`` is the longest spin, in seconds (0: never spin). ``worthIt`` starts
    true; :meth:`spun` records how a spin ended and :meth:`blocked` how long a
    blocking wait lasted (a wait shorter than the window means a spin would have
    caught the work).
    """

    __slots__ = ("window", "worthIt")

    def __init__(self, window: float) -> None:
        self.window = window
        self.worthIt = window > 0

    def shouldSpin(self) -> bool:
        return self.worthIt

    def spun(self, found: bool) -> None:
        """A spin ended: with work (``found``) or empty-handed at the end of the window."""
        self.worthIt = found

    def blocked(self, seconds: float) -> None:
        """A blocking wait ended with work after ``seconds``."""
        self.worthIt = self.window > 0 and seconds < self.window
