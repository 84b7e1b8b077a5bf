"""Full refresh end to end, on real parts: every source kind into every warehouse kind."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest

from datakits.load import load_table
from tests.datakits.conftest import (
    SAMPLE_COLUMNS,
    expected_sample,
    make_spec,
    normalize,
    query,
    sqlite_table,
    table_names,
)

PAIRS = [
    ("sqlite", "duckdb"),
    ("sqlite", "postgres"),
    ("postgres", "duckdb"),
    ("postgres", "postgres"),
]


def bronze(url: str, columns: list[str], table: str = "sample") -> list[tuple[object, ...]]:
    rows = query(url, f"SELECT {', '.join(columns)} FROM bronze.{table} ORDER BY id")
    return [
        tuple(
            json.loads(v) if c == "payload" and v is not None else normalize(v)
            for c, v in zip(columns, row, strict=True)
        )
        for row in rows
    ]


@pytest.mark.parametrize(("source", "warehouse"), PAIRS)
def test_full_refresh_copies_values_and_audits(
    source: str,
    warehouse: str,
    make_source: Callable[[str], str],
    make_warehouse: Callable[[str], str],
) -> None:
    source_url, warehouse_url = make_source(source), make_warehouse(warehouse)
    spec = make_spec(source, warehouse, {"name": "sample"})

    result = load_table(spec, spec.tables[0], source_url, warehouse_url)

    assert result.rows == 3
    assert result.target == "bronze.sample"
    assert result.watermark is None
    assert result.bytes > 0
    assert bronze(warehouse_url, SAMPLE_COLUMNS) == expected_sample()
    stamps = query(warehouse_url, "SELECT DISTINCT _batch_id, _loaded_at FROM bronze.sample")
    assert len(stamps) == 1
    assert stamps[0][0] == result.batch_id
    assert stamps[0][1].tzinfo is not None
    audit = query(
        warehouse_url,
        "SELECT batch_id, tenant, table_name, mode, rows, status FROM meta.load_audit",
    )
    assert audit == [(result.batch_id, "acme", "sample", "full_refresh", 3, "success")]
    assert table_names(warehouse_url, "meta") == ["load_audit", "watermarks"]


@pytest.mark.parametrize("warehouse", ["duckdb", "postgres"])
def test_rerun_gives_same_bronze_with_new_batch(
    warehouse: str, make_source: Callable[[str], str], make_warehouse: Callable[[str], str]
) -> None:
    source_url, warehouse_url = make_source("sqlite"), make_warehouse(warehouse)
    spec = make_spec("sqlite", warehouse, {"name": "sample"})

    first = load_table(spec, spec.tables[0], source_url, warehouse_url)
    before = bronze(warehouse_url, SAMPLE_COLUMNS)
    second = load_table(spec, spec.tables[0], source_url, warehouse_url)

    assert bronze(warehouse_url, SAMPLE_COLUMNS) == before
    assert second.batch_id != first.batch_id
    assert query(warehouse_url, "SELECT DISTINCT _batch_id FROM bronze.sample") == [
        (second.batch_id,)
    ]
    audit = query(warehouse_url, "SELECT batch_id, rows FROM meta.load_audit ORDER BY started_at")
    assert audit == [(first.batch_id, 3), (second.batch_id, 3)]
    assert table_names(warehouse_url, "bronze") == ["sample"]


def test_postgres_bronze_has_statistics_after_a_swap(
    make_source: Callable[[str], str], make_warehouse: Callable[[str], str]
) -> None:
    """dbt reads bronze right after the load: the planner must not take it for empty."""
    source_url, warehouse_url = make_source("sqlite"), make_warehouse("postgres")
    spec = make_spec("sqlite", "postgres", {"name": "sample"})

    load_table(spec, spec.tables[0], source_url, warehouse_url)

    # A table never analysed has reltuples -1; ANALYZE of 3 rows counts them all.
    stats = query(
        warehouse_url,
        "SELECT c.reltuples FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'bronze' AND c.relname = 'sample'",
    )
    assert stats == [(3.0,)]


@pytest.mark.parametrize("source", ["sqlite", "postgres"])
def test_column_selection(
    source: str, make_source: Callable[[str], str], make_warehouse: Callable[[str], str]
) -> None:
    source_url, warehouse_url = make_source(source), make_warehouse("duckdb")
    spec = make_spec(source, "duckdb", {"name": "sample", "columns": ["id", "amount", "name"]})

    load_table(spec, spec.tables[0], source_url, warehouse_url)

    columns = [row[0] for row in query(warehouse_url, "DESCRIBE bronze.sample")]
    assert columns == ["id", "amount", "name", "_loaded_at", "_batch_id"]
    assert bronze(warehouse_url, ["id", "amount", "name"]) == expected_sample(
        ["id", "amount", "name"]
    )


class _CountingProgress:
    def __init__(self) -> None:
        self.batches: list[int] = []
        self.summary = ""

    def start(self, label: str) -> None:
        pass

    def advance(self, rows: int, nbytes: int) -> None:
        self.batches.append(rows)

    def finish(self, summary: str) -> None:
        self.summary = summary


@pytest.mark.parametrize(("source", "warehouse"), [("sqlite", "postgres"), ("postgres", "duckdb")])
def test_streams_every_row_once_in_batches(
    source: str,
    warehouse: str,
    tmp_path: Path,
    pg_source: str,
    make_warehouse: Callable[[str], str],
) -> None:
    n = 1_234
    rows = [(i, f"row {i}", Decimal(i) / 100) for i in range(n)]
    if source == "sqlite":
        source_url = sqlite_table(
            tmp_path / "big.db",
            "CREATE TABLE big (id INTEGER, label TEXT, amount NUMERIC(12, 2))",
            [(i, label, float(amount)) for i, label, amount in rows],
        )
    else:
        from tests.datakits.conftest import pg_table

        source_url = pg_source
        pg_table(
            source_url,
            "CREATE TABLE big (id integer, label text, amount numeric(12, 2))",
            [{"id": i, "label": label, "amount": amount} for i, label, amount in rows],
            "INSERT INTO big VALUES (:id, :label, :amount)",
        )
    warehouse_url = make_warehouse(warehouse)
    spec = make_spec(source, warehouse, {"name": "big", "batch_size": 100})
    progress = _CountingProgress()

    result = load_table(spec, spec.tables[0], source_url, warehouse_url, progress=progress)

    assert result.rows == n
    assert progress.batches == [100] * 12 + [34]
    assert f"{n:,} rows" in progress.summary
    loaded = query(warehouse_url, "SELECT id, label, amount FROM bronze.big ORDER BY id")
    assert loaded == rows


def test_postgres_specific_types_load_losslessly(
    pg_source: str, make_warehouse: Callable[[str], str]
) -> None:
    from tests.datakits.conftest import pg_table

    exact = "3.14159265358979323846264338327950288419716939937510"
    pg_table(
        pg_source,
        "CREATE TABLE odd (id smallint, u uuid, loose numeric, wide numeric(50, 2), "
        "naive timestamp, raw bytea, span interval, tags text[], clock time)",
        [{"exact": exact}],
        "INSERT INTO odd VALUES (7, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', "
        "CAST(:exact AS numeric), "
        "12345678901234567890123456789012345678901234.56, '2024-05-06 07:08:09.5', "
        "'\\x00ff'::bytea, '1 day 2 hours', ARRAY['a', 'b'], '12:34:56')",
    )
    warehouse_url = make_warehouse("duckdb")
    spec = make_spec("postgres", "duckdb", {"name": "odd"})

    load_table(spec, spec.tables[0], pg_source, warehouse_url)

    types = {row[0]: row[1] for row in query(warehouse_url, "DESCRIBE bronze.odd")}
    assert types["id"] == "BIGINT"
    assert types["loose"] == types["wide"] == types["u"] == types["span"] == "VARCHAR"
    assert types["naive"] == "TIMESTAMP"
    assert types["raw"] == "BLOB"
    assert types["clock"] == "TIME"
    row = query(warehouse_url, "SELECT u, loose, wide, naive, raw, tags FROM bronze.odd")[0]
    assert row[0] == "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
    assert row[1] == exact
    assert row[2] == "12345678901234567890123456789012345678901234.56"
    assert row[3].isoformat() == "2024-05-06T07:08:09.500000"
    assert row[4] == b"\x00\xff"
    assert row[5] == ["a", "b"]  # a native list (VARCHAR[]), no longer JSON text
    assert types["tags"] == "VARCHAR[]"
