"""PostgreSQL bronze writer: each batch is appended with COPY, inside the load transaction.

COPY is PostgreSQL's bulk path (an order of magnitude faster than INSERTs). It runs on
the raw psycopg connection that SQLAlchemy's transaction owns, so the swap and the audit
row commit together with the data. Advisory locks make a second run of the same table
wait until the first commits or rolls back, and serialise the creation of schemas.
"""

from __future__ import annotations

import psycopg
import pyarrow as pa
from psycopg import sql
from sqlalchemy import Connection, Table, func, literal, select

from datakits.writers.base import BATCH_ID, LOADED_AT, BatchWriter, LoadStamp, SqlBronzeWriter


class PostgresWriter(SqlBronzeWriter):
    backend = "postgresql"
    driver_errors = (psycopg.Error,)

    def _lock(self, conn: Connection, lock_name: str) -> None:
        # A transaction-scoped advisory lock: released by commit, rollback or a dead session.
        key = func.hashtext(literal(lock_name))
        conn.execute(select(func.pg_advisory_xact_lock(key)))

    def _batch_writer(self, conn: Connection, staging: Table, stamp: LoadStamp) -> BatchWriter:
        raw = conn.connection.driver_connection
        names = [c.name for c in staging.columns]
        query = sql.SQL("COPY {} ({}) FROM STDIN").format(
            sql.Identifier(staging.schema, staging.name),
            sql.SQL(", ").join(sql.Identifier(name) for name in names),
        )
        stamp_values = (stamp.loaded_at, stamp.batch_id)
        assert names[-2:] == [LOADED_AT, BATCH_ID]

        def write(batch: pa.RecordBatch) -> None:
            columns = [col.to_pylist() for col in batch.columns]
            with raw.cursor() as cursor, cursor.copy(query) as copy:
                for row in zip(*columns, strict=True):
                    copy.write_row((*row, *stamp_values))

        return write
