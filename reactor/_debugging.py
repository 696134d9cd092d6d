"""Deferred debugging: where each Deferred was created and where it was first fired.

``setDebugging(True)`` is Twisted's switch of the same name. While it is on, every
new Deferred keeps the stack it was created on and the stack of its first
``callback``/``errback``; both are shown when it is fired twice
(``AlreadyCalledError``) and when it is garbage-collected with an unhandled
failure. ``d.debug = True`` turns the firing record on for one Deferred.

Off, it costs nothing: turning it on puts recording versions of
``Deferred.__init__``, ``callback`` and ``errback`` on the class (so subclasses get
them too), and turning it off puts the plain ones back. Recording a stack is slow
(tens of microseconds), which is why it is a debugging aid.

Reactor thread only, like Deferreds themselves.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from typing import Any

from reactor import _deferred
from reactor._deferred import Deferred
from reactor._failure import Failure

__all__ = ["DebugInfo", "getDebugging", "logError", "setDebugging"]

_log = logging.getLogger("reactor.deferred")

# The class's own methods, saved while the recording ones are installed.
_plain: dict[str, Callable[..., Any]] = {}
_on = False
# Set once a single Deferred asked for debugging (``d.debug = True``): the firing hooks
# then stay installed after setDebugging(False), for that Deferred's sake.
_perInstance = False


class DebugInfo:
    """The stacks one Deferred was created on and first fired from (``None`` when unknown)."""

    __slots__ = ("creator", "invoker")

    def __init__(self, creator: list[str] | None = None) -> None:
        self.creator = creator
        self.invoker: list[str] | None = None

    def describe(self) -> str:
        """The recorded stacks, as text for an error message or a log line."""
        parts = []
        if self.creator is not None:
            parts.append("this Deferred was created at:\n" + "".join(self.creator).rstrip("\n"))
        if self.invoker is not None:
            parts.append("it was first fired at:\n" + "".join(self.invoker).rstrip("\n"))
        return "\n".join(parts) if parts else "no creation or firing point was recorded"


def _callerStack() -> list[str]:
    # Leave out this function and the hook that called it.
    return traceback.format_stack()[:-2]


def _recordingInit(self: Deferred[Any], canceller: Callable[[Deferred[Any]], None] | None = None) -> None:
    _plain["__init__"](self, canceller)
    if _on:
        self._debugInfo = DebugInfo(_callerStack())


def _recordingCallback(self: Deferred[Any], result: Any) -> None:
    info = getattr(self, "_debugInfo", None)
    if info is not None and info.invoker is None and not self.called:
        info.invoker = _callerStack()
    _plain["callback"](self, result)


def _recordingErrback(self: Deferred[Any], fail: Any = None) -> None:
    info = getattr(self, "_debugInfo", None)
    if info is not None and info.invoker is None and not self.called:
        info.invoker = _callerStack()
    # Still inside the caller's ``except`` block: errback() with no argument captures it.
    _plain["errback"](self, fail)


_RECORDING: dict[str, Callable[..., Any]] = {
    "__init__": _recordingInit,
    "callback": _recordingCallback,
    "errback": _recordingErrback,
}


def _install(names: tuple[str, ...]) -> None:
    for name in names:
        if name not in _plain:
            _plain[name] = Deferred.__dict__[name]
            setattr(Deferred, name, _RECORDING[name])
    # succeed() and fail() build Deferreds without __init__ unless told otherwise.
    _deferred._fastConstruction = "__init__" not in _plain


def _uninstall(names: tuple[str, ...]) -> None:
    for name in names:
        plain = _plain.pop(name, None)
        if plain is not None:
            setattr(Deferred, name, plain)
    _deferred._fastConstruction = "__init__" not in _plain


def installFiringHooks() -> None:
    """Record first-firing stacks of Deferreds that have debug info (``d.debug = True`` calls this)."""
    global _perInstance
    _perInstance = True
    _install(("callback", "errback"))


def setDebugging(on: bool) -> None:
    """Turn Deferred debugging on or off for Deferreds created from now on (see the module docstring)."""
    global _on
    _on = bool(on)
    if _on:
        _install(("__init__", "callback", "errback"))
    else:
        _uninstall(("__init__",))
        if not _perInstance:
            _uninstall(("callback", "errback"))


def getDebugging() -> bool:
    """True while ``setDebugging(True)`` is in effect."""
    return _on


def logError(err: Failure) -> Failure:
    """An errback that logs ``err`` (with its traceback, to the ``reactor.deferred`` logger) and passes it on.

    ``d.addErrback(logError)`` reports a failure without handling it: the chain
    stays failed for the errbacks after it.
    """
    _log.error("Unhandled error in Deferred:\n%s", err.getTraceback().rstrip("\n"))
    return err
