"""Review fixes: the DuckDB streaming insert's `close`, SQLite timestamp filters, and
PostgreSQL refusing to drop a bronze table that views use."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from pathlib import Path

import pyarrow as pa
import pytest

from datakits.load import load_table
from datakits.writers.duckstream import StreamingInsert
from tests.datakits.conftest import make_spec, query


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
