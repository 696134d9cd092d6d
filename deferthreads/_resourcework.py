"""The resource side of a :class:`~deferthreads.ResourcePool`: one resource per worker, and calls on it.

A :class:`ResourceKeeper` holds the user's hooks (``create``, ``close``,
``check``, ``interrupt``, ``isBroken``) and the rules for when a resource is
opened, checked, replaced and closed. It plugs into a
:class:`~deferthreads._team.Team` through the team's ``workerInit`` /
``workerExit`` hooks (which open and close the worker's resource in the
worker's own thread) and through :class:`ResourceWorkItem`, the work item that
finds its worker's resource (``Team.currentWorker``) and passes it to the
call. The team's dispatch, parking, spinning and retirement are used as they
are: this module adds no thread and no queue.

Ownership:

* A :class:`ResourceSlot` (one per worker) is written only by its worker's
  thread, except ``running``/``interruptedItem``, which are read and written
  under the slot's ``lock`` (only when the pool has an ``interrupt`` hook):
  the worker sets ``running`` before the call and clears it after, and the
  canceller (reactor thread) calls ``interrupt`` while holding the lock and
  only if ``running`` is still its item. So an interrupt never lands on the
  next call run on the same resource. For the same reason a resource is
  detached from its slot under the lock before it is closed (so ``interrupt``
  never gets a resource being closed), and a new one is attached under it.
* A :class:`ResourceWorkItem` is claimed exactly once, by whoever first pops
  its one-byte ``claim`` (``bytearray.pop`` is atomic, and a bytearray is not
  tracked by the garbage collector, which matters in a burst): the worker that
  runs it, a cancel while it is queued, its wait timeout, or a stop that
  abandons it. Only the winner reports the outcome.
* The keeper's counters are guarded by its ``_lock`` (they change on rare
  events: a resource opened, closed, found broken; never per call).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextvars import Context
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from deferthreads._interfaces import IWorker
from deferthreads._workitem import WorkItem
from reactor import CancelledError, Deferred, Failure

if TYPE_CHECKING:
    from deferthreads._bridge import ResultSink
    from deferthreads._team import Team

__all__ = ["WaitTimeout"]

ErrorFactory = Callable[[str], BaseException]

log = logging.getLogger("deferthreads")

_Res = TypeVar("_Res")

_ONE = b"\x01"


class WaitTimeout(TimeoutError):
    """A call waited longer than the pool's ``waitTimeout`` for a free worker; it never ran.

    A subclass of the builtin ``TimeoutError``: the pool is saturated (every
    worker busy for that long), which is backpressure the caller should see.
    """


class ResourceSlot(Generic[_Res]):
    """One worker's resource, its times, and the call running on it.

    ``resource``, ``hasResource``, ``createdAt`` and ``lastUsed`` are written by
    the worker's own thread only; ``running`` and ``interruptedItem`` under
    ``lock`` (see the module docstring).
    """

    __slots__ = (
        "createdAt",
        "hasResource",
        "lastUsed",
        "lock",
        "opening",
        "resource",
        "running",
        "thread",
        "worker",
    )

    def __init__(self, worker: IWorker, thread: threading.Thread) -> None:
        self.worker = worker
        self.thread = thread  # the worker's thread, handed to interrupt()
        self.resource: _Res | None = None
        self.hasResource = False  # create() may legitimately return None: this says whether one is open
        self.createdAt = 0.0
        self.lastUsed = 0.0
        self.opening = False  # create() runs now (so a currentResource() inside it cannot recurse)
        self.lock = threading.Lock()
        self.running: ResourceWorkItem[_Res] | None = None


class ResourceKeeper(Generic[_Res]):
    """The hooks and the rules: open, check, expire, mark broken, close (each in the worker's thread).

    ``team`` is set once, right after the team is made (the team is built with
    this keeper's ``workerInit`` / ``workerExit``).
    """

    team: Team
    currentWorker: Callable[[], IWorker | None]  # team.currentWorker, bound once

    def __init__(
        self,
        name: str,
        create: Callable[[], _Res],
        close: Callable[[_Res], object],
        *,
        check: Callable[[_Res], object] | None,
        checkAfterIdle: float,
        maxLifetime: float | None,
        interrupt: Callable[[_Res, threading.Thread], object] | None,
        isBroken: Callable[[_Res, BaseException], bool] | None,
        waitTimeout: float | None,
        now: Callable[[], float],
        waitTimeoutError: ErrorFactory = WaitTimeout,
        abandonedRunningError: ErrorFactory = CancelledError,
        abandonedQueuedError: ErrorFactory = CancelledError,
    ) -> None:
        self.name = name
        self.create = create
        self.close = close
        self.check = check
        self.checkAfterIdle = checkAfterIdle
        self.maxLifetime = maxLifetime
        self.interrupt = interrupt
        self.isBroken = isBroken
        self.waitTimeout = waitTimeout
        self.now = now
        self.waitTimeoutError = waitTimeoutError
        self.abandonedRunningError = abandonedRunningError
        self.abandonedQueuedError = abandonedQueuedError
        # Nothing to decide before a call on an open resource: the per-call path skips prepare().
        self.plain = check is None and maxLifetime is None
        # ... nor around it (no interrupt to guard against, no wait to time).
        self.simple = self.plain and interrupt is None and waitTimeout is None
        self.slots: dict[IWorker, ResourceSlot[_Res]] = {}  # each worker adds and removes its own entry
        self._lock = threading.Lock()
        # Guarded by _lock:
        self.created = 0
        self.closed = 0
        self.createFailed = 0
        self.closeFailed = 0
        self.checksFailed = 0
        self.expired = 0
        self.broken = 0
        self.interrupted = 0
        self.timedOut = 0
        self.replaced = 0

    def count(self, field: str, n: int = 1) -> None:
        """Add ``n`` to the counter ``field`` (any thread)."""
        with self._lock:
            setattr(self, field, getattr(self, field) + n)

    def counters(self) -> dict[str, int]:
        """A snapshot of the counters (any thread)."""
        with self._lock:
            return {
                "created": self.created,
                "closed": self.closed,
                "createFailed": self.createFailed,
                "closeFailed": self.closeFailed,
                "checksFailed": self.checksFailed,
                "expired": self.expired,
                "broken": self.broken,
                "interrupted": self.interrupted,
                "timedOut": self.timedOut,
                "replaced": self.replaced,
            }

    def makeError(self, factory: ErrorFactory, default: ErrorFactory, message: str) -> BaseException:
        """``factory(message)``: the exception a call fails with; ``default(message)`` if the hook misbehaves.

        A hook that raises, or returns something that is not an exception, is
        logged: the call still fails, with the default type, never hangs.
        """
        try:
            error = factory(message)
        except Exception:
            log.exception("%s: the error hook %r raised; using %s", self.name, factory, default)
            return default(message)
        if not isinstance(error, BaseException):
            log.error("%s: the error hook %r returned %r, not an exception; using %s", self.name, factory,
                      error, default)
            return default(message)
        return error

    # -- the team's per-worker hooks (worker thread) -----------------------------------------

    def workerInit(self) -> None:
        """A worker starts: give it a slot and open its resource (a failure is logged; the call retries)."""
        worker = self.team.currentWorker()
        assert worker is not None, "workerInit runs inside Team.workerStarted"
        slot: ResourceSlot[_Res] = ResourceSlot(worker, threading.current_thread())
        self.slots[worker] = slot
        try:
            self.open(slot)
        except BaseException:
            log.exception("%s: create() failed as %s started; its first call retries", self.name, worker.name)

    def workerExit(self) -> None:
        """A worker exits (idle retirement or stop): close its resource, in its thread."""
        worker = self.team.currentWorker()
        slot = self.slots.pop(worker, None) if worker is not None else None
        if slot is not None and slot.hasResource:
            self.closeResource(slot)

    # -- the resource's life (worker thread) ---------------------------------------------------

    def open(self, slot: ResourceSlot[_Res]) -> _Res:
        """Run ``create()`` and keep its resource in ``slot``; count a failure and re-raise it."""
        slot.opening = True
        try:
            resource = self.create()
        except BaseException:
            self.count("createFailed")
            raise
        finally:
            slot.opening = False
        slot.createdAt = slot.lastUsed = self.now()
        if self.interrupt is not None:
            with slot.lock:  # interruptRunning reads the pair under it
                slot.resource = resource
                slot.hasResource = True
        else:
            slot.resource = resource
            slot.hasResource = True
        self.count("created")
        return resource

    def closeResource(self, slot: ResourceSlot[_Res]) -> None:
        """Forget ``slot``'s resource and ``close()`` it; an exception from ``close`` is logged."""
        resource = cast(_Res, slot.resource)
        if self.interrupt is not None:
            # Detached under the lock: an interrupt() under way finishes first, and none starts on a
            # resource being closed. close() itself runs without the lock (it may block).
            with slot.lock:
                slot.resource = None
                slot.hasResource = False
        else:
            slot.resource = None
            slot.hasResource = False
        try:
            self.close(resource)
        except BaseException:
            self.count("closeFailed")
            log.exception("%s: close(%r) failed in %s", self.name, resource, slot.worker.name)
        self.count("closed")

    def current(self, slot: ResourceSlot[_Res]) -> _Res:
        """The resource of ``slot``, opened now if it has none (``ResourcePool.currentResource``)."""
        if slot.hasResource:
            return cast(_Res, slot.resource)
        if slot.opening:
            raise RuntimeError(f"{self.name}: currentResource() called from create(), which is opening it")
        return self.open(slot)

    def replace(self, slot: ResourceSlot[_Res]) -> None:
        """Close ``slot``'s resource now (``ResourcePool.replaceResource``); its next use opens another."""
        if slot.hasResource:
            self.count("replaced")
            self.closeResource(slot)

    def prepare(self, slot: ResourceSlot[_Res]) -> _Res:
        """The resource to run the next call on: replaced if expired or failing its check, opened if none.

        Raises what ``create()`` raised when a new resource was needed and could not be made.
        """
        if slot.hasResource:
            resource = cast(_Res, slot.resource)
            if self.maxLifetime is None and self.check is None:
                return resource
            now = self.now()
            if self.maxLifetime is not None and now - slot.createdAt >= self.maxLifetime:
                self.count("expired")
                self.closeResource(slot)
            elif self.check is not None and now - slot.lastUsed >= self.checkAfterIdle:
                passed = self._passes(resource, slot)
                if passed and slot.hasResource:
                    return resource
                if not passed:
                    self.count("checksFailed")
                if slot.hasResource:  # (a check that called replaceResource() closed it already)
                    self.closeResource(slot)
            else:
                return resource
        return self.open(slot)

    def _passes(self, resource: _Res, slot: ResourceSlot[_Res]) -> bool:
        check = cast(Callable[[_Res], object], self.check)
        try:
            return check(resource) is not False
        except Exception:
            log.info("%s: check(%r) failed in %s; replacing it", self.name, resource, slot.worker.name,
                     exc_info=True)
            return False

    def afterFailure(self, slot: ResourceSlot[_Res], error: BaseException, interrupted: bool) -> None:
        """A call on ``slot``'s resource raised ``error``: close the resource if it is broken.

        ``isBroken(resource, error)`` decides (an exception from it counts as
        broken); without that hook a resource is replaced only after a call
        that was interrupted, whose state nobody knows.
        """
        if not slot.hasResource:
            return  # the call closed it itself (through a hook), or it was never opened
        resource = cast(_Res, slot.resource)
        if self.isBroken is None:
            broken = interrupted
        else:
            try:
                broken = bool(self.isBroken(resource, error))
            except Exception:
                log.exception("%s: isBroken(%r, ...) raised; counted as broken", self.name, resource)
                broken = True
        if broken and slot.hasResource:  # (an isBroken that called replaceResource() closed it already)
            self.count("broken")
            self.closeResource(slot)

    # -- cancelling a started call (reactor thread) --------------------------------------------

    def interruptRunning(self, item: ResourceWorkItem[_Res]) -> None:
        """Call ``interrupt(resource, thread)`` if ``item`` is running on its resource right now."""
        interrupt = self.interrupt
        slot = item.slot
        if interrupt is None or slot is None:
            return
        with slot.lock:
            # Held while interrupt() runs: the worker cannot leave the call and start the next one
            # on this resource until it returns, so the interrupt reaches this call or none.
            if slot.running is not item:
                return
            item.interrupted = True
            if not slot.hasResource:
                return  # the call closed its resource (replaceResource) and has not opened another
            self.count("interrupted")
            try:
                interrupt(cast(_Res, slot.resource), slot.thread)
            except Exception:
                log.exception("%s: interrupt() failed for a call in %s", self.name, slot.worker.name)


class ResourceWorkItem(WorkItem, Generic[_Res]):
    """One ``pool.run(f, ...)`` call: ``f(resource, *args, **kwargs)`` on the running worker's resource.

    The item stands in for its Deferred in the reactor's result sink (it has
    the ``called`` / ``callback`` / ``errback`` the sink uses, run in the
    reactor thread), so that a cancelled call's Deferred, held paused, is
    released once the call has stopped. It is also the Deferred's canceller
    (:meth:`__call__`).
    """

    __slots__ = (
        "cancelRequested",
        "claim",
        "deferred",
        "heldPaused",
        "interrupted",
        "keeper",
        "sink",
        "slot",
        "timer",
    )

    #: Read by the result sink: the item always takes its outcome (it decides what the Deferred gets).
    called = False

    deferred: Deferred[Any]

    def __init__(
        self,
        keeper: ResourceKeeper[_Res],
        sink: ResultSink,
        f: Callable[..., object],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        context: Context,
    ) -> None:
        # WorkItem's fields, set here rather than through its __init__ (one call less per item, as
        # the bridge's DeferredWorkItem does).
        self.f = f
        self.args = args
        self.kwargs = kwargs
        self.context = context
        self.cancelled = False
        self.enqueuedAt = 0.0
        self.keeper = keeper
        self.sink = sink
        self.claim = bytearray(_ONE)  # popped once, by whoever decides this call's fate first
        self.slot: ResourceSlot[_Res] | None = None  # set by the worker before it claims the item
        self.cancelRequested = False  # set in the reactor thread by a cancel that came too late to dequeue
        self.interrupted = False  # interrupt() was called on the call's resource (under the slot lock)
        self.heldPaused = False  # the canceller paused the Deferred: release it when the outcome arrives
        self.timer: Any = None  # the waitTimeout DelayedCall (reactor thread)

    # -- worker thread -------------------------------------------------------------------------

    def execute(self, returned: Callable[[], object]) -> bool:
        """Prepare the worker's resource and run the call on it; hand the outcome to the sink."""
        keeper = self.keeper
        slot = keeper.slots[keeper.currentWorker()]  # type: ignore[index]
        self.slot = slot
        try:
            self.claim.pop()
        except IndexError:
            returned()
            return True  # a cancel or a timeout decided first and reported it
        # The sink takes this item in place of its Deferred (see the class docstring). Under a backlog
        # the outcome may wait for the sink's flush timer (deferthreads._bridge explains why).
        put = self.sink.putHeld if keeper.team.backlogged() else self.sink.put
        if keeper.simple and slot.hasResource and not self.cancelRequested:
            # The per-call path: no hook to consult before or around the call.
            try:
                result = self.context.run(self.f, slot.resource, *self.args, **self.kwargs)
            except BaseException as e:
                failure = Failure()
                keeper.afterFailure(slot, e, False)
                returned()
                put(self, False, failure)  # type: ignore[arg-type]
                return False
            returned()
            put(self, True, result)  # type: ignore[arg-type]
            return True
        timeout = keeper.waitTimeout
        if timeout is not None:
            waited = keeper.now() - self.enqueuedAt
            if waited > timeout:
                keeper.count("timedOut")
                returned()
                put(self, False, Failure(self.timeoutError(waited)))  # type: ignore[arg-type]
                return False
        if keeper.plain and slot.hasResource:
            resource = slot.resource  # no check, no lifetime: nothing to decide (the per-call path)
        else:
            try:
                resource = keeper.prepare(slot)
            except BaseException:
                failure = Failure()
                returned()
                put(self, False, failure)  # type: ignore[arg-type]
                return False
        lock = slot.lock if keeper.interrupt is not None else None
        if lock is not None:
            with lock:
                skip = self.cancelRequested
                if not skip:
                    slot.running = self
        else:
            skip = self.cancelRequested
        if skip:
            returned()
            put(self, False, Failure(CancelledError("cancelled before it started")))  # type: ignore[arg-type]
            return False
        try:
            result = self.context.run(self.f, resource, *self.args, **self.kwargs)
        except BaseException as e:
            failure = Failure()
            if lock is not None:
                with lock:
                    slot.running = None
            if keeper.check is not None:
                slot.lastUsed = keeper.now()
            keeper.afterFailure(slot, e, self.interrupted)
            returned()
            put(self, False, failure)  # type: ignore[arg-type]
            return False
        if lock is not None:
            with lock:
                slot.running = None
        if keeper.check is not None:
            slot.lastUsed = keeper.now()  # idle time is what check() is timed by
        returned()
        put(self, True, result)  # type: ignore[arg-type]
        return True

    def timeoutError(self, waited: float) -> BaseException:
        """The pool's ``waitTimeoutError`` (default :class:`WaitTimeout`), its message saying how busy."""
        keeper = self.keeper
        stats = keeper.team.statistics()
        message = (
            f"{keeper.name}: the call waited {waited:.3f}s for a free worker (waitTimeout="
            f"{keeper.waitTimeout}s) and was not run; {stats.busy} of {keeper.team.maxWorkers} "
            f"workers busy, {stats.queued} calls queued"
        )
        return keeper.makeError(keeper.waitTimeoutError, WaitTimeout, message)

    def abandon(self, reason: Failure) -> None:
        """The call will never run (the pool stopped): errback its Deferred with ``reason`` (via the sink)."""
        try:
            self.claim.pop()
        except IndexError:
            return
        self.sink.put(self, False, reason)  # type: ignore[arg-type]

    # -- reactor thread --------------------------------------------------------------------------

    def callback(self, result: Any) -> None:
        """The sink delivers a result (reactor thread)."""
        d = self.deferred
        if self.timer is None and not self.heldPaused and not d.called:
            try:
                d.callback(result)  # the per-call path
            except TypeError:
                if not d.called:  # the call returned a Deferred, which a Deferred cannot carry
                    d.errback(Failure())
            return
        self._deliver(True, result)

    def errback(self, failure: Any) -> None:
        """The sink delivers a failure (reactor thread)."""
        self._deliver(False, failure)

    def _deliver(self, ok: bool, value: Any) -> None:
        if self.timer is not None:
            if self.timer.active():
                self.timer.cancel()
            self.timer = None
        d = self.deferred
        if self.heldPaused:
            # Cancelled while it ran: the Deferred holds its CancelledError; now the call has stopped.
            self.heldPaused = False
            d.unpause()
            return
        if d.called:
            return
        if ok:
            try:
                d.callback(value)
            except TypeError:
                if not d.called:  # the call returned a Deferred, which a Deferred cannot carry
                    d.errback(Failure())
        else:
            d.errback(value)

    def __call__(self, deferred: Deferred[Any]) -> None:
        """The canceller: a queued call is dropped at once; a running one is interrupted, then released."""
        try:
            self.claim.pop()
        except IndexError:
            pass
        else:
            self.keeper.team.discard(self)
            self._cancelTimer()
            return  # Deferred.cancel errbacks CancelledError now: the call never runs
        if self.cancelRequested:
            return
        self.cancelRequested = True
        # Deferred.cancel errbacks CancelledError once this returns; held paused, its callbacks run
        # only when the call's outcome arrives, i.e. once the call has stopped using the resource.
        deferred.pause()
        self.heldPaused = True
        self.keeper.interruptRunning(self)

    def expire(self) -> None:
        """The wait timeout (reactor thread): a call still queued fails with :class:`WaitTimeout`."""
        self.timer = None
        try:
            self.claim.pop()
        except IndexError:
            return
        self.keeper.team.discard(self)
        self.keeper.count("timedOut")
        waited = self.keeper.now() - self.enqueuedAt
        self.deferred.errback(Failure(self.timeoutError(waited)))

    def forceCancel(self, reason: Failure | None = None) -> None:
        """At a stop timeout (reactor thread): interrupt the call and errback now, without waiting for it.

        The Deferred errbacks ``reason`` (``None``: ``CancelledError``, as a
        cancel would). The call's late outcome is then dropped.
        """
        d = self.deferred
        if not d.called:
            if reason is None:
                d.cancel()  # the canceller interrupts it and holds the Deferred paused: released below
            else:
                try:
                    self.claim.pop()
                except IndexError:
                    # It runs: ask it to stop (the worker checks cancelRequested before it starts the call).
                    self.cancelRequested = True
                    self.keeper.interruptRunning(self)
                # (Claimed just now instead: the worker that dequeued it finds the claim gone and skips it.)
                self._cancelTimer()
                d.errback(reason)
        if self.heldPaused:
            # Cancelled before (or just now): the Deferred holds its CancelledError; let it go now.
            self.heldPaused = False
            d.unpause()

    def _cancelTimer(self) -> None:
        timer = self.timer
        if timer is not None:
            self.timer = None
            if timer.active():
                timer.cancel()
