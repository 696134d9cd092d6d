"""Read replicas: one primary ConnectionPool for writes, N replica pools (hot standbys) for reads.

:class:`ReplicatedPool` is a router over ordinary :class:`~adbapi.ConnectionPool` objects and uses only
their public API. Its own ``runQuery``/``runOperation``/``runInteraction``/``runWithConnection``/
``transaction`` go to the primary, so it can replace a ConnectionPool without changing what any call
means. Reads that may go to a replica are asked for explicitly through the read-only view
:attr:`ReplicatedPool.reads` (``pool.reads.runQuery(...)``): a flag on ``runQuery`` itself is not
possible, because Twisted's ``runQuery(*args, **kw)`` hands every keyword to the driver's
``cursor.execute`` (a ``readOnly=`` keyword would steal one of the driver's names), and a view can be
handed to code that only reads, which then cannot write by mistake through it.

Each replica's health is checked by a :class:`~reactor.task.LoopingCall` on the pool's clock: a check
(by default :func:`standbyLag`, a query on the replica) fires with the replica's replication lag in
seconds, or fails. A replica whose check failed is *down*; one whose lag exceeds ``maxLag`` is
*lagging*; either is skipped until a later check finds it fit (*up*). Until its first check a replica is
*unknown* and skipped too. Reads go to the least busy usable replica (busy + waiting calls from its
``statistics()``; ties taken in turn), and to the primary when none is usable.

Read-your-writes: after a call on the primary (every call except those through ``reads``), the same
*caller*'s reads go to the primary while that call runs and for ``readYourWrites`` seconds after it
finished. The caller is the current :mod:`contextvars` context: a coroutine run by
``Deferred.fromCoroutine`` or ``ensureDeferred`` and an asyncio task each keep theirs across every
``await`` (and tasks started later from it share it); plain callbacks in the reactor thread share the
reactor's context, so there every caller counts as one.

Everything here runs in the reactor thread, as ConnectionPool's own calls do.
"""

from __future__ import annotations

import contextvars
import enum
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, TypeVar

from adbapi._async import AsyncTransaction
from adbapi._errors import ConnectionLost, PoolClosedError
from adbapi._pool import ConnectionPool
from adbapi._stats import PoolStatistics
from adbapi._wrappers import Connection, Transaction
from reactor import Deferred, Failure, gatherResults, getReactor
from reactor.task import LoopingCall

__all__ = ["MemberStatistics", "ReadView", "ReplicaState", "ReplicatedPool", "ReplicatedStatistics",
           "standbyLag"]

_log = logging.getLogger("adbapi.replicas")

_T = TypeVar("_T")
_P = ParamSpec("_P")

#: What :func:`standbyLag` asks a replica (PostgreSQL). The timestamp of the last replayed transaction
#: alone overstates the lag of a standby whose primary is idle (nothing new to replay, the timestamp
#: ages), so a standby whose WAL receiver runs and has replayed all it received counts as lag 0. The
#: receiver is looked for by its row in pg_stat_wal_receiver (there while it runs, gone once the
#: primary is), not by its status column, which only privileged roles (pg_read_all_stats) can read.
LAG_QUERY = (
    "SELECT pg_is_in_recovery(),"
    " pg_last_wal_receive_lsn() IS NOT NULL AND pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn(),"
    " EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())::float8,"
    " EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE pid IS NOT NULL)"
)


def standbyLag(pool: ConnectionPool) -> Deferred[float]:
    """The default health check: fires with ``pool``'s replication lag in seconds (PostgreSQL).

    0.0 for a server that is not in recovery (a primary, or a promoted standby: its data is current)
    and for a standby whose WAL receiver runs and has replayed all it received; otherwise the age of the last
    replayed transaction (``now() - pg_last_xact_replay_timestamp()``), or infinity when it has never
    replayed one. Fails with the pool's error when the replica cannot be asked.
    """

    def lag(rows: list[Any]) -> float:
        inRecovery, caughtUp, age, receiving = rows[0]
        if not inRecovery:
            return 0.0
        if caughtUp and receiving:
            return 0.0
        return math.inf if age is None else max(0.0, float(age))

    return pool.runQuery(LAG_QUERY).addCallback(lag)


class ReplicaState(enum.StrEnum):
    """A replica's standing after its last health check (a ``str`` enum: statistics show the value)."""

    UNKNOWN = "unknown"  # not checked yet: skipped
    UP = "up"  # usable for reads
    LAGGING = "lagging"  # reachable, but further behind than maxLag: skipped
    DOWN = "down"  # its check failed, or a read on it lost its connection: skipped


@dataclass(frozen=True)
class MemberStatistics:
    """One member of a :class:`ReplicatedPool`: its standing, its reads, and its pool's own snapshot."""

    name: str
    #: "primary" or "replica"
    role: str
    #: a :class:`ReplicaState` value; the primary is always "up" (the router never skips it)
    state: str
    #: lag in seconds at the last check (None: never measured; the primary: None)
    lag: float | None
    #: clock time of the last finished check (None: none yet)
    lastCheck: float | None
    #: the last check's error (type and message), when it failed
    lastError: str | None
    #: reads routed to this member through ``reads``
    reads: int
    pool: PoolStatistics


@dataclass(frozen=True)
class ReplicatedStatistics:
    """A snapshot of a :class:`ReplicatedPool` (cheap: no database work)."""

    primary: MemberStatistics
    replicas: tuple[MemberStatistics, ...]
    #: reads sent to the primary because the caller wrote recently (read-your-writes)
    readYourWrites: int
    #: reads sent to the primary because no replica was usable
    fallbacks: int
    #: reads that lost their replica's connection and were run again elsewhere
    rerouted: int
    #: health checks run in all (each replica counts once per round)
    checks: int


class _Member:
    """A pool and its standing (reactor thread only)."""

    def __init__(self, pool: ConnectionPool, role: str) -> None:
        self.pool = pool
        self.role = role
        self.state = ReplicaState.UP if role == "primary" else ReplicaState.UNKNOWN
        self.lag: float | None = None
        self.lastCheck: float | None = None
        self.lastError: str | None = None
        self.reads = 0
        self.checking: Deferred[Any] | None = None

    def load(self) -> int:
        stats = self.pool.statistics()
        return stats.busy + stats.waiting

    def snapshot(self) -> MemberStatistics:
        pool = self.pool.statistics()
        return MemberStatistics(name=pool.name, role=self.role, state=self.state.value, lag=self.lag,
                                lastCheck=self.lastCheck, lastError=self.lastError, reads=self.reads,
                                pool=pool)


class _WriteMark:
    """A caller's recent writes: how many are running, and until when its reads stay on the primary.

    Shared by reference through the caller's contextvars context, so the completion callback (which
    runs in whatever context fires the Deferred) updates the caller's own mark.
    """

    __slots__ = ("pending", "until")

    def __init__(self) -> None:
        self.pending = 0
        self.until = -math.inf


def _checkSeconds(name: str, value: object, allowZero: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise TypeError(f"{name} must be a number of seconds, not {value!r}")
    if value < 0 or (value == 0 and not allowZero):
        raise ValueError(f"{name} must be {'>= 0' if allowZero else '> 0'}, got {value!r}")
    return float(value)


class ReplicatedPool:
    """Writes, interactions and transactions on the primary; reads through :attr:`reads` on replicas.

    ``ReplicatedPool(primary, replicas, *, maxLag=5.0, checkInterval=1.0, checkTimeout=2.0,
    readYourWrites=None, healthCheck=standbyLag, primaryReads=False, clock=None)``:

    - ``primary``, ``replicas``: started or unstarted :class:`ConnectionPool` objects, which the router
      owns from now on (:meth:`close` closes them). A read that fails on a replica with ``ConnectionLost``
      (replica pools with ``cp_reconnect=True`` raise it for a dead connection), or with the driver's
      ``OperationalError`` (a refused connect) while a health check run at once fails too, marks the
      replica down and runs once more on another replica or the primary: reads are safe to run again.
    - ``maxLag``: seconds of replication lag past which a replica is skipped.
    - ``checkInterval``: seconds between health-check rounds (a round waits for the previous one);
      ``checkTimeout``: a check not answered within it counts as failed (and is cancelled).
    - ``readYourWrites``: seconds a caller's reads stay on the primary after its last write finished;
      default ``maxLag + checkInterval`` (by then any replica still in use has the write); 0 turns it
      off.
    - ``healthCheck(pool)``: returns a Deferred firing with the replica's lag in seconds, or failing
      when it is down (default :func:`standbyLag`, PostgreSQL).
    - ``primaryReads``: the primary takes reads too, as one more member of the least-busy choice
      (default False: the primary's connections stay free for writes, and reads reach it only as a
      fallback or for read-your-writes).
    - ``clock``: where the checks' time comes from (default: ``reactor.getReactor()``; tests pass a
      :class:`~reactor.task.Clock`). With a reactor the checks start when it runs and stop before it
      shuts down; with a Clock, at once.

    Every method must be called in the reactor thread; the Deferreds fire there.
    """

    def __init__(
        self,
        primary: ConnectionPool,
        replicas: Sequence[ConnectionPool],
        *,
        maxLag: float = 5.0,
        checkInterval: float = 1.0,
        checkTimeout: float = 2.0,
        readYourWrites: float | None = None,
        healthCheck: Callable[[ConnectionPool], Deferred[float]] = standbyLag,
        primaryReads: bool = False,
        clock: Any = None,
    ) -> None:
        if not isinstance(primary, ConnectionPool):
            raise TypeError(f"primary must be a ConnectionPool, not {type(primary).__name__}")
        if isinstance(replicas, str | bytes) or not isinstance(replicas, Sequence):
            raise TypeError(f"replicas must be a sequence of ConnectionPool, not {type(replicas).__name__}")
        for i, replica in enumerate(replicas):
            if not isinstance(replica, ConnectionPool):
                raise TypeError(f"replicas[{i}] must be a ConnectionPool, not {type(replica).__name__}")
            if replica is primary or any(replica is other for other in replicas[:i]):
                raise ValueError(f"replicas[{i}] is given twice (or is the primary)")
        if not callable(healthCheck):
            raise TypeError(f"healthCheck must be callable, not {type(healthCheck).__name__}")
        if not isinstance(primaryReads, bool):
            raise TypeError(f"primaryReads must be a bool, not {type(primaryReads).__name__}")
        self._primaryReads = primaryReads
        self._maxLag = _checkSeconds("maxLag", maxLag)
        self._interval = _checkSeconds("checkInterval", checkInterval, allowZero=False)
        self._checkTimeout = _checkSeconds("checkTimeout", checkTimeout, allowZero=False)
        self._window = (self._maxLag + self._interval if readYourWrites is None
                        else _checkSeconds("readYourWrites", readYourWrites))
        if clock is None:
            clock = getReactor()
        if not (callable(getattr(clock, "callLater", None)) and callable(getattr(clock, "seconds", None))):
            raise TypeError(f"clock must provide callLater() and seconds(), not {type(clock).__name__}")
        self._clock = clock
        self._healthCheck = healthCheck
        # All fields below: reactor thread only.
        self._primary = _Member(primary, "primary")
        self._replicas = [_Member(pool, "replica") for pool in replicas]
        self._turn = 0  # round-robin position among equally busy replicas
        self._readYourWrites = 0
        self._fallbacks = 0
        self._rerouted = 0
        self._checks = 0
        self._closed = False
        self._mark: contextvars.ContextVar[_WriteMark | None] = contextvars.ContextVar(
            f"adbapi.ReplicatedPool.{id(self)}.writes", default=None)
        self._loop = LoopingCall(self._checkRound)
        self._loop.clock = clock
        self.reads = ReadView(self)
        self._startID: Any = None
        self._shutdownID: Any = None
        if callable(getattr(clock, "callWhenRunning", None)):
            self._startID = clock.callWhenRunning(self._startChecks)
            self._shutdownID = clock.addSystemEventTrigger("before", "shutdown", self._stopForShutdown)
        else:
            self._startChecks()

    def __repr__(self) -> str:
        replicas = ", ".join(f"{m.pool.statistics().name} {m.state.value}" for m in self._replicas)
        return (f"<ReplicatedPool primary={self._primary.pool.statistics().name} replicas=[{replicas}]"
                f"{' closed' if self._closed else ''}>")

    # -- calls on the primary ---------------------------------------------------------------

    def runQuery(self, *args: Any, **kw: Any) -> Deferred[list[Any]]:
        """``runQuery`` on the primary (it may write: ``INSERT ... RETURNING``); counts as a write."""
        return self._wrote(self._primary.pool.runQuery(*args, **kw))

    def runOperation(self, *args: Any, **kw: Any) -> Deferred[None]:
        """``runOperation`` on the primary; counts as a write."""
        return self._wrote(self._primary.pool.runOperation(*args, **kw))

    def runInteraction(
        self, interaction: Callable[Concatenate[Transaction, _P], _T], *args: _P.args, **kw: _P.kwargs
    ) -> Deferred[_T]:
        """``runInteraction`` on the primary; counts as a write."""
        return self._wrote(self._primary.pool.runInteraction(interaction, *args, **kw))

    def runWithConnection(
        self, func: Callable[Concatenate[Connection, _P], _T], *args: _P.args, **kw: _P.kwargs
    ) -> Deferred[_T]:
        """``runWithConnection`` on the primary; counts as a write."""
        return self._wrote(self._primary.pool.runWithConnection(func, *args, **kw))

    def transaction(self) -> _WritingTransaction:
        """``async with pool.transaction() as txn`` on the primary; counts as a write from entry to exit."""
        return _WritingTransaction(self, self._primary.pool.transaction())

    @property
    def primary(self) -> ConnectionPool:
        """The primary's pool."""
        return self._primary.pool

    @property
    def replicas(self) -> tuple[ConnectionPool, ...]:
        """The replicas' pools, in the order given."""
        return tuple(m.pool for m in self._replicas)

    def _beginWrite(self) -> _WriteMark | None:
        if self._window <= 0:
            return None
        mark = self._mark.get()
        if mark is None:
            mark = _WriteMark()
            self._mark.set(mark)
        mark.pending += 1
        return mark

    def _endWrite(self, mark: _WriteMark | None) -> None:
        if mark is not None:
            mark.pending -= 1
            mark.until = max(mark.until, self._clock.seconds() + self._window)

    def _wrote(self, d: Deferred[_T]) -> Deferred[_T]:
        mark = self._beginWrite()
        if mark is None:
            return d

        def done(result: Any) -> Any:
            self._endWrite(mark)
            return result

        return d.addBoth(done)

    # -- reads ------------------------------------------------------------------------------

    def _readsOnPrimary(self) -> bool:
        """Whether this caller wrote recently enough that its reads must see the primary."""
        mark = self._mark.get()
        return mark is not None and (mark.pending > 0 or self._clock.seconds() < mark.until)

    def _pick(self, exclude: Sequence[_Member] = ()) -> _Member:
        """The member the next read goes to (counts it)."""
        if self._readsOnPrimary():
            self._readYourWrites += 1
            member = self._primary
        else:
            usable = [m for m in self._replicas if m.state == ReplicaState.UP and m not in exclude]
            if usable and self._primaryReads and self._primary not in exclude:
                usable.append(self._primary)
            if not usable:
                self._fallbacks += 1
                member = self._primary
            else:
                start = self._turn % len(usable)
                self._turn += 1
                member = min(usable[start:] + usable[:start], key=_Member.load)
        member.reads += 1
        return member

    def _read(self, run: Callable[[ConnectionPool], Deferred[_T]]) -> Deferred[_T]:
        """Run ``run(pool)`` on the member chosen for a read; once more elsewhere if its connection died."""
        if self._closed:
            # The member pools refuse calls themselves; route to the primary so the error is the pool's.
            return run(self._primary.pool)
        current: list[Deferred[Any]] = []
        tried: list[_Member] = []

        def cancel(d: Deferred[_T]) -> None:
            if current:
                current[-1].cancel()

        outer: Deferred[_T] = Deferred(cancel)

        def attempt() -> None:
            member = self._pick(tried)
            tried.append(member)
            d = run(member.pool)
            current.append(d)
            d.addCallbacks(succeeded, failed, errbackArgs=(member,))

        def succeeded(result: _T) -> None:
            if not outer.called:
                outer.callback(result)

        def failed(failure: Failure, member: _Member) -> None:
            if outer.called:
                return  # cancelled: the outer Deferred has errbacked already
            if member.role != "replica" or len(tried) >= 2 or self._closed:
                outer.errback(failure)
            elif failure.check(ConnectionLost) is not None:
                self._markDown(member, failure)
                rerun()
            elif failure.check(getattr(member.pool.dbapi, "OperationalError", ConnectionLost)) is not None:
                # Maybe the replica is gone (a refused connect), maybe only the statement failed (a
                # timeout): a health check right away tells which.
                self._checkOne(member).addCallback(afterCheck, failure, member)
            else:
                outer.errback(failure)

        def afterCheck(ignored: None, failure: Failure, member: _Member) -> None:
            if outer.called:
                return
            if member.state == ReplicaState.DOWN and not self._closed:
                rerun()
            else:
                outer.errback(failure)

        def rerun() -> None:
            self._rerouted += 1
            attempt()

        attempt()
        return outer

    def _markDown(self, member: _Member, failure: Failure) -> None:
        if member.state != ReplicaState.DOWN:
            _log.warning("adbapi: replica %s is down: %s", member.pool.statistics().name,
                         failure.getErrorMessage())
        member.state = ReplicaState.DOWN
        member.lastError = f"{failure.type.__name__}: {failure.getErrorMessage()}"

    # -- health checks ----------------------------------------------------------------------

    def _startChecks(self) -> None:
        self._startID = None
        if self._closed or self._loop.running or not self._replicas:
            return
        self._loop.start(self._interval, now=True).addErrback(self._loopFailed)

    def _loopFailed(self, failure: Failure) -> None:
        _log.error("adbapi: the replicas' health checks stopped: %s", failure.getTraceback())

    def _stopForShutdown(self) -> None:
        # The member pools close at the same time (their own triggers); start() reopens everything. The
        # trigger has fired: it is no longer registered.
        self._shutdownID = None
        self._stopChecks()

    def start(self) -> None:
        """Start every member pool and the health checks (the reactor does this when it runs).

        As ``ConnectionPool.start``: needed again only after a reactor shutdown closed the members, to
        use them on the same reactor run again. Raises ``PoolClosedError`` after :meth:`close`.
        """
        if self._closed:
            raise PoolClosedError("this ReplicatedPool was closed; make a new one")
        for member in (self._primary, *self._replicas):
            member.pool.start()
        if self._shutdownID is None and callable(getattr(self._clock, "addSystemEventTrigger", None)):
            self._shutdownID = self._clock.addSystemEventTrigger("before", "shutdown", self._stopForShutdown)
        self._startChecks()

    def _stopChecks(self) -> None:
        if self._loop.running:
            self._loop.stop()
        for member in self._replicas:
            if member.checking is not None:
                member.checking.cancel()

    def checkNow(self) -> Deferred[None]:
        """Run one round of health checks now (outside the loop's schedule); fires when it finished."""
        return self._checkRound()

    def _checkRound(self) -> Deferred[None]:
        rounds = [self._checkOne(member) for member in self._replicas]
        return gatherResults(rounds).addCallback(lambda ignored: None)

    def _checkOne(self, member: _Member) -> Deferred[None]:
        self._checks += 1
        try:
            d = self._healthCheck(member.pool)
        except Exception:
            d = Deferred()
            d.errback(Failure())
        if not isinstance(d, Deferred):
            wrong = TypeError(f"healthCheck must return a Deferred, not {type(d).__name__}")
            d = Deferred()
            d.errback(wrong)
        member.checking = d
        d.addTimeout(self._checkTimeout, self._clock)

        def measured(lag: object) -> None:
            member.checking = None
            member.lastCheck = self._clock.seconds()
            if isinstance(lag, bool) or not isinstance(lag, int | float) or math.isnan(lag):
                member.state = ReplicaState.DOWN
                member.lastError = f"TypeError: healthCheck fired with {lag!r}, not a number of seconds"
                return
            member.lag = float(lag)
            member.lastError = None
            before = member.state
            member.state = ReplicaState.UP if lag <= self._maxLag else ReplicaState.LAGGING
            if member.state != before and before != ReplicaState.UNKNOWN:
                _log.info("adbapi: replica %s is %s (lag %.3f s)", member.pool.statistics().name,
                          member.state.value, lag)

        def failedCheck(failure: Failure) -> None:
            member.checking = None
            member.lastCheck = self._clock.seconds()
            if self._closed:
                return
            self._markDown(member, failure)

        return d.addCallbacks(measured, failedCheck)

    # -- statistics and lifecycle -----------------------------------------------------------

    def statistics(self) -> ReplicatedStatistics:
        """A snapshot of every member's standing and pool, and of the routing counters."""
        return ReplicatedStatistics(
            primary=self._primary.snapshot(),
            replicas=tuple(m.snapshot() for m in self._replicas),
            readYourWrites=self._readYourWrites,
            fallbacks=self._fallbacks,
            rerouted=self._rerouted,
            checks=self._checks,
        )

    def close(self) -> Deferred[None]:
        """Stop the health checks and close every member pool; fires when all of them have closed."""
        self._closed = True
        if self._startID is not None and self._startID.active():
            self._startID.cancel()
        self._startID = None
        if self._shutdownID is not None:
            self._clock.removeSystemEventTrigger(self._shutdownID)
            self._shutdownID = None
        self._stopChecks()
        closing = [m.pool.close() for m in (self._primary, *self._replicas)]
        return gatherResults(closing).addCallback(lambda ignored: None)


class ReadView:
    """``pool.reads``: the calls of a :class:`ReplicatedPool` that may run on a replica.

    Only reads belong here: a hot standby refuses writes (PostgreSQL raises ``ReadOnlySqlTransaction``),
    and a read may see data up to ``maxLag`` seconds old, except that a caller who wrote recently reads
    from the primary. A read whose replica turned out to be down (its connection lost, or refused and a
    health check failing at once) is run once more on another replica or the primary. Reactor thread
    only.
    """

    def __init__(self, router: ReplicatedPool) -> None:
        self._router = router

    def __repr__(self) -> str:
        return f"<ReadView of {self._router!r}>"

    def runQuery(self, *args: Any, **kw: Any) -> Deferred[list[Any]]:
        """``runQuery`` on a usable replica (or the primary); fires with its rows."""
        return self._router._read(lambda pool: pool.runQuery(*args, **kw))

    def runInteraction(
        self, interaction: Callable[Concatenate[Transaction, _P], _T], *args: _P.args, **kw: _P.kwargs
    ) -> Deferred[_T]:
        """``runInteraction`` of a read-only ``interaction`` on a usable replica (or the primary)."""
        if not callable(interaction):
            raise TypeError(f"interaction must be callable, not {type(interaction).__name__}")
        return self._router._read(lambda pool: pool.runInteraction(interaction, *args, **kw))

    def runWithConnection(
        self, func: Callable[Concatenate[Connection, _P], _T], *args: _P.args, **kw: _P.kwargs
    ) -> Deferred[_T]:
        """``runWithConnection`` of a read-only ``func`` on a usable replica (or the primary)."""
        if not callable(func):
            raise TypeError(f"func must be callable, not {type(func).__name__}")
        return self._router._read(lambda pool: pool.runWithConnection(func, *args, **kw))


class _WritingTransaction:
    """The primary's AsyncTransaction, counted as a write of the caller from entry to exit."""

    def __init__(self, router: ReplicatedPool, transaction: AsyncTransaction) -> None:
        self._router = router
        self._transaction = transaction
        self._mark: _WriteMark | None = None

    async def __aenter__(self) -> AsyncTransaction:
        self._mark = self._router._beginWrite()
        try:
            return await self._transaction.__aenter__()
        except BaseException:
            self._router._endWrite(self._mark)
            raise

    async def __aexit__(
        self, excType: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            await self._transaction.__aexit__(excType, exc, tb)
        finally:
            self._router._endWrite(self._mark)
