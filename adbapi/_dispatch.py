"""Where a call goes, and the states a call passes through. Pure: no thread, no reactor, no database.

A *slot* is a place a call runs: a worker thread of the pool's
:class:`~deferthreads.ResourcePool` with its connection (the thread slots,
``_slots.ThreadSlots``) or a nonblocking connection the reactor drives (a lane,
``_lane._Lane``, psycopg2 only). The router (``_router.CallRouter``) asks the
functions here what to do and does it: :func:`route` says where a new call
goes, :func:`laneNext` what a lane that finished a call does next, and
:func:`holdForWaking` whether a call waits for a woken worker to start first.
Each answers from counts alone and returns an enum, so every rule is tested step
by step from one thread (``tests/test_adbapi_dispatch.py``). The router calls
them with positional arguments (they run for every call; keywords cost more).

A call's life is :class:`CallState`; :data:`TRANSITIONS` is the one table of
the changes the pool makes, and :func:`advance` makes one, checked against it.
The steps every call takes are written directly where the state before is
known (a lane starts a call or takes it from the queue: QUEUED -> RUNNING; a
lane finishes it: RUNNING -> DONE; a worker takes it in ``_holder.serve``, under
the holder's lock: QUEUED -> RUNNING; its outcome comes home: -> DONE), rows of
the same table.

Thread: everything here runs in the reactor thread (or the test's thread).
"""

from __future__ import annotations

import enum
from typing import Protocol

__all__ = [
    "TRANSITIONS",
    "CallKind",
    "CallState",
    "InvalidTransition",
    "LaneNext",
    "Route",
    "advance",
    "holdForWaking",
    "laneNext",
    "route",
]


class CallKind(enum.IntEnum):
    """What a call runs; the first two can run on a lane (one statement, no Python code in between)."""

    QUERY = 1  # runQuery on the fast path: the adapter runs one statement and fetches its rows
    OPERATION = 2  # runOperation on the fast path
    INTERACTION = 3  # pool._runInteraction(func, ...)
    WITH_CONNECTION = 4  # pool._runWithConnection(func, ...)
    RESERVED = 5  # func(holder) holds a worker for an async transaction

    @property
    def laneable(self) -> bool:
        """True when a lane (a reactor-driven connection) can run it."""
        return self <= CallKind.OPERATION


class CallState(enum.Enum):
    """Where a call is in its life (see :data:`TRANSITIONS`)."""

    QUEUED = "queued"  # made, waiting for a slot, or handed to the workers and not yet taken
    RUNNING = "running"  # a slot runs it
    DONE = "done"  # its slot finished it (or the workers gave it back unrun); its outcome is settled next
    BACKOFF = "backoff"  # failed, waiting for its retry timer
    CANCELLED = "cancelled"  # dropped before it ran: cancelled, timed out waiting, refused, pool closed

    # Members are singletons compared by identity: hash them by identity too, in C. (Enum's own __hash__
    # is Python code, and advance() looks a state up in TRANSITIONS at every step of every call.)
    __hash__ = object.__hash__


#: Every change of state the pool makes. A call starts QUEUED.
TRANSITIONS: dict[CallState, frozenset[CallState]] = {
    # Taken by a slot; given back by the workers unrun (cancelled, timed out, abandoned); dropped.
    CallState.QUEUED: frozenset({CallState.RUNNING, CallState.DONE, CallState.CANCELLED}),
    CallState.RUNNING: frozenset({CallState.DONE}),
    CallState.DONE: frozenset({CallState.BACKOFF}),  # a failure the retry policy retries
    # The retry timer fired: a lane runs it at once, or it waits for the workers; or it is dropped.
    CallState.BACKOFF: frozenset({CallState.QUEUED, CallState.RUNNING, CallState.CANCELLED}),
    CallState.CANCELLED: frozenset(),
}


class InvalidTransition(RuntimeError):
    """A call was moved to a state :data:`TRANSITIONS` does not allow (a bug in the pool)."""


class _Stateful(Protocol):
    state: CallState


def advance(call: _Stateful, new: CallState) -> None:
    """Move ``call`` to ``new``; raises :class:`InvalidTransition` if the table forbids it."""
    if new not in TRANSITIONS[call.state]:
        raise InvalidTransition(f"a call cannot go from {call.state.name} to {new.name}")
    call.state = new


class Route(enum.Enum):
    """Where :func:`route` sends a new call."""

    IDLE_LANE = "idle lane"  # the most recently idle lane runs it (no thread hand-off)
    NEW_LANE = "new lane"  # a lane opened for it (a free slot, no idle worker)
    THREADS = "threads"  # the worker threads (the resource pool starts a worker or queues it)
    LANE_TO_THREADS = "lane to threads"  # the longest idle lane closes; its slot becomes a worker for it
    WAIT_FOR_LANE = "wait for lane"  # every slot is a busy lane: it waits for the first to finish


def route(kind: CallKind, lanes: bool, reactorRunning: bool, idleLanes: int, openLanes: int,
          workers: int, busy: int, maxSlots: int) -> Route:
    """Where a new (or retried) call of ``kind`` goes.

    ``lanes``: the pool can run lanes; ``reactorRunning``: a lane can make
    progress now; ``idleLanes``/``openLanes``: lanes idle/open; ``workers``/``busy``:
    worker threads and the calls on them (``ThreadSlots.load``); ``maxSlots``: ``cp_max``.
    A statement prefers an idle lane, then an idle worker, then a new lane;
    anything else needs a worker, and takes an idle lane's slot when the
    workers have no room.
    """
    if not lanes:
        return Route.THREADS  # the resource pool's maximum is cp_max: it starts a worker or queues
    if kind <= CallKind.OPERATION and reactorRunning:
        if idleLanes:
            return Route.IDLE_LANE
        if workers > busy:
            return Route.THREADS
        if openLanes + workers < maxSlots:
            return Route.NEW_LANE
        if workers:
            return Route.THREADS
        return Route.WAIT_FOR_LANE
    if workers > busy or workers + openLanes < maxSlots:
        return Route.THREADS
    if idleLanes:
        return Route.LANE_TO_THREADS
    if workers or not openLanes:
        return Route.THREADS
    return Route.WAIT_FOR_LANE


class LaneNext(enum.Enum):
    """What a lane that finished a call does next (:func:`laneNext`)."""

    RUN = "run"  # run the oldest waiting call
    HAND_TO_THREADS = "hand to threads"  # the oldest waiting call needs a worker: the lane closes for it
    IDLE = "idle"  # nothing waits: go on the idle stack
    RETIRE = "retire"  # nothing waits and it may not idle (no connection, or the pool is closing): close


def laneNext(waiting: CallKind | None, canIdle: bool, closing: bool) -> LaneNext:
    """The next step of a lane that finished a call; ``waiting`` is the oldest waiting call's kind."""
    if waiting is not None:
        return LaneNext.RUN if waiting <= CallKind.OPERATION else LaneNext.HAND_TO_THREADS
    if canIdle and not closing:
        return LaneNext.IDLE
    return LaneNext.RETIRE


def holdForWaking(workers: int, busy: int, waiting: int) -> bool:
    """While a woken worker has not taken its call yet: must the next ``waiting`` calls wait for it?

    Yes while some worker would still be idle after they were handed over (a
    second call could be taken by the woken worker and its call by a colder
    one). No when no worker is idle, or there are more calls than workers:
    every worker gets one anyway and the rest queue, first in, first out.
    """
    return busy < workers and busy + waiting <= workers
