"""The SQLAlchemy side of :mod:`adbapi.sqlalchemy`: an engine that borrows the adbapi worker's connection.

SQLAlchemy normally opens, pools, resets and closes its own DB-API connections.
Here the :class:`adbapi.ConnectionPool` owns them (one per worker thread, opened,
committed, rolled back and closed by the pool), so the engine built by
:func:`borrowingEngine` is changed in three places:

- its pool, :class:`WorkerConnectionPool`, hands out one connection record per
  worker connection (the creator is the adbapi pool's ``connect()``, which only
  works in a worker thread), never closes anything and refuses a second
  checkout in the same unit;
- its dialect's ``do_close``/``do_terminate`` do nothing: the adbapi pool
  closes connections, in their own threads;
- its dialect's ``do_rollback`` and ``do_rollback_to_savepoint`` do nothing
  while a unit is being released, so ending the SQLAlchemy
  ``Connection``/``Session`` leaves the transaction (savepoints included) for
  the adbapi pool to commit or roll back. A rollback asked for by user code
  (``conn.rollback()``, ``session.rollback()``, leaving ``conn.begin()`` with an
  exception) is real.

Everything here runs in the adbapi pool's worker threads, except
:func:`borrowingEngine` (any thread; it opens no connection).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import sqlalchemy
from sqlalchemy.engine.interfaces import DBAPIConnection, Dialect
from sqlalchemy.pool import ConnectionPoolEntry, Pool

__all__ = ["WorkerConnectionPool", "borrowingEngine", "releasing"]

# create_engine() options that would contradict the borrowed connection model.
FORBIDDEN_ENGINE_OPTIONS = frozenset({
    "creator", "async_creator", "pool", "poolclass", "pool_size", "max_overflow", "pool_timeout",
    "pool_recycle", "pool_pre_ping", "pool_reset_on_return", "pool_use_lifo", "pool_logging_name",
    "echo_pool", "connect_args", "isolation_level",
})


class _UnitState(threading.local):
    releasing = False
    checkedOut = False
    record: ConnectionPoolEntry | None = None


class WorkerConnectionPool(Pool):
    """A SQLAlchemy pool over the adbapi workers' connections (worker threads only).

    Each worker thread keeps one connection record for as long as its adbapi
    connection is the same object: SQLAlchemy's per-connection setup (the
    dialect's ``on_connect``, e.g. MySQL's ``SET NAMES``) runs once per DB-API
    connection, not once per unit. When the worker's connection was replaced
    (broken, recycled) the record is dropped and a new one made.
    """

    def __init__(self, creator: Callable[[], DBAPIConnection], **kw: Any) -> None:
        super().__init__(creator, **kw)
        self._borrow = creator
        self._state = _UnitState()

    def status(self) -> str:
        return "WorkerConnectionPool"

    def _do_get(self) -> ConnectionPoolEntry:
        state = self._state
        if state.checkedOut:
            raise sqlalchemy.exc.InvalidRequestError(
                "a runCore/runSession unit already holds this worker's connection: use the Connection "
                "(or Session) the function was given instead of engine.connect()"
            )
        current = self._borrow()
        record = state.record
        if record is None or record.dbapi_connection is not current:
            state.record = None  # stale: its connection was replaced by the adbapi pool
            record = self._create_connection()
            state.record = record
        state.checkedOut = True
        return record

    def _do_return_conn(self, record: ConnectionPoolEntry) -> None:
        self._state.checkedOut = False

    def dispose(self) -> None:
        """Nothing to close: the adbapi pool owns every connection."""

    def recreate(self) -> WorkerConnectionPool:
        return WorkerConnectionPool(
            self._borrow, echo=self.echo, logging_name=self._orig_logging_name, reset_on_return=None,
            _dispatch=self.dispatch, dialect=self._dialect,
        )


def _installDialectHooks(dialect: Dialect, pool: WorkerConnectionPool) -> None:
    """Make the dialect leave connection lifetime and unit boundaries to the adbapi pool."""
    realRollback = dialect.do_rollback
    realRollbackToSavepoint = dialect.do_rollback_to_savepoint
    state = pool._state

    def doRollback(dbapiConnection: Any) -> None:
        if not state.releasing:
            realRollback(dbapiConnection)

    def doRollbackToSavepoint(connection: Any, name: str) -> None:
        # A savepoint still open when the function returned is kept, as with Core: the unit commits it all.
        if not state.releasing:
            realRollbackToSavepoint(connection, name)

    def doNotClose(dbapiConnection: Any) -> None:
        pass

    # Instance attributes shadow the dialect class's methods for this engine only.
    setattr(dialect, "do_rollback", doRollback)
    setattr(dialect, "do_rollback_to_savepoint", doRollbackToSavepoint)
    setattr(dialect, "do_close", doNotClose)
    setattr(dialect, "do_terminate", doNotClose)


def borrowingEngine(
    url: str | sqlalchemy.URL, borrow: Callable[[], Any], options: Mapping[str, Any]
) -> tuple[sqlalchemy.Engine, WorkerConnectionPool]:
    """An Engine whose connections are ``borrow()`` (the current worker's DB-API connection).

    Raises ``sqlalchemy.exc.ArgumentError``/``NoSuchModuleError`` for a bad URL and
    ``ValueError`` for an engine option this model cannot honour.
    """
    for key in options:
        if key == "isolation_level":
            raise ValueError(f"engineOptions[{key!r}] is not supported: {CHARACTERISTICS_HELP}")
        if key in FORBIDDEN_ENGINE_OPTIONS:
            raise ValueError(f"engineOptions[{key!r}] is not supported: the adbapi ConnectionPool owns the "
                             "connections")
    pool = WorkerConnectionPool(borrow, reset_on_return=None)
    engine = sqlalchemy.create_engine(url, pool=pool, **options)
    _installDialectHooks(engine.dialect, pool)
    refused = _refusedCharacteristics(engine.dialect)
    engineRefused = refused.intersection(options.get("execution_options") or ())
    if engineRefused:
        name = sorted(engineRefused)[0]
        raise ValueError(f"engineOptions['execution_options'][{name!r}] is not supported: "
                         f"{CHARACTERISTICS_HELP}")

    def refuse(target: Any, opts: dict[str, Any]) -> None:
        names = refused.intersection(opts)
        if names:
            raise sqlalchemy.exc.InvalidRequestError(
                f"execution option {sorted(names)[0]!r} is not supported on an adbapi pool: "
                + CHARACTERISTICS_HELP
            )

    sqlalchemy.event.listen(engine, "set_connection_execution_options", refuse)
    sqlalchemy.event.listen(engine, "set_engine_execution_options", refuse)
    return engine, pool


CHARACTERISTICS_HELP = (
    "SQLAlchemy would change the pool's connection for every later call, or restore it when the unit's "
    "Connection is released, before the pool commits, which ends the transaction on some drivers. Issue "
    "'SET TRANSACTION ISOLATION LEVEL ...' / 'SET TRANSACTION READ ONLY' as the unit's first statement, "
    "or configure every connection with cp_openfun"
)


def _refusedCharacteristics(dialect: Dialect) -> frozenset[str]:
    """Per-connection settings SQLAlchemy resets at check-in (isolation level, read only, deferrable...)."""
    characteristics: Mapping[str, Any] = getattr(dialect, "connection_characteristics", {})
    return frozenset(name for name, c in characteristics.items() if getattr(c, "transactional", True))


@contextmanager
def releasing(pool: WorkerConnectionPool) -> Iterator[None]:
    """While active (worker thread), the end of a unit's SQLAlchemy objects sends no ROLLBACK."""
    state = pool._state
    state.releasing = True
    try:
        yield
    finally:
        state.releasing = False
