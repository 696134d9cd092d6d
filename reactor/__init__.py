"""The reactor package: Deferred, Failure, the event loop, and their helpers.

The public API keeps Twisted's names and meaning (``twisted.internet.defer``,
``twisted.python.failure``, the reactor); see README.md for a tour. Submodules:
``reactor.task`` (Clock, LoopingCall, deferLater, react), ``reactor.interfaces``,
``reactor.protocol``, ``reactor.error``, ``reactor.ssl``, ``reactor.lockfile``,
``reactor.failure`` (``twisted.python.failure``'s names, Failure's debug mode), ``reactor.web``
(the HTTP/1.1 server), ``reactor.prefork`` (worker processes on one port, supervised) and
``reactor.testing`` (test doubles: MemoryReactor, StringTransport).
"""

from __future__ import annotations

# First: decides whether reactor._deferred is the mypyc-compiled module or its .py (see there).
import reactor._implementation  # noqa: F401
from reactor._debugging import (
    getDebugging,
    logError,
    setDebugging,
)
from reactor._default import (
    getReactor,
)
from reactor._deferred import (
    Deferred,
    NotACoroutineError,
    ensureDeferred,
    fail,
    maybeDeferred,
    passthru,
    succeed,
)
from reactor._deferredlist import (
    FAILURE,
    SUCCESS,
    DeferredList,
    FailureGroup,
    gatherResults,
    race,
)
from reactor._delayed import (
    DelayedCall,
    TimerQueue,
)
from reactor._deprecated import (
    timeout,
)
from reactor._errors import (
    AlreadyCalled,
    AlreadyCalledError,
    AlreadyCancelled,
    CancelledError,
    FirstError,
    ReactorAlreadyInstalledError,
    ReactorAlreadyRunning,
    ReactorNotRestartable,
    ReactorNotRunning,
    TimeoutError,
)
from reactor._failure import (
    Failure,
    NoCurrentExceptionError,
)
from reactor._filelock import (
    AlreadyTryingToLockError,
    DeferredFilesystemLock,
    FilesystemLock,
)
from reactor._inline import (
    inlineCallbacks,
    returnValue,
)
from reactor._loop import (
    Reactor,
)
from reactor._spinwait import (
    SpinCalibration,
    spinCalibration,
)
from reactor._sync import (
    DeferredLock,
    DeferredQueue,
    DeferredSemaphore,
    QueueOverflow,
    QueueUnderflow,
)

__all__ = [
    "FAILURE",
    "SUCCESS",
    "AlreadyCalled",
    "AlreadyCalledError",
    "AlreadyCancelled",
    "AlreadyTryingToLockError",
    "CancelledError",
    "Deferred",
    "DeferredFilesystemLock",
    "DeferredList",
    "DeferredLock",
    "DeferredQueue",
    "DeferredSemaphore",
    "DelayedCall",
    "Failure",
    "FailureGroup",
    "FilesystemLock",
    "FirstError",
    "NoCurrentExceptionError",
    "NotACoroutineError",
    "QueueOverflow",
    "QueueUnderflow",
    "Reactor",
    "ReactorAlreadyInstalledError",
    "ReactorAlreadyRunning",
    "ReactorNotRestartable",
    "ReactorNotRunning",
    "SpinCalibration",
    "TimeoutError",
    "TimerQueue",
    "ensureDeferred",
    "fail",
    "gatherResults",
    "getDebugging",
    "getReactor",
    "inlineCallbacks",
    "logError",
    "maybeDeferred",
    "passthru",
    "race",
    "returnValue",
    "setDebugging",
    "spinCalibration",
    "succeed",
    "timeout",
]
