"""cp_prepare_threshold: psycopg2 lanes run frequent statements as server-side prepared statements.

The rules (placeholders, declared types, the threshold) are tested on their own,
from one thread; what they promise (the same rows as plain text, a statement
actually prepared on the server, the fallbacks) is tested on the real
PostgreSQL server through lanes, forced with ``cp_nonblocking=True``.
"""

from __future__ import annotations

import datetime
import decimal
from typing import Any

import pytest

from adbapi import ConnectionPool
from adbapi._prepare import PreparedStatements, translate
from reactor import Reactor
from tests.adbapi_support import runReactor

# -- the rules --------------------------------------------------------------------------------------


def test_translateNumbersPositionalPlaceholdersAndUnescapesPercent() -> None:
    """%s become $1, $2...; %% becomes one percent sign, as psycopg2 writes it."""
    assert translate("SELECT %s, %s WHERE x LIKE 'a%%'", named=False) == (
        "SELECT $1, $2 WHERE x LIKE 'a%'", ["", ""]
    )


def test_translateGivesARepeatedNameOneNumber() -> None:
    """%(a)s used twice is one parameter."""
    assert translate("SELECT %(a)s + %(b)s, %(a)s", named=True) == ("SELECT $1 + $2, $1", ["a", "b"])


def test_translateRefusesMixedOrUnknownPlaceholders() -> None:
    """A query psycopg2 itself would refuse is not translated (its own error then shows)."""
    assert translate("SELECT %s, %(a)s", named=False) is None
    assert translate("SELECT %d", named=False) is None
    assert translate("SELECT 1 %", named=False) is None


def test_statementIsPreparedOnceItRanThresholdTimes() -> None:
    """With threshold 2 the first two runs are plain text, the third prepares it."""
    statements = PreparedStatements(2)
    args = ("SELECT * FROM t WHERE id = %s", (7,))
    assert statements.plan(args, {}) is None
    assert statements.plan(args, {}) is None
    plan = statements.plan(args, {})
    assert plan is not None
    assert plan.prepareSql == "PREPARE adbapi_1 (int4) AS SELECT * FROM t WHERE id = $1"
    assert plan.executeArgs == ("EXECUTE adbapi_1 (%s)", (7,))


def test_preparedStatementIsExecutedWithoutAnotherPrepare() -> None:
    """Once the server accepted it, the statement only needs its EXECUTE."""
    statements = PreparedStatements(0)
    plan = statements.plan(("SELECT %s", ("x",)), {})
    assert plan is not None
    statements.prepared(plan)
    again = statements.plan(("SELECT %s", ("y",)), {})
    assert again is not None and again.prepareSql is None
    assert again.executeArgs == ("EXECUTE adbapi_1 (%s)", ("y",))


def test_declaredTypesAreThoseOfPsycopg2sLiterals() -> None:
    """Each value's declared type is what PostgreSQL gives the literal psycopg2 would write."""
    statements = PreparedStatements(0)
    values = (1, 2**40, 2**70, 1.5, decimal.Decimal("2.5"), "s", None, True, b"b",
              datetime.date(2026, 1, 2), datetime.datetime(2026, 1, 2, 3, 4), datetime.timedelta(1))
    query = "SELECT " + ", ".join(["%s"] * len(values))
    plan = statements.plan((query, values), {})
    assert plan is not None and plan.prepareSql is not None
    assert plan.prepareSql.startswith(
        "PREPARE adbapi_1 (int4, int8, numeric, numeric, numeric, unknown, unknown, bool, bytea, date, "
        "timestamp, interval) AS SELECT $1"
    )


def test_valuesOfOtherTypesRunAsPlainText() -> None:
    """Lists, tuples (IN), non-finite floats, unknown objects: psycopg2 writes those its own way."""
    statements = PreparedStatements(0)
    for value in ([1, 2], (1, 2), float("nan"), object()):
        assert statements.plan(("SELECT %s", (value,)), {}) is None


def test_theSameTextWithOtherTypesIsAnotherStatement() -> None:
    """An int and a str for the same placeholder are prepared apart."""
    statements = PreparedStatements(0)
    first = statements.plan(("SELECT %s", (1,)), {})
    second = statements.plan(("SELECT %s", ("1",)), {})
    assert first is not None and second is not None and first.name != second.name


def test_refusedStatementRunsAsPlainTextFromThenOn() -> None:
    """After the server refused a PREPARE, the statement is not offered again on that connection."""
    statements = PreparedStatements(0)
    plan = statements.plan(("SELECT %s; SELECT 2", (1,)), {})
    assert plan is not None
    statements.refused(plan)
    assert statements.plan(("SELECT %s; SELECT 2", (1,)), {}) is None


def test_namedParametersExecuteInPlaceholderOrder() -> None:
    """The EXECUTE lists named values in the order of their $n, whatever the mapping's order."""
    statements = PreparedStatements(0)
    plan = statements.plan(("SELECT %(b)s, %(a)s", {"a": 1, "b": "x"}), {})
    assert plan is not None
    assert plan.prepareSql == "PREPARE adbapi_1 (unknown, int4) AS SELECT $1, $2"
    assert plan.executeArgs == ("EXECUTE adbapi_1 (%(b)s, %(a)s)", {"a": 1, "b": "x"})


def test_statementWithoutParametersListIsPreparedAsItIs() -> None:
    """runQuery("SELECT '%%'") (no parameters: psycopg2 sends the text unchanged) is prepared unchanged."""
    plan = PreparedStatements(0).plan(("SELECT '%%'",), {})
    assert plan is not None
    assert plan.prepareSql == "PREPARE adbapi_1 AS SELECT '%%'"
    assert plan.executeArgs == ("EXECUTE adbapi_1", None)


# -- options ----------------------------------------------------------------------------------------


def test_badPrepareThresholdIsRefusedNamingTheArgument(postgresDSN: str) -> None:
    """A negative or non-int cp_prepare_threshold raises at the call, naming it."""
    with pytest.raises(ValueError, match="cp_prepare_threshold"):
        ConnectionPool("psycopg2", postgresDSN, cp_max=2, cp_prepare_threshold=-1, cp_reactor=Reactor())
    with pytest.raises(TypeError, match="cp_prepare_threshold"):
        ConnectionPool("psycopg2", postgresDSN, cp_max=2, cp_prepare_threshold="5", cp_reactor=Reactor())


def test_prepareThresholdWithoutLanesIsRefused(tmp_path: Any) -> None:
    """The option applies to psycopg2's lanes; a pool without them says so instead of ignoring it."""
    with pytest.raises(ValueError, match="cp_prepare_threshold applies to psycopg2's lanes"):
        ConnectionPool("sqlite3", str(tmp_path / "p.db"), cp_prepare_threshold=0, cp_reactor=Reactor())


# -- on the server ------------------------------------------------------------------------------------

_QUERIES: list[tuple[str, Any]] = [
    ("SELECT %s::int + 1", (41,)),
    ("SELECT %s, %s, %s", ("text", None, decimal.Decimal("1.25"))),
    ("SELECT %s * 2", (1.5,)),
    ("SELECT %s + 1", (2**40,)),
    ("SELECT %s::date + 1", (datetime.date(2026, 12, 6),)),
    ("SELECT %(n)s || '%%' || %(n)s", {"n": "a"}),
    ("SELECT g FROM generate_series(1, %s) AS g WHERE g > %s", (5, 2)),
    ("SELECT %s IS NULL", (None,)),
    ("SELECT '100%%', 'a%%b'", None),
]


def test_preparedLanesReturnTheSameRowsAsPlainText(postgresDSN: str) -> None:
    """Every query gives the same rows (values and Python types) prepared as in plain text."""

    async def body(reactor: Reactor) -> Any:
        plain = ConnectionPool("psycopg2", postgresDSN, cp_min=1, cp_max=2, cp_nonblocking=True,
                               cp_reactor=reactor)
        prepared = ConnectionPool("psycopg2", postgresDSN, cp_min=1, cp_max=2, cp_nonblocking=True,
                                  cp_prepare_threshold=0, cp_reactor=reactor)
        results = []
        for query, params in _QUERIES:
            args = (query,) if params is None else (query, params)
            expected = await plain.runQuery(*args)
            for _ in range(2):  # the first run prepares, the second only executes
                got = await prepared.runQuery(*args)
                results.append((query, expected, got))
        stats = prepared.statistics()
        await plain.close()
        await prepared.close()
        return results, stats

    results, stats = runReactor(body)
    assert stats.lanes > 0 and stats.workers == 0
    for query, expected, got in results:
        assert got == expected, query
        assert [type(v) for v in got[0]] == [type(v) for v in expected[0]], query


# The session's prepared statements but this query's own (prepared too, at threshold 0).
_PREPARED_HERE = (
    "SELECT name, generic_plans + custom_plans FROM pg_prepared_statements"
    " WHERE strpos(statement, 'pg_prepared_statements') = 0 ORDER BY name"
)


def test_frequentStatementIsPreparedOnTheServer(postgresDSN: str) -> None:
    """After the threshold the lane's session holds the statement and runs it from its plan."""

    async def body(reactor: Reactor) -> Any:
        # One lane: every call runs on the same session, so pg_prepared_statements is that session's.
        pool = ConnectionPool("psycopg2", postgresDSN, cp_min=1, cp_max=1, cp_nonblocking=True,
                              cp_prepare_threshold=2, cp_reactor=reactor)
        rows = [await pool.runQuery("SELECT %s::int * 10", (i,)) for i in range(5)]
        prepared = await pool.runQuery(_PREPARED_HERE)
        await pool.close()
        return rows, prepared

    rows, prepared = runReactor(body)
    assert [r[0][0] for r in rows] == [0, 10, 20, 30, 40]
    assert prepared == [("adbapi_1", 3)]  # runs 3, 4 and 5 came from the prepared statement


def test_statementTheServerCannotPrepareRunsAsPlainText(postgresDSN: str) -> None:
    """Two statements in one string cannot be prepared: it runs as psycopg2 would run it."""

    async def body(reactor: Reactor) -> Any:
        pool = ConnectionPool("psycopg2", postgresDSN, cp_min=1, cp_max=1, cp_nonblocking=True,
                              cp_prepare_threshold=0, cp_reactor=reactor)
        rows = [await pool.runQuery("SELECT %s; SELECT 2", (1,)) for _ in range(2)]
        rows += [await pool.runQuery("SELECT 1; SELECT 2") for _ in range(2)]
        prepared = await pool.runQuery(_PREPARED_HERE)
        await pool.close()
        return rows, prepared

    rows, prepared = runReactor(body)
    assert rows == [[(2,)]] * 4
    assert prepared == []


def test_statementDeallocatedBehindThePoolsBackIsPreparedAgain(postgresDSN: str) -> None:
    """A DEALLOCATE ALL run on the lane does not fail the next call: its statement is prepared again."""

    async def body(reactor: Reactor) -> Any:
        pool = ConnectionPool("psycopg2", postgresDSN, cp_min=1, cp_max=1, cp_nonblocking=True,
                              cp_prepare_threshold=0, cp_reactor=reactor)
        first = await pool.runQuery("SELECT %s::int", (1,))
        await pool.runOperation("DEALLOCATE ALL")
        second = await pool.runQuery("SELECT %s::int", (2,))
        prepared = await pool.runQuery(_PREPARED_HERE)
        await pool.close()
        return first, second, prepared

    first, second, prepared = runReactor(body)
    assert (first, second) == ([(1,)], [(2,)])
    [(name, runs)] = prepared
    assert name != "adbapi_1" and runs == 1  # prepared anew, under a new name


def test_errorInAPreparedStatementReachesTheCaller(postgresDSN: str) -> None:
    """A statement that fails when executed fails the call with the server's error, as in plain text."""
    import psycopg2

    async def body(reactor: Reactor) -> Any:
        pool = ConnectionPool("psycopg2", postgresDSN, cp_min=1, cp_max=1, cp_nonblocking=True,
                              cp_prepare_threshold=0, cp_reactor=reactor)
        try:
            with pytest.raises(psycopg2.errors.DivisionByZero):
                await pool.runQuery("SELECT 1 / %s", (0,))
            return await pool.runQuery("SELECT 1 / %s", (1,))
        finally:
            await pool.close()

    assert runReactor(body) == [(1,)]
