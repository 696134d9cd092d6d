"""A reactor hosted on asyncio (Twisted's ``twisted.internet.asyncioreactor``).

``AsyncioReactor(eventloop)`` is a full reactor whose waiting is done by an asyncio
event loop, so Deferreds, thread pools, adbapi pools and the reactor's transports
work beside asyncio tasks in one thread. :func:`install` makes one the process-wide
default (what :func:`reactor.getReactor` returns). :func:`hostedReactor` hosts one on the
running loop for the body of an ``async with`` (an ASGI application's ``lifespan``).
See ``docs/loop.md``.
"""

from __future__ import annotations

import asyncio

from reactor._asyncioreactor import AsyncioReactor, hostedReactor
from reactor._default import installOrClose

__all__ = ["AsyncioReactor", "AsyncioSelectorReactor", "hostedReactor", "install"]

#: Twisted's name for the same class.
AsyncioSelectorReactor = AsyncioReactor


def install(eventloop: asyncio.AbstractEventLoop | None = None) -> AsyncioReactor:
    """Create an :class:`AsyncioReactor` on ``eventloop`` and make it the process-wide default.

    Call it before anything calls :func:`reactor.getReactor` (which would create the
    default epoll reactor). Returns the new reactor.

    :raises ReactorAlreadyInstalledError: a default reactor already exists.
    :raises TypeError: ``eventloop`` is not an asyncio event loop.
    """
    return installOrClose(AsyncioReactor(eventloop))
