"""(being written) Networking methods of the reactor (listenTCP, connectTCP, ...)."""

from __future__ import annotations

__all__: list[str] = []


class ReactorNetworkMixin:
    """Mixed into the reactor class: TCP, Unix, UDP and TLS listen/connect methods."""
