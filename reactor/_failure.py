"""``Failure``: an exception captured with its traceback, to travel down a Deferred chain.

A Failure is what an errback receives. It keeps the exception type, the
exception instance and the *traceback object* exactly as Python produced it, so
capturing one costs a ``sys.exc_info()`` call and three attribute stores.
Frames are turned into text only when someone asks (``getTraceback``,
``printTraceback``, ``frames``), which is usually never on the happy path.
Everything else Twisted's Failure carries (``count``, ``captureVars``,
``pickled``, ``parents``) is a class-level default until it is asked for or
set, so it costs nothing on that path either.

Because the traceback object is kept, a Failure captured in a worker thread and
formatted later in the reactor thread still shows the worker's frames, where
the exception was raised.

Failures are plain values: any thread may create one; the Deferred that carries
it is what belongs to the reactor thread.
"""

from __future__ import annotations

import builtins
import io
import itertools
import linecache
import sys
from collections.abc import Callable, Iterable, Sequence
from types import FrameType, TracebackType
from typing import IO, Any, NoReturn

__all__ = [
    "Failure",
    "NoCurrentExceptionError",
    "format_frames",
]

# Captured variables of one frame: (name, value) pairs, or (name, repr) pairs
# once the failure was cleaned or pickled.
_Variables = Sequence[tuple[str, Any]]

# One captured frame, as Twisted lays it out: (function name, file name, line
# number, locals items, globals items). The variables are empty unless the
# Failure was made with ``captureVars=True``.
_FrameInfo = tuple[str, str, int, _Variables, _Variables]

# ``printTraceback`` takes the first three; ``format_frames`` all four (the
# last is what "verbose" becomes when no variables were captured).
_DETAILS = ("default", "brief", "verbose", "verbose-vars-not-captured")

# Sets that must hold Failure and every subclass of it. The Deferred runner
# keeps one (with the Deferred types in it too) so that one ``type(result) in``
# test tells a plain value from a Failure or a Deferred.
_failureTypeSets: list[set[type]] = []

# Numbers for ``Failure.count``, handed out when a failure's number is first
# read (its verbose traceback, a pickle), not when it is made: numbering every
# failure would cost each one a counter step on the errback hot path. Shared
# by every thread; ``next`` on it is atomic under the GIL.
_failureNumbers = itertools.count(1)


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


def _safeRepr(obj: object) -> str:
    """``repr(obj)``, or a placeholder if its ``__repr__`` raises."""
    try:
        return repr(obj)
    except BaseException:
        try:
            return f"<{type(obj).__qualname__} instance with a broken __repr__>"
        except BaseException:  # pragma: no cover - a truly hostile object
            return "<unrepresentable object>"


def format_frames(
    frames: Iterable[Sequence[Any]], write: Callable[[str], object], detail: str = "default"
) -> None:
    """Write ``frames`` (``Failure.frames`` tuples) through ``write``, one call per line or part.

    ``detail`` is ``"default"`` (``File "f", line n, in name`` and the source
    line), ``"brief"`` (``f:n:name``), ``"verbose"`` (``f:n: name(...)`` and
    each frame's captured locals and globals) or ``"verbose-vars-not-captured"``
    (the verbose frame lines, then a note that no variables were captured).
    Anything else raises ``ValueError`` before anything is written.
    """
    if detail not in _DETAILS:
        raise ValueError(f"detail must be one of {', '.join(_DETAILS)}, not {detail!r}")
    if detail == "brief":
        for name, filename, lineno, _, _ in frames:
            write(f"{filename}:{lineno}:{name}\n")
    elif detail == "default":
        for name, filename, lineno, _, _ in frames:
            write(f'  File "{filename}", line {lineno}, in {name}\n')
            write(f"    {linecache.getline(filename, lineno).strip()}\n")
    elif detail == "verbose":
        for name, filename, lineno, localVars, globalVars in frames:
            write(f"{filename}:{lineno}: {name}(...)\n")
            write(" [ Locals ]\n")
            for varName, value in localVars:
                write(f"  {varName} : {_safeRepr(value)}\n")
            write(" ( Globals )\n")
            for varName, value in globalVars:
                write(f"  {varName} : {_safeRepr(value)}\n")
    else:
        for name, filename, lineno, _, _ in frames:
            write(f"{filename}:{lineno}: {name}(...)\n")
        write(" [Capture of Locals and Globals disabled (use captureVars=True)]\n")


def _frameVariables(frame: FrameType) -> tuple[list[tuple[str, Any]], list[tuple[str, Any]]]:
    """Copies of ``frame``'s locals and globals as item lists, without ``__builtins__``.

    A module-level frame's locals are its globals; they are listed once, as locals.
    """
    localVars = dict(frame.f_locals)
    globalVars = {} if frame.f_locals is frame.f_globals else dict(frame.f_globals)
    localVars.pop("__builtins__", None)
    globalVars.pop("__builtins__", None)
    return list(localVars.items()), list(globalVars.items())


def _framesOf(tb: TracebackType | None, captureVars: bool) -> list[_FrameInfo]:
    """The frames of ``tb``, outermost first, with copies of their variables if ``captureVars``."""
    frames: list[_FrameInfo] = []
    while tb is not None:
        frame = tb.tb_frame
        code = frame.f_code
        if captureVars:
            localVars, globalVars = _frameVariables(frame)
            frames.append((code.co_name, code.co_filename, tb.tb_lineno, localVars, globalVars))
        else:
            frames.append((code.co_name, code.co_filename, tb.tb_lineno, (), ()))
        tb = tb.tb_next
    return frames


def _reprVariables(variables: _Variables) -> list[tuple[str, str]]:
    """``variables`` with each value replaced by its repr (so nothing is kept alive)."""
    return [(name, _safeRepr(value)) for name, value in variables]


# -- tracebacks rebuilt from saved frames ------------------------------------------------
#
# After cleanFailure() or unpickling there is no traceback object left, only the
# frame tuples. getTracebackObject() then rebuilds a chain of look-alike
# traceback, frame and code objects carrying exactly what the traceback module
# (extract_tb, format_tb, print_tb, walk_tb, extract_stack) reads, so tools
# written for real tracebacks keep working.


class _SavedCode:
    """A stand-in for a code object: the function's name and file, every other field empty."""

    def __init__(self, name: str, filename: str) -> None:
        self.co_name = name
        self.co_qualname = name
        self.co_filename = filename
        self.co_firstlineno = 0
        self.co_argcount = 0
        self.co_posonlyargcount = 0
        self.co_kwonlyargcount = 0
        self.co_nlocals = 0
        self.co_stacksize = 0
        self.co_flags = 0
        self.co_code = b""
        self.co_lnotab = b""
        self.co_consts: tuple[Any, ...] = ()
        self.co_names: tuple[str, ...] = ()
        self.co_varnames: tuple[str, ...] = ()
        self.co_cellvars: tuple[str, ...] = ()
        self.co_freevars: tuple[str, ...] = ()

    def co_positions(self) -> tuple[tuple[None, None, None, None], ...]:
        """One instruction with no known position (the traceback module then uses the line number alone)."""
        return ((None, None, None, None),)


class _SavedFrame:
    """A stand-in for a frame object, linked through ``f_back`` to the one that called it."""

    def __init__(self, frame: Sequence[Any], back: _SavedFrame | None) -> None:
        name, filename, lineno, localVars, globalVars = frame
        self.f_code = _SavedCode(name, filename)
        self.f_lineno: int = lineno
        self.f_lasti = 0
        self.f_locals: dict[str, Any] = dict(localVars or ())
        self.f_globals: dict[str, Any] = dict(globalVars or ())
        self.f_builtins: dict[str, Any] = dict(vars(builtins))
        self.f_back = back
        self.f_trace = None


class _SavedTraceback:
    """A stand-in for a traceback object: one frame, and ``tb_next`` toward where the exception was raised."""

    def __init__(self, frame: _SavedFrame) -> None:
        self.tb_frame = frame
        self.tb_lineno = frame.f_lineno
        self.tb_lasti = frame.f_lasti
        self.tb_next: _SavedTraceback | None = None


def _tracebackFromFrames(frames: Sequence[Sequence[Any]]) -> _SavedTraceback:
    """A traceback look-alike over non-empty ``frames`` (outermost first), built without recursion."""
    back: _SavedFrame | None = None
    first: _SavedTraceback | None = None
    last: _SavedTraceback | None = None
    for frame in frames:
        back = _SavedFrame(frame, back)
        link = _SavedTraceback(back)
        if last is None:
            first = link
        else:
            last.tb_next = link
        last = link
    if first is None:
        raise ValueError("frames must not be empty")
    return first


class Failure(BaseException):
    """An exception with its type and traceback, captured now, formatted on demand.

    ``Failure()`` inside an ``except`` block captures the exception being
    handled; ``Failure(exc)`` wraps an exception instance (using its
    ``__traceback__`` if it was raised); ``Failure(exc, excType, tb)`` gives all
    three explicitly; ``Failure(otherFailure)`` copies it. Outside an ``except``
    block ``Failure()`` raises :class:`NoCurrentExceptionError`; a
    non-exception argument raises ``TypeError``.

    ``captureVars=True`` copies the locals and globals of every traceback frame
    when the Failure is made; the verbose traceback
    (:meth:`printDetailedTraceback`) lists them. Off (the default) it costs
    nothing.

    Attributes: ``type`` (the exception class), ``value`` (the instance), ``tb``
    (the traceback object, or ``None`` once :meth:`cleanFailure` ran or when the
    exception was never raised), ``frames``, ``parents``, ``captureVars``,
    ``count`` (this failure's number, as in the ``*--- Failure #N ---`` banner
    of the verbose traceback; numbers are handed out in the order they are
    first read) and ``pickled`` (1 once the failure was unpickled or cleaned,
    else 0).

    Like Twisted's, this class derives from ``BaseException`` so a Failure can
    itself be raised; the Deferred callback runner recognises a raised Failure
    and passes it on unchanged.
    """

    # ``type``, ``value`` and ``tb`` are read on every errback; slots keep that
    # cheap. Everything else lives in the instance dict BaseException already
    # has, created only when one of them is first set.
    __slots__ = ("tb", "type", "value")

    type: builtins.type[BaseException]
    value: BaseException
    tb: TracebackType | None

    # Defaults shared by every instance until one sets its own.
    captureVars: bool = False
    pickled: int = 0
    _frames: list[_FrameInfo] | None = None
    _parents: list[str] | None = None
    _count: int | None = None

    def __init__(
        self,
        exc_value: BaseException | None = None,
        exc_type: builtins.type[BaseException] | None = None,
        exc_tb: TracebackType | None = None,
        captureVars: bool = False,
    ) -> None:
        # Deliberately no BaseException.__init__ call: ``args`` is unused and the
        # constructor runs once per error on the hot path.
        if exc_value is None:
            excValue = _handledException()
            if excValue is None:
                raise NoCurrentExceptionError(
                    "Failure() with no exc_value must be called while an exception is being "
                    "handled (inside an except block)"
                )
            if isinstance(excValue, Failure):
                self._copyFrom(excValue)
                return
            # What sys.exc_info() would say, without building its tuple.
            self.type = type(excValue)
            self.value = excValue
            self.tb = excValue.__traceback__
        elif isinstance(exc_value, Failure):
            self._copyFrom(exc_value)
            return
        elif exc_type is None and exc_tb is None and isinstance(exc_value, BaseException):
            self.type = type(exc_value)
            self.value = exc_value
            self.tb = exc_value.__traceback__
        else:
            self._setExplicitly(exc_value, exc_type, exc_tb)
        if captureVars:
            self.captureVars = True
            self._frames = _framesOf(self.tb, True)

    def _setExplicitly(self, value: object, excType: object, tb: object) -> None:
        """Check and store an exception given with its type and/or traceback."""
        if not isinstance(value, BaseException):
            raise TypeError(f"exc_value must be an exception instance (or None), not {type(value).__name__}")
        if excType is None:
            excType = type(value)
        elif not (isinstance(excType, type) and issubclass(excType, BaseException)):
            raise TypeError(f"exc_type must be an exception class (or None), not {excType!r}")
        if tb is None:
            tb = value.__traceback__
        elif not isinstance(tb, TracebackType):
            raise TypeError(f"exc_tb must be a traceback object (or None), not {type(tb).__name__}")
        self.type = excType
        self.value = value
        self.tb = tb

    @classmethod
    def _fromException(cls, value: BaseException) -> Failure:
        """A Failure for ``value`` without argument checks (internal fast path)."""
        self = _newException(cls)
        self.type = type(value)
        self.value = value
        self.tb = value.__traceback__
        return self

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for types in _failureTypeSets:
            types.add(cls)

    def _copyFrom(self, other: Failure) -> None:
        """Become a copy of ``other``: same exception, frames, number and settings."""
        _ = other.count  # a copy shares its original's number, so give it one now
        self.type = other.type
        self.value = other.value
        self.tb = other.tb
        self.__dict__.update(other.__dict__)

    # -- inspecting ----------------------------------------------------------------------

    def check(
        self, *errorTypes: builtins.type[BaseException] | str
    ) -> builtins.type[BaseException] | str | None:
        """Return the first of ``errorTypes`` this failure's exception is an instance of, else ``None``.

        Each item is an exception class, or (as Twisted allows) the fully
        qualified name of one, such as ``"builtins.ValueError"``. Once
        :attr:`parents` has been set (or the failure was unpickled), it decides
        instead: an item matches if its qualified name is in that list.
        """
        parents = self._parents
        if parents is not None:
            for error in errorTypes:
                if (error if isinstance(error, str) else _qual(error)) in parents:
                    return error
            return None
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

    def getTracebackObject(self) -> TracebackType | Any | None:
        """What ``traceback.extract_tb`` reads as this failure's traceback; ``None`` if it has no frames.

        That is the traceback object itself while the failure holds one; after
        :meth:`cleanFailure` or unpickling, a look-alike rebuilt from
        :attr:`frames` that lists the same frames (file, line, function).
        """
        if self.tb is not None:
            return self.tb
        frames = self.frames
        if frames:
            return _tracebackFromFrames(frames)
        return None

    @property
    def frames(self) -> list[_FrameInfo]:
        """The traceback as ``(function, filename, lineno, locals, globals)`` tuples, outermost first.

        ``locals`` and ``globals`` are ``(name, value)`` lists when the failure
        was made with ``captureVars=True`` (``(name, repr)`` once cleaned or
        pickled), else empty. Computed on first access (and kept by
        :meth:`cleanFailure`); settable.
        """
        frames = self._frames
        if frames is None:
            frames = self._frames = _framesOf(self.tb, False)
        return frames

    @frames.setter
    def frames(self, frames: list[_FrameInfo]) -> None:
        self._frames = frames

    @property
    def parents(self) -> list[str]:
        """Fully qualified names of the exception's class and its bases (Twisted's ``parents``).

        Settable, as in Twisted (Foolscap sets it on failures copied from
        another process); once set, :meth:`check` matches against it.
        """
        parents = self._parents
        if parents is None:
            return [_qual(base) for base in self.type.__mro__]
        return parents

    @parents.setter
    def parents(self, parents: list[str]) -> None:
        self._parents = parents

    @property
    def count(self) -> int:
        """This failure's number (``N`` in ``*--- Failure #N ---``), handed out on first read; settable."""
        number = self._count
        if number is None:
            number = self._count = next(_failureNumbers)
        return number

    @count.setter
    def count(self, number: int) -> None:
        self._count = number

    def cleanFailure(self) -> None:
        """Drop the traceback object (and the frames it keeps alive), keeping its text.

        Afterwards :meth:`getTraceback` still shows the same frames and
        :meth:`getTracebackObject` a look-alike of the same traceback, but no
        frame, local variable or object they reference is kept alive: captured
        variables are replaced by their reprs. As in Twisted, ``pickled``
        becomes 1.
        """
        frames = self.frames
        if self.captureVars:
            self._frames = [
                (name, filename, lineno, _reprVariables(localVars), _reprVariables(globalVars))
                for name, filename, lineno, localVars, globalVars in frames
            ]
        self.tb = None
        self.pickled = 1
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
        """Write the traceback to ``file`` (default: ``sys.stderr``), in Twisted's layout.

        ``detail`` is ``"default"`` (as Python prints one), ``"brief"`` (one
        line per frame) or ``"verbose"`` (framed by ``*--- Failure #N ---`` and
        ``*--- End of Failure #N ---``, with each frame's variables if they were
        captured); anything else raises ``ValueError``.
        ``elideFrameworkCode`` is accepted for Twisted compatibility and ignored.
        """
        if detail not in _DETAILS:
            raise ValueError(f"detail must be one of {', '.join(_DETAILS)}, not {detail!r}")
        if file is None:
            file = sys.stderr
        w = file.write
        frames = self.frames
        frameDetail = detail
        if detail == "verbose":
            if not self.captureVars:
                frameDetail = "verbose-vars-not-captured"
            w(f"*--- Failure #{self.count}{' (pickled) ' if self.pickled else ' '}---\n")
        elif detail == "brief":
            header = "Traceback" if frames else "Traceback (failure with no frames)"
            w(f"{header}: {_safeStr(self.type)}: {_safeStr(self.value)}\n")
        else:
            w("Traceback (most recent call last):\n")
        if frames:
            format_frames(frames, w, frameDetail)
        elif detail != "brief":
            w("Failure: ")
        if detail != "brief":
            w(f"{_qual(self.type)}: {_safeStr(self.value)}\n")
        if isinstance(self.value, Failure):
            w(" (chained Failure)\n")
            self.value.printTraceback(file, elideFrameworkCode, detail)
        if detail == "verbose":
            w(f"*--- End of Failure #{self.count} ---\n")

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
        # handled; pickle the type, value and formatted frames instead (no tb),
        # with captured variables as reprs, as Twisted does.
        frames = self.frames
        if self.captureVars:
            frames = [
                (name, filename, lineno, _reprVariables(localVars), _reprVariables(globalVars))
                for name, filename, lineno, localVars, globalVars in frames
            ]
        return (
            _unpickleFailure,
            (self.type, self.value, frames, self.parents, self.count, self.captureVars),
        )


# BaseException.__new__ bound once: cheaper than looking ``cls.__new__`` up on
# every ``_fromException`` call.
_newException: Callable[[type[Failure]], Failure] = BaseException.__new__

# The exception being handled in the calling thread, or None (bound once, as above).
_handledException = sys.exception


def _unpickleFailure(
    excType: type[BaseException],
    value: BaseException,
    frames: list[_FrameInfo],
    parents: list[str] | None = None,
    count: int | None = None,
    captureVars: bool = False,
) -> Failure:
    """Rebuild a pickled Failure (the last three arguments are absent from older pickles)."""
    failure = _newException(Failure)
    failure.type = excType
    failure.value = value
    failure.tb = None
    failure._frames = [tuple(frame) for frame in frames]  # type: ignore[misc]
    failure.pickled = 1
    if parents is not None:
        failure._parents = list(parents)
    if count is not None:
        failure._count = count
    if captureVars:
        failure.captureVars = True
    return failure
