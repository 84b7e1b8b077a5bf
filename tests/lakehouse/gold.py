"""The one check of the Spark tests: Spark's gold table equals the DuckDB path's, row for row."""

from __future__ import annotations

from pathlib import Path

import duckdb

#: The shop's gold model, built by both engines.
GOLD = "revenue_per_customer_month"


def assert_spark_gold_equals_duckdb(lake_db: Path, spark_warehouse: Path) -> None:
    """Spark wrote gold as Parquet under `spark_warehouse/gold.db/<model>`; DuckDB built it in
    `lake_db`. Same columns (DuckDB's order), same rows, and not a trivially small table."""
    with duckdb.connect(str(lake_db), read_only=True) as conn:
        expected = conn.execute(f"select * from gold.{GOLD} order by all").fetchall()
        columns = [c[0] for c in conn.execute(f"describe gold.{GOLD}").fetchall()]
    with duckdb.connect() as conn:
        parquet = str(spark_warehouse / "gold.db" / GOLD / "*.parquet")
        got = conn.execute(
            f"select {', '.join(columns)} from read_parquet(?) order by all", [parquet]
        ).fetchall()
    assert len(expected) > 10
    assert got == expected
