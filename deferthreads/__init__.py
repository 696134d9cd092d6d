"""deferthreads: the bridge between blocking code in threads and the reactor.

* :class:`ThreadPool`: a Twisted-compatible thread pool (grows on demand,
  retires idle workers, optional queue bound, per-worker init/exit hooks,
  cheap :meth:`~ThreadPool.statistics`).
* :class:`ResourcePool`: workers that each own one resource (a client that
  is not thread-safe), opened, checked, replaced and closed in their thread;
  cancelling a running call interrupts it.
* :func:`deferToThread` / :func:`deferToThreadPool`: run a blocking function in
  a worker thread and get a Deferred that fires in the reactor thread.
* :func:`deferToExecutor`: the same for any ``concurrent.futures.Executor`` (a
  process pool, a Dask cluster's executor).
* :func:`blockingCallFromThread`: the other way round, from a worker thread.
* Each reactor's shared pool starts when the reactor runs and is drained (every
  Deferred fired) before ``run()`` returns.
"""

from __future__ import annotations

from deferthreads._blocking import blockingCallFromThread, blockingCallFromThreadWithTimeout
from deferthreads._bridge import deferToThreadPool, drainThreadPool
from deferthreads._errors import QueueFull, ReactorThreadError, ThreadPoolStopped
from deferthreads._executor import deferToExecutor
from deferthreads._interfaces import IThreadPool, IWorker
from deferthreads._resourcepool import IResourcePool, ResourcePool, ResourcePoolStatistics
from deferthreads._resourcework import WaitTimeout
from deferthreads._sharedpool import (
    callMultipleInThread,
    deferToThread,
    getThreadPool,
    setShutdownTimeout,
    suggestThreadPoolSize,
)
from deferthreads._team import ThreadPoolStatistics
from deferthreads._threadpool import ThreadPool

__all__ = [
    "IResourcePool",
    "IThreadPool",
    "IWorker",
    "QueueFull",
    "ReactorThreadError",
    "ResourcePool",
    "ResourcePoolStatistics",
    "ThreadPool",
    "ThreadPoolStatistics",
    "ThreadPoolStopped",
    "WaitTimeout",
    "blockingCallFromThread",
    "blockingCallFromThreadWithTimeout",
    "callMultipleInThread",
    "deferToExecutor",
    "deferToThread",
    "deferToThreadPool",
    "drainThreadPool",
    "getThreadPool",
    "setShutdownTimeout",
    "suggestThreadPoolSize",
]
