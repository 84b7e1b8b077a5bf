"""Review fixes: the DuckDB streaming insert's `close`, SQLite timestamp filters, and
PostgreSQL refusing to drop a bronze table that views use."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pytest

from datakits.load import load_table
from datakits.writers.duckstream import StreamingInsert
from tests.datakits.bronze_state import audit_count, checksum, execute
from tests.datakits.conftest import make_spec, query
from tests.datakits.runner_proc import run_extract


def test_close_raises_the_insert_error_when_it_died_with_the_queue_full() -> None:
    """The INSERT thread fails while the load's thread has filled the queue: `close`
    used to block forever on `put(_END)`; it must raise the thread's error at once."""
    release = threading.Event()

    def execute(reader: pa.RecordBatchReader) -> None:
        reader.read_next_batch()  # takes the first batch, then stops reading
        release.wait(10)
        raise OSError(28, "No space left on device")

    batch = pa.record_batch({"id": pa.array([1, 2, 3])})
    insert = StreamingInsert(execute)
    insert(batch)  # starts the thread, which takes it
    insert(batch)
    insert(batch)  # the queue (depth 2) is now full
    release.set()
    raised: list[BaseException] = []

    def close() -> None:
        try:
            insert.close()
        except BaseException as exc:
            raised.append(exc)

    closer = threading.Thread(target=close, daemon=True)
    closer.start()
    closer.join(timeout=10)
    assert not closer.is_alive(), "close() blocked on a dead insert's full queue"
    assert [str(e) for e in raised] == ["[Errno 28] No space left on device"]


@pytest.mark.parametrize(
    "value", ["2024-01-02T10:00:00", "2024-01-02 10:00:00"], ids=["T", "space"]
)
def test_sqlite_timestamp_filter_compares_instants(tmp_path: Path, value: str) -> None:
    """Rows stored in both ISO spellings; `at >= 10:00` keeps only the later instants.

    Compared as text, `2024-01-02 09:00:00` >= `2024-01-02T10:00:00` is false but
    `2024-01-02T09:30:00` >= `2024-01-02 10:00:00` is true: each spelling loaded a row
    from before the bound."""
    path = tmp_path / "source.db"
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("CREATE TABLE ev (id INTEGER PRIMARY KEY, at TIMESTAMP)")
        conn.executemany(
            "INSERT INTO ev VALUES (?, ?)",
            [
                (1, "2024-01-02 09:00:00"),
                (2, "2024-01-02T09:30:00"),
                (3, "2024-01-02 10:00:00"),
                (4, "2024-01-02T11:00:00"),
                (5, "2024-01-03 08:00:00"),
            ],
        )
    warehouse = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    spec = make_spec(
        "sqlite", "duckdb", {"name": "ev", "filter": [{"column": "at", "op": ">=", "value": value}]}
    )
    load_table(spec, spec.tables[0], f"sqlite:///{path}", warehouse)
    assert query(warehouse, "SELECT id FROM bronze.ev ORDER BY id") == [(3,), (4,), (5,)]
    below = make_spec(
        "sqlite", "duckdb", {"name": "ev", "filter": [{"column": "at", "op": "<", "value": value}]}
    )
    load_table(below, below.tables[0], f"sqlite:///{path}", warehouse)
    assert query(warehouse, "SELECT id FROM bronze.ev ORDER BY id") == [(1,), (2,)]


def test_views_on_bronze_make_a_reload_fail_permanently(
    tmp_path: Path, make_warehouse: Callable[[str], str]
) -> None:
    path = tmp_path / "source.db"
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("CREATE TABLE ev (id INTEGER PRIMARY KEY, v TEXT)")
        conn.executemany("INSERT INTO ev VALUES (?, ?)", [(1, "a"), (2, "b")])
    source, warehouse = f"sqlite:///{path}", make_warehouse("postgres")
    spec = make_spec("sqlite", "postgres", {"name": "ev"})
    load_table(spec, spec.tables[0], source, warehouse)
    execute(
        warehouse,
        "CREATE SCHEMA silver",
        "CREATE VIEW silver.ev_view AS SELECT id FROM bronze.ev",
        "CREATE VIEW silver.ev_count AS SELECT count(*) AS n FROM bronze.ev",
    )
    before = checksum(warehouse, "ev"), audit_count(warehouse, "ev")
    done = run_extract(spec, "ev", source, warehouse)
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        "runner extract: cannot load bronze.ev (bronze unchanged): the load must drop and "
        "recreate it, but other objects depend on it (view silver.ev_view depends on table "
        "bronze.ev; view silver.ev_count depends on table bronze.ev); bronze reloads drop "
        "and recreate the table: build such views in dbt (silver/gold) or drop them before "
        "the load"
    ]
    assert (checksum(warehouse, "ev"), audit_count(warehouse, "ev")) == before
    assert query(warehouse, "SELECT n FROM silver.ev_count") == [(2,)]
