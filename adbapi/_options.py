"""The ``cp_*`` keywords of ``ConnectionPool``: taken out of the driver's keywords and checked at the call.

Twisted's own options (``cp_min``, ``cp_max``, ``cp_name``, ...) stay attributes of
the pool, as Twisted code reads and subclasses set them; the options Twisted has
not are gathered in one frozen :class:`PoolOptions`. Every bad value raises
``TypeError``/``ValueError`` naming the keyword, before any thread or connection
exists.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from adbapi._retry import RetryPolicy

__all__ = [
    "DEFAULT_SHUTDOWN_TIMEOUT",
    "TWISTED_ARGS",
    "PoolOptions",
    "checkTimeout",
    "checkTwistedOptions",
    "loadModule",
    "poolOptions",
    "popOptions",
]

_log = logging.getLogger("adbapi")

#: Twisted's ``ConnectionPool.CP_ARGS``: these become attributes of the pool.
TWISTED_ARGS = ["min", "max", "name", "noisy", "openfun", "reconnect", "good_sql"]
_EXTRA_ARGS = [
    "reactor", "clock", "ping_after", "max_lifetime", "idle_timeout", "max_waiting", "wait_timeout",
    "timeout", "retry", "nonblocking", "shutdown_timeout", "slow_threshold", "leak_threshold",
    "prepare_threshold",
]
#: Seconds a close (or the reactor's shutdown) waits for running calls before it abandons them; the
#: same default as the reactor's shared thread pool.
DEFAULT_SHUTDOWN_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class PoolOptions:
    """The checked options beyond Twisted's (``cp_`` dropped from the names); None means "not set"."""

    reactor: Any
    #: the time source of the health checks and wait timeouts (the reactor unless ``cp_clock``)
    clock: Any
    pingAfter: float | None
    maxLifetime: float | None
    idleTimeout: float | None
    waitTimeout: float | None
    timeout: float | None
    maxWaiting: int | None
    retry: RetryPolicy | None
    nonblocking: bool | None
    #: how long close() waits for running calls (None: as long as they take)
    shutdownTimeout: float | None
    #: calls slower than this are logged (adbapi/_telemetry.py); None: off
    slowThreshold: float | None = None
    #: units holding a connection longer than this are logged with their stack; None: off
    leakThreshold: float | None = None
    #: psycopg2 lanes prepare a statement once it ran this many times on a connection; None: never
    prepareThreshold: int | None = None

    @property
    def timed(self) -> bool:
        """True when a connection's age or idle time matters (each use then reads the clock)."""
        return any(v is not None for v in (self.pingAfter, self.maxLifetime, self.idleTimeout))


def popOptions(connkw: dict[str, Any], twistedArgs: list[str]) -> dict[str, Any]:
    """Remove the ``cp_*`` keywords from ``connkw`` (the rest go to the driver); return them without ``cp_``.

    ``twistedArgs`` is the class's ``CP_ARGS`` (a subclass may add to it). An
    unknown ``cp_`` name raises ``TypeError``: a misspelt option must not reach
    the driver's ``connect()`` or vanish.
    """
    options = {k[3:]: connkw.pop(k) for k in list(connkw) if k.startswith("cp_")}
    unknown = sorted(set(options) - set(twistedArgs) - set(_EXTRA_ARGS))
    if unknown:
        names = ", ".join("cp_" + u for u in unknown)
        raise TypeError(f"ConnectionPool() got unknown keyword argument(s): {names}")
    return options


def loadModule(dbapiName: str | ModuleType) -> tuple[ModuleType, str]:
    """The DB-API module named (imported) or given, and its name; ``TypeError`` if it is not one."""
    if isinstance(dbapiName, ModuleType):
        module, name = dbapiName, dbapiName.__name__
    elif isinstance(dbapiName, str):
        module, name = importlib.import_module(dbapiName), dbapiName
    else:
        raise TypeError(f"dbapiName must be a module name or a module, not {type(dbapiName).__name__}")
    if not callable(getattr(module, "connect", None)):
        raise TypeError(f"dbapiName {name!r} is not a DB-API module (it has no connect())")
    if getattr(module, "apilevel", None) != "2.0":
        _log.info("adbapi: DB API module %s is not DB API 2.0 compliant", name)
    return module, name


def checkTwistedOptions(pool: Any) -> None:
    """Check Twisted's options as set on ``pool`` (by keyword or by a subclass); ``cp_min`` is clamped to
    ``cp_max``."""
    for arg in ("min", "max"):
        value = getattr(pool, arg)
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"cp_{arg} must be an int, not {type(value).__name__}")
    if pool.max < 1:
        raise ValueError(f"cp_max must be >= 1, got {pool.max}")
    if pool.min < 0:
        raise ValueError(f"cp_min must be >= 0, got {pool.min}")
    pool.min = min(pool.min, pool.max)
    if pool.name is not None and not isinstance(pool.name, str):
        raise TypeError(f"cp_name must be a str or None, not {type(pool.name).__name__}")
    if pool.openfun is not None and not callable(pool.openfun):
        raise TypeError("cp_openfun must be callable or None")
    if not isinstance(pool.good_sql, str):
        raise TypeError(f"cp_good_sql must be a str, not {type(pool.good_sql).__name__}")


def poolOptions(options: dict[str, Any], defaultReactor: Callable[[], Any]) -> PoolOptions:
    """Check the options beyond Twisted's; ``defaultReactor()`` is called only without ``cp_reactor``."""
    reactor = options.get("reactor")
    if reactor is None:
        reactor = defaultReactor()
    maxWaiting = options.get("max_waiting")
    if maxWaiting is not None and (isinstance(maxWaiting, bool) or not isinstance(maxWaiting, int)):
        raise TypeError(f"cp_max_waiting must be an int or None, not {type(maxWaiting).__name__}")
    if maxWaiting is not None and maxWaiting < 0:
        raise ValueError(f"cp_max_waiting must be >= 0, got {maxWaiting}")
    retry = options.get("retry")
    if retry is not None and not isinstance(retry, RetryPolicy):
        raise TypeError(f"cp_retry must be a RetryPolicy or None, not {type(retry).__name__}")
    prepareThreshold = options.get("prepare_threshold")
    if prepareThreshold is not None and (
        isinstance(prepareThreshold, bool) or not isinstance(prepareThreshold, int)
    ):
        raise TypeError(f"cp_prepare_threshold must be an int or None, not {type(prepareThreshold).__name__}")
    if prepareThreshold is not None and prepareThreshold < 0:
        raise ValueError(f"cp_prepare_threshold must be >= 0, got {prepareThreshold}")
    nonblocking = options.get("nonblocking")
    if nonblocking is not None and not isinstance(nonblocking, bool):
        raise TypeError(f"cp_nonblocking must be a bool or None, not {type(nonblocking).__name__}")
    return PoolOptions(
        reactor=reactor,
        clock=options.get("clock") or reactor,
        pingAfter=_optionalSeconds("cp_ping_after", options.get("ping_after"), allowZero=True),
        maxLifetime=_optionalSeconds("cp_max_lifetime", options.get("max_lifetime")),
        idleTimeout=_optionalSeconds("cp_idle_timeout", options.get("idle_timeout")),
        waitTimeout=_optionalSeconds("cp_wait_timeout", options.get("wait_timeout")),
        timeout=_optionalSeconds("cp_timeout", options.get("timeout")),
        maxWaiting=maxWaiting,
        retry=retry,
        nonblocking=nonblocking,
        shutdownTimeout=checkTimeout(
            "cp_shutdown_timeout", options.get("shutdown_timeout", DEFAULT_SHUTDOWN_TIMEOUT)
        ),
        slowThreshold=_optionalSeconds("cp_slow_threshold", options.get("slow_threshold"), allowZero=True),
        leakThreshold=_optionalSeconds("cp_leak_threshold", options.get("leak_threshold")),
        prepareThreshold=prepareThreshold,
    )


def checkTimeout(name: str, value: Any) -> float | None:
    """A number of seconds > 0, or None (no limit); ``TypeError``/``ValueError`` naming ``name`` otherwise."""
    return _optionalSeconds(name, value)


def _optionalSeconds(name: str, value: Any, allowZero: bool = False) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds or None, not {type(value).__name__}")
    if value < 0 or (value == 0 and not allowZero):
        raise ValueError(f"{name} must be {'>= 0' if allowZero else '> 0'}, got {value!r}")
    return float(value)
