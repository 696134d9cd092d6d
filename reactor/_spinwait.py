"""Spin-then-block waiting for threads that hand each other work, without holding the GIL while spinning.

Why spin at all: on the virtual machines our users deploy to, waking a thread that
blocked (a futex or an ``epoll_wait``) costs tens of microseconds, because the CPU it
slept on went idle and must be woken by the hypervisor. A request/response exchange
between the reactor thread and a worker pays that twice per call. A waiter that
stays on its CPU for a short while before blocking, looking for the next piece of
work, pays nothing when the work arrives within that window.

Why not an ordinary busy loop: a spinning Python thread holds the GIL, so the very
thread it waits for cannot run. Each pause here is a ``zlib.crc32`` of a zero buffer
(at least 6 KiB), which CPython computes with the GIL *released* (it does so for any
buffer over 5 KiB): during it the other thread owns the interpreter, between two cheap
looks at a queue. Each pause ends with ``os.sched_yield``: when the machine is
oversubscribed and the thread we wait for is queued behind us on the same CPU, it runs
now rather than after our time slice (without it, one CPU-bound process beside the
benchmark made sequential calls 3x slower than not spinning at all).

How long a pause should last depends on the machine, by an order of magnitude: on one
of our 2-core virtual machines 28 us pauses were best, on another 1-2 us pauses were
best and 28 us ones four times slower; and on one a spinning reactor loop helped while
on the other a loop that blocks (and is woken by the worker's ``callFromThread``) was
faster. So the first spin in the process starts :func:`calibrate` in a background
thread (a few milliseconds, once): it times crc32, then plays a request/response
ping-pong between two threads shaped like a reactor and a worker, once per candidate
pause length (1-32 us), with the "reactor" blocking; keeps the shortest pause within
10% of the fastest; then plays it again with the "reactor" spinning as well and
reports whether that halved the round trip (``loopSpins``). Until it is done, pauses
are 16 KiB. :func:`spinCalibration` returns what it chose (running it first if need
be). Whether a reactor's loop spins is not taken from the ping-pong, which misjudged
it (see :mod:`reactor._spinchoice`): the loop measures its own thread-call traffic.

:class:`SpinPolicy` keeps the spinning to where it pays: every spin that comes back
empty doubles the number of waits that block at once before the next try (up to
64), and a spin that finds work resets it. A pool that is idle, or runs long
calls, or answers a little too slowly for the window, spins about once in 64
waits instead of every time.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from reactor._poller import makePoller

__all__ = ["SpinCalibration", "spinCalibration"]

#: The default spin window, in seconds: a little over the Python cost of one reactor
#: round (firing a Deferred, resuming a coroutine, submitting its next call).
DEFAULT_SPIN = 0.0001

#: The most waits that block at once between two tries, after empty spins in a row.
MAX_BACKOFF = 64

_MIN_PAUSE_BYTES = 6 * 1024  # CPython's crc32 releases the GIL only above 5 KiB
_MAX_PAUSE_BYTES = 1024 * 1024
_DEFAULT_PAUSE_BYTES = 16 * 1024  # until the calibration is done
_TIMED_BYTES = 32 * 1024  # the buffer timed to learn crc32's speed
#: The pause lengths tried, in seconds (each turned into a buffer length at the measured speed).
CANDIDATE_PAUSES = (1e-6, 2e-6, 4e-6, 8e-6, 16e-6, 32e-6)
_TRIAL_ROUND_TRIPS = 16  # per candidate and round
_ROUNDS = 3  # rounds over every candidate, interleaved, unless the budget runs out first
_CALIBRATION_BUDGET = 0.025  # seconds: no new round starts after this
_HARD_LIMIT = 0.1  # seconds: past this the ping-pong ends each trial after one round trip
_NEAR_BEST = 1.10  # the shortest pause within 10% of the fastest wins
# loopSpins reports whether spinning halves the ping-pong's round trip. The ping-pong flatters a spinning
# loop: on our 2-core machine it measured 5.5 us spinning against 8.3 us blocking (another time 7.6
# against 36.5 us), while real deferToThread round trips ran 1.3-1.8x faster with the loop blocking
# than spinning (the real loop's Python between looks collides with the worker's). Hence the loop's
# own trials (reactor._spinchoice).
_LOOP_SPIN_GAIN = 0.5

perfCounter = time.perf_counter
_crc32 = zlib.crc32
_schedYield = os.sched_yield

# Written once by the calibration (any thread), read by every spinner: plain attribute
# stores, so a reader sees the old or the new value, both sound.
_pauseBuffer = bytes(_DEFAULT_PAUSE_BYTES)
_calibration: SpinCalibration | None = None
_calibrationLock = threading.Lock()  # held while a calibration runs
_calibrationStarted = False  # a background calibration was started (or one ran)
_calibrationDone = threading.Event()


@dataclass(frozen=True, slots=True)
class SpinCalibration:
    """What the spin calibration measured on this machine and chose (see :func:`spinCalibration`).

    ``pauseBytes`` is the crc32 buffer of one pause and ``pauseSeconds`` how long
    it lasts at the measured ``crc32BytesPerSecond``; ``loopSpins`` says whether
    a spinning "reactor" halved the ping-pong's round trip (for information: a
    reactor made without ``spinTime`` decides from its own traffic instead).
    ``roundTrips`` holds, per candidate ``(pauseBytes, seconds)``, the median
    ping-pong round trip with the reactor side blocking; ``spinningLoopRoundTrip``
    and ``blockingLoopRoundTrip`` the medians measured at the chosen pause with the reactor side spinning and
    blocking. ``seconds`` is how long the calibration took.
    """

    pauseBytes: int
    pauseSeconds: float
    loopSpins: bool
    crc32BytesPerSecond: float
    roundTrips: tuple[tuple[int, float], ...]
    spinningLoopRoundTrip: float
    blockingLoopRoundTrip: float
    seconds: float


def pause() -> None:
    """Spend a moment of CPU with the GIL released, then offer the CPU to others (any thread).

    The first pause in the process starts the calibration in the background.
    """
    if not _calibrationStarted:
        _startCalibration()
    _crc32(_pauseBuffer)
    _schedYield()


#: measure(pauseBytes, callerSpins, count) -> ``count`` round-trip times in seconds.
Measure = Callable[[int, bool, int], Sequence[float]]


def calibrate(
    measure: Measure | None = None,
    clock: Callable[[], float] = time.perf_counter,
    budget: float = _CALIBRATION_BUDGET,
) -> SpinCalibration:
    """Measure this machine, choose the pause and whether the loop spins, and use them from now on.

    Any thread but a reactor's (it takes a few milliseconds). ``measure`` runs the
    round trips (a two-thread ping-pong by default) and ``clock`` times crc32 and
    the budget: tests inject both. At least one round over every candidate runs;
    no new round starts once ``budget`` seconds have passed.
    """
    global _pauseBuffer, _calibration, _calibrationStarted
    with _calibrationLock:
        _calibrationStarted = True
        began = clock()
        timed = bytes(_TIMED_BYTES)
        best = float("inf")
        for _ in range(3):
            started = clock()
            _crc32(timed)
            best = min(best, clock() - started)
        bytesPerSecond = _TIMED_BYTES / max(best, 1e-9)
        sizes = sorted({_pauseBytesFor(seconds, bytesPerSecond) for seconds in CANDIDATE_PAUSES})
        pingPong = _PingPong(perfCounter() + _HARD_LIMIT) if measure is None else None
        run: Measure = pingPong if pingPong is not None else measure  # type: ignore[assignment]
        try:
            samples: dict[int, list[float]] = {size: [] for size in sizes}
            for done in range(_ROUNDS):
                if done and clock() - began > budget:
                    break
                for size in sizes:
                    samples[size].extend(run(size, False, _TRIAL_ROUND_TRIPS))
            medians = {size: statistics.median(samples[size]) for size in sizes}
            fastest = min(medians.values())
            chosen = min(size for size in sizes if medians[size] <= fastest * _NEAR_BEST)
            spinning: list[float] = []
            blocking: list[float] = []
            for done in range(_ROUNDS):
                if done and clock() - began > budget:
                    break
                spinning.extend(run(chosen, True, _TRIAL_ROUND_TRIPS))
                blocking.extend(run(chosen, False, _TRIAL_ROUND_TRIPS))
        finally:
            if pingPong is not None:
                pingPong.close()
        spinningMedian = statistics.median(spinning)
        blockingMedian = statistics.median(blocking)
        result = SpinCalibration(
            pauseBytes=chosen,
            pauseSeconds=chosen / bytesPerSecond,
            loopSpins=spinningMedian < blockingMedian * _LOOP_SPIN_GAIN,
            crc32BytesPerSecond=bytesPerSecond,
            roundTrips=tuple((size, medians[size]) for size in sizes),
            spinningLoopRoundTrip=spinningMedian,
            blockingLoopRoundTrip=blockingMedian,
            seconds=clock() - began,
        )
        _pauseBuffer = bytes(chosen)
        _calibration = result
        _calibrationDone.set()
        return result


def spinCalibration(timeout: float = 10.0) -> SpinCalibration:
    """What the spin calibration chose on this machine, calibrating now (in this thread) if it has not run.

    Call it from any thread but a running reactor's, e.g. at start-up to pay the
    few milliseconds before the first request. If a background calibration is
    running, waits for it (at most ``timeout`` seconds, then calibrates here).
    """
    result = _calibration
    if result is not None:
        return result
    if _calibrationStarted and _calibrationDone.wait(timeout) and _calibration is not None:
        return _calibration
    return calibrate()


def _pauseBytesFor(seconds: float, bytesPerSecond: float) -> int:
    size = int(seconds * bytesPerSecond)
    size -= size % 1024
    return max(_MIN_PAUSE_BYTES, min(_MAX_PAUSE_BYTES, size))


def _startCalibration() -> None:
    """Start :func:`calibrate` in a daemon thread, once per process (any thread)."""
    global _calibrationStarted
    with _calibrationLock:
        if _calibrationStarted:
            return
        _calibrationStarted = True
    threading.Thread(target=_calibrateInBackground, name="reactor-spin-calibration", daemon=True).start()


def _calibrateInBackground() -> None:
    try:
        calibrate()
    finally:
        _calibrationDone.set()


def _busy(steps: int) -> int:
    """Python work standing in for one side's share of a round trip (holds the GIL)."""
    total = 0
    for step in range(steps):
        total += step
    return total


class _PingPong:
    """A request/response ping-pong between the calling thread and a helper thread, for calibrate().

    The helper plays a worker: it spins (with the pause under test) until a
    request arrives, does a little Python work and replies. The caller plays a
    reactor: a little more work, a request, then it waits for the reply either
    blocking on a lock the helper releases, or spinning with the same pause.
    """

    _CALLER_STEPS = 60  # about the Python a reactor runs per call (fire, resume, submit)
    _HELPER_STEPS = 20  # about the Python a worker runs per call (take, run, hand back)

    def __init__(self, deadline: float) -> None:
        self._deadline = deadline  # perfCounter() time after which a trial stops at one round trip
        self._requests: deque[bool] = deque()  # each says whether the caller blocks for its reply
        self._replies: deque[None] = deque()
        self._gate = threading.Lock()  # released by the helper once per reply the caller blocks for
        self._gate.acquire()
        self._buffer = bytes(_MIN_PAUSE_BYTES)  # the helper's pause; set by the caller between trials
        self._stopped = False
        # Polled (with nothing registered) by a spinning caller, as the loop polls its descriptors.
        self._poller = makePoller()
        self._helper = threading.Thread(target=self._serve, name="reactor-spin-calibration-peer", daemon=True)
        self._helper.start()

    def __call__(self, pauseBytes: int, callerSpins: bool, count: int) -> list[float]:
        buffer = bytes(pauseBytes)
        self._buffer = buffer
        requests = self._requests
        replies = self._replies
        acquire = self._gate.acquire
        poll = self._poller.poll
        clock = perfCounter
        samples: list[float] = []
        for n in range(count + 2):  # two warm-up round trips, not recorded
            started = clock()
            _busy(self._CALLER_STEPS)
            requests.append(not callerSpins)
            if callerSpins:
                while not replies:
                    poll(0)  # as the loop does: it keeps watching its descriptors while it spins
                    if replies:
                        break
                    _crc32(buffer)
                    _schedYield()
            elif not acquire(True, 5.0):
                raise RuntimeError("spin calibration: the peer thread stopped answering")
            replies.popleft()
            if n >= 2:
                ended = clock()
                samples.append(ended - started)
                if ended > self._deadline:
                    break  # a badly overloaded machine: keep the calibration bounded
        return samples

    def _serve(self) -> None:
        requests = self._requests
        while True:
            while not requests:
                if self._stopped:
                    return
                _crc32(self._buffer)
                _schedYield()
            callerBlocks = requests.popleft()
            _busy(self._HELPER_STEPS)
            self._replies.append(None)
            if callerBlocks:
                self._gate.release()

    def close(self) -> None:
        self._stopped = True
        self._helper.join(5.0)
        self._poller.close()


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
