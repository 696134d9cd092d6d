"""(being written) zope.interface interfaces of the reactor core."""

from __future__ import annotations

__all__: list[str] = []
