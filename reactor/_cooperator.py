"""Cooperative multitasking for long jobs: run many iterators a slice at a time (Twisted's ``Cooperator``).

A *task* is an iterator; each ``next()`` on it is one unit of work. A :class:`Cooperator` steps
its tasks round-robin, one unit each in turn, and ends a *tick* when its termination predicate
says the slice is used up (by default after 10 ms), then asks its scheduler for the next tick
(by default ``getReactor().callLater`` with a tiny delay), so a long computation never holds the
reactor for more than a slice. A task that yields a :class:`~reactor.Deferred` is paused until
that Deferred fires; the other tasks go on meanwhile.

The scheduler and the termination predicate are injected (``Cooperator(terminationPredicateFactory,
scheduler, started)``), so tests drive ticks deterministically with a :class:`reactor.task.Clock`.

Everything here runs in the thread that runs the scheduler's calls (the reactor thread); like
Deferreds, none of it is thread-safe. Same names and meaning as ``twisted.internet.task``.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from reactor._deferred import Deferred
from reactor._failure import Failure

__all__ = [
    "CooperativeTask",
    "Cooperator",
    "NotPaused",
    "SchedulerError",
    "SchedulerStopped",
    "TaskDone",
    "TaskFailed",
    "TaskFinished",
    "TaskStopped",
    "coiterate",
    "cooperate",
]

_TaskIteratorT = TypeVar("_TaskIteratorT", bound=Iterator[object])


class SchedulerError(Exception):
    """Base class: the scheduler or one of its tasks is in a state that forbids the operation."""


class SchedulerStopped(SchedulerError):
    """The Cooperator was stopped before (or while) the task ran."""


class TaskFinished(SchedulerError):
    """The task has ended for good (done, stopped or failed) and cannot be paused or stopped."""


class TaskDone(TaskFinished):
    """The task's iterator was exhausted."""


class TaskStopped(TaskFinished):
    """The task was stopped with :meth:`CooperativeTask.stop`."""


class TaskFailed(TaskFinished):
    """The task's iterator raised (or a Deferred it yielded failed)."""


class NotPaused(SchedulerError):
    """:meth:`CooperativeTask.resume` was called on a task that is not paused."""


class _Timer:
    """The default termination predicate: true once ``MAX_SLICE`` seconds of the tick have passed."""

    MAX_SLICE = 0.01

    def __init__(self) -> None:
        self.end = time.monotonic() + self.MAX_SLICE

    def __call__(self) -> bool:
        return time.monotonic() >= self.end


# Small but non-zero, as in Twisted: other timers due "now" get their turn between ticks.
_EPSILON = 0.00000001


def _defaultScheduler(tick: Callable[[], None]) -> Any:
    """Schedule ``tick`` on the process-wide reactor, looked up at the call (never at import)."""
    from reactor._default import getReactor

    return getReactor().callLater(_EPSILON, tick)


class CooperativeTask(Generic[_TaskIteratorT]):
    """One iterator running inside a :class:`Cooperator`: can be paused, resumed, stopped and waited on.

    Made by :meth:`Cooperator.cooperate` (not by calling the class). States: running (scheduled
    for work), paused (``pause()`` count above zero, or waiting on a yielded Deferred), or
    finished for good: done (``TaskDone``), stopped (``TaskStopped``), failed (``TaskFailed``) or
    dropped by a stopped Cooperator (``SchedulerStopped``). Reactor thread only.
    """

    # All fields are owned by the reactor thread.
    _deferreds: list[Deferred[_TaskIteratorT]]
    _pauseCount: int
    _completionState: SchedulerError | None
    _completionResult: _TaskIteratorT | Failure | None

    def __init__(self, iterator: _TaskIteratorT, cooperator: Cooperator) -> None:
        self._iterator = iterator
        self._cooperator = cooperator
        self._deferreds = []
        self._pauseCount = 0
        self._completionState = None
        self._completionResult = None
        cooperator._addTask(self)

    def whenDone(self) -> Deferred[_TaskIteratorT]:
        """A new Deferred that fires with the iterator once it is exhausted.

        It errbacks with the iterator's exception (or the failure of a Deferred it yielded), with
        :class:`TaskStopped` after :meth:`stop`, or with :class:`SchedulerStopped` when the
        Cooperator is stopped. Called after the end, it returns an already-fired Deferred.
        """
        d: Deferred[_TaskIteratorT] = Deferred()
        if self._completionState is None:
            self._deferreds.append(d)
        else:
            self._fireOne(d)
        return d

    def pause(self) -> None:
        """Stop giving this task work until :meth:`resume` has been called as many times.

        Raises the task's :class:`TaskFinished` subclass (or :class:`SchedulerStopped`) if it
        has ended.
        """
        self._checkFinish()
        self._pauseCount += 1
        if self._pauseCount == 1:
            self._cooperator._removeTask(self)

    def resume(self) -> None:
        """Undo one :meth:`pause`; the last one puts the task back in the rotation.

        Raises :class:`NotPaused` if the task is not paused. Resuming a task that ended while
        paused is allowed and does nothing more.
        """
        if self._pauseCount == 0:
            raise NotPaused("resume() of a task that is not paused")
        self._pauseCount -= 1
        if self._pauseCount == 0 and self._completionState is None:
            self._cooperator._addTask(self)

    def stop(self) -> None:
        """End the task now: its iterator gets no more ``next()`` calls; ``whenDone`` errbacks TaskStopped.

        Raises the task's :class:`TaskFinished` subclass (or :class:`SchedulerStopped`) if it
        has already ended.
        """
        self._checkFinish()
        self._completeWith(TaskStopped(), Failure(TaskStopped()))

    def _checkFinish(self) -> None:
        if self._completionState is not None:
            raise self._completionState

    def _completeWith(self, state: SchedulerError, result: _TaskIteratorT | Failure) -> None:
        """Record the end and fire every waiting ``whenDone`` Deferred (once; later ends are ignored)."""
        if self._completionState is not None:
            # A Deferred yielded before stop() failed afterwards: the task already ended.
            return
        self._completionState = state
        self._completionResult = result
        if not self._pauseCount:
            self._cooperator._removeTask(self)
        self._cooperator._forget(self)
        # Fire after leaving the Cooperator, so a callback may stop or add tasks safely.
        waiting, self._deferreds = self._deferreds, []
        for d in waiting:
            self._fireOne(d)

    def _fireOne(self, d: Deferred[_TaskIteratorT]) -> None:
        result = self._completionResult
        if isinstance(result, Failure):
            d.errback(result)
        else:
            assert result is not None
            d.callback(result)

    def _oneWorkUnit(self) -> None:
        """Take one item from the iterator: finish on exhaustion or error, pause on a Deferred."""
        try:
            result = next(self._iterator)
        except StopIteration:
            self._completeWith(TaskDone(), self._iterator)
        except BaseException:
            self._completeWith(TaskFailed(), Failure())
        else:
            if isinstance(result, Deferred):
                self.pause()

                def failLater(failure: Failure) -> None:
                    self._completeWith(TaskFailed(), failure)

                def resumeLater(_: object) -> None:
                    self.resume()

                result.addCallbacks(resumeLater, failLater)

    def __repr__(self) -> str:
        if self._completionState is not None:
            state = type(self._completionState).__name__
        elif self._pauseCount:
            state = f"paused({self._pauseCount})"
        else:
            state = "running"
        return f"<CooperativeTask {state} {self._iterator!r}>"


class Cooperator:
    """Runs iterators (tasks) a unit at a time, round-robin, in ticks bounded by a predicate.

    ``terminationPredicateFactory()`` is called at the start of each tick and returns a
    predicate checked after every unit of work: the tick ends when it returns true (at least
    one unit runs per tick). The default allows 10 ms per tick. ``scheduler(tick)`` must arrange
    for ``tick()`` to be called later and return an object with ``cancel()`` (a DelayedCall);
    the default is ``getReactor().callLater`` with a tiny delay. With ``started=False`` tasks
    queue up until :meth:`start`.

    Tasks take turns in the order they were added (a resumed task goes to the back of the line),
    and the rotation carries over from one tick to the next. Reactor thread only.
    """

    # All fields are owned by the reactor thread.
    _tasks: deque[CooperativeTask[Any]]  # the running tasks, next to work first
    _outstanding: dict[CooperativeTask[Any], None]  # every unfinished task, paused ones included
    _delayedCall: Any

    def __init__(
        self,
        terminationPredicateFactory: Callable[[], Callable[[], bool]] = _Timer,
        scheduler: Callable[[Callable[[], None]], Any] = _defaultScheduler,
        started: bool = True,
    ) -> None:
        if not callable(terminationPredicateFactory):
            raise TypeError(
                "terminationPredicateFactory must be callable, "
                f"not {type(terminationPredicateFactory).__name__}"
            )
        if not callable(scheduler):
            raise TypeError(f"scheduler must be callable, not {type(scheduler).__name__}")
        self._terminationPredicateFactory = terminationPredicateFactory
        self._scheduler = scheduler
        self._tasks = deque()
        self._outstanding = {}
        self._delayedCall = None
        self._stopped = False
        self._started = bool(started)
        self._mustScheduleOnStart = False

    def cooperate(self, iterator: _TaskIteratorT) -> CooperativeTask[_TaskIteratorT]:
        """Add ``iterator`` as a task and return its :class:`CooperativeTask`.

        On a stopped Cooperator the task ends at once with :class:`SchedulerStopped`. Raises
        ``TypeError`` if ``iterator`` is not an iterator (pass ``iter(x)`` for an iterable).
        """
        _checkIterator(iterator)
        return CooperativeTask(iterator, self)

    def coiterate(
        self, iterator: _TaskIteratorT, doneDeferred: Deferred[_TaskIteratorT] | None = None
    ) -> Deferred[_TaskIteratorT]:
        """Add ``iterator`` as a task and return a Deferred that fires with it once exhausted.

        The Deferred fails as :meth:`CooperativeTask.whenDone` does. ``doneDeferred``, if given,
        is the Deferred fired (and returned) instead of a new one.
        """
        _checkIterator(iterator)
        if doneDeferred is None:
            doneDeferred = Deferred()
        elif not isinstance(doneDeferred, Deferred):
            raise TypeError(f"doneDeferred must be a Deferred or None, not {type(doneDeferred).__name__}")
        CooperativeTask(iterator, self).whenDone().chainDeferred(doneDeferred)
        return doneDeferred

    def start(self) -> None:
        """Begin (or, after :meth:`stop`, begin again) scheduling ticks for the tasks."""
        self._stopped = False
        self._started = True
        if self._mustScheduleOnStart:
            self._mustScheduleOnStart = False
            self._reschedule()

    def stop(self) -> None:
        """Stop scheduling ticks and end every unfinished task with :class:`SchedulerStopped`.

        Their ``whenDone`` Deferreds errback with it, paused tasks included. Tasks added
        afterwards end at once the same way, until :meth:`start` is called again.
        """
        self._stopped = True
        self._mustScheduleOnStart = False
        outstanding = list(self._outstanding)
        self._tasks.clear()
        self._cancelTick()
        for task in outstanding:
            task._completeWith(SchedulerStopped(), Failure(SchedulerStopped()))

    @property
    def running(self) -> bool:
        """True once started and until stopped."""
        return self._started and not self._stopped

    def _addTask(self, task: CooperativeTask[Any]) -> None:
        if self._stopped:
            task._completeWith(SchedulerStopped(), Failure(SchedulerStopped()))
            return
        self._outstanding[task] = None
        self._tasks.append(task)
        self._reschedule()

    def _removeTask(self, task: CooperativeTask[Any]) -> None:
        try:
            self._tasks.remove(task)
        except ValueError:
            # Already dropped by stop().
            pass
        if not self._tasks:
            self._cancelTick()

    def _forget(self, task: CooperativeTask[Any]) -> None:
        self._outstanding.pop(task, None)

    def _cancelTick(self) -> None:
        call, self._delayedCall = self._delayedCall, None
        if call is not None:
            call.cancel()

    def _tick(self) -> None:
        """One slice: a unit of work per task, round-robin, until the predicate says stop."""
        self._delayedCall = None
        tasks = self._tasks
        done = self._terminationPredicateFactory()
        while tasks:
            task = tasks[0]
            # Move it to the back first: the unit may pause, finish or stop it (removing it).
            tasks.rotate(-1)
            task._oneWorkUnit()
            if done():
                break
        self._reschedule()

    def _reschedule(self) -> None:
        if not self._started:
            self._mustScheduleOnStart = True
            return
        if self._delayedCall is None and self._tasks and not self._stopped:
            self._delayedCall = self._scheduler(self._tick)

    def __repr__(self) -> str:
        state = "running" if self.running else ("stopped" if self._stopped else "not started")
        return f"<Cooperator {state}, {len(self._tasks)} running, {len(self._outstanding)} unfinished>"


def _checkIterator(iterator: object) -> None:
    if not callable(getattr(type(iterator), "__next__", None)):
        raise TypeError(
            f"iterator must be an iterator (something with __next__), not {type(iterator).__name__}; "
            "pass iter(x) for an iterable"
        )


_theCooperator = Cooperator()


def cooperate(iterator: _TaskIteratorT) -> CooperativeTask[_TaskIteratorT]:
    """Run ``iterator`` as a task of the process-wide Cooperator (ticks on ``getReactor()``)."""
    return _theCooperator.cooperate(iterator)


def coiterate(iterator: _TaskIteratorT) -> Deferred[_TaskIteratorT]:
    """As :func:`cooperate`, returning a Deferred that fires with ``iterator`` once it is exhausted."""
    return _theCooperator.coiterate(iterator)
