"""The one health policy of a pool's connections: lifetime, pre-use ping, idle retirement.

Thread slots (a worker thread's connection) and lane slots (a nonblocking
connection the reactor drives) ask the same questions before a call and while
idle; this module answers them, so both kinds of slot follow one rule. It only
decides: closing, pinging and reopening are the slot's work, in the slot's
thread. Pure: the time comes from the injected clock.

Settings (``cp_*`` keywords): ``cp_max_lifetime`` (a connection this old is
replaced before its next call), ``cp_ping_after`` (one idle this long is
checked with ``cp_good_sql`` first), ``cp_idle_timeout`` (slots above
``cp_min`` idle this long are retired).
"""

from __future__ import annotations

import enum
from collections.abc import Callable

__all__ = ["HealthPolicy", "Readiness"]


class Readiness(enum.Enum):
    """What a slot does with its open connection before the next call."""

    USE = "use"  # run the call on it
    RECYCLE = "recycle"  # too old (cp_max_lifetime): close it, open a new one
    PING = "ping"  # idle too long (cp_ping_after): check it first, replace it if the check fails


class HealthPolicy:
    """The pool's health settings and the decisions made from them (any thread; immutable once made)."""

    __slots__ = ("goodSql", "idleTimeout", "maxLifetime", "now", "pingAfter", "timed")

    def __init__(
        self,
        now: Callable[[], float],
        *,
        maxLifetime: float | None,
        pingAfter: float | None,
        idleTimeout: float | None,
        goodSql: str | None,
    ) -> None:
        self.now = now
        self.maxLifetime = maxLifetime
        self.pingAfter = pingAfter
        self.idleTimeout = idleTimeout
        self.goodSql = goodSql  # cp_good_sql when given; None lets the driver adapter choose its ping
        # Slots read the clock around calls only when something is timed.
        self.timed = maxLifetime is not None or pingAfter is not None or idleTimeout is not None

    def beforeUse(self, openedAt: float, lastUsed: float) -> Readiness:
        """What to do with a connection opened at ``openedAt`` and last used at ``lastUsed``."""
        if not self.timed:
            return Readiness.USE
        now = self.now()
        if self.maxLifetime is not None and now - openedAt >= self.maxLifetime:
            return Readiness.RECYCLE
        if self.pingAfter is not None and now - lastUsed >= self.pingAfter:
            return Readiness.PING
        return Readiness.USE

    def idleExpired(self, idleSince: float, now: float) -> bool:
        """True when a slot idle since ``idleSince`` should be retired at ``now`` (``cp_idle_timeout``)."""
        return self.idleTimeout is not None and now - idleSince >= self.idleTimeout

    def stamp(self) -> float:
        """The time to record as opened/used/idle-since (0.0 when nothing is timed: no clock read)."""
        return self.now() if self.timed else 0.0
