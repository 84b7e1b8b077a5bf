"""`dag-factory status TENANT`: what each table of a tenant loaded, read from its warehouse.

The warehouse's meta schema is the source of truth for loads (DESIGN.md, contract 5):
`load_audit` holds one row per committed load, `watermarks` the cursor value each
incremental table resumes from. Both are read here with the tenant's *own* credentials
(its warehouse reference resolved as a task would: `dag_factory.secrets.resolve`), so the
command sees exactly what the tenant's role may see and needs no admin URL.

A failed load rolls back and leaves no audit row: the loads listed all committed; where a
load failed (and why) is Airflow's task history. The watermark shown beside a load is the
table's current one, on the load that committed it (its `batch_id`).

A lakehouse tenant has no meta schema: each load is one Delta commit whose metadata holds
its batch, mode, rows, times and watermark (`datakits.writers.lakehouse`), so the Delta
log *is* its load audit and is read instead, with the same credentials the runner uses.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, func, inspect, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from dag_factory.secrets import resolve
from dag_factory.spec import TenantSpec
from datakits.messages import reason
from datakits.metadata import LOAD_AUDIT, WATERMARKS, meta_tables
from datakits.urls import make_engine, parse_url, safe

#: Load commits looked at first in a Delta log (then the whole log).
_LAKE_PAGE = 20


class StatusError(RuntimeError):
    """The warehouse cannot be read; the message says which and what to do."""


@dataclass(frozen=True)
class LoadRow:
    batch_id: str
    mode: str
    rows: int
    started_at: dt.datetime
    finished_at: dt.datetime
    seconds: float
    status: str
    #: The table's current watermark when this load committed it, else None.
    watermark: str | None = None


@dataclass
class TableStatus:
    table: str
    #: False for a table the tenant file no longer lists (its audit rows remain).
    in_spec: bool = True
    cursor_column: str | None = None
    watermark: str | None = None
    watermark_batch: str | None = None
    watermark_updated_at: dt.datetime | None = None
    loads: list[LoadRow] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        for load in data["loads"]:
            load["started_at"] = load["started_at"].isoformat()
            load["finished_at"] = load["finished_at"].isoformat()
        if self.watermark_updated_at is not None:
            data["watermark_updated_at"] = self.watermark_updated_at.isoformat()
        return data


def _engine(url: str) -> Engine:
    """Read-only where the warehouse is a file: `status` must never create a DuckDB file
    (a typo in the URL would otherwise show an empty tenant) nor take its write lock."""
    parsed = parse_url(url)
    if parsed.get_backend_name() == "duckdb":
        path = parsed.database
        if path and path != ":memory:" and not Path(path).exists():
            raise StatusError(f"the warehouse file {path} does not exist: no load has run yet")
        return create_engine(parsed, poolclass=NullPool, connect_args={"read_only": True})
    return make_engine(parsed)


def _utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def read_status(spec: TenantSpec, url: str, *, last: int = 5) -> list[TableStatus]:
    """The last `last` loads of every table of `spec`, newest first, and its watermark."""
    schema = spec.warehouse.schemas.meta
    meta = meta_tables(schema)
    audit, marks = meta.load_audit, meta.watermarks
    statuses = {t.name: TableStatus(t.name) for t in spec.tables if t.enabled}
    engine = _engine(url)
    try:
        with engine.connect() as conn:
            present = set(inspect(conn).get_table_names(schema=schema))
            if WATERMARKS in present:
                for row in conn.execute(select(marks).where(marks.c.tenant == spec.tenant)):
                    status = statuses.setdefault(row.table_name, TableStatus(row.table_name, False))
                    status.cursor_column = row.cursor_column
                    status.watermark = row.value
                    status.watermark_batch = row.batch_id
                    status.watermark_updated_at = _utc(row.updated_at)
            if LOAD_AUDIT in present:
                rank = (
                    func.row_number()
                    .over(partition_by=audit.c.table_name, order_by=audit.c.finished_at.desc())
                    .label("rank")
                )
                ranked = select(audit, rank).where(audit.c.tenant == spec.tenant).subquery()
                query = (
                    select(ranked)
                    .where(ranked.c.rank <= last)
                    .order_by(ranked.c.table_name, ranked.c.rank)
                )
                for row in conn.execute(query):
                    status = statuses.setdefault(row.table_name, TableStatus(row.table_name, False))
                    started, finished = _utc(row.started_at), _utc(row.finished_at)
                    status.loads.append(
                        LoadRow(
                            batch_id=row.batch_id,
                            mode=row.mode,
                            rows=row.rows,
                            started_at=started,
                            finished_at=finished,
                            seconds=round((finished - started).total_seconds(), 3),
                            status=row.status,
                            watermark=status.watermark
                            if row.batch_id == status.watermark_batch
                            else None,
                        )
                    )
    except DBAPIError as exc:
        raise StatusError(
            f"cannot read {spec.tenant}'s meta schema {schema} in {safe(engine.url)}: "
            f"{reason(exc, engine.url.password)}"
        ) from None
    finally:
        engine.dispose()
    return sorted(statuses.values(), key=lambda s: (not s.in_spec, s.table))


def _lake_loads(delta: Any) -> Iterator[dict[str, Any]]:
    """Commit infos of the table's datakits loads, newest first (the Delta log pages
    like the writer's own reader: the recent commits first, the whole log if needed)."""
    from datakits.writers.lakehouse import META_BATCH

    seen = 0
    for limit in (_LAKE_PAGE, None):
        history = delta.history(limit)
        yield from (info for info in history[seen:] if META_BATCH in info)
        if limit is None or len(history) < limit:
            return
        seen = len(history)


def _lake_table(status: TableStatus, loads: Iterator[dict[str, Any]], last: int) -> None:
    """Fill `status` from its load commits: the newest holds the current watermark."""
    from datakits.writers.lakehouse import META_BATCH, META_WATERMARK

    for info in loads:
        started = _utc(dt.datetime.fromisoformat(info["datakits.started_at"]))
        finished = _utc(dt.datetime.fromisoformat(info["datakits.finished_at"]))
        newest = not status.loads
        if newest and info.get(META_WATERMARK):
            mark = json.loads(info[META_WATERMARK])
            status.cursor_column = mark["cursor_column"]
            status.watermark = mark["value"]
            status.watermark_batch = info[META_BATCH]
            status.watermark_updated_at = finished
        status.loads.append(
            LoadRow(
                batch_id=info[META_BATCH],
                mode=info.get("datakits.mode", "?"),
                rows=int(info.get("datakits.rows", 0)),
                started_at=started,
                finished_at=finished,
                seconds=round((finished - started).total_seconds(), 3),
                status="success",  # only a committed load leaves a commit
                watermark=status.watermark if newest else None,
            )
        )
        if len(status.loads) >= last:
            return


def read_lake_status(spec: TenantSpec, url: str, *, last: int = 5) -> list[TableStatus]:
    """`read_status` for a lakehouse tenant: the load commits of each bronze Delta table.

    Only the tables the tenant file lists are looked at (the lake has no audit table
    naming the others)."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    from datakits.errors import ConfigError
    from datakits.writers.lakehouse import LakehouseWriter, table_path

    try:
        writer = LakehouseWriter(url, spec.warehouse.schemas)
    except ConfigError as exc:
        raise StatusError(str(exc)) from None
    statuses = [TableStatus(t.name) for t in spec.tables if t.enabled]
    for status in statuses:
        path = table_path(spec.tenant, writer.schemas.bronze, status.table)
        try:
            delta = DeltaTable(
                f"{writer.location.root}/{path}", storage_options=writer.storage_options
            )
            _lake_table(status, _lake_loads(delta), last)
        except TableNotFoundError:
            continue  # never loaded
        except Exception as exc:  # unreachable endpoint, refused credentials, no bucket
            raise StatusError(
                f"cannot read {spec.tenant}'s lake table {writer.target(status.table)} in "
                f"{writer.safe_url}: {writer.scrub(exc)}"
            ) from None
    return sorted(statuses, key=lambda s: s.table)


def tenant_status(spec: TenantSpec, *, last: int = 5) -> list[TableStatus]:
    """`read_status` with the tenant's own warehouse credentials, resolved like a task's."""
    url = resolve(spec.warehouse.connection, field="warehouse.connection")
    if spec.warehouse.kind == "lakehouse":
        return read_lake_status(spec, url, last=last)
    return read_status(spec, url, last=last)
