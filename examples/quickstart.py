"""A short, runnable tour of deferthreads: Deferreds, the reactor, the thread bridge and adbapi.

    python examples/quickstart.py        (or: make demo)

Every part runs on the real reactor, against real threads and a real SQLite file in a
temporary directory; nothing needs a server. It finishes in a few seconds and exits 0.
Each step checks what it prints, so the test suite runs this file to keep it true.
"""

from __future__ import annotations

import contextvars
import hashlib
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import adbapi_demo  # noqa: E402
import legacy_wrap  # noqa: E402

from deferthreads import ThreadPool, blockingCallFromThread, deferToThread, deferToThreadPool  # noqa: E402
from reactor import CancelledError, Deferred, Failure, inlineCallbacks, succeed  # noqa: E402
from reactor.task import LoopingCall, deferLater, react  # noqa: E402

requestId: contextvars.ContextVar[str] = contextvars.ContextVar("requestId", default="-")


def heading(title: str) -> None:
    print(f"\n== {title} ==")


async def deferreds() -> None:
    heading("Deferreds: a result that is not there yet")
    d: Deferred[str] = Deferred()
    seen: list[object] = []
    d.addCallback(int).addErrback(lambda f: f.trap(ValueError) and -1).addCallback(seen.append)
    d.callback("not a number")
    print(f"callback chain: int('not a number') failed, the errback recovered with {seen[0]}")
    assert seen == [-1]

    @inlineCallbacks
    def legacyStyle(x: int) -> Any:
        doubled = yield succeed(x * 2)
        return doubled + 1

    print(f"inlineCallbacks: {await legacyStyle(20)}; `await` on a Deferred: {await succeed('done')}")

    failed = Deferred[int]()
    failed.errback(Failure(ZeroDivisionError("demo")))
    try:
        await failed
    except ZeroDivisionError as e:
        print(f"a failed Deferred raises its exception at the await: {e!r}")


async def time(reactor: Any) -> None:
    heading("The reactor's clock: callLater, deferLater, LoopingCall")
    started = reactor.seconds()
    ticks: list[int] = []
    loop = LoopingCall(lambda: ticks.append(len(ticks)))
    loop.clock = reactor
    finished = loop.start(0.01, now=True)
    value = await deferLater(reactor, 0.05, lambda: "later")
    loop.stop()
    await finished
    elapsed = reactor.seconds() - started
    print(f"deferLater(0.05) gave {value!r} after {elapsed:.2f}s; LoopingCall(0.01) ticked {len(ticks)}x")
    assert value == "later" and len(ticks) >= 2


def whoAmI(label: str) -> str:
    """Runs in a worker thread: the caller's contextvars came along."""
    return f"{label} ran in {threading.current_thread().name} for request {requestId.get()}"


async def threads(reactor: Any) -> None:
    heading("deferthreads: blocking calls in threads, results back in the reactor thread")
    requestId.set("req-42")
    print(await deferToThread(whoAmI, "deferToThread"))
    digest = await deferToThread(hashlib.pbkdf2_hmac, "sha256", b"password", b"salt", 50_000)
    print(f"pbkdf2_hmac in a worker: {digest.hex()[:16]}...")

    def askTheReactor() -> str:
        # From a worker thread, run something in the reactor thread and wait for it.
        return blockingCallFromThread(reactor, lambda: deferLater(reactor, 0.01, lambda: "from the reactor"))

    print(f"blockingCallFromThread: {await deferToThread(askTheReactor)!r}")

    # A queued call whose Deferred is cancelled never runs.
    pool = ThreadPool(1, 1, name="tour")
    pool.start()
    gate = threading.Event()
    ran: list[str] = []
    blocker = deferToThreadPool(reactor, pool, gate.wait, 5)
    queued = deferToThreadPool(reactor, pool, ran.append, "should not run")
    queued.cancel()
    gate.set()
    await blocker
    try:
        await queued
    except CancelledError:
        print(f"a cancelled queued call never ran: ran={ran}, stats={pool.statistics()}")
    assert ran == []
    await deferToThread(pool.stop)


async def tour(reactor: Any) -> None:
    await deferreds()
    await time(reactor)
    await threads(reactor)
    heading("Wrapping legacy blocking libraries (examples/legacy_wrap.py)")
    await legacy_wrap.tour(reactor)
    heading("adbapi: a connection pool on SQLite (examples/adbapi_demo.py)")
    with tempfile.TemporaryDirectory(prefix="deferthreads-tour-") as workdir:
        await adbapi_demo.main(reactor, workdir)
    print("\nTour finished. Next: `python examples/webapp.py` serves a JSON API on this stack.")


def main(reactor: Any) -> Deferred[None]:
    return Deferred.fromCoroutine(tour(reactor))


if __name__ == "__main__":
    react(main)
