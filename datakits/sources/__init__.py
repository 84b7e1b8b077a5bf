"""Source readers, one module per source technology; `reader_for` picks one by kind.

The reader module is imported only when its kind is used, as the writers are: each
pulls in its own driver (psycopg and the ADBC driver, pymysql), and a runner starts
faster without the ones it does not need.
"""

from __future__ import annotations

from sqlalchemy import URL

from datakits.kinds import source_kind
from datakits.sources.base import SourceReader, SqlTableReader
from datakits.spec import SourceKind, SourceSpec, TableSpec


def reader_class(kind: SourceKind) -> type[SqlTableReader]:
    """The reader of `kind`, from the registry (`datakits.kinds`)."""
    return source_kind(kind).reader_class()


def reader_for(source: SourceSpec, table: TableSpec, url: str | URL) -> SourceReader:
    """The reader for the spec's source kind, not yet opened (use it with `with`)."""
    return reader_class(source.kind)(url, table, schema=source.schema_)


__all__ = ["SourceReader", "SqlTableReader", "reader_class", "reader_for"]
