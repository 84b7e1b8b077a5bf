"""DAG assembly: one Airflow DAG per tenant, from its plan and the configured adapter.

A tenant whose file is invalid still gets a DAG — a placeholder whose doc shows every
problem and whose only task fails with them — so the error is visible in Airflow's UI
and the other tenants load as usual.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import warnings
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, Asset, BaseOperator

from dag_factory.adapters import adapter_for
from dag_factory.alerting import alert_callbacks
from dag_factory.errors import TenantFileError
from dag_factory.loader import Loader, Tenant
from dag_factory.plan import PlannedTask, PlatformOverrides, plan_tenant
from dag_factory.spec import DAG_ID_PREFIX, AssetSchedule, Executor, TenantSpec

#: Overrides every tenant's `platform.executor` (e.g. `local` on a laptop, CI).
EXECUTOR_ENV = "DAG_FACTORY_EXECUTOR"
#: Comma-separated tenant ids: a deployment that serves only some tenants loads only them.
TENANTS_ENV = "DAG_FACTORY_TENANTS"
INVALID_TAG = "invalid-tenant-file"


def tenant_tag(tenant_id: str) -> str:
    return f"tenant:{tenant_id}"


def executor_for(tenant: Tenant) -> Executor:
    override = os.environ.get(EXECUTOR_ENV)
    return Executor(override) if override else tenant.spec.platform.executor


def _doc(tenant: Tenant, executor: Executor) -> str:
    spec = tenant.spec
    tables = ", ".join(f"`{t.name}` ({t.mode.value})" for t in spec.enabled_tables)
    return (
        f"### Tenant `{spec.tenant}`\n\n{spec.description}\n\n"
        f"* spec: `{tenant.file}`\n* source: {spec.source.kind.value} → "
        f"warehouse: {spec.warehouse.kind.value}\n* tables: {tables}\n"
        f"* executor: {executor.value}\n* owners: {', '.join(spec.owners)}\n"
    )


def _schedule(spec: TenantSpec) -> Any:
    if isinstance(spec.schedule, AssetSchedule):
        return [Asset(uri) for uri in spec.schedule.assets]
    return spec.schedule


def task_kwargs(task: PlannedTask) -> dict[str, Any]:
    """The BaseOperator arguments every adapter passes the same way."""
    settings = task.settings
    kwargs: dict[str, Any] = {
        "task_id": task.task_id,
        "retries": settings.retries,
        "retry_delay": settings.retry_delay,
        "execution_timeout": settings.timeout,
        "outlets": [Asset(uri) for uri in task.outlets],
    }
    if task.pool:
        kwargs["pool"] = task.pool
    return kwargs


def build_dag(tenant: Tenant, root: Path) -> DAG:
    spec = tenant.spec
    executor = executor_for(tenant)
    adapter = adapter_for(executor)
    plan = plan_tenant(tenant, root, PlatformOverrides.from_env())
    with DAG(
        dag_id=plan.dag_id,
        description=spec.description or f"bronze → silver → gold for tenant {spec.tenant}",
        doc_md=_doc(tenant, executor),
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
        default_args={
            "owner": ",".join(spec.owners),
            **alert_callbacks(spec.alerting, plan.dag_id),
        },
    ) as dag:
        operators: dict[str, BaseOperator] = {
            task.task_id: adapter(task, task_kwargs(task)) for task in plan.tasks
        }
        for task in plan.tasks:
            for upstream in task.upstream:
                operators[upstream] >> operators[task.task_id]
    return dag


class _InvalidTenantFile(BaseOperator):
    """The only task of an invalid tenant's placeholder DAG: fails with the problems."""

    def __init__(self, *, problems: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.problems = problems

    def execute(self, context: Any) -> None:
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(f"the tenant file is invalid:\n{self.problems}")


def placeholder_dag(error: TenantFileError) -> DAG:
    """A paused-by-default, unscheduled DAG that shows why a tenant file is invalid."""
    folder = error.file.parent.name
    dag_id = DAG_ID_PREFIX + re.sub(r"[^A-Za-z0-9_.-]", "_", folder)
    text = str(error)
    with DAG(
        dag_id=dag_id,
        description=f"INVALID tenant file: {error.problems[0].message}"[:200],
        doc_md=f"### Tenant file is invalid\n\nFix `{error.file}`:\n\n```\n{text}\n```\n",
        schedule=None,
        start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        catchup=False,
        tags=[tenant_tag(folder), INVALID_TAG],
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


def build_dags(warehouses_dir: Path) -> dict[str, DAG]:
    """Every selected tenant's DAG by dag id; invalid tenants get a placeholder and a warning."""
    warehouses_dir = Path(warehouses_dir)
    root = warehouses_dir.parent
    try:
        report = Loader(warehouses_dir).load_all(selected_tenants())
    except TenantFileError as exc:  # defaults.yaml itself is broken: nothing can load
        warnings.warn(str(exc), stacklevel=2)
        raise
    dags = {}
    for error in report.errors:
        warnings.warn(str(error), stacklevel=2)
        dag = placeholder_dag(error)
        dags[dag.dag_id] = dag
    for tenant in report.tenants:
        if not tenant.spec.enabled:
            continue
        dag = build_dag(tenant, root)
        dags[dag.dag_id] = dag
    return dags
