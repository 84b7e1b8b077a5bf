"""The tenant's metadata schema: the load audit and the watermarks.

Both tables are SQLAlchemy Core `Table`s bound to the tenant's `schemas.meta`, created
if missing inside the load's own transaction, so the audit row of a load commits (or
rolls back) together with the bronze data it describes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import BigInteger, Column, Connection, DateTime, MetaData, Table, Text, insert
from sqlalchemy.schema import CreateSchema, CreateTable

from datakits.bronze import add_column, has_column

LOAD_AUDIT = "load_audit"
WATERMARKS = "watermarks"
#: The watermarks column of the integer commit horizon's sightings (`datakits.watermarks`).
PENDING = "pending"

#: The audit status of a committed load. Failed loads leave no row: they roll back.
STATUS_SUCCESS = "success"


@dataclass(frozen=True)
class MetaTables:
    """The metadata tables of one tenant schema."""

    metadata: MetaData
    load_audit: Table
    watermarks: Table


def meta_tables(schema: str) -> MetaTables:
    """Define (not create) the metadata tables in `schema`."""
    metadata = MetaData(schema=schema)
    load_audit = Table(
        LOAD_AUDIT,
        metadata,
        Column("batch_id", Text, primary_key=True),
        Column("tenant", Text, nullable=False),
        Column("table_name", Text, nullable=False),
        Column("mode", Text, nullable=False),
        Column("rows", BigInteger, nullable=False),
        # Bronze rows deleted or marked `_deleted_at` (`deletes`); NULL: not looked for.
        # Added by the first such load to an audit table made before it (`record_load`).
        Column("deleted", BigInteger),
        Column("started_at", DateTime(timezone=True), nullable=False),
        Column("finished_at", DateTime(timezone=True), nullable=False),
        Column("status", Text, nullable=False),
    )
    watermarks = Table(
        WATERMARKS,
        metadata,
        Column("tenant", Text, primary_key=True),
        Column("table_name", Text, primary_key=True),
        Column("cursor_column", Text, nullable=False),
        # The cursor value as text: one column for integers, timestamps and strings; the
        # incremental mode casts it back to the cursor column's type.
        Column("value", Text),
        Column("updated_at", DateTime(timezone=True), nullable=False),
        Column("batch_id", Text, nullable=False),
        # Sightings of an integer cursor not yet known final (JSON; NULL: none). Added
        # by the first load that has some to a watermarks table made before it.
        Column(PENDING, Text),
    )
    return MetaTables(metadata, load_audit, watermarks)


def ensure_schema(conn: Connection, schema: str) -> None:
    # PostgreSQL checks CREATE on the database before it looks at IF NOT EXISTS, so a
    # tenant role that owns its schemas but may create no others (`dag-factory provision`)
    # would be refused on a schema it already owns: look first (one cheap catalog query).
    if conn.dialect.name == "postgresql" and conn.dialect.has_schema(conn, schema):
        return
    conn.execute(CreateSchema(schema, if_not_exists=True))


def ensure_meta(conn: Connection, schema: str) -> MetaTables:
    """Create the metadata schema and tables if missing; return their definitions.

    `CREATE TABLE IF NOT EXISTS` rather than `create_all(checkfirst=True)`: no catalog
    query per table first (on DuckDB, its emulated pg_catalog takes ~20 ms a query, and
    every load runs this). The tables have no separate indexes to create.
    """
    tables = meta_tables(schema)
    ensure_schema(conn, schema)
    for table in tables.metadata.sorted_tables:
        conn.execute(CreateTable(table, if_not_exists=True))
    return tables


@dataclass(frozen=True)
class AuditRecord:
    batch_id: str
    tenant: str
    table_name: str
    mode: str
    rows: int
    started_at: dt.datetime
    finished_at: dt.datetime
    status: str = STATUS_SUCCESS
    deleted: int | None = None


def record_load(conn: Connection, tables: MetaTables, record: AuditRecord) -> None:
    """Insert the audit row of one load (in the caller's transaction).

    `deleted` is written only when set, so loads without `deletes` never need the column
    an older audit table lacks; the first load with it adds the column (once).
    """
    audit = tables.load_audit
    extra: dict[str, int] = {}
    if record.deleted is not None:
        extra["deleted"] = record.deleted
        schema = audit.schema
        assert schema is not None
        if not has_column(conn, schema, audit.name, "deleted"):
            add_column(conn, schema, audit.name, "deleted", BigInteger())
    conn.execute(
        insert(audit).values(
            **extra,
            batch_id=record.batch_id,
            tenant=record.tenant,
            table_name=record.table_name,
            mode=record.mode,
            rows=record.rows,
            started_at=record.started_at,
            finished_at=record.finished_at,
            status=record.status,
        )
    )
