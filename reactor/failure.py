"""Twisted's ``twisted.python.failure`` as ``reactor.failure`` (``from reactor import failure``).

:class:`Failure` and :class:`NoCurrentExceptionError` are the ones ``reactor``
itself exports; :func:`format_frames` formats ``Failure.frames`` the way the
tracebacks do. This module also holds Failure's debug mode:
:func:`startDebugMode` makes every failure captured from an exception being
handled first open a post-mortem debugger on its traceback (as Twisted's does),
and :func:`stopDebugMode` (ours, Twisted has none) turns it off again.

Debug mode works by installing debugging versions of ``Failure.__init__`` and
of the internal constructor the Deferred runner uses for an exception raised
by a callback; off (the default) the plain ones are in place and it costs
nothing. It is process-wide: switch it from one thread while no failures are
being made elsewhere (typically at start-up, or around a test).
"""

from __future__ import annotations

import pdb
import sys
from collections.abc import Callable
from types import TracebackType
from typing import Any

from reactor._failure import Failure, NoCurrentExceptionError, format_frames

__all__ = [
    "DO_POST_MORTEM",
    "EXCEPTION_CAUGHT_HERE",
    "DefaultException",
    "Failure",
    "NoCurrentExceptionError",
    "format_frames",
    "startDebugMode",
    "stopDebugMode",
]

#: In debug mode, open the debugger only while this is true (read at each
#: capture, so it can be switched without leaving debug mode).
DO_POST_MORTEM = True

#: Kept for code that imports it; nothing prints it (as in Twisted, where it is unused too).
EXCEPTION_CAUGHT_HERE = "--- <exception caught here> ---"


class DefaultException(Exception):
    """A plain exception class, kept because ``twisted.python.failure`` offers it."""


# The plain versions, put back by stopDebugMode. Bound once at import: debug
# mode swaps these attributes on the class, so reading them later could
# return the debugging versions.
_plainInit = Failure.__init__
_plainFromException = Failure.__dict__["_fromException"]

# The debugger in use while debug mode is on: None means ``pdb.post_mortem``,
# looked up at each use (so a test may replace it there, as with Twisted).
# Written by start/stopDebugMode, read by whichever thread captures a failure.
_debugger: Callable[[TracebackType], object] | None = None


def _postMortem(value: BaseException, tb: TracebackType) -> None:
    """Say which exception is being debugged, then hand its traceback to the debugger."""
    if not DO_POST_MORTEM:
        return
    try:
        description = str(value)
    except BaseException:
        description = "broken str"
    print(f"Jumping into debugger for post-mortem of exception '{description}':")
    debugger = _debugger if _debugger is not None else pdb.post_mortem
    debugger(tb)


def _debugInit(
    self: Failure,
    exc_value: BaseException | None = None,
    exc_type: type[BaseException] | None = None,
    exc_tb: TracebackType | None = None,
    captureVars: bool = False,
) -> None:
    # Only Failure() with no exception given is a capture of the exception
    # being handled; a raised Failure of this class is already one.
    if exc_value is None and exc_type is None and exc_tb is None:
        excType, excValue, tb = sys.exc_info()
        if excValue is not None and tb is not None and excType is not type(self):
            _postMortem(excValue, tb)
    _plainInit(self, exc_value, exc_type, exc_tb, captureVars)


def _debugFromException(cls: type[Failure], value: BaseException) -> Failure:
    # The Deferred runner builds its failure this way, in its except block,
    # for an exception a callback raised (where Twisted calls Failure()).
    # Other callers (fail(exc)) correspond to Failure(exc), which debugs
    # nothing: so only the exception being handled right now is debugged.
    tb = value.__traceback__
    if tb is not None and sys.exc_info()[1] is value:
        _postMortem(value, tb)
    return _plainFromException.__func__(cls, value)  # type: ignore[no-any-return]


def startDebugMode(debugger: Callable[[TracebackType], Any] | None = None) -> None:
    """From now on, every failure captured from an exception being handled first runs a post-mortem debugger.

    That is ``Failure()`` inside an ``except`` block and the failure the
    Deferred runner makes when a callback raises; ``Failure(exc)`` with the
    exception given does not. Before calling the debugger a line saying which
    exception it is for is printed to stdout; the module flag
    :data:`DO_POST_MORTEM` set to false skips both. ``debugger`` (ours,
    Twisted takes no argument) is called with the traceback object; by
    default it is ``pdb.post_mortem``. Calling it again only replaces the
    debugger.
    """
    global _debugger
    if debugger is not None and not callable(debugger):
        raise TypeError(f"debugger must be callable (or None), not {type(debugger).__name__}")
    _debugger = debugger
    Failure.__init__ = _debugInit  # type: ignore[method-assign]
    Failure._fromException = classmethod(_debugFromException)  # type: ignore[method-assign,assignment]


def stopDebugMode() -> None:
    """Turn :func:`startDebugMode` off (ours; Twisted has no way back): plain captures again."""
    global _debugger
    _debugger = None
    Failure.__init__ = _plainInit  # type: ignore[method-assign]
    Failure._fromException = _plainFromException  # type: ignore[method-assign]
