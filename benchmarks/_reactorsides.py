"""Benchmark sides shared by several modules: the same work run on any Twisted-style reactor."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from benchmarks._harness import Side


def callLaterFiredSide(make: Callable[[], Any], total: int,
                       finish: Callable[[Any], None] | None = None) -> Side:
    """``total`` timed calls 0..1 ms ahead on ``make()``'s reactor, timed from the first schedule until
    the last one ran (then ``finish(reactor)``, untimed)."""
    delays = [(i % 100) * 1e-5 for i in range(total)]

    def side() -> float:
        reactor = make()
        remaining = [total]
        end: list[float] = []

        def fired() -> None:
            remaining[0] -= 1
            if remaining[0] == 0:
                end.append(time.perf_counter())
                reactor.stop()

        start = time.perf_counter()
        callLater = reactor.callLater
        for d in delays:
            callLater(d, fired)
        reactor.run(installSignalHandlers=False)
        if finish is not None:
            finish(reactor)
        return end[0] - start

    return side
