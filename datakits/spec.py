"""The load spec: what datakits needs to know about a tenant to move its tables to bronze.

These models are the contract shared by the three layers. `dag_factory` embeds them in
the tenant spec (so a tenant file is validated against exactly what the engine accepts),
serialises a `LoadSpec` into the runner's environment (`RUNNER_SPEC`), and the runner
parses it back. They carry no secret: a connection is a *reference* that an adapter
resolves at run time into the env var the runner reads (`RUNNER_SOURCE_URL`,
`RUNNER_WAREHOUSE_URL`).
"""

from __future__ import annotations

import datetime as dt
import re
from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    SerializerFunctionWrapHandler,
    StringConstraints,
    WithJsonSchema,
    model_serializer,
    model_validator,
)

from datakits import kinds, naming
from datakits.contract import (  # noqa: F401 (the runner contract's env names, re-exported)
    DURATION_PATTERN,
    RUNNER_SPEC_ENV,
    SOURCE_URL_ENV,
    WAREHOUSE_URL_ENV,
    format_duration,
    parse_duration,
)

#: A SQL identifier we are willing to create or read: lower case, starts with a letter or
#: underscore, at most 63 characters (PostgreSQL's limit). SQLAlchemy still quotes it.
IDENTIFIER_PATTERN = r"^[a-z_][a-z0-9_]{0,62}$"
Identifier = Annotated[str, StringConstraints(pattern=IDENTIFIER_PATTERN)]
#: A source table, schema or column name exactly as the source spells it: any characters
#: but NUL (`"Order Details"`, `"OrderID"`, `"Café"`). Never formatted into SQL: the
#: readers put it in SQLAlchemy `Table`/`Column` objects, which quote it per dialect.
SourceName = Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=r"^[^\x00]+$")]

#: A tenant id is also part of schema names, DAG ids, connection and env var prefixes and
#: (with `_` → `-`) Kubernetes names: `tenant-<id>` must be a DNS-1123 label and `<id>` a
#: label value, so an id starts with a letter, ends with a letter or digit and has no
#: `__` (which would give `--`, and make `<id>_` prefixes ambiguous). At most 40 characters.
TENANT_ID_PATTERN = r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$"
TENANT_ID_MAX = 40
TenantId = Annotated[str, StringConstraints(pattern=TENANT_ID_PATTERN, max_length=TENANT_ID_MAX)]

#: An environment variable name, as POSIX shells accept it (upper case by convention).
ENV_VAR_PATTERN = r"^[A-Z_][A-Z0-9_]*$"
EnvVarName = Annotated[str, StringConstraints(pattern=ENV_VAR_PATTERN)]
#: An Airflow connection id.
ConnId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,250}$")]


class Strict(BaseModel):
    """Base of every spec model: unknown keys are errors, values are immutable, and an
    error's text never repeats the input (a URL pasted as a connection holds a password)."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class ConnectionRef(Strict):
    """Where a connection's URL comes from at run time; never the URL itself.

    `env`: the name of an env var on the worker holding a SQLAlchemy URL.
    `airflow_conn`: an Airflow connection id, resolved by the adapter when the task runs.
    """

    env: EnvVarName | None = None
    airflow_conn: ConnId | None = None

    @model_validator(mode="before")
    @classmethod
    def _not_a_url(cls, value: Any) -> Any:
        if isinstance(value, str):
            raise ValueError(
                "a connection is a reference, not a URL: write {env: NAME} (an env var "
                "holding the URL) or {airflow_conn: ID} (an Airflow connection)"
            )
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.env is None) == (self.airflow_conn is None):
            raise ValueError("give exactly one of `env` or `airflow_conn`")
        return self


#: The source kinds: one member per entry of the registry (`datakits.kinds.SOURCES`).
SourceKind = StrEnum("SourceKind", [(name, name) for name in kinds.SOURCES])  # type: ignore[misc]
#: The warehouse kinds: one member per entry of `datakits.kinds.WAREHOUSES`.
WarehouseKind = StrEnum(  # type: ignore[misc]
    "WarehouseKind", [(name, name) for name in kinds.WAREHOUSES]
)


class LoadMode(StrEnum):
    """How a table reaches bronze (see `TableSpec` and `datakits.modes`)."""

    #: Every run copies the whole table and swaps it in.
    full_refresh = "full_refresh"
    #: Rows whose cursor is past the watermark are inserted; bronze rows are never updated.
    append = "append"
    #: Rows whose cursor is past (watermark - lookback) are merged into bronze by primary key.
    incremental = "incremental"


class Infinity(StrEnum):
    """What a load does with PostgreSQL's `'infinity'` / `'-infinity'` timestamps and dates.

    Arrow (and so bronze) has no infinity: the value must become something else, or stop
    the load. Common in an open-ended `valid_to`.
    """

    #: The warehouse's largest (smallest) storable timestamp or date: DuckDB
    #: 294247-01-10 04:00:54.775806 / 290309-12-22 BC, dates 5881580-07-10 /
    #: 5877642-06-25 BC; PostgreSQL 294247-01-10 04:00:54.775807 (Arrow's end) /
    #: 4714-11-24 BC, dates 5874897-12-31 / 4714-11-24 BC. Still sorts last (first).
    clamp = "clamp"
    #: NULL.
    null = "null"
    #: The load fails, naming the column (bronze unchanged).
    fail = "fail"


class SourceSpec(Strict):
    kind: SourceKind
    connection: ConnectionRef
    #: Schema of the source tables; None means the connection's default.
    schema_: Identifier | None = Field(default=None, alias="schema")


class Schemas(Strict):
    """The warehouse schemas of one tenant. `meta` holds watermarks and the load audit.

    dbt layers (`dbt.layers` in the tenant spec) build into the schema named after
    them: `silver` and `gold` here, any other layer (e.g. `snapshots`) into its entry
    in `layers`, and a layer without one into the silver schema (`layer_schema`).
    """

    bronze: Identifier = "bronze"
    silver: Identifier = "silver"
    gold: Identifier = "gold"
    meta: Identifier = "meta"
    #: Schemas of further dbt layers, by layer name (e.g. `{snapshots: acme_snapshots}`).
    layers: dict[Identifier, Identifier] = {}

    @model_validator(mode="after")
    def _distinct(self) -> Self:
        names = [self.bronze, self.silver, self.gold, self.meta]
        if len(set(names)) != len(names):
            raise ValueError(f"the four schemas must differ, got {names}")
        own = sorted({"bronze", "silver", "gold", "meta"} & set(self.layers))
        if own:
            raise ValueError(
                f"layers {', '.join(own)} have their own schema field: set it there, not "
                "under `layers`"
            )
        clash = sorted({self.bronze, self.meta} & set(self.layers.values()))
        if clash:
            raise ValueError(
                f"a layer cannot build into the bronze or meta schema ({', '.join(clash)})"
            )
        return self

    def layer_schema(self, layer: str) -> str:
        """The schema a dbt layer builds into (the silver schema when it has none)."""
        if layer in ("silver", "gold"):
            return str(getattr(self, layer))
        return self.layers.get(layer, self.silver)


class WarehouseSpec(Strict):
    kind: WarehouseKind
    connection: ConnectionRef
    schemas: Schemas = Schemas()


class NullCursor(StrEnum):
    """What an append or incremental load does with rows whose cursor is NULL.

    A NULL never satisfies `cursor > watermark`, so such rows are invisible to the
    watermark: the policy must be explicit (dlt and others silently skip them).
    """

    #: The load fails (before writing anything) while the source has such rows. One
    #: `EXISTS` query per load, skipped when the source declares the column NOT NULL;
    #: on a large table, index the cursor (PostgreSQL indexes NULLs too).
    fail = "fail"
    #: Every run re-reads them and merges them by primary key (needs `primary_key`).
    include = "include"
    #: They are never loaded, not even by the first load.
    skip = "skip"


class SchemaDrift(StrEnum):
    """What a load does when the source's columns differ from bronze's (`datakits.drift`)."""

    #: Any difference (new, dropped or retyped column) fails the load, listing them all.
    fail = "fail"
    #: New columns are added, dropped ones kept (NULL in new rows); a type change that
    #: old rows cannot take fails the load.
    evolve = "evolve"


class Deletes(StrEnum):
    """What an incremental load does with bronze rows whose key is gone from the source.

    A cursor only finds rows that were added or changed, never rows that were deleted:
    detecting those takes a scan of every source key (`datakits.deletes`).
    """

    #: Nothing: bronze keeps rows deleted at the source (no key scan).
    ignore = "ignore"
    #: They stay, with `_deleted_at` set to the load's time; cleared if the key returns.
    soft = "soft"
    #: They are deleted from bronze.
    hard = "hard"


class FilterOp(StrEnum):
    """The comparisons a row filter may use: a fixed set, never SQL text."""

    eq = "="
    ne = "!="
    lt = "<"
    le = "<="
    gt = ">"
    ge = ">="
    in_ = "in"
    is_null = "is_null"
    not_null = "not_null"


#: A filter value as YAML or JSON gives it; `datakits.filters` converts it to the column's type.
FilterScalar = bool | int | float | dt.datetime | dt.date | str


class RowFilter(Strict):
    """One condition on a source column; a table's filters are AND-ed (`datakits.filters`).

    `!=`, `<`, ... follow SQL: a NULL column value matches none of them (use `is_null`).
    """

    #: The source column, as the source spells it.
    column: SourceName
    op: FilterOp
    #: A scalar for comparisons, a non-empty list for `in`, nothing for `is_null`/`not_null`.
    value: FilterScalar | tuple[FilterScalar, ...] | None = None

    @model_validator(mode="after")
    def _value_fits_op(self) -> Self:
        if self.op in (FilterOp.is_null, FilterOp.not_null):
            if self.value is not None:
                raise ValueError(f"filter `{self.op}` on {self.column} takes no `value`")
        elif self.op is FilterOp.in_:
            if not isinstance(self.value, tuple) or not self.value:
                raise ValueError(f"filter `in` on {self.column} needs a non-empty list `value`")
        elif self.value is None or isinstance(self.value, tuple):
            raise ValueError(f"filter `{self.op}` on {self.column} needs one scalar `value`")
        return self


def _parse_lookback(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return parse_duration(value)
        except ValueError:
            raise ValueError(
                "must be a whole number or a duration like 90s, 5m, 2h or 1d"
            ) from None
    if isinstance(value, int | dt.timedelta) and value < type(value)(0):
        raise ValueError("must not be negative")
    return value


def _dump_lookback(value: int | dt.timedelta) -> int | str:
    return value if isinstance(value, int) else format_duration(value)


#: How far behind the watermark a load re-reads, to catch rows that committed late with
#: an older cursor value. A whole number is in the cursor's own units (seconds for a
#: timestamp or date cursor); a duration (`90s`, `5m`, `2h`, `1d`) needs a timestamp or
#: date cursor. A date cursor rounds the window up to whole days.
Lookback = Annotated[
    Annotated[int, Field(ge=0)] | Annotated[dt.timedelta, Field(strict=True)],
    BeforeValidator(_parse_lookback),
    PlainSerializer(_dump_lookback, when_used="json"),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 0},
                {"type": "string", "pattern": DURATION_PATTERN},
            ]
        }
    ),
]


class SourceColumn(Strict):
    """A `columns` entry naming its bronze column: `{source: "UnitPrice", name: unit_price}`.

    A plain string entry is the source name alone; its bronze name is derived
    (`datakits.naming.bronze_name`), as is the bronze name of an entry without `name`.
    """

    source: SourceName
    #: The bronze column name; None derives it from `source`.
    name: Identifier | None = None

    @model_serializer(mode="wrap")
    def _as_written(self, handler: SerializerFunctionWrapHandler) -> Any:
        """An entry without `name` dumps as its plain source name, as it was written (the
        runner's JSON of every table that lists `columns` stays as it was)."""
        return self.source if self.name is None else handler(self)


def _column_entry(value: Any) -> Any:
    return {"source": value} if isinstance(value, str) else value


#: A `columns` entry: a source name (`"UnitPrice"`) or `{source: ..., name: ...}`. One
#: model either way, so a bad entry gets one error, not one per union branch.
ColumnEntry = Annotated[
    SourceColumn, BeforeValidator(_column_entry, json_schema_input_type=SourceName | SourceColumn)
]


class TableSpec(Strict):
    """One source table to copy into bronze, and how (`mode`; see `datakits.modes`).

    Names: `name` is the bronze table (and task, asset, dbt source) name. The source table
    is `source_name` when given (exact, any characters), else `name`; writing only
    `name: "Order Details"` sets `source_name` to it and `name` to its derived bronze name
    (`datakits.naming`). `columns`, `cursor`, `primary_key` and `filter` name *source*
    columns; each loads under its given or derived bronze name.
    """

    #: The bronze table name; a name that is no bronze identifier is taken as the source
    #: name, and the bronze name derived from it (`_derive_bronze_name`).
    name: SourceName
    #: The source table's exact name, when it differs from `name`.
    source_name: SourceName | None = None
    #: The source table's schema (database on MySQL), exact; None: `source.schema`.
    source_schema: SourceName | None = None
    mode: LoadMode = LoadMode.full_refresh
    #: Columns to copy (source names, or `{source, name}` entries); None copies every
    #: column the source has, each under its derived bronze name.
    columns: tuple[ColumnEntry, ...] | None = None
    #: Rows per batch streamed from source to warehouse: bounds the runner's memory.
    batch_size: int = Field(default=50_000, ge=100, le=1_000_000)
    #: append / incremental: the (source) column whose value grows when a row is added
    #: (or changed): an integer, decimal, float, timestamp or date column.
    cursor: SourceName | None = None
    #: The (source) columns that identify a row: required by incremental (the merge key);
    #: with append, rows whose key is already in bronze are skipped. Every load checks the
    #: rows it read for NULL or duplicate keys; PostgreSQL bronze indexes the key.
    primary_key: tuple[SourceName, ...] | None = Field(default=None, min_length=1)
    #: Re-read window behind the watermark (see `Lookback`); needs `primary_key`.
    lookback: Lookback = 0
    #: Rows whose cursor is NULL (see `NullCursor`); ignored by full_refresh.
    null_cursor: NullCursor = NullCursor.fail
    #: A source whose columns differ from bronze's (see `SchemaDrift`).
    schema_drift: SchemaDrift = SchemaDrift.evolve
    #: Only rows matching every condition are read (structured, never SQL text).
    filter: tuple[RowFilter, ...] = ()
    #: PostgreSQL `'infinity'` / `'-infinity'` timestamps and dates (see `Infinity`).
    infinity: Infinity = Infinity.clamp
    #: Rows deleted at the source (see `Deletes`): incremental with `primary_key` only.
    deletes: Deletes = Deletes.ignore

    @model_validator(mode="after")
    def _deletes_need_incremental(self) -> Self:
        if self.deletes is not Deletes.ignore and self.mode is not LoadMode.incremental:
            raise ValueError(
                f"`deletes: {self.deletes}` is for mode incremental (with primary_key); "
                f"mode {self.mode} already "
                + (
                    "copies the whole table every run"
                    if self.mode is LoadMode.full_refresh
                    else "never changes loaded rows"
                )
                + ": remove `deletes` or use mode incremental"
            )
        return self

    @model_validator(mode="after")
    def _derive_bronze_name(self) -> Self:
        """`name: "Order Details"` alone: the source name, loaded under its derived name.

        An after validator that sets the two fields: a `before` one would make pydantic
        validate the JSON of `RUNNER_SPEC` in Python mode (filter dates would stay text)."""
        if re.match(IDENTIFIER_PATTERN, self.name):
            return self
        if self.source_name is not None:
            raise ValueError(
                f"`name` is the bronze table name when `source_name` is given: it must be a "
                f"lower-case SQL identifier (a-z, 0-9, _; at most 63 characters), got "
                f"{self.name!r}"
            )
        object.__setattr__(self, "source_name", self.name)
        object.__setattr__(self, "name", naming.bronze_name(self.name))
        return self

    @property
    def source_table(self) -> str:
        """The source table's exact name."""
        return self.source_name if self.source_name is not None else self.name

    @property
    def column_sources(self) -> tuple[str, ...] | None:
        """The source names of `columns`, in order (None: every column)."""
        if self.columns is None:
            return None
        return tuple(c.source for c in self.columns)

    @property
    def given_names(self) -> dict[str, str]:
        """Bronze names given explicitly in `columns`, by source name."""
        return {c.source: c.name for c in self.columns or () if c.name is not None}

    @model_validator(mode="after")
    def _no_duplicate_columns(self) -> Self:
        sources = self.column_sources
        if sources is not None and len(set(sources)) != len(sources):
            raise ValueError(f"columns are listed twice in {list(sources)}")
        given = list(self.given_names.values())
        if len(set(given)) != len(given):
            raise ValueError(f"two columns are given the same bronze name: {given}")
        if self.primary_key is not None and len(set(self.primary_key)) != len(self.primary_key):
            raise ValueError(f"primary_key lists a column twice: {list(self.primary_key)}")
        return self

    @model_validator(mode="after")
    def _mode_settings(self) -> Self:
        mode, has_key = self.mode, self.primary_key is not None
        sources = self.column_sources
        if sources is not None:
            needed = [*([self.cursor] if self.cursor else []), *(self.primary_key or ())]
            missing = [name for name in needed if name not in sources]
            if missing:
                raise ValueError(
                    f"cursor and primary_key columns must be among `columns`: add "
                    f"{', '.join(missing)}"
                )
        if mode is LoadMode.full_refresh:
            if self.cursor is not None or self.lookback:
                raise ValueError(
                    "`cursor` and `lookback` are used by mode append or incremental, "
                    "not full_refresh (it copies the whole table every run)"
                )
            return self
        if self.cursor is None:
            raise ValueError(
                f"mode {mode} needs `cursor`: the column whose value grows when a row is "
                "added or changed (e.g. an id or an updated_at timestamp)"
            )
        if mode is LoadMode.incremental and not has_key:
            raise ValueError(
                "mode incremental needs `primary_key`: the column(s) that identify a row, "
                "to merge changed rows into bronze"
            )
        if self.lookback and not has_key:
            raise ValueError(
                "`lookback` re-reads rows already loaded: it needs `primary_key` so that "
                "append skips them instead of inserting them twice"
            )
        if self.null_cursor is NullCursor.include and not has_key:
            raise ValueError(
                "`null_cursor: include` re-reads rows with a NULL cursor every run: it needs "
                "`primary_key` so that append skips them instead of inserting them again"
            )
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
