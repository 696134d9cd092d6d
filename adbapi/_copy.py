"""COPY streamed through a pool's connection, with bounded memory both ways (psycopg2 and psycopg 3).

``copyIn(pool, table, rows)`` loads rows (an iterable, or an async iterable
produced in the reactor thread) with ``COPY table FROM STDIN``;
``copyOut(pool, query)`` streams ``COPY (query) TO STDOUT`` as rows or raw
chunks through ``async for``. Each runs on one pool connection with
``runWithConnection``, so it is one transaction: committed when the COPY ended,
rolled back otherwise, and the connection goes back to the pool usable.

Flow control:

- copyIn reads a plain iterable in the worker thread, as fast as the server
  takes it; an async iterable is pulled in the reactor thread ``_BATCH`` rows at
  a time, one batch ahead of the worker, so a slow producer is awaited and a
  fast one never has more than two batches in memory.
- copyIn hands the driver whole batches: on psycopg 3 psycopg's own C row
  formatter mapped over a batch into one buffer and one ``copy.write()``; on
  psycopg2 a batch of plain ints, floats and strs formatted in one go
  (:func:`_plainText`), any other batch value by value (:func:`_formatBatch`).
  No Python-level work per row where the values allow it.
- copyOut hands rows to the reactor in batches and lets at most ``maxBatches``
  of them wait for the consumer; when they do, the worker stops reading the
  socket, the server's send buffer fills and the server pauses.

Cancelling (``copyIn``'s Deferred, ``CopyOut.close()``) stops the worker at
the next batch: the COPY is aborted on the server (psycopg2 fails it from the
read; psycopg 3 sends CopyFail or cancels a COPY TO), the transaction rolls back.
Bad data ends the COPY with the server's own error (the driver's exception,
``InvalidTextRepresentation`` and the like, naming the line).

Threads: the public functions and ``CopyOut`` are used in the reactor thread;
``_Feed``, ``_Pipe`` and the row formatting run in the pool's worker that holds
the connection, and meet the reactor only through ``callFromThread`` and a
``threading.Condition``.
"""

from __future__ import annotations

import collections
import datetime
import decimal
import io
import itertools
import re
import sys
import threading
import uuid
from collections.abc import AsyncIterable, Iterable, Sequence
from typing import Any

from adbapi._listen import poolReactor, postgresKind
from reactor import CancelledError, Deferred, Failure

__all__ = ["CopyOut", "copyIn", "copyOut"]

# Rows per hand-off between the worker and the reactor thread.
_BATCH = 1000
# Bytes per chunk handed to psycopg2's copy_expert, and per raw chunk of copyOut.
_CHUNK = 1 << 16
DEFAULT_MAX_BATCHES = 4


class _Stop(Exception):
    """Raised inside the worker's COPY when the caller cancelled: aborts the COPY."""


def _quoteIdent(name: str, what: str) -> str:
    if not isinstance(name, str):
        raise TypeError(f"{what} must be a str, not {type(name).__name__}")
    if not name or "\x00" in name:
        raise ValueError(f"{what} must be a non-empty name without NUL characters")
    return '"' + name.replace('"', '""') + '"'


def _copyInSql(table: str, columns: Sequence[str] | None, schema: str | None, binary: bool
               ) -> tuple[str, str | None]:
    """The COPY statement, and for binary COPY a query whose description gives the columns' types."""
    target = _quoteIdent(table, "table")
    if schema is not None:
        target = _quoteIdent(schema, "schema") + "." + target
    names = "*"
    listed = ""
    if columns is not None:
        if isinstance(columns, (str, bytes)) or not isinstance(columns, Sequence):
            raise TypeError("columns must be a sequence of column names")
        if not columns:
            raise ValueError("columns must not be empty")
        names = ", ".join(_quoteIdent(c, "each column") for c in columns)
        listed = f" ({names})"
    if not binary:
        return f"COPY {target}{listed} FROM STDIN", None
    return f"COPY {target}{listed} FROM STDIN (FORMAT BINARY)", f"SELECT {names} FROM {target} LIMIT 0"


# -- COPY's text format, for psycopg2 (psycopg 3 formats rows itself, in C) ---------------------------

_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_SPECIAL = re.compile(r"[\\\t\n\r]").search
_UNESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\"}


def _formatValue(value: Any) -> str:
    if value is None:
        return "\\N"
    kind = type(value)
    if kind is str:
        return str(value).translate(_ESCAPES)
    if kind is int or kind is float or kind is decimal.Decimal:
        return str(value)
    if kind is bool:
        return "t" if value else "f"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "\\\\x" + bytes(value).hex()
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (uuid.UUID, decimal.Decimal, int, float)):
        return str(value)
    return str(value).translate(_ESCAPES)


def _unescape(field: str) -> str:
    out: list[str] = []
    i, n = 0, len(field)
    while i < n:
        ch = field[i]
        if ch == "\\" and i + 1 < n:
            nxt = field[i + 1]
            out.append(_UNESCAPES.get(nxt, nxt))
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _parseLine(line: str) -> tuple[str | None, ...]:
    fields = line[:-1].split("\t") if line.endswith("\n") else line.split("\t")
    if "\\" not in line:
        return tuple(fields)
    return tuple(None if f == "\\N" else (_unescape(f) if "\\" in f else f) for f in fields)


# -- copyIn -------------------------------------------------------------------------------------------


class _Feed:
    """Rows of an async iterable, pulled in the reactor thread a batch ahead of the worker writing them."""

    def __init__(self, reactor: Any, source: AsyncIterable[Sequence[Any]]) -> None:
        self.reactor = reactor
        self.iterator = source.__aiter__()
        self.cond = threading.Condition()
        self.ready: collections.deque[tuple[str, Any]] = collections.deque()  # under cond
        self.stopped = False  # under cond
        self.pulling: Deferred[Any] | None = None  # reactor thread: the batch being collected

    def start(self) -> None:
        """Reactor thread: fetch the first batch before the worker asks."""
        self._pull()

    def _pull(self) -> None:
        if self.pulling is not None:
            return
        d = self.pulling = Deferred.fromCoroutine(self._collect())
        d.addBoth(self._pulled)

    async def _collect(self) -> list[Sequence[Any]]:
        batch: list[Sequence[Any]] = []
        append = batch.append
        # async for (an iterator's __aiter__ is itself) costs half of an awaited __anext__() in a try per row;
        # break leaves the iterator where it is, for the next batch.
        async for row in self.iterator:
            append(row)
            if len(batch) >= _BATCH:
                break
        return batch

    def _pulled(self, outcome: Any) -> None:
        self.pulling = None
        with self.cond:
            if isinstance(outcome, Failure):
                self.ready.append(("error", outcome.value))
            else:
                self.ready.append(("rows", outcome))
            self.cond.notify_all()

    def stop(self) -> None:
        """Reactor thread: the COPY is cancelled; a producer being awaited is cancelled too."""
        with self.cond:
            self.stopped = True
            self.cond.notify_all()
        pulling = self.pulling
        if pulling is not None:
            pulling.cancel()

    def batches(self) -> Any:
        """Worker thread: the batches, in order; raises _Stop when cancelled."""
        while True:
            with self.cond:
                while not self.ready and not self.stopped:
                    self.cond.wait()
                if self.stopped:
                    raise _Stop()
                kind, value = self.ready.popleft()
            if kind == "error":
                raise value
            if not value:
                return
            self.reactor.callFromThread(self._pull)  # the next batch, while this one is written
            yield value


def _batchesOf(rows: Any, feed: _Feed | None, stop: threading.Event) -> Any:
    """Worker thread: the rows to write in lists of ``_BATCH``, checking for a cancel between lists."""
    if feed is not None:
        yield from feed.batches()
        return
    iterator = iter(rows)
    while True:
        batch = list(itertools.islice(iterator, _BATCH))
        if stop.is_set():
            raise _Stop()
        if not batch:
            return
        yield batch


# psycopg2's fast path (psycopg 3 formats with its own C code): the types whose COPY text is their str()
# (bool is excluded: type() is exact, so True is not an int here).
_PLAIN_TYPES = frozenset((int, float, str))
_ROW_TYPES = frozenset((tuple, list))


def _plainText(batch: list[Sequence[Any]]) -> str | None:
    """COPY text for ``batch`` when all its values are ints, floats and strs needing no escape, else None.

    psycopg2's fast path of copyIn (worker thread): the checks and the formatting
    run over the whole batch in C (``set(map(type, ...))``, ``%`` formatting of
    each row, ``str.count``), not value by value in Python. Its text is exactly
    what :func:`_formatBatch` would send. A str with a tab, newline, CR, backslash
    or NUL is found after the fact (more tabs or newlines than the rows' own, any
    other of them at all: numbers have none), and the batch is left to the
    value-by-value path, as are None, other types, rows of unequal lengths and
    rows that are neither tuples nor lists.
    """
    rowTypes = set(map(type, batch))
    if not batch or not rowTypes <= _ROW_TYPES:
        return None
    width = len(batch[0])
    if width == 0 or set(map(len, batch)) != {width} \
            or not set(map(type, itertools.chain.from_iterable(batch))) <= _PLAIN_TYPES:
        return None
    template = "\t".join(["%s"] * width)
    rows: Iterable[Any] = batch if rowTypes == {tuple} else map(tuple, batch)
    text = "\n".join(map(template.__mod__, rows)) + "\n"
    if text.count("\n") != len(batch) or text.count("\t") != (width - 1) * len(batch) \
            or "\\" in text or "\r" in text or "\x00" in text:
        return None
    return text


def _formatBatch(batch: list[Sequence[Any]]) -> str:
    """COPY text lines for ``batch`` (worker thread); the common types inline, the rest by _formatValue."""
    lines: list[str] = []
    line: list[str] = []
    special = _SPECIAL
    for row in batch:
        if isinstance(row, (str, bytes)) or not isinstance(row, (tuple, list, Sequence)):
            raise TypeError(f"each row must be a sequence of values, not {type(row).__name__}")
        line.clear()
        for v in row:
            kind = type(v)
            if kind is str:
                line.append(v.translate(_ESCAPES) if special(v) else v)
            elif kind is int or kind is float:
                line.append(repr(v))
            elif v is None:
                line.append("\\N")
            else:
                line.append(_formatValue(v))
        lines.append("\t".join(line))
    lines.append("")
    return "\n".join(lines)


class _Reader:
    """psycopg2's copy_expert source: COPY text from the batches, ``_CHUNK`` characters or so at a time."""

    def __init__(self, batches: Any) -> None:
        self.batches = batches
        self.count = 0

    def read(self, size: int = -1) -> str:
        parts: list[str] = []
        length = 0
        for batch in self.batches:
            text = _plainText(batch)
            if text is None:
                text = _formatBatch(batch)
            parts.append(text)
            length += len(text)
            self.count += len(batch)
            if length >= _CHUNK:
                break
        return "".join(parts)

    def readline(self, size: int = -1) -> str:
        return self.read(size)


# The framing of COPY's binary format (PostgreSQL's documentation, "Binary Format"): the signature, a flags
# word and a header-extension length (both 0) before the first row; a field count of -1 after the last.
_BINARY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
_BINARY_TRAILER = b"\xff\xff"


def _psycopgRowFormatter(copy: Any) -> tuple[Any, bytes, bytes] | None:
    """psycopg 3's C function formatting one row as ``copy.write_row`` does, with the framing to send
    before the first row and after the last; None when it cannot be found (then: ``write_row``).

    The function is not public API (``format_row_text``/``format_row_binary`` of
    ``psycopg._copy_base`` since 3.2, of ``psycopg.copy`` in 3.1), hence the look-up.
    """
    import psycopg.pq

    formatter = getattr(copy, "formatter", None)
    if formatter is None or getattr(formatter, "transformer", None) is None:
        return None
    kind = getattr(formatter, "format", None)
    if kind is psycopg.pq.Format.TEXT:
        name, header, trailer = "format_row_text", b"", b""
    elif kind is psycopg.pq.Format.BINARY:
        name, header, trailer = "format_row_binary", _BINARY_HEADER, _BINARY_TRAILER
    else:
        return None
    for module in ("psycopg._copy_base", "psycopg.copy"):
        function = getattr(sys.modules.get(module), name, None)
        if callable(function):
            return function, header, trailer
    return None


def _copyInWorker(conn: Any, kind: str, sql: str, typesQuery: str | None, rows: Any, feed: _Feed | None,
                  stop: threading.Event) -> int:
    cursor = conn.cursor()
    batches = _batchesOf(rows, feed, stop)
    try:
        if kind == "psycopg":
            types = None
            if typesQuery is not None:
                # Binary COPY sends each value in its column's own format: psycopg must know the types.
                cursor.execute(typesQuery)
                types = [column.type_code for column in cursor.description]
            count = 0
            with cursor.copy(sql) as copy:
                if types is not None:
                    copy.set_types(types)
                formatter = _psycopgRowFormatter(copy)
                if formatter is not None:
                    # psycopg's own C formatter (its adapters, its errors: what write_row does) over a whole
                    # batch into one buffer, one copy.write() per batch: no Python frame per row. write()
                    # sends bytes as they are, so the binary format's framing is ours to add.
                    formatRow, header, trailer = formatter
                    transformer = copy.formatter.transformer
                    buffer = bytearray(header)
                    for batch in batches:
                        collections.deque(map(formatRow, batch, itertools.repeat(transformer),
                                              itertools.repeat(buffer)), maxlen=0)
                        copy.write(buffer)
                        buffer = bytearray()
                        count += len(batch)
                    if trailer:
                        copy.write(header + trailer if count == 0 else trailer)
                else:
                    write = copy.write_row
                    for batch in batches:
                        for row in batch:
                            write(row)
                        count += len(batch)
            return count
        reader = _Reader(batches)
        try:
            cursor.copy_expert(sql, reader, size=_CHUNK)
        except Exception:
            if stop.is_set():
                raise _Stop() from None
            raise
        return reader.count
    finally:
        cursor.close()


def copyIn(pool: Any, table: str, rows: Iterable[Sequence[Any]] | AsyncIterable[Sequence[Any]], *,
           columns: Sequence[str] | None = None, schema: str | None = None, binary: bool = False
           ) -> Deferred[int]:
    """``COPY table (columns) FROM STDIN`` with ``rows``; fires (reactor thread) with the number of rows.

    ``rows`` is an iterable of sequences (read in the pool's worker thread) or an
    async iterable of them (read in the reactor thread, a batch ahead). Values go
    in COPY's text format: None is NULL, and psycopg 3 adapts them as its
    parameters. ``table``, ``schema`` and ``columns`` are quoted identifiers
    (their exact spelling). ``binary=True`` (psycopg 3 only) sends COPY's
    binary format, about twice as fast, but each value must then be of its
    column's Python type (an int for an integer column, not the string "5").
    One transaction: all rows or none. Bad data fails
    the Deferred with the server's error; cancelling it aborts the COPY on the
    server (rolled back, the connection goes back to the pool) and fails it
    with CancelledError.

    :raises TypeError, ValueError: bad ``table``/``schema``/``columns``/``rows``.
    :raises NotImplementedError: the pool is not on PostgreSQL.
    """
    kind = postgresKind(pool, "COPY")
    if binary and kind != "psycopg":
        raise ValueError("binary=True needs psycopg 3 (psycopg2 has no binary COPY writer)")
    sql, typesQuery = _copyInSql(table, columns, schema, bool(binary))
    if isinstance(rows, (str, bytes)) or not isinstance(rows, (Iterable, AsyncIterable)):
        raise TypeError(f"rows must be an iterable or an async iterable of rows, not {type(rows).__name__}")
    reactor = poolReactor(pool)
    stop = threading.Event()
    feed = _Feed(reactor, rows) if isinstance(rows, AsyncIterable) else None
    inner: Deferred[int] = pool.runWithConnection(_copyInWorker, kind, sql, typesQuery, rows, feed, stop)

    def cancel(d: Deferred[int]) -> None:
        stop.set()
        if feed is not None:
            feed.stop()
        inner.cancel()

    outer: Deferred[int] = Deferred(cancel)

    def relay(result: Any) -> None:
        if outer.called:
            return None  # cancelled: the COPY's own end (a _Stop or CancelledError) is not news
        if isinstance(result, Failure) and result.check(_Stop):
            outer.errback(CancelledError("the COPY was cancelled"))
        elif isinstance(result, Failure):
            outer.errback(result)
        else:
            outer.callback(result)
        return None

    inner.addBoth(relay)
    if feed is not None:
        feed.start()
    return outer


# -- copyOut ------------------------------------------------------------------------------------------


class _Writer(io.TextIOBase):
    """psycopg2's copy_expert sink: each row's text line, parsed or kept raw, batched to the pipe (worker)."""

    def __init__(self, pipe: _Pipe, raw: bool, cancel: Any) -> None:
        self.pipe = pipe
        self.raw = raw
        self.cancel = cancel  # the connection's cancel(), sent once when the consumer stopped
        self.cancelled = False
        self.batch: list[Any] = []
        self.size = 0

    def write(self, data: str) -> int:  # type: ignore[override]
        if self.cancelled:
            return len(data)  # the server was asked to stop: what is still in flight is dropped
        if self.raw:
            chunk = data.encode()
            self.batch.append(chunk)
            self.size += len(chunk)
            full = self.size >= _CHUNK
        else:
            self.batch.append(_parseLine(data))
            full = len(self.batch) >= _BATCH
        if full:
            self.flushBatch()
        return len(data)

    def flushBatch(self) -> None:
        if not self.batch:
            return
        batch = [b"".join(self.batch)] if self.raw else self.batch
        self.batch, self.size = [], 0
        try:
            self.pipe.push(batch)
        except _Stop:
            # psycopg2 cannot abandon a COPY TO from inside write(): ask the server to end it instead.
            self.cancelled = True
            self.cancel()


class _Pipe:
    """Batches from the worker to the reactor, at most ``maxBatches`` waiting for the consumer."""

    def __init__(self, reactor: Any, deliver: Any, maxBatches: int) -> None:
        self.reactor = reactor
        self.deliver = deliver
        self.room = threading.Semaphore(maxBatches)
        self.stopped = False  # set by the reactor, read by the worker (a plain flag: set once)
        self.sent = 0  # worker thread

    def push(self, batch: list[Any]) -> None:
        self.room.acquire()
        if self.stopped:
            raise _Stop()
        self.sent += 1
        self.reactor.callFromThread(self.deliver, batch)

    def stop(self) -> None:
        self.stopped = True
        self.room.release()  # a worker waiting for room wakes up to see it


def _copyOutWorker(conn: Any, kind: str, sql: Any, params: Any, raw: bool, pipe: _Pipe) -> int:
    cursor = conn.cursor()
    try:
        if kind == "psycopg":
            with cursor.copy(sql, params) as copy:
                batch: list[Any] = []
                if raw:
                    size = 0
                    for data in copy:
                        batch.append(bytes(data))
                        size += len(data)
                        if size >= _CHUNK:
                            pipe.push([b"".join(batch)])
                            batch, size = [], 0
                    if batch:
                        pipe.push([b"".join(batch)])
                else:
                    for row in copy.rows():
                        batch.append(row)
                        if len(batch) >= _BATCH:
                            pipe.push(batch)
                            batch = []
                    if batch:
                        pipe.push(batch)
            return pipe.sent
        if params is not None:
            sql = cursor.mogrify(sql, params)  # bytes in the connection's encoding, as copy_expert takes
        writer = _Writer(pipe, raw, conn.cancel)
        try:
            cursor.copy_expert(sql, writer, size=_CHUNK)
        except Exception:
            if writer.cancelled:
                raise _Stop() from None
            raise
        if writer.cancelled:
            raise _Stop()
        writer.flushBatch()
        if writer.cancelled:
            raise _Stop()
        return pipe.sent
    finally:
        cursor.close()


class CopyOut:
    """The rows (or raw chunks) of a ``COPY ... TO STDOUT``, for ``async for`` in the reactor thread.

    Rows are tuples of str (PostgreSQL's text output of each value) with None for
    NULL; with ``raw=True`` the items are bytes chunks of COPY's text format. The
    COPY runs in a pool worker; when the consumer falls ``maxBatches`` batches
    behind, the worker stops reading and the server pauses. A server error is
    raised from the iteration. Leaving early: :meth:`close` (or ``async with``),
    which aborts the COPY on the server.
    """

    def __init__(self, pool: Any, kind: str, sql: str, params: Any, raw: bool, maxBatches: int) -> None:
        self._reactor = poolReactor(pool)
        self._pipe = _Pipe(self._reactor, self._deliver, maxBatches)
        self._batches: collections.deque[list[Any]] = collections.deque()
        self._current: collections.deque[Any] = collections.deque()
        self._received = 0
        self._waiter: Deferred[None] | None = None
        self._outcome: Failure | int | None = None  # the worker's end: batches sent, or its failure
        self._closing = False
        self._finished: Deferred[None] = Deferred()  # fires when the connection went back to the pool
        self.rowsRead = 0
        self._done: Deferred[int] = pool.runWithConnection(_copyOutWorker, kind, sql, params, raw, self._pipe)
        # A stream nobody reads to its end would hold its worker (and the pool's close) until the shutdown
        # deadline: the reactor's shutdown closes it first.
        self._shutdownID: Any = self._reactor.addSystemEventTrigger("before", "shutdown", self._shutdown)
        self._done.addBoth(self._ended)

    def __repr__(self) -> str:
        state = "closed" if self._closing else "done" if self._outcome is not None else "running"
        return f"<adbapi CopyOut {state} read={self.rowsRead} waiting={len(self._batches)}>"

    # reactor thread: from the worker

    def _deliver(self, batch: list[Any]) -> None:
        self._received += 1
        if self._closing:
            self._pipe.room.release()
            return
        self._batches.append(batch)
        self._wake()

    def _ended(self, result: Any) -> None:
        if isinstance(result, Failure):
            if self._closing:
                result = 0  # stopped on request: how the COPY ended (QueryCanceled, _Stop) is no news
            self._outcome = result
        else:
            self._outcome = int(result)
        if self._shutdownID is not None:
            try:
                self._reactor.removeSystemEventTrigger(self._shutdownID)
            except (ValueError, KeyError, TypeError):
                pass
            self._shutdownID = None
        if not self._finished.called:
            self._finished.callback(None)
        self._wake()

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None:
            waiter.callback(None)

    # the consumer

    def __aiter__(self) -> CopyOut:
        return self

    async def __anext__(self) -> Any:
        while True:
            if self._current:
                self.rowsRead += 1
                return self._current.popleft()
            if self._batches:
                self._current = collections.deque(self._batches.popleft())
                self._pipe.room.release()
                continue
            outcome = self._outcome
            if self._closing:
                raise StopAsyncIteration
            if outcome is not None and (isinstance(outcome, Failure) or self._received >= outcome):
                if isinstance(outcome, Failure):
                    self._closing = True
                    outcome.raiseException()
                raise StopAsyncIteration
            self._waiter = Deferred()
            await self._waiter

    def _shutdown(self) -> Deferred[None]:
        self._shutdownID = None  # it has run: not to be removed
        return self.close()

    def close(self) -> Deferred[None]:
        """Stop early (reactor thread): the COPY is aborted on the server and rolled back; fires once the
        connection is back in the pool. Rows not yet read are dropped. Harmless after the end."""
        if not self._closing:
            self._closing = True
            self._batches.clear()
            self._current.clear()
            self._pipe.stop()
            self._wake()
        d: Deferred[None] = Deferred()
        if self._finished.called:
            d.callback(None)
        else:
            self._finished.addBoth(lambda _: d.callback(None))
        return d

    async def __aenter__(self) -> CopyOut:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def copyOut(pool: Any, query: str, params: Any = None, *, raw: bool = False,
            maxBatches: int = DEFAULT_MAX_BATCHES) -> CopyOut:
    """Stream ``COPY (query) TO STDOUT`` (reactor thread): a :class:`CopyOut` to iterate with ``async for``.

    ``params`` fills the query's ``%s`` placeholders (the driver quotes). At
    most ``maxBatches`` batches of ``_BATCH`` rows (or 64 KiB chunks when
    ``raw``) wait for the consumer.

    :raises TypeError, ValueError: a bad ``query`` or ``maxBatches``.
    :raises NotImplementedError: the pool is not on PostgreSQL.
    """
    kind = postgresKind(pool, "COPY")
    if not isinstance(query, str) or not query.strip():
        raise TypeError("query must be a non-empty str (a SELECT, or a table name in a TABLE statement)")
    if isinstance(maxBatches, bool) or not isinstance(maxBatches, int) or maxBatches < 1:
        raise ValueError(f"maxBatches must be a positive int, not {maxBatches!r}")
    return CopyOut(pool, kind, f"COPY ({query}) TO STDOUT", params, bool(raw), maxBatches)
