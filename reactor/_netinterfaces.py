"""(being written) zope.interface interfaces of protocols and transports."""

from __future__ import annotations

__all__: list[str] = []
