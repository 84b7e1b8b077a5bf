"""SQLite source: a file opened read-only; declared types are hints, so values are coerced.

SQLite stores any value in any column (type affinity), and timestamps are usually ISO
text. The reader therefore converts every value (`loose_types`), and a missing file is
an error rather than a new empty database.
"""

from __future__ import annotations

from sqlalchemy import Engine

from datakits.sources.base import SqlTableReader
from datakits.urls import make_engine


class SqliteReader(SqlTableReader):
    backend = "sqlite"
    loose_types = True

    def _make_engine(self) -> Engine:
        return make_engine(self.url, read_only_file=True)
