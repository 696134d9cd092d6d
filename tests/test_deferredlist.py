"""Tests for DeferredList, gatherResults and race (reactor/_deferredlist.py)."""

from __future__ import annotations

import gc
import logging
from typing import Any

import pytest

from reactor import (
    FAILURE,
    SUCCESS,
    CancelledError,
    Deferred,
    DeferredList,
    FailureGroup,
    FirstError,
    gatherResults,
    race,
    succeed,
)
from tests.deferred_support import failureOf, resultOf


def _error(d: Deferred[Any], errorType: type[BaseException]) -> Any:
    """The exception a failed Deferred holds, checked to be an ``errorType``."""
    f = failureOf(d)
    assert isinstance(f.value, errorType), f"expected {errorType.__name__}, got {f!r}"
    return f.value


def _countingCanceller(counts: list[int], i: int) -> Any:
    def cancel(d: Deferred[Any]) -> None:
        counts[i] += 1

    return cancel


def _cancellable(n: int) -> tuple[list[int], list[Deferred[Any]]]:
    """``n`` unfired Deferreds and a list counting how often each was cancelled."""
    counts = [0] * n
    return counts, [Deferred(canceller=_countingCanceller(counts, i)) for i in range(n)]


def test_deferredListFiresWithPairsInInputOrder() -> None:
    """The result lists (success, result) pairs in input order, whatever order they fire in."""
    ds: list[Deferred[Any]] = [Deferred(), Deferred(), Deferred()]
    dl = DeferredList(ds, consumeErrors=True)
    ds[2].callback("c")
    err = ValueError("b")
    ds[1].errback(err)
    assert not dl.called
    ds[0].callback("a")
    result = resultOf(dl)
    assert result[0] == (SUCCESS, "a")
    assert result[2] == (SUCCESS, "c")
    assert result[1][0] is FAILURE
    assert result[1][1].value is err


def test_deferredListOfFiredDeferredsFiresAtOnce() -> None:
    """Inputs that already fired make the list fire during construction."""
    dl = DeferredList([succeed(1), succeed(2)])
    assert resultOf(dl) == [(True, 1), (True, 2)]


def test_deferredListEmptyFiresAtOnce() -> None:
    """An empty DeferredList fires at once with an empty list."""
    assert resultOf(DeferredList([])) == []


def test_deferredListEmptyWithFireOnOneCallbackNeverFires() -> None:
    """An empty DeferredList with fireOnOneCallback stays unfired, as in Twisted."""
    assert not DeferredList([], fireOnOneCallback=True).called


def test_deferredListFireOnOneCallback() -> None:
    """fireOnOneCallback fires with (result, index) of the first success."""
    ds: list[Deferred[Any]] = [Deferred(), Deferred()]
    dl = DeferredList(ds, fireOnOneCallback=True)
    ds[1].callback("x")
    assert resultOf(dl) == ("x", 1)
    ds[0].callback("late")  # ignored by the list, no AlreadyCalledError


def test_deferredListFireOnOneCallbackIgnoresFailures() -> None:
    """With fireOnOneCallback alone, failures are collected and do not fire the list."""
    ds: list[Deferred[Any]] = [Deferred(), Deferred()]
    dl = DeferredList(ds, fireOnOneCallback=True, consumeErrors=True)
    ds[0].errback(ValueError("no"))
    assert not dl.called
    ds[1].callback("yes")
    assert resultOf(dl) == ("yes", 1)


def test_deferredListFireOnOneErrback() -> None:
    """fireOnOneErrback errbacks with FirstError carrying the failure and its index."""
    ds: list[Deferred[Any]] = [Deferred(), Deferred()]
    dl = DeferredList(ds, fireOnOneErrback=True, consumeErrors=True)
    err = KeyError("k")
    ds[1].errback(err)
    e = _error(dl, FirstError)
    assert e.index == 1
    assert e.subFailure.value is err


def test_deferredListWithoutConsumeErrorsPassesFailureOn() -> None:
    """Without consumeErrors the input keeps its failure for callbacks added later."""
    d: Deferred[Any] = Deferred()
    dl = DeferredList([d])
    d.errback(ValueError("kept"))
    assert failureOf(d).check(ValueError)
    assert resultOf(dl)[0][0] is FAILURE


def test_deferredListConsumeErrorsTurnsFailureIntoNone() -> None:
    """With consumeErrors the input's chain continues with None."""
    d: Deferred[Any] = Deferred()
    DeferredList([d], consumeErrors=True)
    d.errback(ValueError("eaten"))
    assert resultOf(d) is None


def test_deferredListConsumeErrorsLogsNothing(caplog: pytest.LogCaptureFixture) -> None:
    """A consumed failure is not logged as unhandled when its Deferred is collected."""
    caplog.set_level(logging.DEBUG)
    d: Deferred[Any] = Deferred()
    dl = DeferredList([d], consumeErrors=True)
    d.errback(ValueError("quiet please"))
    resultOf(dl)
    del d, dl
    gc.collect()
    assert "quiet please" not in caplog.text


def test_deferredListWithoutConsumeErrorsLogsUnhandled(caplog: pytest.LogCaptureFixture) -> None:
    """Without consumeErrors, an input's failure nobody handled is logged when it is collected."""
    caplog.set_level(logging.DEBUG)
    d: Deferred[Any] = Deferred()
    dl = DeferredList([d])
    d.errback(ValueError("loud failure"))
    resultOf(dl)
    del d, dl
    gc.collect()
    assert "loud failure" in caplog.text


def test_deferredListCancelCancelsPending() -> None:
    """Cancelling a DeferredList cancels every input still pending, not the fired ones."""
    counts, ds = _cancellable(3)
    ds[0].callback("done")
    dl = DeferredList(ds, consumeErrors=True)
    dl.cancel()
    assert counts == [0, 1, 1]
    result = resultOf(dl)
    assert result[0] == (True, "done")
    assert result[1][1].check(CancelledError)


def test_deferredListCancelAfterFiringDoesNotCancelInputs() -> None:
    """Once a fireOnOneCallback list fired, cancelling it leaves the other inputs alone."""
    counts, ds = _cancellable(2)
    dl = DeferredList(ds, fireOnOneCallback=True)
    ds[0].callback(1)
    dl.cancel()
    assert counts == [0, 0]
    assert not ds[1].called


def test_deferredListCancelWhenInputIgnoresCancel() -> None:
    """If an input's canceller leaves it unfired, the list still errbacks CancelledError."""

    class Stubborn(Deferred[Any]):
        def cancel(self) -> None:
            pass

    dl = DeferredList([Stubborn()])
    dl.cancel()
    assert failureOf(dl).check(CancelledError)


def test_deferredListCancelReachesInputWaitingOnAnother() -> None:
    """An input that fired but waits on an inner Deferred gets the cancel (so the inner one does)."""
    inner: Deferred[Any] = Deferred()
    outer: Deferred[Any] = succeed(None)
    outer.addCallback(lambda _: inner)
    dl = DeferredList([outer], consumeErrors=True)
    dl.cancel()
    assert inner.called
    assert resultOf(dl)[0][1].check(CancelledError)


def test_deferredListCancellerErrorIsLogged(caplog: pytest.LogCaptureFixture) -> None:
    """A canceller that raises is logged and the other inputs are still cancelled."""

    def boom(d: Deferred[Any]) -> None:
        raise RuntimeError("canceller broke")

    counts, ds = _cancellable(1)
    bad: Deferred[Any] = Deferred(canceller=boom)
    dl = DeferredList([bad, *ds], consumeErrors=True)
    with caplog.at_level(logging.ERROR):
        dl.cancel()
    assert counts == [1]
    assert "canceller broke" in caplog.text
    assert failureOf(dl).check(CancelledError)


def test_deferredListRejectsNonDeferred() -> None:
    """A non-Deferred item raises TypeError naming the argument and position."""
    with pytest.raises(TypeError, match=r"deferredList\[1\]"):
        DeferredList([succeed(1), 2])  # type: ignore[list-item]


def test_deferredListRejectsNonIterable() -> None:
    """A non-iterable raises TypeError naming deferredList."""
    with pytest.raises(TypeError, match="deferredList"):
        DeferredList(3)  # type: ignore[arg-type]


def test_gatherResultsFiresWithValues() -> None:
    """gatherResults fires with the plain results in input order."""
    ds: list[Deferred[int]] = [Deferred(), Deferred()]
    g = gatherResults(ds)
    ds[1].callback(2)
    ds[0].callback(1)
    assert resultOf(g) == [1, 2]


def test_gatherResultsEmptyFiresAtOnce() -> None:
    """gatherResults of nothing fires at once with []."""
    assert resultOf(gatherResults([])) == []


def test_gatherResultsFirstError() -> None:
    """The first failure errbacks with FirstError without waiting for the rest."""
    ds: list[Deferred[int]] = [Deferred(), Deferred()]
    g = gatherResults(ds, consumeErrors=True)
    ds[1].errback(ZeroDivisionError())
    e = _error(g, FirstError)
    assert e.index == 1
    assert e.subFailure.check(ZeroDivisionError)


def test_gatherResultsConsumeErrors() -> None:
    """consumeErrors=True leaves None on the failing input's chain."""
    d: Deferred[int] = Deferred()
    g = gatherResults([d], consumeErrors=True)
    d.errback(ValueError())
    assert resultOf(d) is None
    failureOf(g)


def test_gatherResultsKeepsErrorsByDefault() -> None:
    """Without consumeErrors the failing input keeps its failure."""
    d: Deferred[int] = Deferred()
    g = gatherResults([d])
    d.errback(ValueError("mine"))
    failureOf(g)
    assert failureOf(d).check(ValueError)


def test_gatherResultsCancelCancelsPending() -> None:
    """Cancelling gatherResults' Deferred cancels every input still pending."""
    counts, ds = _cancellable(3)
    ds[1].callback("ok")
    g = gatherResults(ds, consumeErrors=True)
    g.cancel()
    assert counts == [1, 0, 1]
    assert _error(g, FirstError).subFailure.check(CancelledError)


def test_gatherResultsRejectsNonDeferred() -> None:
    """A non-Deferred item raises TypeError at the call."""
    with pytest.raises(TypeError, match="deferredList"):
        gatherResults([None])  # type: ignore[list-item,arg-type]


def test_raceFirstSuccessWinsAndCancelsRest() -> None:
    """race fires with (index, result) of the first success and cancels the others once."""
    counts, ds = _cancellable(4)
    r = race(ds)
    ds[2].callback("win")
    assert resultOf(r) == (2, "win")
    assert counts == [1, 1, 0, 1]


def test_raceSkipsFailuresBeforeSuccess() -> None:
    """A failure does not end the race while another input can still succeed."""
    _, ds = _cancellable(2)
    r = race(ds)
    ds[0].errback(ValueError())
    assert not r.called
    ds[1].callback("b")
    assert resultOf(r) == (1, "b")


def test_raceAllFailGivesFailureGroup() -> None:
    """If every input fails, race errbacks with FailureGroup of the failures in input order."""
    ds: list[Deferred[Any]] = [Deferred(), Deferred()]
    r = race(ds)
    ds[1].errback(KeyError("second"))
    ds[0].errback(ValueError("first"))
    e = _error(r, FailureGroup)
    assert [g.type for g in e.failures] == [ValueError, KeyError]


def test_raceCancelCancelsAll() -> None:
    """Cancelling race's Deferred cancels every input; it fails with FailureGroup, as in Twisted."""
    counts, ds = _cancellable(3)
    r = race(ds)
    r.cancel()
    assert counts == [1, 1, 1]
    e = _error(r, FailureGroup)
    assert all(g.check(CancelledError) for g in e.failures)


def test_raceResultAfterCancelGoesNowhere(caplog: pytest.LogCaptureFixture) -> None:
    """A loser firing after it was cancelled is ignored and nothing is logged."""
    ds: list[Deferred[None]] = [Deferred(), Deferred()]
    r = race(ds)
    ds[0].callback(None)
    with caplog.at_level(logging.DEBUG):
        ds[1].callback(None)
        gc.collect()
    assert resultOf(r) == (0, None)
    assert "Unhandled" not in caplog.text


def test_raceLoserCancellerThatSucceedsIsIgnored() -> None:
    """A loser whose canceller fires it with a value does not change the winner."""
    winner: Deferred[object] = Deferred()
    loser: Deferred[object] = Deferred(canceller=lambda d: d.callback("from cancel"))
    r = race([winner, loser])
    winner.callback("real")
    assert resultOf(r) == (0, "real")


def test_raceEmptyFailsAtOnce() -> None:
    """race([]) errbacks at once with an empty FailureGroup (Twisted's never fires)."""
    assert _error(race([]), FailureGroup).failures == []


def test_raceRejectsNonDeferred() -> None:
    """A non-Deferred item raises TypeError naming ds."""
    with pytest.raises(TypeError, match=r"ds\[0\]"):
        race(["nope"])  # type: ignore[list-item,arg-type]
