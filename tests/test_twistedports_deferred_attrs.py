"""Tagging a Deferred with attributes of one's own, checked against Twisted 26.10 and ours alike.

Twisted's Deferred takes any attribute (``d.label = "x"``); porting code that tags
Deferreds (a request id, a label for logging) must keep working. Every test runs the
same assertions on ``twisted.internet.defer`` and on ``reactor``.
"""

from __future__ import annotations

import types
from typing import Any

import pytest

import reactor

twistedDefer = pytest.importorskip("twisted.internet.defer")


@pytest.fixture(params=["twisted", "ours"])
def defer(request: pytest.FixtureRequest) -> types.ModuleType:
    """The module under test: Twisted's ``defer`` or our ``reactor``."""
    return twistedDefer if request.param == "twisted" else reactor


def test_arbitraryAttributeOnADeferred(defer: Any) -> None:
    """An unknown attribute can be set, read, changed and deleted on a plain Deferred."""
    d = defer.Deferred()
    d.label = "x"
    assert d.label == "x"
    d.label = "y"
    assert d.label == "y"
    assert vars(d)["label"] == "y"
    del d.label
    assert not hasattr(d, "label")
    with pytest.raises(AttributeError):
        d.neverSet  # noqa: B018


def test_attributesOnFiredAndFailedDeferreds(defer: Any) -> None:
    """succeed(), fail() and fromCoroutine() Deferreds take attributes too, and keep working."""
    ok = defer.succeed(1)
    ok.requestId = 7
    bad = defer.fail(ValueError("boom"))
    bad.requestId = 8

    async def three() -> int:
        return 3

    coro = defer.Deferred.fromCoroutine(three())
    coro.requestId = 9
    seen: list[Any] = []
    ok.addCallback(seen.append)
    bad.addErrback(lambda f: seen.append(f.type))
    coro.addCallback(seen.append)
    assert seen == [1, ValueError, 3]
    assert (ok.requestId, bad.requestId, coro.requestId) == (7, 8, 9)


def test_attributeSurvivesTheCallbackChain(defer: Any) -> None:
    """A tag set before firing is still there in a callback, and does not change the result."""
    d = defer.Deferred()
    d.label = "request 1"
    seen: list[Any] = []
    d.addCallback(lambda result: seen.append((result, d.label)))
    d.callback("ok")
    assert seen == [("ok", "request 1")]


def test_subclassTakesAttributes(defer: Any) -> None:
    """A Deferred subclass (with or without slots of its own) takes arbitrary attributes."""

    class Tagged(defer.Deferred):  # type: ignore[misc, name-defined]
        pass

    class Slotted(defer.Deferred):  # type: ignore[misc, name-defined]
        __slots__ = ("extra",)

    for cls in (Tagged, Slotted):
        d = cls()
        d.label = cls.__name__
        seen: list[Any] = []
        d.addCallback(seen.append)
        d.callback(d.label)
        assert seen == [cls.__name__]
