"""What the parts of one connection pool share: made once by ``ConnectionPool.__init__``.

The pool's parts (the thread slots and their holders, the lanes, the router,
the lifecycle, the cancel sender, recovery, the Connection/Transaction
wrappers, async transactions, telemetry) need the same few things: the driver
adapter, the health policy, the counters, the pool's label for log lines... A
:class:`PoolContext` carries them as public fields, so no part reads another's
private attributes; ``ConnectionPool.context`` hands it out.

Threads: built in the reactor thread; every field is set once (``adapter`` may
be swapped by a test before the pool runs) and read from any thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from adbapi._drivers import DriverAdapter
    from adbapi._health import HealthPolicy
    from adbapi._redact import Redactor
    from adbapi._retry import RetryPolicy
    from adbapi._side import SideWork
    from adbapi._stats import ConnectionCounters
    from adbapi._telemetry import PoolTelemetry

__all__ = ["PoolContext"]


@dataclass(eq=False, slots=True)
class PoolContext:
    """The shared, read-mostly parts of one pool (see the module docstring)."""

    #: "<cp_name or ConnectionPool-n> (<module>)", for log lines and errors
    label: str
    #: "PoolThread-<name>": the prefix of the pool's thread and lane names
    threadPrefix: str
    #: what the pool does with the driver (``_drivers.py``)
    adapter: DriverAdapter
    #: cp_max_lifetime, cp_ping_after, cp_idle_timeout: one policy for worker and lane connections
    health: HealthPolicy
    #: connections opened, reconnects, recycled (bumped by every slot)
    counters: ConnectionCounters
    #: scrubs the connection's secrets out of log lines and errors
    redactor: Redactor
    #: the pool's reactor (``cp_reactor``) and its clock (``cp_clock``, default the reactor)
    reactor: Any
    clock: Any
    #: cp_retry (None: no retries)
    retry: RetryPolicy | None
    #: the side threads (cancels, lane connects and fetches)
    side: SideWork
    #: slow/leak thresholds and span attributes (``_telemetry.py``)
    telemetry: PoolTelemetry
    #: the pool's class keeps Twisted's connect() / _close(): no subclass hook to go through
    ownConnect: bool
    ownClose: bool
