"""The team: a thread pool's work queue and worker bookkeeping, without threads.

A :class:`Team` holds the queue of work items and decides when a worker is
started, woken, parked, retired or told to exit. It never creates a thread
itself: an injected ``workerFactory`` makes :class:`~deferthreads._interfaces.IWorker`
providers (real threads in production, fakes in tests), and an injected ``now``
clock times idle periods and queue waits. So growth, retirement, the queue bound
and the statistics are tested deterministically by driving the worker protocol
(``workerStarted`` / ``runQueued`` / ``park`` / ``unpark`` / ``workerExiting``)
step by step from one thread.

Locking, and why the hot path takes no lock:

* ``_queue`` is a ``collections.deque``: ``append`` and ``popleft`` are atomic,
  so submitters and workers touch it without a lock.
* Everything else mutable is guarded by ``_lock``. Three fields are also *read*
  without it on the submit fast path (``_running``, ``_idle``'s emptiness,
  ``_workerCount``); each such read is followed by a locked re-check before any
  decision is acted on.
* ``_finishing`` holds the workers that are bound to look at the queue again
  and take a call if there is one: a worker whose call has returned (while it
  hands the result back), one just started, one just woken, one on its way
  from an empty queue to ``park``. A submitter that sees at least as many of
  them as queued calls wakes nobody, and starts no new worker: a call
  submitted while the only worker boots, or while a worker hands a result back
  (that releases the GIL, so the reactor may run the callbacks and submit the
  next call right then), is taken by that worker without a wake-up.
  A worker leaves ``_finishing`` *before* each ``popleft`` (so it never counts
  for a call it has already taken) and, when parking, after joining ``_idle``
  but *before* its last look at the queue.
* A worker parks by joining ``_idle``, leaving ``_finishing``, *then*
  re-checking the queue (under the lock); a submitter appends to the queue
  *then* looks at ``_finishing`` and ``_idle``. Whatever the interleaving,
  either the submitter sees the worker (finishing: it will look again; idle:
  it wakes it) or the worker sees the new call: no wake-up is lost, and a
  submitter that finds every worker busy pays no lock at all. (The property
  test in ``tests/test_threadpool_team.py`` drives random interleavings.)
* Per-worker counters (:class:`_WorkerRecord`) are written only by their
  worker's thread; :meth:`Team.statistics` reads them under the lock.
* A worker told to leave while it is not parked on the team's lock path (an
  idle worker retired by :meth:`Team.retireIdle`, a worker given up on by
  :meth:`Team.abandonWorkers` while its call is stuck) has ``exiting`` set
  under the lock and is no longer counted; it sees the flag before it takes
  its next item, and ``park`` then tells it to EXIT (waking another worker
  for any call it may have been counted on).
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from deferthreads._errors import QueueFull, ThreadPoolStopped
from deferthreads._interfaces import IWorker
from deferthreads._workitem import WorkItem
from reactor import CancelledError, Failure
from reactor.spin import SpinPolicy, pause, perfCounter

__all__ = ["ThreadPoolStatistics"]

log = logging.getLogger("deferthreads")

WorkerFactory = Callable[["Team", str], IWorker]

# Past this many queued calls, cancelling one only flags it (the worker that
# reaches it skips it) instead of scanning the queue to remove it.
_REMOVE_SCAN_LIMIT = 4096


class Verdict(enum.Enum):
    """What a worker does next, as decided by :meth:`Team.park` / :meth:`Team.unpark`."""

    WORK = "work"  # run the queue again
    PARKED = "parked"  # wait for wake() or the idle timeout
    EXIT = "exit"  # leave the loop and call workerExiting


class _State(enum.Enum):
    NEW = "new"  # never started: calls queue up, no worker runs
    RUNNING = "running"
    STOPPING = "stopping"  # draining: no new workers, workers exit when the queue is empty
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class ThreadPoolStatistics:
    """A snapshot of a thread pool, cheap to take (one short lock, no thread is disturbed).

    ``workers`` counts live worker threads, ``busy`` those not waiting for work,
    ``idle`` those waiting; ``queued`` counts calls not yet started; ``completed``
    and ``failed`` count calls that returned or raised; ``cancelled`` counts calls
    that never ran because they were cancelled or abandoned at a stop;
    ``rejected`` counts submissions refused (queue full or pool stopped);
    ``longestQueueWait`` is the longest time, in seconds, a call waited in the
    queue before a worker started it.
    """

    workers: int
    busy: int
    idle: int
    queued: int
    completed: int
    failed: int
    cancelled: int
    rejected: int
    longestQueueWait: float


class _WorkerRecord:
    """Bookkeeping for one worker.

    ``completed``, ``failed``, ``skipped`` and ``longestWait`` are written only by
    the worker's own thread; ``parked`` and ``idleSince`` only under the team lock.
    """

    __slots__ = (
        "completed",
        "current",
        "exiting",
        "failed",
        "idleSince",
        "longestWait",
        "markFinishing",
        "parked",
        "skipped",
        "spin",
    )

    def __init__(self, markFinishing: Callable[[], object], spinTime: float) -> None:
        self.markFinishing = markFinishing  # adds the worker to the team's _finishing set
        self.spin = SpinPolicy(spinTime)  # worker thread only: whether to spin before parking
        self.current: WorkItem | None = None  # the item being run; written by the worker thread only
        self.completed = 0
        self.failed = 0
        self.skipped = 0
        self.longestWait = 0.0
        self.parked = False
        self.idleSince = 0.0
        # The team told it to EXIT, retired or abandoned it (and stopped counting it); set under the
        # lock, read unlocked by the worker before each item.
        self.exiting = False


class Team:
    """A work queue served by a variable number of workers between ``minWorkers`` and ``maxWorkers``.

    ``submit`` and ``discard`` may be called from any thread; ``runQueued``,
    ``park``, ``unpark``, ``workerStarted`` and ``workerExiting`` only from the
    worker they name; the rest from any thread.
    """

    def __init__(
        self,
        workerFactory: WorkerFactory,
        name: str,
        minWorkers: int,
        maxWorkers: int,
        *,
        queueLimit: int | None = None,
        idleTimeout: float | None = None,
        now: Callable[[], float] = time.monotonic,
        workerInit: Callable[[], object] | None = None,
        workerExit: Callable[[], object] | None = None,
        spinTime: float = 0.0,
    ) -> None:
        self.name = name
        self.idleTimeout = idleTimeout
        # How long a worker whose queue ran dry may spin for the next call before parking (0: never).
        self.spinTime = spinTime
        self._spinning = False  # a worker is spinning: others park at once (one catches the next call)
        self._workerFactory = workerFactory
        self._now = now
        self._workerInit = workerInit
        self._workerExit = workerExit
        self._queue: deque[WorkItem] = deque()
        self._queueLimit = queueLimit
        self._lock = threading.Lock()
        # Guarded by _lock (the first three also read unlocked by submit; see module docstring).
        self._running = False
        self._idle: list[IWorker] = []
        # Workers handing a result back, each bound to pop the queue once more (see the module
        # docstring). Each worker adds and discards only itself; set.add/discard are atomic.
        self._finishing: set[IWorker] = set()
        self._workerCount = 0  # workers that have not decided to exit
        self._minWorkers = minWorkers
        self._maxWorkers = maxWorkers
        self._state = _State.NEW
        self._records: dict[IWorker, _WorkerRecord] = {}  # live workers, until workerExiting ends
        # Live workers a timed-out stop gave up on (abandonWorkers): a stop does not wait for them.
        self._abandoned: set[IWorker] = set()
        self._exited: list[IWorker] = []  # workers that exited while stopping (or abandoned), to be joined
        self._onStopped: list[Callable[[], object]] = []
        self._serial = 0
        self._totalCompleted = 0
        self._totalFailed = 0
        self._totalCancelled = 0
        self._totalRejected = 0
        self._longestWait = 0.0
        # Per thread: the worker whose protocol call (workerStarted, runQueued, workerExiting) runs
        # there, for currentWorker(). Set by that call in its own thread, so fakes stepped by hand
        # from one test thread each see themselves.
        self._current = threading.local()
        # The pool's OpenTelemetry wait-time recorder (deferthreads._telemetry.registerPool): asked for
        # the recording function each time a worker starts on the queue; None without OpenTelemetry.
        self.waitRecorder: Callable[[], Callable[[float], object] | None] | None = None

    # -- submitting (any thread) -------------------------------------------------------------

    def submit(self, item: WorkItem) -> None:
        """Queue ``item`` to be run by a worker; start or wake one if needed.

        Raises :class:`QueueFull` if ``queueLimit`` calls are waiting and
        :class:`ThreadPoolStopped` if the team is stopped (or stopping with no
        worker left to run it). Never blocks on a worker.
        """
        queue = self._queue
        limit = self._queueLimit
        if limit is not None and len(queue) >= limit:
            with self._lock:
                self._totalRejected += 1
            raise QueueFull(f"{self.name}: {len(queue)} calls are queued (queueLimit={limit})")
        item.enqueuedAt = self._now()
        if self._running:
            queue.append(item)
            if len(queue) > len(self._finishing) and (self._idle or self._workerCount < self._maxWorkers):
                self._wakeOrGrow()
            if self._running:
                return
            # A stop began while we were queueing: make sure someone will run the item.
            self._checkNotStranded(item)
            return
        with self._lock:
            if self._state is _State.STOPPED or (self._state is _State.STOPPING and self._workerCount == 0):
                self._totalRejected += 1
                raise ThreadPoolStopped(
                    f"thread pool {self.name!r} is stopped (start() restarts a ThreadPool; a reactor's "
                    "shared pool stops with the reactor and restarts when it runs again)"
                )
            queue.append(item)
            if self._state is _State.RUNNING:  # started since we looked
                self._wakeOrGrowLocked()

    def _wakeOrGrow(self) -> None:
        with self._lock:
            idle = self._idle
            if idle:
                # _wakeLocked, inlined: this is the per-call path of a request/response pattern.
                worker = idle.pop()
                self._records[worker].parked = False
                self._finishing.add(worker)
                worker.wake()
            else:
                self._wakeOrGrowLocked()

    def _wakeOrGrowLocked(self) -> None:
        if self._idle:
            self._wakeLocked(self._idle.pop())
        elif self._running and self._workerCount < self._maxWorkers:
            try:
                self._spawnLocked()
            except Exception:
                # Out of threads, say. The call stays queued for the workers there are; with none,
                # the next submit (or adjustPoolsize/start) tries again.
                log.exception("%s could not start a worker thread", self.name)

    def _wakeLocked(self, worker: IWorker) -> None:
        # The worker has been taken off _idle. Woken, it is bound to look at the queue.
        self._records[worker].parked = False
        self._finishing.add(worker)
        worker.wake()

    def _checkNotStranded(self, item: WorkItem) -> None:
        with self._lock:
            if self._workerCount or self._state is _State.RUNNING or self._state is _State.NEW:
                return  # a worker that has not yet decided to exit will find it
            try:
                self._queue.remove(item)
            except ValueError:
                return  # a worker took it after all
            self._totalRejected += 1
        raise ThreadPoolStopped(f"{self.name} stopped before the call could run")

    def _spawnLocked(self) -> None:
        self._serial += 1
        name = f"{self.name}-worker-{self._serial}"
        worker = self._workerFactory(self, name)
        self._records[worker] = _WorkerRecord(partial(self._finishing.add, worker), self.spinTime)
        self._workerCount += 1
        # A new worker is bound to look at the queue: count it with the finishing ones, so that a
        # call submitted while it boots does not start yet another worker.
        self._finishing.add(worker)
        try:
            worker.start()
        except BaseException:
            self._finishing.discard(worker)
            self._workerCount -= 1
            del self._records[worker]
            raise

    def discard(self, item: WorkItem) -> None:
        """Make sure ``item`` never runs if it has not started (any thread; the cancel path).

        The item is flagged (a worker that dequeues it skips it) and, while the
        queue is short enough for a quick scan, removed from the queue at once.
        """
        item.cancelled = True
        queue = self._queue
        if len(queue) > _REMOVE_SCAN_LIMIT:
            return
        try:
            queue.remove(item)
        except (ValueError, RuntimeError):
            return  # already taken by a worker (or the queue changed under the scan: the flag holds)
        with self._lock:
            self._totalCancelled += 1

    def cancelQueued(self) -> list[WorkItem]:
        """Take every queued item out of the queue and return those not already cancelled (any thread)."""
        taken: list[WorkItem] = []
        popleft = self._queue.popleft
        while True:
            try:
                item = popleft()
            except IndexError:
                break
            if not item.cancelled:
                item.cancelled = True
                taken.append(item)
        with self._lock:
            self._totalCancelled += len(taken)
        return taken

    # -- the worker protocol (each in the named worker's thread) --------------------------------

    def workerStarted(self, worker: IWorker) -> None:
        """First call of a worker: run the ``workerInit`` hook (its exceptions are logged)."""
        self._current.worker = worker
        if self._workerInit is not None:
            try:
                self._workerInit()
            except BaseException:
                log.exception("workerInit hook %r failed in %s", self._workerInit, worker.name)

    def runQueued(self, worker: IWorker) -> None:
        """Run queued items until the queue is empty (the hot loop: no lock taken).

        When the queue runs dry the worker may spin for a moment (``spinTime``,
        pausing with the GIL released, see ``reactor._spinwait``) before returning to
        park: in a request/response pattern the next call arrives a few
        microseconds later and is taken without a wake-up. While it spins it stays
        in ``_finishing``, so submitters count on it instead of waking another.
        """
        self._current.worker = worker
        record = self._records[worker]
        queue = self._queue
        popleft = queue.popleft
        now = self._now
        finishing = self._finishing
        discard = finishing.discard
        markFinishing = record.markFinishing
        spin = record.spin
        recorderNow = self.waitRecorder
        recordWait = None
        if recorderNow is not None:
            try:
                recordWait = recorderNow()
            except Exception:  # telemetry must never cost a worker: no wait times this time
                log.exception("%s: the wait-time recorder failed", self.name)
        while True:
            if record.exiting:
                return  # retired or abandoned: take nothing more (park() says EXIT)
            discard(worker)
            try:
                item = popleft()
            except IndexError:
                finishing.add(worker)  # still bound to look again: park() re-checks the queue
                if not self._spinning and self._running and spin.shouldSpin() and self._spinForWork(spin):
                    continue
                return
            if item.cancelled:
                record.skipped += 1
                continue
            waited = now() - item.enqueuedAt
            if waited > record.longestWait:
                record.longestWait = waited
            if recordWait is not None:
                try:
                    recordWait(waited)
                except Exception:
                    log.exception("%s: recording a wait time failed", self.name)
                    recordWait = None
            record.current = item
            if item.execute(markFinishing):
                record.completed += 1
            else:
                record.failed += 1
            record.current = None

    def _spinForWork(self, spin: SpinPolicy) -> bool:
        """Look at the queue until it has an item or ``spin.window`` passed; True if it has one."""
        self._spinning = True
        queue = self._queue
        try:
            deadline = perfCounter() + spin.window
            while not queue:
                if perfCounter() >= deadline or not self._running:
                    spin.spun(False)
                    return False
                pause()
            spin.spun(True)
            return True
        finally:
            self._spinning = False

    def park(self, worker: IWorker) -> Verdict:
        """The queue looked empty: wait for work (PARKED), go back to it (WORK), or EXIT."""
        with self._lock:
            record = self._records[worker]
            if record.exiting:
                # Retired or abandoned while it was away from park: it is not counted any more. If a
                # submitter counted on it as finishing, someone else must take the call.
                if worker in self._finishing:
                    self._finishing.discard(worker)
                    if len(self._queue) > len(self._finishing) and self._state is _State.RUNNING:
                        self._wakeOrGrowLocked()
                return Verdict.EXIT
            if self._state is not _State.RUNNING or self._workerCount > self._maxWorkers:
                if self._queue:
                    return Verdict.WORK
                self._finishing.discard(worker)
                self._workerCount -= 1
                record.exiting = True
                return Verdict.EXIT
            # Join the idle list, leave the finishing set, and only then look at the queue:
            # see the module docstring for why this order loses no wake-up.
            self._idle.append(worker)
            self._finishing.discard(worker)
            if self._queue:
                self._idle.pop()
                self._finishing.add(worker)
                return Verdict.WORK
            record.parked = True
            record.idleSince = self._now()
            return Verdict.PARKED

    def unpark(self, worker: IWorker, woke: bool) -> Verdict:
        """The worker's wait ended, by ``wake()`` (``woke``) or by its timeout.

        After a timeout: EXIT if the worker has been idle for ``idleTimeout`` and
        the team has more than ``minWorkers``; PARKED to wait again; WORK if a
        ``wake()`` raced the timeout (the worker must absorb that wake first).
        """
        if woke:
            return Verdict.WORK
        with self._lock:
            record = self._records[worker]
            if not record.parked:
                return Verdict.WORK
            timeout = self.idleTimeout
            if (
                timeout is not None
                and self._workerCount > self._minWorkers
                and self._now() - record.idleSince >= timeout
            ):
                self._idle.remove(worker)
                record.parked = False
                record.exiting = True
                self._workerCount -= 1
                return Verdict.EXIT
            return Verdict.PARKED

    def workerExiting(self, worker: IWorker) -> None:
        """Last call of a worker: run ``workerExit``, fold its counters into the totals.

        The last worker to exit a stopping team marks it stopped and runs the
        ``beginStop`` callbacks, in this (worker) thread.
        """
        self._current.worker = worker
        if self._workerExit is not None:
            try:
                self._workerExit()
            except BaseException:
                log.exception("workerExit hook %r failed in %s", self._workerExit, worker.name)
        callbacks: list[Callable[[], object]] = []
        self._finishing.discard(worker)
        with self._lock:
            record = self._records.pop(worker)
            wasAbandoned = worker in self._abandoned
            self._abandoned.discard(worker)
            if not record.exiting:
                # The loop ended without an EXIT verdict (an internal error): stop counting it.
                self._workerCount -= 1
                if record.parked:
                    self._idle.remove(worker)
            self._totalCompleted += record.completed
            self._totalFailed += record.failed
            self._totalCancelled += record.skipped
            self._longestWait = max(self._longestWait, record.longestWait)
            if wasAbandoned:
                self._exited.append(worker)  # for the next stop to join (it waited for none of them)
            elif self._state is _State.STOPPING:
                self._exited.append(worker)
                if len(self._records) == len(self._abandoned):  # none left that a stop waits for
                    callbacks = self._finishStopLocked()
        for callback in callbacks:
            _runCallback(callback)

    # -- control (any thread) ------------------------------------------------------------------

    def start(self) -> None:
        """Start serving the queue: start ``minWorkers`` workers (more if calls are waiting).

        Starting a running team does nothing; starting a stopped one makes it run
        again; starting a team that is still stopping raises ``RuntimeError``.
        """
        with self._lock:
            if self._state is _State.RUNNING:
                return
            if self._state is _State.STOPPING:
                raise RuntimeError(f"{self.name} is still stopping; start it again once stop() returned")
            self._state = _State.RUNNING
            self._running = True
            wanted = min(self._maxWorkers, max(self._minWorkers, len(self._queue)))
            while self._workerCount < wanted:
                self._spawnLocked()

    def backlogged(self) -> bool:
        """True while more calls wait than the team has workers (and at least two): any thread.

        Then every worker has its next call without help from the reactor, so
        their outcomes may go home in batches (:meth:`ResultSink.putHeld`).
        A plain length read of the queue: a stale answer only moves a batch
        boundary.
        """
        return len(self._queue) >= max(2, self._maxWorkers)

    def adjust(self, minWorkers: int, maxWorkers: int) -> None:
        """Change the bounds: start workers up to the new minimum, let those above the new maximum exit."""
        with self._lock:
            self._minWorkers = minWorkers
            self._maxWorkers = maxWorkers
            if self._state is not _State.RUNNING:
                return
            wanted = min(maxWorkers, max(minWorkers, len(self._queue)))
            while self._workerCount < wanted:
                self._spawnLocked()
            excess = self._workerCount - maxWorkers
            # Idle workers above the maximum are woken to exit; busy ones exit when they next park.
            while excess > 0 and self._idle:
                self._wakeLocked(self._idle.pop(0))  # the longest idle go first
                excess -= 1

    def beginStop(self, onStopped: Callable[[], object] | None = None) -> None:
        """Stop accepting new workers; let the workers drain the queue and exit. Never blocks.

        ``onStopped()`` runs once every worker has exited (its ``workerExit``
        hook done): in the last exiting worker's thread, or at once in this
        thread if no worker is alive. Calls queued on a team with no worker
        (never started, or stopped) are abandoned with :class:`ThreadPoolStopped`.
        """
        abandoned: list[WorkItem] = []
        callbacks: list[Callable[[], object]] = []
        with self._lock:
            if onStopped is not None:
                self._onStopped.append(onStopped)
            if self._state is _State.STOPPING:
                return
            self._state = _State.STOPPING
            self._running = False
            idle, self._idle = self._idle, []
            for worker in idle:
                self._wakeLocked(worker)
            if len(self._records) == len(self._abandoned):
                callbacks = self._finishStopLocked()
                abandoned = list(self._queue)
                self._queue.clear()
                self._totalCancelled += len(abandoned)
        if abandoned:
            reason = Failure(ThreadPoolStopped(f"{self.name} was stopped before the call could run"))
            for item in abandoned:
                if not item.cancelled:
                    item.cancelled = True
                    item.abandon(reason)
        for callback in callbacks:
            _runCallback(callback)

    def abandonWorkers(self) -> list[WorkItem]:
        """Stop waiting for a stopping team's workers: it is stopped now and can ``start`` again at once.

        For a stop whose timeout expired while calls are still running (stuck
        in a blocking call). The workers still alive are no longer counted
        and no later stop waits for them; each exits as soon as its call
        returns, without taking another item, running ``workerExit`` in its
        own thread as usual. The ``beginStop`` callbacks are dropped: the
        caller has given up on them. Take the queued items first
        (:meth:`cancelQueued`): nobody runs them now. Returns the items those
        workers are running (any thread; does nothing unless the team is
        stopping).
        """
        with self._lock:
            if self._state is not _State.STOPPING:
                return []
            running: list[WorkItem] = []
            for worker, record in self._records.items():
                self._abandoned.add(worker)
                if not record.exiting:
                    record.exiting = True
                    self._workerCount -= 1
                if record.current is not None:
                    running.append(record.current)
            self._state = _State.STOPPED
            self._onStopped = []
            return running

    def retireIdle(self, idleFor: float) -> int:
        """Retire the workers parked for ``idleFor`` seconds or more (on ``now``), down to ``minWorkers``.

        The longest idle go first. Each is woken to exit, running
        ``workerExit`` in its own thread; it takes no more work. Returns how
        many were retired (any thread; 0 unless the team is running).
        """
        now = self._now()
        retired = 0
        with self._lock:
            if self._state is not _State.RUNNING:
                return 0
            records = self._records
            oldestFirst = sorted(self._idle, key=lambda w: records[w].idleSince)
            for worker in oldestFirst:
                if self._workerCount <= self._minWorkers:
                    break
                record = records[worker]
                if now - record.idleSince < idleFor:
                    break
                self._idle.remove(worker)
                record.parked = False
                record.exiting = True
                self._workerCount -= 1
                worker.wake()  # not marked finishing: it will not look at the queue again
                retired += 1
        return retired

    def _finishStopLocked(self) -> list[Callable[[], object]]:
        self._state = _State.STOPPED
        callbacks, self._onStopped = self._onStopped, []
        return callbacks

    def takeExited(self) -> list[IWorker]:
        """Return (and forget) the workers that exited while the team was stopping, to join them."""
        with self._lock:
            exited, self._exited = self._exited, []
        return exited

    # -- reading (any thread) ------------------------------------------------------------------

    @property
    def state(self) -> str:
        """``"new"``, ``"running"``, ``"stopping"`` or ``"stopped"``."""
        return self._state.value

    @property
    def minWorkers(self) -> int:
        return self._minWorkers

    @property
    def maxWorkers(self) -> int:
        return self._maxWorkers

    @property
    def queueLimit(self) -> int | None:
        return self._queueLimit

    def currentWorker(self) -> IWorker | None:
        """The worker whose ``workerStarted``, ``runQueued`` or ``workerExiting`` runs in the calling thread.

        So a ``workerInit``/``workerExit`` hook or an item's ``execute`` can find
        per-worker state (a resource pool's resource, say) keyed by its worker,
        with real threads and with fake workers stepped from one test thread
        alike. ``None`` in a thread that never ran one of those calls.
        """
        worker: IWorker | None = getattr(self._current, "worker", None)
        return worker

    def runningItems(self) -> list[WorkItem]:
        """The items being run right now (a snapshot; each may finish at any moment)."""
        with self._lock:
            return [r.current for r in self._records.values() if r.current is not None]

    def liveWorkers(self) -> list[IWorker]:
        """The workers that have not finished ``workerExiting``."""
        with self._lock:
            return list(self._records)

    def statistics(self) -> ThreadPoolStatistics:
        """A consistent-enough snapshot (per-worker counters are read as they stand)."""
        with self._lock:
            completed = self._totalCompleted
            failed = self._totalFailed
            cancelled = self._totalCancelled
            longest = self._longestWait
            for record in self._records.values():
                completed += record.completed
                failed += record.failed
                cancelled += record.skipped
                if record.longestWait > longest:
                    longest = record.longestWait
            idle = len(self._idle)
            return ThreadPoolStatistics(
                workers=self._workerCount,
                busy=self._workerCount - idle,
                idle=idle,
                queued=len(self._queue),
                completed=completed,
                failed=failed,
                cancelled=cancelled,
                rejected=self._totalRejected,
                longestQueueWait=longest,
            )


def _runCallback(callback: Callable[[], object]) -> None:
    try:
        callback()
    except BaseException:
        log.exception("Thread pool stop callback %r failed", callback)


def abandonAll(items: list[WorkItem], message: str) -> None:
    """Abandon ``items`` with a :class:`CancelledError` Failure (in the calling thread)."""
    if not items:
        return
    reason = Failure(CancelledError(message))
    for item in items:
        item.abandon(reason)
