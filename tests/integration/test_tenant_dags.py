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


def dags_test(dag_id: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    tenant = dag_id.removeprefix("tenant_")
    done = subprocess.run(
        [BIN / "airflow", "dags", "test", dag_id, *args],
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


def test_trigger_params_load_a_subset_and_reload_a_table(
    airflow_env: dict[str, str], tmp_path: Path
):
    """The trigger form's params, through a real `airflow dags test --conf`: only the
    listed table is loaded (the others' tasks are skipped, dbt still runs), and the
    table listed under `full_refresh` is rebuilt from scratch although it is incremental:
    a change that did not move its cursor arrives."""
    import shutil

    import yaml

    warehouses = tmp_path / "warehouses"
    shutil.copytree(REPO / "warehouses", warehouses)
    tenant_file = warehouses / "demo" / "warehouse.yaml"
    doc = yaml.safe_load(tenant_file.read_text())
    for table in doc["tables"]:
        if table["name"] == "orders":
            table.update(mode="incremental", cursor="updated_at", primary_key=["order_id"])
    tenant_file.write_text(yaml.safe_dump(doc, sort_keys=False))
    source = f"sqlite:///{tmp_path}/shop.sqlite"
    warehouse = f"duckdb:///{tmp_path}/warehouse.duckdb"
    generate_shop(source, orders=ORDERS)
    env = {
        **airflow_env,
        "DAG_FACTORY_WAREHOUSES": str(warehouses),
        "DEMO_SOURCE_URL": source,
        "DEMO_WAREHOUSE_URL": warehouse,
    }
    dags_test("tenant_demo", env)
    engine = sa.create_engine(source)
    with engine.begin() as conn:  # a change an incremental load cannot see
        old = conn.execute(sa.text("SELECT status FROM orders WHERE order_id = 1")).scalar()
        new = "delivered" if old == "cancelled" else "cancelled"
        conn.execute(sa.text("UPDATE orders SET status = :s WHERE order_id = 1"), {"s": new})
    engine.dispose()

    conf = '{"tables": ["orders"], "full_refresh": ["orders"]}'
    run = dags_test("tenant_demo", env, "--conf", conf)
    log = run.stdout + run.stderr
    assert "is not among this run's tables" in log  # the other extracts were skipped

    def query(sql: str) -> list[tuple]:
        wh = sa.create_engine(warehouse)
        try:
            with wh.connect() as conn:
                return [tuple(r) for r in conn.execute(sa.text(sql))]
        finally:
            wh.dispose()

    audit = dict(query("SELECT table_name, count(*) FROM meta.load_audit GROUP BY table_name"))
    assert audit == {"customers": 1, "products": 1, "order_items": 1, "orders": 2}
    assert query("SELECT status FROM bronze.orders WHERE order_id = 1") == [(new,)]
    assert query("SELECT count(*) FROM bronze.orders") == [(ORDERS,)]
    # dbt ran after the skipped extracts: silver holds the reloaded row
    assert query("SELECT status FROM silver.orders WHERE order_id = 1") == [(new,)]
