"""Property tests: arbitrary callback/errback chains agree with a simple model (and with Twisted)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reactor import Deferred, Failure

# A step: (which side it is added to, what it does when it runs).
#   sides: "callback", "errback", "both"
#   actions: ("add", n)        return the value plus n (a failure's "value" is 0)
#            ("raise", msg)    raise ValueError(msg)
#            ("fail", msg)     return a Failure(KeyError(msg))
#            ("fired", n)      return an already-fired Deferred holding value + n
#            ("later", n)      return an unfired Deferred, fired with value + n later
#            ("pass",)         return the argument unchanged (a Failure stays a Failure)
_actions = st.one_of(
    st.tuples(st.just("add"), st.integers(-5, 5)),
    st.tuples(st.just("raise"), st.sampled_from(["r1", "r2"])),
    st.tuples(st.just("fail"), st.sampled_from(["f1", "f2"])),
    st.tuples(st.just("fired"), st.integers(-5, 5)),
    st.tuples(st.just("later"), st.integers(-5, 5)),
    st.tuples(st.just("pass")),
)
_steps = st.lists(st.tuples(st.sampled_from(["callback", "errback", "both"]), _actions), max_size=12)
_firing = st.one_of(
    st.tuples(st.just("value"), st.integers(-3, 3)), st.tuples(st.just("error"), st.just("e0"))
)


def _model(firing: tuple[Any, ...], steps: list[tuple[str, tuple[Any, ...]]]) -> tuple[Any, ...]:
    """The expected outcome: ("value", v) or ("failure", exception type name, message), and a log."""
    if firing[0] == "value":
        state: tuple[Any, ...] = ("value", firing[1])
    else:
        state = ("failure", "RuntimeError", firing[1])
    log: list[int] = []
    for index, (side, action) in enumerate(steps):
        isFailure = state[0] == "failure"
        if (side == "callback" and isFailure) or (side == "errback" and not isFailure):
            continue
        log.append(index)
        base = 0 if isFailure else state[1]
        kind = action[0]
        if kind in ("add", "fired", "later"):
            state = ("value", base + action[1])
        elif kind == "raise":
            state = ("failure", "ValueError", action[1])
        elif kind == "fail":
            state = ("failure", "KeyError", repr(action[1]))
    return state, log


def _run(
    deferredClass: Any, failureClass: Any, firing: tuple[Any, ...], steps: list[tuple[str, tuple[Any, ...]]],
    splitAt: int,
) -> tuple[Any, ...]:
    """Build the chain (part before firing, part after), fire it, fire pending inner ones, report."""
    log: list[int] = []
    pending: list[tuple[Any, Any]] = []

    def make(index: int, action: tuple[Any, ...]) -> Any:
        def run(result: Any) -> Any:
            log.append(index)
            base = 0 if isinstance(result, failureClass) else result
            kind = action[0]
            if kind == "add":
                return base + action[1]
            if kind == "raise":
                raise ValueError(action[1])
            if kind == "fail":
                return failureClass(KeyError(action[1]))
            if kind == "fired":
                d = deferredClass()
                d.callback(base + action[1])
                return d
            if kind == "later":
                d = deferredClass()
                pending.append((d, base + action[1]))
                return d
            return result

        return run

    d = deferredClass()

    def add(index: int, side: str, action: tuple[Any, ...]) -> None:
        function = make(index, action)
        if side == "callback":
            d.addCallback(function)
        elif side == "errback":
            d.addErrback(function)
        else:
            d.addBoth(function)

    for index, (side, action) in enumerate(steps[:splitAt]):
        add(index, side, action)
    if firing[0] == "value":
        d.callback(firing[1])
    else:
        d.errback(RuntimeError(firing[1]))
    for index, (side, action) in enumerate(steps[splitAt:], start=splitAt):
        add(index, side, action)
    while pending:
        inner, value = pending.pop(0)
        inner.callback(value)
    outcome: list[Any] = []
    d.addBoth(outcome.append)
    result = outcome[0]
    if isinstance(result, failureClass):
        return ("failure", result.type.__name__, result.getErrorMessage()), log
    return ("value", result), log


@settings(max_examples=300, deadline=None)
@given(firing=_firing, steps=_steps, split=st.integers(0, 12))
def test_chainsAgreeWithModel(firing: tuple[Any, ...], steps: list[Any], split: int) -> None:
    """Any chain of callbacks/errbacks, added before or after firing, gives the model's outcome."""
    assert _run(Deferred, Failure, firing, steps, min(split, len(steps))) == _model(firing, steps)


@settings(max_examples=300, deadline=None)
@given(firing=_firing, steps=_steps, split=st.integers(0, 12))
def test_chainsAgreeWithTwisted(firing: tuple[Any, ...], steps: list[Any], split: int) -> None:
    """The same chains give the same outcome and call order as Twisted's Deferred."""
    defer = pytest.importorskip("twisted.internet.defer")
    failure = pytest.importorskip("twisted.python.failure")
    split = min(split, len(steps))
    ours = _run(Deferred, Failure, firing, steps, split)
    theirs = _run(defer.Deferred, failure.Failure, firing, steps, split)
    assert ours == theirs


# Operations on a small web of Deferreds: ("link", i, j) adds to d[i] a callback
# that returns d[j] (j > i, so no cycles); ("log", i) adds a recording callback
# to d[i]; ("catch", i) a recording errback that recovers; ("fire", i) and
# ("fail", i) fire d[i] with a value or an error if the web has not fired it;
# ("cancel", i) cancels d[i]; ("pause", i)/("unpause", i) pause and unpause
# d[i] (unpause only after a matching pause).
_webOps = st.lists(
    st.one_of(
        st.tuples(st.just("link"), st.integers(0, 4), st.integers(1, 5)),
        st.tuples(st.just("log"), st.integers(0, 5)),
        st.tuples(st.just("catch"), st.integers(0, 5)),
        st.tuples(st.just("fire"), st.integers(0, 5)),
        st.tuples(st.just("fail"), st.integers(0, 5)),
        st.tuples(st.just("cancel"), st.integers(0, 5)),
        st.tuples(st.just("pause"), st.integers(0, 5)),
        st.tuples(st.just("unpause"), st.integers(0, 5)),
    ),
    max_size=25,
)


def _shown(result: Any) -> Any:
    """A result as both implementations log it alike (a Failure by its exception's class name)."""
    if type(result).__name__ == "Failure":
        return ("F", result.type.__name__, result.getErrorMessage())
    return result


def _runWeb(deferredClass: Any, ops: list[tuple[Any, ...]], fireOrder: list[int]) -> list[Any]:
    log: list[Any] = []
    ds = [deferredClass() for _ in range(6)]
    fired = [False] * 6
    pauses = [0] * 6

    def returnOther(result: Any, i: int, j: int) -> Any:
        log.append(("link", i, j, result))
        return ds[j]

    def record(result: Any, i: int, n: int) -> Any:
        log.append(("log", i, n, result))
        return (result, n) if not isinstance(result, tuple) else n

    def catch(failure: Any, i: int, n: int) -> Any:
        log.append(("catch", i, n, _shown(failure)))
        return f"caught{n}"

    for n, op in enumerate(ops):
        kind, i = op[0], op[1]
        if kind == "link":
            j = op[2]
            if j > i:
                ds[i].addCallback(returnOther, i, j)
        elif kind == "log":
            ds[i].addCallback(record, i, n)
        elif kind == "catch":
            ds[i].addErrback(catch, i, n)
        elif kind == "cancel":
            ds[i].cancel()
        elif kind == "fire" and not fired[i]:
            fired[i] = True
            ds[i].callback(f"v{i}")
        elif kind == "fail" and not fired[i]:
            fired[i] = True
            ds[i].errback(ValueError(f"e{i}"))
        elif kind == "pause":
            pauses[i] += 1
            ds[i].pause()
        elif kind == "unpause" and pauses[i]:
            pauses[i] -= 1
            ds[i].unpause()
    for i in range(6):
        while pauses[i]:
            pauses[i] -= 1
            ds[i].unpause()
    for i in fireOrder:
        if not fired[i]:
            fired[i] = True
            ds[i].callback(f"late{i}")
    log.append(("final", [(d.called, d.paused) for d in ds]))
    for d in ds:
        # Compare the final results too, and handle them so no failure is logged.
        d.addBoth(lambda result: log.append(("result", _shown(result))))
    return log


@settings(max_examples=300, deadline=None)
@given(ops=_webOps, fireOrder=st.permutations(range(6)))
def test_websOfWaitingDeferredsAgreeWithTwisted(ops: list[tuple[Any, ...]], fireOrder: list[int]) -> None:
    """Deferreds returning each other, paused, cancelled, fired or failed in any order, act as Twisted's."""
    defer = pytest.importorskip("twisted.internet.defer")
    assert _runWeb(Deferred, ops, fireOrder) == _runWeb(defer.Deferred, ops, fireOrder)
