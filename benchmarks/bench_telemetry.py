"""What the OpenTelemetry instrumentation costs: absent, present but unconfigured, and exporting.

Three states of one process, switched between interleaved rounds:

* ``OTel absent``: the library behaves as if ``opentelemetry-api`` were not installed
  (``_forceAbsent(True)``: the hooks find no API, as after a failed import);
* ``OTel unconfigured``: the API is there, no SDK set up (its proxy providers), no
  threshold set: each hook reads the two global providers and returns;
* ``OTel exporting``: the SDK's ``TracerProvider`` (a ``SimpleSpanProcessor`` into an
  in-memory exporter) and ``MeterProvider`` (an in-memory reader): a span and a
  histogram value per pool call.

Workloads: adbapi ``runQuery("SELECT 1")`` on SQLite, awaited one after another (the
hook runs per call); ``deferToThread`` in bursts (deferthreads adds little per call: its
metrics are observable ones, read only at collection, but for the wait-time histogram, which a
worker records per call only while an SDK is installed); and the hook alone
(``observe``, what a run* call passes through before its dispatch) to show its cost in nanoseconds.
Ratios are to the absent case: unconfigured should be within noise of it (target
0.9x); exporting costs what the SDK does.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from adbapi import ConnectionPool
from adbapi import _telemetry as adbapitelemetry
from benchmarks._harness import Comparison, Target, compare
from deferthreads import _telemetry as threadstelemetry
from deferthreads import deferToThreadPool, getThreadPool
from reactor import Deferred, gatherResults, succeed
from reactor._loop import Reactor

ABSENT, UNCONFIGURED, EXPORTING = "OTel absent", "OTel unconfigured", "OTel exporting"


class _Modes:
    """Switches the process between the three states (between rounds, while nothing runs)."""

    def __init__(self) -> None:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        self.exporter = InMemorySpanExporter()
        self.tracerProvider = TracerProvider()
        self.tracerProvider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meterProvider = MeterProvider(metric_readers=[self.reader])

    @staticmethod
    def _unset() -> None:
        # The API sets its global providers once per process; the benchmark (as the tests) undoes that.
        from opentelemetry import trace
        from opentelemetry.metrics import _internal as otelmetrics
        from opentelemetry.util._once import Once

        trace._TRACER_PROVIDER_SET_ONCE = Once()
        trace._TRACER_PROVIDER = None
        otelmetrics._METER_PROVIDER_SET_ONCE = Once()
        otelmetrics._METER_PROVIDER = None
        # The API's proxy provider keeps the provider it was last given: a fresh one, so that nothing
        # made after this benchmark asks our (shut down) MeterProvider for a meter.
        otelmetrics._PROXY_METER_PROVIDER = otelmetrics._ProxyMeterProvider()

    def set(self, mode: str) -> None:
        from opentelemetry import metrics, trace

        self._unset()
        self.exporter.clear()
        adbapitelemetry._forceAbsent(mode == ABSENT)
        threadstelemetry._forceAbsent(mode == ABSENT)
        if mode == EXPORTING:
            trace.set_tracer_provider(self.tracerProvider)
            metrics.set_meter_provider(self.meterProvider)


class _LoopThread:
    """Our reactor in a daemon thread; ``roundTrip(start)`` runs ``start(done)`` there and waits."""

    def __init__(self) -> None:
        self.reactor = Reactor()
        started = threading.Event()
        self.reactor.callWhenRunning(started.set)
        self._thread = threading.Thread(
            target=lambda: self.reactor.run(installSignalHandlers=False), daemon=True, name="bench-loop"
        )
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError("the benchmark reactor did not start")

    def roundTrip(self, start: Callable[[Callable[[], None]], None]) -> None:
        finished = threading.Event()
        self.reactor.callFromThread(lambda: start(finished.set))
        if not finished.wait(120):
            raise RuntimeError("benchmark round did not finish")

    def stop(self) -> None:
        self.reactor.callFromThread(self.reactor.stop)
        self._thread.join(30)


def _ratios(base: Comparison, ops: int) -> list[Comparison]:
    """The unconfigured and exporting sides of ``base`` each as a comparison against the absent side."""
    out = []
    for side, targets in ((UNCONFIGURED, [Target(ABSENT, 0.9)]), (EXPORTING, [])):
        derived = Comparison(
            name=f"{base.name}: {side} vs absent", ops=ops,
            opsPerSecond={side: base.opsPerSecond[side], ABSENT: base.opsPerSecond[ABSENT]},
            ours=side, targets=targets,
        )
        print("\n".join(derived.lines()), flush=True)
        out.append(derived)
    return out


def run(quick: bool) -> list[Comparison]:
    queryN = 1_000 if quick else 10_000
    burstN = 2_000 if quick else 20_000
    hookN = 20_000 if quick else 200_000
    rounds = 3 if quick else 7
    modes = _Modes()
    loop = _LoopThread()
    box: dict[str, Any] = {}
    directory = tempfile.TemporaryDirectory()

    def setUp(done: Callable[[], None]) -> None:
        box["pool"] = ConnectionPool(
            "sqlite3", str(Path(directory.name) / "bench.sqlite"), check_same_thread=False,
            cp_min=1, cp_max=1, cp_reactor=loop.reactor,
        )
        done()

    modes.set(UNCONFIGURED)
    loop.roundTrip(setUp)
    pool: ConnectionPool = box["pool"]
    results: list[Comparison] = []

    def inMode(mode: str, body: Callable[[Callable[[], None]], None]) -> Callable[[], None]:
        def side() -> None:
            modes.set(mode)
            loop.roundTrip(body)

        return side

    try:

        def queries(done: Callable[[], None]) -> None:
            async def body() -> None:
                for _ in range(queryN):
                    await pool.runQuery("SELECT 1")
                done()

            Deferred.fromCoroutine(body())

        base = compare(
            f"telemetry: adbapi runQuery on SQLite, {queryN:,} awaited one by one",
            {mode: inMode(mode, queries) for mode in (ABSENT, UNCONFIGURED, EXPORTING)},
            ops=queryN, rounds=rounds, ours=ABSENT,
        )
        results.extend(_ratios(base, queryN))

        def burst(done: Callable[[], None]) -> None:
            # deferToThread's path on this (non-default) reactor: its shared pool.
            reactor = loop.reactor
            shared = getThreadPool(reactor)
            calls = [deferToThreadPool(reactor, shared, int) for _ in range(burstN)]
            gatherResults(calls).addCallback(lambda _: done())

        base = compare(
            f"telemetry: deferToThread, bursts of {burstN:,}",
            {mode: inMode(mode, burst) for mode in (ABSENT, UNCONFIGURED, EXPORTING)},
            ops=burstN, rounds=rounds, ours=ABSENT,
        )
        results.extend(_ratios(base, burstN))

        fired: Deferred[int] = succeed(1)
        args = ("SELECT 1",)

        NO_HOOK = "no hook (a bare call)"

        def bare(pool: Any, operation: str, args: tuple[Any, ...], d: Deferred[int]) -> Deferred[int]:
            return d

        def observed(pool: Any, operation: str, args: tuple[Any, ...], d: Deferred[int]) -> Deferred[int]:
            # The hook a run* call goes through before its dispatch (the modes timed here never get past
            # its first check, so no pool call object is needed).
            adbapitelemetry.observe(pool, operation, args, None, None)
            return d

        def hookSide(mode: str) -> Callable[[], float]:
            traced = bare if mode == NO_HOOK else observed

            def loopOfHooks(done: Callable[[], None]) -> None:
                # Only the hook, in the reactor thread, on a Deferred already fired (nothing runs later).
                start = time.perf_counter()
                for _ in range(hookN):
                    traced(pool, "runQuery", args, fired)
                box["hook"] = time.perf_counter() - start
                done()

            def side() -> float:
                modes.set(ABSENT if mode == NO_HOOK else mode)
                loop.roundTrip(loopOfHooks)
                return float(box["hook"])

            return side

        base = compare(
            f"telemetry: the runQuery hook alone, {hookN:,} calls",
            {mode: hookSide(mode) for mode in (ABSENT, UNCONFIGURED, NO_HOOK)},
            ops=hookN, rounds=rounds, ours=ABSENT,
        )
        ns = {mode: 1e9 / base.opsPerSecond[mode] for mode in base.opsPerSecond}
        print(f"    per call: bare call {ns[NO_HOOK]:.0f} ns, absent {ns[ABSENT]:.0f} ns, "
              f"unconfigured {ns[UNCONFIGURED]:.0f} ns")
        for mode in (ABSENT, UNCONFIGURED):
            results.append(Comparison(
                name=f"telemetry: the runQuery hook alone, {mode} ({ns[mode]:.0f} ns a call) vs a bare call "
                f"({ns[NO_HOOK]:.0f} ns)",
                ops=hookN, ours=mode,
                opsPerSecond={mode: base.opsPerSecond[mode], NO_HOOK: base.opsPerSecond[NO_HOOK]},
            ))
    finally:
        done = threading.Event()
        loop.reactor.callFromThread(lambda: pool.close().addBoth(lambda _: done.set()))
        done.wait(30)
        loop.stop()
        directory.cleanup()
        modes.set(UNCONFIGURED)
        modes.meterProvider.shutdown()
        modes.tracerProvider.shutdown()
    return results
