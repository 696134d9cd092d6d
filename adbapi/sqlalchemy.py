"""SQLAlchemy 2.x Core and ORM on an :class:`adbapi.ConnectionPool`.

:class:`SQLAlchemyPool` runs a function taking a ``sqlalchemy.Connection``
(:meth:`~SQLAlchemyPool.runCore`) or a ``sqlalchemy.orm.Session``
(:meth:`~SQLAlchemyPool.runSession`) in one of the pool's worker threads, on
that worker's own DB-API connection, as one transaction owned by the pool:
committed when the function returns, rolled back when it raises. Everything
the pool does for ``runWithConnection`` applies: cancelling the Deferred stops
the statement on the server, broken connections are replaced, the retry policy
and ``cp_timeout`` work, ``statistics()`` counts the calls.

Errors: SQLAlchemy's own exceptions arrive (``sqlalchemy.exc.IntegrityError``,
``OperationalError``... with the driver's exception as ``.orig``), while the
pool classifies the driver's exception (disconnects, conflicts to retry).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Concatenate, ParamSpec, TypeVar

import sqlalchemy
from sqlalchemy.engine import FilterResult, Result, Row
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.sql import Executable

from adbapi import Connection, ConnectionPool, PoolStatistics
from adbapi._redact import MASK, Redactor
from adbapi._sapool import WorkerConnectionPool, borrowingEngine, releasing
from reactor import Deferred, Failure

__all__ = ["SQLAlchemyPool", "dialectURLFor"]

_P = ParamSpec("_P")
_T = TypeVar("_T")

# DB-API module name -> the SQLAlchemy dialect+driver that speaks it.
_DIALECTS: Mapping[str, str] = MappingProxyType({
    "psycopg2": "postgresql+psycopg2://",
    "psycopg": "postgresql+psycopg://",
    "pg8000": "postgresql+pg8000://",
    "sqlite3": "sqlite+pysqlite://",
    "sqlite3.dbapi2": "sqlite+pysqlite://",
    "pymysql": "mysql+pymysql://",
    "MySQLdb": "mysql+mysqldb://",
    "mysql.connector": "mysql+mysqlconnector://",
    "mariadb": "mariadb+mariadbconnector://",
    "oracledb": "oracle+oracledb://",
    "pyodbc": "mssql+pyodbc://",
})


def dialectURLFor(dbapiName: str) -> str:
    """The SQLAlchemy URL (dialect and driver only) for a DB-API module name, e.g. ``"psycopg2"``.

    Raises ``ValueError`` naming ``dbapiName`` when there is no known dialect for it.
    """
    try:
        return _DIALECTS[dbapiName]
    except KeyError:
        raise ValueError(
            f"dbapiName {dbapiName!r} has no known SQLAlchemy dialect: pass url= "
            "(e.g. 'postgresql+psycopg2://')"
        ) from None


def _shownURL(url: str | sqlalchemy.URL) -> str:
    """``url`` as an error message may show it: the password masked, as everywhere in the pool.

    A string SQLAlchemy cannot parse, or with more than one ``@``, keeps no user
    information at all (whatever precedes its last ``@``): where its password
    ends cannot be known.
    """
    if isinstance(url, sqlalchemy.URL):
        return url.render_as_string(hide_password=True)
    if url.count("@") <= 1:
        try:
            return sqlalchemy.make_url(url).render_as_string(hide_password=True)
        except (sqlalchemy.exc.ArgumentError, ValueError):
            pass
    text = Redactor((url,), {}).scrub(url)
    head, at, host = text.rpartition("@")
    if not at:
        return text
    scheme, sep, _ = head.partition("://")
    return f"{scheme}{sep}{MASK}@{host}" if sep else f"{MASK}@{host}"


class SQLAlchemyPool:
    """SQLAlchemy Core and ORM units of work on an existing :class:`adbapi.ConnectionPool`.

    ``SQLAlchemyPool(pool)`` derives the dialect from the pool's driver;
    ``SQLAlchemyPool(pool, "postgresql+psycopg2://")`` names it. Only the URL's
    dialect and driver are used: connections always come from ``pool``, so a
    host, database or password in the URL is ignored. The URL's driver must be
    the pool's DB-API module (``ValueError`` otherwise).

    ``sessionFactory`` (e.g. a ``sessionmaker(expire_on_commit=False)``) makes
    the Session given to :meth:`runSession`; it is called as
    ``sessionFactory(bind=connection)`` in the worker thread. The default is
    ``Session(bind=connection, expire_on_commit=False)``.
    ``engineOptions`` go to ``sqlalchemy.create_engine`` (``echo``,
    ``json_serializer``, ``execution_options``...); pool, creator, connect and
    isolation-level options are refused (``ValueError``): the pool owns the
    connections.

    Construct and call it in the reactor thread; the functions given to
    :meth:`runCore` and :meth:`runSession` run in a worker thread.
    """

    def __init__(
        self,
        pool: ConnectionPool,
        url: str | sqlalchemy.URL | None = None,
        *,
        sessionFactory: Callable[..., Session] | None = None,
        engineOptions: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(pool, ConnectionPool):
            raise TypeError(f"pool must be an adbapi.ConnectionPool, not {type(pool).__name__}")
        if url is None:
            url = dialectURLFor(pool.dbapiName)
        elif not isinstance(url, (str, sqlalchemy.URL)):
            raise TypeError(f"url must be a str or sqlalchemy.URL, not {type(url).__name__}")
        if sessionFactory is not None and not callable(sessionFactory):
            raise TypeError(f"sessionFactory must be callable or None, not {type(sessionFactory).__name__}")
        if engineOptions is not None and not isinstance(engineOptions, Mapping):
            raise TypeError(f"engineOptions must be a mapping or None, not {type(engineOptions).__name__}")
        self.pool = pool
        try:
            engine, saPool = borrowingEngine(url, pool.connect, engineOptions or {})
        except (sqlalchemy.exc.ArgumentError, sqlalchemy.exc.NoSuchModuleError) as e:
            shown = _shownURL(url)
            Redactor((url if isinstance(url, str) else str(url),), {}).scrubException(e)
            raise ValueError(f"url {shown!r} is not a usable SQLAlchemy URL: {e}") from e
        dbapi = engine.dialect.loaded_dbapi
        if getattr(dbapi, "connect", None) is not getattr(pool.dbapi, "connect", None):
            raise ValueError(
                f"url {engine.url.drivername!r} uses the DB-API module {dbapi.__name__!r}, "
                f"but the pool uses {pool.dbapiName!r}"
            )
        self.engine: sqlalchemy.Engine = engine
        """The Engine over the pool's connections. Its ``connect()`` works only inside a pool
        worker thread with no unit running there; use :meth:`runCore` instead."""
        self._saPool: WorkerConnectionPool = saPool
        self._sessionFactory = sessionFactory
        # The driver's DB-API base class: its errors raised outside SQLAlchemy are wrapped in _submit.
        error = getattr(dbapi, "Error", None)
        self._driverError: type[Exception] | None = error if isinstance(error, type) else None

    @property
    def dialect(self) -> sqlalchemy.Dialect:
        """The SQLAlchemy dialect (e.g. for compiling statements; no database work)."""
        return self.engine.dialect

    def __repr__(self) -> str:
        engine = getattr(self, "engine", None)
        driver = engine.url.drivername if engine is not None else "(unconfigured)"
        return f"<SQLAlchemyPool {driver} on {getattr(self, 'pool', None)!r}>"

    # -- the public calls (reactor thread) ----------------------------------------------

    def runCore(
        self, f: Callable[Concatenate[sqlalchemy.Connection, _P], _T], /, *args: _P.args, **kw: _P.kwargs
    ) -> Deferred[_T]:
        """Run ``f(connection, *args, **kw)`` in a worker thread; fire with its result (reactor thread).

        ``connection`` is a ``sqlalchemy.Connection`` on the worker's own DB-API
        connection, valid only until ``f`` returns. The unit is committed by the
        pool when ``f`` returns and rolled back when it raises; ``f`` may also
        ``connection.commit()``/``rollback()`` or use ``connection.begin()`` /
        ``begin_nested()`` itself. Return plain data (``result.all()``,
        ``.scalars().all()``, ``.rowcount``): a ``Result`` cannot leave the worker
        (``TypeError``, and the unit rolls back).

        The Deferred fires with ``f``'s return value, or errbacks with its
        exception (SQLAlchemy's ``DBAPIError`` subclasses for database errors,
        ``CancelledError`` when cancelled: a running statement is stopped on the
        server). ``TypeError`` at the call if ``f`` is not callable.
        """
        if not callable(f):
            raise TypeError(f"f must be callable, not {type(f).__name__}")

        def unit(connection: sqlalchemy.Connection) -> _T:
            return f(connection, *args, **kw)

        return self._submit(unit)

    def runSession(
        self, f: Callable[Concatenate[Session, _P], _T], /, *args: _P.args, **kw: _P.kwargs
    ) -> Deferred[_T]:
        """Run ``f(session, *args, **kw)`` in a worker thread with an ORM Session; fire with its result.

        After ``f`` returns the session is flushed, then closed, so the objects
        ``f`` returns arrive **detached**: attributes loaded in the worker are
        readable in the reactor thread; anything not loaded (a lazy relationship,
        a server default not fetched) raises ``DetachedInstanceError`` instead of
        querying from the reactor thread. Load what you need in ``f``
        (``selectinload``, ``session.refresh(obj)``) or return plain values. The
        pool commits the unit when ``f`` returns and rolls it back when it (or
        the flush) raises; ``session.commit()`` inside ``f`` commits at once
        (the default session has ``expire_on_commit=False``, so objects stay
        loaded).

        Errors and cancellation as for :meth:`runCore`.
        """
        if not callable(f):
            raise TypeError(f"f must be callable, not {type(f).__name__}")
        factory = self._sessionFactory

        def unit(connection: sqlalchemy.Connection) -> _T:
            if factory is None:
                session = Session(bind=connection, expire_on_commit=False)
            else:
                session = factory(bind=connection)
            try:
                result = f(session, *args, **kw)
                session.flush()
                return result
            finally:
                with releasing(self._saPool):
                    session.close()

        return self._submit(unit)

    def execute(
        self, statement: Executable, parameters: Mapping[str, Any] | list[Mapping[str, Any]] | None = None
    ) -> Deferred[list[Row[Any]]]:
        """Execute one Core statement as its own unit; fire with its rows, fetched in the worker.

        A statement that returns no rows (an INSERT without RETURNING...) fires
        with ``[]``. Use ``sqlalchemy.text("...")`` for SQL strings: a ``str``
        raises ``TypeError`` naming ``statement``.
        """
        if not isinstance(statement, Executable):
            raise TypeError(
                f"statement must be a SQLAlchemy executable (use sqlalchemy.text() for SQL), "
                f"not {type(statement).__name__}"
            )
        if parameters is not None and not isinstance(parameters, (Mapping, list)):
            raise TypeError(f"parameters must be a mapping, a list of mappings or None, "
                            f"not {type(parameters).__name__}")

        def unit(connection: sqlalchemy.Connection) -> list[Row[Any]]:
            result = connection.execute(statement, parameters)
            return list(result.all()) if result.returns_rows else []

        return self._submit(unit)

    def statistics(self) -> PoolStatistics:
        """The underlying pool's statistics (any thread; no database work)."""
        return self.pool.statistics()

    def close(self) -> Deferred[None]:
        """Close the underlying ConnectionPool (reactor thread); fires when its workers have exited.

        Calls made afterwards errback ``adbapi.PoolClosedError`` at once;
        ``pool.start()`` makes both usable again.
        """
        self.engine.dispose()
        return self.pool.close()

    # -- machinery ---------------------------------------------------------------------------

    def _submit(self, unit: Callable[[sqlalchemy.Connection], _T]) -> Deferred[_T]:
        # The SQLAlchemy exception of the last attempt, written by the worker, read after the hand-off.
        wrapped: list[DBAPIError] = []
        d = self.pool.runWithConnection(self._runUnit, unit, wrapped)

        def restore(failure: Failure) -> Failure:
            if wrapped and failure.value is wrapped[-1].orig:
                error = wrapped[-1]
                # Undo what re-raising it in the worker set, so the chain reads as SQLAlchemy made it.
                failure.value.__context__ = None
                failure.value.__suppress_context__ = False
                return Failure(error, type(error), error.__traceback__)
            orig = failure.value
            if self._driverError is not None and isinstance(orig, self._driverError):
                # The driver failed outside SQLAlchemy: at the pool's own COMMIT, after the unit returned.
                # SQLAlchemy code still gets SQLAlchemy's class, with the driver's error as .orig.
                made = DBAPIError.instance(
                    "COMMIT", None, orig, self._driverError,
                    connection_invalidated=self.pool.context.adapter.isDisconnect(orig, None),
                    dialect=self.engine.dialect,
                )
                if isinstance(made, DBAPIError):
                    made.__traceback__ = orig.__traceback__
                    return Failure(made, type(made), orig.__traceback__)
            return failure

        d.addErrback(restore)
        return d

    def _runUnit(
        self, pooled: Connection, unit: Callable[[sqlalchemy.Connection], _T], wrapped: list[DBAPIError]
    ) -> _T:
        """The body given to ``runWithConnection`` (worker thread).

        Ends the SQLAlchemy side of the unit without a ROLLBACK or close, so the
        pool's commit or rollback is the transaction boundary. A ``DBAPIError`` is
        re-raised as the driver's exception for the pool to classify (disconnect,
        conflict to retry); ``_submit`` puts SQLAlchemy's back in the reactor thread.
        """
        try:
            connection = self.engine.connect()
            try:
                result = unit(connection)
                if isinstance(result, (Result, FilterResult)):
                    raise TypeError(
                        f"the function returned a {type(result).__name__}, which cannot leave the worker "
                        "thread: return result.all(), .scalars().all() or .rowcount instead"
                    )
            finally:
                with releasing(self._saPool):
                    connection.close()
            return result
        except DBAPIError as e:
            if not isinstance(e.orig, Exception):
                raise
            del wrapped[:]
            wrapped.append(e)
            raise e.orig from None
