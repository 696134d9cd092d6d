"""Twisted helpers that Twisted itself deprecated, kept so that old code ports unchanged.

Each one issues a ``DeprecationWarning`` naming its replacement, as Twisted
does, and otherwise behaves as Twisted's.
"""

from __future__ import annotations

import warnings
from typing import Any

from reactor._deferred import Deferred
from reactor._errors import TimeoutError
from reactor._failure import Failure

__all__ = ["timeout"]


def timeout(deferred: Deferred[Any]) -> None:
    """Fail ``deferred`` now with ``TimeoutError("Callback timed out")`` (deprecated).

    Twisted's ``defer.timeout``, deprecated since Twisted 17.1.0: use
    ``deferred.addTimeout(seconds, clock)``, which also cancels the operation.
    Raises ``AlreadyCalledError`` if ``deferred`` has already fired, and
    ``TypeError`` if it is not a Deferred.
    """
    warnings.warn(
        "reactor.timeout is deprecated (as Twisted's defer.timeout is since Twisted 17.1.0); "
        "use Deferred.addTimeout instead",
        DeprecationWarning,
        stacklevel=2,
    )
    if not isinstance(deferred, Deferred):
        raise TypeError(f"deferred must be a Deferred, not {type(deferred).__name__}")
    deferred.errback(Failure(TimeoutError("Callback timed out")))
