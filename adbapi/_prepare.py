"""Server-side prepared statements for psycopg2 lanes (``cp_prepare_threshold``).

Why: psycopg2 sends every statement as text with its parameters written in, so
PostgreSQL parses, analyses and plans it on every call; asyncpg and psycopg 3
prepare the statements a connection runs often and then send only the
parameters. On a primary-key lookup the planning is a large share of the
server's CPU (pgbench on this project's machines: the prepared protocol served
1.9x the simple one). psycopg2 has no protocol-level prepare, so a lane uses
SQL's own ``PREPARE name (types) AS ...`` once per connection and statement,
then ``EXECUTE name (values)``, whose parse is trivial and whose plan is cached.

The same meaning as the statement psycopg2 would have sent: the placeholders
are psycopg2's (``%s``, ``%(name)s``, ``%%`` for a percent sign), and each
parameter's declared type is the type PostgreSQL gives the literal psycopg2
writes for that Python value (``int`` -> ``int4``/``int8``/``numeric`` by size,
``float`` and ``Decimal`` -> ``numeric``, ``str`` and ``None`` -> ``unknown``,
so the server infers them from context as it does for a quoted literal, and so
on). A statement given without a parameters list is prepared as it is
(psycopg2 sends such text unchanged, ``%`` signs included). A statement whose
values have other types (lists, tuples for ``IN``, ``Json``, UUIDs...) runs as
plain text; one PostgreSQL refuses to prepare (several statements in one
string, a parameter whose type cannot be inferred, anything but SELECT, INSERT,
UPDATE, DELETE, MERGE and VALUES) runs as plain text from then on on that
connection. The same text with values of other types is another prepared
statement.

Where it does not fit: PgBouncer in transaction mode gives a client a different
server connection from one transaction to the next, so a name prepared on one
is unknown on another: leave the option off there (its default).

Thread: everything here runs in the reactor thread, on behalf of one lane.
"""

from __future__ import annotations

import datetime
import decimal
import math
from typing import Any

__all__ = ["Prepared", "PreparedStatements", "translate"]

_INT4 = 2**31
_INT8 = 2**63
#: at most this many statements prepared on one connection; later ones run as plain text
MAX_PREPARED = 256
#: at most this many statements counted toward the threshold at once (the counts start over when full)
MAX_COUNTED = 4096


def translate(query: str, named: bool) -> tuple[str, list[str]] | None:
    """``query`` with psycopg2's placeholders as ``$n``, and the parameter names in ``$n`` order.

    For positional placeholders (``named`` False) the names are empty strings,
    one per ``%s``. None when the query mixes both kinds or has a ``%`` that
    psycopg2 would refuse: psycopg2 then raises, and the plain path shows its
    error.
    """
    out: list[str] = []
    order: list[str] = []
    numbers: dict[str, int] = {}
    i = 0
    n = len(query)
    while True:
        j = query.find("%", i)
        if j < 0:
            out.append(query[i:])
            break
        out.append(query[i:j])
        if j + 1 >= n:
            return None
        following = query[j + 1]
        if following == "%":
            out.append("%")
            i = j + 2
        elif following == "s":
            if named:
                return None
            order.append("")
            out.append(f"${len(order)}")
            i = j + 2
        elif following == "(":
            close = query.find(")", j + 2)
            if not named or close < 0 or close + 1 >= n or query[close + 1] != "s":
                return None
            name = query[j + 2:close]
            number = numbers.get(name)
            if number is None:
                order.append(name)
                number = numbers[name] = len(order)
            out.append(f"${number}")
            i = close + 2
        else:
            return None
    return "".join(out), order


def _typeOf(value: Any) -> str | None:
    """The type PostgreSQL gives psycopg2's literal for ``value``; None for values not handled."""
    kind = type(value)
    if kind is str or value is None:
        return "unknown"
    if kind is int:
        if -_INT4 <= value < _INT4:
            return "int4"
        return "int8" if -_INT8 <= value < _INT8 else "numeric"
    if kind is bool:
        return "bool"
    if kind is float:
        # psycopg2 writes nan/inf as 'NaN'::float: typed, unlike a finite number's numeric literal.
        return "numeric" if math.isfinite(value) else None
    if kind is decimal.Decimal:
        return "numeric"
    if kind is bytes or kind is bytearray or kind is memoryview:
        return "bytea"
    if kind is datetime.datetime:
        return "timestamp" if value.tzinfo is None else "timestamptz"
    if kind is datetime.date:
        return "date"
    if kind is datetime.time:
        return "time" if value.tzinfo is None else "timetz"
    if kind is datetime.timedelta:
        return "interval"
    return None


class Prepared:
    """One statement as a lane runs it: the ``PREPARE`` to send first (None once done) and the ``EXECUTE``."""

    __slots__ = ("executeArgs", "key", "name", "order", "prepareSql")

    def __init__(self, key: tuple[Any, ...], name: str, order: list[str], prepareSql: str | None,
                 executeArgs: tuple[Any, ...]) -> None:
        self.key = key
        self.name = name
        self.order = order  # the parameters' names in $n order (empty strings when positional)
        self.prepareSql = prepareSql
        self.executeArgs = executeArgs


def _executeArgs(name: str, order: list[str], params: Any, named: bool) -> tuple[Any, ...]:
    """``cursor.execute`` arguments that run prepared statement ``name`` with ``params``."""
    if not order:
        return (f"EXECUTE {name}", None)
    if named:
        return (f"EXECUTE {name} ({', '.join(f'%({n})s' for n in order)})", params)
    return (f"EXECUTE {name} ({', '.join(['%s'] * len(order))})", tuple(params))


class PreparedStatements:
    """The statements one lane connection has prepared, and how often it ran the others (reactor thread).

    ``threshold`` is ``cp_prepare_threshold``: a statement is prepared the
    time it has already run that many times on this connection (0: the first
    time). Made anew for each connection the lane opens.
    """

    def __init__(self, threshold: int) -> None:
        self.threshold = threshold
        self.serial = 0
        # key -> (name, the parameters' names in $n order); None: runs as plain text on this connection
        self.entries: dict[tuple[Any, ...], tuple[str, list[str]] | None] = {}
        self.counts: dict[tuple[Any, ...], int] = {}

    def plan(self, args: tuple[Any, ...], kw: dict[str, Any]) -> Prepared | None:
        """How to run ``cursor.execute(*args, **kw)`` prepared, or None to run it as plain text."""
        if kw or not 1 <= len(args) <= 2:
            return None
        query = args[0]
        params: Any = args[1] if len(args) == 2 else None
        if type(query) is not str:
            return None
        named = type(params) is dict
        if params is None:
            values: Any = ()  # psycopg2 sends the text as it is: no placeholders, no %% to undo
        elif named:
            values = params.values()
        elif type(params) is tuple or type(params) is list:
            values = params
        else:
            return None
        types = []
        for value in values:
            pgType = _typeOf(value)
            if pgType is None:
                return None
            types.append(pgType)
        key = (query, tuple(params) if named else params is None, *types)
        entries = self.entries
        entry = entries.get(key, ())
        if entry is None:
            return None
        if entry:
            name, order = entry
            return Prepared(key, name, order, None, _executeArgs(name, order, params, named))
        counts = self.counts
        seen = counts.get(key, 0)
        if seen < self.threshold:
            if len(counts) >= MAX_COUNTED:
                counts.clear()
            counts[key] = seen + 1
            return None
        if len(entries) >= MAX_PREPARED:
            return None
        counts.pop(key, None)
        if params is None:
            text, order = query, []
        else:
            translated = translate(query, named)
            if translated is None:
                entries[key] = None
                return None
            text, order = translated
        if (named and not set(order) <= set(params)) or (not named and len(order) != len(types)):
            return None  # a name missing from the mapping, or the wrong number of values: psycopg2 says which
        if named:
            byName = dict(zip(params, types, strict=True))
            types = [byName[n] for n in order]
        self.serial += 1
        name = f"adbapi_{self.serial}"
        declared = f" ({', '.join(types)})" if types else ""
        return Prepared(key, name, order, f"PREPARE {name}{declared} AS {text}",
                        _executeArgs(name, order, params, named))

    def prepared(self, plan: Prepared) -> None:
        """The server accepted ``plan``'s ``PREPARE``: later calls send only the ``EXECUTE``."""
        self.entries[plan.key] = (plan.name, plan.order)
        plan.prepareSql = None

    def refused(self, plan: Prepared) -> None:
        """The server refused ``plan``'s ``PREPARE``: this statement runs as plain text on this connection."""
        self.entries[plan.key] = None

    def forget(self, plan: Prepared) -> None:
        """``plan``'s statement is gone from the server (``DEALLOCATE``, ``DISCARD``): prepare it again."""
        self.entries.pop(plan.key, None)
