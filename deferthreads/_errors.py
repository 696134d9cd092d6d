"""Exceptions raised by the thread pool and the thread bridge.

Each is raised (or errbacked) at once, at the call that cannot be served, so a
caller never waits on work that will not run.
"""

from __future__ import annotations

__all__ = [
    "QueueFull",
    "ReactorThreadError",
    "ThreadPoolStopped",
]


class ThreadPoolStopped(RuntimeError):
    """Work was submitted to a thread pool that is stopped (or stopping with no worker left).

    ``deferToThread`` and ``deferToThreadPool`` deliver it as an immediate
    errback; ``callInThread`` raises it.
    """


class QueueFull(RuntimeError):
    """Work was submitted to a thread pool whose ``queueLimit`` calls are already waiting.

    Raised (or errbacked) at once instead of letting the queue, and memory, grow.
    """


class ReactorThreadError(RuntimeError):
    """A call was made in a thread where it cannot work.

    ``blockingCallFromThread`` raises it in the reactor thread instead of
    deadlocking (the reactor thread would wait for itself); ``deferToThread``
    raises it outside the thread running the reactor, where creating a
    Deferred would break the one-reactor-thread rule.
    """
