"""The compiled dbt graph (contract A) and the one parse per run it buys.

Real dbt-core parses the shop project and a jaffle-layout project (staging views, marts,
snapshots, a relationships test); the run test builds the shop on a real DuckDB file and
counts dbt's parses from its own events.
"""

from __future__ import annotations

import collections
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from datakits.spec import LoadSpec
from devtools.shop import generate_shop
from runners.dbt import run_dbt
from runners.dbt_graph import inputs_hash, project_hash, write_graph
from runners.dbt_project import DEFAULT_LAYERS
from tests.datakits.runner_proc import RUNNER, run_extract, runner_env
from tests.runners.test_layers import LAYERS, PROJECT, _spec, _write_project

REPO = Path(__file__).resolve().parents[2]
SHOP = REPO / "warehouses" / "_dbt" / "shop"
SHOP_TABLES = ("customers", "products", "orders", "order_items")

#: The jaffle layout plus a relationships test from a mart to a staging model.
JAFFLE = {
    **PROJECT,
    "models/marts/schema.yml": """
version: 2
models:
  - name: customer_orders
    columns:
      - name: customer_id
        data_tests:
          - not_null
          - relationships:
              arguments:
                to: ref('stg_customers')
                field: customer_id
""",
}


def _shop_spec() -> LoadSpec:
    return LoadSpec.model_validate(
        {
            "tenant": "demo",
            "source": {"kind": "sqlite", "connection": {"env": "SRC"}},
            "warehouse": {"kind": "duckdb", "connection": {"env": "WH"}},
            "tables": [{"name": t} for t in SHOP_TABLES],
        }
    )


def _by_name(graph: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {node["name"]: {**node, "id": uid} for uid, node in graph["nodes"].items()}


def test_shop_graph_has_layers_parents_sources_and_tests(tmp_path: Path) -> None:
    spec = _shop_spec()
    result = write_graph(spec, SHOP, DEFAULT_LAYERS, tmp_path / "out")
    graph = json.loads((tmp_path / "out" / "dbt_graph.json").read_text())
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    nodes = _by_name(graph)

    assert graph["version"] == 1 and graph["tenant"] == "demo"
    assert graph["project_hash"] == project_hash(SHOP) == result["project_hash"]
    assert graph["inputs_hash"] == inputs_hash(project_hash(SHOP), spec, DEFAULT_LAYERS)
    assert graph["layers"] == DEFAULT_LAYERS
    assert graph["dbt_version"] == manifest["metadata"]["dbt_version"]
    assert {n: v["layer"] for n, v in nodes.items()} == {
        "customers": "silver",
        "products": "silver",
        "orders": "silver",
        "order_items": "silver",
        "revenue_per_customer_month": "gold",
    }
    gold = nodes["revenue_per_customer_month"]
    assert gold["depends_on"] == sorted(
        nodes[n]["id"] for n in ("customers", "order_items", "orders")
    )
    assert gold["sources"] == [] and gold["resource_type"] == "model"
    assert nodes["orders"]["sources"] == ["orders"] and nodes["orders"]["depends_on"] == []
    # every test of the project is attached to exactly one node, of its parents
    tests = {uid for uid, n in manifest["nodes"].items() if n["resource_type"] == "test"}
    attached = [t for node in graph["nodes"].values() for t in node["tests"]]
    assert sorted(attached) == sorted(tests) and len(attached) == result["tests"]
    for node in graph["nodes"].values():
        for test in node["tests"]:
            assert nodes[node["name"]]["id"] in manifest["nodes"][test]["depends_on"]["nodes"]
    # the manifest names the project, not the temp copy it was parsed from
    assert "runner-dbt-" not in (tmp_path / "out" / "manifest.json").read_text()


def test_jaffle_layout_graph_snapshots_views_and_a_relationships_test(tmp_path: Path) -> None:
    project = _write_project(tmp_path / "jaffle")
    (project / "models/marts/schema.yml").write_text(JAFFLE["models/marts/schema.yml"].lstrip())
    write_graph(_spec("duckdb"), project, LAYERS, tmp_path / "out")
    nodes = _by_name(json.loads((tmp_path / "out" / "dbt_graph.json").read_text()))

    assert {n: (v["layer"], v["resource_type"], v["materialized"]) for n, v in nodes.items()} == {
        "stg_customers": ("silver", "model", "view"),
        "stg_orders": ("silver", "model", "view"),
        "customer_orders": ("gold", "model", "table"),
        "orders_snapshot": ("snapshots", "snapshot", "snapshot"),
        "customers_snapshot": ("snapshots", "snapshot", "snapshot"),
    }
    assert nodes["customer_orders"]["depends_on"] == sorted(
        [nodes["stg_customers"]["id"], nodes["stg_orders"]["id"]]
    )
    assert nodes["orders_snapshot"]["sources"] == ["orders"]
    assert nodes["stg_customers"]["sources"] == ["customers"]
    # the relationships test has two parents: it goes to the one built last (the mart)
    relationships = [t for t in nodes["customer_orders"]["tests"] if "relationships" in t]
    assert len(relationships) == 1
    assert not any("relationships" in t for t in nodes["stg_customers"]["tests"])
    assert sorted(t.split(".")[2] for t in nodes["stg_orders"]["tests"]) == [
        "not_null_stg_orders_order_id",
        "unique_stg_orders_order_id",
    ]


def test_project_hash_follows_the_files_not_build_output(tmp_path: Path) -> None:
    copy = tmp_path / "shop"
    shutil.copytree(SHOP, copy)
    before = project_hash(copy)
    (copy / "target").mkdir()
    (copy / "target" / "manifest.json").write_text("{}")
    (copy / "logs").mkdir()
    (copy / "logs" / "dbt.log").write_text("x")
    assert project_hash(copy) == before == project_hash(SHOP)
    (copy / "models" / "silver" / "orders.sql").write_text("select 1 as order_id\n")
    assert project_hash(copy) != before


def test_a_layer_that_selects_nothing_is_an_error(tmp_path: Path) -> None:
    from datakits.errors import ConfigError

    with pytest.raises(ConfigError, match=r"dbt layer gold \(path:models/marts\) selects no"):
        write_graph(_shop_spec(), SHOP, {"silver": "silver", "gold": "path:models/marts"}, tmp_path)


def _parses(events: collections.Counter[str]) -> int:
    """dbt's manifest loads that parsed files (partial parsing is off in runs)."""
    return events["PartialParsingNotEnabled"] + events["UnableToPartialParse"]


@pytest.fixture(scope="module")
def shop_warehouse(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A DuckDB warehouse with the shop's bronze loaded by the real `runner extract`."""
    folder = tmp_path_factory.mktemp("shop")
    source = f"sqlite:///{folder / 'shop.sqlite'}"
    warehouse = f"duckdb:///{folder / 'wh.duckdb'}"
    generate_shop(source, orders=200)
    for table in SHOP_TABLES:
        done = run_extract(_shop_spec(), table, source, warehouse)
        assert done.returncode == 0, done.stderr
    return warehouse


def test_a_matching_graph_spares_the_routing_parse(
    tmp_path: Path, shop_warehouse: str, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = _shop_spec()
    graph = tmp_path / "compiled"
    write_graph(spec, SHOP, DEFAULT_LAYERS, graph)
    args = ["build", "--select", "silver", "gold"]
    counts = {}
    for label, path in (("routing parse", None), ("graph", graph / "dbt_graph.json")):
        events: collections.Counter[str] = collections.Counter()

        def count(event: Any, events: collections.Counter[str] = events) -> None:
            events[event.info.name] += 1

        result = run_dbt(
            spec, SHOP, args, shop_warehouse, layers=DEFAULT_LAYERS, graph=path, callbacks=[count]
        )
        assert result["failed"] == 0 and result["passed"] == 25
        counts[label] = _parses(events)
    assert counts == {"routing parse": 2, "graph": 1}
    assert f"layer routing from {graph / 'dbt_graph.json'}" in capsys.readouterr().err

    # a graph of other inputs (here: another layer map) is ignored, with a line saying so
    other = {"silver": "silver", "gold": "path:models/gold"}
    events = collections.Counter()
    run_dbt(
        spec,
        SHOP,
        args,
        shop_warehouse,
        layers=other,
        graph=graph / "dbt_graph.json",
        callbacks=[lambda e: events.update([e.info.name])],
    )
    assert _parses(events) == 2
    assert "was compiled from another project or spec" in capsys.readouterr().err


def test_runner_dbt_graph_cli_writes_the_files_and_needs_no_warehouse(tmp_path: Path) -> None:
    env = runner_env(_shop_spec(), "", "")
    env.pop("RUNNER_WAREHOUSE_URL")
    done = subprocess.run(
        [RUNNER, "dbt-graph", "--project-dir", str(SHOP), "--out", str(tmp_path / "g")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["command"] == "dbt-graph" and result["nodes"] == 5
    assert sorted(p.name for p in (tmp_path / "g").iterdir()) == ["dbt_graph.json", "manifest.json"]


def test_graph_routing_puts_each_layer_in_its_schema(tmp_path: Path) -> None:
    """A jaffle layout, whose folders are not layer names: only the routing the graph
    carries puts staging, snapshots and marts into their own schemas."""
    import sqlite3
    from contextlib import closing

    from tests.datakits.conftest import query
    from tests.runners.test_layers import LOADS

    project = _write_project(tmp_path / "jaffle")
    spec = _spec("duckdb")
    source_path = tmp_path / "source.db"
    with closing(sqlite3.connect(source_path)) as conn, conn:
        for statement in LOADS[0]:
            conn.execute(statement)
    warehouse = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    for table in ("customers", "orders"):
        done = run_extract(spec, table, f"sqlite:///{source_path}", warehouse)
        assert done.returncode == 0, done.stderr
    write_graph(spec, project, LAYERS, tmp_path / "compiled")
    argv = [RUNNER, "dbt", "--project-dir", str(project), "--layers", json.dumps(LAYERS)]
    argv += ["--graph", str(tmp_path / "compiled" / "dbt_graph.json"), "--report-nodes"]
    done = subprocess.run(
        [*argv, "build", "--select", *LAYERS.values()],
        env=runner_env(spec, "", warehouse),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "layer routing from" in done.stderr
    statuses = {n["status"] for n in json.loads(done.stdout.splitlines()[-1])["nodes"].values()}
    assert statuses == {"success", "pass"}
    found = query(
        warehouse,
        "SELECT table_schema, table_name FROM information_schema.tables "
        "WHERE table_schema LIKE 'j_%' AND table_schema NOT IN ('j_bronze', 'j_meta') "
        "ORDER BY 1, 2",
    )
    assert found == [
        ("j_marts", "customer_orders"),
        ("j_snapshots", "customers_snapshot"),
        ("j_snapshots", "orders_snapshot"),
        ("j_staging", "stg_customers"),
        ("j_staging", "stg_orders"),
    ]
