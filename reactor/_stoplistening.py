"""Stopping a listening port (TCP, Unix or UDP): one Deferred per caller, one close.

Owned by the reactor thread, like the ports that use it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from reactor._deferred import Deferred

__all__: list[str] = []


class PortStopper:
    """Mixed into a port: ``stopListening`` and the bookkeeping of who waits for the close.

    The port provides ``socket`` (None once closed), ``reactor``, ``connectionLost(reason)``
    (which closes the socket and then calls :meth:`_stopped`) and :meth:`_stopReason`.
    """

    socket: Any
    reactor: Any
    connectionLost: Callable[[Any], None]
    _stopDeferred: Deferred[None] | None = None

    def _stopReason(self) -> Any:
        """What ``connectionLost`` is given when the port is stopped on purpose."""
        return None

    def stopListening(self) -> Deferred[None]:
        """Stop accepting and close the socket; the Deferred fires with None on the next loop turn.

        Calling it again before the close fires that caller's Deferred at the same
        time; calling it on a closed port fires at once.
        """
        d: Deferred[None] = Deferred()
        if self.socket is None:
            d.callback(None)
            return d
        if self._stopDeferred is not None:
            self._stopDeferred.chainDeferred(d)
            return d
        self._stopDeferred = d
        self.reactor.removeReader(self)
        self.reactor.callLater(0, self.connectionLost, self._stopReason())
        return d

    loseConnection = stopListening

    def _stopped(self) -> None:
        """The socket is closed: fire whoever waits in ``stopListening``."""
        d, self._stopDeferred = self._stopDeferred, None
        if d is not None:
            d.callback(None)
