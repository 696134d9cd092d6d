"""Build hook: compile reactor/_deferred.py with mypyc when possible, else install pure Python.

Everything else about the package is in pyproject.toml; this file only adds the optional
extension modules. ``pip install .`` (or ``-e .``) then:

* compiles ``reactor/_deferred.py`` to ``reactor/_deferred.<abi>.so`` (plus its runtime library
  ``reactor/_deferred__mypyc.<abi>.so``) with mypyc, which pyproject.toml's build requirements
  provide; an editable install copies both next to the ``.py``, where the import system picks the
  ``.so`` first;
* installs pure Python instead, with a warning, when mypyc cannot run (PyPy, mypy missing or
  rejecting the module) or there is no working C compiler: the extensions are marked optional,
  so a failed compile never fails the install;
* compiles nothing when ``DEFERTHREADS_PURE_PYTHON`` is set to a non-empty value other than
  ``0``, the same variable that makes ``import reactor`` load the ``.py`` at run time
  (reactor/_implementation.py).
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
from typing import Any

from setuptools import setup

# The only module compiled: the Deferred class and succeed()/fail(), where object allocation and
# attribute stores are most of the time spent (issue 13).
COMPILED_MODULES = ["reactor/_deferred.py"]

# mypyc type-checks what the compiled module imports, in the isolated build environment where the
# package's runtime dependencies (zope.interface, pyOpenSSL...) and mypy plugins are absent. The
# strict check of the whole package is `make lint`'s job; here only the types mypyc compiles with
# matter, so imported modules are analysed silently and missing ones are Any.
MYPY_CONFIG = """\
[mypy]
follow_imports = silent
ignore_missing_imports = True
"""


def _pureRequested() -> bool:
    return os.environ.get("DEFERTHREADS_PURE_PYTHON", "") not in ("", "0")


def _warn(message: str) -> None:
    print(f"deferthreads: {message}; installing pure Python", file=sys.stderr)


def _compiledExtensions() -> list[Any]:
    """mypyc's extension modules for COMPILED_MODULES, each optional; none when mypyc cannot run."""
    if _pureRequested():
        _warn("DEFERTHREADS_PURE_PYTHON is set")
        return []
    if platform.python_implementation() != "CPython":
        _warn(f"mypyc needs CPython, not {platform.python_implementation()}")
        return []
    try:
        from mypyc.build import mypycify
    except ImportError as e:
        _warn(f"mypyc is not available ({e})")
        return []
    with tempfile.TemporaryDirectory() as scratch:
        config = os.path.join(scratch, "mypy.ini")
        with open(config, "w") as f:
            f.write(MYPY_CONFIG)
        try:
            extensions = mypycify(["--config-file", config, *COMPILED_MODULES], opt_level="3")
        except BaseException as e:  # mypyc exits (SystemExit) on a type error
            _warn(f"mypyc could not compile {COMPILED_MODULES} ({e!r})")
            return []
    for extension in extensions:
        # A compiler error skips the extension instead of failing the build (setuptools then
        # neither installs nor copies it), and reactor/_implementation.py loads the .py.
        extension.optional = True
    return extensions


setup(ext_modules=_compiledExtensions())
