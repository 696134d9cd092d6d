"""The event loop: :class:`Reactor`, an epoll reactor (``selectors`` elsewhere) with Twisted's semantics.

One iteration of the loop does, in order: fire ``shutdown`` if ``stop()`` was called
since the last iteration; run the thread calls queued so far (a bounded batch, so a
thread that keeps calling in cannot starve I/O); run the timed calls that are due;
wait for I/O (no longer than the next timed call, not at all if thread calls are
queued) and call ``doRead``/``doWrite`` on the ready descriptors.

Threads
-------
Everything runs in the *reactor thread* (the one inside :meth:`Reactor.run`), except
:meth:`Reactor.callFromThread` and :meth:`Reactor.wakeUp`, the one door in from other
threads. ``callFromThread`` extends a ``deque`` (atomic, no lock) and writes to the
waker pipe only when the loop may be asleep: ``_awake`` is set before the loop polls
I/O with a zero timeout or handles results, cleared just before it may block, and the
queue is re-checked *after* clearing it. So a caller that sees ``_awake`` true knows
the loop will look at the queue before sleeping again, and a burst of calls costs at
most one pipe write however many threads make them.

The I/O path
------------
The loop polls ``select.epoll`` directly (``reactor._poller``): ``poll()`` returns ``(fd,
events)`` pairs and one dict lookup finds the ``[reader, writer]`` slot of each. The kernel's
interest mask changes only when a descriptor's reader or writer set really changes, and
transports send at once when nothing is queued, so a request/response exchange costs one
``recv``, one ``send`` and a share of one ``epoll_wait``, with no ``epoll_ctl``.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from zope.interface import implementer

from reactor._coreinterfaces import (
    IDelayedCall,
    IReactorCore,
    IReactorFDSet,
    IReactorFromThreads,
    IReactorThreadAffinity,
    IReactorTime,
)
from reactor._delayed import DelayedCall, TimerQueue
from reactor._errors import ReactorAlreadyRunning, ReactorNotRunning
from reactor._events import SystemEvents
from reactor._failure import Failure
from reactor._neterrors import ConnectionLost
from reactor._network import ReactorNetworkMixin
from reactor._poller import POLLIN, POLLOUT, makePoller
from reactor._signals import SignalHandlers
from reactor._spinchoice import SpinChoice
from reactor._spinwait import DEFAULT_SPIN, SpinPolicy, checkSpin, pause, perfCounter
from reactor._waker import Waker

__all__ = ["Reactor"]

_log = logging.getLogger("reactor.loop")

# Anything but plain writability (input, hang-up, error) goes to the reader, anything but plain
# readability to the writer (what selectors did too).
_READABLE = ~POLLOUT
_WRITABLE = ~POLLIN
_monotonic = time.monotonic
_INFINITY = float("inf")
_heappush = heapq.heappush
_newObject = object.__new__


# A persistently failing loop: tracebacks logged per run of consecutive failures.
_TRACEBACKS_LOGGED = 3


class FileDescriptorGone(ConnectionLost):
    """A watched object's ``fileno()`` returned -1 (or failed): its descriptor was closed."""


# What the per-fd slot holds: [reader or None, writer or None], mutated in place.
_Slot = list[Any]


def _fdOf(obj: Any, role: str) -> int:
    try:
        fd = obj.fileno()
    except AttributeError:
        raise TypeError(f"{role} must have a fileno() method, got {type(obj).__name__}") from None
    if not isinstance(fd, int) or isinstance(fd, bool):
        raise TypeError(f"{role}.fileno() must return an int, got {fd!r}")
    if fd < 0:
        raise ValueError(f"{role}.fileno() returned {fd}: the descriptor is closed")
    return fd


def _currentFd(obj: Any) -> int:
    try:
        fd = obj.fileno()
    except Exception:
        return -1
    return fd if isinstance(fd, int) else -1


def _eventsOf(slot: _Slot) -> int:
    return (POLLIN if slot[0] is not None else 0) | (POLLOUT if slot[1] is not None else 0)


@implementer(IReactorCore, IReactorTime, IReactorFromThreads, IReactorFDSet, IReactorThreadAffinity)
class Reactor(ReactorNetworkMixin):
    """A reactor: timed calls, the thread-call queue, I/O readiness, and Twisted's lifecycle.

    Create as many as you like (``reactor.getReactor()`` returns the process-wide
    default). A reactor can be run again after it stopped. All methods must be called
    in the reactor thread (or, before ``run()``, in the thread that will run it),
    except :meth:`callFromThread`, :meth:`wakeUp`, :meth:`isReactorThread` and the
    :attr:`stopping`/:attr:`running` reads, which any thread may use.
    """

    #: Consecutive loop failures (an exception escaping an iteration, with no successful
    #: iteration in between) after which the reactor crashes and ``run()`` re-raises.
    maxLoopFailures = 100

    def __init__(self, *, spinTime: float | None = None) -> None:
        """``spinTime``: how long, in seconds, the loop may keep polling for the next thread call
        before it blocks (see :attr:`spinTime`; 0 turns spinning off). Left out, it is
        ``DEFAULT_SPIN`` while the loop's own measurements show that spinning shortens the wait
        for the next thread call, and no spin otherwise (``reactor._spinchoice``)."""
        super().__init__()
        # Reactor thread only: spin-then-block for thread calls (reactor._spinwait explains why).
        # No spinTime given: the loop measures its own thread-call gaps to decide whether to spin.
        self._spinChoice: SpinChoice | None = SpinChoice() if spinTime is None else None
        self._spin = SpinPolicy(DEFAULT_SPIN if spinTime is None else checkSpin(spinTime, "spinTime"))
        # Reactor thread. The queue's dict, heap and counter are never replaced: callLater uses them directly.
        self._timers = self._newTimerQueue()
        self._timerCalls = self._timers._calls
        self._timerHeap = self._timers._heap
        self._timerSeqs = self._timers._seqs
        # Extended by any thread, three items per call (f, args, kw) in one atomic extend();
        # popped by the reactor thread only. Flat, so that a backlog of calls is not a backlog
        # of GC-tracked tuples (which made the cyclic GC dominate a burst of 200,000 calls).
        self._threadCalls: deque[Any] = deque()
        # Set True by any thread (when it writes the waker) and by the reactor thread while it
        # is awake; set False by the reactor thread only, right before it may block.
        self._awake = False
        # Immutable after __init__ (closed only by close()).
        self._waker = Waker()
        self._poller = self._newPoller()
        self._poller.register(self._waker.readFD, POLLIN)
        # Reactor thread: fd -> [reader, writer] (the waker is the reader of its own slot, in no
        # registry below); and each watched object -> its fd.
        self._selectables: dict[int, _Slot] = {self._waker.readFD: [self._waker, None]}
        self._readers: dict[Any, int] = {}
        self._writers: dict[Any, int] = {}
        # Reactor thread.
        self._events = SystemEvents({"startup": self._startupDuring, "shutdown": self._shutdownDuring})
        self._signals = SignalHandlers(self._stopOnSignal, self._waker.writeFD)
        # Lifecycle flags. Written by the reactor thread; any thread may read them.
        self._started = False  # the loop keeps iterating while this is true
        self._running = False  # Twisted's `running`
        self._stopped = True  # stop() is refused (ReactorNotRunning) while true
        self._justStopped = False  # stop() was called; fire shutdown at the next iteration
        self._stopping = False  # from stop() until run() returns
        self._startedBefore = False  # run() has been entered once (Twisted's name; deferthreads reads it)
        self._installSignals = False
        # Written by the thread calling run(); read by any thread. None while not running.
        self._reactorThread: int | None = None

    def _newTimerQueue(self) -> TimerQueue:
        """The queue of timed calls on the loop's clock; a hosted reactor supplies one that reports moves."""
        return TimerQueue(_monotonic)

    def _newPoller(self) -> Any:
        """The readiness poller (``reactor._poller``'s interface); a hosted reactor supplies its own."""
        return makePoller()

    # ---------------------------------------------------------------- state

    @property
    def running(self) -> bool:
        """True from 'during startup' until 'during shutdown' begins (Twisted's meaning). Any thread."""
        return self._running

    @property
    def stopping(self) -> bool:
        """True from :meth:`stop` until :meth:`run` returns. Any thread."""
        return self._stopping

    @property
    def spinTime(self) -> float:
        """The longest time, in seconds, the loop keeps polling for the next thread call before it blocks.

        It spins only right after running thread calls, never past a due timed
        call or a stop, and backs off (up to 64 blocking waits between tries)
        while its spins come back empty. While it spins, threads calling in skip
        the waker write. 0 turns spinning off. Set it in the reactor thread (or
        before :meth:`run`). A reactor created without ``spinTime`` spins only
        while trials on its own traffic find that spinning shortens the wait for
        the next thread call (re-tried every few thousand waits); setting this
        makes it spin as told.
        """
        return self._spin.window

    @spinTime.setter
    def spinTime(self, value: float) -> None:
        self._spin.window = checkSpin(value, "spinTime")
        self._spinChoice = None

    def isReactorThread(self) -> bool:
        """True when called in the thread currently inside this reactor's :meth:`run`. Any thread."""
        return self._reactorThread == threading.get_ident()

    def __repr__(self) -> str:
        state = (
            "stopping"
            if self._stopping
            else "running"
            if self._running
            else "starting"
            if self._started
            else "idle"
        )
        return (
            f"<Reactor {state} timers={len(self._timers)} threadCalls={len(self._threadCalls) // 3} "
            f"readers={len(self._readers)} writers={len(self._writers)}>"
        )

    # ---------------------------------------------------------------- time

    def seconds(self) -> float:
        """The current time on the loop's monotonic clock (``time.monotonic()``), in seconds."""
        return _monotonic()

    def callLater(self, delay: float, f: Callable[..., object], /, *args: Any, **kw: Any) -> DelayedCall:
        """Run ``f(*args, **kw)`` in the reactor thread ``delay`` seconds from now; return its DelayedCall.

        Reactor thread only (use :meth:`callFromThread` from elsewhere). An exception
        raised by ``f`` is logged with its traceback and the loop goes on.

        :raises TypeError: ``f`` is not callable or ``delay`` is not a number.
        :raises ValueError: ``delay`` is negative, infinite or NaN.
        """
        try:
            bad = not delay >= 0 or delay == _INFINITY
        except TypeError:
            raise TypeError(f"delay must be a number of seconds, got {delay!r}") from None
        if bad:
            raise ValueError(f"delay must be a finite number >= 0, got {delay!r}")
        if not callable(f):
            raise TypeError(f"callable must be callable, got {f!r}")
        # TimerQueue.schedule, inlined: this is the hot path of every timeout.
        # (object.__new__ plus slot stores skips an __init__ frame: ~50 ns of ~500.)
        when = _monotonic() + delay
        call = _newObject(DelayedCall)
        call.time = when
        call.func = f
        call.args = args
        call.kw = kw
        call._queue = self._timers
        call._seq = next(self._timerSeqs)
        if self._timerCalls.setdefault(when, call) is call:
            call._entry = when
            _heappush(self._timerHeap, when)
        else:
            self._timers._share(call, when)
        return call

    def getDelayedCalls(self) -> list[IDelayedCall]:
        """The pending timed calls (not yet run, not cancelled), earliest first."""
        return list(self._timers.getDelayedCalls())

    # ---------------------------------------------------------------- threads

    def callFromThread(self, f: Callable[..., object], /, *args: Any, **kw: Any) -> None:
        """Run ``f(*args, **kw)`` in the reactor thread soon. Safe from any thread, at any time.

        Calls made before :meth:`run` (or after a stop) run when the reactor next runs.
        Calls from one thread run in the order they were made. An exception raised by
        ``f`` is logged with its traceback. Costs one ``deque.extend``, plus one pipe
        write only when the loop may be asleep.

        :raises TypeError: ``f`` is not callable.
        """
        if not callable(f):
            raise TypeError(f"f must be callable, got {f!r}")
        # One C-level extend from a tuple: atomic under the GIL, so triples never interleave.
        self._threadCalls.extend((f, args, kw))
        if not self._awake:
            self._awake = True
            self._waker.wakeUp()

    def wakeUp(self) -> None:
        """Make the loop run an iteration now, even if it is sleeping. Any thread."""
        self._awake = True
        self._waker.wakeUp()

    def _runThreadCalls(self) -> None:
        queue = self._threadCalls
        popleft = queue.popleft
        try:
            # Only the calls queued so far: calls they queue themselves wait for the next iteration.
            for _ in range(len(queue) // 3):
                f = popleft()
                args = popleft()
                kw = popleft()
                try:
                    f(*args, **kw)
                except Exception:
                    _log.exception("Unhandled error in thread call %r", f)
        except IndexError:
            # A call ran a nested loop (a hosted reactor under a Qt modal dialog) whose own turns
            # took the rest of this batch.
            pass

    @staticmethod
    def _timedCallFailed(call: DelayedCall, error: Exception) -> None:
        _log.error("Unhandled error in timed call %r", call, exc_info=error)

    # ---------------------------------------------------------------- lifecycle

    def run(self, installSignalHandlers: bool = True) -> None:
        """Fire ``startup``, run the loop until :meth:`stop` (or :meth:`crash`), and return.

        ``stop`` fires ``shutdown`` (before, during, after) before ``run`` returns. With
        ``installSignalHandlers`` true, in the main thread, SIGINT and SIGTERM stop the
        reactor; the previous handlers come back when ``run`` returns. The thread that
        calls ``run`` is the reactor thread until it returns.

        :raises ReactorAlreadyRunning: the reactor is already running.
        :raises Exception: the loop itself failed :attr:`maxLoopFailures` times in a row
            (say, the poller raising every time): the reactor crashed (no ``shutdown``
            event) and this is the last error.
        """
        self._beginRun(installSignalHandlers)
        try:
            self._events.fire("startup")
            self._mainLoop()
        finally:
            self._endRun()

    def _beginRun(self, installSignalHandlers: bool) -> None:
        # The calling thread becomes the reactor thread; startup is the caller's to fire.
        if self._started or self._reactorThread is not None:
            raise ReactorAlreadyRunning("the reactor is already running")
        self._reactorThread = threading.get_ident()
        self._startedBefore = True
        self._started = True
        self._stopped = False
        self._stopping = False
        self._justStopped = False
        self._installSignals = bool(installSignalHandlers)
        # This thread is awake until its first poll, which looks at the queue first.
        self._awake = True

    def _endRun(self) -> None:
        self._signals.uninstall()
        self._started = False
        self._running = False
        self._stopped = True
        self._justStopped = False
        self._stopping = False
        self._reactorThread = None

    def _startupDuring(self) -> None:
        self._running = True
        if self._installSignals:
            self._signals.install()

    def _shutdownDuring(self) -> None:
        # Twisted's crash + disconnectAll, first thing of 'during shutdown'.
        self._started = False
        self._running = False
        self._disconnectAll()

    def stop(self) -> None:
        """Stop the reactor: fire ``shutdown`` at the next iteration, then leave :meth:`run`.

        :attr:`running` stays true through the 'before shutdown' phase, whose
        Deferred-returning triggers can hold the rest while the loop keeps serving
        I/O, timers and thread calls. Reactor thread (use ``callFromThread(reactor.stop)``
        from others).

        :raises ReactorNotRunning: the reactor is not running, or already stopping.
        """
        if self._stopped:
            raise ReactorNotRunning("Can't stop a reactor that isn't running (or is already stopping).")
        self._stopped = True
        self._justStopped = True
        self._stopping = True
        if not self._awake:
            self._awake = True
            self._waker.wakeUp()

    def crash(self) -> None:
        """Leave :meth:`run` after the current iteration, without firing ``shutdown``."""
        self._started = False
        self._running = False

    def callWhenRunning(self, f: Callable[..., object], /, *args: Any, **kw: Any) -> object | None:
        """Call ``f(*args, **kw)`` now if the reactor is running, else when it starts ('after startup').

        Returns the trigger ID when the call was deferred (for
        :meth:`removeSystemEventTrigger`), None when it ran now.
        """
        if self._running:
            f(*args, **kw)
            return None
        return self._events.add("after", "startup", f, args, kw)

    def addSystemEventTrigger(
        self, phase: str, eventType: str, f: Callable[..., object], /, *args: Any, **kw: Any
    ) -> object:
        """Call ``f(*args, **kw)`` in ``phase`` ('before', 'during', 'after') of ``eventType``; return an ID.

        A 'before' trigger may return a Deferred: the 'during' phase waits until it
        fires, while the loop keeps running. Triggers are consumed by the firing that
        runs them (register again for the next run of a restarted reactor).

        :raises ValueError: ``phase`` is not one of the three (the message names it).
        :raises TypeError: ``eventType`` is not a str or ``f`` is not callable.
        """
        return self._events.add(phase, eventType, f, args, kw)

    def removeSystemEventTrigger(self, triggerID: object) -> None:
        """Remove a pending trigger. :raises ValueError: unknown, removed or already fired."""
        self._events.remove(triggerID)

    def fireSystemEvent(self, eventType: str) -> None:
        """Fire ``eventType``'s triggers: 'before' now; 'during' and 'after' once its Deferreds fired."""
        self._events.fire(eventType)

    # ---------------------------------------------------------------- the loop

    def _mainLoop(self) -> None:
        # The fast loop (_runLoop) runs until something escapes it. Then, while the loop is
        # failing, iterate one guarded turn at a time (_iterate, same steps): a turn that
        # completes proves the loop healthy again and sends us back to the fast loop. So the
        # failure count needs no bookkeeping on the hot path, and it counts only failures
        # with no successful iteration in between.
        failures = 0
        while self._started:
            try:
                if failures:
                    self._iterate(None)
                    failures = 0
                else:
                    self._runLoop()
            except Exception:
                failures += 1
                if failures <= _TRACEBACKS_LOGGED:
                    _log.exception("Unexpected error in the reactor loop")
                    if failures == _TRACEBACKS_LOGGED:
                        _log.error(
                            "The reactor loop failed %d times in a row; logging no more "
                            "tracebacks until it recovers (it crashes after %d)",
                            failures,
                            self.maxLoopFailures,
                        )
                if failures >= self.maxLoopFailures:
                    _log.critical(
                        "The reactor loop failed %d times in a row with no successful iteration; "
                        "crashing the reactor (run() re-raises the last error)",
                        failures,
                        exc_info=True,
                    )
                    self.crash()
                    raise

    def _runLoop(self) -> None:
        # _iterate(None), unrolled with everything it touches bound to locals: this loop runs once
        # per wake-up, so its fixed cost is paid per message when traffic is light.
        queue = self._threadCalls
        timers = self._timers
        heap = timers._heap  # mutated in place only, never replaced
        runDue = timers.runDue
        onError = self._timedCallFailed
        poll = self._poller.poll
        dispatch = self._dispatch
        spin = self._spin
        while self._started:
            if self._justStopped:
                self._justStopped = False
                self._events.fire("shutdown")
            hadThreadCalls = bool(queue)
            choice = self._spinChoice
            if choice is not None:
                if hadThreadCalls:
                    choice.arrived(perfCounter())
                else:
                    choice.interrupted()
            if hadThreadCalls:
                self._runThreadCalls()
            if heap:
                runDue(_monotonic(), onError=onError)
            if (
                hadThreadCalls
                and not queue
                and self._started
                and not self._justStopped
                and (choice is None or choice.waiting(perfCounter()))
                and spin.shouldSpin()
            ):
                # Still awake (no waker write needed): the next thread call is likely a moment away.
                ready = self._spinForThreadCalls(spin.window)
                if ready:
                    dispatch(ready)
                if ready or queue:
                    continue
            # About to (maybe) block: from here on a thread that calls in must write the waker.
            self._awake = False
            timeout: float
            if queue or self._justStopped or not self._started:
                timeout = 0
            elif heap:
                nextTime = timers.nextTime()
                if nextTime is None:
                    timeout = -1
                else:
                    timeout = nextTime - _monotonic()
                    if timeout < 0:
                        timeout = 0
            else:
                timeout = -1
            try:
                ready = poll(timeout)
            finally:
                self._awake = True
            if ready:
                dispatch(ready)

    def _spinForThreadCalls(self, window: float) -> list[tuple[int, int]]:
        """Poll I/O and the thread-call queue for up to ``window`` seconds, pausing with the GIL
        released in between; return the ready descriptors (empty when none became ready)."""
        queue = self._threadCalls
        poll = self._poller.poll
        heap = self._timerHeap
        deadline = perfCounter() + window
        if heap:
            nextTime = self._timers.nextTime()
            if nextTime is not None:  # never spin past a due timed call
                deadline = min(deadline, perfCounter() + max(0.0, nextTime - _monotonic()))
        while True:
            ready: list[tuple[int, int]] = poll(0)
            if ready or queue:
                self._spin.spun(True)
                return ready
            if perfCounter() >= deadline:
                self._spin.spun(False)
                return ready
            pause()

    def iterate(self, delay: float = 0) -> None:
        """Run one iteration: due thread and timed calls, then wait up to ``delay`` seconds for I/O."""
        self._iterate(delay)

    def _iterate(self, maxTimeout: float | None) -> None:
        # One turn of _runLoop (kept in step with it), with an upper bound on the wait.
        self._runPending()
        queue = self._threadCalls
        timers = self._timers
        self._awake = False
        timeout: float
        if queue or self._justStopped or (maxTimeout is None and not self._started):
            timeout = 0
        else:
            nextTime = timers.nextTime()
            timeout = -1 if nextTime is None else max(0.0, nextTime - _monotonic())
            if maxTimeout is not None and (timeout < 0 or timeout > maxTimeout):
                timeout = max(0.0, maxTimeout)
        try:
            ready = self._poller.poll(timeout)
        finally:
            self._awake = True
        if ready:
            self._dispatch(ready)

    def _runPending(self) -> None:
        """What a turn does before it waits: ``shutdown`` if :meth:`stop` was called, the thread
        calls queued so far, the timed calls that are due (``_runLoop`` inlines the same steps)."""
        if self._justStopped:
            self._justStopped = False
            self._events.fire("shutdown")
        if self._threadCalls:
            self._runThreadCalls()
        if self._timerHeap:
            self._timers.runDue(_monotonic(), onError=self._timedCallFailed)

    def _dispatch(self, ready: list[tuple[int, int]]) -> None:
        """Call doRead/doWrite on the objects whose descriptors ``poll`` reported."""
        get = self._selectables.get
        for fd, events in ready:
            # Looked up now, not at poll time: an earlier callback may have removed or replaced it.
            slot = get(fd)
            if slot is None:
                continue
            if events & _READABLE:
                obj = slot[0]
                if obj is not None:
                    why: object
                    try:
                        if obj.fileno() < 0:
                            why = FileDescriptorGone("the file descriptor was closed")
                        else:
                            why = obj.doRead()
                    except Exception:
                        _log.exception("Error in %s.doRead", type(obj).__name__)
                        why = Failure()
                    if why is not None:
                        self._disconnectSelectable(obj, why)
            if events & _WRITABLE:
                # Read again: doRead may have removed the writer.
                obj = slot[1]
                if obj is not None:
                    try:
                        if obj.fileno() < 0:
                            why = FileDescriptorGone("the file descriptor was closed")
                        else:
                            why = obj.doWrite()
                    except Exception:
                        _log.exception("Error in %s.doWrite", type(obj).__name__)
                        why = Failure()
                    if why is not None:
                        self._disconnectSelectable(obj, why)

    def _disconnectSelectable(self, selectable: Any, why: object) -> None:
        self.removeReader(selectable)
        self.removeWriter(selectable)
        if isinstance(why, Failure):
            reason = why
        elif isinstance(why, BaseException):
            reason = Failure(why)
        else:
            reason = Failure(ConnectionLost(f"doRead/doWrite returned {why!r}"))
        try:
            selectable.connectionLost(reason)
        except Exception:
            _log.exception("Error in %s.connectionLost", type(selectable).__name__)

    def _disconnectAll(self) -> None:
        for selectable in self.removeAll():
            try:
                selectable.connectionLost(Failure(ConnectionLost("the reactor shut down")))
            except Exception:
                _log.exception("Error in %s.connectionLost at shutdown", type(selectable).__name__)

    def _stopOnSignal(self, signum: int) -> None:
        # Runs inside the signal handler (main thread, between bytecodes): hand over, do nothing else.
        self.callFromThread(self._stopAfterSignal, signum)

    def _stopAfterSignal(self, signum: int) -> None:
        if self._stopped:
            return
        _log.info("Received signal %d, shutting down.", signum)
        self.stop()

    # ---------------------------------------------------------------- file descriptors

    def addReader(self, reader: Any) -> None:
        """Call ``reader.doRead()`` whenever ``reader.fileno()`` is readable (idempotent). Reactor thread.

        :raises TypeError: no usable ``fileno()``. :raises ValueError: ``fileno()`` is negative.
        """
        self._add(reader, 0, self._readers, "reader")

    def addWriter(self, writer: Any) -> None:
        """Call ``writer.doWrite()`` whenever ``writer.fileno()`` is writable (idempotent). Reactor thread.

        :raises TypeError: no usable ``fileno()``. :raises ValueError: ``fileno()`` is negative.
        """
        self._add(writer, 1, self._writers, "writer")

    def removeReader(self, reader: Any) -> None:
        """Stop watching ``reader`` (no error if it was not watched). Reactor thread."""
        self._remove(reader, 0, self._readers)

    def removeWriter(self, writer: Any) -> None:
        """Stop watching ``writer`` (no error if it was not watched). Reactor thread."""
        self._remove(writer, 1, self._writers)

    def removeAll(self) -> list[Any]:
        """Stop watching every reader and writer (not the reactor's waker); return them. Reactor thread."""
        everything = list(dict.fromkeys([*self._readers, *self._writers]))
        for obj in everything:
            self._remove(obj, 0, self._readers)
            self._remove(obj, 1, self._writers)
        return everything

    def getReaders(self) -> list[Any]:
        """The objects watched for readability."""
        return list(self._readers)

    def getWriters(self) -> list[Any]:
        """The objects watched for writability."""
        return list(self._writers)

    def _add(self, obj: Any, index: int, registry: dict[Any, int], role: str) -> None:
        fd = _fdOf(obj, role)
        known = registry.get(obj)
        if known == fd:
            return
        if known is not None:
            # Same object, new descriptor: forget the old registration first.
            self._remove(obj, index, registry)
        slot = self._selectables.get(fd)
        if slot is None:
            slot = [None, None]
            slot[index] = obj
            mask = POLLIN if index == 0 else POLLOUT
            try:
                self._poller.register(fd, mask)
            except FileExistsError:
                # The kernel still has a registration nobody owns any more (a dup of a closed fd).
                self._poller.modify(fd, mask)
            self._selectables[fd] = slot
        else:
            # A watcher whose descriptor no longer is `fd` closed it without removing itself and the
            # number was reused: drop it, and register afresh (the kernel forgot the old one).
            stale = False
            for i in (0, 1):
                other = slot[i]
                if other is not None and other is not obj and (i == index or _currentFd(other) != fd):
                    (self._readers if i == 0 else self._writers).pop(other, None)
                    slot[i] = None
                    stale = True
            slot[index] = obj
            try:
                if stale:
                    self._reregister(fd, slot)
                else:
                    self._modify(fd, slot)
            except BaseException:
                slot[index] = None
                if slot[0] is None and slot[1] is None:
                    del self._selectables[fd]
                    self._unregisterQuietly(fd)
                raise
        registry[obj] = fd

    def _remove(self, obj: Any, index: int, registry: dict[Any, int]) -> None:
        fd = registry.pop(obj, None)
        if fd is None:
            return
        slot = self._selectables.get(fd)
        if slot is None or slot[index] is not obj:
            return
        slot[index] = None
        if slot[0] is None and slot[1] is None:
            del self._selectables[fd]
            self._unregisterQuietly(fd)
        else:
            try:
                self._modify(fd, slot)
            except OSError:
                pass  # the descriptor is already closed; the remaining watcher will see it

    def _modify(self, fd: int, slot: _Slot) -> None:
        try:
            self._poller.modify(fd, _eventsOf(slot))
        except OSError:
            # The kernel dropped the registration (fd closed and maybe reused): start afresh.
            self._reregister(fd, slot)

    def _reregister(self, fd: int, slot: _Slot) -> None:
        self._unregisterQuietly(fd)
        self._poller.register(fd, _eventsOf(slot))

    def _unregisterQuietly(self, fd: int) -> None:
        try:
            self._poller.unregister(fd)
        except (ValueError, OSError):
            pass  # closed already (the kernel forgot it), or never registered

    def close(self) -> None:
        """Release the poller and the waker pipe. The reactor must not be running and is unusable after."""
        if self._started:
            raise RuntimeError("close() on a running reactor")
        self._poller.close()
        self._waker.close()
