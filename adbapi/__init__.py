"""adbapi: call blocking DB-API 2.0 drivers from the reactor, Twisted-compatible.

``ConnectionPool`` runs each call on a worker thread that owns one connection and
fires a Deferred in the reactor thread. Beyond Twisted's ``enterprise.adbapi``:
cancelling a call stops its statement on the server, broken connections are
replaced, health checks, backpressure, an opt-in retry policy, statistics, and
passwords kept out of every repr, log line and error message.
"""

from __future__ import annotations

from adbapi._async import AsyncTransaction
from adbapi._copy import CopyOut, copyIn, copyOut
from adbapi._drivers import DriverAdapter, SingleRunner
from adbapi._errors import (
    ConnectionLost,
    PoolAbandonedError,
    PoolClosedError,
    PoolOverloadedError,
    PoolTimeoutError,
)
from adbapi._interfaces import IDriverAdapter
from adbapi._listen import Listener, ListenerClosed, Notification, NotificationsMissed, listen, notify
from adbapi._pool import ConnectionPool
from adbapi._replicas import (
    MemberStatistics,
    ReadView,
    ReplicaState,
    ReplicatedPool,
    ReplicatedStatistics,
    standbyLag,
)
from adbapi._retry import RetryPolicy
from adbapi._stats import PoolStatistics
from adbapi._wrappers import Connection, Transaction

__all__ = [
    "AsyncTransaction",
    "Connection",
    "ConnectionLost",
    "ConnectionPool",
    "CopyOut",
    "DriverAdapter",
    "IDriverAdapter",
    "Listener",
    "ListenerClosed",
    "MemberStatistics",
    "Notification",
    "NotificationsMissed",
    "PoolAbandonedError",
    "PoolClosedError",
    "PoolOverloadedError",
    "PoolStatistics",
    "PoolTimeoutError",
    "ReadView",
    "ReplicaState",
    "ReplicatedPool",
    "ReplicatedStatistics",
    "RetryPolicy",
    "SingleRunner",
    "Transaction",
    "copyIn",
    "copyOut",
    "listen",
    "notify",
    "standbyLag",
]
