"""``twisted.python.failure`` ported to ``reactor.failure``: the same assertions on Twisted 26.10 and ours.

Each test takes ``failure`` (Twisted's module or ``reactor.failure``) and, where a
Deferred is involved, ``defer`` (``twisted.internet.defer`` or ``reactor``) of the
same side, so the expectations are exactly what Twisted does.
"""

from __future__ import annotations

import linecache
import pdb
import pickle
import sys
import traceback
import types
import weakref
from collections.abc import Iterator
from io import StringIO
from typing import Any

import pytest

import reactor
import reactor.failure

twistedFailure = pytest.importorskip("twisted.python.failure")
twistedDefer = pytest.importorskip("twisted.internet.defer")


@pytest.fixture(params=["twisted", "ours"])
def side(request: pytest.FixtureRequest) -> str:
    """Which implementation the test runs on."""
    return str(request.param)


@pytest.fixture
def failure(side: str) -> types.ModuleType:
    """The module under test: ``twisted.python.failure`` or ``reactor.failure``."""
    return twistedFailure if side == "twisted" else reactor.failure


@pytest.fixture
def defer(side: str) -> types.ModuleType:
    """The Deferred module of the same side: ``twisted.internet.defer`` or ``reactor``."""
    return twistedDefer if side == "twisted" else reactor


@pytest.fixture
def debugCalls(failure: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Debug mode on, with ``pdb.post_mortem`` replaced by a recorder; everything put back afterwards."""
    calls: list[Any] = []
    monkeypatch.setattr(pdb, "post_mortem", calls.append)
    monkeypatch.setattr(failure.Failure, "__init__", failure.Failure.__init__)
    failure.startDebugMode()
    yield calls
    if failure is reactor.failure:
        failure.stopDebugMode()


class Unused(Exception):
    pass


def divisionFailure(failure: Any, captureVars: bool = False) -> Any:
    exampleLocalVar = "xyz"
    try:
        1 / 0  # noqa: B018
    except ZeroDivisionError:
        return failure.Failure(captureVars=captureVars)
    del exampleLocalVar
    raise AssertionError("not reached")


# -- getTracebackObject after cleanFailure ---------------------------------------------------


@pytest.mark.parametrize("captureVars", [False, True])
def test_cleanedTracebackObjectListsTheSameFrames(failure: Any, captureVars: bool) -> None:
    """After cleanFailure, getTracebackObject gives extract_tb the same frames (file, line, name, source)."""
    f = divisionFailure(failure, captureVars)
    before = traceback.extract_tb(f.getTracebackObject())
    f.cleanFailure()
    rebuilt = f.getTracebackObject()
    assert rebuilt is not None
    after = traceback.extract_tb(rebuilt)
    assert after == before
    assert [frame.line for frame in after] == [frame.line for frame in before]
    assert after[-1].name == "divisionFailure"


def test_cleanedTracebackObjectFormatsLikeTheOriginal(failure: Any) -> None:
    """format_tb of the rebuilt traceback is the text format_tb gave for the real one."""
    f = divisionFailure(failure)
    before = traceback.format_tb(f.getTracebackObject())
    f.cleanFailure()
    assert "".join(traceback.format_tb(f.getTracebackObject())).splitlines()[::2] == [
        text.splitlines()[0] for text in before
    ]


def test_rebuiltFramesLinkBackToTheirCallers(failure: Any) -> None:
    """The rebuilt traceback's innermost frame reaches the outer ones through f_back (extract_stack)."""
    f = divisionFailure(failure)
    names = [frame[0] for frame in f.frames]
    f.cleanFailure()
    tb = f.getTracebackObject()
    while tb.tb_next is not None:
        tb = tb.tb_next
    assert [summary.name for summary in traceback.extract_stack(tb.tb_frame)] == names


def test_unpickledTracebackObjectListsTheSameFrames(failure: Any) -> None:
    """An unpickled failure also has a traceback object with the original frames."""
    f = divisionFailure(failure)
    before = traceback.extract_tb(f.getTracebackObject())
    assert traceback.extract_tb(pickle.loads(pickle.dumps(f)).getTracebackObject()) == before


def test_tracebackObjectOfAFramelessFailureIsNone(failure: Any) -> None:
    """A failure that never had frames has no traceback object, cleaned or not."""
    f = failure.Failure(ValueError("never raised"))
    assert f.getTracebackObject() is None
    f.cleanFailure()
    assert f.getTracebackObject() is None


# -- parents ---------------------------------------------------------------------------------


def test_parentsCanBeSetAndCheckUsesThem(failure: Any) -> None:
    """parents is a settable attribute (Foolscap assigns it); check then matches names in it."""
    f = failure.Failure(ValueError("x"))
    assert f.parents[:2] == ["builtins.ValueError", "builtins.Exception"]
    f.parents = ["remote.RemoteError", "builtins.Exception"]
    assert f.parents == ["remote.RemoteError", "builtins.Exception"]
    assert f.check("remote.RemoteError") == "remote.RemoteError"
    assert f.check(ValueError) is None
    assert f.check(Unused, Exception) is Exception


def test_parentsSurvivePicklingAndStaySettable(failure: Any) -> None:
    """A set parents list travels through pickle, and can be set again after."""
    f = failure.Failure(ValueError("x"))
    f.parents = ["remote.RemoteError"]
    g = pickle.loads(pickle.dumps(f))
    assert g.parents == ["remote.RemoteError"]
    g.parents = [*g.parents, "builtins.Exception"]
    assert g.check("builtins.Exception") == "builtins.Exception"


# -- count, pickled, captureVars and the verbose traceback -------------------------------------


def test_countPickledAndCaptureVarsDefaults(failure: Any) -> None:
    """A new failure has an int count, pickled 0 and captureVars False; a copy shares the count."""
    f = divisionFailure(failure)
    assert isinstance(f.count, int)
    assert f.pickled == 0
    assert f.captureVars is False
    assert failure.Failure(f).count == f.count


def test_unpickledFailureIsMarkedPickledAndKeepsItsCount(failure: Any) -> None:
    """After a pickle round trip pickled is 1, count is the original's and there is no tb."""
    f = divisionFailure(failure)
    g = pickle.loads(pickle.dumps(f))
    assert (g.pickled, g.count, g.tb) == (1, f.count, None)
    assert g.frames == f.frames


def test_cleanFailureMarksItPickled(failure: Any) -> None:
    """cleanFailure sets pickled to 1, as Twisted's does."""
    f = divisionFailure(failure)
    f.cleanFailure()
    assert f.pickled == 1


def test_verboseTracebackFramingWithoutVariables(failure: Any) -> None:
    """The verbose traceback is framed by the failure's number and says no variables were captured."""
    f = divisionFailure(failure)
    out = StringIO()
    f.printDetailedTraceback(out)
    text = out.getvalue()
    assert text.startswith(f"*--- Failure #{f.count} ---\n")
    assert text.endswith(
        f"builtins.ZeroDivisionError: division by zero\n*--- End of Failure #{f.count} ---\n"
    )
    assert " [Capture of Locals and Globals disabled (use captureVars=True)]\n" in text
    assert [line for line in text.splitlines() if line.startswith("  ")] == []
    assert f.getTraceback(detail="verbose") == text


def test_verboseTracebackListsCapturedVariables(failure: Any) -> None:
    """With captureVars=True each frame lists its locals and globals, values as reprs."""
    f = divisionFailure(failure, captureVars=True)
    assert f.captureVars is True
    text = f.getTraceback(detail="verbose")
    assert " [ Locals ]\n" in text
    assert " ( Globals )\n" in text
    assert "  exampleLocalVar : 'xyz'\n" in text
    assert "  Unused : " in text  # a global of this module


def test_verboseTracebackAfterCleanShowsVariablesAsReprs(failure: Any) -> None:
    """Once cleaned, captured values are reprs (so shown quoted twice) and the banner says pickled."""
    f = divisionFailure(failure, captureVars=True)
    f.cleanFailure()
    text = f.getTraceback(detail="verbose")
    assert text.startswith(f"*--- Failure #{f.count} (pickled) ---\n")
    assert "  exampleLocalVar : \"'xyz'\"\n" in text


def test_capturedFramesHoldTheVariables(failure: Any) -> None:
    """frames carry (name, value) items of each frame's locals when captureVars=True, none otherwise."""
    withVars = divisionFailure(failure, captureVars=True)
    assert ("exampleLocalVar", "xyz") in list(withVars.frames[-1][3])
    withoutVars = divisionFailure(failure)
    assert [(list(frame[3]), list(frame[4])) for frame in withoutVars.frames] == [([], [])] * len(
        withoutVars.frames
    )


def test_cleanFailureReleasesCapturedObjects(failure: Any) -> None:
    """After cleanFailure nothing keeps a captured local alive (values were replaced by reprs)."""

    class Payload:
        pass

    def raiser() -> Any:
        payload = Payload()
        ref = weakref.ref(payload)
        try:
            raise ValueError(str(payload))
        except ValueError:
            return failure.Failure(captureVars=True), ref

    f, ref = raiser()
    f.cleanFailure()
    assert ref() is None
    assert "Payload object" in f.getTraceback(detail="verbose")


def test_briefAndDefaultTracebacksOfACapturingFailure(failure: Any) -> None:
    """captureVars does not change the brief and default layouts (no variables in them)."""
    f = divisionFailure(failure, captureVars=True)
    expected = "".join(
        f'  File "{filename}", line {lineno}, in {name}\n    {linecache.getline(filename, lineno).strip()}\n'
        for name, filename, lineno, _, _ in f.frames
    )
    assert f.getTraceback() == (
        "Traceback (most recent call last):\n" + expected + "builtins.ZeroDivisionError: division by zero\n"
    )
    brief = f.getBriefTraceback()
    assert brief == "Traceback: <class 'ZeroDivisionError'>: division by zero\n" + "".join(
        f"{filename}:{lineno}:{name}\n" for name, filename, lineno, _, _ in f.frames
    )
    assert "xyz" not in brief


# -- format_frames -----------------------------------------------------------------------------


FRAMES = [
    ("outer", "/nonexistent/a.py", 3, [("local", 1)], [("glob", "g")]),
    ("inner", "/nonexistent/b.py", 7, [], []),
]


@pytest.mark.parametrize(
    ("detail", "expected"),
    [
        ("brief", "/nonexistent/a.py:3:outer\n/nonexistent/b.py:7:inner\n"),
        (
            "default",
            '  File "/nonexistent/a.py", line 3, in outer\n    \n'
            '  File "/nonexistent/b.py", line 7, in inner\n    \n',
        ),
        (
            "verbose",
            "/nonexistent/a.py:3: outer(...)\n [ Locals ]\n  local : 1\n ( Globals )\n  glob : 'g'\n"
            "/nonexistent/b.py:7: inner(...)\n [ Locals ]\n ( Globals )\n",
        ),
        (
            "verbose-vars-not-captured",
            "/nonexistent/a.py:3: outer(...)\n/nonexistent/b.py:7: inner(...)\n"
            " [Capture of Locals and Globals disabled (use captureVars=True)]\n",
        ),
    ],
)
def test_formatFramesPerDetail(failure: Any, detail: str, expected: str) -> None:
    """format_frames writes Twisted's layout for each of its four detail levels."""
    out: list[str] = []
    failure.format_frames(FRAMES, out.append, detail)
    assert "".join(out) == expected


def test_formatFramesDefaultShowsTheSourceLine(failure: Any) -> None:
    """The default detail shows each frame's stripped source line."""
    f = divisionFailure(failure)
    out: list[str] = []
    failure.format_frames(f.frames[-1:], out.append)
    assert "".join(out).endswith("    1 / 0  # noqa: B018\n")


def test_formatFramesRejectsAnUnknownDetail(failure: Any) -> None:
    """An unknown detail raises ValueError, before anything is written."""
    with pytest.raises(ValueError):
        failure.format_frames(None, None, detail="noisia")


# -- debug mode --------------------------------------------------------------------------------


def test_debugModeRunsThePostMortemDebuggerOnCapture(
    failure: Any, debugCalls: list[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """In debug mode Failure() in an except block first hands the traceback to pdb.post_mortem."""
    try:
        1 / 0  # noqa: B018
    except ZeroDivisionError:
        tb = sys.exc_info()[2]
        f = failure.Failure()
    assert debugCalls == [tb]
    assert f.captureVars is False
    assert f.tb is tb
    out = capsys.readouterr().out
    assert out == "Jumping into debugger for post-mortem of exception 'division by zero':\n"


def test_debugModeKeepsCaptureVars(failure: Any, debugCalls: list[Any]) -> None:
    """captureVars=True still works in debug mode."""
    f = divisionFailure(failure, captureVars=True)
    assert len(debugCalls) == 1
    assert f.captureVars is True
    assert "exampleLocalVar" in f.getTraceback(detail="verbose")


def test_debugModeLeavesGivenExceptionsAlone(failure: Any, debugCalls: list[Any]) -> None:
    """Failure(exc) with the exception given opens no debugger, even inside an except block."""
    try:
        1 / 0  # noqa: B018
    except ZeroDivisionError as e:
        failure.Failure(e)
    failure.Failure(ValueError("x"))
    assert debugCalls == []


def test_debugModeDoPostMortemFalseSkipsTheDebugger(
    failure: Any, debugCalls: list[Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """With the module's DO_POST_MORTEM false, debug mode neither prints nor debugs."""
    monkeypatch.setattr(failure, "DO_POST_MORTEM", False)
    divisionFailure(failure)
    assert debugCalls == []
    assert capsys.readouterr().out == ""


def test_debugModeDebugsAnExceptionRaisedByACallback(
    failure: Any, defer: Any, debugCalls: list[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """In debug mode an exception raised by a Deferred callback opens the debugger on its traceback."""
    seen: list[Any] = []

    def callback(_: object) -> None:
        raise KeyError("in a callback")

    d = defer.Deferred()
    d.addCallback(callback)
    d.addErrback(seen.append)
    d.callback(None)
    assert len(debugCalls) == 1
    assert debugCalls[0] is seen[0].tb
    assert "post-mortem of exception ''in a callback''" in capsys.readouterr().out


def test_moduleOffersTwistedsNames(failure: Any) -> None:
    """The module has the public names of twisted.python.failure that porting code uses."""
    for name in (
        "Failure",
        "NoCurrentExceptionError",
        "format_frames",
        "startDebugMode",
        "DO_POST_MORTEM",
        "DefaultException",
        "EXCEPTION_CAUGHT_HERE",
    ):
        assert hasattr(failure, name), name
    assert issubclass(failure.DefaultException, Exception)
    with pytest.raises(failure.NoCurrentExceptionError):
        failure.Failure()


def test_debugModeLeavesFailWithAGivenExceptionAlone(failure: Any, defer: Any, debugCalls: list[Any]) -> None:
    """fail(exc) with a raised exception given outside its except block opens no debugger."""
    try:
        1 / 0  # noqa: B018
    except ZeroDivisionError as e:
        caught = e
    d = defer.fail(caught)
    d.addErrback(lambda _: None)
    assert debugCalls == []


def test_debugModeDebugsMaybeDeferredsException(failure: Any, defer: Any, debugCalls: list[Any]) -> None:
    """maybeDeferred of a raising function opens the debugger on that exception's traceback."""
    seen: list[Any] = []

    def raiser() -> None:
        raise KeyError("in maybeDeferred")

    defer.maybeDeferred(raiser).addErrback(seen.append)
    assert debugCalls == [seen[0].tb]
