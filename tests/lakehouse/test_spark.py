"""`runner spark`: the shop's silver and gold built by dbt-spark from the bronze Delta
tables, in Spark local mode, equal row for row to the DuckDB path's gold.

Real parts only: bronze written by `load_table` to the test run's S3 server, `runner dbt`
(dbt-duckdb) and `runner spark` (dbt-spark, session method, a real JVM) as subprocesses.
Bronze reaches Spark through `copy` access (no hadoop-aws here); the snapshot, the Spark
read, the session and dbt are the production code path.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from datakits.load import load_table
from datakits.spec import LoadSpec
from devtools.s3 import S3Server
from devtools.shop import generate_shop
from tests.datakits.runner_proc import RUNNER, runner_env
from tests.lakehouse.gold import GOLD, assert_spark_gold_equals_duckdb

PROJECT = Path(__file__).resolve().parents[2] / "warehouses" / "_dbt" / "shop"
TABLES = ("customers", "products", "orders", "order_items")


def lake_spec() -> LoadSpec:
    return LoadSpec.model_validate(
        {
            "tenant": "lake",
            "source": {"kind": "sqlite", "connection": {"env": "SRC"}},
            "warehouse": {"kind": "lakehouse", "connection": {"env": "WH"}},
            "tables": [{"name": t} for t in TABLES],
        }
    )


def run(argv: list[str], env: dict[str, str]) -> dict[str, object]:
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


def test_spark_gold_equals_the_duckdb_gold(
    spark_java: str, s3_server: S3Server, bucket: str, tmp_path: Path
) -> None:
    source = f"sqlite:///{tmp_path}/shop.sqlite"
    generate_shop(source, orders=500)
    lake_db = tmp_path / "lake.duckdb"
    lake_url = s3_server.warehouse_url(bucket, duckdb=lake_db)
    spec = lake_spec()
    for table in spec.tables:
        load_table(spec, table, source, lake_url)

    env = runner_env(spec, source, lake_url)
    project = ["--project-dir", str(PROJECT)]
    run([RUNNER, "dbt", *project, "run", "--select", "silver", "gold"], env)
    warehouse = tmp_path / "spark-warehouse"
    spark_env = {**env, "RUNNER_SPARK_BRONZE": "copy", "RUNNER_SPARK_WAREHOUSE": str(warehouse)}
    # as the DAG runs it: silver, then gold in a task (a Spark session) of its own, which
    # finds silver where the first run wrote it; the second gold run rebuilds in place
    silver = run([RUNNER, "spark", *project, "run", "--select", "silver"], spark_env)
    assert silver["bronze_versions"] == dict.fromkeys(TABLES, 0)
    assert (silver["passed"], silver["failed"]) == (4, 0)
    for _ in range(2):
        gold = run([RUNNER, "spark", *project, "run", "--select", "gold"], spark_env)
        assert gold["models"] == [f"gold.{GOLD}"]

    assert_spark_gold_equals_duckdb(lake_db, warehouse)
