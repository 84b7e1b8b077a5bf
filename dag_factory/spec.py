"""The tenant spec: one pydantic model tree for `warehouses/<tenant>/warehouse.yaml`.

The source, warehouse and table models are datakits' own (`datakits.spec`), so a tenant
file is validated against exactly what the engine accepts. What is added here is what
only the orchestrator needs: schedule, retries, the dbt project, the executor.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Annotated, Self

from croniter import croniter
from pydantic import AfterValidator, Field, model_validator

from datakits.spec import (
    LoadSpec,
    SourceSpec,
    Strict,
    TableSpec,
    TenantId,
    WarehouseKind,
    WarehouseSpec,
)

#: Every tenant's DAG id is this prefix and the tenant id.
DAG_ID_PREFIX = "tenant_"

#: Airflow's schedule presets (cron aliases plus the two special ones).
SCHEDULE_PRESETS = frozenset(
    {"@once", "@continuous", "@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly"}
)


def _check_schedule(value: str | None) -> str | None:
    if value is None or value in SCHEDULE_PRESETS or croniter.is_valid(value):
        return value
    presets = ", ".join(sorted(SCHEDULE_PRESETS))
    raise ValueError(f"not a cron expression nor a preset ({presets}); null means manual only")


Schedule = Annotated[str | None, AfterValidator(_check_schedule)]


class Executor(StrEnum):
    """Where a task's runner process runs; one adapter each (dag_factory/adapters/)."""

    local = "local"
    docker = "docker"
    kubernetes = "kubernetes"


class PlatformSpec(Strict):
    executor: Executor = Executor.local
    #: The runner image every task of the tenant runs (docker and kubernetes executors).
    image: str = Field(default="tenant-runner:latest", pattern=r"^[a-z0-9][a-z0-9._/:@-]*$")


class DbtSpec(Strict):
    #: The dbt project folder, relative to the tenant's folder.
    project: str = Field(default="dbt", pattern=r"^[A-Za-z0-9_][A-Za-z0-9_./-]*$")


class TenantSpec(Strict):
    tenant: TenantId
    description: str = ""
    owner: str = "data-platform"
    source: SourceSpec
    warehouse: WarehouseSpec
    tables: tuple[TableSpec, ...] = Field(min_length=1)
    dbt: DbtSpec = DbtSpec()
    schedule: Schedule = "@daily"
    start_date: dt.date = dt.date(2026, 1, 1)
    catchup: bool = False
    retries: int = Field(default=2, ge=0, le=10)
    platform: PlatformSpec = PlatformSpec()

    @model_validator(mode="after")
    def _unique_tables(self) -> Self:
        names = [t.name for t in self.tables]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"tables are listed twice: {', '.join(twice)}")
        return self

    @property
    def dag_id(self) -> str:
        return DAG_ID_PREFIX + self.tenant

    @property
    def serial_only(self) -> bool:
        """DuckDB takes one writer per file: the tenant's tasks must not run in parallel."""
        return self.warehouse.kind is WarehouseKind.duckdb

    def load_spec(self) -> LoadSpec:
        """The part of the spec that the runner needs, without orchestration settings."""
        return LoadSpec(
            tenant=self.tenant, source=self.source, warehouse=self.warehouse, tables=self.tables
        )
