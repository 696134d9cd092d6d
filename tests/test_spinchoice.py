"""The loop's own choice between spinning and blocking for thread calls (reactor._spinchoice).

Driven from one thread with made-up times: each ``wait`` is the loop waiting
after its thread calls, ended by the next thread call ``gap`` seconds later.
"""

from __future__ import annotations

from reactor._spinchoice import SpinChoice


class Loop:
    """Plays the reactor's side of the protocol against a SpinChoice, with a fake clock."""

    def __init__(self, choice: SpinChoice) -> None:
        self.choice = choice
        self.now = 100.0
        self.modes: list[bool] = []

    def wait(self, spinningGap: float, blockingGap: float) -> bool:
        spins = self.choice.waiting(self.now)
        self.modes.append(spins)
        self.now += spinningGap if spins else blockingGap
        self.choice.arrived(self.now)
        return spins

    def waits(self, n: int, spinningGap: float, blockingGap: float) -> None:
        for _ in range(n):
            self.wait(spinningGap, blockingGap)


def test_aTrialMeasuresSpinningThenBlockingForTheSameNumberOfWaits() -> None:
    loop = Loop(SpinChoice(trial=4, hold=100))
    loop.waits(8, 10e-6, 30e-6)
    assert loop.modes == [True] * 4 + [False] * 4


def test_spinningIsKeptWhereItShortensTheGap() -> None:
    choice = SpinChoice(trial=4, hold=100)
    loop = Loop(choice)
    loop.waits(8, 10e-6, 30e-6)
    assert choice.trialsRun == 1 and choice.spins
    loop.waits(50, 10e-6, 30e-6)
    assert loop.modes[8:] == [True] * 50


def test_blockingIsKeptWhereSpinningLengthensTheGap() -> None:
    choice = SpinChoice(trial=4, hold=100)
    loop = Loop(choice)
    loop.waits(8, 40e-6, 20e-6)
    loop.waits(50, 40e-6, 20e-6)
    assert not choice.spins and loop.modes[8:] == [False] * 50


def test_spinningMustWinByTenPercentToBeKept() -> None:
    choice = SpinChoice(trial=4, hold=100)
    Loop(choice).waits(8, 19e-6, 20e-6)  # 5% faster: not worth a CPU
    assert not choice.spins


def test_bothModesAreTriedAgainAfterTheHold() -> None:
    choice = SpinChoice(trial=4, hold=10)
    loop = Loop(choice)
    loop.waits(8, 40e-6, 20e-6)  # blocking wins
    loop.waits(10, 40e-6, 20e-6)  # the hold
    assert loop.modes[8:] == [False] * 10
    loop.waits(8, 10e-6, 20e-6)  # the machine changed: now spinning wins
    assert loop.modes[18:] == [True] * 4 + [False] * 4
    assert choice.trialsRun == 2 and choice.spins


def test_aLongGapIsNotASample() -> None:
    choice = SpinChoice(trial=4, hold=100, longGap=0.001)
    loop = Loop(choice)
    loop.waits(3, 10e-6, 30e-6)
    loop.wait(0.5, 0.5)  # idle time, not a round trip
    assert choice.spins  # still the spinning half of the trial: three samples so far
    loop.wait(10e-6, 30e-6)
    assert not choice.spins  # the fourth sample ends the spinning half


def test_aWaitEndedBySomethingElseIsNotASample() -> None:
    choice = SpinChoice(trial=2, hold=100)
    choice.waiting(0.0)
    choice.interrupted()  # woke for I/O first
    choice.arrived(5.0)  # so this thread call says nothing about the gap
    assert choice.spins
    choice.waiting(10.0)
    choice.arrived(10.00001)
    assert choice.spins  # one sample of two


def test_aTrialWithoutEnoughSamplesEndsBlocking() -> None:
    choice = SpinChoice(trial=4, hold=100, longGap=0.001)
    loop = Loop(choice)
    loop.waits(17, 0.01, 0.01)  # no tight exchange with a thread: every gap is long
    assert not choice.spins and choice.trialsRun == 1
    loop.waits(20, 10e-6, 10e-6)
    assert loop.modes[-20:] == [False] * 20  # held


def test_aDecidedChoiceHoldsItsModeWithoutATrial() -> None:
    choice = SpinChoice(trial=2, hold=5, decided=False)
    loop = Loop(choice)
    loop.waits(5, 1e-6, 50e-6)
    assert loop.modes == [False] * 5 and choice.trialsRun == 0
