"""A reactor hosted on a foreign event loop: :class:`HostedReactor`, the part asyncio and Qt share.

Everything above the wait is the ordinary :class:`~reactor.Reactor` (Deferreds,
``callLater``, ``callFromThread``, system events, transports, thread pools, adbapi);
the host loop does the waiting. A host supplies five things (the ``_host*`` methods):
a poller that turns the reactor's descriptor registrations into the host's own
watches and reports readiness to :meth:`HostedReactor._onReady`; "call soon"; a
one-shot timer; running its loop until told to stop; and stopping it.

The descriptors stay in the reactor's own poller (epoll on Linux), exactly as in the
epoll loop; the host watches that poller's one descriptor, which is readable whenever a
watched descriptor is ready. So a hosted reactor has epoll's semantics to the letter (a
descriptor closed without ``removeReader`` is forgotten by the kernel, not reported
under a reused number; a registration a ``dup`` keeps alive is handled as in the epoll
loop), and the host needs one watch, not one per connection.

On top of those this module maps the reactor's loop onto callbacks from the host:

- the poller's descriptor readable: one ``poll(0)`` and ``doRead``/``doWrite`` on every
  ready descriptor (the reactor's ``_dispatch``), as one turn of the epoll loop would;
- the reactor's own turn (:meth:`HostedReactor._step`): ``shutdown`` if ``stop()`` was
  called, the thread calls queued so far, the timed calls that are due. It is scheduled
  with "call soon" whenever thread calls are queued or a stop is pending, and the
  wake-up pipe is one more watched descriptor, so ``callFromThread`` keeps its coalesced
  wake-ups (one pipe write per burst);
- the timed calls: one host timer stands for the earliest, moved when a call is scheduled
  or moved earlier (:class:`_WatchedTimerQueue`) and after every turn.

Threads: the reactor thread is the host loop's thread.
"""

from __future__ import annotations

import logging
import math
import time
from abc import ABCMeta, abstractmethod
from collections.abc import Callable
from typing import Any, Protocol

from reactor._delayed import DelayedCall, TimerQueue
from reactor._errors import ReactorAlreadyRunning
from reactor._loop import Reactor

__all__: list[str] = []

_log = logging.getLogger("reactor.hosted")
_monotonic = time.monotonic


class HostTimer(Protocol):
    """A pending one-shot host timer."""

    def cancel(self) -> None: ...


class _WatchedTimerQueue(TimerQueue):
    """A :class:`TimerQueue` that reports a call moved earlier (``DelayedCall.reset``/``delay``),
    so the one host timer standing for the queue can be brought forward."""

    __slots__ = ("movedEarlier",)

    def __init__(self, seconds: Callable[[], float], movedEarlier: Callable[[float], None]) -> None:
        super().__init__(seconds)
        self.movedEarlier = movedEarlier

    def _moveTo(self, call: DelayedCall, time: float) -> None:
        earlier = time < call.time
        super()._moveTo(call, time)
        if earlier:
            self.movedEarlier(time)


class HostedReactor(Reactor, metaclass=ABCMeta):
    """A :class:`~reactor.Reactor` whose waiting is done by a host event loop (subclasses: asyncio, Qt).

    Beyond the Reactor's API: :meth:`startRunning`, for a host loop someone else
    runs. ``spinTime`` is always 0.
    """

    #: The host's name in error messages.
    _hostName = "host"

    def __init__(self) -> None:
        super().__init__(spinTime=0.0)
        # Reactor thread (the host loop's): the host timer standing for the earliest timed call.
        self._timerHandle: HostTimer | None = None
        self._timerWhen = math.inf
        self._stepPending = False
        self._runsLoop = False  # inside run(): stop the host loop once shutdown is over
        self._iterating = False  # inside iterate(): stop the host loop after our first callback
        self._closed = False  # after close(): host callbacks still queued do nothing
        self._stopWaiters: list[Callable[[], None]] = []
        pollerFD = getattr(self._poller, "fileno", None)
        if pollerFD is None:
            raise RuntimeError("a hosted reactor needs a poller with a descriptor (epoll or kqueue)")
        self._hostWatch(pollerFD(), self._onPollerReady)

    def _newTimerQueue(self) -> TimerQueue:
        return _WatchedTimerQueue(_monotonic, self._timerMovedEarlier)

    # ---------------------------------------------------------------- what a host supplies

    @abstractmethod
    def _hostWatch(self, fd: int, onReadable: Callable[[], None]) -> None:
        """Call ``onReadable()`` whenever ``fd`` is readable (level-triggered), until :meth:`_hostUnwatch`."""

    @abstractmethod
    def _hostUnwatch(self, fd: int) -> None:
        """Stop watching ``fd``."""

    @abstractmethod
    def _hostCallSoon(self, f: Callable[[], None]) -> None:
        """Call ``f()`` from the host loop soon (after the callbacks it is running now)."""

    @abstractmethod
    def _hostCallLater(self, delay: float, f: Callable[[], None]) -> HostTimer:
        """Call ``f()`` from the host loop ``delay`` seconds from now, never earlier."""

    @abstractmethod
    def _hostRun(self) -> None:
        """Run the host loop until :meth:`_hostStop` (or the host's own stop) ends it."""

    @abstractmethod
    def _hostStop(self) -> None:
        """End the innermost :meth:`_hostRun`."""

    @abstractmethod
    def _hostIsRunning(self) -> bool:
        """True while the host loop runs in a way :meth:`run` cannot nest in."""

    def _hostUsable(self) -> bool:
        """False once the host loop is closed (nothing may be scheduled on it any more)."""
        return True

    def _usable(self) -> bool:
        return not self._closed and self._hostUsable()

    # ---------------------------------------------------------------- time

    def callLater(self, delay: float, f: Callable[..., object], /, *args: Any, **kw: Any) -> DelayedCall:
        """As :meth:`Reactor.callLater`; the call runs from the host loop's timer."""
        call = super().callLater(delay, f, *args, **kw)
        if call.time < self._timerWhen:
            self._armTimer()
        return call

    def _timerMovedEarlier(self, when: float) -> None:
        if when < self._timerWhen:
            self._armTimer()

    def _armTimer(self) -> None:
        nextTime = self._timers.nextTime()
        if nextTime == self._timerWhen:
            return
        handle = self._timerHandle
        if handle is not None:
            handle.cancel()
            self._timerHandle = None
        if nextTime is None or not self._usable():
            self._timerWhen = math.inf
            return
        self._timerWhen = nextTime
        self._timerHandle = self._hostCallLater(max(0.0, nextTime - _monotonic()), self._onTimer)

    def _onTimer(self) -> None:
        self._timerHandle = None
        self._timerWhen = math.inf  # so _settle arms again, even for a time the host reached early
        if not self._closed:
            self._step()

    # ---------------------------------------------------------------- from the host into the reactor

    def _onPollerReady(self) -> None:
        """The reactor's poller is readable (called by the host): serve every ready descriptor."""
        if self._closed:
            return
        # Also the waker's readiness: its doRead drains the pipe and the thread calls run below. A stop()
        # made while serving descriptors fires shutdown in a later turn, as the epoll loop's next
        # iteration would: every descriptor ready now is served first.
        try:
            ready = self._poller.poll(0)
            if ready:
                self._dispatch(ready)
        finally:
            if self._threadCalls and not self._justStopped:
                # What the epoll loop's next iteration would start with, with no shutdown before it:
                # run them now rather than one host-loop turn later (the common wake-up: a worker's result).
                self._step()
            else:
                self._settle()

    def _scheduleStep(self) -> None:
        if not self._stepPending and self._usable():
            self._stepPending = True
            self._hostCallSoon(self._step)

    def _step(self) -> None:
        """One turn of the reactor's own work: shutdown if stop() was called, the thread calls
        queued so far, the timed calls that are due."""
        self._stepPending = False
        if self._closed:
            return
        self._awake = True
        try:
            self._runPending()
        except Exception:
            _log.exception("Unexpected error in the hosted reactor")
        finally:
            self._settle()

    def _beforeWait(self) -> None:
        """The host loop is about to wait, at any nesting depth (a host that can nest loops calls
        it): make sure queued thread calls and the earliest timed call will still be served."""
        if self._closed:
            return
        self._awake = False
        if self._threadCalls or self._justStopped:
            self._awake = True
            self._scheduleStep()
        if self._timerHandle is None or self._timers.nextTime() != self._timerWhen:
            self._armTimer()

    def _settle(self) -> None:
        # Cleared before the queue is looked at (as in the epoll loop): a thread that calls in after
        # this line writes the waker, one that called in before is seen below.
        self._beforeWait()
        if not self._started and self._reactorThread is not None:
            # Shutdown is over (or crash() was called).
            if self._runsLoop:
                self._hostStop()
            else:
                self._endRun()
        if self._iterating:
            self._hostStop()

    # ---------------------------------------------------------------- lifecycle

    def run(self, installSignalHandlers: bool = True) -> None:
        """Run the host loop, fire ``startup`` as its first callback, and return once :meth:`stop`
        has fired ``shutdown``.

        Beyond Twisted's asyncio reactor: startup triggers (``callWhenRunning``, ``react``'s
        main) run inside the running host loop, so they may use ``asyncio.get_running_loop()``
        or ``asyncio.create_task()``.

        :raises RuntimeError: the host loop is already running (use :meth:`startRunning`).
        :raises ReactorAlreadyRunning: the reactor is already running.
        """
        if self._started or self._reactorThread is not None:
            raise ReactorAlreadyRunning("the reactor is already running")
        if self._hostIsRunning():
            raise RuntimeError(
                f"the {self._hostName} loop is already running: use startRunning() to host the reactor on it"
            )
        self._beginRun(installSignalHandlers)
        self._runsLoop = True
        try:
            self._hostCallSoon(self._startInLoop)
            self._hostRun()
        finally:
            self._runsLoop = False
            self._endRun()

    def _startInLoop(self) -> None:
        # run()'s first host callback. A failing trigger is the events' to report; the loop goes on.
        self._awake = True  # a turn of ours: thread calls made meanwhile need no waker write
        try:
            self._events.fire("startup")
        finally:
            if self._started:
                self._step()
            else:  # a startup trigger crashed the reactor
                self._settle()

    def startRunning(self, installSignalHandlers: bool = False) -> None:
        """Start the reactor on a host loop that someone else runs: fire ``startup`` now.

        Call it in the loop's thread. The reactor then runs as long as the host loop
        does (its descriptors, timed calls and thread calls are served whenever the
        loop runs); :meth:`stop` fires ``shutdown`` (thread pools and connection pools
        drain) and leaves the loop running. With ``installSignalHandlers`` true, in
        the main thread, SIGINT and SIGTERM stop the reactor.

        :raises ReactorAlreadyRunning: the reactor is already running.
        """
        self._beginRun(installSignalHandlers)
        try:
            self._events.fire("startup")
        except BaseException:
            self._endRun()
            raise
        self._scheduleStep()

    def _whenStopped(self, done: Callable[[], None]) -> None:
        # done() once the reactor has stopped (now, if it is not running).
        if self._reactorThread is None:
            done()
        else:
            self._stopWaiters.append(done)

    def _endRun(self) -> None:
        super()._endRun()
        # After the flags: a waiter sees a stopped reactor (and may run it again).
        self._notifyStopped()

    def _notifyStopped(self) -> None:
        waiters, self._stopWaiters = self._stopWaiters, []
        for done in waiters:
            try:
                done()
            except Exception:
                _log.exception("Error in a stop waiter %r", done)

    def _shutdownDuring(self) -> None:
        super()._shutdownDuring()
        # 'during shutdown' may run from a host callback made outside _step (an asyncio Future
        # completing a 'before' trigger's Deferred): make sure a step notices the end.
        self._scheduleStep()

    def crash(self) -> None:
        """Leave :meth:`run` (or end :meth:`startRunning`) soon, without firing ``shutdown``."""
        super().crash()
        self._scheduleStep()

    def iterate(self, delay: float = 0) -> None:
        """Run the host loop until the reactor had something to do, or ``delay`` seconds passed.

        :raises RuntimeError: the host loop is already running.
        """
        if self._hostIsRunning():
            raise RuntimeError(f"iterate() needs the {self._hostName} loop stopped; it is running")
        if self._threadCalls or self._justStopped:
            self._scheduleStep()
        handle = self._hostCallLater(max(0.0, delay), self._hostStop)
        self._iterating = True
        try:
            self._hostRun()
        finally:
            self._iterating = False
            handle.cancel()

    def close(self) -> None:
        """Release the poller, the waker and this reactor's watch and timer on the host loop.

        Idempotent. Host callbacks still queued (a scheduled turn) do nothing afterwards.
        """
        if self._closed:
            return
        if self._started:
            raise RuntimeError("close() on a running reactor")
        self._closed = True
        if self._timerHandle is not None:
            self._timerHandle.cancel()
            self._timerHandle = None
        self._timerWhen = math.inf
        if self._hostUsable():
            self._hostUnwatch(self._poller.fileno())
        super().close()
