"""`dbt.tasks: folder`: one model task per project folder instead of one per node.

Pure tests of the grouping (`dag_factory.model_units`), the plan and DAG it gives, and the
judgement of a task covering several nodes; real Airflow DAG objects, no dbt run
(tests/integration/test_model_dag.py runs a folder-grain tenant under `airflow dags test`).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from dag_factory.adapters.model_task import Verdict, judge_unit
from dag_factory.build import build_dag, read_graph
from dag_factory.dbt_graph import DbtGraph, GraphNode
from dag_factory.errors import TenantFileError
from dag_factory.loader import Loader
from dag_factory.model_units import folder_name, model_units
from dag_factory.plan import PRODUCER_TASK, plan_tenant
from dag_factory.spec import DbtTaskGrain
from tests.dag_factory.graphs import graph_doc, node, report, write_graph

REPO = Path(__file__).resolve().parents[2]
SHOP = "warehouses/_dbt/shop"


def _node(name: str, layer: str, path: str, *parents: str, sources: tuple = ()) -> GraphNode:
    return GraphNode(
        unique_id=f"model.p.{name}",
        name=name,
        resource_type="model",
        layer=layer,
        materialized="table",
        depends_on=tuple(f"model.p.{p}" for p in parents),
        sources=sources,
        tests=(f"test.p.unique_{name}.0",),
        path=path,
    )


def _graph(*nodes: GraphNode, layers: tuple[str, ...] = ("silver", "gold")) -> DbtGraph:
    return DbtGraph(
        tenant="t",
        project="p",
        project_hash="",
        inputs_hash="",
        dbt_version="1.12.0",
        layers={layer: layer for layer in layers},
        nodes={n.unique_id: n for n in nodes},
    )


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("models/marts/finance/fct_orders.sql", "marts_finance"),
        ("models/staging/stg_orders.sql", "staging"),
        ("models/top.sql", "models"),
        ("seeds/countries.csv", "seeds"),
        ("snapshots/scd/orders_snapshot.sql", "scd"),
        ("models/marts/fin.ance/x-y/fct.sql", "marts_fin_ance_x-y"),
    ],
)
def test_folder_name(path: str, name: str):
    assert folder_name(_node("x", "silver", path)) == name


def test_folder_units_group_by_layer_and_folder_in_graph_order():
    graph = _graph(
        _node("stg_a", "silver", "models/staging/stg_a.sql", sources=("a",)),
        _node("stg_b", "silver", "models/staging/stg_b.sql", sources=("b",)),
        _node("fin", "gold", "models/marts/finance/fin.sql", "stg_a"),
        _node("mkt", "gold", "models/marts/marketing/mkt.sql", "stg_b"),
        _node("fin2", "gold", "models/marts/finance/fin2.sql", "fin", "mkt"),
    )
    units = model_units(graph, DbtTaskGrain.folder)
    assert [(u.layer, u.name, [n.name for n in u.nodes]) for u in units] == [
        ("silver", "staging", ["stg_a", "stg_b"]),
        ("gold", "marts_finance", ["fin", "fin2"]),
        ("gold", "marts_marketing", ["mkt"]),
    ]
    assert units[1].tests == ("test.p.unique_fin.0", "test.p.unique_fin2.0")
    assert [u.name for u in model_units(graph, DbtTaskGrain.model)] == [
        "stg_a", "stg_b", "fin", "mkt", "fin2",
    ]  # fmt: skip


def test_folders_that_depend_on_each_other_become_one_task():
    """a1 (folder a) → b1 (folder b) → a2 (folder a): tasks `a` and `b` would be a cycle."""
    graph = _graph(
        _node("a1", "silver", "models/a/a1.sql"),
        _node("b1", "silver", "models/b/b1.sql", "a1"),
        _node("a2", "silver", "models/a/a2.sql", "b1"),
        _node("c1", "gold", "models/c/c1.sql", "a2"),
    )
    units = model_units(graph, DbtTaskGrain.folder)
    assert [(u.layer, u.name, [n.name for n in u.nodes]) for u in units] == [
        ("gold", "c", ["c1"]),
        ("silver", "a__b", ["a1", "b1", "a2"]),
    ]


def _folder_tenant(root: Path, nodes: dict[str, dict[str, Any]]) -> Any:
    tenant_file = root / "warehouses" / "demo" / "warehouse.yaml"
    doc = yaml.safe_load(tenant_file.read_text())
    doc.setdefault("dbt", {})["tasks"] = "folder"
    tenant_file.write_text(yaml.safe_dump(doc, sort_keys=False))
    write_graph(tenant_file.parent, graph_doc("demo", SHOP, nodes))
    return Loader(root / "warehouses").load(tenant_file)


def _with_path(entry: tuple[str, dict[str, Any]], path: str) -> tuple[str, dict[str, Any]]:
    uid, fields = entry
    return uid, {**fields, "path": path}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    shutil.copytree(
        REPO / "warehouses",
        tmp_path / "warehouses",
        ignore=shutil.ignore_patterns("compiled", "target"),
    )
    return tmp_path


def test_folder_plan_and_dag(root: Path):
    nodes = dict(
        [
            _with_path(node("customers", "silver", sources=("customers",), tests=("test.shop.u_c.1",)), "models/silver/customers.sql"),  # noqa: E501
            _with_path(node("orders", "silver", sources=("orders",)), "models/silver/orders.sql"),
            _with_path(node("revenue", "gold", depends_on=("model.shop.customers", "model.shop.orders")), "models/gold/finance/revenue.sql"),  # noqa: E501
            _with_path(node("ltv", "gold", depends_on=("model.shop.revenue",)), "models/gold/finance/ltv.sql"),  # noqa: E501
            _with_path(node("visits", "gold", depends_on=("model.shop.customers",)), "models/gold/web/visits.sql"),  # noqa: E501
        ]
    )  # fmt: skip
    tenant = _folder_tenant(root, nodes)
    plan = plan_tenant(tenant, root, graph=read_graph(tenant)[0])
    assert plan.fallback is None
    models = {t.task_id: t for t in plan.tasks if t.is_model}
    assert list(models) == ["silver.silver", "gold.gold_finance", "gold.gold_web"]
    finance = models["gold.gold_finance"]
    assert finance.upstream == ("silver.silver",)
    assert models["silver.silver"].upstream == (PRODUCER_TASK,)
    assert finance.argv[-6:] == (
        "build", "--select", "revenue", "ltv", "--indirect-selection", "cautious",
    )  # fmt: skip
    assert finance.outlets == ("tenant://demo/gold/revenue", "tenant://demo/gold/ltv")
    # its inlets: parents outside the folder (not revenue, which it builds itself)
    assert finance.inlets == ("tenant://demo/silver/customers", "tenant://demo/silver/orders")
    silver = models["silver.silver"]
    assert silver.argv[-7:] == (
        "build", "--select", "customers", "orders", "u_c", "--indirect-selection", "cautious",
    )  # fmt: skip
    assert silver.inlets == ("tenant://demo/bronze/customers", "tenant://demo/bronze/orders")
    assert [g.upstream for g in plan.gates] == [
        ("silver.silver",),
        ("gold.gold_finance", "gold.gold_web"),
    ]

    dag = build_dag(tenant, root)
    task = dag.task_dict["gold.gold_finance"]
    assert task.dbt_nodes == {"model.shop.revenue": (), "model.shop.ltv": ()}
    assert task.task_group.group_id == "gold"
    assert dag.task_dict["gold.gold_web"].upstream_task_ids == {"silver.silver"}
    assert "file models/gold/finance/ltv.sql" in task.doc_md
    assert "builds these 2 nodes and their tests" in task.doc_md
    assert "one task per project folder" in dag.doc_md and "3 tasks for 5 nodes" in dag.doc_md


def test_folder_grain_needs_a_graph_that_records_files(root: Path):
    """A graph compiled before `path` was recorded cannot be grouped: layer tasks, and why."""
    tenant = _folder_tenant(root, dict([node("customers", "silver", sources=("customers",))]))
    plan = plan_tenant(tenant, root, graph=read_graph(tenant)[0])
    assert plan.fallback is not None and "dbt.tasks: folder" in plan.fallback
    assert [t.task_id for t in plan.tasks if t.kind == "dbt"] == ["dbt_silver", "dbt_gold"]


def test_a_mistyped_grain_is_a_tenant_file_error(root: Path):
    tenant_file = root / "warehouses" / "demo" / "warehouse.yaml"
    tenant_file.write_text(tenant_file.read_text() + "\n")
    doc = yaml.safe_load(tenant_file.read_text())
    doc.setdefault("dbt", {})["tasks"] = "folders"
    tenant_file.write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(TenantFileError) as caught:
        Loader(root / "warehouses").load(tenant_file)
    message = str(caught.value)
    assert "dbt.tasks" in message and "'model' or 'folder'" in message, message


def test_judge_a_unit_of_several_nodes():
    nodes = {"model.p.a": ("test.p.ta",), "model.p.b": (), "model.p.c": ()}
    passed = report({"model.p.a": "success", "test.p.ta": "pass", "model.p.b": "success"})
    passed["nodes"]["model.p.c"] = {"status": "success", "seconds": 0.1, "message": ""}
    seen = judge_unit(passed["nodes"], nodes)
    assert seen.verdict is Verdict.passed and seen.reason == "3 nodes passed in dbt_build"
    # the worst verdict wins and names its node: a failing test (permanent) over an error
    # a retry may fix, over a node that dbt skipped
    mixed = report(
        {"model.p.a": "success", "test.p.ta": "fail", "model.p.b": "error", "model.p.c": "skipped"}
    )
    seen = judge_unit(mixed["nodes"], nodes)
    assert seen.verdict is Verdict.permanent and "test.p.ta" in seen.reason
    del mixed["nodes"]["test.p.ta"], nodes["model.p.a"]
    seen = judge_unit(mixed["nodes"], nodes)
    assert seen.verdict is Verdict.retried and seen.reason.startswith("model.p.b")
    assert judge_unit(mixed["nodes"], {"model.p.c": ()}).verdict is Verdict.run
