"""The opt-in retry policy for interactions that failed for reasons worth another attempt."""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["RetryPolicy"]


@dataclass(frozen=True)
class RetryPolicy:
    """When and how often a failed ``runInteraction`` (or runQuery/runOperation) is run again.

    A call is re-run, from the start and on a fresh or healthy connection, only when
    the server guarantees nothing of it was committed:

    - ``onConflict``: a serialization failure or a deadlock (PostgreSQL 40001/40P01,
      MySQL 1213/1205, SQLite busy/locked). The server rolled the transaction back.
    - ``onConnectionLost``: the connection died *before* the commit was sent. A
      connection lost during the commit is never retried (the outcome is unknown),
      and neither is any other error.

    The interaction must be safe to run again: no side effects outside the database
    (no emails sent, no files written, no non-idempotent calls to other services),
    or side effects that are themselves idempotent. Delays grow as
    ``backoff * multiplier ** (attempt - 1)``, capped at ``maxBackoff``, plus up to
    ``jitter`` of that delay at random; they are waited on the reactor (never in a
    worker thread), and cancelling the call during the wait cancels the retry.
    """

    attempts: int = 3
    backoff: float = 0.05
    multiplier: float = 2.0
    maxBackoff: float = 2.0
    jitter: float = 0.1
    onConflict: bool = True
    onConnectionLost: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.attempts, int) or self.attempts < 1:
            raise ValueError(f"attempts must be an int >= 1, got {self.attempts!r}")
        for field in ("backoff", "multiplier", "maxBackoff", "jitter"):
            value = getattr(self, field)
            if not isinstance(value, int | float) or value < 0:
                raise ValueError(f"{field} must be a number >= 0, got {value!r}")

    def delay(self, attempt: int) -> float:
        """Seconds to wait before attempt number ``attempt + 1`` (``attempt`` counts from 1)."""
        base = min(self.maxBackoff, self.backoff * self.multiplier ** (attempt - 1))
        if self.jitter:
            base += base * self.jitter * random.random()
        return base

    def shouldRetry(self, attempt: int, conflict: bool, lostBeforeCommit: bool) -> bool:
        """True if a call that just failed on attempt ``attempt`` should run again."""
        if attempt >= self.attempts:
            return False
        return (conflict and self.onConflict) or (lostBeforeCommit and self.onConnectionLost)
