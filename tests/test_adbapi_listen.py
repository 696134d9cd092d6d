"""LISTEN/NOTIFY as reactor events (adbapi._listen) on the real PostgreSQL server, psycopg2 and psycopg 3."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import adbapi
from adbapi import Listener, ListenerClosed, Notification, NotificationsMissed
from reactor import CancelledError, Deferred, Reactor
from tests.adbapi_support import runReactor, until, within


@pytest.fixture(params=["psycopg2", "psycopg"])
def driver(request: pytest.FixtureRequest, postgresDSN: str) -> Iterator[tuple[str, str]]:
    """(driver module name, DSN) for each PostgreSQL driver."""
    pytest.importorskip(request.param)
    yield request.param, postgresDSN


def channelName() -> str:
    return f"ch_{uuid.uuid4().hex[:12]}"


def makePool(driver: tuple[str, str], reactor: Any) -> adbapi.ConnectionPool:
    return adbapi.ConnectionPool(driver[0], driver[1], cp_reactor=reactor, cp_min=1, cp_max=3)


def admin(dsn: str, sql: str, *params: Any) -> list[Any]:
    import psycopg2

    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    try:
        cursor = conn.cursor()
        cursor.execute(sql, params)
        return list(cursor.fetchall()) if cursor.description else []
    finally:
        conn.close()


def listeningPid(dsn: str, channel: str) -> int | None:
    """The server session whose last statement listened to ``channel`` (asked from another session)."""
    rows = admin(dsn, "SELECT pid FROM pg_stat_activity WHERE query LIKE %s AND pid <> pg_backend_pid()",
                 f'%LISTEN "{channel}"%')
    return rows[0][0] if rows else None


def test_notificationReachesTheListenerWithChannelPayloadAndPid(driver: tuple[str, str]) -> None:
    """A NOTIFY from another session arrives as a Notification with its channel, payload and sender pid."""
    channel = channelName()

    async def body(reactor: Any) -> None:
        pool = makePool(driver, reactor)
        listener = await within(reactor, pool.listen(channel), "LISTEN")
        assert isinstance(listener, Listener)
        sql = "SELECT pg_backend_pid(), pg_notify(%s, %s)"
        sender = admin(driver[1], sql, channel, "hello 'world'")[0][0]
        event = await within(reactor, listener.get(), "the notification")
        assert event == Notification(channel, "hello 'world'", sender)
        await listener.close()
        await pool.close()

    runReactor(body)


def test_notifySendsThroughThePoolAndAsyncForReceives(driver: tuple[str, str]) -> None:
    """pool.notify's payloads arrive in order through ``async for``; closing ends the loop."""
    channel = channelName()

    async def body(reactor: Any) -> None:
        pool = makePool(driver, reactor)
        listener = await within(reactor, pool.listen(channel), "LISTEN")
        for i in range(5):
            await pool.notify(channel, f"p{i}")
        got = []
        async for event in listener:
            assert isinstance(event, Notification)
            got.append(event.payload)
            if len(got) == 5:
                await listener.close()
        assert got == [f"p{i}" for i in range(5)]
        await pool.close()

    runReactor(body)


def test_channelsShareOneConnectionAndCloseUnlistens(driver: tuple[str, str]) -> None:
    """Two channels listen on one server session; closing one UNLISTENs it there, closing the last ends it."""
    first, second = channelName(), channelName()

    async def body(reactor: Any) -> None:
        pool = makePool(driver, reactor)
        a = await within(reactor, pool.listen(first), "LISTEN first")
        b = await within(reactor, pool.listen(second), "LISTEN second")
        pid = listeningPid(driver[1], second)  # the session that listened to second last...
        assert pid is not None
        await pool.notify(first, "1")
        await pool.notify(second, "2")
        assert (await within(reactor, a.get(), "first")).pid != pid
        assert (await within(reactor, b.get(), "second")).payload == "2"
        await within(reactor, a.close(), "UNLISTEN first")  # ...is the one that unlistens first
        assert admin(driver[1], "SELECT query FROM pg_stat_activity WHERE pid = %s", pid)[0][0] == \
            f'UNLISTEN "{first}"'
        await within(reactor, b.close(), "the last close")
        alive = "SELECT 1 FROM pg_stat_activity WHERE pid = %s"
        await until(reactor, lambda: not admin(driver[1], alive, pid), "the listening session to end")
        await pool.close()

    runReactor(body)


def test_lostConnectionReconnectsAndReportsMissedNotifications(driver: tuple[str, str]) -> None:
    """After pg_terminate_backend of the listening session: NotificationsMissed, then notifications again."""
    channel = channelName()

    async def body(reactor: Any) -> None:
        pool = makePool(driver, reactor)
        listener = await within(reactor, pool.listen(channel), "LISTEN")
        pid = listeningPid(driver[1], channel)
        assert pid is not None
        admin(driver[1], "SELECT pg_terminate_backend(%s, 5000)", pid)
        event = await within(reactor, listener.get(), "the missed-notifications event")
        assert event == NotificationsMissed(channel, "reconnected")
        assert listener.reconnects == 1
        newPid = listeningPid(driver[1], channel)
        assert newPid is not None and newPid != pid
        await pool.notify(channel, "after")
        event = await within(reactor, listener.get(), "a notification after reconnecting")
        assert isinstance(event, Notification) and event.payload == "after"
        await listener.close()
        await pool.close()

    runReactor(body)


def test_slowConsumerQueueDropsTheOldestAndMarksTheGap(driver: tuple[str, str]) -> None:
    """With maxQueue=3 and 10 notifications unread, the last 3 stay, after one overflow event counting 7."""
    channel = channelName()

    async def body(reactor: Any) -> None:
        pool = makePool(driver, reactor)
        slow = await within(reactor, pool.listen(channel, maxQueue=3), "LISTEN slow")
        fast = await within(reactor, pool.listen(channel), "LISTEN fast")
        for i in range(10):
            await pool.notify(channel, str(i))
        for i in range(10):  # both are fed in the same reactor turn: once fast has all, so has slow
            assert (await within(reactor, fast.get(), f"notification {i}")).payload == str(i)
        assert slow.dropped == 7
        events = [await slow.get() for _ in range(4)]
        assert events[0] == NotificationsMissed(channel, "overflow", 7)
        assert [e.payload for e in events[1:] if isinstance(e, Notification)] == ["7", "8", "9"]
        await slow.close()
        await fast.close()
        await pool.close()

    runReactor(body)


def test_closingEndsWaitingGetsAndLaterGets(driver: tuple[str, str]) -> None:
    """A get() waiting when the listener closes fails ListenerClosed, as does a get() after it."""
    channel = channelName()

    async def body(reactor: Any) -> None:
        pool = makePool(driver, reactor)
        listener = await within(reactor, pool.listen(channel), "LISTEN")
        waiting = listener.get()
        await listener.close()
        for d in (waiting, listener.get()):
            with pytest.raises(ListenerClosed):
                await d
        await pool.close()

    runReactor(body)


def test_cancelledGetLosesNoNotification(driver: tuple[str, str]) -> None:
    """Cancelling a waiting get() gives up the wait; the next notification goes to the next get()."""
    channel = channelName()

    async def body(reactor: Any) -> None:
        pool = makePool(driver, reactor)
        listener = await within(reactor, pool.listen(channel), "LISTEN")
        d: Deferred[Any] = listener.get()
        d.cancel()
        with pytest.raises(CancelledError):
            await d
        await pool.notify(channel, "kept")
        assert (await within(reactor, listener.get(), "the notification")).payload == "kept"
        await listener.close()
        await pool.close()

    runReactor(body)


def test_unreachableServerFailsListenWithTheDriverError(driver: tuple[str, str]) -> None:
    """When the listening connection cannot be opened, listen() fails with the driver's error."""

    async def body(reactor: Any) -> None:
        pool = adbapi.ConnectionPool(driver[0], "host=127.0.0.1 port=1 dbname=test connect_timeout=2",
                                     cp_reactor=reactor, cp_min=0, cp_max=1)
        with pytest.raises(Exception) as info:
            await within(reactor, pool.listen(channelName()), "the failure")
        assert "OperationalError" in type(info.value).__name__
        await pool.close()

    runReactor(body)


def test_badArgumentsRaiseNamingThem(driver: tuple[str, str]) -> None:
    """A bad channel, queue bound or payload raises at the call, naming the argument."""
    pool = adbapi.ConnectionPool(driver[0], driver[1], cp_reactor=Reactor(), cp_min=0)
    with pytest.raises(TypeError, match="channel"):
        pool.listen(5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="channel"):
        pool.listen("x" * 64)
    with pytest.raises(ValueError, match="maxQueue"):
        pool.listen("x", maxQueue=0)
    with pytest.raises(ValueError, match="payload"):
        pool.notify("x", "y" * 8000)
    with pytest.raises(TypeError, match="payload"):
        pool.notify("x", b"bytes")  # type: ignore[arg-type]


def test_nonPostgresPoolRaisesNamingTheFeature() -> None:
    """A MySQL or sqlite3 pool refuses listen/notify with NotImplementedError naming LISTEN/NOTIFY."""
    sqlitePool = adbapi.ConnectionPool(sqlite3, ":memory:", cp_reactor=Reactor(), cp_min=0)
    with pytest.raises(NotImplementedError, match="LISTEN/NOTIFY"):
        sqlitePool.listen("x")
    pymysql = pytest.importorskip("pymysql")
    mysqlPool = adbapi.ConnectionPool(pymysql, host="127.0.0.1", cp_reactor=Reactor(), cp_min=0)
    with pytest.raises(NotImplementedError, match=r"LISTEN/NOTIFY.*MySQL"):
        mysqlPool.notify("x", "y")


def test_pgEventsExampleImportsInvalidatesAndExports(driver: tuple[str, str]) -> None:
    """examples/pg_events.py runs as a program: CSV import by copyIn, NOTIFY invalidation, copyOut export."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    example = Path(__file__).resolve().parent.parent / "examples" / "pg_events.py"
    env = dict(os.environ, PG_EVENTS_DSN=driver[1], PG_EVENTS_DRIVER=driver[0])
    done = subprocess.run([sys.executable, str(example)], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    for marker in ("1. imported 10000 rows with copyIn", "after NOTIFY: cached False, price now 99.99",
                   "3. exported with copyOut: {'cheap': 1899, 'dear': 8101}"):
        assert marker in done.stdout, done.stdout


def test_asyncioTaskOnAHostedReactorListensAndCopies(driver: tuple[str, str]) -> None:
    """In an asyncio task on a hosted reactor: async for over a listener, copyIn and copyOut all work."""
    import asyncio

    from reactor.asyncioreactor import hostedReactor

    channel = channelName()

    async def main() -> list[Any]:
        async with hostedReactor(installDefault=False) as reactor:
            pool = makePool(driver, reactor)
            try:
                listener = await pool.listen(channel)
                await pool.notify(channel, "from asyncio")
                async for event in listener:
                    assert event.payload == "from asyncio"
                    break
                await listener.close()
                table = f"t_{uuid.uuid4().hex[:12]}"
                await pool.runOperation(f"CREATE TABLE {table} (id int)")
                try:
                    assert await pool.copyIn(table, [(i,) for i in range(10)]) == 10
                    return [row async for row in pool.copyOut(f"SELECT sum(id) FROM {table}")]
                finally:
                    await pool.runOperation(f"DROP TABLE {table}")
            finally:
                await pool.close()

    assert asyncio.run(asyncio.wait_for(main(), 30)) == [("45",)]


def test_reactorShutdownEndsListenersAndClosesTheConnection(driver: tuple[str, str]) -> None:
    """Stopping the reactor with a listener open ends its iteration and closes the listening session."""
    from tests.adbapi_support import waitUntil

    channel = channelName()
    seen: dict[str, Any] = {}

    async def body(reactor: Any) -> None:
        pool = makePool(driver, reactor)
        listener = await within(reactor, pool.listen(channel), "LISTEN")
        seen["pid"] = listeningPid(driver[1], channel)

        async def consume() -> None:
            async for _ in listener:
                pass
            seen["ended"] = True

        seen["consumer"] = Deferred.fromCoroutine(consume())
        # Returning stops the reactor with the listener open.

    runReactor(body)
    assert seen.get("ended") is True
    assert seen["pid"] is not None
    alive = "SELECT 1 FROM pg_stat_activity WHERE pid = %s"
    assert waitUntil(lambda: not admin(driver[1], alive, seen["pid"]), seconds=5.0)
