"""Shared fixtures: real database servers, reached the way DEVELOPERS.md says.

PostgreSQL and MariaDB are read from ``ADBAPI_TEST_POSTGRES_DSN`` and
``ADBAPI_TEST_MYSQL_DSN`` (else the local defaults). An unreachable server skips
its tests with the reason, unless ``REQUIRE_POSTGRES=1`` / ``REQUIRE_MYSQL=1``
(CI sets both), in which case the test fails.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

DEFAULT_POSTGRES_DSN = "host=127.0.0.1 port=5432 dbname=test"
DEFAULT_MYSQL_DSN = "mysql://root:@127.0.0.1:3306/test"


def _unavailable(envFlag: str, reason: str) -> None:
    if os.environ.get(envFlag) == "1":
        pytest.fail(f"{reason} (and {envFlag}=1 requires it)")
    pytest.skip(reason)


def parseMysqlDSN(dsn: str) -> dict[str, Any]:
    """Turn ``mysql://user:password@host:port/database`` into PyMySQL connect keywords."""
    from urllib.parse import unquote, urlparse

    parsed = urlparse(dsn)
    if parsed.scheme not in ("mysql", "mariadb"):
        raise ValueError(f"ADBAPI_TEST_MYSQL_DSN must be a mysql:// URL, got scheme {parsed.scheme!r}")
    return {
        "host": parsed.hostname or "127.0.0.1",
        "port": parsed.port or 3306,
        "user": unquote(parsed.username or "root"),
        "password": unquote(parsed.password or ""),
        "database": (parsed.path or "/test").lstrip("/") or "test",
    }


@pytest.fixture(scope="session")
def postgresDSN() -> str:
    """A libpq DSN for the test PostgreSQL server (skips or fails if unreachable)."""
    dsn = os.environ.get("ADBAPI_TEST_POSTGRES_DSN", DEFAULT_POSTGRES_DSN)
    try:
        import psycopg2
    except ImportError as e:  # pragma: no cover - the test extra installs it
        _unavailable("REQUIRE_POSTGRES", f"psycopg2 is not installed: {e}")
    try:
        conn = psycopg2.connect(dsn, connect_timeout=5)
    except Exception as e:
        _unavailable("REQUIRE_POSTGRES", f"PostgreSQL is unreachable: {type(e).__name__}: {e}")
    conn.close()
    return dsn


@pytest.fixture(scope="session")
def mysqlConnectKw() -> dict[str, Any]:
    """PyMySQL connect keywords for the test MariaDB server (skips or fails if unreachable)."""
    kw = parseMysqlDSN(os.environ.get("ADBAPI_TEST_MYSQL_DSN", DEFAULT_MYSQL_DSN))
    try:
        import pymysql
    except ImportError as e:  # pragma: no cover - the test extra installs it
        _unavailable("REQUIRE_MYSQL", f"PyMySQL is not installed: {e}")
    try:
        conn = pymysql.connect(connect_timeout=5, **kw)
    except Exception as e:
        _unavailable("REQUIRE_MYSQL", f"MariaDB is unreachable: {type(e).__name__}: {e}")
    conn.close()
    return kw


@pytest.fixture(params=["epoll", "asyncio", "qt"])
def reactor(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh real reactor for one test, with every connection and port it left closed afterwards.

    Each test runs three times: on our epoll Reactor, an AsyncioReactor (on a new asyncio loop) and a
    QtReactor (on the process's QCoreApplication).

    Test modules of the loop itself define their own ``reactor`` fixture, which takes precedence.
    """
    from tests.netsupport import closeReactor, newReactor

    r = newReactor(request.param)
    yield r
    closeReactor(r)


@pytest.fixture
def uniqueTableName() -> Iterator[str]:
    """A table name no other test uses (the test creates and drops it)."""
    yield f"t_{uuid.uuid4().hex[:12]}"
