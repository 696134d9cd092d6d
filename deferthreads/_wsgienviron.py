"""The PEP 3333 side of a request: its ``environ``, ``wsgi.errors``, ``wsgi.file_wrapper``, and the checks
on what an application passes to ``start_response``.

Everything here is plain data work with no reactor and no thread of its own: the container calls it in the
worker thread that runs the application, so the reactor thread never pays for building an environ.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import IO, Any
from urllib.parse import unquote_to_bytes

__all__ = [
    "EnvironBuilder",
    "ErrorStream",
    "FileWrapper",
    "checkHeaders",
    "parseStatus",
    "pathInfo",
]

_log = logging.getLogger("deferthreads.wsgi")

#: Hop-by-hop headers (RFC 9110 7.6.1) are the server's business; PEP 3333 forbids applications to send them.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
# PEP 3333: a status is "NNN reason"; the reason may be empty but the space may not.
_STATUS = re.compile(r"([2-9][0-9]{2}) [^\r\n\x00]*\Z")
_BAD_VALUE = re.compile(r"[\r\n\x00]")


def parseStatus(status: object) -> int:
    """The integer code of a WSGI status line such as ``"200 OK"``.

    Raises ``TypeError`` (not a str) or ``ValueError`` (not three digits from 200, a space and a reason
    without CR, LF or NUL: an application cannot send a 1xx), naming the ``status`` of ``start_response``.
    """
    if type(status) is not str:
        raise TypeError(f"start_response: status must be a str such as '200 OK', not {type(status).__name__}")
    match = _STATUS.match(status)
    if match is None:
        raise ValueError(f"start_response: status must be 'NNN reason' (e.g. '200 OK'), got {status!r}")
    return int(match.group(1))


def checkHeaders(headers: object) -> list[tuple[str, str]]:
    """Check the ``response_headers`` argument of ``start_response``; return it as a list.

    Each item must be a ``(name, value)`` tuple of latin-1 ``str``; a name must be an HTTP token and not
    hop-by-hop, a value must not hold CR, LF or NUL (which would split the response). ``TypeError`` or
    ``ValueError`` otherwise, naming the header.
    """
    if type(headers) is not list:
        raise TypeError(f"start_response: response_headers must be a list, not {type(headers).__name__}")
    for item in headers:
        if type(item) is not tuple or len(item) != 2:
            raise TypeError(f"start_response: each response header must be a (name, value) tuple: {item!r}")
        name, value = item
        if type(name) is not str or type(value) is not str:
            raise TypeError(f"start_response: header name and value must be str, got {item!r}")
        if _TOKEN.match(name) is None:
            raise ValueError(f"start_response: header name {name!r} is not an HTTP token")
        if name.lower() in HOP_BY_HOP:
            raise ValueError(f"start_response: {name!r} is a hop-by-hop header, which PEP 3333 forbids")
        if _BAD_VALUE.search(value) is not None:
            raise ValueError(f"start_response: the value of header {name!r} holds CR, LF or NUL: {value!r}")
        try:
            value.encode("latin-1")
        except UnicodeEncodeError:
            raise ValueError(
                f"start_response: the value of header {name!r} is not latin-1 (encode it as PEP 3333 says): "
                f"{value!r}"
            ) from None
    return headers


def pathInfo(path: str) -> str:
    """``path`` (a request-target's path, percent-encoded, latin-1) percent-decoded into a latin-1 str.

    PEP 3333: the environ holds the bytes the client sent, each as one latin-1 character, so a UTF-8
    ``%C3%A9`` becomes ``'\\xc3\\xa9'`` (the application decodes it, as Flask and Django do).
    """
    if "%" not in path:
        return path
    return unquote_to_bytes(path.encode("latin-1")).decode("latin-1")


def _hostAndPort(address: Any) -> tuple[str, str]:
    host = getattr(address, "host", None)
    port = getattr(address, "port", None)
    if host is None or port is None:  # a Unix socket
        return "localhost", "0"
    return str(host), str(port)


def splitHost(value: str, defaultPort: str) -> tuple[str, str]:
    """``(name, port)`` of a ``Host`` header value (``name``, ``name:port``, ``[v6]`` or ``[v6]:port``)."""
    if value.startswith("["):
        end = value.find("]")
        if end > 0:
            rest = value[end + 1 :]
            return value[1:end], rest[1:] if rest.startswith(":") and rest[1:].isdigit() else defaultPort
        return value, defaultPort
    name, sep, port = value.rpartition(":")
    if sep and port.isdigit():
        return name, port
    return value, defaultPort


# Header name (lower case, as reactor.web's Headers.items() gives it) -> environ key; None: not passed.
# Bounded: names are client input, and a client sending ever new names must not grow it without end.
_KEYS: dict[str, str | None] = {"content-type": "CONTENT_TYPE", "content-length": "CONTENT_LENGTH"}
_KEYS_MAX = 1024


def _environKey(name: str) -> str | None:
    key = _KEYS.get(name, "")
    if key != "":
        return key
    # A name with "_" would come out like one with "-" (X_Forwarded_For / X-Forwarded-For): drop it, as
    # nginx and gunicorn do, so a client cannot pose as a header a proxy in front of us sets.
    key = None if "_" in name else "HTTP_" + name.upper().replace("-", "_")
    if len(_KEYS) < _KEYS_MAX:
        _KEYS[name] = key
    return key


class EnvironBuilder:
    """Builds each request's environ from a ``reactor.web.Request``; shared by every worker (immutable)."""

    def __init__(self, scriptName: str, fileWrapper: type[FileWrapper]) -> None:
        self.scriptName = scriptName
        self._base: dict[str, Any] = {
            "SCRIPT_NAME": scriptName,
            "wsgi.version": (1, 0),
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            "wsgi.input_terminated": True,
            "wsgi.file_wrapper": fileWrapper,
        }

    def build(
        self, request: Any, path: str, stream: Any, errors: ErrorStream, client: Any, host: Any, secure: bool
    ) -> dict[str, Any]:
        """The environ of ``request``, read-only use of its method, target and headers (any thread, once
        its head is in: they do not change after).

        ``path`` is PATH_INFO (already decoded and stripped of SCRIPT_NAME), ``stream`` is wsgi.input;
        ``client``/``host`` are the connection's addresses and ``secure`` its TLS flag, read by the caller
        in the reactor thread (the transport is the reactor thread's).
        """
        environ = self._base.copy()
        environ["REQUEST_METHOD"] = request.method
        environ["PATH_INFO"] = path
        environ["QUERY_STRING"] = request.query
        environ["SERVER_PROTOCOL"] = "HTTP/" + request.httpVersion
        environ["wsgi.url_scheme"] = "https" if secure else "http"
        environ["wsgi.input"] = stream
        environ["wsgi.errors"] = errors
        remote, remotePort = _hostAndPort(client)
        environ["REMOTE_ADDR"] = "" if remotePort == "0" else remote
        environ["REMOTE_PORT"] = remotePort
        for name, value in request.headers.items():
            key = _environKey(name)
            if key is None:
                continue
            if key in environ:
                # RFC 9110 5.3: repeated fields combine with commas; cookies with "; " (RFC 6265 5.4).
                environ[key] += ("; " if key == "HTTP_COOKIE" else ",") + value
            else:
                environ[key] = value
        serverName, serverPort = _hostAndPort(host)
        host = environ.get("HTTP_HOST")
        if host:
            serverName, serverPort = splitHost(host, "443" if secure else "80")
        environ["SERVER_NAME"] = serverName
        environ["SERVER_PORT"] = serverPort
        return environ


class ErrorStream:
    """``wsgi.errors``: a text stream whose lines are logged (logger ``deferthreads.wsgi``, level ERROR).

    One per request, used by the worker running its application. A partial line waits for its newline,
    ``flush()`` or the end of the request.
    """

    __slots__ = ("_partial",)

    def __init__(self) -> None:
        self._partial = ""

    def write(self, s: str) -> int:
        """Log each complete line of ``s``, keep the rest for the next write; ``TypeError`` on bytes."""
        if type(s) is not str:
            raise TypeError(f"wsgi.errors.write() takes a str, not {type(s).__name__}")
        text = self._partial + s
        lines = text.split("\n")
        self._partial = lines.pop()
        for line in lines:
            _log.error("wsgi.errors: %s", line)
        return len(s)

    def writelines(self, seq: Any) -> None:
        """``write`` each string of ``seq``."""
        for s in seq:
            self.write(s)

    def flush(self) -> None:
        """Log a pending partial line."""
        if self._partial:
            partial, self._partial = self._partial, ""
            _log.error("wsgi.errors: %s", partial)


class FileWrapper:
    """``wsgi.file_wrapper``: iterate a file-like object in blocks of ``blksize`` bytes; ``close`` closes it.

    The container reads it in the worker thread, so a file on a slow disk blocks a worker, never the reactor.
    """

    def __init__(self, filelike: IO[bytes], blksize: int = 65536) -> None:
        if not callable(getattr(filelike, "read", None)):
            raise TypeError(f"filelike must have a read() method, not {type(filelike).__name__}")
        if isinstance(blksize, bool) or not isinstance(blksize, int) or blksize < 1:
            raise ValueError(f"blksize must be an int >= 1, got {blksize!r}")
        self.filelike = filelike
        self.blksize = blksize

    def __iter__(self) -> Iterator[bytes]:
        read = self.filelike.read
        size = self.blksize
        while True:
            block = read(size)
            if not block:
                return
            yield block

    def close(self) -> None:
        """Close the file, if it has ``close``."""
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()
