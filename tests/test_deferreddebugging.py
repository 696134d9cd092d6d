"""Deferred debugging (``setDebugging``, ``d.debug``) and the ``logError`` errback."""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from reactor import (
    AlreadyCalledError,
    Deferred,
    Failure,
    _debugging,
    fail,
    getDebugging,
    logError,
    setDebugging,
    succeed,
)


@pytest.fixture(autouse=True)
def debuggingOff() -> Iterator[None]:
    """Every test starts and ends with debugging off and the plain Deferred methods in place."""
    _debugging._perInstance = False
    setDebugging(False)
    yield
    _debugging._perInstance = False
    setDebugging(False)


# The class's own methods, as imported (debugging is off then). Compared by identity: compiled by
# mypyc they are C descriptors, without the ``__module__`` of a Python function.
_PLAIN = {name: Deferred.__dict__[name] for name in ("__init__", "callback", "errback")}


def _createHere() -> Deferred[int]:
    return Deferred()


def _fireHere(d: Deferred[int]) -> None:
    d.callback(1)


def test_debuggingIsOffByDefaultAndLeavesThePlainMethods() -> None:
    """Off, Deferred's own __init__/callback/errback are in place: debugging costs nothing."""
    assert getDebugging() is False
    for name in ("__init__", "callback", "errback"):
        assert Deferred.__dict__[name] is _PLAIN[name]
    assert Deferred().debug is False


def test_alreadyCalledErrorNamesWhereTheDeferredWasCreatedAndFirstFired() -> None:
    """With setDebugging(True) a second callback's error shows both recorded stacks."""
    setDebugging(True)
    assert getDebugging() is True
    d = _createHere()
    assert d.debug is True
    _fireHere(d)
    with pytest.raises(AlreadyCalledError) as info:
        d.callback(2)
    message = str(info.value)
    created, fired = message.split("it was first fired at:")
    assert "this Deferred was created at:" in created and "_createHere" in created
    assert "_fireHere" in fired


def test_errbackWithoutArgumentStillCapturesTheExceptionWhileDebugging() -> None:
    """The recording errback keeps errback() inside an except block working."""
    setDebugging(True)
    d: Deferred[int] = Deferred()
    try:
        raise KeyError("k")
    except KeyError:
        d.errback()
    caught: list[Failure] = []
    d.addErrback(caught.append)
    assert caught[0].check(KeyError)


def test_turningDebuggingOffRestoresThePlainMethods() -> None:
    """setDebugging(False) puts the class's own methods back; new Deferreds record nothing."""
    setDebugging(True)
    setDebugging(False)
    assert Deferred.__dict__["callback"] is _PLAIN["callback"]
    d: Deferred[int] = Deferred()
    d.callback(1)
    with pytest.raises(AlreadyCalledError) as info:
        d.callback(2)
    assert "created at" not in str(info.value)


def test_debugSetOnOneDeferredRecordsWhereItIsFired() -> None:
    """d.debug = True on one Deferred records its first firing point (its creation is unknown)."""
    d = _createHere()
    d.debug = True
    _fireHere(d)
    with pytest.raises(AlreadyCalledError) as info:
        d.callback(2)
    assert "_fireHere" in str(info.value) and "created at" not in str(info.value)
    other: Deferred[int] = Deferred()
    assert other.debug is False
    d.debug = False
    assert d.debug is False


def test_subclassesRecordToo() -> None:
    """The recording methods sit on Deferred, so a subclass's Deferreds record as well."""

    class MyDeferred(Deferred[int]):
        pass

    setDebugging(True)
    d = MyDeferred()
    d.callback(1)
    with pytest.raises(AlreadyCalledError) as info:
        d.callback(2)
    assert "test_subclassesRecordToo" in str(info.value)


def test_unhandledFailureLogLineCarriesTheDebugInfo(caplog: pytest.LogCaptureFixture) -> None:
    """A Deferred collected with an unhandled failure logs where it was created and fired."""
    setDebugging(True)

    def failIt() -> None:
        d = _createHere()
        d.errback(ValueError("lost"))

    with caplog.at_level(logging.ERROR, logger="reactor.deferred"):
        failIt()
        gc.collect()
    text = caplog.text
    assert "Unhandled error in Deferred" in text and "ValueError" in text
    assert "_createHere" in text and "failIt" in text


def test_logErrorLogsTheFailureAndPassesItOn(caplog: pytest.LogCaptureFixture) -> None:
    """addErrback(logError) logs the failure with its traceback and leaves the chain failed."""
    d: Deferred[Any] = Deferred()
    d.addErrback(logError)
    after: list[Failure] = []
    d.addErrback(after.append)
    with caplog.at_level(logging.ERROR, logger="reactor.deferred"):
        d.errback(RuntimeError("seen"))
    assert "RuntimeError" in caplog.text and "seen" in caplog.text
    assert after and after[0].check(RuntimeError)


def _succeedHere() -> Deferred[int]:
    return succeed(1)


def _failHere() -> Deferred[Any]:
    return fail(ValueError("recorded"))


def test_succeedAndFailRecordWhereTheyWereCalledWhileDebugging() -> None:
    """succeed()/fail() skip __init__ for speed, except while debugging: then they record too."""
    setDebugging(True)
    ok = _succeedHere()
    bad = _failHere()
    setDebugging(False)
    assert ok.debug and bad.debug
    with pytest.raises(AlreadyCalledError, match="_succeedHere"):
        ok.callback(2)
    bad.addErrback(lambda _: None)
    assert succeed(1).debug is False
