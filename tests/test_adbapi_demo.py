"""The adbapi demo runs as a script (SQLite, and PostgreSQL when reachable) and says what it did."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

DEMO = Path(__file__).resolve().parent.parent / "examples" / "adbapi_demo.py"


def _runDemo(extraEnv: dict[str, str]) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADBAPI_DEMO_POSTGRES_")}
    env.update(extraEnv)
    done = subprocess.run([sys.executable, str(DEMO)], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_demoRunsOnSqlite() -> None:
    """The demo runs on SQLite with no server: queries, rollback, cancel, timeout, statistics."""
    out = _runDemo({})
    markers = (
        "1. concurrent queries: 20 answers", "2. transaction rolled back", "balances still [100, 100]",
        "3. long query cancelled", "reusable: SELECT 1 -> 1", "4. addTimeout(0.2)", "TimeoutError",
        "5. statistics:", "closed:",
    )
    for marker in markers:
        assert marker in out, out


def test_demoRunsOnPostgres(postgresDSN: str) -> None:
    """With ADBAPI_DEMO_POSTGRES_DSN set the demo runs the same steps on PostgreSQL."""
    out = _runDemo({"ADBAPI_DEMO_POSTGRES_DSN": postgresDSN})
    assert "psycopg2" in out and "3. long query cancelled" in out and "balances still [100, 100]" in out, out


def test_demoRunsOnPostgresWithPsycopg3(postgresDSN: str) -> None:
    """ADBAPI_DEMO_POSTGRES_DRIVER=psycopg runs the same steps with psycopg 3."""
    out = _runDemo({"ADBAPI_DEMO_POSTGRES_DSN": postgresDSN, "ADBAPI_DEMO_POSTGRES_DRIVER": "psycopg"})
    assert "(psycopg)" in out and "3. long query cancelled" in out and "balances still [100, 100]" in out, out

