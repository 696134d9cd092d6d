"""The reactor package: Deferred, Failure, the event loop, and their helpers.

The public API keeps Twisted's names and meaning; see README.md for a tour.
"""

from __future__ import annotations

# Star imports while the modules are being written; the final list is explicit.
from reactor import (
    _default,
    _deferred,
    _deferredlist,
    _delayed,
    _errors,
    _failure,
    _inline,
    _loop,
    _sync,
)
from reactor._default import *  # noqa: F403
from reactor._deferred import *  # noqa: F403
from reactor._deferredlist import *  # noqa: F403
from reactor._delayed import *  # noqa: F403
from reactor._errors import *  # noqa: F403
from reactor._failure import *  # noqa: F403
from reactor._inline import *  # noqa: F403
from reactor._loop import *  # noqa: F403
from reactor._sync import *  # noqa: F403

__all__ = [
    *_errors.__all__,
    *_failure.__all__,
    *_deferred.__all__,
    *_inline.__all__,
    *_deferredlist.__all__,
    *_sync.__all__,
    *_delayed.__all__,
    *_loop.__all__,
    *_default.__all__,
]
