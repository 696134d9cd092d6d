"""Tests of reactor.task's Cooperator, cooperate and coiterate, driven tick by tick on a Clock."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

import reactor.task
from reactor import Deferred, Failure
from reactor.task import (
    Clock,
    CooperativeTask,
    Cooperator,
    NotPaused,
    SchedulerError,
    SchedulerStopped,
    TaskDone,
    TaskFailed,
    TaskFinished,
    TaskStopped,
)


def unitsPerTick(n: int) -> Callable[[], Callable[[], bool]]:
    """A termination predicate factory allowing ``n`` units of work per tick."""

    def factory() -> Callable[[], bool]:
        count = 0

        def done() -> bool:
            nonlocal count
            count += 1
            return count >= n

        return done

    return factory


def makeCooperator(clock: Clock, n: int = 1000, started: bool = True) -> Cooperator:
    """A Cooperator ticking once per second of ``clock``, ``n`` units of work per tick."""
    return Cooperator(unitsPerTick(n), lambda tick: clock.callLater(1.0, tick), started)


def recorder(log: list[str], name: str, count: int) -> Iterator[None]:
    """A task appending ``name + index`` to ``log`` once per unit of work."""
    for i in range(count):
        log.append(f"{name}{i}")
        yield None


def outcome(d: Deferred[Any]) -> list[Any]:
    """Collect what ``d`` fires with (a value or a Failure) into a list."""
    results: list[Any] = []
    d.addBoth(results.append)
    return results


def test_tasksTakeTurnsRoundRobin() -> None:
    """Each task does one unit in turn, in the order the tasks were added."""
    clock = Clock()
    coop = makeCooperator(clock)
    log: list[str] = []
    coop.cooperate(recorder(log, "a", 3))
    coop.cooperate(recorder(log, "b", 1))
    coop.cooperate(recorder(log, "c", 2))
    assert log == []
    clock.advance(1)
    assert log == ["a0", "b0", "c0", "a1", "c1", "a2"]


def test_terminationPredicateBoundsWorkPerTick() -> None:
    """A tick stops when the predicate says so; the rotation resumes where it left off."""
    clock = Clock()
    coop = makeCooperator(clock, n=2)
    log: list[str] = []
    coop.cooperate(recorder(log, "a", 3))
    coop.cooperate(recorder(log, "b", 3))
    coop.cooperate(recorder(log, "c", 3))
    clock.advance(1)
    assert log == ["a0", "b0"]
    clock.advance(1)
    assert log == ["a0", "b0", "c0", "a1"]
    clock.advance(1)
    assert log[4:] == ["b1", "c1"]


def test_noTickScheduledWithoutTasks() -> None:
    """An idle Cooperator holds no timer; the last task finishing cancels the pending one."""
    clock = Clock()
    coop = makeCooperator(clock)
    assert clock.getDelayedCalls() == []
    t = coop.cooperate(iter([1, 2]))
    assert len(clock.getDelayedCalls()) == 1
    t.stop()
    assert clock.getDelayedCalls() == []
    outcome(t.whenDone())


def test_whenDoneFiresWithIterator() -> None:
    """whenDone fires with the iterator once it is exhausted, even when asked afterwards."""
    clock = Clock()
    coop = makeCooperator(clock)
    it = iter(range(3))
    t = coop.cooperate(it)
    early = outcome(t.whenDone())
    clock.advance(1)
    assert early == [it]
    assert outcome(t.whenDone()) == [it]
    with pytest.raises(TaskDone):
        t.pause()
    with pytest.raises(TaskDone):
        t.stop()


def test_coiterateFiresWithIterator() -> None:
    """coiterate returns a Deferred firing with the iterator, or with the given doneDeferred."""
    clock = Clock()
    coop = makeCooperator(clock)
    it = iter("xyz")
    result = outcome(coop.coiterate(it))
    mine: Deferred[Iterator[str]] = Deferred()
    it2 = iter("ab")
    assert coop.coiterate(it2, mine) is mine
    clock.advance(1)
    assert result == [it]
    assert outcome(mine) == [it2]


def test_pauseAndResume() -> None:
    """A paused task gets no work until resumed as many times as it was paused."""
    clock = Clock()
    coop = makeCooperator(clock, n=1)
    log: list[str] = []
    a = coop.cooperate(recorder(log, "a", 3))
    coop.cooperate(recorder(log, "b", 5))
    a.pause()
    a.pause()
    clock.advance(1)
    clock.advance(1)
    assert log == ["b0", "b1"]
    a.resume()
    clock.advance(1)
    assert log == ["b0", "b1", "b2"]
    a.resume()  # back in the rotation, behind b
    clock.pump([1, 1, 1])
    assert log == ["b0", "b1", "b2", "b3", "a0", "b4"]
    with pytest.raises(NotPaused):
        a.resume()


def test_stopTaskFailsWhenDoneWithTaskStopped() -> None:
    """stop() ends the task: no more units, whenDone errbacks TaskStopped, later stop raises."""
    clock = Clock()
    coop = makeCooperator(clock, n=1)
    log: list[str] = []
    t = coop.cooperate(recorder(log, "a", 5))
    done = outcome(t.whenDone())
    clock.advance(1)
    t.stop()
    clock.advance(1)
    assert log == ["a0"]
    assert isinstance(done[0], Failure) and done[0].check(TaskStopped)
    with pytest.raises(TaskStopped):
        t.stop()
    with pytest.raises(TaskFinished):
        t.pause()


def test_yieldedDeferredPausesOnlyItsTask() -> None:
    """A task yielding an unfired Deferred waits for it while the others keep working."""
    clock = Clock()
    coop = makeCooperator(clock)
    log: list[str] = []
    gate: Deferred[None] = Deferred()

    def waiter() -> Iterator[object]:
        log.append("w0")
        yield gate
        log.append("w1")

    coop.cooperate(waiter())
    other = coop.cooperate(recorder(log, "o", 3))
    clock.advance(1)
    assert log == ["w0", "o0", "o1", "o2"]
    assert outcome(other.whenDone())
    clock.advance(1)
    assert log[-1] == "o2"
    assert clock.getDelayedCalls() == []  # nothing to run: no tick scheduled
    gate.callback(None)
    clock.advance(1)
    assert log[-1] == "w1"


def test_failedYieldedDeferredFailsTask() -> None:
    """A yielded Deferred that fails ends the task; whenDone errbacks with that failure."""
    clock = Clock()
    coop = makeCooperator(clock)
    gate: Deferred[None] = Deferred()
    t = coop.cooperate(iter([gate, None]))
    done = outcome(t.whenDone())
    clock.advance(1)
    gate.errback(ValueError("no"))
    assert isinstance(done[0], Failure) and done[0].check(ValueError)
    with pytest.raises(TaskFailed):
        t.stop()


def test_iteratorExceptionFailsWhenDone() -> None:
    """An exception from the iterator errbacks whenDone with it; other tasks go on."""
    clock = Clock()
    coop = makeCooperator(clock)
    log: list[str] = []

    def broken() -> Iterator[None]:
        yield None
        raise KeyError("boom")

    t = coop.cooperate(broken())
    done = outcome(t.whenDone())
    good = outcome(coop.coiterate(recorder(log, "g", 3)))
    clock.advance(1)
    assert isinstance(done[0], Failure) and done[0].check(KeyError)
    assert log == ["g0", "g1", "g2"] and len(good) == 1
    with pytest.raises(TaskFailed):
        t.pause()


def test_stopCooperatorFailsOutstandingTasks() -> None:
    """Cooperator.stop errbacks every unfinished task, paused ones included, with SchedulerStopped."""
    clock = Clock()
    coop = makeCooperator(clock, n=1)
    log: list[str] = []
    running = coop.cooperate(recorder(log, "r", 5))
    paused = coop.cooperate(recorder(log, "p", 5))
    paused.pause()
    results = [outcome(running.whenDone()), outcome(paused.whenDone())]
    clock.advance(1)
    coop.stop()
    assert not coop.running
    for r in results:
        assert isinstance(r[0], Failure) and r[0].check(SchedulerStopped)
    assert clock.getDelayedCalls() == []
    clock.advance(1)
    assert log == ["r0"]
    paused.resume()  # allowed; the task stays ended
    with pytest.raises(SchedulerStopped):
        running.stop()


def test_addingToStoppedCooperatorFailsAtOnce() -> None:
    """A task added to a stopped Cooperator ends with SchedulerStopped; start() accepts work again."""
    clock = Clock()
    coop = makeCooperator(clock)
    coop.stop()
    late = outcome(coop.coiterate(iter([1])))
    assert isinstance(late[0], Failure) and late[0].check(SchedulerStopped)
    coop.start()
    assert coop.running
    it = iter([1])
    again = outcome(coop.coiterate(it))
    clock.advance(1)
    assert again == [it]


def test_notStartedQueuesUntilStart() -> None:
    """With started=False nothing is scheduled until start()."""
    clock = Clock()
    coop = makeCooperator(clock, started=False)
    log: list[str] = []
    coop.cooperate(recorder(log, "a", 2))
    assert not coop.running
    assert clock.getDelayedCalls() == []
    coop.start()
    clock.advance(1)
    assert log == ["a0", "a1"]


def test_whenDoneCallbackMayStopCooperator() -> None:
    """A whenDone callback can stop the Cooperator while a tick is running."""
    clock = Clock()
    coop = makeCooperator(clock)
    log: list[str] = []
    first = coop.cooperate(iter([1]))
    other = outcome(coop.coiterate(recorder(log, "o", 5)))
    first.whenDone().addCallback(lambda _: coop.stop())
    clock.advance(1)
    assert log == ["o0"]
    assert isinstance(other[0], Failure) and other[0].check(SchedulerStopped)


def test_taskPausingItselfFromInsideItsUnit() -> None:
    """A task may pause itself from inside next(); it resumes at the back of the rotation."""
    clock = Clock()
    coop = makeCooperator(clock)
    log: list[str] = []
    holder: list[CooperativeTask[Any]] = []

    def selfPausing() -> Iterator[None]:
        log.append("s0")
        holder[0].pause()
        yield None
        log.append("s1")

    holder.append(coop.cooperate(selfPausing()))
    coop.cooperate(recorder(log, "o", 2))
    clock.advance(1)
    assert log == ["s0", "o0", "o1"]
    holder[0].resume()
    clock.advance(1)
    assert log[-1] == "s1"


def test_badArgumentsRaiseAtTheCall() -> None:
    """Non-callables and non-iterators raise TypeError naming the argument."""
    with pytest.raises(TypeError, match="terminationPredicateFactory"):
        Cooperator(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="scheduler"):
        Cooperator(scheduler=None)  # type: ignore[arg-type]
    coop = makeCooperator(Clock())
    with pytest.raises(TypeError, match="iterator"):
        coop.cooperate([1, 2])  # type: ignore[type-var]
    with pytest.raises(TypeError, match="doneDeferred"):
        coop.coiterate(iter([1]), 5)  # type: ignore[arg-type]


def test_errorHierarchyAndExports() -> None:
    """The error classes nest as in Twisted, and reactor.task exports the public names."""
    assert issubclass(TaskDone, TaskFinished) and issubclass(TaskStopped, TaskFinished)
    assert issubclass(TaskFailed, TaskFinished) and issubclass(TaskFinished, SchedulerError)
    assert issubclass(SchedulerStopped, SchedulerError) and issubclass(NotPaused, SchedulerError)
    for name in ("cooperate", "coiterate", "Cooperator", "CooperativeTask", "SchedulerStopped"):
        assert name in reactor.task.__all__


def test_defaultCooperatorRunsOnAReactor() -> None:
    """The default scheduler ticks on the reactor given and the default predicate bounds a tick."""
    from reactor import Reactor

    r = Reactor()
    try:
        coop = Cooperator(scheduler=lambda tick: r.callLater(0, tick))
        it = iter(range(1000))
        d = coop.coiterate(it)
        results = outcome(d)
        d.addBoth(lambda _: r.stop())
        r.callLater(10, r.stop)  # safety bound
        r.run(installSignalHandlers=False)
        assert results == [it]
    finally:
        r.close()


def test_reprSaysState() -> None:
    """Reprs of the Cooperator and tasks say their state."""
    clock = Clock()
    coop = makeCooperator(clock)
    t = coop.cooperate(iter([1]))
    assert "running" in repr(coop) and "running" in repr(t)
    t.pause()
    assert "paused" in repr(t)
    coop.stop()
    assert "SchedulerStopped" in repr(t) and "stopped" in repr(coop)
    outcome(t.whenDone())
