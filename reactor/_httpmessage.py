"""The HTTP/1.1 server's message objects: request headers, whole responses, and the error a handler raises.

Kept apart from the connection logic (``reactor._httpserver``) so that they can be built and read
without a connection. Everything here is owned by the reactor thread, like the connection that made it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from email.utils import formatdate
from http import HTTPStatus

__all__ = ["HTTPError", "Headers", "Response", "statusLine"]


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
    ignored: the server frames the body itself.
    """

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int = 200, headers: Iterable[tuple[str, str]] = (), body: bytes = b"") -> None:
        if type(status) is not int or not 200 <= status <= 999:
            raise ValueError(f"status must be an int from 200 to 999, got {status!r}")
        if not isinstance(body, bytes):
            raise TypeError(f"body must be bytes, not {type(body).__name__}")
        self.status = status
        self.headers = headers if type(headers) is list else list(headers)
        self.body = body

    def __repr__(self) -> str:
        return f"<Response {self.status} {len(self.body)}B>"


_statusLines: dict[int, str] = {}


def statusLine(status: int) -> str:
    """``"HTTP/1.1 <status> <reason>\\r\\n"`` (the reason phrase from http.HTTPStatus, empty if unknown)."""
    line = _statusLines.get(status)
    if line is None:
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = ""
        line = f"HTTP/1.1 {status} {reason}\r\n"
        if len(_statusLines) < 1000:
            _statusLines[status] = line
    return line


class DateCache:
    """The ``Date`` header line, formatted once per second of wall-clock time (RFC 9110 5.6.7)."""

    __slots__ = ("_line", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._line = ""

    def line(self) -> str:
        """``"date: <IMF-fixdate>\\r\\n"`` for the current second."""
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._line = f"date: {formatdate(now, usegmt=True)}\r\n"
        return self._line
