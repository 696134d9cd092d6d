"""``Deferred``: a result that is not there yet, with a chain of callbacks and errbacks.

Semantics are Twisted's (``twisted.internet.defer.Deferred``); this module is
a fresh implementation tuned for the common case:

* each ``add*`` call appends one flat tuple (or, for ``addCallback(f)``, just
  ``f``); the runner calls a callback with a plain ``f(result)`` when it has no
  extra arguments, skips the implicit pass-through half of an
  ``addCallback``/``addErrback`` pair without a call, and tells plain values
  from Failures and Deferreds with one set lookup per callback;
* a callback that returns an unfired Deferred pauses this one, which resumes
  when the inner one fires. Long chains of Deferreds waiting on each other are
  run by one loop, never by recursion (Twisted's iterative chaining), so
  100,000 of them fire without ``RecursionError``; a link that has nothing left
  to run after handing its result on is not revisited, so the loop's stack
  holds only the links that still have callbacks;
* the bookkeeping for "a Deferred was garbage-collected holding an unhandled
  Failure" is a separate small object, created only when a chain ends in a
  Failure (as Twisted does), so successful Deferreds pay nothing for it.

Thread model: Deferreds are not thread-safe. Every method here is called in the
reactor thread (or in a single thread of the caller's choosing); other threads
hand results over with ``reactor.callFromThread``.
"""

from __future__ import annotations

import contextvars
import inspect
import logging
import sys
from collections.abc import Callable, Coroutine, Generator, Mapping, Sequence
from types import CoroutineType, GeneratorType
from typing import (
    TYPE_CHECKING,
    Any,
    Concatenate,
    Final,
    Generic,
    ParamSpec,
    SupportsFloat,
    TypeVar,
    cast,
    overload,
)

from mypy_extensions import mypyc_attr

from reactor._errors import AlreadyCalledError, CancelledError, ReturnValue, TimeoutError
from reactor._failure import Failure, _failureTypeSets

if TYPE_CHECKING:
    import asyncio

__all__ = [
    "Deferred",
    "NotACoroutineError",
    "ensureDeferred",
    "fail",
    "maybeDeferred",
    "passthru",
    "succeed",
]

_T = TypeVar("_T")
_U = TypeVar("_U")
_P = ParamSpec("_P")

# Final module constants: compiled by mypyc they are C globals rather than module-dict lookups (the rest
# are rebound from outside, by reactor._asyncio and reactor._debugging, so they stay plain globals).
_log: Final = logging.getLogger("reactor.deferred")
_copyContext: Final = contextvars.copy_context
_modules: Final = sys.modules

# Both set by reactor._asyncio (which imports asyncio) when it is first imported. _getRunningLoop is
# asyncio's (the running loop of this thread, or None). _taskBridge, given an unfired Deferred being
# awaited while a loop runs, returns a Future of that loop if an asyncio Task drives the await (not
# Deferred.fromCoroutine's driver), else None. This module never imports asyncio itself: a program that
# has not imported it cannot be inside an asyncio Task.
_getRunningLoop: Callable[[], object] | None = None
_taskBridge: Callable[[Deferred[Any]], Any] = cast(Any, None)


def _loadTaskBridge() -> Callable[[], object]:
    """Import reactor._asyncio (asyncio is loaded): it sets ``_getRunningLoop`` and ``_taskBridge``."""
    import reactor._asyncio  # noqa: F401

    assert _getRunningLoop is not None
    return _getRunningLoop


@mypyc_attr(native_class=False)
class NotACoroutineError(TypeError):
    """``Deferred.fromCoroutine``/``ensureDeferred`` was given something that is not a coroutine."""


# Marks a continuation entry (see _Entry).
_CONTINUE: Final[Any] = object()
# Marks an entry half whose one extra argument is stored bare (see _Entry).
_ONE_ARG: Final[Any] = object()

# Types whose instances the runner treats as Deferreds; ``type(x) in`` a set is
# much cheaper than ``isinstance`` on the hot path. Subclasses register here.
_deferredTypes: Final[set[type]] = set()
# Deferred and Failure types (and their subclasses): a result whose type is not
# in here is a plain value, which one set lookup per callback decides.
_resultTypes: Final[set[type]] = {Failure}
_failureTypeSets.append(_resultTypes)

# Compiled only: the coroutines whose first step Deferred.fromCoroutine is running, innermost last
# (reactor._asyncio.taskFuture reads it).
_firstSteps: Final[list[Coroutine[Any, Any, Any] | Generator[Any, Any, Any]]] = []

# A callback-list entry: (callback, args, kwargs, errback, args, kwargs). A
# ``None`` callable means "pass the result through unchanged" and costs no call;
# args is None when there are no extra arguments, kwargs None when no keywords.
# A half with exactly one extra argument and no keywords stores that argument
# itself as args and ``_ONE_ARG`` as kwargs, so the runner calls it as
# ``f(result, arg)``, a plain call, instead of unpacking a tuple. The commonest
# entry, a callback with no extra arguments and no errback, is stored as the
# bare function instead of a tuple. A continuation, the entry that hands this
# Deferred's result to another Deferred waiting on it (a callback of that one
# returned this one), is ``(_CONTINUE, waiter, _CONTINUE, _CONTINUE, waiter,
# _CONTINUE)``: the runner meets it only after the keyword-less cases, so
# callbacks without keywords pay nothing to tell it apart.
_Entry = tuple[Any, Any, Any, Any, Any, Any] | Callable[..., Any]

# ``_callbacks`` until the first entry is added: most fired Deferreds (those of
# succeed(), fail(), an awaited coroutine's) never get one, and sharing this one
# empty list spares them a list each. It must stay empty: code that appends tests
# for it (``is``) and gives the Deferred a list of its own instead; code that only
# reads sees an empty list. (A real list, not an empty tuple, because a
# mypyc-compiled module checks at run time that ``_callbacks`` holds a list.)
_NO_CALLBACKS: Final[list[_Entry]] = []


def passthru(arg: _T) -> _T:
    """Return ``arg`` unchanged (the identity callback)."""
    return arg


class _FailureReporter:
    """Logs a Failure that is still unhandled when its Deferred is garbage-collected.

    Deferreds do not define ``__del__`` themselves (that would cost every
    Deferred at collection time); instead a Deferred whose chain ends in a
    Failure gets one of these, and clears ``failResult`` when a later errback
    (or an ``await``) handles the failure.
    """

    __slots__ = ("debugInfo", "failResult")

    def __init__(self, failResult: Failure | None, debugInfo: Any = None) -> None:
        self.failResult = failResult
        # The Deferred's _DebugInfo (reactor._debugging) when debugging was on for it, else None.
        self.debugInfo = debugInfo

    def __del__(self) -> None:
        failure = self.failResult
        if failure is None:
            return
        try:
            where = "" if self.debugInfo is None else f"\n(debug: {self.debugInfo.describe()})"
            # ``deferredCollected`` tells this report from logError()'s same text (the pytest plugin
            # counts only this one); compiled by mypyc this method has no frame for funcName to name.
            _log.error(
                "Unhandled error in Deferred:%s\n%s",
                where,
                failure.getTraceback().rstrip("\n"),
                extra={"deferredCollected": True},
            )
        except Exception:  # pragma: no cover - e.g. logging torn down at interpreter exit
            pass


class _Thrown:
    """A failure for a compiled :meth:`Deferred.__await__` to raise, sent to it instead of thrown in.

    Compiled by mypyc, ``__await__`` is a native generator whose ``throw()`` loses the traceback
    of the exception thrown in (what the coroutine driver does with a failure): the driver sends
    one of these and ``__await__`` raises the failure itself. Reactor thread only.
    """

    __slots__ = ("failure",)

    def __init__(self, failure: Failure) -> None:
        self.failure = failure


def _cancelledToTimedOutError(value: Any, timeout: SupportsFloat) -> Any:
    """Turn a ``CancelledError`` failure into ``TimeoutError``; let anything else through."""
    if isinstance(value, Failure):
        value.trap(CancelledError)
        raise TimeoutError(timeout, "Deferred")
    return value


@mypyc_attr(allow_interpreted_subclasses=True)
class Deferred(Generic[_T]):
    """A placeholder for a result (of type ``_T``) that a callback chain will process when it arrives.

    Fire it once with :meth:`callback` (a value) or :meth:`errback` (a
    :class:`Failure`); callbacks added before or after run in order, each
    getting the previous one's result. A callback that raises, or returns a
    Failure, switches the chain to errbacks; an errback that returns a value
    switches it back. ``await d`` gives the result (or raises the failure's
    exception) in a coroutine run by :meth:`fromCoroutine`/``ensureDeferred``.

    ``canceller``, if given, is called with this Deferred by :meth:`cancel`
    before it has fired; see :meth:`cancel` for the rest.

    Only the reactor thread may touch a Deferred.
    """

    # The hot fields are slots (one indexed load or store each); ``__dict__`` is
    # there for tags of the caller's own (``d.label = "x"``, as Twisted allows).
    # It costs about 8 ns per Deferred made (CPython 3.11 sets up the instance's
    # attribute storage at creation), and nothing on any other path.
    __slots__ = (
        "__dict__",
        "__weakref__",
        "_callbacks",
        "_canceller",
        "_chainedTo",
        "_debugInfo",
        "_failureReporter",
        "_runningCallbacks",
        "_suppressAlreadyCalled",
        "called",
        "paused",
        "result",
    )
    # Compiled (mypyc), an attribute may be deleted only if listed here: ``debug = False`` deletes this one.
    __deletable__ = ("_debugInfo",)

    #: True once ``callback``/``errback`` ran (also while waiting on a returned Deferred).
    called: bool
    #: How many unmatched ``pause()`` calls (including internal ones while chained) there are.
    paused: int
    #: The current result; only present once ``called`` is true.
    result: Any
    _chainedTo: Deferred[Any]
    _suppressAlreadyCalled: bool
    _debugInfo: Any  # reactor._debugging.DebugInfo, set only while debugging

    def __init__(self, canceller: Callable[[Deferred[Any]], None] | None = None) -> None:
        if canceller is not None and not callable(canceller):
            raise TypeError(f"canceller must be callable or None, not {type(canceller).__name__}")
        # Reactor thread only. ``_chainedTo`` (set by chainDeferred, for the
        # repr) and ``_suppressAlreadyCalled`` (set by cancel) stay unset until
        # needed: fewer stores per Deferred on the hot path.
        self._callbacks: list[_Entry] = _NO_CALLBACKS
        self._canceller = canceller
        self.called = False
        self.paused = 0
        self._runningCallbacks = False
        self._failureReporter: _FailureReporter | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _deferredTypes.add(cls)
        _resultTypes.add(cls)

    def _append(self, entry: _Entry) -> None:
        """Add ``entry`` to the callback list (the add* methods and the runner inline this)."""
        callbacks = self._callbacks
        if callbacks is _NO_CALLBACKS:
            self._callbacks = [entry]
        else:
            callbacks.append(entry)

    # -- adding callbacks ----------------------------------------------------------------

    def addCallbacks(
        self,
        callback: Callable[..., Any],
        errback: Callable[..., Any] | None = None,
        callbackArgs: Sequence[Any] = (),
        callbackKeywords: Mapping[str, Any] | None = None,
        errbackArgs: Sequence[Any] = (),
        errbackKeywords: Mapping[str, Any] | None = None,
    ) -> Deferred[Any]:
        """Add a callback and an errback as one step of the chain; return this Deferred.

        Exactly one of the two runs, depending on whether the result reaching
        this step is a Failure. ``errback=None`` passes failures through.
        """
        if not callable(callback):
            raise TypeError(f"callback must be callable, not {type(callback).__name__}")
        if errback is not None and not callable(errback):
            raise TypeError(f"errback must be callable or None, not {type(errback).__name__}")
        # In an entry, args is None when there are no extra arguments at all,
        # and kwargs is None when there are no keyword arguments.
        cbArgs = tuple(callbackArgs or ()) if callbackArgs or callbackKeywords else None
        cbKw = dict(callbackKeywords) if callbackKeywords else None
        ebArgs = tuple(errbackArgs or ()) if errbackArgs or errbackKeywords else None
        ebKw = dict(errbackKeywords) if errbackKeywords else None
        self._append((callback, cbArgs, cbKw, errback, ebArgs, ebKw))
        if self.called:
            self._runCallbacks()
        return self

    @overload
    def addCallback(
        self,
        callback: Callable[Concatenate[_T, _P], Deferred[_U]],
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> Deferred[_U]: ...

    @overload
    def addCallback(
        self,
        callback: Callable[Concatenate[_T, _P], Failure],
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> Deferred[Any]: ...

    @overload
    def addCallback(
        self,
        callback: Callable[Concatenate[_T, _P], _U],
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> Deferred[_U]: ...

    def addCallback(self, callback: Any, *args: Any, **kwargs: Any) -> Deferred[Any]:
        """Add ``callback(result, *args, **kwargs)`` for success; failures pass by. Returns this Deferred."""
        if not callable(callback):
            raise TypeError(f"callback must be callable, not {type(callback).__name__}")
        entry: _Entry
        if kwargs:
            entry = (callback, args, kwargs, None, None, None)
        elif args:
            if len(args) == 1:
                entry = (callback, args[0], _ONE_ARG, None, None, None)
            else:
                entry = (callback, args, None, None, None, None)
        else:
            # The commonest entry is stored as the bare function (see _Entry).
            entry = callback
        callbacks = self._callbacks
        if callbacks is _NO_CALLBACKS:
            self._callbacks = [entry]
        else:
            callbacks.append(entry)
        if self.called:
            self._runCallbacks()
        return self

    @overload
    def addErrback(
        self,
        errback: Callable[Concatenate[Failure, _P], Deferred[_U]],
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> Deferred[_T | _U]: ...

    @overload
    def addErrback(
        self,
        errback: Callable[Concatenate[Failure, _P], Failure],
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> Deferred[_T]: ...

    @overload
    def addErrback(
        self,
        errback: Callable[Concatenate[Failure, _P], _U],
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> Deferred[_T | _U]: ...

    def addErrback(self, errback: Any, *args: Any, **kwargs: Any) -> Deferred[Any]:
        """Add ``errback(failure, *args, **kwargs)`` for failures; results pass by. Returns this Deferred."""
        if not callable(errback):
            raise TypeError(f"errback must be callable, not {type(errback).__name__}")
        entry: _Entry
        if kwargs:
            entry = (None, None, None, errback, args, kwargs)
        elif args:
            if len(args) == 1:
                entry = (None, None, None, errback, args[0], _ONE_ARG)
            else:
                entry = (None, None, None, errback, args, None)
        else:
            entry = (None, None, None, errback, None, None)
        callbacks = self._callbacks
        if callbacks is _NO_CALLBACKS:
            self._callbacks = [entry]
        else:
            callbacks.append(entry)
        if self.called:
            self._runCallbacks()
        return self

    @overload
    def addBoth(
        self,
        callback: Callable[Concatenate[_T | Failure, _P], Deferred[_U]],
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> Deferred[_U]: ...

    @overload
    def addBoth(
        self,
        callback: Callable[Concatenate[_T | Failure, _P], _U],
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> Deferred[_U]: ...

    def addBoth(self, callback: Any, *args: Any, **kwargs: Any) -> Deferred[Any]:
        """Add ``callback`` as both callback and errback (it gets a value or a Failure); return self."""
        if not callable(callback):
            raise TypeError(f"callback must be callable, not {type(callback).__name__}")
        entry: _Entry
        if kwargs:
            entry = (callback, args, kwargs, callback, args, kwargs)
        elif args:
            if len(args) == 1:
                entry = (callback, args[0], _ONE_ARG, callback, args[0], _ONE_ARG)
            else:
                entry = (callback, args, None, callback, args, None)
        else:
            entry = (callback, None, None, callback, None, None)
        callbacks = self._callbacks
        if callbacks is _NO_CALLBACKS:
            self._callbacks = [entry]
        else:
            callbacks.append(entry)
        if self.called:
            self._runCallbacks()
        return self

    def addTimeout(
        self,
        # Not ``float``: compiled by mypyc, a float parameter turns an int into a float and
        # refuses a str with mypyc's own message, before the check below.
        timeout: SupportsFloat,
        clock: Any,
        onTimeoutCancel: Callable[[Any, float], Any] | None = None,
    ) -> Deferred[Any]:
        """Cancel this Deferred if it has not fired ``timeout`` seconds from now; return it.

        ``clock`` is anything with ``callLater`` (a reactor, a ``task.Clock``).
        When the time is up the Deferred is cancelled; the resulting
        ``CancelledError`` failure becomes :class:`TimeoutError` (or whatever
        ``onTimeoutCancel(result, timeout)`` returns). The timeout covers the
        callbacks added before this call, not those added after.
        """
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool):
            raise TypeError(f"timeout must be a number of seconds, not {type(timeout).__name__}")
        callLater = getattr(clock, "callLater", None)
        if not callable(callLater):
            raise TypeError(f"clock must have a callLater method, not {type(clock).__name__}")
        if onTimeoutCancel is not None and not callable(onTimeoutCancel):
            raise TypeError("onTimeoutCancel must be callable or None")
        timedOut = False

        def timeItOut() -> None:
            nonlocal timedOut
            timedOut = True
            self.cancel()

        delayedCall = callLater(timeout, timeItOut)

        def convertCancelled(result: Any) -> Any:
            if timedOut:
                return (onTimeoutCancel or _cancelledToTimedOutError)(result, cast(Any, timeout))
            return result

        def cancelTimeout(result: Any) -> Any:
            if delayedCall.active():
                delayedCall.cancel()
            return result

        return self.addBoth(convertCancelled).addBoth(cancelTimeout)

    def chainDeferred(self, d: Deferred[_T]) -> Deferred[None]:
        """Make ``d`` fire with whatever result reaches this point of this chain.

        After this step this Deferred's own result is ``None`` (``d.callback``
        returns None). Unlike returning ``d`` from a callback, long
        ``chainDeferred`` chains recurse (as in Twisted).
        """
        if not isinstance(d, Deferred):
            raise TypeError(f"d must be a Deferred, not {type(d).__name__}")
        d._chainedTo = self
        return self.addCallbacks(d.callback, d.errback)

    # -- firing --------------------------------------------------------------------------

    def callback(self, result: _T | Failure) -> None:
        """Fire the chain with ``result`` (a Failure here acts like :meth:`errback`).

        Raises :class:`AlreadyCalledError` if already fired (except for the one
        late call swallowed after a cancel without canceller) and ``TypeError``
        if ``result`` is a Deferred (return it from a callback instead).
        """
        if self.called:
            self._alreadyCalled()
            return
        if type(result) in _deferredTypes:
            raise TypeError(
                "Deferred.callback() result must not be a Deferred; to wait on one, "
                "return it from a callback instead"
            )
        self.called = True
        self._canceller = None
        self.result = result
        if not self.paused:
            waiter = self._runOwnCallbacks()
            if waiter is not None:
                self._runChain(waiter)

    def errback(self, fail: Failure | BaseException | None = None) -> None:
        """Fire the chain with a failure.

        ``fail`` is a Failure, an exception instance (wrapped in a Failure), or
        omitted inside an ``except`` block to capture the exception being
        handled; omitted outside one, :class:`NoCurrentExceptionError` is
        raised. Raises :class:`AlreadyCalledError` as :meth:`callback` does.
        """
        if fail is None:
            fail = Failure()
        elif not isinstance(fail, Failure):
            if not isinstance(fail, BaseException):
                raise TypeError(
                    f"fail must be a Failure, an exception or None, not {type(fail).__name__}"
                )
            fail = Failure(fail)
        if self.called:
            self._alreadyCalled()
            return
        self.called = True
        self._canceller = None
        self.result = fail
        if not self.paused:
            waiter = self._runOwnCallbacks()
            if waiter is not None:
                self._runChain(waiter)

    def _alreadyCalled(self) -> None:
        """A second callback/errback: swallow the one expected after a cancel, else raise."""
        if getattr(self, "_suppressAlreadyCalled", False):
            self._suppressAlreadyCalled = False
            return
        info = getattr(self, "_debugInfo", None)
        where = "" if info is None else f"\n{info.describe()}"
        raise AlreadyCalledError(f"{self!r} has already been fired{where}")

    @property
    def debug(self) -> bool:
        """True when this Deferred records where it was created and first fired (see ``setDebugging``).

        Setting it to True on one Deferred makes it record where it is fired from then on
        (its creation point is then unknown); the records appear in ``AlreadyCalledError``
        and in the log line of an unhandled failure.
        """
        return getattr(self, "_debugInfo", None) is not None

    @debug.setter
    def debug(self, on: bool) -> None:
        from reactor import _debugging

        if not on:
            if getattr(self, "_debugInfo", None) is not None:
                del self._debugInfo
            return
        if getattr(self, "_debugInfo", None) is None:
            self._debugInfo = _debugging.DebugInfo()
        _debugging.installFiringHooks()

    def pause(self) -> None:
        """Stop running callbacks until a matching :meth:`unpause`."""
        self.paused += 1

    def unpause(self) -> None:
        """Undo one :meth:`pause`; when none are left and a result is there, run the chain."""
        self.paused -= 1
        if self.paused:
            return
        if self.called:
            self._runCallbacks()

    def cancel(self) -> None:
        """Ask the operation behind this Deferred to stop.

        Not fired yet: the canceller (if any) is called; if that did not fire
        the Deferred, it errbacks with :class:`CancelledError`. Without a
        canceller the one ``callback``/``errback`` that the abandoned operation
        will eventually make is silently ignored. Already fired but waiting on
        a Deferred returned by a callback: that Deferred is cancelled instead.
        Otherwise nothing happens.
        """
        if not self.called:
            canceller = self._canceller
            if canceller is not None:
                canceller(self)
            else:
                # Swallow the one callback/errback the abandoned operation will make.
                self._suppressAlreadyCalled = True
            if not self.called:
                self.errback(Failure._fromException(CancelledError()))
        elif type(self.result) in _deferredTypes:
            self.result.cancel()

    # -- the runner ----------------------------------------------------------------------

    def _runCallbacks(self) -> None:
        """Run this Deferred's callbacks, and those of Deferreds waiting on it, as far as possible."""
        if self._runningCallbacks or self.paused:
            # Paused: nothing to give. Running: the loop further up the stack
            # sees the new entries.
            return
        waiter = self._runOwnCallbacks()
        if waiter is not None:
            self._runChain(waiter)

    def _runChain(self, waiter: Deferred[Any]) -> None:
        """This Deferred just handed its result to ``waiter``: run that one, and so on up the chain.

        Deferreds waiting on each other are run by this one loop, never by
        recursion (Twisted's iterative chaining), so chains of any length work.
        A Deferred that still has entries after its hand-over (callbacks added
        to it later) is stacked and resumed once the waiters above it are done;
        one that has none is simply left behind, so a long chain of Deferreds
        returned from callbacks costs one step per link and no stack at all.
        As in Twisted, reaching a paused Deferred ends the whole run.
        """
        current: Deferred[Any] = self
        stack: list[Deferred[Any]] | None = None
        while True:
            # ``current`` has just handed its result to ``waiter``.
            if current._callbacks:
                if stack is None:
                    stack = [current]
                else:
                    stack.append(current)
            current = waiter
            if current.paused or current._runningCallbacks:
                return
            callbacks = current._callbacks
            if callbacks:
                first = callbacks[0]
                if type(first) is tuple and first[0] is _CONTINUE:
                    # The next link waits on this one: hand the result
                    # straight on (most of the work in long chains).
                    del callbacks[0]
                    waiter = first[1]
                    waiter.result = current.result
                    current.result = None
                    if current._failureReporter is not None:
                        current._failureReporter.failResult = None
                    waiter.paused -= 1
                    continue
                nextWaiter = current._runOwnCallbacks()
                if nextWaiter is not None:
                    waiter = nextWaiter
                    continue
            elif current._failureReporter is not None or type(current.result) in _resultTypes:
                current._runOwnCallbacks()  # only to record or clear an unhandled failure
            # ``current`` is done for now: resume the stacked Deferreds.
            while True:
                if not stack:
                    return
                current = stack.pop()
                if current.paused or current._runningCallbacks:
                    return
                nextWaiter = current._runOwnCallbacks()
                if nextWaiter is not None:
                    waiter = nextWaiter
                    break

    def _runOwnCallbacks(self) -> Deferred[Any] | None:
        """Run this Deferred's callbacks (it has a result and is not paused).

        Stops at the end of the list (returning ``None``), when a callback
        returns an unfired Deferred (this one then pauses until that one hands
        its result over; returns ``None``), or at a continuation entry: the
        result is handed to the Deferred waiting on this one, which is
        returned for the caller to run next.

        The hot path of the module: locals only, one type test per callback,
        ``failed`` changes only when the result's kind does, and ``self.result``
        is written once at the end rather than after every callback.
        """
        result = self.result
        failed = type(result) in _resultTypes and isinstance(result, Failure)
        callbacks = self._callbacks
        if callbacks:
            self._runningCallbacks = True
            # Iterating the live list sees entries appended by callbacks; on an
            # early exit the first ``done`` entries are the ones that ran, and
            # are deleted in place (no new list).
            done = 0
            function: Any
            entry: Any
            try:
                for entry in callbacks:
                    done += 1
                    # One try for the whole step: entering it costs nothing,
                    # and the commonest entry is called without unpacking.
                    try:
                        if type(entry) is not tuple:
                            # A bare function: addCallback(f) with no extra arguments.
                            if failed:
                                continue
                            result = entry(result)
                        else:
                            function, args, kwargs, errFunction, errArgs, errKwargs = entry
                            if failed:
                                if errFunction is None:
                                    continue
                                function = errFunction
                                args = errArgs
                                kwargs = errKwargs
                                # Until the errback's outcome says otherwise.
                                failed = False
                            elif function is None:
                                continue
                            if kwargs is None:
                                if args is None:
                                    result = function(result)
                                else:
                                    result = function(result, *args)
                            elif kwargs is _ONE_ARG:
                                result = function(result, args)
                            elif kwargs is _CONTINUE:
                                # A continuation: hand the result to ``args``, the
                                # Deferred waiting on this one, and let it run next.
                                del callbacks[:done]
                                args.result = result
                                self.result = None
                                if self._failureReporter is not None:
                                    self._failureReporter.failResult = None
                                args.paused -= 1
                                return args  # type: ignore[no-any-return]
                            else:
                                result = function(result, *args, **kwargs)
                    except BaseException as e:
                        if isinstance(e, Failure):
                            result = e
                        elif not (isinstance(result, Failure) and e is result.value):
                            # (An errback that re-raised the failure's own
                            # exception, e.g. an unmatched trap(), passes that
                            # same Failure on.)
                            result = Failure._fromException(e)
                        failed = True
                        continue
                    if type(result) in _resultTypes:
                        if type(result) not in _deferredTypes:
                            # A Failure (the only other kind in _resultTypes).
                            failed = True
                            continue
                        inner: Deferred[Any] = result
                        if inner.called:
                            if inner is self:
                                result = Failure._fromException(
                                    TypeError(f"a callback of {self!r} returned that same Deferred")
                                )
                                failed = True
                                continue
                            if not inner.paused and not inner._runningCallbacks:
                                # It already has a result: take it and go on.
                                result = inner.result
                                inner.result = None
                                if inner._failureReporter is not None:
                                    inner._failureReporter.failResult = None
                                failed = isinstance(result, Failure)
                                continue
                        # Wait for it: pause, and have it hand its result to us.
                        del callbacks[:done]
                        self.paused += 1
                        self.result = inner
                        entry = (_CONTINUE, self, _CONTINUE, _CONTINUE, self, _CONTINUE)
                        innerCallbacks = inner._callbacks
                        if innerCallbacks is _NO_CALLBACKS:
                            inner._callbacks = [entry]
                        else:
                            innerCallbacks.append(entry)
                        if self._failureReporter is not None:
                            self._failureReporter.failResult = None
                        return None
                else:
                    del callbacks[:]
            finally:
                self._runningCallbacks = False
            self.result = result
        # As much of this chain as can run now has run; remember an unhandled
        # failure so that collecting this Deferred reports it.
        if failed:
            reporter = self._failureReporter
            if reporter is None:
                self._failureReporter = _FailureReporter(result, getattr(self, "_debugInfo", None))
            else:
                reporter.failResult = result
        elif self._failureReporter is not None:
            self._failureReporter.failResult = None
        return None

    # -- awaiting ------------------------------------------------------------------------

    def __await__(self) -> Generator[Any, Any, _T]:
        """Give this Deferred's result to an ``await`` (raising the failure's exception).

        Already fired: returns at once, without suspending the coroutine.
        Otherwise, inside :meth:`fromCoroutine` (and ``inlineCallbacks``,
        ``ensureDeferred``) it yields this Deferred to that driver, which sends
        the result back when it arrives (Twisted's semantics). In a coroutine
        that an asyncio Task drives, it waits on a Future of the running loop
        instead (``reactor._asyncio.taskFuture``): cancelling the Task cancels
        this Deferred, and a Deferred that fires in another thread than the
        loop's raises ``RuntimeError`` at the ``await``.
        """
        if self.called and not self.paused:
            reporter = self._failureReporter
            if reporter is None and not self._runningCallbacks:
                # At rest, only a Deferred whose chain ended in a Failure has a
                # reporter: no type test needed.
                return self.result  # type: ignore[no-any-return]
            result = self.result
            if not isinstance(result, Failure):
                return result  # type: ignore[no-any-return]
            if reporter is not None:
                reporter.failResult = None
            result.raiseException()
        # Not fired: who drives this coroutine? Only asked here, off the fired fast path.
        runningLoop = _getRunningLoop
        if runningLoop is None and "asyncio" in _modules:
            runningLoop = _loadTaskBridge()
        if runningLoop is not None and runningLoop() is not None:
            future = _taskBridge(self)
            if future is not None:
                return cast(_T, (yield from future))
        result = yield self
        if type(result) is _Thrown:
            # Compiled only (reactor._coroutines sends this): raised by Failure.raiseException, in
            # Python, the exception keeps its original traceback, which throwing it into this
            # (mypyc) generator would drop.
            result.failure.raiseException()
        return result  # type: ignore[no-any-return]

    def __iter__(self) -> Generator[Any, Any, _T]:
        """``yield from d``: the same as ``await d`` (a method of its own: mypyc compiles no aliases)."""
        return self.__await__()

    @classmethod
    def fromCoroutine(
        cls, coro: Coroutine[Any, Any, _U] | Generator[Any, Any, _U]
    ) -> Deferred[_U]:
        """Run coroutine ``coro`` (it may ``await`` Deferreds) and return a Deferred for its result.

        The coroutine starts at once and runs until its first ``await`` on an
        unfired Deferred; each step runs in a copy of the caller's
        ``contextvars`` context (the same copy throughout). Cancelling the
        returned Deferred cancels the Deferred the coroutine is waiting on, so
        ``CancelledError`` is raised at that ``await``. Raises
        :class:`NotACoroutineError` (a ``TypeError``) for anything else.
        """
        if not (
            type(coro) is CoroutineType
            or type(coro) is GeneratorType
            or inspect.iscoroutine(coro)
            or inspect.isgenerator(coro)
        ):
            raise NotACoroutineError(f"{coro!r} is not a coroutine")
        # The first step runs here, before any bookkeeping exists (the rest is
        # reactor._coroutines): a coroutine that never suspends, because it
        # awaits only fired Deferreds, costs one context copy and one Deferred.
        context = _copyContext()
        try:
            if _compiled:
                # Compiled, this function has no Python frame for reactor._asyncio.taskFuture to
                # recognise as the driver of ``coro``: it looks for ``coro`` here instead.
                _firstSteps.append(coro)
                try:
                    yielded = context.run(coro.send, None)
                finally:
                    _firstSteps.pop()
            else:
                yielded = context.run(coro.send, None)
        except StopIteration as e:
            value = e.value
        except ReturnValue as e:
            # returnValue() before the first yield of an inlineCallbacks generator.
            value = e.value
        except BaseException:
            return fail(Failure())
        else:
            return _continueCoroutine(coro, context, yielded)
        if type(value) in _resultTypes:
            # A Failure fails the Deferred, as callback(aFailure) does; a
            # Deferred is a mistake (it should have been awaited).
            return fail(_returnedDeferred(value) if type(value) in _deferredTypes else value)
        return succeed(value)

    # -- asyncio -------------------------------------------------------------------------

    def asFuture(self, loop: asyncio.AbstractEventLoop) -> asyncio.Future[_T]:
        """Return an asyncio Future on ``loop`` that completes with this Deferred's result.

        This adds callbacks that consume the result (this Deferred then holds
        ``None``). Cancelling the Future cancels this Deferred.
        """
        from reactor._asyncio import deferredAsFuture

        return deferredAsFuture(self, loop)

    @classmethod
    def fromFuture(cls, future: asyncio.Future[_U]) -> Deferred[_U]:
        """Return a Deferred that fires with ``future``'s result (or its exception as a Failure).

        Cancelling the Deferred cancels the Future, and the Deferred then fires
        with the Future's outcome (normally ``asyncio.CancelledError``).
        """
        from reactor._asyncio import deferredFromFuture

        return deferredFromFuture(cls, future)

    # -- display -------------------------------------------------------------------------

    def __repr__(self) -> str:
        name = type(self).__name__
        if self.called:
            result = self.result
            if type(result) in _deferredTypes and self.paused:
                return f"<{name} at {id(self):#x} waiting on Deferred at {id(result):#x}>"
            return f"<{name} at {id(self):#x} current result: {result!r}>"
        chainedTo = getattr(self, "_chainedTo", None)
        if chainedTo is not None:
            return f"<{name} at {id(self):#x} waiting on Deferred at {id(chainedTo):#x}>"
        return f"<{name} at {id(self):#x}>"

    def __str__(self) -> str:
        return self.__repr__()


_deferredTypes.add(Deferred)
_resultTypes.add(Deferred)


# Whether this module runs compiled by mypyc (reactor/_deferred.*.so next to this file; see
# setup.py): mypyc gives every native class a ``__mypyc_attrs__`` tuple.
_compiled: Final[bool] = hasattr(Deferred, "__mypyc_attrs__")

# The class called as a Python object, not natively: compiled, calling it runs the recording
# __init__ that reactor._debugging installs on the class (a native call would not).
_DeferredClass: Final[Any] = Deferred

# Pure Python, object.__new__ builds a Deferred without running __init__: succeed()
# and fail() store the fields of an already-fired Deferred straight away.
# (Compiled, object.__new__ refuses a native class; they call Deferred() instead.)
_newObject: Final = object.__new__
# False while reactor._debugging records where Deferreds are created: succeed()
# and fail() then go through __init__ (the recording one) and callback/errback.
_fastConstruction = True


def succeed(result: _T) -> Deferred[_T]:
    """A Deferred that has already fired with ``result``."""
    if type(result) in _resultTypes or not _fastConstruction:
        # A Failure or a Deferred (callback()'s checks and unhandled-failure
        # tracking), or debugging on: the general path.
        # (Through Python attribute lookups, ``d`` being Any: while debugging, the recording
        # __init__ and callback installed on the class must run, compiled too.)
        general: Any = _DeferredClass()
        general.callback(result)
        return cast(Deferred[_T], general)
    if _compiled:
        # Compiled, Deferred() is a C call that allocates and runs the native
        # __init__ (C stores): cheaper than anything else here.
        d: Deferred[_T] = Deferred()
        d.called = True
        d.result = result
        return d
    # The fields __init__ and callback() would leave, stored directly: this is
    # most of the cost of an already-fired Deferred. (``_canceller`` is only
    # read before a Deferred fires, so it is left unset.)
    d = _newObject(Deferred)
    d._callbacks = _NO_CALLBACKS
    d.called = True
    d.paused = 0
    d._runningCallbacks = False
    d._failureReporter = None
    d.result = result
    return d


def fail(result: Failure | BaseException | None = None) -> Deferred[Any]:
    """A Deferred that has already failed with ``result`` (as :meth:`Deferred.errback` takes it)."""
    if not _fastConstruction:
        general: Any = _DeferredClass()
        general.errback(result)
        return cast(Deferred[Any], general)
    if result is None:
        result = Failure()
    elif not isinstance(result, Failure):
        if not isinstance(result, BaseException):
            raise TypeError(f"result must be a Failure, an exception or None, not {type(result).__name__}")
        result = Failure._fromException(result)
    # As succeed(); the failure is unhandled until an errback takes it.
    if _compiled:
        d: Deferred[Any] = Deferred()
        d.called = True
        d._failureReporter = _FailureReporter(result)
        d.result = result
        return d
    d = _newObject(Deferred)
    d._callbacks = _NO_CALLBACKS
    d.called = True
    d.paused = 0
    d._runningCallbacks = False
    d._failureReporter = _FailureReporter(result)
    d.result = result
    return d


@overload
def maybeDeferred(
    f: Callable[_P, Deferred[_T]], /, *args: _P.args, **kwargs: _P.kwargs
) -> Deferred[_T]: ...


@overload
def maybeDeferred(
    f: Callable[_P, Coroutine[Any, Any, _T]], /, *args: _P.args, **kwargs: _P.kwargs
) -> Deferred[_T]: ...


@overload
def maybeDeferred(f: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> Deferred[_T]: ...


def maybeDeferred(*args: Any, **kwargs: Any) -> Deferred[Any]:
    """Call ``f(*args, **kwargs)`` and return its outcome as a Deferred.

    A Deferred result is returned as is; a coroutine is run with
    :meth:`Deferred.fromCoroutine`; a Failure or a raised exception gives a
    failed Deferred; any other value a fired one.
    """
    # ``f`` is taken from ``args`` rather than declared positional-only: compiled by mypyc, a
    # positional-only ``f`` would still clash with a keyword argument named ``f`` meant for it.
    if not args:
        raise TypeError("maybeDeferred() missing its function argument 'f'")
    f = args[0]
    args = args[1:]
    if not callable(f):
        raise TypeError(f"f must be callable, not {type(f).__name__}")
    try:
        result = f(*args, **kwargs)
    except BaseException as e:
        return fail(Failure._fromException(e))
    if type(result) in _deferredTypes:
        return cast(Deferred[Any], result)
    if isinstance(result, Failure):
        return fail(result)
    if type(result) is CoroutineType:
        return Deferred.fromCoroutine(result)
    return succeed(result)


def ensureDeferred(
    coro: Coroutine[Any, Any, _T] | Generator[Any, Any, _T] | Deferred[_T],
) -> Deferred[_T]:
    """Return ``coro`` if it is a Deferred, else run it as :meth:`Deferred.fromCoroutine` does."""
    if isinstance(coro, Deferred):
        return coro
    try:
        return Deferred.fromCoroutine(coro)
    except NotACoroutineError:
        raise NotACoroutineError(f"{coro!r} is not a coroutine or a Deferred") from None


# The coroutine driver needs Deferred, so it is imported once Deferred exists.
from reactor._coroutines import _returnedDeferred  # noqa: E402
from reactor._coroutines import continueCoroutine as _continueCoroutine  # noqa: E402
