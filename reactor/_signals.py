"""SIGINT/SIGTERM handling for a running reactor: stop cleanly, then put the old handlers back.

Python runs signal handlers in the main thread only, between bytecodes; a handler
here never touches reactor state itself, it hands the stop to the loop through
``callFromThread`` (which wakes the loop if it sleeps). ``signal.set_wakeup_fd`` is
pointed at the loop's waker so that a signal delivered to another OS thread still
interrupts the main thread's ``epoll_wait``.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

__all__: list[str] = []

_STOP_SIGNALS = tuple(
    s
    for s in (
        getattr(signal, "SIGINT", None),
        getattr(signal, "SIGTERM", None),
        getattr(signal, "SIGBREAK", None),
    )
    if s is not None
)


class SignalHandlers:
    """Installs handlers that call ``onSignal(signum)`` and restores the previous ones.

    Used by the thread that runs the reactor; :meth:`install` does nothing outside
    the main thread (Python allows signal handlers only there).
    """

    # Owned by the thread running the reactor (the main thread when installed).
    __slots__ = ("_keepWakeupFD", "_onSignal", "_previous", "_previousWakeupFD", "_wakeupFD")

    def __init__(
        self, onSignal: Callable[[int], None], wakeupFD: int, keepExistingWakeupFD: bool = False
    ) -> None:
        """``keepExistingWakeupFD``: leave a wake-up fd someone else set in place (a host loop such as
        asyncio reads signal numbers from its own; replacing it would silence its signal handlers)."""
        self._onSignal = onSignal
        self._wakeupFD = wakeupFD
        self._keepWakeupFD = keepExistingWakeupFD
        self._previous: dict[int, Any] | None = None
        self._previousWakeupFD = -1

    @property
    def installed(self) -> bool:
        """True between :meth:`install` (when it did install) and :meth:`uninstall`."""
        return self._previous is not None

    def install(self) -> bool:
        """Install the handlers if this is the main thread; return whether it did."""
        if self._previous is not None or threading.current_thread() is not threading.main_thread():
            return False
        previous: dict[int, Any] = {}
        try:
            for signum in _STOP_SIGNALS:
                previous[signum] = signal.signal(signum, self._handle)
            self._previousWakeupFD = signal.set_wakeup_fd(self._wakeupFD, warn_on_full_buffer=False)
            if self._keepWakeupFD and self._previousWakeupFD != -1:
                # The host loop's fd wakes the host loop, which is ours too; our handler's
                # callFromThread then writes our waker.
                signal.set_wakeup_fd(self._previousWakeupFD)
        except (ValueError, OSError):
            self._restore(previous)
            return False
        self._previous = previous
        return True

    def uninstall(self) -> None:
        """Put back the handlers (and wake-up fd) that were there before :meth:`install`."""
        previous = self._previous
        if previous is None:
            return
        self._previous = None
        try:
            signal.set_wakeup_fd(self._previousWakeupFD)
        except (ValueError, OSError):
            pass
        self._restore(previous)

    @staticmethod
    def _restore(previous: dict[int, Any]) -> None:
        for signum, handler in previous.items():
            # None means "installed from C, unknown to Python": the default is the best we can do.
            try:
                signal.signal(signum, signal.SIG_DFL if handler is None else handler)
            except (ValueError, OSError):
                pass

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self._onSignal(signum)
