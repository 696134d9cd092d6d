"""Exceptions shared by the reactor package.

Each name matches the Twisted exception of the same role, so code that catches
``twisted.internet.defer.CancelledError`` ports by changing its import.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AlreadyCalled",
    "AlreadyCalledError",
    "AlreadyCancelled",
    "CancelledError",
    "FirstError",
    "ReactorAlreadyRunning",
    "ReactorNotRestartable",
    "ReactorNotRunning",
    "TimeoutError",
]


class AlreadyCalledError(Exception):
    """A Deferred was fired (``callback``/``errback``) a second time."""


class CancelledError(Exception):
    """A Deferred was cancelled; its chain received this instead of a result."""


class TimeoutError(Exception):  # Twisted's name, on purpose (shadows the builtin)
    """A Deferred did not fire before its ``addTimeout`` deadline."""


class FirstError(Exception):
    """``gatherResults``/``DeferredList(fireOnOneErrback=True)`` saw a failure.

    ``subFailure`` is the :class:`Failure` that fired first and ``index`` is the
    position of its Deferred in the list given.
    """

    def __init__(self, failure: object, index: int) -> None:
        super().__init__(failure, index)
        self.subFailure = failure
        self.index = index

    def __repr__(self) -> str:
        value = getattr(self.subFailure, "value", self.subFailure)
        return f"FirstError[#{self.index}, {value!r}]"

    def __eq__(self, other: object) -> bool:
        # As in Twisted: the same position and the same failure (ported tests compare them).
        if isinstance(other, FirstError):
            return (self.index, self.subFailure) == (other.index, other.subFailure)
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.index, id(self.subFailure)))

    def __str__(self) -> str:
        return f"FirstError[#{self.index}, {self.subFailure}]"


class AlreadyCalled(ValueError):
    """A :class:`DelayedCall` that already ran was cancelled, reset or delayed."""


class AlreadyCancelled(ValueError):
    """A :class:`DelayedCall` that was cancelled was cancelled, reset or delayed."""


class ReactorNotRunning(RuntimeError):
    """An operation needs a running reactor (``stop()`` on a stopped one, for example)."""


class ReactorAlreadyRunning(RuntimeError):
    """``run()`` was called on a reactor that is already running."""


class ReactorAlreadyInstalledError(AssertionError):
    """A process-wide default reactor already exists (Twisted's name and base class)."""


class ReactorNotRestartable(RuntimeError):
    """Kept for Twisted compatibility; our reactors can be run again after they stop."""


class ReturnValue(BaseException):
    """Raised by :func:`reactor.returnValue` to end an ``inlineCallbacks`` generator with ``value``.

    A ``BaseException`` (as in Twisted) so that ``except Exception`` in the
    generator does not swallow it.
    """

    def __init__(self, value: Any) -> None:
        super().__init__(value)
        self.value = value
