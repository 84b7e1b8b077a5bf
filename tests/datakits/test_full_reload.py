"""A full reload asked for by an operator (`runner extract --full-refresh`).

An incremental table only re-reads rows whose cursor moved. A row changed without
moving its cursor, or deleted, stays wrong in bronze until someone reloads the table:
that is what the DAG's `full_refresh` trigger param is for. The reload must rebuild
bronze from every source row and replace the watermark in the same transaction.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

from datakits.load import load_table
from tests.datakits.bronze_state import watermark
from tests.datakits.conftest import make_spec, query, sqlite_table
from tests.datakits.runner_proc import RUNNER, runner_env

ROWS = [(i, f"v{i}", i // 10) for i in range(100)]


def _setup(tmp_path: Path) -> tuple[str, str]:
    source = sqlite_table(
        tmp_path / "src.sqlite",
        "CREATE TABLE ev (id INTEGER PRIMARY KEY, v TEXT NOT NULL, ver INTEGER NOT NULL)",
        ROWS,
    )
    return source, f"duckdb:///{tmp_path / 'wh.duckdb'}"


def _touch_source(tmp_path: Path) -> None:
    """Changes an incremental load cannot see: a value changed without moving the
    cursor, and a deleted row; plus a new row that moves the watermark."""
    with sqlite3.connect(tmp_path / "src.sqlite") as conn:
        conn.execute("UPDATE ev SET v = 'silently changed' WHERE id = 5")
        conn.execute("DELETE FROM ev WHERE id = 7")
        conn.execute("INSERT INTO ev VALUES (100, 'v100', 10)")
    conn.close()


def test_full_reload_rebuilds_an_incremental_table_and_resets_its_watermark(
    tmp_path: Path,
) -> None:
    source, warehouse = _setup(tmp_path)
    spec = make_spec(
        "sqlite",
        "duckdb",
        {"name": "ev", "mode": "incremental", "cursor": "ver", "primary_key": ["id"]},
    )
    table = spec.tables[0]
    load_table(spec, table, source, warehouse)
    _touch_source(tmp_path)

    plain = load_table(spec, table, source, warehouse)
    bronze = query(warehouse, "SELECT id, v FROM bronze.ev ORDER BY id")
    assert (5, "v5") in bronze and (7, "v7") in bronze  # what incremental cannot see
    assert plain.rows == 11  # the window: ver >= 9

    reload = load_table(spec, table, source, warehouse, full_reload=True)
    assert reload.rows == 100
    assert query(warehouse, "SELECT id, v, ver FROM bronze.ev ORDER BY id") == query(
        source, "SELECT id, v, ver FROM ev ORDER BY id"
    )
    assert watermark(warehouse, "ev") == ("ver", "10")


def test_runner_full_refresh_flag(tmp_path: Path) -> None:
    """The flag the DAG's trigger param adds reaches the load through the real CLI."""
    source, warehouse = _setup(tmp_path)
    spec = make_spec(
        "sqlite",
        "duckdb",
        {"name": "ev", "mode": "incremental", "cursor": "ver", "primary_key": ["id"]},
    )
    env = runner_env(spec, source, warehouse)
    first = subprocess.run(
        [RUNNER, "extract", "--table", "ev"], env=env, capture_output=True, text=True, check=False
    )
    assert first.returncode == 0, first.stderr
    _touch_source(tmp_path)
    again = subprocess.run(
        [RUNNER, "extract", "--table", "ev", "--full-refresh"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout.splitlines()[-1])["rows"] == 100
    assert query(warehouse, "SELECT count(*) FROM bronze.ev WHERE v = 'silently changed'") == [(1,)]
