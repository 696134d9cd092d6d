"""The snapshot returned by ``ConnectionPool.statistics()``."""

from __future__ import annotations

import enum
import threading
from dataclasses import dataclass

__all__ = ["ConnectionCounters", "PoolState", "PoolStatistics"]


class ConnectionCounters:
    """The connection counters every slot bumps (worker threads and the reactor): under one short lock."""

    __slots__ = ("_lock", "connectionsOpened", "reconnects", "recycledCount")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.connectionsOpened = 0
        self.reconnects = 0
        self.recycledCount = 0

    def opened(self) -> None:
        """A slot opened a connection."""
        with self._lock:
            self.connectionsOpened += 1

    def reconnected(self) -> None:
        """A slot dropped a broken connection (the next call opens another)."""
        with self._lock:
            self.reconnects += 1

    def recycled(self, n: int = 1) -> None:
        """``n`` connections were closed for their age or their idle time."""
        with self._lock:
            self.recycledCount += n

    def snapshot(self) -> tuple[int, int, int]:
        """(connectionsOpened, reconnects, recycled)."""
        with self._lock:
            return self.connectionsOpened, self.reconnects, self.recycledCount


class PoolState(enum.StrEnum):
    """A pool's life: NEW -> RUNNING (reactor start or first call) -> CLOSING -> CLOSED (-> RUNNING again).

    A ``str`` enum: :attr:`PoolStatistics.state` and reprs show the plain value (``"running"``).
    """

    NEW = "new"
    RUNNING = "running"
    CLOSING = "closing"  # no new calls; accepted calls finish, connections close in their threads
    CLOSED = "closed"  # calls errback at once; start() reopens


@dataclass(frozen=True)
class PoolStatistics:
    """A consistent, immutable snapshot of one pool; cheap to take (no database work).

    Counters (``calls`` onwards) count since the pool was created.
    """

    name: str
    state: str
    #: worker threads alive (each owns at most one connection)
    workers: int
    #: connections currently open
    connectionsOpen: int
    #: connections running a call (on workers or lanes)
    busy: int
    #: connections (or workers without one yet) waiting for work
    idle: int
    #: calls waiting for a free connection
    waiting: int
    #: the longest time (seconds) any call has waited for a connection
    longestWait: float
    #: calls finished (successfully or not), not counting cancelled ones
    calls: int
    #: calls that ended with an error (database errors, lost connections, timeouts)
    errors: int
    #: calls cancelled by their caller (including timeouts)
    cancelled: int
    #: calls refused by ``cp_max_waiting`` or that gave up after ``cp_wait_timeout``
    rejected: int
    #: attempts re-run by the retry policy
    retries: int
    #: connections opened in all
    connectionsOpened: int
    #: connections found broken (failed call, failed ping) and replaced
    reconnects: int
    #: connections closed for age (``cp_max_lifetime``) or idleness (``cp_idle_timeout``)
    recycled: int
    #: lanes alive: slots whose nonblocking connection the reactor drives (psycopg2's runQuery/runOperation)
    lanes: int = 0
