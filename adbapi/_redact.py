"""Keep passwords out of reprs, log lines and error messages.

Connection arguments are handed to the driver unchanged; everything we *show*
goes through :class:`Redactor`, which knows the secret values of one pool's
arguments and masks them wherever they appear.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

__all__ = ["MASK", "Redactor", "isSecretKey", "redactDSN"]

MASK = "***"

_SECRET_KEY = re.compile(r"pass|pwd|secret|token|credential|api_?key", re.IGNORECASE)
# libpq keyword/value strings: password = 'it''s' or password=plain
_KV_PASSWORD = re.compile(
    r"""(?P<key>\b(?:password|passwd|pwd|sslpassword)\s*=\s*)(?P<value>'(?:[^'\\]|\\.|'')*'|\S+)""",
    re.IGNORECASE,
)
# scheme://user:password@host
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.\-]*://[^:/@\s]*:)(?P<value>[^@\s]*)(?P<tail>@)", re.I)


def isSecretKey(key: str) -> bool:
    """True for connect keywords whose value is a secret (``password``, ``passwd``, ...)."""
    return bool(_SECRET_KEY.search(key))


def redactDSN(dsn: str) -> str:
    """Return ``dsn`` with any password (libpq ``key=value`` or URL form) masked."""
    dsn = _URL_PASSWORD.sub(lambda m: m.group("head") + MASK + m.group("tail"), dsn)
    return _KV_PASSWORD.sub(lambda m: m.group("key") + MASK, dsn)


def _secretsInDSN(dsn: str) -> list[str]:
    found: list[str] = []
    for m in _KV_PASSWORD.finditer(dsn):
        value = m.group("value")
        if value.startswith("'") and value.endswith("'") and len(value) >= 2:
            found.append(value)
            value = value[1:-1].replace("''", "'").replace("\\'", "'").replace("\\\\", "\\")
        found.append(value)
    try:
        parts = urlsplit(dsn)
        if parts.password:
            found.append(parts.password)
    except ValueError:
        pass
    m2 = _URL_PASSWORD.search(dsn)
    if m2 and m2.group("value"):
        found.append(m2.group("value"))
    return found


class Redactor:
    """Masks one pool's secrets in text and in argument listings.

    Built once, in the constructor of the pool, from the connect arguments; read
    from any thread afterwards (it is immutable).
    """

    def __init__(self, connargs: Sequence[Any], connkw: Mapping[str, Any]) -> None:
        secrets: set[str] = set()
        for arg in connargs:
            if isinstance(arg, str):
                secrets.update(_secretsInDSN(arg))
        for key, value in connkw.items():
            if isSecretKey(key) and value not in (None, ""):
                secrets.add(str(value))
            elif isinstance(value, str):
                secrets.update(_secretsInDSN(value))
        # Longest first so a secret that contains another is masked whole.
        self._secrets = tuple(sorted((s for s in secrets if s), key=len, reverse=True))
        self._connargs = tuple(connargs)
        self._connkw = dict(connkw)

    @property
    def hasSecrets(self) -> bool:
        return bool(self._secrets)

    def scrub(self, text: str) -> str:
        """Return ``text`` with every known secret replaced by ``***``."""
        text = redactDSN(text)
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def describe(self) -> str:
        """The connect arguments as ``repr`` would show them, secrets masked."""
        parts = [repr(self.scrub(a)) if isinstance(a, str) else self.scrub(repr(a)) for a in self._connargs]
        for key, value in self._connkw.items():
            shown = MASK if isSecretKey(key) and value not in (None, "") else self.scrub(repr(value))
            parts.append(f"{key}={shown}")
        return ", ".join(parts)

    def scrubException(self, exc: BaseException) -> BaseException:
        """Mask secrets in ``exc``'s arguments (and its causes), keeping its class; returns ``exc``.

        Used on errors raised while connecting, whose messages may echo the DSN.
        """
        seen: set[int] = set()
        current: BaseException | None = exc
        while current is not None and id(current) not in seen:
            seen.add(id(current))
            if self._secrets or _KV_PASSWORD.search(str(current)) or _URL_PASSWORD.search(str(current)):
                newArgs = tuple(self.scrub(a) if isinstance(a, str) else a for a in current.args)
                try:
                    current.args = newArgs
                except (AttributeError, TypeError):  # pragma: no cover - exotic exception classes
                    pass
            current = current.__cause__ or current.__context__
        return exc
