"""Driving coroutines and ``inlineCallbacks`` generators on Deferreds.

``Deferred.fromCoroutine`` runs a coroutine's first step itself; if the
coroutine suspends, :func:`continueCoroutine` takes over. It sends each result
into the coroutine (or throws each failure's exception into it) until the
coroutine suspends on an unfired Deferred, then resumes it from that
Deferred's callback. ``ensureDeferred`` and ``inlineCallbacks`` use the same
engine. All of it happens in the reactor thread.

Each step runs inside one ``contextvars.Context``, a copy of the caller's
context taken when the coroutine starts, so a coroutine's context variables
survive its awaits (as with Twisted's ``ensureDeferred`` and asyncio tasks).
"""

from __future__ import annotations

import contextvars
import inspect
from collections.abc import Coroutine, Generator
from types import CoroutineType, GeneratorType
from typing import Any, TypeVar

from reactor._deferred import _CONTINUE, Deferred, _compiled, _deferredTypes, _Thrown
from reactor._errors import ReturnValue
from reactor._failure import Failure

__all__: list[str] = []

_T = TypeVar("_T")

# What _CoroutineRunner._send returns once the coroutine has ended.
_FINISHED: Any = object()


class _CoroutineRunner:
    """The state of one running coroutine: what it waits on and which Deferred gets its result.

    Owned by the reactor thread. ``deferred`` is the Deferred that gets the
    coroutine's outcome; a cancel while suspended swaps in a fresh one (see
    :meth:`cancel`). ``waitingOn`` is the Deferred the coroutine is suspended
    on, or ``None`` while it runs. ``inStep`` is true while :meth:`carryOn` is
    adding its callback to a Deferred, so that a Deferred which fires at once
    hands its result back through ``syncResult`` instead of recursing.
    """

    __slots__ = ("context", "coro", "deferred", "inStep", "syncResult", "waitingOn")

    def __init__(self, coro: Any, context: contextvars.Context) -> None:
        self.coro = coro
        self.deferred: Deferred[Any] = None  # type: ignore[assignment]  # set right after
        self.context = context
        self.waitingOn: Deferred[Any] | None = None
        self.inStep = False
        self.syncResult: Any = None

    def _send(self, result: Any) -> Any:
        """Resume the coroutine with ``result`` (a Failure is thrown in); return what it yields next.

        Returns ``_FINISHED`` once the coroutine has returned or raised (its
        Deferred has then been given the outcome).
        """
        outcome: Any
        try:
            if isinstance(result, Failure):
                if _compiledAwait is not None and _awaitsCompiled(self.coro):
                    return self.context.run(self.coro.send, _Thrown(result))
                return self.context.run(self.coro.throw, result.value.with_traceback(result.tb))
            return self.context.run(self.coro.send, result)
        except StopIteration as e:
            outcome = e.value
        except ReturnValue as e:
            outcome = e.value
        except BaseException:
            outcome = Failure()
        # Outside the except blocks: the outcome's callbacks must not run with
        # the coroutine's exception as the one "being handled".
        self._finish(outcome)
        return _FINISHED

    def carryOn(self, yielded: Any) -> None:
        """The coroutine yielded ``yielded``: wait for it, or feed it straight back, until it suspends."""
        while yielded is not _FINISHED:
            if type(yielded) not in _deferredTypes:
                if type(yielded) is CoroutineType or type(yielded) is GeneratorType or (
                    inspect.iscoroutine(yielded) or inspect.isgenerator(yielded)
                ):
                    yielded = runCoroutine(yielded)
                else:
                    # A plain value (inlineCallbacks allows it): send it straight back.
                    yielded = self._send(yielded)
                    continue
            self.inStep = True
            yielded.addBoth(self.resume)
            if self.inStep:
                # Not fired yet: resume() carries on when it does.
                self.inStep = False
                self.waitingOn = yielded
                return
            result = self.syncResult
            self.syncResult = None
            yielded = self._send(result)

    def resume(self, result: Any) -> None:
        """The awaited Deferred fired: continue the coroutine (or hand the result to :meth:`carryOn`)."""
        if self.inStep:
            self.inStep = False
            self.syncResult = result
            return
        self.waitingOn = None
        self.carryOn(self._send(result))

    def _finish(self, outcome: Any) -> None:
        self.coro = None
        deferred = self.deferred
        if deferred.called:
            # Cancelled from inside the coroutine itself; the cancel already fired it.
            return
        if type(outcome) in _deferredTypes:
            outcome = _returnedDeferred(outcome)
        if isinstance(outcome, Failure):
            deferred.errback(outcome)
        else:
            deferred.callback(outcome)

    def cancel(self, outer: Deferred[Any]) -> None:
        """Canceller of the coroutine's Deferred: cancel what the coroutine waits on.

        As in Twisted, ``outer`` is first made to wait on a fresh Deferred that
        receives the coroutine's eventual outcome, so a coroutine that catches
        ``CancelledError`` and carries on still delivers its result. If the
        coroutine is not suspended on anything, ``Deferred.cancel`` errbacks
        ``outer`` with ``CancelledError`` itself.
        """
        waiting = self.waitingOn
        if waiting is None or outer is not self.deferred:
            return
        replacement: Deferred[Any] = Deferred(self.cancel)
        self.deferred = replacement
        _waitOn(outer, replacement)
        waiting.cancel()


# Compiled by mypyc: the type of the generator that Deferred.__await__ returns (None when pure Python).
_compiledAwait: type | None = type(Deferred().__await__()) if _compiled else None


def _awaitsCompiled(coro: Any) -> bool:
    """Whether ``coro`` is suspended in a compiled ``Deferred.__await__`` (perhaps through others)."""
    inner = coro
    while True:
        inner = getattr(inner, "cr_await", None) or getattr(inner, "gi_yieldfrom", None)
        if inner is None:
            return False
        if type(inner) is _compiledAwait:
            return True


def _returnedDeferred(d: Deferred[Any]) -> Failure:
    """The failure for a coroutine that returned Deferred ``d`` instead of awaiting it."""
    return Failure(TypeError(f"a coroutine returned {d!r}; await it instead"))


def _waitOn(outer: Deferred[Any], inner: Deferred[Any]) -> None:
    """Put unfired ``outer`` in the state "a callback returned unfired ``inner``".

    ``outer`` counts as fired (``called``) but is paused until ``inner`` fires
    and hands over its result, exactly as when a callback returns a Deferred.
    """
    outer.called = True
    outer._canceller = None
    outer.result = inner
    outer.paused += 1
    inner._append((_CONTINUE, outer, _CONTINUE, _CONTINUE, outer, _CONTINUE))


def runCoroutine(coro: Coroutine[Any, Any, _T] | Generator[Any, Any, _T]) -> Deferred[_T]:
    """Start ``coro`` now and return a Deferred for its outcome (see ``Deferred.fromCoroutine``)."""
    return Deferred.fromCoroutine(coro)


def continueCoroutine(
    coro: Coroutine[Any, Any, _T] | Generator[Any, Any, _T], context: contextvars.Context, yielded: Any
) -> Deferred[_T]:
    """``coro`` (started in ``context``) has just yielded ``yielded``: drive it on from here.

    Returns the Deferred for the coroutine's outcome; cancelling it cancels
    what the coroutine waits on (see :meth:`_CoroutineRunner.cancel`).
    """
    runner = _CoroutineRunner(coro, context)
    deferred: Deferred[_T] = Deferred(runner.cancel)
    runner.deferred = deferred
    runner.carryOn(yielded)
    return deferred
