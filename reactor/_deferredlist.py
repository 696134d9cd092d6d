"""Waiting on several Deferreds at once: ``DeferredList``, ``gatherResults``, ``race``.

All three keep Twisted's meaning. Cancelling the Deferred they return cancels
every input Deferred that has not fired yet, so a caller that gives up on the
whole group also stops the work behind each member.

Like every Deferred, these are used only in the reactor thread.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar, cast

from reactor._deferred import Deferred
from reactor._errors import FirstError
from reactor._failure import Failure

__all__ = [
    "FAILURE",
    "SUCCESS",
    "DeferredList",
    "FailureGroup",
    "gatherResults",
    "race",
]

_T = TypeVar("_T")

_log = logging.getLogger(__name__)

#: The first item of a ``(success, result)`` pair from a :class:`DeferredList`.
SUCCESS = True
FAILURE = False


def _checkDeferreds(deferredList: Iterable[Any], argName: str) -> list[Deferred[Any]]:
    """Copy ``deferredList`` into a list, raising ``TypeError`` if an item is not a Deferred."""
    if isinstance(deferredList, (str, bytes)):
        raise TypeError(f"{argName} must be an iterable of Deferreds, not {type(deferredList).__name__}")
    try:
        iterator = iter(deferredList)
    except TypeError:
        raise TypeError(
            f"{argName} must be an iterable of Deferreds, not {type(deferredList).__name__}"
        ) from None
    deferreds = list(iterator)
    for d in deferreds:
        if not isinstance(d, Deferred):
            index = next(i for i, x in enumerate(deferreds) if not isinstance(x, Deferred))
            raise TypeError(f"{argName}[{index}] must be a Deferred, not {type(d).__name__}")
    return deferreds


def _cancelAll(deferreds: Iterable[Deferred[Any]]) -> None:
    """Cancel each Deferred; a canceller that raises is logged and the others still run."""
    for d in deferreds:
        try:
            d.cancel()
        except Exception:
            # Every member must hear about the cancel, and the caller (often a
            # callback deciding a race) must go on to fire its own Deferred.
            _log.exception("Exception raised from user supplied canceller of %r", d)


class DeferredList(Deferred[list[tuple[bool, Any]]]):
    """A Deferred that fires once the Deferreds it was given have fired.

    By default it fires with a list of ``(success, result)`` pairs in the order
    of the input, ``success`` being :data:`SUCCESS` (``True``) with the result or
    :data:`FAILURE` (``False``) with the :class:`Failure`. An empty input fires
    at once with ``[]`` (unless ``fireOnOneCallback`` is set, as in Twisted).

    ``fireOnOneCallback``: fire with ``(result, index)`` as soon as one input
    succeeds. ``fireOnOneErrback``: errback with :class:`FirstError` (carrying
    the failure and its index) as soon as one input fails. ``consumeErrors``:
    turn each input's failure into ``None`` on that input's own chain, so it is
    not logged as unhandled when the input is garbage-collected.

    :meth:`cancel` cancels every input that has not fired yet (Twisted does the
    same since 2016; older docs say otherwise).

    The DeferredList adds one callback pair to each input when it is created, so
    callbacks added to an input before that see the raw result, and callbacks
    added after it see what the DeferredList passes on (``None`` for a consumed
    failure). Reactor thread only.
    """

    fireOnOneCallback: bool
    fireOnOneErrback: bool
    consumeErrors: bool
    finishedCount: int
    resultList: list[tuple[bool, Any] | None]

    def __init__(
        self,
        deferredList: Iterable[Deferred[Any]],
        fireOnOneCallback: bool = False,
        fireOnOneErrback: bool = False,
        consumeErrors: bool = False,
    ) -> None:
        deferreds = _checkDeferreds(deferredList, "deferredList")
        super().__init__()
        self._deferredList = deferreds
        self.resultList = [None] * len(deferreds)
        # The flags must be set before any callback is attached: an input that
        # has already fired runs _cbDeferred right away, inside addBoth.
        self.fireOnOneCallback = bool(fireOnOneCallback)
        self.fireOnOneErrback = bool(fireOnOneErrback)
        self.consumeErrors = bool(consumeErrors)
        self.finishedCount = 0
        if not deferreds and not fireOnOneCallback:
            self.callback([])
        for index, d in enumerate(deferreds):
            d.addBoth(self._cbDeferred, index)

    def _cbDeferred(self, result: Any, index: int) -> Any:
        """Record one input's outcome; fire this list when the flags say so."""
        succeeded = not isinstance(result, Failure)
        self.resultList[index] = (succeeded, result)
        self.finishedCount += 1
        if not self.called:
            if succeeded and self.fireOnOneCallback:
                self.callback(cast(list[tuple[bool, Any]], (result, index)))
            elif not succeeded and self.fireOnOneErrback:
                self.errback(Failure(FirstError(result, index)))
            elif self.finishedCount == len(self.resultList):
                self.callback(cast(list[tuple[bool, Any]], self.resultList))
        if not succeeded and self.consumeErrors:
            return None
        return result

    def cancel(self) -> None:
        """Cancel every input Deferred that has not fired, if this list has not fired.

        Cancelled inputs normally errback with ``CancelledError``, which makes
        this list fire (with the pairs, or ``FirstError`` with
        ``fireOnOneErrback``). If an input ignores the cancel and this list is
        still unfired, this list errbacks ``CancelledError`` itself, as any
        Deferred does. Once this list has fired, cancel behaves as
        ``Deferred.cancel`` (it reaches a Deferred the chain is waiting on).
        """
        if not self.called:
            # "Still waited on" means our callback has not run for it yet; an
            # input can be `called` yet waiting on a Deferred of its own.
            _cancelAll([d for d, r in zip(self._deferredList, self.resultList, strict=True) if r is None])
            if not self.called:
                super().cancel()
        else:
            super().cancel()


def _collectResults(resultList: list[tuple[bool, Any]]) -> list[Any]:
    return [result for _, result in resultList]


def gatherResults(deferredList: Iterable[Deferred[_T]], consumeErrors: bool = False) -> Deferred[list[_T]]:
    """Return a Deferred firing with the list of the inputs' results, in input order.

    It fires once every input succeeded, or errbacks with :class:`FirstError`
    (``.subFailure``, ``.index``) as soon as one fails. ``consumeErrors=True``
    stops the inputs' failures from being logged as unhandled. An empty input
    fires at once with ``[]``. Cancelling the returned Deferred cancels every
    input still pending. Reactor thread only.
    """
    dl = DeferredList(deferredList, fireOnOneErrback=True, consumeErrors=consumeErrors)
    dl.addCallback(_collectResults)
    return cast(Deferred[list[_T]], dl)


class FailureGroup(Exception):
    """Every Deferred given to :func:`race` failed; ``failures`` holds their Failures in input order."""

    def __init__(self, failures: Sequence[Failure]) -> None:
        super().__init__(failures)
        self.failures = list(failures)

    def __repr__(self) -> str:
        return f"FailureGroup({self.failures!r})"

    def __str__(self) -> str:
        inner = ", ".join(f.getErrorMessage() for f in self.failures)
        return f"{len(self.failures)} failures: [{inner}]"


def race(ds: Sequence[Deferred[_T]]) -> Deferred[tuple[int, _T]]:
    """Return a Deferred firing with ``(index, result)`` of the first input to succeed.

    When one input succeeds, every other input is cancelled. If all inputs fail,
    the returned Deferred errbacks with :class:`FailureGroup` holding their
    failures in input order; an empty ``ds`` fails that way at once (Twisted's
    never fires). Cancelling the returned Deferred cancels all the inputs (and
    so it errbacks with a FailureGroup of their ``CancelledError`` failures, as
    in Twisted).

    Each input's own result is consumed: callbacks added to an input after the
    call see ``None``. Reactor thread only.
    """
    deferreds = _checkDeferreds(ds, "ds")
    winner: Deferred[_T] | None = None
    failures: list[Failure | None] = [None] * len(deferreds)
    settled = [False] * len(deferreds)
    failedCount = 0

    def cancelAll(_: Deferred[tuple[int, _T]]) -> None:
        _cancelAll([d for d, done in zip(deferreds, settled, strict=True) if not done])

    result: Deferred[tuple[int, _T]] = Deferred(canceller=cancelAll)

    def succeeded(value: _T, index: int) -> None:
        nonlocal winner
        settled[index] = True
        # A second success happens only when a loser's canceller fires it with
        # a value; the first success already decided the race.
        if winner is None:
            winner = deferreds[index]
            _cancelAll([d for d, done in zip(deferreds, settled, strict=True) if not done])
            result.callback((index, value))

    def failed(failure: Failure, index: int) -> None:
        nonlocal failedCount
        settled[index] = True
        failures[index] = failure
        failedCount += 1
        if failedCount == len(deferreds) and winner is None:
            result.errback(Failure(FailureGroup(cast(list[Failure], failures))))

    if not deferreds:
        result.errback(Failure(FailureGroup([])))
    for index, d in enumerate(deferreds):
        d.addCallbacks(succeeded, failed, callbackArgs=(index,), errbackArgs=(index,))
    return result
