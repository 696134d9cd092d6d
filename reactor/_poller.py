"""The readiness poller under the loop: ``select.epoll`` itself on Linux, a ``selectors`` stand-in elsewhere.

The loop talks to the kernel through four calls, ``register(fd, mask)``, ``modify(fd, mask)``,
``unregister(fd)`` and ``poll(timeout) -> [(fd, events), ...]``, with epoll's event bits
(:data:`POLLIN`, :data:`POLLOUT`; any other bit, such as a hang-up or an error, counts as both).
``select.epoll`` has exactly that interface, so on Linux the loop calls it with no layer in
between: no ``SelectorKey`` per ready descriptor, no second lookup (that layer was more than half
of the loop's own time per ready descriptor: ~450 ns with it, ~200 ns without). Elsewhere
:class:`SelectorsPoller` adapts the platform's best ``selectors`` class to the same calls.

Owned by the reactor thread, like everything it registers.
"""

from __future__ import annotations

import select
import selectors
from typing import Any

__all__: list[str] = []

POLLIN: int = getattr(select, "EPOLLIN", 1)
POLLOUT: int = getattr(select, "EPOLLOUT", 4)


class SelectorsPoller:
    """``select.epoll``'s interface (the part the loop uses) over a ``selectors`` selector.

    Errors follow epoll's: registering a registered descriptor raises ``FileExistsError``,
    modifying or unregistering an unknown one ``FileNotFoundError``.
    """

    def __init__(self, selector: selectors.BaseSelector | None = None) -> None:
        self._selector = selector if selector is not None else selectors.DefaultSelector()

    @staticmethod
    def _toSelectors(mask: int) -> int:
        read = selectors.EVENT_READ if mask & POLLIN else 0
        return read | (selectors.EVENT_WRITE if mask & POLLOUT else 0)

    def register(self, fd: int, mask: int) -> None:
        """Watch ``fd`` for the events in ``mask``."""
        try:
            self._selector.register(fd, self._toSelectors(mask))
        except KeyError:
            raise FileExistsError(f"fd {fd} is already registered") from None

    def modify(self, fd: int, mask: int) -> None:
        """Change the events watched on ``fd``."""
        try:
            self._selector.modify(fd, self._toSelectors(mask))
        except KeyError:
            raise FileNotFoundError(f"fd {fd} is not registered") from None

    def unregister(self, fd: int) -> None:
        """Stop watching ``fd``."""
        try:
            self._selector.unregister(fd)
        except KeyError:
            raise FileNotFoundError(f"fd {fd} is not registered") from None

    def poll(self, timeout: float = -1) -> list[tuple[int, int]]:
        """Wait up to ``timeout`` seconds (negative: forever) and return ``(fd, events)`` pairs."""
        ready = self._selector.select(None if timeout < 0 else timeout)
        out = []
        for key, mask in ready:
            events = POLLIN if mask & selectors.EVENT_READ else 0
            out.append((key.fd, events | (POLLOUT if mask & selectors.EVENT_WRITE else 0)))
        return out

    def fileno(self) -> int:
        """The selector's own descriptor (epoll, kqueue, devpoll), readable when a watched one is ready.

        :raises AttributeError: the selector has none (``select``/``poll`` based).
        """
        return int(getattr(self._selector, "fileno")())

    def close(self) -> None:
        """Release the selector."""
        self._selector.close()


def makePoller() -> Any:
    """A new poller: ``select.epoll()`` where the platform has it, else a :class:`SelectorsPoller`."""
    epoll = getattr(select, "epoll", None)
    if epoll is not None:
        return epoll()
    return SelectorsPoller()
