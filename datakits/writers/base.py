"""The bronze writer: one atomic full refresh of one table, fed batch by batch.

A full refresh runs in ONE warehouse transaction (after a short one that creates the
schemas and metadata tables if missing):

    create the staging table  <bronze>.__stg_<table>
    append every batch to it                      (the caller's loop, via `BatchSink`)
    drop <bronze>.<table>; rename staging → <table>
    insert the load-audit row
    commit

Any exception before the commit rolls everything back, so a failed or killed load
leaves the previous bronze table and audit exactly as they were, and no staging table.
The shared logic lives here; a warehouse module only says how to append a batch fast
(DuckDB: an Arrow scan; PostgreSQL: COPY) and how to serialise runs of one table.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import ClassVar, Protocol

import pyarrow as pa
from sqlalchemy import URL, Column, Connection, DateTime, Engine, MetaData, Table, Text
from sqlalchemy.exc import DBAPIError

from datakits.errors import LoadFailed
from datakits.messages import reason
from datakits.metadata import AuditRecord, ensure_meta, ensure_schema, record_load
from datakits.spec import Schemas
from datakits.types import bronze_type
from datakits.urls import connect, make_engine, parse_url, require_backend

#: The load columns every bronze table carries (DESIGN.md, contract 5).
LOADED_AT = "_loaded_at"
BATCH_ID = "_batch_id"

#: PostgreSQL's identifier limit; longer names are silently truncated, so we never make one.
MAX_IDENTIFIER = 63

BatchWriter = Callable[[pa.RecordBatch], None]


@dataclass(frozen=True)
class LoadStamp:
    """Who and what a load is: written into the load columns and the audit row."""

    tenant: str
    table: str
    mode: str
    batch_id: str
    loaded_at: dt.datetime


class BatchSink(Protocol):
    rows: int

    def write(self, batch: pa.RecordBatch) -> None: ...


class BronzeWriter(Protocol):
    def target(self, table: str) -> str: ...

    def full_refresh(
        self, table: str, schema: pa.Schema, stamp: LoadStamp
    ) -> AbstractContextManager[BatchSink]: ...


def staging_name(table: str) -> str:
    """`__stg_<table>`, shortened with a hash when it would exceed 63 characters."""
    name = f"__stg_{table}"
    if len(name) <= MAX_IDENTIFIER:
        return name
    digest = hashlib.sha1(table.encode(), usedforsecurity=False).hexdigest()[:8]
    return f"__stg_{table[: MAX_IDENTIFIER - 15]}_{digest}"


def bronze_table(name: str, schema: str, arrow_schema: pa.Schema) -> Table:
    """The Core definition of a bronze (or staging) table: source columns + load columns."""
    columns = [Column(f.name, bronze_type(f.type), nullable=True) for f in arrow_schema]
    columns += [
        Column(LOADED_AT, DateTime(timezone=True), nullable=False),
        Column(BATCH_ID, Text, nullable=False),
    ]
    return Table(name, MetaData(), *columns, schema=schema)


class _Sink:
    """Counts what goes through; refuses batches whose schema differs from the table's."""

    def __init__(self, schema: pa.Schema, write: BatchWriter) -> None:
        self.rows = 0
        self._schema = schema
        self._write = write

    def write(self, batch: pa.RecordBatch) -> None:
        if not batch.schema.equals(self._schema):
            raise LoadFailed(f"batch schema {batch.schema} differs from {self._schema}")
        if batch.num_rows:
            self._write(batch)
            self.rows += batch.num_rows


class SqlBronzeWriter:
    """Full refresh through SQLAlchemy; subclasses supply `_batch_writer` (and `_lock`)."""

    #: The backend name this writer accepts (`url.get_backend_name()`).
    backend: ClassVar[str]
    #: Errors of the raw driver connection used for bulk appends (besides SQLAlchemy's).
    driver_errors: ClassVar[tuple[type[Exception], ...]] = ()

    def __init__(self, url: str | URL, schemas: Schemas) -> None:
        self.url = parse_url(url)
        self.schemas = schemas

    def target(self, table: str) -> str:
        return f"{self.schemas.bronze}.{table}"

    def _connect(self, engine: Engine) -> Connection:
        """Open the warehouse connection (a writer may wait here for a busy warehouse)."""
        return connect(engine, "warehouse")

    def _lock(self, conn: Connection, lock_name: str) -> None:
        """Hold `lock_name` until the transaction ends. Default: nothing (see subclasses)."""

    def _batch_writer(self, conn: Connection, staging: Table, stamp: LoadStamp) -> BatchWriter:
        raise NotImplementedError

    @contextmanager
    def full_refresh(self, table: str, schema: pa.Schema, stamp: LoadStamp) -> Iterator[BatchSink]:
        """Open the transaction and staging table; swap and audit when the block succeeds."""
        require_backend(self.url, self.backend, "warehouse")
        engine = make_engine(self.url)
        try:
            conn = self._connect(engine)
            try:
                # Schemas and metadata tables first, in a short transaction of their own:
                # parallel first loads of a tenant's tables would otherwise race on
                # `CREATE SCHEMA IF NOT EXISTS`, which PostgreSQL does not make race-free.
                with conn.begin():
                    self._lock(conn, f"datakits:bootstrap:{self.schemas.meta}")
                    meta = ensure_meta(conn, self.schemas.meta)
                    ensure_schema(conn, self.schemas.bronze)
                with conn.begin():
                    # Two runs of one table never interleave (DESIGN.md, contract 5).
                    self._lock(conn, f"datakits:load:{self.target(table)}")
                    staging = bronze_table(staging_name(table), self.schemas.bronze, schema)
                    staging.drop(conn, checkfirst=True)  # never left by us; be safe anyway
                    staging.create(conn)
                    sink = _Sink(schema, self._batch_writer(conn, staging, stamp))
                    yield sink
                    bronze_table(table, self.schemas.bronze, schema).drop(conn, checkfirst=True)
                    self._rename(conn, staging, table)
                    record_load(
                        conn,
                        meta,
                        AuditRecord(
                            batch_id=stamp.batch_id,
                            tenant=stamp.tenant,
                            table_name=table,
                            mode=stamp.mode,
                            rows=sink.rows,
                            started_at=stamp.loaded_at,
                            finished_at=dt.datetime.now(dt.UTC),
                        ),
                    )
            except (DBAPIError, *self.driver_errors) as exc:
                raise LoadFailed(
                    f"loading {self.target(table)} failed and was rolled back "
                    f"(bronze unchanged): {reason(exc, self.url.password)}"
                ) from None
            finally:
                conn.close()
        finally:
            engine.dispose()

    @staticmethod
    def _rename(conn: Connection, staging: Table, name: str) -> None:
        # SQLAlchemy has no ALTER TABLE ... RENAME construct: quote with the dialect.
        prep = conn.dialect.identifier_preparer
        old, new = prep.format_table(staging), prep.quote(name)
        conn.exec_driver_sql(f"ALTER TABLE {old} RENAME TO {new}")
