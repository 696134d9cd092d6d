"""Twisted 26.10 compatibility of ThreadPool: each scenario runs against ``twisted.python.threadpool``
and ours, so the tests prove the behaviour matches; what only ours promises is checked after.
"""

from __future__ import annotations

import gc
import pickle
import threading
import weakref
from typing import Any

import pytest
from twisted.python.threadpool import ThreadPool as TwistedThreadPool

import deferthreads
from deferthreads import ThreadPool

WAIT = 10.0  # seconds: the bound on waits that normally take milliseconds

POOLS = [
    pytest.param(deferthreads.ThreadPool, id="ours"),
    pytest.param(TwistedThreadPool, id="twisted"),
]


class _Dumb:
    """An object that can be weakly referenced."""


def _runAndWait(pool: Any) -> None:
    """Run one call in ``pool`` and wait for it: every call queued before it has started."""
    done = threading.Event()
    pool.callInThread(done.set)
    assert done.wait(WAIT)


@pytest.mark.parametrize("poolClass", POOLS)
def test_zeroMaxthreadsIsAcceptedAndHoldsWork(poolClass: Any) -> None:
    """ThreadPool(0, 0) is accepted; its calls wait, and run once the maximum is raised."""
    pool = poolClass(0, 0)
    assert (pool.min, pool.max) == (0, 0)
    pool.start()
    try:
        first = threading.Event()
        pool.callInThread(first.set)
        assert pool.workers == 0 and pool.q.qsize() == 1
        pool.adjustPoolsize(maxthreads=1)
        _runAndWait(pool)  # Twisted runs the held call once the next one is submitted
        assert first.is_set()
    finally:
        pool.stop()


def test_zeroMaxthreadsRunsHeldWorkAsSoonAsTheMaximumIsRaised() -> None:
    """Ours does not need a further call: adjustPoolsize itself starts a worker for the held ones."""
    pool = ThreadPool(0, 0)
    pool.start()
    try:
        ran = threading.Event()
        pool.callInThread(ran.set)
        pool.adjustPoolsize(maxthreads=1)
        assert ran.wait(WAIT)
    finally:
        pool.stop()


@pytest.mark.parametrize("poolClass", POOLS)
def test_pickledPoolKeepsItsSizesAndIsNotStarted(poolClass: Any) -> None:
    """A pickled pool, started or not, unpickles with its min and max, not started."""
    pool = poolClass(7, 20)
    copy = pickle.loads(pickle.dumps(pool))
    assert (copy.min, copy.max, copy.started, copy.joined) == (7, 20, False, False)
    running = poolClass(0, 1)
    running.start()
    try:
        _runAndWait(running)
        copy = pickle.loads(pickle.dumps(running))
    finally:
        running.stop()
    assert (copy.min, copy.max, copy.started, copy.joined, copy.workers) == (0, 1, False, False, 0)
    copy.start()
    try:
        _runAndWait(copy)
    finally:
        copy.stop()


def test_pickledPoolKeepsItsNameAndOptions() -> None:
    """Ours also keeps the name and the options; the copy is a distinct new pool."""
    pool = ThreadPool(1, 3, "named", queueLimit=5, idleTimeout=None, spinTime=0.0, workerInit=gc.collect)
    copy = pickle.loads(pickle.dumps(pool))
    assert copy is not pool and copy._team is not pool._team
    assert (copy.name, copy.min, copy.max, copy.queueLimit, copy.state) == ("named", 1, 3, 5, "new")
    assert (copy._team.idleTimeout, copy._team.spinTime, copy._hooks) == (None, 0.0, (gc.collect, None))
    assert "named" in repr(copy)


@pytest.mark.parametrize("poolClass", POOLS)
def test_callInThreadWithCallbackDropsTheCallBeforeOnResult(poolClass: Any) -> None:
    """By the time onResult runs the pool holds neither f nor its arguments; afterwards not onResult."""
    pool = poolClass(0, 1)
    pool.start()
    try:
        release = threading.Event()
        done = threading.Event()
        seen: dict[str, object] = {}

        def onResult(success: bool, result: object) -> None:
            assert release.wait(WAIT)
            gc.collect()
            seen["f"] = fRef()
            seen["arg"] = argRef()
            seen["kwarg"] = kwargRef()
            seen["success"] = success
            done.set()

        def f(arg: object, kw: object) -> _Dumb:
            return _Dumb()

        arg, kwarg = _Dumb(), _Dumb()
        fRef, argRef, kwargRef = weakref.ref(f), weakref.ref(arg), weakref.ref(kwarg)
        onResultRef = weakref.ref(onResult)
        pool.callInThreadWithCallback(onResult, f, arg, kw=kwarg)
        del f, arg, kwarg, onResult
        release.set()
        assert done.wait(WAIT)
        assert seen == {"f": None, "arg": None, "kwarg": None, "success": True}
        _runAndWait(pool)  # onResult has returned, and the worker has moved on
        gc.collect()
        assert onResultRef() is None
    finally:
        pool.stop()
