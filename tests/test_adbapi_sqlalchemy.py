"""adbapi.sqlalchemy: SQLAlchemy Core and ORM units on a ConnectionPool (sqlite3, PostgreSQL, MariaDB)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import sqlalchemy
from sqlalchemy import Column, ForeignKey, Integer, MetaData, String, Table, func, select, text
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    mapped_column,
    relationship,
    selectinload,
    sessionmaker,
)
from sqlalchemy.orm.exc import DetachedInstanceError

from adbapi import ConnectionPool, PoolClosedError, RetryPolicy
from adbapi.sqlalchemy import SQLAlchemyPool, dialectURLFor
from reactor import CancelledError, Deferred, Reactor, gatherResults
from tests.adbapi_support import Backend, backendFixture, runReactor, serverBackendFixture  # noqa: F401


def coreTable(backend: Backend, name: str) -> Table:
    """A two-column Core table, dropped after the test."""
    backend.tables.append(name)
    return Table(name, MetaData(), Column("id", Integer, primary_key=True, autoincrement=False),
                 Column("v", Integer))


def ormModels(backend: Backend, prefix: str) -> tuple[type[DeclarativeBase], Any, Any]:
    """A declarative Parent/Child pair on unique tables (dropped after the test)."""
    backend.tables.extend([f"{prefix}_c", f"{prefix}_p"])

    class Base(DeclarativeBase):
        pass

    class Parent(Base):
        __tablename__ = f"{prefix}_p"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str] = mapped_column(String(50))
        children: Mapped[list[Any]] = relationship("Child")

    class Child(Base):
        __tablename__ = f"{prefix}_c"
        id: Mapped[int] = mapped_column(primary_key=True)
        parentId: Mapped[int] = mapped_column(ForeignKey(f"{prefix}_p.id"))

    return Base, Parent, Child


def test_coreInsertAndSelect(backend: Backend, uniqueTableName: str) -> None:
    """runCore runs a Core function on the worker's connection and commits; execute fires with Rows."""
    table = coreTable(backend, uniqueTableName)

    def insert(conn: sqlalchemy.Connection, n: int) -> int:
        assert isinstance(conn, sqlalchemy.Connection)
        conn.execute(table.insert(), [{"id": i, "v": i * 10} for i in range(n)])
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())

    async def body(reactor: Reactor) -> Any:
        sa = SQLAlchemyPool(backend.pool(reactor, cp_min=1, cp_max=2))
        await sa.runCore(table.metadata.create_all)
        count = await sa.runCore(insert, 3)
        rows = await sa.execute(select(table.c.id, table.c.v).where(table.c.v > 5).order_by(table.c.id))
        none = await sa.execute(table.update().values(v=0).where(table.c.id == 0))
        return count, rows, none

    count, rows, none = runReactor(body, 15)
    assert count == 3
    assert [tuple(r) for r in rows] == [(1, 10), (2, 20)] and isinstance(rows[0], sqlalchemy.Row)
    assert none == []
    assert backend.admin(f"SELECT v FROM {uniqueTableName} WHERE id = 0")[0][0] == 0


def test_ormAddAndQuery(backend: Backend, uniqueTableName: str) -> None:
    """runSession adds and queries declarative objects; they arrive detached with loaded attributes."""
    Base, Parent, Child = ormModels(backend, uniqueTableName)

    def add(session: Session) -> int:
        parent = Parent(id=1, name="p", children=[Child(id=1), Child(id=2)])
        session.add(parent)
        return 1

    def loadAll(session: Session) -> Any:
        return session.scalars(select(Parent).options(selectinload(Parent.children))).one()

    async def body(reactor: Reactor) -> Any:
        sa = SQLAlchemyPool(backend.pool(reactor, cp_min=1, cp_max=2))
        await sa.runCore(Base.metadata.create_all)
        await sa.runSession(add)
        return await sa.runSession(loadAll), await sa.runSession(lambda s: s.get(Parent, 1))

    loaded, lazy = runReactor(body, 15)
    assert loaded.name == "p" and sorted(c.id for c in loaded.children) == [1, 2]
    assert sqlalchemy.inspect(loaded).detached
    with pytest.raises(DetachedInstanceError):
        lazy.children  # noqa: B018 - not loaded in the worker: no query from the reactor thread
    assert backend.admin(f"SELECT count(*) FROM {uniqueTableName}_c")[0][0] == 2


def test_exceptionRollsBackCoreAndSession(backend: Backend, uniqueTableName: str) -> None:
    """A function that raises errbacks with its exception and its writes (Core or ORM) are rolled back."""
    Base, Parent, _ = ormModels(backend, uniqueTableName)

    def coreWork(conn: sqlalchemy.Connection) -> None:
        conn.execute(Parent.__table__.insert().values(id=1, name="core"))
        raise KeyError("core")

    def ormWork(session: Session) -> None:
        session.add(Parent(id=2, name="orm"))
        session.flush()
        raise KeyError("orm")

    async def body(reactor: Reactor) -> Any:
        sa = SQLAlchemyPool(backend.pool(reactor, cp_min=1, cp_max=1))
        await sa.runCore(Base.metadata.create_all)
        with pytest.raises(KeyError):
            await sa.runCore(coreWork)
        with pytest.raises(KeyError):
            await sa.runSession(ormWork)
        return await sa.execute(select(func.count()).select_from(Parent.__table__))

    assert runReactor(body, 15)[0][0] == 0


def test_databaseErrorIsSQLAlchemyWrapped(backend: Backend, uniqueTableName: str) -> None:
    """A database error arrives as SQLAlchemy's exception (driver's as .orig); the connection stays usable."""
    table = coreTable(backend, uniqueTableName)

    async def body(reactor: Reactor) -> Any:
        sa = SQLAlchemyPool(backend.pool(reactor, cp_min=1, cp_max=1))
        await sa.runCore(table.metadata.create_all)
        await sa.execute(table.insert().values(id=1, v=1))
        with pytest.raises(sqlalchemy.exc.IntegrityError) as info:
            await sa.execute(table.insert().values(id=1, v=2))
        with pytest.raises(sqlalchemy.exc.DBAPIError):
            await sa.execute(text("SELECT * FROM no_such_table_adbapi_sa"))
        return info.value, await sa.execute(select(table.c.v)), sa.statistics()

    error, rows, stats = runReactor(body, 15)
    assert isinstance(error.orig, backend.module.IntegrityError)
    assert [tuple(r) for r in rows] == [(1,)]
    assert stats.errors == 2 and stats.reconnects == 0


def test_commitVisibleFromAnotherUnit(backend: Backend, uniqueTableName: str) -> None:
    """A unit's commit is visible to the next unit on another connection and outside the pool."""
    table = coreTable(backend, uniqueTableName)
    barrier = threading.Barrier(2, timeout=5)

    def write(conn: sqlalchemy.Connection) -> None:
        conn.execute(table.insert().values(id=1, v=7))

    def readOnOther(conn: sqlalchemy.Connection, writer: int) -> Any:
        assert id(conn.connection.dbapi_connection) != writer
        return conn.execute(select(table.c.v)).scalar_one()

    def holdConnection(conn: sqlalchemy.Connection) -> int:
        barrier.wait()  # both units run at once, so they hold two different connections
        barrier.wait()
        return id(conn.connection.dbapi_connection)

    async def body(reactor: Reactor) -> Any:
        sa = SQLAlchemyPool(backend.pool(reactor, cp_min=2, cp_max=2))
        await sa.runCore(table.metadata.create_all)
        held = await gatherResults([sa.runCore(holdConnection), sa.runCore(holdConnection)])

        def writeThen(conn: sqlalchemy.Connection) -> int:
            write(conn)
            return id(conn.connection.dbapi_connection)

        writer = await sa.runCore(writeThen)
        # Keep the writer's connection busy so the reader must take the other one.
        gate = threading.Event()
        busy = sa.runCore(lambda conn: gate.wait(5))
        value = await sa.runCore(readOnOther, writer)
        gate.set()
        await busy
        return held, value

    held, value = runReactor(body, 15)
    assert held[0] != held[1]
    assert value == 7
    assert backend.admin(f"SELECT v FROM {uniqueTableName}")[0][0] == 7


def test_sessionCommitInsideFunctionKeepsObjectsLoaded(backend: Backend, uniqueTableName: str) -> None:
    """session.commit() in the function commits at once; expire_on_commit=False keeps objects readable."""
    Base, Parent, _ = ormModels(backend, uniqueTableName)

    def work(session: Session) -> Any:
        parent = Parent(id=1, name="kept")
        session.add(parent)
        session.commit()
        session.add(Parent(id=2, name="flushed at the end, committed by the pool"))
        return parent

    async def body(reactor: Reactor) -> Any:
        sa = SQLAlchemyPool(backend.pool(reactor, cp_min=1, cp_max=1))
        await sa.runCore(Base.metadata.create_all)
        return await sa.runSession(work)

    parent = runReactor(body, 15)
    assert parent.name == "kept"
    rows = backend.admin(f"SELECT id FROM {uniqueTableName}_p ORDER BY id")
    assert [tuple(r) for r in rows] == [(1,), (2,)]


def test_savepointsCoreAndSession(backend: Backend, uniqueTableName: str) -> None:
    """A savepoint rolled back in the function is undone; one left open is committed with the unit."""
    table = coreTable(backend, uniqueTableName)

    def core(conn: sqlalchemy.Connection) -> None:
        conn.execute(table.insert().values(id=1, v=1))
        with pytest.raises(KeyError), conn.begin_nested():
            conn.execute(table.insert().values(id=2, v=2))
            raise KeyError("undo the savepoint only")
        conn.begin_nested()
        conn.execute(table.insert().values(id=3, v=3))

    def orm(session: Session) -> None:
        session.execute(table.insert().values(id=4, v=4))
        session.begin_nested()
        session.execute(table.insert().values(id=5, v=5))

    async def body(reactor: Reactor) -> Any:
        sa = SQLAlchemyPool(backend.pool(reactor, cp_min=1, cp_max=1))
        await sa.runCore(table.metadata.create_all)
        await sa.runCore(core)
        await sa.runSession(orm)

    runReactor(body, 15)
    rows = backend.admin(f"SELECT id FROM {uniqueTableName} ORDER BY id")
    assert [r[0] for r in rows] == [1, 3, 4, 5]


def test_sessionFactoryIsUsed(tmp_path: Any) -> None:
    """A sessionmaker given as sessionFactory makes the Session, bound to the unit's connection."""
    made: list[Session] = []

    class MySession(Session):
        def __init__(self, **kw: Any) -> None:
            super().__init__(**kw)
            made.append(self)

    async def body(reactor: Reactor) -> Any:
        pool = ConnectionPool("sqlite3", str(tmp_path / "f.db"), cp_reactor=reactor, cp_min=1, cp_max=1)
        sa = SQLAlchemyPool(pool, sessionFactory=sessionmaker(class_=MySession, expire_on_commit=False))
        return await sa.runSession(lambda s: (type(s).__name__, s.execute(text("SELECT 5")).scalar_one()))

    assert runReactor(body, 15) == ("MySession", 5) and len(made) == 1


def test_resultObjectCannotLeaveTheWorker(tmp_path: Any) -> None:
    """A function returning a Result errbacks TypeError (rolled back) instead of leaking a cursor."""

    async def body(reactor: Reactor) -> None:
        pool = ConnectionPool("sqlite3", str(tmp_path / "r.db"), cp_reactor=reactor, cp_min=1, cp_max=1)
        sa = SQLAlchemyPool(pool)
        with pytest.raises(TypeError, match=r"result\.all"):
            await sa.runCore(lambda conn: conn.execute(text("SELECT 1")))
        with pytest.raises(TypeError, match="ScalarResult"):
            await sa.runSession(lambda s: s.scalars(text("SELECT 1")))
        assert await sa.runCore(lambda conn: conn.execute(text("SELECT 2")).all()) == [(2,)]

    runReactor(body, 15)


def test_cancelStopsStatementOnServer(serverBackend: Backend) -> None:
    """Cancelling a runCore in pg_sleep/SLEEP errbacks CancelledError within 1 s and frees its session."""
    backend = serverBackend

    async def body(reactor: Reactor) -> Any:
        sa = SQLAlchemyPool(backend.pool(reactor, cp_min=1, cp_max=1))
        started: Deferred[int] = Deferred()

        def sleeper(conn: sqlalchemy.Connection) -> None:
            serverId = conn.execute(text(backend.serverIdQuery)).scalar_one()
            reactor.callFromThread(started.callback, serverId)
            conn.execute(text(backend.longQuery))

        d = sa.runCore(sleeper)
        serverId = await started
        t0 = time.monotonic()
        d.cancel()
        with pytest.raises(CancelledError):
            await d
        errbacked = time.monotonic() - t0
        after = await sa.execute(text(f"{backend.serverIdQuery}, 1"))
        reused = time.monotonic() - t0
        return serverId, errbacked, after, reused, sa.statistics()

    serverId, errbacked, after, reused, stats = runReactor(body, 15)
    assert errbacked < 1.0
    assert tuple(after[0]) == (serverId, 1)  # the same session, no longer sleeping
    assert reused < 5.0
    assert stats.cancelled == 1 and stats.reconnects == 0


def test_killedSessionIsReplaced(serverBackend: Backend) -> None:
    """After the server kills the session, one unit fails (DBAPIError) and the next runs on a new session."""
    backend = serverBackend

    async def body(reactor: Reactor) -> Any:
        sa = SQLAlchemyPool(backend.pool(reactor, cp_min=1, cp_max=1))
        first = (await sa.execute(text(backend.serverIdQuery)))[0][0]
        backend.killSession(first)  # test-only admin call, quick
        with pytest.raises(sqlalchemy.exc.DBAPIError):
            await sa.execute(text(backend.serverIdQuery))
        second = (await sa.execute(text(backend.serverIdQuery)))[0][0]
        return first, second, sa.statistics()

    first, second, stats = runReactor(body, 15)
    assert first != second
    assert stats.reconnects == 1 and stats.connectionsOpened == 2


def test_conflictIsRetriedByThePool(postgresDSN: str) -> None:
    """A serialization failure raised through SQLAlchemy is classified by the pool and retried."""
    attempts: list[int] = []

    def work(conn: sqlalchemy.Connection) -> int:
        attempts.append(1)
        if len(attempts) == 1:
            conn.execute(text("DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = '40001'; END $$"))
        return int(conn.execute(text("SELECT 42")).scalar_one())

    async def body(reactor: Reactor) -> Any:
        pool = ConnectionPool("psycopg2", postgresDSN, cp_reactor=reactor, cp_min=1, cp_max=1,
                              cp_retry=RetryPolicy(attempts=3, backoff=0.01))
        return await SQLAlchemyPool(pool, "postgresql+psycopg2://").runCore(work), pool.statistics()

    value, stats = runReactor(body, 15)
    assert value == 42 and len(attempts) == 2 and stats.retries == 1


def test_isolationLevelOptionIsRefused(backend: Backend, uniqueTableName: str) -> None:
    """execution_options(isolation_level=...) raises in the unit (which rolls back) instead of losing work."""
    table = coreTable(backend, uniqueTableName)

    def work(conn: sqlalchemy.Connection) -> None:
        conn.execute(table.insert().values(id=1, v=1))
        conn.execution_options(isolation_level="SERIALIZABLE")

    def serializable(conn: sqlalchemy.Connection) -> Any:
        if backend.name != "sqlite":
            conn.execute(text("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE"))
        conn.execute(table.insert().values(id=2, v=2))
        return conn.execute(select(table.c.id)).scalars().all()

    async def body(reactor: Reactor) -> Any:
        sa = SQLAlchemyPool(backend.pool(reactor, cp_min=1, cp_max=1))
        await sa.runCore(table.metadata.create_all)
        with pytest.raises(sqlalchemy.exc.InvalidRequestError, match="isolation_level"):
            await sa.runCore(work)
        return await sa.runCore(serializable)

    assert runReactor(body, 15) == [2]
    assert backend.admin(f"SELECT id FROM {uniqueTableName}")[0][0] == 2


def test_nestedEngineConnectIsRefused(tmp_path: Any) -> None:
    """engine.connect() inside a unit raises (one connection per worker); outside a worker it raises too."""

    async def body(reactor: Reactor) -> Any:
        pool = ConnectionPool("sqlite3", str(tmp_path / "n.db"), cp_reactor=reactor, cp_min=1, cp_max=1)
        sa = SQLAlchemyPool(pool)

        def nested(conn: sqlalchemy.Connection) -> None:
            sa.engine.connect()

        with pytest.raises(sqlalchemy.exc.InvalidRequestError, match="already holds"):
            await sa.runCore(nested)
        with pytest.raises(RuntimeError, match="worker threads"):
            sa.engine.connect()
        return await sa.execute(text("SELECT 1"))

    assert runReactor(body, 15) == [(1,)]


def test_closeClosesThePool(tmp_path: Any) -> None:
    """close() fires when the pool's workers exited; later calls errback PoolClosedError at once."""

    async def body(reactor: Reactor) -> Any:
        pool = ConnectionPool("sqlite3", str(tmp_path / "c.db"), cp_reactor=reactor, cp_min=1, cp_max=2)
        sa = SQLAlchemyPool(pool)
        await sa.execute(text("SELECT 1"))
        await sa.close()
        d = sa.execute(text("SELECT 1"))
        assert d.called
        with pytest.raises(PoolClosedError):
            await d
        return sa.statistics()

    stats = runReactor(body, 15)
    assert stats.state == "closed" and stats.workers == 0


def test_badArgumentsRaiseAtTheCall(tmp_path: Any) -> None:
    """Wrong arguments raise TypeError/ValueError naming the argument, before any work."""
    reactor = Reactor()
    pool = ConnectionPool("sqlite3", str(tmp_path / "b.db"), cp_reactor=reactor)
    with pytest.raises(TypeError, match="pool"):
        SQLAlchemyPool("sqlite3")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="url"):
        SQLAlchemyPool(pool, 5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="url"):
        SQLAlchemyPool(pool, "postgresql+psycopg2://")
    with pytest.raises(ValueError, match="url"):
        SQLAlchemyPool(pool, "nosuchdb://")
    with pytest.raises(ValueError, match="poolclass"):
        SQLAlchemyPool(pool, engineOptions={"poolclass": None})
    with pytest.raises(ValueError, match="isolation_level"):
        SQLAlchemyPool(pool, engineOptions={"isolation_level": "SERIALIZABLE"})
    with pytest.raises(ValueError, match="isolation_level"):
        SQLAlchemyPool(pool, engineOptions={"execution_options": {"isolation_level": "AUTOCOMMIT"}})
    with pytest.raises(TypeError, match="sessionFactory"):
        SQLAlchemyPool(pool, sessionFactory=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="dbapiName"):
        dialectURLFor("nosuchdriver")
    sa = SQLAlchemyPool(pool, engineOptions={"echo": False})
    with pytest.raises(TypeError, match="f must be callable"):
        sa.runCore(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="f must be callable"):
        sa.runSession(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="statement"):
        sa.execute("SELECT 1")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="parameters"):
        sa.execute(text("SELECT 1"), 5)  # type: ignore[arg-type]
    assert pool.statistics().calls == 0


@pytest.mark.parametrize("url", [
    "nosuchdb://bob:hunter2pw@db.example/app",
    "postgresql+nosuch://bob:hunter2pw@db.example/app",
    "postgresql+nosuch://bob:hun@ter2pw@db.example/app",
    "not a url bob:hunter2pw@db.example",
    sqlalchemy.URL.create("nosuchdb", username="bob", password="hunter2pw", host="db.example"),
], ids=["unknownDialect", "unknownDriver", "atInPassword", "unparsable", "urlObject"])
def test_unusableUrlErrorHidesPassword(tmp_path: Any, url: Any) -> None:
    """The ValueError for an unusable URL (and its cause) shows the URL with its password masked."""
    pool = ConnectionPool("sqlite3", str(tmp_path / "u.db"), cp_reactor=Reactor())
    with pytest.raises(ValueError, match="not a usable SQLAlchemy URL") as info:
        SQLAlchemyPool(pool, url)
    shown = [str(info.value), repr(info.value), str(info.value.__cause__)]
    assert not any("hunter2pw" in text or "ter2pw" in text for text in shown), shown
    assert "db.example" in str(info.value)


def test_docsSnippetRuns(tmp_path: Any) -> None:
    """The first python block of docs/sqlalchemy.md runs as written (in a subprocess, as it calls react)."""
    import re
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    block = re.findall(r"```python\n(.*?)```", (root / "docs" / "sqlalchemy.md").read_text(), re.S)[0]
    script = tmp_path / "snippet.py"
    script.write_text(block)
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["2", "2 robert", "[(1, 'ada'), (2, 'robert')]"]
