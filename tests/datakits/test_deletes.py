"""`deletes: ignore | soft | hard`: rows deleted at the source reach bronze (issue 15).

Real sources (SQLite, PostgreSQL) into real warehouses (DuckDB, PostgreSQL). Three loads
of an incremental table: the first load, then inserts + updates + deletes, then a
deleted key coming back and another delete. `hard` leaves bronze equal to the source row
by row; `soft` keeps the deleted rows with `_deleted_at` (cleared when the key returns);
`ignore` is the behaviour before `deletes` existed. A SIGKILL during the key scan leaves
bronze, the watermark and the audit as they were.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from datakits.errors import ConfigError
from datakits.load import load_table
from datakits.spec import TableSpec
from devtools.postgres import PostgresCluster
from tests.datakits.bronze_state import audit_count, checksum, execute, watermark
from tests.datakits.conftest import _db_name, make_spec, query, table_names
from tests.datakits.runner_proc import start_extract

FIRST = [(1, "a", 1), (2, "b", 2), (3, "c", 3), (4, "d", 4), (5, "e", 5)]
#: Second load: 2 updated, 6 added, 3 and 4 deleted. Third: 3 comes back, 5 deleted.
SECOND = [
    "UPDATE orders SET label = 'b2', version = 6 WHERE id = 2",
    "INSERT INTO orders VALUES (6, 'f', 7)",
    "DELETE FROM orders WHERE id IN (3, 4)",
]
THIRD = ["INSERT INTO orders VALUES (3, 'c again', 8)", "DELETE FROM orders WHERE id = 5"]


def _source(kind: str, tmp_path: Path, pg_url: Callable[[], str]) -> str:
    ddl = "CREATE TABLE orders (id integer PRIMARY KEY, label text, version integer NOT NULL)"
    url = f"sqlite:///{tmp_path / 'source.db'}" if kind == "sqlite" else pg_url()
    inserts = [f"INSERT INTO orders VALUES ({i}, '{label}', {v})" for i, label, v in FIRST]
    execute(url, ddl, *inserts)
    return url


@pytest.fixture
def pg_url(pg_cluster: PostgresCluster, request: pytest.FixtureRequest) -> Callable[[], str]:
    return lambda: pg_cluster.create_database(_db_name(request, "src"))


def _table(deletes: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": "orders",
        "mode": "incremental",
        "cursor": "version",
        "primary_key": ["id"],
        "deletes": deletes,
        **extra,
    }


def _rows(url: str, columns: str = "id, label, version", schema: str = "bronze") -> list[Any]:
    return query(url, f"SELECT {columns} FROM {schema}.orders ORDER BY id")


def _source_rows(url: str) -> list[Any]:
    return query(url, "SELECT id, label, version FROM orders ORDER BY id")


def _deleted_ids(warehouse: str) -> dict[int, Any]:
    return {i: at for i, at in _rows(warehouse, "id, _deleted_at") if at is not None}


def _audit_deleted(warehouse: str) -> list[Any]:
    rows = query(warehouse, "SELECT deleted FROM meta.load_audit ORDER BY started_at")
    return [r[0] for r in rows]


@pytest.mark.parametrize("warehouse_kind", ["duckdb", "postgres"])
@pytest.mark.parametrize("source_kind", ["sqlite", "postgres"])
def test_hard_leaves_bronze_equal_to_the_source(
    source_kind: str,
    warehouse_kind: str,
    tmp_path: Path,
    pg_url: Callable[[], str],
    make_warehouse: Callable[[str], str],
) -> None:
    source = _source(source_kind, tmp_path, pg_url)
    warehouse = make_warehouse(warehouse_kind)
    spec = make_spec(source_kind, warehouse_kind, _table("hard"))
    results = []
    for changes in ([], SECOND, THIRD):
        execute(source, *changes)
        results.append(load_table(spec, spec.tables[0], source, warehouse))
        assert _rows(warehouse) == _source_rows(source)
    assert [r.deleted for r in results] == [0, 2, 1]
    assert _audit_deleted(warehouse) == [0, 2, 1]
    assert table_names(warehouse, "bronze") == ["orders"]  # no __keys_ table left
    assert "_deleted_at" not in [r[0] for r in _columns(warehouse)]


@pytest.mark.parametrize("warehouse_kind", ["duckdb", "postgres"])
@pytest.mark.parametrize("source_kind", ["sqlite", "postgres"])
def test_soft_marks_deleted_rows_and_clears_the_mark_when_a_key_returns(
    source_kind: str,
    warehouse_kind: str,
    tmp_path: Path,
    pg_url: Callable[[], str],
    make_warehouse: Callable[[str], str],
) -> None:
    source = _source(source_kind, tmp_path, pg_url)
    warehouse = make_warehouse(warehouse_kind)
    spec = make_spec(source_kind, warehouse_kind, _table("soft"))
    first = load_table(spec, spec.tables[0], source, warehouse)
    assert first.deleted == 0
    assert _deleted_ids(warehouse) == {}  # the column exists from the first load on

    execute(source, *SECOND)
    second = load_table(spec, spec.tables[0], source, warehouse)
    assert second.deleted == 2
    marked = _deleted_ids(warehouse)
    assert sorted(marked) == [3, 4]
    assert len(set(marked.values())) == 1
    # Deleted rows stay as they were last loaded; the others equal the source's.
    live = [r for r in _rows(warehouse) if r[0] not in marked]
    assert live == _source_rows(source)
    assert [r for r in _rows(warehouse) if r[0] in marked] == [(3, "c", 3), (4, "d", 4)]

    execute(source, *THIRD)
    third = load_table(spec, spec.tables[0], source, warehouse)
    assert third.deleted == 1  # 5 newly marked; 4 already was
    again = _deleted_ids(warehouse)
    assert sorted(again) == [4, 5]
    assert again[4] == marked[4]  # dated by the load that first missed it
    assert again[5] != marked[4]
    live = [r for r in _rows(warehouse) if r[0] not in again]
    assert live == _source_rows(source)  # 3 is back, unmarked, with its new values
    assert _audit_deleted(warehouse) == [0, 2, 1]


@pytest.mark.parametrize("warehouse_kind", ["duckdb", "postgres"])
def test_ignore_keeps_deleted_rows_as_before(
    warehouse_kind: str,
    tmp_path: Path,
    pg_url: Callable[[], str],
    make_warehouse: Callable[[str], str],
) -> None:
    source = _source("sqlite", tmp_path, pg_url)
    warehouse = make_warehouse(warehouse_kind)
    spec = make_spec("sqlite", warehouse_kind, _table("ignore"))
    load_table(spec, spec.tables[0], source, warehouse)
    execute(source, *SECOND)
    result = load_table(spec, spec.tables[0], source, warehouse)
    assert result.deleted is None
    assert [r[0] for r in _rows(warehouse)] == [1, 2, 3, 4, 5, 6]
    assert "_deleted_at" not in [r[0] for r in _columns(warehouse)]
    assert _audit_deleted(warehouse) == [None, None]


@pytest.mark.parametrize("warehouse_kind", ["duckdb", "postgres"])
def test_composite_key_deletes_only_the_missing_combination(
    warehouse_kind: str, tmp_path: Path, make_warehouse: Callable[[str], str]
) -> None:
    path = tmp_path / "source.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE orders (region text, id integer, label text, version integer)")
        conn.executemany(
            "INSERT INTO orders VALUES (?, ?, ?, ?)",
            [("eu", 1, "a", 1), ("us", 1, "b", 2), ("eu", 2, "c", 3), ("us", 2, "d", 4)],
        )
    conn.close()
    source = f"sqlite:///{path}"
    warehouse = make_warehouse(warehouse_kind)
    spec = make_spec("sqlite", warehouse_kind, _table("hard", primary_key=["region", "id"]))
    load_table(spec, spec.tables[0], source, warehouse)
    execute(source, "DELETE FROM orders WHERE region = 'eu' AND id = 1")
    result = load_table(spec, spec.tables[0], source, warehouse)
    assert result.deleted == 1
    assert query(warehouse, "SELECT region, id FROM bronze.orders ORDER BY region, id") == [
        ("eu", 2),
        ("us", 1),
        ("us", 2),
    ]


@pytest.mark.parametrize(
    ("table", "words"),
    [
        ({"name": "t", "deletes": "hard"}, "mode full_refresh"),
        ({"name": "t", "mode": "append", "cursor": "id", "deletes": "soft"}, "mode append"),
    ],
)
def test_deletes_outside_incremental_is_a_clear_error(table: dict[str, Any], words: str) -> None:
    with pytest.raises(ValidationError, match="is for mode incremental") as info:
        TableSpec.model_validate(table)
    assert words in str(info.value)


def _columns(url: str) -> list[Any]:
    return query(
        url,
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = 'bronze' AND table_name = 'orders'",
    )


# --- a SIGKILL during the key scan ------------------------------------------------------

ROWS, BATCH = 200_000, 20_000


def _kill_in_key_scan(proc: Any) -> bool:
    """SIGKILL `proc` at its first key-scan progress line: the row count stops growing
    while the bytes do (the scan reports bytes only). True if that line was seen."""
    assert proc.stderr is not None
    watchdog = threading.Timer(120, proc.kill)
    watchdog.start()
    last, found = None, False
    try:
        while True:
            line = proc.stderr.readline()
            if not line:
                break
            if not (line.startswith("acme: ") and " rows/s" in line):
                continue
            count = line.rsplit(": ", 1)[1].split(" rows", 1)[0]
            if count == last:
                found = True
                break
            last = count
    finally:
        watchdog.cancel()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stderr.close()
    if proc.stdout is not None:
        proc.stdout.close()
    return found


@pytest.mark.parametrize("warehouse_kind", ["duckdb", "postgres"])
def test_sigkill_during_the_key_scan_keeps_the_last_good_state(
    warehouse_kind: str, pg_source: str, make_warehouse: Callable[[str], str]
) -> None:
    execute(
        pg_source,
        "CREATE TABLE big (id bigint PRIMARY KEY, label text NOT NULL, version bigint NOT NULL)",
        f"INSERT INTO big SELECT g, 'label ' || g, g FROM generate_series(1, {ROWS}) g",
    )
    warehouse = make_warehouse(warehouse_kind)
    table = {
        "name": "big",
        "mode": "incremental",
        "cursor": "version",
        "primary_key": ["id"],
        "deletes": "hard",
        "batch_size": BATCH,
    }
    spec = make_spec("postgres", warehouse_kind, table)
    load_table(spec, spec.tables[0], pg_source, warehouse)

    def state() -> tuple[Any, ...]:
        return (
            checksum(warehouse, "big"),
            watermark(warehouse, "big"),
            audit_count(warehouse, "big"),
            table_names(warehouse, "bronze"),
        )

    good = state()
    execute(
        pg_source,
        f"UPDATE big SET label = 'changed', version = version + {ROWS} WHERE id % 4 = 0",
        "DELETE FROM big WHERE id % 10 = 1",
    )
    proc = start_extract(spec, "big", pg_source, warehouse, RUNNER_PROGRESS_INTERVAL="0")
    assert _kill_in_key_scan(proc), "the runner ended before its key scan reported"
    assert proc.returncode == -signal.SIGKILL
    assert state() == good

    result = load_table(spec, spec.tables[0], pg_source, warehouse)
    assert result.deleted == ROWS // 10
    assert checksum(warehouse, "big") == checksum(pg_source, "big", schema="public")
    assert table_names(warehouse, "bronze") == ["big"]


def test_a_source_column_named_deleted_at_is_refused_by_name(
    tmp_path: Path, make_warehouse: Callable[[str], str]
) -> None:
    path = tmp_path / "source.db"
    execute(
        f"sqlite:///{path}",
        "CREATE TABLE orders (id integer, version integer, _deleted_at text)",
        "INSERT INTO orders VALUES (1, 1, NULL)",
    )
    spec = make_spec("sqlite", "duckdb", _table("soft"))
    with pytest.raises(ConfigError, match="_deleted_at, reserved"):
        load_table(spec, spec.tables[0], f"sqlite:///{path}", make_warehouse("duckdb"))
