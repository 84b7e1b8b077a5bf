"""DuckDB bronze writer: the whole load is one INSERT over a stream of Arrow batches.

DuckDB scans Arrow memory directly, so there is no per-row Python, and one INSERT over
a stream (`duckstream`) keeps memory flat in the load's one transaction. Only one process
may open a DuckDB file for writing: the writer waits for it (`lock_timeout`), so
parallel loads of one warehouse run one after another.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import duckdb
import pyarrow as pa
from sqlalchemy import Connection, DateTime, Engine, Table, Text, column, insert, literal, select
from sqlalchemy import table as table_clause
from sqlalchemy.dialects import registry
from sqlalchemy.schema import DropTable

from datakits.errors import ConfigError, SourceUnavailable, WarehouseBusy
from datakits.urls import connect
from datakits.writers.base import BATCH_ID, LOADED_AT, BatchWriter, LoadStamp, SqlBronzeWriter
from datakits.writers.duckstream import StreamingInsert

# Name the dialect's module outright: finding it through the `sqlalchemy.dialects` entry
# points scans the metadata of every installed distribution (~70 ms of each runner's
# start-up in an Airflow environment).
registry.register("duckdb", "duckdb_engine", "Dialect")

#: Connection-local name under which the current batch is visible to SQL.
_BATCH_VIEW = "__datakits_batch"
#: What DuckDB says when another process has the database file open.
_LOCK_CONFLICT = "Could not set lock on file"
#: What DuckDB says when the file cannot be created or opened (permissions, read-only).
_CANNOT_OPEN = "Cannot open"


#: DuckDB's buffer pool may use 80% of the machine's memory by default, and it keeps the
#: blocks a load writes cached: the runner's memory then grows with the table (measured:
#: +16 MB per million rows, without end). A bound keeps it flat; past it, DuckDB evicts
#: written blocks and spills joins and aggregates to `<warehouse>.tmp/`. The runner's
#: peak is then about 230 MB (Python, Arrow, drivers) plus the limit: measured with
#: 128MB, 356-358 MB at 1M rows and 357-372 MB at 5M rows of the benchmark table (256MB: 394 and
#: 494 MB, the pool not yet full at 1M), and no slower.
MEMORY_LIMIT = "128MB"


def _make_parent(path: Path) -> None:
    """Create the warehouse file's directory; a path that cannot have one is a config error.

    Retrying cannot fix a parent that is a file, a read-only file system or a missing
    permission, so it is `ConfigError` (exit 2, never retried), not an unexpected crash.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"the DuckDB warehouse {path} cannot be created: its directory {path.parent} "
            f"cannot be made ({exc.strerror or exc}): fix the warehouse path"
        ) from None


def _configure(conn: Connection) -> None:
    """Settings of the load's connection (constants, never input).

    `preserve_insertion_order = false` lets DuckDB append the Arrow stream from all its
    threads instead of one: bronze is a set of rows (every reader orders by a column),
    and the one-INSERT load was the pipeline's slowest stage (measured on 1M rows of the
    benchmark table: 0.1-0.3 s faster in each of four paired whole-runner runs, and no more
    memory).
    """
    raw = conn.connection.driver_connection
    raw.execute(f"SET memory_limit = '{MEMORY_LIMIT}'").fetchall()
    raw.execute("SET preserve_insertion_order = false").fetchall()


def _quote_duckdb_keywords(conn: Connection) -> None:
    """Make the dialect quote every DuckDB keyword, not only PostgreSQL's reserved words.

    duckdb_engine reuses PostgreSQL's list, so a source column named e.g. `at`, `by` or
    `map` was written unquoted and failed to parse. DuckDB lists its own keywords.
    """
    raw = conn.connection.driver_connection
    rows = raw.execute(
        "SELECT keyword_name FROM duckdb_keywords() WHERE keyword_category <> 'unreserved'"
    ).fetchall()
    prep = conn.dialect.identifier_preparer
    prep.reserved_words = prep.reserved_words | {name for (name,) in rows}


class DuckDBWriter(SqlBronzeWriter):
    backend = "duckdb"
    driver_errors = (duckdb.Error,)
    #: DuckDB joins by hash: a merge needs no index, and an ART index on a large table
    #: costs memory at every load.
    index_keys = False
    #: DuckDB keeps its statistics up to date as it writes.
    analyze_staging = False

    def _connect(self, engine: Engine) -> Connection:
        """Wait while another process holds the file: DuckDB allows one writer process.

        Parallel extract tasks of a tenant then queue up instead of failing, which is
        also what keeps two runs of one table from interleaving. After `lock_timeout`
        seconds the load gives up with `WarehouseBusy`.
        """
        database = engine.url.database
        if database and database != ":memory:":  # a new warehouse: DuckDB makes the file
            _make_parent(Path(database))
        started = time.monotonic()
        deadline = started + self.lock_timeout
        pause = 0.05
        while True:
            try:
                conn = connect(engine, "warehouse")
                _quote_duckdb_keywords(conn)
                _configure(conn)
                return conn
            except SourceUnavailable as exc:
                if _LOCK_CONFLICT not in str(exc):
                    if database and _CANNOT_OPEN in str(exc):
                        raise ConfigError(
                            f"the DuckDB warehouse {database} cannot be opened: "
                            f"{str(exc).split(': ', 1)[-1]}: fix the warehouse path or "
                            "its directory's permissions"
                        ) from None
                    raise
                remaining = deadline - time.monotonic()
                if remaining <= 0:  # the whole timeout waited, never less
                    waited = time.monotonic() - started
                    raise WarehouseBusy(
                        f"the DuckDB warehouse {database} is in use by another process "
                        f"(Could not set lock on file): gave up after {waited:.1f} s "
                        f"(lock timeout {self.lock_timeout:g} s)"
                    ) from None
            time.sleep(min(pause, remaining))
            pause = min(pause * 2, 2.0)

    def _drop_unless_depended_on(self, conn: Connection, table: Table) -> bool:
        """Drop `table` if it exists: always possible on DuckDB.

        DuckDB has no savepoints, and it needs none here: it does not track which views
        read a table (`duckdb_dependencies()` lists none) but binds a view's query each
        time it is read, so a view over bronze works again as soon as staging is renamed
        into bronze's place in the same transaction (tests/datakits/test_dependents.py).
        """
        conn.execute(DropTable(table, if_exists=True))
        return True

    def _batch_writer(
        self, conn: Connection, staging: Table, stamp: LoadStamp | None
    ) -> BatchWriter:
        """One INSERT reading every batch as a stream: see `datakits.writers.duckstream`.

        `stamp` None: the table has no load columns (the key scan's `__keys_<table>`).
        """
        raw = conn.connection.driver_connection
        source_columns = [c.name for c in staging.columns if c.name not in (LOADED_AT, BATCH_ID)]
        load_columns = [] if stamp is None else [LOADED_AT, BATCH_ID]
        load_values = (
            []
            if stamp is None
            else [
                literal(stamp.loaded_at, DateTime(timezone=True)),
                literal(stamp.batch_id, Text()),
            ]
        )
        stmt = insert(staging).from_select(
            [*source_columns, *load_columns],
            select(*(column(name) for name in source_columns), *load_values).select_from(
                table_clause(_BATCH_VIEW)
            ),
        )

        def execute(reader: pa.RecordBatchReader) -> None:
            raw.register(_BATCH_VIEW, reader)
            try:
                conn.execute(stmt)
            except BaseException:
                # After a failed INSERT (disk full, I/O error) the transaction is aborted
                # and `unregister` fails too ("Current transaction is aborted"): that
                # second error must not replace the one that says what happened.
                with contextlib.suppress(duckdb.Error):
                    raw.unregister(_BATCH_VIEW)
                raise
            raw.unregister(_BATCH_VIEW)

        return StreamingInsert(execute)
