"""One table, source → bronze: the orchestration of a reader, a writer and progress.

This is the whole extract-load for a full refresh; the runner only adds argv/env
parsing and the JSON result line. Everything stateful (transaction, swap, audit) is the
writer's, everything about source types is the reader's: this module wires them and
measures.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any

from datakits.errors import ConfigError
from datakits.progress import LoadProgress, NullProgress
from datakits.sources import reader_for
from datakits.spec import LoadMode, LoadSpec, TableSpec
from datakits.writers import BATCH_ID, LOADED_AT, LoadStamp, writer_for


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
    #: The high-water mark committed with the load; None for a full refresh.
    watermark: Any
    #: `<bronze schema>.<table>`.
    target: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_table(
    spec: LoadSpec,
    table: TableSpec,
    source_url: str,
    warehouse_url: str,
    progress: LoadProgress | None = None,
) -> LoadResult:
    """Copy `table` from the source into the tenant's bronze schema, atomically.

    Raises `ConfigError` (spec or source definition wrong), `SourceUnavailable` (cannot
    connect) or `LoadFailed` (rolled back; bronze keeps its last good state).
    """
    progress = progress if progress is not None else NullProgress()
    if table.mode is not LoadMode.full_refresh:
        raise ConfigError(f"load mode {table.mode!r} is not supported yet")
    started = time.perf_counter()
    stamp = LoadStamp(
        tenant=spec.tenant,
        table=table.name,
        mode=str(table.mode),
        batch_id=uuid.uuid4().hex,
        loaded_at=dt.datetime.now(dt.UTC),
    )
    writer = writer_for(spec.warehouse, warehouse_url)
    target = writer.target(table.name)
    nbytes = 0
    with reader_for(spec.source, table, source_url) as reader:
        clashing = sorted({LOADED_AT, BATCH_ID}.intersection(reader.schema.names))
        if clashing:
            raise ConfigError(
                f"source table {table.name} has column(s) {', '.join(clashing)}, reserved "
                "for the load columns bronze adds: leave them out with `columns`"
            )
        progress.start(f"{spec.tenant}: {table.name} → {target}")
        with writer.full_refresh(table.name, reader.schema, stamp) as sink:
            for batch in reader.batches():
                sink.write(batch)
                nbytes += batch.nbytes
                progress.advance(batch.num_rows, batch.nbytes)
        rows = sink.rows
    seconds = round(time.perf_counter() - started, 3)
    rate = rows / seconds if seconds else float(rows)
    progress.finish(
        f"loaded {rows:,} rows ({nbytes / 1e6:,.1f} MB) from {table.name} into {target} "
        f"in {seconds:.2f} s ({rate:,.0f} rows/s), batch {stamp.batch_id}"
    )
    return LoadResult(
        tenant=spec.tenant,
        table=table.name,
        mode=str(table.mode),
        rows=rows,
        bytes=nbytes,
        seconds=seconds,
        batch_id=stamp.batch_id,
        watermark=None,
        target=target,
    )
