"""PostgreSQL bronze writer: each batch is appended with binary COPY, inside the load transaction.

COPY is PostgreSQL's bulk path (an order of magnitude faster than INSERTs). It runs on
the raw psycopg connection that SQLAlchemy's transaction owns, so the swap and the audit
row commit together with the data. Advisory locks make a second run of the same table
wait until the first commits or rolls back, and serialise the creation of schemas.

Each Arrow batch is encoded to PostgreSQL's binary COPY format in Rust by `pgpq`
(about 0.3 s of CPU per million benchmark rows, where psycopg's `write_row` takes
seconds of Python and pyarrow's CSV writer plus the server's CSV parser cost more on
both sides), and the whole load is one `COPY … FROM STDIN (FORMAT BINARY)` stream
(`_CopyStream`). The binary
format needs each Arrow type to match the staging column exactly, which holds because
staging is created from the same Arrow schema (`datakits.types.bronze_type`). Without
the `pgpq` package, rows go through psycopg's binary `write_row` (same result, slower).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import struct
from array import array
from collections.abc import Callable
from typing import Any

import psycopg
import pyarrow as pa
from psycopg import sql
from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql

from datakits.errors import LoadFailed
from datakits.writers.base import BATCH_ID, LOADED_AT, BatchWriter, LoadStamp, SqlBronzeWriter
from datakits.writers.pglock import advisory_xact_lock

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_TIMESTAMP_UTC = pa.timestamp("us", tz="UTC")


class PostgresWriter(SqlBronzeWriter):
    backend = "postgresql"
    driver_errors = (psycopg.Error,)

    def _lock(self, conn: Connection, lock_name: str) -> None:
        # A transaction-scoped advisory lock: released by commit, rollback or a dead session.
        advisory_xact_lock(conn, lock_name, self.lock_timeout)

    def _batch_writer(
        self, conn: Connection, staging: Table, stamp: LoadStamp | None
    ) -> BatchWriter:
        """`stamp` None: the table has no load columns (the key scan's `__keys_<table>`)."""
        raw = conn.connection.driver_connection
        names = [c.name for c in staging.columns]
        assert stamp is None or names[-2:] == [LOADED_AT, BATCH_ID]
        query = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
            sql.Identifier(staging.schema, staging.name),
            sql.SQL(", ").join(sql.Identifier(name) for name in names),
        )
        encoder = _encoder()
        if encoder is None:
            return _row_writer(raw, staging, query, stamp)
        return _CopyStream(raw, query, encoder, None if stamp is None else _StampColumns(stamp))


class _CopyStream:
    """One binary COPY for the whole load: `__call__` per batch, then `close` or `abort`.

    One COPY, not one per batch: ending a COPY waits until the server has stored every
    row of it, so per-batch COPYs stall the pipeline at each batch (the server idles while
    the next batch is encoded, the runner while the server catches up). In one stream
    the server ingests while the runner encodes. psycopg's plain (blocking) writer, not
    its queued one: that queue holds up to 128 MB when the server is the slower side,
    and the reader's prefetch thread already overlaps reading with writing. The
    connection is busy until `close`: the load runs no other statement between batches
    (`BatchSink`).
    """

    def __init__(
        self,
        raw: psycopg.Connection[Any],
        query: sql.Composed,
        encoder: Callable[[pa.Schema], Any],
        stamps: _StampColumns | None,
    ) -> None:
        self._raw = raw
        self._query = query
        self._make_encoder = encoder
        self._stamps = stamps
        self._cursor: psycopg.Cursor[Any] | None = None
        self._context: Any = None
        self._copy: Any = None
        self._encoder: Any = None

    def __call__(self, batch: pa.RecordBatch) -> None:
        full = batch
        if self._stamps is not None:
            loaded_at, batch_id = self._stamps.take(batch.num_rows)
            full = pa.RecordBatch.from_arrays(
                [*batch.columns, loaded_at, batch_id],
                names=[*batch.schema.names, LOADED_AT, BATCH_ID],
            )
        if self._copy is None:
            self._encoder = self._make_encoder(full.schema)
            self._cursor = self._raw.cursor()
            self._context = self._cursor.copy(self._query)
            self._copy = self._context.__enter__()
            self._copy.write(self._encoder.write_header())
        self._copy.write(self._encoder.write_batch(full))

    def close(self) -> None:
        """Send the trailer and wait until the server has stored every row."""
        if self._copy is None:
            return
        copy, self._copy = self._copy, None
        copy.write(self._encoder.finish())
        self._context.__exit__(None, None, None)
        self._close_cursor()

    def abort(self) -> None:
        """End the COPY with an error (the transaction is rolled back next); never raises."""
        if self._copy is None:
            return
        self._copy = None
        with contextlib.suppress(Exception):
            error = LoadFailed("the load stopped before the end of its rows")
            self._context.__exit__(LoadFailed, error, None)
        self._close_cursor()

    def _close_cursor(self) -> None:
        if self._cursor is not None:
            with contextlib.suppress(Exception):
                self._cursor.close()
            self._cursor = None


def _encoder() -> Callable[[pa.Schema], Any] | None:
    """pgpq's Arrow → binary COPY encoder class, or None when the package is missing."""
    try:
        from pgpq import ArrowToPostgresBinaryEncoder
    except ImportError:
        return None
    return ArrowToPostgresBinaryEncoder


class _StampColumns:
    """The two load columns as Arrow arrays, built once from raw buffers and sliced per batch.

    Built from buffers, not with `pa.array`/`pa.scalar`: those make pyarrow import pandas
    when it is installed (half a second of start-up for nothing).
    """

    def __init__(self, stamp: LoadStamp) -> None:
        self._micros = (stamp.loaded_at - _EPOCH) // dt.timedelta(microseconds=1)
        self._batch_id = stamp.batch_id.encode()
        self._rows = 0
        self._arrays: tuple[pa.Array, pa.Array] | None = None

    def take(self, rows: int) -> tuple[pa.Array, pa.Array]:
        if self._arrays is None or rows > self._rows:
            self._rows = rows
            self._arrays = (
                pa.Array.from_buffers(
                    _TIMESTAMP_UTC,
                    rows,
                    [None, pa.py_buffer(struct.pack("<q", self._micros) * rows)],
                ),
                pa.Array.from_buffers(
                    pa.string(),
                    rows,
                    [
                        None,
                        _offsets(len(self._batch_id), rows),
                        pa.py_buffer(self._batch_id * rows),
                    ],
                ),
            )
        loaded_at, batch_id = self._arrays
        return loaded_at.slice(0, rows), batch_id.slice(0, rows)


def _offsets(width: int, rows: int) -> pa.Buffer:
    """int32 offsets of `rows` strings of `width` bytes each."""
    return pa.py_buffer(array("i", range(0, width * (rows + 1), width)).tobytes())


def _row_writer(
    raw: psycopg.Connection[Any], staging: Table, query: sql.Composed, stamp: LoadStamp | None
) -> BatchWriter:
    """The slow path: psycopg adapts each value and writes binary rows one by one."""
    types = [_pg_type_name(c.type) for c in staging.columns]
    stamp_values = () if stamp is None else (stamp.loaded_at, stamp.batch_id)

    def write(batch: pa.RecordBatch) -> None:
        columns = [col.to_pylist() for col in batch.columns]
        with raw.cursor() as cursor, cursor.copy(query) as copy:
            copy.set_types(types)
            for row in zip(*columns, strict=True):
                copy.write_row((*row, *stamp_values))

    return write


def _pg_type_name(type_: Any) -> str:
    """The PostgreSQL type name psycopg knows for a staging column (for `set_types`)."""
    rendered = type_.compile(dialect=postgresql.dialect()).lower()
    array = "[]" if rendered.endswith("[]") else ""  # lists: `numeric(12, 2)[]`
    base = rendered.removesuffix("[]").split("(")[0].strip()
    return {
        "timestamp with time zone": "timestamptz",
        "timestamp without time zone": "timestamp",
        "time without time zone": "time",
        "double precision": "float8",
        "bigint": "int8",
        "boolean": "bool",
        "real": "float4",
    }.get(base, base) + array
