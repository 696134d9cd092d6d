"""A reactor hosted on Qt's event loop: :class:`QtReactor` (PySide6, or PyQt6).

Everything above the wait is the ordinary :class:`~reactor.Reactor` (``reactor._hosted``
explains the mapping); Qt waits. Each watched descriptor is a ``QSocketNotifier`` per
direction, the earliest timed call is one single-shot ``QTimer`` (precise timer type),
"call soon" is a zero-delay single-shot, and the reactor's wake-up pipe is one more
notifier, so threads reach the GUI thread through ``callFromThread`` with coalesced
wake-ups.

Qt objects belong to the thread that made them: create the reactor in the thread
that runs the Qt event loop (the ``QCoreApplication``'s). Notifiers and timers are
children of one private ``QObject`` and are retired with ``deleteLater``, so one is
never deleted inside its own signal (a reader removed by its own ``doRead``).
"""

from __future__ import annotations

import importlib
import math
import sys
from collections.abc import Callable
from typing import Any

from reactor._hosted import HostedReactor, HostTimer
from reactor._poller import POLLIN, POLLOUT

__all__ = ["QtReactor", "brokenBinding", "qtCore"]


def brokenBinding(version: tuple[int, ...], python: tuple[int, ...]) -> str | None:
    """Why Qt binding ``version`` cannot host a reactor on Python ``python``, or None when it can.

    PySide6 6.12.0 on Python 3.11 drops a reference to ``None`` (or ``True``/``False``) on
    every timer callback, and the interpreter aborts after a few thousand of them
    ("deallocating None"); 6.11.3 and earlier are fine, and Python 3.12's immortal
    singletons make the lost references harmless (all measured here).
    """
    if tuple(version[:3]) == (6, 12, 0) and tuple(python[:2]) < (3, 12):
        return (
            "PySide6 6.12.0 on Python 3.11 loses a reference to None on every Qt timer callback and "
            "crashes the interpreter after a few thousand: install another version "
            "(pip install 'PySide6-Essentials>=6.5,!=6.12.0'), or use Python 3.12 or newer"
        )
    return None


def qtCore() -> Any:
    """The ``QtCore`` module of PySide6, else of PyQt6.

    :raises ImportError: no usable binding is installed (the message says how to install one,
        or why the installed PySide6 cannot be used).
    """
    refused: str | None = None
    try:
        core = importlib.import_module("PySide6.QtCore")
    except ImportError:
        pass
    else:
        pyside = importlib.import_module("PySide6")
        refused = brokenBinding(tuple(getattr(pyside, "__version_info__", ())), tuple(sys.version_info[:2]))
        if refused is None:
            return core
    try:
        return importlib.import_module("PyQt6.QtCore")
    except ImportError:
        pass
    raise ImportError(
        refused or "reactor.qtreactor needs Qt for Python: pip install 'deferthreads[qt]' (PySide6) or PyQt6"
    )


class _QtTimer:
    """A pending single-shot ``QTimer`` (a child of the reactor's QObject), retired once it fired or
    was cancelled."""

    __slots__ = ("_live",)

    def __init__(self, core: Any, parent: Any, delay: float, f: Callable[[], None]) -> None:
        timer = core.QTimer(parent)
        timer.setSingleShot(True)
        timer.setTimerType(core.Qt.TimerType.PreciseTimer)
        # The timer while it is pending; a plain list, so the slots below hold no reference to this
        # handle (which its owner may drop inside the very signal that fires it).
        live: list[Any] = [timer]

        def retire() -> None:
            pending = live.pop() if live else None
            if pending is not None:
                pending.deleteLater()

        timer.timeout.connect(f)
        timer.timeout.connect(retire)
        # Qt counts in whole milliseconds; rounding up never fires a timed call early.
        timer.start(min(math.ceil(delay * 1000), 2**31 - 1))
        self._live = live

    def cancel(self) -> None:
        live = self._live
        if live:
            timer = live.pop()
            timer.stop()
            timer.deleteLater()


class _QtPoller:
    """epoll's ``register``/``modify``/``unregister`` over ``QSocketNotifier`` objects.

    Readiness is not polled: a notifier's ``activated`` signal calls
    ``onReady(fd, POLLIN)`` or ``onReady(fd, POLLOUT)``. Errors follow epoll's, as
    the reactor's descriptor table expects: registering a known descriptor raises
    ``FileExistsError``, modifying or unregistering an unknown one ``FileNotFoundError``.
    """

    __slots__ = ("_core", "_notifiers", "_onReady", "_parent")

    def __init__(self, core: Any, parent: Any, onReady: Callable[[int, int], None]) -> None:
        self._core = core
        self._parent = parent
        self._onReady = onReady
        # fd -> [read notifier or None, write notifier or None]
        self._notifiers: dict[int, list[Any]] = {}

    def register(self, fd: int, mask: int) -> None:
        if fd in self._notifiers:
            raise FileExistsError(f"fd {fd} is already registered")
        pair: list[Any] = [None, None]
        self._notifiers[fd] = pair
        self._apply(fd, pair, mask)

    def modify(self, fd: int, mask: int) -> None:
        pair = self._notifiers.get(fd)
        if pair is None:
            raise FileNotFoundError(f"fd {fd} is not registered")
        self._apply(fd, pair, mask)

    def unregister(self, fd: int) -> None:
        pair = self._notifiers.pop(fd, None)
        if pair is None:
            raise FileNotFoundError(f"fd {fd} is not registered")
        self._apply(fd, pair, 0)

    def _apply(self, fd: int, pair: list[Any], mask: int) -> None:
        core = self._core
        for index, bit, kind in ((0, POLLIN, core.QSocketNotifier.Type.Read),
                                 (1, POLLOUT, core.QSocketNotifier.Type.Write)):
            notifier = pair[index]
            if mask & bit and notifier is None:
                notifier = core.QSocketNotifier(fd, kind, self._parent)
                notifier.activated.connect(self._slot(fd, bit))
                notifier.setEnabled(True)
                pair[index] = notifier
            elif not mask & bit and notifier is not None:
                pair[index] = None
                notifier.setEnabled(False)
                notifier.deleteLater()  # it may be the one whose signal is running now

    def _slot(self, fd: int, events: int) -> Callable[..., None]:
        onReady = self._onReady

        def activated(*_: Any) -> None:
            onReady(fd, events)

        return activated

    def poll(self, timeout: float = -1) -> list[tuple[int, int]]:
        raise RuntimeError("a Qt-hosted reactor is never polled: Qt's event loop waits")

    def close(self) -> None:
        for fd in list(self._notifiers):
            self.unregister(fd)


class QtReactor(HostedReactor):
    """A :class:`~reactor.Reactor` whose waiting is done by Qt's event loop.

    ``app``: the ``QCoreApplication`` (or ``QApplication``) to run on; without it,
    the existing instance, else a new ``QCoreApplication``. Create the reactor in
    the application's thread.

    ``run()`` runs a Qt event loop until :meth:`stop` has fired ``shutdown``; in an
    application that runs ``app.exec()`` itself, call :meth:`startRunning` first
    and ``stop()`` later (an 'after shutdown' trigger can quit the application).

    :raises TypeError: ``app`` is not a ``QCoreApplication``.
    :raises RuntimeError: called outside the application's thread.
    :raises ImportError: neither PySide6 nor PyQt6 is installed.
    """

    _hostName = "Qt"

    def __init__(self, app: Any = None) -> None:
        core = qtCore()
        if app is None:
            app = core.QCoreApplication.instance()
            if app is None:
                app = core.QCoreApplication([])
        elif not isinstance(app, core.QCoreApplication):
            raise TypeError(f"app must be a QCoreApplication, not {type(app).__name__}")
        if core.QThread.currentThread() is not app.thread():
            raise RuntimeError("create the QtReactor in the Qt application's thread")
        # Read by _newPoller, which the base __init__ calls.
        self._qtCore = core
        self._qtApp = app
        self._qtParent = core.QObject()
        self._qtLoops: list[Any] = []  # the QEventLoops run() and iterate() are inside, innermost last
        super().__init__()

    def _newPoller(self) -> Any:
        return _QtPoller(self._qtCore, self._qtParent, self._onReady)

    @property
    def app(self) -> Any:
        """The Qt application this reactor runs on."""
        return self._qtApp

    def __repr__(self) -> str:
        return "<Qt" + super().__repr__()[1:]

    def _hostCallSoon(self, f: Callable[[], None]) -> None:
        self._qtCore.QTimer.singleShot(0, f)

    def _hostCallLater(self, delay: float, f: Callable[[], None]) -> HostTimer:
        return _QtTimer(self._qtCore, self._qtParent, delay, f)

    def _hostRun(self) -> None:
        loop = self._qtCore.QEventLoop()
        self._qtLoops.append(loop)
        try:
            loop.exec()
        finally:
            self._qtLoops.remove(loop)

    def _hostStop(self) -> None:
        if self._qtLoops:
            self._qtLoops[-1].quit()

    def _hostIsRunning(self) -> bool:
        # Only our own loops count: Qt nests event loops (run() inside app.exec() is fine).
        return bool(self._qtLoops)

    def whenStopped(self, callback: Callable[[], object]) -> None:
        """Call ``callback()`` once the reactor has stopped (shutdown over); now if it is not running."""
        def done() -> None:
            callback()

        self._whenStopped(done)

    def close(self) -> None:
        """Release the waker and this reactor's notifiers and timers (the application stays)."""
        super().close()
        self._qtParent.deleteLater()
