"""Source readers, one module per source technology; `reader_for` picks one by kind."""

from __future__ import annotations

from sqlalchemy import URL

from datakits.sources.base import SourceReader, SqlTableReader
from datakits.sources.mysql import MySqlReader
from datakits.sources.postgres import PostgresReader
from datakits.sources.sqlite import SqliteReader
from datakits.spec import SourceKind, SourceSpec, TableSpec

READERS: dict[SourceKind, type[SqlTableReader]] = {
    SourceKind.sqlite: SqliteReader,
    SourceKind.postgres: PostgresReader,
    SourceKind.mysql: MySqlReader,
}


def reader_for(source: SourceSpec, table: TableSpec, url: str | URL) -> SourceReader:
    """The reader for the spec's source kind, not yet opened (use it with `with`)."""
    return READERS[source.kind](url, table, schema=source.schema_)


__all__ = ["READERS", "SourceReader", "SqlTableReader", "reader_for"]
