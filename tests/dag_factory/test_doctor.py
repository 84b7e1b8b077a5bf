"""`dag-factory doctor` against real servers: a SQLite shop and a DuckDB file (demo), the test
run's PostgreSQL (acme), a migrated Airflow metadata DB for the pools, and real dbt through
the runner. Each broken case breaks one thing and checks that it is the only problem.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from devtools.postgres import PostgresCluster, free_port
from devtools.shop import generate_shop, shop_metadata

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ORDERS = 500


def run_doctor(
    env: dict[str, str], *args: str, warehouses: Path = REPO / "warehouses"
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BIN / "dag-factory", "doctor", *args, "--warehouses", str(warehouses)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )


def doctor_json(env: dict[str, str], *args: str, **kw: Any) -> tuple[int, list[dict[str, str]]]:
    done = run_doctor(env, *args, "--format", "json", **kw)
    assert done.returncode in (0, 1), done.stderr[-3000:]
    payload = json.loads(done.stdout)  # stdout holds the JSON document only
    assert payload["ok"] is (done.returncode == 0)
    return done.returncode, payload["findings"]


def problems(findings: list[dict[str, str]]) -> list[str]:
    return [f["message"] for f in findings if f["status"] == "problem"]


def airflow(env: dict[str, str], *args: str) -> None:
    subprocess.run([BIN / "airflow", *args], env=env, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pooled_airflow(airflow_env: dict[str, str]) -> dict[str, str]:
    """A migrated Airflow home holding the pools the repository's tenants name."""
    for pool in ("tenant_demo", "tenant_acme"):
        airflow(airflow_env, "pools", "set", pool, "2", f"{pool} (doctor tests)")
    return {k: v for k, v in airflow_env.items() if not k.startswith(("DEMO_", "AIRFLOW_CONN_"))}


@pytest.fixture
def demo_env(pooled_airflow: dict[str, str], tmp_path: Path) -> dict[str, str]:
    source = f"sqlite:///{tmp_path}/shop.sqlite"
    generate_shop(source, orders=ORDERS)
    return {
        **pooled_airflow,
        "DEMO_SOURCE_URL": source,
        "DEMO_WAREHOUSE_URL": f"duckdb:///{tmp_path}/warehouse/demo.duckdb",
    }


@pytest.fixture(scope="module")
def acme_urls(pg_cluster: PostgresCluster) -> dict[str, str]:
    """The acme shop in PostgreSQL, as the Airflow connections acme's tenant file names."""
    source = pg_cluster.create_database("doctor_acme_source")
    pg_cluster.create_database("doctor_acme_warehouse")
    generate_shop(source, orders=ORDERS, schema="shop")
    base = f"postgres://postgres@127.0.0.1:{pg_cluster.port}"
    return {
        "AIRFLOW_CONN_ACME_SOURCE": f"{base}/doctor_acme_source",
        "AIRFLOW_CONN_ACME_WAREHOUSE": f"{base}/doctor_acme_warehouse",
    }


@pytest.fixture
def acme_env(pooled_airflow: dict[str, str], acme_urls: dict[str, str]) -> dict[str, str]:
    return {**pooled_airflow, **acme_urls}


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    """A copy of the repository's warehouses folder, to break one thing in."""
    return Path(shutil.copytree(REPO / "warehouses", tmp_path / "warehouses"))


def edit(file: Path, old: str, new: str) -> None:
    text = file.read_text()
    assert old in text
    file.write_text(text.replace(old, new))


# --- healthy tenants ------------------------------------------------------------------


def test_demo_passes_every_check(demo_env: dict[str, str]):
    code, findings = doctor_json(demo_env, "demo")
    assert (code, problems(findings)) == (0, [])
    checks = [f["check"] for f in findings]
    for check in ("spec", "connection", "source", "warehouse", "dbt silver", "dbt gold", "pool"):
        assert check in checks
    assert checks.count("table") == 4  # every enabled table was reflected
    by_check = {f["check"]: f["message"] for f in findings}
    assert by_check["dbt gold"] == "layer gold selects 1 model(s): revenue_per_customer_month"
    assert by_check["pool"] == "pool tenant_demo exists (2 slots)"
    assert by_check["dbt graph"] == (  # the suite's tenants are compiled by no one
        "none: one task per dbt layer (run `dag-factory dbt compile demo` for one per model)"
    )


def test_acme_passes_every_check(acme_env: dict[str, str]):
    code, findings = doctor_json(acme_env, "acme")
    assert (code, problems(findings)) == (0, [])
    tables = [f["message"] for f in findings if f["check"] == "table"]
    # customers names its columns: only those are read; the others read every column
    assert "tables[0] shop.customers (5 columns read)" in tables
    assert len(tables) == 4


# --- one broken thing at a time ---------------------------------------------------------


def test_env_var_unset(demo_env: dict[str, str]):
    del demo_env["DEMO_SOURCE_URL"]
    code, findings = doctor_json(demo_env, "demo")
    assert code == 1
    assert problems(findings) == [
        "source.connection.env DEMO_SOURCE_URL is not set: "
        "export DEMO_SOURCE_URL=sqlite:////path/to/source.sqlite"
    ]


def test_airflow_connection_missing(acme_env: dict[str, str]):
    del acme_env["AIRFLOW_CONN_ACME_SOURCE"]
    code, findings = doctor_json(acme_env, "acme")
    assert code == 1
    [problem] = problems(findings)
    assert problem.startswith("source.connection.airflow_conn acme_source: ")
    assert "`airflow connections add acme_source --conn-uri postgres://" in problem
    assert "export AIRFLOW_CONN_ACME_SOURCE=" in problem


def test_source_down(acme_env: dict[str, str], pg_cluster: PostgresCluster):
    closed = free_port()
    acme_env["AIRFLOW_CONN_ACME_SOURCE"] = f"postgres://postgres@127.0.0.1:{closed}/x"
    code, findings = doctor_json(acme_env, "acme")
    assert code == 1
    [problem] = problems(findings)
    assert problem.startswith("source.connection: cannot connect to the source ")
    assert f"127.0.0.1:{closed}" in problem
    assert problem.endswith("start the server or fix the connection")
    # the tables were not tried once the source proved unreachable
    assert not [f for f in findings if f["check"] == "table"]


def test_table_missing_at_source(demo_env: dict[str, str]):
    engine = sa.create_engine(demo_env["DEMO_SOURCE_URL"])
    shop_metadata().tables["products"].drop(engine)
    engine.dispose()
    code, findings = doctor_json(demo_env, "demo")
    assert code == 1
    [problem] = problems(findings)
    assert problem.startswith("tables[1]: source table products does not exist in sqlite:")
    assert "(tables: customers, order_items, orders)" in problem


def test_cursor_column_missing(demo_env: dict[str, str], scratch: Path):
    edit(
        scratch / "demo" / "warehouse.yaml",
        "  - name: orders\n",
        "  - name: orders\n    mode: append\n    cursor: changed_at\n",
    )
    code, findings = doctor_json(demo_env, "demo", warehouses=scratch)
    assert code == 1
    [problem] = problems(findings)
    assert problem.startswith(
        "tables[2].cursor changed_at: source table orders has no column changed_at (columns: "
    )
    assert problem.endswith("fix `cursor` or add the column at the source")


def test_warehouse_unreachable(acme_env: dict[str, str]):
    closed = free_port()
    acme_env["AIRFLOW_CONN_ACME_WAREHOUSE"] = f"postgres://postgres@127.0.0.1:{closed}/x"
    code, findings = doctor_json(acme_env, "acme")
    assert code == 1
    [problem] = problems(findings)
    assert problem.startswith("warehouse.connection: cannot connect to the warehouse ")
    assert f"127.0.0.1:{closed}" in problem


def test_dbt_layer_selects_nothing(demo_env: dict[str, str], scratch: Path):
    shutil.rmtree(scratch / "_dbt" / "shop" / "models" / "gold")
    code, findings = doctor_json(demo_env, "demo", warehouses=scratch)
    assert code == 1
    assert problems(findings) == [
        "layer gold selects no model in warehouses/_dbt/shop: add models under models/gold "
        "(the layer is selected by its folder)"
    ]
    silver = next(f for f in findings if f["check"] == "dbt silver")
    assert silver["status"] == "ok"


def test_pool_missing_then_created(demo_env: dict[str, str], scratch: Path):
    edit(scratch / "demo" / "warehouse.yaml", "pool: tenant_demo", "pool: tenant_doctor")
    done = run_doctor(demo_env, "demo", "--verbose", warehouses=scratch)
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert "demo: pool: pool tenant_doctor does not exist in Airflow: run `dag-factory pools`" in (
        lines
    )
    assert lines[-1] == "1 tenant(s) checked, 1 problem(s)"

    airflow(demo_env, "pools", "set", "tenant_doctor", "3", "created by the doctor test")
    done = run_doctor(demo_env, "demo", "--verbose", warehouses=scratch)
    assert done.returncode == 0, done.stdout
    assert "demo: pool: ok: pool tenant_doctor exists (3 slots)" in done.stdout.splitlines()


def test_invalid_tenant_file_is_reported_as_validate_does(
    scratch: Path, airflow_env: dict[str, str]
):
    edit(scratch / "demo" / "warehouse.yaml", "kind: sqlite", "kind: oracle")
    validate = subprocess.run(
        [BIN / "dag-factory", "validate", str(scratch / "demo"), "-w", str(scratch)],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    expected = validate.stdout.splitlines()[0]
    done = run_doctor(airflow_env, "demo", warehouses=scratch)
    assert done.returncode == 1
    assert done.stdout.splitlines()[0] == f"demo: spec: {expected}"
