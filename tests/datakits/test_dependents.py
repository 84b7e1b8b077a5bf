"""Bronze reloads keep the views (and other objects) that depend on bronze working.

A silver layer of views over bronze (what dbt's `materialized: view` builds) must answer
after every kind of load: a full refresh (PostgreSQL refuses to DROP a table a view
reads, so bronze is refilled in place), an incremental merge, and schema drift that adds
a column (in a delta load and in a full refresh). On DuckDB, which binds views when they
are read, the rename swap keeps them working too. A type change PostgreSQL refuses under
a view stays a permanent failure (exit 2) that names the view, with bronze unchanged,
and a runner killed with SIGKILL mid-load leaves the last good state, views included.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from datakits.load import load_table
from tests.datakits.bronze_state import audit_count, checksum, columns, execute
from tests.datakits.conftest import make_spec, query, table_names
from tests.datakits.runner_proc import run_extract, start_extract

KINDS = ["postgres", "duckdb"]

#: The silver layer: a projection view, an aggregate view, and a `SELECT *` view.
VIEWS = (
    "CREATE SCHEMA IF NOT EXISTS silver",
    "CREATE VIEW silver.ev_clean AS SELECT id, upper(v) AS v FROM bronze.ev",
    "CREATE VIEW silver.ev_stats AS SELECT count(*) AS n, max(id) AS top FROM bronze.ev",
    "CREATE VIEW silver.ev_all AS SELECT * FROM bronze.ev",
)


def _sqlite(path: Path, *statements: str) -> None:
    with closing(sqlite3.connect(path)) as conn, conn:
        for statement in statements:
            conn.execute(statement)


def _silver(warehouse: str) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    return (
        query(warehouse, "SELECT id, v FROM silver.ev_clean ORDER BY id"),
        query(warehouse, "SELECT n, top FROM silver.ev_stats"),
    )


def _bronze(warehouse: str, names: str = "id, v") -> list[tuple[Any, ...]]:
    return query(warehouse, f"SELECT {names} FROM bronze.ev ORDER BY id")


@pytest.mark.postgres
@pytest.mark.parametrize("kind", KINDS)
def test_views_on_bronze_answer_after_full_refresh_merge_and_drift(
    kind: str, tmp_path: Path, make_warehouse: Callable[[str], str]
) -> None:
    path = tmp_path / "source.db"
    _sqlite(
        path,
        "CREATE TABLE ev (id INTEGER PRIMARY KEY, v TEXT, seq INTEGER)",
        "INSERT INTO ev VALUES (1, 'a', 10), (2, 'b', 20), (3, 'c', 30)",
    )
    source, warehouse = f"sqlite:///{path}", make_warehouse(kind)
    full = make_spec("sqlite", kind, {"name": "ev", "primary_key": ["id"]})
    load_table(full, full.tables[0], source, warehouse)
    execute(warehouse, *VIEWS)
    assert _silver(warehouse) == ([(1, "A"), (2, "B"), (3, "C")], [(3, 3)])

    # 1. a full refresh with the views in place: bronze is the source's new state
    _sqlite(path, "DELETE FROM ev WHERE id = 1", "UPDATE ev SET v = 'bb' WHERE id = 2")
    _sqlite(path, "INSERT INTO ev VALUES (4, 'd', 40)")
    done = run_extract(full, "ev", source, warehouse)
    assert done.returncode == 0, done.stderr
    assert _bronze(warehouse) == [(2, "bb"), (3, "c"), (4, "d")]
    assert _silver(warehouse) == ([(2, "BB"), (3, "C"), (4, "D")], [(3, 4)])
    assert table_names(warehouse, "bronze") == ["ev"]  # no staging table left

    # 2. incremental: the first run rebuilds (no watermark yet), the second merges
    incremental = make_spec(
        "sqlite",
        kind,
        {"name": "ev", "primary_key": ["id"], "cursor": "seq", "mode": "incremental"},
    )
    load_table(incremental, incremental.tables[0], source, warehouse)
    _sqlite(
        path, "UPDATE ev SET v = 'cc', seq = 50 WHERE id = 3", "INSERT INTO ev VALUES (5, 'e', 60)"
    )
    done = run_extract(incremental, "ev", source, warehouse)
    assert done.returncode == 0, done.stderr
    # only the rows from the watermark on (it is inclusive: id 4 again) were read: a merge
    assert '"rows": 3' in done.stdout
    assert _bronze(warehouse) == [(2, "bb"), (3, "cc"), (4, "d"), (5, "e")]
    assert _silver(warehouse) == ([(2, "BB"), (3, "CC"), (4, "D"), (5, "E")], [(4, 5)])

    # 3. drift: the source gains a column; a delta load adds it (ALTER TABLE ADD COLUMN)
    _sqlite(
        path,
        "ALTER TABLE ev ADD COLUMN note TEXT",
        "UPDATE ev SET note = 'n' || id, seq = 70 WHERE id = 4",
    )
    done = run_extract(incremental, "ev", source, warehouse)
    assert done.returncode == 0, done.stderr
    assert columns(warehouse, "ev") == ["id", "v", "seq", "note"]
    assert _bronze(warehouse, "id, note") == [(2, None), (3, None), (4, "n4"), (5, None)]
    assert _silver(warehouse) == ([(2, "BB"), (3, "CC"), (4, "D"), (5, "E")], [(4, 5)])

    # 4. drift in a full refresh: another new column, one gone at the source (kept)
    _sqlite(
        path,
        "ALTER TABLE ev ADD COLUMN extra INTEGER",
        "UPDATE ev SET extra = id * 100",
        "ALTER TABLE ev DROP COLUMN seq",
    )
    done = run_extract(full, "ev", source, warehouse)
    assert done.returncode == 0, done.stderr
    assert sorted(columns(warehouse, "ev")) == ["extra", "id", "note", "seq", "v"]
    assert _bronze(warehouse, "id, seq, extra") == [
        (2, None, 200),
        (3, None, 300),
        (4, None, 400),
        (5, None, 500),
    ]
    assert _silver(warehouse) == ([(2, "BB"), (3, "CC"), (4, "D"), (5, "E")], [(4, 5)])
    assert len(query(warehouse, "SELECT * FROM silver.ev_all")) == 4
    assert audit_count(warehouse, "ev") == 6


@pytest.mark.postgres
def test_a_type_change_under_a_view_is_refused_and_bronze_is_unchanged(
    tmp_path: Path, make_warehouse: Callable[[str], str]
) -> None:
    """PostgreSQL cannot change the type of a column a view reads: exit 2, naming it."""
    path = tmp_path / "source.db"
    _sqlite(
        path,
        "CREATE TABLE ev (id INTEGER PRIMARY KEY, v TEXT)",
        "INSERT INTO ev VALUES (1, 'a'), (2, 'b')",
    )
    source, warehouse = f"sqlite:///{path}", make_warehouse("postgres")
    spec = make_spec("sqlite", "postgres", {"name": "ev"})
    load_table(spec, spec.tables[0], source, warehouse)
    execute(
        warehouse,
        "CREATE SCHEMA silver",
        "CREATE VIEW silver.ev_view AS SELECT id, v FROM bronze.ev",
    )
    before = checksum(warehouse, "ev"), audit_count(warehouse, "ev")
    # v becomes an integer column at the source: bronze's text column must change type
    _sqlite(
        path,
        "CREATE TABLE ev2 (id INTEGER PRIMARY KEY, v INTEGER)",
        "INSERT INTO ev2 VALUES (1, 7), (2, 8), (3, 9)",
        "DROP TABLE ev",
        "ALTER TABLE ev2 RENAME TO ev",
    )
    done = run_extract(spec, "ev", source, warehouse)
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        "runner extract: cannot load bronze.ev (bronze unchanged): the load must change the "
        "type of its column v, but other objects depend on it (rule _RETURN on view "
        'silver.ev_view depends on column "v") and PostgreSQL refuses that while they exist: '
        "drop them before the load (dbt's next run recreates its own views) or keep the "
        "column's type at the source"
    ]
    assert (checksum(warehouse, "ev"), audit_count(warehouse, "ev")) == before
    assert query(warehouse, "SELECT id, v FROM silver.ev_view ORDER BY id") == [(1, "a"), (2, "b")]
    assert table_names(warehouse, "bronze") == ["ev"]
    # Without the view, the same load goes through (the rename swap).
    execute(warehouse, "DROP VIEW silver.ev_view")
    assert run_extract(spec, "ev", source, warehouse).returncode == 0
    assert _bronze(warehouse) == [(1, 7), (2, 8), (3, 9)]


ROWS, BATCH = 100_000, 10_000


def _kill_after(proc: Any, lines: int) -> int:
    """SIGKILL `proc` right after its n-th progress line (see test_crash.py)."""
    watchdog = threading.Timer(120, proc.kill)
    watchdog.start()
    seen = 0
    try:
        while seen < lines:
            line = proc.stderr.readline()
            if not line:
                break
            if " rows/s" in line and line.startswith("acme: "):
                seen += 1
    finally:
        watchdog.cancel()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stderr.close()
    proc.stdout.close()
    return seen


@pytest.mark.postgres
@pytest.mark.parametrize("kind", KINDS)
def test_sigkill_during_a_refill_under_views_keeps_the_last_good_state(
    kind: str, make_warehouse: Callable[[str], str], make_source: Callable[[str], str]
) -> None:
    source = make_source("postgres")
    execute(
        source,
        "CREATE TABLE ev (id bigint PRIMARY KEY, v text NOT NULL)",
        f"INSERT INTO ev SELECT g, 'v' || g FROM generate_series(1, {ROWS}) g",
    )
    warehouse = make_warehouse(kind)
    spec = make_spec("postgres", kind, {"name": "ev", "batch_size": BATCH, "primary_key": ["id"]})
    load_table(spec, spec.tables[0], source, warehouse)
    execute(warehouse, *VIEWS)
    good = checksum(warehouse, "ev"), audit_count(warehouse, "ev"), _silver_stats(warehouse)
    assert good[2] == [(ROWS, ROWS)]

    execute(
        source, f"INSERT INTO ev SELECT g, 'new' FROM generate_series({ROWS + 1}, {ROWS + BATCH}) g"
    )
    expected = checksum(source, "ev", schema="public")
    batches = (ROWS + BATCH) // BATCH
    for point in (batches // 2, batches):  # mid-stream; then while refilling or committing
        proc = start_extract(spec, "ev", source, warehouse, RUNNER_PROGRESS_INTERVAL="0")
        seen = _kill_after(proc, point)
        assert proc.returncode == -signal.SIGKILL
        state = checksum(warehouse, "ev"), audit_count(warehouse, "ev"), _silver_stats(warehouse)
        if point < batches:
            assert seen == point
            assert state == good
        else:
            assert state == good or state[0] == expected
        assert table_names(warehouse, "bronze") == ["ev"]

    load_table(spec, spec.tables[0], source, warehouse)
    assert checksum(warehouse, "ev") == expected
    assert _silver_stats(warehouse) == [(ROWS + BATCH, ROWS + BATCH)]


def _silver_stats(warehouse: str) -> list[tuple[Any, ...]]:
    return query(warehouse, "SELECT n, top FROM silver.ev_stats")
