"""Helpers for the datakits tests: real SQLite files, DuckDB files and PostgreSQL databases.

Every test builds its own small source tables, so what a test asserts is visible in it.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.pool import NullPool

from datakits.spec import LoadSpec
from devtools.postgres import PostgresCluster

UTC = dt.UTC


def make_spec(source: str, warehouse: str, *tables: dict[str, Any], **extra: Any) -> LoadSpec:
    """A LoadSpec for one tenant; `tables` are TableSpec dicts."""
    return LoadSpec.model_validate(
        {
            "tenant": "acme",
            "source": {"kind": source, "connection": {"env": "SRC_URL"}, **extra},
            "warehouse": {"kind": warehouse, "connection": {"env": "WH_URL"}},
            "tables": list(tables),
        }
    )


def query(url: str, sql: str) -> list[tuple[Any, ...]]:
    """Run one read-only statement with a throwaway engine (no pooled DuckDB handles)."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(text(sql))]
    finally:
        engine.dispose()


def table_names(url: str, schema: str) -> list[str]:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return sorted(inspect(conn).get_table_names(schema=schema))
    finally:
        engine.dispose()


def sqlite_table(path: Path, ddl: str, rows: Iterable[Sequence[Any]]) -> str:
    """Create a SQLite table with the plain sqlite3 module (its own loose typing)."""
    with sqlite3.connect(path) as conn:
        conn.execute(ddl)
        rows = list(rows)
        if rows:
            marks = ", ".join("?" * len(rows[0]))
            name = ddl.split()[2]
            conn.executemany(f"INSERT INTO {name} VALUES ({marks})", rows)
    conn.close()
    return f"sqlite:///{path}"


def pg_table(url: str, ddl: str, rows: Iterable[dict[str, Any]], insert: str) -> None:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(text(ddl))
            rows = list(rows)
            if rows:
                conn.execute(text(insert), rows)
    finally:
        engine.dispose()


def normalize(value: Any) -> Any:
    """Compare across warehouses: timestamps as naive UTC, JSON text as data."""
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


# The sample table every source/warehouse pair loads: unicode, decimals, timestamps, NULLs.
SAMPLE = [
    {
        "id": 1,
        "name": "Zoë ☕ 東京",
        "amount": Decimal("1234.50"),
        "ratio": 0.25,
        "created_at": dt.datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC),
        "day": dt.date(2024, 1, 2),
        "active": True,
        "payload": {"k": [1, "ü"]},
    },
    {
        "id": 2,
        "name": "plain",
        "amount": Decimal("-0.01"),
        "ratio": -1.5,
        "created_at": dt.datetime(2023, 12, 31, 23, 59, 59, tzinfo=UTC),
        "day": dt.date(1999, 12, 31),
        "active": False,
        "payload": [],
    },
    {
        "id": 3,
        "name": None,
        "amount": None,
        "ratio": None,
        "created_at": None,
        "day": None,
        "active": None,
        "payload": None,
    },
]
SAMPLE_COLUMNS = list(SAMPLE[0])


def expected_sample(columns: Sequence[str] = SAMPLE_COLUMNS) -> list[tuple[Any, ...]]:
    return [tuple(normalize(row[c]) for c in columns) for row in SAMPLE]


def sqlite_sample(path: Path) -> str:
    """The sample as SQLite stores it: REAL decimals, ISO text timestamps, 0/1 booleans."""

    def stored(row: dict[str, Any]) -> tuple[Any, ...]:
        created = row["created_at"]
        return (
            row["id"],
            row["name"],
            float(row["amount"]) if row["amount"] is not None else None,
            row["ratio"],
            # Two ISO spellings SQLite apps use: `T` + `Z`, and space + offset.
            None
            if created is None
            else created.isoformat().replace("+00:00", "Z")
            if row["id"] == 1
            else created.astimezone(dt.timezone(dt.timedelta(hours=2))).isoformat(sep=" "),
            row["day"].isoformat() if row["day"] else None,
            None if row["active"] is None else int(row["active"]),
            None if row["payload"] is None else json.dumps(row["payload"]),
        )

    return sqlite_table(
        path,
        "CREATE TABLE sample (id INTEGER PRIMARY KEY, name VARCHAR(40), amount DECIMAL(10, 2), "
        "ratio REAL, created_at TIMESTAMP, day DATE, active BOOLEAN, payload JSON)",
        [stored(row) for row in SAMPLE],
    )


def pg_sample(url: str) -> str:
    pg_table(
        url,
        "CREATE TABLE sample (id integer PRIMARY KEY, name text, amount numeric(10, 2), "
        "ratio double precision, created_at timestamptz, day date, active boolean, "
        "payload jsonb)",
        [
            {**row, "payload": json.dumps(row["payload"]) if row["payload"] is not None else None}
            for row in SAMPLE
        ],
        "INSERT INTO sample VALUES (:id, :name, :amount, :ratio, :created_at, :day, :active, "
        "CAST(:payload AS jsonb))",
    )
    return url


def _db_name(request: pytest.FixtureRequest, prefix: str) -> str:
    import hashlib

    digest = hashlib.sha1(request.node.nodeid.encode(), usedforsecurity=False).hexdigest()[:12]
    return f"{prefix}_{digest}"


@pytest.fixture
def pg_source(pg_cluster: PostgresCluster, request: pytest.FixtureRequest) -> str:
    """A fresh source database (separate from any warehouse database)."""
    return pg_cluster.create_database(_db_name(request, "src"))


@pytest.fixture
def make_warehouse(
    tmp_path: Path, pg_cluster: PostgresCluster, request: pytest.FixtureRequest
) -> Callable[[str], str]:
    """`make_warehouse(kind)` → URL of an empty DuckDB file or PostgreSQL database."""

    def make(kind: str) -> str:
        if kind == "duckdb":
            return f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
        return pg_cluster.create_database(_db_name(request, "wh"))

    return make


@pytest.fixture
def make_source(
    tmp_path: Path, pg_cluster: PostgresCluster, request: pytest.FixtureRequest
) -> Callable[[str], str]:
    """`make_source(kind)` → URL of a source holding the `sample` table."""

    def make(kind: str) -> str:
        if kind == "sqlite":
            return sqlite_sample(tmp_path / "source.db")
        return pg_sample(pg_cluster.create_database(_db_name(request, "src")))

    return make
