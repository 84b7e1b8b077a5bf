"""Model-level dbt tasks (issue 14, contract C): a compiled graph gives one task per dbt node.

Real Airflow DAG objects, a real runner and real dbt/DuckDB for the run-itself path; the
producer's result (`dbt_build`'s XCom, contract B) is built by hand here, so these tests do
not need the runner's `--report-nodes` (tests/integration/test_model_dag.py runs it).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from airflow.sdk import Asset, TriggerRule
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from airflow.sdk.execution_time.context import OutletEventAccessors

from dag_factory.adapters import local
from dag_factory.adapters.model_task import ModelTaskMixin, Verdict, judge
from dag_factory.build import build_dag, read_graph
from dag_factory.dbt_graph import GraphError, graph_path, load, parse
from dag_factory.loader import Loader
from dag_factory.plan import NO_GRAPH, PRODUCER_TASK, TaskKind, plan_tenant
from devtools.shop import generate_shop
from tests.dag_factory.conftest import WriteTenant
from tests.dag_factory.graphs import graph_doc, node, report, shop_nodes, write_graph

REPO = Path(__file__).resolve().parents[2]
SHOP = "warehouses/_dbt/shop"
CUSTOMERS = "model.shop.customers"
REVENUE = "model.shop.revenue_per_customer_month"


@pytest.fixture
def shop_root(tmp_path: Path) -> Path:
    """A copy of the repository's warehouses folder (demo, acme, the shop project) with a
    hand-written graph of the shop project for demo; returns the folder holding it."""
    root = tmp_path / "root"
    shutil.copytree(
        REPO / "warehouses",
        root / "warehouses",
        ignore=shutil.ignore_patterns("compiled", "target"),
    )
    write_graph(root / "warehouses" / "demo", graph_doc("demo", SHOP, shop_nodes()))
    return root


def demo(root: Path) -> Any:
    return Loader(root / "warehouses").load(root / "warehouses" / "demo" / "warehouse.yaml")


# --- the graph file --------------------------------------------------------------------------


def test_graph_reader(tmp_path: Path):
    assert load(tmp_path / "nothing" / "dbt_graph.json") is None
    path = write_graph(tmp_path, graph_doc("demo", SHOP, shop_nodes()))
    graph = load(path)
    assert graph is not None and graph.tenant == "demo" and graph.dbt_version == "1.12.0"
    assert list(graph.nodes)[:2] == [CUSTOMERS, "model.shop.products"]
    assert graph.nodes[REVENUE].depends_on == (
        "model.shop.order_items",
        "model.shop.orders",
        "model.shop.customers",
    )
    with pytest.raises(
        GraphError, match=r"graph version 2, this dag-factory reads version 1.*dbt compile"
    ):
        parse(json.dumps(graph_doc("demo", SHOP, {}, version=2)), "g.json")
    with pytest.raises(GraphError, match=r"g.json: not JSON"):
        parse("{", "g.json")
    broken = graph_doc("demo", SHOP, {CUSTOMERS: {"layer": "silver"}})
    with pytest.raises(GraphError, match=r"missing 'name'.*compile. again"):
        parse(json.dumps(broken), "g.json")


# --- the plan --------------------------------------------------------------------------------


def test_plan_has_producer_one_task_per_node_and_layer_gates(shop_root: Path):
    tenant = demo(shop_root)
    graph, error = read_graph(tenant)
    assert error is None
    plan = plan_tenant(tenant, shop_root, graph=graph)
    assert plan.fallback is None
    ids = [t.task_id for t in plan.tasks]
    assert ids == [
        "extract_customers",
        "extract_products",
        "extract_orders",
        "extract_order_items",
        PRODUCER_TASK,
        "silver.customers",
        "silver.products",
        "silver.orders",
        "silver.order_items",
        "gold.revenue_per_customer_month",
    ]
    producer = plan.task(PRODUCER_TASK)
    assert producer.kind is TaskKind.dbt
    assert producer.upstream == tuple(ids[:4])  # every extract, read by a model or not
    assert producer.argv == (
        "dbt", "--project-dir", SHOP, "--on-test-failure", "fail",
        "--layers", '{"silver":"silver","gold":"gold"}', "--report-nodes",
        "build", "--select", "silver", "gold",
    )  # fmt: skip
    gold = plan.task("gold.revenue_per_customer_month")
    assert gold.kind is TaskKind.model and gold.group == "gold"
    assert gold.upstream == (
        "silver.order_items",
        "silver.orders",
        "silver.customers",
    )
    assert gold.argv == (
        "dbt", "--project-dir", SHOP, "--on-test-failure", "fail",
        "build", "--select", "revenue_per_customer_month",
        "not_null_revenue_per_customer_month_revenue", "--indirect-selection", "cautious",
    )  # fmt: skip
    assert gold.outlets == ("tenant://demo/gold/revenue_per_customer_month",)
    assert gold.inlets == (
        "tenant://demo/silver/order_items",
        "tenant://demo/silver/orders",
        "tenant://demo/silver/customers",
    )
    assert plan.task("silver.orders").inlets == ("tenant://demo/bronze/orders",)
    assert [(g.task_id, g.outlet, g.upstream) for g in plan.gates] == [
        ("silver_done", "tenant://demo/silver", tuple(ids[5:9])),
        ("gold_done", "tenant://demo/gold", (ids[9],)),
    ]
    assert plan == plan_tenant(tenant, shop_root, graph=graph)  # still a pure value


def test_custom_layers_route_each_model_task(warehouses: Path, write_tenant: WriteTenant):
    layers = {"silver": "path:models/staging", "gold": "path:models/marts"}
    file = write_tenant(
        "jaffle",
        """\
        tenant: jaffle
        source: {kind: sqlite, connection: {env: JAFFLE_SOURCE_URL}}
        warehouse: {kind: duckdb, connection: {env: JAFFLE_WAREHOUSE_URL}}
        tables: [{name: raw_orders}]
        dbt:
          layers: {silver: "path:models/staging", gold: "path:models/marts"}
        """,
    )
    nodes = dict([node("stg_orders", "silver", sources=("raw_orders",), package="jaffle")])
    write_graph(file.parent, graph_doc("jaffle", "warehouses/jaffle/dbt", nodes, layers))
    tenant = Loader(warehouses).load(file)
    plan = plan_tenant(tenant, warehouses.parent, graph=read_graph(tenant)[0])
    assert plan.task("silver.stg_orders").argv[5:] == (
        "--layer", "silver", "--layers", json.dumps(layers, separators=(",", ":")),
        "build", "--select", "stg_orders", "--indirect-selection", "cautious",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"tenant": "acme"}, "compiled for tenant 'acme'"),
        ({"project": "warehouses/demo/dbt"}, "compiled from warehouses/demo/dbt"),
        ({"layers": {"silver": "silver"}}, "its layers"),
        ({"layers": {"gold": "gold", "silver": "silver"}}, "its layers"),
        (
            {"nodes": dict([node("refunds", "silver", sources=("refunds",))])},
            "bronze tables the tenant does not load: refunds",
        ),
        (
            {"nodes": dict([node("x", "silver", depends_on=("model.shop.gone",))])},
            "depends on model.shop.gone",
        ),
    ],
)
def test_stale_graph_keeps_layer_tasks(shop_root: Path, change: dict[str, Any], why: str):
    doc = {**graph_doc("demo", SHOP, shop_nodes()), **change}
    write_graph(shop_root / "warehouses" / "demo", doc)
    tenant = demo(shop_root)
    plan = plan_tenant(tenant, shop_root, graph=read_graph(tenant)[0])
    assert [t.task_id for t in plan.tasks][-2:] == ["dbt_silver", "dbt_gold"]
    assert plan.gates == () and plan.fallback is not None
    assert plan.fallback.startswith("the compiled dbt graph is stale") and why in plan.fallback


def test_no_graph_keeps_layer_tasks(shop_root: Path):
    graph_path(shop_root / "warehouses" / "demo").unlink()
    tenant = demo(shop_root)
    plan = plan_tenant(tenant, shop_root, graph=read_graph(tenant)[0])
    assert [t.task_id for t in plan.tasks][-2:] == ["dbt_silver", "dbt_gold"]
    assert plan.fallback == NO_GRAPH


# --- the DAG ---------------------------------------------------------------------------------


def test_dag_shape_groups_assets_and_docs(shop_root: Path):
    dag = build_dag(demo(shop_root), shop_root)
    tasks = dag.task_dict
    assert set(tasks) == {
        "extract_customers", "extract_products", "extract_orders", "extract_order_items",
        PRODUCER_TASK, "silver.customers", "silver.products", "silver.orders",
        "silver.order_items", "gold.revenue_per_customer_month", "silver_done", "gold_done",
    }  # fmt: skip
    assert set(dag.task_group.children) >= {"silver", "gold"}
    gold = tasks["gold.revenue_per_customer_month"]
    assert gold.task_group.group_id == "gold"
    assert gold.upstream_task_ids == {
        "silver.order_items", "silver.orders", "silver.customers",
    }  # fmt: skip
    assert tasks["silver.orders"].upstream_task_ids == {PRODUCER_TASK}
    assert gold.downstream_task_ids == {"gold_done"}
    assert tasks["silver.products"].downstream_task_ids == {"silver_done"}
    assert tasks[PRODUCER_TASK].upstream_task_ids == {
        "extract_customers", "extract_products", "extract_orders", "extract_order_items",
    }  # fmt: skip
    # a model's failure fails its descendants only: plain all_success below dbt_build
    assert {tasks[t].trigger_rule for t in tasks if "." in t} == {TriggerRule.ALL_SUCCESS}
    assert tasks[PRODUCER_TASK].trigger_rule == TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS
    assert isinstance(gold, local.ModelProcessOperator) and isinstance(gold, ModelTaskMixin)
    assert not isinstance(tasks[PRODUCER_TASK], ModelTaskMixin)
    # inlets: parents and bronze; outlets: the model's own asset, one Asset object per URI
    assert [a.uri for a in gold.outlets] == ["tenant://demo/gold/revenue_per_customer_month"]
    assert [a.uri for a in tasks["silver.orders"].inlets] == ["tenant://demo/bronze/orders"]
    assert tasks["silver.orders"].inlets[0] is tasks["extract_orders"].outlets[0]
    assert gold.inlets[2] is tasks["silver.customers"].outlets[0]
    assert [a.uri for a in tasks["gold_done"].outlets] == ["tenant://demo/gold"]
    # the doc lists the tests the task answers for
    assert "test.shop.unique_customers_customer_id.c5af1ff4b5" in tasks["silver.customers"].doc_md
    assert "one task per dbt node (5" in dag.doc_md
    # no deep copy of the trigger form's params into a model task, unlike the others
    assert dict(gold.params) == {} and "tables" in tasks[PRODUCER_TASK].params
    assert gold.owner == tasks[PRODUCER_TASK].owner
    assert gold.on_failure_callback == tasks[PRODUCER_TASK].on_failure_callback
    assert gold.retries == tasks[PRODUCER_TASK].retries


def test_dag_without_or_with_unreadable_graph_says_how_to_compile(shop_root: Path):
    path = graph_path(shop_root / "warehouses" / "demo")
    path.unlink()
    dag = build_dag(demo(shop_root), shop_root)
    assert {"dbt_silver", "dbt_gold"} <= set(dag.task_dict) and PRODUCER_TASK not in dag.task_dict
    assert set(dag.task_group.children) == set(dag.task_dict)  # no (empty) layer groups
    assert "`dag-factory dbt compile` gives one task per dbt model" in dag.doc_md
    path.write_text(json.dumps(graph_doc("demo", SHOP, shop_nodes(), version=9)))
    with pytest.warns(UserWarning, match="graph version 9"):
        dag = build_dag(demo(shop_root), shop_root)
    assert "dbt_gold" in dag.task_dict and "graph version 9" in dag.doc_md


def test_another_tenant_schedules_on_the_gold_gate(
    shop_root: Path, monkeypatch: pytest.MonkeyPatch
):
    """`schedule: {assets: [tenant://demo/gold]}` still names an asset of demo's DAG: the
    gate's outlet, which only the gate (after every gold model task) updates."""
    import yaml

    from dag_factory.build import build_dags

    consumer = shop_root / "warehouses" / "reports" / "warehouse.yaml"
    consumer.parent.mkdir()
    doc = yaml.safe_load((shop_root / "warehouses" / "demo" / "warehouse.yaml").read_text())
    doc.update(tenant="reports", schedule={"assets": ["tenant://demo/gold"]}, pool="tenant_reports")
    consumer.write_text(yaml.safe_dump(doc))
    monkeypatch.setenv("DAG_FACTORY_TENANTS", "demo,reports")
    dags = build_dags(shop_root / "warehouses")
    producers = [
        t.task_id
        for t in dags["tenant_demo"].tasks
        for a in t.outlets
        if a == Asset("tenant://demo/gold")
    ]
    assert producers == ["gold_done"]
    condition = dags["tenant_reports"].timetable.asset_condition
    assert [a.uri for a in condition.objects] == ["tenant://demo/gold"]


# --- the model task's three paths --------------------------------------------------------------


def test_judge_every_branch():
    tests = ("test.a", "test.b")
    ok = {"model.m": "success", "test.a": "pass", "test.b": "warn"}
    assert judge(report(ok)["nodes"], "model.m", tests).verdict is Verdict.passed
    compile_error = report(
        ok, {"model.m": {"status": "error", "message": "Compilation Error in model m"}}
    )
    assert judge(compile_error["nodes"], "model.m", tests).verdict is Verdict.permanent
    depends = report(
        ok,
        {
            "model.m": {
                "status": "error",
                "message": "cannot drop table x because other objects depend on it",
            }
        },
    )
    assert judge(depends["nodes"], "model.m", tests).verdict is Verdict.permanent
    runtime = report(
        ok, {"model.m": {"status": "error", "message": "Runtime Error: division by zero"}}
    )
    seen = judge(runtime["nodes"], "model.m", tests)
    assert seen.verdict is Verdict.retried and "division by zero" in seen.reason
    failing = report({**ok, "test.b": "fail"}, {"test.b": {"failures": 3}})
    seen = judge(failing["nodes"], "model.m", tests, "fail")
    assert seen.verdict is Verdict.permanent and "test.b 3 failing rows" in seen.reason
    assert judge(failing["nodes"], "model.m", tests, "warn").verdict is Verdict.passed
    test_error = report(
        {**ok, "test.a": "error"}, {"test.a": {"message": "Database Error: timeout"}}
    )
    assert judge(test_error["nodes"], "model.m", tests).verdict is Verdict.retried
    assert (
        judge(report({**ok, "model.m": "skipped"})["nodes"], "model.m", tests).verdict
        is Verdict.run
    )
    assert judge(report({"model.n": "success"})["nodes"], "model.m", tests).verdict is Verdict.run
    assert judge(None, "model.m", tests).verdict is Verdict.run
    other_parent_failed = report({**ok, "test.b": "skipped"})
    seen = judge(other_parent_failed["nodes"], "model.m", tests)
    assert seen.verdict is Verdict.passed and seen.statuses["test.b"] == "skipped"
    no_test = report({"model.m": "success", "test.a": "pass"})
    assert judge(no_test["nodes"], "model.m", tests).verdict is Verdict.run


class _TaskInstance:
    """What a model task reads of its task instance: the try and the producer's XCom."""

    def __init__(self, try_number: int, xcom: dict[str, Any] | None) -> None:
        self.try_number = try_number
        self.xcom = xcom
        self.pulled: list[str] = []
        # what the adapters' run env names (dag_factory.adapters.run_env)
        self.dag_id, self.task_id, self.run_id = "tenant_demo", "silver.customers", "manual__t"
        self.map_index = -1

    def xcom_pull(self, task_ids: str) -> Any:
        self.pulled.append(task_ids)
        return self.xcom


def _context(try_number: int, xcom: dict[str, Any] | None) -> dict[str, Any]:
    return {"ti": _TaskInstance(try_number, xcom), "outlet_events": OutletEventAccessors()}


def test_model_task_passes_or_fails_on_the_report_without_a_runner(
    shop_root: Path, monkeypatch: pytest.MonkeyPatch
):
    """With no warehouse env at all: a runner started here would fail on the secret."""
    monkeypatch.delenv("DEMO_WAREHOUSE_URL", raising=False)
    task = build_dag(demo(shop_root), shop_root).task_dict["silver.customers"]
    tests = task.dbt_nodes[CUSTOMERS]
    assert len(tests) == 3
    passed = report({CUSTOMERS: "success", **dict.fromkeys(tests, "pass")})
    context = _context(1, passed)
    result = task.execute(context)
    assert context["ti"].pulled == [PRODUCER_TASK]
    assert result == {
        "nodes": [CUSTOMERS],
        "ran": "dbt_build",
        "statuses": {CUSTOMERS: "success", **dict.fromkeys(tests, "pass")},
    }
    event = context["outlet_events"][Asset("tenant://demo/silver/customers")]
    assert event.extra["status"] == "success" and len(event.extra["tests"]) == 3
    failed = report({CUSTOMERS: "success", **dict.fromkeys(tests, "pass"), tests[0]: "fail"})
    with pytest.raises(AirflowFailException, match="on_test_failure: fail"):
        task.execute(_context(1, failed))
    runtime = report({CUSTOMERS: "error"}, {CUSTOMERS: {"message": "Runtime Error: out of memory"}})
    with pytest.raises(
        AirflowException, match=r"a retry runs the model here\): .*out of memory"
    ) as info:
        task.execute(_context(1, runtime))
    assert not isinstance(info.value, AirflowFailException)
    compile_error = report(
        {CUSTOMERS: "error"}, {CUSTOMERS: {"message": "Compilation Error in model customers"}}
    )
    with pytest.raises(AirflowFailException, match="permanent"):
        task.execute(_context(1, compile_error))
    # a missing node runs itself: here the runner's secret is missing, the proof it tried
    with pytest.raises(AirflowFailException, match="DEMO_WAREHOUSE_URL"):
        task.execute(_context(1, report({})))


def test_model_task_runs_its_node_on_a_retry(
    shop_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The run-itself path end to end: real runner processes, real dbt, a DuckDB file.
    Bronze is loaded by the plan's own extract tasks; then `silver.customers` on try 2,
    after a runtime error in `dbt_build`, builds its model (and only it) with its tests."""
    source = f"sqlite:///{tmp_path}/shop.sqlite"
    warehouse = tmp_path / "warehouse.duckdb"
    generate_shop(source, orders=200)
    monkeypatch.setenv("DEMO_SOURCE_URL", source)
    monkeypatch.setenv("DEMO_WAREHOUSE_URL", f"duckdb:///{warehouse}")
    dag = build_dag(demo(shop_root), shop_root)
    for table in ("customers", "products", "orders", "order_items"):
        dag.task_dict[f"extract_{table}"].execute({"outlet_events": OutletEventAccessors()})
    task = dag.task_dict["silver.customers"]
    failed = report({CUSTOMERS: "error"}, {CUSTOMERS: {"message": "Runtime Error: disk full"}})
    context = _context(2, failed)
    result = task.execute(context)
    assert result["ran"] == "runner" and result["nodes"] == [CUSTOMERS]
    assert result["runner"]["models"] == ["silver.customers"]
    assert result["runner"]["tests_passed"] == 3
    engine = sa.create_engine(f"duckdb:///{warehouse}")
    try:
        with engine.connect() as conn:
            built = {r[0] for r in conn.execute(sa.text(
                "select table_name from information_schema.tables where table_schema = 'silver'"
            ))}  # fmt: skip
            rows = conn.execute(sa.text("select count(*) from silver.customers")).scalar()
    finally:
        engine.dispose()
    assert built == {"customers"} and rows > 0


def test_a_retry_after_the_whole_run_was_cleared_passes_on_the_new_report(
    shop_root: Path, monkeypatch: pytest.MonkeyPatch
):
    """Clearing a DAG run makes every task's next try a retry; `dbt_build` then builds
    again first, and a model its report passed is not built a second time (no warehouse
    env: a runner started here would fail on the secret)."""
    monkeypatch.delenv("DEMO_WAREHOUSE_URL", raising=False)
    task = build_dag(demo(shop_root), shop_root).task_dict["silver.customers"]
    passed = report({CUSTOMERS: "success", **dict.fromkeys(task.dbt_nodes[CUSTOMERS], "pass")})
    context = _context(2, passed)
    result = task.execute(context)
    assert result["ran"] == "dbt_build" and result["nodes"] == [CUSTOMERS]


# --- clones -------------------------------------------------------------------------------------

#: What a task gets from its place in the DAG, not from its operator's arguments.
_PLACE = {
    "upstream_task_ids",
    "downstream_task_ids",
    "_dag",
    "task_group",
    "start_date",
    "end_date",
}


@pytest.mark.parametrize("executor", ["local", "docker", "kubernetes"])
def test_cloned_model_operators_equal_built_ones(
    shop_root: Path, monkeypatch: pytest.MonkeyPatch, executor: str
):
    """Every model task but the first is a clone (`clone_operator`): for each adapter, it
    holds exactly what the adapter builds for that task, and renders the same."""
    from airflow.sdk import DAG, TaskGroup

    from dag_factory.adapters import adapter_for, renderer_for
    from dag_factory.build import _Assets, executor_for, model_operator

    monkeypatch.setenv("DAG_FACTORY_EXECUTOR", executor)
    tenant = demo(shop_root)
    dag = build_dag(tenant, shop_root)
    plan = plan_tenant(tenant, shop_root, graph=read_graph(tenant)[0])
    adapter = adapter_for(executor_for(tenant))
    models = [t for t in plan.tasks if t.is_model]
    with DAG("parity", schedule=None) as other:
        groups = {layer: TaskGroup(layer) for layer in ("silver", "gold")}
    for task in models[1:]:
        clone = dag.task_dict[task.task_id]
        built = model_operator(task, adapter, groups[task.group], dag.default_args, _Assets())
        other.add_task(built)
        assert type(clone) is type(built)
        left = {k: v for k, v in vars(clone).items() if k not in _PLACE | {"params"}}
        right = {k: v for k, v in vars(built).items() if k not in _PLACE | {"params"}}
        init = "_BaseOperator__init_kwargs"  # what __init__ was given, its group aside
        left[init], right[init] = (
            {k: v for k, v in side[init].items() if k != "task_group"} for side in (left, right)
        )
        assert left == right, task.task_id
        assert dict(clone.params) == dict(built.params) == {}
        assert clone.task_group.group_id == task.group and clone.dag is dag
        assert renderer_for(executor_for(tenant))(task) is not None  # still renders
    # clones share no mutable state: a run option's extra argv stays on its task
    first, second = (dag.task_dict[t.task_id] for t in models[1:3])
    first.outlets.append(Asset("tenant://demo/x"))
    assert Asset("tenant://demo/x") not in second.outlets
    assert first.upstream_task_ids is not second.upstream_task_ids
