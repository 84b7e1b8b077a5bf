"""The demo tenant with model-level dbt tasks, end to end through `airflow dags test`.

Real Airflow (own home, SQLite metadata DB), real runner subprocesses, real dbt, a real
DuckDB file. The compiled graph is the shop project as dbt really parses it (a dbt parse
in `compile_shop_graph`, written in the format of contract A: the real node and test ids,
so the producer's report and the graph agree); `dag-factory dbt compile` replaces it once
it exists. The producer needs the runner's `--report-nodes` (contract B): without it these
tests skip and say so.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from dag_factory.loader import Loader
from devtools.shop import generate_shop
from tests.dag_factory.graphs import graph_doc, write_graph
from tests.integration.airflow_runs import last_run

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
MODEL_TYPES = ("model", "seed", "snapshot")


def _report_nodes_supported() -> bool:
    done = subprocess.run(
        [BIN / "runner", "dbt", "--help"], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    return "--report-nodes" in done.stdout


pytestmark = pytest.mark.skipif(
    not _report_nodes_supported(),
    reason="needs `runner dbt --report-nodes` (contract B, the graph branch) for dbt_build",
)


def compile_shop_graph(root: Path, tenant: str, work: Path) -> dict[str, Any]:
    """One `dbt parse` of the tenant's prepared shop project (no warehouse connection),
    turned into contract A: models per layer folder, parents among them, bronze sources,
    each test attached to its parent that comes last in topological order."""
    from dbt.cli.main import dbtRunner

    from runners.dbt import DBT_DEFAULTS, _scoped_env
    from runners.dbt_profile import prepare_profile, profile_env, profiles_yml
    from runners.dbt_project import prepare_project

    loaded = Loader(root / "warehouses").load(root / "warehouses" / tenant / "warehouse.yaml")
    spec = loaded.spec.load_spec()
    kind = spec.warehouse.kind
    env = profile_env(kind, f"duckdb:///{work}/parse.duckdb", spec.warehouse.schemas.silver)
    prepare_profile(kind, env)
    project = prepare_project(root / "warehouses" / "_dbt" / "shop", work, spec, tests_warn=False)
    profiles = work / "profiles"
    profiles.mkdir()
    (profiles / "profiles.yml").write_text(profiles_yml(project.profile, kind, sslmode=False))
    args = ["parse", "--project-dir", str(project.dir), "--profiles-dir", str(profiles)]
    args += ["--target-path", str(work / "target"), "--log-path", str(work / "logs")]
    with _scoped_env({**DBT_DEFAULTS, **env}):
        res = dbtRunner().invoke(args)
    assert res.success, res.exception
    manifest = res.result
    layers = {"silver": "silver", "gold": "gold"}
    picked = {
        uid: n
        for uid, n in manifest.nodes.items()
        if str(n.resource_type) in MODEL_TYPES and n.fqn[1] in layers
    }
    order: list[str] = []
    while len(order) < len(picked):  # topological: parents first
        for uid, n in picked.items():
            parents = [p for p in n.depends_on.nodes if p in picked]
            if uid not in order and all(p in order for p in parents):
                order.append(uid)
    tests: dict[str, list[str]] = {uid: [] for uid in picked}
    for uid, n in manifest.nodes.items():
        parents = [p for p in n.depends_on.nodes if p in picked]
        if str(n.resource_type) == "test" and parents:
            tests[max(parents, key=order.index)].append(uid)
    nodes = {
        uid: {
            "name": n.name,
            "resource_type": str(n.resource_type),
            "layer": n.fqn[1],
            "materialized": n.config.materialized,
            "path": n.original_file_path,
            "depends_on": [p for p in n.depends_on.nodes if p in picked],
            "sources": [
                manifest.sources[p].name
                for p in n.depends_on.nodes
                if p in manifest.sources and manifest.sources[p].source_name == "bronze"
            ],
            "tests": sorted(tests[uid]),
        }
        for uid, n in ((u, picked[u]) for u in order)
    }
    return graph_doc(tenant, "warehouses/_dbt/shop", nodes, layers)


def _demo_copy(root: Path, **dbt: str) -> Path:
    """A copy of the warehouses folder under `root` whose demo tenant has no retries, the
    given `dbt:` settings and a compiled graph, and its shop source; returns `root`."""
    shutil.copytree(REPO / "warehouses", root / "warehouses")
    tenant_file = root / "warehouses" / "demo" / "warehouse.yaml"
    doc = yaml.safe_load(tenant_file.read_text())
    doc["retries"] = 0  # a failed model fails at once (airflow dags test waits out delays)
    doc.setdefault("dbt", {}).update(dbt)
    tenant_file.write_text(yaml.safe_dump(doc, sort_keys=False))
    work = root / "parse"
    work.mkdir()
    write_graph(tenant_file.parent, compile_shop_graph(root, "demo", work))
    generate_shop(f"sqlite:///{root}/shop.sqlite", orders=500)
    return root


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _demo_copy(tmp_path_factory.mktemp("model_dag"))


def dags_test(env: dict[str, str], root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **env,
        "DAG_FACTORY_TENANTS": "demo",
        "DAG_FACTORY_WAREHOUSES": str(root / "warehouses"),
        "DEMO_SOURCE_URL": f"sqlite:///{root}/shop.sqlite",
        "DEMO_WAREHOUSE_URL": f"duckdb:///{root}/warehouse.duckdb",
    }
    return subprocess.run(
        [BIN / "airflow", "dags", "test", "tenant_demo", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        cwd=REPO,
    )


def test_model_tasks_pass_on_the_report_then_a_failure_fails_its_branch_only(
    airflow_env: dict[str, str], demo_root: Path
):
    done = dags_test(airflow_env, demo_root)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    states, xcoms, events = last_run(airflow_env)
    models = sorted(t for t in states if "." in t)
    assert models == [
        "gold.revenue_per_customer_month",
        "silver.customers",
        "silver.order_items",
        "silver.orders",
        "silver.products",
    ]
    assert set(states.values()) == {"success"}
    # one dbt build: every model task passed on its report, none started a runner
    assert {xcoms[t]["ran"] for t in models} == {"dbt_build"}
    assert set(xcoms["dbt_build"]["nodes"]) >= {n for t in models for n in xcoms[t]["nodes"]}
    assert {
        "tenant://demo/bronze/orders",
        "tenant://demo/silver/orders",
        "tenant://demo/gold/revenue_per_customer_month",
        "tenant://demo/silver",
        "tenant://demo/gold",
    } <= set(events)

    # run options still apply: only orders is loaded, the models build on the rest
    done = dags_test(airflow_env, demo_root, "--conf", '{"tables": ["orders"]}')
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    states, _, _ = last_run(airflow_env)
    assert states["extract_customers"] == "skipped" and states["extract_orders"] == "success"
    assert {states[t] for t in models} == {"success"}

    # a real failing model (a DuckDB conversion error): its task and its descendants fail,
    # its siblings and the other branches succeed, its layer's asset gets no event
    broken = demo_root / "warehouses" / "_dbt" / "shop" / "models" / "silver" / "order_items.sql"
    broken.write_text(broken.read_text() + "\n  and cast('not a number' as integer) > 0\n")
    dags_test(airflow_env, demo_root)
    states, xcoms, events = last_run(airflow_env)
    assert states["dbt_build"] == "success"
    assert xcoms["dbt_build"]["nodes"]["model.shop.order_items"]["status"] == "error"
    assert states["silver.order_items"] == "failed"
    assert states["gold.revenue_per_customer_month"] == "upstream_failed"
    assert states["silver_done"] == states["gold_done"] == "upstream_failed"
    assert {states[f"silver.{m}"] for m in ("customers", "orders", "products")} == {"success"}
    assert "tenant://demo/silver/orders" in events
    assert "tenant://demo/silver" not in events and "tenant://demo/gold" not in events


def test_folder_tasks_pass_on_the_report_and_a_failure_fails_its_folder(
    airflow_env: dict[str, str], tmp_path: Path
):
    """`dbt.tasks: folder`: one task per project folder (the shop's `silver` and `gold`),
    each node still with its own asset event; a failing model fails its folder's task and
    the folders after it."""
    root = _demo_copy(tmp_path, tasks="folder")
    done = dags_test(airflow_env, root)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    states, xcoms, events = last_run(airflow_env)
    assert sorted(t for t in states if "." in t) == ["gold.gold", "silver.silver"]
    assert set(states.values()) == {"success"}
    assert xcoms["silver.silver"]["ran"] == "dbt_build"
    assert len(xcoms["silver.silver"]["nodes"]) == 4
    assert {f"tenant://demo/silver/{m}" for m in ("customers", "orders", "order_items")} | {
        "tenant://demo/gold/revenue_per_customer_month",
        "tenant://demo/gold",
    } <= set(events)

    broken = root / "warehouses" / "_dbt" / "shop" / "models" / "silver" / "order_items.sql"
    broken.write_text(broken.read_text() + "\n  and cast('not a number' as integer) > 0\n")
    dags_test(airflow_env, root)
    states, xcoms, events = last_run(airflow_env)
    assert states["dbt_build"] == "success"
    assert states["silver.silver"] == "failed"
    assert states["gold.gold"] == states["gold_done"] == "upstream_failed"
    assert not {e for e in events if e.startswith("tenant://demo/silver")}
