"""The shop as a lakehouse tenant, end to end through `airflow dags test` (local adapter).

Real Airflow, real runner subprocesses writing Delta tables to the test run's S3 server,
real dbt-duckdb reading them back: gold must equal the DuckDB demo's gold row for row,
built from the same shop source.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from datakits.writers.lakehouse import lake_location
from devtools.s3 import S3Server
from devtools.shop import generate_shop
from tests.integration.test_tenant_dags import ORDERS, dags_test

GOLD = "select * from gold.revenue_per_customer_month order by all"


def rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    with duckdb.connect(str(path), read_only=True) as conn:
        return conn.execute(sql).fetchall()


def test_lake_tenant_gold_equals_the_duckdb_demo(
    airflow_env: dict[str, str], s3_server: S3Server, bucket: str, tmp_path: Path
) -> None:
    source = f"sqlite:///{tmp_path}/shop.sqlite"
    source_rows = generate_shop(source, orders=ORDERS)
    lake_db = tmp_path / "lake.duckdb"
    lake_url = s3_server.warehouse_url(bucket, duckdb=lake_db)
    done = dags_test(
        "tenant_lake", {**airflow_env, "LAKE_SOURCE_URL": source, "LAKE_WAREHOUSE_URL": lake_url}
    )
    assert lake_location(lake_url).secret_key not in done.stdout + done.stderr

    # bronze: one Delta table per source table under the tenant's prefix, one commit each
    objects = s3_server.client().list_objects_v2(Bucket=bucket)["Contents"]
    commits = sorted(o["Key"] for o in objects if o["Key"].endswith(".json"))
    assert commits == [f"lake/bronze/{t}/_delta_log/{0:020}.json" for t in sorted(source_rows)]

    demo_db = tmp_path / "demo.duckdb"
    dags_test(
        "tenant_demo",
        {**airflow_env, "DEMO_SOURCE_URL": source, "DEMO_WAREHOUSE_URL": f"duckdb:///{demo_db}"},
    )
    gold = rows(lake_db, GOLD)
    assert len(gold) > 0
    assert gold == rows(demo_db, GOLD)
    for table, n in source_rows.items():
        assert rows(lake_db, f"select count(*) from silver.{table}") == rows(
            demo_db, f"select count(*) from silver.{table}"
        )
        assert rows(lake_db, f"select count(*) from bronze.{table}") == [(n,)]
