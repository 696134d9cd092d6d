"""What the single-statement fast path needs to know about a statement's text, without parsing SQL.

The fast path (``_drivers._Psycopg2Runner`` and the lanes) runs ``runQuery``
in autocommit mode: the server commits the statement as soon as it ran. Twisted
runs it inside BEGIN ... COMMIT and calls ``fetchall()`` before committing, so a
statement that returns no result set (``runQuery("INSERT ...")``) fails there
*and is rolled back*. To keep that, a ``runQuery`` statement that may return no
result set runs inside a transaction block instead, as in Twisted.

:func:`returnsRows` is conservative: it says True only when the statement's own
words guarantee a result set. A wrong False costs two round trips (the block's
BEGIN and COMMIT), never a different outcome.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["NO_ACTIVE_TRANSACTION", "queryText", "returnsRows"]

#: SQLSTATE no_active_sql_transaction: LOCK, SAVEPOINT, DECLARE ... refused outside a transaction block
#: (before doing anything), which Twisted's BEGIN would have opened.
NO_ACTIVE_TRANSACTION = "25P01"

# Whitespace, comments and opening parentheses before the first keyword.
_LEADING = re.compile(r"(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/|\()*", re.S)
_FIRST_WORD = re.compile(r"[A-Za-z]+")
# Statements that always produce a result set (possibly empty).
_ROWS = frozenset({"values", "table", "show", "explain", "fetch"})
_DML = frozenset({"insert", "update", "delete", "merge"})
_INTO = re.compile(r"\binto\b", re.I)
_DML_WORD = re.compile(r"\b(?:insert|update|delete|merge)\b", re.I)
_RETURNING = re.compile(r"\breturning\b", re.I)


def queryText(args: tuple[Any, ...], kw: Mapping[str, Any], conn: Any) -> str | None:
    """The statement of ``cursor.execute(*args, **kw)`` as text, or None when it cannot be read.

    ``psycopg2.sql``/``psycopg.sql`` compositions are rendered with ``conn``
    (no I/O); bytes are read as Latin-1, which keeps every ASCII keyword.
    """
    query = args[0] if args else kw.get("query", kw.get("operation", kw.get("sql")))
    if isinstance(query, str):
        return query
    if isinstance(query, bytes | bytearray):
        return bytes(query).decode("latin-1")
    render = getattr(query, "as_string", None)
    if render is not None:
        try:
            text = render(conn)
        except Exception:
            return None
        if isinstance(text, bytes):
            return text.decode("latin-1")
        return text if isinstance(text, str) else None
    return None


@functools.lru_cache(maxsize=512)
def returnsRows(sql: str) -> bool:
    """True when ``sql`` surely ends with a statement that returns a result set (so ``fetchall()`` works).

    ``SELECT`` (not ``SELECT ... INTO``), ``VALUES``, ``TABLE``, ``SHOW``,
    ``EXPLAIN``, ``FETCH``, ``INSERT/UPDATE/DELETE/MERGE ... RETURNING``, and
    ``WITH`` queries that modify nothing. A second
    statement in the string makes any of these words uncertain, so such strings
    usually come out False; so does a keyword inside a string literal.
    """
    start = _LEADING.match(sql)
    word = _FIRST_WORD.match(sql, start.end() if start else 0)
    if word is None or ";" in sql.rstrip().rstrip(";"):
        return False
    first = word.group().lower()
    if first in _ROWS:
        return True
    if first == "select":
        return _INTO.search(sql) is None
    if first in _DML:
        return _RETURNING.search(sql) is not None
    if first == "with":
        # A data-modifying WITH may end with a statement returning nothing; telling needs a parser.
        return _DML_WORD.search(sql) is None and _INTO.search(sql) is None
    return False
