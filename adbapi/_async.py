"""``async with pool.transaction() as txn``: one transaction, driven statement by statement with await.

The transaction holds one worker (and its connection) from ``__aenter__`` to
``__aexit__``. Each operation (``execute``, ``fetchall``, ``runQuery``...) is
queued to that worker, runs there, and fires its Deferred in the reactor thread.
Leaving the block normally commits; leaving it with an exception rolls back.

Cancelling an operation's Deferred stops its statement on the server, as for
``runQuery``, and aborts the transaction: later operations errback
``CancelledError`` without reaching the database and the block's exit rolls back.

Closing the pool (``close()`` or reactor shutdown) must not wait for a block that
may never be left: from that moment an open transaction refuses new operations
(``PoolClosedError`` at once), runs the ones already issued, then rolls back and
gives its connection back; the block's exit raises ``PoolClosedError``.
"""

from __future__ import annotations

from queue import SimpleQueue
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from adbapi._call import _Call
from adbapi._cancel import waitForCancel
from adbapi._dispatch import CallKind
from adbapi._errors import PoolClosedError
from adbapi._recovery import recoverRaw
from reactor import CancelledError, Deferred, Failure, fail

if TYPE_CHECKING:
    from adbapi._holder import ConnectionHolder
    from adbapi._pool import ConnectionPool

__all__ = ["AsyncTransaction", "TransactionHost", "TransactionRouter"]


class TransactionHost(Protocol):
    """What a transaction needs of its pool's lifecycle (reactor thread): a close must end open blocks."""

    def admitTransaction(self, txn: AsyncTransaction) -> None:
        """Count ``txn`` as open (starting a new pool); raises PoolClosedError once the pool is closing."""
        ...

    def transactionEnded(self, txn: AsyncTransaction) -> None:
        """``txn``'s block is over."""
        ...


class TransactionRouter(Protocol):
    """What a transaction needs of its pool's call router (reactor thread)."""

    def dispatch(self, call: _Call) -> bool: ...

    def cancelCall(self, call: _Call) -> None: ...

_Op = tuple[str, tuple[Any, ...], dict[str, Any], "Deferred[Any] | None"]

_COMMIT = "commit"
_ROLLBACK = "rollback"
_CLOSE = "close"  # the pool is closing: roll back and end the transaction


def _fire(d: Deferred[Any], ok: bool, value: Any) -> None:
    # Reactor thread: a cancelled operation's late outcome has nobody to go to.
    if d.called:
        return
    if ok:
        d.callback(value)
    else:
        d.errback(Failure(value))


class AsyncTransaction:
    """An open transaction on one pooled connection; use it with ``async with`` in the reactor thread.

    Methods return Deferreds (await them): ``execute(sql, params=None)`` fires with
    the cursor's ``rowcount``; ``executemany``; ``fetchone``, ``fetchmany(size)``,
    ``fetchall``; ``runQuery(sql, params=None)`` = execute + fetchall. Operations
    run in the order they are called.
    """

    def __init__(self, pool: ConnectionPool, host: TransactionHost, router: TransactionRouter) -> None:
        self._pool = pool
        self._host = host
        self._router = router
        # Reactor thread -> worker thread: (kind, args, kw, Deferred).
        self._ops: SimpleQueue[_Op] = SimpleQueue()
        self._call: _Call | None = None
        # Fires when the worker holds the connection; cancelling it gives the transaction up.
        self._started: Deferred[None] = Deferred(self._cancelStart)
        # Reactor thread only:
        self._finished = False
        self._closedByPool = False
        self._outstanding: set[Deferred[Any]] = set()  # operations issued whose Deferreds have not fired

    # -- the reactor side -------------------------------------------------------------

    async def __aenter__(self) -> AsyncTransaction:
        if self._call is not None:
            raise RuntimeError("an AsyncTransaction can be entered only once")
        self._host.admitTransaction(self)  # raises PoolClosedError once the pool is closing or closed
        call = _Call(self._router, CallKind.RESERVED, self._serve, (), {})
        self._call = call
        call.deferred.addErrback(self._failedBeforeStart)
        call.deferred.addBoth(self._ended)
        self._router.dispatch(call)  # a refusal (cp_max_waiting) has already failed _started
        await self._started
        return self

    def _cancelStart(self, started: Deferred[None]) -> None:
        """Entering was given up (reactor thread): the transaction must not keep a connection.

        Still waiting: it is unqueued and never runs. Already on its worker (the
        "started" notice in flight): a rollback op ends it there.
        """
        call = self._call
        if call is None or self._finished:
            return
        self._finished = True
        self._ops.put((_ROLLBACK, (), {}, None))
        call.deferred.addErrback(lambda failure: None)  # nobody awaits it any more
        call.deferred.cancel()

    def _ended(self, result: Any) -> Any:
        self._host.transactionEnded(self)
        return result

    def closeByPool(self) -> None:
        """The pool is closing (reactor thread): refuse new operations, then roll back and end."""
        if self._finished or self._closedByPool:
            return
        self._closedByPool = True
        self._ops.put((_CLOSE, (), {}, None))

    def _failedBeforeStart(self, failure: Failure) -> Failure | None:
        if not self._started.called:
            # The block never started: the caller gets the error from _started (awaited by
            # __aenter__), and __aexit__ will not run to read it here, so it is consumed.
            self._started.errback(failure)
            return None
        return failure

    async def __aexit__(
        self, excType: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        call = self._call
        assert call is not None
        self._finished = True
        self._ops.put((_COMMIT if excType is None else _ROLLBACK, (), {}, None))
        try:
            await call.deferred
        except (CancelledError, PoolClosedError):
            if excType is None:
                raise
        # An exception from the block propagates unchanged.

    def _op(self, kind: str, args: tuple[Any, ...], kw: dict[str, Any]) -> Deferred[Any]:
        if self._call is None or self._finished:
            raise RuntimeError("use the transaction inside its 'async with' block")
        if self._closedByPool:
            label = self._pool.context.label
            return fail(PoolClosedError(f"{label} is closing; this transaction was rolled back"))
        d: Deferred[Any] = Deferred(self._cancelOp)
        self._outstanding.add(d)
        d.addBoth(self._opFired, d)
        self._ops.put((kind, args, kw, d))
        return d

    def _opFired(self, result: Any, d: Deferred[Any]) -> Any:
        self._outstanding.discard(d)
        return result

    def abandonByPool(self, error: BaseException) -> None:
        """The pool's close gave up waiting (reactor thread): every operation issued and not over fails."""
        self._closedByPool = True
        for d in list(self._outstanding):
            if not d.called:
                d.errback(error)
        self._outstanding.clear()

    def _cancelOp(self, d: Deferred[Any]) -> None:
        assert self._call is not None
        self._router.cancelCall(self._call)

    def execute(self, *args: Any, **kw: Any) -> Deferred[int]:
        """Run ``cursor.execute(*args, **kw)``; fires with the cursor's rowcount."""
        return self._op("execute", args, kw)

    def executemany(self, *args: Any, **kw: Any) -> Deferred[int]:
        """Run ``cursor.executemany(*args, **kw)``; fires with the cursor's rowcount."""
        return self._op("executemany", args, kw)

    def fetchone(self) -> Deferred[Any]:
        """Fires with ``cursor.fetchone()``."""
        return self._op("fetchone", (), {})

    def fetchmany(self, size: int | None = None) -> Deferred[list[Any]]:
        """Fires with ``cursor.fetchmany(size)`` (the cursor's arraysize if None)."""
        return self._op("fetchmany", () if size is None else (size,), {})

    def fetchall(self) -> Deferred[list[Any]]:
        """Fires with ``cursor.fetchall()``."""
        return self._op("fetchall", (), {})

    def runQuery(self, *args: Any, **kw: Any) -> Deferred[list[Any]]:
        """Execute one statement and fire with all its rows."""
        return self._op("query", args, kw)

    # -- the worker side ----------------------------------------------------------------

    def _serve(self, worker: ConnectionHolder) -> None:
        """Body of the reserved call (worker thread): run operations until commit or rollback."""
        pool = self._pool
        reactor = pool.context.reactor
        call = self._call
        assert call is not None
        conn = worker.conn
        try:
            # Before the block starts: a driver whose cursor() talks to the server (mysql.connector
            # pings) fails here on a dead connection, and the error then comes out of ``async with``.
            cursor = conn.cursor()
        except BaseException as e:
            recoverRaw(pool, conn, e)  # a lost connection is replaced (ConnectionLost with cp_reconnect)
            raise
        reactor.callFromThread(_fire, self._started, True, None)
        try:
            while True:
                kind, args, kw, d = self._ops.get()
                if kind == _COMMIT or kind == _ROLLBACK or kind == _CLOSE:
                    if call.cancelRequested:
                        waitForCancel(call)  # no cancel request may land on the rollback
                    break
                assert d is not None
                if call.cancelRequested:
                    waitForCancel(call)
                    reactor.callFromThread(_fire, d, False, CancelledError("the transaction was cancelled"))
                    continue
                try:
                    if kind == "execute":
                        cursor.execute(*args, **kw)
                        value: Any = cursor.rowcount
                    elif kind == "executemany":
                        cursor.executemany(*args, **kw)
                        value = cursor.rowcount
                    elif kind == "query":
                        cursor.execute(*args, **kw)
                        value = cursor.fetchall()
                    else:
                        value = getattr(cursor, kind)(*args, **kw)
                    ok = True
                except BaseException as e:
                    if call.cancelRequested:
                        waitForCancel(call)
                    value, ok = e, False
                reactor.callFromThread(_fire, d, ok, value)
        finally:
            try:
                cursor.close()
            except Exception:
                pass
        if kind == _COMMIT and not call.cancelRequested:
            worker.committing = True
            try:
                conn.commit()
            except BaseException as e:
                recoverRaw(pool, conn, e)
                raise
            return
        try:
            pool.context.adapter.rollback(conn)
        except Exception:
            worker.discardConnection(broken=True)
        if kind == _CLOSE:
            raise PoolClosedError(
                f"{pool.context.label} closed while this transaction was open; it was rolled back")
        if call.cancelRequested and kind == _COMMIT:
            raise CancelledError("the transaction was cancelled; it was rolled back")
