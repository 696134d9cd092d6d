"""OpenTelemetry metrics of the thread pools, and leak detection for :class:`ResourcePool`.

Native instrumentation: the pools call the OpenTelemetry *API* themselves, so their
metrics appear as soon as the application installs an SDK's ``MeterProvider``; nothing
of ours needs calling. ``opentelemetry-api`` is optional (the ``[otel]`` extra): it is
imported once, the first time a pool is made, and when it is absent nothing further
happens.

What a pool pays: being added to a ``WeakSet`` when it is made. The instruments are
*observable* ones whose callbacks read each live pool's ``statistics()`` only when a
metric reader collects, so a process without an SDK never runs them. The one
exception is the ``deferthreads.pool.wait_time`` histogram (each call's time in the
queue): a worker asks whether an SDK is installed each time it starts on the queue
(a global read), and records each call's wait only then.

Leak detection (``ResourcePool(leakThreshold=...)``, HikariCP's
``leakDetectionThreshold``): a call that holds its worker's resource longer than the
threshold is logged once, at WARNING on the ``deferthreads.leaks`` logger, with the
stack where ``run()`` was called. Off (``None``) by default, and then ``run()`` does
nothing more than before.
"""

from __future__ import annotations

import importlib
import logging
import os
import traceback
import weakref
from collections.abc import Callable, Iterable
from typing import Any, Protocol

__all__ = ["LeakWatch", "WaitRecorder", "callerStack", "openTelemetry", "registerPool"]

_leakLog = logging.getLogger("deferthreads.leaks")

_UNSET: Any = object()
# Module state, written once (under the GIL; a race would only import twice): the OpenTelemetry API's
# metrics module, or None when it is absent or forced absent (the benchmark's "absent" case).
_otelMetrics: Any = _UNSET
_forcedAbsent = False
_instrumented = False
_waitHistogram: Any = None  # made with the other instruments
_metricsState: Any = None  # opentelemetry.metrics._internal, when it has the provider global
# live pool -> (its kind, its name)
_pools: weakref.WeakKeyDictionary[Any, tuple[str, str]] = weakref.WeakKeyDictionary()


def _forceAbsent(absent: bool) -> None:
    """Behave as if ``opentelemetry-api`` were not installed (True), or look again (False); for benchmarks
    and tests, in the reactor thread, before pools are made."""
    global _otelMetrics, _forcedAbsent, _instrumented
    _forcedAbsent = absent
    _otelMetrics = _UNSET
    _instrumented = False  # the instruments are made again, on the meter provider set by then


def openTelemetry() -> Any:
    """The ``opentelemetry.metrics`` module, imported on first use, or None when it is not installed."""
    global _otelMetrics
    if _otelMetrics is _UNSET:
        if _forcedAbsent:
            _otelMetrics = None
        else:
            try:
                from opentelemetry import metrics
            except ImportError:
                _otelMetrics = None
            else:
                _otelMetrics = metrics
    return _otelMetrics


class _StatsPool(Protocol):
    def statistics(self) -> Any: ...


#: What a pool's team asks, each time a worker starts on the queue: the function that records one call's
#: wait in the queue (seconds), or None while no SDK would receive it.
WaitRecorder = Callable[[], "Callable[[float], object] | None"]


def registerPool(pool: _StatsPool, kind: str, name: str) -> WaitRecorder | None:
    """Make ``pool``'s statistics observable (any thread; called as a pool is made).

    ``kind`` is ``"threadpool"`` or ``"resourcepool"``, the ``deferthreads.pool.kind``
    attribute of its data points, ``name`` their ``deferthreads.pool.name``. The pool
    is held weakly: a collected pool leaves the metrics.

    Returns None when OpenTelemetry is absent; else the pool's :data:`WaitRecorder`
    for its team (the ``deferthreads.pool.wait_time`` histogram).
    """
    if openTelemetry() is None:
        return None
    _pools[pool] = (kind, name)
    if not _instrumented:
        _instrument()
    attributes = {"deferthreads.pool.name": name, "deferthreads.pool.kind": kind}

    def record(waited: float) -> None:
        # The module's histogram of the moment (made again when a test or benchmark resets the API).
        _waitHistogram.record(waited, attributes)

    def recorderNow() -> Callable[[float], object] | None:
        return record if _metering() else None

    return recorderNow


def _metering() -> bool:
    """True while an SDK's meter provider is installed (any thread; cheap: a module global read)."""
    metrics = _otelMetrics
    if metrics is None or metrics is _UNSET:  # absent, or being looked up again (_forceAbsent)
        return False
    state = _metricsState
    if state is not None:
        provider = state._METER_PROVIDER  # the provider set_meter_provider() installed, None before
    else:  # an API without that global: the public way
        provider = metrics.get_meter_provider()
        if type(provider).__name__ == "_ProxyMeterProvider":
            provider = None
    return provider is not None and not isinstance(provider, metrics.NoOpMeterProvider)


def _instrument() -> None:
    """Create the observable instruments once, on the global meter provider (a proxy until the SDK sets
    one, which then takes them over)."""
    global _instrumented, _waitHistogram, _metricsState
    _instrumented = True
    try:
        _metricsState = importlib.import_module("opentelemetry.metrics._internal")
        if not hasattr(_metricsState, "_METER_PROVIDER"):
            _metricsState = None
    except ImportError:
        _metricsState = None
    meter = _otelMetrics.get_meter("deferthreads")
    _waitHistogram = meter.create_histogram(
        "deferthreads.pool.wait_time",
        unit="s",
        description="Time each call waited in the queue before a worker started it.",
        explicit_bucket_boundaries_advisory=[0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0],
    )
    observation = _otelMetrics.Observation

    def observe(read: Callable[[Any], Iterable[tuple[float, dict[str, str]]]]) -> Callable[[Any], list[Any]]:
        def callback(options: Any) -> list[Any]:
            out = []
            for pool, (kind, name) in list(_pools.items()):
                try:
                    stats = pool.statistics()
                except Exception:  # a pool mid-teardown must not break the whole collection
                    continue
                base = {"deferthreads.pool.name": name, "deferthreads.pool.kind": kind}
                for value, extra in read(stats):
                    out.append(observation(value, {**base, **extra}))
            return out

        return callback

    meter.create_observable_up_down_counter(
        "deferthreads.pool.queue.depth",
        [observe(lambda s: [(s.queued, {})])],
        unit="{call}",
        description="Calls waiting for a worker.",
    )
    meter.create_observable_up_down_counter(
        "deferthreads.pool.workers",
        [observe(lambda s: [(s.busy, {"state": "busy"}), (s.idle, {"state": "idle"})])],
        unit="{thread}",
        description="Worker threads by state: busy running a call, idle waiting for one.",
    )
    meter.create_observable_gauge(
        "deferthreads.pool.queue.longest_wait",
        [observe(lambda s: [(s.longestQueueWait, {})])],
        unit="s",
        description="The longest time any call waited in the queue before a worker started it.",
    )
    meter.create_observable_counter(
        "deferthreads.pool.calls",
        [observe(lambda s: [(s.completed, {"outcome": "completed"}), (s.failed, {"outcome": "failed"}),
                            (s.cancelled, {"outcome": "cancelled"}), (s.rejected, {"outcome": "rejected"})])],
        unit="{call}",
        description="Calls by outcome since the pool was made.",
    )


class _Clock(Protocol):
    def seconds(self) -> float: ...

    def callLater(self, delay: float, f: Callable[..., object], /, *args: Any, **kwargs: Any) -> Any: ...


_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep
_STACK_DEPTH = 16  # innermost frames a leak log shows, ending at the caller's line


def callerStack() -> traceback.StackSummary:
    """The current stack without its innermost frames in this package: it ends at the line that called
    into deferthreads (the line a leak log points at)."""
    stack = traceback.extract_stack()
    end = len(stack)
    while end > 0 and os.path.abspath(stack[end - 1].filename).startswith(_PACKAGE):
        end -= 1
    return traceback.StackSummary.from_list(stack[max(0, end - _STACK_DEPTH):end])


class LeakWatch:
    """One call watched for holding its resource past ``threshold`` seconds of ``clock``.

    Made in the reactor thread when the call is submitted; :meth:`wrap` gives the
    function the worker runs instead, which notes (in the worker, on ``clock``) when the
    call got its resource. The timer runs in the reactor thread: it fires ``threshold``
    after submission and, while the call still waits for a worker, re-arms itself, so
    only the time the resource is held counts. Logged at most once.
    """

    __slots__ = ("clock", "description", "stack", "started", "threshold", "timer")

    def __init__(self, clock: _Clock, threshold: float, description: str) -> None:
        self.clock = clock
        self.threshold = threshold
        self.description = description
        self.stack = callerStack()
        self.started: float | None = None  # written once by the worker, read by the reactor thread
        self.timer: Any = clock.callLater(threshold, self._check)

    def wrap(self, f: Callable[..., Any]) -> Callable[..., Any]:
        """``f`` noting the time it starts (in the worker) before it runs."""

        def watched(*args: Any, **kwargs: Any) -> Any:
            self.started = self.clock.seconds()
            return f(*args, **kwargs)

        return watched

    def _check(self) -> None:
        now = self.clock.seconds()
        started = self.started
        if started is None:
            self.timer = self.clock.callLater(self.threshold, self._check)
            return
        held = now - started
        if held < self.threshold:
            self.timer = self.clock.callLater(self.threshold - held, self._check)
            return
        self.timer = None
        _leakLog.warning(
            "%s has held its resource for %.3fs (leakThreshold %.3fs); it was taken at:\n%s",
            self.description, held, self.threshold, "".join(traceback.format_list(self.stack)),
        )

    def done(self, result: object) -> object:
        """The call ended (its Deferred fired, reactor thread): stop watching; passes ``result`` on."""
        timer, self.timer = self.timer, None
        if timer is not None and timer.active():
            timer.cancel()
        return result

