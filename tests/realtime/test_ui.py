"""Airflow's UI in a real browser: the tenants' DAGs listed, a broken tenant's error shown,
a model-level DAG's task groups and its per-model asset lineage.

Screenshots go to the test's tmp dir; with `UPDATE_SCREENSHOTS=1` they replace the ones
committed under docs/img/ (look at them before committing).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from devtools.browser import Browser, Page
from tests.realtime.conftest import BROKEN_TENANT, REPO, RealAirflow

#: The demo's dbt models (its graph is compiled by the server fixture), gold last.
#: The asset page's size for the lineage: wide enough to read nine nodes in a row.
LINEAGE_VIEW = {"width": 2000, "height": 650}
DEMO_MODELS = ("customers", "products", "orders", "order_items", "revenue_per_customer_month")


def _shot_dir(tmp_path: Path) -> Path:
    return REPO / "docs" / "img" if os.environ.get("UPDATE_SCREENSHOTS") == "1" else tmp_path


def test_dag_list_and_the_invalid_tenant_page(
    airflow_server: RealAirflow, browser: Browser, tmp_path: Path
):
    dag_id = f"tenant_{BROKEN_TENANT}"
    page = browser.new_page()
    page.goto(f"{airflow_server.url}/dags")
    page.wait_for_text("tenant_demo", "tenant_acme", dag_id, "invalid-tenant-file")
    shot = page.screenshot(_shot_dir(tmp_path) / "ui-dag-list.png")
    assert shot.stat().st_size > 10_000  # a rendered page, not a blank one

    page.goto(f"{airflow_server.url}/dags/{dag_id}")
    page.wait_for_text(dag_id, "invalid_tenant_file")
    page.click("Dag Docs")
    text = page.wait_for_text("Tenant file is invalid", "retires", "did you mean `retries`")
    assert f"{BROKEN_TENANT}/warehouse.yaml" in text
    page.screenshot(_shot_dir(tmp_path) / "ui-invalid-tenant.png")


def _edges(page: Page, names: dict[str, str]) -> set[tuple[str, str]]:
    """The drawn graph's edges (React Flow labels each `Edge from <node> to <node>`), its
    node ids turned into what the graph shows: task ids and asset URIs."""

    def name(node: str) -> str:
        return names.get(node, node.split("__SEPARATOR__")[-1])

    labels = page.evaluate(
        "[...document.querySelectorAll('.react-flow__edge')].map(e => e.getAttribute('aria-label'))"
    )
    found = set()
    for label in labels or []:
        source, target = label.removeprefix("Edge from ").split(" to ")
        found.add((name(source), name(target)))
    return found


def test_model_level_dag_graph_and_per_model_asset_lineage(
    airflow_server: RealAirflow, browser: Browser, tmp_path: Path
):
    """The demo's compiled graph as a user sees it: the graph view holds the layer task
    groups with one task per dbt model, a model task's docs name its node and tests, and
    the gold model's asset shows its lineage model by model back to bronze."""
    url, shots = airflow_server.url, _shot_dir(tmp_path)
    page = browser.new_page()
    page.goto(f"{url}/dags/tenant_demo")
    page.wait_for_text("tenant_demo")
    # the graph, not the grid, as the DAG's view (the UI keeps the choice in local storage)
    page.evaluate("localStorage.setItem('default_dag_view', JSON.stringify('graph'))")
    page.goto(f"{url}/dags/tenant_demo")
    page.wait_for_text("dbt_build", "silver", "gold", "Task Group", "silver_done", "gold_done")
    page.click("Expand all task groups")
    text = page.wait_for_text(*DEMO_MODELS, "ModelProcessOperator")
    for table in ("customers", "products", "orders", "order_items"):
        assert f"extract_{table}" in text
    page.click("Collapse Details Panel")
    page.click("Fit View")
    page.screenshot(shots / "ui-model-dag.png")

    page.goto(f"{url}/dags/tenant_demo/tasks/silver.order_items")
    page.wait_for_text("silver.order_items", "ModelProcessOperator")
    page.click("Documentation")
    page.wait_for_text(
        "Task Documentation",
        "model.shop.order_items",
        "test.shop.unique_order_items_order_item_id",
        "bronze sources: order_items",
    )
    page.screenshot(shots / "ui-model-task-doc.png")

    assets = airflow_server.server.api(
        "GET", "/assets", params={"uri_pattern": "tenant://demo/", "limit": 100}
    )["assets"]
    names = {f"asset:{a['id']}": a["uri"] for a in assets}
    gold = next(a["id"] for a in assets if a["uri"] == f"tenant://demo/gold/{DEMO_MODELS[-1]}")
    # wide: the lineage is nine nodes long, and React Flow draws only what is in view
    page.send(
        "Emulation.setDeviceMetricsOverride",
        {**LINEAGE_VIEW, "deviceScaleFactor": 1, "mobile": False},
    )
    page.goto(f"{url}/assets/{gold}")
    page.wait_for_text("Task Dependencies")
    page.click("Task Dependencies")
    gold_task, gold_uri = f"gold.{DEMO_MODELS[-1]}", f"tenant://demo/gold/{DEMO_MODELS[-1]}"
    wanted = {(gold_task, gold_uri)}
    for table in ("customers", "orders", "order_items"):  # what the gold model reads
        bronze, silver = f"tenant://demo/bronze/{table}", f"tenant://demo/silver/{table}"
        wanted |= {
            (f"extract_{table}", bronze),
            (bronze, f"silver.{table}"),
            (f"silver.{table}", silver),
            (silver, gold_task),
        }
    deadline = time.monotonic() + 30  # the graph is laid out in steps
    edges = _edges(page, names)
    while not wanted <= edges and time.monotonic() < deadline:
        page.click("Fit View")
        time.sleep(1)
        edges = _edges(page, names)
    assert wanted <= edges, f"missing {sorted(wanted - edges)}; drawn: {sorted(edges)}"
    # products feeds no gold model: not in its lineage
    assert not any("products" in node for edge in edges for node in edge), edges
    page.click("Fit View")
    page.screenshot(shots / "ui-asset-lineage.png", **LINEAGE_VIEW)
