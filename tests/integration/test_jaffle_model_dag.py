"""A project in dbt Labs' jaffle-shop layout as a model-level tenant on PostgreSQL, twice.

The project is the jaffle-layout one the runner tests write (tests/runners/test_layers.py
and its relationships test, tests/runners/test_dbt_graph.py): staging views over
`{{ source('bronze', …) }}`, snapshots, marts tables, in its own folders mapped to layers
by `dbt.layers`. Its graph is compiled by `dag-factory dbt compile`, so the tenant's DAG has
one task per dbt node; `airflow dags test` runs it twice over a source that changes between
the runs. On PostgreSQL the second run's bronze full refresh must leave the staging views
(which depend on bronze) working, and the marts must equal a plain dbt build of the same
project over the same bronze.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from datakits.spec import LoadSpec
from tests.datakits.conftest import query
from tests.datakits.runner_proc import RUNNER, run_extract, runner_env
from tests.integration.airflow_runs import last_run
from tests.runners.test_dbt_graph import JAFFLE
from tests.runners.test_layers import LAYERS, LOADS, SCHEMAS, _dbt, _table_type
from tests.runners.test_layers import _spec as _test_layers_spec

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TENANT = "jaffle"
DAG_ID = f"tenant_{TENANT}"
#: Every dbt node of the project, as its task: `<layer>.<name>`.
MODEL_TASKS = {
    "silver.stg_customers",
    "silver.stg_orders",
    "snapshots.orders_snapshot",
    "snapshots.customers_snapshot",
    "gold.customer_orders",
}
#: The plain dbt build's own silver, snapshot and gold schemas, over the DAG's bronze.
PLAIN = {
    **SCHEMAS,
    "silver": "p_staging",
    "gold": "p_marts",
    "meta": "p_meta",
    "layers": {"snapshots": "p_snapshots"},
}


def _tenant_file(folder: Path) -> None:
    layers = "".join(f"    {layer}: {selector}\n" for layer, selector in LAYERS.items())
    schemas = json.dumps(SCHEMAS)  # YAML is a superset of JSON
    (folder / "warehouse.yaml").write_text(
        f"tenant: {TENANT}\n"
        "source: {kind: sqlite, connection: {env: JAFFLE_SOURCE_URL}}\n"
        f"warehouse: {{kind: postgres, connection: {{env: JAFFLE_WAREHOUSE_URL}}, "
        f"schemas: {schemas}}}\n"
        "tables: [{name: customers}, {name: orders}]\n"
        "schedule: null\n"
        "retries: 0\n"
        f"dbt:\n  layers:\n{layers}"
    )


@pytest.fixture
def jaffle(tmp_path: Path, pg_database: str, airflow_env: dict[str, str]) -> dict[str, Any]:
    """The tenant folder (project under `dbt/`), its graph compiled, its SQLite source and
    the env of `airflow dags test` for it."""
    warehouses = tmp_path / "warehouses"
    folder = warehouses / TENANT
    for name, text in JAFFLE.items():
        path = folder / "dbt" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.lstrip())
    _tenant_file(folder)
    compiled = subprocess.run(
        [BIN / "dag-factory", "dbt", "compile", "--warehouses", warehouses, TENANT],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    source = tmp_path / "source.db"
    env = {
        **airflow_env,
        "DAG_FACTORY_TENANTS": TENANT,
        "DAG_FACTORY_WAREHOUSES": str(warehouses),
        "JAFFLE_SOURCE_URL": f"sqlite:///{source}",
        "JAFFLE_WAREHOUSE_URL": pg_database,
    }
    return {"folder": folder, "source": source, "warehouse": pg_database, "env": env}


def _load_source(source: Path, statements: tuple[str, ...]) -> None:
    with closing(sqlite3.connect(source)) as conn, conn:
        for statement in statements:
            conn.execute(statement)


def _dags_test(env: dict[str, str]) -> tuple[dict[str, str], dict[str, Any]]:
    """Run the DAG once; the run's task states and return values."""
    done = subprocess.run(
        [BIN / "airflow", "dags", "test", DAG_ID],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    states, xcoms, _ = last_run(env, DAG_ID)
    return states, xcoms


@pytest.mark.postgres
def test_jaffle_layout_runs_model_level_twice_on_postgres(jaffle: dict[str, Any]):
    warehouse, env = jaffle["warehouse"], jaffle["env"]
    for run, statements in enumerate(LOADS[:2], start=1):
        _load_source(jaffle["source"], statements)
        states, xcoms = _dags_test(env)
        models = {t for t in states if "." in t}
        assert models == MODEL_TASKS, f"run {run}: {sorted(states)}"
        assert set(states.values()) == {"success"}, f"run {run}: {states}"
        # one dbt build made every node; each model task passed on its report
        assert {xcoms[t]["ran"] for t in models} == {"dbt_build"}, f"run {run}"
        assert {n for t in models for n in xcoms[t]["nodes"]} <= set(xcoms["dbt_build"]["nodes"])
        # the staging views survived the full refresh of the bronze tables under them
        assert _table_type(warehouse, "j_staging", "stg_orders") == "VIEW"
        assert _table_type(warehouse, "j_marts", "customer_orders") == "BASE TABLE"

    # the second load's state, read through the views the first run made
    assert query(warehouse, "SELECT order_id, status FROM j_staging.stg_orders ORDER BY 1") == [
        (10, "placed"),
        (11, "shipped"),
        (13, "placed"),
    ]
    dag_marts = query(
        warehouse,
        "SELECT customer_id, name, orders, amount FROM j_marts.customer_orders ORDER BY 1",
    )
    assert dag_marts == [(1, "ann", 2, 15), (2, "bobby", 1, 20), (3, "cy", 0, 0)]
    # the timestamp snapshot saw both loads: order 11 changed, order 12 deleted
    assert query(
        warehouse,
        "SELECT id, status, dbt_valid_to IS NULL FROM j_snapshots.orders_snapshot "
        "ORDER BY id, dbt_valid_from",
    ) == [
        (10, "placed", True),
        (11, "placed", False),
        (11, "shipped", True),
        (12, "placed", False),
        (13, "placed", True),
    ]

    # a plain dbt build of the same project over the same bronze (one `dbt build` of every
    # layer, into schemas of its own) gives the same numbers
    spec = LoadSpec.model_validate(
        {
            "tenant": TENANT,
            "source": {"kind": "sqlite", "connection": {"env": "SRC_URL"}},
            "warehouse": {"kind": "postgres", "connection": {"env": "WH_URL"}, "schemas": PLAIN},
            "tables": [{"name": "customers"}, {"name": "orders"}],
        }
    )
    argv = [RUNNER, "dbt", "--project-dir", str(jaffle["folder"] / "dbt")]
    argv += ["--layers", json.dumps(LAYERS), "build", "--select", *LAYERS.values()]
    done = subprocess.run(
        argv, env=runner_env(spec, "", warehouse), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    plain_marts = query(
        warehouse,
        "SELECT customer_id, name, orders, amount FROM p_marts.customer_orders ORDER BY 1",
    )
    assert plain_marts == dag_marts
    assert query(warehouse, "SELECT * FROM p_staging.stg_orders ORDER BY 1") == query(
        warehouse, "SELECT * FROM j_staging.stg_orders ORDER BY 1"
    )


@pytest.mark.dbt
def test_jaffle_layout_layer_tasks_build_a_fresh_warehouse(tmp_path: Path):
    """Without a compiled graph the tenant keeps one task per layer (the plan's argv, run
    here in order on DuckDB). The mart's relationships test to a staging model belongs to
    the gold build: dbt's default (eager) selection ran it in the staging layer's build,
    against a mart not built yet, and a fresh warehouse's first run failed there."""
    project = tmp_path / "dbt"
    for name, text in JAFFLE.items():
        path = project / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.lstrip())
    source = tmp_path / "source.db"
    _load_source(source, LOADS[0])
    spec, warehouse = _test_layers_spec("duckdb"), f"duckdb:///{tmp_path / 'wh.duckdb'}"
    for table in ("customers", "orders"):
        done = run_extract(spec, table, f"sqlite:///{source}", warehouse)
        assert done.returncode == 0, done.stderr
    results = {}
    for layer, selector in LAYERS.items():
        done = _dbt(spec, project, warehouse, layer, selector)
        assert done.returncode == 0, f"layer {layer}: {done.stderr[-2000:]}"
        results[layer] = json.loads(done.stdout.splitlines()[-1])
    # staging's own tests (unique, not_null) in its build; the mart's two in gold's
    assert results["silver"]["tests_passed"] == 2, results["silver"]
    assert results["gold"]["tests_passed"] == 2, results["gold"]
    assert query(
        warehouse, "SELECT customer_id, orders FROM j_marts.customer_orders ORDER BY 1"
    ) == [
        (1, 1),
        (2, 1),
        (3, 1),
    ]
