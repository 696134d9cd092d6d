"""adbapi's side work runs on a ``deferthreads.ThreadPool`` each ConnectionPool owns.

Side work is what may block outside a connection's own slot: a cancel request
(``PQcancel``, ``KILL QUERY`` and ``interrupt()``), a lane's connect, a lane's
conversion of a big result, and the release of a lane's connection at an
abandoning close. Its threads are named after the pool
(``PoolThread-<name>-side-worker-<n>``), none exists before side work arrives,
and a close drains and joins them: after it no thread named after the pool is
alive. Threads are awaited on events and Deferreds, never on fixed pauses.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from adbapi import ConnectionPool, PoolAbandonedError
from reactor import CancelledError, Deferred, Failure, Reactor
from tests.adbapi_support import (  # noqa: F401
    LONG_QUERY,
    PID_QUERY,
    Backend,
    isActive,
    lanesFixture,
    poolThreads,
    poolThreadsOf,
    runReactor,
    threadsEnded,
    uniqueName,
    until,
)

WAIT = 5.0  # bound on every wait for another thread


def sideThreads(name: str) -> list[str]:
    """Names of the live side threads of the pool named ``name``."""
    return [n for n in poolThreads(name) if "-side-" in n]


class Blocker:
    """An interaction that stays in its worker thread until released (so a cancel's side work keeps
    repeating: it ends only once the call's statements are over)."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, txn: Any) -> str:
        self.entered.set()
        self.release.wait(WAIT * 2)
        return "finished"


def cancelWhileSending(pool: ConnectionPool, name: str) -> tuple[list[str], list[str], list[Any]]:
    """Start a blocked interaction, cancel it, and return the side threads before the cancel, those alive
    while it is being sent, and the call's outcome; the interaction is released before returning."""
    blocker = Blocker()
    outcome: list[Any] = []
    d = pool.runInteraction(blocker)
    d.addBoth(outcome.append)
    assert blocker.entered.wait(WAIT), "the interaction did not start"
    before = sideThreads(name)
    d.cancel()
    # The cancel is repeated until the interaction returns, which it cannot before release.
    sending = sideThreads(name)
    blocker.release.set()
    return before, sending, outcome


def test_cancelIsSentFromASideThreadNamedAfterThePool(tmp_path: Any) -> None:
    """A running call's cancel goes out on the pool's side pool, whose thread carries the pool's name;
    none exists before; the worker serves the next call after it; after close() none is left."""
    name = uniqueName("sidecancel")

    async def body(reactor: Reactor) -> Any:
        pool = ConnectionPool("sqlite3", str(tmp_path / "s.sqlite"), cp_reactor=reactor, cp_min=1, cp_max=1,
                              cp_name=name)
        before, sending, outcome = cancelWhileSending(pool, name)
        after = await pool.runQuery("SELECT 7")
        await pool.close()
        return before, sending, outcome, after, poolThreads(name)

    before, sending, outcome, after, left = runReactor(body)
    assert before == []
    assert sending == [f"PoolThread-{name}-side-worker-1"]
    assert len(outcome) == 1 and isinstance(outcome[0], Failure) and outcome[0].check(CancelledError)
    assert after == [(7,)]
    assert left == []


def test_restartedPoolRunsSideWorkAgainAndClosesWithoutThreads(tmp_path: Any) -> None:
    """start() after close() restarts the side pool: a cancel is sent again from a thread named after the
    pool, and the second close leaves no thread either."""
    name = uniqueName("siderestart")

    async def body(reactor: Reactor) -> Any:
        pool = ConnectionPool("sqlite3", str(tmp_path / "r.sqlite"), cp_reactor=reactor, cp_min=1, cp_max=2,
                              cp_name=name)
        rounds = []
        for _ in range(2):
            pool.start()
            _, sending, outcome = cancelWhileSending(pool, name)
            await pool.runQuery("SELECT 1")
            await pool.close()
            rounds.append((sending, len(outcome), poolThreads(name)))
        return rounds

    rounds = runReactor(body)
    for sending, outcomes, left in rounds:
        assert len(sending) == 1 and sending[0].startswith(f"PoolThread-{name}-side-worker-"), sending
        assert outcomes == 1
        assert left == []


def test_closeWhileTheReactorIsNotRunningStopsTheSideThreads(tmp_path: Any) -> None:
    """close() with the reactor not running waits for the workers and the side threads right away: when
    its Deferred has fired no thread named after the pool is alive."""
    name = uniqueName("sidenotrunning")
    reactor = Reactor()
    try:
        pool = ConnectionPool("sqlite3", str(tmp_path / "n.sqlite"), cp_reactor=reactor, cp_min=1, cp_max=1,
                              cp_name=name)
        _, sending, outcome = cancelWhileSending(pool, name)
        closed: list[Any] = []
        pool.close().addBoth(closed.append)
        left = poolThreads(name)
    finally:
        reactor.close()
    assert sending == [f"PoolThread-{name}-side-worker-1"]
    assert len(outcome) == 1 and outcome[0].check(CancelledError)
    assert closed == [None]
    assert left == []


def test_sideWorkRunningAtTheCloseDeadlineEndsOnItsOwn(tmp_path: Any) -> None:
    """A close that gives up at cp_shutdown_timeout does not wait for side work still running (a cancel
    repeating on a stuck call): its thread ends once the work does, and a restarted pool sends its
    cancels from new side threads."""
    name = uniqueName("sidedeadline")
    blocker = Blocker()

    async def body(reactor: Reactor) -> Any:
        pool = ConnectionPool("sqlite3", str(tmp_path / "d.sqlite"), cp_reactor=reactor, cp_min=1, cp_max=1,
                              cp_name=name, cp_shutdown_timeout=0.3)
        outcome: list[Any] = []
        pool.runInteraction(blocker).addBoth(outcome.append)
        assert blocker.entered.wait(WAIT)
        await pool.close()  # the deadline passes: the call is abandoned and its statement cancelled
        stuck = [t for t in poolThreadsOf(name) if "-side-" in t.name]
        blocker.release.set()
        ended = await threadsEnded(reactor, poolThreadsOf(name), WAIT)
        pool.start()
        _, sending, again = cancelWhileSending(pool, name)
        await pool.runQuery("SELECT 1")
        await pool.close()
        return outcome, [t.name for t in stuck], ended, sending, again, poolThreads(name)

    outcome, stuck, ended, sending, again, left = runReactor(body, timeout=15)
    assert len(outcome) == 1 and outcome[0].check(PoolAbandonedError)
    assert stuck == [f"PoolThread-{name}-side-worker-1"]
    assert ended == []
    assert sending == [f"PoolThread-{name}-side-worker-1"]
    assert len(again) == 1 and again[0].check(CancelledError)
    assert left == []


def test_noThreadOfALanePoolIsAliveAfterClose(lanes: Backend) -> None:
    """Lanes hand their connects, big fetches and cancels to side threads named after the pool; every
    one of them is gone once close() has fired."""
    name = uniqueName("sidelanes")

    async def body(reactor: Reactor) -> Any:
        pool = lanes.pool(reactor, cp_min=1, cp_max=2, cp_name=name)
        seen: set[str] = set()
        pid = (await pool.runQuery(PID_QUERY))[0][0]  # the lane's connect is side work
        seen.update(poolThreads(name))
        big = await pool.runQuery("SELECT i FROM generate_series(1, 5000) AS i")  # converted as side work
        seen.update(poolThreads(name))
        d = pool.runQuery(LONG_QUERY)
        await until(reactor, lambda: isActive(lanes, pid), "the long statement on the server")
        d.cancel()  # the cancel request is side work
        seen.update(poolThreads(name))
        with pytest.raises(CancelledError):
            await d
        after = await pool.runQuery("SELECT 2")
        stats = pool.statistics()
        closing: Deferred[None] = pool.close()
        await closing
        return seen, len(big), after, stats, poolThreads(name)

    seen, bigRows, after, stats, left = runReactor(body)
    assert seen and all(n.startswith(f"PoolThread-{name}-side-worker-") for n in seen), seen
    assert bigRows == 5000 and after == [(2,)]
    assert stats.workers == 0
    assert left == []
