"""Run every ``benchmarks/bench_*.py`` (or those named) and print ratios against the references.

Usage: ``python benchmarks/run.py [--quick] [name ...]`` where a name is a module
suffix such as ``deferred`` or ``threads``. A summary of every ratio and target is
printed at the end and written to ``benchmarks/results/latest.md`` (a run of some names only:
``latest-<names>.md``).
"""

from __future__ import annotations

import argparse
import importlib
import pathlib
import platform
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks._harness import Comparison  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer rounds and smaller sizes (a smoke run)")
    parser.add_argument("names", nargs="*", help="benchmark modules to run (default: all)")
    args = parser.parse_args()
    available = sorted(p.stem[len("bench_"):] for p in HERE.glob("bench_*.py"))
    names = args.names or available
    unknown = [n for n in names if n not in available]
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; available: {available}")
    results: list[Comparison] = []
    for name in names:
        print(f"\n=== {name} ===", flush=True)
        module = importlib.import_module(f"benchmarks.bench_{name}")
        results.extend(module.run(quick=args.quick))
    lines = [
        f"# Benchmark summary ({time.strftime('%Y-%m-%d %H:%M')}, Python {platform.python_version()}, "
        f"{platform.machine()})",
        "",
        "| benchmark | reference | ratio | target |",
        "| --- | --- | --- | --- |",
    ]
    for r in results:
        for side in r.opsPerSecond:
            if side == r.ours:
                continue
            goal = next((t for t in r.targets if t.reference == side), None)
            verdict = "-"
            if goal is not None:
                verdict = f">= {goal.ratio:.2f}x {'met' if r.ratio(side) >= goal.ratio else 'NOT MET'}"
            lines.append(f"| {r.name} | {side} | {r.ratio(side):.2f}x | {verdict} |")
    text = "\n".join(lines) + "\n"
    print("\n" + text)
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    # A partial run keeps its own file, so it does not overwrite the full run's summary.
    fileName = "latest.md" if not args.names else f"latest-{'-'.join(names)}.md"
    (out / fileName).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
