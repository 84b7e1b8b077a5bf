"""The load spec: what datakits needs to know about a tenant to move its tables to bronze.

These models are the contract shared by the three layers. `dag_factory` embeds them in
the tenant spec (so a tenant file is validated against exactly what the engine accepts),
serialises a `LoadSpec` into the runner's environment (`RUNNER_SPEC`), and the runner
parses it back. They carry no secret: a connection is a *reference* that an adapter
resolves at run time into the env var the runner reads (`RUNNER_SOURCE_URL`,
`RUNNER_WAREHOUSE_URL`).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

#: A SQL identifier we are willing to create or read: lower case, starts with a letter or
#: underscore, at most 63 characters (PostgreSQL's limit). SQLAlchemy still quotes it.
IDENTIFIER_PATTERN = r"^[a-z_][a-z0-9_]{0,62}$"
Identifier = Annotated[str, StringConstraints(pattern=IDENTIFIER_PATTERN)]

#: A tenant id is also part of schema names, DAG ids and (with `_` → `-`) Kubernetes names.
TENANT_ID_PATTERN = r"^[a-z][a-z0-9_]{0,39}$"
TenantId = Annotated[str, StringConstraints(pattern=TENANT_ID_PATTERN)]

#: An environment variable name, as POSIX shells accept it (upper case by convention).
ENV_VAR_PATTERN = r"^[A-Z_][A-Z0-9_]*$"
EnvVarName = Annotated[str, StringConstraints(pattern=ENV_VAR_PATTERN)]
#: An Airflow connection id.
ConnId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,250}$")]

#: The env vars of the runner contract (DESIGN.md, contract 4).
RUNNER_SPEC_ENV = "RUNNER_SPEC"
SOURCE_URL_ENV = "RUNNER_SOURCE_URL"
WAREHOUSE_URL_ENV = "RUNNER_WAREHOUSE_URL"


class Strict(BaseModel):
    """Base of every spec model: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ConnectionRef(Strict):
    """Where a connection's URL comes from at run time; never the URL itself.

    `env`: the name of an env var on the worker holding a SQLAlchemy URL.
    `airflow_conn`: an Airflow connection id, resolved by the adapter when the task runs.
    """

    env: EnvVarName | None = None
    airflow_conn: ConnId | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.env is None) == (self.airflow_conn is None):
            raise ValueError("give exactly one of `env` or `airflow_conn`")
        return self


class SourceKind(StrEnum):
    sqlite = "sqlite"
    postgres = "postgres"


class WarehouseKind(StrEnum):
    duckdb = "duckdb"
    postgres = "postgres"


class LoadMode(StrEnum):
    full_refresh = "full_refresh"


class SourceSpec(Strict):
    kind: SourceKind
    connection: ConnectionRef
    #: Schema of the source tables; None means the connection's default.
    schema_: Identifier | None = Field(default=None, alias="schema")


class Schemas(Strict):
    """The warehouse schemas of one tenant. `meta` holds watermarks and the load audit."""

    bronze: Identifier = "bronze"
    silver: Identifier = "silver"
    gold: Identifier = "gold"
    meta: Identifier = "meta"

    @model_validator(mode="after")
    def _distinct(self) -> Self:
        names = [self.bronze, self.silver, self.gold, self.meta]
        if len(set(names)) != len(names):
            raise ValueError(f"the four schemas must differ, got {names}")
        return self


class WarehouseSpec(Strict):
    kind: WarehouseKind
    connection: ConnectionRef
    schemas: Schemas = Schemas()


class TableSpec(Strict):
    """One source table to copy into bronze."""

    name: Identifier
    mode: LoadMode = LoadMode.full_refresh
    #: Columns to copy; None copies every column the source has.
    columns: tuple[Identifier, ...] | None = None
    #: Rows per batch streamed from source to warehouse: bounds the runner's memory.
    batch_size: int = Field(default=50_000, ge=100, le=1_000_000)

    @model_validator(mode="after")
    def _no_duplicate_columns(self) -> Self:
        if self.columns is not None and len(set(self.columns)) != len(self.columns):
            raise ValueError(f"columns are listed twice in {list(self.columns)}")
        return self


class LoadSpec(Strict):
    """Everything the runner needs besides credentials: travels as JSON in RUNNER_SPEC."""

    tenant: TenantId
    source: SourceSpec
    warehouse: WarehouseSpec
    tables: tuple[TableSpec, ...]

    def table(self, name: str) -> TableSpec:
        for table in self.tables:
            if table.name == name:
                return table
        known = ", ".join(t.name for t in self.tables) or "none"
        raise KeyError(f"table {name!r} is not in tenant {self.tenant!r} (tables: {known})")

    def to_env_json(self) -> str:
        return self.model_dump_json(by_alias=True, exclude_defaults=True)
