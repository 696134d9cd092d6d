"""(being written) The deferthreads package."""

from __future__ import annotations

__all__: list[str] = []
