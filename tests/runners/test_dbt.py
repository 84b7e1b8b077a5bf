"""`runner dbt`: real dbt on the tenants' projects, over a real DuckDB and a real PostgreSQL.

Bronze is filled straight from the demo shop generator (the shape `runner extract`
produces), then silver and gold are built by layer, as the DAG does.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import duckdb
import psycopg
import pytest
from psycopg import sql

import runners.dbt as runner_dbt
from datakits.errors import ConfigError, LoadFailed, SourceUnavailable
from datakits.spec import LoadSpec
from devtools.postgres import PostgresCluster
from devtools.shop import generate_shop
from runners.dbt import run_dbt
from runners.dbt_profile import PROFILE_ENV_VARS

REPO = Path(__file__).resolve().parents[2]
#: The shop project both repository tenants share (DuckDB for demo, PostgreSQL for acme).
SHOP = REPO / "warehouses" / "_dbt" / "shop"
DEMO = ACME = SHOP
SHOP_TABLES = ("customers", "products", "orders", "order_items")
ORDERS = 500
PASSWORD = "Runner-Secret-4f9c2"
RUNNER = Path(sys.executable).parent / "runner"
ACME_SCHEMAS = {
    "bronze": "acme_bronze",
    "silver": "acme_silver",
    "gold": "acme_gold",
    "meta": "acme_meta",
}
GOLD_ROWS = (
    "SELECT customer_id, month, orders, items, revenue "
    "FROM {}.revenue_per_customer_month ORDER BY customer_id, month"
)
# What gold must hold, computed from bronze without the project's SQL.
EXPECTED_GOLD = """
SELECT count(DISTINCT cast(o.customer_id AS varchar) || '/'
                      || cast(cast(date_trunc('month', o.ordered_at) AS date) AS varchar)),
       count(DISTINCT o.order_id),
       sum(i.quantity),
       sum(i.quantity * i.unit_price)
FROM {b}.orders o JOIN {b}.order_items i ON i.order_id = o.order_id
WHERE o.status <> 'cancelled'
"""
GOLD_TOTALS = (
    "SELECT count(*), sum(orders), sum(items), sum(revenue) FROM {}.revenue_per_customer_month"
)


def _spec(tenant: str, kind: str, schemas: dict[str, str] | None = None) -> LoadSpec:
    return LoadSpec.model_validate(
        {
            "tenant": tenant,
            "source": {"kind": "sqlite", "connection": {"env": "SHOP_URL"}},
            "warehouse": {
                "kind": kind,
                "connection": {"env": "WAREHOUSE_URL"},
                "schemas": schemas or {},
            },
            "tables": [{"name": t} for t in SHOP_TABLES],
        }
    )


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _duck(path: Path, query: str) -> list[tuple[Any, ...]]:
    conn = duckdb.connect(str(path))
    try:
        return conn.execute(query).fetchall()
    finally:
        conn.close()


def _runner_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["RUNNER_SPEC"] = _spec("demo", "duckdb").to_env_json()
    env["RUNNER_WAREHOUSE_URL"] = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    return env


@pytest.fixture(scope="module")
def duck(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """The demo project built over a DuckDB file with a 500-order bronze, once for every DuckDB
    test (a dbt build is the slow part): silver through the real `runner dbt` CLI, a process
    as the image runs it, then gold through `run_dbt` in this process."""
    path = tmp_path_factory.mktemp("duck") / "wh.duckdb"
    url = f"duckdb:///{path}"
    counts = generate_shop(url, orders=ORDERS, schema="bronze")
    spec = _spec("demo", "duckdb")
    before = _tree(DEMO)
    cli = subprocess.run(
        [
            str(RUNNER),
            "dbt",
            "--project-dir",
            "warehouses/_dbt/shop",
            "build",
            "--select",
            "silver",
        ],
        cwd=REPO,
        env=_runner_env(path.parent),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert cli.returncode == 0, cli.stderr[-3000:]
    silver = json.loads(cli.stdout.strip().splitlines()[-1])
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        gold = run_dbt(spec, DEMO, ["build", "--select", "gold"], url)
    return SimpleNamespace(
        path=path,
        url=url,
        spec=spec,
        counts=counts,
        cli=cli,
        silver=silver,
        gold=gold,
        stdout=stdout.getvalue(),
        tree_before=before,
    )


@pytest.fixture(scope="module")
def pg(pg_cluster: PostgresCluster) -> Iterator[SimpleNamespace]:
    """The acme project built over PostgreSQL as a role with a password."""
    database, role = "runners_acme", "acme_dbt"
    url = pg_cluster.create_database(database, owner=role, password=PASSWORD)
    counts = generate_shop(url, orders=ORDERS, schema=ACME_SCHEMAS["bronze"])
    spec = _spec("acme", "postgres", ACME_SCHEMAS)

    profiles: list[str] = []
    real_invoke = runner_dbt._invoke

    def spy(args: list[str], callbacks: Any = None) -> Any:
        at = len(args) - 1 - args[::-1].index("--profiles-dir")
        profiles.append((Path(args[at + 1]) / "profiles.yml").read_text())
        return real_invoke(args, callbacks)

    log = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stderr(log):
        mp.setattr(runner_dbt, "_invoke", spy)
        silver = run_dbt(spec, ACME, ["build", "--select", "silver"], url)
        gold = run_dbt(spec, ACME, ["build", "--select", "gold"], url)
    dsn = f"host=127.0.0.1 port={pg_cluster.port} user={role} dbname={database}"
    yield SimpleNamespace(
        dsn=dsn, counts=counts, silver=silver, gold=gold, profiles=profiles, log=log.getvalue()
    )
    with psycopg.connect(pg_cluster.dsn("postgres"), autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
        )
        admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def _pg(dsn: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(query).fetchall()


# --- DuckDB (the demo tenant) -------------------------------------------------------------


def test_duckdb_builds_silver_then_gold(duck: SimpleNamespace) -> None:
    assert duck.silver["tenant"] == "demo"
    assert duck.silver["dbt_command"] == ["build", "--select", "silver"]
    assert sorted(duck.silver["models"]) == [f"silver.{t}" for t in sorted(SHOP_TABLES)]
    assert duck.silver["failed"] == duck.silver["skipped"] == 0
    assert duck.silver["passed"] == duck.silver["nodes"] > 4  # models and their tests
    assert duck.gold["models"] == ["gold.revenue_per_customer_month"]
    assert duck.gold["failed"] == 0
    assert duck.stdout == ""  # dbt's output went to stderr

    for table in SHOP_TABLES:
        (n,) = _duck(duck.path, f"SELECT count(*) FROM silver.{table}")[0]
        assert n == duck.counts[table], table
    expected = _duck(duck.path, EXPECTED_GOLD.format(b="bronze"))[0]
    assert _duck(duck.path, GOLD_TOTALS.format("gold"))[0] == expected
    assert expected[0] > 0


def test_silver_cleans_emails(duck: SimpleNamespace) -> None:
    (messy,) = _duck(
        duck.path, "SELECT count(*) FROM bronze.customers WHERE email <> lower(trim(email))"
    )[0]
    (left,) = _duck(
        duck.path, "SELECT count(*) FROM silver.customers WHERE email <> lower(trim(email))"
    )[0]
    assert messy > 0
    assert left == 0


def test_project_dir_is_not_written(duck: SimpleNamespace) -> None:
    assert _tree(DEMO) == duck.tree_before
    for name in ("target", "logs", "dbt_packages", "macros", "profiles.yml"):
        assert not (DEMO / name).exists(), name
    assert not (DEMO / "models" / "_bronze_sources.yml").exists()


def test_failing_model_and_test_are_named(duck: SimpleNamespace, tmp_path: Path) -> None:
    project = tmp_path / "dbt"
    shutil.copytree(DEMO, project)
    (project / "models" / "silver" / "broken.sql").write_text(
        "select no_such_column from {{ source('bronze', 'orders') }}\n"
    )
    (project / "tests").mkdir()
    (project / "tests" / "no_customers.sql").write_text("select * from {{ ref('customers') }}\n")
    with pytest.raises(LoadFailed) as failed:
        run_dbt(duck.spec, project, ["build", "--select", "silver"], duck.url)
    message = str(failed.value)
    assert "\n" not in message
    assert "model broken (error)" in message
    assert "test no_customers (fail)" in message
    assert message.startswith("dbt build --select silver: 2 of ")


def test_missing_project_is_a_config_error(tmp_path: Path) -> None:
    spec = _spec("demo", "duckdb")
    url = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    with pytest.raises(ConfigError, match="does not exist"):
        run_dbt(spec, tmp_path / "nowhere", ["build"], url)
    with pytest.raises(ConfigError, match=r"no dbt_project\.yml"):
        run_dbt(spec, tmp_path, ["build"], url)
    with pytest.raises(ConfigError, match="dbt command"):
        run_dbt(spec, DEMO, ["--select", "silver"], url)
    with pytest.raises(ConfigError, match="the runner sets --profiles-dir"):
        run_dbt(spec, DEMO, ["build", "--profiles-dir", str(tmp_path)], url)


def test_unreachable_warehouse_is_source_unavailable() -> None:
    spec = _spec("acme", "postgres", ACME_SCHEMAS)
    url = f"postgresql+psycopg://nobody:{PASSWORD}@127.0.0.1:1/nowhere"
    with pytest.raises(SourceUnavailable, match="Connection refused") as raised:
        run_dbt(spec, ACME, ["build", "--select", "silver"], url)
    assert PASSWORD not in str(raised.value)


# --- PostgreSQL (the acme tenant) ---------------------------------------------------------


def test_postgres_builds_silver_then_gold(pg: SimpleNamespace) -> None:
    assert pg.silver["tenant"] == "acme"
    assert sorted(pg.silver["models"]) == [f"acme_silver.{t}" for t in sorted(SHOP_TABLES)]
    assert pg.silver["failed"] == pg.gold["failed"] == 0
    assert pg.gold["models"] == ["acme_gold.revenue_per_customer_month"]
    for table in SHOP_TABLES:
        (n,) = _pg(pg.dsn, f"SELECT count(*) FROM acme_silver.{table}")[0]
        assert n == pg.counts[table], table
    expected = _pg(pg.dsn, EXPECTED_GOLD.format(b="acme_bronze"))[0]
    assert _pg(pg.dsn, GOLD_TOTALS.format("acme_gold"))[0] == expected
    schemas = {
        s
        for (s,) in _pg(
            pg.dsn,
            "SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' "
            "AND nspname <> 'information_schema'",
        )
    }
    # the layers' schemas, and meta, where each run keeps its dbt artifacts; nothing else
    assert schemas == {"public", "acme_bronze", "acme_silver", "acme_gold", "acme_meta"}
    kinds = _pg(pg.dsn, "SELECT kind, count(*) FROM acme_meta.dbt_artifacts GROUP BY kind")
    assert dict(kinds) == {"manifest": 2, "run_results": 2}  # silver, then gold


def test_profiles_yml_and_logs_hold_no_password(pg: SimpleNamespace) -> None:
    assert len(pg.profiles) == 2
    for text in pg.profiles:
        assert "type: postgres" in text
        assert 'env_var("DBT_ENV_SECRET_RUNNER_PASSWORD", "")' in text
        assert PASSWORD not in text
        assert "127.0.0.1" not in text
    assert "Completed successfully" in pg.log
    assert PASSWORD not in pg.log
    for name in PROFILE_ENV_VARS:  # the connection env was scoped to the dbt call
        assert name not in os.environ, name


def test_both_warehouses_compute_the_same_gold(duck: SimpleNamespace, pg: SimpleNamespace) -> None:
    in_duckdb = _duck(duck.path, GOLD_ROWS.format("gold"))
    in_postgres = _pg(pg.dsn, GOLD_ROWS.format("acme_gold"))
    assert in_duckdb == in_postgres
    assert len(in_duckdb) > 0


# --- the real CLI --------------------------------------------------------------------------


def test_cli_runs_dbt_and_prints_json_last(duck: SimpleNamespace) -> None:
    """The silver build of the `duck` fixture ran through the real CLI."""
    lines = duck.cli.stdout.strip().splitlines()
    assert len(lines) == 1, duck.cli.stdout  # only the result: dbt's output is on stderr
    result = json.loads(lines[-1])
    assert result["status"] == "ok"
    assert result["command"] == "dbt"
    assert result["tenant"] == "demo"
    assert sorted(result["models"]) == [f"silver.{t}" for t in sorted(SHOP_TABLES)]
    assert "Completed successfully" in duck.cli.stderr


def test_cli_missing_project_exits_with_config_code(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(RUNNER), "dbt", "--project-dir", str(tmp_path / "nope"), "build"],
        env=_runner_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == ConfigError.exit_code
    assert done.stdout == ""
    assert done.stderr.strip().count("\n") == 0
    assert "does not exist" in done.stderr
