"""(being written) The adbapi package."""

from __future__ import annotations

__all__: list[str] = []
