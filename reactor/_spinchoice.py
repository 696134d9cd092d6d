"""Whether a reactor made without ``spinTime`` spins for thread calls: measured on its own traffic.

Why not decide once, up front: a spinning loop saves the wake-up of a
blocked reactor thread, but its looks at the queue compete with the worker it
waits for (for the GIL and, on a 2-core machine, for a CPU). Which effect wins
depends on the machine, on what else runs there and on the workload, and the
calibration's two-thread ping-pong (:mod:`reactor._spinwait`) misjudged it: on one
idle machine it found spinning five times faster, while real sequential
``deferToThread`` round trips were slower with the loop spinning.

So the loop runs a small experiment on the calls it really serves. The
*gap* of a wait is the time from the moment the loop has run its thread calls
and found the queue empty to the moment it finds the next thread call: for a
caller that awaits each call before making the next, that is the round trip
seen from the loop, the worker's time included (slowed or not by the spinning
loop). The chooser alternates trials: ``trial`` waits with the loop spinning,
then ``trial`` waits blocking; it keeps the mode whose median gap is lower
(spinning must win by :data:`SPIN_GAIN`, as it costs CPU) for the next
``hold`` waits, then tries both again. Waits that end in something other than a
thread call (I/O, a timer), and gaps longer than ``longGap`` (a caller that is
not waiting on the round trip, or idle time), are not samples; if a trial
finds too few samples the loop blocks.

Owned by the reactor thread alone: no locks.
"""

from __future__ import annotations

import statistics

__all__: list[str] = []

#: Spinning is kept only if its median gap is below this fraction of the blocking one.
SPIN_GAIN = 0.9
#: Gaps longer than this (seconds) say nothing about spinning: the next call was not a moment away.
LONG_GAP = 0.002
#: Samples per mode in one trial.
TRIAL = 48
#: Waits spent in the chosen mode before the next trial.
HOLD = 4096


class SpinChoice:
    """Choose, wait by wait, whether the loop spins after its thread calls (reactor thread only).

    The loop calls :meth:`waiting` when it has run thread calls and is about
    to wait (it spins if that returns True), then :meth:`arrived` when it
    finds thread calls again, or :meth:`interrupted` when it woke for
    something else first. ``spins`` is the mode in use.
    """

    __slots__ = ("_blockGaps", "_hold", "_holdLeft", "_longGap", "_since", "_spinGaps", "_trial",
                 "_trialWaits", "spins", "trialsRun")

    def __init__(
        self, trial: int = TRIAL, hold: int = HOLD, longGap: float = LONG_GAP, decided: bool | None = None
    ) -> None:
        """``trial`` samples per mode, ``hold`` waits between trials, ``longGap`` seconds past which a
        gap is not a sample; ``decided`` starts with that mode held for ``hold`` waits (for tests)."""
        self._trial = trial
        self._hold = hold
        self._longGap = longGap
        self.spins = True  # the first trial measures spinning first
        self._spinGaps: list[float] = []
        self._blockGaps: list[float] = []
        self._holdLeft = 0  # waits left before the next trial (0: a trial is under way)
        self._since: float | None = None  # when the current wait began, if it is being measured
        self._trialWaits = 0  # waits measured in the trial under way
        self.trialsRun = 0
        if decided is not None:
            self.spins = decided
            self._holdLeft = hold

    def waiting(self, now: float) -> bool:
        """The loop is about to wait after running thread calls; True if it should spin first."""
        if self._holdLeft:
            self._holdLeft -= 1
            spins = self.spins
            if not self._holdLeft:
                self._startTrial()  # from the next wait on
            return spins
        self._trialWaits += 1
        if self._trialWaits > 4 * self._trial:
            self._giveUp()
            return False
        self._since = now
        return self.spins

    def arrived(self, now: float) -> None:
        """The loop found thread calls: the wait that :meth:`waiting` began ended with one."""
        since = self._since
        if since is None:
            return
        self._since = None
        gap = now - since
        if gap > self._longGap:
            return
        samples = self._spinGaps if self.spins else self._blockGaps
        samples.append(gap)
        if len(samples) < self._trial:
            return
        if self.spins:
            self.spins = False  # now the same number of blocking waits
            return
        self._decide()

    def interrupted(self) -> None:
        """The loop woke for something other than a thread call: that wait is not a sample."""
        self._since = None

    def _startTrial(self) -> None:
        self._spinGaps = []
        self._blockGaps = []
        self._trialWaits = 0
        self.spins = True

    def _giveUp(self) -> None:
        self.spins = False
        self._since = None
        self._holdLeft = self._hold
        self.trialsRun += 1

    def _decide(self) -> None:
        spinning = statistics.median(self._spinGaps)
        blocking = statistics.median(self._blockGaps)
        self.spins = spinning < blocking * SPIN_GAIN
        self._holdLeft = self._hold
        self.trialsRun += 1
