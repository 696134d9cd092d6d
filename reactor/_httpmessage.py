"""The HTTP/1.1 server's message objects: request headers, whole responses, and the error a handler raises.

Kept apart from the connection logic (``reactor._httpserver``) so that they can be built and read
without a connection. Everything here is owned by the reactor thread, like the connection that made it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from email.utils import formatdate
from http import HTTPStatus

__all__ = ["HTTPError", "Headers", "Response", "checkReason", "statusLine"]


class HTTPError(Exception):
    """Raise from a handler (or errback with it) to answer ``status`` with ``message`` as a text body.

    The server also fails ``Request.read``/``Request.body`` with it: 413 past ``maxBodyBytes``,
    400 for a malformed body, 408 when the body stops arriving; a handler that lets it propagate
    answers the client with that status.
    """

    def __init__(self, status: int, message: str) -> None:
        if type(status) is not int or not 200 <= status <= 999:
            raise ValueError(f"status must be an int from 200 to 999, got {status!r}")
        if not isinstance(message, str):
            raise TypeError(f"message must be str, not {type(message).__name__}")
        super().__init__(status, message)
        self.status = status
        self.message = message

    def __str__(self) -> str:
        return f"{self.status} {self.message}"


class Headers:
    """The header fields of a request: a case-insensitive multi-map over the raw list, in order.

    Values are latin-1 decoded on access (HTTP header bytes are opaque; latin-1 maps each byte to
    one character, so nothing is lost). Names come back lower-cased.
    """

    __slots__ = ("_raw",)

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        # (lower-cased name, value) as the parser delivered them; shared with the request, never copied.
        self._raw = raw

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of ``name`` (any case), or ``default``."""
        key = name.lower().encode("latin-1")
        for k, v in self._raw:
            if k == key:
                return v.decode("latin-1")
        return default

    def getAll(self, name: str) -> list[str]:
        """Every value of ``name`` (any case), in order; [] if none."""
        key = name.lower().encode("latin-1")
        return [v.decode("latin-1") for k, v in self._raw if k == key]

    def items(self) -> list[tuple[str, str]]:
        """All fields as (lower-cased name, value), in order."""
        return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in self._raw]

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = name.lower().encode("latin-1")
        return any(k == key for k, _ in self._raw)

    def __len__(self) -> int:
        return len(self._raw)

    def __repr__(self) -> str:
        return f"Headers({self.items()!r})"


class Response:
    """A whole response: the server adds Content-Length (and Date, Server) and sends it in one write.

    ``headers`` are (name, value) text pairs, latin-1 encodable, without CR or LF (checked when
    sent: a ValueError naming the header). A Content-Length or Transfer-Encoding among them is
    ignored: the server frames the body itself. Except in the answer to a HEAD request: there a
    given Content-Length is kept (the length the GET would get, RFC 9110 9.3.2), and without one
    the length is the body's; the body itself is never sent. ``reason`` replaces the standard
    reason phrase of the status line (``Response(418, reason="Short and stout")``), checked here
    as :func:`checkReason` says.
    """

    __slots__ = ("body", "headers", "reason", "status")

    def __init__(
        self,
        status: int = 200,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        *,
        reason: str | None = None,
    ) -> None:
        if type(status) is not int or not 200 <= status <= 999:
            raise ValueError(f"status must be an int from 200 to 999, got {status!r}")
        if not isinstance(body, bytes):
            raise TypeError(f"body must be bytes, not {type(body).__name__}")
        if reason is not None:
            checkReason(reason)
        self.status = status
        self.headers = headers if type(headers) is list else list(headers)
        self.body = body
        self.reason = reason

    def __repr__(self) -> str:
        reason = "" if self.reason is None else f" {self.reason!r}"
        return f"<Response {self.status}{reason} {len(self.body)}B>"


def checkReason(reason: object) -> None:
    """Raise unless ``reason`` can be a status line's reason phrase: a latin-1 str without CR, LF or NUL.

    TypeError (not a str) or ValueError (a character that would split the status line, or one
    outside latin-1), naming ``reason``. An empty phrase is allowed (RFC 9112 4).
    """
    if type(reason) is not str:
        raise TypeError(f"reason must be a str, not {type(reason).__name__}")
    if "\r" in reason or "\n" in reason or "\0" in reason:
        raise ValueError(f"reason must not contain CR, LF or NUL: {reason!r}")
    if not reason.isascii():
        try:
            reason.encode("latin-1")
        except UnicodeEncodeError:
            raise ValueError(f"reason must be latin-1 text: {reason!r}") from None


_statusLines: dict[int | tuple[int, str], bytes] = {}


def statusLine(status: int, reason: str | None = None) -> bytes:
    """``b"HTTP/1.1 <status> <reason>\\r\\n"``: ``reason`` if given (checked by the caller, see
    :func:`checkReason`), else the phrase from http.HTTPStatus (empty if unknown). Cached: the
    common lines are made once."""
    key: int | tuple[int, str] = status if reason is None else (status, reason)
    line = _statusLines.get(key)
    if line is None:
        if reason is None:
            try:
                reason = HTTPStatus(status).phrase
            except ValueError:
                reason = ""
        line = f"HTTP/1.1 {status} {reason}\r\n".encode("latin-1")
        if len(_statusLines) < 1000:
            _statusLines[key] = line
    return line


class DateCache:
    """The ``Date`` header line, formatted once per second of wall-clock time (RFC 9110 5.6.7)."""

    __slots__ = ("_line", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._line = b""

    def line(self) -> bytes:
        """``b"date: <IMF-fixdate>\\r\\n"`` for the current second."""
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._line = f"date: {formatdate(now, usegmt=True)}\r\n".encode("ascii")
        return self._line
