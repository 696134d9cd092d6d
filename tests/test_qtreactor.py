"""Tests for the reactor hosted on Qt (``reactor.qtreactor``, PySide6 from the test extra).

The loop and network test modules already run every test on a QtReactor too (their
``reactor`` fixtures are parametrized); these tests cover what is particular to Qt:
Qt's own timers beside reactor calls, an application that runs ``app.exec()`` itself
(``startRunning``), results of thread pools and adbapi landing in the Qt thread, no
Qt objects left behind by timers and notifiers, ``install``, and argument errors.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import adbapi
import deferthreads
from reactor import ReactorAlreadyInstalledError, getReactor
from reactor.qtreactor import QtReactor, install
from tests.loopsupport import SAFETY_SECONDS, runBounded

QtCore = pytest.importorskip("PySide6.QtCore", reason="PySide6 comes with the test extra")


@pytest.fixture
def app() -> Any:
    return QtCore.QCoreApplication.instance() or QtCore.QCoreApplication([])


def execBounded(app: Any, start: Callable[[], None]) -> None:
    """Run ``app.exec()`` with ``start`` as its first event; AssertionError if the safety net quit it."""
    fired: list[bool] = []

    def safetyNet() -> None:
        fired.append(True)
        app.quit()

    net = QtCore.QTimer()
    net.setSingleShot(True)
    net.timeout.connect(safetyNet)
    net.start(int(SAFETY_SECONDS * 1000))
    QtCore.QTimer.singleShot(0, start)
    app.exec()
    net.stop()
    assert not fired, "the application had to be quit by the safety net"


def test_qtTimersAndReactorCallsInterleaveInTheQtThread(app: Any) -> None:
    """run() drives a Qt event loop: a QTimer and timed calls run in order of time, in one thread."""
    r = QtReactor(app)
    out: list[tuple[str, int]] = []
    r.callLater(0.01, lambda: out.append(("early", threading.get_ident())))
    QtCore.QTimer.singleShot(20, lambda: out.append(("qt", threading.get_ident())))
    r.callLater(0.04, lambda: out.append(("late", threading.get_ident())))
    r.callLater(0.05, r.stop)
    runBounded(r)
    assert [name for name, _ in out] == ["early", "qt", "late"]
    assert {ident for _, ident in out} == {threading.get_ident()}
    r.close()


def test_startRunningInsideAppExecAndResultsLandInTheQtThread(app: Any, tmp_path: Path) -> None:
    """An application that runs app.exec() itself: thread-pool and adbapi results arrive in the Qt thread."""
    r = QtReactor(app)
    pool = deferthreads.ThreadPool(1, 2, "qt")
    dbpool = adbapi.ConnectionPool("sqlite3", str(tmp_path / "q.sqlite"), cp_min=1, cp_max=1, cp_reactor=r)
    seen: dict[str, Any] = {}

    def start() -> None:
        r.callWhenRunning(pool.start)
        r.addSystemEventTrigger("before", "shutdown", pool.stop)
        r.startRunning()
        d = deferthreads.deferToThreadPool(r, pool, lambda: threading.current_thread().name)
        d.addCallback(lambda name: seen.update(worker=name, inQtThread=threading.get_ident()))
        d.addCallback(lambda _: dbpool.runQuery("SELECT 6 * 7"))
        d.addCallback(lambda rows: seen.update(rows=rows, rowsThread=threading.get_ident()))
        d.addCallback(lambda _: r.stop())
        d.addErrback(lambda f: seen.update(error=f))
        r.whenStopped(app.quit)

    execBounded(app, start)
    assert "error" not in seen, seen.get("error")
    assert seen["worker"].startswith("qt")
    assert seen["inQtThread"] == seen["rowsThread"] == threading.get_ident()
    assert seen["rows"] == [(42,)]
    assert pool.joined and not r.running
    r.close()


def test_callFromThreadWakesAnIdleQtLoop(app: Any) -> None:
    """A thread calling in while Qt sleeps wakes it; the call runs in the Qt thread."""
    r = QtReactor(app)
    ran: list[int] = []

    def inReactor() -> None:
        ran.append(threading.get_ident())
        r.stop()

    r.callWhenRunning(lambda: threading.Thread(target=r.callFromThread, args=(inReactor,)).start())
    runBounded(r)
    assert ran == [threading.get_ident()]
    r.close()


def test_firedAndCancelledTimersLeaveNoQtObjects(app: Any) -> None:
    """Timers and notifiers are retired: after many timed calls and readers, no child QObjects pile up."""
    r = QtReactor(app)
    fired: list[int] = []
    # Each call earlier than the last: every one re-arms (a new QTimer, the previous one cancelled).
    for i in range(300):
        r.callLater(0.3 - 0.001 * i, fired.append, i)
    for _ in range(100):
        r.callLater(0.0001, fired.append, -1).cancel()
    r.callLater(0.35, r.stop)
    runBounded(r)
    r.iterate(0)  # deleteLater takes effect in a later event-loop pass
    assert len(fired) == 300
    # The waker's notifier, plus at most the timers retired in the very last pass.
    assert len(r._qtParent.children()) <= 3
    r.close()


def test_runNestsInsideAnotherQtLoop(app: Any) -> None:
    """Qt nests event loops: run() called from inside app.exec() runs and returns."""
    r = QtReactor(app)
    out: list[str] = []

    def insideExec() -> None:
        r.callLater(0.01, out.append, "ran")
        r.callLater(0.02, r.stop)
        runBounded(r)
        out.append("returned")
        app.quit()

    execBounded(app, insideExec)
    assert out == ["ran", "returned"]
    r.close()


def test_iterateInsideRunIsRefused(app: Any) -> None:
    """iterate() from inside the reactor's own running loop raises a clear RuntimeError."""
    r = QtReactor(app)
    errors: list[str] = []

    def tryIterate() -> None:
        with pytest.raises(RuntimeError, match="iterate") as info:
            r.iterate(0)
        errors.append(str(info.value))
        r.stop()

    r.callWhenRunning(r.callLater, 0, tryIterate)  # from inside the running Qt loop
    runBounded(r)
    assert errors
    r.close()


def test_appMustBeAQCoreApplication(app: Any) -> None:
    """A wrong app argument is refused at the call, naming the argument."""
    with pytest.raises(TypeError, match="app must be a QCoreApplication"):
        QtReactor(object())


def test_creatingOutsideTheQtThreadIsRefused(app: Any) -> None:
    """A QtReactor made outside the application's thread raises RuntimeError (Qt's thread affinity)."""
    errors: list[BaseException] = []

    def make() -> None:
        try:
            QtReactor(app)
        except BaseException as e:
            errors.append(e)

    t = threading.Thread(target=make)
    t.start()
    t.join(SAFETY_SECONDS)
    assert len(errors) == 1 and isinstance(errors[0], RuntimeError)
    assert "application's thread" in str(errors[0])


def test_installMakesTheProcessDefaultOnce(monkeypatch: pytest.MonkeyPatch, app: Any) -> None:
    """install() makes a QtReactor the default getReactor() returns; a second install is refused."""
    import reactor._default

    monkeypatch.setattr(reactor._default, "_default", None)
    installed = install(app)
    assert getReactor() is installed and installed.app is app
    with pytest.raises(ReactorAlreadyInstalledError):
        install(app)
    installed.close()


def test_pyside6120OnPython311IsRefusedWithTheReason() -> None:
    """The one binding release known to crash Python 3.11 (lost references to None on every timer
    callback) is refused with the reason and the way out; other versions and Python 3.12 are fine."""
    from reactor._qtreactor import brokenBinding

    reason = brokenBinding((6, 12, 0), (3, 11))
    assert reason is not None and "!=6.12.0" in reason and "3.12" in reason
    assert brokenBinding((6, 11, 3), (3, 11)) is None
    assert brokenBinding((6, 12, 0), (3, 12)) is None
    assert brokenBinding((6, 12, 1), (3, 11)) is None


def test_aRefusedBindingMakesQtCoreRaiseImportErrorNamingIt(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the installed PySide6 refused and no PyQt6, qtCore() raises ImportError with the reason."""
    import importlib
    import sys

    import PySide6

    from reactor._qtreactor import qtCore

    monkeypatch.setattr(PySide6, "__version_info__", (6, 12, 0, "", ""))
    monkeypatch.setattr(sys, "version_info", (3, 11, 7, "final", 0))
    realImport = importlib.import_module

    def noPyQt6(name: str, package: str | None = None) -> Any:
        if name.startswith("PyQt6"):
            raise ImportError("no PyQt6 here")
        return realImport(name, package)

    monkeypatch.setattr(importlib, "import_module", noPyQt6)
    with pytest.raises(ImportError, match=r"PySide6 6\.12\.0"):
        qtCore()


def test_aThreadCallIsServedInsideAModalLoopOpenedByATimedCall(app: Any) -> None:
    """A timed call that runs a nested Qt event loop (QDialog.exec(), QMessageBox...) must not stall the
    reactor: a thread call made meanwhile runs inside the nested loop."""
    r = QtReactor(app)
    out: list[str] = []

    def modal() -> None:
        nested = QtCore.QEventLoop()

        def arrived() -> None:
            out.append("thread call")
            nested.quit()

        QtCore.QTimer.singleShot(1000, nested.quit)  # safety: the "dialog" closes after 1 s
        # The thread calls in once the nested loop has settled (as a worker finishing later would).
        QtCore.QTimer.singleShot(
            50, lambda: threading.Thread(target=r.callFromThread, args=(arrived,)).start()
        )
        nested.exec()
        out.append("modal closed")
        r.stop()

    r.callLater(0.05, modal)
    runBounded(r)
    r.close()
    assert out[:2] == ["thread call", "modal closed"]


def test_aTimedCallIsServedInsideAModalLoopOpenedByATimedCall(app: Any) -> None:
    """The same for a timed call due while the modal loop runs."""
    r = QtReactor(app)
    out: list[str] = []
    box: list[Any] = []

    def modal() -> None:
        nested = QtCore.QEventLoop()
        box.append(nested)
        QtCore.QTimer.singleShot(1000, nested.quit)  # safety
        nested.exec()
        out.append("modal closed")
        r.stop()

    def timer() -> None:
        out.append("timer")
        box[0].quit()

    r.callLater(0.05, modal)
    r.callLater(0.1, timer)
    runBounded(r)
    r.close()
    assert out[:2] == ["timer", "modal closed"]
