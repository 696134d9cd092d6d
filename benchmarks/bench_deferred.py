"""Deferred hot paths against Twisted 26.10's ``twisted.internet.defer`` (and asyncio).

Six comparisons, each side doing the same work in the same process:

1. ``succeed(1)`` alone (create a fired Deferred, drop it);
2. ``fail(exc)`` alone, with one exception instance made beforehand; the
   failed Deferreds are kept in batches of 1,000 and their failures handled
   outside the timing (so neither side logs an unhandled error);
3. create a Deferred, add 3 callbacks, fire it;
4. a chain of 10 Deferreds, each one's callback returning the next (unfired)
   one; all are fired in order, the last one with a value, which then flows
   back up the chain;
5. a coroutine awaiting 10 freshly made ``succeed(1)``, run with
   ``Deferred.fromCoroutine`` (creating a fired Deferred and awaiting it);
6. a coroutine awaiting 10 already-fired Deferreds, run with
   ``Deferred.fromCoroutine``; the asyncio side is the same coroutine awaiting
   10 done futures, run as a Task on an event loop, which is how asyncio
   drives a coroutine: ``loop.create_task`` for a batch of 1,000 coroutines,
   then ``run_until_complete`` of the batch's last task (tasks run in order),
   batch after batch. Loop creation is outside the timing; the batching keeps
   the per-``run_until_complete`` cost negligible without keeping all tasks
   alive at once (which would make the garbage collector, not asyncio, the
   thing measured).
"""

from __future__ import annotations

import asyncio
import time
import types
from collections.abc import Callable, Coroutine
from typing import Any

from benchmarks._harness import Comparison, Target, compare
from reactor import Deferred, _deferred, fail, succeed

tdefer: Any
try:
    from twisted.internet import defer as tdefer
except ImportError:  # pragma: no cover - the bench extra installs it
    tdefer = None


def _fresh(side: Callable[[], float]) -> Callable[[], float]:
    """A copy of ``side`` with its own code object.

    CPython 3.11 specialises bytecode per code object; if ours and the
    reference shared one loop, each round would undo the other's
    specialisation and both would be measured de-optimised.
    """
    return types.FunctionType(
        side.__code__.replace(), side.__globals__, side.__name__, side.__defaults__, side.__closure__
    )


def _inc(x: int) -> int:
    return x + 1


def _returnArg(_: object, nxt: Any) -> Any:
    return nxt


def _succeedAlone(succeed: Callable[[int], Any], ops: int) -> Callable[[], float]:
    def side() -> float:
        start = time.perf_counter()
        for _ in range(ops):
            succeed(1)
        return time.perf_counter() - start

    return _fresh(side)


def _ignore(_: object) -> None:
    return None


def _failAlone(fail: Callable[[BaseException], Any], ops: int, batch: int = 1000) -> Callable[[], float]:
    def side() -> float:
        exc = ValueError("benchmark")
        ignore = _ignore
        elapsed = 0.0
        for _ in range(ops // batch):
            failed = [None] * batch
            start = time.perf_counter()
            for i in range(batch):
                failed[i] = fail(exc)
            elapsed += time.perf_counter() - start
            for d in failed:
                d.addErrback(ignore)  # type: ignore[attr-defined]
        return elapsed

    return _fresh(side)


def _createAddFire(cls: Any, ops: int) -> Callable[[], float]:
    def side() -> float:
        inc = _inc
        start = time.perf_counter()
        for _ in range(ops):
            d = cls()
            d.addCallback(inc)
            d.addCallback(inc)
            d.addCallback(inc)
            d.callback(0)
        return time.perf_counter() - start

    return _fresh(side)


def _chainOf10(cls: Any, ops: int) -> Callable[[], float]:
    def side() -> float:
        returnArg = _returnArg
        start = time.perf_counter()
        for _ in range(ops):
            ds = [cls() for _ in range(10)]
            for i in range(9):
                ds[i].addCallback(returnArg, ds[i + 1])
            for i in range(9):
                ds[i].callback(None)
            ds[9].callback(1)
        return time.perf_counter() - start

    return _fresh(side)


async def _awaitAll(items: list[Any]) -> int:
    total = 0
    for item in items:
        total += await item
    return total


async def _awaitFresh(succeed: Callable[[int], Any]) -> int:
    total = 0
    for _ in range(10):
        total += await succeed(1)
    return total


def _coroutineFresh(
    fromCoroutine: Callable[[Coroutine[Any, Any, int]], Any], succeed: Callable[[int], Any], ops: int
) -> Callable[[], float]:
    def side() -> float:
        awaitFresh = _awaitFresh
        start = time.perf_counter()
        for _ in range(ops):
            fromCoroutine(awaitFresh(succeed))
        return time.perf_counter() - start

    return _fresh(side)


def _coroutineDeferreds(
    fromCoroutine: Callable[[Coroutine[Any, Any, int]], Any], fired: list[Any], ops: int
) -> Callable[[], float]:
    def side() -> float:
        awaitAll = _awaitAll
        start = time.perf_counter()
        for _ in range(ops):
            fromCoroutine(awaitAll(fired))
        return time.perf_counter() - start

    return _fresh(side)


def _coroutineAsyncio(ops: int, batch: int = 1000) -> Callable[[], float]:
    def side() -> float:
        loop = asyncio.new_event_loop()
        try:
            futures: list[asyncio.Future[int]] = []
            for i in range(10):
                f: asyncio.Future[int] = loop.create_future()
                f.set_result(i)
                futures.append(f)
            awaitAll = _awaitAll
            createTask = loop.create_task
            runUntilComplete = loop.run_until_complete
            start = time.perf_counter()
            for _ in range(ops // batch):
                tasks = [createTask(awaitAll(futures)) for _ in range(batch)]
                runUntilComplete(tasks[-1])
            elapsed = time.perf_counter() - start
            assert all(t.done() for t in tasks)
            return elapsed
        finally:
            loop.close()

    return _fresh(side)


def run(quick: bool) -> list[Comparison]:
    """Run the six comparisons; ``quick`` makes them small enough for a smoke test."""
    scale = 10 if quick else 1
    rounds = 3 if quick else 9
    results: list[Comparison] = []
    sides: dict[str, Any]

    ops = 200_000 // scale
    sides = {"deferthreads": _succeedAlone(succeed, ops)}
    if tdefer is not None:
        sides["twisted 26.10"] = _succeedAlone(tdefer.succeed, ops)
    results.append(
        compare(
            "succeed(1)",
            sides,
            ops,
            rounds=rounds,
            targets=[Target("twisted 26.10", 1.5)],
            # Every row measures whichever reactor._deferred the install loaded (setup.py, mypyc).
            note="reactor._deferred: " + ("compiled by mypyc" if _deferred._compiled else "pure Python"),
        )
    )

    ops = 100_000 // scale // 1000 * 1000
    sides = {"deferthreads": _failAlone(fail, ops)}
    if tdefer is not None:
        sides["twisted 26.10"] = _failAlone(tdefer.fail, ops)
    results.append(
        compare(
            "fail(exc), an exception instance made beforehand",
            sides,
            ops,
            rounds=rounds,
            targets=[Target("twisted 26.10", 1.5)],
        )
    )

    ops = 100_000 // scale
    sides = {"deferthreads": _createAddFire(Deferred, ops)}
    if tdefer is not None:
        sides["twisted 26.10"] = _createAddFire(tdefer.Deferred, ops)
    results.append(
        compare(
            "Deferred: create + 3 callbacks + fire",
            sides,
            ops,
            rounds=rounds,
            targets=[Target("twisted 26.10", 2.0)],
        )
    )

    ops = 20_000 // scale
    sides = {"deferthreads": _chainOf10(Deferred, ops)}
    if tdefer is not None:
        sides["twisted 26.10"] = _chainOf10(tdefer.Deferred, ops)
    results.append(
        compare(
            "Deferred: chain of 10, each callback returning the next unfired one",
            sides,
            ops,
            rounds=rounds,
            targets=[Target("twisted 26.10", 2.0)],
        )
    )

    ops = 50_000 // scale
    sides = {"deferthreads": _coroutineFresh(Deferred.fromCoroutine, succeed, ops)}
    if tdefer is not None:
        sides["twisted 26.10"] = _coroutineFresh(tdefer.Deferred.fromCoroutine, tdefer.succeed, ops)
    results.append(
        compare(
            "coroutine awaiting 10 freshly made succeed(1)",
            sides,
            ops,
            rounds=rounds,
            targets=[Target("twisted 26.10", 2.0)],
        )
    )

    ops = 50_000 // scale // 1000 * 1000
    fired = [succeed(i) for i in range(10)]
    sides = {"deferthreads": _coroutineDeferreds(Deferred.fromCoroutine, fired, ops)}
    if tdefer is not None:
        sides["twisted 26.10"] = _coroutineDeferreds(
            tdefer.Deferred.fromCoroutine, [tdefer.succeed(i) for i in range(10)], ops
        )
    sides["asyncio"] = _coroutineAsyncio(ops)
    results.append(
        compare(
            "coroutine awaiting 10 fired Deferreds (asyncio: 10 done futures, run as a Task)",
            sides,
            ops,
            rounds=rounds,
            targets=[Target("twisted 26.10", 2.0), Target("asyncio", 0.8)],
        )
    )
    return results
