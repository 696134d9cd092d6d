"""Choosing between the mypyc-compiled ``reactor._deferred`` and its pure-Python source.

The install may compile ``reactor/_deferred.py`` with mypyc (setup.py); the import system then
picks ``reactor/_deferred.<abi>.so`` over the ``.py`` on its own. :func:`loadDeferredModule`,
which ``reactor/__init__.py`` calls before anything imports ``reactor._deferred``, overrides
that choice and loads the ``.py`` instead when

* ``DEFERTHREADS_PURE_PYTHON`` is set (non-empty, not ``0``): to run or test the pure
  implementation without reinstalling;
* the compiled module is older than the ``.py`` (the source was edited or checked out since
  the last build, so the ``.so`` would silently run old code): with a warning to rebuild;
* the compiled module fails to import (a partial build): with a warning.

Runs once, at ``import reactor``, in whichever thread imports it.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import os
import sys
import warnings
from pathlib import Path

__all__ = ["PURE_ENV", "loadDeferredModule", "pureRequested"]

#: The environment variable that forces pure Python (at install time too, see setup.py).
PURE_ENV = "DEFERTHREADS_PURE_PYTHON"

_MODULE = "reactor._deferred"


def pureRequested() -> bool:
    """Whether ``DEFERTHREADS_PURE_PYTHON`` asks for the pure-Python implementation."""
    return os.environ.get(PURE_ENV, "") not in ("", "0")


def _compiledFiles(source: Path) -> list[Path]:
    """The compiled modules of ``source`` sitting next to it (none when the install is pure)."""
    return [
        source.with_name(source.stem + suffix)
        for suffix in importlib.machinery.EXTENSION_SUFFIXES
        if source.with_name(source.stem + suffix).exists()
    ]


def loadDeferredModule() -> None:
    """Import ``reactor._deferred``: compiled if there is a usable build, else from its ``.py``."""
    if _MODULE in sys.modules:
        return
    source = Path(__file__).with_name("_deferred.py")
    compiled = _compiledFiles(source)
    if not compiled:
        return  # a plain import finds the .py
    if not pureRequested():
        if min(path.stat().st_mtime for path in compiled) < source.stat().st_mtime:
            warnings.warn(
                f"{compiled[0]} is older than {source.name}: using the pure-Python module "
                "(rebuild with `pip install -e .` to use the compiled one again)",
                RuntimeWarning,
                stacklevel=3,
            )
        else:
            try:
                importlib.import_module(_MODULE)
                return
            except ImportError as e:
                warnings.warn(
                    f"the compiled {_MODULE} does not load ({e}): using the pure-Python module",
                    RuntimeWarning,
                    stacklevel=3,
                )
    spec = importlib.util.spec_from_file_location(_MODULE, source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Registered before it runs, as the import system does: reactor._coroutines, imported at its
    # end, imports names back from it.
    sys.modules[_MODULE] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[_MODULE]
        raise
    setattr(sys.modules["reactor"], "_deferred", module)


# Imported first by reactor/__init__.py, so this runs before anything imports reactor._deferred.
loadDeferredModule()
