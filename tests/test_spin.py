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
from reactor import Reactor
from reactor import _spinwait as _spin
from reactor._spinchoice import SpinChoice
from reactor._spinwait import DEFAULT_SPIN, MAX_BACKOFF, SpinPolicy, checkSpin
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
    """A clock for calibrate that advances ``seconds`` per read: each crc32 it times takes that long.

    From read ``slowFrom`` on, it advances a second per read instead (past any budget).
    """

    def __init__(self, seconds: float, slowFrom: int = 10**9) -> None:
        self.seconds = seconds
        self.slowFrom = slowFrom
        self.now = 0.0
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        self.now += 1.0 if self.reads >= self.slowFrom else self.seconds
        return self.now


class _FakeMeasure:
    """Round trips for calibrate: ``blocking[pauseBytes]`` when the loop blocks, else ``spinning``."""

    def __init__(self, blocking: dict[int, float], spinning: float) -> None:
        self.blocking = blocking
        self.spinning = spinning
        self.calls: list[tuple[int, bool, int]] = []

    def __call__(self, pauseBytes: int, callerSpins: bool, count: int) -> list[float]:
        self.calls.append((pauseBytes, callerSpins, count))
        return [self.spinning if callerSpins else self.blocking[pauseBytes]] * count


# 32 KiB of crc32 in 6 us: the candidates (1, 2, 4, 8, 16, 32 us) are these buffers, the first floored.
_SIZES = [6 * 1024, 10 * 1024, 21 * 1024, 42 * 1024, 85 * 1024, 170 * 1024]


@pytest.fixture
def freshCalibration(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run the test with no calibration done, and restore the process's own afterwards."""
    for name, value in [
        ("_pauseBuffer", bytes(16 * 1024)),
        ("_calibration", None),
        ("_calibrationStarted", False),
        ("_calibrationDone", threading.Event()),
    ]:
        monkeypatch.setattr(_spin, name, value)


def _roundTrips(fastest: int, near: int | None = None) -> dict[int, float]:
    """50 us everywhere, 10 us at ``fastest``, 10.5 us (within 10%) at ``near``."""
    table = dict.fromkeys(_SIZES, 50e-6)
    table[fastest] = 10e-6
    if near is not None:
        table[near] = 10.5e-6
    return table


@pytest.mark.usefixtures("freshCalibration")
def test_calibrationTriesPausesFromOneTo32MicrosecondsAtTheMeasuredCrc32Speed() -> None:
    measure = _FakeMeasure(_roundTrips(_SIZES[2]), spinning=1.0)
    result = _spin.calibrate(measure, _FakeTimer(6e-6))
    assert [size for size, _ in result.roundTrips] == _SIZES
    assert result.crc32BytesPerSecond == pytest.approx(32 * 1024 / 6e-6)


@pytest.mark.usefixtures("freshCalibration")
def test_calibrationChoosesTheFastestPause() -> None:
    result = _spin.calibrate(_FakeMeasure(_roundTrips(_SIZES[3]), spinning=1.0), _FakeTimer(6e-6))
    assert result.pauseBytes == _SIZES[3]
    assert result.pauseSeconds == pytest.approx(_SIZES[3] * 6e-6 / (32 * 1024))
    assert len(_spin._pauseBuffer) == _SIZES[3]


@pytest.mark.usefixtures("freshCalibration")
def test_calibrationPrefersAShorterPauseWithinTenPercentOfTheFastest() -> None:
    result = _spin.calibrate(_FakeMeasure(_roundTrips(_SIZES[4], near=_SIZES[1]), 1.0), _FakeTimer(6e-6))
    assert result.pauseBytes == _SIZES[1]


@pytest.mark.usefixtures("freshCalibration")
def test_calibrationNeverGoesBelowTheBufferThatReleasesTheGIL() -> None:
    # crc32 so slow that 1 us is 1 KiB: the shortest candidates all become the 6 KiB floor.
    result = _spin.calibrate(_FakeMeasure(dict.fromkeys(range(0, 2**21, 1024), 1e-5), 1.0), _FakeTimer(32e-6))
    assert min(size for size, _ in result.roundTrips) == 6 * 1024
    assert result.pauseBytes == 6 * 1024


@pytest.mark.usefixtures("freshCalibration")
def test_calibrationCapsThePauseAtOneMebibyte() -> None:
    result = _spin.calibrate(_FakeMeasure(dict.fromkeys([1024 * 1024], 1e-5), 1.0), _FakeTimer(1e-9))
    assert [size for size, _ in result.roundTrips] == [1024 * 1024]


@pytest.mark.usefixtures("freshCalibration")
def test_calibrationLetsTheLoopSpinOnlyWhereThatHalvesTheRoundTrip() -> None:
    spins = _spin.calibrate(_FakeMeasure(_roundTrips(_SIZES[0]), spinning=4.9e-6), _FakeTimer(6e-6))
    assert spins.loopSpins
    blocks = _spin.calibrate(_FakeMeasure(_roundTrips(_SIZES[0]), spinning=5.1e-6), _FakeTimer(6e-6))
    assert not blocks.loopSpins
    assert (blocks.spinningLoopRoundTrip, blocks.blockingLoopRoundTrip) == (5.1e-6, 10e-6)


@pytest.mark.usefixtures("freshCalibration")
def test_calibrationRunsThreeRoundsWithinItsBudget() -> None:
    measure = _FakeMeasure(_roundTrips(_SIZES[0]), spinning=1.0)
    _spin.calibrate(measure, _FakeTimer(6e-6))
    blockingCalls = [call for call in measure.calls if not call[1]]
    assert len(blockingCalls) == 3 * len(_SIZES) + 3  # three rounds, then three to compare with spinning


@pytest.mark.usefixtures("freshCalibration")
def test_calibrationPastItsBudgetRunsOneRoundOnly() -> None:
    measure = _FakeMeasure(_roundTrips(_SIZES[0]), spinning=1.0)
    result = _spin.calibrate(measure, _FakeTimer(6e-6, slowFrom=8))  # the crc32 timings take 7 reads
    assert len(measure.calls) == len(_SIZES) + 2
    assert result.pauseBytes == _SIZES[0]


@pytest.mark.usefixtures("freshCalibration")
def test_spinCalibrationReturnsTheCachedResultWithoutMeasuringAgain() -> None:
    measure = _FakeMeasure(_roundTrips(_SIZES[0]), spinning=1.0)
    first = _spin.calibrate(measure, _FakeTimer(6e-6))
    calls = len(measure.calls)
    assert _spin.spinCalibration() is first
    assert len(measure.calls) == calls


@pytest.mark.usefixtures("freshCalibration")
def test_theFirstPauseStartsOneBackgroundCalibration(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[None] = []

    def fakeStart() -> None:
        started.append(None)
        _spin._calibrationStarted = True

    monkeypatch.setattr(_spin, "_startCalibration", fakeStart)
    _spin.pause()
    _spin.pause()
    assert started == [None]


@pytest.mark.usefixtures("freshCalibration")
def test_theRealCalibrationChoosesACandidatePause() -> None:
    """The real ping-pong runs to the end and chooses one of its candidates (no timing asserted)."""
    result = _spin.spinCalibration()
    assert result.pauseBytes in [size for size, _ in result.roundTrips]
    assert result.pauseBytes >= 6 * 1024
    assert all(seconds > 0 for _, seconds in result.roundTrips)
    assert _spin.spinCalibration() is result
    assert not [t for t in threading.enumerate() if t.name.startswith("reactor-spin-calibration")]


def test_spinCalibrationIsPublic() -> None:
    import reactor

    assert reactor.spinCalibration is _spin.spinCalibration
    assert reactor.SpinCalibration is _spin.SpinCalibration


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


def _pausesAfterAThreadCall(r: Reactor, monkeypatch: pytest.MonkeyPatch) -> list[None]:
    """Run ``r`` through one thread call (from another thread) and a stop; return the loop's pauses."""
    pauses: list[None] = []
    monkeypatch.setattr("reactor._loop.pause", lambda: pauses.append(None))
    firstRan = threading.Event()

    def caller() -> None:
        r.callFromThread(firstRan.set)
        assert firstRan.wait(WAIT)
        # Only once the loop is about to block (after any spin) does the next call arrive.
        assert _waitFor(lambda: not r._awake)
        r.callFromThread(r.stop)

    r.callWhenRunning(lambda: threading.Thread(target=caller).start())
    try:
        runBounded(r)
    finally:
        r.close()
    return pauses


def _blockingDefaultReactor() -> Reactor:
    """A reactor made without spinTime whose own trials have chosen to block."""
    r = Reactor()
    r._spinChoice = SpinChoice(decided=False)
    return r


def test_aDefaultLoopDoesNotSpinWhileItsTrialsChoseToBlock(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _pausesAfterAThreadCall(_blockingDefaultReactor(), monkeypatch) == []


def test_aDefaultLoopSpinsWhileItsTrialsChoseToSpin(monkeypatch: pytest.MonkeyPatch) -> None:
    r = Reactor()
    r._spinChoice = SpinChoice(decided=True)
    assert _pausesAfterAThreadCall(r, monkeypatch)


def test_aLoopGivenASpinTimeSpinsWithoutTrials(monkeypatch: pytest.MonkeyPatch) -> None:
    r = Reactor(spinTime=0.05)
    assert r._spinChoice is None
    assert _pausesAfterAThreadCall(r, monkeypatch)


def test_settingSpinTimeOverridesTheTrials(monkeypatch: pytest.MonkeyPatch) -> None:
    r = _blockingDefaultReactor()
    r.spinTime = 0.05
    assert _pausesAfterAThreadCall(r, monkeypatch)
