"""Tests for reactor.Failure: capture, inspection, re-raising and formatting."""

from __future__ import annotations

import io
import pickle
import threading
import traceback
from collections.abc import Generator
from typing import Any

import pytest

from reactor import Failure, NoCurrentExceptionError, failure


class MyError(Exception):
    pass


class SubError(MyError):
    pass


def raiseMyError() -> None:
    raise MyError("boom")


def captured() -> Failure:
    try:
        raiseMyError()
    except MyError:
        return Failure()
    raise AssertionError("not reached")


def test_captureCurrentException() -> None:
    """Failure() inside an except block captures type, value and traceback object."""
    f = captured()
    assert f.type is MyError
    assert isinstance(f.value, MyError)
    assert f.tb is not None
    assert f.tb is f.value.__traceback__


def test_outsideExceptRaisesNoCurrentExceptionError() -> None:
    """Failure() with no exception being handled raises NoCurrentExceptionError."""
    with pytest.raises(NoCurrentExceptionError):
        Failure()


def test_wrapExceptionInstance() -> None:
    """Failure(exc) wraps an exception that was never raised, with no traceback."""
    exc = ValueError("x")
    f = Failure(exc)
    assert f.type is ValueError
    assert f.value is exc
    assert f.tb is None


def test_wrapRaisedExceptionKeepsItsTraceback() -> None:
    """Failure(exc) for a raised exception uses exc.__traceback__."""
    try:
        raiseMyError()
    except MyError as e:
        exc = e
    f = Failure(exc)
    assert f.tb is exc.__traceback__


def test_explicitTypeAndTraceback() -> None:
    """Failure(value, type, tb) takes all three as given."""
    try:
        raiseMyError()
    except MyError as e:
        tb = e.__traceback__
        value = e
    f = Failure(value, MyError, tb)
    assert (f.type, f.value, f.tb) == (MyError, value, tb)


def test_nonExceptionValueRaisesTypeError() -> None:
    """A non-exception exc_value is rejected at the call with TypeError."""
    with pytest.raises(TypeError, match="exc_value"):
        Failure("not an exception")  # type: ignore[arg-type]


def test_badTracebackRaisesTypeError() -> None:
    """exc_tb that is not a traceback object is rejected with TypeError."""
    with pytest.raises(TypeError, match="exc_tb"):
        Failure(ValueError(), ValueError, "tb")  # type: ignore[arg-type]


def test_failureOfFailureCopiesIt() -> None:
    """Failure(otherFailure) copies the other's type, value and traceback."""
    f = captured()
    g = Failure(f)
    assert (g.type, g.value, g.tb) == (f.type, f.value, f.tb)


def test_checkReturnsMatchingType() -> None:
    """check() returns the first matching class, including base classes."""
    f = Failure(SubError())
    assert f.check(KeyError, MyError) is MyError
    assert f.check(SubError) is SubError


def test_checkReturnsNoneWhenNoMatch() -> None:
    """check() returns None when nothing matches."""
    assert Failure(MyError()).check(KeyError, ValueError) is None


def test_checkAcceptsQualifiedNames() -> None:
    """check() also matches fully qualified class names, as Twisted allows."""
    assert Failure(KeyError()).check("builtins.LookupError") == "builtins.LookupError"


def test_trapReturnsMatchingType() -> None:
    """trap() returns the matching type when one matches."""
    assert Failure(SubError()).trap(ValueError, MyError) is MyError


def test_trapReraisesOriginalExceptionWhenNoMatch() -> None:
    """trap() re-raises the wrapped exception (same instance) when nothing matches."""
    f = captured()
    with pytest.raises(MyError) as info:
        f.trap(KeyError)
    assert info.value is f.value


def test_raiseExceptionKeepsOriginalTraceback() -> None:
    """raiseException() re-raises with the frames where the exception was first raised."""
    f = captured()
    with pytest.raises(MyError) as info:
        f.raiseException()
    names = [frame.name for frame in traceback.extract_tb(info.value.__traceback__)]
    assert "raiseMyError" in names


def test_getErrorMessage() -> None:
    """getErrorMessage() is str() of the exception."""
    assert Failure(ValueError("bad thing")).getErrorMessage() == "bad thing"


def test_getErrorMessageWithBrokenStr() -> None:
    """getErrorMessage() never raises, even if the exception's __str__ does."""

    class Broken(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    assert "Broken" in Failure(Broken()).getErrorMessage()


def test_getTracebackShowsOriginalFrames() -> None:
    """getTraceback() lists the frames where the exception was raised, then type: message."""
    text = captured().getTraceback()
    assert text.startswith("Traceback (most recent call last):\n")
    assert "in raiseMyError" in text
    assert 'raise MyError("boom")' in text
    assert text.rstrip().endswith("test_failure.MyError: boom")


def test_getTracebackShowsWorkerThreadFrames() -> None:
    """A Failure captured in another thread shows that thread's frames when formatted here."""
    box: list[Failure] = []

    def workerFunction() -> None:
        try:
            raiseMyError()
        except MyError:
            box.append(Failure())

    thread = threading.Thread(target=workerFunction)
    thread.start()
    thread.join(timeout=10)
    text = box[0].getTraceback()
    assert "in workerFunction" in text
    assert "in raiseMyError" in text


def test_getTracebackWithoutFrames() -> None:
    """A never-raised exception formats without frames but with type and message."""
    text = Failure(ValueError("v")).getTraceback()
    assert "builtins.ValueError: v" in text


def test_getBriefTraceback() -> None:
    """The brief form has one file:line:function line per frame."""
    text = captured().getBriefTraceback()
    assert text.startswith("Traceback: ")
    assert ":raiseMyError" in text


def test_badDetailRaisesValueError() -> None:
    """An unknown detail level is rejected with ValueError."""
    with pytest.raises(ValueError, match="detail"):
        captured().getTraceback(detail="loud")


def test_printTracebackWritesToFile() -> None:
    """printTraceback(file) writes the same text getTraceback() returns."""
    f = captured()
    out = io.StringIO()
    f.printTraceback(out)
    assert out.getvalue() == f.getTraceback()


def test_printTracebackDefaultsToStderr(capsys: pytest.CaptureFixture[str]) -> None:
    """printTraceback() with no file writes to stderr."""
    captured().printTraceback()
    assert "raiseMyError" in capsys.readouterr().err


def test_framesAreComputedLazily() -> None:
    """Capturing formats nothing; frames are built on first access."""
    f = captured()
    assert f._frames is None
    assert [frame[0] for frame in f.frames][-1] == "raiseMyError"


def test_cleanFailureDropsTracebackKeepsText() -> None:
    """cleanFailure() drops the traceback object but getTraceback() still shows the frames."""
    f = captured()
    before = f.getTraceback()
    f.cleanFailure()
    assert f.tb is None
    assert f.value.__traceback__ is None
    assert f.getTraceback() == before


def test_reprAndStr() -> None:
    """repr names the Failure class, the exception type and message; str is Twisted's form."""
    f = Failure(ValueError("oops"))
    assert repr(f) == "<reactor._failure.Failure builtins.ValueError: oops>"
    assert str(f).startswith("[Failure instance: Traceback")


def test_failureCanBeRaisedAndCaught() -> None:
    """A Failure is a BaseException, so it can itself be raised."""
    f = Failure(ValueError("x"))
    with pytest.raises(Failure) as info:
        raise f
    assert info.value is f


def test_pickleKeepsTypeValueAndFrames() -> None:
    """A pickled Failure keeps type, value and formatted frames, but no traceback object."""
    f = captured()
    g = pickle.loads(pickle.dumps(f))
    assert g.type is MyError
    assert g.getErrorMessage() == "boom"
    assert g.tb is None
    assert "raiseMyError" in g.getTraceback()


def test_throwExceptionIntoGenerator() -> None:
    """throwExceptionIntoGenerator throws the exception at the generator's yield."""

    def gen() -> Generator[Any, Any, None]:
        try:
            yield 1
        except MyError:
            yield "caught"

    g = gen()
    next(g)
    assert captured().throwExceptionIntoGenerator(g) == "caught"


def test_parentsListsQualifiedNames() -> None:
    """parents lists the qualified names of the exception class and its bases."""
    assert Failure(KeyError()).parents[:2] == ["builtins.KeyError", "builtins.LookupError"]


def test_parentsCanBeSet() -> None:
    """parents is settable; check() then matches qualified names against the list set."""
    f = Failure(KeyError())
    f.parents = ["remote.Gone"]
    assert f.parents == ["remote.Gone"]
    assert f.check("remote.Gone") == "remote.Gone"
    assert f.check(KeyError) is None


def test_countIsUniqueStableAndSettable() -> None:
    """Each failure gets its own number, the same on every read; it can be set."""
    first, second = Failure(ValueError()), Failure(ValueError())
    assert first.count != second.count
    assert first.count == first.count
    second.count = 7
    assert second.count == 7


def test_newFailureStoresNothingBeyondItsSlots() -> None:
    """Failure(exc) and Failure() store only type, value and tb: the Twisted extras cost nothing unused."""
    assert vars(Failure(ValueError())) == {}
    assert vars(captured()) == {}


def test_captureVarsCopiesTheVariablesWhenMade() -> None:
    """captureVars=True copies each frame's locals at capture time, including for Failure(raisedExc)."""
    try:
        raiseMyError()
    except MyError as e:
        f = Failure(e, captureVars=True)
    assert f.captureVars is True
    assert ("e", f.value) in list(f.frames[0][3])


def test_rebuiltTracebackFromSetFrames() -> None:
    """A failure with no traceback object but frames set rebuilds one from those frames."""
    f = Failure(ValueError("v"))
    f.frames = [("remoteCall", "/remote/side.py", 12, (), ())]
    summary = traceback.extract_tb(f.getTracebackObject())
    assert [(s.filename, s.lineno, s.name) for s in summary] == [("/remote/side.py", 12, "remoteCall")]


def test_picklesFromBeforeTheExtrasStillLoad() -> None:
    """A pickle that carries only type, value and frames (the older layout) still unpickles."""
    from reactor._failure import _unpickleFailure

    f = _unpickleFailure(ValueError, ValueError("old"), [("f", "/x.py", 1, (), ())])
    assert (f.getErrorMessage(), f.pickled, f.frames) == ("old", 1, [("f", "/x.py", 1, (), ())])


@pytest.fixture
def plainModeAfterwards() -> Generator[None, None, None]:
    """Whatever a test does with debug mode, it is off when the test ends."""
    yield
    failure.stopDebugMode()


def test_debugModeIsOffByDefault() -> None:
    """By default Failure's plain constructors are installed (debug mode costs nothing)."""
    from reactor import _failure

    assert Failure.__init__ is failure._plainInit
    assert Failure.__init__.__module__ == _failure.__name__
    assert Failure.__dict__["_fromException"] is failure._plainFromException


def test_startDebugModeCallsTheGivenDebugger(
    plainModeAfterwards: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """startDebugMode(debugger) hands each captured traceback to that debugger; stopDebugMode ends it."""
    calls: list[Any] = []
    failure.startDebugMode(calls.append)
    f = captured()
    assert calls == [f.tb]
    assert "post-mortem of exception 'boom'" in capsys.readouterr().out
    failure.stopDebugMode()
    captured()
    assert calls == [f.tb]
    assert Failure.__init__ is failure._plainInit


def test_startDebugModeRejectsANonCallableDebugger(plainModeAfterwards: None) -> None:
    """A debugger that is not callable is refused at the call, naming the argument."""
    with pytest.raises(TypeError, match="debugger"):
        failure.startDebugMode(42)  # type: ignore[arg-type]


def test_debugModeOutsideAnExceptBlockOpensNoDebugger(plainModeAfterwards: None) -> None:
    """In debug mode Failure() outside an except block raises NoCurrentExceptionError, debugging nothing."""
    calls: list[Any] = []
    failure.startDebugMode(calls.append)
    with pytest.raises(NoCurrentExceptionError):
        Failure()
    assert calls == []


def test_debugModeSkipsARaisedFailure(plainModeAfterwards: None) -> None:
    """Failure() while handling a raised Failure copies it without opening the debugger."""
    calls: list[Any] = []
    original = Failure(ValueError("x"))
    failure.startDebugMode(calls.append)
    try:
        raise original
    except Failure:
        copy = Failure()
    assert calls == []
    assert copy.value is original.value
