"""ResourcePool against the do-it-yourself equivalent: a ThreadPool with a ``threading.local`` resource.

Both sides run a trivial call on a per-thread resource (a counter bumped on an
object each worker opened once): ours as ``ResourcePool.run(f)`` (which also
counts the resource's use and tracks it for ``interrupt``, ``check`` and
``maxLifetime``), the reference as ``deferToThreadPool(reactor, pool, f)`` on a
``ThreadPool`` whose ``f`` fetches its resource from a ``threading.local``. Same
reactor, same pool size (4 workers), same loop thread. The ratio says what the
resource bookkeeping costs per call; the target is to stay within 20% of the
reference.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from benchmarks._harness import Comparison, Target, compare
from deferthreads import ResourcePool, ThreadPool, deferToThreadPool
from reactor import Deferred, gatherResults
from reactor._loop import Reactor

POOL_SIZE = 4
OURS = "ResourcePool.run"
REFERENCE = "deferToThreadPool + local"


class Resource:
    """A stand-in for a client: opened once per worker thread, used by every call there."""

    def __init__(self) -> None:
        self.uses = 0


def touch(resource: Resource) -> int:
    resource.uses += 1
    return resource.uses


_local = threading.local()


def touchLocal() -> int:
    # The reference: find (or open) this thread's resource, then the same work.
    try:
        resource: Resource = _local.resource
    except AttributeError:
        resource = _local.resource = Resource()
    resource.uses += 1
    return resource.uses


class _LoopThread:
    """Our reactor, run in a daemon thread; ``roundTrip(start)`` runs ``start(done)`` in it and waits."""

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


def run(quick: bool) -> list[Comparison]:
    seqN = 1_000 if quick else 20_000
    burstN = 2_000 if quick else 20_000
    rounds = 3 if quick else 7
    loop = _LoopThread()
    reactor = loop.reactor
    pools: dict[str, Any] = {}

    def setUp(done: Callable[[], None]) -> None:
        # In the reactor thread: the resource pool starts at once (the reactor runs) and is drained
        # at its shutdown; the thread pool is stopped below.
        pools["ours"] = ResourcePool(
            Resource, lambda resource: None, minthreads=POOL_SIZE, maxthreads=POOL_SIZE,
            name="bench-resources", reactor=reactor,
        )
        threadPool = ThreadPool(POOL_SIZE, POOL_SIZE, "bench-local")
        threadPool.start()
        pools["reference"] = threadPool
        done()

    loop.roundTrip(setUp)
    ours: ResourcePool[Resource] = pools["ours"]
    reference: ThreadPool = pools["reference"]
    results: list[Comparison] = []
    try:

        def oursSequential(done: Callable[[], None]) -> None:
            async def body() -> None:
                for _ in range(seqN):
                    await ours.run(touch)
                done()

            Deferred.fromCoroutine(body())

        def referenceSequential(done: Callable[[], None]) -> None:
            async def body() -> None:
                for _ in range(seqN):
                    await deferToThreadPool(reactor, reference, touchLocal)
                done()

            Deferred.fromCoroutine(body())

        results.append(
            compare(
                f"resource calls, sequential: {seqN:,} calls, each awaited before the next",
                {
                    OURS: lambda: loop.roundTrip(oursSequential),
                    REFERENCE: lambda: loop.roundTrip(referenceSequential),
                },
                ops=seqN,
                rounds=rounds,
                ours=OURS,
                targets=[Target(REFERENCE, 0.8)],
            )
        )

        def oursBurst(done: Callable[[], None]) -> None:
            gatherResults([ours.run(touch) for _ in range(burstN)]).addCallback(lambda _: done())

        def referenceBurst(done: Callable[[], None]) -> None:
            ds = [deferToThreadPool(reactor, reference, touchLocal) for _ in range(burstN)]
            gatherResults(ds).addCallback(lambda _: done())

        results.append(
            compare(
                f"resource calls, burst: {burstN:,} calls at once, then gathered",
                {
                    OURS: lambda: loop.roundTrip(oursBurst),
                    REFERENCE: lambda: loop.roundTrip(referenceBurst),
                },
                ops=burstN,
                rounds=rounds,
                ours=OURS,
                targets=[Target(REFERENCE, 0.8)],
            )
        )
    finally:
        reference.stop(timeout=30)
        loop.stop()
    return results
