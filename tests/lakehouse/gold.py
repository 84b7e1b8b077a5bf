"""The one check of the Spark tests: Spark's gold table equals the DuckDB path's, row for row."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import duckdb

from tests.datakits.runner_proc import RUNNER

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


def build_duckdb_gold(env: dict[str, str], project: Path) -> None:
    """The lake tenant's DuckDB path from the same bronze: `runner dbt run` of silver and
    gold into the DuckDB file `env`'s warehouse URL names (what Spark's gold is checked
    against)."""
    ran = subprocess.run(
        [RUNNER, "dbt", "--project-dir", str(project), "run", "--select", "silver", "gold"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert json.loads(ran.stdout.splitlines()[-1])["failed"] == 0
