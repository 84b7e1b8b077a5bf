"""The bronze writer: one load of one table, in one warehouse transaction with the table locked.

`SqlBronzeWriter.session` opens the transaction (after a short one that creates the
schemas and metadata tables if missing), takes the table's lock and hands the load a
`BronzeSession`; `datakits.load` then drives it:

    read the bronze columns and the watermark           (what the warehouse holds)
    create the staging table  <bronze>.__stg_<table>    (`stage`)
    compare it with bronze: schema drift                 (`staged_columns`, `evolve`)
    append every batch to staging                        (the load's loop, via `BatchSink`)
    check the primary key of the staged rows             (`check_keys`)
    swap staging in for bronze (`replace`), or merge / insert it into bronze
    save the watermark, insert the load-audit row
    commit

Any exception before the commit rolls everything back, so a failed or killed load
leaves the previous bronze table, watermark and audit exactly as they were, and no
staging table. The shared logic lives here; a warehouse module only says how to append
a batch fast (DuckDB: an Arrow scan; PostgreSQL: COPY), how to serialise runs of one
table (`_lock`, `_connect`) and whether bronze gets a key index.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import ClassVar, Protocol

import pyarrow as pa
from sqlalchemy import URL, Column, Connection, DateTime, Engine, MetaData, Table, Text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.schema import DropTable

from datakits import merge
from datakits.bronze import (
    BATCH_ID,
    DELETED_AT,
    LOADED_AT,
    MAX_IDENTIFIER,
    CatalogType,
    add_column,
    alter_column_type,
    analyze_table,
    bronze_table,
    catalog_columns,
    create_key_index,
    drop_key_index,
    has_column,
    keys_name,
    rename_table,
    sql_type,
    staging_name,
    truncate_table,
)
from datakits.drift import Evolution
from datakits.errors import DependentObjects, LoadFailed
from datakits.messages import one_line, reason
from datakits.metadata import AuditRecord, MetaTables, ensure_meta, ensure_schema, record_load
from datakits.spec import Deletes, Schemas
from datakits.types import bronze_type
from datakits.urls import connect, make_engine, parse_url, require_backend
from datakits.watermarks import (
    Sighting,
    StoredWatermark,
    clear_watermark,
    read_watermark,
    save_watermark,
)

#: Seconds a load waits for another load of the same table (or, on DuckDB, for the
#: warehouse file) before giving up; the runner takes it from RUNNER_LOCK_TIMEOUT.
DEFAULT_LOCK_TIMEOUT = 600.0

BatchWriter = Callable[[pa.RecordBatch], None]

__all__ = [
    "BATCH_ID",
    "DEFAULT_LOCK_TIMEOUT",
    "DELETED_AT",
    "LOADED_AT",
    "MAX_IDENTIFIER",
    "BatchSink",
    "BatchWriter",
    "BronzeSession",
    "BronzeWriter",
    "LoadStamp",
    "SqlBronzeWriter",
    "bronze_table",
    "staging_name",
]


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

    def close(self) -> None:
        """The last batch was written: finish (a streaming writer flushes here)."""
        ...


class BronzeWriter(Protocol):
    def target(self, table: str) -> str: ...

    def session(self, table: str, stamp: LoadStamp) -> AbstractContextManager[BronzeSession]: ...


class _Sink:
    """Counts what goes through; refuses batches whose schema differs from the table's.

    A batch writer may be a plain function, or an object that also has `close()` (end
    of stream: wait for the writes) and `abort()` (stop, the load failed), as DuckDB's
    streaming insert does.
    """

    def __init__(self, schema: pa.Schema, write: BatchWriter) -> None:
        self.rows = 0
        self._schema = schema
        self._write = write
        self.closed = False

    def write(self, batch: pa.RecordBatch) -> None:
        if not batch.schema.equals(self._schema):
            raise LoadFailed(f"batch schema {batch.schema} differs from {self._schema}")
        if batch.num_rows:
            self._write(batch)
            self.rows += batch.num_rows

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            close = getattr(self._write, "close", None)
            if close is not None:
                close()

    def abort(self) -> None:
        if not self.closed:
            self.closed = True
            abort = getattr(self._write, "abort", None)
            if abort is not None:
                abort()


#: SQLSTATEs of PostgreSQL refusing DDL because views (or other objects) use the table:
#: `cannot drop table … because other objects depend on it` (2BP01) and `cannot alter
#: type of a column used by a view or rule` (0A000, with the view in its DETAIL).
_DEPENDENTS = {"2BP01", "0A000"}


def depending_objects(exc: DBAPIError) -> str | None:
    """The objects PostgreSQL names when it refuses DDL because they depend on the table
    ("view silver.v depends on table bronze.t; …"), or None for any other error."""
    diag = getattr(exc.orig, "diag", None)
    if getattr(exc.orig, "sqlstate", None) not in _DEPENDENTS or diag is None:
        return None
    detail = getattr(diag, "message_detail", None) or ""
    if "depends on" not in detail:
        return None
    return "; ".join(line.strip() for line in detail.splitlines() if line.strip())


@contextmanager
def _dependents_refuse(target: str, action: str) -> Iterator[None]:
    """Turn "other objects depend on it" into a `ConfigError` that names them.

    Reloads keep dependent views working (`BronzeSession.replace` refills bronze in
    place), but PostgreSQL still refuses to change the type of a column a view reads.
    Retrying cannot help (the views are still there next time), so it is a permanent
    failure (exit 2), and the message says what to change.
    """
    try:
        yield
    except DBAPIError as exc:
        dependents = depending_objects(exc)
        if dependents is None:
            raise
        raise DependentObjects(
            one_line(
                f"cannot load {target} (bronze unchanged): the load must {action}, but other "
                f"objects depend on it ({dependents}) and PostgreSQL refuses that while they "
                "exist: drop them before the load (dbt's next run recreates its own views) "
                "or keep the column's type at the source"
            )
        ) from None


class BronzeSession:
    """One load's open warehouse transaction; the table's lock is held until it ends."""

    def __init__(
        self,
        writer: SqlBronzeWriter,
        conn: Connection,
        meta: MetaTables,
        table: str,
        stamp: LoadStamp,
    ) -> None:
        self.writer = writer
        self.conn = conn
        self.meta = meta
        self.table = table
        self.stamp = stamp
        self.schema = writer.schemas.bronze
        self.target = writer.target(table)
        self._staging: Table | None = None
        self._sink: _Sink | None = None
        self._analyzed = False
        self._keys: Table | None = None
        self._keys_sink: _Sink | None = None

    # --- what the warehouse holds -------------------------------------------------------

    def bronze_columns(self) -> dict[str, CatalogType] | None:
        """Bronze's source columns and their types; None when the table does not exist."""
        return catalog_columns(self.conn, self.schema, self.table)

    def watermark(self) -> StoredWatermark | None:
        return read_watermark(self.conn, self.meta, self.stamp.tenant, self.table)

    # --- staging --------------------------------------------------------------------------

    @property
    def staging(self) -> Table:
        if self._staging is None:
            raise RuntimeError("call stage() first")
        return self._staging

    def stage(self, schema: pa.Schema) -> BatchSink:
        """Create the (empty) staging table for `schema`; the sink appends batches to it."""
        staging = bronze_table(staging_name(self.table), self.schema, schema)
        self.conn.execute(DropTable(staging, if_exists=True))  # never left by us; be safe
        staging.create(self.conn)
        self._staging = staging
        self._sink = _Sink(schema, self.writer._batch_writer(self.conn, staging, self.stamp))
        return self._sink

    def _staged(self, *, analyze: bool = True) -> Table:
        """The staging table, once every batch is in it, with its statistics.

        Analysed (`analyze_staging`) because the staged rows either become bronze (a
        swap: dbt queries them next, before autovacuum would get to them) or are joined
        with bronze (a merge: without statistics the planner takes staging for empty and
        picks a plan up to 5x slower). ~0.4 s per million rows on PostgreSQL (a sample of
        30,000 rows). Only a plain append (`analyze=False`) joins nothing and replaces
        nothing: bronze keeps its statistics and autovacuum refreshes them.
        """
        if self._sink is not None:
            self._sink.close()
        if analyze and not self._analyzed and self.writer.analyze_staging:
            analyze_table(self.conn, self.schema, self.staging.name)
            self._analyzed = True
        return self.staging

    def abort(self) -> None:
        """Stop a streaming writer before the transaction rolls back (never raises)."""
        for sink in (self._sink, self._keys_sink):
            if sink is not None:
                sink.abort()

    def staged_columns(self) -> dict[str, CatalogType]:
        """The staging table's columns as the catalog stores them (compare with bronze's)."""
        columns = catalog_columns(self.conn, self.schema, self.staging.name)
        assert columns is not None
        return columns

    def check_keys(self, keys: Sequence[str]) -> None:
        """Fail the load when the staged rows have a NULL or duplicated primary key."""
        problem = merge.key_problem(self.conn, self._staged(), keys)
        if problem:
            raise LoadFailed(f"cannot load {self.target} (bronze unchanged): {problem}")

    # --- into bronze ----------------------------------------------------------------------

    def evolve(self, evolution: Evolution) -> None:
        """Add new columns and widen decimals in bronze, before the staged rows go in.

        Columns bronze keeps as text: `restage`, once the rows are staged.
        """
        for name in evolution.add:
            add_column(self.conn, self.schema, self.table, name, self.staging.c[name].type)
        for name, catalog in evolution.widen.items():
            with _dependents_refuse(self.target, f"widen its column {name}"):
                alter_column_type(self.conn, self.schema, self.table, name, sql_type(catalog))

    def restage(self, evolution: Evolution) -> None:
        """Turn staged columns bronze keeps as text into text (`Evolution.as_text`).

        In the staging table, once every batch is in it: only this load's rows are
        converted, bronze's are never rewritten. Lists become JSON (`to_json`, the form
        the earlier path gave them), other types their text cast.
        """
        if not evolution.as_text:
            return
        staging = self._staged(analyze=False)
        for name, is_list in evolution.as_text.items():
            alter_column_type(
                self.conn, self.schema, staging.name, name, Text(), cast=True, json=is_list
            )

    def replace(self, keep: dict[str, CatalogType], keys: Sequence[str]) -> None:
        """Put the staged rows in place of bronze's, in this transaction.

        When nothing depends on bronze (or it does not exist yet), staging is renamed
        into its place: no row is copied. When views or other objects depend on it,
        PostgreSQL refuses the DROP, and bronze is refilled in place instead (`_refill`),
        so the views keep working and see the old rows until the commit, the new ones
        after. Dropped-at-source (kept) columns stay, NULL in the new rows.
        """
        staged = self._staged()
        bronze = Table(self.table, MetaData(), schema=self.schema)
        if not self.writer._drop_unless_depended_on(self.conn, bronze):
            self._refill(keys)
            return
        rename_table(self.conn, self.schema, staged.name, self.table)
        self._staging = None
        for name, catalog in keep.items():
            add_column(self.conn, self.schema, self.table, name, sql_type(catalog))
        if keys and self.writer.index_keys:
            create_key_index(self.conn, self.schema, self.table, keys)

    def _refill(self, keys: Sequence[str]) -> None:
        """Replace bronze's rows by the staged ones without dropping the table.

        New columns are added (ALTER TABLE ADD COLUMN is allowed under views); bronze is
        emptied before a column changes type, so no old value is converted; a type
        change PostgreSQL refuses under a view fails the load (`DependentObjects`, exit
        2, bronze unchanged). The key index is dropped while the rows go in and rebuilt
        after: one sort instead of a million index insertions. Costs one copy of the
        rows (measured in the report of this change) over the rename of the other path.
        """
        staged = self.staging
        bronze = self.bronze_columns()
        assert bronze is not None  # it exists: the DROP was refused
        incoming = self.staged_columns()
        for name in incoming:
            if name not in bronze:
                add_column(self.conn, self.schema, self.table, name, staged.c[name].type)
        truncate_table(self.conn, self.schema, self.table)
        for name, catalog in incoming.items():
            if name in bronze and bronze[name] != catalog:
                with _dependents_refuse(self.target, f"change the type of its column {name}"):
                    alter_column_type(
                        self.conn, self.schema, self.table, name, staged.c[name].type, cast=True
                    )
        if self.writer.index_keys:
            drop_key_index(self.conn, self.schema, self.table)
        merge.insert_all(self.conn, self.schema, self.table, staged)
        self._drop_staging()
        if keys and self.writer.index_keys:
            create_key_index(self.conn, self.schema, self.table, keys)
        if self.writer.analyze_staging:
            analyze_table(self.conn, self.schema, self.table)

    def merge(self, keys: Sequence[str]) -> None:
        merge.merge(self.conn, self.schema, self.table, self._staged(), keys)
        self._drop_staging()

    def insert_absent(self, keys: Sequence[str]) -> None:
        merge.insert_absent(self.conn, self.schema, self.table, self._staged(), keys)
        self._drop_staging()

    def insert_all(self) -> None:
        merge.insert_all(self.conn, self.schema, self.table, self._staged(analyze=False))
        self._drop_staging()

    def _drop_staging(self) -> None:
        self.staging.drop(self.conn)
        self._staging = None

    # --- deletes at the source (`datakits.deletes`) ----------------------------------------

    def stage_keys(self, schema: pa.Schema) -> BatchSink:
        """Create `__keys_<table>` for the source's key columns (`schema`); the sink
        appends the key scan's batches through the same bulk path as the rows (COPY,
        DuckDB's streamed INSERT), without load columns. After the merge: the bronze
        table's staging is gone, so the connection is free for this stream."""
        columns = [Column(f.name, bronze_type(f.type), nullable=True) for f in schema]
        keys = Table(keys_name(self.table), MetaData(), *columns, schema=self.schema)
        self.conn.execute(DropTable(keys, if_exists=True))  # never left by us; be safe
        keys.create(self.conn)
        self._keys = keys
        self._keys_sink = _Sink(schema, self.writer._batch_writer(self.conn, keys, None))
        return self._keys_sink

    def remove_missing(self, deletes: Deletes, keys: Sequence[str]) -> int:
        """Apply `deletes` to the bronze rows whose key is not in `__keys_<table>`, drop
        that table; returns the rows deleted (`hard`) or newly marked (`soft`).

        The keys table is analysed first on PostgreSQL: without statistics the planner
        takes it for empty and anti-joins by a nested loop over bronze's key index.
        """
        if self._keys is None or self._keys_sink is None:
            raise RuntimeError("call stage_keys() first")
        self._keys_sink.close()
        if self.writer.analyze_staging:
            analyze_table(self.conn, self.schema, self._keys.name)
        if deletes is Deletes.hard:
            count = merge.delete_missing(self.conn, self.schema, self.table, self._keys, keys)
        else:
            self.ensure_deleted_at()
            count = merge.mark_missing(
                self.conn,
                self.schema,
                self.table,
                self._keys,
                keys,
                deleted_at=DELETED_AT,
                when=self.stamp.loaded_at,
            )
        self._keys.drop(self.conn)
        self._keys, self._keys_sink = None, None
        return count

    def ensure_deleted_at(self) -> None:
        """`deletes: soft`: bronze has a nullable `_deleted_at` (a timestamp, like
        `_loaded_at`) from its first load on, so models can filter on it at once. Rows
        the merge (re-)inserts get NULL: a key that comes back is no longer deleted."""
        if not has_column(self.conn, self.schema, self.table, DELETED_AT):
            add_column(self.conn, self.schema, self.table, DELETED_AT, DateTime(timezone=True))

    # --- metadata -------------------------------------------------------------------------

    def save_watermark(
        self, cursor_column: str, value: str | None, pending: tuple[Sighting, ...] = ()
    ) -> None:
        save_watermark(
            self.conn,
            self.meta,
            tenant=self.stamp.tenant,
            table=self.table,
            cursor_column=cursor_column,
            value=value,
            pending=pending,
            batch_id=self.stamp.batch_id,
        )

    def clear_watermark(self) -> None:
        clear_watermark(self.conn, self.meta, self.stamp.tenant, self.table)

    def audit(self, rows: int, deleted: int | None = None) -> None:
        """The audit row; `deleted` None when the load does not look for deletes."""
        record_load(
            self.conn,
            self.meta,
            AuditRecord(
                batch_id=self.stamp.batch_id,
                tenant=self.stamp.tenant,
                table_name=self.table,
                mode=self.stamp.mode,
                rows=rows,
                deleted=deleted,
                started_at=self.stamp.loaded_at,
                finished_at=dt.datetime.now(dt.UTC),
            ),
        )


class SqlBronzeWriter:
    """Loads through SQLAlchemy; subclasses supply `_batch_writer` (and `_lock`, `_connect`)."""

    #: The backend name this writer accepts (`url.get_backend_name()`).
    backend: ClassVar[str]
    #: Errors of the raw driver connection used for bulk appends (besides SQLAlchemy's).
    driver_errors: ClassVar[tuple[type[Exception], ...]] = ()
    #: Whether bronze tables with a primary key get an index on it (fast merges).
    index_keys: ClassVar[bool] = True
    #: Whether the filled staging table is analysed before it is checked and merged.
    analyze_staging: ClassVar[bool] = True

    def __init__(
        self, url: str | URL, schemas: Schemas, *, lock_timeout: float | None = None
    ) -> None:
        self.url = parse_url(url)
        self.schemas = schemas
        self.lock_timeout = DEFAULT_LOCK_TIMEOUT if lock_timeout is None else lock_timeout

    def target(self, table: str) -> str:
        return f"{self.schemas.bronze}.{table}"

    def _connect(self, engine: Engine) -> Connection:
        """Open the warehouse connection (a writer may wait here for a busy warehouse)."""
        return connect(engine, "warehouse")

    def _lock(self, conn: Connection, lock_name: str) -> None:
        """Hold `lock_name` until the transaction ends, waiting at most `lock_timeout`
        seconds (then `WarehouseBusy`). Default: nothing (see subclasses)."""

    def _batch_writer(
        self, conn: Connection, staging: Table, stamp: LoadStamp | None
    ) -> BatchWriter:
        """Appends batches to `staging`, adding the load columns from `stamp` (None: the
        table has none, as the key scan's `__keys_<table>`)."""
        raise NotImplementedError

    def _drop_unless_depended_on(self, conn: Connection, table: Table) -> bool:
        """Drop `table` if it exists and nothing depends on it; False (kept) when views or
        other objects do.

        The DROP itself asks the warehouse, in a savepoint: PostgreSQL's own dependency
        tracking decides (views, foreign keys, rules, SQL functions), not a catalog query
        of ours that would miss a kind. A refused DROP rolls back to the savepoint only.
        """
        try:
            with conn.begin_nested():
                conn.execute(DropTable(table, if_exists=True))
        except DBAPIError as exc:
            if depending_objects(exc) is None:
                raise
            return False
        return True

    @contextmanager
    def session(self, table: str, stamp: LoadStamp) -> Iterator[BronzeSession]:
        """The load's transaction with `table` locked; commits when the block succeeds."""
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
                    session = BronzeSession(self, conn, meta, table, stamp)
                    try:
                        yield session
                        session.abort()  # no-op unless the caller left a stream open
                    except BaseException:
                        session.abort()
                        raise
            except (DBAPIError, *self.driver_errors) as exc:
                raise LoadFailed(
                    f"loading {self.target(table)} failed and was rolled back "
                    f"(bronze unchanged): {reason(exc, self.url.password)}"
                ) from None
            finally:
                conn.close()
        finally:
            engine.dispose()
