"""The zope.interface roles of the adbapi package."""

from __future__ import annotations

from typing import Any

from zope.interface import Attribute, Interface

__all__ = ["IDriverAdapter"]


class IDriverAdapter(Interface):
    """What the pool needs to know about one DB-API module beyond DB-API 2.0.

    ``connect``, ``describeConnection``, ``ping``, ``discard``, ``runSingle``, ``singleRunner`` and
    ``isSettled`` run
    in the worker thread that owns the connection; ``cancel`` runs in a side
    thread while that worker is blocked in the driver; the classifiers run anywhere.
    """

    name = Attribute("A short name of the driver, used in reprs")
    canCancel = Attribute("True when cancel() can stop a statement on the server")

    def connect(connargs: Any, connkw: Any) -> Any:
        """Open and return a new DB-API connection."""

    def describeConnection(conn: Any) -> Any:
        """Return what cancel() will need about ``conn`` (read right after connecting)."""

    def ping(conn: Any, goodSql: str | None) -> None:
        """Raise if ``conn`` is unusable; leave no transaction open. ``goodSql`` overrides the check."""

    def discard(conn: Any) -> None:
        """Close a connection known or suspected to be broken; never raise."""

    def runSingle(conn: Any, args: tuple[Any, ...], kw: Any, fetch: bool) -> Any:
        """Run one statement as its own transaction; return fetchall() when ``fetch``, else None."""

    def singleRunner(conn: Any) -> Any:
        """Return the ``SingleRunner`` that runs ``runQuery``/``runOperation`` statements on ``conn``."""

    def isSettled(conn: Any) -> bool:
        """True when ``conn``, just rolled back after an error, runs no statement and holds no transaction."""

    def isDisconnect(exc: BaseException, conn: Any) -> bool:
        """True when ``exc`` (raised on ``conn``, or None) means the connection is gone."""

    def isConflict(exc: BaseException) -> bool:
        """True for a serialization failure or a deadlock (the server rolled back)."""

    def neverSent(exc: BaseException, conn: Any) -> bool:
        """True only when ``exc`` proves nothing reached the server (``conn`` was closed before the call)."""

    def cancel(conn: Any, info: Any, connargs: Any, connkw: Any) -> None:
        """Ask the server to stop the statement running on ``conn`` (from another thread)."""
