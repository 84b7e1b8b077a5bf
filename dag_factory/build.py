"""DAG assembly: one Airflow DAG per tenant, from its plan and the configured adapter.

A tenant whose file is invalid still gets a DAG — a placeholder whose doc lists every
problem and whose only task fails with them, on the tenant's own schedule and through its
own alerting (`Loader.fallback`) — and an import error in Airflow's UI keyed by the tenant
file (`airflow_errors`), while the other tenants load as usual. Never a silent stop.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
import warnings
from pathlib import Path
from typing import Any

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, Asset, BaseOperator, TaskGroup, TriggerRule

from dag_factory.adapters import adapter_for, model_fields_for
from dag_factory.adapters.model_task import clone_operator, model_kwargs
from dag_factory.airflow_errors import report_import_errors
from dag_factory.alerting import alert_callbacks, freshness_deadline
from dag_factory.dbt_graph import DbtGraph, tenant_graph
from dag_factory.errors import Problem, TenantFileError
from dag_factory.images import dbt_image
from dag_factory.isolation import effective_executor
from dag_factory.loader import Fallback, Loader, Tenant
from dag_factory.plan import PlannedTask, PlatformOverrides, TaskKind, TenantPlan, plan_tenant
from dag_factory.run_options import RunOptions, dag_params
from dag_factory.spec import DAG_ID_PREFIX, AssetSchedule, Executor, TenantSpec
from datakits.spec import LoadMode

#: Comma-separated tenant ids: a deployment that serves only some tenants loads only them.
TENANTS_ENV = "DAG_FACTORY_TENANTS"
INVALID_TAG = "invalid-tenant-file"


def tenant_tag(tenant_id: str) -> str:
    return f"tenant:{tenant_id}"


def executor_for(tenant: Tenant) -> Executor:
    """Where the tenant's tasks run (`$DAG_FACTORY_EXECUTOR` overrides the tenant file)."""
    return effective_executor(tenant.spec)


def _dbt_line(plan: TenantPlan, graph: DbtGraph | None) -> str:
    if plan.fallback is not None or graph is None:
        return f"one task per layer (`dbt_<layer>`): {plan.fallback}"
    units = sum(1 for t in plan.tasks if t.is_model)
    grain = "dbt node" if units == len(graph.nodes) else "project folder (`dbt.tasks: folder`)"
    return (
        f"one task per {grain} ({units} tasks for {len(graph.nodes)} nodes, from the compiled "
        f"graph: dbt {graph.dbt_version}, project hash `{graph.project_hash[:12]}`); "
        "`dbt_build` runs them all in one dbt build, each task reports its nodes' status or "
        "reruns them"
    )


def _doc(tenant: Tenant, executor: Executor, dbt: str) -> str:
    spec = tenant.spec
    tables = ", ".join(f"`{t.name}` ({t.mode.value})" for t in spec.enabled_tables)
    return (
        f"### Tenant `{spec.tenant}`\n\n{spec.description}\n\n"
        f"* spec: `{tenant.file}`\n* source: {spec.source.kind.value} → "
        f"warehouse: {spec.warehouse.kind.value}\n* tables: {tables}\n"
        f"* dbt: {dbt}\n"
        f"* executor: {executor.value}\n* owners: {', '.join(spec.owners)}\n"
    )


def _model_doc(task: PlannedTask) -> str:
    """The task doc of a model task: its dbt nodes, the tests it answers for, and what a
    run and a retry of it do. Ids are plain text, not code: Airflow's doc dialog draws each
    line of code over the underscores of the line above (`not_null_x` read "not null x");
    dbt ids hold underscores only inside words, which Markdown leaves as they are."""
    count = len(task.nodes)
    what = "this node and its" if count == 1 else f"these {count} nodes and their"
    parts = [
        f"It passes on the report of the dbt_build task; a retry (Clear) builds {what} "
        "tests by itself.\n"
    ]
    for node in task.nodes:
        tests = "".join(f"\n  * {t}" for t in node.tests) or " none"
        sources = ", ".join(node.sources) or "none"
        parts.append(
            f"dbt {node.resource_type} **{node.name}** ({node.materialized}), layer "
            f"**{node.layer}**, file {node.path or '?'}\n\n* node: {node.unique_id}\n"
            f"* bronze sources: {sources}\n* tests:{tests}\n"
        )
    return "\n".join(parts)


def read_graph(tenant: Tenant) -> tuple[DbtGraph | None, str | None]:
    """The tenant's compiled dbt graph and, for an unusable file, why (`tenant_graph`)."""
    return tenant_graph(tenant.file.parent)


def _schedule(spec: TenantSpec) -> Any:
    if isinstance(spec.schedule, AssetSchedule):
        return [Asset(uri) for uri in spec.schedule.assets]
    return spec.schedule


class _Assets(dict[str, Asset]):
    """One Asset object per URI for the whole DAG: a model's asset is the outlet of one
    task and an inlet of each child, built once."""

    def __missing__(self, uri: str) -> Asset:
        asset = self[uri] = Asset(uri)
        return asset


def task_kwargs(task: PlannedTask, assets: dict[str, Asset] | None = None) -> dict[str, Any]:
    """The BaseOperator arguments every adapter passes the same way."""
    settings = task.settings
    assets = _Assets() if assets is None else assets
    kwargs: dict[str, Any] = {
        "task_id": task.task_id,
        "retries": settings.retries,
        "retry_delay": settings.retry_delay,
        "execution_timeout": settings.timeout,
        "outlets": [assets[uri] for uri in task.outlets],
    }
    if task.inlets:
        kwargs["inlets"] = [assets[uri] for uri in task.inlets]
    if task.pool:
        kwargs["pool"] = task.pool
    if task.table is not None and task.load_mode is not None:
        kwargs["pre_execute"] = RunOptions(task.table, task.load_mode)
    if task.kind is TaskKind.dbt:
        # an extract skipped by the run's `tables` param must not skip the layers
        kwargs["trigger_rule"] = TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS
    return kwargs


def build_dag(tenant: Tenant, root: Path) -> DAG:
    spec = tenant.spec
    executor = executor_for(tenant)
    adapter = adapter_for(executor)
    graph, graph_error = read_graph(tenant)
    # a container executor needs the tenant's own dbt (or Spark) image, named by its graph:
    # without one, or with one of the other engine, TenantImageMissing makes this tenant's
    # placeholder (`dag_factory.images`)
    dbt_image(
        spec,
        graph.inputs_hash if graph else None,
        None,
        executor=executor,
        graph_engine=graph.engine if graph else None,
    )
    plan = plan_tenant(tenant, root, PlatformOverrides.from_env(), graph)
    if graph_error is not None:
        plan = dataclasses.replace(plan, fallback=graph_error)
        warnings.warn(f"tenant {spec.tenant}: {graph_error}", stacklevel=2)
    default_args = {"owner": ",".join(spec.owners), **alert_callbacks(spec.alerting, plan.dag_id)}
    assets = _Assets()
    with DAG(
        dag_id=plan.dag_id,
        description=spec.description or f"bronze → silver → gold for tenant {spec.tenant}",
        doc_md=_doc(tenant, executor, _dbt_line(plan, graph)),
        schedule=_schedule(spec),
        start_date=dt.datetime.combine(spec.start_date, dt.time(), tzinfo=dt.UTC),
        catchup=spec.catchup,
        max_active_runs=spec.max_active_runs,
        # a warehouse that takes one writer at a time (DuckDB; see datakits.kinds) runs
        # the tenant's tasks one at a time
        max_active_tasks=1 if spec.serial_only else spec.concurrency,
        tags=sorted(
            {
                tenant_tag(spec.tenant),
                f"source:{spec.source.kind.value}",
                f"warehouse:{spec.warehouse.kind.value}",
                *spec.tags,
            }
        ),
        default_args=default_args,
        params=dag_params(
            [t.table for t in plan.tasks if t.table is not None],
            [t.table for t in plan.tasks if t.table and t.load_mode is not LoadMode.full_refresh],
        ),
        deadline=freshness_deadline(spec.freshness, spec.alerting, plan.dag_id) or None,
    ) as dag:
        operators: dict[str, BaseOperator] = {
            task.task_id: adapter(task, task_kwargs(task, assets))
            for task in plan.tasks
            if not task.is_model
        }
        # one TaskGroup per layer, for model tasks only (layer tasks stay top-level)
        groups = {layer: TaskGroup(layer, dag=dag) for layer in spec.dbt.layers if plan.gates}
        dbt_settings = spec.task_settings(TaskKind.dbt)
        for gate in plan.gates:
            operators[gate.task_id] = EmptyOperator(
                task_id=gate.task_id,
                outlets=[assets[gate.outlet]],
                # it runs nothing, but its asset event is an API call: retried like dbt's
                retries=dbt_settings.retries,
                retry_delay=dbt_settings.retry_delay,
                **({"pool": spec.pool} if spec.pool else {}),
                doc_md=f"Every model task of layer `{gate.layer}` succeeded: "
                f"the event of `{gate.outlet}`.",
            )
    operators.update(_model_operators(plan, executor, dag, groups, default_args, assets))
    for task in plan.tasks:
        _wire(operators, task.task_id, task.upstream)
    for gate in plan.gates:
        _wire(operators, gate.task_id, gate.upstream)
    return dag


def _wire(operators: dict[str, BaseOperator], task_id: str, upstream: tuple[str, ...]) -> None:
    """`upstream >> task`, as Airflow's `_set_relatives` records it (the two id sets), for
    tasks this function put in one DAG itself. `set_upstream` first checks that the tasks
    share a DAG by hashing the DAG object (all its attributes) twice per edge: 0.1 ms an
    edge, 60 ms for a 200-model tenant, where the check can never fail."""
    task = operators[task_id]
    for upstream_id in upstream:
        operators[upstream_id].downstream_task_ids.add(task.node_id)
        task.upstream_task_ids.add(operators[upstream_id].node_id)


def _model_operators(
    plan: TenantPlan,
    executor: Executor,
    dag: DAG,
    groups: dict[str, TaskGroup],
    default_args: dict[str, Any],
    assets: dict[str, Asset],
) -> dict[str, BaseOperator]:
    """The model tasks, made outside the DAG's context and then added to it.

    Inside the context Airflow deep-copies the DAG's params (the trigger form's `tables`
    and `full_refresh` choices) into every task it creates (`_get_parent_defaults`), about
    0.3 ms a task; a model task reads no param, so it is made without the DAG and given
    the DAG's default arguments explicitly. The first model task is built by its adapter;
    the others are clones of it with their own fields (`clone_operator`), which costs a
    tenth of an operator's `__init__`. `DAG.add_task` then sets their dates as for any task."""
    adapter = adapter_for(executor)
    fields_of = model_fields_for(executor)
    made: dict[str, BaseOperator] = {}
    prototype: tuple[PlannedTask, BaseOperator] | None = None
    for task in plan.tasks:
        if not task.is_model or task.group is None:
            continue
        group = groups[task.group]
        doc = _model_doc(task)
        if prototype is None or not _same_operator(prototype[0], task):
            op = model_operator(task, adapter, group, default_args, assets)
            prototype = (task, op)
        else:
            op = clone_operator(
                prototype[1],
                {
                    **fields_of(task),
                    "task_id": group.child_id(task.name_in_group),
                    "doc_md": doc,
                    "outlets": [assets[uri] for uri in task.outlets],
                    "inlets": [assets[uri] for uri in task.inlets],
                    **model_kwargs(task),
                },
                task.name_in_group,
            )
            group.add(op)
        dag.add_task(op)
        made[task.task_id] = op
    return made


def model_operator(
    task: PlannedTask,
    adapter: Any,
    group: TaskGroup,
    default_args: dict[str, Any],
    assets: dict[str, Asset],
) -> BaseOperator:
    """A model task's operator as its adapter builds it (not yet in the DAG)."""
    kwargs = task_kwargs(task, assets)
    kwargs.update(
        default_args, task_id=task.name_in_group, task_group=group, doc_md=_model_doc(task)
    )
    return adapter(task, kwargs)


def _same_operator(a: PlannedTask, b: PlannedTask) -> bool:
    """Whether the operators of model tasks `a` and `b` differ only in per-node fields."""
    return (a.image, a.env, a.secrets, a.settings, a.pool, a.cwd, a.docker, a.kubernetes) == (
        b.image, b.env, b.secrets, b.settings, b.pool, b.cwd, b.docker, b.kubernetes,
    )  # fmt: skip


class _InvalidTenantFile(BaseOperator):
    """The only task of an invalid tenant's placeholder DAG: fails with the problems, at the
    time the tenant's real run was due, so the tenant's alerting fires."""

    def __init__(self, *, problems: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.problems = problems

    def execute(self, context: Any) -> None:
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(f"the tenant file is invalid:\n{self.problems}")


def _placeholder_description(error: TenantFileError) -> str:
    """`INVALID tenant file: <field.path>: <message>` for the first problem (and the file
    it is in when that is not the tenant's own file, e.g. defaults.yaml)."""
    if not error.problems:
        return "INVALID tenant file"
    first = error.problems[0]
    parts = ["INVALID tenant file"]
    if first.file != error.file:
        parts.append(f"{first.file.name}:{first.line}:{first.column}")
    if first.field:
        parts.append(first.field)
    parts.append(first.message)
    return ": ".join(parts)[:200]


def _placeholder_doc(error: TenantFileError, fallback: Fallback | None) -> str:
    # Double backticks: a message may itself quote a key in `single` ones.
    problems = "\n".join(f"- `` {problem} ``" for problem in error.problems)
    if fallback is None:
        timing, alerting = "manual runs only (the fallback could not be read)", "none"
    else:
        shown = fallback.schedule if fallback.schedule is not None else "none, manual runs only"
        timing = f"`{shown}`, {fallback.timing_from}"
        alerting = fallback.alerting_from
    return (
        f"### Tenant file is invalid\n\nFix `{error.file}`:\n\n{problems}\n\n"
        f"Until it is fixed, this placeholder replaces the tenant's DAG and its run **fails** "
        f"at the time the real run was due (the last valid version does not run).\n\n"
        f"* schedule: {timing}\n* alerting: {alerting}\n"
    )


def _placeholder_schedule(fallback: Fallback | None) -> Any:
    schedule = fallback.schedule if fallback else None
    if isinstance(schedule, AssetSchedule):
        return [Asset(uri) for uri in schedule.assets]
    return schedule


def placeholder_dag(error: TenantFileError, fallback: Fallback | None = None) -> DAG:
    """The DAG an invalid tenant gets instead of its own: same dag id, the tenant's schedule
    and alerting when `fallback` has them (see `Loader.fallback`), one task that fails
    with every problem. Without a fallback it runs only when triggered."""
    folder = error.file.parent.name
    dag_id = DAG_ID_PREFIX + re.sub(r"[^A-Za-z0-9_.-]", "_", folder)
    text = str(error)
    start = fallback.start_date if fallback else dt.date(2026, 1, 1)
    callbacks = alert_callbacks(fallback.alerting, dag_id) if fallback else {}
    with DAG(
        dag_id=dag_id,
        description=_placeholder_description(error),
        doc_md=_placeholder_doc(error, fallback),
        schedule=_placeholder_schedule(fallback),
        start_date=dt.datetime.combine(start, dt.time(), tzinfo=dt.UTC),
        catchup=False,
        max_active_runs=1,
        tags=[tenant_tag(folder), INVALID_TAG],
        default_args=callbacks,
    ) as dag:
        _InvalidTenantFile(task_id="invalid_tenant_file", problems=text, retries=0)
    return dag


def selected_tenants() -> frozenset[str] | None:
    """The tenants this process should build: those named by `DAG_FACTORY_TENANTS`, narrowed
    to one when Airflow parses the file to run a task of a known DAG (its parsing context)."""
    from airflow.sdk import get_parsing_context

    listed = os.environ.get(TENANTS_ENV, "").replace(" ", "")
    only = frozenset(filter(None, listed.split(","))) or None
    running = get_parsing_context().dag_id
    if running and running.startswith(DAG_ID_PREFIX):
        tenant = running.removeprefix(DAG_ID_PREFIX)
        if only is None or tenant in only:
            return frozenset({tenant})
    return only


def _build_error(tenant: Tenant, exc: Exception) -> TenantFileError:
    message = " ".join(str(exc).split())[:300]
    return TenantFileError(
        tenant.file,
        [Problem(tenant.file, 1, 1, (), f"could not be built: {type(exc).__name__}: {message}")],
    )


def build_dags(warehouses_dir: Path) -> dict[str, DAG]:
    """Every selected tenant's DAG by dag id. Nothing a tenant file (or defaults.yaml, or
    the cache) contains makes this raise: an invalid tenant gets a placeholder DAG, a
    warning, and an Airflow import error keyed by its file (`airflow_errors`)."""
    warehouses_dir = Path(warehouses_dir)
    root = warehouses_dir.parent
    loader = Loader(warehouses_dir)
    report = loader.load_all(selected_tenants())
    errors = list(report.errors)
    dags = {}
    for tenant in report.tenants:
        if not tenant.spec.enabled:
            continue
        try:
            dag = build_dag(tenant, root)
        except Exception as exc:  # one tenant must never take the others down
            errors.append(_build_error(tenant, exc))
            continue
        dags[dag.dag_id] = dag
    for error in errors:
        warnings.warn(str(error), stacklevel=2)
        try:
            dag = placeholder_dag(error, loader.fallback(error.file))
        except Exception:  # e.g. a schedule Airflow refuses: still a visible placeholder
            dag = placeholder_dag(error)
        dags[dag.dag_id] = dag
    report_import_errors(errors)
    return dags
