"""adbapi's thread model: a connection is never closed while another thread sends a cancel on it."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any

import pytest

from adbapi import Connection, ConnectionPool, DriverAdapter
from reactor import CancelledError, Deferred, Reactor
from tests.adbapi_support import runReactor


class _FakeError(Exception):
    pass


class _FakeConnection:
    """A DB-API connection whose statement "runs" until a cancel interrupts it."""

    def __init__(self, log: list[tuple[str, int]], started: Any) -> None:
        self.log = log
        self.started = started
        self.interrupted = threading.Event()
        self.closing = threading.Event()

    def cursor(self) -> _FakeCursor:
        return _FakeCursor(self)

    def commit(self) -> None:
        pass

    def rollback(self) -> None:
        pass

    def close(self) -> None:
        self.log.append(("close", id(self)))
        self.closing.set()


class _FakeCursor:
    def __init__(self, conn: _FakeConnection) -> None:
        self.conn = conn

    def execute(self, sql: str, *args: Any) -> None:
        if sql == "long":
            self.conn.started()
            if not self.conn.interrupted.wait(10):
                raise AssertionError("the statement was never cancelled")
            raise _FakeError("interrupted")

    def fetchall(self) -> list[Any]:
        return []

    def close(self) -> None:
        pass


class _SlowCancelAdapter(DriverAdapter):
    """Cancels by interrupting the fake statement, then lingers as a slow network cancel would."""

    canCancel = True

    def cancel(self, conn: Any, info: Any, connargs: Sequence[Any], connkw: Mapping[str, Any]) -> None:
        conn.log.append(("cancel-start", id(conn)))
        conn.interrupted.set()
        # Still "sending": a close of this connection now would free what the cancel is using.
        conn.closing.wait(0.3)
        conn.log.append(("cancel-end", id(conn)))


def test_connectionNotClosedWhileACancelIsBeingSent() -> None:
    """A worker that replaces its connection waits for a cancel being sent on it to finish first."""
    log: list[tuple[str, int]] = []
    module = ModuleType("fakecanceldb")
    module.apilevel = "2.0"  # type: ignore[attr-defined]
    module.Error = _FakeError  # type: ignore[attr-defined]

    async def body(reactor: Reactor) -> Any:
        running: Deferred[None] = Deferred()

        def started() -> None:
            reactor.callFromThread(lambda: running.called or running.callback(None))

        module.connect = lambda: _FakeConnection(log, started)  # type: ignore[attr-defined]
        pool = ConnectionPool(module, cp_reactor=reactor, cp_min=1, cp_max=1)
        pool._adapter = _SlowCancelAdapter(module)

        def work(conn: Connection) -> str:
            try:
                conn.cursor().execute("long")
            except _FakeError:
                pass
            conn.reconnect()  # closes the connection the cancel is being sent on
            return "replaced"

        d = pool.runWithConnection(work)
        await running
        d.cancel()
        with pytest.raises(CancelledError):
            await d
        await pool.close()

    runReactor(body)
    assert ("cancel-start", log[0][1]) == log[0]
    sending: set[int] = set()
    for event, conn in log:
        if event == "cancel-start":
            sending.add(conn)
        elif event == "cancel-end":
            sending.discard(conn)
        else:
            assert conn not in sending, f"connection closed while a cancel was being sent on it: {log}"
    assert [e for e, c in log if c == log[0][1]].count("close") == 1
