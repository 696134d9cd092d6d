"""deferthreads.wsgi's parts without a server: wsgi.input, wsgi.errors, the file wrapper, the checks on
start_response's arguments, and the path and Host decoding of the environ."""

from __future__ import annotations

import io
import logging

import pytest

from deferthreads._wsgienviron import (
    ErrorStream,
    FileWrapper,
    checkHeaders,
    parseStatus,
    pathInfo,
    splitHost,
)
from deferthreads._wsgiinput import InputStream


def pieces(body: bytes, size: int) -> tuple[InputStream, list[int]]:
    """A stream over ``body`` fetched at most ``size`` bytes at a time, and the sizes it asked for."""
    source = io.BytesIO(body)
    asked: list[int] = []

    def fetch(n: int) -> bytes:
        asked.append(n)
        return source.read(min(n, size))

    return InputStream(b"", fetch, chunkSize=4), asked


def test_inputReadAllGathersEveryPiece() -> None:
    """read() with no size returns the whole body however it is fetched, then b''."""
    stream, _ = pieces(b"hello world", 3)
    assert stream.read() == b"hello world"
    assert stream.read() == b""
    assert stream.read(5) == b""


def test_inputReadSizeFetchesOnlyWhatIsNeeded() -> None:
    """read(n) asks the reactor for at most chunkSize bytes at a time and returns exactly n bytes."""
    stream, asked = pieces(b"abcdefghij", 100)
    assert stream.read(2) == b"ab"
    assert asked == [4]
    assert stream.read(5) == b"cdefg"
    assert stream.read(100) == b"hij"
    assert set(asked) == {4}


def test_inputReadlineSplitsAtNewlines() -> None:
    """readline() returns each line with its newline, the last one without, then b''."""
    stream, _ = pieces(b"one\ntwo\n\nthree", 2)
    assert [stream.readline() for _ in range(5)] == [b"one\n", b"two\n", b"\n", b"three", b""]


def test_inputReadlineSizeStopsEarly() -> None:
    """readline(n) returns at most n bytes of the line; the rest comes next."""
    stream, _ = pieces(b"abcdef\nxy", 3)
    assert stream.readline(4) == b"abcd"
    assert stream.readline(10) == b"ef\n"
    assert stream.readline(0) == b""
    assert stream.readline() == b"xy"


def test_inputReadlinesAndIteration() -> None:
    """readlines() and iteration give the same lines; readlines(hint) stops after hint bytes."""
    stream, _ = pieces(b"a\nbb\nccc\n", 1)
    assert list(stream) == [b"a\n", b"bb\n", b"ccc\n"]
    stream, _ = pieces(b"a\nbb\nccc\n", 5)
    assert stream.readlines() == [b"a\n", b"bb\n", b"ccc\n"]
    stream, _ = pieces(b"a\nbb\nccc\n", 5)
    assert stream.readlines(3) == [b"a\n", b"bb\n"]


def test_inputWithoutFetchIsTheInitialBytes() -> None:
    """A prefetched body is read from memory, with no fetch at all."""
    stream = InputStream(b"x=1&y=2")
    assert stream.read(3) == b"x=1"
    assert stream.read() == b"&y=2"
    assert InputStream().read() == b""


def test_inputErrorFromFetchReachesTheApplication() -> None:
    """An exception from fetch (the client went away) is raised by read."""

    def fetch(n: int) -> bytes:
        raise ConnectionError("gone")

    with pytest.raises(ConnectionError):
        InputStream(b"", fetch).read(10)


def test_inputRejectsANonIntegerSize() -> None:
    """read('3') is a TypeError naming the size."""
    with pytest.raises(TypeError, match="size"):
        InputStream(b"abc").read("3")  # type: ignore[arg-type]


def test_errorStreamLogsWholeLines(caplog: pytest.LogCaptureFixture) -> None:
    """wsgi.errors logs each complete line; flush() logs the partial rest."""
    errors = ErrorStream()
    with caplog.at_level(logging.ERROR, logger="deferthreads.wsgi"):
        errors.write("first\nsec")
        errors.writelines(["ond\n", "tail"])
        assert [r.getMessage() for r in caplog.records] == ["wsgi.errors: first", "wsgi.errors: second"]
        errors.flush()
    assert caplog.records[-1].getMessage() == "wsgi.errors: tail"


def test_errorStreamRejectsBytes() -> None:
    """Writing bytes to wsgi.errors is a TypeError (it is a text stream)."""
    with pytest.raises(TypeError, match="str"):
        ErrorStream().write(b"x")  # type: ignore[arg-type]


def test_fileWrapperReadsBlocksAndCloses() -> None:
    """FileWrapper yields blksize blocks and close() closes the file."""
    f = io.BytesIO(b"0123456789")
    wrapper = FileWrapper(f, 4)
    assert list(wrapper) == [b"0123", b"4567", b"89"]
    wrapper.close()
    assert f.closed


def test_fileWrapperRejectsBadArguments() -> None:
    """A non-file or a blksize below 1 is refused, naming the argument."""
    with pytest.raises(TypeError, match="filelike"):
        FileWrapper(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="blksize"):
        FileWrapper(io.BytesIO(), 0)


@pytest.mark.parametrize("status,code", [("200 OK", 200), ("404 Not Found", 404), ("599 ", 599)])
def test_statusParsed(status: str, code: int) -> None:
    """A PEP 3333 status line gives its code."""
    assert parseStatus(status) == code


@pytest.mark.parametrize("status", ["200", "200OK", "20 OK", "100 Continue", "200 OK\r\nX: y", 200])
def test_badStatusRefused(status: object) -> None:
    """A status without a reason separator, a 1xx, an injected line or a non-str is refused."""
    with pytest.raises((TypeError, ValueError), match="status"):
        parseStatus(status)


@pytest.mark.parametrize(
    "headers,match",
    [
        ((("a", "b"),), "list"),
        ([["a", "b"]], "tuple"),
        ([("a", 1)], "str"),
        ([("bad name", "x")], "token"),
        ([("Transfer-Encoding", "chunked")], "hop-by-hop"),
        ([("Connection", "close")], "hop-by-hop"),
        ([("X-A", "one\r\nX-B: two")], "CR, LF"),
        ([("X-A", "\u20ac")], "latin-1"),
    ],
)
def test_badHeadersRefused(headers: object, match: str) -> None:
    """Response headers that are not a list of str pairs, hop-by-hop, or that would split the response."""
    with pytest.raises((TypeError, ValueError), match=match):
        checkHeaders(headers)


def test_goodHeadersPass() -> None:
    """A list of latin-1 (name, value) tuples is returned unchanged."""
    headers = [("Content-Type", "text/plain"), ("X-Latin", "caf\u00e9")]
    assert checkHeaders(headers) is headers


@pytest.mark.parametrize(
    "raw,decoded",
    [
        ("/plain", "/plain"),
        ("/a%20b", "/a b"),
        ("/caf%C3%A9", "/caf\u00c3\u00a9"),
        ("/x%2Fy", "/x/y"),
        ("/caf\u00c3\u00a9", "/caf\u00c3\u00a9"),
    ],
)
def test_pathInfoIsPercentDecodedLatin1(raw: str, decoded: str) -> None:
    """PATH_INFO holds the decoded bytes, one latin-1 character each (PEP 3333)."""
    assert pathInfo(raw) == decoded


@pytest.mark.parametrize(
    "host,expected",
    [
        ("example.com", ("example.com", "80")),
        ("example.com:8080", ("example.com", "8080")),
        ("[::1]", ("::1", "80")),
        ("[::1]:9000", ("::1", "9000")),
        ("example.com:", ("example.com:", "80")),
    ],
)
def test_hostHeaderSplit(host: str, expected: tuple[str, str]) -> None:
    """SERVER_NAME and SERVER_PORT come from the Host header, the port defaulting by scheme."""
    assert splitHost(host, "80") == expected
