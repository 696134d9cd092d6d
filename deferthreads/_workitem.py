"""Work items: one queued call each, and what to do with its outcome.

A work item is created in the submitting thread, waits in the team's queue and
is run by exactly one worker thread (or abandoned, never both). They are plain
slotted objects rather than closures so that the hot path allocates one small
object per call.

Field ownership: every field is written by the submitting thread before the item
is queued and only read afterwards, except ``cancelled`` (set once, by whoever
cancels, read by the worker just before it runs the call) and ``enqueuedAt``
(set by the team as it queues the item).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextvars import Context
from typing import Any

from reactor import Failure

__all__: list[str] = []

log = logging.getLogger("deferthreads")

OnResult = Callable[[bool, Any], object]


def _finished(*args: Any, **kwargs: Any) -> None:
    """Stands for the function (or ``onResult``) of an item that has run: the item dropped its own."""


_NO_KWARGS: dict[str, Any] = {}  # never mutated: the kwargs of an item that has run


class WorkItem:
    """A call to run in a worker thread; its outcome is logged if it fails.

    ``execute`` runs in the worker thread and returns True on success.
    ``abandon`` is called instead of ``execute`` (in whatever thread gave up on
    the item: a cancel, a stop timeout) when the call will never run.
    """

    __slots__ = ("args", "cancelled", "context", "enqueuedAt", "f", "kwargs")

    def __init__(
        self, f: Callable[..., object], args: tuple[Any, ...], kwargs: dict[str, Any], context: Context
    ) -> None:
        self.f = f
        self.args = args
        self.kwargs = kwargs
        self.context = context
        self.cancelled = False
        self.enqueuedAt = 0.0

    def execute(self, returned: Callable[[], object]) -> bool:
        """Run the call in the copied context (worker thread); log an exception it raises.

        ``returned()`` is called as soon as the call itself has returned, before
        its outcome is handed on (the team's ``_finishing`` mark).
        """
        try:
            self.context.run(self.f, *self.args, **self.kwargs)
        except BaseException:
            returned()
            log.exception("Unhandled exception in %r run by a thread pool worker", self.f)
            return False
        returned()
        return True

    def abandon(self, reason: Failure) -> None:
        """The call will not run: log that it was dropped and why."""
        log.warning("Call %r dropped without running: %s", self.f, reason.getErrorMessage())

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.f!r}{' cancelled' if self.cancelled else ''}>"


class CallbackWorkItem(WorkItem):
    """A call whose outcome goes to ``onResult(success, resultOrFailure)`` in the worker thread."""

    __slots__ = ("onResult",)

    def __init__(
        self,
        onResult: OnResult,
        f: Callable[..., object],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        context: Context,
    ) -> None:
        WorkItem.__init__(self, f, args, kwargs, context)
        self.onResult = onResult

    def execute(self, returned: Callable[[], object]) -> bool:
        """Run the call, then ``onResult`` (both in the worker thread, in the copied context).

        As in Twisted, the item lets go of ``f`` and its arguments before
        ``onResult`` runs, and of ``onResult`` once it returned: the caller's
        objects are not kept alive by a finished call (a Failure's traceback
        still holds the frames it records).
        """
        try:
            result = self.context.run(self.f, *self.args, **self.kwargs)
            ok = True
        except BaseException:
            result = Failure()
            ok = False
        returned()
        self.f = _finished
        self.args = ()
        self.kwargs = _NO_KWARGS
        onResult, self.onResult = self.onResult, _finished
        try:
            self.context.run(onResult, ok, result)
        except BaseException:
            log.exception("Unhandled exception in onResult callback %r", onResult)
        return ok

    def abandon(self, reason: Failure) -> None:
        """Report ``onResult(False, reason)`` in the calling thread: the call will not run."""
        try:
            self.context.run(self.onResult, False, reason)
        except BaseException:
            log.exception("Unhandled exception in onResult callback %r", self.onResult)
