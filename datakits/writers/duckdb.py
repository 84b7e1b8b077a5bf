"""DuckDB bronze writer: each Arrow batch is registered as a view and inserted by SQL.

DuckDB scans Arrow memory directly, so a batch costs one `INSERT ... SELECT` and no
per-row Python. Only one process may open a DuckDB file for writing: the writer waits
for it (`lock_wait_seconds`), so parallel loads of one warehouse run one after another.
"""

from __future__ import annotations

import time
from pathlib import Path

import duckdb
import pyarrow as pa
from sqlalchemy import Connection, DateTime, Engine, Table, Text, column, insert, literal, select
from sqlalchemy import table as table_clause

from datakits.errors import SourceUnavailable
from datakits.urls import connect
from datakits.writers.base import BATCH_ID, LOADED_AT, BatchWriter, LoadStamp, SqlBronzeWriter

#: Connection-local name under which the current batch is visible to SQL.
_BATCH_VIEW = "__datakits_batch"
#: What DuckDB says when another process has the database file open.
_LOCK_CONFLICT = "Could not set lock on file"


class DuckDBWriter(SqlBronzeWriter):
    backend = "duckdb"
    driver_errors = (duckdb.Error,)
    #: How long to wait for another process to release the DuckDB file before giving up.
    lock_wait_seconds: float = 600.0

    def _connect(self, engine: Engine) -> Connection:
        """Wait while another process holds the file: DuckDB allows one writer process.

        Parallel extract tasks of a tenant then queue up instead of failing, which is
        also what keeps two runs of one table from interleaving.
        """
        database = engine.url.database
        if database and database != ":memory:":  # a new warehouse: DuckDB makes the file
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.lock_wait_seconds
        pause = 0.05
        while True:
            try:
                return connect(engine, "warehouse")
            except SourceUnavailable as exc:
                if _LOCK_CONFLICT not in str(exc) or time.monotonic() + pause > deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, 2.0)

    def _batch_writer(self, conn: Connection, staging: Table, stamp: LoadStamp) -> BatchWriter:
        raw = conn.connection.driver_connection
        source_columns = [c.name for c in staging.columns if c.name not in (LOADED_AT, BATCH_ID)]
        stmt = insert(staging).from_select(
            [*source_columns, LOADED_AT, BATCH_ID],
            select(
                *(column(name) for name in source_columns),
                literal(stamp.loaded_at, DateTime(timezone=True)),
                literal(stamp.batch_id, Text()),
            ).select_from(table_clause(_BATCH_VIEW)),
        )

        def write(batch: pa.RecordBatch) -> None:
            raw.register(_BATCH_VIEW, pa.Table.from_batches([batch]))
            try:
                conn.execute(stmt)
            finally:
                raw.unregister(_BATCH_VIEW)

        return write
