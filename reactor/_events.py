"""System event triggers: the three-phase events (``startup``, ``shutdown``, any custom name).

An event fires its phases in order: every 'before' trigger, then (once every Deferred
that a 'before' trigger returned has fired) every 'during' trigger, then every 'after'
trigger. Triggers are one-shot: a firing consumes the triggers it runs, as in Twisted,
so a component that must act on each run of a restarted reactor registers again.
Triggers added to a phase while that phase runs also run in this firing.

Everything here runs in the reactor thread; :class:`SystemEvents` takes no lock.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from typing import Any

from reactor._deferred import Deferred
from reactor._failure import Failure

__all__: list[str] = []

_log = logging.getLogger("reactor.loop")

PHASES = ("before", "during", "after")


class _Trigger:
    """One registered trigger; the object is also the ID handed to the user."""

    # Immutable after creation.
    __slots__ = ("args", "eventType", "func", "kw", "phase")

    def __init__(
        self,
        phase: str,
        eventType: str,
        func: Callable[..., object],
        args: tuple[Any, ...],
        kw: dict[str, Any],
    ) -> None:
        self.phase = phase
        self.eventType = eventType
        self.func = func
        self.args = args
        self.kw = kw

    def __repr__(self) -> str:
        name = getattr(self.func, "__qualname__", None) or repr(self.func)
        return f"<SystemEventTrigger {self.phase} {self.eventType} {name}>"


class _Event:
    """The pending triggers of one event type, per phase."""

    # Owned by the reactor thread.
    __slots__ = ("after", "before", "during", "ranBefore")

    def __init__(self) -> None:
        # 'before' triggers already run by a firing still waiting on their Deferreds.
        self.ranBefore: list[_Trigger] = []
        self.before: list[_Trigger] = []
        self.during: list[_Trigger] = []
        self.after: list[_Trigger] = []

    def phaseList(self, phase: str) -> list[_Trigger]:
        if phase == "before":
            return self.before
        if phase == "during":
            return self.during
        return self.after

    def isEmpty(self) -> bool:
        return not (self.before or self.during or self.after)


class SystemEvents:
    """The triggers of every event type of one reactor.

    ``duringHooks`` maps an event type to a function the reactor itself runs first in
    that event's 'during' phase (the reactor's own "now running" and "now stopping"
    steps); it is not a user trigger, so it is never consumed.
    """

    # Owned by the reactor thread.
    __slots__ = ("_duringHooks", "_events")

    def __init__(self, duringHooks: dict[str, Callable[[], None]]) -> None:
        self._events: dict[str, _Event] = {}
        self._duringHooks = duringHooks

    def add(
        self,
        phase: str,
        eventType: str,
        func: Callable[..., object],
        args: tuple[Any, ...],
        kw: dict[str, Any],
    ) -> _Trigger:
        """Register a trigger and return it (it is its own ID)."""
        if phase not in PHASES:
            raise ValueError(f"phase must be one of 'before', 'during', 'after'; got {phase!r}")
        if not isinstance(eventType, str):
            raise TypeError(f"eventType must be a str, got {type(eventType).__name__}")
        if not callable(func):
            raise TypeError(f"callable must be callable, got {func!r}")
        trigger = _Trigger(phase, eventType, func, args, kw)
        event = self._events.get(eventType)
        if event is None:
            event = self._events[eventType] = _Event()
        event.phaseList(phase).append(trigger)
        return trigger

    def remove(self, triggerID: object) -> None:
        """Unregister a pending trigger; ValueError if it is not pending."""
        if not isinstance(triggerID, _Trigger):
            raise ValueError(f"triggerID {triggerID!r} is not a system event trigger ID")
        event = self._events.get(triggerID.eventType)
        if event is not None:
            phaseList = event.phaseList(triggerID.phase)
            for i, trigger in enumerate(phaseList):
                if trigger is triggerID:
                    del phaseList[i]
                    return
            if any(trigger is triggerID for trigger in event.ranBefore):
                # A component's close() removing its own shutdown trigger while that trigger's
                # Deferred holds the event: harmless, and Twisted only warns here.
                warnings.warn(f"removing {triggerID!r}, which already ran in this firing", DeprecationWarning,
                              stacklevel=3)
                return
        raise ValueError(f"{triggerID!r} is not pending (already fired or removed)")

    def pending(self, eventType: str) -> int:
        """How many triggers wait for ``eventType`` (for tests and reprs)."""
        event = self._events.get(eventType)
        if event is None:
            return 0
        return len(event.before) + len(event.during) + len(event.after)

    def fire(self, eventType: str) -> None:
        """Fire ``eventType``: run its 'before' triggers now, the rest when their Deferreds fire."""
        if not isinstance(eventType, str):
            raise TypeError(f"eventType must be a str, got {type(eventType).__name__}")
        event = self._events.get(eventType)
        if event is None:
            event = self._events[eventType] = _Event()
        waiting = [1]  # starts at 1 so Deferreds that fire at once cannot finish the phase early

        def oneDone(result: object) -> None:
            if isinstance(result, Failure):
                _log.error("A 'before %s' trigger's Deferred failed:\n%s", eventType, result.getTraceback())
            waiting[0] -= 1
            if waiting[0] == 0:
                self._continueFiring(eventType, event)

        before = event.before
        ran = event.ranBefore
        while before:
            trigger = before.pop(0)
            ran.append(trigger)
            result = _runTrigger(trigger)
            if isinstance(result, Deferred):
                waiting[0] += 1
                result.addBoth(oneDone)
        oneDone(None)

    def _continueFiring(self, eventType: str, event: _Event) -> None:
        event.ranBefore.clear()
        hook = self._duringHooks.get(eventType)
        if hook is not None:
            try:
                hook()
            except Exception:
                _log.exception("Error in the reactor's own 'during %s' step", eventType)
        for phaseList in (event.during, event.after):
            while phaseList:
                _runTrigger(phaseList.pop(0))
        if event.isEmpty() and eventType not in ("startup", "shutdown"):
            # Custom event names come and go; do not keep an empty record forever.
            if self._events.get(eventType) is event:
                del self._events[eventType]


def _runTrigger(trigger: _Trigger) -> object:
    try:
        return trigger.func(*trigger.args, **trigger.kw)
    except Exception:
        _log.exception("Error in system event trigger %r", trigger)
        return None
