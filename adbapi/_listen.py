"""LISTEN/NOTIFY: PostgreSQL notifications delivered as reactor events, with no thread and no timer.

``listen(pool, channel)`` fires with a :class:`Listener`, a bounded queue of
:class:`Notification` events for one channel, consumed with ``async for`` or with
Deferreds (:meth:`Listener.get`, as ``DeferredQueue``). Every listener of a pool
shares one dedicated connection (``_Hub``), opened outside the pool's slots: its
socket is watched by the reactor like any other, so a notification reaches the
waiting consumer in the reactor turn that reads it.

Promises:

- Several channels (and several listeners of one channel) share the connection;
  ``LISTEN``/``UNLISTEN`` follow the set of channels that have a listener, and the
  connection closes when the last listener does (or when the reactor shuts down).
- The queue is bounded (``maxQueue``): when the consumer is slower than the
  notifications, the **oldest** queued notification is dropped and counted
  (:attr:`Listener.dropped`), and a :class:`NotificationsMissed` event
  (``reason="overflow"``) is put at the head of the queue, where the gap is.
  Pausing is not offered: the server does not slow down ``NOTIFY`` senders for a
  slow listener, it only queues for it (up to 8 GB, shared by the cluster).
- When the connection is lost, it is reopened with exponential back-off
  (``_FIRST_DELAY`` doubling to ``_MAX_DELAY``), ``LISTEN`` is issued again and
  each listener then receives ``NotificationsMissed(reason="reconnected")``: from
  that point on nothing is missed, so that is when a cache should be rebuilt.
- ``notify(pool, channel, payload)`` runs ``SELECT pg_notify(%s, %s)`` on the
  pool: the driver quotes, the payload is checked against the server's limit.

Threads: everything here runs in the reactor thread, except opening a
connection (DNS, TLS and authentication may block), which runs in the reactor's
shared thread pool (``deferthreads.getThreadPool``) and hands the connection back
through the Deferred.
"""

from __future__ import annotations

import abc
import collections
import logging
import select
import time
import weakref
from dataclasses import dataclass
from typing import Any, NamedTuple

from deferthreads import deferToThreadPool, getThreadPool
from reactor import Deferred, Failure

__all__ = ["Listener", "ListenerClosed", "Notification", "NotificationsMissed", "listen", "notify"]

_log = logging.getLogger("adbapi")

# Reconnection back-off: the first retry after this many seconds, doubling up to _MAX_DELAY.
_FIRST_DELAY = 0.05
_MAX_DELAY = 5.0
# How long opening the listening connection may take, unless the DSN's connect_timeout says.
_CONNECT_TIMEOUT = 30.0
# PostgreSQL refuses a payload of 8000 bytes or more (in the default build).
MAX_PAYLOAD = 7999
# NAMEDATALEN - 1: a longer channel name is silently truncated by the server, so its notifications
# would never match the name the listener asked for.
MAX_CHANNEL = 63
DEFAULT_MAX_QUEUE = 10_000


class Notification(NamedTuple):
    """One ``NOTIFY``: its channel, payload (``""`` when none) and the sending server process id.

    A named tuple: bursts of thousands are made per reactor turn, and a tuple is the cheapest to build.
    """

    channel: str
    payload: str
    pid: int


@dataclass(frozen=True, slots=True)
class NotificationsMissed:
    """Notifications of ``channel`` may have been missed, just before this event.

    ``reason`` is ``"reconnected"`` (the connection was lost and is listening
    again: ``count`` is None, as nobody knows) or ``"overflow"`` (the consumer
    was slower than the queue bound: ``count`` notifications were dropped).
    """

    channel: str
    reason: str
    count: int | None = None


class ListenerClosed(Exception):
    """:meth:`Listener.get` on a listener that is closed and drained."""


def postgresKind(pool: Any, feature: str) -> str:
    """"psycopg2" or "psycopg" for a pool on PostgreSQL; else NotImplementedError naming ``feature``."""
    name = getattr(pool, "dbapiName", None) or getattr(getattr(pool, "dbapi", None), "__name__", "")
    if name in ("psycopg2", "psycopg"):
        return str(name)
    raise NotImplementedError(
        f"{feature} needs PostgreSQL through psycopg2 or psycopg 3; this pool uses {name or 'another driver'}"
        + (" (MySQL/MariaDB has no equivalent)" if "mysql" in str(name).lower() else "")
    )


def poolReactor(pool: Any) -> Any:
    """The reactor ``pool`` was given (``cp_reactor``, else the default one)."""
    found = getattr(pool, "reactor", None)
    if found is None:
        found = getattr(pool, "_reactor", None)
    if found is None:
        from reactor import getReactor

        found = getReactor()
    return found


def _checkChannel(channel: object) -> str:
    if not isinstance(channel, str):
        raise TypeError(f"channel must be a str, not {type(channel).__name__}")
    if not channel:
        raise ValueError("channel must not be empty")
    if "\x00" in channel:
        raise ValueError("channel must not contain NUL characters")
    if len(channel.encode("utf-8")) > MAX_CHANNEL:
        raise ValueError(f"channel is longer than PostgreSQL's {MAX_CHANNEL} bytes (it would be truncated)")
    return channel


def _quoteIdent(name: str) -> str:
    # A double-quoted identifier keeps the channel's exact spelling, as pg_notify() uses it.
    return '"' + name.replace('"', '""') + '"'


# -- the two drivers' nonblocking connections --------------------------------------------------


class _Conn(abc.ABC):
    """A dedicated connection driven without blocking (reactor thread, once opened); one per driver."""

    @abc.abstractmethod
    def fileno(self) -> int: ...

    @abc.abstractmethod
    def send(self, sql: str) -> bool:
        """Send ``sql``; True if part of it is still to be written (watch for writability)."""

    def flush(self) -> bool:
        """Write what is left; True if more is still to be written."""
        return False

    @abc.abstractmethod
    def read(self, busy: bool) -> tuple[bool, BaseException | None, list[Notification]]:
        """Take in what arrived: (the command in flight is over, its error, notifications).

        Raises when the connection is lost.
        """

    @abc.abstractmethod
    def close(self) -> None: ...


def _connectTimeout(connkw: dict[str, Any], connargs: tuple[Any, ...]) -> float:
    value: Any = connkw.get("connect_timeout")
    if value is None and connargs and isinstance(connargs[0], str) and "connect_timeout=" in connargs[0]:
        for part in connargs[0].split():
            if part.startswith("connect_timeout="):
                value = part.split("=", 1)[1]
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return _CONNECT_TIMEOUT
    return seconds if seconds > 0 else _CONNECT_TIMEOUT


class _Psycopg2Conn(_Conn):
    """psycopg2 in asynchronous mode (``async_=True``): execute() sends, poll() reads."""

    def __init__(self, module: Any, connargs: tuple[Any, ...], connkw: dict[str, Any]) -> None:
        # Worker thread: connect, waiting on the socket as libpq asks.
        extensions = __import__(module.__name__ + ".extensions", fromlist=["POLL_OK"])
        self.pollOk = extensions.POLL_OK
        self.pollWrite = extensions.POLL_WRITE
        conn = module.connect(*connargs, async_=True, **connkw)
        deadline = time.monotonic() + _connectTimeout(connkw, connargs)
        try:
            while True:
                state = conn.poll()
                if state == self.pollOk:
                    break
                left = max(0.0, deadline - time.monotonic())
                fd = conn.fileno()
                ready = select.select([fd], [], [], left)[0] if state != self.pollWrite else \
                    select.select([], [fd], [], left)[1]
                if not ready:
                    raise module.OperationalError("timeout expired while opening the listening connection")
        except BaseException:
            conn.close()
            raise
        self.conn = conn
        self.cursor = conn.cursor()

    def fileno(self) -> int:
        return int(self.conn.fileno())

    def send(self, sql: str) -> bool:
        # No poll() here: it could read the whole answer off the socket, and no readable event would
        # tell the reactor. libpq sends a short command on an idle socket in one write (as lanes rely on).
        self.cursor.execute(sql)
        return len(sql) > 4096

    def flush(self) -> bool:
        return bool(self.conn.poll() == self.pollWrite)

    def read(self, busy: bool) -> tuple[bool, BaseException | None, list[Notification]]:
        done = False
        error: BaseException | None = None
        conn = self.conn
        try:
            state = conn.poll()
            done = busy and state == self.pollOk
        except Exception as e:
            if conn.closed:
                raise
            done, error = True, e  # the command failed; the connection is fine
        notes: list[Notification] = []
        if conn.notifies:
            notes = [Notification(n.channel, n.payload, n.pid) for n in conn.notifies]
            del conn.notifies[:]
        return done, error, notes

    def close(self) -> None:
        try:
            self.conn.close()
        except Exception:
            pass


class _Psycopg3Conn(_Conn):
    """psycopg 3 through its libpq wrapper (``psycopg.pq``) in nonblocking mode."""

    def __init__(self, module: Any, connargs: tuple[Any, ...], connkw: dict[str, Any]) -> None:
        kw = dict(connkw)
        kw.setdefault("connect_timeout", int(_connectTimeout(connkw, connargs)))
        conn = module.connect(*connargs, autocommit=True, **kw)
        self.conn = conn
        self.pq = module.pq
        self.pgconn = conn.pgconn
        self.encoding = conn.info.encoding
        self.pgconn.nonblocking = 1

    def fileno(self) -> int:
        return int(self.pgconn.socket)

    def send(self, sql: str) -> bool:
        self.pgconn.send_query(sql.encode(self.encoding))
        return bool(self.pgconn.flush())

    def flush(self) -> bool:
        return bool(self.pgconn.flush())

    def read(self, busy: bool) -> tuple[bool, BaseException | None, list[Notification]]:
        pgconn = self.pgconn
        pgconn.consume_input()  # raises when the connection is lost
        if pgconn.status == self.pq.ConnStatus.BAD:
            raise self._lost()
        done = False
        error: BaseException | None = None
        while busy and not pgconn.is_busy():
            result = pgconn.get_result()
            if result is None:
                done = True
                break
            if result.status == self.pq.ExecStatus.FATAL_ERROR:
                message = (result.error_message or b"").decode(self.encoding, "replace").strip()
                error = RuntimeError(message or "the command failed")
        notes: list[Notification] = []
        enc = self.encoding
        while True:
            n = pgconn.notifies()
            if n is None:
                break
            notes.append(Notification(n.relname.decode(enc), n.extra.decode(enc), n.be_pid))
        return done, error, notes

    def _lost(self) -> Exception:
        from psycopg import OperationalError

        return OperationalError("the listening connection was lost")

    def close(self) -> None:
        try:
            self.conn.close()
        except Exception:
            pass


def _openConn(kind: str, module: Any, connargs: tuple[Any, ...], connkw: dict[str, Any]) -> _Conn:
    if kind == "psycopg2":
        return _Psycopg2Conn(module, connargs, connkw)
    return _Psycopg3Conn(module, connargs, connkw)


# -- the consumer's side -------------------------------------------------------------------------


class Listener:
    """Notifications of one channel, in arrival order, in a bounded queue (reactor thread only).

    Made by :func:`listen` (or ``pool.listen``), which fires with it once the
    server listens. Consume with ``async for event in listener`` (in
    ``Deferred.fromCoroutine`` or an asyncio task on a hosted reactor) or with
    :meth:`get`. Events are :class:`Notification` and, where some may have been
    lost, :class:`NotificationsMissed`. Closing ends the iteration once the
    queue is drained.
    """

    def __init__(self, hub: _Hub, channel: str, maxQueue: int) -> None:
        self.channel = channel
        self.maxQueue = maxQueue
        #: Notifications dropped because the queue was full (the oldest go first).
        self.dropped = 0
        #: Times the connection was lost and listening again (a NotificationsMissed each).
        self.reconnects = 0
        self._hub: _Hub | None = hub
        self._queue: collections.deque[Notification | NotificationsMissed] = collections.deque()
        self._waiters: collections.deque[Deferred[Notification | NotificationsMissed]] = collections.deque()
        self._ready: Deferred[Listener] | None = Deferred()
        self._listening = False  # the server listens for us (ready fired)
        self._lost = False  # listening was lost with the connection: a NotificationsMissed is owed
        self._closed = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else "listening" if self._listening else "waiting"
        return (f"<adbapi Listener {self.channel!r} {state} queued={len(self._queue)} "
                f"dropped={self.dropped} reconnects={self.reconnects}>")

    @property
    def closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        return len(self._queue)

    def _put(self, event: Notification | NotificationsMissed) -> None:
        """Queue ``event``; a waiting consumer is woken by :meth:`_wake`, after the whole read is queued
        (woken per event, it would come back for each through a Deferred instead of draining the queue)."""
        queue = self._queue
        if self._waiters and len(queue) >= self.maxQueue:
            self._wake()
        queue.append(event)
        if len(queue) <= self.maxQueue:
            return
        # Full: drop the oldest notification and mark the gap at the head with one overflow event,
        # merged with the one already there (a reconnect mark dropped on the way is merged too).
        lost = 0
        head = queue[0]
        if isinstance(head, NotificationsMissed) and head.reason == "overflow":
            queue.popleft()
            lost = head.count or 0
        while queue:
            old = queue.popleft()
            if isinstance(old, Notification):
                lost += 1
                self.dropped += 1
                break
        queue.appendleft(NotificationsMissed(self.channel, "overflow", lost))

    def _wake(self) -> None:
        waiters, queue = self._waiters, self._queue
        while waiters and queue:
            waiters.popleft().callback(queue.popleft())

    def get(self) -> Deferred[Notification | NotificationsMissed]:
        """A Deferred firing (reactor thread) with the next event; fails :class:`ListenerClosed` once closed
        and drained. Cancelling it gives up the wait (no event is lost)."""
        if self._queue:
            from reactor import succeed

            return succeed(self._queue.popleft())
        if self._closed:
            from reactor import fail

            return fail(ListenerClosed(f"the listener of {self.channel!r} is closed"))

        def giveUp(d: Deferred[Any]) -> None:
            try:
                self._waiters.remove(d)
            except ValueError:
                pass

        d: Deferred[Notification | NotificationsMissed] = Deferred(giveUp)
        self._waiters.append(d)
        return d

    def __aiter__(self) -> Listener:
        return self

    async def __anext__(self) -> Notification | NotificationsMissed:
        if self._queue:
            return self._queue.popleft()
        try:
            return await self.get()
        except ListenerClosed:
            raise StopAsyncIteration from None

    def close(self) -> Deferred[None]:
        """Stop listening: ``UNLISTEN`` the channel if no other listener has it (the connection closes
        with the last listener). Fires once the server stopped; queued events can still be read."""
        if self._closed:
            from reactor import succeed

            return succeed(None)
        self._end()
        hub, self._hub = self._hub, None
        if hub is None:
            from reactor import succeed

            return succeed(None)
        return hub.remove(self)

    def _end(self) -> None:
        self._closed = True
        self._listening = False
        waiters, self._waiters = self._waiters, collections.deque()
        for d in waiters:
            d.errback(ListenerClosed(f"the listener of {self.channel!r} is closed"))


# -- the shared connection -----------------------------------------------------------------------

_NEW, _CONNECTING, _READY, _BACKOFF, _CLOSED = "new", "connecting", "ready", "backoff", "closed"

_hubs: weakref.WeakKeyDictionary[Any, _Hub] = weakref.WeakKeyDictionary()


class _Hub:
    """One pool's listening connection and the listeners it feeds (reactor thread only).

    It keeps the server's set of ``LISTEN`` channels equal to the channels that
    have listeners, one command at a time (``_sync``), reconnects after a loss,
    and closes when its last listener leaves.
    """

    def __init__(self, pool: Any, kind: str) -> None:
        self.pool = pool
        self.kind = kind
        self.reactor = poolReactor(pool)
        self.listeners: dict[str, list[Listener]] = {}
        self.listening: set[str] = set()  # channels the server listens to on this connection
        self.conn: _Conn | None = None
        self.state = _NEW
        self.everConnected = False
        self.delay = _FIRST_DELAY
        self.timer: Any = None
        self.inFlight: set[str] | None = None  # the channel set the command in flight establishes
        self.flightWaiters: list[Deferred[None]] = []  # closes waiting for the command in flight
        self.syncWaiters: list[Deferred[None]] = []  # closes waiting for the next command
        self.writing = False
        self.watching = False
        self.fd = -1
        self.shutdownID: Any = self.reactor.addSystemEventTrigger("before", "shutdown", self.shutdown)

    # IReadDescriptor / IWriteDescriptor

    def fileno(self) -> int:
        return self.fd

    def logPrefix(self) -> str:
        return "adbapi-listener"

    def doRead(self) -> None:
        conn = self.conn
        if conn is None:
            return
        busy = self.inFlight is not None
        try:
            done, error, notes = conn.read(busy)
        except Exception as e:
            self._lost(e)
            return
        if notes:
            listeners = self.listeners
            woken: list[Listener] = []
            for note in notes:
                for listener in listeners.get(note.channel, ()):
                    if listener._listening:
                        listener._put(note)
                        if listener._waiters:
                            woken.append(listener)
            for listener in woken:
                listener._wake()
        if busy and done:
            self._commandDone(error)

    def doWrite(self) -> None:
        conn = self.conn
        if conn is None:
            return
        try:
            more = conn.flush()
        except Exception as e:
            self._lost(e)
            return
        if not more:
            self._unwrite()
            self.doRead()  # flushing may have taken in the answer too (psycopg2's poll() reads as well)

    def connectionLost(self, reason: Failure) -> None:
        self.watching = self.writing = False
        if self.state != _CLOSED:
            self._lost(reason.value)

    def _unwrite(self) -> None:
        if self.writing:
            self.writing = False
            self.reactor.removeWriter(self)

    # listeners coming and going

    def add(self, listener: Listener) -> None:
        self.listeners.setdefault(listener.channel, []).append(listener)
        if self.state == _NEW:
            self._connect()
        else:
            self._sync()

    def remove(self, listener: Listener) -> Deferred[None]:
        group = self.listeners.get(listener.channel, [])
        if listener in group:
            group.remove(listener)
        if not group:
            self.listeners.pop(listener.channel, None)
        d: Deferred[None] = Deferred()
        if self.state != _READY or listener.channel not in (self.listening | (self.inFlight or set())):
            d.callback(None)
            self._closeIfUnused()
            return d
        self.syncWaiters.append(d)
        self._sync()
        return d

    def _closeIfUnused(self) -> None:
        if not self.listeners and self.inFlight is None and not self.listening:
            self._close()

    # the connection

    def _connect(self) -> None:
        self.state = _CONNECTING
        pool = self.pool
        d = deferToThreadPool(self.reactor, getThreadPool(self.reactor), _openConn, self.kind, pool.dbapi,
                              tuple(pool.connargs), dict(pool.connkw))
        d.addCallbacks(self._connected, self._connectFailed)

    def _connected(self, conn: _Conn) -> None:
        if self.state == _CLOSED:
            conn.close()
            return
        self.conn = conn
        self.fd = conn.fileno()
        self.state = _READY
        self.everConnected = True
        self.delay = _FIRST_DELAY
        self.watching = True
        self.reactor.addReader(self)
        self._sync()

    def _connectFailed(self, failure: Failure) -> None:
        if self.state == _CLOSED:
            return
        if not self.everConnected:
            # Nobody has listened yet: the listeners' callers get the reason, rather than a silent retry.
            self.state = _CLOSED
            self._forget()
            for group in list(self.listeners.values()):
                for listener in group:
                    ready, listener._ready = listener._ready, None
                    listener._end()
                    if ready is not None:
                        ready.errback(failure)
            self.listeners.clear()
            return
        _log.warning("adbapi: reopening the listening connection failed (%s); retrying in %.2f s",
                     failure.type.__name__ if failure.type else "error", self.delay)
        self._backOff()

    def _lost(self, error: BaseException) -> None:
        if self.state == _CLOSED:
            return
        _log.warning("adbapi: the listening connection was lost (%s: %s); reconnecting",
                     type(error).__name__, str(error).strip().splitlines()[0] if str(error).strip() else "")
        self._drop()
        for group in self.listeners.values():
            for listener in group:
                if listener._listening:
                    listener._listening = False
                    listener._lost = True
        self.listening = set()
        self.inFlight = None
        # Closes waiting on an UNLISTEN: the server forgot every LISTEN with the session.
        self._fireWaiters(self.flightWaiters + self.syncWaiters)
        self.flightWaiters, self.syncWaiters = [], []
        if not self.listeners:
            self._close()
            return
        self._backOff()

    def _backOff(self) -> None:
        self.state = _BACKOFF
        delay, self.delay = self.delay, min(self.delay * 2, _MAX_DELAY)
        self.timer = self.reactor.callLater(delay, self._retry)

    def _retry(self) -> None:
        self.timer = None
        if self.state == _BACKOFF:
            self._connect()

    def _drop(self) -> None:
        if self.watching:
            self.watching = False
            self.reactor.removeReader(self)
        self._unwrite()
        conn, self.conn = self.conn, None
        self.fd = -1
        if conn is not None:
            conn.close()

    # keeping the server's LISTEN set equal to the listeners' channels

    def _sync(self) -> None:
        if self.state != _READY or self.inFlight is not None or self.conn is None:
            return
        wanted = set(self.listeners)
        add = sorted(wanted - self.listening)
        drop = sorted(self.listening - wanted)
        if not add and not drop:
            self._fireWaiters(self.syncWaiters)
            self.syncWaiters = []
            self._announce()
            self._closeIfUnused()
            return
        sql = "; ".join([f"UNLISTEN {_quoteIdent(c)}" for c in drop]
                        + [f"LISTEN {_quoteIdent(c)}" for c in add])
        self.inFlight = wanted
        self.flightWaiters, self.syncWaiters = self.syncWaiters, []
        try:
            more = self.conn.send(sql)
        except Exception as e:
            self._lost(e)
            return
        if more and not self.writing:
            self.writing = True
            self.reactor.addWriter(self)

    def _commandDone(self, error: BaseException | None) -> None:
        wanted, self.inFlight = self.inFlight, None
        assert wanted is not None
        waiters, self.flightWaiters = self.flightWaiters, []
        if error is None:
            self.listening = wanted
        else:
            # A refused LISTEN (a standby server, say): its new listeners get the error.
            _log.warning("adbapi: LISTEN/UNLISTEN failed: %s", error)
            for channel in sorted(wanted - self.listening):
                for listener in self.listeners.pop(channel, []):
                    ready, listener._ready = listener._ready, None
                    listener._end()
                    listener._hub = None
                    if ready is not None:
                        ready.errback(error)
        self._fireWaiters(waiters)
        self._sync()

    def _announce(self) -> None:
        """Tell listeners the server listens for them: fire new ones' ready, owe the others a gap event."""
        for channel in self.listening:
            for listener in list(self.listeners.get(channel, ())):
                if listener._listening:
                    continue
                listener._listening = True
                ready, listener._ready = listener._ready, None
                if listener._lost:
                    listener._lost = False
                    listener.reconnects += 1
                    listener._put(NotificationsMissed(channel, "reconnected"))
                    listener._wake()
                if ready is not None:
                    ready.callback(listener)

    @staticmethod
    def _fireWaiters(waiters: list[Deferred[None]]) -> None:
        for d in waiters:
            if not d.called:
                d.callback(None)

    # the end

    def _forget(self) -> None:
        if _hubs.get(self.pool) is self:
            del _hubs[self.pool]
        if self.shutdownID is not None:
            try:
                self.reactor.removeSystemEventTrigger(self.shutdownID)
            except (ValueError, KeyError, TypeError):
                pass
            self.shutdownID = None

    def _close(self) -> None:
        if self.state == _CLOSED:
            return
        self.state = _CLOSED
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        self.timer = None
        self._drop()
        self._forget()
        self._fireWaiters(self.flightWaiters + self.syncWaiters)
        self.flightWaiters, self.syncWaiters = [], []

    def shutdown(self) -> None:
        """The reactor is stopping: every listener ends (its iteration stops), the connection closes."""
        self.shutdownID = None
        for group in list(self.listeners.values()):
            for listener in group:
                ready, listener._ready = listener._ready, None
                listener._end()
                listener._hub = None
                if ready is not None:
                    ready.errback(ListenerClosed("the reactor is shutting down"))
        self.listeners.clear()
        self._close()


def listen(pool: Any, channel: str, *, maxQueue: int = DEFAULT_MAX_QUEUE) -> Deferred[Listener]:
    """``LISTEN`` to ``channel`` on ``pool``'s server; fires with a :class:`Listener` once the server listens.

    Call it in the reactor thread. Notifications sent after the Deferred fired
    are delivered; the first listener of a pool opens its listening connection
    (failing to open it fails the Deferred with the driver's error). ``maxQueue``
    bounds the events queued for a slow consumer (see the module docstring for
    the policy: the oldest are dropped and counted).

    :raises TypeError, ValueError: a bad ``channel`` or ``maxQueue``.
    :raises NotImplementedError: the pool is not on PostgreSQL (psycopg2 or psycopg 3).
    """
    kind = postgresKind(pool, "LISTEN/NOTIFY")
    _checkChannel(channel)
    if isinstance(maxQueue, bool) or not isinstance(maxQueue, int) or maxQueue < 1:
        raise ValueError(f"maxQueue must be a positive int, not {maxQueue!r}")
    hub = _hubs.get(pool)
    if hub is None or hub.state == _CLOSED:
        hub = _hubs[pool] = _Hub(pool, kind)
    listener = Listener(hub, channel, maxQueue)
    ready = listener._ready
    assert ready is not None
    hub.add(listener)
    return ready


def notify(pool: Any, channel: str, payload: str = "") -> Deferred[None]:
    """Send ``NOTIFY channel, payload`` through ``pool`` (``pg_notify``; the driver quotes both).

    Fires (reactor thread) once the server has taken it; inside a transaction of
    your own, run ``SELECT pg_notify(%s, %s)`` there instead, so the
    notification is sent on commit.

    :raises TypeError, ValueError: a bad ``channel``, or a ``payload`` that is not a str or is
        8000 bytes or longer (the server's limit).
    :raises NotImplementedError: the pool is not on PostgreSQL.
    """
    postgresKind(pool, "LISTEN/NOTIFY")
    _checkChannel(channel)
    if not isinstance(payload, str):
        raise TypeError(f"payload must be a str, not {type(payload).__name__}")
    if "\x00" in payload:
        raise ValueError("payload must not contain NUL characters")
    size = len(payload.encode("utf-8"))
    if size > MAX_PAYLOAD:
        raise ValueError(f"payload is {size} bytes; PostgreSQL takes at most {MAX_PAYLOAD}")
    d: Deferred[None] = pool.runOperation("SELECT pg_notify(%s, %s)", (channel, payload))
    return d
