"""Every core implementation provides its zope.interface interfaces (checked with verifyObject)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from zope.interface import Interface
from zope.interface.verify import verifyClass, verifyObject

from reactor import Reactor, getReactor
from reactor.interfaces import (
    IDelayedCall,
    IReactorCore,
    IReactorFDSet,
    IReactorFromThreads,
    IReactorThreadAffinity,
    IReactorTime,
)


@pytest.fixture
def reactor() -> Iterator[Reactor]:
    r = Reactor()
    yield r
    r.close()


@pytest.mark.parametrize(
    "iface", [IReactorCore, IReactorTime, IReactorFromThreads, IReactorFDSet, IReactorThreadAffinity]
)
def test_reactorProvidesCoreInterfaces(reactor: Reactor, iface: type[Interface]) -> None:
    """The Reactor class and instances verify against each core interface."""
    assert verifyClass(iface, Reactor)
    assert verifyObject(iface, reactor)


def test_defaultReactorProvidesCoreInterfaces() -> None:
    """The default reactor verifies too."""
    assert verifyObject(IReactorCore, getReactor())
    assert verifyObject(IReactorTime, getReactor())


def test_delayedCallProvidesIDelayedCall(reactor: Reactor) -> None:
    """callLater returns an IDelayedCall provider."""
    call = reactor.callLater(1, print)
    assert verifyObject(IDelayedCall, call)
    call.cancel()


def test_everyInterfaceMethodHasDocstring() -> None:
    """Each interface and each of its members carries a docstring."""
    for iface in (
        IDelayedCall,
        IReactorCore,
        IReactorTime,
        IReactorFromThreads,
        IReactorFDSet,
        IReactorThreadAffinity,
    ):
        assert iface.__doc__
        for name in iface.names():
            assert iface[name].getDoc(), f"{iface.__name__}.{name} has no docstring"
