"""``wsgi.input``: the request body as a blocking binary stream for the worker running the application.

The stream pulls the body from the reactor in pieces of at most ``chunkSize`` bytes through a ``fetch``
function (which blocks the worker until the reactor has the next piece), so what it holds is bounded by
one piece plus the line the application is reading; the HTTP server pauses the client's transport while
unread body bytes pile up, so a slow application never makes the body pile up in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

__all__ = ["InputStream"]

#: Bytes asked of the reactor at a time (and so held by the stream beyond what the application asked for).
DEFAULT_CHUNK = 65536


class InputStream:
    """A PEP 3333 input stream: ``read``, ``readline``, ``readlines`` and iteration; ``b""`` at the end.

    ``fetch(n)`` returns the next 1..n body bytes, ``b""`` at the end, or raises (the client went away: the
    application sees that exception). ``initial`` is body already at hand (all of it when ``fetch`` is
    None). One worker thread uses a stream; nothing here is shared.
    """

    __slots__ = ("_buffer", "_chunk", "_eof", "_fetch")

    def __init__(
        self,
        initial: bytes = b"",
        fetch: Callable[[int], bytes] | None = None,
        chunkSize: int = DEFAULT_CHUNK,
    ) -> None:
        self._buffer = bytearray(initial)
        self._fetch = fetch
        self._eof = fetch is None
        self._chunk = chunkSize

    def _more(self) -> bool:
        # Append the next piece of the body; False at its end.
        if self._eof:
            return False
        assert self._fetch is not None
        data = self._fetch(self._chunk)
        if not data:
            self._eof = True
            self._fetch = None
            return False
        self._buffer += data
        return True

    def _take(self, n: int) -> bytes:
        data = bytes(self._buffer[:n])
        del self._buffer[:n]
        return data

    @staticmethod
    def _size(size: int | None, method: str) -> int:
        if size is None:
            return -1
        if isinstance(size, bool) or not isinstance(size, int):
            raise TypeError(f"wsgi.input.{method}(): size must be an int or None, not {type(size).__name__}")
        return size

    def read(self, size: int | None = -1) -> bytes:
        """At most ``size`` bytes (all that is left when ``size`` is negative or None); ``b""`` at the end."""
        size = self._size(size, "read")
        if size < 0:
            while self._more():
                pass
            return self._take(len(self._buffer))
        while len(self._buffer) < size and self._more():
            pass
        return self._take(size)

    def readline(self, size: int | None = -1) -> bytes:
        """The next line, with its ``b"\\n"``, or at most ``size`` bytes of it; ``b""`` at the end."""
        size = self._size(size, "readline")
        searched = 0
        while True:
            newline = self._buffer.find(b"\n", searched)
            if newline >= 0:
                end = newline + 1
                break
            if 0 <= size <= len(self._buffer):
                end = size
                break
            searched = len(self._buffer)
            if not self._more():
                end = len(self._buffer)
                break
        if 0 <= size < end:
            end = size
        return self._take(end)

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        """The remaining lines; with a positive ``hint``, stop once that many bytes were read."""
        hint = self._size(hint, "readlines")
        lines: list[bytes] = []
        total = 0
        while True:
            line = self.readline()
            if not line:
                return lines
            lines.append(line)
            total += len(line)
            if 0 < hint <= total:
                return lines

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line
