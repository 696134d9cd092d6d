"""OpenTelemetry spans and metrics of the pools, the slow-call log and leak detection.

Spans and metrics are read through the SDK's in-memory span exporter and metric reader,
installed as the global providers for one test and removed after it (as
opentelemetry-test-utils does), so the "no SDK configured" path is tested in the same
process. Time-based behaviour runs on a ``Clock``; workers are awaited on events.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import metrics, trace
from opentelemetry.metrics import _internal as otelmetrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.util._once import Once

import adbapi
import deferthreads
from adbapi import _telemetry as adbapitelemetry
from adbapi._call import _Call
from adbapi._dispatch import CallKind
from deferthreads import _telemetry as threadstelemetry
from reactor import CancelledError
from reactor.task import Clock

BOUND = 10.0  # seconds any wait for a worker may take


class Sdk:
    """The SDK installed for one test: its finished spans and its metrics, by name."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.reader = InMemoryMetricReader()
        self.tracerProvider = TracerProvider()
        self.tracerProvider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.meterProvider = MeterProvider(metric_readers=[self.reader])

    def spans(self, name: str | None = None) -> list[ReadableSpan]:
        return [s for s in self.exporter.get_finished_spans() if name is None or s.name == name]

    def points(self, metric: str) -> list[Any]:
        """The data points of ``metric`` at one collection."""
        found: list[Any] = []
        data = self.reader.get_metrics_data()
        for resourceMetrics in data.resource_metrics if data else []:
            for scopeMetrics in resourceMetrics.scope_metrics:
                for m in scopeMetrics.metrics:
                    if m.name == metric:
                        found.extend(m.data.data_points)
        return found


def _resetGlobals() -> None:
    # The API lets a process set its providers once; tests undo that (opentelemetry-test-utils does the same).
    trace._TRACER_PROVIDER_SET_ONCE = Once()
    trace._TRACER_PROVIDER = None
    otelmetrics._METER_PROVIDER_SET_ONCE = Once()
    otelmetrics._METER_PROVIDER = None
    # The proxy provider remembers the last real one; a fresh proxy forgets a provider the test shut down.
    otelmetrics._PROXY_METER_PROVIDER = otelmetrics._ProxyMeterProvider()
    # Our instruments are made again on the providers in place at the next pool.
    adbapitelemetry._forceAbsent(False)
    threadstelemetry._forceAbsent(False)


@pytest.fixture(name="sdk")
def sdkFixture() -> Iterator[Sdk]:
    """An SDK with in-memory exporters, the global tracer and meter provider during the test."""
    _resetGlobals()
    sdk = Sdk()
    trace.set_tracer_provider(sdk.tracerProvider)
    metrics.set_meter_provider(sdk.meterProvider)
    yield sdk
    _resetGlobals()
    sdk.meterProvider.shutdown()
    sdk.tracerProvider.shutdown()


@pytest.fixture(name="noSdk")
def noSdkFixture() -> Iterator[None]:
    """The API installed but no SDK configured (its proxy providers)."""
    _resetGlobals()
    yield
    _resetGlobals()


def _signalThenWait(started: threading.Event, release: threading.Event) -> None:
    """A worker's call: say it started, then hold the worker until released (bounded)."""
    started.set()
    release.wait(BOUND)


def _pool(tmp_path: Path, **kw: Any) -> adbapi.ConnectionPool:
    kw.setdefault("cp_min", 1)
    kw.setdefault("cp_max", 2)
    return adbapi.ConnectionPool("sqlite3", str(tmp_path / "t.sqlite"), check_same_thread=False, **kw)


# -- spans -------------------------------------------------------------------------------------------


async def test_runQueryMakesOneClientSpanWithTheDatabaseAttributes(sdk: Sdk, tmp_path: Path) -> None:
    """runQuery's span is a CLIENT span named for the operation, with the statement and no parameter value."""
    pool = _pool(tmp_path)
    try:
        assert await pool.runQuery("SELECT ? || 'x'", ("secret-value",)) == [("secret-valuex",)]
    finally:
        await pool.close()
    [span] = sdk.spans("SELECT")
    assert span.kind is trace.SpanKind.CLIENT
    attributes = dict(span.attributes or {})
    assert attributes["db.system.name"] == "sqlite"
    assert attributes["db.operation.name"] == "SELECT"
    assert attributes["db.query.text"] == "SELECT ? || 'x'"
    assert "secret-value" not in repr(attributes)
    assert span.status.status_code is trace.StatusCode.UNSET


async def test_poolSpanIsAChildOfTheCallersCurrentSpan(sdk: Sdk, tmp_path: Path) -> None:
    """A call made inside the caller's span is traced as that span's child."""
    pool = _pool(tmp_path)
    tracer = trace.get_tracer("test")
    try:
        with tracer.start_as_current_span("handler") as parent:
            d = pool.runOperation("CREATE TABLE t (v INTEGER)")
        await d
    finally:
        await pool.close()
    [span] = sdk.spans("CREATE")
    assert span.parent is not None
    assert span.parent.span_id == parent.get_span_context().span_id
    assert span.context.trace_id == parent.get_span_context().trace_id


async def test_failedCallSetsErrorTypeAndErrorStatus(sdk: Sdk, tmp_path: Path) -> None:
    """A call that fails ends its span with error.type (the exception's class) and ERROR status."""
    import sqlite3

    pool = _pool(tmp_path)
    try:
        with pytest.raises(sqlite3.OperationalError):
            await pool.runQuery("SELECT * FROM missing_table")
    finally:
        await pool.close()
    [span] = sdk.spans("SELECT")
    assert dict(span.attributes or {})["error.type"] == "sqlite3.OperationalError"
    assert span.status.status_code is trace.StatusCode.ERROR


async def test_eachPoolCallKindMakesItsOwnSpan(sdk: Sdk, tmp_path: Path) -> None:
    """runOperation, runInteraction and runWithConnection each make one span named for what they run."""
    pool = _pool(tmp_path)
    try:
        await pool.runOperation("CREATE TABLE t (v INTEGER)")
        await pool.runInteraction(lambda txn: txn.execute("INSERT INTO t VALUES (1)"))
        await pool.runWithConnection(lambda conn: conn.cursor().execute("SELECT 1").fetchall())
    finally:
        await pool.close()
    names = [s.name for s in sdk.spans()]
    assert names == ["CREATE", "runInteraction", "runWithConnection"]
    operations = [dict(s.attributes or {})["db.operation.name"] for s in sdk.spans()]
    assert operations == names


async def test_asyncTransactionSpanCoversTheBlockAndRecordsWaitAndUseTime(sdk: Sdk, tmp_path: Path) -> None:
    """``async with pool.transaction()`` makes one span and records connection wait and use time."""
    pool = _pool(tmp_path)
    try:
        async with pool.transaction() as txn:
            assert isinstance(txn, adbapi.AsyncTransaction)
            await txn.execute("SELECT 1")
    finally:
        await pool.close()
    [span] = sdk.spans("transaction")
    assert span.status.status_code is trace.StatusCode.UNSET
    assert [p.count for p in sdk.points("db.client.connection.wait_time")] == [1]
    assert [p.count for p in sdk.points("db.client.connection.use_time")] == [1]


async def test_transactionBlockThatRaisesEndsItsSpanWithTheError(sdk: Sdk, tmp_path: Path) -> None:
    """A transaction block that raises is rolled back and its span carries the exception's type."""
    pool = _pool(tmp_path)
    try:
        with pytest.raises(KeyError):
            async with pool.transaction() as txn:
                await txn.execute("SELECT 1")
                raise KeyError("boom")
    finally:
        await pool.close()
    [span] = sdk.spans("transaction")
    assert dict(span.attributes or {})["error.type"] == "builtins.KeyError"


def test_serverAttributesComeFromTheConnectArgumentsWithoutAPassword() -> None:
    """server.address/port and db.namespace are read from a libpq DSN, a URL or keywords; no secret."""
    dsn = "host=db1,db2 port=6432 dbname=app password=hunter2"
    fromKeyValue = adbapitelemetry._serverAttributes((dsn,), {})
    assert fromKeyValue == {"server.address": "db1", "server.port": 6432, "db.namespace": "app"}
    fromUrl = adbapitelemetry._serverAttributes(("postgresql://u:hunter2@db.example:5433/shop",), {})
    assert fromUrl == {"server.address": "db.example", "server.port": 5433, "db.namespace": "shop"}
    fromKeywords = adbapitelemetry._serverAttributes((), {"host": "127.0.0.1", "port": 3306, "database": "t",
                                                          "password": "hunter2"})
    assert fromKeywords == {"server.address": "127.0.0.1", "server.port": 3306, "db.namespace": "t"}


async def test_postgresSpanNamesTheServer(sdk: Sdk, postgresDSN: str) -> None:
    """On PostgreSQL the span says postgresql and the server's address and port from the DSN."""
    pool = adbapi.ConnectionPool("psycopg2", postgresDSN, cp_min=1, cp_max=2)
    try:
        await pool.runQuery("SELECT 1")
    finally:
        await pool.close()
    [span] = sdk.spans("SELECT")
    attributes = dict(span.attributes or {})
    assert attributes["db.system.name"] == "postgresql"
    assert attributes["server.address"] == "127.0.0.1"
    assert attributes["server.port"] == 5432


# -- context across the thread hop --------------------------------------------------------------------


async def test_deferToThreadCarriesTheCallersSpanIntoTheWorker(sdk: Sdk) -> None:
    """A span started in deferToThread's worker is a child of the caller's current span."""
    tracer = trace.get_tracer("test")

    def work() -> None:
        with tracer.start_as_current_span("inWorker"):
            pass

    with tracer.start_as_current_span("caller") as parent:
        d = deferthreads.deferToThread(work)
    await d
    [span] = sdk.spans("inWorker")
    assert span.parent is not None and span.parent.span_id == parent.get_span_context().span_id


async def test_resourcePoolRunCarriesTheCallersSpanIntoTheWorker(sdk: Sdk) -> None:
    """A span started in ResourcePool.run's worker is a child of the caller's current span."""
    tracer = trace.get_tracer("test")
    pool: deferthreads.ResourcePool[int] = deferthreads.ResourcePool(lambda: 1, lambda r: None, maxthreads=1)

    def work(resource: int) -> None:
        with tracer.start_as_current_span("inWorker"):
            pass

    try:
        with tracer.start_as_current_span("caller") as parent:
            d = pool.run(work)
        await d
    finally:
        await pool.stop()
    [span] = sdk.spans("inWorker")
    assert span.parent is not None and span.parent.span_id == parent.get_span_context().span_id


async def test_spanInsideRunInteractionIsAChildOfTheCallersSpan(sdk: Sdk, tmp_path: Path) -> None:
    """A span started inside runInteraction's function is a child of the caller's current span."""
    tracer = trace.get_tracer("test")

    def work(txn: Any) -> None:
        with tracer.start_as_current_span("inWorker"):
            pass

    pool = _pool(tmp_path)
    try:
        with tracer.start_as_current_span("caller") as parent:
            d = pool.runInteraction(work)
        await d
    finally:
        await pool.close()
    [span] = sdk.spans("inWorker")
    assert span.parent is not None and span.parent.span_id == parent.get_span_context().span_id


# -- metrics ------------------------------------------------------------------------------------------


async def test_connectionPoolMetricsReadItsStatistics(sdk: Sdk, tmp_path: Path) -> None:
    """The pool's observable metrics show its connections by state, pending calls, timeouts, max and min."""
    pool = _pool(tmp_path, cp_name="metered", cp_min=1, cp_max=3)
    try:
        await pool.runQuery("SELECT 1")

        def mine(metric: str) -> list[Any]:
            return [p for p in sdk.points(metric)
                    if p.attributes.get("db.client.connection.pool.name") == "metered"]

        counts = mine("db.client.connection.count")
        states = {p.attributes["db.client.connection.state"]: p.value for p in counts}
        assert states == {"used": 0, "idle": pool.statistics().connectionsOpen}
        assert states["idle"] >= 1
        assert [p.value for p in mine("db.client.connection.pending_requests")] == [0]
        assert [p.value for p in mine("db.client.connection.timeouts")] == [0]
        assert [p.value for p in mine("db.client.connection.max")] == [3]
        assert [p.value for p in mine("db.client.connection.idle.min")] == [1]
    finally:
        await pool.close()


async def test_operationDurationHistogramCountsEachCall(sdk: Sdk, tmp_path: Path) -> None:
    """db.client.operation.duration records one value per call, by operation and error type."""
    import sqlite3

    pool = _pool(tmp_path)
    try:
        await pool.runQuery("SELECT 1")
        await pool.runQuery("SELECT 2")
        with pytest.raises(sqlite3.OperationalError):
            await pool.runQuery("SELECT * FROM missing_table")
    finally:
        await pool.close()
    counts = {(p.attributes["db.operation.name"], p.attributes.get("error.type")): p.count
              for p in sdk.points("db.client.operation.duration")}
    assert counts == {("SELECT", None): 2, ("SELECT", "sqlite3.OperationalError"): 1}


async def test_runCallsRecordConnectionWaitAndUseTimeWithThePoolsNameAndSystem(
    sdk: Sdk, tmp_path: Path
) -> None:
    """runQuery, runOperation, runInteraction and runWithConnection each record one wait and one use time,
    by db.client.connection.pool.name and db.system.name."""
    pool = _pool(tmp_path, cp_name="timed")
    try:
        await pool.runQuery("SELECT 1")
        await pool.runOperation("SELECT 1")
        await pool.runInteraction(lambda txn: None)
        await pool.runWithConnection(lambda conn: None)
    finally:
        await pool.close()
    expected = {"db.client.connection.pool.name": "timed", "db.system.name": "sqlite"}
    for metric in ("db.client.connection.wait_time", "db.client.connection.use_time"):
        [point] = sdk.points(metric)
        assert dict(point.attributes) == expected
        assert point.count == 4


async def test_waitTimeRunsToTheSlotsStartAndUseTimeFromThereToTheResult(sdk: Sdk, tmp_path: Path) -> None:
    """On the pool's Clock: a call queued behind a busy worker waits until that worker takes it, and uses
    its connection from then until its result."""
    clock = Clock()
    pool = _pool(tmp_path, cp_clock=clock, cp_min=1, cp_max=1)
    firstStarted, firstRelease = threading.Event(), threading.Event()
    secondStarted, secondRelease = threading.Event(), threading.Event()

    def hold(txn: Any, started: threading.Event, release: threading.Event) -> None:
        started.set()
        assert release.wait(BOUND)

    try:
        first = pool.runInteraction(hold, firstStarted, firstRelease)  # starts at 0
        assert firstStarted.wait(BOUND)
        second = pool.runInteraction(hold, secondStarted, secondRelease)  # submitted at 0, queued
        clock.advance(3)
        firstRelease.set()  # the worker takes the second call at 3
        await first  # fires at 3: used 3
        assert secondStarted.wait(BOUND)
        clock.advance(2)
        secondRelease.set()
        await second  # fires at 5: waited 3, used 2
    finally:
        firstRelease.set()
        secondRelease.set()
        await pool.close()
    [wait] = sdk.points("db.client.connection.wait_time")
    assert (wait.count, wait.sum, wait.min, wait.max) == (2, 3.0, 0.0, 3.0)
    [use] = sdk.points("db.client.connection.use_time")
    assert (use.count, use.sum, use.min, use.max) == (2, 5.0, 2.0, 3.0)


async def test_aCallCancelledWhileWaitingRecordsNoWaitOrUseTime(sdk: Sdk, tmp_path: Path) -> None:
    """A call that never got a connection records its duration but no connection wait or use time."""
    pool = _pool(tmp_path, cp_min=1, cp_max=1)
    started, release = threading.Event(), threading.Event()

    def hold(txn: Any) -> None:
        started.set()
        assert release.wait(BOUND)

    try:
        first = pool.runInteraction(hold)
        assert started.wait(BOUND)
        waiting = pool.runQuery("SELECT 1")
        waiting.cancel()
        with pytest.raises(CancelledError):
            await waiting
        release.set()
        await first
    finally:
        release.set()
        await pool.close()
    assert [p.count for p in sdk.points("db.client.connection.wait_time")] == [1]
    assert [p.count for p in sdk.points("db.client.connection.use_time")] == [1]
    assert sum(p.count for p in sdk.points("db.client.operation.duration")) == 2


async def test_aLaneCallRecordsConnectionWaitAndUseTime(sdk: Sdk, postgresDSN: str) -> None:
    """On psycopg2 a runQuery runs on a lane (no worker thread): the lane's start is stamped too."""
    pool = adbapi.ConnectionPool("psycopg2", postgresDSN, cp_min=1, cp_max=2, cp_nonblocking=True)
    try:
        await pool.runQuery("SELECT 1")
        await pool.runQuery("SELECT 2")
        assert pool.statistics().lanes >= 1
    finally:
        await pool.close()
    assert [p.count for p in sdk.points("db.client.connection.wait_time")] == [2]
    assert [p.count for p in sdk.points("db.client.connection.use_time")] == [2]


def test_threadPoolMetricsShowQueueDepthAndBusyWorkers(sdk: Sdk) -> None:
    """A ThreadPool's queue depth and busy workers are observable from its statistics."""
    pool = deferthreads.ThreadPool(1, 1, "observed")
    started, release = threading.Event(), threading.Event()
    pool.start()
    try:
        pool.callInThread(_signalThenWait, started, release)
        assert started.wait(BOUND)
        pool.callInThread(lambda: None)
        pool.callInThread(lambda: None)

        def mine(metric: str) -> list[Any]:
            return [p for p in sdk.points(metric) if p.attributes.get("deferthreads.pool.name") == "observed"]

        assert [p.value for p in mine("deferthreads.pool.queue.depth")] == [2]
        workers = {p.attributes["state"]: p.value for p in mine("deferthreads.pool.workers")}
        assert workers == {"busy": 1, "idle": 0}
    finally:
        release.set()
        pool.stop(BOUND)


def test_threadPoolWaitTimeHistogramRecordsEachCallsTimeInTheQueue(sdk: Sdk) -> None:
    """Each call's wait between submission and a worker taking it is one point of the wait-time histogram."""
    clock = Clock()
    pool = deferthreads.ThreadPool(1, 1, "waiting", clock=clock)
    started, release, last = threading.Event(), threading.Event(), threading.Event()
    pool.start()
    try:
        pool.callInThread(_signalThenWait, started, release)
        assert started.wait(BOUND)
        pool.callInThread(lambda: None)
        pool.callInThread(last.set)
        clock.advance(0.25)  # both queued calls wait a quarter of a second on the pool's clock
        release.set()
        assert last.wait(BOUND)
    finally:
        release.set()
        pool.stop(BOUND)
    [point] = [p for p in sdk.points("deferthreads.pool.wait_time")
               if p.attributes["deferthreads.pool.name"] == "waiting"]
    assert point.attributes["deferthreads.pool.kind"] == "threadpool"
    assert point.count == 3
    assert point.sum == pytest.approx(0.5)


def test_threadPoolRunsItsCallsWhileOpenTelemetryIsLookedUpAgain(sdk: Sdk) -> None:
    """A pool made before the API is looked up again (tests, benchmarks) still runs calls, recording none."""
    pool = deferthreads.ThreadPool(1, 1, "relooked")
    threadstelemetry._forceAbsent(False)  # the module forgets the API until the next pool is made
    ran = threading.Event()
    pool.start()
    try:
        pool.callInThread(ran.set)
        assert ran.wait(BOUND)
    finally:
        pool.stop(BOUND)


def test_failingWaitRecorderCostsNoCall() -> None:
    """A recorder that raises is logged; the worker goes on running its calls."""
    pool = deferthreads.ThreadPool(1, 1, "brokenRecorder")

    def broken() -> Any:
        raise RuntimeError("exporter bug")

    pool._team.waitRecorder = broken
    ran = threading.Event()
    pool.start()
    try:
        pool.callInThread(ran.set)
        assert ran.wait(BOUND)
    finally:
        pool.stop(BOUND)


def test_withoutAnSdkThreadPoolWorkersRecordNoWait(noSdk: None) -> None:
    """With the API but no SDK, a pool's team is given no recording function (the queue loop pays a test)."""
    recorderNow = threadstelemetry.registerPool(deferthreads.ThreadPool(1, 1, "quiet"), "threadpool", "quiet")
    assert recorderNow is not None and recorderNow() is None


def test_resourcePoolIsObservedAsAResourcePool(sdk: Sdk) -> None:
    """A ResourcePool's metrics carry its name and the kind resourcepool."""
    pool: deferthreads.ResourcePool[int] = deferthreads.ResourcePool(
        lambda: 1, lambda r: None, name="observedResources", manageLifecycle=False
    )
    kinds = [p.attributes["deferthreads.pool.kind"] for p in sdk.points("deferthreads.pool.queue.depth")
             if p.attributes["deferthreads.pool.name"] == "observedResources"]
    assert kinds == ["resourcepool"]
    del pool


# -- slow calls -----------------------------------------------------------------------------------------


async def test_slowCallIsLoggedWithTheStatementAndNotTheParameters(
    noSdk: None, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A call that takes cp_slow_threshold or longer is logged with its statement and time, not its values."""
    clock = Clock()
    pool = _pool(tmp_path, cp_clock=clock, cp_slow_threshold=1.5)
    caplog.set_level(logging.WARNING, "adbapi.slow")
    try:
        d = pool.runQuery("SELECT ? AS secret", ("secret-value",))
        clock.advance(2)  # the result comes home only on a later reactor turn, after this
        await d
    finally:
        await pool.close()
    [record] = [r for r in caplog.records if r.name == "adbapi.slow"]
    message = record.getMessage()
    assert "SELECT ? AS secret" in message and "2.000s" in message
    assert "secret-value" not in message


async def test_callUnderTheSlowThresholdIsNotLogged(
    noSdk: None, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A call faster than cp_slow_threshold leaves no log record."""
    clock = Clock()
    pool = _pool(tmp_path, cp_clock=clock, cp_slow_threshold=1.5)
    caplog.set_level(logging.WARNING, "adbapi.slow")
    try:
        d = pool.runQuery("SELECT 1")
        clock.advance(1)
        await d
    finally:
        await pool.close()
    assert [r for r in caplog.records if r.name == "adbapi.slow"] == []


# -- leaks ----------------------------------------------------------------------------------------------


async def test_leakedInteractionIsLoggedOnceWithTheStackWhereItWasCalled(
    noSdk: None, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An interaction holding its connection past cp_leak_threshold is logged once, with the caller's line."""
    clock = Clock()
    pool = _pool(tmp_path, cp_clock=clock, cp_leak_threshold=5)
    caplog.set_level(logging.WARNING, "adbapi.leaks")
    release = threading.Event()
    try:
        d = pool.runInteraction(lambda txn: release.wait(BOUND))
        clock.advance(4)
        assert [r for r in caplog.records if r.name == "adbapi.leaks"] == []
        clock.advance(2)
        clock.advance(60)
        release.set()
        assert await d is True
    finally:
        release.set()
        await pool.close()
    [record] = [r for r in caplog.records if r.name == "adbapi.leaks"]
    message = record.getMessage()
    assert "runInteraction(" in message and "cp_leak_threshold" in message
    # The stack ends at the caller's line (the library's own frames are dropped).
    assert message.rstrip().endswith("d = pool.runInteraction(lambda txn: release.wait(BOUND))")


async def test_leakTimerIsCancelledWhenTheCallEndsInTime(noSdk: None, tmp_path: Path) -> None:
    """An interaction that ends before cp_leak_threshold leaves no timer on the clock."""
    clock = Clock()
    pool = _pool(tmp_path, cp_clock=clock, cp_leak_threshold=5)
    try:
        await pool.runInteraction(lambda txn: None)
        assert [c for c in clock.getDelayedCalls() if c.active()] == []
    finally:
        await pool.close()


async def test_transactionHeldPastTheLeakThresholdIsLogged(
    noSdk: None, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An async transaction open past cp_leak_threshold is logged, timed from when it holds a connection."""
    clock = Clock()
    pool = _pool(tmp_path, cp_clock=clock, cp_leak_threshold=5)
    caplog.set_level(logging.WARNING, "adbapi.leaks")
    try:
        async with pool.transaction() as txn:
            await txn.execute("SELECT 1")
            clock.advance(6)
    finally:
        await pool.close()
    [record] = [r for r in caplog.records if r.name == "adbapi.leaks"]
    assert record.getMessage().startswith("transaction on ")
    assert record.getMessage().rstrip().endswith("async with pool.transaction() as txn:")


async def test_resourcePoolCallHoldingItsResourcePastLeakThresholdIsLogged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """ResourcePool(leakThreshold=...) logs a call holding its resource too long once, with the run() line."""
    clock = Clock()
    pool: deferthreads.ResourcePool[int] = deferthreads.ResourcePool(
        lambda: 1, lambda r: None, maxthreads=1, clock=clock, leakThreshold=5
    )
    caplog.set_level(logging.WARNING, "deferthreads.leaks")
    began, release = threading.Event(), threading.Event()

    def hold(resource: int) -> int:
        began.set()
        release.wait(BOUND)
        return resource

    try:
        d = pool.run(hold)
        waiting = pool.run(hold)  # queued behind the first: it holds nothing yet
        assert await deferthreads.deferToThread(began.wait, BOUND)
        clock.advance(6)
        clock.advance(6)
        [record] = [r for r in caplog.records if r.name == "deferthreads.leaks"]
        assert record.getMessage().rstrip().endswith("d = pool.run(hold)")
        release.set()
        assert await d == 1
        assert await waiting == 1
    finally:
        release.set()
        await pool.stop()


def test_badThresholdsAreRefusedNamingTheArgument(tmp_path: Path) -> None:
    """A threshold that is not a positive number of seconds raises at the call, naming the keyword."""
    with pytest.raises(TypeError, match="cp_slow_threshold"):
        _pool(tmp_path, cp_slow_threshold="1", cp_reactor=Clock())
    with pytest.raises(ValueError, match="cp_leak_threshold"):
        _pool(tmp_path, cp_leak_threshold=0, cp_reactor=Clock())
    with pytest.raises(ValueError, match="leakThreshold"):
        deferthreads.ResourcePool(lambda: 1, lambda r: None, leakThreshold=-1, manageLifecycle=False)


# -- what is paid without an SDK -----------------------------------------------------------------------


async def test_withoutAnSdkTheHooksObserveNothing(noSdk: None, tmp_path: Path) -> None:
    """With the API, no SDK and no threshold, a call is not observed and a transaction is not wrapped."""
    pool = _pool(tmp_path)
    try:
        call, otel = adbapitelemetry._begin(pool, "runQuery", ("SELECT 1",), None, False)
        assert call is None and otel is not None
        pooled = _Call(pool._router, CallKind.QUERY, None, ("SELECT 1",), {})
        assert adbapitelemetry.observe(pool, "runQuery", ("SELECT 1",), None, pooled) is None
        assert pooled.timed is False  # no slot reads the clock for it
        assert type(pool.transaction()) is adbapi.AsyncTransaction
    finally:
        await pool.close()


def test_withOpenTelemetryAbsentPoolsWorkAndNothingIsImported(tmp_path: Path) -> None:
    """Without opentelemetry installed, pools run their calls and the package is never imported."""
    script = f"""
import sys
sys.modules["opentelemetry"] = None  # as if it were not installed
import adbapi, deferthreads
from reactor import Deferred
from reactor.task import react

async def main(reactor):
    pool = adbapi.ConnectionPool("sqlite3", {str(tmp_path / "absent.sqlite")!r}, cp_min=1, cp_max=1,
                                 cp_slow_threshold=60, cp_leak_threshold=60)
    assert await pool.runQuery("SELECT 1") == [(1,)]
    async with pool.transaction() as txn:
        await txn.execute("SELECT 1")
    assert await deferthreads.deferToThread(lambda: 2) == 2
    await pool.close()
    assert [m for m in sys.modules if m.startswith("opentelemetry") and sys.modules[m] is not None] == []
    print("ok")

react(lambda reactor: Deferred.fromCoroutine(main(reactor)))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).parent.parent)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
