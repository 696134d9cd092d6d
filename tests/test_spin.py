"""Spin-then-block: the policy, its arguments, and the two places that use it (the loop and the workers).

The threaded tests use a spin window far longer than the test needs (seconds), so
that "the second call arrived while the waiter was still spinning" holds however
slowly the machine runs; every wait is bounded.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from deferthreads import ThreadPool
from deferthreads._team import Team
from deferthreads._threadworker import ThreadWorker
from reactor import Reactor, _spin
from reactor._spin import DEFAULT_SPIN, MAX_BACKOFF, SpinPolicy, checkSpin
from tests.loopsupport import runBounded
from tests.test_threadpool_team import Harness

WAIT = 10.0


# -- the policy ----------------------------------------------------------------------------------


def test_policyWithAWindowSpinsAtFirst() -> None:
    assert SpinPolicy(0.001).shouldSpin()


def test_policyWithNoWindowNeverSpins() -> None:
    policy = SpinPolicy(0.0)
    policy.spun(True)
    assert not any(policy.shouldSpin() for _ in range(100))


def _pattern(policy: SpinPolicy, waits: int) -> str:
    """Which of the next ``waits`` waits spin ("s", each coming back empty) or block (".")."""
    out = []
    for _ in range(waits):
        if policy.shouldSpin():
            policy.spun(False)
            out.append("s")
        else:
            out.append(".")
    return "".join(out)


def test_policyBacksOffExponentiallyAfterEmptySpins() -> None:
    assert _pattern(SpinPolicy(0.001), 16) == "s.s..s....s....."


def test_policyBackOffIsCappedAtMaxBackoff() -> None:
    policy = SpinPolicy(0.001)
    _pattern(policy, 1000)
    while _pattern(policy, 1) != "s":
        pass
    assert _pattern(policy, 2 * (MAX_BACKOFF + 1)) == ("." * MAX_BACKOFF + "s") * 2


def test_policySpinsEveryTimeAgainAfterASpinFindsWork() -> None:
    policy = SpinPolicy(0.001)
    _pattern(policy, 100)
    while not policy.shouldSpin():
        pass
    policy.spun(True)
    assert policy.shouldSpin()


def test_pauseReleasesTheGIL() -> None:
    """Another thread makes progress while one thread does nothing but pause."""
    stop = threading.Event()
    counted = [0]

    def count() -> None:
        while not stop.is_set():
            counted[0] += 1

    t = threading.Thread(target=count)
    t.start()
    try:
        before = counted[0]
        for _ in range(2000):
            _spin.pause()
            if counted[0] - before > 1000:
                break
        assert counted[0] - before > 1000
    finally:
        stop.set()
        t.join(WAIT)


class _FakeTimer:
    """A clock for calibratePause: each crc32 it times seems to take ``seconds``."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.now = 0.0
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        if self.reads % 2 == 0:
            self.now += self.seconds
        return self.now


@pytest.fixture
def freshPause(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_spin, "_pauseBuffer", None)


@pytest.mark.usefixtures("freshPause")
def test_calibrationKeepsTheBaseBufferWhenCrc32IsSlowEnough() -> None:
    assert len(_spin.calibratePause(_FakeTimer(10e-6))) == 32 * 1024


@pytest.mark.usefixtures("freshPause")
def test_calibrationLengthensThePauseWhereCrc32IsFast() -> None:
    # 1.5 us for 32 KiB: four times as much data makes the 6 us target.
    assert len(_spin.calibratePause(_FakeTimer(1.5e-6))) == 128 * 1024


@pytest.mark.usefixtures("freshPause")
def test_calibrationIsCappedAtOneMebibyte() -> None:
    assert len(_spin.calibratePause(_FakeTimer(1e-9))) == 1024 * 1024


@pytest.mark.usefixtures("freshPause")
def test_firstPauseCalibratesOnce() -> None:
    _spin.pause()
    buffer = _spin._pauseBuffer
    assert buffer is not None and len(buffer) >= 32 * 1024
    _spin.pause()
    assert _spin._pauseBuffer is buffer


# -- argument checks -----------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [-0.001, float("nan"), float("inf")])
def test_checkSpinRejectsOutOfRangeValuesNamingTheArgument(bad: float) -> None:
    with pytest.raises(ValueError, match="spinTime"):
        checkSpin(bad, "spinTime")


@pytest.mark.parametrize("bad", ["0.1", None, True])
def test_checkSpinRejectsNonNumbersNamingTheArgument(bad: Any) -> None:
    with pytest.raises(TypeError, match="spinTime"):
        checkSpin(bad, "spinTime")


def test_threadPoolRejectsANegativeSpinTime() -> None:
    with pytest.raises(ValueError, match="spinTime"):
        ThreadPool(1, 2, spinTime=-1)


def test_reactorRejectsANonNumericSpinTime() -> None:
    with pytest.raises(TypeError, match="spinTime"):
        Reactor(spinTime="fast")  # type: ignore[arg-type]


def test_reactorSpinTimeDefaultsAndCanBeChanged() -> None:
    r = Reactor()
    try:
        assert r.spinTime == DEFAULT_SPIN
        r.spinTime = 0
        assert r.spinTime == 0.0
        with pytest.raises(ValueError, match="spinTime"):
            r.spinTime = -1
    finally:
        r.close()


def _waitFor(predicate: Any, timeout: float = WAIT) -> bool:
    """Poll ``predicate`` every millisecond until it holds or ``timeout`` seconds passed."""
    gate = threading.Event()
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        gate.wait(0.001)
    return True


# -- the workers ---------------------------------------------------------------------------------


class _CountingWorker(ThreadWorker):
    wakes = 0

    def wake(self) -> None:
        type(self).wakes += 1
        super().wake()


@pytest.fixture
def countingWorkers() -> Iterator[type[_CountingWorker]]:
    cls = type("Counting", (_CountingWorker,), {"wakes": 0})
    yield cls


def test_aSpinningWorkerTakesTheNextCallWithoutAWakeUp(countingWorkers: type[_CountingWorker]) -> None:
    pool = ThreadPool(1, 1, "spin", workerFactory=countingWorkers, spinTime=5.0)
    pool.start()
    try:
        for n in range(3):
            done = threading.Event()
            pool.callInThreadWithCallback(lambda ok, r, done=done: done.set(), int, n)
            assert done.wait(WAIT)
        # The first call may have had to wake the parked worker; the next two found it spinning.
        assert countingWorkers.wakes <= 1
    finally:
        pool.stop()


def test_aWorkerWithNoSpinTimeParksAndIsWoken(countingWorkers: type[_CountingWorker]) -> None:
    pool = ThreadPool(1, 1, "nospin", workerFactory=countingWorkers, spinTime=0)
    pool.start()
    try:
        for n in range(3):
            done = threading.Event()
            # Wait (bounded) until the worker is parked, so the call below must wake it.
            assert _waitFor(lambda: pool._team.statistics().idle == 1)
            pool.callInThreadWithCallback(lambda ok, r, done=done: done.set(), int, n)
            assert done.wait(WAIT)
        assert countingWorkers.wakes == 3
    finally:
        pool.stop()


def test_aWorkerStopsSpinningWhenThePoolStops() -> None:
    pool = ThreadPool(1, 1, "spinstop", spinTime=60.0)
    pool.start()
    done = threading.Event()
    pool.callInThreadWithCallback(lambda ok, r: done.set(), int, 1)
    assert done.wait(WAIT)
    stopped = threading.Thread(target=pool.stop)
    stopped.start()
    stopped.join(WAIT)
    assert not stopped.is_alive()
    assert pool.threads == []


def test_aFakeWorkerAfterAnEmptySpinParksWithoutSpinning(monkeypatch: pytest.MonkeyPatch) -> None:
    pauses: list[None] = []
    monkeypatch.setattr("deferthreads._team.pause", lambda: pauses.append(None))
    harness = Harness(1, 1, spinTime=0.002)
    harness.pool.start()
    worker = harness.workers[0]
    harness.team.workerStarted(worker)
    harness.team.runQueued(worker)  # empty queue: spins the whole window, finds nothing
    assert pauses
    spun = len(pauses)
    harness.team.runQueued(worker)  # backing off: parks at once
    assert len(pauses) == spun


def test_onlyOneWorkerSpinsAtATime() -> None:
    team = Team(lambda t, n: ThreadWorker(t, n), "one", 0, 2, spinTime=1.0)
    team._spinning = True  # another worker is spinning
    team._running = True
    from deferthreads._team import _WorkerRecord

    fake: Any = object()
    team._records[fake] = _WorkerRecord(lambda: None, 1.0)
    team.runQueued(fake)  # returns at once instead of spinning for a second
    assert team._records[fake].spin.shouldSpin()  # its own policy was not even consulted


# -- the loop ------------------------------------------------------------------------------------


def test_aSpinningLoopTakesTheNextThreadCallWithoutAWakerWrite() -> None:
    r = Reactor(spinTime=5.0)
    seen: list[int] = []
    ready = threading.Event()
    firstRan = threading.Event()

    def caller() -> None:
        assert ready.wait(WAIT)
        r.callFromThread(lambda: (seen.append(1), firstRan.set()))
        assert firstRan.wait(WAIT)
        writes = r._waker.writes
        r.callFromThread(lambda: (seen.append(2), seen.append(r._waker.writes - writes), r.stop()))

    t = threading.Thread(target=caller)
    t.start()
    r.callWhenRunning(ready.set)
    try:
        runBounded(r)
    finally:
        t.join(WAIT)
        r.close()
    assert seen == [1, 2, 0]


def test_aSpinningLoopStillServesIO() -> None:
    """While it spins for thread calls the loop still answers a readable descriptor promptly."""
    import os

    r = Reactor(spinTime=5.0)
    readFD, writeFD = os.pipe()
    got: list[bytes] = []

    class Reader:
        def fileno(self) -> int:
            return readFD

        def doRead(self) -> None:
            got.append(os.read(readFD, 10))
            r.stop()

        def connectionLost(self, reason: object) -> None:
            pass

        def logPrefix(self) -> str:
            return "Reader"

    def afterThreadCall() -> None:
        # The loop is now spinning (it just ran a thread call): make the pipe readable.
        os.write(writeFD, b"x")

    def start() -> None:
        r.addReader(Reader())
        threading.Thread(target=r.callFromThread, args=(afterThreadCall,)).start()

    r.callWhenRunning(start)
    try:
        runBounded(r)
    finally:
        r.close()
        os.close(readFD)
        os.close(writeFD)
    assert got == [b"x"]


def test_aSpinningLoopDoesNotDelayADueTimedCall() -> None:
    r = Reactor(spinTime=30.0)
    fired: list[str] = []

    def threadCall() -> None:
        r.callLater(0.01, lambda: (fired.append("timer"), r.stop()))

    r.callWhenRunning(lambda: threading.Thread(target=r.callFromThread, args=(threadCall,)).start())
    try:
        runBounded(r, 5.0)  # would trip the safety net if the spin ran its full 30 s
    finally:
        r.close()
    assert fired == ["timer"]
