"""Helpers of the observability tests: real `runner` runs, SQLite → DuckDB (the runner
itself is started by `tests.datakits.runner_proc.run_extract`, re-exported here)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

from datakits.spec import LoadSpec
from tests.datakits.runner_proc import run_extract

#: The newest `updated_at` in the `events` source table.
NEWEST = "2026-01-02 03:04:05"


def sqlite_source(path: Path) -> str:
    """`events` (incremental on a timestamp cursor, 3 rows) and `plain` (2 rows)."""
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, updated_at TIMESTAMP)")
        conn.executemany(
            "INSERT INTO events VALUES (?, ?)",
            [(1, "2026-01-01 00:00:00"), (2, "2026-01-01 12:00:00"), (3, NEWEST)],
        )
        conn.execute("CREATE TABLE plain (id INTEGER, name TEXT)")
        conn.executemany("INSERT INTO plain VALUES (?, ?)", [(1, "a"), (2, "b")])
    conn.close()
    return f"sqlite:///{path}"


def spec(tenant: str = "acme") -> LoadSpec:
    return LoadSpec.model_validate(
        {
            "tenant": tenant,
            "source": {"kind": "sqlite", "connection": {"env": "SRC_URL"}},
            "warehouse": {"kind": "duckdb", "connection": {"env": "WH_URL"}},
            "tables": [
                {
                    "name": "events",
                    "mode": "incremental",
                    "cursor": "updated_at",
                    "primary_key": ["id"],
                },
                {"name": "plain"},
                {"name": "absent"},
            ],
        }
    )


def result_of(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


__all__ = ["NEWEST", "result_of", "run_extract", "spec", "sqlite_source"]
