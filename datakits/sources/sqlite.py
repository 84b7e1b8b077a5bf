"""SQLite source: a file opened read-only; declared types are hints, so values are coerced.

SQLite stores any value in any column (type affinity), and timestamps are usually ISO
text. The reader therefore converts every value (`loose_types`), and a missing file is
an error rather than a new empty database.

Text timestamps also compare as text: `'2024-01-01T10:00:01'` sorts after
`'2024-01-01 23:00:00'`, so a timestamp or date cursor is compared through `julianday()`
on both sides (`cursor_order`), which reads every ISO-8601 spelling (`T` or space, `Z`
or an offset, fractions) and unix times alike. Its resolution is ~25 microseconds:
rows of the same 25 µs may be re-read (harmless with a primary key).

Late commits: SQLite has one writer at a time, and a writer holds the lock from its
first write to its commit, so no row can commit behind a read with a cursor the writing
statement set (`CURRENT_TIMESTAMP`, a trigger): no commit horizon and no default
lookback (`SqlTableReader.commit_horizon` gives no bound).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, Connection, Engine, func, literal, text
from sqlalchemy import types as sat

from datakits.sources.base import SqlTableReader
from datakits.urls import make_engine
from datakits.watermarks import encode


class SqliteReader(SqlTableReader):
    backend = "sqlite"
    loose_types = True

    def _make_engine(self) -> Engine:
        return make_engine(self.url, read_only_file=True)

    @classmethod
    def estimate_rows(cls, conn: Connection, table: str, schema: str | None) -> int | None:
        """The row count `ANALYZE` stored in `sqlite_stat1` (its `stat` starts with it), or
        None when the file was never analysed. Not `count(*)`: SQLite has no row-count
        metadata, so it walks the whole table (seconds on a large file) for a percentage."""
        has_stats = conn.execute(
            text("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_stat1'")
        ).first()
        if has_stats is None:
            return None
        stat = conn.execute(
            text("SELECT stat FROM sqlite_stat1 WHERE tbl = :table LIMIT 1"), {"table": table}
        ).scalar()
        first = str(stat or "").split(" ", 1)[0]
        return int(first) if first.isdigit() else None

    def cursor_order(self, column: Column[Any], value: Any) -> tuple[Any, Any]:
        if isinstance(column.type, sat.DateTime | sat.Date):
            return func.julianday(column), func.julianday(literal(encode(value), sat.Text()))
        return column, value
