"""The zope.interface interfaces of the reactor: core roles and networking roles."""

from __future__ import annotations

from reactor import _coreinterfaces, _netinterfaces
from reactor._coreinterfaces import *  # noqa: F403
from reactor._netinterfaces import *  # noqa: F403

__all__ = [*_coreinterfaces.__all__, *_netinterfaces.__all__]
