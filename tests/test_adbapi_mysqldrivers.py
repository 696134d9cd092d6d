"""The three MySQL drivers on the real MariaDB server: what differs between them, and what must not.

The shared behaviour suite (``backend``/``serverBackend`` fixtures) already runs every adbapi behaviour on
PyMySQL, MySQLdb (mysqlclient) and MySQL Connector/Python; these tests pin the places where the drivers
themselves differ and the adapter has to bridge them.
"""

from __future__ import annotations

from typing import Any

import pytest

from adbapi import Transaction
from adbapi._drivers import MySQLAdapter, adapterFor
from reactor import Reactor
from tests.adbapi_support import Backend, _makeBackend, runReactor

MYSQL_DRIVERS = ["mysql", "mysqlclient", "mysqlconnector"]


@pytest.fixture(name="mysqlBackend", params=MYSQL_DRIVERS)
def mysqlBackendFixture(request: pytest.FixtureRequest, tmp_path: Any) -> Any:
    """One MySQL driver (PyMySQL, MySQLdb, mysql.connector) on the test MariaDB server."""
    yield from _makeBackend(request.param, request, tmp_path)


def test_everyMySQLDriverGetsTheMySQLAdapter(mysqlBackend: Backend) -> None:
    """PyMySQL, MySQLdb and mysql.connector all get the adapter that can KILL QUERY and ping."""
    adapter = adapterFor(mysqlBackend.module)
    assert type(adapter) is MySQLAdapter and adapter.canCancel


def test_describeConnectionIsTheServerConnectionID(mysqlBackend: Backend) -> None:
    """The id the adapter records for a cancel is the server's CONNECTION_ID() of that connection."""
    adapter = adapterFor(mysqlBackend.module)
    conn = mysqlBackend.adminConnect()
    try:
        cursor = conn.cursor()
        cursor.execute("SELECT CONNECTION_ID()")
        serverId = cursor.fetchall()[0][0]
        cursor.close()
        assert adapter.describeConnection(conn) == serverId
    finally:
        conn.close()


def test_rollbackDropsUnreadRowsOfAnUnbufferedCursor(mysqlBackend: Backend, uniqueTableName: str) -> None:
    """An interaction that SELECTs without fetching and then fails is rolled back on the same session.

    With mysql.connector's unbuffered cursors the rows are still on the wire when the pool rolls back;
    the adapter drops them first, so the rollback neither fails nor costs the connection.
    """
    backend = mysqlBackend
    table = backend.createTable(uniqueTableName)

    class Boom(Exception):
        pass

    def interaction(txn: Transaction) -> None:
        txn.execute(backend.sql(f"INSERT INTO {table} (id, v) VALUES (?, ?)"), (1, 1))
        txn.execute(f"SELECT id FROM {table}")  # rows left unread
        raise Boom()

    async def body(reactor: Reactor) -> Any:
        pool = backend.pool(reactor, cp_min=1, cp_max=1)
        before = (await pool.runQuery("SELECT CONNECTION_ID()"))[0][0]
        with pytest.raises(Boom):
            await pool.runInteraction(interaction)
        after = (await pool.runQuery("SELECT CONNECTION_ID()"))[0][0]
        rows = await pool.runQuery(f"SELECT count(*) FROM {table}")
        return before, after, rows[0][0], pool.statistics()

    before, after, count, stats = runReactor(body)
    assert count == 0  # the insert was rolled back
    assert after == before and stats.connectionsOpened == 1


def test_unfetchedSelectEndsAsTheDriverSays(mysqlBackend: Backend, uniqueTableName: str) -> None:
    """An interaction that SELECTs and returns without fetching: PyMySQL and MySQLdb commit it;
    mysql.connector raises its own "Unread result found" when the cursor closes, and the work is rolled
    back. The connection survives either way."""
    backend = mysqlBackend
    table = backend.createTable(uniqueTableName)
    unbuffered = backend.module.__name__ == "mysql.connector"

    def interaction(txn: Transaction) -> str:
        txn.execute(backend.sql(f"INSERT INTO {table} (id, v) VALUES (?, ?)"), (1, 1))
        txn.execute(f"SELECT id FROM {table}")
        return "returned"

    async def body(reactor: Reactor) -> Any:
        pool = backend.pool(reactor, cp_min=1, cp_max=1)
        before = (await pool.runQuery("SELECT CONNECTION_ID()"))[0][0]
        try:
            outcome: Any = await pool.runInteraction(interaction)
        except backend.module.Error as e:
            outcome = e
        rows = await pool.runQuery(f"SELECT count(*) FROM {table}")
        after = (await pool.runQuery("SELECT CONNECTION_ID()"))[0][0]
        return outcome, rows[0][0], before == after

    outcome, count, sameSession = runReactor(body)
    if unbuffered:
        assert isinstance(outcome, backend.module.InternalError) and "Unread result" in str(outcome)
        assert count == 0
    else:
        assert outcome == "returned" and count == 1
    assert sameSession


def test_asyncTransactionOnAConnectionKilledWhileIdleFailsThenTheNextWorks(
    mysqlBackend: Backend, uniqueTableName: str
) -> None:
    """``async with pool.transaction()`` on a connection the server killed while idle: the block fails
    with the driver's error, at its first statement, or as it opens where ``cursor()`` already talks to
    the server (mysql.connector); it never hangs, and the next transaction runs on a new connection."""
    backend = mysqlBackend
    table = backend.createTable(uniqueTableName)

    async def body(reactor: Reactor) -> Any:
        pool = backend.pool(reactor, cp_min=1, cp_max=1)
        serverId = (await pool.runInteraction(_serverIdOf))
        backend.killSession(serverId)
        reached: list[str] = []
        with pytest.raises(backend.module.Error):
            async with pool.transaction() as txn:
                reached.append("body")
                await txn.execute(backend.sql(f"INSERT INTO {table} (id, v) VALUES (?, ?)"), (1, 1))
                reached.append("after execute")
        async with pool.transaction() as txn:
            await txn.execute(backend.sql(f"INSERT INTO {table} (id, v) VALUES (?, ?)"), (2, 2))
            newId = await txn.runQuery("SELECT CONNECTION_ID()")
        rows = await pool.runQuery(f"SELECT id FROM {table}")
        return serverId, newId[0][0], reached, [r[0] for r in rows]

    serverId, newId, reached, ids = runReactor(body)
    assert newId != serverId and ids == [2]
    assert reached == ([] if backend.module.__name__ == "mysql.connector" else ["body"])


def _serverIdOf(txn: Transaction) -> int:
    txn.execute("SELECT CONNECTION_ID()")
    return int(txn.fetchall()[0][0])


def test_interactionOnAConnectionKilledWhileIdleFailsOnceThenTheNextWorks(mysqlBackend: Backend) -> None:
    """Without cp_reconnect an interaction meeting a connection killed while idle fails with the driver's
    error, even where it fails as the Transaction opens its cursor (mysql.connector), and the dead
    connection is replaced: the next interaction works on a new session."""
    backend = mysqlBackend

    async def body(reactor: Reactor) -> Any:
        pool = backend.pool(reactor, cp_min=1, cp_max=1)
        serverId = await pool.runInteraction(_serverIdOf)
        backend.killSession(serverId)
        with pytest.raises(backend.module.Error):
            await pool.runInteraction(_serverIdOf)
        return serverId, await pool.runInteraction(_serverIdOf), pool.statistics()

    serverId, newId, stats = runReactor(body)
    assert newId != serverId and stats.reconnects == 1
