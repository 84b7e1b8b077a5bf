"""A tenant file that chooses Spark (`dbt.engine: spark`), end to end through `airflow dags
test` on the local adapter: extracts write Delta bronze to the test run's S3 server, the
`dbt_silver` and `dbt_gold` tasks run `runner spark` (Spark local mode, a real JVM), and
its gold equals, row for row, what DuckDB (`runner dbt`, the lake tenant's engine) builds
from the very same bronze.

The tenant lives in a copy of the tenants folder under tmp: the committed tenants list is
counted by other tests, and its `warehouse_dir` is this test's own folder.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from dag_factory.loader import Loader
from datakits.writers.lakehouse import lake_location
from devtools.compiled import LOCAL_OUTPUT
from devtools.s3 import S3Server
from devtools.shop import generate_shop
from tests.datakits.runner_proc import runner_env
from tests.integration.test_tenant_dags import dags_test
from tests.lakehouse.gold import assert_spark_gold_equals_duckdb, build_duckdb_gold

REPO = Path(__file__).resolve().parents[2]
ORDERS = 600


def spark_tenant(warehouses: Path, spark_dir: Path) -> Path:
    """`lake_spark`: the lake tenant's file with Spark chosen for silver and gold."""
    doc = yaml.safe_load((warehouses / "lake" / "warehouse.yaml").read_text())
    doc.update(tenant="lake_spark", description="Shop on a lakehouse, silver and gold on Spark.")
    doc.pop("pool", None)
    doc["retries"] = 0  # a failing task fails the test now, not after retry delays
    doc["source"]["connection"] = {"env": "LAKE_SPARK_SOURCE_URL"}
    doc["warehouse"]["connection"] = {"env": "LAKE_SPARK_WAREHOUSE_URL"}
    doc["dbt"] = {
        **doc["dbt"],
        "engine": "spark",
        "spark": {"bronze_access": "copy", "warehouse_dir": str(spark_dir)},
    }
    folder = warehouses / "lake_spark"
    folder.mkdir()
    (folder / "warehouse.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return folder


def test_a_spark_tenant_runs_end_to_end_and_matches_duckdb(
    spark_java: str, airflow_env: dict[str, str], s3_server: S3Server, bucket: str, tmp_path: Path
) -> None:
    warehouses = tmp_path / "warehouses"
    shutil.copytree(REPO / "warehouses", warehouses, ignore=shutil.ignore_patterns(*LOCAL_OUTPUT))
    spark_dir = tmp_path / "spark-warehouse"
    spark_tenant(warehouses, spark_dir)
    source = f"sqlite:///{tmp_path}/shop.sqlite"
    source_rows = generate_shop(source, orders=ORDERS)
    lake_url = s3_server.warehouse_url(bucket)

    done = dags_test(
        "tenant_lake_spark",
        {
            **airflow_env,
            "DAG_FACTORY_WAREHOUSES": str(warehouses),
            "LAKE_SPARK_SOURCE_URL": source,
            "LAKE_SPARK_WAREHOUSE_URL": lake_url,
        },
    )
    assert lake_location(lake_url).secret_key not in done.stdout + done.stderr
    log = done.stdout + done.stderr
    assert "runner spark: bronze versions" in log  # the dbt tasks ran Spark, not DuckDB

    # bronze: one Delta commit per table under this tenant's prefix
    objects = s3_server.client().list_objects_v2(Bucket=bucket)["Contents"]
    commits = sorted(o["Key"] for o in objects if o["Key"].endswith(".json"))
    log_file = f"_delta_log/{0:020}.json"
    assert commits == [f"lake_spark/bronze/{t}/{log_file}" for t in sorted(source_rows)]

    # DuckDB from the same bronze, as the lake tenant builds it
    spec = Loader(warehouses).load(warehouses / "lake_spark" / "warehouse.yaml").spec
    lake_db = tmp_path / "lake.duckdb"
    env = runner_env(spec.load_spec(), source, s3_server.warehouse_url(bucket, duckdb=lake_db))
    build_duckdb_gold(env, warehouses / "_dbt" / "shop")
    assert_spark_gold_equals_duckdb(lake_db, spark_dir)
