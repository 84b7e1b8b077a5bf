"""MySQL / MariaDB source: PyMySQL's unbuffered cursor, so rows stream instead of piling up.

`stream_results` makes SQLAlchemy's pymysql dialect use an `SSCursor`: the server sends
rows as they are read and the runner holds one batch at a time. (The default, buffered
cursor reads the whole result into client memory before the first row is returned.)

Values: MySQL enforces its declared types, so the reader is strict (`loose_types =
False`), with the MySQL-specific rules in `datakits.types` (unsigned BIGINT as a
20-digit decimal, `BIT(n)` as an integer, `TIME` as a time of day or a clear failure).
The session's time zone is UTC, so `TIMESTAMP` columns (instants) arrive in UTC; the
session's character set is utf8mb4, so every Unicode character (emoji too) round-trips.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Connection, Engine, event, text

from datakits.sources.base import SqlTableReader
from datakits.urls import make_engine


def _utc_session(dbapi_connection: Any, connection_record: Any) -> None:
    with dbapi_connection.cursor() as cursor:
        cursor.execute("SET time_zone = '+00:00'")


#: InnoDB's row estimate of one table (schema None: the connection's database).
_TABLE_ROWS = text(
    "SELECT table_rows FROM information_schema.tables "
    "WHERE table_name = :table AND table_schema = coalesce(:schema, database())"
)


class MySqlReader(SqlTableReader):
    backend = "mysql"
    loose_types = False
    #: InnoDB commits out of cursor order like any MVCC database, and reading its open
    #: transactions (`information_schema.innodb_trx`) needs the PROCESS privilege: a
    #: timestamp or date cursor is re-read one hour behind the watermark by default, so
    #: a row whose transaction commits up to an hour after its cursor value is not lost.
    default_lookback = dt.timedelta(hours=1)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # `mariadb+pymysql://` is SQLAlchemy's MariaDB-only flavour of the same dialect;
        # one reader serves both, and the spec says `kind: mysql` for either.
        if self.url.get_backend_name() == "mariadb":
            driver = self.url.get_driver_name()
            self.url = self.url.set(drivername=f"mysql+{driver}")
        if "charset" not in self.url.query:
            self.url = self.url.update_query_dict({"charset": "utf8mb4"})

    @classmethod
    def estimate_rows(cls, conn: Connection, table: str, schema: str | None) -> int | None:
        """`information_schema.tables.table_rows`: InnoDB's sampled estimate (can be off
        by tens of percent); None when the table is missing or the server has none."""
        value = conn.execute(_TABLE_ROWS, {"table": table, "schema": schema}).scalar()
        return int(value) if value is not None else None

    def _make_engine(self) -> Engine:
        engine = make_engine(self.url)
        event.listen(engine, "connect", _utc_session)
        return engine
