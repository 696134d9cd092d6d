"""OpenTelemetry spans and metrics of a ``ConnectionPool``, its slow-call log and its leak detector.

Native instrumentation: the pool calls the OpenTelemetry *API* itself, so spans and
metrics appear as soon as the application installs an SDK (a ``TracerProvider`` /
``MeterProvider``); no call of ours is needed. ``opentelemetry-api`` is optional (the
``[otel]`` extra) and imported once, when the first pool is made.

The hooks sit at the pool's public methods only: each wraps the Deferred (or the
``AsyncTransaction``) the method already made, in the reactor thread, so they see a
call from its submission to its result:

* a **span** per call (``runQuery``, ``runOperation``, ``runInteraction``,
  ``runWithConnection``, ``async with pool.transaction()``; SQLAlchemy units are
  ``runWithConnection`` calls), of kind CLIENT, started in the caller's context, so
  it is a child of the caller's current span. Attributes follow the semantic
  conventions for database clients: ``db.system.name`` (and the older
  ``db.system``), ``db.operation.name``, ``db.namespace``, ``server.address`` /
  ``server.port`` (from the connect arguments; never a password), ``db.query.text``
  (the statement as given, placeholders and all: parameter values are separate
  arguments and are never recorded), ``error.type`` on failure;
* **metrics** (meter ``adbapi``): observable ``db.client.connection.count`` by
  ``db.client.connection.state`` (idle/used), ``db.client.connection.pending_requests``,
  ``db.client.connection.timeouts``, ``db.client.connection.max``,
  ``db.client.connection.idle.min``, read from ``statistics()`` only when a reader
  collects; the histogram ``db.client.operation.duration`` per call, and
  ``db.client.connection.wait_time`` / ``use_time`` per ``run*`` call and async
  transaction (a transaction's entry tells when it holds its connection; a
  ``run*`` call is observed before its dispatch (:func:`observe`) and, while an
  SDK's meter is installed, marked ``timed``: the slot that starts it, a worker
  or a lane, stamps the moment);
* ``cp_slow_threshold`` (seconds on the pool's clock): a call that took longer is
  logged at WARNING on the ``adbapi.slow`` logger with the statement (or the
  function's name) and its time, never the parameter values;
* ``cp_leak_threshold`` (seconds on the pool's clock): a ``runInteraction``,
  ``runWithConnection`` or transaction still holding its connection past the
  threshold is logged once at WARNING on ``adbapi.leaks`` with the stack where it
  was called (HikariCP's ``leakDetectionThreshold``). A transaction is timed from
  the moment it holds its connection; a ``run*`` call, seen from outside the
  pool, from its submission (its wait for a connection included).

With OpenTelemetry absent or no SDK configured and neither threshold set, each hook
returns what it was given (``observe``: None) after two reads of the API's global
providers, and no slot reads the clock for the call.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import traceback
import weakref
from collections.abc import Callable
from types import TracebackType
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

from reactor import Deferred, Failure

__all__ = ["PoolTelemetry", "observe", "traced", "tracedTransaction"]

_slowLog = logging.getLogger("adbapi.slow")
_leakLog = logging.getLogger("adbapi.leaks")

_T = TypeVar("_T")
_UNSET: Any = object()


class _Otel:
    """The OpenTelemetry API, imported once; ``None`` fields while it is absent (or forced absent)."""

    __slots__ = ("durations", "fast", "meterProvider", "metering_", "metrics", "metricsState", "spanKind",
                 "status", "trace", "tracer", "tracerProvider", "useTime", "waitTime")

    def __init__(self, trace: Any, metrics: Any) -> None:
        self.trace = trace
        self.metrics = metrics
        # get_tracer_provider() / get_meter_provider() look up an environment variable on every call
        # (microseconds each); the hooks read the API modules' globals instead, which hold the provider
        # those functions return once one is set (None before). These first calls load a provider named
        # by OTEL_PYTHON_TRACER_PROVIDER / OTEL_PYTHON_METER_PROVIDER, as the API would.
        trace.get_tracer_provider()
        metrics.get_meter_provider()
        self.metricsState = importlib.import_module("opentelemetry.metrics._internal")
        self.fast = hasattr(trace, "_TRACER_PROVIDER") and hasattr(self.metricsState, "_METER_PROVIDER")
        self.spanKind = trace.SpanKind.CLIENT
        self.status = (trace.Status, trace.StatusCode.ERROR)
        # The tracer is bound to the provider it came from; taken again when the provider changes.
        self.tracerProvider: Any = None
        self.tracer: Any = None
        self.meterProvider: Any = None
        self.metering_ = False
        meter = metrics.get_meter("adbapi")
        buckets = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0]
        self.durations = meter.create_histogram(
            "db.client.operation.duration", unit="s",
            description="Duration of pool calls, submission to result.",
            explicit_bucket_boundaries_advisory=buckets,
        )
        self.waitTime = meter.create_histogram(
            "db.client.connection.wait_time", unit="s",
            description="Time a pool call or async transaction waited for a connection, from submission.",
            explicit_bucket_boundaries_advisory=buckets,
        )
        self.useTime = meter.create_histogram(
            "db.client.connection.use_time", unit="s",
            description="Time a pool call or async transaction held its connection: its start to its result.",
            explicit_bucket_boundaries_advisory=buckets,
        )
        _observablePoolMetrics(meter, metrics.Observation)

    def tracerNow(self) -> Any:
        """The tracer of the configured provider, or None while only the API's proxy (or a no-op) is there."""
        if self.fast:
            provider = self.trace._TRACER_PROVIDER
        else:  # an API without the global: the public way, slower
            provider = self.trace.get_tracer_provider()
            if isinstance(provider, self.trace.ProxyTracerProvider):
                provider = None
        if provider is None:
            return None
        if provider is not self.tracerProvider:
            self.tracerProvider = provider
            noop = isinstance(provider, self.trace.NoOpTracerProvider)
            self.tracer = None if noop else provider.get_tracer("adbapi")
        return self.tracer

    def metering(self) -> bool:
        """True once an SDK's meter provider is installed (until then recording would go nowhere)."""
        if self.fast:
            provider = self.metricsState._METER_PROVIDER
        else:
            provider = self.metrics.get_meter_provider()
            if provider is getattr(self.metricsState, "_PROXY_METER_PROVIDER", None):
                provider = None
        if provider is None:
            return False
        if provider is not self.meterProvider:
            self.meterProvider = provider
            self.metering_ = not isinstance(provider, self.metrics.NoOpMeterProvider)
        return bool(self.metering_)


_otel: Any = _UNSET  # _Otel | None, reactor thread (first pool made)
_forcedAbsent = False
# live pool -> its telemetry, for the observable instruments' callbacks (any thread: WeakKeyDictionary
# iteration is safe under the GIL when copied first).
_pools: weakref.WeakKeyDictionary[Any, PoolTelemetry] = weakref.WeakKeyDictionary()


def _forceAbsent(absent: bool) -> None:
    """Behave as if ``opentelemetry-api`` were not installed (True), or look again (False); for benchmarks
    and tests, before pools are made."""
    global _otel, _forcedAbsent
    _forcedAbsent = absent
    _otel = _UNSET


def _loadOtel() -> _Otel | None:
    global _otel
    if _otel is _UNSET:
        _otel = None
        if not _forcedAbsent:
            try:
                from opentelemetry import metrics, trace
            except ImportError:
                pass
            else:
                _otel = _Otel(trace, metrics)
    result: _Otel | None = _otel
    return result


def _observablePoolMetrics(meter: Any, observation: Callable[..., Any]) -> None:
    """The pool-state instruments, read from each live pool's ``statistics()`` when a reader collects."""

    def observe(read: Callable[[Any, Any], list[tuple[float, dict[str, str]]]]) -> Callable[[Any], list[Any]]:
        def callback(options: Any) -> list[Any]:
            out = []
            for pool, telemetry in list(_pools.items()):
                try:
                    stats = pool.statistics()
                except Exception:  # a pool mid-teardown must not break the whole collection
                    continue
                base = {"db.client.connection.pool.name": stats.name, "db.system.name": telemetry.system}
                for value, extra in read(pool, stats):
                    out.append(observation(value, {**base, **extra}))
            return out

        return callback

    def count(pool: Any, s: Any) -> list[tuple[float, dict[str, str]]]:
        used = min(s.busy, s.connectionsOpen)
        return [(used, {"db.client.connection.state": "used"}),
                (max(0, s.connectionsOpen - used), {"db.client.connection.state": "idle"})]

    meter.create_observable_up_down_counter(
        "db.client.connection.count", [observe(count)], unit="{connection}",
        description="Open connections by state: used by a call, or idle in the pool.",
    )
    meter.create_observable_up_down_counter(
        "db.client.connection.pending_requests", [observe(lambda p, s: [(s.waiting, {})])], unit="{request}",
        description="Calls waiting for a connection.",
    )
    meter.create_observable_counter(
        "db.client.connection.timeouts", [observe(lambda p, s: [(s.rejected, {})])], unit="{timeout}",
        description="Calls that got no connection (cp_wait_timeout passed, or cp_max_waiting refused them).",
    )
    meter.create_observable_up_down_counter(
        "db.client.connection.max", [observe(lambda p, s: [(p.max, {})])], unit="{connection}",
        description="The most connections the pool opens (cp_max).",
    )
    meter.create_observable_up_down_counter(
        "db.client.connection.idle.min", [observe(lambda p, s: [(p.min, {})])], unit="{connection}",
        description="The connections the pool keeps open when idle (cp_min).",
    )


# -- the pool's static description ----------------------------------------------------------------

_SYSTEMS = {
    "sqlite3": "sqlite", "psycopg2": "postgresql", "psycopg": "postgresql", "pymysql": "mysql",
    "MySQLdb": "mysql", "mysql": "mysql", "mariadb": "mariadb",
}
_KEYWORD = re.compile(r"\s*(?:--[^\n]*\n\s*|/\*.*?\*/\s*)*([A-Za-z]+)", re.S)
_KV = re.compile(r"(\w+)\s*=\s*('(?:[^'\\]|\\.)*'|\S+)")


def _system(dbapiName: str) -> str:
    return _SYSTEMS.get(dbapiName.split(".")[0], dbapiName)


def _serverAttributes(connargs: tuple[Any, ...], connkw: dict[str, Any]) -> dict[str, Any]:
    """``server.address``, ``server.port`` and ``db.namespace`` from the connect arguments (no secrets)."""
    values: dict[str, Any] = {}
    dsn = connargs[0] if connargs and isinstance(connargs[0], str) else None
    dsn = dsn or connkw.get("dsn") or connkw.get("conninfo")
    if isinstance(dsn, str):
        if "://" in dsn:
            try:  # the driver judges a malformed URL at connect time; telemetry just goes without
                parts = urlsplit(dsn)
                values["host"] = parts.hostname
                values["dbname"] = parts.path.lstrip("/") or None
                values["port"] = parts.port
            except ValueError:
                pass
        elif "=" in dsn:
            values.update((k, v.strip("'")) for k, v in _KV.findall(dsn))
    for key in ("host", "port", "dbname", "database", "db"):
        if key in connkw:
            values[key] = connkw[key]
    attributes: dict[str, Any] = {}
    host = values.get("host")
    if isinstance(host, str) and host:
        attributes["server.address"] = host.split(",")[0]  # libpq's multi-host list: the first one
    port = values.get("port")
    if isinstance(port, str) and port.split(",")[0].isdigit():
        port = int(port.split(",")[0])
    if isinstance(port, int) and not isinstance(port, bool):
        attributes["server.port"] = port
    namespace = values.get("dbname") or values.get("database") or values.get("db")
    if isinstance(namespace, str) and namespace:
        attributes["db.namespace"] = namespace
    return attributes


class _HasTelemetry(Protocol):
    telemetry: PoolTelemetry


class _Pool(Protocol):
    dbapiName: str
    connargs: tuple[Any, ...]
    connkw: dict[str, Any]
    name: str | None

    @property
    def context(self) -> _HasTelemetry: ...  # read-only here: a pool's PoolContext fits

    def statistics(self) -> Any: ...


class PoolTelemetry:
    """One pool's telemetry settings and fixed span attributes; made in the pool's ``__init__``.

    ``slowThreshold`` / ``leakThreshold`` are the checked ``cp_slow_threshold`` /
    ``cp_leak_threshold`` (None: off). Registers the pool with the observable
    instruments when the API is installed (the pool is held weakly).
    """

    __slots__ = ("__weakref__", "attributes", "clock", "connectionAttributes", "leakThreshold", "poolName",
                 "quiet", "slowThreshold", "system")

    def __init__(self, pool: Any, clock: Any, slowThreshold: float | None,
                 leakThreshold: float | None) -> None:
        self.slowThreshold = slowThreshold
        self.leakThreshold = leakThreshold
        #: no threshold set: only OpenTelemetry may want the calls
        self.quiet = slowThreshold is None and leakThreshold is None
        self.clock = clock
        self.system = _system(pool.dbapiName)
        self.poolName: str | None = None  # statistics().name, read at the first traced call
        #: the attributes of the connection wait/use times (set with poolName)
        self.connectionAttributes: dict[str, Any] = {"db.system.name": self.system}
        self.attributes: dict[str, Any] = {
            "db.system.name": self.system,
            "db.system": self.system,
            **_serverAttributes(pool.connargs, pool.connkw),
        }
        if _loadOtel() is not None:
            _pools[pool] = self



def _statement(args: tuple[Any, ...], kw: dict[str, Any] | None) -> str | None:
    statement = args[0] if args else (kw or {}).get("operation", (kw or {}).get("sql"))
    return statement if isinstance(statement, str) else None


def _describe(operation: str, args: tuple[Any, ...], kw: dict[str, Any] | None) -> tuple[str, str | None]:
    """(db.operation.name, db.query.text) of a call: the statement's first keyword for runQuery and
    runOperation, the pool method's name for the others."""
    if operation in ("runQuery", "runOperation"):
        statement = _statement(args, kw)
        if statement is not None:
            match = _KEYWORD.match(statement)
            return (match.group(1).upper() if match else operation), statement
        return operation, None
    return operation, None


def _funcName(args: tuple[Any, ...]) -> str:
    func = args[0] if args else None
    return str(getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or repr(func))


_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep
_STACK_DEPTH = 16  # innermost frames a leak log shows, ending at the caller's line


def _callerStack() -> traceback.StackSummary:
    """The current stack without its innermost frames in adbapi: it ends at the line that called the pool."""
    stack = traceback.extract_stack()
    end = len(stack)
    while end > 0 and os.path.abspath(stack[end - 1].filename).startswith(_PACKAGE):
        end -= 1
    return traceback.StackSummary.from_list(stack[max(0, end - _STACK_DEPTH):end])


class _Call:
    """One call being traced/timed, from its submission to its result (reactor thread).

    ``pooled`` is the pool's own call (``adbapi._call._Call``) when it is a
    ``run*`` call observed before its dispatch: the slot that starts it stamps
    ``pooled.startedAt`` (it was marked ``timed``), which splits the call's time
    into its connection wait and use (:meth:`finish`).
    """

    __slots__ = ("attributes", "description", "leakTimer", "otel", "pooled", "span", "stack", "started",
                 "telemetry")

    def __init__(self, telemetry: PoolTelemetry, description: str, attributes: dict[str, Any],
                 span: Any, watchLeak: bool, otel: _Otel | None = None, pooled: Any = None) -> None:
        self.telemetry = telemetry
        self.description = description
        self.attributes = attributes
        self.span = span
        self.otel = otel
        self.pooled = pooled
        self.started = telemetry.clock.seconds()
        self.leakTimer: Any = None
        self.stack: Any = None
        if watchLeak and telemetry.leakThreshold is not None:
            self.armLeak()

    def armLeak(self) -> None:
        threshold = self.telemetry.leakThreshold
        assert threshold is not None
        self.stack = _callerStack()  # where the pool method was called
        self.leakTimer = self.telemetry.clock.callLater(threshold, self.leaked, threshold)

    def leaked(self, threshold: float) -> None:
        self.leakTimer = None
        _leakLog.warning(
            "%s has held its connection for more than %.3fs (cp_leak_threshold); it was taken at:\n%s",
            self.description, threshold, "".join(traceback.format_list(self.stack)),
        )

    def watch(self, d: Deferred[_T]) -> Deferred[_T]:
        """Finish this record when ``d`` fires; ``d``'s result is passed on unchanged (reactor thread)."""

        def ended(result: object) -> object:
            self.finish(result.value if isinstance(result, Failure) else None, self.otel)
            return result

        d.addBoth(ended)
        return d

    def finish(self, error: BaseException | None, otel: _Otel | None) -> None:
        timer, self.leakTimer = self.leakTimer, None
        if timer is not None and timer.active():
            timer.cancel()
        elapsed = self.telemetry.clock.seconds() - self.started
        slow = self.telemetry.slowThreshold
        if slow is not None and elapsed >= slow:
            _slowLog.warning(
                "slow call: %s took %.3fs (cp_slow_threshold %.3fs)", self.description, elapsed, slow
            )
        errorType = None if error is None else f"{type(error).__module__}.{type(error).__qualname__}"
        if self.span is not None:
            if errorType is not None:
                self.span.set_attribute("error.type", errorType)
                code = getattr(error, "pgcode", None) or getattr(error, "sqlstate", None)
                if isinstance(code, str):
                    self.span.set_attribute("db.response.status_code", code)
                assert otel is not None
                status, errorCode = otel.status
                self.span.set_status(status(errorCode, type(error).__name__))
            self.span.end()
        if otel is not None and otel.metering():
            attributes = self.attributes
            if errorType is not None:
                attributes = {**attributes, "error.type": errorType}
            otel.durations.record(elapsed, attributes)
            pooled = self.pooled
            if pooled is not None:
                # Stamped by the slot that started the call (its last attempt, after a retry); None if it
                # never got a connection (refused, timed out, cancelled while waiting or in its backoff).
                startedAt = pooled.startedAt
                if startedAt is not None:
                    connection = self.telemetry.connectionAttributes
                    otel.waitTime.record(max(0.0, startedAt - self.started), connection)
                    otel.useTime.record(max(0.0, self.started + elapsed - startedAt), connection)


def _begin(pool: _Pool, operation: str, args: tuple[Any, ...], kw: dict[str, Any] | None,
           watchLeak: bool, pooled: Any = None) -> tuple[_Call | None, _Otel | None]:
    telemetry = pool.context.telemetry
    otel = _otel if _otel is not _UNSET else _loadOtel()
    tracer = otel.tracerNow() if otel is not None else None
    metering = otel is not None and otel.metering()
    if tracer is None and telemetry.quiet and not metering:
        return None, otel
    opName, statement = _describe(operation, args, kw)
    attributes = {**telemetry.attributes, "db.operation.name": opName}
    name = telemetry.poolName
    if name is None:
        name = telemetry.poolName = str(pool.statistics().name)
        telemetry.connectionAttributes = {"db.client.connection.pool.name": name,
                                          "db.system.name": telemetry.system}
    if statement is not None:
        description = f"{operation} on {name}: {statement}"
    elif args:
        description = f"{operation}({_funcName(args)}) on {name}"
    else:
        description = f"{operation} on {name}"
    span = None
    if tracer is not None:
        spanAttributes = {**attributes, "db.client.connection.pool.name": name}
        if statement is not None:
            spanAttributes["db.query.text"] = statement
        span = tracer.start_span(opName, kind=otel.spanKind, attributes=spanAttributes)  # type: ignore[union-attr]
    if pooled is not None and metering:
        pooled.timed = True  # its slot stamps when it starts it: the wait and use times need it
    return _Call(telemetry, description, attributes, span, watchLeak, otel, pooled), otel


def _unobserved() -> bool:
    """The quick test of the hot path: True when OpenTelemetry is absent or has no provider set at all."""
    otel = _otel
    if otel is None:
        return True
    return (otel is not _UNSET and otel.fast and otel.trace._TRACER_PROVIDER is None
            and otel.metricsState._METER_PROVIDER is None)


def traced(pool: Any, operation: str, args: tuple[Any, ...], d: Deferred[_T],
           kw: dict[str, Any] | None = None) -> Deferred[_T]:
    """Trace, time and (for interactions) leak-watch the call whose Deferred ``d`` a pool method made.

    Call it in the reactor thread, as the method returns: ``operation`` is the
    method's name, ``args``/``kw`` what it was given (only the statement, or the
    function's name, is read). Returns ``d``, with an observer added when anything
    watches; ``d``'s result is passed on unchanged.
    """
    if pool.context.telemetry.quiet and _unobserved():
        return d
    call, _ = _begin(pool, operation, args, kw, operation in ("runInteraction", "runWithConnection"))
    if call is None:
        return d
    return call.watch(d)


def observe(pool: Any, operation: str, args: tuple[Any, ...], kw: dict[str, Any] | None,
            pooled: Any) -> _Call | None:
    """:func:`traced` for a ``run*`` call the pool is about to dispatch: None when nothing watches.

    Call it in the reactor thread before ``pooled`` (the pool's ``_Call``) is
    dispatched; then, once any timeout is on its Deferred, ``watch`` that
    Deferred with the record returned. Observed before its dispatch, the call is
    timed from its submission, and with an SDK's meter installed it is marked
    ``timed``, so the slot that starts it stamps the moment
    (``pooled.startedAt``): the record then splits its time into the connection
    wait and use times. Costs one cheap check when nothing watches.
    """
    if pool.context.telemetry.quiet and _unobserved():
        return None
    call, _ = _begin(pool, operation, args, kw, operation in ("runInteraction", "runWithConnection"), pooled)
    return call


class _TracedTransaction:
    """An ``AsyncTransaction`` observed from its ``async with``: the span covers the block, the leak timer
    and the use time start when the transaction holds its connection. ``as`` gives the transaction itself,
    and every other attribute is the transaction's."""

    def __init__(self, transaction: Any, pool: Any) -> None:
        self._transaction = transaction
        self._pool = pool
        self._call: _Call | None = None
        self._otel: _Otel | None = None
        self._held = 0.0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transaction, name)

    async def __aenter__(self) -> Any:
        call, otel = _begin(self._pool, "transaction", (), None, False)
        self._call, self._otel = call, otel
        try:
            entered = await self._transaction.__aenter__()
        except BaseException as e:
            if call is not None:
                call.finish(e, otel)
            raise
        if call is not None:
            self._held = call.telemetry.clock.seconds()
            if otel is not None and otel.metering():
                otel.waitTime.record(self._held - call.started, call.telemetry.connectionAttributes)
            if call.telemetry.leakThreshold is not None:
                call.armLeak()
        return entered

    async def __aexit__(self, excType: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> bool | None:
        call, otel = self._call, self._otel
        error: BaseException | None = exc
        try:
            result: bool | None = await self._transaction.__aexit__(excType, exc, tb)
        except BaseException as e:
            error = e
            raise
        finally:
            if call is not None:
                if otel is not None and otel.metering():
                    otel.useTime.record(call.telemetry.clock.seconds() - self._held,
                                        call.telemetry.connectionAttributes)
                call.finish(error, otel)
        return result


def tracedTransaction(pool: Any, transaction: _T) -> _T:
    """``transaction`` (an ``AsyncTransaction`` just made by ``pool.transaction()``), observed when anything
    watches (a span, a threshold), else unchanged (reactor thread)."""
    quiet = pool.context.telemetry.quiet
    if quiet and _unobserved():
        return transaction
    otel = _otel if _otel is not _UNSET else _loadOtel()
    if quiet and (otel is None or (otel.tracerNow() is None and not otel.metering())):
        return transaction
    traced: Any = _TracedTransaction(transaction, pool)
    return traced  # type: ignore[no-any-return]
