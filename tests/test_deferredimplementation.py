"""Which reactor._deferred runs: the mypyc-compiled module when the install built one, else the .py.

setup.py compiles reactor/_deferred.py when it can; reactor/_implementation.py picks the module at
``import reactor``. These tests pin that choice down, and run Deferred tests on the pure-Python
module in a subprocess (``DEFERTHREADS_PURE_PYTHON=1``) so both implementations stay tested.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import reactor._deferred
from reactor import _implementation

_ROOT = Path(__file__).resolve().parent.parent
_SOURCE = Path(_implementation.__file__).with_name("_deferred.py")
_COMPILED = _implementation._compiledFiles(_SOURCE)
# A build at least as new as the source: what a plain ``import reactor`` loads.
_FRESH = bool(_COMPILED) and min(p.stat().st_mtime for p in _COMPILED) >= _SOURCE.stat().st_mtime

needsCompiledBuild = pytest.mark.skipif(
    not _COMPILED, reason="this install is pure Python (setup.py compiled nothing)"
)


def _pythonWith(env: dict[str, str], code: str, cwd: Path = _ROOT) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter with ``env`` added to this one's environment."""
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


_REPORT = "import reactor._deferred as m; print(m._compiled, m.__file__)"


def test_theLoadedModuleIsCompiledExactlyWhenAFreshBuildSitsNextToTheSource() -> None:
    """A compiled build newer than the .py is loaded (unless pure is forced); otherwise the .py is."""
    expected = _FRESH and not _implementation.pureRequested()
    assert reactor._deferred._compiled is expected
    assert (Path(reactor._deferred.__file__ or "").suffix != ".py") is expected


def test_theCompiledFlagMatchesTheDeferredClassKind() -> None:
    """``_compiled`` is true exactly when Deferred is a mypyc native class (it has __mypyc_attrs__)."""
    assert reactor._deferred._compiled is hasattr(reactor._deferred.Deferred, "__mypyc_attrs__")


def test_pureEnvironmentVariableLoadsTheSource() -> None:
    """DEFERTHREADS_PURE_PYTHON=1 makes ``import reactor`` load reactor/_deferred.py."""
    result = _pythonWith({_implementation.PURE_ENV: "1"}, _REPORT)
    assert result.returncode == 0, result.stderr
    compiled, path = result.stdout.split()
    assert compiled == "False" and path == str(_SOURCE)


def test_pureEnvironmentVariableSetToZeroDoesNotForcePure() -> None:
    """``0`` means "not requested", as an unset variable does."""
    result = _pythonWith({_implementation.PURE_ENV: "0"}, _REPORT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == str(_FRESH)


@needsCompiledBuild
def test_compiledModuleOlderThanTheSourceFallsBackToPureWithAWarning(tmp_path: Path) -> None:
    """An edited .py newer than its build loads from source, warning that a rebuild is needed."""
    copy = tmp_path / "reactor"
    shutil.copytree(_SOURCE.parent, copy, ignore=shutil.ignore_patterns("__pycache__"))
    later = max(p.stat().st_mtime for p in _COMPILED) + 10
    os.utime(copy / "_deferred.py", (later, later))
    result = _pythonWith(
        {"PYTHONPATH": str(tmp_path), _implementation.PURE_ENV: ""},
        "import warnings; warnings.simplefilter('always'); " + _REPORT,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", str(copy / "_deferred.py")]
    assert "is older than _deferred.py" in result.stderr and "pip install -e ." in result.stderr


@needsCompiledBuild
@pytest.mark.timeout(600)
def test_pureFallbackPassesTheDeferredTests() -> None:
    """The pure-Python Deferred, forced in a subprocess, passes the Deferred and coroutine tests."""
    modules = [
        "tests/test_deferred.py",
        "tests/test_deferredcancel.py",
        "tests/test_deferreddebugging.py",
        "tests/test_coroutines.py",
        "tests/test_asyncio_await.py",
        "tests/test_twistedports_defer.py",
    ]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *modules],
        cwd=_ROOT,
        env={**os.environ, _implementation.PURE_ENV: "1"},
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
