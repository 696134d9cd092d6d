"""A reactor hosted on Qt's event loop (what the ``qt5reactor``/``qt6reactor`` add-ons are to Twisted).

``QtReactor(app)`` is a full reactor whose waiting is done by Qt, so Deferreds,
thread pools, adbapi pools and transports work in a Qt application's thread: a
query's result lands in the GUI thread, where widgets may be touched. Needs PySide6
(``pip install 'deferthreads[qt]'``) or PyQt6. :func:`install` makes one the
process-wide default. See ``docs/loop.md``.
"""

from __future__ import annotations

from typing import Any

from reactor._default import installOrClose
from reactor._qtreactor import QtReactor

__all__ = ["QtReactor", "install"]


def install(app: Any = None) -> QtReactor:
    """Create a :class:`QtReactor` on ``app`` and make it the process-wide default.

    Call it before anything calls :func:`reactor.getReactor`. Returns the new reactor.

    :raises ReactorAlreadyInstalledError: a default reactor already exists.
    :raises TypeError: ``app`` is not a ``QCoreApplication``.
    """
    return installOrClose(QtReactor(app))
