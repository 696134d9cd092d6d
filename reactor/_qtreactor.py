"""A reactor hosted on Qt's event loop: :class:`QtReactor` (PySide6, or PyQt6).

Everything above the wait is the ordinary :class:`~reactor.Reactor` (``reactor._hosted``
explains the mapping); Qt waits. The reactor's own epoll holds its descriptors (the
wake-up pipe too, so threads reach the GUI thread through ``callFromThread`` with
coalesced wake-ups) and one ``QSocketNotifier`` watches that epoll; the earliest timed
call is one single-shot ``QTimer`` (precise timer type), and "call soon" a zero-delay
single-shot. The event dispatcher's ``aboutToBlock`` re-checks both before every wait, so
a modal dialog's loop opened inside a reactor callback does not stall them.

Qt objects belong to the thread that made them: create the reactor in the thread
that runs the Qt event loop (the ``QCoreApplication``'s). Notifiers and timers are
children of one private ``QObject`` and are retired with ``deleteLater``, so one is
never deleted inside its own signal.
"""

from __future__ import annotations

import importlib
import math
import sys
from collections.abc import Callable
from typing import Any

from reactor._hosted import HostedReactor, HostTimer

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
        self._qtNotifiers: dict[int, Any] = {}
        super().__init__()
        # Before every wait, at any depth: a modal dialog's loop opened inside a reactor callback
        # keeps thread calls and timed calls flowing (they would wait for the callback otherwise).
        self._qtDispatcher = core.QAbstractEventDispatcher.instance(app.thread())
        beforeWait = self._beforeWait

        def aboutToBlock() -> None:
            beforeWait()

        self._qtAboutToBlock = aboutToBlock
        self._qtDispatcher.aboutToBlock.connect(aboutToBlock)

    @property
    def app(self) -> Any:
        """The Qt application this reactor runs on."""
        return self._qtApp

    def __repr__(self) -> str:
        return "<Qt" + super().__repr__()[1:]

    def _hostWatch(self, fd: int, onReadable: Callable[[], None]) -> None:
        notifier = self._qtCore.QSocketNotifier(fd, self._qtCore.QSocketNotifier.Type.Read, self._qtParent)

        def activated(*_: Any) -> None:
            onReadable()

        notifier.activated.connect(activated)
        notifier.setEnabled(True)
        self._qtNotifiers[fd] = notifier

    def _hostUnwatch(self, fd: int) -> None:
        notifier = self._qtNotifiers.pop(fd, None)
        if notifier is not None:
            notifier.setEnabled(False)
            notifier.deleteLater()  # perhaps from inside its own signal

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
        """Release the poller, the waker and this reactor's notifier and timers (the application stays)."""
        if self._closed:
            return
        super().close()
        self._qtDispatcher.aboutToBlock.disconnect(self._qtAboutToBlock)
        self._qtParent.deleteLater()
