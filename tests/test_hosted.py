"""Regression tests shared by the hosted reactors (asyncio, Qt), most beside the epoll loop for reference.

Each pins down a case found in review: descriptor-number reuse and kernel registrations
kept alive by a ``dup``, stop waiters after a crash in a startup trigger, what a stop
waiter sees, a closed reactor doing nothing more on its host loop, and a reactor that
makes its own asyncio loop in a fresh main thread.
"""

from __future__ import annotations

import asyncio
import math
import os
import threading
from typing import Any

import pytest

from reactor.asyncioreactor import AsyncioReactor
from tests.loopsupport import REACTOR_KINDS, makeReactor, runBounded

HOSTED_KINDS = [kind for kind in REACTOR_KINDS if kind != "epoll"]


class RawReader:
    """A reader on a raw descriptor number (as a FileDescriptor wrapping an int would be)."""

    def __init__(self, fd: int, onRead: Any = None) -> None:
        self.fd = fd
        self.reads = 0
        self.onRead = onRead  # called (with the reader) at each doRead

    def fileno(self) -> int:
        return self.fd

    def doRead(self) -> None:
        self.reads += 1
        if self.onRead is not None:
            self.onRead(self)

    def connectionLost(self, reason: object) -> None:
        pass


@pytest.mark.parametrize("kind", REACTOR_KINDS)
def test_aClosedReadersNumberReusedByAnotherFileIsNotDispatched(kind: str) -> None:
    """A reader whose fd was closed without removeReader gets no doRead() for an unrelated file that
    reuses the number (the kernel dropped the registration with the file), on every reactor."""
    r = makeReactor(kind)
    rfd, wfd = os.pipe()
    stale = RawReader(rfd)
    r.addReader(stale)
    os.close(rfd)
    os.close(wfd)
    r2, w2 = os.pipe()  # someone else's pipe, not watched by the reactor
    cr, cw = os.pipe()  # a watched pipe with data: the turn that reports it would report r2 too

    def controlRead(reader: RawReader) -> None:
        r.removeReader(reader)
        r.callLater(0, r.stop)  # a turn more, then stop

    try:
        assert r2 == rfd, "test precondition: the number was reused"
        os.write(w2, b"not yours")
        os.write(cw, b"ours")
        control = RawReader(cr, controlRead)
        r.addReader(control)
        runBounded(r)
        assert control.reads == 1 and stale.reads == 0
    finally:
        for fd in (r2, w2, cr, cw):
            os.close(fd)
        r.removeAll()
        r.close()


@pytest.mark.parametrize("kind", REACTOR_KINDS)
def test_addReaderWorksWhileADupKeepsAClosedNumbersRegistration(kind: str) -> None:
    """A watched fd closed while a dup keeps its file open leaves a kernel registration behind; a new
    reader on the same number and file still gets doRead()."""
    r = makeReactor(kind)
    rfd, wfd = os.pipe()
    first = RawReader(rfd)
    r.addReader(first)
    keep = os.dup(rfd)
    os.close(rfd)  # closed without removeReader; the dup keeps the registration alive
    r.removeReader(first)  # the kernel refuses to forget it (EBADF): the stale registration stays
    again = os.dup(keep)  # the lowest free number: rfd again, the same open file
    try:
        assert again == rfd, "test precondition: the number was reused"
        second = RawReader(again, lambda reader: (r.removeReader(reader), r.stop()))
        r.addReader(second)
        os.write(wfd, b"x")
        runBounded(r)  # stopped by second's doRead; fails the test after its safety time otherwise
        assert second.reads > 0
    finally:
        r.removeAll()
        for fd in (again, keep, wfd):
            os.close(fd)
        r.close()


def _whenStopped(r: Any, note: list[Any]) -> None:
    if isinstance(r, AsyncioReactor):
        future = r.whenStopped()
        future.add_done_callback(lambda _: note.append((r.stopping, r.isReactorThread())))
        note.append(future)
    else:
        r.whenStopped(lambda: note.append((r.stopping, r.isReactorThread())))


@pytest.mark.parametrize("kind", HOSTED_KINDS)
def test_stopWaitersHearOfACrashInAStartupTrigger(kind: str) -> None:
    """run() whose startup trigger crashes the reactor returns, and its stop waiters are told."""
    r = makeReactor(kind)
    note: list[Any] = []
    r.callWhenRunning(_whenStopped, r, note)
    r.callWhenRunning(r.crash)
    r.run(installSignalHandlers=False)
    if isinstance(r, AsyncioReactor):
        assert note[0].done()
    else:
        assert note == [(False, False)]
    r.close()


@pytest.mark.parametrize("kind", HOSTED_KINDS)
def test_aStopWaiterSeesTheReactorFullyStopped(kind: str) -> None:
    """When a stop waiter runs, the reactor is no longer stopping nor bound to the thread (it could be run
    again from there)."""
    r = makeReactor(kind)
    note: list[Any] = []
    r.callWhenRunning(_whenStopped, r, note)
    r.callLater(0, r.stop)  # in the first turn after startup
    runBounded(r)
    if isinstance(r, AsyncioReactor):
        r.eventloop.run_until_complete(note[0])  # its done-callbacks run on the loop
        note = note[1:]
    assert note == [(False, False)]
    r.close()


@pytest.mark.parametrize("kind", HOSTED_KINDS)
def test_aClosedReactorRunsNothingWhenItsHostLoopRunsAgain(kind: str) -> None:
    """Timed calls still pending and turns still scheduled at close() never run on the host loop later."""
    hostLoop = asyncio.new_event_loop() if kind == "asyncio" else None
    r = AsyncioReactor(hostLoop) if hostLoop is not None else makeReactor(kind)
    out: list[str] = []
    pending = r.callLater(0.02, out.append, "pending timed call")
    due = pending.getTime()

    def stopThenCrash() -> None:
        r.stop()
        r.crash()  # schedules one more turn on the host loop

    r.callWhenRunning(stopThenCrash)
    r.run(installSignalHandlers=False)
    r.close()
    r.close()  # idempotent
    # Run the host loop until the pending call's time has passed (not longer): it would have run by then.
    remaining = max(0.0, due - r.seconds())
    if hostLoop is not None:
        hostLoop.run_until_complete(asyncio.sleep(remaining))
        hostLoop.run_until_complete(asyncio.sleep(0))  # and one more turn
        hostLoop.close()
    else:
        from PySide6.QtCore import QEventLoop, QTimer

        loop = QEventLoop()
        QTimer.singleShot(math.ceil(remaining * 1000) + 1, loop.quit)  # Qt rounds a timed call's ms up
        loop.exec()
    assert out == []


def test_inAFreshMainThreadTheReactorMakesOwnsAndClosesItsLoop() -> None:
    """No loop running or set: AsyncioReactor() makes its own (it does not adopt the loop the main
    thread's policy would create on the fly) and close() closes it."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("the policy's implicit loop exists only in the main thread")
    asyncio.set_event_loop_policy(None)  # a fresh policy: nothing set in this thread yet
    try:
        r = AsyncioReactor()
        own = r.eventloop
        r.callWhenRunning(r.stop)
        runBounded(r)
        r.close()
        closed = own.is_closed()
        if not closed:
            own.close()
        assert closed, "the loop AsyncioReactor() made is left open by close()"
    finally:
        asyncio.set_event_loop_policy(None)
