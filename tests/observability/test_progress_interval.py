"""`progress_interval` from the tenant file to the runner's env, and progress lines with a
percentage where the source has a row estimate (PostgreSQL, MariaDB, SQLite after ANALYZE)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from dag_factory.errors import TenantFileError
from dag_factory.plan import plan_tenant
from datakits.contract import PROGRESS_INTERVAL_ENV
from datakits.sources import row_estimate
from devtools.mariadb import MariaDBServer
from devtools.postgres import PostgresCluster
from devtools.shop import generate_shop
from tests.datakits.runner_proc import run_extract
from tests.observability.conftest import SHOP_TENANT, MakeTenant

WITH_INTERVALS = SHOP_TENANT.replace(
    "tables:\n",
    "tasks:\n  extract:\n    progress_interval: 2m\ntables:\n",
).replace(
    "  - name: products\n",
    "  - name: products\n    task:\n      progress_interval: 0s\n",
)


def extract_env(tenant, root: Path) -> dict[str, dict[str, str]]:
    plan = plan_tenant(tenant, root)
    return {t.table: t.env_dict for t in plan.tasks if t.table}


def test_progress_interval_planned_per_tenant_and_table(
    make_tenant: MakeTenant, tmp_path: Path
) -> None:
    env = extract_env(make_tenant(text=WITH_INTERVALS), tmp_path)
    assert env["customers"][PROGRESS_INTERVAL_ENV] == "120"  # the tenant's tasks.extract
    assert env["products"][PROGRESS_INTERVAL_ENV] == "0"  # the table's own, over it
    plain = extract_env(make_tenant(name="plain"), tmp_path)
    assert PROGRESS_INTERVAL_ENV not in plain["customers"]  # the runner's default (30 s)
    dbt = [t for t in plan_tenant(make_tenant(text=WITH_INTERVALS), tmp_path).tasks if not t.table]
    assert all(PROGRESS_INTERVAL_ENV not in t.env_dict for t in dbt)


@pytest.mark.parametrize(
    ("where", "value", "words"),
    [
        ("tasks:\n  dbt:\n    progress_interval: 5s\n", "", "extract tasks only"),
        ("tasks:\n  extract:\n    progress_interval: often\n", "", "90s, 5m, 2h or 1d"),
    ],
)
def test_bad_progress_interval_is_a_clear_error(
    make_tenant: MakeTenant, where: str, value: str, words: str
) -> None:
    with pytest.raises(TenantFileError) as caught:
        make_tenant(text=SHOP_TENANT.replace("tables:\n", where + "tables:\n"))
    assert words in str(caught.value) + "".join(str(p) for p in caught.value.problems)


def progress_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if " rows/s" in ln and not ln.startswith("loaded")]


def test_runner_prints_a_percentage_from_the_sqlite_estimate(
    make_tenant: MakeTenant, tmp_path: Path
) -> None:
    tenant = make_tenant()
    spec = tenant.spec.load_spec()
    source = f"sqlite:///{tmp_path}/shop.sqlite"
    warehouse = f"duckdb:///{tmp_path}/wh.duckdb"
    rows = generate_shop(source, orders=3000)["order_items"]
    # customers: full refresh, never analysed → no estimate, rows and rows/s only
    done = run_extract(spec, "customers", source, warehouse, **{PROGRESS_INTERVAL_ENV: "0"})
    assert done.returncode == 0, done.stderr
    assert progress_lines(done.stderr) and "%" not in done.stderr

    engine = sa.create_engine(source)
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    engine.dispose()
    spec = spec.model_copy(
        update={
            "tables": (
                *spec.tables,
                spec.tables[0].model_copy(update={"name": "order_items", "batch_size": 1000}),
            )
        }
    )
    done = run_extract(spec, "order_items", source, warehouse, **{PROGRESS_INTERVAL_ENV: "0"})
    assert done.returncode == 0, done.stderr
    lines = progress_lines(done.stderr)
    assert len(lines) >= rows // 1000 - 1, done.stderr  # interval 0: a line per batch
    assert f"of ~{rows:,} rows" in lines[-1]
    percents = [int(ln.rsplit("~", 2)[1].split("%")[0]) for ln in lines]
    assert percents == sorted(percents) and percents[-1] == 100

    # a slow interval prints no progress line on a short load: the env reached the runner
    done = run_extract(spec, "order_items", source, warehouse, **{PROGRESS_INTERVAL_ENV: "3600"})
    assert done.returncode == 0 and progress_lines(done.stderr) == []
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["read_at"] and result["rows"] == rows


def test_estimates_of_postgres_and_mariadb(
    make_tenant: MakeTenant, pg_cluster: PostgresCluster, mariadb_server: MariaDBServer
) -> None:
    pg = pg_cluster.create_database("obs_estimate")
    rows = generate_shop(pg, orders=2000, schema="shop")["orders"]
    tenant = make_tenant(source="postgres", warehouse="duckdb", schema="shop")
    table = tenant.spec.load_spec().tables[1]  # orders
    # never vacuumed nor analysed: reltuples is -1, which is no estimate
    engine = sa.create_engine(pg)
    with engine.connect() as conn:
        reltuples = conn.exec_driver_sql(
            "select reltuples from pg_class where relname = 'orders'"
        ).scalar()
    if reltuples < 0:
        assert row_estimate(tenant.spec.source, table, pg) is None
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("ANALYZE shop.orders")
    engine.dispose()
    assert row_estimate(tenant.spec.source, table, pg) == rows
    # another schema's table of the same name is not it; a missing table has no estimate
    missing = table.model_copy(update={"name": "nope"})
    assert row_estimate(tenant.spec.source, missing, pg) is None

    my = mariadb_server.create_database("obs_estimate")
    rows = generate_shop(my, orders=500)["orders"]
    tenant = make_tenant(name="obsmy", source="mysql", warehouse="duckdb")
    estimate = row_estimate(tenant.spec.source, table, my)
    assert estimate is not None and 0.5 * rows <= estimate <= 1.5 * rows  # InnoDB samples
