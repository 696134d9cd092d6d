"""Side-by-side benchmark harness: our code and a reference, interleaved, in one process.

Absolute times on a shared 2-core machine are noise; what we report is the median
ops/s of each side over several interleaved rounds and the ratio of the medians.
A benchmark module (``bench_*.py``) defines ``run(quick: bool) -> list[Comparison]``
and builds each comparison with :func:`compare`.

A side is a zero-argument callable that performs ``ops`` operations once. It may
return the elapsed seconds it measured itself (to keep setup out of the timing);
otherwise the harness times the whole call.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

Side = Callable[[], "float | None"]


@dataclass(frozen=True)
class Target:
    """``ours / reference >= ratio`` is the goal (a ratio below 1 means "within")."""

    reference: str
    ratio: float


@dataclass
class Comparison:
    """The outcome of one benchmark: median ops/s per side and ratios to ours."""

    name: str
    ops: int
    opsPerSecond: dict[str, float]
    ours: str = "deferthreads"
    targets: list[Target] = field(default_factory=list)
    note: str = ""

    def ratio(self, reference: str) -> float:
        return self.opsPerSecond[self.ours] / self.opsPerSecond[reference]

    def lines(self) -> list[str]:
        out = [f"{self.name}  ({self.ops:,} ops per round)"]
        for side, ops in self.opsPerSecond.items():
            out.append(f"    {side:<28} {ops:>14,.0f} ops/s")
        for side in self.opsPerSecond:
            if side == self.ours:
                continue
            ratio = self.ratio(side)
            goal = next((t for t in self.targets if t.reference == side), None)
            verdict = ""
            if goal is not None:
                verdict = f"  target >= {goal.ratio:.2f}x: {'met' if ratio >= goal.ratio else 'NOT MET'}"
            out.append(f"    ratio vs {side:<19} {ratio:>8.2f}x{verdict}")
        if self.note:
            out.append(f"    note: {self.note}")
        return out


def _timeOnce(side: Side) -> float:
    gc.collect()
    start = time.perf_counter()
    reported = side()
    elapsed = time.perf_counter() - start
    return reported if isinstance(reported, float) else elapsed


def compare(
    name: str,
    sides: dict[str, Side],
    ops: int,
    rounds: int = 7,
    targets: list[Target] | None = None,
    ours: str = "deferthreads",
    warmup: int = 1,
    note: str = "",
) -> Comparison:
    """Run every side ``warmup + rounds`` times, interleaved, and keep the median ops/s.

    Interleaving (ours, ref, ours, ref, ...) spreads the machine's background noise
    over all sides alike; the order is rotated each round so no side always goes first.
    """
    if ours not in sides:
        raise ValueError(f"sides must include ours={ours!r}")
    names = list(sides)
    samples: dict[str, list[float]] = {n: [] for n in names}
    for i in range(warmup + rounds):
        order = names[i % len(names):] + names[: i % len(names)]
        for sideName in order:
            elapsed = _timeOnce(sides[sideName])
            if i >= warmup:
                samples[sideName].append(ops / elapsed)
    result = Comparison(
        name=name,
        ops=ops,
        opsPerSecond={n: statistics.median(samples[n]) for n in names},
        ours=ours,
        targets=list(targets or []),
        note=note,
    )
    print("\n".join(result.lines()), flush=True)
    return result
