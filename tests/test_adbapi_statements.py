"""adbapi._statements: which runQuery statements surely return a result set (the rest run in a block)."""

from __future__ import annotations

import pytest

from adbapi._statements import queryText, returnsRows


@pytest.mark.parametrize("sql", [
    "SELECT 1",
    "select id from t where id = %s for update",
    "  /* a comment */ (SELECT 1) UNION (SELECT 2)",
    "-- a comment\nSELECT 1",
    "SELECT 1;",
    "VALUES (1), (2)",
    "TABLE t",
    "SHOW search_path",
    "EXPLAIN ANALYZE DELETE FROM t",
    "INSERT INTO t (v) VALUES (%s) RETURNING id",
    "update t set v = 1 returning id",
    "WITH a AS (SELECT 1) SELECT * FROM a",
])
def test_statementsThatSurelyReturnRowsTakeTheFastPath(sql: str) -> None:
    """A statement whose own words guarantee a result set is recognised."""
    assert returnsRows(sql)


@pytest.mark.parametrize("sql", [
    "INSERT INTO t VALUES (1)",
    "UPDATE t SET v = 2",
    "DELETE FROM t",
    "SELECT 1 INTO new_table",
    "WITH a AS (DELETE FROM t RETURNING *) INSERT INTO log SELECT * FROM a",
    "SELECT 1; INSERT INTO t VALUES (1)",
    "BEGIN; SELECT 1",
    "CALL p()",
    "LOCK TABLE t",
    "",
    "   ",
])
def test_statementsThatMayReturnNoRowsDoNot(sql: str) -> None:
    """Anything else, including any multi-statement string, is not assumed to return rows."""
    assert not returnsRows(sql)


def test_queryTextReadsStrBytesAndKeywords() -> None:
    """The statement comes from the first argument or psycopg2's ``query`` keyword; bytes are decoded."""
    assert queryText(("SELECT 1",), {}, None) == "SELECT 1"
    assert queryText((b"SELECT 1",), {}, None) == "SELECT 1"
    assert queryText((), {"query": "SELECT 2"}, None) == "SELECT 2"
    assert queryText((object(),), {}, None) is None


def test_queryTextRendersAComposition() -> None:
    """A psycopg2.sql composition is rendered with the connection it will run on."""
    sql = pytest.importorskip("psycopg2.sql")

    class _Context:
        """Enough of a connection for SQL() and Identifier() to render."""

    composed = sql.SQL("SELECT {} FROM t").format(sql.SQL("id"))
    assert queryText((composed,), {}, _Context()) == "SELECT id FROM t"
