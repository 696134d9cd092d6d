"""The pytest plugin of deferthreads: tests that return Deferreds or are ``async def`` run on a reactor.

Installing the ``deferthreads`` distribution registers this module with pytest (the
``pytest11`` entry point named ``deferthreads``); ``-p no:deferthreads`` turns it off. The
library never imports it.

What it does, and only for the tests that opt in:

- A test that is ``async def``, or returns a Deferred (declared with a ``-> Deferred[...]``
  return annotation or an ``@inlineCallbacks`` decorator, or found at run time), runs on a
  fresh :class:`reactor.Reactor`: the one ``reactor.getReactor()`` returns, and so the one whose
  shared thread pool ``deferToThread`` uses, from the test's setup to its teardown. The plugin
  runs the reactor until the test's Deferred (or coroutine) is done, then leaves ``run()``
  without shutting down, so that what the test left behind can be seen.
- The wait is bounded: ``@pytest.mark.reactorTimeout(seconds)`` on the test (or its class or
  module), else the ``reactorTimeout`` ini option, else 60 seconds. A test past its time has
  its Deferred cancelled and fails, naming itself and the timeout.
- At teardown, after the fixtures that made pools closed them, the test fails (an error at
  teardown, as trial's "dirty reactor") if it left a pending ``DelayedCall``, an open port or
  connection (a reader or writer of the reactor), a live thread it started, or a Deferred
  that was garbage-collected with an unhandled failure; the message names each. Then the
  reactor is shut down (its shared pool drained, its ports closed) and closed, and the
  previous default reactor comes back.

Fixtures: ``reactor`` (that fresh reactor; a project's own ``reactor`` fixture overrides it,
and an async test then runs on that one), ``clock`` (a :class:`reactor.task.Clock`, whose
pending calls fail the test at teardown), ``threadPool`` (a started
:class:`deferthreads.ThreadPool`, stopped at teardown) and ``connectionPoolFactory`` (makes
:class:`adbapi.ConnectionPool`\\ s on the test's reactor and closes them at teardown).

Tests another plugin runs (``@pytest.mark.anyio``, ``@pytest.mark.asyncio``, ``@pytest.mark.trio``,
or those using the ``anyio_backend`` fixture) and unittest ``TestCase`` methods are left alone.
Each xdist worker is a process with its own default reactor, so the plugin works unchanged
under pytest-xdist; under pytest-timeout, keep pytest-timeout's limit above ``reactorTimeout``
so the plugin's clearer message comes first.
"""

from __future__ import annotations

import functools
import gc
import inspect
import logging
import threading
import time
import unittest
from collections.abc import Callable, Generator, Iterator
from contextlib import ExitStack
from typing import Any

import pytest

from reactor import Deferred, Failure, Reactor, TimeoutError
from reactor.task import Clock
from reactor.testing import defaultReactorSetTo

__all__ = [
    "DEFAULT_TIMEOUT",
    "ReactorHarness",
    "clock",
    "connectionPoolFactory",
    "reactor",
    "threadPool",
]

#: Seconds a test's Deferred may take when neither the marker nor the ini option says otherwise.
DEFAULT_TIMEOUT = 60.0
#: Seconds the teardown's shutdown of the test's reactor (draining its thread pool) may take.
SHUTDOWN_SECONDS = 10.0
#: Seconds teardown waits for threads the test started to end before calling them left alive.
THREAD_GRACE_SECONDS = 2.0

_HARNESS = "_deferthreadsHarness"
_KIND = pytest.StashKey[str]()
_OTHER_PLUGINS_MARKS = ("anyio", "asyncio", "trio")


# ---------------------------------------------------------------------------- configuration


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register the ``reactorTimeout`` ini option."""
    parser.addini(
        "reactorTimeout",
        "seconds a Deferred-returning or async def test may run on its reactor (deferthreads plugin; "
        f"default {DEFAULT_TIMEOUT:g})",
        default=str(DEFAULT_TIMEOUT),
    )


def pytest_configure(config: pytest.Config) -> None:
    """Declare the ``reactorTimeout`` marker."""
    config.addinivalue_line(
        "markers",
        "reactorTimeout(seconds): the time a Deferred-returning or async def test may take on its reactor "
        "(deferthreads plugin)",
    )


def _seconds(value: object, where: str) -> float:
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise pytest.UsageError(f"{where} must be a number of seconds, got {value!r}") from None
    if not seconds > 0 or seconds == float("inf"):
        raise pytest.UsageError(f"{where} must be a finite number of seconds > 0, got {value!r}")
    return seconds


def timeoutFor(item: pytest.Item) -> float:
    """The ``reactorTimeout`` of ``item``: its closest marker, else the ini option, else the default.

    :raises pytest.UsageError: the marker or option is not a positive number of seconds.
    """
    marker = item.get_closest_marker("reactorTimeout")
    if marker is not None:
        if len(marker.args) != 1 or marker.kwargs:
            raise pytest.UsageError(
                f"{item.nodeid}: reactorTimeout takes one argument, the seconds, e.g. "
                "@pytest.mark.reactorTimeout(5)"
            )
        return _seconds(marker.args[0], f"{item.nodeid}: @pytest.mark.reactorTimeout")
    return _seconds(item.config.getini("reactorTimeout"), "the reactorTimeout ini option")


# ---------------------------------------------------------------------------- which tests are ours

# Main thread (pytest's). Tests set up so far, and the count when a harness last ran gc.collect().
_testsStarted = 0
_collectedAt = -1


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Count the tests set up (so a harness knows whether a test of others ran since it collected)."""
    global _testsStarted
    _testsStarted += 1



def _claimedElsewhere(item: pytest.Function) -> bool:
    if any(item.get_closest_marker(name) is not None for name in _OTHER_PLUGINS_MARKS):
        return True
    if "anyio_backend" in item.fixturenames:
        return True
    return item.cls is not None and issubclass(item.cls, unittest.TestCase)


def _declaresDeferred(function: Callable[..., Any]) -> bool:
    """True for a function wrapped by ``inlineCallbacks`` or annotated to return a Deferred."""
    if inspect.isgeneratorfunction(inspect.unwrap(function)) and not inspect.isgeneratorfunction(function):
        return True
    annotation = getattr(inspect.unwrap(function), "__annotations__", {}).get("return")
    if annotation is None:
        return False
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", repr(annotation))
    return text.split("[")[0].rsplit(".", 1)[-1] == "Deferred"


def kindOf(item: pytest.Item) -> str | None:
    """``"async"``, ``"deferred"`` (declared), ``"maybe"`` (a plain test, looked at when it returns) or
    ``None`` (not ours: another plugin's, a unittest method, not a Python function)."""
    if not isinstance(item, pytest.Function) or _claimedElsewhere(item):
        return None
    function = item.obj
    if inspect.iscoroutinefunction(function):
        return "async"
    if inspect.isasyncgenfunction(function) or inspect.isgeneratorfunction(function):
        return None
    return "deferred" if _declaresDeferred(function) else "maybe"


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Give each async or declared-Deferred test the harness fixture first, so it sets up first."""
    for item in items:
        kind = kindOf(item)
        if kind is None:
            continue
        item.stash[_KIND] = kind
        if kind != "maybe":
            assert isinstance(item, pytest.Function)
            if _HARNESS not in item.fixturenames:
                item.fixturenames.insert(0, _HARNESS)


# ---------------------------------------------------------------------------- running a test


class ReactorHarness:
    """One test's reactor, made the default from setup to teardown, and what the test left behind.

    Main-thread only (pytest's). :meth:`runTest` runs the test's Deferred or coroutine on a reactor;
    :meth:`finish` (teardown) lists the leftovers, shuts the reactor down and closes it, and
    raises ``pytest.fail`` naming the test and each leftover.
    """

    def __init__(self, nodeid: str) -> None:
        self.nodeid = nodeid
        self.reactor = Reactor()
        self.problems: list[str] = []
        self._stack = ExitStack()
        # Collect the garbage of earlier tests now, so that its unhandled failures are not blamed on this
        # one; not needed (and 50 ms saved) when the test before was one of ours, whose teardown collected.
        global _collectedAt
        if _collectedAt != _testsStarted - 1:
            gc.collect()
        self._threadsBefore = set(threading.enumerate())
        self._unhandled = _UnhandledFailures()
        logging.getLogger("reactor.deferred").addHandler(self._unhandled)
        self._stack.callback(logging.getLogger("reactor.deferred").removeHandler, self._unhandled)
        self._stack.enter_context(defaultReactorSetTo(self.reactor))

    def runTest(self, start: Callable[[], object], reactor: Any, timeout: float) -> None:
        """Run ``reactor`` until what ``start()`` returns (a coroutine, a Deferred, anything) is done.

        ``start`` is called once the reactor runs. The reactor is left with ``crash()`` (no
        shutdown), so its leftovers stay for teardown. Re-raises the test's exception; fails
        the test, naming it, after ``timeout`` seconds.
        """
        outcome: list[object] = []
        timedOut: list[bool] = []
        running: list[Deferred[Any]] = []

        def done(result: object) -> None:
            if not outcome:
                outcome.append(result)
                if timer.active():
                    timer.cancel()
                reactor.crash()

        def begin() -> None:
            try:
                result = start()
                if inspect.iscoroutine(result):
                    d: Deferred[Any] = Deferred.fromCoroutine(result)
                elif isinstance(result, Deferred):
                    d = result
                else:
                    d = Deferred()
                    d.callback(result)
            except BaseException:
                d = Deferred()
                d.errback(Failure())
            running.append(d)
            d.addBoth(done)

        def onTimeout() -> None:
            timedOut.append(True)
            if running:
                # Cancelling lets the test's own cleanup (finally blocks, cancellers) run.
                running[0].cancel()
            done(Failure(TimeoutError(timeout, self.nodeid)))

        timer = reactor.callLater(timeout, onTimeout)
        try:
            with defaultReactorSetTo(reactor) if isinstance(reactor, Reactor) else ExitStack():
                reactor.callWhenRunning(begin)
                reactor.run(installSignalHandlers=False)
        finally:
            # Also when interrupted (pytest-timeout's signal, ^C): the timer is ours, not a leftover, and
            # cancelling the unfinished test lets its own cleanup run.
            if timer.active():
                timer.cancel()
            if running and not outcome:
                outcome.append(None)
                running[0].cancel()
        if timedOut:
            pytest.fail(
                f"{self.nodeid} timed out after {timeout:g} s on its reactor "
                "(raise it with @pytest.mark.reactorTimeout(seconds) or the reactorTimeout ini option)",
                pytrace=False,
            )
        if not outcome:
            pytest.fail(f"{self.nodeid}: the reactor stopped before the test's Deferred fired", pytrace=False)
        result = outcome[0]
        if isinstance(result, Failure):
            result.raiseException()

    def noteLeftovers(self, reactor: Any, what: str = "the reactor") -> None:
        """Record ``reactor``'s pending timed calls and watched descriptors as problems; cancel the calls."""
        for call in reactor.getDelayedCalls():
            self.problems.append(f"a pending DelayedCall on {what}: {_describeCall(call, reactor.seconds())}")
            try:
                call.cancel()
            except Exception:  # already called or cancelled meanwhile
                pass
        selectables = dict.fromkeys([*reactor.getReaders(), *reactor.getWriters()])
        for selectable in selectables:
            self.problems.append(f"an open port or connection on {what}: {selectable!r}")

    def finish(self) -> None:
        """Teardown: note leftovers, shut down and close the reactor, restore the default; fail if dirty."""
        try:
            self.noteLeftovers(self.reactor)
            self._shutDown()
            self._noteThreads()
            gc.collect()
            global _collectedAt
            _collectedAt = _testsStarted
            for message in self._unhandled.messages:
                self.problems.append(f"an unhandled error in a Deferred (garbage-collected): {message}")
        finally:
            self._stack.close()
        if self.problems:
            listed = "\n".join(f"  - {problem}" for problem in self.problems)
            pytest.fail(f"{self.nodeid} left the reactor dirty:\n{listed}", pytrace=False)

    def _shutDown(self) -> None:
        reactor = self.reactor
        if reactor.running:  # a test that ran it and never returned: nothing more can be done here
            return
        stuck: list[bool] = []

        def giveUp() -> None:
            stuck.append(True)
            reactor.crash()

        # stop() fires 'shutdown': the shared pool drains, ports and connections get connectionLost.
        safety = reactor.callLater(SHUTDOWN_SECONDS, giveUp)
        reactor.callWhenRunning(reactor.stop)
        try:
            reactor.run(installSignalHandlers=False)
        finally:
            if safety.active():
                safety.cancel()
        if stuck:
            self.problems.append(f"the reactor's shutdown did not finish within {SHUTDOWN_SECONDS:g} s")
        else:
            reactor.close()

    def _noteThreads(self) -> None:
        started = [t for t in threading.enumerate() if t not in self._threadsBefore and t.is_alive()]
        deadline = time.monotonic() + THREAD_GRACE_SECONDS
        for thread in started:
            thread.join(max(0.0, deadline - time.monotonic()))
        for thread in started:
            if thread.is_alive():
                kind = "daemon" if thread.daemon else "non-daemon"
                self.problems.append(f"a live thread: {thread.name!r} ({kind}, started during the test)")


def _describeCall(call: Any, now: float) -> str:
    func = getattr(call, "func", None)
    name = getattr(func, "__qualname__", None) or repr(func)
    module = getattr(func, "__module__", None)
    where = f"{module}.{name}" if module else name
    return f"{where}, due in {call.getTime() - now:.3g} s"


class _UnhandledFailures(logging.Handler):
    """Collects the 'Unhandled error in Deferred' records logged when a failed Deferred is collected."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        # Only the garbage-collection report (logError() logs the same text on purpose), which
        # reactor._deferred marks (funcName is not enough: compiled by mypyc, __del__ has no frame).
        if getattr(record, "deferredCollected", False) or record.funcName == "__del__":
            lines = record.getMessage().splitlines()
            self.messages.append(lines[-1] if lines else "")


def _isReactor(candidate: object) -> bool:
    return candidate is not None and all(hasattr(candidate, name) for name in ("run", "crash", "callLater"))


def _runsOn(item: pytest.Function, harness: ReactorHarness) -> Any:
    """The reactor a test runs on: the ``reactor`` fixture's value if it is a reactor, else the harness's."""
    candidate = item.funcargs.get("reactor")
    return candidate if _isReactor(candidate) else harness.reactor


@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Generator[None, object, object]:
    """Run the opted-in tests on their reactor: ``obj`` is swapped for a runner during the call."""
    kind = pyfuncitem.stash.get(_KIND, None)
    if kind is None:
        return (yield)
    original = pyfuncitem.obj
    timeout = timeoutFor(pyfuncitem)

    def run(harness: ReactorHarness, start: Callable[[], object]) -> None:
        reactor = _runsOn(pyfuncitem, harness)
        try:
            harness.runTest(start, reactor, timeout)
        finally:
            if reactor is not harness.reactor:
                # A reactor some other fixture owns and will close: look at it now, while it is as the
                # test left it.
                harness.noteLeftovers(reactor, f"the test's reactor {reactor!r}")

    @functools.wraps(original)
    def runner(**kwargs: Any) -> object:
        harness = pyfuncitem.funcargs.get(_HARNESS)
        if kind != "maybe":
            assert isinstance(harness, ReactorHarness)
            run(harness, functools.partial(original, **kwargs))
            return None
        result = original(**kwargs)
        if not isinstance(result, Deferred):
            return result
        if not isinstance(harness, ReactorHarness) and _isReactor(pyfuncitem.funcargs.get("reactor")):
            # The test took a project's own `reactor` fixture (one that overrides ours), so its Deferred
            # belongs to that reactor: run it there, with the checks. (pytest's private _request: the
            # public `request` fixture exists only if the test asked for it.)
            harness = pyfuncitem._request.getfixturevalue(_HARNESS)
        if isinstance(harness, ReactorHarness):
            run(harness, lambda: result)
            return None
        return _settledOrRefused(pyfuncitem.nodeid, result)

    pyfuncitem.obj = runner
    try:
        return (yield)
    finally:
        pyfuncitem.obj = original


def _settledOrRefused(nodeid: str, d: Deferred[Any]) -> object:
    """A Deferred returned by a test the plugin gave no reactor: fine if it has fired, else a clear error."""
    box: list[object] = []
    d.addBoth(box.append)
    if not box:
        d.cancel()
        pytest.fail(
            f"{nodeid} returned a Deferred that has not fired, but runs on no reactor of the deferthreads "
            "plugin: annotate it `-> Deferred[...]`, decorate it with @inlineCallbacks, make it async def, "
            "or take the `reactor` fixture",
            pytrace=False,
        )
    if isinstance(box[0], Failure):
        box[0].raiseException()
    return None


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(name=_HARNESS)
def _deferthreadsHarness(request: pytest.FixtureRequest) -> Iterator[ReactorHarness]:
    """The test's :class:`ReactorHarness` (set up first, torn down last)."""
    harness = ReactorHarness(request.node.nodeid)
    yield harness
    harness.finish()


@pytest.fixture
def reactor(_deferthreadsHarness: ReactorHarness) -> Reactor:
    """A fresh :class:`reactor.Reactor`, the default (``getReactor()``) for this test, checked and
    closed at teardown (see the module docstring)."""
    return _deferthreadsHarness.reactor


@pytest.fixture
def clock(request: pytest.FixtureRequest) -> Iterator[Clock]:
    """A :class:`reactor.task.Clock` at time 0; calls still pending on it at teardown fail the test."""
    fake = Clock()
    yield fake
    pending = fake.getDelayedCalls()
    if pending:
        listed = "\n".join(
            f"  - a pending DelayedCall on the clock: {_describeCall(c, fake.seconds())}" for c in pending
        )
        for call in pending:
            call.cancel()
        pytest.fail(f"{request.node.nodeid} left the clock dirty:\n{listed}", pytrace=False)


@pytest.fixture
def threadPool(reactor: Any) -> Iterator[Any]:
    """A started :class:`deferthreads.ThreadPool` (0 to 4 workers, named ``test``), stopped at teardown.

    Use it with ``deferToThreadPool(reactor, threadPool, f)``. Teardown stops it, waiting at most
    :data:`SHUTDOWN_SECONDS` for running calls; a call still running then is reported as a live thread.
    """
    from deferthreads import ThreadPool

    pool = ThreadPool(0, 4, name="test")
    pool.start()
    yield pool
    pool.stop(SHUTDOWN_SECONDS)


@pytest.fixture
def connectionPoolFactory(reactor: Any) -> Iterator[Callable[..., Any]]:
    """``make(dbapiName, *connargs, **connkw)`` returns an adbapi ConnectionPool, closed at teardown.

    The pools run on the test's reactor (``cp_reactor`` unless given). Teardown closes them with the
    reactor stopped, so each ``close()`` waits for its workers (at most its shutdown timeout).
    """
    from adbapi import ConnectionPool

    made: list[Any] = []

    def make(dbapiName: Any, /, *connargs: Any, **connkw: Any) -> Any:
        connkw.setdefault("cp_reactor", reactor)
        pool = ConnectionPool(dbapiName, *connargs, **connkw)
        made.append(pool)
        return pool

    yield make
    errors: list[str] = []
    for pool in reversed(made):
        try:
            d = pool.close()
        except Exception as e:
            errors.append(f"{pool!r}: {type(e).__name__}: {e}")
            continue
        box: list[object] = []
        d.addBoth(box.append)
        if box and isinstance(box[0], Failure):
            errors.append(f"{pool!r}: {box[0].getErrorMessage()}")
    if errors:
        pytest.fail("closing the connection pools failed:\n" + "\n".join(f"  - {e}" for e in errors),
                    pytrace=False)
