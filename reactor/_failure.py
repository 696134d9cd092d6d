"""``Failure``: an exception captured with its traceback, to travel down a Deferred chain.

A Failure is what an errback receives. It keeps the exception type, the
exception instance and the *traceback object* exactly as Python produced it, so
capturing one costs a ``sys.exc_info()`` call and three attribute stores.
Frames are turned into text only when someone asks (``getTraceback``,
``printTraceback``, ``frames``), which is usually never on the happy path.

Because the traceback object is kept, a Failure captured in a worker thread and
formatted later in the reactor thread still shows the worker's frames, where
the exception was raised.

Failures are plain values: any thread may create one; the Deferred that carries
it is what belongs to the reactor thread.
"""

from __future__ import annotations

import builtins
import io
import linecache
import sys
from types import TracebackType
from typing import IO, Any, NoReturn

__all__ = [
    "Failure",
    "NoCurrentExceptionError",
]

# One captured frame, as Twisted lays it out: (function name, file name, line
# number, locals items, globals items). We never capture variables, so the last
# two are always empty tuples.
_FrameInfo = tuple[str, str, int, tuple[Any, ...], tuple[Any, ...]]

_DETAILS = ("default", "brief", "verbose")

# Sets that must hold Failure and every subclass of it. The Deferred runner
# keeps one (with the Deferred types in it too) so that one ``type(result) in``
# test tells a plain value from a Failure or a Deferred.
_failureTypeSets: list[set[type]] = []


class NoCurrentExceptionError(Exception):
    """``Failure()`` (or ``Deferred.errback()``) was called with no argument outside an ``except`` block.

    With no exception given, a Failure captures the exception being handled; if
    none is being handled there is nothing to capture.
    """


def _qual(cls: type) -> str:
    """The fully qualified name of ``cls`` (``builtins.ValueError``, ``pkg.mod.Error``)."""
    return f"{cls.__module__}.{cls.__qualname__}"


def _safeStr(obj: object) -> str:
    """``str(obj)``, or a placeholder if its ``__str__`` raises (a log line must never fail)."""
    try:
        return str(obj)
    except BaseException:
        try:
            return f"<{type(obj).__qualname__} instance with a broken __str__>"
        except BaseException:  # pragma: no cover - a truly hostile object
            return "<unprintable object>"


class Failure(BaseException):
    """An exception with its type and traceback, captured now, formatted on demand.

    ``Failure()`` inside an ``except`` block captures the exception being
    handled; ``Failure(exc)`` wraps an exception instance (using its
    ``__traceback__`` if it was raised); ``Failure(exc, excType, tb)`` gives all
    three explicitly. Outside an ``except`` block ``Failure()`` raises
    :class:`NoCurrentExceptionError`; a non-exception argument raises ``TypeError``.
    ``captureVars`` is accepted for Twisted compatibility and ignored: local
    variables are never copied (the traceback object still references them).

    Attributes: ``type`` (the exception class), ``value`` (the instance), ``tb``
    (the traceback object, or ``None`` once :meth:`cleanFailure` ran or when the
    exception was never raised).

    Like Twisted's, this class derives from ``BaseException`` so a Failure can
    itself be raised; the Deferred callback runner recognises a raised Failure
    and passes it on unchanged.
    """

    # ``type``, ``value`` and ``tb`` are read on every errback; slots keep that cheap.
    __slots__ = ("_frames", "tb", "type", "value")

    type: builtins.type[BaseException]
    value: BaseException
    tb: TracebackType | None

    def __init__(
        self,
        exc_value: BaseException | None = None,
        exc_type: builtins.type[BaseException] | None = None,
        exc_tb: TracebackType | None = None,
        captureVars: bool = False,
    ) -> None:
        # Deliberately no BaseException.__init__ call: ``args`` is unused and the
        # constructor runs once per error on the hot path.
        self._frames: list[_FrameInfo] | None = None
        if exc_value is None:
            excType, excValue, tb = sys.exc_info()
            if excValue is None or excType is None:
                raise NoCurrentExceptionError(
                    "Failure() with no exc_value must be called while an exception is being "
                    "handled (inside an except block)"
                )
            if isinstance(excValue, Failure):
                self._copyFrom(excValue)
                return
            self.type = excType
            self.value = excValue
            self.tb = tb
            return
        if isinstance(exc_value, Failure):
            self._copyFrom(exc_value)
            return
        if not isinstance(exc_value, BaseException):
            raise TypeError(
                f"exc_value must be an exception instance (or None), not {type(exc_value).__name__}"
            )
        if exc_type is None:
            exc_type = type(exc_value)
        elif not (isinstance(exc_type, type) and issubclass(exc_type, BaseException)):
            raise TypeError(f"exc_type must be an exception class (or None), not {exc_type!r}")
        if exc_tb is not None and not isinstance(exc_tb, TracebackType):
            raise TypeError(f"exc_tb must be a traceback object (or None), not {type(exc_tb).__name__}")
        self.type = exc_type
        self.value = exc_value
        self.tb = exc_tb if exc_tb is not None else exc_value.__traceback__

    @classmethod
    def _fromException(cls, value: BaseException) -> Failure:
        """A Failure for ``value`` without argument checks (internal fast path)."""
        self = cls.__new__(cls)
        self._frames = None
        self.type = type(value)
        self.value = value
        self.tb = value.__traceback__
        return self

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for types in _failureTypeSets:
            types.add(cls)

    def _copyFrom(self, other: Failure) -> None:
        self._frames = other._frames
        self.type = other.type
        self.value = other.value
        self.tb = other.tb

    # -- inspecting ----------------------------------------------------------------------

    def check(
        self, *errorTypes: builtins.type[BaseException] | str
    ) -> builtins.type[BaseException] | str | None:
        """Return the first of ``errorTypes`` this failure's exception is an instance of, else ``None``.

        Each item is an exception class, or (as Twisted allows) the fully
        qualified name of one, such as ``"builtins.ValueError"``.
        """
        excType = self.type
        for error in errorTypes:
            if isinstance(error, str):
                if any(_qual(base) == error for base in excType.__mro__):
                    return error
            elif isinstance(error, type) and issubclass(excType, error):
                return error
        return None

    def trap(self, *errorTypes: builtins.type[BaseException] | str) -> builtins.type[BaseException] | str:
        """Return the matching type as :meth:`check` does; if none matches, re-raise the exception.

        The re-raise uses the original traceback (as Twisted does on Python 3),
        so in an errback an unmatched ``trap`` passes this same failure on to the
        next errback unchanged.
        """
        error = self.check(*errorTypes)
        if error is None:
            self.raiseException()
        return error

    def getErrorMessage(self) -> str:
        """The exception's message, ``str(value)`` (never raises)."""
        value = self.value
        if isinstance(value, Failure):
            return value.getErrorMessage()
        return _safeStr(value)

    def raiseException(self) -> NoReturn:
        """Raise the captured exception again, with its original traceback."""
        raise self.value.with_traceback(self.tb)

    def throwExceptionIntoGenerator(self, g: Any) -> Any:
        """Throw the captured exception into generator/coroutine ``g``; return what it yields next."""
        return g.throw(self.value.with_traceback(self.tb))

    def getTracebackObject(self) -> TracebackType | None:
        """The traceback object, or ``None`` if there is none (never raised, or cleaned)."""
        return self.tb

    @property
    def frames(self) -> list[_FrameInfo]:
        """The traceback as ``(function, filename, lineno, (), ())`` tuples, outermost first.

        Computed on first access (and kept by :meth:`cleanFailure`).
        """
        frames = self._frames
        if frames is None:
            frames = []
            tb = self.tb
            while tb is not None:
                code = tb.tb_frame.f_code
                frames.append((code.co_name, code.co_filename, tb.tb_lineno, (), ()))
                tb = tb.tb_next
            self._frames = frames
        return frames

    @frames.setter
    def frames(self, frames: list[_FrameInfo]) -> None:
        self._frames = frames

    @property
    def parents(self) -> list[str]:
        """Fully qualified names of the exception's class and its bases (Twisted's ``parents``)."""
        return [_qual(base) for base in self.type.__mro__]

    def cleanFailure(self) -> None:
        """Drop the traceback object (and the frames it keeps alive), keeping its text.

        Afterwards :meth:`getTraceback` still shows the same frames, but no
        frame, local variable or object they reference is kept alive.
        """
        _ = self.frames
        self.tb = None
        try:
            self.value.__traceback__ = None
        except (AttributeError, TypeError):  # pragma: no cover - exotic exception types
            pass

    # -- formatting ----------------------------------------------------------------------

    def printTraceback(
        self,
        file: IO[str] | None = None,
        elideFrameworkCode: int = 0,
        detail: str = "default",
    ) -> None:
        """Write the traceback, as Python would print it, to ``file`` (default: ``sys.stderr``).

        ``detail`` is ``"default"``, ``"brief"`` (one line per frame) or
        ``"verbose"`` (variables are never captured, so it says so).
        ``elideFrameworkCode`` is accepted for Twisted compatibility and ignored.
        """
        if detail not in _DETAILS:
            raise ValueError(f"detail must be one of {', '.join(_DETAILS)}, not {detail!r}")
        if file is None:
            file = sys.stderr
        w = file.write
        frames = self.frames
        if detail == "brief":
            header = "Traceback" if frames else "Traceback (failure with no frames)"
            w(f"{header}: {_safeStr(self.type)}: {_safeStr(self.value)}\n")
            for name, filename, lineno, _, _ in frames:
                w(f"{filename}:{lineno}:{name}\n")
        else:
            w("Traceback (most recent call last):\n")
            if not frames:
                w("Failure: ")
            for name, filename, lineno, _, _ in frames:
                if detail == "verbose":
                    w(f"{filename}:{lineno}: {name}(...)\n")
                    continue
                w(f'  File "{filename}", line {lineno}, in {name}\n')
                line = linecache.getline(filename, lineno).strip()
                if line:
                    w(f"    {line}\n")
            if detail == "verbose" and frames:
                w(" [Capture of Locals and Globals disabled]\n")
            w(f"{_qual(self.type)}: {_safeStr(self.value)}\n")
        if isinstance(self.value, Failure):
            w(" (chained Failure)\n")
            self.value.printTraceback(file, elideFrameworkCode, detail)

    def printBriefTraceback(self, file: IO[str] | None = None, elideFrameworkCode: int = 0) -> None:
        """:meth:`printTraceback` with ``detail="brief"``."""
        self.printTraceback(file, elideFrameworkCode, detail="brief")

    def printDetailedTraceback(self, file: IO[str] | None = None, elideFrameworkCode: int = 0) -> None:
        """:meth:`printTraceback` with ``detail="verbose"``."""
        self.printTraceback(file, elideFrameworkCode, detail="verbose")

    def getTraceback(self, elideFrameworkCode: int = 0, detail: str = "default") -> str:
        """The text :meth:`printTraceback` would write: the original frames, then ``type: message``."""
        out = io.StringIO()
        self.printTraceback(out, elideFrameworkCode, detail)
        return out.getvalue()

    def getBriefTraceback(self, elideFrameworkCode: int = 0) -> str:
        """:meth:`getTraceback` with ``detail="brief"``."""
        return self.getTraceback(elideFrameworkCode, detail="brief")

    def __repr__(self) -> str:
        return f"<{_qual(type(self))} {_qual(self.type)}: {self.getErrorMessage()}>"

    def __str__(self) -> str:
        return f"[Failure instance: {self.getBriefTraceback()}]"

    def __reduce__(self) -> tuple[Any, ...]:
        # BaseException's own reduce would call Failure() with no exception being
        # handled; pickle the type, value and formatted frames instead (no tb).
        return (_unpickleFailure, (self.type, self.value, self.frames))


def _unpickleFailure(
    excType: type[BaseException], value: BaseException, frames: list[_FrameInfo]
) -> Failure:
    failure = Failure.__new__(Failure)
    failure.type = excType
    failure.value = value
    failure.tb = None
    failure._frames = [tuple(frame) for frame in frames]  # type: ignore[misc]
    return failure
