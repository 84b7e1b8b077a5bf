"""`dag-factory status`: the last loads per table from the meta schema, after real loads,
on DuckDB and PostgreSQL, and from the Delta log of a lakehouse tenant (moto S3), through
the real console script and the tenant's own URL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from dag_factory.loader import Tenant
from datakits.load import load_table
from datakits.writers.lakehouse import lake_location
from devtools.postgres import PostgresCluster
from devtools.s3 import S3Server
from devtools.shop import generate_shop
from tests.observability.conftest import MakeTenant

BIN = Path(sys.executable).parent


def status(warehouses: Path, tenant: str, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BIN / "dag-factory", "status", tenant, "-w", str(warehouses), *args],
        env={**os.environ, "OBS_WAREHOUSE_URL": url, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def load(tenant: Tenant, table: str, source: str, warehouse: str):
    spec = tenant.spec
    (table_spec,) = [t for t in spec.load_spec().tables if t.name == table]
    return load_table(spec.load_spec(), table_spec, source, warehouse)


def add_orders(url: str, schema: str | None, rows: int) -> None:
    """Append `rows` orders whose updated_at is after every existing one."""
    engine = sa.create_engine(url)
    orders = sa.Table("orders", sa.MetaData(schema=schema), autoload_with=engine)
    with engine.begin() as conn:
        top = conn.execute(sa.select(sa.func.max(orders.c.order_id))).scalar_one()
        last = conn.execute(sa.select(orders).where(orders.c.order_id == top)).mappings().one()
        stamp = conn.execute(sa.select(sa.func.max(orders.c.updated_at))).scalar_one()
        if isinstance(stamp, str):  # SQLite
            stamp = sa.func.datetime(stamp, "+1 day")
        else:
            stamp = stamp.replace(year=stamp.year + 1)
        for i in range(1, rows + 1):
            conn.execute(
                sa.insert(orders).values({**last, "order_id": top + i, "updated_at": stamp})
            )
    engine.dispose()


def check_status(
    warehouses: Path, tenant: Tenant, source: str, warehouse: str, schema: str | None
) -> None:
    generated = generate_shop(source, orders=200, schema=schema)
    first = load(tenant, "orders", source, warehouse)
    add_orders(source, schema, 7)
    second = load(tenant, "orders", source, warehouse)
    customers = load(tenant, "customers", source, warehouse)

    done = status(warehouses, tenant.spec.tenant, warehouse, "--format", "json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    by_table = {t["table"]: t for t in doc["tables"]}
    orders = by_table["orders"]
    assert [load["batch_id"] for load in orders["loads"]] == [second.batch_id, first.batch_id]
    # the incremental load re-reads the rows at the watermark itself (>=), then the 7 new
    assert [load["rows"] for load in orders["loads"]] == [second.rows, generated["orders"]]
    assert second.rows >= 7
    assert all(
        load["mode"] == "incremental" and load["status"] == "success" for load in orders["loads"]
    )
    assert orders["cursor_column"] == "updated_at"
    assert orders["watermark_batch"] == second.batch_id
    # the watermark stands on the load that committed it, the older load shows none
    assert orders["loads"][0]["watermark"] == orders["watermark"] is not None
    assert orders["loads"][1]["watermark"] is None
    assert str(second.watermark)[:10] == orders["watermark"][:10]
    assert by_table["customers"]["loads"][0]["batch_id"] == customers.batch_id
    assert by_table["customers"]["watermark"] is None  # full refresh: no watermark
    assert by_table["products"]["loads"] == []  # listed, never loaded

    done = status(warehouses, tenant.spec.tenant, warehouse, "--format", "json", "--last", "1")
    assert [len(t["loads"]) for t in json.loads(done.stdout)["tables"]] == [1, 1, 0]

    text = status(warehouses, tenant.spec.tenant, warehouse)
    assert text.returncode == 0, text.stderr
    assert second.batch_id[:12] in text.stdout and "never loaded" in text.stdout
    assert f"updated_at = {orders['watermark']}" in text.stdout


def test_status_on_duckdb(warehouses: Path, make_tenant: MakeTenant, tmp_path: Path) -> None:
    tenant = make_tenant()
    check_status(
        warehouses,
        tenant,
        f"sqlite:///{tmp_path}/shop.sqlite",
        f"duckdb:///{tmp_path}/wh.duckdb",
        None,
    )


def test_status_on_postgres(
    warehouses: Path, make_tenant: MakeTenant, pg_cluster: PostgresCluster, pg_database: str
) -> None:
    source = pg_cluster.create_database("obs_status_source")
    tenant = make_tenant(source="postgres", warehouse="postgres", schema="shop")
    check_status(warehouses, tenant, source, pg_database, "shop")


def test_status_on_a_lakehouse(
    warehouses: Path, make_tenant: MakeTenant, s3_server: S3Server, tmp_path: Path
) -> None:
    tenant = make_tenant(warehouse="lakehouse")
    url = s3_server.warehouse_url(s3_server.create_bucket("obs-status"))
    check_status(warehouses, tenant, f"sqlite:///{tmp_path}/shop.sqlite", url, None)

    # a bucket the lake does not have: one line naming the table and the lake, no secret
    missing = s3_server.warehouse_url("obs-no-such-bucket")
    done = status(warehouses, "obs", missing)
    assert done.returncode == 1, done.stdout
    (line,) = done.stderr.strip().splitlines()
    assert "cannot read obs's lake table bronze.customers in s3://" in line
    assert lake_location(url).secret_key not in line


def test_status_before_any_load_and_with_a_bad_reference(
    warehouses: Path, make_tenant: MakeTenant, tmp_path: Path
) -> None:
    make_tenant()
    missing = status(warehouses, "obs", f"duckdb:///{tmp_path}/nothing.duckdb")
    assert missing.returncode == 1
    assert "does not exist: no load has run yet" in missing.stderr
    assert not (tmp_path / "nothing.duckdb").exists()  # status never creates the file

    unset = subprocess.run(
        [BIN / "dag-factory", "status", "obs", "-w", str(warehouses)],
        env={k: v for k, v in os.environ.items() if k != "OBS_WAREHOUSE_URL"},
        capture_output=True,
        text=True,
    )
    assert unset.returncode == 1
    assert "OBS_WAREHOUSE_URL" in unset.stderr and "not set" in unset.stderr


@pytest.mark.parametrize("last", ["0", "x"])
def test_status_refuses_a_bad_last(warehouses: Path, make_tenant: MakeTenant, last: str) -> None:
    make_tenant()
    done = status(warehouses, "obs", "duckdb:///x.duckdb", "--last", last)
    assert done.returncode == 2 and "--last" in done.stderr
