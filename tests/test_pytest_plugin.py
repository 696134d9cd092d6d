"""The deferthreads pytest plugin (pytest_deferthreads), driven through pytester: inner test files are
written to a temporary directory and run by pytest, in this process or a subprocess."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reactor import getReactor

pytest_plugins = ["pytester"]


# Plugins the inner runs do without: pytester unloads the modules a run imported, so hypothesis's
# (imported by its terminal summary) would be imported and assertion-rewritten again every run.
_QUIET = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest")


def _run(pytester: pytest.Pytester, source: str, *args: str, plugins: list[Any] | None = None) -> Any:
    """Write ``source`` as test_inner.py and run pytest on it in this process."""
    pytester.makepyfile(test_inner=source)
    return pytester.runpytest_inprocess(*_QUIET, *args, plugins=plugins or [])


def test_asyncTestRunsOnAFreshReactorThatIsTheDefault(pytester: pytest.Pytester) -> None:
    """An async def test runs on a new reactor per test, which getReactor() and deferToThread use."""
    result = _run(
        pytester,
        """
        import threading
        from reactor import getReactor, Reactor
        from reactor.task import deferLater
        from deferthreads import deferToThread

        seen = []

        async def test_first(reactor):
            assert isinstance(reactor, Reactor) and getReactor() is reactor and reactor.running
            assert await deferLater(reactor, 0.001, lambda: 5) == 5
            assert await deferToThread(threading.current_thread) is not threading.current_thread()
            seen.append(reactor)

        async def test_second():
            seen.append(getReactor())
            assert seen[0] is not seen[1]
        """,
    )
    result.assert_outcomes(passed=2)


def test_theDefaultReactorComesBackAfterTheTest(pytester: pytest.Pytester) -> None:
    """After an async test, getReactor() is the process default it was before."""
    before = getReactor()
    _run(pytester, "async def test_x():\n    pass\n").assert_outcomes(passed=1)
    assert getReactor() is before


def test_aFailingAsyncTestFailsWithItsOwnTraceback(pytester: pytest.Pytester) -> None:
    """An exception raised after an await fails the test with the test's line in the traceback."""
    result = _run(
        pytester,
        """
        from reactor import getReactor
        from reactor.task import deferLater

        async def test_x():
            await deferLater(getReactor(), 0, lambda: None)
            assert 1 + 1 == 3, "arithmetic"
        """,
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*assert 1 + 1 == 3*", "*AssertionError: arithmetic*"])


def test_declaredDeferredReturningTestsAreWaitedFor(pytester: pytest.Pytester) -> None:
    """A test annotated -> Deferred or decorated @inlineCallbacks is waited for; its failure fails it."""
    result = _run(
        pytester,
        """
        from reactor import Deferred, getReactor, inlineCallbacks
        from reactor.task import deferLater

        def test_annotated() -> Deferred[None]:
            return deferLater(getReactor(), 0.001, lambda: None)

        @inlineCallbacks
        def test_inline():
            value = yield deferLater(getReactor(), 0.001, lambda: 7)
            assert value == 7

        def test_annotatedFails() -> Deferred[None]:
            return deferLater(getReactor(), 0.001, lambda: 1 / 0)
        """,
    )
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*test_annotatedFails*ZeroDivisionError*"])


def test_aTestReturningAnUnfiredDeferredWithoutAReactorGetsAClearError(pytester: pytest.Pytester) -> None:
    """A plain test returning an unfired Deferred (no reactor of ours) fails saying what to do; one
    taking the reactor fixture is waited for; one returning a fired Deferred passes."""
    result = _run(
        pytester,
        """
        from reactor import Deferred, succeed
        from reactor.task import deferLater

        def test_unfired():
            return Deferred()

        def test_withFixture(reactor):
            return deferLater(reactor, 0.001, lambda: None)

        def test_fired():
            return succeed(None)
        """,
    )
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*test_unfired returned a Deferred that has not fired*reactor*"])


def test_theTimeoutMarkerFailsAHangingTestNamingIt(pytester: pytest.Pytester) -> None:
    """@pytest.mark.reactorTimeout(s): past it, the test's Deferred is cancelled and the test fails, named."""
    result = _run(
        pytester,
        """
        import pytest
        from reactor import CancelledError, Deferred

        cancelled = []

        @pytest.mark.reactorTimeout(0.05)
        async def test_hangs():
            try:
                await Deferred()
            except CancelledError:
                cancelled.append(True)
                raise

        def test_afterwards():
            assert cancelled == [True]
        """,
    )
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*test_inner.py::test_hangs timed out after 0.05 s*reactorTimeout*"])


def test_theIniOptionSetsTheTimeoutAndBadValuesAreRefused(pytester: pytest.Pytester) -> None:
    """The reactorTimeout ini option bounds every test; a bad marker value is an error naming it."""
    pytester.makeini("[pytest]\nreactorTimeout = 0.05\n")
    result = _run(
        pytester,
        """
        import pytest
        from reactor import Deferred

        async def test_hangs():
            await Deferred()

        @pytest.mark.reactorTimeout(-1)
        async def test_badMarker():
            pass
        """,
    )
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*test_hangs timed out after 0.05 s*"])
    result.stdout.fnmatch_lines(["*reactorTimeout must be a finite number of seconds > 0, got -1*"])


def test_aPendingDelayedCallFailsTheTestAtTeardownNamingIt(pytester: pytest.Pytester) -> None:
    """A timed call left pending is an error at teardown naming the test and the call."""
    result = _run(
        pytester,
        """
        from reactor import getReactor

        def forgotten():
            pass

        async def test_leaves():
            getReactor().callLater(100, forgotten)
        """,
    )
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        ["*test_inner.py::test_leaves left the reactor dirty:*", "*pending DelayedCall*forgotten, due in*"]
    )


def test_anOpenPortFailsTheTestAtTeardownAndIsClosed(pytester: pytest.Pytester) -> None:
    """A listening port left open is named at teardown, and the teardown closes it."""
    result = _run(
        pytester,
        """
        import socket
        from reactor.protocol import Factory, Protocol

        ports = []

        async def test_leaves(reactor):
            port = reactor.listenTCP(0, Factory.forProtocol(Protocol), interface="127.0.0.1")
            ports.append(port.getHost().port)

        def test_closedAfterwards():
            probe = socket.socket()
            try:
                assert probe.connect_ex(("127.0.0.1", ports[0])) != 0
            finally:
                probe.close()
        """,
    )
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*left the reactor dirty:*", "*an open port or connection*"])


class _Release:
    """A plugin object: the inner test's thread waits on this event; the outer test sets it."""

    def __init__(self) -> None:
        self.event = threading.Event()

    @pytest.fixture
    def release(self) -> threading.Event:
        return self.event


def test_aLiveThreadFailsTheTestAtTeardownNamingIt(pytester: pytest.Pytester) -> None:
    """A thread the test started and left running is named at teardown."""
    release = _Release()
    try:
        result = _run(
            pytester,
            """
            import threading

            async def test_leaves(release):
                threading.Thread(target=release.wait, args=(30,), name="leakyWorker", daemon=True).start()
            """,
            plugins=[release],
        )
    finally:
        release.event.set()
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*a live thread: 'leakyWorker' (daemon, started during the test)*"])


def test_anUnhandledErrorInACollectedDeferredFailsTheTest(pytester: pytest.Pytester) -> None:
    """A Deferred garbage-collected with an unhandled failure is an error at teardown naming it."""
    result = _run(
        pytester,
        """
        from reactor import Deferred

        async def test_drops():
            d = Deferred()
            d.errback(KeyError("lost key"))
            del d

        async def test_handles():
            d = Deferred()
            d.errback(KeyError("handled"))
            d.addErrback(lambda f: None)
        """,
    )
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        ["*test_drops left the reactor dirty:*", "*unhandled error in a Deferred*lost key*"]
    )


def test_theClockFixtureFailsOnPendingCalls(pytester: pytest.Pytester) -> None:
    """The clock fixture is a Clock at 0; a call still pending on it at teardown is named."""
    result = _run(
        pytester,
        """
        def test_advances(clock):
            seen = []
            clock.callLater(5, seen.append, 1)
            clock.advance(5)
            assert seen == [1] and clock.seconds() == 5

        def test_leaves(clock):
            clock.callLater(5, print)
        """,
    )
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        ["*test_leaves left the clock dirty:", "*pending DelayedCall*builtins.print, due in 5 s"]
    )


def test_theThreadPoolFixtureRunsCallsAndIsStopped(pytester: pytest.Pytester) -> None:
    """threadPool is a started ThreadPool usable with deferToThreadPool; stopped at teardown."""
    result = _run(
        pytester,
        """
        import threading
        from deferthreads import deferToThreadPool

        pools = []

        async def test_runs(reactor, threadPool):
            pools.append(threadPool)
            name = await deferToThreadPool(reactor, threadPool, lambda: threading.current_thread().name)
            assert name.startswith("test-worker-")

        def test_stopped():
            assert pools[0].state == "stopped"
        """,
    )
    result.assert_outcomes(passed=2)


def test_theConnectionPoolFactoryClosesWhatItMade(pytester: pytest.Pytester) -> None:
    """connectionPoolFactory makes ConnectionPools on the test's reactor and closes them at teardown."""
    result = _run(
        pytester,
        """
        from adbapi.testing import FakeDriver

        made = []

        async def test_queries(reactor, connectionPoolFactory):
            driver = FakeDriver()
            driver.script("SELECT 1", [(1,)])
            pool = connectionPoolFactory(driver, cp_min=1, cp_max=1)
            made.append((pool, driver))
            assert await pool.runQuery("SELECT 1") == [(1,)]

        def test_closed():
            pool, driver = made[0]
            assert not pool.running
            assert all(conn.closed for conn in driver.connections)
        """,
    )
    result.assert_outcomes(passed=2)


def test_plainTestsAreLeftAlone(pytester: pytest.Pytester) -> None:
    """Plain tests see the same process default reactor, and a non-Deferred return value still warns."""
    result = _run(
        pytester,
        """
        from reactor import getReactor

        seen = []

        def test_one():
            seen.append(getReactor())

        def test_two():
            assert getReactor() is seen[0]

        def test_returnsAValue():
            return 42
        """,
    )
    result.assert_outcomes(passed=3, warnings=1)


def test_aProjectsOwnReactorFixtureIsTheOneAsyncTestsRunOn(pytester: pytest.Pytester) -> None:
    """A conftest `reactor` fixture overrides the plugin's; async tests run on it, checked after the call."""
    pytester.makeconftest(
        """
        import pytest
        from reactor import Reactor

        @pytest.fixture
        def reactor():
            r = Reactor()
            r.mine = True
            yield r
            r.removeAll()
            r.close()
        """
    )
    result = _run(
        pytester,
        """
        from reactor import getReactor

        async def test_runsOnIt(reactor):
            assert reactor.mine and reactor.running and getReactor() is reactor

        async def test_leaves(reactor):
            reactor.callLater(50, print)

        def test_plainReturningADeferred(reactor):
            from reactor.task import deferLater

            return deferLater(reactor, 0.001, lambda: None)
        """,
    )
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(["*pending DelayedCall on the test's reactor*builtins.print*"])


def test_testsOfOtherPluginsAreLeftToThem(pytester: pytest.Pytester) -> None:
    """An @pytest.mark.anyio async test is run by anyio's plugin, not on a reactor."""
    pytest.importorskip("anyio")
    result = _run(
        pytester,
        """
        import asyncio
        import pytest

        @pytest.fixture
        def anyio_backend():
            return "asyncio"

        @pytest.mark.anyio
        async def test_onAsyncio():
            await asyncio.sleep(0)
            assert asyncio.get_running_loop() is not None
        """,
    )
    result.assert_outcomes(passed=1)


def test_theOptOutTurnsThePluginOff(pytester: pytest.Pytester) -> None:
    """With -p no:deferthreads the plugin's fixtures are gone and async tests are not run by it."""
    pytester.makepyfile(
        test_inner="""
        def test_usesFixture(clock):
            pass
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:deferthreads", *_QUIET)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'clock' not found*"])


def test_itWorksUnderXdist(pytester: pytest.Pytester) -> None:
    """Under pytest-xdist each worker process runs its tests on fresh reactors."""
    pytest.importorskip("xdist")
    pytester.makepyfile(
        test_inner="""
        import pytest
        from reactor import getReactor
        from reactor.task import deferLater

        @pytest.mark.parametrize("n", range(6))
        async def test_each(n):
            assert await deferLater(getReactor(), 0.001, lambda: n) == n
        """
    )
    result = pytester.runpytest_subprocess("-n", "2", *_QUIET)
    result.assert_outcomes(passed=6)


def test_pytestTimeoutInterruptsAHangingTestAndTheNextOneRuns(pytester: pytest.Pytester) -> None:
    """pytest-timeout's signal method fails a hanging async test; the harness still cleans up after it."""
    pytest.importorskip("pytest_timeout")
    pytester.makepyfile(
        test_inner="""
        import pytest
        from reactor import Deferred, getReactor
        from reactor.task import deferLater

        @pytest.mark.timeout(0.5, method="signal")
        async def test_hangs():
            await Deferred()

        async def test_next():
            assert await deferLater(getReactor(), 0.001, lambda: 1) == 1
        """
    )
    result = pytester.runpytest_subprocess(*_QUIET)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*Timeout*"])


@pytest.fixture
def _noThreadsLeft() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    assert [t.name for t in threading.enumerate() if t not in before and t.is_alive()] == []


def test_aDirtyTestsReactorIsStillShutDownAndItsThreadsJoined(
    pytester: pytest.Pytester, _noThreadsLeft: None
) -> None:
    """After a dirty test the teardown drains the shared pool: no worker thread outlives it."""
    result = _run(
        pytester,
        """
        from reactor import getReactor
        from deferthreads import deferToThread

        async def test_usesThreadsAndLeaves():
            assert await deferToThread(lambda: 3) == 3
            getReactor().callLater(10, print)
        """,
    )
    result.assert_outcomes(passed=1, errors=1)


def _guideSnippets() -> list[str]:
    guide = Path(__file__).resolve().parent.parent / "docs" / "testing.md"
    return re.findall(r"```python\n(.*?)```", guide.read_text(), re.DOTALL)


def test_theGuidesTestExamplesPass(pytester: pytest.Pytester) -> None:
    """Every snippet of docs/testing.md that defines tests passes when pytest runs it."""
    snippets = [s for s in _guideSnippets() if "def test_" in s]
    assert len(snippets) >= 2
    for number, snippet in enumerate(snippets):
        pytester.makepyfile(**{f"test_guide{number}": snippet})
    result = pytester.runpytest_inprocess(*_QUIET)
    result.assert_outcomes(passed=sum(s.count("def test_") for s in snippets))


def test_theGuidesOtherExamplesPrintWhatTheySay(capsys: pytest.CaptureFixture[str]) -> None:
    """The other snippets run as they are, and print what their comments say."""
    snippets = [s for s in _guideSnippets() if "def test_" not in s]
    assert snippets
    for snippet in snippets:
        exec(compile(snippet, "docs/testing.md", "exec"), {"__name__": "guide"})
        printed = capsys.readouterr().out.splitlines()
        promised = [line.split("# ", 1)[1].strip() for line in snippet.splitlines()
                    if line.strip().startswith("print(") and "# " in line]
        assert printed == promised
