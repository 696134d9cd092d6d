"""Deterministic tests of adbapi's dispatch rules: the pure functions the call router follows.

``_dispatch.route`` (where a new call goes), ``_dispatch.laneNext`` (what a lane
that finished a call does next), ``_dispatch.holdForWaking`` (whether calls wait
for a woken worker) and the call-state table are driven here step by step from
counts alone: no thread, no reactor, no database. The router
(``adbapi/_router.py``) does what they return; the behaviour tests check the
whole pool.
"""

from __future__ import annotations

from typing import Any

import pytest

from adbapi._dispatch import (
    TRANSITIONS,
    CallKind,
    CallState,
    InvalidTransition,
    LaneNext,
    Route,
    advance,
    holdForWaking,
    laneNext,
    route,
)


class FakeCall:
    """A call as advance() sees it."""

    def __init__(self) -> None:
        self.state = CallState.QUEUED


def where(kind: CallKind = CallKind.QUERY, **counts: Any) -> Route:
    """route() with the lanes on, the reactor running, cp_max 4 and nothing open, unless ``counts`` says."""
    given: dict[str, Any] = {"lanes": True, "reactorRunning": True, "idleLanes": 0, "openLanes": 0,
                             "workers": 0, "busy": 0, "maxSlots": 4}
    given.update(counts)
    return route(kind, **given)


# -- route(): where a new call goes --


def test_everyCallGoesToTheThreadsWithoutLanes() -> None:
    """A pool with no lanes hands every kind of call to the worker threads (they queue it when busy)."""
    for kind in CallKind:
        assert where(kind, lanes=False, workers=4, busy=4) is Route.THREADS


def test_aStatementTakesTheIdleLaneFirst() -> None:
    """An idle lane beats an idle worker: no thread hand-off."""
    assert where(idleLanes=1, openLanes=1, workers=2, busy=0) is Route.IDLE_LANE


def test_aStatementTakesAnIdleWorkerBeforeOpeningALane() -> None:
    """No idle lane, an idle worker: the worker runs it (its connection is open already)."""
    assert where(openLanes=1, workers=2, busy=1) is Route.THREADS


def test_aStatementOpensANewLaneWhileSlotsAreFree() -> None:
    """No idle slot and room under cp_max: a new lane is opened for it."""
    assert where(openLanes=1, workers=1, busy=1) is Route.NEW_LANE
    assert where() is Route.NEW_LANE


def test_aStatementQueuesOnTheWorkersWhenEverySlotIsBusyAndSomeAreWorkers() -> None:
    """cp_max reached with workers among the slots: the resource pool's queue takes it."""
    assert where(openLanes=2, workers=2, busy=2) is Route.THREADS


def test_aStatementWaitsForALaneWhenEverySlotIsABusyLane() -> None:
    """cp_max reached by busy lanes alone: it waits in the router's queue for the first lane to finish."""
    assert where(openLanes=4) is Route.WAIT_FOR_LANE


def test_aStatementNeedsAWorkerWhileTheReactorIsNotRunning() -> None:
    """A lane cannot make progress without the reactor: statements take the workers' rules then."""
    assert where(reactorRunning=False, idleLanes=1, openLanes=1) is Route.THREADS
    assert where(reactorRunning=False, idleLanes=1, openLanes=4) is Route.LANE_TO_THREADS


def test_anInteractionGoesToTheThreadsWhileTheyHaveRoom() -> None:
    """Only a worker runs Python code: an idle worker, or room for a new one, takes it."""
    assert where(CallKind.INTERACTION, idleLanes=2, openLanes=2, workers=1, busy=0) is Route.THREADS
    assert where(CallKind.INTERACTION, idleLanes=2, openLanes=2, workers=1, busy=1) is Route.THREADS


def test_anInteractionTakesAnIdleLanesSlotWhenTheWorkersHaveNoRoom() -> None:
    """cp_max reached with an idle lane: the lane closes and its slot becomes a worker for the call."""
    assert where(CallKind.INTERACTION, idleLanes=1, openLanes=3, workers=1, busy=1) is Route.LANE_TO_THREADS


def test_anInteractionQueuesOnBusyWorkers() -> None:
    """cp_max reached, no idle lane, some workers: it queues on the workers."""
    assert where(CallKind.WITH_CONNECTION, openLanes=2, workers=2, busy=2) is Route.THREADS


def test_anInteractionWaitsForALaneWhenEverySlotIsABusyLane() -> None:
    """cp_max reached by busy lanes: the first lane to finish gives its slot to a worker for it."""
    assert where(CallKind.RESERVED, openLanes=4) is Route.WAIT_FOR_LANE


def test_theRoutersShortcutsAreRoutesAnswers() -> None:
    """The router answers the commonest cases without calling route(): they must be route()'s answers.

    A statement with the reactor running takes an idle lane whatever the workers do, and waits for a
    lane when every slot is a busy lane and no worker exists (none busy either).
    """
    for workers in range(5):
        for busy in range(workers + 1):
            for openLanes in range(1, 5):
                assert where(idleLanes=1, openLanes=openLanes, workers=workers, busy=busy) is Route.IDLE_LANE
    for maxSlots in range(1, 6):
        for openLanes in range(maxSlots, maxSlots + 2):
            assert where(openLanes=openLanes, maxSlots=maxSlots) is Route.WAIT_FOR_LANE
    for kind in (CallKind.QUERY, CallKind.OPERATION):
        assert where(kind, idleLanes=1, openLanes=1) is Route.IDLE_LANE
        assert where(kind, openLanes=4) is Route.WAIT_FOR_LANE
    assert laneNext(CallKind.QUERY, False, True) is LaneNext.RUN  # the router's RUN shortcut


# -- laneNext(): a lane that finished a call --


def test_aFinishedLaneRunsTheOldestWaitingStatement() -> None:
    for kind in (CallKind.QUERY, CallKind.OPERATION):
        assert laneNext(kind, canIdle=True, closing=False) is LaneNext.RUN
        assert laneNext(kind, canIdle=False, closing=True) is LaneNext.RUN  # accepted calls finish


def test_aFinishedLaneHandsAWaitingInteractionToTheThreads() -> None:
    """An interaction waiting for a lane's slot: the lane closes and a worker takes the call."""
    for kind in (CallKind.INTERACTION, CallKind.WITH_CONNECTION, CallKind.RESERVED):
        assert laneNext(kind, canIdle=True, closing=False) is LaneNext.HAND_TO_THREADS


def test_aFinishedLaneIdlesWhenNothingWaits() -> None:
    assert laneNext(None, canIdle=True, closing=False) is LaneNext.IDLE


def test_aFinishedLaneRetiresWithoutAConnectionOrWhileClosing() -> None:
    """A lane that lost its connection does not sit idle, nor does any lane of a closing pool."""
    assert laneNext(None, canIdle=False, closing=False) is LaneNext.RETIRE
    assert laneNext(None, canIdle=True, closing=True) is LaneNext.RETIRE


# -- holdForWaking(): calls behind a worker still waking up --


def test_callsWaitForTheWokenWorkerWhileAnotherWorkerIsIdle() -> None:
    """Two idle workers, one woken for a call: the next call waits, so the first gets the warmest one."""
    assert holdForWaking(workers=2, busy=1, waiting=1)


def test_callsDoNotWaitWhenNoWorkerIsIdle() -> None:
    assert not holdForWaking(workers=2, busy=2, waiting=1)


def test_callsDoNotWaitWhenTheyOutnumberTheIdleWorkers() -> None:
    """A burst: every worker gets a call anyway, and holding them would start one per reactor turn."""
    assert not holdForWaking(workers=3, busy=1, waiting=3)
    assert holdForWaking(workers=3, busy=1, waiting=2)


# -- the call-state table --


def test_aCallRunsOnceItWasQueued() -> None:
    """The usual life: QUEUED -> RUNNING -> DONE."""
    a = FakeCall()
    advance(a, CallState.RUNNING)
    advance(a, CallState.DONE)
    assert a.state is CallState.DONE


def test_aRetriedCallGoesThroughBackoff() -> None:
    """A failure the retry policy retries: DONE -> BACKOFF, then queued again (or straight on a lane)."""
    for after in (CallState.QUEUED, CallState.RUNNING):
        a = FakeCall()
        advance(a, CallState.RUNNING)
        advance(a, CallState.DONE)
        advance(a, CallState.BACKOFF)
        advance(a, after)
        assert a.state is after


def test_aRunningCallIsNeverCancelledByTheTable() -> None:
    """A running call is stopped on the server and ends DONE: never CANCELLED, never QUEUED again."""
    a = FakeCall()
    advance(a, CallState.RUNNING)
    for state in (CallState.CANCELLED, CallState.QUEUED, CallState.BACKOFF):
        with pytest.raises(InvalidTransition):
            advance(a, state)


def test_transitionTableForbidsLeavingCancelled() -> None:
    """advance() enforces TRANSITIONS: a CANCELLED call never runs again."""
    a = FakeCall()
    advance(a, CallState.CANCELLED)
    for state in CallState:
        with pytest.raises(InvalidTransition):
            advance(a, state)
    assert TRANSITIONS[CallState.CANCELLED] == frozenset()


def test_everyStateHasARowInTheTable() -> None:
    assert set(TRANSITIONS) == set(CallState)


def test_onlyQueriesAndOperationsCanRunOnALane() -> None:
    """CallKind.laneable is true for the single-statement kinds only."""
    assert [k for k in CallKind if k.laneable] == [CallKind.QUERY, CallKind.OPERATION]
