"""The planner: a pure function from a tenant to the tasks its DAG runs.

A planned task is a plain frozen value — image, runner argv, env, secret references,
upstream ids — and knows nothing of Airflow. Every adapter turns the same value into
its own operator, so parity between local, Docker and Kubernetes is equality of this
value (DESIGN.md, contract 2).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from dag_factory.loader import Tenant
from dag_factory.spec import TaskSettings, asset_uri
from datakits.spec import RUNNER_SPEC_ENV, SOURCE_URL_ENV, WAREHOUSE_URL_ENV, ConnectionRef

#: The dbt layers, in the order they run; each is a folder of models selected by name.
DBT_LAYERS = ("silver", "gold")


class TaskKind(StrEnum):
    extract = "extract"
    dbt = "dbt"


class SecretRole(StrEnum):
    source = "source"
    warehouse = "warehouse"


@dataclass(frozen=True)
class SecretRef:
    """A credential the runner reads from env var `env`, resolved from `ref` at run time."""

    env: str
    role: SecretRole
    ref: ConnectionRef


@dataclass(frozen=True)
class PlannedTask:
    task_id: str
    kind: TaskKind
    image: str
    #: Arguments to the `runner` entrypoint, e.g. ("extract", "--table", "orders").
    argv: tuple[str, ...]
    #: Non-secret env, as sorted (name, value) pairs so the value stays hashable.
    env: tuple[tuple[str, str], ...]
    secrets: tuple[SecretRef, ...]
    upstream: tuple[str, ...]
    #: Retries, retry delay, timeout and resources, already resolved through precedence.
    settings: TaskSettings
    #: Asset URIs this task updates (`tenant://<tenant>/...`).
    outlets: tuple[str, ...]

    @property
    def env_dict(self) -> dict[str, str]:
        return dict(self.env)


@dataclass(frozen=True)
class TenantPlan:
    dag_id: str
    tasks: tuple[PlannedTask, ...]

    def task(self, task_id: str) -> PlannedTask:
        return next(t for t in self.tasks if t.task_id == task_id)


def plan_tenant(tenant: Tenant, root: Path) -> TenantPlan:
    """Plan one tenant. `root` is the runner's working directory (the folder holding
    `warehouses/`), so the dbt project path in argv is the same locally and in an image."""
    spec = tenant.spec
    env = ((RUNNER_SPEC_ENV, spec.runner_spec_json()),)
    warehouse = SecretRef(WAREHOUSE_URL_ENV, SecretRole.warehouse, spec.warehouse.connection)
    source = SecretRef(SOURCE_URL_ENV, SecretRole.source, spec.source.connection)

    extracts = tuple(
        PlannedTask(
            task_id=f"extract_{table.name}",
            kind=TaskKind.extract,
            image=spec.images.extract,
            argv=("extract", "--table", table.name),
            env=env,
            secrets=(source, warehouse),
            upstream=(),
            settings=spec.task_settings(TaskKind.extract, table),
            outlets=(asset_uri(spec.tenant, "bronze", table.name),),
        )
        for table in spec.enabled_tables
    )
    project = tenant.dbt_project_dir.resolve().relative_to(root.resolve()).as_posix()
    layers: list[PlannedTask] = []
    upstream = tuple(t.task_id for t in extracts)
    for layer in DBT_LAYERS:
        task = PlannedTask(
            task_id=f"dbt_{layer}",
            kind=TaskKind.dbt,
            image=spec.images.dbt,
            argv=(
                "dbt",
                "--project-dir",
                project,
                "--on-test-failure",
                spec.dbt.on_test_failure,
                "build",
                "--select",
                layer,
            ),
            env=env,
            secrets=(warehouse,),
            upstream=upstream,
            settings=spec.task_settings(TaskKind.dbt),
            outlets=(asset_uri(spec.tenant, layer),),
        )
        layers.append(task)
        upstream = (task.task_id,)
    return TenantPlan(dag_id=spec.dag_id, tasks=(*extracts, *layers))
