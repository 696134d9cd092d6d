"""The process-wide default reactor, created on first use.

Library code never imports a global reactor: it takes one as an argument and calls
:func:`getReactor` only at the edge (a ``main``, a convenience default).
"""

from __future__ import annotations

import threading
from typing import TypeVar

from reactor._errors import ReactorAlreadyInstalledError
from reactor._loop import Reactor

__all__ = ["getReactor", "installOrClose", "installReactor"]

_R = TypeVar("_R", bound=Reactor)

# Guarded by _lock for the one-time creation; read without it afterwards.
_lock = threading.Lock()
_default: Reactor | None = None


def getReactor() -> Reactor:
    """Return the process-wide default :class:`Reactor`, creating it on the first call. Any thread.

    Every call returns the same object; it is not started: someone calls its ``run()``.
    """
    global _default
    reactor = _default
    if reactor is None:
        with _lock:
            reactor = _default
            if reactor is None:
                reactor = _default = Reactor()
    return reactor


def installReactor(reactor: Reactor) -> None:
    """Make ``reactor`` the process-wide default (what :func:`getReactor` returns). Any thread.

    :raises ReactorAlreadyInstalledError: a default exists already (installed, or created
        by an earlier :func:`getReactor`).
    :raises TypeError: ``reactor`` is not a :class:`Reactor`.
    """
    global _default
    if not isinstance(reactor, Reactor):
        raise TypeError(f"reactor must be a Reactor, not {type(reactor).__name__}")
    with _lock:
        if _default is not None:
            raise ReactorAlreadyInstalledError(f"a default reactor is already installed: {_default!r}")
        _default = reactor


def installOrClose(reactor: _R) -> _R:
    """:func:`installReactor` a new ``reactor`` and return it; if that is refused, close it and re-raise."""
    try:
        installReactor(reactor)
    except BaseException:
        reactor.close()
        raise
    return reactor
