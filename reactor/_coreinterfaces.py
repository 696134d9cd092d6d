"""zope.interface interfaces of the reactor core: time, lifecycle, thread entry, file descriptors.

The roles and member names are Twisted's (``twisted.internet.interfaces``), so code
written against Twisted's interfaces reads the same. ``IReactorThreadAffinity`` goes
beyond Twisted: it says which thread runs the reactor and whether it is stopping,
which the thread-pool and database layers need to shut down in order.

Unless a docstring says otherwise, every method is called in the reactor thread.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from zope.interface import Attribute, Interface

__all__ = [
    "IDelayedCall",
    "IReactorCore",
    "IReactorFDSet",
    "IReactorFromThreads",
    "IReactorThreadAffinity",
    "IReactorTime",
    "IReadDescriptor",
    "IReadWriteDescriptor",
    "IWriteDescriptor",
]


class IDelayedCall(Interface):
    """A call scheduled to run later, returned by ``IReactorTime.callLater``."""

    def getTime() -> float:
        """Return the time, in the reactor's ``seconds()`` clock, at which the call runs."""

    def cancel() -> None:
        """Unschedule the call so it never runs.

        Raises ``AlreadyCancelled`` if it was cancelled, ``AlreadyCalled`` if it ran.
        """

    def delay(secondsLater: float) -> None:
        """Move the call ``secondsLater`` seconds later than its current time.

        Raises ``AlreadyCancelled``/``AlreadyCalled`` when the call is not active.
        """

    def reset(secondsFromNow: float) -> None:
        """Reschedule the call to run ``secondsFromNow`` seconds from now.

        Raises ``AlreadyCancelled``/``AlreadyCalled`` when the call is not active.
        """

    def active() -> bool:
        """Return True while the call has neither run nor been cancelled."""


class IReactorTime(Interface):
    """Time-based scheduling: a clock and calls that run when it reaches a time."""

    def seconds() -> float:
        """Return the current time in seconds, on the clock ``callLater`` uses.

        For the real reactor the clock is monotonic (unrelated to wall-clock time).
        """

    def callLater(
        delay: float, callable: Callable[..., object], /, *args: Any, **kwargs: Any
    ) -> IDelayedCall:
        """Call ``callable(*args, **kwargs)`` ``delay`` seconds from now, in the reactor thread.

        Returns an ``IDelayedCall``. Raises ``ValueError`` for a negative ``delay`` and
        ``TypeError`` when ``callable`` is not callable. An exception raised by the call
        is logged with its traceback; it does not stop the reactor.
        """

    def getDelayedCalls() -> list[IDelayedCall]:
        """Return every pending (scheduled, not yet run, not cancelled) call."""


class IReactorCore(Interface):
    """The reactor's lifecycle: run, stop, and the system events fired around them."""

    running = Attribute(
        "True from the 'during startup' phase until the 'during shutdown' phase begins "
        "(so it is still True in 'before shutdown' triggers)."
    )

    def run(installSignalHandlers: bool = True) -> None:
        """Fire the ``startup`` event and run the event loop until ``stop()`` or ``crash()``.

        Returns after the ``shutdown`` event has fired completely. With
        ``installSignalHandlers`` true and in the main thread, SIGINT and SIGTERM stop the
        reactor; the previous handlers are restored when ``run`` returns.
        """

    def stop() -> None:
        """Stop the reactor: fire ``shutdown`` (before, during, after), then leave ``run()``.

        Raises ``ReactorNotRunning`` if the reactor is not running or already stopping.
        """

    def crash() -> None:
        """Leave ``run()`` after the current iteration without firing ``shutdown``."""

    def iterate(delay: float = 0) -> None:
        """Run one iteration of the loop: due calls, then wait at most ``delay`` seconds for I/O."""

    def fireSystemEvent(eventType: str) -> None:
        """Fire the triggers of ``eventType``: 'before' ones, then (once every Deferred a
        'before' trigger returned has fired) 'during' ones, then 'after' ones.

        Triggers run once per firing: they are consumed by it.
        """

    def addSystemEventTrigger(
        phase: str, eventType: str, callable: Callable[..., object], /, *args: Any, **kwargs: Any
    ) -> object:
        """Add a trigger that calls ``callable(*args, **kwargs)`` when ``eventType`` fires.

        ``phase`` is 'before', 'during' or 'after' (anything else raises ``ValueError``
        naming it). A 'before' trigger may return a Deferred: the 'during' phase waits
        for it while the loop keeps running. Returns an opaque ID for
        ``removeSystemEventTrigger``.
        """

    def removeSystemEventTrigger(triggerID: object) -> None:
        """Remove a trigger added by ``addSystemEventTrigger``.

        Raises ``ValueError`` if it is unknown, already removed or already fired; removing a
        'before' trigger that ran in a firing still waiting on its Deferreds only warns
        (``DeprecationWarning``), as in Twisted.
        """

    def callWhenRunning(callable: Callable[..., object], /, *args: Any, **kwargs: Any) -> object | None:
        """Call ``callable(*args, **kwargs)`` now if the reactor is running, else once it is.

        Returns a trigger ID (removable) when the call was deferred, None when it ran now.
        """


class IReactorFromThreads(Interface):
    """The one door into the reactor from other threads."""

    def callFromThread(callable: Callable[..., object], /, *args: Any, **kwargs: Any) -> None:
        """Run ``callable(*args, **kwargs)`` in the reactor thread, soon.

        Safe to call from any thread at any time, including before ``run()`` and after
        a stop (the call then runs when the reactor next runs). Calls made by one thread
        run in the order it made them. An exception raised by the call is logged.
        """

    def wakeUp() -> None:
        """Make a sleeping reactor run an iteration of its loop now. Safe from any thread."""


class IReactorThreadAffinity(Interface):
    """Which thread runs the reactor, and whether it is on its way down (beyond Twisted)."""

    stopping = Attribute("True from stop() until run() returns. Readable from any thread.")

    def isReactorThread() -> bool:
        """Return True when called in the thread currently running this reactor. Any thread."""


class IReadDescriptor(Interface):
    """An object with a file descriptor the reactor watches for readability."""

    def fileno() -> int:
        """Return the file descriptor number (-1 once it is closed)."""

    def doRead() -> object:
        """Data (or a connection, or EOF) is available: handle it.

        Return None to keep going; return an exception or a Failure (or raise) to
        say the connection is done: the reactor then removes the descriptor and calls
        ``connectionLost`` with a Failure of that reason.
        """

    def connectionLost(reason: object) -> None:
        """The descriptor was dropped by the reactor; ``reason`` is a Failure."""


class IWriteDescriptor(Interface):
    """An object with a file descriptor the reactor watches for writability."""

    def fileno() -> int:
        """Return the file descriptor number (-1 once it is closed)."""

    def doWrite() -> object:
        """The descriptor can be written: write. Same return/raise protocol as ``doRead``."""

    def connectionLost(reason: object) -> None:
        """The descriptor was dropped by the reactor; ``reason`` is a Failure."""


class IReadWriteDescriptor(IReadDescriptor, IWriteDescriptor):
    """A descriptor watched for both reading and writing."""


class IReactorFDSet(Interface):
    """Watching file descriptors: the loop calls ``doRead``/``doWrite`` when they are ready."""

    def addReader(reader: IReadDescriptor) -> None:
        """Call ``reader.doRead()`` whenever its ``fileno()`` is readable (idempotent).

        Raises ``ValueError`` if ``fileno()`` is negative, ``TypeError`` if there is no ``fileno``.
        """

    def addWriter(writer: IWriteDescriptor) -> None:
        """Call ``writer.doWrite()`` whenever its ``fileno()`` is writable (idempotent)."""

    def removeReader(reader: IReadDescriptor) -> None:
        """Stop watching ``reader`` for readability (no error if it was not watched)."""

    def removeWriter(writer: IWriteDescriptor) -> None:
        """Stop watching ``writer`` for writability (no error if it was not watched)."""

    def removeAll() -> list[IReadDescriptor | IWriteDescriptor]:
        """Stop watching every reader and writer (the reactor's own waker excepted); return them."""

    def getReaders() -> list[IReadDescriptor]:
        """Return the objects watched for readability."""

    def getWriters() -> list[IWriteDescriptor]:
        """Return the objects watched for writability."""
