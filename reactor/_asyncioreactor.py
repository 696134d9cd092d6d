"""A reactor hosted on an asyncio event loop: :class:`AsyncioReactor`.

Everything above the loop is the ordinary :class:`~reactor.Reactor` (Deferreds,
``callLater``, ``callFromThread``, system events, TCP/UDP/Unix/TLS transports,
thread pools, adbapi); only the wait is asyncio's (``reactor._hosted`` explains the
mapping). The reactor's own epoll holds its descriptors (the wake-up pipe too) and
asyncio watches that epoll's one descriptor with ``loop.add_reader``; the earliest
timed call is one asyncio timer. So asyncio tasks and reactor
code run interleaved in one thread, and a Deferred and an asyncio Future can be
bridged with ``Deferred.asFuture`` / ``Deferred.fromFuture``.

Two ways to run it:

- ``reactor.run()`` runs the asyncio loop (``run_forever``) until ``reactor.stop()``
  has fired ``shutdown``, as Twisted's ``asyncioreactor`` does;
- ``reactor.startRunning()`` inside a loop that is already running (under
  ``asyncio.run``, an ASGI server, ...): ``startup`` fires, and ``reactor.stop()``
  later fires ``shutdown`` and leaves the loop running; :meth:`AsyncioReactor.whenStopped`
  gives a Future for the end of it. :func:`hostedReactor` does all of that as an
  ``async with`` (an ASGI ``lifespan``).

Threads: as for every reactor, the reactor thread is the asyncio loop's thread;
``callFromThread`` and ``wakeUp`` are the only methods for other threads.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from reactor import _default
from reactor._errors import ReactorAlreadyInstalledError
from reactor._hosted import HostedReactor, HostTimer
from reactor._signals import SignalHandlers

__all__ = ["AsyncioReactor", "hostedReactor"]


def _runningLoop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _currentLoop() -> asyncio.AbstractEventLoop | None:
    """The running loop, else the loop set as this thread's current one if it is open, else None.

    Unlike ``asyncio.get_event_loop()``, never creates a loop (which the main thread's
    policy does on Python 3.11 to 3.13): a loop the reactor makes is one it closes.
    """
    running = _runningLoop()
    if running is not None:
        return running
    policy = asyncio.get_event_loop_policy()
    local = getattr(policy, "_local", None)
    if local is not None and hasattr(local, "_loop"):  # asyncio's own policies
        loop: asyncio.AbstractEventLoop | None = local._loop
    else:  # a third-party policy: its get_event_loop() is all there is
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            try:
                loop = policy.get_event_loop()
            except RuntimeError:
                loop = None
    return None if loop is None or loop.is_closed() else loop


class AsyncioReactor(HostedReactor):
    """A :class:`~reactor.Reactor` whose waiting is done by an asyncio event loop.

    ``eventloop``: the loop to run on (it must support ``add_reader``: a selector
    loop or uvloop, not the Windows proactor). Without it: the running loop, else
    the thread's current loop (``asyncio.get_event_loop()``, as Twisted does), else a
    new loop, made the thread's current one, which :meth:`close` closes.

    Same API and semantics as :class:`~reactor.Reactor` (Twisted's
    ``AsyncioSelectorReactor``), plus :meth:`startRunning` and :meth:`whenStopped`
    for a loop someone else runs. ``spinTime`` is always 0: the asyncio loop does
    the waiting.

    :raises TypeError: ``eventloop`` is not an asyncio event loop.
    """

    _hostName = "asyncio"

    def __init__(self, eventloop: asyncio.AbstractEventLoop | None = None) -> None:
        owned = False
        if eventloop is None:
            eventloop = _currentLoop()
            if eventloop is None:
                # Made current too, so asyncio.get_event_loop() and ensure_future() (Twisted's idiom
                # for Deferred.fromFuture) in this thread reach the loop the reactor runs.
                eventloop = asyncio.new_event_loop()
                asyncio.set_event_loop(eventloop)
                owned = True
        elif not isinstance(eventloop, asyncio.AbstractEventLoop):
            raise TypeError(f"eventloop must be an asyncio event loop, not {type(eventloop).__name__}")
        # Read by _newPoller, which the base __init__ calls.
        self._asyncioEventloop: asyncio.AbstractEventLoop = eventloop
        self._ownsLoop = owned
        super().__init__()
        # asyncio's own signal handlers (loop.add_signal_handler) need its wake-up fd left alone.
        self._signals = SignalHandlers(self._stopOnSignal, self._waker.writeFD, keepExistingWakeupFD=True)

    @property
    def eventloop(self) -> asyncio.AbstractEventLoop:
        """The asyncio loop this reactor runs on."""
        return self._asyncioEventloop

    def __repr__(self) -> str:
        return "<Asyncio" + super().__repr__()[1:]

    def _hostWatch(self, fd: int, onReadable: Callable[[], None]) -> None:
        self._asyncioEventloop.add_reader(fd, onReadable)

    def _hostUnwatch(self, fd: int) -> None:
        self._asyncioEventloop.remove_reader(fd)

    def _hostCallSoon(self, f: Callable[[], None]) -> None:
        self._asyncioEventloop.call_soon(f)

    def _hostCallLater(self, delay: float, f: Callable[[], None]) -> HostTimer:
        return self._asyncioEventloop.call_later(delay, f)

    def _hostRun(self) -> None:
        self._asyncioEventloop.run_forever()

    def _hostStop(self) -> None:
        self._asyncioEventloop.stop()

    def _hostIsRunning(self) -> bool:
        # Any loop running in this thread: run_forever() would refuse only after startup had fired.
        return self._asyncioEventloop.is_running() or _runningLoop() is not None

    def _hostUsable(self) -> bool:
        return not self._asyncioEventloop.is_closed()

    def startRunning(self, installSignalHandlers: bool = False) -> None:
        """As :meth:`HostedReactor.startRunning`, in the thread of this reactor's asyncio loop.

        :raises RuntimeError: another asyncio loop is running in this thread (under
            ``asyncio.run``, make the reactor inside the coroutine, or pass
            ``asyncio.get_running_loop()``): every Deferred would wait forever.
        """
        running = _runningLoop()
        if running is not None and running is not self._asyncioEventloop:
            raise RuntimeError(
                f"this reactor runs on {self._asyncioEventloop!r}, but {running!r} is the loop running here: "
                "create the reactor inside the running loop (AsyncioReactor() in a coroutine) or pass "
                "eventloop=asyncio.get_running_loop()"
            )
        super().startRunning(installSignalHandlers)

    def whenStopped(self) -> asyncio.Future[None]:
        """A Future on the asyncio loop that completes once the reactor has stopped (shutdown over).

        Already stopped (or never started): the Future is already done. Reactor thread.
        """
        future: asyncio.Future[None] = self._asyncioEventloop.create_future()

        def done() -> None:
            if not future.done():
                future.set_result(None)

        self._whenStopped(done)
        return future

    def close(self) -> None:
        """Release the waker and this reactor's asyncio registrations; close the loop if it made it."""
        super().close()
        loop = self._asyncioEventloop
        if self._ownsLoop and not loop.is_closed():
            loop.close()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                try:
                    current = asyncio.get_event_loop_policy().get_event_loop()
                except RuntimeError:
                    current = None
            if current is loop:  # set by __init__: do not leave a closed loop as this thread's current one
                asyncio.set_event_loop(None)


@asynccontextmanager
async def hostedReactor(
    *, installDefault: bool = True, installSignalHandlers: bool = False
) -> AsyncIterator[AsyncioReactor]:
    """Host an :class:`AsyncioReactor` on the running loop for the body of an ``async with``.

    On entry: a reactor on ``asyncio.get_running_loop()`` (the default asyncio loop or uvloop),
    made the process-wide default while it runs (``installDefault``, so that ``deferToThread`` and
    ``reactor.getReactor()`` reach it), started (``startup`` fires). Yields the reactor. On exit, even
    when the body raised: ``reactor.stop()`` (unless the body stopped it already), so the ``before
    shutdown`` triggers drain the thread pools and connection pools (running calls finish and
    their Deferreds fire, queued ones are errbacked), then waits for the end of ``shutdown``,
    closes the reactor and uninstalls it as the default. A Starlette or FastAPI ``lifespan``::

        @contextlib.asynccontextmanager
        async def lifespan(app):
            async with hostedReactor() as reactor:
                yield {"reactor": reactor}

    Call it in the loop's thread, from a coroutine. ``installSignalHandlers``: as in
    :meth:`AsyncioReactor.startRunning` (an ASGI server has its own: leave it false).

    :raises ReactorAlreadyInstalledError: ``installDefault`` is true and a default reactor already
        exists (made by an earlier ``reactor.getReactor()`` or ``install()``); pass
        ``installDefault=False`` and hand the reactor to the code that needs it.
    """
    loop = asyncio.get_running_loop()
    reactor = AsyncioReactor(loop)
    installed = False
    try:
        if installDefault:
            _installDefault(reactor)
            installed = True
        reactor.startRunning(installSignalHandlers)
    except BaseException:
        if installed:
            _uninstallDefault(reactor)
        reactor.close()
        raise
    try:
        yield reactor
    finally:
        if not reactor._stopped:  # a stop() of the body's own is under way (or over) otherwise
            reactor.stop()
        await reactor.whenStopped()
        reactor.close()
        if installed:
            _uninstallDefault(reactor)


def _installDefault(reactor: AsyncioReactor) -> None:
    # As reactor.installReactor, with a message that says what to do instead.
    with _default._lock:
        current = _default._default
        if current is not None:
            raise ReactorAlreadyInstalledError(
                f"a default reactor already exists ({current!r}): hostedReactor(installDefault=False) "
                "and pass the hosted reactor to deferToThreadPool, ConnectionPool(..., reactor=...) and "
                "the like, or host it before anything calls reactor.getReactor()"
            )
        _default._default = reactor


def _uninstallDefault(reactor: AsyncioReactor) -> None:
    # Only while it is still ours: the next getReactor() (or hostedReactor()) starts afresh.
    with _default._lock:
        if _default._default is reactor:
            _default._default = None
