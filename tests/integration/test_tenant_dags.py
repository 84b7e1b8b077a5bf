"""Both repository tenants, end to end through `airflow dags test` on the local adapter.

Real Airflow (its own home and SQLite metadata DB), real runner subprocesses, real dbt,
a real DuckDB file for `demo` and the test run's real PostgreSQL for `acme`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

from devtools.postgres import PostgresCluster
from devtools.report import layer_counts
from devtools.shop import generate_shop

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ORDERS = 3_000


def dags_test(dag_id: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    tenant = dag_id.removeprefix("tenant_")
    done = subprocess.run(
        [BIN / "airflow", "dags", "test", dag_id],
        env={**env, "DAG_FACTORY_TENANTS": tenant},
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return done


def counts(url: str, schemas: dict[str, str]) -> dict[str, int]:
    return {name.split(".", 1)[1] + "@" + layer: n for layer, name, n in layer_counts(url, schemas)}


def test_demo_sqlite_to_duckdb(airflow_env: dict[str, str], tmp_path: Path):
    source = f"sqlite:///{tmp_path}/shop.sqlite"
    warehouse = f"duckdb:///{tmp_path}/warehouse.duckdb"
    source_rows = generate_shop(source, orders=ORDERS)
    dags_test(
        "tenant_demo", {**airflow_env, "DEMO_SOURCE_URL": source, "DEMO_WAREHOUSE_URL": warehouse}
    )
    found = counts(warehouse, {"bronze": "bronze", "silver": "silver", "gold": "gold"})
    for table, rows in source_rows.items():
        assert found[f"{table}@bronze"] == rows
        assert found[f"{table}@silver"] > 0
    assert found["revenue_per_customer_month@gold"] > 0


def test_acme_postgres_to_postgres(airflow_env: dict[str, str], pg_cluster: PostgresCluster):
    source = pg_cluster.create_database("acme_source")
    warehouse = pg_cluster.create_database("acme_warehouse")
    source_rows = generate_shop(source, orders=ORDERS, schema="shop")
    conn_env = {
        "AIRFLOW_CONN_ACME_SOURCE": f"postgres://postgres@127.0.0.1:{pg_cluster.port}/acme_source",
        "AIRFLOW_CONN_ACME_WAREHOUSE": f"postgres://postgres@127.0.0.1:{pg_cluster.port}/acme_warehouse",
    }
    dags_test("tenant_acme", {**airflow_env, **conn_env})
    found = counts(
        warehouse, {"bronze": "acme_bronze", "silver": "acme_silver", "gold": "acme_gold"}
    )
    for table, rows in source_rows.items():
        assert found[f"{table}@bronze"] == rows
        assert found[f"{table}@silver"] > 0
    assert found["revenue_per_customer_month@gold"] > 0
    engine = sa.create_engine(warehouse)
    with engine.connect() as conn:
        audit = conn.execute(
            sa.text("select table_name, rows from acme_meta.load_audit order by table_name")
        ).all()
        # only the configured columns of customers reached bronze (plus the load columns)
        columns = [
            c["name"] for c in sa.inspect(conn).get_columns("customers", schema="acme_bronze")
        ]
    engine.dispose()
    assert dict(audit) == source_rows
    assert columns == [
        "customer_id",
        "name",
        "email",
        "country",
        "created_at",
        "_loaded_at",
        "_batch_id",
    ]
