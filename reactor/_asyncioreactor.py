"""A reactor hosted on an asyncio event loop: :class:`AsyncioReactor`.

Everything above the loop is the ordinary :class:`~reactor.Reactor` (Deferreds,
``callLater``, ``callFromThread``, system events, TCP/UDP/Unix/TLS transports,
thread pools, adbapi); only the wait is asyncio's. Descriptors are watched with
``loop.add_reader``/``add_writer`` (through :class:`_AsyncioPoller`, which speaks
the epoll interface the reactor's descriptor table already uses), the earliest
timed call is one asyncio timer, and the reactor's wake-up pipe is one more
asyncio reader. So asyncio tasks and reactor code run interleaved in one thread,
and a Deferred and an asyncio Future can be bridged with ``Deferred.asFuture`` /
``Deferred.fromFuture``.

Two ways to run it:

- ``reactor.run()`` runs the asyncio loop (``run_forever``) until ``reactor.stop()``
  has fired ``shutdown``, as Twisted's ``asyncioreactor`` does;
- ``reactor.startRunning()`` inside a loop that is already running (under
  ``asyncio.run``, an ASGI server, ...): ``startup`` fires, and ``reactor.stop()``
  later fires ``shutdown`` and leaves the loop running; :meth:`AsyncioReactor.whenStopped`
  gives a Future for the end of it.

Threads: as for every reactor, the reactor thread is the asyncio loop's thread;
``callFromThread`` and ``wakeUp`` are the only methods for other threads.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from typing import Any

from reactor._delayed import DelayedCall, TimerQueue
from reactor._loop import Reactor
from reactor._poller import POLLIN, POLLOUT

__all__ = ["AsyncioReactor"]

_log = logging.getLogger("reactor.asyncio")
_monotonic = time.monotonic


class _AsyncioPoller:
    """epoll's ``register``/``modify``/``unregister`` over an asyncio loop's ``add_reader``/``add_writer``.

    Readiness is not polled: asyncio calls ``onReady(fd, POLLIN)`` or
    ``onReady(fd, POLLOUT)``. Errors follow epoll's (the reactor's descriptor table
    relies on them): registering a known descriptor raises ``FileExistsError``,
    modifying or unregistering an unknown one ``FileNotFoundError``; an ``OSError``
    from asyncio's selector (a descriptor closed behind its back) propagates, and
    the table registers afresh.
    """

    __slots__ = ("_loop", "_masks", "_onReady")

    def __init__(self, loop: asyncio.AbstractEventLoop, onReady: Callable[[int, int], None]) -> None:
        self._loop = loop
        self._onReady = onReady
        self._masks: dict[int, int] = {}

    def register(self, fd: int, mask: int) -> None:
        if fd in self._masks:
            raise FileExistsError(f"fd {fd} is already registered")
        self._apply(fd, 0, mask)
        self._masks[fd] = mask

    def modify(self, fd: int, mask: int) -> None:
        old = self._masks.get(fd)
        if old is None:
            raise FileNotFoundError(f"fd {fd} is not registered")
        try:
            self._apply(fd, old, mask)
        except BaseException:
            self._forget(fd)
            raise
        self._masks[fd] = mask

    def unregister(self, fd: int) -> None:
        if fd not in self._masks:
            raise FileNotFoundError(f"fd {fd} is not registered")
        self._forget(fd)

    def _forget(self, fd: int) -> None:
        self._masks.pop(fd, None)
        loop = self._loop
        if loop.is_closed():
            return
        # Removing is also how asyncio's selector forgets a descriptor closed behind its back.
        for remove in (loop.remove_reader, loop.remove_writer):
            try:
                remove(fd)
            except (OSError, ValueError):
                pass

    def _apply(self, fd: int, old: int, new: int) -> None:
        loop = self._loop
        if new & POLLIN and not old & POLLIN:
            loop.add_reader(fd, self._onReady, fd, POLLIN)
        elif old & POLLIN and not new & POLLIN:
            loop.remove_reader(fd)
        if new & POLLOUT and not old & POLLOUT:
            loop.add_writer(fd, self._onReady, fd, POLLOUT)
        elif old & POLLOUT and not new & POLLOUT:
            loop.remove_writer(fd)

    def poll(self, timeout: float = -1) -> list[tuple[int, int]]:
        raise RuntimeError("an asyncio-hosted reactor is never polled: its asyncio loop waits")

    def close(self) -> None:
        for fd in list(self._masks):
            self._forget(fd)


class _WatchedTimerQueue(TimerQueue):
    """A :class:`TimerQueue` that reports a call moved earlier (``DelayedCall.reset``/``delay``),
    so the one asyncio timer standing for the queue can be brought forward."""

    __slots__ = ("movedEarlier",)

    def __init__(self, seconds: Callable[[], float], movedEarlier: Callable[[float], None]) -> None:
        super().__init__(seconds)
        self.movedEarlier = movedEarlier

    def _moveTo(self, call: DelayedCall, time: float) -> None:
        earlier = time < call.time
        super()._moveTo(call, time)
        if earlier:
            self.movedEarlier(time)


class AsyncioReactor(Reactor):
    """A :class:`~reactor.Reactor` whose waiting is done by an asyncio event loop.

    ``eventloop``: the loop to run on (it must support ``add_reader``: a selector
    loop or uvloop, not the Windows proactor). Without it, the running loop is used
    when there is one, else a new loop is created, which :meth:`close` closes.

    Same API and semantics as :class:`~reactor.Reactor` (Twisted's
    ``AsyncioSelectorReactor``), plus :meth:`startRunning` and :meth:`whenStopped`
    for a loop someone else runs. ``spinTime`` is always 0: the asyncio loop does
    the waiting.

    :raises TypeError: ``eventloop`` is not an asyncio event loop.
    """

    def __init__(self, eventloop: asyncio.AbstractEventLoop | None = None) -> None:
        owned = False
        if eventloop is None:
            try:
                eventloop = asyncio.get_running_loop()
            except RuntimeError:
                eventloop = asyncio.new_event_loop()
                owned = True
        elif not isinstance(eventloop, asyncio.AbstractEventLoop):
            raise TypeError(f"eventloop must be an asyncio event loop, not {type(eventloop).__name__}")
        # Read by _newPoller, which the base __init__ calls.
        self._asyncioEventloop: asyncio.AbstractEventLoop = eventloop
        self._ownsLoop = owned
        super().__init__(spinTime=0.0)
        self._timers = _WatchedTimerQueue(_monotonic, self._timerMovedEarlier)
        self._timerCalls = self._timers._calls
        self._timerHeap = self._timers._heap
        self._timerSeqs = self._timers._seqs
        # Reactor thread (the loop's): the asyncio timer standing for the earliest timed call.
        self._timerHandle: asyncio.TimerHandle | None = None
        self._timerWhen = math.inf
        self._stepPending = False
        self._runsLoop = False  # inside run(): stop the asyncio loop once shutdown is over
        self._iterating = False  # inside iterate(): stop the asyncio loop after our first callback
        self._stoppedFutures: list[asyncio.Future[None]] = []

    def _newPoller(self) -> Any:
        return _AsyncioPoller(self._asyncioEventloop, self._onReady)

    @property
    def eventloop(self) -> asyncio.AbstractEventLoop:
        """The asyncio loop this reactor runs on."""
        return self._asyncioEventloop

    def __repr__(self) -> str:
        return "<Asyncio" + super().__repr__()[1:]

    # ---------------------------------------------------------------- time

    def callLater(self, delay: float, f: Callable[..., object], /, *args: Any, **kw: Any) -> DelayedCall:
        """As :meth:`Reactor.callLater`; the call runs from the asyncio loop's timer."""
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
        loop = self._asyncioEventloop
        if nextTime is None or loop.is_closed():
            self._timerWhen = math.inf
            return
        self._timerWhen = nextTime
        self._timerHandle = loop.call_later(max(0.0, nextTime - _monotonic()), self._onTimer)

    def _onTimer(self) -> None:
        self._timerHandle = None
        self._timerWhen = math.inf  # so _settle arms again, even for a time asyncio reached early
        self._step()

    # ---------------------------------------------------------------- from asyncio into the reactor

    def _onReady(self, fd: int, events: int) -> None:
        # Also the waker's readiness: its doRead drains the pipe, and _settle schedules the step that
        # runs the thread calls. A stop() made here fires shutdown in that step, as the base loop's
        # next iteration would: the other descriptors asyncio found ready this turn are served first.
        try:
            self._dispatch([(fd, events)])
        finally:
            self._settle()

    def _scheduleStep(self) -> None:
        if not self._stepPending and not self._asyncioEventloop.is_closed():
            self._stepPending = True
            self._asyncioEventloop.call_soon(self._step)

    def _step(self) -> None:
        """One turn of the reactor's own work, called by asyncio: shutdown if stop() was called,
        the thread calls queued so far, the timed calls that are due."""
        self._stepPending = False
        self._awake = True
        try:
            if self._justStopped:
                self._justStopped = False
                self._events.fire("shutdown")
            if self._threadCalls:
                self._runThreadCalls()
            if self._timerHeap:
                self._timers.runDue(_monotonic(), onError=self._timedCallFailed)
        except Exception:
            _log.exception("Unexpected error in the asyncio-hosted reactor")
        finally:
            self._settle()

    def _settle(self) -> None:
        # Cleared before the queue is looked at (see the base loop): a thread that calls in after
        # this line writes the waker, one that called in before is seen below.
        self._awake = False
        if self._threadCalls or self._justStopped:
            self._awake = True
            self._scheduleStep()
        if self._timerHandle is None or self._timers.nextTime() != self._timerWhen:
            self._armTimer()
        if not self._started and self._reactorThread is not None:
            # Shutdown is over (or crash() was called).
            if self._runsLoop:
                self._asyncioEventloop.stop()
            else:
                self._finishHosted()
        if self._iterating:
            self._asyncioEventloop.stop()

    # ---------------------------------------------------------------- lifecycle

    def run(self, installSignalHandlers: bool = True) -> None:
        """Fire ``startup``, run the asyncio loop until :meth:`stop` has fired ``shutdown``, return.

        :raises RuntimeError: the asyncio loop is already running (use :meth:`startRunning`).
        :raises ReactorAlreadyRunning: the reactor is already running.
        """
        if self._asyncioEventloop.is_running():
            raise RuntimeError(
                "the asyncio loop is already running: use startRunning() to host the reactor on it"
            )
        super().run(installSignalHandlers)

    def _mainLoop(self) -> None:
        if not self._started:  # a startup trigger crashed the reactor
            return
        self._runsLoop = True
        try:
            self._step()
            if self._started:
                self._asyncioEventloop.run_forever()
        finally:
            self._runsLoop = False
            self._notifyStopped()

    def startRunning(self, installSignalHandlers: bool = False) -> None:
        """Start the reactor on an asyncio loop that someone else runs: fire ``startup`` now.

        Call it in the loop's thread (typically from a coroutine). The reactor then
        runs as long as the loop does; :meth:`stop` fires ``shutdown`` (thread pools and
        connection pools drain) and leaves the loop running. With
        ``installSignalHandlers`` true, in the main thread, SIGINT and SIGTERM stop the
        reactor.

        :raises ReactorAlreadyRunning: the reactor is already running.
        """
        self._beginRun(installSignalHandlers)
        try:
            self._events.fire("startup")
        except BaseException:
            self._finishHosted()
            raise
        self._step()

    def whenStopped(self) -> asyncio.Future[None]:
        """A Future on the asyncio loop that completes once the reactor has stopped (shutdown over).

        Already stopped (or never started): the Future is already done. Reactor thread.
        """
        future: asyncio.Future[None] = self._asyncioEventloop.create_future()
        if self._reactorThread is None:
            future.set_result(None)
        else:
            self._stoppedFutures.append(future)
        return future

    def _finishHosted(self) -> None:
        self._endRun()
        self._notifyStopped()

    def _notifyStopped(self) -> None:
        futures, self._stoppedFutures = self._stoppedFutures, []
        for future in futures:
            if not future.done():
                future.set_result(None)

    def _shutdownDuring(self) -> None:
        super()._shutdownDuring()
        # 'during shutdown' may run from a callback asyncio made outside _step (a Future
        # completing a 'before' trigger's Deferred): make sure a step notices the end.
        self._scheduleStep()

    def crash(self) -> None:
        """Leave :meth:`run` (or end :meth:`startRunning`) soon, without firing ``shutdown``."""
        super().crash()
        self._scheduleStep()

    def iterate(self, delay: float = 0) -> None:
        """Run the asyncio loop until the reactor had something to do, or ``delay`` seconds passed.

        :raises RuntimeError: the asyncio loop is already running.
        """
        loop = self._asyncioEventloop
        if loop.is_running():
            raise RuntimeError("iterate() needs the asyncio loop stopped; it is running")
        if self._threadCalls or self._justStopped:
            self._scheduleStep()
        handle = loop.call_later(max(0.0, delay), loop.stop)
        self._iterating = True
        try:
            loop.run_forever()
        finally:
            self._iterating = False
            handle.cancel()

    def close(self) -> None:
        """Release the waker and this reactor's asyncio registrations; close the loop if it made it."""
        super().close()
        if self._timerHandle is not None:
            self._timerHandle.cancel()
            self._timerHandle = None
        if self._ownsLoop and not self._asyncioEventloop.is_closed():
            self._asyncioEventloop.close()
