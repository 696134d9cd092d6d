"""Locks between processes on a filesystem path, under Twisted's module name (``twisted.python.lockfile``).

``FilesystemLock`` is the same class as ``reactor.FilesystemLock``; ``isLocked(name)`` says whether
a live process holds the lock at ``name``. See ``reactor._filelock`` for how the lock works, and
``reactor.DeferredFilesystemLock`` to wait for one without blocking.
"""

from __future__ import annotations

from reactor._filelock import FilesystemLock, isLocked

__all__ = ["FilesystemLock", "isLocked"]
