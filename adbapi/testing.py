"""A fake DB-API 2.0 driver for unit tests of code built on ``adbapi``: scripted results, no server.

::

    driver = FakeDriver()
    driver.script("SELECT id, name FROM users", rows=[(1, "ann")], columns=("id", "name"))
    driver.script(re.compile(r"INSERT INTO users"), error=driver.IntegrityError("duplicate key"))
    pool = ConnectionPool(driver, cp_min=1, cp_max=1)

A :class:`FakeDriver` *is* a module object (``ConnectionPool`` takes a module or its name), with
``connect()``, ``apilevel``, ``paramstyle`` and the DB-API exception classes as attributes,
fresh per driver (``except driver.Error`` catches only this driver's errors). Each statement
executed is matched against the scripted rules, first match wins; a statement no rule matches
raises the driver's ``ProgrammingError`` naming it, so an unexpected query fails the test
instead of returning nothing. What ran is recorded (:attr:`FakeDriver.executed`, and each
connection's commits, rollbacks and close). The driver is safe to use from the pool's worker
threads (one lock guards the rules and the records).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

__all__ = ["FakeConnection", "FakeCursor", "FakeDriver", "ScriptedResult"]

_WHITESPACE = re.compile(r"\s+")


def _normalized(sql: str) -> str:
    return _WHITESPACE.sub(" ", sql).strip()


def _checkError(error: object) -> None:
    isClass = isinstance(error, type) and issubclass(error, BaseException)
    if not (isClass or isinstance(error, BaseException)):
        raise TypeError(f"error must be an exception or exception class, not {type(error).__name__}")


@dataclass
class ScriptedResult:
    """One rule: which statements it matches and what executing one does.

    ``match`` is the statement (compared with runs of whitespace folded), a compiled regular
    expression (``search``), or a callable ``(sql, params) -> bool``. Executing a match raises
    ``error`` if given, else calls ``handler(sql, params)`` if given (its return value is the
    rows), else yields ``rows``. ``times`` is how many executions the rule serves (``None``:
    every one). ``columns`` names the result's columns (the cursor's ``description``).
    """

    match: str | re.Pattern[str] | Callable[[str, Any], bool]
    rows: Sequence[Sequence[Any]] = ()
    columns: Sequence[str] | None = None
    rowcount: int | None = None
    error: BaseException | type[BaseException] | None = None
    handler: Callable[[str, Any], Sequence[Sequence[Any]] | None] | None = None
    times: int | None = None
    used: int = field(default=0, init=False)

    def matches(self, sql: str, params: Any) -> bool:
        """True if this rule applies to ``sql`` (and has uses left)."""
        if self.times is not None and self.used >= self.times:
            return False
        if isinstance(self.match, str):
            return _normalized(self.match) == _normalized(sql)
        if isinstance(self.match, re.Pattern):
            return self.match.search(sql) is not None
        return bool(self.match(sql, params))


class FakeCursor:
    """A DB-API cursor over scripted results. Used in one thread at a time (the connection's)."""

    arraysize = 1

    def __init__(self, connection: FakeConnection) -> None:
        self.connection = connection
        self.description: list[tuple[Any, ...]] | None = None
        self.rowcount = -1
        self.lastrowid: int | None = None
        self.closed = False
        self._rows: list[tuple[Any, ...]] = []

    def _check(self) -> None:
        if self.closed:
            raise self.connection.driver.InterfaceError("cursor already closed")
        self.connection._check()

    def execute(self, operation: str, parameters: Any = None) -> None:
        """Run ``operation`` through the driver's rules: its rows, or its scripted error, or
        ``ProgrammingError`` if no rule matches."""
        self._check()
        if not isinstance(operation, str):
            raise TypeError(f"operation must be a str, not {type(operation).__name__}")
        rule = self.connection.driver._take(operation, parameters)
        rows = rule.rows
        if rule.handler is not None:
            produced = rule.handler(operation, parameters)
            rows = produced if produced is not None else ()
        self._rows = [tuple(row) for row in rows]
        if rule.columns is not None:
            self.description = [(name, None, None, None, None, None, None) for name in rule.columns]
        elif self._rows:
            self.description = [(f"column{i}", None, None, None, None, None, None)
                                for i in range(len(self._rows[0]))]
        else:
            self.description = None
        self.rowcount = rule.rowcount if rule.rowcount is not None else len(self._rows)

    def executemany(self, operation: str, seqOfParameters: Sequence[Any]) -> None:
        """:meth:`execute` once per parameter set; ``rowcount`` is the sum."""
        total = 0
        for parameters in seqOfParameters:
            self.execute(operation, parameters)
            total += max(self.rowcount, 0)
        self.rowcount = total

    def fetchone(self) -> tuple[Any, ...] | None:
        """The next row, or None."""
        self._check()
        return self._rows.pop(0) if self._rows else None

    def fetchmany(self, size: int | None = None) -> list[tuple[Any, ...]]:
        """Up to ``size`` (default :attr:`arraysize`) rows."""
        self._check()
        count = self.arraysize if size is None else size
        taken, self._rows = self._rows[:count], self._rows[count:]
        return taken

    def fetchall(self) -> list[tuple[Any, ...]]:
        """The remaining rows."""
        self._check()
        taken, self._rows = self._rows, []
        return taken

    def close(self) -> None:
        """Close the cursor (later use raises ``InterfaceError``)."""
        self.closed = True

    def setinputsizes(self, sizes: Any) -> None:
        """Accepted and ignored (DB-API)."""

    def setoutputsize(self, size: Any, column: Any = None) -> None:
        """Accepted and ignored (DB-API)."""


class FakeConnection:
    """A DB-API connection of a :class:`FakeDriver`; counts its commits and rollbacks."""

    def __init__(self, driver: FakeDriver, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.driver = driver
        self.args = args
        self.kwargs = kwargs
        self.commits = 0
        self.rollbacks = 0
        self.closed = False

    def _check(self) -> None:
        if self.closed:
            raise self.driver.InterfaceError("connection already closed")

    def cursor(self) -> FakeCursor:
        """A new cursor. :raises InterfaceError: the connection is closed."""
        self._check()
        return FakeCursor(self)

    def commit(self) -> None:
        """Count a commit, or raise the error scripted with :meth:`FakeDriver.scriptCommit`."""
        self._check()
        self.driver._takeOnce("commit")
        self.commits += 1

    def rollback(self) -> None:
        """Count a rollback, or raise the error scripted with :meth:`FakeDriver.scriptRollback`."""
        self._check()
        self.driver._takeOnce("rollback")
        self.rollbacks += 1

    def close(self) -> None:
        """Close (idempotent)."""
        self.closed = True

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<FakeConnection {state} commits={self.commits} rollbacks={self.rollbacks}>"


class FakeDriver(ModuleType):
    """A DB-API 2.0 module whose statements do what the test scripted (see the module docstring).

    Records, all guarded by one lock: :attr:`executed` (every ``(sql, params)`` executed, in
    order), :attr:`connections` (every connection made). ``connect()`` and ``commit()``/
    ``rollback()`` can be scripted to fail with :meth:`scriptConnect`, :meth:`scriptCommit`,
    :meth:`scriptRollback`.
    """

    apilevel = "2.0"
    threadsafety = 1
    paramstyle = "pyformat"

    def __init__(self, name: str = "fakedb") -> None:
        """``name`` is the module's ``__name__`` (say, to tell two drivers apart in pool labels).

        :raises ValueError: ``name`` is empty or names a driver the pool treats specially.
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"name must be a non-empty str, got {name!r}")
        if name.split(".")[0] in {"sqlite3", "psycopg2", "psycopg", "pymysql", "MySQLdb", "mysql"}:
            raise ValueError(f"name {name!r} is a real driver's (the pool would treat the fake as it)")
        super().__init__(name, "A fake DB-API 2.0 driver (adbapi.testing.FakeDriver).")
        # The DB-API exception hierarchy, fresh classes per driver.
        self.Warning = type("Warning", (Exception,), {"__module__": name})
        self.Error = type("Error", (Exception,), {"__module__": name})
        self.InterfaceError = type("InterfaceError", (self.Error,), {"__module__": name})
        self.DatabaseError = type("DatabaseError", (self.Error,), {"__module__": name})
        for sub in ("DataError", "OperationalError", "IntegrityError", "InternalError",
                    "ProgrammingError", "NotSupportedError"):
            setattr(self, sub, type(sub, (self.DatabaseError,), {"__module__": name}))
        self._lock = threading.Lock()
        # Guarded by _lock: read and written by worker threads (execute) and the test thread.
        self.rules: list[ScriptedResult] = []
        self.executed: list[tuple[str, Any]] = []
        self.connections: list[FakeConnection] = []
        self._failures: dict[str, list[BaseException | type[BaseException]]] = {}

    # DB-API exception classes, set per instance in __init__ (declared for type checkers).
    Warning: type[Exception]
    Error: type[Exception]
    InterfaceError: type[Exception]
    DatabaseError: type[Exception]
    DataError: type[Exception]
    OperationalError: type[Exception]
    IntegrityError: type[Exception]
    InternalError: type[Exception]
    ProgrammingError: type[Exception]
    NotSupportedError: type[Exception]

    def script(
        self,
        match: str | re.Pattern[str] | Callable[[str, Any], bool],
        rows: Sequence[Sequence[Any]] = (),
        *,
        columns: Sequence[str] | None = None,
        rowcount: int | None = None,
        error: BaseException | type[BaseException] | None = None,
        handler: Callable[[str, Any], Sequence[Sequence[Any]] | None] | None = None,
        times: int | None = None,
    ) -> ScriptedResult:
        """Add a rule (see :class:`ScriptedResult`) after the existing ones; return it.

        :raises TypeError: ``match`` is not a str, a compiled pattern or a callable, or ``error``
            is not an exception. :raises ValueError: ``times`` < 1.
        """
        if not isinstance(match, str | re.Pattern) and not callable(match):
            raise TypeError(f"match must be a str, a re.Pattern or a callable, not {type(match).__name__}")
        if error is not None:
            _checkError(error)
        if times is not None and (isinstance(times, bool) or not isinstance(times, int) or times < 1):
            raise ValueError(f"times must be an int >= 1 or None, got {times!r}")
        if handler is not None and not callable(handler):
            raise TypeError(f"handler must be callable, not {type(handler).__name__}")
        rule = ScriptedResult(match, rows, columns, rowcount, error, handler, times)
        with self._lock:
            self.rules.append(rule)
        return rule

    def scriptConnect(self, error: BaseException | type[BaseException], times: int = 1) -> None:
        """Make the next ``times`` calls of ``connect()`` raise ``error``."""
        self._scriptFailure("connect", error, times)

    def scriptCommit(self, error: BaseException | type[BaseException], times: int = 1) -> None:
        """Make the next ``times`` commits (on any connection) raise ``error``."""
        self._scriptFailure("commit", error, times)

    def scriptRollback(self, error: BaseException | type[BaseException], times: int = 1) -> None:
        """Make the next ``times`` rollbacks (on any connection) raise ``error``."""
        self._scriptFailure("rollback", error, times)

    def _scriptFailure(self, what: str, error: BaseException | type[BaseException], times: int) -> None:
        _checkError(error)
        if isinstance(times, bool) or not isinstance(times, int) or times < 1:
            raise ValueError(f"times must be an int >= 1, got {times!r}")
        with self._lock:
            self._failures.setdefault(what, []).extend([error] * times)

    def connect(self, *args: Any, **kwargs: Any) -> FakeConnection:
        """A new :class:`FakeConnection` (recorded), or the error scripted with :meth:`scriptConnect`."""
        self._takeOnce("connect")
        conn = FakeConnection(self, args, kwargs)
        with self._lock:
            self.connections.append(conn)
        return conn

    def _takeOnce(self, what: str) -> None:
        with self._lock:
            pending = self._failures.get(what)
            error = pending.pop(0) if pending else None
        if error is not None:
            raise error

    def _take(self, sql: str, params: Any) -> ScriptedResult:
        with self._lock:
            self.executed.append((sql, params))
            for rule in self.rules:
                if rule.matches(sql, params):
                    rule.used += 1
                    break
            else:
                rule = None
        if rule is None:
            raise self.ProgrammingError(f"FakeDriver {self.__name__}: no scripted result for {sql!r}")
        if rule.error is not None:
            raise rule.error
        return rule

    @property
    def statements(self) -> list[str]:
        """The SQL of every statement executed so far, in order (a fresh list)."""
        with self._lock:
            return [sql for sql, _ in self.executed]

    def __repr__(self) -> str:
        return f"<FakeDriver {self.__name__!r} rules={len(self.rules)} executed={len(self.executed)}>"
