"""MySQL/MariaDB as a source, against the real MariaDB server the test run starts."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from datakits.errors import ConfigError, SourceUnavailable
from datakits.load import load_table
from devtools.mariadb import MariaDBServer
from tests.datakits.conftest import (
    SAMPLE,
    SAMPLE_COLUMNS,
    expected_sample,
    make_spec,
    normalize,
    query,
)


@pytest.fixture
def my_source(mariadb_server: MariaDBServer, request: pytest.FixtureRequest) -> str:
    digest = hashlib.sha1(request.node.nodeid.encode(), usedforsecurity=False).hexdigest()
    return mariadb_server.create_database(f"src_{digest[:12]}")


def _execute(url: str, *statements: str, rows: list[dict[str, Any]] | None = None) -> None:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            for statement in statements[:-1]:
                conn.execute(text(statement))
            if rows:
                conn.execute(text(statements[-1]), rows)
            else:
                conn.execute(text(statements[-1]))
    finally:
        engine.dispose()


def _sample(url: str) -> str:
    _execute(
        url,
        "SET time_zone = '+00:00'",
        "CREATE TABLE sample (id INT PRIMARY KEY, name VARCHAR(40), amount DECIMAL(10, 2), "
        "ratio DOUBLE, created_at TIMESTAMP(6) NULL, day DATE, active BOOLEAN, payload JSON) "
        "CHARACTER SET utf8mb4",
        "INSERT INTO sample VALUES (:id, :name, :amount, :ratio, :created_at, :day, :active, "
        ":payload)",
        rows=[
            {
                **row,
                "created_at": normalize(row["created_at"]),
                "payload": None if row["payload"] is None else json.dumps(row["payload"]),
            }
            for row in SAMPLE
        ],
    )
    return url


def _bronze(url: str) -> list[tuple[Any, ...]]:
    rows = query(url, f"SELECT {', '.join(SAMPLE_COLUMNS)} FROM bronze.sample ORDER BY id")
    out = []
    for row in rows:
        values = dict(zip(SAMPLE_COLUMNS, (normalize(v) for v in row), strict=True))
        if values["payload"] is not None:
            values["payload"] = json.loads(values["payload"])
        if values["active"] is not None:  # BOOLEAN is TINYINT(1): bronze keeps the integer
            values["active"] = bool(values["active"])
        out.append(tuple(values.values()))
    return out


@pytest.mark.parametrize("warehouse", ["duckdb", "postgres"])
@pytest.mark.parametrize("scheme", ["mysql", "mariadb"])
def test_full_refresh_from_mariadb(
    warehouse: str, scheme: str, my_source: str, make_warehouse: Callable[[str], str]
) -> None:
    source_url = _sample(my_source).replace("mysql+pymysql://", f"{scheme}://")
    warehouse_url = make_warehouse(warehouse)
    spec = make_spec("mysql", warehouse, {"name": "sample"})

    result = load_table(spec, spec.tables[0], source_url, warehouse_url)

    assert result.rows == 3
    assert _bronze(warehouse_url) == expected_sample()


def test_streams_in_batches(my_source: str, make_warehouse: Callable[[str], str]) -> None:
    _execute(
        my_source,
        "CREATE TABLE big (id INT PRIMARY KEY, label VARCHAR(20))",
        "INSERT INTO big SELECT seq, CONCAT('row ', seq) FROM seq_1_to_1234",
    )
    warehouse_url = make_warehouse("duckdb")
    spec = make_spec("mysql", "duckdb", {"name": "big", "batch_size": 100})
    seen: list[int] = []

    class Progress:
        def start(self, label: str) -> None:
            pass

        def advance(self, rows: int, nbytes: int) -> None:
            seen.append(rows)

        def finish(self, summary: str) -> None:
            pass

    result = load_table(spec, spec.tables[0], my_source, warehouse_url, progress=Progress())

    assert result.rows == 1234
    assert seen == [100] * 12 + [34]
    assert query(warehouse_url, "SELECT count(DISTINCT id), max(label) FROM bronze.big") == [
        (1234, "row 999")
    ]


def test_incremental_from_mariadb(my_source: str, make_warehouse: Callable[[str], str]) -> None:
    """The load modes are the engine's, not the source's: they work from MariaDB too."""
    _execute(
        my_source,
        "CREATE TABLE ev (id INT PRIMARY KEY, v VARCHAR(20), ver BIGINT)",
        "INSERT INTO ev SELECT seq, CONCAT('v', seq), seq DIV 10 FROM seq_1_to_500",
    )
    warehouse_url = make_warehouse("postgres")
    table = {
        "name": "ev",
        "mode": "incremental",
        "cursor": "ver",
        "primary_key": ["id"],
        "batch_size": 100,
    }
    spec = make_spec("mysql", "postgres", table)

    first = load_table(spec, spec.tables[0], my_source, warehouse_url)
    _execute(my_source, "UPDATE ev SET v = 'changed', ver = 100 WHERE id IN (3, 7)")
    second = load_table(spec, spec.tables[0], my_source, warehouse_url)

    assert first.rows == 500
    assert second.rows < 10  # the changed rows (and the ties at the watermark), not all
    assert query(warehouse_url, "SELECT count(*) FROM bronze.ev WHERE v = 'changed'") == [(2,)]
    assert query(warehouse_url, "SELECT count(*) FROM bronze.ev") == [(500,)]


def test_missing_table_is_a_config_error(
    my_source: str, make_warehouse: Callable[[str], str]
) -> None:
    _execute(my_source, "CREATE TABLE present (id INT)")
    spec = make_spec("mysql", "duckdb", {"name": "absent"})
    with pytest.raises(ConfigError, match=r"source table absent does not exist .*present"):
        load_table(spec, spec.tables[0], my_source, make_warehouse("duckdb"))


def test_wrong_password_is_unavailable_and_hidden(
    mariadb_server: MariaDBServer, make_warehouse: Callable[[str], str]
) -> None:
    url = f"mysql://root:s3cr3t-pw@127.0.0.1:{mariadb_server.port}/mysql"
    spec = make_spec("mysql", "duckdb", {"name": "user"})
    with pytest.raises(SourceUnavailable) as caught:
        load_table(spec, spec.tables[0], url, make_warehouse("duckdb"))
    assert "s3cr3t-pw" not in str(caught.value)
    assert "Access denied" in str(caught.value)
