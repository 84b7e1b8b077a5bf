"""One table, source → bronze: the orchestration of a reader, a writer and progress.

`load_table` is the whole extract-load of every mode; the runner only adds argv/env
parsing and the JSON result line. The order of its steps is the design:

1. open the source and check the spec against it (columns, cursor, key, filter);
2. open the warehouse transaction with the table locked, read what bronze holds and
   the watermark, and plan the load (`datakits.modes`);
3. refuse NULL cursors if the policy says so, create the staging table, and settle
   schema drift against bronze (`datakits.drift`) before a single row is read;
4. stream the rows the plan selects into staging, tracking the largest cursor read;
5. check the primary key, swap or merge into bronze, save the watermark and the audit
   row, and commit: all of it or nothing (`datakits.writers.base`).

Everything stateful is the writer's, everything about source types is the reader's:
this module wires them and measures.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa

from datakits.drift import Evolution, compare, decide
from datakits.errors import ConfigError, LoadFailed
from datakits.filters import filter_conditions
from datakits.modes import Cursor, LoadPlan, plan_load
from datakits.progress import LoadProgress, NullProgress
from datakits.sources import SourceReader, reader_for
from datakits.spec import Deletes, LoadMode, LoadSpec, TableSpec
from datakits.types import bounds_for
from datakits.watermarks import (
    CursorMax,
    Sighting,
    StoredWatermark,
    check_cursor_type,
    encode,
    to_json,
)
from datakits.writers import (
    BATCH_ID,
    DELETED_AT,
    LOADED_AT,
    BatchSink,
    BronzeSession,
    LoadStamp,
    SqlBronzeWriter,
    writer_for,
)


@dataclass(frozen=True)
class LoadResult:
    """What one load did: the runner prints it as its JSON result line."""

    tenant: str
    table: str
    mode: str
    rows: int
    #: Arrow bytes moved: an approximation of the data volume, not the bytes on disk.
    bytes: int
    seconds: float
    batch_id: str
    #: The high-water mark committed with the load (an integer, or ISO/decimal text);
    #: None for a full refresh, or while no row with a cursor value was read.
    watermark: Any
    #: `<bronze schema>.<table>`.
    target: str
    #: The table as the source names it (`schema.table`, or `table` where there is no
    #: schema): the input dataset of the task's lineage (runners.lineage).
    source_table: str = ""
    #: The loaded columns, name → Arrow type as text: the lineage's schema facet.
    columns: dict[str, str] = field(default_factory=dict)
    #: Bronze rows deleted (`deletes: hard`) or newly marked `_deleted_at` (`soft`) because
    #: their key is gone from the source; None when the load does not look (`ignore`).
    deleted: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_source(table: TableSpec, reader: SourceReader) -> Cursor | None:
    """The spec against the source's columns; returns the cursor (None for full refresh).

    The spec names source columns (`cursor`, `primary_key`); the batches carry their
    bronze names (`reader.bronze_names`, `datakits.naming`)."""
    names = list(reader.bronze_names)
    clashing = sorted({LOADED_AT, BATCH_ID, DELETED_AT}.intersection(reader.schema.names))
    if clashing:
        raise ConfigError(
            f"source table {table.source_table} has column(s) loaded as {', '.join(clashing)}, "
            "reserved for the load columns bronze adds: leave them out with `columns`, or "
            "give them another name there ({source: ..., name: ...})"
        )
    for role, wanted in (("cursor", [table.cursor]), ("primary_key", table.primary_key)):
        missing = [name for name in wanted or () if name and name not in names]
        if missing:
            raise ConfigError(
                f"source table {table.source_table} has no {role} column {', '.join(missing)} "
                f"(columns: {', '.join(names)})"
            )
    if table.mode is LoadMode.full_refresh or table.cursor is None:
        return None
    bronze = reader.bronze_names[table.cursor]
    arrow_type = reader.schema.field(bronze).type
    check_cursor_type(table.name, table.cursor, arrow_type)
    nullable = bool(reader.source_table.c[table.cursor].nullable)
    return Cursor(table.cursor, arrow_type, nullable, bronze=bronze)


def _sightings(stored: StoredWatermark | None, cursor: Cursor) -> tuple[Sighting, ...]:
    """The stored sightings that describe this cursor (none once the cursor changed)."""
    if stored is None or stored.cursor_column != cursor.bronze_column:
        return ()
    return stored.pending


def _refuse_null_cursors(
    plan: LoadPlan, reader: SourceReader, filters: list[Any], target: str
) -> None:
    """`null_cursor: fail`: stop before writing anything while the source has such rows."""
    null_rows = plan.null_rows(reader.source_table)
    if null_rows is not None and reader.exists(*filters, null_rows):
        assert plan.cursor is not None
        raise LoadFailed(
            f"source table {reader.source_table.name} has rows whose cursor "
            f"{plan.cursor.column} is NULL, and null_cursor is `fail` ({target} unchanged): "
            "set null_cursor to include (re-read and merge them every run) or skip"
        )


def _stream(
    reader: SourceReader, sink: BatchSink, tracker: CursorMax | None, progress: LoadProgress
) -> int:
    """Every selected row into staging, noting the largest cursor; returns the bytes moved."""
    nbytes = 0
    for batch in reader.batches():
        sink.write(batch)
        if tracker is not None:
            tracker.update(batch)
        nbytes += batch.nbytes
        progress.advance(batch.num_rows, batch.nbytes)
    sink.close()
    return nbytes


def _remove_deleted(
    session: BronzeSession,
    reader: SourceReader,
    table: TableSpec,
    filters: list[Any],
    progress: LoadProgress,
) -> int:
    """The key scan of `deletes`: every source key into `__keys_<table>`, then the
    anti-join with bronze, in the load's transaction; returns the rows deleted/marked.

    Streamed batch by batch (no key set in Python), so a 100M-row table costs the
    warehouse a table of keys, not the runner memory. Each batch is reported as bytes
    without rows: a long scan shows the load is alive without changing its row count.
    """
    keys = table.primary_key or ()  # source names; bronze has them under bronze names
    bronze_keys = tuple(reader.bronze_names[k] for k in keys)
    sink = session.stage_keys(pa.schema([reader.schema.field(k) for k in bronze_keys]))
    for batch in reader.key_batches(keys, filters):
        sink.write(batch)
        progress.advance(0, batch.nbytes)
    return session.remove_missing(table.deletes, bronze_keys)


def _into_bronze(session: BronzeSession, plan: LoadPlan, evolution: Evolution) -> None:
    """Move the staged rows into bronze as the plan says (inside the transaction)."""
    if plan.keys:
        session.check_keys(plan.keys)
    if plan.rebuild:
        session.replace(evolution.keep, plan.keys)
    elif plan.mode is LoadMode.incremental:
        session.merge(plan.keys)
    elif plan.keys:
        session.insert_absent(plan.keys)
    else:
        session.insert_all()


def load_table(
    spec: LoadSpec,
    table: TableSpec,
    source_url: str,
    warehouse_url: str,
    progress: LoadProgress | None = None,
    *,
    lock_timeout: float | None = None,
    full_reload: bool = False,
    on_source_open: Callable[[SourceReader], None] | None = None,
) -> LoadResult:
    """Load `table` from the source into the tenant's bronze schema, atomically.

    `lock_timeout`: seconds to wait for another load of the same table (None: default).
    `full_reload`: rebuild an append/incremental table from every source row, resetting its
    watermark inside the load's transaction (a full-refresh table always is rebuilt).
    `on_source_open`: called with the open reader before the warehouse is opened (the
    runner asks it for the row estimate of its progress lines there, on the reader's
    connection rather than on one of its own).
    Raises `ConfigError` (spec or source definition wrong), `SourceUnavailable` (cannot
    connect), `WarehouseBusy` (lock not obtained in time) or `LoadFailed` (rolled back;
    bronze and the watermark keep their last good state).
    """
    progress = progress if progress is not None else NullProgress()
    started = time.perf_counter()
    stamp = LoadStamp(
        tenant=spec.tenant,
        table=table.name,
        mode=str(table.mode),
        batch_id=uuid.uuid4().hex,
        loaded_at=dt.datetime.now(dt.UTC),
    )
    writer = writer_for(spec.warehouse, warehouse_url, lock_timeout=lock_timeout)
    target = writer.target(table.name)
    if table.deletes is not Deletes.ignore and not isinstance(writer, SqlBronzeWriter):
        raise ConfigError(
            f"table {table.name}: `deletes: {table.deletes}` needs a SQL warehouse (postgres, "
            f"duckdb); a {spec.warehouse.kind} warehouse does not detect deletes yet: "
            "remove `deletes` for this tenant"
        )
    watermark: Any = None
    with reader_for(spec.source, table, source_url) as reader:
        if on_source_open is not None:
            on_source_open(reader)
        reader.bounds = bounds_for(str(spec.warehouse.kind))
        cursor = _check_source(table, reader)
        filters = filter_conditions(reader.source_table, table.filter, reader.cursor_order)
        with writer.session(table.name, stamp) as session:
            bronze = session.bronze_columns()
            stored = session.watermark() if cursor else None
            plan = plan_load(
                table,
                cursor,
                bronze_exists=bronze is not None,
                stored=stored,
                target=target,
                full_reload=full_reload,
                default_lookback=reader.default_lookback,
                keys=tuple(reader.bronze_names[k] for k in table.primary_key or ()),
            )
            _refuse_null_cursors(plan, reader, filters, target)
            if cursor is not None:  # before the read: see `SourceReader.commit_horizon`
                horizon = reader.commit_horizon(
                    cursor.column, cursor.arrow_type, _sightings(stored, cursor)
                )
                plan = plan.with_horizon(horizon)
            cursor_range = plan.conditions(reader.source_table, reader.cursor_order)
            reader.where = (*filters, *cursor_range)
            sink = session.stage(reader.schema)
            columns = {f.name: str(f.type) for f in reader.schema}
            evolution = Evolution()
            if bronze is not None:
                drift = compare(bronze, session.staged_columns())
                evolution = decide(drift, table.schema_drift, target=target, rebuild=plan.rebuild)
                if not plan.rebuild:
                    session.evolve(evolution)
            drifted = "".join(f"; {note}" for note in evolution.notes)
            progress.start(f"{spec.tenant}: {table.name} → {target} ({plan.describe()}){drifted}")
            tracker = CursorMax(cursor.bronze_column) if cursor else None
            nbytes = _stream(reader, sink, tracker, progress)
            if not plan.rebuild:
                session.restage(evolution)
            _into_bronze(session, plan, evolution)
            deleted: int | None = None
            if table.deletes is not Deletes.ignore:
                # A rebuild made bronze the source's rows: nothing in it can be gone.
                deleted = 0
                if not plan.rebuild:
                    deleted = _remove_deleted(session, reader, table, filters, progress)
                elif table.deletes is Deletes.soft:
                    session.ensure_deleted_at()
            if cursor is not None and tracker is not None:
                watermark = plan.next_watermark(tracker.value)
                session.save_watermark(
                    cursor.bronze_column,
                    None if watermark is None else encode(watermark),
                    plan.pending,
                )
            else:
                session.clear_watermark()  # a full refresh has none; a stale one would lie
            if deleted is None:
                session.audit(sink.rows)
            else:
                session.audit(sink.rows, deleted)
        rows = sink.rows
        source_name = ".".join(
            p for p in (reader.source_table.schema, reader.source_table.name) if p
        )
    seconds = round(time.perf_counter() - started, 3)
    rate = rows / seconds if seconds else float(rows)
    shown = f", watermark {encode(watermark)}" if watermark is not None else ""
    if deleted is not None:
        done = "deleted" if table.deletes is Deletes.hard else "marked _deleted_at"
        shown += f", {deleted:,} gone from the source {done}"
    progress.finish(
        f"loaded {rows:,} rows ({nbytes / 1e6:,.1f} MB) from {table.name} into {target} "
        f"in {seconds:.2f} s ({rate:,.0f} rows/s), batch {stamp.batch_id}{shown}"
    )
    return LoadResult(
        tenant=spec.tenant,
        table=table.name,
        mode=str(table.mode),
        rows=rows,
        bytes=nbytes,
        seconds=seconds,
        batch_id=stamp.batch_id,
        watermark=to_json(watermark),
        target=target,
        source_table=source_name,
        columns=columns,
        deleted=deleted,
    )
