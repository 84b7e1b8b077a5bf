"""Bronze tables: their Core definition, the catalog's view of them, and the DDL of a load.

Everything here runs inside the load's transaction, on PostgreSQL and DuckDB alike.
Identifiers are quoted by the dialect (`identifier_preparer`) and column types are
compiled from SQLAlchemy types by the dialect, never formatted from text: SQLAlchemy
Core has no ALTER TABLE constructs, so the few statements it lacks are assembled here
from those two quoted parts only.

The catalog is read through `information_schema.columns`, which both warehouses have:
SQLAlchemy's own reflection does not work on DuckDB (duckdb_engine queries PostgreSQL
catalog tables DuckDB lacks).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Index,
    MetaData,
    Table,
    Text,
    column,
    select,
    table,
)
from sqlalchemy import types as sat

from datakits.types import bronze_type

#: The columns a load adds to bronze (DESIGN.md, contract 5): every table has the first
#: two; `catalog_columns` leaves all of them out (they are not source columns).
LOADED_AT = "_loaded_at"
BATCH_ID = "_batch_id"
#: `deletes: soft`: when a load found the row's key gone from the source (NULL: present).
DELETED_AT = "_deleted_at"
LOAD_COLUMNS = (LOADED_AT, BATCH_ID, DELETED_AT)

#: PostgreSQL's identifier limit; longer names are silently truncated, so we never make one.
MAX_IDENTIFIER = 63


def _short_name(prefix: str, name: str, suffix: str = "") -> str:
    """`<prefix><name><suffix>`, shortened with a hash when it would exceed 63 characters."""
    full = f"{prefix}{name}{suffix}"
    if len(full) <= MAX_IDENTIFIER:
        return full
    digest = hashlib.sha1(name.encode(), usedforsecurity=False).hexdigest()[:8]
    keep = MAX_IDENTIFIER - len(prefix) - len(suffix) - 9
    return f"{prefix}{name[:keep]}_{digest}{suffix}"


def staging_name(table: str) -> str:
    """`__stg_<table>`, shortened with a hash when it would exceed 63 characters."""
    return _short_name("__stg_", table)


def keys_name(table: str) -> str:
    """`__keys_<table>`: the source's keys of one load (`deletes`), shortened like staging."""
    return _short_name("__keys_", table)


def key_index_name(table: str) -> str:
    """The name of the primary-key index on a PostgreSQL bronze table."""
    return _short_name("", table, "__key")


def bronze_table(name: str, schema: str, arrow_schema: pa.Schema) -> Table:
    """The Core definition of a bronze (or staging) table: source columns + load columns."""
    columns = [Column(f.name, bronze_type(f.type), nullable=True) for f in arrow_schema]
    columns += [
        Column(LOADED_AT, DateTime(timezone=True), nullable=False),
        Column(BATCH_ID, Text, nullable=False),
    ]
    return Table(name, MetaData(), *columns, schema=schema)


# --- the catalog ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CatalogType:
    """A column type as the warehouse's catalog states it, comparable across tables.

    `name` is the lower-case type name; `precision`/`scale` are set for decimals only
    (PostgreSQL and DuckDB also report a precision for integers and floats: ignored).
    """

    name: str
    precision: int | None = None
    scale: int | None = None

    @property
    def is_decimal(self) -> bool:
        return self.precision is not None

    def __str__(self) -> str:
        if self.is_decimal:
            return f"decimal({self.precision}, {self.scale})"
        return self.name


def _catalog_type(data_type: str, precision: Any, scale: Any) -> CatalogType:
    name = data_type.lower()
    if (name.startswith(("numeric", "decimal"))) and precision is not None:
        return CatalogType("decimal", int(precision), int(scale or 0))
    return CatalogType(name)


_INFO_COLUMNS = table(
    "columns",
    column("table_schema"),
    column("table_name"),
    column("column_name"),
    column("data_type"),
    column("numeric_precision"),
    column("numeric_scale"),
    column("ordinal_position"),
    schema="information_schema",
)


def catalog_columns(conn: Connection, schema: str, name: str) -> dict[str, CatalogType] | None:
    """The source columns (load columns left out) of a table, in order; None if it is absent."""
    c = _INFO_COLUMNS.c
    rows = conn.execute(
        select(c.column_name, c.data_type, c.numeric_precision, c.numeric_scale)
        .where(c.table_schema == schema, c.table_name == name)
        .order_by(c.ordinal_position)
    ).all()
    if not rows:
        return None
    return {
        row.column_name: _catalog_type(row.data_type, row.numeric_precision, row.numeric_scale)
        for row in rows
        if row.column_name not in LOAD_COLUMNS
    }


def has_column(conn: Connection, schema: str, name: str, col: str) -> bool:
    """Whether the table has column `col` (load columns included)."""
    c = _INFO_COLUMNS.c
    found = select(c.column_name).where(
        c.table_schema == schema, c.table_name == name, c.column_name == col
    )
    return conn.execute(found).first() is not None


def sql_type(catalog: CatalogType) -> sat.TypeEngine[Any]:
    """A SQLAlchemy type for a catalog type (to re-create a kept column); Text if unknown."""
    if catalog.is_decimal:
        return sat.Numeric(catalog.precision, catalog.scale)
    known: dict[str, sat.TypeEngine[Any]] = {
        "bigint": sat.BigInteger(),
        "integer": sat.Integer(),
        "boolean": sat.Boolean(create_constraint=False),
        "double precision": sat.Double(),
        "double": sat.Double(),
        "real": sat.REAL(),
        "float": sat.REAL(),
        "timestamp with time zone": sat.DateTime(timezone=True),
        "timestamp without time zone": sat.DateTime(),
        "timestamp": sat.DateTime(),
        "date": sat.Date(),
        "time without time zone": sat.Time(),
        "time": sat.Time(),
        "bytea": sat.LargeBinary(),
        "blob": sat.LargeBinary(),
        "json": sat.JSON(),
        "jsonb": sat.JSON(),
        "uuid": sat.Uuid(),
    }
    return known.get(catalog.name, sat.Text())


# --- DDL ------------------------------------------------------------------------------------


def _quoted_table(conn: Connection, schema: str, name: str) -> str:
    prep = conn.dialect.identifier_preparer
    return f"{prep.quote_schema(schema)}.{prep.quote(name)}"


def _compiled(conn: Connection, type_: sat.TypeEngine[Any]) -> str:
    return conn.dialect.type_compiler_instance.process(type_)


def rename_table(conn: Connection, schema: str, old: str, new: str) -> None:
    prep = conn.dialect.identifier_preparer
    conn.exec_driver_sql(
        f"ALTER TABLE {_quoted_table(conn, schema, old)} RENAME TO {prep.quote(new)}"
    )


def _alter_column(
    conn: Connection, schema: str, name: str, action: str, col: str, type_: sat.TypeEngine[Any]
) -> None:
    """`ALTER TABLE <table> <action> <column> <type>`: `action` is one of our constants."""
    prep = conn.dialect.identifier_preparer
    conn.exec_driver_sql(
        f"ALTER TABLE {_quoted_table(conn, schema, name)} "
        f"{action.format(column=prep.quote(col), type=_compiled(conn, type_))}"
    )


def add_column(
    conn: Connection, schema: str, name: str, col: str, type_: sat.TypeEngine[Any]
) -> None:
    """Add a nullable column: existing rows hold NULL in it."""
    _alter_column(conn, schema, name, "ADD COLUMN {column} {type}", col, type_)


def alter_column_type(
    conn: Connection,
    schema: str,
    name: str,
    col: str,
    type_: sat.TypeEngine[Any],
    *,
    cast: bool = False,
    json: bool = False,
) -> None:
    """Change a column's type; only ever called for a type every old value fits in.

    `cast`: convert with an explicit `USING CAST(...)`, for a type PostgreSQL has no
    implicit cast to (text to bigint): only used on a table just emptied, so no value
    is converted at all. `json`: `USING CAST(to_json(...) AS ...)`, a list column into
    text as JSON (a staging table going into a text column, `datakits.drift`).
    """
    action = "ALTER COLUMN {column} TYPE {type}"
    if json:
        action += " USING CAST(to_json({column}) AS {type})"
    elif cast:
        action += " USING CAST({column} AS {type})"
    _alter_column(conn, schema, name, action, col, type_)


def truncate_table(conn: Connection, schema: str, name: str) -> None:
    """Empty a table inside the load's transaction (both warehouses roll it back).

    TRUNCATE, not DELETE: PostgreSQL frees the old rows at commit instead of leaving a
    million dead tuples for vacuum; DuckDB treats it as a DELETE of every row.
    """
    conn.exec_driver_sql(f"TRUNCATE {_quoted_table(conn, schema, name)}")


def drop_key_index(conn: Connection, schema: str, name: str) -> None:
    """Drop the key index of a bronze table if it has one (a refill rebuilds it after)."""
    prep = conn.dialect.identifier_preparer
    conn.exec_driver_sql(
        f"DROP INDEX IF EXISTS {prep.quote_schema(schema)}.{prep.quote(key_index_name(name))}"
    )


def analyze_table(conn: Connection, schema: str, name: str) -> None:
    """Refresh the planner's statistics of a freshly filled table (PostgreSQL).

    Without them the planner takes the staging table for empty and merges by a nested
    loop over the key index: 5x slower than the hash join it picks once it knows.
    """
    conn.exec_driver_sql(f"ANALYZE {_quoted_table(conn, schema, name)}")


def create_key_index(conn: Connection, schema: str, name: str, keys: Iterable[str]) -> None:
    """A (non-unique) index on the primary key, so merges find rows without a full scan.

    Uniqueness is checked on the rows of each load instead (`datakits.merge`): a unique
    index would turn a key change in the spec into failing loads.
    """
    target = Table(name, MetaData(), *(Column(k) for k in keys), schema=schema)
    Index(key_index_name(name), *(target.c[k] for k in keys)).create(conn)
