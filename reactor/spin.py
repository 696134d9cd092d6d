"""Spin-then-block waiting, for thread machines built on the reactor (public, low level).

deferthreads' workers and the reactor's loop wait for each other's work the same way: look
for the next piece of work for a short while, with the GIL released between looks, before
blocking. This module is the public face of that mechanism, so that the packages above the
reactor (and users building their own worker machinery) depend on a stable API instead of
the reactor's private modules:

* :class:`SpinPolicy`: when a waiter spins and for how long, backing off while spins come
  back empty;
* :func:`pause`: one short pause with the GIL released (its length is calibrated to the
  machine once per process);
* :func:`checkSpin`: validates a ``spinTime`` argument, naming it in the error;
* :data:`DEFAULT_SPIN`: the default ``spinTime`` in seconds;
* :func:`perfCounter`: the clock spins are timed with;
* :func:`spinCalibration` / :class:`SpinCalibration`: what the run-time calibration chose.

Every function here may be called from any thread.
"""

from __future__ import annotations

from reactor._spinwait import (
    DEFAULT_SPIN,
    SpinCalibration,
    SpinPolicy,
    checkSpin,
    pause,
    perfCounter,
    spinCalibration,
)

__all__ = [
    "DEFAULT_SPIN",
    "SpinCalibration",
    "SpinPolicy",
    "checkSpin",
    "pause",
    "perfCounter",
    "spinCalibration",
]
