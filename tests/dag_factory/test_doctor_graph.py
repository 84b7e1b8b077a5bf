"""`dag-factory doctor`'s check of the compiled dbt graph: the DAG file trusts the graph
without hashing the project (its parse budget), so the doctor is where staleness shows."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from dag_factory.doctor.findings import Status
from dag_factory.doctor.graph import check_graph
from dag_factory.isolation import EXECUTOR_ENV
from dag_factory.loader import Loader, Tenant
from tests.dag_factory.graphs import graph_doc, shop_nodes, write_graph

REPO = Path(__file__).resolve().parents[2]
SHOP = "warehouses/_dbt/shop"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    shutil.copytree(
        REPO / "warehouses",
        tmp_path / "warehouses",
        ignore=shutil.ignore_patterns("compiled", "target", "logs"),
    )
    return tmp_path


def _demo(root: Path) -> Tenant:
    return Loader(root / "warehouses").load(root / "warehouses" / "demo" / "warehouse.yaml")


def _compiled(root: Path) -> Path:
    """A graph written after every project file (as `dag-factory dbt compile` would)."""
    path = write_graph(root / "warehouses" / "demo", graph_doc("demo", SHOP, shop_nodes()))
    newest = max(p.stat().st_mtime for p in (root / SHOP).rglob("*") if p.is_file())
    os.utime(path, (newest + 10, newest + 10))
    return path


def test_no_graph_is_fine_locally_and_a_problem_for_containers(
    root: Path, monkeypatch: pytest.MonkeyPatch
):
    found = check_graph(_demo(root), root)
    assert found.status is Status.ok
    assert found.message == (
        "none: one task per dbt layer (run `dag-factory dbt compile demo` for one per model)"
    )
    monkeypatch.setenv(EXECUTOR_ENV, "kubernetes")
    found = check_graph(_demo(root), root)
    assert found.status is Status.problem
    assert "run `dag-factory dbt compile demo`, then `make images`" in found.message


def test_a_current_graph_is_ok(root: Path):
    _compiled(root)
    found = check_graph(_demo(root), root)
    assert (found.status, found.message) == (Status.ok, "5 dbt nodes, one task per model")


def test_a_model_edited_after_the_compile_is_stale(root: Path):
    graph = _compiled(root)
    model = root / SHOP / "models" / "gold" / "revenue_per_customer_month.sql"
    model.write_text(model.read_text() + "\n-- edited\n")
    os.utime(model, (graph.stat().st_mtime + 5, graph.stat().st_mtime + 5))
    found = check_graph(_demo(root), root)
    assert found.status is Status.problem
    assert found.message == (
        f"stale ({SHOP}/models/gold/revenue_per_customer_month.sql changed after it was "
        "compiled): run `dag-factory dbt compile demo`"
    )
    # build output is not an edit
    model.touch()
    os.utime(model, (graph.stat().st_mtime - 5, graph.stat().st_mtime - 5))
    (root / SHOP / "target").mkdir(exist_ok=True)
    (root / SHOP / "target" / "manifest.json").write_text("{}")
    assert check_graph(_demo(root), root).status is Status.ok


def test_a_graph_of_other_layers_is_stale(root: Path):
    doc = graph_doc("demo", SHOP, shop_nodes(), layers={"silver": "path:models/silver"})
    write_graph(root / "warehouses" / "demo", doc)
    found = check_graph(_demo(root), root)
    assert found.status is Status.problem
    assert found.message.startswith("stale (its layers")
    assert found.message.endswith(": run `dag-factory dbt compile demo`")


def test_an_unreadable_graph_is_a_problem(root: Path):
    path = write_graph(root / "warehouses" / "demo", graph_doc("demo", SHOP, {}, version=99))
    found = check_graph(_demo(root), root)
    assert found.status is Status.problem
    assert "dag-factory dbt compile" in found.message, found.message
    assert path.exists()
