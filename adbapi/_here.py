"""Which connection holder the calling thread is: the per-thread link from code in a call to its slot.

A worker thread of the pool's ``ResourcePool`` serves one
:class:`~adbapi._holder.ConnectionHolder` for its life; Twisted's hooks
(``connect()``, ``disconnect()``, the rollback in ``_runInteraction``) are
called without it, so they find it here. Kept apart from ``_holder.py`` so
that ``_recovery.py`` (which the holder uses) can read it without an import
cycle.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from adbapi._holder import ConnectionHolder

__all__ = ["currentHolder", "setCurrentHolder"]

_here = threading.local()


def setCurrentHolder(holder: ConnectionHolder | None) -> None:
    """Make ``holder`` the calling thread's (its worker's ``create``/``close`` hooks)."""
    _here.holder = holder


def currentHolder(pool: object) -> ConnectionHolder | None:
    """The holder of ``pool``'s worker running the calling code; None in any other thread."""
    holder: ConnectionHolder | None = getattr(_here, "holder", None)
    if holder is None or holder.pool is not pool:
        return None
    return holder
