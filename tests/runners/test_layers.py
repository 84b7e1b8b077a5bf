"""dbt layers as selectors: a project in another layout, views over bronze, snapshots.

The project is written here in the layout of dbt Labs' jaffle shop (not its code):
`models/staging` holds views over `{{ source('bronze', …) }}`, `models/marts` tables
built on them, `snapshots/` two YAML snapshots (timestamp and check strategies, hard
deletes invalidated). The tenant maps layers to selectors, as `dbt.layers` does:

    silver: path:models/staging    snapshots: resource_type:snapshot    gold: path:models/marts

Everything runs as the DAG runs it: `runner extract` loads bronze from a SQLite source
(full refresh), then one `runner dbt --layer <l> --layers <all> build --select <sel>`
per layer, three times over a source that changes and deletes rows, on DuckDB and on a
real PostgreSQL (where the staging views used to make the second load fail: bronze
could not be dropped under them).
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from datakits.spec import LoadSpec
from tests.datakits.conftest import query
from tests.datakits.runner_proc import RUNNER, run_extract, runner_env

LAYERS = {
    "silver": "path:models/staging",
    "snapshots": "resource_type:snapshot",
    "gold": "path:models/marts",
}
SCHEMAS = {
    "bronze": "j_bronze",
    "silver": "j_staging",
    "gold": "j_marts",
    "meta": "j_meta",
    "layers": {"snapshots": "j_snapshots"},
}

PROJECT = {
    "dbt_project.yml": """
name: jaffle_like
profile: jaffle_like
version: "1.0"
model-paths: ["models"]
snapshot-paths: ["snapshots"]
models:
  jaffle_like:
    staging:
      +materialized: view
    marts:
      +materialized: table
""",
    "models/staging/stg_customers.sql": """
select id as customer_id, name from {{ source('bronze', 'customers') }}
""",
    "models/staging/stg_orders.sql": """
select id as order_id, customer_id, amount, status, updated_at
from {{ source('bronze', 'orders') }}
""",
    "models/staging/schema.yml": """
version: 2
models:
  - name: stg_orders
    columns:
      - name: order_id
        data_tests: [unique, not_null]
""",
    "models/marts/customer_orders.sql": """
select c.customer_id, c.name, count(o.order_id) as orders, coalesce(sum(o.amount), 0) as amount
from {{ ref('stg_customers') }} c
left join {{ ref('stg_orders') }} o on o.customer_id = c.customer_id
group by c.customer_id, c.name
""",
    "snapshots/snapshots.yml": """
snapshots:
  - name: orders_snapshot
    relation: source('bronze', 'orders')
    config:
      unique_key: id
      strategy: timestamp
      updated_at: updated_at
      hard_deletes: invalidate
  - name: customers_snapshot
    relation: source('bronze', 'customers')
    config:
      unique_key: id
      strategy: check
      check_cols: [name]
      hard_deletes: invalidate
""",
}

#: The source at each of the three loads: rows change, new rows come, rows are deleted.
LOADS: list[tuple[str, ...]] = [
    (
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)",
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER, amount INTEGER, "
        "status TEXT, updated_at TIMESTAMP)",
        "INSERT INTO customers VALUES (1, 'ann'), (2, 'bob'), (3, 'cy')",
        "INSERT INTO orders VALUES (10, 1, 10, 'placed', '2024-01-01 00:00:00'), "
        "(11, 2, 20, 'placed', '2024-01-01 00:00:00'), "
        "(12, 3, 30, 'placed', '2024-01-01 00:00:00')",
    ),
    (
        "UPDATE orders SET status = 'shipped', updated_at = '2024-01-02 00:00:00' WHERE id = 11",
        "DELETE FROM orders WHERE id = 12",
        "INSERT INTO orders VALUES (13, 1, 5, 'placed', '2024-01-02 00:00:00')",
        "UPDATE customers SET name = 'bobby' WHERE id = 2",
    ),
    (
        "UPDATE orders SET status = 'returned', updated_at = '2024-01-03 00:00:00' WHERE id = 11",
        "DELETE FROM customers WHERE id = 3",
    ),
]


def _write_project(root: Path) -> Path:
    for name, text in PROJECT.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.lstrip())
    return root


def _spec(kind: str) -> LoadSpec:
    return LoadSpec.model_validate(
        {
            "tenant": "jaffle",
            "source": {"kind": "sqlite", "connection": {"env": "SRC_URL"}},
            "warehouse": {"kind": kind, "connection": {"env": "WH_URL"}, "schemas": SCHEMAS},
            "tables": [{"name": "customers"}, {"name": "orders"}],
        }
    )


def _dbt(
    spec: LoadSpec, project: Path, warehouse: str, layer: str, selector: str
) -> subprocess.CompletedProcess[str]:
    """The argv the plan gives a custom layer's task (see test_plan_runs_one_task_per_layer)."""
    argv = [RUNNER, "dbt", "--project-dir", str(project), "--on-test-failure", "fail"]
    argv += ["--layer", layer, "--layers", json.dumps(LAYERS), "build", "--select", selector]
    return subprocess.run(
        argv,
        env=runner_env(spec, "", warehouse),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _warehouse(kind: str, tmp_path: Path, pg_database: Callable[[], str]) -> str:
    return f"duckdb:///{tmp_path / 'wh.duckdb'}" if kind == "duckdb" else pg_database()


@pytest.fixture
def lazy_pg_database(request: pytest.FixtureRequest) -> Callable[[], str]:
    """The `pg_database` fixture, only for the tests that use PostgreSQL."""
    return lambda: request.getfixturevalue("pg_database")


def _table_type(warehouse: str, schema: str, name: str) -> str | None:
    rows = query(
        warehouse,
        "SELECT table_type FROM information_schema.tables "
        f"WHERE table_schema = '{schema}' AND table_name = '{name}'",
    )
    return rows[0][0] if rows else None


@pytest.mark.postgres
@pytest.mark.parametrize("kind", ["duckdb", "postgres"])
def test_jaffle_layout_builds_each_layer_into_its_schema_over_three_loads(
    kind: str, tmp_path: Path, lazy_pg_database: Callable[[], str]
) -> None:
    project = _write_project(tmp_path / "jaffle")
    source_path = tmp_path / "source.db"
    source = f"sqlite:///{source_path}"
    warehouse = _warehouse(kind, tmp_path, lazy_pg_database)
    spec = _spec(kind)
    results: list[dict[str, Any]] = []
    for statements in LOADS:
        with closing(sqlite3.connect(source_path)) as conn, conn:
            for statement in statements:
                conn.execute(statement)
        for table in ("customers", "orders"):
            done = run_extract(spec, table, source, warehouse)
            assert done.returncode == 0, done.stderr  # views on bronze do not block a reload
        for layer, selector in LAYERS.items():
            done = _dbt(spec, project, warehouse, layer, selector)
            assert done.returncode == 0, done.stderr[-3000:]
            results.append(json.loads(done.stdout.splitlines()[-1]))

    silver, snapshots, gold = results[-3:]
    assert (silver["layer"], snapshots["layer"], gold["layer"]) == ("silver", "snapshots", "gold")
    assert sorted(silver["models"]) == ["j_staging.stg_customers", "j_staging.stg_orders"]
    assert gold["models"] == ["j_marts.customer_orders"]
    assert _table_type(warehouse, "j_staging", "stg_orders") == "VIEW"
    assert _table_type(warehouse, "j_marts", "customer_orders") == "BASE TABLE"
    assert _table_type(warehouse, "j_snapshots", "orders_snapshot") == "BASE TABLE"
    # nothing landed in a schema named after a folder or in another layer's schema
    assert _table_type(warehouse, "j_marts", "stg_orders") is None
    assert _table_type(warehouse, "j_staging", "orders_snapshot") is None

    # gold (a table over the staging views) holds the third load's state
    assert query(
        warehouse,
        "SELECT customer_id, name, orders, amount FROM j_marts.customer_orders ORDER BY 1",
    ) == [(1, "ann", 2, 15), (2, "bobby", 1, 20)]
    assert query(warehouse, "SELECT order_id, status FROM j_staging.stg_orders ORDER BY 1") == [
        (10, "placed"),
        (11, "returned"),
        (13, "placed"),
    ]

    # timestamp snapshot: every version of order 11, order 12 invalidated when deleted
    orders = query(
        warehouse,
        "SELECT id, status, dbt_valid_to IS NULL FROM j_snapshots.orders_snapshot "
        "ORDER BY id, dbt_valid_from",
    )
    assert orders == [
        (10, "placed", True),
        (11, "placed", False),
        (11, "shipped", False),
        (11, "returned", True),
        (12, "placed", False),
        (13, "placed", True),
    ]
    # check snapshot: bob renamed (two versions), cy invalidated at the third load
    customers = query(
        warehouse,
        "SELECT id, name, dbt_valid_to IS NULL FROM j_snapshots.customers_snapshot "
        "ORDER BY id, dbt_valid_from",
    )
    assert customers == [
        (1, "ann", True),
        (2, "bob", False),
        (2, "bobby", True),
        (3, "cy", False),
    ]


def test_a_layer_whose_selector_matches_nothing_is_exit_2(tmp_path: Path) -> None:
    project = _write_project(tmp_path / "jaffle")
    spec = _spec("duckdb")
    done = _dbt(spec, project, f"duckdb:///{tmp_path / 'wh.duckdb'}", "gold", "path:models/gold")
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    last = done.stderr.splitlines()[-1]
    assert "(layer gold): the selection path:models/gold matches no node" in last


def test_an_unknown_layer_is_a_config_error(tmp_path: Path) -> None:
    project = _write_project(tmp_path / "jaffle")
    done = _dbt(_spec("duckdb"), project, f"duckdb:///{tmp_path / 'wh.duckdb'}", "x", "x")
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1].endswith(
        "layer x is not one of the tenant's dbt layers (silver, snapshots, gold)"
    )


def test_plan_runs_one_task_per_layer_in_order(tmp_path: Path) -> None:
    """`dbt.layers` in a tenant file → one dbt task per layer, with the argv used above."""
    from dag_factory.loader import Loader
    from dag_factory.plan import TaskKind, plan_tenant

    warehouses = tmp_path / "warehouses"
    folder = warehouses / "jaffle"
    _write_project(folder / "dbt")
    (folder / "warehouse.yaml").write_text(
        "tenant: jaffle\n"
        "source: {kind: sqlite, connection: {env: JAFFLE_SRC}}\n"
        "warehouse: {kind: duckdb, connection: {env: JAFFLE_WH}}\n"
        "tables: [{name: customers}, {name: orders}]\n"
        "dbt:\n  layers:\n"
        + "".join(f"    {layer}: {selector}\n" for layer, selector in LAYERS.items())
    )
    plan = plan_tenant(Loader(warehouses).load(folder / "warehouse.yaml"), tmp_path)
    dbt = [t for t in plan.tasks if t.kind is TaskKind.dbt]
    assert [(t.task_id, t.upstream, t.outlets) for t in dbt] == [
        ("dbt_silver", ("extract_customers", "extract_orders"), ("tenant://jaffle/silver",)),
        ("dbt_snapshots", ("dbt_silver",), ("tenant://jaffle/snapshots",)),
        ("dbt_gold", ("dbt_snapshots",), ("tenant://jaffle/gold",)),
    ]
    assert dbt[1].argv == (
        "dbt",
        "--project-dir",
        "warehouses/jaffle/dbt",
        "--on-test-failure",
        "fail",
        "--layer",
        "snapshots",
        "--layers",
        json.dumps(LAYERS, separators=(",", ":")),
        "build",
        "--select",
        "resource_type:snapshot",
    )


@pytest.mark.parametrize(
    ("layers", "words"),
    [
        ("{bronze: path:models/x}", "bronze cannot be a dbt layer"),
        ("{Gold: gold}", "must be a layer name"),
        ("{gold: --full-refresh}", "must be a dbt selector"),
    ],
)
def test_bad_layers_are_refused_with_words(tmp_path: Path, layers: str, words: str) -> None:
    from dag_factory.loader import Loader

    warehouses = tmp_path / "warehouses"
    folder = warehouses / "jaffle"
    _write_project(folder / "dbt")
    (folder / "warehouse.yaml").write_text(
        "tenant: jaffle\n"
        "source: {kind: sqlite, connection: {env: JAFFLE_SRC}}\n"
        "warehouse: {kind: duckdb, connection: {env: JAFFLE_WH}}\n"
        "tables: [{name: orders}]\n"
        f"dbt: {{layers: {layers}}}\n"
    )
    with pytest.raises(Exception, match=words):
        Loader(warehouses).load(folder / "warehouse.yaml")
